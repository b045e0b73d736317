"""The one agent interface: ``search(agent, problem, budget, seed, **hp) -> SearchResult``.

A :class:`Problem` is what an agent searches: a batched objective (designs → rewards and
metrics) over either a design space (``kind = "design"``: a design is a dict of parameter
values) or the episodes of a Gymnasium env (a sequential problem, e.g. ``kind = "malloc"``:
a design is ``{"actions": [...]}``, one complete episode; see :mod:`mlsysgym.agents.sequential`).
Agents only see a :class:`BudgetedProblem`, which counts evaluations (one evaluation = one
complete design or episode scored), stops exactly at the :class:`Budget` (evaluations and/or
seconds), turns evaluator failures into a penalty, and records the trajectory with the time of
each evaluation, so every agent's accounting is the same by construction. An exact agent
(CP-SAT) also reports its proof status and bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from mlsysgym.core.errors import MlsysgymError

Design = dict[str, Any]


class BudgetExhausted(MlsysgymError):
    """Raised inside an agent when it asks for evaluations beyond its budget."""


class UnknownAgentError(MlsysgymError):
    """An agent name that is not registered."""


class AgentConfigError(MlsysgymError):
    """A hyperparameter of a search agent out of its valid range, or a problem it cannot search."""


@dataclass(frozen=True)
class Outcome:
    """Rewards and metrics of a batch; ``failed[i]`` marks an evaluation that raised or timed out."""

    rewards: np.ndarray
    metrics: list[dict[str, float]]
    failed: np.ndarray


class Problem(Protocol):
    """What agents search: a batched objective to maximize, over a design space (``space``,
    a :class:`~mlsysgym.core.space.DesignSpace`) or over an env's episodes (``space`` None,
    ``make_env()``). ``kind`` (default ``"design"``) says which agents can search it."""

    name: str
    space: Any  # mlsysgym.core.space.DesignSpace, or None for a sequential problem

    def evaluate(self, designs: Sequence[Design]) -> Outcome: ...


def problem_kind(problem: Any) -> str:
    """A problem's kind: ``"design"`` unless it says otherwise."""
    return getattr(problem, "kind", "design")


@dataclass(frozen=True)
class Budget:
    """How much an agent may spend: evaluations (complete designs/episodes scored), wall-clock
    seconds, or both (whichever runs out first). At least one is set."""

    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.evaluations is None and self.seconds is None:
            raise MlsysgymError("a budget needs evaluations, seconds or both")
        if self.evaluations is not None and (isinstance(self.evaluations, bool)
                                             or int(self.evaluations) != self.evaluations
                                             or self.evaluations < 1):
            raise MlsysgymError(
                f"budget must be a positive number of evaluations, got {self.evaluations}")
        if self.seconds is not None and not (np.isfinite(self.seconds) and self.seconds > 0):
            raise MlsysgymError(f"budget seconds must be positive and finite, got {self.seconds}")

    @classmethod
    def of(cls, budget: int | Budget | Mapping[str, Any]) -> Budget:
        """``200`` (evaluations), ``{"seconds": 30}``, ``{"evaluations": 200, "seconds": 30}``
        or a Budget."""
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, Mapping):
            unknown = set(budget) - {"evaluations", "seconds"}
            if unknown:
                raise MlsysgymError(f"unknown budget key(s) {sorted(unknown)}; "
                                    "use evaluations and/or seconds")
            return cls(budget.get("evaluations"), budget.get("seconds"))
        if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
            return cls(evaluations=int(budget))
        raise MlsysgymError(f"budget must be a number of evaluations or "
                            f"{{evaluations, seconds}}, got {budget!r}")


@dataclass
class SearchResult:
    """Every evaluated design with its metrics and reward, in evaluation order (the trajectory),
    with the seconds since the search started at each evaluation (``times_s``). ``budget`` is
    the evaluation budget (None: seconds only), ``budget_s`` the time budget. An exact agent
    sets ``status`` (``"optimal"``, ``"feasible"``, ...) and ``bound`` (the best reward any
    design can have, as proved); ``info`` holds what else an agent reports."""

    agent: str
    problem: str
    seed: int
    budget: int | None
    designs: list[Design]
    rewards: np.ndarray
    metrics: list[dict[str, float]]
    failed: np.ndarray
    wall_time_s: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    budget_s: float | None = None
    status: str | None = None
    bound: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_evaluations(self) -> int:
        return len(self.designs)

    @property
    def best_so_far(self) -> np.ndarray:
        """Best reward after each evaluation."""
        return np.maximum.accumulate(self.rewards) if len(self.rewards) else self.rewards

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.rewards))

    @property
    def best_design(self) -> Design:
        return self.designs[self.best_index]

    @property
    def best_reward(self) -> float:
        return float(self.rewards[self.best_index])

    def to_frame(self):
        """One row per evaluation: step, design parameters, metrics, reward, best so far."""
        import pandas as pd

        times = self.times_s if len(self.times_s) == len(self.designs) else [np.nan] * len(self.designs)
        rows = [{**d, **m, "step": i, "reward": r, "failed": f, "best_so_far": b, "time_s": t}
                for i, (d, m, r, f, b, t) in enumerate(zip(self.designs, self.metrics, self.rewards,
                                                           self.failed, self.best_so_far, times))]
        frame = pd.DataFrame(rows)
        frame["agent"], frame["problem"], frame["seed"] = self.agent, self.problem, self.seed
        return frame


UNLIMITED = 2**31 - 1  # evaluations "left" under a seconds-only budget


class BudgetedProblem:
    """Wraps a Problem: exact budget (evaluations and/or seconds), failure penalty, trajectory
    recording. ``budget`` is the evaluation budget (None: seconds only)."""

    def __init__(self, problem: Problem, budget: int | Budget | Mapping[str, Any],
                 failure_penalty: float = -1e9) -> None:
        limits = Budget.of(budget)
        self.problem = problem
        self.space = problem.space
        self.name = problem.name
        self.kind = problem_kind(problem)
        self.budget = limits.evaluations
        self.budget_s = limits.seconds
        self.failure_penalty = failure_penalty
        self.designs: list[Design] = []
        self.rewards: list[float] = []
        self.metrics: list[dict[str, float]] = []
        self.failed: list[bool] = []
        self.times_s: list[float] = []
        self.status: str | None = None
        self.bound: float | None = None
        self.info: dict[str, Any] = {}
        self.start = time.perf_counter()

    def restart_clock(self) -> None:
        """Start the time budget now: work before it (training a policy on other instances)
        is not part of this search. Evaluations made so far keep their times."""
        self.start = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        """Seconds since the search started."""
        return time.perf_counter() - self.start

    @property
    def time_left_s(self) -> float:
        """Seconds left of the time budget (inf without one)."""
        return np.inf if self.budget_s is None else max(self.budget_s - self.elapsed_s, 0.0)

    def solver_seconds(self, cap_s: float | None = None, default_s: float = 60.0) -> float:
        """Seconds an inner solver may run so that its answer is still scored within the time
        budget: 90 % of the time left less 1 s (at least 10 % of it) for building the model and
        submitting the result; ``default_s`` without a time budget; ``cap_s`` caps it."""
        left = self.time_left_s
        limit = max(0.9 * left - 1.0, 0.1 * left) if np.isfinite(left) else default_s
        return min(limit, cap_s) if cap_s is not None else limit

    @property
    def remaining(self) -> int:
        """Evaluations left (:data:`UNLIMITED` without an evaluation budget; 0 once the time
        is up)."""
        if self.budget_s is not None and self.time_left_s <= 0:
            return 0
        return UNLIMITED if self.budget is None else self.budget - len(self.designs)

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0

    def evaluate(self, designs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rewards of ``designs`` (truncated to the remaining budget); raises when none is left."""
        if self.exhausted:
            raise BudgetExhausted(f"budget of {self._describe()} is used up")
        batch = [dict(d) for d in designs[: self.remaining]]
        if not batch:
            return np.zeros(0)
        out = self.problem.evaluate(batch)
        rewards = np.where(out.failed, self.failure_penalty, out.rewards).astype(float)
        self.designs += batch
        self.rewards += rewards.tolist()
        self.metrics += list(out.metrics)
        self.failed += [bool(f) for f in out.failed]
        self.times_s += [self.elapsed_s] * len(batch)
        return rewards

    def evaluate_one(self, design: Mapping[str, Any]) -> float:
        return float(self.evaluate([design])[0])

    def prove(self, status: str, bound: float | None = None, **info: Any) -> None:
        """An exact agent's proof: ``status`` ("optimal", "feasible", ...) and the best reward
        any design can have (``bound``); ``info`` is kept in the result."""
        self.status, self.bound = status, bound
        self.info.update(info)

    def _describe(self) -> str:
        parts = ([f"{self.budget} evaluations"] if self.budget is not None else []) + \
                ([f"{self.budget_s:g} s"] if self.budget_s is not None else [])
        return " / ".join(parts)

    def result(self, agent: str, seed: int, wall_time_s: float,
               hyperparameters: Mapping[str, Any]) -> SearchResult:
        return SearchResult(agent, self.name, seed, self.budget, self.designs,
                            np.asarray(self.rewards, dtype=float), self.metrics,
                            np.asarray(self.failed, dtype=bool), wall_time_s, dict(hyperparameters),
                            times_s=np.asarray(self.times_s, dtype=float), budget_s=self.budget_s,
                            status=self.status, bound=self.bound, info=dict(self.info))


AgentFn = Callable[..., None]  # agent(problem: BudgetedProblem, rng: np.random.Generator, **hp)
AGENTS: dict[str, AgentFn] = {}                # name → its design-space (else first) implementation
AGENT_KINDS: dict[str, tuple[str, ...]] = {}   # name → the problem kinds it searches
_IMPLEMENTATIONS: dict[tuple[str, str], AgentFn] = {}
_WHOLE_RUN: set[tuple[str, str]] = set()      # (name, kind) whose time_limit_s bounds the whole run


def register_agent(name: str, kinds: Sequence[str] = ("design",), *,
                   whole_run: bool = False) -> Callable[[AgentFn], AgentFn]:
    """Decorator: make an agent function available to :func:`search` under ``name``, for
    problems of the given ``kinds`` (``"design"``: any design space; ``"malloc"``,
    ``"scheduling"``, ...: one sequential problem family; ``"episode"``: any env's episodes).
    One name may have one implementation per kind (e.g. ``cpsat`` for malloc and scheduling).
    ``whole_run``: its ``time_limit_s`` bounds the whole run, the scoring of its answer
    included (:func:`bounds_whole_run`)."""
    def wrap(fn: AgentFn) -> AgentFn:
        for kind in kinds:
            _IMPLEMENTATIONS[(name, kind)] = fn
            if whole_run:
                _WHOLE_RUN.add((name, kind))
        if "design" in kinds or name not in AGENTS:  # the design-space one if there is one
            AGENTS[name] = fn
        AGENT_KINDS[name] = tuple(sorted(set(AGENT_KINDS.get(name, ())) | set(kinds)))
        return fn
    return wrap


def agent_function(agent: str, kind: str) -> AgentFn | None:
    """The implementation of ``agent`` for a problem of ``kind`` (None if it has none)."""
    fn = _IMPLEMENTATIONS.get((agent, kind))
    if fn is None and kind != "design":
        fn = _IMPLEMENTATIONS.get((agent, "episode"))
    return fn


def bounds_whole_run(agent: str, kind: str) -> bool:
    """Whether ``agent``'s ``time_limit_s`` on a problem of ``kind`` bounds its whole run, the
    scoring of its answer included (registered with ``whole_run=True``); otherwise a caller
    with a hard deadline must keep time back for what the agent does outside its limit."""
    return (agent, kind) in _WHOLE_RUN


def implementations(agent: str) -> dict[str, AgentFn]:
    """``{kind: function}`` of every implementation registered under ``agent``."""
    return {k: fn for (a, k), fn in _IMPLEMENTATIONS.items() if a == agent}


def agents_for(kind: str) -> list[str]:
    """Registered agents that can search a problem of ``kind``, sorted."""
    return sorted(a for a in AGENTS if agent_function(a, kind) is not None)


def search(agent: str, problem: Problem, budget: int | Budget | Mapping[str, Any], seed: int = 0,
           *, objectives: Sequence[str] | None = None, **hyperparameters: Any) -> SearchResult:
    """Run ``agent`` on ``problem`` until the budget (evaluations and/or seconds) is spent or
    the agent is done; never more evaluations than the budget. With ``objectives`` (and
    ``directions``, ``reference``, ``weights``) the problem is searched as a multi-objective
    one and ``result.info`` holds its Pareto front and hypervolume
    (:func:`mlsysgym.agents.multiobjective.pareto_search`)."""
    if objectives is not None:
        from mlsysgym.agents.multiobjective import pareto_search

        return pareto_search(agent, problem, budget, seed, objectives=objectives,
                             **hyperparameters)
    if agent not in AGENTS:
        raise UnknownAgentError(f"unknown agent {agent!r}; choose one of {', '.join(sorted(AGENTS))}")
    kind = problem_kind(problem)
    fn = agent_function(agent, kind)
    if fn is None:
        raise AgentConfigError(f"agent {agent!r} cannot search a {kind!r} problem; "
                               f"agents for it: {', '.join(agents_for(kind)) or 'none'}")
    budgeted = BudgetedProblem(problem, budget)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    try:
        fn(budgeted, rng, **hyperparameters)
    except BudgetExhausted:
        pass
    result = budgeted.result(agent, seed, time.perf_counter() - start, hyperparameters)
    if hasattr(problem, "summary"):  # a multi-objective problem: its Pareto front, hypervolume
        result.info.update(problem.summary(result.designs, result.metrics, result.failed))
    return result
