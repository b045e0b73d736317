"""Map one workload onto one SoC platform and measure it.

- :func:`op_times` — the (ops × PEs) time matrix: the roofline of
  :func:`~mlsysgym.simulators.multicore.roofline_times` for CPU / GPU / DSP cores (the same
  formula, from a per-design throughput table shared by the workloads of a set) and the
  accelerator model's per-op cycles for the NPU (:func:`npu_times`, batched over designs);
- :func:`map_workload` — HEFT (:func:`~mlsysgym.simulators.multicore.heft.heft_arrays`), or
  with ``mapping="search"`` HEFT followed by a budgeted local search over its assignment
  (:func:`local_search`), then latency, busy time per PE and energy.

Energy of a run (µJ): busy time × active power + idle time × idle power per PE, bytes crossing
the NoC × its energy per byte, every op's bytes × the memory energy per byte (DRAM misses and
SRAM hits), and the uncore's static power × the run's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from mlsysgym.simulators.multicore.heft import heft_arrays, place
from mlsysgym.simulators.soc.platform import SocPlatform
from mlsysgym.simulators.soc.workloads import SocWorkload, WorkloadSet

__all__ = ["MAPPINGS", "WorkloadRun", "local_search", "map_workload", "npu_times", "op_times",
           "throughput_table"]

MAPPINGS = ("heft", "search")


def throughput_table(sp: SocPlatform, type_names: Sequence[str]) -> np.ndarray:
    """(n_types, n_pes) throughput in FLOP/µs (0: cannot run); computed once per PE kind."""
    by_kind: dict[str, np.ndarray] = {}
    cols = []
    for pe in sp.platform.pes:
        key = f"{pe.kind}@{sorted(pe.throughput_gflops.items())}"
        if key not in by_kind:
            by_kind[key] = np.array([pe.throughput(t) for t in type_names]) * 1e3
        cols.append(by_kind[key])
    return np.stack(cols, axis=1)


def npu_times(npu_designs: Sequence[dict[str, Any]], workload: SocWorkload) -> np.ndarray:
    """(n_designs, n_ops) each op's time on each NPU design in µs from the accelerator model's
    cycles (ops the model gives no work take 0 cycles; the overhead is added by op_times)."""
    from mlsysgym.simulators.accelerator import designs_to_arrays, simulate_items

    arrays = designs_to_arrays(list(npu_designs))
    out = np.zeros((len(npu_designs), workload.n_ops))
    for ls, starts in workload.npu_parts:
        cycles = simulate_items(arrays, ls)["cycles"]  # (D, L)
        per_op = np.zeros((ls.num_ops, len(npu_designs)))
        np.add.at(per_op, ls.op_index, cycles.T)
        us = per_op.T / arrays.clock_mhz[:, None]  # cycles / MHz = µs
        idx = starts[:, None] + np.arange(ls.num_ops)[None, :]
        out[:, idx] = us[:, None, :]
    return out


@numba.njit(cache=True)
def _roofline_kernel(flops: np.ndarray, nbytes: np.ndarray, type_idx: np.ndarray, thr: np.ndarray,
                     bw: np.ndarray, ovh: np.ndarray, npu: int, npu_us: np.ndarray) -> np.ndarray:
    n, n_pes = flops.size, bw.size
    dur = np.empty((n, n_pes))
    for i in range(n):
        for p in range(n_pes):
            t = thr[type_idx[i], p]
            if t <= 0:
                dur[i, p] = np.inf
            elif p == npu:
                dur[i, p] = ovh[p] + npu_us[i]
            else:
                dur[i, p] = ovh[p] + max(flops[i] / t, nbytes[i] / bw[p])
    return dur


def op_times(sp: SocPlatform, workload: SocWorkload, thr: np.ndarray, type_idx: np.ndarray,
             npu_us: np.ndarray | None) -> np.ndarray:
    """(n_ops, n_pes) op times in µs (``inf``: the PE cannot run the op): the roofline
    ``overhead + max(flops / throughput, bytes / bandwidth)`` of
    :func:`~mlsysgym.simulators.multicore.roofline_times`, and on the NPU its overhead plus
    ``npu_us`` (the accelerator model's time)."""
    inst = workload.instance
    pes = sp.platform.pes
    bw = np.array([pe.bandwidth_gbps for pe in pes]) * 1e3
    ovh = np.array([pe.overhead_us for pe in pes])
    npu = sp.npu_index if npu_us is not None else -1
    return _roofline_kernel(inst.op_flops, inst.op_bytes, type_idx, thr, bw, ovh, npu,
                            npu_us if npu_us is not None else np.zeros(0))


@dataclass(frozen=True)
class WorkloadRun:
    """One workload mapped on one platform: ``latency_us`` (the makespan of a graph, the mean
    job completion time of a stream), ``makespan_us``, ``energy_uj``, per-PE ``busy_us``, and
    the schedule (``assign``, ``start_us``, ``finish_us`` per op)."""

    name: str
    latency_us: float
    makespan_us: float
    energy_uj: float
    busy_us: np.ndarray
    assign: np.ndarray
    start_us: np.ndarray
    finish_us: np.ndarray


def _latency(workload: SocWorkload, finish: np.ndarray) -> float:
    if not workload.stream:
        return float(finish.max())
    inst = workload.instance
    job_fin = np.full(inst.n_jobs, -np.inf)
    np.maximum.at(job_fin, inst.job_of, finish)
    return float(np.mean(job_fin - inst.job_arrival_us))


def local_search(workload: SocWorkload, dur: np.ndarray, comm: np.ndarray, order: np.ndarray,
                 assign: np.ndarray, budget: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Improve an assignment by single-op moves: each of ``budget`` tries moves one random op
    (among those with more than one capable PE) to another capable PE, re-times the whole
    schedule in ``order`` with insertion, and keeps the move if the latency does not get worse.
    Returns (assignment, start_us) of the best schedule found."""
    dag = workload.dag
    cap = np.isfinite(dur)
    movable = np.flatnonzero(cap.sum(1) > 1)
    best_a, best_s = place(order, dur, comm, dag, fixed=assign)
    best = _latency(workload, best_s + dur[np.arange(dag.n_ops), best_a])
    if movable.size == 0:
        return best_a, best_s
    for _ in range(int(budget)):
        i = int(movable[rng.integers(movable.size)])
        options = np.flatnonzero(cap[i])
        options = options[options != best_a[i]]
        cand = best_a.copy()
        cand[i] = int(options[rng.integers(options.size)])
        a, s = place(order, dur, comm, dag, fixed=cand)
        val = _latency(workload, s + dur[np.arange(dag.n_ops), a])
        if val <= best:
            best, best_a, best_s = val, a, s
    return best_a, best_s


def map_workload(sp: SocPlatform, workload: SocWorkload, dur: np.ndarray, mapping: str = "heft",
                 budget: int = 200, rng: np.random.Generator | None = None) -> WorkloadRun:
    """Map ``workload`` with op times ``dur`` on ``sp`` (HEFT, or HEFT + local search) and
    measure the run."""
    inst = workload.instance
    ic = sp.platform.interconnect
    comm = ic.latency_us + inst.edge_bytes / (ic.bandwidth_gbps * 1e3)
    assign, start, order = heft_arrays(dur, comm, workload.dag)
    if mapping == "search":
        assign, start = local_search(workload, dur, comm, order, assign, budget,
                                     rng if rng is not None else np.random.default_rng(0))
    d = dur[np.arange(inst.n_ops), assign]
    finish = start + d
    makespan = float(finish.max())
    busy = np.bincount(assign, weights=d, minlength=dur.shape[1])
    cross = assign[inst.edge_src] != assign[inst.edge_dst]
    moved = float(inst.edge_bytes[cross].sum())
    energy = (float(busy @ sp.active_power_w) + float((makespan - busy) @ sp.idle_power_w)
              + moved * ic.energy_pj_per_byte * 1e-6 + float(inst.op_bytes.sum()) * sp.byte_pj * 1e-6
              + sp.static_w * makespan)
    return WorkloadRun(workload.name, _latency(workload, finish), makespan, energy, busy,
                       assign, start, finish)


def map_set(sp: SocPlatform, wset: WorkloadSet, npu_us: Sequence[np.ndarray | None],
            mapping: str = "heft", budget: int = 200, seed: int = 0) -> list[WorkloadRun]:
    """Every workload of a set mapped on one platform (``npu_us[k]``: workload k's NPU op
    times for this platform, None without an NPU)."""
    thr = throughput_table(sp, wset.type_names)
    rng = np.random.default_rng(seed)
    return [map_workload(sp, w, op_times(sp, w, thr, idx, nt), mapping, budget, rng)
            for w, idx, nt in zip(wset.workloads, wset.type_idx, npu_us)]
