"""Evaluation reports of a cost model on a test frame: metrics JSON, Markdown and plots.

:func:`evaluate_frame` scores predictions against the true metric columns (every metric of
:mod:`mlsysgym.costmodels.metrics`, per target, optionally per group such as workload or op
kind); :func:`write_report` also writes ``pred_vs_true_<target>.png`` (log-log scatter) and
``error_by_<group>.png`` (MAPE per group) into a results folder. Reusable for any model with
a ``predict(frame) -> Prediction``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.costmodels.metrics import by_group, regression_report

__all__ = ["evaluate_frame", "write_report"]


def evaluate_frame(model: Any, frame: Any, group: str | None = None) -> dict[str, Any]:
    """Per-target metrics of ``model`` on ``frame`` (which holds features and true targets),
    the share of rows flagged out of distribution, and MAPE per ``group`` value."""
    pred = model.predict(frame)
    out: dict[str, Any] = {"rows": len(frame), "ood_share": float(np.mean(pred.ood)),
                           "targets": {}, "predictions": {}}
    for t, p in pred.values.items():
        y = frame[t].to_numpy(dtype=np.float64)
        out["targets"][t] = regression_report(y, p)
        out["predictions"][t] = p
        if group is not None and group in frame.columns:
            out["targets"][t]["by_group_mape_pct"] = by_group(y, p, frame[group].to_numpy())
    return out


def _plot_pred_vs_true(y: np.ndarray, p: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(y, p, s=4, alpha=0.5)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    if lo > 0:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_by_group(groups: dict[str, float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(names) + 2), 3.5))
    ax.bar(range(len(names)), [groups[n] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("MAPE %")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(model: Any, frame: Any, out_dir: str | os.PathLike[str],
                 group: str | None = None, title: str = "") -> dict[str, Any]:
    """Score ``model`` on ``frame`` and write ``metrics.json`` (with ``provenance``: where it was
    scored — :func:`mlsysgym.core.target.provenance` — and the model's evaluator id),
    ``report.md`` and the plots."""
    from mlsysgym.core.target import provenance

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    res = evaluate_frame(model, frame, group)
    lines = [f"# Cost model report{(': ' + title) if title else ''}", "",
             (f"Model: {getattr(model, 'kind', type(model).__name__)} "
              f"{getattr(model, 'version', '')}; {res['rows']} test rows; "
              f"{100 * res['ood_share']:.1f}% flagged out of distribution."), "",
             "| target | RMSE | NRMSE % | RMS rel % | MAPE % | R² | Kendall τ | pairwise acc | top-1 | top-5 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t, r in res["targets"].items():
        y = frame[t].to_numpy(dtype=np.float64)
        _plot_pred_vs_true(y, res["predictions"][t], f"{title} {t}", d / f"pred_vs_true_{t}.png")
        if "by_group_mape_pct" in r:
            _plot_by_group(r["by_group_mape_pct"], f"{t}: MAPE by {group}",
                           d / f"error_by_{group}_{t}.png")
        lines.append(f"| {t} | {r['rmse']:.4g} | {r['nrmse_pct']:.3f} | {r['rms_rel_pct']:.3f} | "
                     f"{r['mape_pct']:.3f} | {r['r2']:.4f} | {r['kendall_tau']:.4f} | "
                     f"{r['pairwise_accuracy']:.4f} | {r['top1_score']:.4f} | {r['top5_score']:.4f} |")
    (d / "report.md").write_text("\n".join(lines) + "\n")
    clean = {k: v for k, v in res.items() if k != "predictions"}
    clean["provenance"] = provenance(evaluator_id=str(getattr(model, "id", type(model).__name__)))
    (d / "metrics.json").write_text(json.dumps(clean, indent=1, default=float))
    return clean


def targets_of(frame: Any, exclude: Sequence[str] = ()) -> list[str]:
    """The metric columns of a dataset frame (``attrs['metric_columns']``) minus ``exclude``."""
    return [c for c in frame.attrs.get("metric_columns", []) if c not in exclude]
