"""Unseen, feasible index-encoded designs for the population agents (GA, ACO).

A row that repeats an evaluated design (or an earlier row of its batch) or breaks the space's
constraints is rebuilt by the agent's own move up to ``max_tries`` times, then replaced by a
random design up to three times; a row still repeated or infeasible is dropped, so no budget
is spent on repeats.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mlsysgym.core.space import DesignSpace

__all__ = ["feasible_rows", "novel_rows"]

_RANDOM_TRIES = 3


def feasible_rows(space: DesignSpace, genes: np.ndarray) -> np.ndarray:
    """Which rows of an (n, d) level-index array satisfy the space's constraints."""
    if not space.constraints:
        return np.ones(len(genes), dtype=bool)
    return space.feasible(space.columns_from_indices(genes))


def novel_rows(space: DesignSpace, genes: np.ndarray, seen: set[bytes],
               rebuild: Callable[[np.ndarray], np.ndarray], max_tries: int,
               rng: np.random.Generator) -> np.ndarray:
    """The rows of ``genes`` made unseen and feasible (a copy; rows that cannot be fixed are
    dropped); ``rebuild`` maps a (1, d) row to a new (d,) row."""
    genes = genes.copy()
    keep = np.ones(len(genes), dtype=bool)
    batch: set[bytes] = set()
    ok = feasible_rows(space, genes)
    for i in range(len(genes)):
        for attempt in range(max_tries + _RANDOM_TRIES):
            k = genes[i].tobytes()
            if ok[i] and k not in seen and k not in batch:
                batch.add(k)
                break
            if attempt < max_tries:
                genes[i] = rebuild(genes[i:i + 1])
            else:
                genes[i] = space.encode_batch(space.sample(rng, 1), "index", validate=False)[0]
            ok[i] = feasible_rows(space, genes[i:i + 1])[0]
        else:
            keep[i] = False
    return genes[keep]
