"""Map one workload onto one SoC platform and measure it.

- :func:`op_times` — the (ops × PEs) time matrix: the roofline of
  :func:`~mlsysgym.simulators.multicore.roofline_times` for CPU / GPU / DSP cores (the same
  formula, from a per-design throughput table shared by the workloads of a set) and the
  accelerator model's per-op cycles for the NPU (:func:`npu_times`, batched over designs);
- :func:`map_workload` — HEFT (:func:`~mlsysgym.simulators.multicore.heft.heft_arrays`), or
  with ``mapping="search"`` HEFT (on a stream the better of HEFT and HEFT-FIFO, which lists
  jobs by arrival) followed by a budgeted local search over its assignment
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


_COLUMNS: dict[tuple[tuple[str, float, int], tuple[str, ...]], np.ndarray] = {}


def throughput_table(sp: SocPlatform, type_names: tuple[str, ...]) -> np.ndarray:
    """(n_types, n_pes) throughput in FLOP/µs (0: cannot run); one column per PE (kind, clock,
    width), memoized across designs."""
    cols = []
    for pe, pe_key in zip(sp.platform.pes, sp.pe_keys):
        key = (pe_key, type_names)
        col = _COLUMNS.get(key)
        if col is None:
            if len(_COLUMNS) > 4096:
                _COLUMNS.clear()
            col = _COLUMNS[key] = np.array([pe.throughput(t) for t in type_names]) * 1e3
        cols.append(col)
    return np.stack(cols, axis=1)


def npu_times(npu: Any, workload: SocWorkload) -> np.ndarray:
    """(n_designs, n_ops) each op's time on each NPU design in µs from the accelerator model's
    cycles (ops the model gives no work take 0 cycles; the overhead is added by op_times).
    ``npu``: the NPU designs (dicts) or their :class:`~mlsysgym.simulators.accelerator.DesignArrays`."""
    from mlsysgym.simulators.accelerator import DesignArrays, designs_to_arrays, simulate_items

    arrays = npu if isinstance(npu, DesignArrays) else designs_to_arrays(list(npu))
    out = np.zeros((len(arrays), workload.n_ops))
    for ls, starts in workload.npu_parts:
        cycles = simulate_items(arrays, ls)["cycles"]  # (D, L)
        per_op = np.zeros((ls.num_ops, len(arrays)))
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


@numba.njit(cache=True)
def _run_kernel(dur: np.ndarray, assign: np.ndarray, start: np.ndarray, job_of: np.ndarray,
                arrival: np.ndarray, stream: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """(finish per op, busy time per PE, latency): the makespan of a graph, the mean job
    completion time of a stream."""
    n, n_pes = dur.shape
    finish = np.empty(n)
    busy = np.zeros(n_pes)
    job_fin = np.full(arrival.size, -np.inf)
    for i in range(n):
        d = dur[i, assign[i]]
        finish[i] = start[i] + d
        busy[assign[i]] += d
        job_fin[job_of[i]] = max(job_fin[job_of[i]], finish[i])
    if not stream:
        return finish, busy, finish.max()
    return finish, busy, np.mean(job_fin - arrival)


def _latency(workload: SocWorkload, dur: np.ndarray, assign: np.ndarray, start: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, float]:
    inst = workload.instance
    return _run_kernel(dur, assign, start, inst.job_of, inst.job_arrival_us, workload.stream)


@numba.njit(cache=True)
def _critical_ops(assign: np.ndarray, start: np.ndarray, finish: np.ndarray, prev_on_pe: np.ndarray,
                  in_ptr: np.ndarray, in_edge: np.ndarray, src: np.ndarray, comm: np.ndarray
                  ) -> np.ndarray:
    """The ops of a critical chain: from the last-finishing op back through whichever input
    (with its transfer) or previous op on the same PE ends exactly when the op starts."""
    on = np.zeros(assign.size, np.bool_)
    i = int(np.argmax(finish))
    while i >= 0:
        on[i] = True
        nxt = -1
        for q in range(in_ptr[i], in_ptr[i + 1]):
            e = in_edge[q]
            s = src[e]
            arrive = finish[s] + (comm[e] if assign[s] != assign[i] else 0.0)
            if abs(arrive - start[i]) <= 1e-9 * max(1.0, start[i]):
                nxt = s
                break
        if nxt < 0:
            j = prev_on_pe[i]
            if j >= 0 and abs(finish[j] - start[i]) <= 1e-9 * max(1.0, start[i]):
                nxt = j
        i = nxt
    return np.flatnonzero(on)


def _prev_on_pe(assign: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Each op's predecessor on its PE (by start time), -1 for the first."""
    order = np.lexsort((start, assign))
    prev = np.full(assign.size, -1, np.int64)
    same = assign[order][1:] == assign[order][:-1]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def local_search(workload: SocWorkload, dur: np.ndarray, comm: np.ndarray, order: np.ndarray,
                 assign: np.ndarray, budget: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Improve an assignment by moves. Each of ``budget`` tries moves to another PE that can
    run it either (probability 0.8) a segment of 1–16 consecutive ops of the current critical
    chain (those of them that PE can run), or one random op with a choice of PE; it re-times the whole schedule in ``order`` with insertion,
    and keeps the move if the latency does not get worse. Returns (assignment, start_us) of
    the best schedule found (HEFT's own when no move helps)."""
    dag = workload.dag
    cap = np.isfinite(dur)
    movable = cap.sum(1) > 1
    if not movable.any():
        return place(order, dur, comm, dag, fixed=assign)
    best_a, best_s = place(order, dur, comm, dag, fixed=assign)
    best_f, _, best = _latency(workload, dur, best_a, best_s)
    critical = None
    for _ in range(int(budget)):
        if critical is None:
            crit = _critical_ops(best_a, best_s, best_f, _prev_on_pe(best_a, best_s), dag.in_ptr,
                                 dag.in_edge, dag.edge_src, comm)
            critical = crit[movable[crit]]
        on_chain = critical.size > 0 and rng.random() < 0.8
        pool = critical if on_chain else np.flatnonzero(movable)
        j = int(rng.integers(pool.size))
        i = int(pool[j])
        options = np.flatnonzero(cap[i])
        options = options[options != best_a[i]]
        p = int(options[rng.integers(options.size)])
        cand = best_a.copy()
        # a segment of 1-16 consecutive chain ops (those that can run on p) moves together:
        # moving one op of a chain alone usually costs two transfers
        seg = pool[j:j + int(rng.integers(1, 17))] if on_chain else pool[j:j + 1]
        cand[seg[cap[seg, p]]] = p
        a, s = place(order, dur, comm, dag, fixed=cand)
        f, _, val = _latency(workload, dur, a, s)
        if val <= best:
            if val < best:
                critical = None
            best, best_a, best_s, best_f = val, a, s, f
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
        if workload.stream:  # start from the better of HEFT and HEFT-FIFO (jobs by arrival)
            fifo = heft_arrays(dur, comm, workload.dag, by_arrival=True)
            if _latency(workload, dur, fifo[0], fifo[1])[2] < \
                    _latency(workload, dur, assign, start)[2]:
                assign, start, order = fifo
        assign, start = local_search(workload, dur, comm, order, assign, budget,
                                     rng if rng is not None else np.random.default_rng(0))
    finish, busy, latency = _latency(workload, dur, assign, start)
    makespan = float(finish.max())
    moved = float(inst.edge_bytes @ (assign[inst.edge_src] != assign[inst.edge_dst]))
    energy = (float(busy @ sp.active_power_w) + float((makespan - busy) @ sp.idle_power_w)
              + moved * ic.energy_pj_per_byte * 1e-6 + workload.total_bytes * sp.byte_pj * 1e-6
              + sp.static_w * makespan)
    return WorkloadRun(workload.name, float(latency), makespan, energy, busy, assign, start,
                       finish)


def map_set(sp: SocPlatform, wset: WorkloadSet, npu_us: Sequence[np.ndarray | None],
            mapping: str = "heft", budget: int = 200, seed: int = 0) -> list[WorkloadRun]:
    """Every workload of a set mapped on one platform (``npu_us[k]``: workload k's NPU op
    times for this platform, None without an NPU)."""
    thr = throughput_table(sp, wset.type_names)
    rng = np.random.default_rng(seed)
    return [map_workload(sp, w, op_times(sp, w, thr, idx, nt), mapping, budget, rng)
            for w, idx, nt in zip(wset.workloads, wset.type_idx, npu_us)]
