"""The multi-core model as an Evaluator: designs are op → PE assignments (and dispatch orders)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Evaluator, Metrics
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.multicore.errors import InvalidScheduleError
from mlsysgym.simulators.multicore.execution import simulate
from mlsysgym.simulators.multicore.hardware import Platform, load_platform
from mlsysgym.simulators.multicore.instance import OpTimeFn, SchedulingInstance, build_instance
from mlsysgym.simulators.multicore.schedule import schedule_from_order


class MulticoreEvaluator(Evaluator):
    """Evaluator over schedules of one platform: a design is ``{"assignment": [pe index per op],
    "order": [op indices] (optional)}``; ops start as early as that order allows.

    Metrics: ``makespan_us``, ``energy_uj``, ``utilization_mean``, ``valid`` (1.0/0.0; an invalid
    design gets makespan and energy ``inf``). The workload is an ir.Graph or a SchedulingInstance.
    """

    name = "multicore"
    version = "1"
    metric_names = ("makespan_us", "energy_uj", "utilization_mean", "valid")

    def __init__(self, platform: str | Path | Mapping[str, Any] | Platform = "soc_npu",
                 op_time: Mapping[str, OpTimeFn] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.platform = load_platform(platform)
        self.op_time = op_time
        self._problems: dict[int, tuple[Any, SchedulingInstance]] = {}

    def problem(self, workload: Graph | SchedulingInstance) -> SchedulingInstance:
        """The compiled problem of a workload (memoized per workload object)."""
        if isinstance(workload, SchedulingInstance):
            return workload
        hit = self._problems.get(id(workload))
        if hit is None or hit[0] is not workload:
            hit = (workload, build_instance(workload, self.platform, self.op_time))
            self._problems[id(workload)] = hit
        return hit[1]

    def _evaluate(self, designs: Sequence[Mapping[str, Any]], workload: Any) -> Metrics:
        prob = self.problem(workload)
        rows = []
        for d in designs:
            try:
                sched = schedule_from_order(prob, d["assignment"], d.get("order"))
                r = simulate(prob, sched)
                rows.append((r.makespan_us, r.energy_uj, float(r.utilization.mean()), 1.0))
            except InvalidScheduleError:
                rows.append((np.inf, np.inf, 0.0, 0.0))
        cols = np.array(rows, dtype=np.float64).reshape(len(designs), 4)
        return {m: cols[:, k] for k, m in enumerate(self.metric_names)}
