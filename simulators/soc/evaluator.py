"""The SoC model as an Evaluator: designs are platforms (:func:`~.platform.soc_space`), the
workload is a set of graphs and job streams (:func:`~.workloads.workload_set`).

Metrics of a design on a set (one value per design):

- ``latency_ms`` — the geometric mean over the workloads of each one's latency (a graph's
  makespan, a stream's mean job completion time), each run alone on the SoC;
- ``throughput_per_s`` — jobs finished per second running the set once (every graph is one job,
  a stream its jobs): jobs / sum of makespans;
- ``energy_uj`` — the set's total energy (see :mod:`.mapping`);
- ``area_mm2`` — the sum of the blocks' areas; ``power_w`` — peak power (every PE busy, DRAM at
  full bandwidth: what a power budget bounds); ``avg_power_w`` — energy / time over the set;
- ``utilization`` — busy PE time / (PEs × time); ``n_pes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Design, EvaluationError, Evaluator, Metrics
from mlsysgym.simulators.soc.mapping import MAPPINGS, WorkloadRun, map_set, npu_times
from mlsysgym.simulators.soc.platform import SOC_SPACE, SocPlatform, soc_platform
from mlsysgym.simulators.soc.workloads import WorkloadSet, workload_set

__all__ = ["METRICS", "SocEvaluator"]

METRICS = ("latency_ms", "throughput_per_s", "energy_uj", "area_mm2", "power_w", "avg_power_w",
           "utilization", "n_pes")


class SocEvaluator(Evaluator):
    """Evaluate SoC platforms on a workload set, mapping each workload with HEFT
    (``mapping="heft"``) or HEFT (the better of HEFT and HEFT-FIFO on a stream) plus a local
    search of ``mapping_budget`` moves per workload (``mapping="search"``, seeded by ``seed``). Missing design keys take the reference design's
    values. ``"soc:search"`` in the evaluator registry is ``SocEvaluator("search")``."""

    name = "soc"
    version = "1"
    metric_names = METRICS

    def __init__(self, mapping: str = "heft", mapping_budget: int = 200, cache_size: int = 100_000,
                 seed: int = 0) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        if mapping not in MAPPINGS:
            raise EvaluationError(f"mapping must be one of {MAPPINGS}, got {mapping!r}")
        if int(mapping_budget) < 0:
            raise EvaluationError(f"mapping_budget must be >= 0, got {mapping_budget}")
        self.mapping, self.mapping_budget = mapping, int(mapping_budget)
        self._npu_memo: dict[tuple, list[np.ndarray]] = {}

    @property
    def id(self) -> str:
        """``soc@1`` with HEFT; ``soc@1+search<budget>`` with the inner search."""
        base = f"{self.name}@{self.version}"
        return base if self.mapping == "heft" else f"{base}+search{self.mapping_budget}"

    def workload_id(self, workload: Any) -> str:
        return workload_set(workload).name

    def workload_key(self, workload: Any) -> str:
        return self.workload_id(workload)

    def platforms(self, designs: Sequence[Design]) -> list[SocPlatform]:
        """The validated platforms of ``designs`` (missing keys from the reference design)."""
        return [soc_platform(SOC_SPACE.complete(d)) for d in designs]

    def runs(self, designs: Sequence[Design], workload: Any) -> list[list[WorkloadRun]]:
        """Per design, each workload's run (schedule, latency, energy)."""
        return self._runs(self.platforms(designs), workload_set(workload))

    def _runs(self, plats: Sequence[SocPlatform], wset: WorkloadSet) -> list[list[WorkloadRun]]:
        npu = _npu_times(plats, wset, self._npu_memo)
        return [map_set(sp, wset, [t[k] for t in npu], self.mapping, self.mapping_budget,
                        self.seed) for k, sp in enumerate(plats)]

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        wset = workload_set(workload)
        plats = self.platforms(designs)
        runs = self._runs(plats, wset)
        cols = np.array([_aggregate(sp, rs, wset) for sp, rs in zip(plats, runs)],
                        dtype=np.float64).reshape(len(designs), len(METRICS))
        return {m: cols[:, k] for k, m in enumerate(METRICS)}


def _npu_times(plats: Sequence[SocPlatform], wset: WorkloadSet,
               memo: dict[tuple, list[np.ndarray]]) -> list[list[np.ndarray | None]]:
    """Per workload, per design: the NPU op times (None for a design without an NPU). The
    accelerator model runs once per workload for all the NPUs not in ``memo`` together (a
    few hundred NPU configurations exist, so designs share them); ``memo`` keeps the rest."""
    from mlsysgym.simulators.accelerator import designs_to_arrays

    keys = [None if sp.npu_design is None else (wset.name, *sorted(sp.npu_design.items()))
            for sp in plats]
    todo = list(dict.fromkeys(k for k in keys if k is not None and k not in memo))
    if todo:
        if len(memo) > 2048:
            memo.clear()
        arrays = designs_to_arrays([dict(k[1:]) for k in todo])
        times = [npu_times(arrays, w) for w in wset.workloads]
        for j, k in enumerate(todo):
            memo[k] = [t[j] for t in times]
    return [[None if k is None else memo[k][w] for k in keys]
            for w in range(len(wset.workloads))]


def _aggregate(sp: SocPlatform, runs: Sequence[WorkloadRun], wset: WorkloadSet) -> tuple:
    lat_ms = np.array([r.latency_us for r in runs]) * 1e-3
    total_us = float(sum(r.makespan_us for r in runs))
    energy = float(sum(r.energy_uj for r in runs))
    busy = float(sum(r.busy_us.sum() for r in runs))
    n_pes = len(sp.platform.pes)
    return (float(np.exp(np.mean(np.log(lat_ms)))), wset.n_jobs / (total_us * 1e-6), energy,
            sp.area_mm2, sp.peak_power_w, energy / total_us, busy / (n_pes * total_us), n_pes)


def evaluate_platform(design: Mapping[str, Any], workloads: Any = "mobile",
                      mapping: str = "heft") -> dict[str, Any]:
    """One design's metrics plus its per-workload latencies (``latency_ms_per_workload``)."""
    ev = SocEvaluator(mapping)
    out: dict[str, Any] = ev.evaluate_one(design, workloads)
    runs = ev.runs([design], workloads)[0]
    out["latency_ms_per_workload"] = {r.name: r.latency_us * 1e-3 for r in runs}
    return out
