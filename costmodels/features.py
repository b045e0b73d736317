"""Feature schemas: how raw design (and workload) columns become the model's input matrix.

A :class:`FeatureSchema` is a list of :class:`FeatureSpec` (one raw column each) plus optional
:class:`DerivedFeature` sums of transformed numeric features (e.g. ``log2 rows + log2 cols`` =
log2 of the PE count, a split a tree cannot make from the two columns alone). Encoding:

- ``numeric`` with ``transform="log2"`` (positive values spanning orders of magnitude) or
  ``"identity"``; then standardized with the training mean and standard deviation;
- ``categorical``: one-hot over the categories seen in training (an unseen value encodes as
  all zeros and is flagged out of distribution).

The schema also keeps each numeric feature's training range; :meth:`FeatureSchema.encode`
returns an ``ood`` flag per row (a value outside the range, or an unseen category). Only
NumPy here: this module is imported at inference time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["DerivedFeature", "FeatureSchema", "FeatureSpec", "SchemaMismatchError",
           "columns_of", "infer_schema", "workload_features"]


class SchemaMismatchError(MlsysgymError):
    """Inputs whose columns or types do not match the features a cost model was trained on."""


@dataclass(frozen=True)
class FeatureSpec:
    """One raw input column: its kind, transform, categories and training range."""

    name: str
    kind: str = "numeric"              # "numeric" | "categorical"
    transform: str = "identity"        # numeric only: "identity" | "log2"
    categories: tuple[Any, ...] = ()   # categorical only, in one-hot order
    low: float = -math.inf             # training range of the raw value (numeric only)
    high: float = math.inf
    source: str = "design"             # "design" | "workload"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["categories"] = list(self.categories)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FeatureSpec:
        """The spec saved by :meth:`to_json`; ValueError/TypeError/KeyError if malformed."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a feature must be an object, got {d!r}")
        cats = d.get("categories", ())
        if not isinstance(cats, list | tuple):
            raise TypeError(f"feature {d.get('name')!r}: categories must be a list")
        f = cls(**{**d, "categories": tuple(cats)})
        where = f"feature {f.name!r}"
        if not isinstance(f.name, str) or not f.name:
            raise ValueError(f"a feature name must be a non-empty string, got {f.name!r}")
        if f.kind not in ("numeric", "categorical"):
            raise ValueError(f"{where}: kind {f.kind!r} is not 'numeric' or 'categorical'")
        if f.transform not in ("identity", "log2"):
            raise ValueError(f"{where}: transform {f.transform!r} is not 'identity' or 'log2'")
        if f.source not in ("design", "workload"):
            raise ValueError(f"{where}: source {f.source!r} is not 'design' or 'workload'")
        if f.kind == "categorical" and not f.categories:
            raise ValueError(f"{where}: a categorical feature needs at least one category")
        if not (isinstance(f.low, int | float) and isinstance(f.high, int | float)
                and f.low <= f.high):
            raise ValueError(f"{where}: range [{f.low!r}, {f.high!r}] is not low <= high")
        return f


@dataclass(frozen=True)
class DerivedFeature:
    """``sum(w * transformed(feature))`` over numeric features (a product/ratio in log space)."""

    name: str
    terms: tuple[tuple[str, float], ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "terms": [list(t) for t in self.terms]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DerivedFeature:
        """The derived feature saved by :meth:`to_json`; ValueError/TypeError/KeyError if
        malformed."""
        if not isinstance(d, Mapping) or not isinstance(d["terms"], list):
            raise TypeError(f"a derived feature must be an object with a list of terms, got {d!r}")
        return cls(str(d["name"]), tuple((str(n), float(w)) for n, w in d["terms"]))


def columns_of(inputs: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns ``names`` of a DataFrame, a mapping of columns, a list of design dicts or one dict.

    Missing columns raise :class:`SchemaMismatchError`.
    """
    if isinstance(inputs, Mapping):
        cols = {k: np.asarray(v) for k, v in inputs.items()}
        if cols and all(c.ndim == 0 for c in cols.values()):  # one design dict
            cols = {k: v.reshape(1) for k, v in cols.items()}
    elif hasattr(inputs, "columns") and hasattr(inputs, "__getitem__"):  # a DataFrame
        cols = {c: inputs[c].to_numpy() for c in names if c in inputs.columns}
    else:
        rows = list(inputs)
        missing = [n for n in names if any(n not in r for r in rows)]
        if missing:
            raise SchemaMismatchError(
                f"inputs lack feature(s) {missing}; the model needs {list(names)}")
        cols = {n: np.array([r[n] for r in rows]) for n in names}
    missing = [n for n in names if n not in cols]
    if missing:
        raise SchemaMismatchError(
            f"inputs lack feature(s) {missing}; the model needs {list(names)}")
    return {n: cols[n] for n in names}


@dataclass
class FeatureSchema:
    """Raw features, derived features and the standardization of the encoded matrix."""

    features: list[FeatureSpec]
    derived: list[DerivedFeature] = field(default_factory=list)
    mean: np.ndarray | None = None      # per encoded column
    std: np.ndarray | None = None
    standardize: bool = True

    @property
    def names(self) -> list[str]:
        """Raw input column names, in order."""
        return [f.name for f in self.features]

    @property
    def encoded_names(self) -> list[str]:
        """Names of the encoded columns (``name=category`` for one-hot blocks)."""
        out: list[str] = []
        for f in self.features:
            if f.kind == "categorical":
                out += [f"{f.name}={c}" for c in f.categories]
            else:
                out.append(f"{f.transform}({f.name})" if f.transform != "identity" else f.name)
        return out + [d.name for d in self.derived]

    def _raw_matrix(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded (unstandardized) float64 matrix and the per-row OOD flag."""
        n = len(next(iter(cols.values()))) if cols else 0
        blocks: list[np.ndarray] = []
        ood = np.zeros(n, dtype=bool)
        transformed: dict[str, np.ndarray] = {}
        for f in self.features:
            v = cols[f.name]
            if f.kind == "categorical":
                v = _categorical_array(np.asarray(v), f.categories)
                hit = np.zeros(n, dtype=bool)
                for c in f.categories:
                    eq = _equal(v, c)
                    hit |= eq
                    blocks.append(eq.astype(np.float64))
                ood |= ~hit
                continue
            if v.dtype.kind not in "iufb":
                try:
                    v = v.astype(np.float64)
                except (TypeError, ValueError):
                    raise SchemaMismatchError(
                        f"feature {f.name!r} must be numeric, got values like {v.reshape(-1)[0]!r}"
                    ) from None
            v = v.astype(np.float64, copy=False)
            ood |= ~((v >= f.low) & (v <= f.high))
            if f.transform == "log2":
                with np.errstate(divide="ignore", invalid="ignore"):
                    t = np.log2(np.maximum(v, 1e-300))
            else:
                t = v
            transformed[f.name] = t
            blocks.append(t)
        for d in self.derived:
            blocks.append(sum(w * transformed[name] for name, w in d.terms))
        x = np.column_stack(blocks) if blocks else np.zeros((n, 0))
        return x, ood

    def _row_plan(self) -> list[tuple[str, str, Any, float, float]]:
        """Per-feature encoders for the per-row path (built once)."""
        plan = getattr(self, "_plan", None)
        if plan is None:
            plan = []
            for f in self.features:
                if f.kind == "categorical":
                    plan.append((f.name, "cat", {_hashable(c): i for i, c in enumerate(f.categories)},
                                 len(f.categories), 0.0))
                else:
                    plan.append((f.name, f.transform, None, f.low, f.high))
            self._plan = plan
        return plan

    def _rows_matrix(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """The per-row (pure Python) twin of ``_raw_matrix``: faster for a handful of designs."""
        plan = self._row_plan()
        width = len(self.encoded_names)
        x = np.zeros((len(rows), width))
        ood = np.zeros(len(rows), dtype=bool)
        for r, row in enumerate(rows):
            vals: list[float] = []
            t_of: dict[str, float] = {}
            bad = False
            for name, tf, cats, lo, hi in plan:
                if name not in row:
                    raise SchemaMismatchError(
                        f"inputs lack feature(s) {[n for n in self.names if n not in row]}; "
                        f"the model needs {self.names}")
                v = row[name]
                if tf == "cat":
                    onehot = [0.0] * int(lo)
                    i = cats.get(_hashable(v))
                    if i is None:
                        bad = True
                    else:
                        onehot[i] = 1.0
                    vals += onehot
                    continue
                try:
                    fv = float(v)
                except (TypeError, ValueError):
                    raise SchemaMismatchError(
                        f"feature {name!r} must be numeric, got values like {v!r}") from None
                if not (lo <= fv <= hi):
                    bad = True
                t = math.log2(fv) if tf == "log2" and fv > 0 else (
                    math.log2(1e-300) if tf == "log2" else fv)
                t_of[name] = t
                vals.append(t)
            for d in self.derived:
                vals.append(sum(w * t_of[n] for n, w in d.terms))
            x[r] = vals
            ood[r] = bad
        return x, ood

    def encode(self, inputs: Any, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(X float64 of shape (n, encoded columns), ood bool of shape (n,)).

        ``strict``: inputs given as design dicts must not carry keys the model does not know.
        """
        if strict and isinstance(inputs, Sequence) and inputs and isinstance(inputs[0], Mapping):
            known = set(self.names)
            extra = sorted({k for r in inputs for k in r} - known)
            if extra:
                raise SchemaMismatchError(
                    f"inputs have column(s) {extra} the model was not trained on; "
                    f"it knows {self.names}")
        if (isinstance(inputs, (list, tuple)) and 0 < len(inputs) <= 16
                and isinstance(inputs[0], Mapping)):
            x, ood = self._rows_matrix(inputs)
        elif isinstance(inputs, Mapping) and inputs and not any(
                np.ndim(v) for v in inputs.values()):
            x, ood = self._rows_matrix([inputs])
        else:
            x, ood = self._raw_matrix(columns_of(inputs, self.names))
        if self.standardize and self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x, ood

    def fit_normalization(self, x_raw: np.ndarray) -> None:
        """Set the standardization from a raw encoded matrix (identity when not standardizing)."""
        if self.standardize:
            self.mean = x_raw.mean(axis=0)
            sd = x_raw.std(axis=0)
            self.std = np.where(sd > 1e-12, sd, 1.0)
        else:
            self.mean = np.zeros(x_raw.shape[1])
            self.std = np.ones(x_raw.shape[1])

    def to_json(self) -> dict[str, Any]:
        return {"features": [f.to_json() for f in self.features],
                "derived": [d.to_json() for d in self.derived],
                "encoded_columns": self.encoded_names,
                "normalization": {"standardize": self.standardize,
                                  "mean": None if self.mean is None else self.mean.tolist(),
                                  "std": None if self.std is None else self.std.tolist()}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FeatureSchema:
        """The schema saved by :meth:`to_json`, checked for consistency (ValueError, TypeError
        or KeyError with a one-line message if it is malformed)."""
        if not isinstance(d, Mapping):
            raise TypeError(f"must be an object, got {type(d).__name__}")
        feats, derived = d["features"], d.get("derived", [])
        if not isinstance(feats, list) or not feats:
            raise TypeError(f"features must be a non-empty list, got {feats!r:.60}")
        if not isinstance(derived, list):
            raise TypeError(f"derived must be a list, got {derived!r:.60}")
        norm = d.get("normalization", {})
        if not isinstance(norm, Mapping):
            raise TypeError(f"normalization must be an object, got {norm!r:.60}")
        schema = cls([FeatureSpec.from_json(f) for f in feats],
                     [DerivedFeature.from_json(x) for x in derived],
                     None if norm.get("mean") is None else np.asarray(norm["mean"], dtype=np.float64),
                     None if norm.get("std") is None else np.asarray(norm["std"], dtype=np.float64),
                     bool(norm.get("standardize", True)))
        numeric = {f.name for f in schema.features if f.kind == "numeric"}
        for x in schema.derived:
            unknown = [n for n, _ in x.terms if n not in numeric]
            if unknown:
                raise ValueError(f"derived feature {x.name!r} uses {unknown}, not numeric features")
        width = len(schema.encoded_names)
        for key, v in (("mean", schema.mean), ("std", schema.std)):
            if v is not None and (v.shape != (width,) or not np.isfinite(v).all()):
                raise ValueError(f"normalization {key} must be {width} finite numbers (one per "
                                 f"encoded column), got shape {v.shape}")
        return schema


def _equal(v: np.ndarray, c: Any) -> np.ndarray:
    """Elementwise ``v == c`` (numbers compare with numbers, strings with strings)."""
    if v.dtype.kind in "iuf" and isinstance(c, (int, float)) and not isinstance(c, bool):
        return v == c
    if v.dtype.kind in "US" and isinstance(c, str):
        return v == c
    return np.array([x == c for x in v.tolist()], dtype=bool)


def _categorical_array(v: np.ndarray, categories: Sequence[Any]) -> np.ndarray:
    """An object column as a str or float array when every category is a str or a number
    (so the one-hot comparisons are vectorized)."""
    if v.dtype.kind != "O" or not categories:
        return v
    if all(isinstance(c, str) for c in categories):
        return v.astype(str)
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in categories):
        try:
            return v.astype(np.float64)
        except (TypeError, ValueError):
            return v
    return v


def _hashable(v: Any) -> Any:
    """A lookup key for a categorical value: numbers by float value, others as they are."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return ("num", float(v))
    return v


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def infer_schema(frame: Any, features: Sequence[str], categorical: Sequence[str] = (),
                 log_features: Sequence[str] | None = None,
                 derived: Sequence[DerivedFeature] = (), standardize: bool = True,
                 workload_columns: Sequence[str] = ()) -> FeatureSchema:
    """A schema for columns ``features`` of a DataFrame: string/bool columns (and those named in
    ``categorical``) one-hot; numeric columns log2 when all values are positive and span more
    than a factor of 8 (or exactly ``log_features`` when given); ranges from the data."""
    specs: list[FeatureSpec] = []
    for name in features:
        if name not in frame.columns:
            raise SchemaMismatchError(f"dataset has no column {name!r}; columns are "
                                      f"{list(frame.columns)}")
        col = frame[name]
        values = col.to_numpy()
        src = "workload" if name in workload_columns else "design"
        if name in categorical or values.dtype.kind not in "iuf":
            cats = sorted({_json_value(v) for v in values.tolist()}, key=repr)
            specs.append(FeatureSpec(name, "categorical", categories=tuple(cats), source=src))
            continue
        v = values.astype(np.float64)
        lo, hi = float(v.min()), float(v.max())
        if log_features is None:
            use_log = lo > 0 and hi / lo > 8
        else:
            use_log = name in log_features
        specs.append(FeatureSpec(name, "numeric", "log2" if use_log else "identity",
                                 low=lo, high=hi, source=src))
    return FeatureSchema(specs, list(derived), standardize=standardize)


def workload_features(workload: Any) -> dict[str, float]:
    """Whole-workload features of an ir.Graph-like workload: log10 of MACs, FLOPs, bytes moved
    and weight bytes, and the number of ops (names prefixed ``wl_``)."""
    ops = getattr(workload, "ops", None)
    if ops is None:
        from mlsysgym.simulators.accelerator import resolve

        workload = resolve(workload)
        ops = getattr(workload, "ops", None)
        if ops is None:
            raise SchemaMismatchError(
                f"cannot compute workload features of a {type(workload).__name__}; "
                f"pass an ir.Graph, ONNX path or zoo name")
    macs = sum(o.macs for o in ops)
    flops = sum(o.flops for o in ops)
    moved = sum(o.bytes_read + o.bytes_written for o in ops)
    return {"wl_log10_macs": math.log10(macs + 1), "wl_log10_flops": math.log10(flops + 1),
            "wl_log10_bytes": math.log10(moved + 1), "wl_ops": float(len(ops))}
