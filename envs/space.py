"""DesignSpace: one declaration of a problem's knobs, from which every other view derives.

Declare the parameters (and constraints between them) once::

    space = DesignSpace([
        Categorical("dataflow", ("ws", "os", "is")),
        PowerOfTwo("rows", 4, 256),
        Integer("pes", 14, 336, step=14),
        Float("clock_ghz", 0.5, 2.0),
    ], constraints=[Constraint("rows * pes <= 16384", "too many MACs")])

and get from it: Gymnasium spaces (``dict_space``, ``multidiscrete_space``, ``box_space``),
encodings of designs as vectors (``encode``/``decode`` with ``kind`` = ``"index"``,
``"unit"``, ``"ordinal"`` or ``"onehot"``; ``encode_batch``/``decode_batch`` over (n, d)
arrays), ``sample``, ``validate``, ``neighbours``, ``size``, Optuna distributions and
``suggest(trial)``, Ray Tune search spaces, BoTorch bounds, and a JSON-able dict.

Encodings (d = number of parameters):

- ``index``: one integer per parameter, the position of its value among the parameter's
  levels; a Float has ``float_levels`` evenly spaced levels (geometric if ``log``).
- ``unit``: one number in [0, 1] per parameter. A discrete parameter with k levels maps level
  i to the centre of the i-th of k equal bins, ``(i + 0.5) / k``, and any u in the bin back
  to i, so uniform u gives uniform levels. A Float maps linearly (or in log space).
- ``ordinal``: the index for discrete parameters and the unit value for floats — what
  BoTorch optimizes over (see ``botorch_bounds``).
- ``onehot``: one-hot blocks for discrete parameters, the unit value for floats.

Heavy libraries (gymnasium, optuna, ray, torch) are imported only by the methods that need them.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from mlsysgym.ir.errors import MlsysgymError

if TYPE_CHECKING:
    import gymnasium
    import torch

__all__ = [
    "BoTorchSpace",
    "Categorical",
    "Constraint",
    "ConstraintViolationError",
    "DesignError",
    "DesignSpace",
    "Float",
    "Integer",
    "MissingParameterError",
    "NotPowerOfTwoError",
    "OutOfRangeError",
    "Parameter",
    "ParameterTypeError",
    "PowerOfTwo",
    "SpaceDefinitionError",
    "UnknownParameterError",
]

Kind = Literal["index", "unit", "ordinal", "onehot"]
Design = dict[str, Any]


# ---- errors -------------------------------------------------------------------------------
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


# ---- constraints --------------------------------------------------------------------------
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.BitAnd: np.logical_and, ast.BitOr: np.logical_or,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": np.abs, "min": np.minimum, "max": np.maximum, "log2": np.log2, "sqrt": np.sqrt,
    "ceil": np.ceil, "floor": np.floor,
}


def _compile_expr(expr: str) -> tuple[ast.Expression, frozenset[str]]:
    """Parse a constraint expression; only arithmetic, comparisons, and/or/not and a few
    functions (abs, min, max, log2, sqrt, ceil, floor) over parameter names are allowed."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise SpaceDefinitionError(f"constraint {expr!r} is not a valid expression: {e.msg}") \
            from None
    names: set[str] = set()
    allowed = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name,
               ast.Constant, ast.Call, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd,
               ast.In, ast.NotIn, ast.Tuple, ast.List, *_BINOPS, *_CMPOPS)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise SpaceDefinitionError(
                f"constraint {expr!r} uses {type(node).__name__}; only arithmetic, comparisons, "
                f"and/or/not, in (...) and {sorted(_FUNCS)} are allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
                raise SpaceDefinitionError(
                    f"constraint {expr!r} calls an unknown function; allowed: {sorted(_FUNCS)}")
        elif isinstance(node, ast.Name):
            names.add(node.id)
    names -= {n.func.id for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return tree, frozenset(names)


def _eval_node(node: ast.AST, env: Mapping[str, Any]) -> Any:
    """Evaluate a parsed constraint elementwise over scalars or NumPy arrays."""
    if isinstance(node, ast.Expression):
        return _eval_node(node.body, env)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_eval_node(e, env) for e in node.elts]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval_node(node.left, env), _eval_node(node.right, env))
    if isinstance(node, ast.UnaryOp):
        v = _eval_node(node.operand, env)
        if isinstance(node.op, ast.Not):
            return np.logical_not(v)
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.BoolOp):
        vals = [_eval_node(v, env) for v in node.values]
        f = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = vals[0]
        for v in vals[1:]:
            out = f(out, v)
        return out
    if isinstance(node, ast.Compare):
        left = _eval_node(node.left, env)
        out: Any = True
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval_node(right_node, env)
            if isinstance(op, (ast.In, ast.NotIn)):
                res = np.isin(left, np.array(right, dtype=object)) \
                    if isinstance(left, np.ndarray) else left in right
                if isinstance(op, ast.NotIn):
                    res = np.logical_not(res)
            else:
                res = _CMPOPS[type(op)](left, right)
            out = np.logical_and(out, res)
            left = right
        return out
    if isinstance(node, ast.Call):
        return _FUNCS[node.func.id](*[_eval_node(a, env) for a in node.args])  # type: ignore
    raise SpaceDefinitionError(f"unsupported constraint syntax {type(node).__name__}")


@dataclass(frozen=True)
class Constraint:
    """A condition every valid design satisfies.

    ``rule`` is either an expression string over parameter names — e.g.
    ``"ifmap_kb + filter_kb + ofmap_kb <= 4096"`` or ``"dataflow != 'os' or rows <= 64"`` —
    evaluated elementwise (vectorized) and serializable to JSON, or a Python callable taking a
    design dict (``design -> bool``). A callable is first tried on a dict of NumPy columns
    (write it with NumPy ops and ``&``/``|`` to make it vectorized); if that fails it is
    called once per design. ``message`` is what a violation reports.
    """

    rule: str | Callable[[Mapping[str, Any]], Any]
    message: str = ""
    _tree: Any = field(default=None, init=False, repr=False, compare=False)
    _names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.rule, str):
            tree, names = _compile_expr(self.rule)
            object.__setattr__(self, "_tree", tree)
            object.__setattr__(self, "_names", names)
        elif not callable(self.rule):
            raise SpaceDefinitionError(f"constraint rule {self.rule!r} must be a str or callable")

    @property
    def description(self) -> str:
        """The message, else the expression, else the callable's name."""
        if self.message:
            return self.message
        if isinstance(self.rule, str):
            return self.rule
        return getattr(self.rule, "__name__", "constraint")

    def holds(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean array: does the constraint hold for each design (given as columns)?"""
        n = len(next(iter(columns.values()))) if columns else 0
        if self._tree is not None:
            res = _eval_node(self._tree, columns)
            return np.broadcast_to(np.asarray(res, dtype=bool), (n,)).copy()
        try:
            res = np.asarray(self.rule(columns))
            if res.shape == (n,):
                return res.astype(bool)
        except Exception:  # noqa: BLE001, S110 - scalar-only callables fall through to the loop
            pass
        keys = list(columns)
        lists = [columns[k].tolist() for k in keys]
        return np.fromiter((bool(self.rule(dict(zip(keys, row)))) for row in zip(*lists)),
                           dtype=bool, count=n)


# ---- BoTorch view ---------------------------------------------------------------------------
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


# ---- the space ------------------------------------------------------------------------------
class DesignSpace:
    """An ordered set of parameters plus constraints; every other view derives from it."""

    def __init__(self, params: Sequence[Parameter], constraints: Sequence[Constraint | str] = (),
                 float_levels: int = 16) -> None:
        if not params:
            raise SpaceDefinitionError("a DesignSpace needs at least one parameter")
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpaceDefinitionError(f"duplicate parameter names {dup}")
        if int(float_levels) < 2:
            raise SpaceDefinitionError("float_levels must be >= 2")
        self.params: tuple[Parameter, ...] = tuple(params)
        self.names: tuple[str, ...] = tuple(names)
        self.float_levels = int(float_levels)
        self._by_name = {p.name: p for p in self.params}
        cons = [Constraint(c) if isinstance(c, str) else c for c in constraints]
        for c in cons:
            unknown = sorted(c._names - set(names))
            if unknown:
                raise SpaceDefinitionError(
                    f"constraint {c.rule!r} refers to unknown parameter(s) {unknown}; "
                    f"parameters are {list(names)}")
        self.constraints: tuple[Constraint, ...] = tuple(cons)
        self._levels = [p.levels(self.float_levels) for p in self.params]
        self._nlev = np.array([len(lv) for lv in self._levels], dtype=np.int64)
        self._discrete = np.array([p.discrete for p in self.params])
        self._onehot_width = np.where(self._discrete, self._nlev, 1)
        self._onehot_offsets = np.concatenate([[0], np.cumsum(self._onehot_width)])

    # ---- basics -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.params)

    def __getitem__(self, name: str) -> Parameter:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"DesignSpace({list(self.params)!r}, constraints={list(self.constraints)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DesignSpace) and self.params == other.params and \
            self.constraints == other.constraints and self.float_levels == other.float_levels

    @property
    def dim(self) -> int:
        """Number of parameters (length of an index/unit/ordinal vector)."""
        return len(self.params)

    @property
    def onehot_dim(self) -> int:
        """Length of a one-hot vector."""
        return int(self._onehot_offsets[-1])

    @property
    def is_discrete(self) -> bool:
        """True when no parameter is a Float."""
        return bool(self._discrete.all())

    def levels(self, name: str) -> list[Any]:
        """The values of a parameter's levels (a Float's ``float_levels`` grid)."""
        return self._levels[self.names.index(name)].tolist()

    @property
    def nvec(self) -> np.ndarray:
        """Number of levels per parameter (Floats discretized to ``float_levels``)."""
        return self._nlev.copy()

    def size(self, float_levels: int | None = None) -> int | float:
        """Number of designs, ignoring constraints (``math.inf`` with Floats unless
        ``float_levels`` is given). ``count_feasible`` counts with constraints."""
        if not self.is_discrete and float_levels is None:
            return math.inf
        fl = self.float_levels if float_levels is None else int(float_levels)
        return math.prod(int(n) if p.discrete else fl for p, n in zip(self.params, self._nlev))

    # ---- validation ---------------------------------------------------------------------
    def validate(self, design: Mapping[str, Any], check_constraints: bool = True) -> Design:
        """The design with canonical Python values in declaration order, or a typed DesignError."""
        if not isinstance(design, Mapping):
            raise ParameterTypeError(f"a design must be a dict of parameter values, "
                                     f"got {type(design).__name__}")
        for k in design:
            if k not in self._by_name:
                close = difflib.get_close_matches(str(k), self.names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f"; parameters are {list(self.names)}"
                raise UnknownParameterError(f"unknown parameter {k!r}{hint}")
        missing = [n for n in self.names if n not in design]
        if missing:
            raise MissingParameterError(f"design is missing parameter(s) {missing}")
        out = {p.name: p.check(design[p.name]) for p in self.params}
        if check_constraints:
            for c in self.constraints:
                cols = {k: np.array([v], dtype=object if isinstance(v, str) else None)
                        for k, v in out.items()}
                if not c.holds(cols)[0]:
                    raise ConstraintViolationError(
                        f"design violates constraint: {c.description}"
                        + (f" ({c.rule})" if c.message and isinstance(c.rule, str) else ""))
        return out

    def is_valid(self, design: Mapping[str, Any]) -> bool:
        """True when ``validate`` would succeed."""
        try:
            self.validate(design)
        except DesignError:
            return False
        return True

    def feasible(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean array: which designs (as columns of values) satisfy every constraint."""
        n = len(next(iter(columns.values())))
        ok = np.ones(n, dtype=bool)
        for c in self.constraints:
            ok &= c.holds(columns)
        return ok

    # ---- columns <-> indices --------------------------------------------------------------
    def columns_from_indices(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Value columns for an (n, d) array of level indices (clipped into range)."""
        idx = np.clip(np.asarray(idx, dtype=np.int64), 0, self._nlev - 1)
        return {p.name: lv[idx[:, j]] for j, (p, lv) in enumerate(zip(self.params, self._levels))}

    def to_columns(self, designs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Value columns (one NumPy array per parameter) of a list of designs."""
        out = {}
        for j, p in enumerate(self.params):
            vals = [d[p.name] for d in designs]
            if isinstance(p, Categorical):
                out[p.name] = _object_array(vals)
            else:
                out[p.name] = np.array(vals, dtype=self._levels[j].dtype)
        return out

    def _designs_from_columns(self, cols: Mapping[str, np.ndarray]) -> list[Design]:
        lists = [cols[n].tolist() for n in self.names]
        return [dict(zip(self.names, row)) for row in zip(*lists)]

    def _indices(self, designs: Sequence[Mapping[str, Any]], validate: bool) -> np.ndarray:
        if validate:
            for i, d in enumerate(designs):
                try:
                    self.validate(d, check_constraints=False)
                except DesignError as e:
                    if len(designs) == 1:
                        raise
                    raise type(e)(f"design {i}: {e}") from None
        cols = self.to_columns(designs)
        out = np.empty((len(designs), self.dim), dtype=np.int64)
        for j, p in enumerate(self.params):
            if p.discrete:
                out[:, j] = p.index_of(cols[p.name])
            else:
                out[:, j] = p.index_of(cols[p.name], self.float_levels)
        return out

    # ---- encode / decode ----------------------------------------------------------------
    def encode_batch(self, designs: Sequence[Mapping[str, Any]], kind: Kind = "index",
                     validate: bool = True) -> np.ndarray:
        """An (n, width) array encoding each design (see the module docstring for ``kind``)."""
        designs = list(designs)
        if kind == "index":
            return self._indices(designs, validate)
        if kind not in ("unit", "ordinal", "onehot"):
            raise DesignError(f"unknown encoding {kind!r}; use index, unit, ordinal or onehot")
        idx = self._indices(designs, validate).astype(np.float64)
        n = len(designs)
        fu = {}
        if not self.is_discrete:
            cols = self.to_columns(designs)
            fu = {j: self.params[j].to_unit(cols[p.name])  # type: ignore[union-attr]
                  for j, p in enumerate(self.params) if not p.discrete}
        if kind == "unit":
            out = (idx + 0.5) / self._nlev
        elif kind == "ordinal":
            out = idx
        else:
            out = np.zeros((n, self.onehot_dim))
            rows = np.arange(n)
            for j, p in enumerate(self.params):
                if p.discrete:
                    out[rows, self._onehot_offsets[j] + idx[:, j].astype(np.int64)] = 1.0
            for j, u in fu.items():
                out[:, self._onehot_offsets[j]] = u
            return out
        for j, u in fu.items():
            out[:, j] = u
        return out

    def encode(self, design: Mapping[str, Any], kind: Kind = "index") -> np.ndarray:
        """One design as a vector (``encode_batch`` of one row)."""
        return self.encode_batch([design], kind)[0]

    def decode_columns(self, arr: np.ndarray, kind: Kind = "index") -> dict[str, np.ndarray]:
        """Value columns for an (n, width) array of encoded designs — the fast path for a
        vectorized evaluator. Out-of-range entries are clipped, fractional indices rounded."""
        a = np.asarray(arr, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        width = self.onehot_dim if kind == "onehot" else self.dim
        if a.shape[1] != width:
            raise DesignError(f"expected {width} columns for {kind!r} encoding of "
                              f"{self.dim} parameters, got shape {a.shape}")
        if kind == "index" or kind == "ordinal":
            idx = np.rint(a).astype(np.int64)
        elif kind == "unit":
            idx = np.floor(np.clip(a, 0.0, 1.0) * self._nlev).astype(np.int64)
        elif kind == "onehot":
            idx = np.stack([
                np.argmax(a[:, self._onehot_offsets[j]:self._onehot_offsets[j + 1]], axis=1)
                if p.discrete else np.zeros(len(a), dtype=np.int64)
                for j, p in enumerate(self.params)], axis=1)
        else:
            raise DesignError(f"unknown encoding {kind!r}; use index, unit, ordinal or onehot")
        cols = self.columns_from_indices(idx)
        if kind != "index":
            for j, p in enumerate(self.params):
                if not p.discrete:
                    src = self._onehot_offsets[j] if kind == "onehot" else j
                    cols[p.name] = p.from_unit(a[:, src])  # type: ignore[union-attr]
        return cols

    def decode_batch(self, arr: np.ndarray, kind: Kind = "index") -> list[Design]:
        """Designs (dicts of Python values) from an (n, width) array of encoded designs."""
        return self._designs_from_columns(self.decode_columns(arr, kind))

    def decode(self, vec: np.ndarray, kind: Kind = "index") -> Design:
        """One design from an encoded vector."""
        return self.decode_batch(np.asarray(vec)[None, :], kind)[0]

    # ---- sampling, enumeration, neighbours -----------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None,
               max_tries: int = 100) -> Design | list[Design]:
        """Uniform random feasible designs (one dict if ``n`` is None, else a list of n).

        Discrete parameters are uniform over levels, Floats uniform (log-uniform if ``log``);
        infeasible samples are redrawn (DesignError if the constraints reject nearly all).
        """
        rng = np.random.default_rng(rng)
        m = 1 if n is None else int(n)
        cols = self.sample_columns(rng, m, max_tries)
        designs = self._designs_from_columns(cols)
        return designs[0] if n is None else designs

    def sample_columns(self, rng: np.random.Generator, n: int, max_tries: int = 100
                       ) -> dict[str, np.ndarray]:
        """``n`` uniform random feasible designs as value columns (vectorized)."""
        u = rng.random((n, self.dim))
        cols = self.decode_columns(u, "unit")
        if not self.constraints:
            return cols
        ok = self.feasible(cols)
        for _ in range(max_tries):
            bad = np.flatnonzero(~ok)
            if not len(bad):
                return cols
            redo = self.decode_columns(rng.random((len(bad), self.dim)), "unit")
            for k in cols:
                cols[k][bad] = redo[k]
            ok[bad] = self.feasible(redo)
        raise DesignError(f"could not sample {n} feasible designs in {max_tries} rounds; "
                          f"the constraints reject almost every design — loosen them")

    def all_indices(self) -> np.ndarray:
        """Every index vector of the space (Floats on their grid), as a (size, d) array."""
        total = self.size(self.float_levels)
        if total > 50_000_000:
            raise DesignError(f"space has {total} designs; too many to enumerate")
        grids = np.meshgrid(*[np.arange(k) for k in self._nlev], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)

    def enumerate(self, feasible_only: bool = True) -> list[Design]:
        """Every design of a small (discretized) space, feasible ones only by default."""
        idx = self.all_indices()
        cols = self.columns_from_indices(idx)
        if feasible_only and self.constraints:
            ok = self.feasible(cols)
            cols = {k: v[ok] for k, v in cols.items()}
        return self._designs_from_columns(cols)

    def count_feasible(self) -> int:
        """Number of (discretized) designs that satisfy every constraint."""
        cols = self.columns_from_indices(self.all_indices())
        return int(self.feasible(cols).sum()) if self.constraints else len(cols[self.names[0]])

    def neighbours(self, design: Mapping[str, Any], feasible_only: bool = True) -> list[Design]:
        """Designs one move away: an ordered parameter (Integer, PowerOfTwo, Float grid) one
        level up or down, a Categorical to any other choice. Floats move by one grid step."""
        base = self.validate(design, check_constraints=False)
        idx = self.encode(base, "index")
        out: list[Design] = []
        for j, p in enumerate(self.params):
            k = int(self._nlev[j])
            if not p.discrete:  # a Float moves one grid step in unit space, clipped at bounds
                step = 1.0 / (self.float_levels - 1)
                u = float(p.to_unit(np.array([base[p.name]]))[0])  # type: ignore[union-attr]
                moved = p.from_unit(np.array([u - step, u + step]))  # type: ignore[union-attr]
                for v in sorted({float(x) for x in moved}):
                    if v != base[p.name]:
                        out.append({**base, p.name: v})
                continue
            if p.ordered:
                cands = [i for i in (idx[j] - 1, idx[j] + 1) if 0 <= i < k]
            else:
                cands = [i for i in range(k) if i != idx[j]]
            for i in cands:
                out.append({**base, p.name: _py(self._levels[j][i])})
        if feasible_only and self.constraints and out:
            ok = self.feasible(self.to_columns(out))
            out = [d for d, good in zip(out, ok) if good]
        return out

    # ---- Gymnasium ------------------------------------------------------------------------
    def dict_space(self, seed: int | None = None) -> gymnasium.spaces.Dict:
        """``Dict``: ``Discrete(k)`` (a level index) per discrete parameter, ``Box`` of shape
        (1,) in the parameter's own units per Float. Decode with ``from_gym_dict``."""
        from gymnasium import spaces

        sub: dict[str, Any] = {}
        for j, p in enumerate(self.params):
            if p.discrete:
                sub[p.name] = spaces.Discrete(int(self._nlev[j]))
            else:
                sub[p.name] = spaces.Box(p.low, p.high, shape=(1,), dtype=np.float32)  # type: ignore
        return spaces.Dict(sub, seed=seed)

    def multidiscrete_space(self, seed: int | None = None) -> gymnasium.spaces.MultiDiscrete:
        """``MultiDiscrete(nvec)`` over level indices; Floats discretized to ``float_levels``.
        Decode an action with ``decode(action, "index")``."""
        from gymnasium import spaces

        return spaces.MultiDiscrete(self._nlev.copy(), seed=seed)

    def box_space(self, seed: int | None = None, onehot: bool = False) -> gymnasium.spaces.Box:
        """A flat ``Box`` in [0, 1]^d (the ``unit`` encoding), or [0, 1]^onehot_dim with
        ``onehot=True``. Decode an action with ``decode(action, "unit")``."""
        from gymnasium import spaces

        d = self.onehot_dim if onehot else self.dim
        return spaces.Box(0.0, 1.0, shape=(d,), dtype=np.float32, seed=seed)

    def to_gym_dict(self, design: Mapping[str, Any]) -> dict[str, Any]:
        """A design as an element of ``dict_space``."""
        d = self.validate(design, check_constraints=False)
        idx = self.encode(d, "index")
        return {p.name: int(idx[j]) if p.discrete else np.array([d[p.name]], dtype=np.float32)
                for j, p in enumerate(self.params)}

    def from_gym_dict(self, action: Mapping[str, Any]) -> Design:
        """The design of an element of ``dict_space``."""
        out: Design = {}
        for j, p in enumerate(self.params):
            v = action[p.name]
            if p.discrete:
                i = int(np.clip(int(np.asarray(v).reshape(-1)[0]), 0, self._nlev[j] - 1))
                out[p.name] = _py(self._levels[j][i])
            else:
                x = float(np.asarray(v, dtype=np.float64).reshape(-1)[0])
                out[p.name] = float(np.clip(x, p.low, p.high))  # type: ignore[union-attr]
        return out

    # ---- Optuna ---------------------------------------------------------------------------
    def optuna_distributions(self) -> dict[str, Any]:
        """``{name: optuna distribution}``: CategoricalDistribution for Categorical and
        PowerOfTwo (its values), IntDistribution(low, high, step) for Integer,
        FloatDistribution(low, high, log) for Float."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for j, p in enumerate(self.params):
            if isinstance(p, Integer):
                hi = p.low + (p.high - p.low) // p.step * p.step
                out[p.name] = IntDistribution(p.low, hi, step=p.step)
            elif isinstance(p, Float):
                out[p.name] = FloatDistribution(p.low, p.high, log=p.log)
            else:
                out[p.name] = CategoricalDistribution(self._levels[j].tolist())
        return out

    def suggest(self, trial: Any) -> Design:
        """A design suggested by an Optuna ``trial`` (constraints are not enforced; check
        ``is_valid`` and return a penalty or prune)."""
        out: Design = {}
        for j, p in enumerate(self.params):
            if isinstance(p, Integer):
                hi = p.low + (p.high - p.low) // p.step * p.step
                out[p.name] = trial.suggest_int(p.name, p.low, hi, step=p.step)
            elif isinstance(p, Float):
                out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            else:
                out[p.name] = trial.suggest_categorical(p.name, self._levels[j].tolist())
        return out

    # ---- Ray Tune -------------------------------------------------------------------------
    def tune_space(self) -> dict[str, Any]:
        """``{name: ray.tune domain}``: ``tune.choice`` for Categorical and PowerOfTwo,
        ``tune.randint`` (step 1) or ``tune.qrandint`` for Integer, ``tune.uniform`` /
        ``tune.loguniform`` for Float."""
        from ray import tune

        out: dict[str, Any] = {}
        for j, p in enumerate(self.params):
            if isinstance(p, Integer):
                if p.step == 1:
                    out[p.name] = tune.randint(p.low, p.high + 1)  # upper bound exclusive
                elif p.low % p.step == 0:
                    hi = p.low + (p.high - p.low) // p.step * p.step
                    out[p.name] = tune.qrandint(p.low, hi, q=p.step)
                else:  # qrandint draws multiples of q; an offset grid needs an explicit choice
                    out[p.name] = tune.choice(self._levels[j].tolist())
            elif isinstance(p, Float):
                f = tune.loguniform if p.log else tune.uniform
                out[p.name] = f(p.low, p.high)
            else:
                out[p.name] = tune.choice(self._levels[j].tolist())
        return out

    # ---- BoTorch --------------------------------------------------------------------------
    def botorch_bounds(self) -> BoTorchSpace:
        """Bounds and mixed-variable structure over the ``ordinal`` encoding: level indices for
        discrete parameters, [0, 1] for Floats. Decode candidates with
        ``decode_batch(X.numpy(), "ordinal")``."""
        import torch

        lo = np.zeros(self.dim)
        hi = np.where(self._discrete, self._nlev - 1, 1.0).astype(np.float64)
        cat: dict[int, list[float]] = {}
        disc: dict[int, list[float]] = {}
        for j, p in enumerate(self.params):
            if p.discrete:
                (disc if p.ordered else cat)[j] = [float(i) for i in range(int(self._nlev[j]))]
        bounds = torch.tensor(np.stack([lo, hi]), dtype=torch.double)
        return BoTorchSpace(bounds, cat, disc, self.names)

    # ---- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; ``from_dict`` rebuilds an equal space. Callable
        constraints cannot be serialized (declare them as expression strings)."""
        cons = []
        for c in self.constraints:
            if not isinstance(c.rule, str):
                raise DesignError(f"constraint {c.description!r} is a Python callable and cannot "
                                  f"be serialized; declare it as an expression string")
            cons.append({"rule": c.rule, "message": c.message})
        return {"params": [p.to_json() for p in self.params], "constraints": cons,
                "float_levels": self.float_levels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DesignSpace:
        """Rebuild a space from ``to_dict`` output."""
        params = []
        for pd_ in data["params"]:
            pd_ = dict(pd_)
            typ = pd_.pop("type", None)
            if typ not in _PARAM_TYPES:
                raise SpaceDefinitionError(f"unknown parameter type {typ!r}; "
                                           f"use one of {sorted(_PARAM_TYPES)}")
            if "choices" in pd_:
                pd_["choices"] = tuple(pd_["choices"])
            params.append(_PARAM_TYPES[typ](**pd_))
        cons = [Constraint(c["rule"], c.get("message", "")) for c in data.get("constraints", ())]
        return cls(params, cons, float_levels=data.get("float_levels", 16))


def _object_array(vals: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(vals), dtype=object)
    arr[:] = list(vals)
    return arr


def _py(x: Any) -> Any:
    """A NumPy scalar as the Python value (str, int, float, bool); other values unchanged."""
    return x.item() if isinstance(x, np.generic) else x
