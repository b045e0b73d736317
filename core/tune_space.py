"""Ray Tune view of a DesignSpace: a ``{name: tune domain}`` search space. Imports ray only
when called."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsysgym.core.params import Float, Integer

if TYPE_CHECKING:
    from mlsysgym.core.space import DesignSpace

__all__ = ["tune_space"]


def tune_space(space: DesignSpace) -> dict[str, Any]:
    """``{name: ray.tune domain}``: ``tune.choice`` for Categorical and PowerOfTwo,
    ``tune.randint`` (step 1) or ``tune.qrandint`` for Integer, ``tune.uniform`` /
    ``tune.loguniform`` for Float."""
    from ray import tune

    out: dict[str, Any] = {}
    for j, p in enumerate(space.params):
        if isinstance(p, Integer):
            if p.step == 1:
                out[p.name] = tune.randint(p.low, p.high + 1)  # upper bound exclusive
            elif p.low % p.step == 0:
                hi = p.low + (p.high - p.low) // p.step * p.step
                out[p.name] = tune.qrandint(p.low, hi, q=p.step)
            else:  # qrandint draws multiples of q; an offset grid needs an explicit choice
                out[p.name] = tune.choice(space._levels[j].tolist())
        elif isinstance(p, Float):
            f = tune.loguniform if p.log else tune.uniform
            out[p.name] = f(p.low, p.high)
        else:
            out[p.name] = tune.choice(space._levels[j].tolist())
    return out
