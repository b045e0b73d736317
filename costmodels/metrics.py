"""Metrics of a cost model's predictions, used by every model, report and benchmark.

Definitions (``y`` true values, ``p`` predictions, n pairs; all pure NumPy functions):

- ``rmse = sqrt(mean((p - y)^2))`` in the metric's unit.
- ``nrmse_pct = 100 · rmse / mean(|y|)``: RMSE relative to the mean true value (what
  "relative RMSE" usually means for ArchGym-style proxy models).
- ``rms_rel_pct = 100 · sqrt(mean(((p - y) / y)^2))``: the RMS of per-design relative errors
  (stricter when values span orders of magnitude: every design counts alike).
- ``mape_pct = 100 · mean(|p - y| / |y|)``.
- ``r2 = 1 - Σ(p - y)^2 / Σ(y - mean(y))^2``.
- ``kendall_tau``: Kendall's τ-b between y and p (ties handled as τ-b does).
- ``pairwise_accuracy``: over pairs with ``y_i != y_j``, the share whose predicted order agrees
  (a predicted tie counts one half); exact for n ≤ 4,000, else over 400,000 pairs drawn with a
  fixed seed.
- ``top_k_score`` (TenSet, lower is better, e.g. latency): ``min(y) / min(y[top-k by p])`` in
  (0, 1], 1 when one of the model's k best picks is the true best. Its inverse,
  ``top_k_ratio = min(y[top-k]) / min(y) ≥ 1``, is how much slower the best pick is.
- ``tau_difference``: a paired bootstrap of ``kendall_tau(y, p_a) - kendall_tau(y, p_b)`` over
  resampled rows: the observed difference, a 95 % interval and the share of resamples where
  model a ranks better (is the gap larger than the test set's sampling noise?).
- ``tau_interval``: Kendall τ on all rows with a 95 % bootstrap interval over resampled rows.
- ``mean_interval``: the mean of per-unit values (e.g. τ per family, or per shape, or paired
  differences) with a 95 % bootstrap interval over resampled units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["MetricInputError", "by_group", "kendall_tau", "mape_pct", "mean_interval",
           "nrmse_pct", "pairwise_accuracy", "r2", "regression_report", "rms_rel_pct", "rmse",
           "tau_difference", "tau_interval", "top_k_ratio", "top_k_score"]


class MetricInputError(MlsysgymError):
    """Prediction and truth arrays of different lengths, empty, or not finite."""


def _pair(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise MetricInputError(f"truth has {y.size} values but predictions {p.size}; pass equal lengths")
    if y.size == 0:
        raise MetricInputError("no values to score; pass at least one prediction")
    return y, p


def rmse(y: Any, p: Any) -> float:
    """Root mean squared error, in the metric's unit."""
    y, p = _pair(y, p)
    return float(np.sqrt(np.mean((p - y) ** 2)))


def nrmse_pct(y: Any, p: Any) -> float:
    """RMSE as a percentage of the mean absolute true value."""
    y, p = _pair(y, p)
    return float(100.0 * np.sqrt(np.mean((p - y) ** 2)) / max(np.mean(np.abs(y)), 1e-300))


def rms_rel_pct(y: Any, p: Any) -> float:
    """Root mean square of the per-value relative errors (p - y) / y, in percent."""
    y, p = _pair(y, p)
    return float(100.0 * np.sqrt(np.mean(((p - y) / np.where(y == 0, 1e-300, y)) ** 2)))


def mape_pct(y: Any, p: Any) -> float:
    """Mean absolute percentage error."""
    y, p = _pair(y, p)
    return float(100.0 * np.mean(np.abs(p - y) / np.maximum(np.abs(y), 1e-300)))


def r2(y: Any, p: Any) -> float:
    """Coefficient of determination (1 is perfect, 0 is predicting the mean)."""
    y, p = _pair(y, p)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((p - y) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)


def kendall_tau(y: Any, p: Any) -> float:
    """Kendall's τ-b rank correlation (NaN when either side is constant)."""
    y, p = _pair(y, p)
    if y.size < 2:
        return float("nan")
    from scipy.stats import kendalltau

    return float(kendalltau(y, p).statistic)


def tau_difference(y: Any, p_a: Any, p_b: Any, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of Kendall τ(y, p_a) − τ(y, p_b): ``diff`` (on all rows), ``lo``/``hi``
    (2.5th/97.5th percentiles over ``n_boot`` row resamples) and ``share_a_better``."""
    y, p_a = _pair(y, p_a)
    _, p_b = _pair(y, p_b)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        i = rng.integers(len(y), size=len(y))
        diffs[b] = kendall_tau(y[i], p_a[i]) - kendall_tau(y[i], p_b[i])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": kendall_tau(y, p_a) - kendall_tau(y, p_b), "lo": float(lo), "hi": float(hi),
            "share_a_better": float(np.mean(diffs > 0))}


def tau_interval(y: Any, p: Any, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Kendall τ(y, p) on all rows (``tau``) and the 2.5th/97.5th percentiles (``lo``/``hi``)
    of τ over ``n_boot`` resamples of the rows (with replacement)."""
    y, p = _pair(y, p)
    rng = np.random.default_rng(seed)
    taus = np.array([kendall_tau(y[i], p[i])
                     for i in (rng.integers(len(y), size=len(y)) for _ in range(n_boot))])
    lo, hi = np.nanpercentile(taus, [2.5, 97.5])
    return {"tau": kendall_tau(y, p), "lo": float(lo), "hi": float(hi)}


def mean_interval(values: Any, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """The mean of ``values`` (one per unit: family, shape, ...; NaNs dropped) and the
    2.5th/97.5th percentiles of the mean over ``n_boot`` resamples of the units; ``n`` units."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise MetricInputError("no finite values to average; pass at least one")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(v.size, size=(int(n_boot), v.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(v.mean()), "lo": float(lo), "hi": float(hi), "n": float(v.size)}


def pairwise_accuracy(y: Any, p: Any, max_exact: int = 4000, n_pairs: int = 400_000,
                      seed: int = 0) -> float:
    """Share of pairs (with distinct true values) that the predictions order correctly."""
    y, p = _pair(y, p)
    n = y.size
    if n < 2:
        return float("nan")
    if n <= max_exact:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, n_pairs)
        j = rng.integers(0, n, n_pairs)
    dy = np.sign(y[i] - y[j])
    dp = np.sign(p[i] - p[j])
    keep = dy != 0
    if not keep.any():
        return float("nan")
    score = np.where(dp[keep] == 0, 0.5, (dp[keep] == dy[keep]).astype(np.float64))
    return float(score.mean())


def _top_k(y: np.ndarray, p: np.ndarray, k: int) -> float:
    k = max(1, min(int(k), y.size))
    picks = np.argsort(p, kind="stable")[:k]
    return float(np.min(y[picks]))


def top_k_score(y: Any, p: Any, k: int = 1) -> float:
    """TenSet's top-k score for a lower-is-better metric: true best ÷ best true value among
    the k designs the model ranks best; in (0, 1], 1 is perfect."""
    y, p = _pair(y, p)
    return float(np.min(y) / max(_top_k(y, p, k), 1e-300))


def top_k_ratio(y: Any, p: Any, k: int = 1) -> float:
    """Best true value among the model's top-k picks ÷ true best (≥ 1; 1 is perfect)."""
    return 1.0 / top_k_score(y, p, k)


def regression_report(y: Any, p: Any, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Every metric of this module for one target, as a flat dict."""
    y, p = _pair(y, p)
    out = {"n": float(y.size), "rmse": rmse(y, p), "nrmse_pct": nrmse_pct(y, p),
           "rms_rel_pct": rms_rel_pct(y, p), "mape_pct": mape_pct(y, p), "r2": r2(y, p),
           "kendall_tau": kendall_tau(y, p), "pairwise_accuracy": pairwise_accuracy(y, p)}
    for k in ks:
        out[f"top{k}_score"] = top_k_score(y, p, k)
    return out


def by_group(y: Any, p: Any, groups: Any, metric: str = "mape_pct") -> dict[str, float]:
    """One metric of ``regression_report`` per group label (e.g. per op kind or workload)."""
    y, p = _pair(y, p)
    g = np.asarray(groups).reshape(-1)
    if g.shape != y.shape:
        raise MetricInputError(f"groups has {g.size} labels for {y.size} values")
    fns: Mapping[str, Any] = {"rmse": rmse, "nrmse_pct": nrmse_pct, "rms_rel_pct": rms_rel_pct,
                              "mape_pct": mape_pct, "r2": r2, "kendall_tau": kendall_tau}
    if metric not in fns:
        raise MetricInputError(f"unknown metric {metric!r}; choose one of {', '.join(fns)}")
    return {str(k): fns[metric](y[g == k], p[g == k]) for k in sorted(set(g.tolist()), key=str)}
