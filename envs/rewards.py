"""Rewards: functions of metrics, chosen by name, never baked into a simulator.

A reward takes ``metrics`` (metric name -> a scalar or an array with one value per design) and
returns a float (scalar metrics) or an array (one reward per design)::

    r = make_reward("target_spec", targets={"latency_ns": 0.1, "power_mw": 1.0})
    r({"latency_ns": np.array([0.2, 0.1]), "power_mw": np.array([2.0, 1.5])})

Rewards (see each class):

- ``target_spec`` — ArchGym's DRAMGym reward: per metric ``target / |value - target|``,
  capped at ``cap`` (reached when value == target); ``combine="product"`` (ArchGym's joint
  reward) or ``"sum"``; one target = ArchGym's per-metric objective.
- ``weighted`` — ``sum_m w_m * sign_m * value_m / scale_m`` with sign −1 for metrics to
  minimize (the default) and +1 for those in ``maximize``.
- ``edp`` — energy × delay: ``-log(E·D / reference)`` (default; a difference of rewards is
  a log-ratio of EDPs, so its scale does not depend on the workload) or ``1 / (E·D /
  reference)`` (MaestroGym's form).

Infeasible designs (over a budget, or flagged by the evaluator with a truthy ``infeasible``
metric) get a ``Penalty``: a constant reward, or the reward minus ``scale`` × the relative
budget excess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["EDP", "REWARDS", "Penalty", "Reward", "RewardError", "TargetSpec", "Weighted",
           "list_rewards", "make_reward", "register_reward"]

MetricsLike = Mapping[str, Any]


class RewardError(MlsysgymError, ValueError):
    """A reward was misconfigured or given metrics it needs but does not have."""


def _get(metrics: MetricsLike, name: str, reward: str) -> np.ndarray:
    try:
        v = metrics[name]
    except KeyError:
        raise RewardError(f"{reward} reward needs metric {name!r}; metrics given are "
                          f"{sorted(metrics)}") from None
    return np.asarray(v, dtype=np.float64)


def _out(x: np.ndarray, metrics: MetricsLike) -> float | np.ndarray:
    """A Python float when every metric was a scalar, else the array."""
    if all(np.ndim(v) == 0 for v in metrics.values()):
        return float(np.asarray(x).reshape(-1)[0]) if np.size(x) else float("nan")
    return np.asarray(x, dtype=np.float64)


# ---- penalty -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Penalty:
    """What an infeasible design gets.

    A design is infeasible when a metric exceeds its ``budgets`` entry (e.g.
    ``{"area_mm2": 10.0, "power_mw": 500.0}``) or when the metrics carry a truthy
    ``infeasible`` value (or the caller passes ``feasible=False``).

    ``mode="constant"``: the reward becomes ``value``. Choose it below every feasible reward
    (``target_spec`` rewards are > 0, so 0 or −1 works; ``edp`` rewards are −log(E·D), so pick
    e.g. −100 or use ``"scaled"``).
    ``mode="scaled"``: the reward becomes ``reward − scale × excess`` where excess is the sum
    over budgets of ``max(value / budget − 1, 0)`` (at least ``min_excess`` for designs flagged
    infeasible without a budget excess), so further over budget is worse.
    """

    budgets: Mapping[str, float] = field(default_factory=dict)
    mode: Literal["constant", "scaled"] = "constant"
    value: float = 0.0
    scale: float = 1.0
    min_excess: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("constant", "scaled"):
            raise RewardError(f"penalty mode {self.mode!r} is not 'constant' or 'scaled'")
        for k, b in self.budgets.items():
            if not b > 0:
                raise RewardError(f"budget for {k!r} must be > 0, got {b}")

    def excess(self, metrics: MetricsLike) -> np.ndarray:
        """Relative amount by which each design exceeds its budgets (0 when within)."""
        total: Any = 0.0
        for k, b in self.budgets.items():
            total = total + np.maximum(_get(metrics, k, "penalty") / b - 1.0, 0.0)
        return np.asarray(total, dtype=np.float64)

    def feasible(self, metrics: MetricsLike, feasible: Any = None) -> np.ndarray:
        """Boolean per design: within every budget, not flagged, and ``feasible`` if given."""
        ok = self.excess(metrics) <= 0
        if "infeasible" in metrics:
            ok = ok & ~np.asarray(metrics["infeasible"], dtype=bool)
        if feasible is not None:
            ok = ok & np.asarray(feasible, dtype=bool)
        return np.asarray(ok)

    def apply(self, reward: np.ndarray, metrics: MetricsLike, feasible: Any = None) -> np.ndarray:
        """``reward`` with infeasible designs penalized."""
        ok = self.feasible(metrics, feasible)
        reward = np.asarray(reward, dtype=np.float64)
        if self.mode == "constant":
            pen = np.full(np.broadcast(reward, ok).shape, self.value)
        else:
            pen = reward - self.scale * np.maximum(self.excess(metrics), self.min_excess)
        return np.where(ok, reward, pen)


def _as_penalty(p: Penalty | Mapping[str, Any] | float | None) -> Penalty | None:
    if p is None or isinstance(p, Penalty):
        return p
    if isinstance(p, Mapping):
        return Penalty(**p)
    if isinstance(p, (int, float)):
        return Penalty(mode="constant", value=float(p))
    raise RewardError(f"penalty must be a Penalty, a dict or a number, got {type(p).__name__}")


# ---- rewards -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Reward:
    """Base: ``raw(metrics)`` computes the reward ignoring feasibility; ``__call__`` gives
    infeasible designs the ``penalty`` (an infeasible design without a penalty is an error)."""

    penalty: Penalty | None = None

    def raw(self, metrics: MetricsLike) -> np.ndarray:  # pragma: no cover - abstract
        """The reward ignoring feasibility."""
        raise NotImplementedError

    def __call__(self, metrics: MetricsLike, feasible: Any = None) -> float | np.ndarray:
        """Reward per design (a float for scalar metrics). ``feasible``: optional bool(s)."""
        r = self.raw(metrics)
        pen = _as_penalty(self.penalty)
        if pen is not None:
            r = pen.apply(r, metrics, feasible)
        elif not Penalty().feasible(metrics, feasible).all():
            raise RewardError(f"{type(self).__name__} got infeasible flags but has no penalty; "
                              f"pass penalty=<number> or penalty=Penalty(...)")
        return _out(r, metrics)


@dataclass(frozen=True, kw_only=True)
class TargetSpec(Reward):
    """ArchGym target-spec reward: per metric ``target / |value − target|`` (capped at ``cap``;
    the uncapped value is infinite when value == target), combined by ``product`` (ArchGym's
    joint reward) or ``sum``. With ``one_sided=True`` a metric that beats its target (below
    it, or above it for metrics in ``maximize``) also gets ``cap``.
    """

    targets: Mapping[str, float] = field(default_factory=dict)
    combine: Literal["product", "sum"] = "product"
    cap: float = 1e6
    one_sided: bool = False
    maximize: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.targets:
            raise RewardError("target_spec needs targets, e.g. targets={'latency_ns': 0.1}")
        if self.combine not in ("product", "sum"):
            raise RewardError(f"combine={self.combine!r} is not 'product' or 'sum'")
        if not self.cap > 0:
            raise RewardError("cap must be > 0")
        unknown = sorted(set(self.maximize) - set(self.targets))
        if unknown:
            raise RewardError(f"maximize names metrics without a target: {unknown}")

    def per_metric(self, metrics: MetricsLike) -> dict[str, np.ndarray]:
        """The capped ``target / |value − target|`` of each targeted metric."""
        out = {}
        for m, t in self.targets.items():
            v = _get(metrics, m, "target_spec")
            dist = np.abs(v - t)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(dist > 0, abs(t) / np.where(dist > 0, dist, 1.0), self.cap)
            r = np.minimum(r, self.cap)
            if self.one_sided:
                better = v >= t if m in self.maximize else v <= t
                r = np.where(better, self.cap, r)
            out[m] = r
        return out

    def raw(self, metrics: MetricsLike) -> np.ndarray:
        parts = list(self.per_metric(metrics).values())
        if self.combine == "product":
            return np.prod(np.broadcast_arrays(*parts), axis=0)
        return np.sum(np.broadcast_arrays(*parts), axis=0)


@dataclass(frozen=True, kw_only=True)
class Weighted(Reward):
    """``sum_m weight_m × sign_m × value_m / scale_m``: sign −1 for metrics to minimize (every
    metric unless listed in ``maximize``). ``scales`` normalizes units (e.g. a baseline
    design's metrics, so each term is a ratio to the baseline); a missing scale is 1."""

    weights: Mapping[str, float] = field(default_factory=dict)
    scales: Mapping[str, float] = field(default_factory=dict)
    maximize: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.weights:
            raise RewardError("weighted needs weights, e.g. weights={'latency_ms': 1.0}")
        for m, s in self.scales.items():
            if not s or not math.isfinite(s):
                raise RewardError(f"scale for {m!r} must be finite and non-zero, got {s}")
        unknown = sorted(set(self.maximize) - set(self.weights))
        if unknown:
            raise RewardError(f"maximize names metrics without a weight: {unknown}")

    def raw(self, metrics: MetricsLike) -> np.ndarray:
        total: Any = 0.0
        for m, w in self.weights.items():
            sign = 1.0 if m in self.maximize else -1.0
            total = total + sign * w * _get(metrics, m, "weighted") / self.scales.get(m, 1.0)
        return np.asarray(total, dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class EDP(Reward):
    """Energy-delay product ``E·D = metrics[energy] × metrics[delay] / reference``.

    ``form="neg_log"`` (default): ``-ln(E·D)`` — monotone, defined for any positive E·D,
    and reward differences are log-ratios (a 2× better EDP is +0.69 whatever the workload),
    which suits RL value functions. ``form="inverse"``: ``1 / (E·D)`` (MaestroGym's form).
    ``reference`` (e.g. a baseline design's EDP) makes the reference design score 0
    (neg_log) or 1 (inverse). Non-positive E·D is an error.
    """

    energy: str = "energy_uj"
    delay: str = "latency_ms"
    form: Literal["neg_log", "inverse"] = "neg_log"
    reference: float = 1.0

    def __post_init__(self) -> None:
        if self.form not in ("neg_log", "inverse"):
            raise RewardError(f"edp form={self.form!r} is not 'neg_log' or 'inverse'")
        if not self.reference > 0:
            raise RewardError("edp reference must be > 0")

    def product(self, metrics: MetricsLike) -> np.ndarray:
        """E·D / reference per design."""
        return _get(metrics, self.energy, "edp") * _get(metrics, self.delay, "edp") / \
            self.reference

    def raw(self, metrics: MetricsLike) -> np.ndarray:
        ed = self.product(metrics)
        if np.any(ed <= 0):
            raise RewardError(f"edp needs positive {self.energy} and {self.delay}; got a product "
                              f"<= 0")
        return -np.log(ed) if self.form == "neg_log" else 1.0 / ed


# ---- registry ------------------------------------------------------------------------------
REWARDS: dict[str, Callable[..., Reward]] = {}


def register_reward(name: str, factory: Callable[..., Reward]) -> None:
    """Make ``make_reward(name, ...)`` build rewards with ``factory(**kwargs)``."""
    if name in REWARDS and REWARDS[name] is not factory:
        raise RewardError(f"a reward named {name!r} is already registered")
    REWARDS[name] = factory


def list_rewards() -> list[str]:
    """Names accepted by ``make_reward``."""
    return sorted(REWARDS)


def make_reward(name: str, **kwargs: Any) -> Reward:
    """The reward called ``name`` configured by ``kwargs`` (``penalty`` may be a Penalty, a
    dict of its fields, or a number meaning a constant penalty)."""
    if name not in REWARDS:
        raise RewardError(f"unknown reward {name!r}; choose one of {list_rewards()}")
    if "penalty" in kwargs:
        kwargs["penalty"] = _as_penalty(kwargs["penalty"])
    for k in ("maximize",):
        if k in kwargs and not isinstance(kwargs[k], tuple):
            kwargs[k] = tuple([kwargs[k]] if isinstance(kwargs[k], str) else kwargs[k])
    try:
        return REWARDS[name](**kwargs)
    except TypeError as e:
        raise RewardError(f"bad arguments for reward {name!r}: {e}") from None


register_reward("target_spec", TargetSpec)
register_reward("weighted", Weighted)
register_reward("edp", EDP)
