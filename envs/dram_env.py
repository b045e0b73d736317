"""``mlsysgym/DRAM-v0``: tune a DDR4 memory controller (ArchGym DRAMGym's ten knobs) for a trace.

ArchGym DRAMGym semantics on the cycle-level controller of :mod:`mlsysgym.simulators.dram`:

- **action**: the ten knobs of :data:`~mlsysgym.simulators.dram.DESIGN_SPACE` as one
  ``MultiDiscrete`` (one-shot mode, the default: every step is one design, 100 steps an
  episode) or one knob per step (``mode="sequential"``), see :class:`DesignEnv`;
- **workload**: a built-in trace name (``stream``, ``random``, ``cloud-1``, ``cloud-2``, ...,
  and ``accel:<zoo model>`` from :mod:`mlsysgym.simulators.accel_traces`), a trace file, or a
  ``DramTrace``; ``max_requests`` keeps only its first requests (a faster env);
- **observation**: ``log10(metric / reference)`` of [``energy_nj``, ``power_mw``,
  ``avg_latency_ns``] for the last design, the reference being the simulator's
  ``DESIGN_SPACE.default`` (then the design and episode progress);
- **reward**: ``objective`` ∈ ``latency`` | ``power`` | ``energy`` | ``joint`` picks the
  metrics (``avg_latency_ns``, ``power_mw``, ``energy_nj``; joint = all three) and
  ``reward="target_spec"`` (default) scores each ``target / |value − target|`` and multiplies
  them (ArchGym's joint reward). Other rewards: ``"weighted"`` (−Σ value / reference value
  over the objective's metrics) and ``"edp"`` (−ln(energy_nj × avg_latency_ns / reference)).

**Default targets** are half the trace's *ideal-controller* values on the simulated device,
values no design reaches. Each target-spec term is then ``1 / (2 · value / ideal − 1)``: 1 for
an ideal controller, falling monotonically toward 0 as the metric grows (a better design always
scores higher, the reward stays in (0, 1] and never nears the cap, unlike a target inside the
reachable range, where ``target / |value − target|`` spikes). The ideal values:

- ``avg_latency_ns``: every request served with no queueing as a row hit, ``CL + burst`` for
  a read and ``CWL + burst`` for a write (≈ 16.7 / 13.3 ns on DDR4-2400), averaged over the trace;
- ``power_mw``: precharge-standby background power (IDD2N, IPP3N), what an idle rank draws;
- ``energy_nj``: the trace's reads and writes with no activate, precharge or refresh, in
  precharge standby for the shortest time the trace can take (its span plus one access, or
  one burst per request back to back, whichever is longer).

ArchGym's example targets (power 1 mW, latency 0.1 ns) lie far below these floors; pass
``targets={"power_mw": 1.0, "avg_latency_ns": 0.1}`` to use them (the reward is then ≈ the
product of ``target / value``, small numbers). ``reward_kwargs={"targets": {...}}`` replaces
the targets entirely (any metric of the simulator, e.g. ``p99_latency_ns``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Evaluator
from mlsysgym.envs.design_env import DesignEnv, EnvConfigError, as_evaluator
from mlsysgym.envs.rewards import Reward
from mlsysgym.simulators.dram import DESIGN_SPACE, DramSimulator
from mlsysgym.simulators.dram_power import CommandCounts, dram_energy
from mlsysgym.simulators.dram_timing import MT40A1G8_083E, DramDevice
from mlsysgym.simulators.dram_traces import DramTrace, TraceError, resolve_trace

__all__ = [
    "OBJECTIVES",
    "OBSERVATION_METRICS",
    "TARGET_FRACTION",
    "DramEnv",
    "ideal_metrics",
    "load_trace",
    "objective_targets",
]

OBJECTIVES: dict[str, tuple[str, ...]] = {
    "latency": ("avg_latency_ns",),
    "power": ("power_mw",),
    "energy": ("energy_nj",),
    "joint": ("avg_latency_ns", "power_mw", "energy_nj"),
}
"""ArchGym DRAMGym objectives -> the simulator metrics they target."""

TARGET_FRACTION = 0.5
"""Default target = this fraction of the ideal-controller value of each metric."""

OBSERVATION_METRICS: tuple[str, ...] = ("energy_nj", "power_mw", "avg_latency_ns")
"""ArchGym DRAMGym's observation [energy, power, latency]."""


def load_trace(workload: str | os.PathLike[str] | DramTrace, max_requests: int | None = None,
               device: DramDevice = MT40A1G8_083E) -> DramTrace:
    """A DramTrace from a trace name (built-in or ``accel:<model>``), a file or a trace,
    keeping its first ``max_requests`` requests when given."""
    import mlsysgym.simulators.accel_traces  # noqa: F401  (registers the accel:<model> names)

    trace = resolve_trace(workload, capacity_bytes=device.capacity_bytes)
    if max_requests is None or max_requests >= len(trace):
        return trace
    if max_requests < 1:
        raise TraceError(f"max_requests={max_requests} must be >= 1 (or None for the whole trace)")
    n = int(max_requests)
    return DramTrace(trace.cycles[:n], trace.is_write[:n], trace.addresses[:n],
                     f"{trace.name}[:{n}]", {**trace.meta, "truncated_from": len(trace)})


def ideal_metrics(trace: DramTrace, device: DramDevice = MT40A1G8_083E) -> dict[str, float]:
    """Ideal-controller values of ``avg_latency_ns``, ``power_mw`` and ``energy_nj`` for a trace
    (lower bounds no design reaches; see the module docstring)."""
    t = device.timing
    n = len(trace)
    n_wr = int(np.count_nonzero(trace.is_write))
    n_rd = n - n_wr
    rd_cyc, wr_cyc = t.CL + t.burst_cycles, t.CWL + t.burst_cycles
    latency_ns = (n_rd * rd_cyc + n_wr * wr_cyc) / max(n, 1) * t.tck_ns
    span = int(trace.cycles[-1] - trace.cycles[0]) if n else 0
    min_cycles = max(span + min(rd_cyc, wr_cyc), n * t.burst_cycles, 1)
    idle = dram_energy(CommandCounts(0, 0, 0, 0, 0, 0, 1_000_000, 0), device)
    ideal = dram_energy(CommandCounts(0, 0, n_rd, n_wr, 0, 0, min_cycles, 0), device)
    return {"avg_latency_ns": float(latency_ns), "power_mw": float(idle.power_mw),
            "energy_nj": float(ideal.total_nj)}


def objective_targets(objective: str, trace: DramTrace, targets: Mapping[str, float] | None = None,
                      device: DramDevice = MT40A1G8_083E) -> dict[str, float]:
    """Targets of an objective's metrics: ``targets`` where given, else ``TARGET_FRACTION`` ×
    :func:`ideal_metrics`."""
    if objective not in OBJECTIVES:
        raise EnvConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    metrics = OBJECTIVES[objective]
    extra = sorted(set(targets or {}) - set(metrics))
    if extra:
        raise EnvConfigError(f"targets {extra} are not metrics of objective {objective!r} "
                             f"({', '.join(metrics)}); use reward_kwargs={{'targets': ...}} for other metrics")
    given = dict(targets or {})
    ideal = ideal_metrics(trace, device) if set(metrics) - set(given) else {}
    return {m: float(given[m]) if m in given else TARGET_FRACTION * ideal[m] for m in metrics}


class DramEnv(DesignEnv):
    """ArchGym DRAMGym: choose the controller knobs that best serve a DRAM trace.

    Keyword arguments: ``workload`` (trace name, file or DramTrace; default ``"stream"``),
    ``objective`` (``latency`` | ``power`` | ``energy`` | ``joint``), ``reward``
    (``target_spec`` | ``weighted`` | ``edp`` | a Reward), ``targets`` (metric -> target,
    overriding the defaults, half the ideal-controller values, for the objective's metrics), ``reward_kwargs``
    (passed to the reward; wins over what the objective sets), ``max_requests`` (keep the
    trace's first requests), ``mode``, ``max_steps`` (100), ``evaluator`` (a DramSimulator by
    default), ``action_type``, ``render_mode``.

    ``info`` after a step: ``design`` (the ten knobs), ``metrics`` (the simulator's:
    ``avg_latency_ns``, ``p99_latency_ns``, ``bandwidth_gbps``, ``row_hit_rate``,
    ``energy_nj``, ``power_mw``, ...), ``reward``, ``infeasible``, ``workload_id``,
    ``evaluator_id``. ``reset(options={"workload": "random"})`` switches the trace (same
    ``max_requests``; targets recomputed for it unless given). ``render_mode="rgb_array"``
    simulates the last design again and draws its command timeline
    (:func:`mlsysgym.envs.render.dram_figure`).
    """

    def __init__(self, workload: str | os.PathLike[str] | DramTrace = "stream",
                 objective: str = "joint", reward: str | Reward = "target_spec",
                 targets: Mapping[str, float] | None = None,
                 reward_kwargs: Mapping[str, Any] | None = None, max_requests: int | None = None,
                 mode: str = "one-shot", max_steps: int = 100, evaluator: Evaluator | str | None = None,
                 action_type: str = "multidiscrete", render_mode: str | None = None) -> None:
        if objective not in OBJECTIVES:
            raise EnvConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        evaluator = as_evaluator(evaluator, DramSimulator)
        self.objective, self.max_requests = objective, max_requests
        self._given = (reward, targets, dict(reward_kwargs or {}))
        self.device = getattr(evaluator, "device", MT40A1G8_083E)
        wl, kwargs = self._load(workload)
        super().__init__(DESIGN_SPACE, evaluator, wl, reward=reward, reward_kwargs=kwargs,
                         mode=mode, max_steps=max_steps, observation_metrics=OBSERVATION_METRICS,
                         reference_design=DESIGN_SPACE.default, action_type=action_type,
                         render_mode=render_mode)


    def _load(self, workload: Any) -> tuple[Any, dict[str, Any]]:
        """Load the trace of ``workload`` and its targets; the evaluator's workload (a truncated
        trace as the trace itself, a whole one by name, for readable ids) and the reward's
        keyword arguments."""
        reward, targets, reward_kwargs = self._given
        self.trace = load_trace(workload, self.max_requests, self.device)
        self.targets = objective_targets(self.objective, self.trace, targets, self.device)
        kwargs: dict[str, Any] = {}
        if reward == "target_spec":
            kwargs = {"targets": dict(self.targets), "combine": "product"}
        elif reward == "weighted":
            kwargs = {"weights": {m: 1.0 for m in OBJECTIVES[self.objective]}}
        elif reward == "edp":
            kwargs = {"energy": "energy_nj", "delay": "avg_latency_ns"}
        kwargs.update(reward_kwargs)
        wl: Any = self.trace if self.trace is not workload and "truncated_from" in self.trace.meta \
            else workload
        return wl, kwargs

    def _set_workload(self, workload: Any) -> None:
        wl, kwargs = self._load(workload)
        self._reward_spec = (self._reward_spec[0], kwargs, self._reward_spec[2])
        super()._set_workload(wl)

    def _figure(self) -> Any:
        from mlsysgym.envs.render import dram_design_figure

        return dram_design_figure(self.trace, self._shown_design(), self.evaluator,
                                  f"{self.trace.name}, step {self._t}")
