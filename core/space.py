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

The adapters to other libraries are separate modules of this package (``gym_spaces``,
``optuna_space``, ``tune_space``, ``botorch_space``); the methods of the same names here call them.
Heavy libraries (gymnasium, optuna, ray, torch) are imported only when those are called.
"""


from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from mlsysgym.core import botorch_space, gym_spaces, optuna_space, tune_space
from mlsysgym.core.botorch_space import BoTorchSpace
from mlsysgym.core.constraints import Constraint
from mlsysgym.core.errors import (
    ConstraintViolationError,
    DesignError,
    MissingParameterError,
    ParameterTypeError,
    SpaceDefinitionError,
    UnknownParameterError,
)
from mlsysgym.core.params import _PARAM_TYPES, Categorical, Parameter, _object_array, _py

if TYPE_CHECKING:
    import gymnasium

__all__ = ["Design", "DesignSpace", "Kind"]

Kind = Literal["index", "unit", "ordinal", "onehot"]
Design = dict[str, Any]


# ---- the space ------------------------------------------------------------------------------
class DesignSpace:
    """An ordered set of parameters plus constraints; every other view derives from it."""

    def __init__(self, params: Sequence[Parameter], constraints: Sequence[Constraint | str] = (),
                 float_levels: int = 16, default: Mapping[str, Any] | None = None) -> None:
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
        self._default: Design | None = None if default is None else self.validate(default)

    @property
    def default(self) -> Design:
        """The reference design (a copy): what a simulator uses for parameters a design leaves
        out and what rewards are relative to; SpaceDefinitionError if none was declared."""
        if self._default is None:
            raise SpaceDefinitionError("this DesignSpace declares no default design; pass "
                                       "default={...} when declaring it")
        return dict(self._default)

    def complete(self, design: Mapping[str, Any]) -> Design:
        """``design`` with the parameters it leaves out taken from :attr:`default`, validated."""
        return self.validate({**self.default, **design})

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
            self.constraints == other.constraints and self.float_levels == other.float_levels \
            and self._default == other._default

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

    # ---- adapters (each in its own module) ----------------------------------------------
    def dict_space(self, seed: int | None = None) -> gymnasium.spaces.Dict:
        """Gymnasium ``Dict`` space; see :func:`mlsysgym.core.gym_spaces.dict_space`."""
        return gym_spaces.dict_space(self, seed)

    def multidiscrete_space(self, seed: int | None = None) -> gymnasium.spaces.MultiDiscrete:
        """Gymnasium ``MultiDiscrete`` over level indices; see :mod:`mlsysgym.core.gym_spaces`."""
        return gym_spaces.multidiscrete_space(self, seed)

    def box_space(self, seed: int | None = None, onehot: bool = False) -> gymnasium.spaces.Box:
        """Gymnasium ``Box`` in [0, 1]^d (or one-hot); see :mod:`mlsysgym.core.gym_spaces`."""
        return gym_spaces.box_space(self, seed, onehot)

    def to_gym_dict(self, design: Mapping[str, Any]) -> dict[str, Any]:
        """A design as an element of ``dict_space``."""
        return gym_spaces.to_gym_dict(self, design)

    def from_gym_dict(self, action: Mapping[str, Any]) -> Design:
        """The design of an element of ``dict_space``."""
        return gym_spaces.from_gym_dict(self, action)

    def optuna_distributions(self) -> dict[str, Any]:
        """``{name: optuna distribution}``; see :mod:`mlsysgym.core.optuna_space`."""
        return optuna_space.optuna_distributions(self)

    def suggest(self, trial: Any) -> Design:
        """A design suggested by an Optuna ``trial``; see :mod:`mlsysgym.core.optuna_space`."""
        return optuna_space.suggest(self, trial)

    def tune_space(self) -> dict[str, Any]:
        """``{name: ray.tune domain}``; see :mod:`mlsysgym.core.tune_space`."""
        return tune_space.tune_space(self)

    def botorch_bounds(self) -> BoTorchSpace:
        """Bounds over the ``ordinal`` encoding; see :mod:`mlsysgym.core.botorch_space`."""
        return botorch_space.botorch_bounds(self)

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
        out = {"params": [p.to_json() for p in self.params], "constraints": cons,
               "float_levels": self.float_levels}
        if self._default is not None:
            out["default"] = dict(self._default)
        return out

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
        return cls(params, cons, float_levels=data.get("float_levels", 16),
                   default=data.get("default"))
