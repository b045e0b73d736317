"""BoTorch view of a DesignSpace: bounds and mixed-variable structure over the ``ordinal``
encoding. Imports torch only when called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from mlsysgym.core.space import DesignSpace

__all__ = ["BoTorchSpace", "botorch_bounds"]


@dataclass(frozen=True)
class BoTorchSpace:
    """The space in BoTorch's terms over the ``ordinal`` encoding.

    ``bounds`` is a 2×d double tensor; ``cat_dims`` / ``discrete_dims`` map a dimension to
    its allowed values (level indices), as ``optimize_acqf_mixed_alternating`` takes them;
    ``integer_dims`` are the ordered discrete dimensions (Integer, PowerOfTwo), ``cat_dims``
    the Categorical ones; the remaining dimensions are Floats in [0, 1].
    """

    bounds: torch.Tensor
    cat_dims: dict[int, list[float]]
    discrete_dims: dict[int, list[float]]
    names: tuple[str, ...]

    @property
    def integer_dims(self) -> list[int]:
        return sorted(self.discrete_dims)

    @property
    def categorical_dims(self) -> list[int]:
        return sorted(self.cat_dims)


def botorch_bounds(space: DesignSpace) -> BoTorchSpace:
    """Bounds and mixed-variable structure over the ``ordinal`` encoding: level indices for
    discrete parameters, [0, 1] for Floats. Decode candidates with
    ``decode_batch(X.numpy(), "ordinal")``."""
    import torch

    lo = np.zeros(space.dim)
    hi = np.where(space._discrete, space._nlev - 1, 1.0).astype(np.float64)
    cat: dict[int, list[float]] = {}
    disc: dict[int, list[float]] = {}
    for j, p in enumerate(space.params):
        if p.discrete:
            (disc if p.ordered else cat)[j] = [float(i) for i in range(int(space._nlev[j]))]
    bounds = torch.tensor(np.stack([lo, hi]), dtype=torch.double)
    return BoTorchSpace(bounds, cat, disc, space.names)
