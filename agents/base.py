"""The one agent interface: ``search(problem, budget, seed, **hyperparameters) -> SearchResult``.

A :class:`Problem` is a design space plus a batched objective (designs → rewards and
metrics). Agents only see a :class:`BudgetedProblem`, which counts evaluations, stops
exactly at the budget, turns evaluator failures into a penalty, and records the
trajectory, so every agent's accounting is the same by construction.
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
    """What agents search: a design space and a batched objective to maximize."""

    name: str
    space: Any  # mlsysgym.core.space.DesignSpace

    def evaluate(self, designs: Sequence[Design]) -> Outcome: ...


@dataclass
class SearchResult:
    """Every evaluated design with its metrics and reward, in evaluation order."""

    agent: str
    problem: str
    seed: int
    budget: int
    designs: list[Design]
    rewards: np.ndarray
    metrics: list[dict[str, float]]
    failed: np.ndarray
    wall_time_s: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)

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

        rows = [{"step": i, **d, **m, "reward": r, "failed": f, "best_so_far": b}
                for i, (d, m, r, f, b) in enumerate(zip(self.designs, self.metrics, self.rewards,
                                                        self.failed, self.best_so_far))]
        frame = pd.DataFrame(rows)
        frame["agent"], frame["problem"], frame["seed"] = self.agent, self.problem, self.seed
        return frame


class BudgetedProblem:
    """Wraps a Problem: exact budget, failure penalty, trajectory recording."""

    def __init__(self, problem: Problem, budget: int, failure_penalty: float = -1e9) -> None:
        if budget < 1:
            raise MlsysgymError(f"budget must be a positive number of evaluations, got {budget}")
        self.problem = problem
        self.space = problem.space
        self.name = problem.name
        self.budget = budget
        self.failure_penalty = failure_penalty
        self.designs: list[Design] = []
        self.rewards: list[float] = []
        self.metrics: list[dict[str, float]] = []
        self.failed: list[bool] = []

    @property
    def remaining(self) -> int:
        return self.budget - len(self.designs)

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0

    def evaluate(self, designs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rewards of ``designs`` (truncated to the remaining budget); raises when none is left."""
        if self.exhausted:
            raise BudgetExhausted(f"evaluation budget of {self.budget} is used up")
        batch = [dict(d) for d in designs[: self.remaining]]
        if not batch:
            return np.zeros(0)
        out = self.problem.evaluate(batch)
        rewards = np.where(out.failed, self.failure_penalty, out.rewards).astype(float)
        self.designs += batch
        self.rewards += rewards.tolist()
        self.metrics += list(out.metrics)
        self.failed += [bool(f) for f in out.failed]
        return rewards

    def evaluate_one(self, design: Mapping[str, Any]) -> float:
        return float(self.evaluate([design])[0])

    def result(self, agent: str, seed: int, wall_time_s: float,
               hyperparameters: Mapping[str, Any]) -> SearchResult:
        return SearchResult(agent, self.name, seed, self.budget, self.designs,
                            np.asarray(self.rewards, dtype=float), self.metrics,
                            np.asarray(self.failed, dtype=bool), wall_time_s, dict(hyperparameters))


AgentFn = Callable[..., None]  # agent(problem: BudgetedProblem, rng: np.random.Generator, **hp)
AGENTS: dict[str, AgentFn] = {}


def register_agent(name: str) -> Callable[[AgentFn], AgentFn]:
    """Decorator: make an agent function available to :func:`search` under ``name``."""
    def wrap(fn: AgentFn) -> AgentFn:
        AGENTS[name] = fn
        return fn
    return wrap


def search(agent: str, problem: Problem, budget: int, seed: int = 0,
           **hyperparameters: Any) -> SearchResult:
    """Run ``agent`` on ``problem`` for exactly ``budget`` evaluations (fewer only if the space is smaller)."""
    if agent not in AGENTS:
        raise UnknownAgentError(f"unknown agent {agent!r}; choose one of {', '.join(sorted(AGENTS))}")
    budgeted = BudgetedProblem(problem, budget)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    try:
        AGENTS[agent](budgeted, rng, **hyperparameters)
    except BudgetExhausted:
        pass
    return budgeted.result(agent, seed, time.perf_counter() - start, hyperparameters)
