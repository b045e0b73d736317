"""The error root of mlsysgym and the errors of design validation.

Every error mlsysgym raises on bad input derives from :class:`MlsysgymError`; each message is one
line saying what was wrong and how to fix it. Layers add their own subclasses (workload errors in
``mlsysgym.ir.errors``, ``EvaluationError``, ``DatasetError``, ``TargetError``, ...).
"""

from __future__ import annotations

__all__ = [
    "ConstraintViolationError",
    "DesignError",
    "MissingParameterError",
    "MlsysgymError",
    "NotPowerOfTwoError",
    "OutOfRangeError",
    "ParameterTypeError",
    "SpaceDefinitionError",
    "UnknownParameterError",
]


class MlsysgymError(Exception):
    """Base class of every error mlsysgym raises on bad input."""


class DesignError(MlsysgymError, ValueError):
    """A design (or a space declaration) is not valid; the message says what and how to fix it."""


class SpaceDefinitionError(DesignError):
    """The DesignSpace declaration itself is inconsistent (bad bounds, duplicate names, ...)."""


class UnknownParameterError(DesignError):
    """A design names a parameter the space does not have."""


class MissingParameterError(DesignError):
    """A design lacks a parameter of the space."""


class OutOfRangeError(DesignError):
    """A value outside a parameter's bounds, off its step grid, or not one of its choices."""


class ParameterTypeError(DesignError, TypeError):
    """A value of the wrong type (e.g. a string for an integer parameter)."""


class NotPowerOfTwoError(OutOfRangeError):
    """A PowerOfTwo parameter got a value that is not a power of two."""


class ConstraintViolationError(DesignError):
    """A design breaks a constraint between parameters."""
