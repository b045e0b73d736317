"""``mlsysgym/SoC-v0``: design a mobile SoC (FARSI-style) — CPU big/little cores, GPU cores,
DSPs, an NPU, system SRAM, NoC, DRAM channels — judged on a set of workloads mapped onto it
with HEFT (or HEFT plus a local search), under area and power budgets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Evaluator
from mlsysgym.envs.design_env import DesignEnv, EnvConfigError, as_evaluator
from mlsysgym.simulators.soc import (
    METRICS,
    REFERENCE_DESIGN,
    SocEvaluator,
    soc_platform,
    soc_space,
    workload_set,
)

__all__ = ["OBSERVATION_METRICS", "SocEnv"]

OBSERVATION_METRICS = ("latency_ms", "energy_uj", "area_mm2", "power_w", "throughput_per_s")
_MAXIMIZED = ("throughput_per_s", "utilization")


class SocEnv(DesignEnv):
    """Platform DSE over a workload set (:func:`mlsysgym.simulators.soc.workload_set`: ``"tiny"``,
    ``"mobile"`` (default), ``"mixed"``, or a list of zoo models).

    ``objectives`` (metric names of :data:`mlsysgym.simulators.soc.METRICS`, e.g.
    ``["latency_ms", "energy_uj", "area_mm2"]``): the reward defaults to their equal-weight
    sum, each relative to the reference design (``weighted``; throughput and utilization
    maximized), and they join the observation. Without objectives the reward is ``edp``
    (energy × latency, 0 for the reference design). Any reward of :mod:`mlsysgym.envs.rewards`
    can be named instead. For Pareto fronts, search the env through
    ``{"name": "pareto", "of": {"name": "env:mlsysgym/SoC-v0", ...}, "objectives": [...]}``.

    Designs over ``area_budget_mm2`` / ``power_budget_w`` (peak power) are penalized and flagged
    ``infeasible`` in ``info``. ``mapping="search"`` maps every workload with HEFT then
    ``mapping_budget`` local-search moves (slower; co-design). The reference design is a
    Snapdragon 855-class SoC (:data:`mlsysgym.simulators.soc.REFERENCE_DESIGN`).
    ``render_mode="rgb_array"`` draws the platform and the schedule of the set's first workload.
    """

    def __init__(self, workloads: str | Sequence[Any] = "mobile",
                 objectives: Sequence[str] | None = None, reward: str | None = None,
                 reward_kwargs: Mapping[str, Any] | None = None,
                 area_budget_mm2: float | None = None, power_budget_w: float | None = None,
                 mapping: str = "heft", mapping_budget: int = 200, mode: str = "one-shot",
                 max_steps: int = 100, evaluator: Evaluator | str | None = None,
                 action_type: str = "multidiscrete", render_mode: str | None = None) -> None:
        objectives = list(objectives or [])
        unknown = [o for o in objectives if o not in METRICS]
        if unknown:
            raise EnvConfigError(f"unknown objective(s) {unknown}; SoC-v0 metrics are "
                                 f"{list(METRICS)}")
        self.objectives = objectives
        kwargs = dict(reward_kwargs or {})
        if reward is None:
            reward = "weighted" if objectives else "edp"
        if reward == "weighted" and objectives and "weights" not in kwargs:
            kwargs["weights"] = {o: 1.0 / len(objectives) for o in objectives}
            kwargs.setdefault("maximize", tuple(o for o in objectives if o in _MAXIMIZED))
        budgets = {k: v for k, v in (("area_mm2", area_budget_mm2), ("power_w", power_budget_w))
                   if v is not None}
        ev = as_evaluator(evaluator, lambda: SocEvaluator(mapping, mapping_budget))
        obs = tuple(dict.fromkeys((*OBSERVATION_METRICS, *objectives)))
        super().__init__(soc_space(), ev, workload_set(workloads), reward=reward,
                         reward_kwargs=kwargs, budgets=budgets, mode=mode, max_steps=max_steps,
                         observation_metrics=obs, reference_design=REFERENCE_DESIGN,
                         action_type=action_type, render_mode=render_mode)

    def _resolve_workload(self, workload: Any) -> Any:
        return workload_set(workload)

    def _figure(self) -> Any:
        design = self._shown_design()
        ev = self.evaluator if isinstance(self.evaluator, SocEvaluator) else SocEvaluator()
        run = ev.runs([design], self.workload)[0][0]
        metrics = self.last_info.get("metrics", self.reference)
        return soc_figure(design, run, metrics, f"{self.workload.name}, step {self._t}")


_COLORS = {"cpu_big": "#d62728", "cpu_little": "#ff7f0e", "gpu": "#2ca02c", "dsp": "#9467bd",
           "npu": "#1f77b4"}


def soc_figure(design: Mapping[str, Any], run: Any, metrics: Mapping[str, float],
               title: str) -> Any:
    """The platform (PEs by kind, system SRAM, NoC, DRAM channels) beside the Gantt chart of one
    workload's schedule on it (one row per PE)."""
    from matplotlib.patches import Rectangle
    from mlsysgym.envs.render import new_figure

    sp = soc_platform({**REFERENCE_DESIGN, **dict(design)})
    fig = new_figure(12, 5)
    ax, gantt = fig.subplots(1, 2, width_ratios=[1, 2])
    pes = sp.platform.pes
    for k, pe in enumerate(pes):  # a 4-wide grid of PE blocks above the NoC
        x, y = (k % 4) * 1.1, 3.0 + (k // 4) * 0.9
        ax.add_patch(Rectangle((x, y), 1.0, 0.8, facecolor=_COLORS[pe.kind], edgecolor="k",
                               linewidth=0.4))
        label = f"GPU ×{design['gpu_cores']}" if pe.kind == "gpu" else pe.name
        ax.text(x + 0.5, y + 0.4, label, ha="center", va="center", fontsize=7, color="w")
    ax.add_patch(Rectangle((0, 2.2), 4.3, 0.5, facecolor="#7f7f7f", edgecolor="k"))
    ax.text(2.15, 2.45, f"NoC: {design['noc']}, {design['noc_gbps']} GB/s links", ha="center",
            va="center", fontsize=8, color="w")
    sram_w = 0.3 + 4.0 * min(float(design["sram_mb"]) / 16.0, 1.0)
    ax.add_patch(Rectangle((0, 1.2), sram_w, 0.7, facecolor="#bcbd22", edgecolor="k"))
    ax.text(0.1, 1.55, f"SRAM {design['sram_mb']} MB", va="center", fontsize=8)
    for c in range(int(design["dram_channels"])):
        ax.add_patch(Rectangle((c * 1.1, 0.2), 1.0, 0.7, facecolor="#8c564b", edgecolor="k"))
        ax.text(c * 1.1 + 0.5, 0.55, "LPDDR4X", ha="center", va="center", fontsize=6, color="w")
    ax.set_xlim(-0.1, 4.5)
    ax.set_ylim(0, 3.2 + 0.9 * ((len(pes) + 3) // 4))
    ax.set_axis_off()
    ax.set_title(f"area {metrics.get('area_mm2', sp.area_mm2):.1f} mm², peak "
                 f"{metrics.get('power_w', sp.peak_power_w):.2f} W", fontsize=9)
    for p in range(len(pes)):
        on = np.flatnonzero(run.assign == p)
        bars = list(zip(run.start_us[on], run.finish_us[on] - run.start_us[on]))
        gantt.broken_barh(bars, (p - 0.35, 0.7), facecolors=_COLORS[pes[p].kind],
                          edgecolor="k", linewidth=0.2)
    gantt.set_yticks(range(len(pes)), [pe.name for pe in pes], fontsize=7)
    gantt.invert_yaxis()
    gantt.set_xlabel("time (µs)")
    gantt.set_title(f"{title}: schedule of {run.name}, latency {run.latency_us / 1e3:.2f} ms; "
                    f"set latency {metrics.get('latency_ms', float('nan')):.2f} ms", fontsize=9)
    return fig
