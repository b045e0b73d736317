"""Random search and random walk (ArchGym's "RW" baseline), over index encodings.

- ``random``: uniform random feasible designs, ``batch_size`` per evaluated batch, never
  re-proposing a design already evaluated (up to ``max_tries`` redraws per design).
- ``random_walk``: ``walkers`` random walks on the neighbour graph of the space
  (``DesignSpace.neighbours``: an ordered parameter one level up or down, a categorical to
  any other choice). Each round every walker proposes one unvisited neighbour of its current
  design; all proposals are evaluated as one batch. A walker moves to the neighbour if it is
  not worse (``accept="improve"``, a stochastic hill climb) or always (``accept="always"``, a
  pure walk), and restarts at a uniform random design with probability ``restart_prob`` or
  when every neighbour of its design has been visited.

Already-evaluated designs are remembered, so neither agent spends budget on a repeat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, Design, register_agent

__all__ = ["HYPERPARAMETERS", "RANDOM_HYPERPARAMETERS", "random_search", "random_walk"]

RANDOM_HYPERPARAMETERS: dict[str, list[Any]] = {"batch_size": [1, 8, 32]}
HYPERPARAMETERS: dict[str, list[Any]] = {
    "walkers": [1, 4, 8],
    "restart_prob": [0.0, 0.05, 0.2],
    "accept": ["improve", "always"],
}


def _key(design: Design) -> tuple:
    return tuple(design.values())


def _fresh(problem: BudgetedProblem, rng: np.random.Generator, n: int, seen: set[tuple],
           max_tries: int = 20) -> list[Design]:
    """``n`` random feasible designs not in ``seen``: rejection sampling for ``max_tries``
    rounds, then (in a discrete space of at most 200,000 designs) a draw among the unseen
    designs; fewer only if the space is exhausted."""
    space = problem.space
    out: list[Design] = []
    keys: set[tuple] = set()
    for _ in range(max_tries):
        if len(out) >= n:
            return out
        for d in space.sample(rng, 2 * (n - len(out)) + 4):
            k = _key(d)
            if k not in seen and k not in keys and len(out) < n:
                out.append(d)
                keys.add(k)
    if len(out) < n and space.is_discrete and space.size() <= 200_000:
        rest = [d for d in space.enumerate() if _key(d) not in seen and _key(d) not in keys]
        pick = rng.permutation(len(rest))[: n - len(out)]
        out += [rest[i] for i in pick]
    return out


@register_agent("random")
def random_search(problem: BudgetedProblem, rng: np.random.Generator, batch_size: int = 8,
                  max_tries: int = 20) -> None:
    """Uniform random search without repeats.

    Hyperparameters: ``batch_size`` (designs per evaluated batch, default 8), ``max_tries``
    (redraw rounds to find unseen designs before concluding the space is exhausted, default 20).
    """
    if batch_size < 1:
        raise AgentConfigError(f"batch_size must be >= 1, got {batch_size}")
    seen: set[tuple] = set()
    while not problem.exhausted:
        batch = _fresh(problem, rng, min(batch_size, problem.remaining), seen, max_tries)
        if not batch:
            return  # every design of the space has been evaluated
        problem.evaluate(batch)
        seen.update(_key(d) for d in batch)


@register_agent("random_walk")
def random_walk(problem: BudgetedProblem, rng: np.random.Generator, walkers: int = 4,
                restart_prob: float = 0.05, accept: str = "improve") -> None:
    """Parallel random walks with restarts (see the module docstring).

    Hyperparameters: ``walkers`` (walks advanced together; one batch per round, default 4),
    ``restart_prob`` (chance per walker and round to jump to a random design, default 0.05),
    ``accept`` (``"improve"``: move only to a neighbour at least as good, default;
    ``"always"``: move to every proposed neighbour).
    """
    if walkers < 1:
        raise AgentConfigError(f"walkers must be >= 1, got {walkers}")
    if not 0.0 <= restart_prob <= 1.0:
        raise AgentConfigError(f"restart_prob must be in [0, 1], got {restart_prob}")
    if accept not in ("improve", "always"):
        raise AgentConfigError(f"accept must be 'improve' or 'always', got {accept!r}")
    space = problem.space
    memo: dict[tuple, float] = {}

    starts = _fresh(problem, rng, min(walkers, problem.remaining), set())
    rewards = problem.evaluate(starts)
    memo.update({_key(d): float(r) for d, r in zip(starts, rewards)})
    current: list[Design] = list(starts)
    value: list[float] = rewards.tolist()

    while not problem.exhausted:
        proposals: list[Design] = []
        owners: list[int] = []
        taken: set[tuple] = set()
        restarts = rng.random(len(current)) < restart_prob
        for w, design in enumerate(current):
            options = [] if restarts[w] else [
                d for d in space.neighbours(design)
                if _key(d) not in memo and _key(d) not in taken]
            if not options:  # restart: at a local optimum, or by chance
                fresh = _fresh(problem, rng, 1, memo.keys() | taken)
                if not fresh:
                    continue
                pick, owners_restart = fresh[0], True
            else:
                pick, owners_restart = options[int(rng.integers(len(options)))], False
            proposals.append(pick)
            owners.append(-w - 1 if owners_restart else w)
            taken.add(_key(pick))
        if not proposals:
            return  # the space is exhausted
        rewards = problem.evaluate(proposals)
        for d, r, o in zip(proposals, rewards.tolist(), owners):
            memo[_key(d)] = r
            w = o if o >= 0 else -o - 1
            if o < 0 or accept == "always" or r >= value[w]:
                current[w], value[w] = d, r
