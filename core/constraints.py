"""Constraints between design parameters: a safe expression language over parameter columns
(arithmetic, comparisons, and/or/not, abs/min/max/log2/sqrt/ceil/floor) or a Python callable."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.core.errors import SpaceDefinitionError

__all__ = ["Constraint"]


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
