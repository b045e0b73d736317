"""The parameters of a DesignSpace: Categorical, Integer, PowerOfTwo and Float."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
from mlsysgym.core.errors import (
    NotPowerOfTwoError,
    OutOfRangeError,
    ParameterTypeError,
    SpaceDefinitionError,
)

__all__ = ["Categorical", "Float", "Integer", "Parameter", "PowerOfTwo"]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and \
        not isinstance(v, (bool, np.bool_))


def _as_int(name: str, v: Any, what: str) -> int:
    """An int from an int or an integral float; ParameterTypeError otherwise."""
    if _is_int(v):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    raise ParameterTypeError(f"{name}={v!r} must be {what}, got {type(v).__name__}")


# ---- parameters ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    """Shared behaviour: ``levels`` of a discrete parameter, unit-cube maps, validation."""

    name: str
    discrete: ClassVar[bool] = True
    ordered: ClassVar[bool] = True

    def n_levels(self, float_levels: int) -> int:
        """How many levels the parameter has (``float_levels`` for a Float)."""
        return len(self.levels(float_levels))

    def levels(self, float_levels: int) -> np.ndarray:  # pragma: no cover - abstract
        """The values of the parameter's levels, in order."""
        raise NotImplementedError

    def check(self, value: Any) -> Any:  # pragma: no cover - abstract
        """The canonical Python value of ``value``, or a typed DesignError."""
        raise NotImplementedError

    def index_of(self, values: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Level index of each (valid) value."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (``type`` plus the constructor's fields)."""
        d = {"type": type(self).__name__}
        for f in fields(self):
            k = f.name
            v = getattr(self, k)
            d[k] = list(v) if isinstance(v, tuple) else v
        return d


@dataclass(frozen=True)
class Categorical(_Param):
    """An unordered choice among ``choices`` (strings, ints, floats or bools)."""

    choices: tuple[Any, ...] = ()
    ordered: ClassVar[bool] = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise SpaceDefinitionError(f"Categorical {self.name!r} needs at least one choice")
        if len(set(self.choices)) != len(self.choices):
            raise SpaceDefinitionError(f"Categorical {self.name!r} has duplicate choices")
        for c in self.choices:
            if not isinstance(c, (str, int, float, bool)):
                raise SpaceDefinitionError(
                    f"Categorical {self.name!r} choice {c!r} must be str, int, float or bool")
        object.__setattr__(self, "_lookup", {c: i for i, c in enumerate(self.choices)})

    def levels(self, float_levels: int = 0) -> np.ndarray:
        if all(isinstance(c, str) for c in self.choices):
            return np.array(self.choices)
        arr = np.empty(len(self.choices), dtype=object)
        arr[:] = self.choices
        return arr

    def check(self, value: Any) -> Any:
        if isinstance(value, np.generic):
            value = value.item()
        try:
            idx = self._lookup.get(value)  # type: ignore[attr-defined]
        except TypeError:  # unhashable (list, dict, ...)
            idx = None
        if idx is not None and type(self.choices[idx]) is type(value):
            return value
        if idx is not None and not isinstance(value, bool):
            return self.choices[idx]  # 2 for 2.0 and the like
        if not any(isinstance(value, type(c)) for c in self.choices):
            types = sorted({type(c).__name__ for c in self.choices})
            raise ParameterTypeError(
                f"{self.name}={value!r} must be one of {list(self.choices)} "
                f"({'/'.join(types)}), got {type(value).__name__}")
        raise OutOfRangeError(f"{self.name}={value!r} is not one of {list(self.choices)}")

    def index_of(self, values: np.ndarray) -> np.ndarray:
        lk = self._lookup  # type: ignore[attr-defined]
        return np.fromiter((lk[v] for v in values.tolist()), dtype=np.int64, count=len(values))


@dataclass(frozen=True)
class Integer(_Param):
    """An integer in [low, high] on the grid low, low+step, ... (high included if on the grid)."""

    low: int = 0
    high: int = 0
    step: int = 1

    def __post_init__(self) -> None:
        for k in ("low", "high", "step"):
            if not _is_int(getattr(self, k)):
                raise SpaceDefinitionError(f"Integer {self.name!r}: {k} must be an int")
            object.__setattr__(self, k, int(getattr(self, k)))
        if self.step < 1 or self.low > self.high:
            raise SpaceDefinitionError(
                f"Integer {self.name!r} needs low <= high and step >= 1, "
                f"got low={self.low} high={self.high} step={self.step}")

    def levels(self, float_levels: int = 0) -> np.ndarray:
        return np.arange(self.low, self.high + 1, self.step, dtype=np.int64)

    def check(self, value: Any) -> int:
        v = _as_int(self.name, value, "an integer")
        if not self.low <= v <= self.high:
            raise OutOfRangeError(f"{self.name}={v} is out of range [{self.low}, {self.high}]")
        if (v - self.low) % self.step:
            raise OutOfRangeError(
                f"{self.name}={v} is not on the grid {self.low}, {self.low + self.step}, ... "
                f"(step {self.step})")
        return v

    def index_of(self, values: np.ndarray) -> np.ndarray:
        return (values.astype(np.int64) - self.low) // self.step


@dataclass(frozen=True)
class PowerOfTwo(_Param):
    """A power of two in [low, high]; both bounds must be powers of two (e.g. 1..128)."""

    low: int = 1
    high: int = 1

    def __post_init__(self) -> None:
        for k in ("low", "high"):
            v = getattr(self, k)
            if not _is_int(v) or v < 1 or (int(v) & (int(v) - 1)):
                raise SpaceDefinitionError(
                    f"PowerOfTwo {self.name!r}: {k}={v!r} must be a power of two >= 1")
            object.__setattr__(self, k, int(v))
        if self.low > self.high:
            raise SpaceDefinitionError(f"PowerOfTwo {self.name!r} needs low <= high")

    def levels(self, float_levels: int = 0) -> np.ndarray:
        lo, hi = self.low.bit_length() - 1, self.high.bit_length() - 1
        return np.left_shift(np.int64(1), np.arange(lo, hi + 1, dtype=np.int64))

    def check(self, value: Any) -> int:
        v = _as_int(self.name, value, "a power-of-two integer")
        if v < 1 or v & (v - 1):
            raise NotPowerOfTwoError(f"{self.name}={v} is not a power of two "
                                     f"(choose from {self.levels().tolist()})")
        if not self.low <= v <= self.high:
            raise OutOfRangeError(f"{self.name}={v} is out of range [{self.low}, {self.high}]")
        return v

    def index_of(self, values: np.ndarray) -> np.ndarray:
        v = values.astype(np.int64)
        return np.log2(v).round().astype(np.int64) - (self.low.bit_length() - 1)


@dataclass(frozen=True)
class Float(_Param):
    """A real number in [low, high], uniform or (``log=True``, low > 0) log-uniform."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    discrete: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for k in ("low", "high"):
            v = getattr(self, k)
            if not _is_real(v) or not math.isfinite(v):
                raise SpaceDefinitionError(f"Float {self.name!r}: {k}={v!r} must be finite")
            object.__setattr__(self, k, float(v))
        if self.low > self.high or (self.log and self.low <= 0):
            raise SpaceDefinitionError(
                f"Float {self.name!r} needs low <= high (and low > 0 when log=True)")

    def levels(self, float_levels: int) -> np.ndarray:
        return self.from_unit(np.linspace(0.0, 1.0, max(int(float_levels), 1)))

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Position of each value in [0, 1] (in log space when ``log``)."""
        x = np.asarray(x, dtype=np.float64)
        if self.high == self.low:
            return np.zeros_like(x)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (np.log(x) - lo) / (hi - lo)
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """The value at each position ``u`` (clipped to [0, 1])."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            out = np.exp(lo + u * (hi - lo))
        else:
            out = self.low + u * (self.high - self.low)
        return np.clip(out, self.low, self.high)

    def check(self, value: Any) -> float:
        if not _is_real(value):
            raise ParameterTypeError(
                f"{self.name}={value!r} must be a number, got {type(value).__name__}")
        v = float(value)
        if not (self.low <= v <= self.high):
            raise OutOfRangeError(f"{self.name}={v} is out of range [{self.low}, {self.high}]")
        return v

    def index_of(self, values: np.ndarray, float_levels: int = 2) -> np.ndarray:
        n = max(int(float_levels), 1)
        return np.rint(self.to_unit(values) * (n - 1)).astype(np.int64)


Parameter = Categorical | Integer | PowerOfTwo | Float
_PARAM_TYPES: dict[str, type] = {c.__name__: c for c in (Categorical, Integer, PowerOfTwo, Float)}


def _object_array(vals: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(vals), dtype=object)
    arr[:] = list(vals)
    return arr


def _py(x: Any) -> Any:
    """A NumPy scalar as the Python value (str, int, float, bool); other values unchanged."""
    return x.item() if isinstance(x, np.generic) else x
