"""Pareto utilities over objective matrices: dominance, non-dominated sorting, exact hypervolume.

Convention: every function here takes an ``(n, k)`` array of objective values **to minimize**
(:func:`to_minimization` turns metrics with ``"minimize"``/``"maximize"`` directions into that
form by negating the maximized ones). ``a`` dominates ``b`` when ``a <= b`` in every objective
and ``a < b`` in at least one; equal points do not dominate each other (both stay on a front).

The hypervolume of a set of points against a reference point ``ref`` is the volume of the
union of the boxes ``[p, ref]`` over the points that are strictly better than ``ref`` in every
objective (the others add nothing). It is exact for 1, 2 and 3 objectives: 2-D by a sweep over
the front sorted on the first objective, 3-D by slicing along the third objective and summing
2-D hypervolumes of the slabs (O(n² log n) in the front size, fine for fronts of hundreds).

Normalization (:func:`normalize`): each objective is divided by the absolute value of its
reference coordinate, so the reference point becomes ±1 and the normalized hypervolume is the
hypervolume divided by ``prod(|ref|)``; for positive metrics that are minimized it is the
fraction of the box ``[0, ref]`` that the points dominate, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["ParetoError", "dominance_matrix", "hypervolume", "hypervolume_curve",
           "non_dominated_sort", "normalize", "pareto_mask", "to_minimization"]

DIRECTIONS = ("minimize", "maximize")


class ParetoError(MlsysgymError):
    """Bad objectives, directions or reference point for a Pareto computation."""


def _matrix(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    f = np.asarray(points, dtype=float)
    if f.ndim == 1:
        f = f[:, None] if f.size else f.reshape(0, 1)
    if f.ndim != 2:
        raise ParetoError(f"objective values must be an (n, k) array, got shape {f.shape}")
    return f


def to_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``values`` (n, k) with maximized columns negated, so that every column is minimized."""
    f = _matrix(values)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or len(directions) != f.shape[1]:
        raise ParetoError(f"need one direction per objective ({f.shape[1]}), each 'minimize' or "
                          f"'maximize'; got {list(directions)}")
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    return f * sign


def normalize(points: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """Points (minimization form) divided column-wise by ``|ref|`` (see the module docstring)."""
    r = np.asarray(ref, dtype=float)
    if np.any(r == 0) or not np.all(np.isfinite(r)):
        raise ParetoError(f"a reference point for normalization needs finite non-zero "
                          f"coordinates, got {r.tolist()}")
    return _matrix(points) / np.abs(r)


def dominance_matrix(points: np.ndarray) -> np.ndarray:
    """Boolean (n, n): ``D[i, j]`` is True when point i dominates point j."""
    f = _matrix(points)
    le = (f[:, None, :] <= f[None, :, :]).all(-1)
    lt = (f[:, None, :] < f[None, :, :]).any(-1)
    return le & lt


def non_dominated_sort(points: np.ndarray) -> np.ndarray:
    """Front index of every point: 0 for the non-dominated ones, 1 for those dominated only by
    front 0, and so on (the ranks of NSGA-II's fast non-dominated sort)."""
    f = _matrix(points)
    n = len(f)
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    dom = dominance_matrix(f)
    count = dom.sum(0)  # how many points dominate each point
    rank = 0
    left = np.ones(n, dtype=bool)
    while left.any():
        front = left & (count == 0)
        ranks[front] = rank
        left &= ~front
        count = count - dom[front].sum(0)
        rank += 1
    return ranks


def pareto_mask(points: np.ndarray, block_elements: int = 20_000_000) -> np.ndarray:
    """Boolean per point: not dominated by any other point (front 0). Compares blocks of rows
    against all points, so memory stays near ``block_elements`` booleans for large sets."""
    f = _matrix(points)
    n, k = f.shape
    dominated = np.zeros(n, dtype=bool)
    step = max(1, block_elements // max(n * k, 1))
    for start in range(0, n, step):
        block = f[start:start + step]
        le = (block[:, None, :] <= f[None, :, :]).all(-1)
        lt = (block[:, None, :] < f[None, :, :]).any(-1)
        dominated |= (le & lt).any(0)
    return ~dominated


def _hv2(f: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume of points already strictly inside ``ref``."""
    if len(f) == 0:
        return 0.0
    f = f[np.lexsort((f[:, 1], f[:, 0]))]
    best1 = np.minimum.accumulate(f[:, 1])  # the staircase: lowest 2nd objective so far
    right = np.append(f[1:, 0], ref[0])
    return float(np.sum((right - f[:, 0]) * (ref[1] - best1)))


def _hv3(f: np.ndarray, ref: np.ndarray) -> float:
    """3-D hypervolume: slabs between consecutive third-objective values, each a 2-D volume."""
    f = f[np.argsort(f[:, 2], kind="stable")]
    z = np.append(f[:, 2], ref[2])
    total = 0.0
    for i in range(len(f)):
        depth = z[i + 1] - z[i]
        if depth > 0:
            total += depth * _hv2(f[: i + 1, :2], ref[:2])
    return total


def hypervolume(points: np.ndarray, ref: Sequence[float]) -> float:
    """Exact hypervolume of ``points`` (minimization form, 1 to 3 objectives) against ``ref``."""
    f = _matrix(points)
    r = np.asarray(ref, dtype=float).reshape(-1)
    if len(r) != f.shape[1]:
        raise ParetoError(f"reference point has {len(r)} coordinates for {f.shape[1]} objectives")
    if f.shape[1] > 3:
        raise ParetoError(f"exact hypervolume is implemented for 1-3 objectives, got {f.shape[1]}")
    f = f[np.all(np.isfinite(f), axis=1) & np.all(f < r, axis=1)]
    if len(f) == 0:
        return 0.0
    f = f[pareto_mask(f)]
    if f.shape[1] == 1:
        return float(r[0] - f[:, 0].min())
    return _hv2(f, r) if f.shape[1] == 2 else _hv3(f, r)


def hypervolume_curve(points: np.ndarray, ref: Sequence[float],
                      feasible: np.ndarray | None = None) -> np.ndarray:
    """Hypervolume of the first ``i + 1`` points (those marked ``feasible``) for every ``i``:
    the hypervolume after each evaluation. Recomputed only when a point enlarges the front."""
    f = _matrix(points)
    r = np.asarray(ref, dtype=float).reshape(-1)
    ok = np.ones(len(f), dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool)
    ok = ok & np.all(np.isfinite(f), axis=1) & np.all(f < r, axis=1)
    curve = np.zeros(len(f))
    front = np.zeros((0, f.shape[1]))
    value = 0.0
    for i in range(len(f)):
        if ok[i]:
            p = f[i]
            if not np.any(np.all(front <= p, axis=1)):  # neither dominated by nor equal to the front
                keep = ~np.all(p <= front, axis=1)
                front = np.vstack([front[keep], p])
                value = hypervolume(front, r)
        curve[i] = value
    return curve
