"""Genetic algorithm over index encodings (one gene per parameter: its level index).

Generational GA with elitism: the first generation is ``population`` uniform random feasible
designs; every later generation keeps the ``elite`` best individuals and fills the rest with
children — two parents picked by tournaments of ``tournament`` individuals, recombined with
probability ``crossover_rate`` (``uniform`` or ``one_point`` crossover), then each gene
resampled to another level with probability ``mutation_rate``. Each generation's children
are evaluated as one batch.

A child that repeats an already-evaluated design (or a sibling) is mutated again, up to
``max_tries`` times, then replaced by a random unseen design, so no budget is spent on
repeats; infeasible children (constraints of the space) are treated the same way. Floats
live on the space's ``float_levels`` grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.novelty import novel_rows

__all__ = ["HYPERPARAMETERS", "genetic_algorithm"]

HYPERPARAMETERS: dict[str, list[Any]] = {
    "population": [8, 16, 32],
    "mutation_rate": [0.05, 0.1, 0.3],
    "crossover": ["uniform", "one_point"],
    "tournament": [2, 3],
    "elite": [1, 2],
}


def _mutate(genes: np.ndarray, nvec: np.ndarray, rate: float, rng: np.random.Generator
            ) -> np.ndarray:
    """Each gene moved to a different level (uniformly) with probability ``rate``."""
    flip = (rng.random(genes.shape) < rate) & (nvec > 1)
    shift = rng.integers(1, np.maximum(nvec, 2), size=genes.shape)  # 1..k-1 levels away
    return np.where(flip, (genes + shift) % nvec, genes)


def _crossover(a: np.ndarray, b: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One child of parent rows ``a`` and ``b`` (vectorized over rows)."""
    n, d = a.shape
    if kind == "uniform":
        take_b = rng.random((n, d)) < 0.5
    else:  # one_point: genes from the cut point on come from b
        cut = rng.integers(1, max(d, 2), size=(n, 1))
        take_b = np.arange(d)[None, :] >= cut
    return np.where(take_b, b, a)


@register_agent("ga")
def genetic_algorithm(problem: BudgetedProblem, rng: np.random.Generator, population: int = 16,
                      mutation_rate: float = 0.1, crossover: str = "uniform",
                      crossover_rate: float = 0.9, tournament: int = 3, elite: int = 2,
                      max_tries: int = 10) -> None:
    """Genetic algorithm (see the module docstring).

    Hyperparameters: ``population`` (individuals per generation, default 16),
    ``mutation_rate`` (per-gene probability, default 0.1), ``crossover`` (``"uniform"``,
    default, or ``"one_point"``), ``crossover_rate`` (default 0.9), ``tournament`` (tournament
    size, default 3), ``elite`` (best individuals kept unchanged, default 2), ``max_tries``
    (re-mutations of a repeated child before a random replacement, default 10).
    """
    if population < 2:
        raise AgentConfigError(f"population must be >= 2, got {population}")
    if not 0 <= elite < population:
        raise AgentConfigError(f"elite must be in [0, population), got {elite}")
    if crossover not in ("uniform", "one_point"):
        raise AgentConfigError(f"crossover must be 'uniform' or 'one_point', got {crossover!r}")
    if not (0.0 <= mutation_rate <= 1.0 and 0.0 <= crossover_rate <= 1.0):
        raise AgentConfigError("mutation_rate and crossover_rate must be in [0, 1]")
    if tournament < 1:
        raise AgentConfigError(f"tournament must be >= 1, got {tournament}")
    space = problem.space
    nvec = space.nvec

    def random_genes(n: int) -> np.ndarray:
        return space.encode_batch(space.sample(rng, n), "index", validate=False)

    seen: set[bytes] = set()

    def novel(children: np.ndarray) -> np.ndarray:
        """Children made unseen and feasible (rows that cannot be fixed are dropped)."""
        return novel_rows(space, children, seen,
                          lambda row: _mutate(row, nvec, max(mutation_rate, 1.0 / len(nvec)),
                                              rng)[0],
                          max_tries, rng)

    def evaluate(genes: np.ndarray) -> np.ndarray:
        rewards = problem.evaluate(space.decode_batch(genes[: problem.remaining], "index"))
        seen.update(g.tobytes() for g in genes[: len(rewards)])
        return rewards

    pop = novel(random_genes(min(population, problem.remaining)))
    fit = evaluate(pop)
    pop = pop[: len(fit)]
    while not problem.exhausted:
        order = np.argsort(-fit, kind="stable")
        elites, elite_fit = pop[order[:elite]], fit[order[:elite]]
        n_child = population - len(elites)
        contenders = rng.integers(len(pop), size=(2, n_child, tournament))
        winners = np.take_along_axis(contenders, np.argmax(fit[contenders], axis=2)[..., None],
                                     axis=2)[..., 0]
        mums, dads = pop[winners[0]], pop[winners[1]]
        children = np.where((rng.random(n_child) < crossover_rate)[:, None],
                            _crossover(mums, dads, crossover, rng), mums)
        children = novel(_mutate(children, nvec, mutation_rate, rng))
        if not len(children):
            return  # nothing unseen is left to evaluate
        child_fit = evaluate(children)
        pop = np.concatenate([elites, children[: len(child_fit)]])
        fit = np.concatenate([elite_fit, child_fit])
