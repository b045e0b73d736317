"""Compatibility path: the design space lives in :mod:`mlsysgym.core.space` (with its parameters,
constraints and errors in ``mlsysgym.core``). Kept because user code declares its spaces with
``from mlsysgym.envs.space import DesignSpace, ...``; the project imports from ``mlsysgym.core``."""

from __future__ import annotations

from mlsysgym.core.botorch_space import BoTorchSpace
from mlsysgym.core.constraints import Constraint
from mlsysgym.core.errors import (
    ConstraintViolationError,
    DesignError,
    MissingParameterError,
    NotPowerOfTwoError,
    OutOfRangeError,
    ParameterTypeError,
    SpaceDefinitionError,
    UnknownParameterError,
)
from mlsysgym.core.params import Categorical, Float, Integer, Parameter, PowerOfTwo
from mlsysgym.core.space import Design, DesignSpace, Kind

__all__ = [
    "BoTorchSpace", "Categorical", "Constraint", "ConstraintViolationError", "Design",
    "DesignError", "DesignSpace", "Float", "Integer", "Kind", "MissingParameterError",
    "NotPowerOfTwoError", "OutOfRangeError", "Parameter", "ParameterTypeError", "PowerOfTwo",
    "SpaceDefinitionError", "UnknownParameterError",
]
