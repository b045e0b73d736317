"""Action checks shared by the envs with a ``Discrete(n)`` action space: an action outside the
space (not an integer, NaN, a string, a bool, a vector, out of range) is an
:class:`~mlsysgym.envs.design_env.InvalidActionError`, never rounded, wrapped or clamped."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from mlsysgym.envs.design_env import InvalidActionError

__all__ = ["InvalidActionError", "check_discrete_action"]


def check_discrete_action(action: Any, n: int) -> int:
    """``action`` as an int if it lies in ``Discrete(n)``; InvalidActionError otherwise.

    Accepted: a Python or NumPy integer, an integral float (``2.0``), or a one-element array of
    either (what ``model.predict`` returns). Refused: bools, strings, NaN/inf, 2.5, vectors of
    more than one element, values outside ``[0, n)``.
    """
    value = action
    if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
        value = value.reshape(()).item()
    elif isinstance(value, np.generic):
        value = value.item()
    hint = f"the action space is Discrete({n}): an integer in [0, {n})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidActionError(f"action {action!r:.60} is not an integer; {hint}")
    if not (isinstance(value, numbers.Integral)
            or (np.isfinite(value) and float(value).is_integer())):
        raise InvalidActionError(f"action {action!r:.60} is not an integer; {hint}")
    a = int(value)
    if not 0 <= a < n:
        raise InvalidActionError(f"action {a} must be in [0, {n}); {hint}")
    return a
