"""The memory execution model as an Evaluator: designs are placements of a graph's buffers.

A design is ``{"fast": {buffer: offset | ["prefetch", offset]}}`` (buffers not named stay in
slow memory; :meth:`~mlsysgym.simulators.memory.Placement.to_dict` gives this form). The
workload is a :class:`~mlsysgym.simulators.memory.MemoryInstance` (a graph with its memory
system and fast-memory capacity, from :func:`~mlsysgym.simulators.memory.build_instance`).

Metrics: ``time_us`` (simulated execution), ``all_slow_time_us``, ``speedup`` (all-slow time /
time), ``fast_peak_bytes``, ``n_fast``, ``n_prefetch`` and ``valid`` (1.0/0.0: a placement
that overlaps buffers, exceeds the capacity or prefetches what cannot be prefetched is
invalid and gets ``time_us`` = inf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import EvaluationError, Evaluator, Metrics, content_hash
from mlsysgym.simulators.memory import MemoryInstance, MemoryModelError, Placement, simulate

__all__ = ["MemoryEvaluator"]


class MemoryEvaluator(Evaluator):
    """Buffer placements → simulated execution time on a MemoryInstance (see the module doc)."""

    name = "memory"
    version = "1"
    metric_names = ("time_us", "all_slow_time_us", "speedup", "fast_peak_bytes", "n_fast",
                    "n_prefetch", "valid")

    def workload_id(self, workload: Any) -> str:
        """``name@capacity`` plus a hash of the instance's arrays (two instances of one graph
        with other bandwidths or windows never share cache entries)."""
        if not isinstance(workload, MemoryInstance):
            return super().workload_id(workload)
        digest = content_hash([workload.system.__dict__, workload.prefetch_window,
                               workload.include_weights, workload.size, workload.compute_us,
                               workload.mem_slow_us, workload.start, workload.end])[:12]
        return f"{workload.name}@{workload.capacity_bytes}B#{digest}"

    def _evaluate(self, designs: Sequence[Mapping[str, Any]], workload: Any) -> Metrics:
        if not isinstance(workload, MemoryInstance):
            raise EvaluationError(f"the memory evaluator's workload is a MemoryInstance "
                                  f"(build_instance(graph, capacity_fraction=...)), got "
                                  f"{type(workload).__name__}")
        slow = workload.all_slow_time_us
        rows = []
        for d in designs:
            fast = {k: tuple(v) if isinstance(v, (list, tuple)) else v
                    for k, v in dict(d.get("fast", {})).items()}
            try:
                r = simulate(workload, Placement.from_dict(workload, fast))
            except MemoryModelError as e:
                raise EvaluationError(f"bad placement: {e}") from None
            t = r.total_time_us if r.valid else np.inf
            rows.append((t, slow, slow / t, r.fast_peak_bytes, r.n_fast, r.n_prefetch,
                         float(r.valid)))
        cols = np.array(rows, dtype=np.float64).reshape(len(designs), len(self.metric_names))
        return {m: cols[:, k] for k, m in enumerate(self.metric_names)}
