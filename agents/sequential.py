"""Sequential problems: the episodes of a Gymnasium env as a :class:`~mlsysgym.agents.base.Problem`.

A sequential problem (mallocGame placement, kernel scheduling, tiling) is searched through the
same ``search(agent, problem, budget, seed, **hp)`` as a design space. Its designs are complete
episodes, ``{"actions": [a0, a1, ...]}``; evaluating one replays it on the problem's env from
``reset`` (the reward is the episode's return, the metrics what :meth:`EpisodeProblem.metrics`
reads from the env at the end). An episode that does not end, or that plays an action its mask
forbids, is a failed evaluation. Agents that need the env itself (MCTS, MaskablePPO, greedy
heuristics) build one with ``problem.make_env()`` and submit the episodes they want scored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, Design, Outcome, register_agent

__all__ = ["EpisodeProblem", "episode_design", "random_episodes", "replay_episode", "sequential_problem"]


def episode_design(actions: Sequence[int]) -> Design:
    """The design of one episode: its actions as plain ints."""
    return {"actions": [int(a) for a in actions]}


def replay_episode(env: gym.Env, actions: Sequence[int], seed: int | None = None
                   ) -> tuple[float, bool, dict[str, Any]]:
    """Play ``actions`` from ``reset``: (return, finished, last info). Stops at the first action
    the env's mask forbids (finished False) or when the episode ends."""
    _, info = env.reset(seed=seed)
    total, done = 0.0, False
    masks = getattr(env.unwrapped, "action_masks", None)
    for a in actions:
        if done or (masks is not None and not masks()[int(a)]):
            return total, False, info
        _, r, term, trunc, info = env.step(int(a))
        total += float(r)
        done = term or trunc
    return total, done, info


class EpisodeProblem:
    """Episodes of ``make_env()`` as a Problem of ``kind``; ``metrics(env, info)`` reads the
    numbers recorded per evaluated episode (the default: the final info's numeric values)."""

    space = None

    def __init__(self, name: str, kind: str, make_env: Callable[[], gym.Env],
                 metrics: Callable[[gym.Env, Mapping[str, Any]], dict[str, float]] | None = None
                 ) -> None:
        self.name, self.kind = name, kind
        self._make_env = make_env
        self._metrics = metrics
        self._env: gym.Env | None = None

    def make_env(self) -> gym.Env:
        """A fresh env of this problem (agents may step and snapshot it freely)."""
        return self._make_env()

    @property
    def env(self) -> gym.Env:
        """The env this problem replays episodes on (built once)."""
        if self._env is None:
            self._env = self.make_env()
        return self._env

    def metrics(self, env: gym.Env, info: Mapping[str, Any]) -> dict[str, float]:
        """Numbers recorded for one finished episode."""
        if self._metrics is not None:
            return self._metrics(env, info)
        return {k: float(v) for k, v in info.items()
                if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}

    def evaluate(self, designs: Sequence[Design]) -> Outcome:
        """Replay each design's actions; unfinished or masked-out episodes fail."""
        rewards = np.zeros(len(designs))
        failed = np.zeros(len(designs), dtype=bool)
        metrics: list[dict[str, float]] = []
        for i, d in enumerate(designs):
            ret, done, info = replay_episode(self.env, d.get("actions", ()))
            rewards[i], failed[i] = ret, not done
            metrics.append(self.metrics(self.env, info) if done else {})
        return Outcome(rewards, metrics, failed)


def sequential_problem(problem: BudgetedProblem) -> EpisodeProblem:
    """The EpisodeProblem under a BudgetedProblem; AgentConfigError if it is a design space."""
    inner = problem.problem
    if not isinstance(inner, EpisodeProblem):
        raise AgentConfigError(f"{problem.name!r} is not a sequential problem "
                               f"(this agent searches the episodes of an env)")
    return inner


@register_agent("random_episodes", kinds=("episode",))
def random_episodes(problem: BudgetedProblem, rng: np.random.Generator) -> None:
    """Baseline for any sequential problem: episodes of uniformly random valid actions (by the
    env's action mask), each scored through the budget, until the budget is spent."""
    env = sequential_problem(problem).make_env()
    while not problem.exhausted:
        env.reset(seed=int(rng.integers(2**31)))
        actions, done = [], False
        while not done:
            mask = np.asarray(env.unwrapped.action_masks(), dtype=bool)
            a = int(rng.choice(np.flatnonzero(mask)))
            actions.append(a)
            _, _, term, trunc, _ = env.step(a)
            done = term or trunc
        problem.evaluate([episode_design(actions)])
