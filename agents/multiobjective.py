"""Multi-objective search in the one agent API: a problem wrapper, Pareto summaries, ``nsga2``.

:class:`MultiObjectiveProblem` wraps any design-space problem (an ``env:<id>`` problem, an
EvaluatorProblem, ...) with a list of metric names to optimize, one direction each and a
reference point. It is an ordinary ``kind = "design"`` problem, so every agent can search it:

- its **reward** (what single-objective agents maximize) is the weighted-sum scalarization
  ``-sum_i w_i * g_i / |r_i|`` of the objectives ``g`` in minimization form, normalized by the
  reference point ``r`` (weights default to ``1/k``); infeasible designs get that minus
  :data:`INFEASIBLE_PENALTY`;
- the **metrics** of every evaluated design are the inner problem's plus ``pareto_feasible``
  (1.0 or 0.0), so the front of any search is computable from ``SearchResult.metrics``.

A design is *feasible* when its evaluation did not fail, it satisfies the space's constraints,
it is within the env's budgets (the inner reward's ``penalty``, e.g. ``area_budget_mm2``), it
is not flagged ``infeasible`` by the evaluator, and every objective is finite. Infeasible
designs never enter a front.

The default reference point is ``ref_factor`` (2) times the metrics of the space's middle
design (every parameter at its middle level, the reference design of the design envs) for
minimized objectives, divided by ``ref_factor`` for maximized ones: a design counts toward the
hypervolume only if it is better than that in every objective. That one design is evaluated
when the problem is built (outside any search budget). Pass ``reference`` to state another.

:func:`pareto_summary` computes the front, the hypervolume (raw and normalized, see
:mod:`mlsysgym.agents.pareto`) and the hypervolume after every evaluation from a search's
metrics; :func:`pareto_search` runs any agent on a (wrapped) problem and puts that summary in
``SearchResult.info``; :func:`~mlsysgym.agents.base.search` does the same for any agent on a
:class:`MultiObjectiveProblem` (through its :meth:`~MultiObjectiveProblem.summary`). The
problem spec
``{"name": "pareto", "of": "env:mlsysgym/Accelerator-v0", "objectives": [...], ...}`` makes
the same problem from ``mlsysgym search`` and sweep configs.

``grid``: the grid baseline, a full-factorial grid with as many levels per parameter as fit the
evaluation budget (see :func:`grid_levels`), evaluated in a random order; it searches any
design problem, single- or multi-objective.

``nsga2``: Optuna's ``NSGAIISampler`` on a multi-objective study (the objectives in
minimization form; designs that break a constraint or a budget are told as constraint
violations, failed ones as failed trials). On a single-objective problem it minimizes the
negated reward.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.agents.base import (
    AgentConfigError,
    BudgetedProblem,
    Design,
    Outcome,
    Problem,
    SearchResult,
    register_agent,
    search,
)
from mlsysgym.agents.pareto import (
    ParetoError,
    hypervolume,
    hypervolume_curve,
    pareto_mask,
    to_minimization,
)
from mlsysgym.agents.problems import make_problem, register_problem

__all__ = ["GRID_HYPERPARAMETERS", "INFEASIBLE_PENALTY", "NSGA2_HYPERPARAMETERS",
           "MultiObjectiveProblem", "grid", "grid_levels", "multiobjective", "nsga2",
           "pareto_search", "pareto_summary"]

INFEASIBLE_PENALTY = 10.0
NSGA2_HYPERPARAMETERS: dict[str, list[Any]] = {
    "population_size": [10, 20, 50],
    "crossover_prob": [0.7, 0.9],
}
GRID_HYPERPARAMETERS: dict[str, list[Any]] = {"batch_size": [32, 256]}


@dataclass
class MultiObjectiveProblem:
    """``problem`` searched for several ``objectives`` (metric names) at once (see the module
    docstring). ``reference``: the reference point in the metrics' own units and signs."""

    problem: Problem
    objectives: list[str]
    directions: list[str]
    reference: list[float]
    weights: list[float] = field(default_factory=list)
    kind: str = "design"

    def __post_init__(self) -> None:
        k = len(self.objectives)
        if k < 1 or len(self.directions) != k or len(self.reference) != k:
            raise ParetoError(f"need one direction and one reference value per objective; got "
                              f"{k} objectives, {len(self.directions)} directions, "
                              f"{len(self.reference)} reference values")
        self.weights = list(self.weights) or [1.0 / k] * k
        if len(self.weights) != k:
            raise ParetoError(f"need {k} weights, got {len(self.weights)}")
        self.ref_min = to_minimization(np.array([self.reference], dtype=float), self.directions)[0]
        if not np.all(np.isfinite(self.ref_min)) or np.any(self.ref_min == 0):
            raise ParetoError(f"reference point must be finite and non-zero, got {self.reference}")
        self.space = self.problem.space
        self.name = f"pareto[{','.join(self.objectives)}]:{self.problem.name}"

    def objective_matrix(self, metrics: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, k) objective values in minimization form (NaN where a metric is missing)."""
        rows = [[float(m.get(o, np.nan)) for o in self.objectives] for m in metrics]
        return to_minimization(np.array(rows, dtype=float).reshape(len(rows), -1), self.directions)

    def feasible(self, designs: Sequence[Design], metrics: Sequence[Mapping[str, Any]],
                 failed: np.ndarray) -> np.ndarray:
        """Which designs may enter a front (see the module docstring)."""
        ok = ~np.asarray(failed, dtype=bool) & np.all(np.isfinite(self.objective_matrix(metrics)), 1)
        if len(designs):
            ok &= self.space.feasible(self.space.to_columns(designs))
        penalty = getattr(getattr(self.problem, "reward", None), "penalty", None)
        idx = np.flatnonzero(ok)
        if idx.size:
            cols = {m: np.array([metrics[i].get(m, np.nan) for i in idx], dtype=float)
                    for m in metrics[idx[0]]}
            good = np.ones(idx.size, dtype=bool)
            if penalty is not None:
                good &= np.asarray(penalty.feasible(cols), dtype=bool)
            if "infeasible" in cols:
                good &= ~cols["infeasible"].astype(bool)
            ok[idx] = good
        return ok

    def scalarize(self, g: np.ndarray) -> np.ndarray:
        """The weighted-sum reward of objective rows ``g`` (minimization form)."""
        return -(g / np.abs(self.ref_min)) @ np.asarray(self.weights, dtype=float)

    def evaluate(self, designs: Sequence[Design]) -> Outcome:
        out = self.problem.evaluate(designs)
        g = self.objective_matrix(out.metrics)
        ok = self.feasible(designs, out.metrics, out.failed)
        rewards = np.where(ok, self.scalarize(np.nan_to_num(g)),
                           self.scalarize(np.nan_to_num(g)) - INFEASIBLE_PENALTY)
        rewards = np.where(out.failed, np.nan, rewards)
        metrics = [{**m, "pareto_feasible": float(f)} for m, f in zip(out.metrics, ok)]
        return Outcome(rewards, metrics, out.failed)

    def summary(self, designs: Sequence[Design], metrics: Sequence[Mapping[str, Any]],
                failed: Sequence[bool]) -> dict[str, Any]:
        """The Pareto summary of a search on this problem (:func:`pareto_summary`);
        :func:`~mlsysgym.agents.base.search` puts it in ``SearchResult.info``."""
        return pareto_summary(self, designs, metrics, failed)

    def close(self) -> None:
        if hasattr(self.problem, "close"):
            self.problem.close()


def _middle(space: Any) -> Design:
    return space.decode(space.nvec // 2, "index")


def multiobjective(problem: Problem | Mapping[str, Any] | str, objectives: Sequence[str],
                   directions: Sequence[str] | None = None,
                   reference: Sequence[float] | Mapping[str, float] | None = None,
                   weights: Sequence[float] | None = None,
                   ref_factor: float = 2.0) -> MultiObjectiveProblem:
    """Wrap ``problem`` (a Problem or a problem spec) as a :class:`MultiObjectiveProblem`.
    ``directions`` default to all ``"minimize"``; ``reference`` (a list, or a dict by metric)
    defaults to ``ref_factor`` times the middle design's metrics (see the module docstring)."""
    if isinstance(problem, (str, Mapping)):
        problem = make_problem(problem)
    objectives = list(objectives)
    directions = list(directions) if directions is not None else ["minimize"] * len(objectives)
    if not objectives:
        raise ParetoError("give at least one objective (a metric name)")
    if ref_factor <= 1:
        raise ParetoError(f"ref_factor must be > 1, got {ref_factor}")
    if isinstance(reference, Mapping):
        missing = [o for o in objectives if o not in reference]
        if missing:
            raise ParetoError(f"reference has no value for objective(s) {missing}")
        reference = [float(reference[o]) for o in objectives]
    if reference is None:
        out = problem.evaluate([_middle(problem.space)])
        if out.failed[0]:
            raise ParetoError("the middle design failed to evaluate; pass a reference point")
        unknown = [o for o in objectives if o not in out.metrics[0]]
        if unknown:
            raise ParetoError(f"unknown objective(s) {unknown}; the problem's metrics are "
                              f"{sorted(out.metrics[0])}")
        reference = [float(out.metrics[0][o]) * (ref_factor if d == "minimize" else 1 / ref_factor)
                     for o, d in zip(objectives, directions)]
    return MultiObjectiveProblem(problem, objectives, directions, [float(r) for r in reference],
                                 list(weights or []))


@register_problem("pareto")
def pareto_problem(of: Mapping[str, Any] | str, objectives: Sequence[str],
                   directions: Sequence[str] | None = None,
                   reference: Sequence[float] | Mapping[str, float] | None = None,
                   weights: Sequence[float] | None = None,
                   ref_factor: float = 2.0) -> MultiObjectiveProblem:
    """``{"name": "pareto", "of": <problem spec>, "objectives": [...], "directions": [...],
    "reference": [...] | {metric: value}, "weights": [...]}``: see :func:`multiobjective`."""
    return multiobjective(of, objectives, directions, reference, weights, ref_factor)


def pareto_summary(problem: MultiObjectiveProblem, designs: Sequence[Design],
                   metrics: Sequence[Mapping[str, Any]], failed: Sequence[bool]) -> dict[str, Any]:
    """The Pareto front of a search's evaluations and its hypervolume.

    Returns ``objectives``, ``directions``, ``reference``, ``pareto_indices`` (evaluation
    indices of the front, feasible designs only), ``pareto_front`` (one dict per front design:
    ``index``, ``design``, the objective values), ``hypervolume`` (in the metrics' units),
    ``hypervolume_normalized`` (divided by ``prod(|reference|)``) and ``hypervolume_curve``
    (normalized, after every evaluation)."""
    g = problem.objective_matrix(metrics)
    ok = problem.feasible(designs, metrics, np.asarray(failed, dtype=bool))
    idx = np.flatnonzero(ok)
    front = idx[pareto_mask(g[idx])] if idx.size else idx
    scale = float(np.prod(np.abs(problem.ref_min)))
    hv = hypervolume(g[front], problem.ref_min) if front.size else 0.0
    curve = hypervolume_curve(g, problem.ref_min, ok) / scale
    return {
        "objectives": list(problem.objectives), "directions": list(problem.directions),
        "reference": list(problem.reference),
        "pareto_indices": front.tolist(),
        "pareto_front": [{"index": int(i), "design": dict(designs[i]),
                          **{o: float(metrics[i][o]) for o in problem.objectives}} for i in front],
        "hypervolume": hv, "hypervolume_normalized": hv / scale,
        "hypervolume_curve": curve.tolist(),
    }


def pareto_search(agent: str, problem: Problem | Mapping[str, Any] | str, budget: Any,
                  seed: int = 0, objectives: Sequence[str] | None = None,
                  directions: Sequence[str] | None = None,
                  reference: Sequence[float] | Mapping[str, float] | None = None,
                  weights: Sequence[float] | None = None, **hyperparameters: Any) -> SearchResult:
    """:func:`~mlsysgym.agents.base.search` on ``problem`` wrapped with ``objectives`` (or on an
    already wrapped problem), with :func:`pareto_summary` in ``result.info`` for any agent."""
    if objectives is not None:
        problem = multiobjective(problem, objectives, directions, reference, weights)
    elif isinstance(problem, (str, Mapping)):
        problem = make_problem(problem)
    if not isinstance(problem, MultiObjectiveProblem):
        raise ParetoError("pareto_search needs objectives=[...] or a MultiObjectiveProblem")
    return search(agent, problem, budget, seed, **hyperparameters)  # it adds problem.summary


# ---- NSGA-II -------------------------------------------------------------------------------
def _key(design: Design) -> tuple:
    return tuple(design.values())


def _objectives_of(problem: BudgetedProblem, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimization-form objectives and feasibility of evaluations ``start:`` (a single-objective
    problem: the negated reward)."""
    inner = problem.problem
    designs, metrics = problem.designs[start:], problem.metrics[start:]
    failed = np.asarray(problem.failed[start:], dtype=bool)
    if isinstance(inner, MultiObjectiveProblem):
        return inner.objective_matrix(metrics), inner.feasible(designs, metrics, failed)
    return -np.asarray(problem.rewards[start:], dtype=float)[:, None], ~failed


@register_agent("nsga2")
def nsga2(problem: BudgetedProblem, rng: np.random.Generator, population_size: int = 20,
          crossover_prob: float = 0.9, mutation_prob: float | None = None) -> None:
    """NSGA-II (``optuna.samplers.NSGAIISampler``), one generation per evaluated batch.

    Hyperparameters: ``population_size`` (default 20), ``crossover_prob`` (default 0.9),
    ``mutation_prob`` (default Optuna's ``1 / number of parameters``). Repeated designs are
    told their known values without spending budget; designs that break a constraint of the
    space or a budget are told as constraint violations (NSGA-II ranks them after every
    feasible design)."""
    import optuna
    from optuna.trial import TrialState

    if population_size < 2:
        raise AgentConfigError(f"population_size must be >= 2, got {population_size}")
    if not 0.0 <= crossover_prob <= 1.0:
        raise AgentConfigError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = problem.space
    inner = problem.problem
    k = len(inner.objectives) if isinstance(inner, MultiObjectiveProblem) else 1
    sampler = optuna.samplers.NSGAIISampler(
        population_size=population_size, crossover_prob=crossover_prob,
        mutation_prob=mutation_prob, seed=int(rng.integers(2**31 - 1)))
    study = optuna.create_study(directions=["minimize"] * k, sampler=sampler)
    distributions = space.optuna_distributions()
    memo: dict[tuple, tuple[list[float] | None, float]] = {}  # design → (values, violation)
    idle = 0
    while not problem.exhausted and idle < 20:
        trials = [study.ask(distributions) for _ in range(population_size)]
        designs = [space.validate(space.suggest(t), check_constraints=False) for t in trials]
        todo, keys = [], set()
        for d in designs:
            key = _key(d)
            if key not in memo and key not in keys and space.is_valid(d):
                todo.append(d)
                keys.add(key)
        todo = todo[: problem.remaining]
        if todo:
            start = len(problem.designs)
            problem.evaluate(todo)
            g, ok = _objectives_of(problem, start)
            failed = problem.failed[start:]
            for d, row, good, bad in zip(todo, g, ok, failed):
                memo[_key(d)] = (None if bad else np.nan_to_num(row, nan=1e300).tolist(),
                                 0.0 if good else 1.0)
        idle = 0 if todo else idle + 1
        if not todo:  # the sampler repeats itself: seed the next generation with a new design
            fresh = [d for d in space.sample(rng, 64) if _key(d) not in memo]
            if fresh:
                study.enqueue_trial(fresh[0])
        worst = np.max([v for v, _ in memo.values() if v is not None] or [[0.0] * k], axis=0)
        for t, d in zip(trials, designs):
            values, violation = memo.get(_key(d), (worst.tolist(), 1.0))  # invalid: violation
            if values is None:
                study.tell(t, state=TrialState.FAIL)
                continue
            t.set_constraint("feasibility", violation)
            study.tell(t, values)


# ---- grid ----------------------------------------------------------------------------------
def _grid_indices(nvec: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(prod(levels), d) level indices: ``levels[j]`` evenly spaced indices of parameter j
    (its middle one when ``levels[j]`` is 1), every combination."""
    axes = [np.array([n // 2]) if k == 1 else np.unique(np.rint(np.linspace(0, n - 1, k)))
            for n, k in zip(nvec, levels)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1).astype(np.int64)


def grid_levels(space: Any, target: int) -> np.ndarray:
    """Levels per parameter of the largest grid with at most ``target`` designs that satisfy
    the space's constraints: start from every parameter's middle level and add one level at a
    time to the parameter with the coarsest grid (fewest levels relative to its own count),
    while the grid still fits. Floats count ``space.float_levels`` levels."""
    nvec = np.asarray(space.nvec, dtype=np.int64)
    levels = np.ones(len(nvec), dtype=np.int64)
    while True:
        order = np.argsort(levels / nvec, kind="stable")
        for j in order:
            if levels[j] >= nvec[j]:
                continue
            trial = levels.copy()
            trial[j] += 1
            if np.prod(trial.astype(float)) <= 50 * target and \
                    _feasible_count(space, trial) <= target:
                levels = trial
                break
        else:
            return levels


def _feasible_count(space: Any, levels: np.ndarray) -> int:
    idx = _grid_indices(np.asarray(space.nvec), levels)
    return int(np.count_nonzero(space.feasible(space.columns_from_indices(idx))))


@register_agent("grid")
def grid(problem: BudgetedProblem, rng: np.random.Generator, batch_size: int = 256,
         max_points: int = 100_000) -> None:
    """Grid search: the feasible designs of the grid of :func:`grid_levels` for the budget
    (``max_points`` under a seconds-only budget), in a random order (so a run stopped by a time
    budget has an evenly spread part of the grid), ``batch_size`` per evaluated batch. Stops
    when the grid is done, which may be before the budget (a grid only grows a level at a
    time)."""
    if batch_size < 1 or max_points < 1:
        raise AgentConfigError(f"batch_size and max_points must be >= 1, got {batch_size}, "
                               f"{max_points}")
    space = problem.space
    target = int(min(problem.remaining, max_points, space.size(space.float_levels)))
    idx = _grid_indices(np.asarray(space.nvec), grid_levels(space, target))
    idx = idx[space.feasible(space.columns_from_indices(idx))]
    designs = space.decode_batch(idx[rng.permutation(len(idx))], "index")
    for start in range(0, len(designs), batch_size):
        if problem.exhausted:
            return
        problem.evaluate(designs[start:start + batch_size])
