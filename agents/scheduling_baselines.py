"""Baselines for kernel scheduling on heterogeneous PEs: HEFT, CPOP and the CP-SAT optimum.

- :func:`heft` — Heterogeneous Earliest Finish Time (Topcuoglu, Hariri & Wu, IEEE TPDS 2002):
  ops by decreasing upward rank (mean time over capable PEs + mean transfer cost along the
  longest path to the end), each on the PE giving it the earliest finish time, with insertion.
- :func:`cpop` — the critical-path list scheduler of the same paper (Critical Path On a
  Processor): ready ops by upward + downward rank; ops on the critical path go to the one PE
  that runs the whole path fastest, the others to their earliest-finish PE.
- :func:`cpsat_schedule` — the exact optimum with OR-Tools CP-SAT: op → PE with optional
  intervals, precedences with the transfer delay when producer and consumer are on different
  PEs, start ≥ release, no overlap per PE, minimum makespan; status, lower bound and gap when
  the time limit hits.

HEFT and CPOP (and their ranks) live in :mod:`mlsysgym.simulators.multicore.heft`, below the
agents, so a platform search can map workloads with them; they are re-exported here.

All three respect release times (job streams, :mod:`mlsysgym.simulators.streams`): an op starts
no earlier than its ``release_us``; on a stream, ``heft(problem, by_arrival=True)`` lists the ops
job by job in arrival order (FIFO over jobs, upward rank within a job).

Every function returns a :class:`~mlsysgym.simulators.multicore.Schedule` the simulator accepts;
:func:`schedule_to_actions` plays a schedule in
:class:`~mlsysgym.envs.kernel_scheduling.KernelSchedulingEnv` and gives its action sequence.

As agents of the one API (``search("heft" | "cpop" | "cpsat", problem, budget, seed, **hp)`` on a
``scheduling`` problem, :mod:`mlsysgym.agents.scheduling_problem`), each schedule is scored as
the env episode that replays it; ``cpsat`` also reports its proof (``status`` "optimal" or
"feasible", ``bound`` = the best reward possible, ``info["lower_bound_us"]``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.scheduling_problem import scheduling_episodes, submit_schedule
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
from mlsysgym.simulators.multicore import (
    Schedule,
    SchedulingInstance,
    critical_path_lb,
    schedule_from_order,
    validate,
)
from mlsysgym.simulators.multicore.heft import (
    cpop,
    downward_rank,
    heft,
    upward_rank,
)
from mlsysgym.simulators.multicore.heft import topo_position as _topo_position
from mlsysgym.simulators.streams import job_metrics, mean_jct_lower_bound

__all__ = ["CPSAT_HYPERPARAMETERS", "HEFT_HYPERPARAMETERS", "ReplayError", "cpop",
           "cpsat_schedule", "downward_rank", "heft", "schedule_to_actions", "upward_rank"]


class ReplayError(MlsysgymError):
    """A schedule cannot be replayed in the env (wrong workload, op outside the ready window)."""


# ---- CP-SAT ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exact:
    """What :func:`cpsat_schedule` found.

    ``status`` is CP-SAT's (OPTIMAL, FEASIBLE, ...); ``optimal`` means proven optimal for the
    problem's own times (the solver's time grid ``resolution_us`` represents them exactly);
    ``lower_bound_us`` is a valid makespan lower bound and ``gap = 1 − lower_bound / makespan``.
    ``from_heft`` is True when no solver solution beat HEFT, whose schedule is then returned.

    With ``objective="jct"`` (job streams) ``optimal``, ``lower_bound_us`` and ``gap`` are about
    the mean job completion time ``mean_jct_us`` instead of the makespan, and the HEFT reference
    is the better by mean JCT of HEFT and HEFT-FIFO (``heft_mean_jct_us``).
    """

    schedule: Schedule
    status: str
    optimal: bool
    makespan_us: float
    lower_bound_us: float
    gap: float
    resolution_us: float
    exact_resolution: bool
    heft_makespan_us: float
    from_heft: bool
    wall_s: float
    objective: str = "makespan"
    mean_jct_us: float = math.nan
    heft_mean_jct_us: float = math.nan


def _resolution(problem: SchedulingInstance, ub: float, max_ticks: float) -> tuple[float, bool]:
    """The coarsest grid among 1, 0.1, 0.01, 0.001 µs holding every time exactly within
    ``max_ticks`` ticks of ``ub``; else ``ub / max_ticks`` (inexact)."""
    vals = np.r_[problem.durations_us[problem.capable], problem.edge_comm_us, problem.release_us]
    for res in (1.0, 0.1, 0.01, 0.001):
        q = vals / res
        if ub / res <= max_ticks and np.all(np.abs(q - np.round(q)) <= 1e-6 * np.maximum(1.0, q)):
            return res, True
    return ub / max_ticks, False


def _longest_chain_ops(problem: SchedulingInstance) -> int:
    depth = np.ones(problem.n_ops, np.int64)
    for j in problem.topo_order:
        e = problem.in_edges[j]
        if e.size:
            depth[j] = 1 + depth[problem.edge_src[e]].max()
    return int(depth.max())


def cpsat_schedule(problem: SchedulingInstance, time_limit_s: float = 10.0, num_workers: int = 2,
                   resolution_us: float | None = None, max_ticks: float = 1e6, seed: int = 0,
                   hint: bool = True, objective: str = "makespan") -> _Exact:
    """The minimum-makespan schedule by CP-SAT within ``time_limit_s`` (HEFT's as hint and bound);
    ``objective="jct"``: the minimum mean job completion time of a job stream instead (hint and
    fallback: the better of HEFT and HEFT-FIFO).

    Times are rounded up to a grid of ``resolution_us`` (default: exact when all times are
    multiples of 1/0.1/0.01/0.001 µs, else ``HEFT makespan / max_ticks``); the solution's PE
    assignment and per-PE order are then re-timed with the exact times (left-justified).
    """
    from ortools.sat.python import cp_model

    if objective not in ("makespan", "jct"):
        raise AgentConfigError(f"objective must be 'makespan' or 'jct', not {objective!r}")
    jct = objective == "jct"
    t0 = time.perf_counter()
    heft_sched = heft(problem)
    heft_ms = heft_sched.makespan_us(problem)
    if jct:
        heft_sched = min(heft_sched, heft(problem, by_arrival=True), key=lambda s: _mean_jct(problem, s))
    res, exact = _grid(problem, resolution_us, heft_ms, max_ticks)
    tick_prob = _tick_instance(problem, res)
    tick_heft = heft(tick_prob)  # a feasible tick schedule: hint and upper bound
    horizon = round(tick_heft.makespan_us(tick_prob))
    if jct:  # a JCT-optimal schedule may end later than HEFT's: a horizon that holds any one
        tick_heft = min(tick_heft, heft(tick_prob, by_arrival=True),
                        key=lambda s: _mean_jct(tick_prob, s))
        dur = np.where(tick_prob.capable, tick_prob.durations_us, 0)
        horizon = int(tick_prob.release_us.max() + dur.max(1).sum() + tick_prob.edge_comm_us.sum())
    lb_t = math.ceil(critical_path_lb(tick_prob) - 1e-6)

    m = cp_model.CpModel()
    S, E, x = _schedule_vars(m, tick_prob, horizon)
    _objective(m, tick_prob, E, jct, lb_t, horizon)
    if hint:
        for i in range(problem.n_ops):
            m.AddHint(S[i], round(tick_heft.start_us[i]))
            for pe, v in x[i].items():
                m.AddHint(v, int(pe == tick_heft.assignment[i]))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(num_workers)
    solver.parameters.random_seed = int(seed)
    code = solver.Solve(m)
    status = solver.StatusName(code)
    best, from_heft, bound_t = heft_sched, True, lb_t
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        sched = _solved_schedule(solver, problem, S, x)
        if (_mean_jct(problem, sched) <= _mean_jct(problem, heft_sched)) if jct \
                else sched.makespan_us(problem) <= heft_ms:
            best, from_heft = sched, False
        bound_t = solver.BestObjectiveBound()
    if jct:
        return _jct_result(problem, best, status, bound_t, res, exact, heft_ms, heft_sched,
                           from_heft, t0)
    ms = best.makespan_us(problem)
    if exact:
        lb = bound_t * res
    else:  # each op and transfer on the critical chain (and its release) rounds up by < 1 tick
        lb = (bound_t - 2 * problem.n_ops - (1 if problem.has_releases else 0)) * res
    lb = min(ms, max(lb, critical_path_lb(problem)))
    optimal = ms <= lb * (1 + 1e-9) + 1e-9
    validate(problem, best).raise_if_invalid()
    return _Exact(schedule=best, status=status, optimal=bool(optimal), makespan_us=ms,
                  lower_bound_us=float(lb), gap=float(1.0 - lb / ms) if ms > 0 else 0.0,
                  resolution_us=float(res), exact_resolution=exact, heft_makespan_us=heft_ms,
                  from_heft=from_heft, wall_s=time.perf_counter() - t0)


def _grid(problem: SchedulingInstance, resolution_us: float | None, heft_ms: float,
          max_ticks: float) -> tuple[float, bool]:
    """The tick size in µs and whether every time is a whole number of ticks."""
    if resolution_us is None:
        return _resolution(problem, max(heft_ms, 1e-9), max_ticks)
    res = float(resolution_us)
    q = np.r_[problem.durations_us[problem.capable], problem.edge_comm_us,
              problem.release_us] / res
    return res, bool(np.all(np.abs(q - np.round(q)) <= 1e-6 * np.maximum(1.0, q)))


def _tick_instance(problem: SchedulingInstance, res: float) -> SchedulingInstance:
    """The instance with durations, transfers and releases rounded up to whole ticks."""
    cap = problem.capable
    dur_t = np.where(cap, np.ceil(np.where(cap, problem.durations_us, 0.0) / res - 1e-6), 0.0)
    dur_t = np.maximum(dur_t, 0).astype(np.int64)
    comm_t = np.maximum(np.ceil(problem.edge_comm_us / res - 1e-6), 0).astype(np.int64)
    rel_t = np.maximum(np.ceil(problem.release_us / res - 1e-6), 0).astype(np.int64)
    return SchedulingInstance(
        name=problem.name, op_names=problem.op_names, op_types=problem.op_types,
        pe_names=problem.pe_names, durations_us=np.where(cap, dur_t, np.inf).astype(np.float64),
        edge_src=problem.edge_src, edge_dst=problem.edge_dst, edge_bytes=problem.edge_bytes,
        edge_comm_us=comm_t.astype(np.float64), active_power_w=problem.active_power_w,
        idle_power_w=problem.idle_power_w, release_us=rel_t.astype(np.float64),
        job_of=problem.job_of)


def _schedule_vars(m: Any, tick: SchedulingInstance, horizon: int) -> tuple[list, list, list]:
    """Start and end per op, a PE Boolean per capable (op, PE), no overlap per PE, and the data
    edges (a transfer's ticks unless both ops share a PE)."""
    n, cap = tick.n_ops, tick.capable
    S = [m.NewIntVar(int(tick.release_us[i]), horizon, f"s{i}") for i in range(n)]
    E = [m.NewIntVar(0, horizon, f"e{i}") for i in range(n)]
    x: list[dict[int, Any]] = []
    per_pe: list[list[Any]] = [[] for _ in range(tick.n_pes)]
    for i in range(n):
        xi = {}
        for pe in np.flatnonzero(cap[i]).tolist():
            d = int(tick.durations_us[i, pe])
            xi[pe] = m.NewBoolVar(f"x{i}_{pe}")
            if d > 0:
                per_pe[pe].append(m.NewOptionalFixedSizeIntervalVar(S[i], d, xi[pe], f"iv{i}_{pe}"))
        m.AddExactlyOne(xi.values())
        m.Add(E[i] == S[i] + sum(int(tick.durations_us[i, pe]) * v for pe, v in xi.items()))
        x.append(xi)
    for intervals in per_pe:
        if len(intervals) > 1:
            m.AddNoOverlap(intervals)
    for e, (i, j) in enumerate(zip(tick.edge_src.tolist(), tick.edge_dst.tolist())):
        c = int(tick.edge_comm_us[e])
        same = []
        for pe in (set(x[i]) & set(x[j])) if c else ():
            y = m.NewBoolVar(f"y{e}_{pe}")
            m.AddImplication(y, x[i][pe])
            m.AddImplication(y, x[j][pe])
            same.append(y)
        m.Add(S[j] >= E[i] + c - c * sum(same)) if same else m.Add(S[j] >= E[i] + c)
    return S, E, x


def _objective(m: Any, tick: SchedulingInstance, E: list, jct: bool, lb_t: int,
               horizon: int) -> None:
    """Minimize the makespan, or the sum of job ends (mean JCT) for a stream."""
    if jct:
        ends = [m.NewIntVar(0, horizon, f"job{k}") for k in range(tick.n_jobs)]
        for k in range(tick.n_jobs):
            m.AddMaxEquality(ends[k], [E[i] for i in np.flatnonzero(tick.job_of == k).tolist()])
        m.Minimize(sum(ends))
    else:
        makespan = m.NewIntVar(lb_t, horizon, "makespan")
        m.AddMaxEquality(makespan, E)
        m.Minimize(makespan)


def _solved_schedule(solver: Any, problem: SchedulingInstance, S: list, x: list) -> Schedule:
    """The solution's PE assignment and order, re-timed with the exact times (left-justified)."""
    n = problem.n_ops
    assign = np.array([next(pe for pe, v in x[i].items() if solver.Value(v)) for i in range(n)])
    starts = np.array([solver.Value(S[i]) for i in range(n)], dtype=np.float64)
    pos = _topo_position(problem)
    sched = schedule_from_order(problem, assign, np.lexsort((pos, starts)))
    return Schedule(sched.assignment, sched.start_us, np.lexsort((pos, sched.start_us)))


def _mean_jct(problem: SchedulingInstance, schedule: Schedule) -> float:
    return job_metrics(problem, schedule).mean_completion_us


def _jct_result(problem: SchedulingInstance, best: Schedule, status: str, bound_t: float,
                res: float, exact: bool, heft_ms: float, ref: Schedule, from_heft: bool,
                t0: float) -> _Exact:
    """The result of a mean-JCT solve: bound from the solver's bound on the sum of job
    ends (in ticks), never below :func:`mean_jct_lower_bound`."""
    K, n = problem.n_jobs, problem.n_ops
    val = _mean_jct(problem, best)
    slack = 0 if exact else K * (2 * n + 1)  # per job, each op/transfer/release rounds up < 1 tick
    lb = ((bound_t - slack) * res - float(problem.job_arrival_us.sum())) / K
    lb = min(val, max(lb, mean_jct_lower_bound(problem)))
    validate(problem, best).raise_if_invalid()
    return _Exact(schedule=best, status=status, optimal=bool(val <= lb * (1 + 1e-9) + 1e-9),
                       makespan_us=best.makespan_us(problem), lower_bound_us=float(lb),
                       gap=float(1.0 - lb / val) if val > 0 else 0.0, resolution_us=float(res),
                       exact_resolution=exact, heft_makespan_us=heft_ms, from_heft=from_heft,
                       wall_s=time.perf_counter() - t0, objective="jct", mean_jct_us=val,
                       heft_mean_jct_us=_mean_jct(problem, ref))


# ---- replay in the env ----------------------------------------------------------------------


def schedule_to_actions(env: KernelSchedulingEnv, schedule: Schedule, workload_index: int = 0,
                        order: Sequence[int] | None = None) -> list[int]:
    """The env action sequence that reproduces ``schedule``: reset ``env`` on its
    ``workload_index``-th workload and place the ops in ``order`` (default: the schedule's
    dispatch order), each on its PE. Leaves ``env`` at the episode's end (its ``makespan_us``,
    ``schedule()``).

    The env starts each op at its earliest feasible time, so the replayed makespan is at most the
    schedule's, and equal for HEFT and CPOP (same insertion rule, same order) and for a schedule
    whose makespan is optimal.
    """
    env.reset(options={"workload_index": workload_index})
    problem = env.problem
    if schedule.assignment.shape != (problem.n_ops,):
        raise ReplayError(f"schedule has {schedule.assignment.size} ops but the env's workload "
                          f"{problem.name!r} has {problem.n_ops}")
    seq = schedule.dispatch_order(problem) if order is None else np.asarray(order, np.int64)
    P = env.n_pes
    actions: list[int] = []
    for i in seq.tolist():
        win = env.window_ops()
        if i not in win:
            raise ReplayError(f"op {problem.op_names[i]!r} is not in the env's ready window "
                              f"(window={env.window}); use a larger window or a topological order")
        a = win.index(i) * P + int(schedule.assignment[i])
        if not env.action_masks()[a]:
            raise ReplayError(f"op {problem.op_names[i]!r} cannot run on PE "
                              f"{problem.pe_names[int(schedule.assignment[i])]!r}")
        env.step(a)
        actions.append(a)
    return actions


# ---- agents ---------------------------------------------------------------------------------

HEFT_HYPERPARAMETERS: dict[str, list[Any]] = {"by_arrival": [False, True]}
CPSAT_HYPERPARAMETERS: dict[str, list[Any]] = {"time_limit_s": [2.0, 10.0, 60.0],
                                               "num_workers": [1, 2]}


@register_agent("heft", kinds=("scheduling",))
def heft_agent(problem: BudgetedProblem, rng: np.random.Generator, by_arrival: bool = False) -> None:
    """HEFT's schedule as one evaluation (``by_arrival``: HEFT-FIFO over a stream's jobs)."""
    submit_schedule(problem, heft(scheduling_episodes(problem).instance, by_arrival=bool(by_arrival)))


@register_agent("cpop", kinds=("scheduling",))
def cpop_agent(problem: BudgetedProblem, rng: np.random.Generator) -> None:
    """CPOP's schedule as one evaluation."""
    submit_schedule(problem, cpop(scheduling_episodes(problem).instance))


@register_agent("cpsat", kinds=("scheduling",))
def cpsat_agent(problem: BudgetedProblem, rng: np.random.Generator, time_limit_s: float = 10.0,
                num_workers: int = 1, hint: bool = True) -> None:
    """CP-SAT's best schedule (minimum makespan, or minimum mean JCT on a stream whose objective
    is ``jct``) as one evaluation, with its proof: ``status`` "optimal" when the bound meets the
    schedule, else "feasible"; ``bound`` = the best reward any schedule can have. Solves for
    ``time_limit_s`` or the budget's :meth:`~BudgetedProblem.solver_seconds`, whichever is
    shorter (so its schedule is scored within the budget)."""
    if not (time_limit_s > 0 and num_workers >= 1):
        raise AgentConfigError("time_limit_s must be > 0 and num_workers ≥ 1")
    inner = scheduling_episodes(problem)
    objective = "jct" if inner.stream and inner.objective == "jct" else "makespan"
    ex = cpsat_schedule(inner.instance, time_limit_s=problem.solver_seconds(float(time_limit_s)),
                        num_workers=int(num_workers), seed=int(rng.integers(2**31 - 1)),
                        hint=bool(hint), objective=objective)
    problem.prove("optimal" if ex.optimal else "feasible", bound=inner.reward_of(ex.lower_bound_us),
                  lower_bound_us=ex.lower_bound_us, cpsat_status=ex.status, gap=ex.gap,
                  from_heft=ex.from_heft, exact_resolution=ex.exact_resolution)
    submit_schedule(problem, ex.schedule)
