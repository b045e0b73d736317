"""Gymnasium views of a DesignSpace: Dict, MultiDiscrete and Box action spaces, and the maps
between a design and an element of ``dict_space``. Imports gymnasium only when called."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from mlsysgym.core.params import _py

if TYPE_CHECKING:
    import gymnasium
    from mlsysgym.core.space import Design, DesignSpace

__all__ = ["box_space", "dict_space", "from_gym_dict", "multidiscrete_space", "to_gym_dict"]


def dict_space(space: DesignSpace, seed: int | None = None) -> gymnasium.spaces.Dict:
    """``Dict``: ``Discrete(k)`` (a level index) per discrete parameter, ``Box`` of shape
    (1,) in the parameter's own units per Float. Decode with ``from_gym_dict``."""
    from gymnasium import spaces

    sub: dict[str, Any] = {}
    for j, p in enumerate(space.params):
        if p.discrete:
            sub[p.name] = spaces.Discrete(int(space._nlev[j]))
        else:
            sub[p.name] = spaces.Box(p.low, p.high, shape=(1,), dtype=np.float32)  # type: ignore
    return spaces.Dict(sub, seed=seed)


def multidiscrete_space(space: DesignSpace, seed: int | None = None) -> gymnasium.spaces.MultiDiscrete:
    """``MultiDiscrete(nvec)`` over level indices; Floats discretized to ``float_levels``.
    Decode an action with ``decode(action, "index")``."""
    from gymnasium import spaces

    return spaces.MultiDiscrete(space._nlev.copy(), seed=seed)


def box_space(space: DesignSpace, seed: int | None = None, onehot: bool = False) -> gymnasium.spaces.Box:
    """A flat ``Box`` in [0, 1]^d (the ``unit`` encoding), or [0, 1]^onehot_dim with
    ``onehot=True``. Decode an action with ``decode(action, "unit")``."""
    from gymnasium import spaces

    d = space.onehot_dim if onehot else space.dim
    return spaces.Box(0.0, 1.0, shape=(d,), dtype=np.float32, seed=seed)


def to_gym_dict(space: DesignSpace, design: Mapping[str, Any]) -> dict[str, Any]:
    """A design as an element of ``dict_space``."""
    d = space.validate(design, check_constraints=False)
    idx = space.encode(d, "index")
    return {p.name: int(idx[j]) if p.discrete else np.array([d[p.name]], dtype=np.float32)
            for j, p in enumerate(space.params)}


def from_gym_dict(space: DesignSpace, action: Mapping[str, Any]) -> Design:
    """The design of an element of ``dict_space``."""
    out: Design = {}
    for j, p in enumerate(space.params):
        v = action[p.name]
        if p.discrete:
            i = int(np.clip(int(np.asarray(v).reshape(-1)[0]), 0, space._nlev[j] - 1))
            out[p.name] = _py(space._levels[j][i])
        else:
            x = float(np.asarray(v, dtype=np.float64).reshape(-1)[0])
            out[p.name] = float(np.clip(x, p.low, p.high))  # type: ignore[union-attr]
    return out
