"""Optuna view of a DesignSpace: distributions and ``suggest(trial)``. Imports optuna only when
called."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsysgym.core.params import Float, Integer

if TYPE_CHECKING:
    from mlsysgym.core.space import Design, DesignSpace

__all__ = ["optuna_distributions", "suggest"]


def optuna_distributions(space: DesignSpace) -> dict[str, Any]:
    """``{name: optuna distribution}``: CategoricalDistribution for Categorical and
    PowerOfTwo (its values), IntDistribution(low, high, step) for Integer,
    FloatDistribution(low, high, log) for Float."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for j, p in enumerate(space.params):
        if isinstance(p, Integer):
            hi = p.low + (p.high - p.low) // p.step * p.step
            out[p.name] = IntDistribution(p.low, hi, step=p.step)
        elif isinstance(p, Float):
            out[p.name] = FloatDistribution(p.low, p.high, log=p.log)
        else:
            out[p.name] = CategoricalDistribution(space._levels[j].tolist())
    return out


def suggest(space: DesignSpace, trial: Any) -> Design:
    """A design suggested by an Optuna ``trial`` (constraints are not enforced; check
    ``is_valid`` and return a penalty or prune)."""
    out: Design = {}
    for j, p in enumerate(space.params):
        if isinstance(p, Integer):
            hi = p.low + (p.high - p.low) // p.step * p.step
            out[p.name] = trial.suggest_int(p.name, p.low, hi, step=p.step)
        elif isinstance(p, Float):
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        else:
            out[p.name] = trial.suggest_categorical(p.name, space._levels[j].tolist())
    return out
