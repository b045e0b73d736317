"""Baselines for the memory-placement game: all-slow, the XLA-style greedy and the exact
optimum by CP-SAT.

The solvers take a :class:`~mlsysgym.simulators.memory.MemoryInstance` and return a
:class:`MallocSolution` whose placement the simulator validates and (when ``replayable``) the
env replays exactly through :func:`actions_for`. As agents of the one API (problem kind
``"malloc"``) they are ``all_slow``, ``xla_greedy`` and ``cpsat``: each converts its placement
to the env's actions and submits it as one evaluated episode; ``cpsat`` also reports its proof
(``status`` "optimal" or "feasible", ``bound`` = the best reward any placement can have).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.malloc_problem import malloc_of
from mlsysgym.agents.sequential import episode_design
from mlsysgym.simulators.memory import (
    FAST,
    PREFETCH,
    SLOW,
    AllocationState,
    MemoryInstance,
    Placement,
    demote_for_replay,
    memory_boundedness,
    placement_to_actions,
    repack_for_replay,
    simulate,
    validate,
    xla_order,
)


@dataclass(frozen=True, eq=False)
class MallocSolution:
    """A solver's placement with its simulated time; ``bound_us``/``gap`` only from exact solvers."""

    solver: str
    placement: Placement
    time_us: float
    all_slow_time_us: float
    status: str            # "HEURISTIC", "OPTIMAL", "FEASIBLE" or "UNKNOWN" (no better than hint)
    wall_s: float
    bound_us: float | None = None
    gap: float | None = None          # (time - bound) / time, 0 when proved optimal
    replayable: bool = True           # its offsets are env candidates in the env's buffer order

    @property
    def improvement(self) -> float:
        """Fraction of the all-slow time saved."""
        return (self.all_slow_time_us - self.time_us) / self.all_slow_time_us


def all_slow(problem: MemoryInstance) -> MallocSolution:
    """Every buffer in slow memory."""
    p = Placement.all_slow(problem)
    t = problem.all_slow_time_us
    return MallocSolution("all_slow", p, t, t, "HEURISTIC", 0.0)


def xla_greedy(problem: MemoryInstance, order: np.ndarray | None = None) -> MallocSolution:
    """XLA memory-space-assignment-style greedy.

    Buffers in XLA's order (:func:`xla_order`, i.e. by memory-boundedness / √size, then size,
    then live-range length); each buffer whose memory-boundedness is positive goes to fast
    memory for its whole live range at the best-fit offset (smallest free gap that holds it,
    lowest address); if none fits and prefetch is enabled, it is prefetched at the best-fit
    offset of its prefetch residency when that lowers the total time. Others stay slow.
    Best fit is the env's candidate 0, so the result replays exactly in the env.
    """
    t0 = time.perf_counter()
    order = xla_order(problem) if order is None else order
    benefit = memory_boundedness(problem)
    state = AllocationState(problem)
    for b in order:
        if benefit[b] <= 0:
            continue
        offs, _ = state.candidates(b, FAST, 1)
        if offs.size:
            state.place(b, FAST, int(offs[0]))
            continue
        offs, _ = state.candidates(b, PREFETCH, 1)
        if offs.size and state.delta_time(b, PREFETCH) < 0:
            state.place(b, PREFETCH, int(offs[0]))
    placement = state.placement
    res = simulate(problem, placement)
    return MallocSolution("xla_greedy", placement, res.total_time_us, problem.all_slow_time_us,
                          "HEURISTIC", time.perf_counter() - t0)


def cpsat_optimum(problem: MemoryInstance, *, time_limit_s: float = 10.0, num_workers: int = 2,
                  hint: Placement | None = None, n_offsets: int = 16,
                  resolution: float = 1e8, seed: int = 0) -> MallocSolution:
    """The minimum-time placement by OR-Tools CP-SAT, or the best found in ``time_limit_s``.

    Model: per buffer Booleans FAST / PREFETCH (at most one) and an offset; each chosen mode is
    an optional rectangle (residency ops × [offset, offset + size)) in one 2-D no-overlap, plus a
    redundant per-op capacity sum. Per op a time variable ``t_i ≥ compute_i`` and
    ``t_i ≥ memory_i`` (the all-slow memory time minus the savings of fast uses plus prefetch
    copies, linear in the Booleans); the objective is Σ t_i. Times are integers in units of
    all-slow time / ``resolution``, so "OPTIMAL" is up to that rounding. The heuristic's placement
    (or ``hint``) is the solver's hint, and whichever of the two the simulator finds faster is
    returned, so the result is never worse than the hint. Offsets are then repacked among the
    env's ``n_offsets`` candidates where possible (``replayable``).
    """
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    if hint is None:
        hint = xla_greedy(problem).placement
    validate(problem, hint)
    scale = resolution / problem.all_slow_time_us
    m = cp_model.CpModel()
    x, pf, off = _placement_vars(m, problem)
    terms = _memory_terms(problem, scale, x, pf)
    floor = _q(problem.compute_us, scale), _q(problem.mem_slow_us, scale)  # compute, all-slow
    t_vars = _time_vars(m, problem, floor, terms, {FAST: x, PREFETCH: pf})
    m.minimize(sum(t_vars))
    _add_hints(m, problem, floor, hint, x, pf, off, t_vars, terms)

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(num_workers)
    solver.parameters.random_seed = int(seed)
    status = solver.solve(m)
    status_name = solver.status_name(status)
    best, bound_us = hint, None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        sol = _solved_placement(solver, problem.n_buffers, x, pf, off)
        validate(problem, sol)
        if (simulate(problem, sol, check=False).total_time_us
                <= simulate(problem, hint, check=False).total_time_us):
            best = sol
        bound_us = solver.best_objective_bound / scale  # in rounded units; clamped below
    else:
        status_name = "UNKNOWN"
    return _cpsat_solution(problem, best, status_name, bound_us, n_offsets, t0)


def _q(x: np.ndarray, scale: float) -> np.ndarray:
    """Times as the solver's integers (units of all-slow time / resolution)."""
    return np.rint(np.asarray(x) * scale).astype(np.int64)


def _placement_vars(m: Any, p: MemoryInstance) -> tuple[list, list, list]:
    """Per buffer the FAST and PREFETCH Booleans (at most one) and the offset, with the 2-D
    no-overlap of residencies × addresses and the redundant per-op capacity sums."""
    n, cap = p.n_buffers, p.capacity_bytes
    fits = p.size <= cap
    x = [m.new_bool_var(f"fast{b}") if fits[b] else None for b in range(n)]
    pf = [m.new_bool_var(f"pf{b}") if fits[b] and p.pf_start[b] >= 0 else None for b in range(n)]
    off = [m.new_int_var(0, int(cap - p.size[b]), f"off{b}") if fits[b] else None for b in range(n)]
    t_rects, a_rects = [], []
    occupancy: list[list[tuple[int, Any]]] = [[] for _ in range(p.n_ops)]
    for b in range(n):
        size, last = int(p.size[b]), int(p.end[b])
        for lit, first in ((x[b], int(p.start[b])), (pf[b], int(p.pf_start[b]))):
            if lit is None:
                continue
            t_rects.append(m.new_optional_fixed_size_interval_var(first, last - first + 1, lit,
                                                                  f"t{b}"))
            a_rects.append(m.new_optional_fixed_size_interval_var(off[b], size, lit, f"a{b}"))
            for i in range(first, last + 1):
                occupancy[i].append((size, lit))
        if x[b] is not None and pf[b] is not None:
            m.add_at_most_one([x[b], pf[b]])
    m.add_no_overlap_2d(t_rects, a_rects)
    for used in occupancy:
        if sum(s for s, _ in used) > cap:
            m.add(sum(s * lit for s, lit in used) <= cap)
    return x, pf, off


def _memory_terms(p: MemoryInstance, scale: float, x: list, pf: list
                  ) -> list[list[tuple[int, int, int]]]:
    """Per op the (coefficient, buffer, mode) terms of its memory time: savings of fast or
    prefetched uses (negative) and prefetch copies (positive)."""
    terms: list[list[tuple[int, int, int]]] = [[] for _ in range(p.n_ops)]
    save, pf_save = _q(p.use_save_us, scale), _q(p.pf_save_us, scale)
    copy = _q(p.win_cost_us, scale)
    for b in range(p.n_buffers):
        for u in range(p.use_ptr[b], p.use_ptr[b + 1]):
            i = int(p.use_op[u])
            if x[b] is not None and save[u]:
                terms[i].append((-int(save[u]), b, FAST))
            if pf[b] is not None and pf_save[u]:
                terms[i].append((-int(pf_save[u]), b, PREFETCH))
        if pf[b] is not None:
            for w in range(p.win_ptr[b], p.win_ptr[b + 1]):
                terms[int(p.win_op[w])].append((int(copy[w]), b, PREFETCH))
    return terms


def _time_vars(m: Any, p: MemoryInstance, floor: tuple[np.ndarray, np.ndarray], terms: list,
               lit_of: dict) -> list:
    """Per op ``t_i ≥ compute_i`` and ``t_i ≥ memory_i`` (all-slow time plus its terms);
    ``floor`` is (compute, all-slow memory) time per op in solver units."""
    c_int, slow_int = floor
    t_vars = []
    for i in range(p.n_ops):
        hi = int(max(c_int[i], slow_int[i] + sum(c for c, _, _ in terms[i] if c > 0)))
        t = m.new_int_var(int(c_int[i]), hi, f"time{i}")
        if terms[i] or slow_int[i] > c_int[i]:
            m.add(t >= int(slow_int[i]) + sum(c * lit_of[md][b] for c, b, md in terms[i]))
        t_vars.append(t)
    return t_vars


def _add_hints(m: Any, p: MemoryInstance, floor: tuple[np.ndarray, np.ndarray], hint: Placement,
               x: list, pf: list, off: list, t_vars: list, terms: list) -> None:
    """The hint placement's values for every variable."""
    for b in range(p.n_buffers):
        if x[b] is not None:
            m.add_hint(x[b], int(hint.mode[b] == FAST))
        if pf[b] is not None:
            m.add_hint(pf[b], int(hint.mode[b] == PREFETCH))
        if off[b] is not None:
            m.add_hint(off[b], int(hint.offset[b]) if hint.mode[b] != SLOW else 0)
    c_int, slow_int = floor
    for i in range(p.n_ops):
        mem = int(slow_int[i]) + sum(c for c, b, md in terms[i] if hint.mode[b] == md)
        m.add_hint(t_vars[i], int(max(c_int[i], mem)))


def _solved_placement(solver: Any, n: int, x: list, pf: list, off: list) -> Placement:
    """The placement of the solver's solution."""
    mode = np.zeros(n, np.int8)
    offset = np.full(n, -1, np.int64)
    for b in range(n):
        if x[b] is not None and solver.value(x[b]):
            mode[b], offset[b] = FAST, solver.value(off[b])
        elif pf[b] is not None and solver.value(pf[b]):
            mode[b], offset[b] = PREFETCH, solver.value(off[b])
    return Placement(mode, offset)


def _cpsat_solution(p: MemoryInstance, best: Placement, status_name: str,
                    bound_us: float | None, n_offsets: int, t0: float) -> MallocSolution:
    """Repack ``best`` among the env's offsets where possible; time, bound and gap."""
    repacked = repack_for_replay(p, best, xla_order(p), n_offsets)
    replayable = repacked is not None
    if replayable:
        best = repacked
    t_us = simulate(p, best).total_time_us
    if bound_us is not None:
        bound_us = min(bound_us, t_us)  # rounding of times to integers can put it a hair above
    gap = None if bound_us is None else (t_us - bound_us) / t_us
    if status_name == "OPTIMAL":
        gap = 0.0
    return MallocSolution("cpsat", best, t_us, p.all_slow_time_us, status_name,
                          time.perf_counter() - t0, bound_us, gap, replayable)


def actions_for(env, placement: Placement) -> list[int]:
    """The action sequence replaying ``placement`` in a :class:`MallocGameEnv` (same problem)."""
    return placement_to_actions(env.problem, placement, env.order, env.n_offsets)


def mode_actions(env, placement: Placement, max_nodes: int = 20_000,
                 deadline: float | None = None) -> list[int] | None:
    """An episode of ``env`` that gives every buffer its mode in ``placement`` (so the same
    time: offsets do not change it), its offsets chosen among the env's candidates depth-first
    (the candidate nearest the placement's own offset first), backtracking when a buffer finds
    no room; None after ``max_nodes`` steps tried or past ``deadline`` (perf_counter)."""
    modes = [int(placement.mode[b]) for b in env.order]
    want = [int(placement.offset[b]) for b in env.order]

    def options(i: int) -> list[int]:
        if modes[i] == SLOW:
            return [0]
        base = 1 + (env.n_offsets if modes[i] == PREFETCH else 0)
        mask = env.action_masks()
        cands = [a for a in range(base, base + env.n_offsets) if mask[a]]
        return sorted(cands, key=lambda a: abs(env.decode(a)[1] - want[i]))

    env.reset()
    stack = [(env.get_state(), options(0))]   # per step: the state before it, untried actions
    actions: list[int] = []
    for _ in range(max_nodes):
        if not stack or (deadline is not None and time.perf_counter() > deadline):
            return None
        state, untried = stack[-1]
        if not untried:   # dead end: undo the step that led here
            stack.pop()
            if actions:
                actions.pop()
            continue
        env.set_state(state)
        a = untried.pop(0)
        env.step(a)
        actions.append(a)
        if len(actions) == len(modes):
            return actions
        stack.append((env.get_state(), options(len(actions))))
    return None


def demoted_actions(env, placement: Placement) -> list[int]:
    """An episode that follows ``placement``'s modes, each at the env's candidate offset
    nearest its own, and leaves slow a buffer that finds no room (so at most its time):
    :func:`~mlsysgym.simulators.memory.demote_for_replay` as actions."""
    return actions_for(env, demote_for_replay(env.problem, placement, env.order, env.n_offsets))


def heuristic_actions(env) -> list[int]:
    """The XLA-style greedy's placement as a :class:`MallocGameEnv`'s action sequence."""
    return actions_for(env, xla_greedy(env.problem).placement)


@register_agent("all_slow", kinds=("malloc",))
def all_slow_agent(problem: BudgetedProblem, rng: np.random.Generator) -> None:
    """Every buffer in slow memory: one episode of slow actions (return 0)."""
    env = malloc_of(problem).env
    problem.evaluate([episode_design([0] * env.n_buffers)])


@register_agent("xla_greedy", kinds=("malloc",))
def xla_greedy_agent(problem: BudgetedProblem, rng: np.random.Generator) -> None:
    """The XLA-style greedy (:func:`xla_greedy`) as one episode."""
    problem.evaluate([episode_design(heuristic_actions(malloc_of(problem).env))])


@register_agent("cpsat", kinds=("malloc",))
def cpsat_agent(problem: BudgetedProblem, rng: np.random.Generator, *,
                time_limit_s: float | None = None, num_workers: int = 1,
                resolution: float = 1e8) -> None:
    """CP-SAT (:func:`cpsat_optimum`, hinted with the greedy) within the budget's seconds
    less a margin to build the model and replay its episode (90 % − 1 s; ``time_limit_s`` caps
    it further; 60 s without either). Its placement, repacked among the
    env's candidate offsets, is submitted as one episode; the proof goes to the result:
    ``status`` "optimal" (proved, up to the solver's time rounding) or "feasible", ``bound`` =
    the best reward any placement can have, ``info`` = the solver's own status, wall time and
    the bound in µs. A placement whose offsets are not among the env's candidates is replayed
    with the same modes by :func:`mode_actions` (same time); if that fails too, its time is
    reported in ``info["unreplayable_time_us"]``, the greedy's episode and
    :func:`demoted_actions` (its modes where they fit) are submitted instead and the status is
    at most "feasible"."""
    if num_workers < 1 or (time_limit_s is not None and not time_limit_s > 0):
        raise AgentConfigError("cpsat: num_workers must be >= 1 and time_limit_s > 0")
    malloc = malloc_of(problem)
    env = malloc.env
    sol = cpsat_optimum(malloc.instance, time_limit_s=problem.solver_seconds(time_limit_s), num_workers=num_workers,
                        n_offsets=env.n_offsets, resolution=resolution,
                        seed=int(rng.integers(2**31)))
    info: dict[str, Any] = {"solver_status": sol.status, "solver_wall_s": sol.wall_s,
                            "bound_us": sol.bound_us}
    status = {"OPTIMAL": "optimal", "FEASIBLE": "feasible"}.get(sol.status, "unknown")
    if sol.replayable:
        actions = actions_for(env, sol.placement)
    else:  # its modes with offsets the env offers, found by backtracking
        left = problem.time_left_s
        actions = mode_actions(env, sol.placement, deadline=time.perf_counter() + 0.5 * left
                               if np.isfinite(left) else None)
        info["replayed_by_search"] = actions is not None
        if actions is None:   # the best of the greedy and the demoted placement: not proved
            info["unreplayable_time_us"] = sol.time_us
            status = "feasible" if status == "optimal" else status
            problem.prove(status, bound=_bound(env, sol), **info)
            problem.evaluate([episode_design(heuristic_actions(env))])
            actions = demoted_actions(env, sol.placement)
    problem.prove(status, bound=_bound(env, sol), **info)
    problem.evaluate([episode_design(actions)])


def _bound(env, sol: MallocSolution) -> float | None:
    """The solver's bound on the time as a bound on the reward (the fraction saved)."""
    if sol.bound_us is None:
        return None
    return (env.all_slow_time_us - sol.bound_us) / env.reward_scale_us


__all__ = ["MallocSolution", "actions_for", "all_slow", "all_slow_agent", "cpsat_agent", "cpsat_optimum",
           "demoted_actions", "heuristic_actions", "mode_actions", "xla_greedy", "xla_greedy_agent"]
