"""Schedules: an op → PE assignment with start times, built from a dispatch order
(:func:`schedule_from_order`), and the insertion policy list schedulers use (:func:`earliest_start`)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.simulators.multicore.errors import InvalidScheduleError
from mlsysgym.simulators.multicore.instance import SchedulingInstance


@dataclass(frozen=True, eq=False)
class Schedule:
    """An op → PE assignment with start times (µs). ``order`` is the dispatch order that built it
    (op indices), which replays in the scheduling env use; None means "by start time"."""

    assignment: np.ndarray
    start_us: np.ndarray
    order: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignment", np.asarray(self.assignment, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "start_us", np.asarray(self.start_us, dtype=np.float64).reshape(-1))
        if self.order is not None:
            object.__setattr__(self, "order", np.asarray(self.order, dtype=np.int64).reshape(-1))

    def finish_us(self, problem: SchedulingInstance) -> np.ndarray:
        """Finish time of every op under ``problem``'s op times."""
        a = np.clip(self.assignment, 0, problem.n_pes - 1)
        return self.start_us + problem.durations_us[np.arange(problem.n_ops), a]

    def makespan_us(self, problem: SchedulingInstance) -> float:
        return float(np.max(self.finish_us(problem)))

    def dispatch_order(self, problem: SchedulingInstance) -> np.ndarray:
        """``order`` if set, else ops by (start time, topological position)."""
        if self.order is not None:
            return self.order
        pos = np.empty(problem.n_ops, np.int64)
        pos[problem.topo_order] = np.arange(problem.n_ops)
        return np.lexsort((pos, self.start_us))

    def to_dict(self, problem: SchedulingInstance) -> dict[str, Any]:
        """Op name → {pe, start_us, finish_us}."""
        fin = self.finish_us(problem)
        return {problem.op_names[i]: {"pe": problem.pe_names[int(self.assignment[i])],
                                      "start_us": float(self.start_us[i]), "finish_us": float(fin[i])}
                for i in range(problem.n_ops)}


def schedule_from_order(problem: SchedulingInstance, assignment: Sequence[int] | np.ndarray,
                        order: Sequence[int] | np.ndarray | None = None) -> Schedule:
    """Start every op as early as its release, its inputs (incl. transfers) and the previous op on
    its PE allow.

    The sequence of ops on each PE is their sequence in ``order`` (default: topological order;
    zero-length ops take no PE time and are left out of the sequence);
    raises InvalidScheduleError when that sequence contradicts the dependencies (a deadlock).
    """
    n, P = problem.n_ops, problem.n_pes
    a = np.asarray(assignment, dtype=np.int64).reshape(-1)
    if a.shape != (n,) or a.min() < 0 or a.max() >= P:
        raise InvalidScheduleError(f"assignment must give one PE index in [0, {P}) for each of {n} ops")
    if not problem.capable[np.arange(n), a].all():
        i = int(np.flatnonzero(~problem.capable[np.arange(n), a])[0])
        raise InvalidScheduleError(f"op {problem.op_names[i]!r} ({problem.op_types[i]}) cannot run on "
                                   f"PE {problem.pe_names[a[i]]!r}")
    seq = problem.topo_order if order is None else np.asarray(order, dtype=np.int64).reshape(-1)
    if sorted(seq.tolist()) != list(range(n)):
        raise InvalidScheduleError(f"order must list each of the {n} op indices exactly once")
    # chain edges: consecutive ops of positive length on one PE (a zero-length op occupies nothing)
    dur = problem.durations_us[np.arange(n), a]
    prev_on_pe = np.full(n, -1, np.int64)
    last = np.full(P, -1, np.int64)
    for i in seq.tolist():
        if dur[i] > 0:
            prev_on_pe[i] = last[a[i]]
            last[a[i]] = i
    src, dst, comm = problem.edge_src.tolist(), problem.edge_dst.tolist(), problem.edge_comm_us.tolist()
    preds: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for s, d, c in zip(src, dst, comm):
        preds[d].append((s, c if a[s] != a[d] else 0.0))
        succs[s].append(d)
    for i in range(n):
        if prev_on_pe[i] >= 0:
            preds[i].append((int(prev_on_pe[i]), 0.0))
            succs[int(prev_on_pe[i])].append(i)
    indeg = [len(p) for p in preds]
    stack = [i for i in range(n) if indeg[i] == 0]
    start = np.zeros(n)
    finish = np.zeros(n)
    release = problem.release_us.tolist()
    done = 0
    while stack:
        i = stack.pop()
        done += 1
        start[i] = max((finish[s] + c for s, c in preds[i]), default=0.0)
        start[i] = max(start[i], release[i])
        finish[i] = start[i] + dur[i]
        for j in succs[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                stack.append(j)
    if done != n:
        raise InvalidScheduleError("the per-PE op order contradicts the dependencies (deadlock); "
                                   "order must be consistent with a topological order")
    return Schedule(assignment=a, start_us=start, order=seq)


def earliest_start(intervals: Sequence[tuple[float, float]], ready_us: float, duration_us: float) -> float:
    """Insertion policy: the earliest time ≥ ``ready_us`` at which a PE whose busy ``intervals``
    (sorted, disjoint (start, finish) pairs) has an idle gap of ``duration_us``. A zero-length op
    fits anywhere."""
    t = ready_us
    if duration_us <= 0:
        return t
    # intervals before the last one starting at or before t end by t: skip them (bisect)
    for k in range(max(bisect.bisect_right(intervals, (t, math.inf)) - 1, 0), len(intervals)):
        s0, f0 = intervals[k]
        if f0 <= t:
            continue
        if s0 >= t + duration_us:
            break
        t = f0
    return t
