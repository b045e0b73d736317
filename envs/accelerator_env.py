"""``mlsysgym/Accelerator-v0``: choose a DNN accelerator (PE array, dataflow, SRAMs, bandwidth)
for a workload, evaluated by the analytical simulator (or any Evaluator with its metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlsysgym.core.evaluator import Evaluator
from mlsysgym.envs.design_env import DesignEnv, as_evaluator
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.accelerator import accelerator_space

__all__ = ["AcceleratorEnv", "accelerator_space"]  # the search grid is the simulator's


class AcceleratorEnv(DesignEnv):
    """ArchGym-style accelerator DSE over a zoo model or ONNX file.

    ``reward``: ``edp`` (default; 0 for the reference design, + ln 2 per halving of
    energy·delay), ``target_spec`` (``reward_kwargs={"targets": {"latency_ms": 5}}``) or
    ``weighted``. Designs over ``area_budget_mm2`` / ``power_budget_mw`` are penalized and
    flagged ``infeasible`` in ``info``. ``evaluator``: the analytical simulator by default, or
    any Evaluator with the observation metrics, e.g. ``"surrogate:PATH"`` (a saved cost model).

    ``info`` after a step: ``design``, ``metrics`` (``latency_ms``, ``energy_uj``, ``area_mm2``,
    ``power_mw``, ``utilization``, ... of the evaluator), ``reward``, ``infeasible``,
    ``workload_id``, ``evaluator_id``. ``reset(options={"workload": "resnet18"})`` switches the
    model (a zoo name, ONNX path or Graph). ``render_mode="rgb_array"`` draws the PE array, its
    SRAMs and every layer's utilization on the last design (the reference design before the
    first step; :func:`mlsysgym.envs.render.accelerator_figure`).
    """

    def __init__(self, model: str | Path | Graph = "resnet50", mode: str = "one-shot",
                 reward: str = "edp", reward_kwargs: Mapping[str, Any] | None = None,
                 area_budget_mm2: float | None = None, power_budget_mw: float | None = None,
                 max_steps: int = 100, evaluator: Evaluator | str | None = None,
                 action_type: str = "multidiscrete", render_mode: str | None = None) -> None:
        from mlsysgym.ir import zoo
        from mlsysgym.simulators.accelerator import AcceleratorSimulator

        graph = zoo.resolve(model)
        budgets = {k: v for k, v in (("area_mm2", area_budget_mm2), ("power_mw", power_budget_mw))
                   if v is not None}
        super().__init__(
            accelerator_space(), as_evaluator(evaluator, AcceleratorSimulator), graph, reward=reward,
            reward_kwargs=reward_kwargs, budgets=budgets, mode=mode, max_steps=max_steps,
            observation_metrics=("latency_ms", "energy_uj", "area_mm2", "power_mw", "utilization"),
            action_type=action_type, render_mode=render_mode)

    def _resolve_workload(self, workload: Any) -> Graph:
        from mlsysgym.ir import zoo

        return zoo.resolve(workload)

    def _figure(self) -> Any:
        from mlsysgym.envs.render import accelerator_figure
        from mlsysgym.simulators.accelerator import layer_table

        design = self._shown_design()
        metrics = self.last_info.get("metrics", self.reference)
        name = getattr(self.workload, "name", "workload")
        return accelerator_figure(design, layer_table(design, self.workload), metrics,
                                  f"{name}, step {self._t}")
