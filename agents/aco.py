"""Ant colony optimization over the levels of each parameter (ArchGym's vanilla ACO).

Every (parameter, level) pair carries a pheromone ``tau`` (initially 1) and a heuristic
desirability ``eta``. An ant builds a design parameter by parameter: with probability
``greedy`` it takes the level maximizing ``tau**alpha * eta**beta``, otherwise it samples a
level with probability proportional to it. Each iteration ``ants`` designs are built and
evaluated as one batch; then all pheromone evaporates by a factor ``1 - evaporation`` and
the ``deposit_top`` best ants of the iteration, plus the best design found so far, deposit
pheromone on their levels (weights by rank; the best-so-far deposits 1). Pheromone is kept
within ``[tau_min, 1 / evaporation]`` so no level is ever ruled out for good (MAX-MIN ant
system).

The heuristic ``eta`` is learned from the evaluations: for each level, the rank (in [0, 1])
of the best reward seen with that level among all rewards so far, floored at ``eta_min``;
levels never tried keep ``eta = 1`` (optimism), so ``beta`` weighs "go where good designs
were seen" against the colony's pheromone memory.

An ant that repeats an evaluated design (or another ant of its batch), or builds an
infeasible one, is rebuilt up to ``max_tries`` times, then replaced by a random unseen design.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.novelty import novel_rows

__all__ = ["HYPERPARAMETERS", "ant_colony"]

HYPERPARAMETERS: dict[str, list[Any]] = {
    "ants": [4, 8, 16],
    "evaporation": [0.1, 0.3, 0.5],
    "alpha": [1.0, 2.0],
    "beta": [0.0, 1.0, 2.0],
    "greedy": [0.0, 0.1, 0.3],
}


def _construct(tau: np.ndarray, eta: np.ndarray, mask: np.ndarray, n: int, alpha: float,
               beta: float, greedy: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` ants' level choices, an (n, d) index array; ``tau``/``eta``/``mask`` are (d, L)."""
    weight = np.where(mask, tau ** alpha * eta ** beta, 0.0)
    prob = weight / weight.sum(axis=1, keepdims=True)
    cdf = np.cumsum(prob, axis=1)
    u = rng.random((n, len(tau)))
    sampled = (u[:, :, None] > cdf[None, :, :]).sum(axis=2)  # inverse-CDF draw per parameter
    sampled = np.minimum(sampled, mask.sum(axis=1) - 1)
    best = np.argmax(weight, axis=1)
    take_best = rng.random((n, len(tau))) < greedy
    return np.where(take_best, best[None, :], sampled)


@register_agent("aco")
def ant_colony(problem: BudgetedProblem, rng: np.random.Generator, ants: int = 8,
               evaporation: float = 0.3, alpha: float = 1.0, beta: float = 1.0,
               greedy: float = 0.1, deposit_top: int = 2, tau_min: float = 0.05,
               eta_min: float = 0.05, max_tries: int = 10) -> None:
    """Ant colony optimization (see the module docstring).

    Hyperparameters: ``ants`` (designs per iteration, one batch, default 8), ``evaporation``
    (fraction of pheromone lost per iteration, default 0.3), ``alpha`` (pheromone exponent,
    default 1), ``beta`` (heuristic exponent, default 1), ``greedy`` (probability of taking the
    best level instead of sampling, default 0.1), ``deposit_top`` (best ants per iteration that
    deposit, default 2), ``tau_min`` (pheromone floor, default 0.05), ``eta_min`` (heuristic
    floor, default 0.05), ``max_tries`` (rebuilds of a repeated ant, default 10).
    """
    if ants < 1:
        raise AgentConfigError(f"ants must be >= 1, got {ants}")
    if not 0.0 < evaporation <= 1.0:
        raise AgentConfigError(f"evaporation must be in (0, 1], got {evaporation}")
    if not 0.0 <= greedy <= 1.0:
        raise AgentConfigError(f"greedy must be in [0, 1], got {greedy}")
    space = problem.space
    nvec = space.nvec
    d, width = len(nvec), int(nvec.max())
    mask = np.arange(width)[None, :] < nvec[:, None]
    tau = np.where(mask, 1.0, 0.0)
    tau_max = 1.0 / evaporation
    best_level_reward = np.full((d, width), -np.inf)  # best reward seen with each level
    all_rewards: list[float] = []
    seen: set[bytes] = set()
    best_genes, best_reward = None, -np.inf
    rows = np.arange(d)

    def heuristic() -> np.ndarray:
        if not all_rewards:
            return np.ones((d, width))
        ranked = np.sort(np.asarray(all_rewards))
        rank = np.searchsorted(ranked, best_level_reward, side="right") / len(ranked)
        return np.where(np.isfinite(best_level_reward), np.maximum(rank, eta_min), 1.0)

    while not problem.exhausted:
        n = min(ants, problem.remaining)
        eta = heuristic()
        genes = _construct(tau, eta, mask, n, alpha, beta, greedy, rng)
        genes = novel_rows(space, genes, seen,  # a repeat is rebuilt by sampling, never greedily
                           lambda row, tau=tau, eta=eta: _construct(tau, eta, mask, 1, alpha,
                                                                    beta, 0.0, rng)[0],
                           max_tries, rng)
        if not len(genes):
            return  # nothing unseen is left to evaluate
        rewards = problem.evaluate(space.decode_batch(genes, "index"))
        seen.update(g.tobytes() for g in genes)
        all_rewards += rewards.tolist()
        for g, r in zip(genes, rewards):
            best_level_reward[rows, g] = np.maximum(best_level_reward[rows, g], r)
        top = np.argsort(-rewards, kind="stable")[:deposit_top]
        if rewards[top[0]] > best_reward:
            best_genes, best_reward = genes[top[0]].copy(), float(rewards[top[0]])
        tau *= 1.0 - evaporation
        for rank, i in enumerate(top):
            tau[rows, genes[i]] += 1.0 / (rank + 2)
        tau[rows, best_genes] += 1.0
        tau = np.where(mask, np.clip(tau, tau_min, tau_max), 0.0)
