"""List scheduling on heterogeneous PEs: HEFT and CPOP (Topcuoglu, Hariri & Wu, IEEE TPDS 2002).

- :func:`upward_rank` / :func:`downward_rank` — the ranks of the paper: mean time over capable
  PEs plus the transfer cost along the longest path to the exit (upward) or from the entry
  (downward);
- :func:`heft` — ops by decreasing upward rank, each on the PE of earliest finish time
  (insertion into idle gaps, lowest PE index on ties), at or after its release time;
- :func:`cpop` — a ready-list scheduler by upward + downward rank whose critical-path ops share
  the one PE that runs the whole path fastest;
- :func:`heft_arrays` — HEFT on bare arrays (op × PE times, transfer times, a :class:`Dag`),
  no :class:`SchedulingInstance` needed: what a platform search calls once per design.

The rank recursion and the placement loop are compiled with Numba (the first call in a fresh
environment compiles them, about a second; later processes load them from Numba's cache), so a
1,000-op HEFT takes tens of microseconds. They do in the same order the same floating-point
operations as the plain Python versions, so schedules are identical to them.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numba
import numpy as np
from mlsysgym.simulators.multicore.execution import validate
from mlsysgym.simulators.multicore.instance import SchedulingInstance
from mlsysgym.simulators.multicore.schedule import Schedule, earliest_start

__all__ = ["Dag", "cpop", "downward_rank", "heft", "heft_arrays", "mean_durations",
           "topo_position", "upward_rank"]


# ---- structure (independent of the platform) -------------------------------------------------
@dataclass(frozen=True)
class Dag:
    """The dependency structure of a workload, in the arrays the compiled kernels read.

    ``topo`` is a topological order, ``pos[i]`` op i's place in it; ``out_ptr``/``out_edge``
    list each op's outgoing edge indices (CSR), ``in_ptr``/``in_edge`` its incoming ones.
    ``release_us`` and ``job_of`` per op (0 and one job for a single graph).
    """

    n_ops: int
    edge_src: np.ndarray
    edge_dst: np.ndarray
    topo: np.ndarray
    pos: np.ndarray
    out_ptr: np.ndarray
    out_edge: np.ndarray
    in_ptr: np.ndarray
    in_edge: np.ndarray
    release_us: np.ndarray
    job_of: np.ndarray

    @classmethod
    def of(cls, problem: SchedulingInstance) -> Dag:
        """The structure of a compiled scheduling instance."""
        n = problem.n_ops
        src, dst = problem.edge_src, problem.edge_dst
        out_edge = np.argsort(src, kind="stable")
        in_edge = np.argsort(dst, kind="stable")
        topo = np.asarray(problem.topo_order, np.int64)
        pos = np.empty(n, np.int64)
        pos[topo] = np.arange(n)
        return cls(n_ops=n, edge_src=src, edge_dst=dst, topo=topo, pos=pos,
                   out_ptr=np.searchsorted(src[out_edge], np.arange(n + 1)).astype(np.int64),
                   out_edge=out_edge.astype(np.int64),
                   in_ptr=np.searchsorted(dst[in_edge], np.arange(n + 1)).astype(np.int64),
                   in_edge=in_edge.astype(np.int64), release_us=problem.release_us,
                   job_of=problem.job_of)

    def arrival_order_key(self) -> np.ndarray:
        """Per op, its job's arrival (the earliest release of the job's ops)."""
        arr = np.full(int(self.job_of.max()) + 1, np.inf)
        np.minimum.at(arr, self.job_of, self.release_us)
        return arr[self.job_of]


# ---- compiled kernels -------------------------------------------------------------------------
@numba.njit(cache=True)
def _upward_rank_kernel(w: np.ndarray, comm: np.ndarray, topo: np.ndarray, out_ptr: np.ndarray,
                        out_edge: np.ndarray, dst: np.ndarray) -> np.ndarray:
    rank = w.copy()
    for k in range(topo.size - 1, -1, -1):
        i = topo[k]
        if out_ptr[i + 1] > out_ptr[i]:
            best = -np.inf
            for q in range(out_ptr[i], out_ptr[i + 1]):
                e = out_edge[q]
                v = comm[e] + rank[dst[e]]
                best = max(best, v)
            rank[i] = w[i] + best
    return rank


@numba.njit(cache=True)
def _earliest_start(starts: np.ndarray, ends: np.ndarray, cnt: int, ready: float, dur: float,
                    limit: float) -> float:
    """:func:`~mlsysgym.simulators.multicore.schedule.earliest_start` on one PE's sorted
    busy intervals ``starts[:cnt]``, ``ends[:cnt]``; gives up (returning a start whose finish is
    ≥ ``limit``) once the op could no longer finish before ``limit``."""
    t = ready
    if dur <= 0:
        return t
    k0 = np.searchsorted(starts[:cnt], t, side="right") - 1
    for k in range(max(k0, 0), cnt):
        if t + dur >= limit:
            return t
        if ends[k] <= t:
            continue
        if starts[k] >= t + dur:
            break
        t = ends[k]
    return t


@numba.njit(cache=True)
def _place_kernel(order: np.ndarray, dur: np.ndarray, comm: np.ndarray, src: np.ndarray,
                  in_ptr: np.ndarray, in_edge: np.ndarray, release: np.ndarray,
                  fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place the ops in ``order``, each on its earliest-finish PE (``fixed[i] >= 0``: on that
    PE), with insertion; returns (assignment, start).

    An op's data-ready time on PE p is the latest of its inputs' arrivals: a producer on p
    delivers at its finish, one elsewhere at finish + transfer. One pass over the inputs keeps
    the two latest arrivals from different PEs (with transfer) and each PE's latest finish, so
    every PE's ready time costs O(1) instead of a pass over the inputs."""
    n, n_pes = dur.shape
    assign = np.full(n, -1, np.int64)
    start = np.zeros(n)
    finish = np.zeros(n)
    starts = np.empty((n_pes, n))
    ends = np.empty((n_pes, n))
    cnt = np.zeros(n_pes, np.int64)
    same = np.zeros(n_pes)  # latest finish of the op's producers on each PE (0: none)
    for i in order:
        top1, top1_pe, top2 = 0.0, -1, 0.0  # latest arrivals with transfer, from 2 distinct PEs
        for q in range(in_ptr[i], in_ptr[i + 1]):
            e = in_edge[q]
            s = src[e]
            ps = assign[s]
            same[ps] = max(same[ps], finish[s])
            v = finish[s] + comm[e]
            if ps == top1_pe:
                top1 = max(top1, v)
            elif v > top1:
                top1, top1_pe, top2 = v, ps, top1
            else:
                top2 = max(top2, v)
        best_f, best_p, best_s = np.inf, -1, 0.0
        for p in range(n_pes):
            d = dur[i, p]
            if not np.isfinite(d) or (fixed[i] >= 0 and fixed[i] != p):
                continue
            ready = max(top2 if top1_pe == p else top1, same[p], release[i])
            if ready + d >= best_f:  # cannot beat the best PE so far (starts only get later)
                continue
            s0 = _earliest_start(starts[p], ends[p], cnt[p], ready, d, best_f)
            if s0 + d < best_f:
                best_f, best_p, best_s = s0 + d, p, s0
        for q in range(in_ptr[i], in_ptr[i + 1]):
            same[assign[src[in_edge[q]]]] = 0.0
        assign[i], start[i], finish[i] = best_p, best_s, best_s + dur[i, best_p]
        d = dur[i, best_p]
        if d > 0:
            p = best_p
            k = np.searchsorted(starts[p, :cnt[p]], best_s, side="right")
            for m in range(cnt[p], k, -1):
                starts[p, m], ends[p, m] = starts[p, m - 1], ends[p, m - 1]
            starts[p, k], ends[p, k] = best_s, best_s + d
            cnt[p] += 1
    return assign, start


@numba.njit(cache=True)
def _mean_finite_kernel(dur: np.ndarray) -> np.ndarray:
    n, n_pes = dur.shape
    out = np.empty(n)
    for i in range(n):
        total, k = 0.0, 0
        for p in range(n_pes):
            if np.isfinite(dur[i, p]):
                total += dur[i, p]
                k += 1
        out[i] = total / k if k else np.nan
    return out


# ---- ranks ------------------------------------------------------------------------------------
def mean_durations(durations_us: np.ndarray) -> np.ndarray:
    """(n_ops,) each op's mean time over the PEs that can run it (``inf`` entries excluded)."""
    return _mean_finite_kernel(np.ascontiguousarray(durations_us, dtype=np.float64))


def upward_rank_arrays(durations_us: np.ndarray, edge_comm_us: np.ndarray, dag: Dag) -> np.ndarray:
    """:func:`upward_rank` on bare arrays."""
    return _upward_rank_kernel(mean_durations(durations_us), np.asarray(edge_comm_us, np.float64),
                               dag.topo, dag.out_ptr, dag.out_edge, dag.edge_dst)


def upward_rank(problem: SchedulingInstance) -> np.ndarray:
    """rank_u(i) = w̄_i + max over successors j of (c̄_ij + rank_u(j)); w̄ = mean time over
    capable PEs, c̄ = the cross-PE transfer time of the edge."""
    return upward_rank_arrays(problem.durations_us, problem.edge_comm_us, Dag.of(problem))


def downward_rank(problem: SchedulingInstance) -> np.ndarray:
    """rank_d(j) = max over predecessors i of (rank_d(i) + w̄_i + c̄_ij); 0 for entry ops."""
    w = mean_durations(problem.durations_us)
    rank = np.zeros(problem.n_ops)
    for j in problem.topo_order:
        e = problem.in_edges[j]
        if e.size:
            i = problem.edge_src[e]
            rank[j] = np.max(rank[i] + w[i] + problem.edge_comm_us[e])
    return rank


def topo_position(problem: SchedulingInstance) -> np.ndarray:
    """(n_ops,) each op's place in the instance's topological order."""
    pos = np.empty(problem.n_ops, np.int64)
    pos[problem.topo_order] = np.arange(problem.n_ops)
    return pos


# ---- HEFT -------------------------------------------------------------------------------------
def heft_order(durations_us: np.ndarray, edge_comm_us: np.ndarray, dag: Dag,
               by_arrival: bool = False) -> np.ndarray:
    """HEFT's op list: decreasing upward rank, ties by topological position; ``by_arrival``:
    by (job arrival, job index) first."""
    rank = upward_rank_arrays(durations_us, edge_comm_us, dag)
    keys = (dag.pos, -rank) if not by_arrival else \
        (dag.pos, -rank, dag.job_of, dag.arrival_order_key())
    return np.lexsort(keys)


def place(order: np.ndarray, durations_us: np.ndarray, edge_comm_us: np.ndarray, dag: Dag,
          fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """List-schedule the ops in ``order`` (every op listed after its predecessors): each on its
    earliest-finish PE with insertion (``fixed[i] >= 0`` forces op i onto that PE); returns
    (assignment, start_us)."""
    fix = np.full(dag.n_ops, -1, np.int64) if fixed is None else np.asarray(fixed, np.int64)
    return _place_kernel(np.asarray(order, np.int64), np.asarray(durations_us, np.float64),
                         np.asarray(edge_comm_us, np.float64), dag.edge_src, dag.in_ptr,
                         dag.in_edge, np.asarray(dag.release_us, np.float64), fix)


def heft_arrays(durations_us: np.ndarray, edge_comm_us: np.ndarray, dag: Dag,
                by_arrival: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HEFT on bare arrays: (assignment, start_us, order). ``durations_us`` is (n_ops, n_pes)
    with ``inf`` where a PE cannot run an op (every op needs one finite entry)."""
    order = heft_order(durations_us, edge_comm_us, dag, by_arrival)
    assign, start = place(order, durations_us, edge_comm_us, dag)
    return assign, start, order


def heft(problem: SchedulingInstance, by_arrival: bool = False) -> Schedule:
    """HEFT: ops by decreasing upward rank (ties: topological position), each placed on the PE
    of earliest finish time at or after its release, with insertion. ``by_arrival`` lists the
    ops by (job arrival, job index) first: FIFO over the jobs of a stream. ``order`` of the
    result is that list."""
    assign, start, order = heft_arrays(problem.durations_us, problem.edge_comm_us,
                                       Dag.of(problem), by_arrival)
    sched = Schedule(assign, start, order)
    validate(problem, sched).raise_if_invalid()
    return sched


# ---- CPOP -------------------------------------------------------------------------------------
class _Placer:
    """Incremental list-scheduling state for CPOP (the same insertion rule as HEFT)."""

    def __init__(self, problem: SchedulingInstance) -> None:
        self.p = problem
        self.dur = problem.durations_us.tolist()
        self.cap = problem.capable
        self.release = problem.release_us.tolist()
        self.preds: list[list[tuple[int, float]]] = [[] for _ in range(problem.n_ops)]
        for s, d, c in zip(problem.edge_src.tolist(), problem.edge_dst.tolist(),
                           problem.edge_comm_us.tolist()):
            self.preds[d].append((s, c))
        self.assign = [-1] * problem.n_ops
        self.start = [0.0] * problem.n_ops
        self.finish = [0.0] * problem.n_ops
        self.intervals: list[list[tuple[float, float]]] = [[] for _ in range(problem.n_pes)]
        self.order: list[int] = []

    def start_on(self, i: int, p: int) -> float:
        ready = max((self.finish[s] + (c if self.assign[s] != p else 0.0) for s, c in self.preds[i]),
                    default=0.0)
        return earliest_start(self.intervals[p], max(ready, self.release[i]), self.dur[i][p])

    def best_pe(self, i: int) -> tuple[int, float]:
        """The capable PE with the earliest finish (lowest index on ties) and the start there."""
        best = (math.inf, -1, 0.0)
        for p in np.flatnonzero(self.cap[i]).tolist():
            s = self.start_on(i, p)
            if s + self.dur[i][p] < best[0]:
                best = (s + self.dur[i][p], p, s)
        return best[1], best[2]

    def place(self, i: int, p: int, s: float) -> None:
        import bisect

        d = self.dur[i][p]
        self.assign[i], self.start[i], self.finish[i] = p, s, s + d
        if d > 0:
            bisect.insort(self.intervals[p], (s, s + d))
        self.order.append(i)

    def schedule(self) -> Schedule:
        sched = Schedule(np.array(self.assign), np.array(self.start), np.array(self.order))
        validate(self.p, sched).raise_if_invalid()
        return sched


def _critical_path(problem: SchedulingInstance, prio: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(n_ops,) bool: the ops of the critical path, walked from the entry op of highest priority."""
    n = problem.n_ops
    tol = 1e-9 * max(1.0, float(prio.max()))
    entries = np.flatnonzero(np.bincount(problem.edge_dst, minlength=n) == 0)
    cur = int(entries[np.lexsort((pos[entries], -prio[entries]))[0]])
    cp_len = prio[cur]
    on_cp = np.zeros(n, bool)
    while True:
        on_cp[cur] = True
        succ = problem.edge_dst[problem.out_edges[cur]]
        nxt = succ[np.abs(prio[succ] - cp_len) <= tol]
        if nxt.size == 0:
            return on_cp
        cur = int(nxt[np.argmin(pos[nxt])])


def cpop(problem: SchedulingInstance) -> Schedule:
    """CPOP: a ready-list scheduler by priority rank_u + rank_d; the ops of the critical path
    (priority equal to the entry op's) run on the PE with the least total time for them
    (an op that PE cannot run counts at its fastest time and is placed like the others), every
    other op on its earliest-finish PE (insertion). ``order`` of the result is the dispatch list."""
    prio = upward_rank(problem) + downward_rank(problem)
    pos = topo_position(problem)
    n = problem.n_ops
    on_cp = _critical_path(problem, prio, pos)
    cp_ops = np.flatnonzero(on_cp)
    # the CP processor: least total time over the CP ops, counting an op it cannot run at its
    # fastest time elsewhere (such ops are placed by earliest finish time)
    d_cp = problem.durations_us[cp_ops]
    cost = np.where(problem.capable[cp_ops], d_cp, problem.min_durations_us[cp_ops, None]).sum(0)
    cp_pe = int(np.argmin(cost))
    placer = _Placer(problem)
    remaining = np.bincount(problem.edge_dst, minlength=n).tolist()
    succs = [problem.edge_dst[e].tolist() for e in problem.out_edges]
    heap = [(-prio[i], pos[i], int(i)) for i in range(n) if remaining[i] == 0]
    heapq.heapify(heap)
    while heap:
        _, _, i = heapq.heappop(heap)
        if on_cp[i] and problem.capable[i, cp_pe]:
            placer.place(i, cp_pe, placer.start_on(i, cp_pe))
        else:
            p, s = placer.best_pe(i)
            placer.place(i, p, s)
        for j in succs[i]:
            remaining[j] -= 1
            if remaining[j] == 0:
                heapq.heappush(heap, (-prio[j], pos[j], j))
    return placer.schedule()
