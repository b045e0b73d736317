"""CostModel: a learned Evaluator, trained from logged evaluations, saved as ONNX + JSON.

Life cycle::

    model = LightGBMCostModel().fit(frame, features=[...], targets=["latency_ms"])
    pred = model.predict(designs)          # Prediction: values, std (ensembles), ood flags
    model.save("models/accel")             # model.onnx + metadata.json
    m = CostModel.load("models/accel")     # ONNX Runtime only: no torch, no lightgbm
    m.evaluate(designs, "resnet50")        # an Evaluator like any simulator

Saved form (directory): ``model.onnx`` maps the encoded feature matrix ``X`` (n, d) to ``Y``
(n, members × targets, member-major) in the normalized target space; ``metadata.json`` holds
everything around it: the feature schema (encodings, standardization, training ranges for the
out-of-distribution guard), the targets (unit, transform ``log`` or ``identity``, mean and std
of the transformed values), the ensemble size, the training data hash and size, the
hyperparameters, the validation scores, the source evaluator and training workloads.

``predict`` decodes ``Y``: the mean over members, de-standardized, then ``exp`` for log
targets; ``std`` is the members' spread mapped to the metric's unit (``value · σ_log`` for log
targets). Training code lives in subclasses (:mod:`mlsysgym.costmodels.tabular`); this module
imports only NumPy and, when a saved model is loaded, ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Design, Evaluator, Metrics
from mlsysgym.costmodels.features import (
    DerivedFeature,
    FeatureSchema,
    SchemaMismatchError,
    infer_schema,
    workload_features,
)

__all__ = ["FORMAT", "CostModel", "CostModelError", "ModelFileError", "NotFittedError",
           "OnnxCostModel", "OutOfDomainError", "Prediction", "SchemaMismatchError", "TargetSpec",
           "check_domain", "data_hash", "unit_of"]

FORMAT = "mlsysgym-costmodel"
FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
META_FILE = "metadata.json"

_UNITS = ("cycles", "ms", "us", "ns", "s", "uj", "nj", "pj", "mj", "mm2", "mw", "w", "gbps",
          "bytes", "kb", "mb", "rate", "count")


class CostModelError(MlsysgymError):
    """A cost model cannot be trained or used as asked."""


class NotFittedError(CostModelError):
    """``predict``/``save`` on a model that has not been fitted (or loaded)."""


class ModelFileError(CostModelError):
    """A saved model directory that is missing, incomplete or of another format version."""


class OutOfDomainError(CostModelError):
    """A design the model cannot score: a value of the wrong type, not finite, not positive
    where the model takes its log, or (unless extrapolation is allowed) outside the training
    range or categories."""


def check_domain(schema: FeatureSchema, rows: Sequence[Mapping[str, Any]],
                 allow_ood: bool = False) -> None:
    """OutOfDomainError (one line naming the design, feature and value) for the first design
    in ``rows`` a model with ``schema`` cannot score. Always refused: a numeric feature that is
    not a number (bools and strings included), not finite, or <= 0 under a log2 transform; a
    bool, null, list, object or non-finite number for a categorical feature (unless it is
    one of the categories). Refused unless ``allow_ood`` (then
    the prediction is an extrapolation flagged ``ood``): a number outside the training range,
    an unknown category. Missing features are left to ``encode`` (SchemaMismatchError)."""
    for i, row in enumerate(rows):
        for f in schema.features:
            if f.name not in row:
                continue
            v = row[f.name]
            where = f"design {i + 1}: {f.name}={v!r:.40}"
            if f.kind == "categorical":
                known = any(_same_category(v, c) for c in f.categories)
                if isinstance(v, bool) and not any(isinstance(c, bool) for c in f.categories):
                    raise OutOfDomainError(f"{where} is a bool; choose one of {list(f.categories)}")
                if not known and not (isinstance(v, str) or _finite_number(v)):
                    raise OutOfDomainError(f"{where} is not a category (a string or a finite "
                                           f"number); choose one of {list(f.categories)}")
                if not known and not allow_ood:
                    raise OutOfDomainError(f"{where} is not a category the model was trained on "
                                           f"({list(f.categories)}); pass --allow-ood to "
                                           f"extrapolate")
                continue
            if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number):
                raise OutOfDomainError(f"{where} is not a number")
            if not _finite_number(v):
                raise OutOfDomainError(f"{where} is not a finite number a float can hold")
            if f.transform == "log2" and v <= 0:
                raise OutOfDomainError(f"{where} must be > 0 (the model takes its log2)")
            if not f.low <= v <= f.high and not allow_ood:
                raise OutOfDomainError(f"{where} is outside the training range [{f.low:g}, "
                                       f"{f.high:g}]; pass --allow-ood to extrapolate")


def _finite_number(v: Any) -> bool:
    """``v`` is an int or float that converts to a finite float (Python ints are unbounded)."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.number):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _same_category(v: Any, c: Any) -> bool:
    """``v`` is category ``c`` (numbers by value, bools only as bools)."""
    if isinstance(v, bool) or isinstance(c, bool):
        return isinstance(v, bool) and isinstance(c, bool) and v == c
    return bool(v == c)


def unit_of(metric: str) -> str:
    """The unit a metric name ends with (``latency_ms`` → ``ms``), else ``""``."""
    tail = metric.rsplit("_", 1)[-1].lower()
    if metric.lower() == "cycles" or tail == "cycles":
        return "cycles"
    return tail if tail in _UNITS else ""


def data_hash(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 (first 16 hex digits) of the training matrices' bytes."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TargetSpec:
    """One predicted metric: unit, transform and the standardization of transformed values."""

    name: str
    unit: str
    transform: str   # "log" | "identity"
    mean: float
    std: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TargetSpec:
        """The target saved in a model's metadata; ValueError/TypeError/KeyError if malformed."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a target must be an object, got {d!r:.60}")
        t = cls(**d)
        if not isinstance(t.name, str) or not t.name or not isinstance(t.unit, str):
            raise ValueError(f"a target needs a string name and unit, got {t.name!r}, {t.unit!r}")
        if t.transform not in ("log", "identity"):
            raise ValueError(f"target {t.name!r}: transform {t.transform!r} is not 'log' or "
                             f"'identity'")
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in (t.mean, t.std)) \
                or t.std <= 0:
            raise ValueError(f"target {t.name!r}: mean and std must be finite numbers, std > 0")
        return t

    def forward(self, y: np.ndarray) -> np.ndarray:
        """Raw metric values → normalized model space."""
        t = np.log(np.maximum(y, 1e-300)) if self.transform == "log" else y
        return (t - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Normalized model space → raw metric values."""
        t = z * self.std + self.mean
        return np.exp(t) if self.transform == "log" else t

    def inverse_std(self, value: np.ndarray, z_std: np.ndarray) -> np.ndarray:
        """Members' spread (normalized space) → a standard deviation in the metric's unit."""
        s = z_std * self.std
        return value * s if self.transform == "log" else s


@dataclass
class Prediction:
    """Predicted metrics (one array per target), their spread (ensembles only) and OOD flags."""

    values: dict[str, np.ndarray]
    std: dict[str, np.ndarray] | None
    ood: np.ndarray

    def __len__(self) -> int:
        return int(self.ood.shape[0])

    def to_frame(self) -> Any:
        """A DataFrame: one column per target, ``<target>_std`` when known, and ``ood``."""
        import pandas as pd

        cols: dict[str, np.ndarray] = dict(self.values)
        for k, v in (self.std or {}).items():
            cols[f"{k}_std"] = v
        cols["ood"] = self.ood
        return pd.DataFrame(cols)


@dataclass
class FitInfo:
    """What ``fit`` records besides the model: data size/hash, scores, timing."""

    rows: int = 0
    valid_rows: int = 0
    data_hash: str = ""
    fit_seconds: float = 0.0
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    source_evaluators: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)


    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> FitInfo:
        """The ``training``/``validation`` sections of a saved model's metadata."""
        tr = meta.get("training", {})
        if not isinstance(tr, Mapping) or not isinstance(meta.get("validation", {}), Mapping):
            raise TypeError("training and validation must be objects")
        if not all(isinstance(tr.get(k, []), list) for k in ("source_evaluators", "workloads")):
            raise TypeError("training.source_evaluators and training.workloads must be lists")
        return cls(rows=tr.get("rows", 0), valid_rows=tr.get("valid_rows", 0),
                   data_hash=tr.get("data_hash", ""), fit_seconds=tr.get("fit_seconds", 0.0),
                   validation=meta.get("validation", {}),
                   source_evaluators=tr.get("source_evaluators", []),
                   workloads=tr.get("workloads", []))


def read_saved(directory: str | os.PathLike[str], what: str = "cost model"
               ) -> tuple[dict[str, Any], bytes]:
    """The metadata (a JSON object of this format) and ONNX bytes of a saved model directory;
    ModelFileError with one line if either is missing or unreadable."""
    d = Path(directory)
    meta_path, onnx_path = d / META_FILE, d / ONNX_FILE
    if not meta_path.is_file() or not onnx_path.is_file():
        raise ModelFileError(f"no saved {what} at {d} (need {ONNX_FILE} and {META_FILE}); "
                             f"train one with `mlsysgym costmodel train`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        onnx_bytes = onnx_path.read_bytes()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"cannot read {d}: {str(e).splitlines()[0]}") from None
    if not isinstance(meta, dict):
        raise bad_metadata(d, "the file", f"is {type(meta).__name__}, not a JSON object")
    if meta.get("format") != FORMAT:
        raise bad_metadata(d, "format", f"is {meta.get('format')!r}, not {FORMAT!r}")
    return meta, onnx_bytes


def bad_metadata(directory: str | os.PathLike[str], field: str, problem: str) -> ModelFileError:
    """The one-line error for a malformed field of a saved model's ``metadata.json``."""
    return ModelFileError(f"{Path(directory) / META_FILE}: {field} {problem}; save the model "
                          f"again or restore the file")


def meta_field(meta: Mapping[str, Any], key: str, types: type | tuple[type, ...],
               directory: str | os.PathLike[str], default: Any = ...) -> Any:
    """``meta[key]`` checked to be of ``types`` (``default`` when absent, if one is given);
    otherwise a ModelFileError naming the field."""
    if key not in meta:
        if default is not ...:
            return default
        raise bad_metadata(directory, f"field {key!r}", "is missing")
    v = meta[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _tuple(types)):
        names = " or ".join(t.__name__ for t in _tuple(types))
        raise bad_metadata(directory, f"field {key!r}", f"must be {names}, got {v!r:.60}")
    return v


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def load_common(model: Any, meta: Mapping[str, Any], onnx_bytes: bytes,
                directory: str | os.PathLike[str], threads: int, members: Any = ...) -> None:
    """Set what every saved model kind reads alike from its metadata, checked field by field:
    ``members`` (``members`` is the default when absent, if given), ``hyperparameters``,
    ``targets``, the training info, and the ONNX Runtime session of ``onnx_bytes``."""
    model.members = meta_field(meta, "members", int, directory, members)
    if model.members < 1:
        raise bad_metadata(directory, "field 'members'", f"is {model.members}; it must be >= 1")
    model.hyperparameters = dict(meta_field(meta, "hyperparameters", dict, directory, {}))
    model.targets = parse_field(meta, "targets", parse_targets, directory)
    model.info = parse_field(meta, "training", lambda _: FitInfo.from_meta(meta), directory,
                             FitInfo())
    model.onnx_bytes = onnx_bytes
    model.session = _session(onnx_bytes, threads)


def parse_field(meta: Mapping[str, Any], key: str, parse: Callable[[Any], Any],
                directory: str | os.PathLike[str], default: Any = ...) -> Any:
    """``parse(meta[key])`` (``default`` when absent, if one is given); a missing field, or a
    KeyError/TypeError/ValueError of ``parse`` (a malformed value), becomes one ModelFileError
    line naming the field."""
    if key not in meta and default is not ...:
        return default
    value = meta_field(meta, key, object, directory)
    try:
        return parse(value)
    except KeyError as e:
        raise bad_metadata(directory, f"field {key!r}", f"lacks the key {e}") from None
    except (TypeError, ValueError) as e:
        raise bad_metadata(directory, f"field {key!r}", f"is malformed ({e})") from None


def parse_targets(value: Any) -> list[TargetSpec]:
    """The ``targets`` of a model's metadata: a non-empty list of target objects."""
    if not isinstance(value, list) or not value:
        raise TypeError(f"must be a non-empty list, got {value!r:.60}")
    return [TargetSpec.from_json(t) for t in value]


def check_version(model: Evaluator, meta: Mapping[str, Any], directory: str | os.PathLike[str]
                  ) -> None:
    """Raise if a loaded model's version (a hash of its ONNX bytes) is not the saved one."""
    if model.version != meta.get("version"):
        raise ModelFileError(f"{Path(directory) / ONNX_FILE} does not match its metadata (version "
                             f"{model.version} != {meta.get('version')}); save the model again")


class CostModel(Evaluator):
    """A learned Evaluator. Subclasses implement ``_fit_arrays`` and ``_raw_predict``.

    ``members`` > 1 trains an ensemble (different seeds / bootstrap) whose spread is the
    uncertainty. The metric set of ``evaluate`` is the targets, ``<target>_std`` (ensembles) and
    ``ood`` (1.0 where a design is outside the training data).
    """

    kind: ClassVar[str] = "base"
    input_dtype: ClassVar[str] = "float32"

    def __init__(self, members: int = 1, seed: int = 0, cache_size: int = 100_000,
                 **hyperparameters: Any) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        if members < 1:
            raise CostModelError(f"members must be >= 1, got {members}")
        self.members = int(members)
        self.hyperparameters: dict[str, Any] = dict(hyperparameters)
        self.schema: FeatureSchema | None = None
        self.targets: list[TargetSpec] = []
        self.info = FitInfo()
        self.onnx_bytes: bytes | None = None
        self.name = f"costmodel-{self.kind}"
        self.version = "unfitted"
        self.metric_names = ()

    # ---- training ------------------------------------------------------------------------
    def fit(self, frame: Any, features: Sequence[str], targets: Sequence[str], *,
            categorical: Sequence[str] = (), log_features: Sequence[str] | None = None,
            derived: Sequence[DerivedFeature] = (), target_transform: str | Mapping[str, str] = "auto",
            workload_columns: Sequence[str] = (), valid_fraction: float = 0.1) -> CostModel:
        """Train on the rows of a DataFrame (e.g. ``read_dataset(path)``): ``features`` columns
        → ``targets`` metric columns. ``target_transform``: ``log``, ``identity`` or ``auto``
        (log when every value is positive and they span more than a factor of 10), or a
        per-target mapping. A random ``valid_fraction`` of rows is held out for early stopping
        and the validation scores stored with the model."""
        from mlsysgym.costmodels.metrics import regression_report

        t0 = time.perf_counter()
        if len(frame) < 4:
            raise CostModelError(f"need at least 4 rows to fit a cost model, got {len(frame)}")
        missing = [t for t in targets if t not in frame.columns]
        if missing:
            raise SchemaMismatchError(f"dataset has no target column(s) {missing}")
        schema = infer_schema(frame, features, categorical, log_features, derived,
                              standardize=self.kind != "lightgbm",
                              workload_columns=workload_columns)
        x_raw, _ = schema._raw_matrix({n: frame[n].to_numpy() for n in schema.names})
        schema.fit_normalization(x_raw)
        self.schema = schema
        x = (x_raw - schema.mean) / schema.std
        ys = {t: frame[t].to_numpy(dtype=np.float64) for t in targets}
        bad = [t for t, v in ys.items() if not np.isfinite(v).all()]
        if bad:
            raise CostModelError(f"target(s) {bad} have NaN or infinite values; drop those rows")
        self.targets = [self._target_spec(t, ys[t], target_transform) for t in targets]
        z = np.column_stack([s.forward(ys[s.name]) for s in self.targets])

        rng = np.random.default_rng(self.seed)
        n = len(x)
        n_valid = round(n * valid_fraction) if n >= 20 else 0
        perm = rng.permutation(n)
        va, tr = perm[:n_valid], perm[n_valid:]
        self._fit_arrays(x[tr], z[tr], x[va] if n_valid else None, z[va] if n_valid else None)

        info = FitInfo(rows=len(tr), valid_rows=n_valid, data_hash=data_hash(x_raw, z))
        if n_valid:
            pz = self._raw_predict(x[va]).reshape(n_valid, self.members, len(self.targets))
            for j, s in enumerate(self.targets):
                info.validation[s.name] = regression_report(
                    ys[s.name][va], s.inverse(pz[:, :, j].mean(axis=1)))
        for col, attr in (("evaluator_id", "source_evaluators"), ("workload_id", "workloads")):
            if col in frame.columns:
                setattr(info, attr, sorted({str(v) for v in frame[col].dropna().unique()}))
        info.fit_seconds = time.perf_counter() - t0
        self.info = info
        self.onnx_bytes = self._export_onnx(x.shape[1])
        self._finish_identity()
        return self

    def _target_spec(self, name: str, y: np.ndarray, transform: str | Mapping[str, str]
                     ) -> TargetSpec:
        tf = transform.get(name, "auto") if isinstance(transform, Mapping) else transform
        if tf == "auto":
            lo, hi = float(np.min(y)), float(np.max(y))
            tf = "log" if lo > 0 and hi / lo > 10 else "identity"
        if tf not in ("log", "identity"):
            raise CostModelError(f"target transform {tf!r} for {name!r}; use log, identity or auto")
        if tf == "log" and np.min(y) <= 0:
            raise CostModelError(f"target {name!r} has values <= 0; a log transform needs positive "
                                 f"values (use target_transform='identity')")
        t = np.log(y) if tf == "log" else y
        sd = float(np.std(t))
        return TargetSpec(name, unit_of(name), tf, float(np.mean(t)), sd if sd > 1e-12 else 1.0)

    def _finish_identity(self) -> None:
        """Name, version (hash of the ONNX bytes) and metric set after fit or load."""
        assert self.onnx_bytes is not None
        self.version = hashlib.sha256(self.onnx_bytes).hexdigest()[:12]
        names = [t.name for t in self.targets]
        if self.members > 1:
            names += [f"{t.name}_std" for t in self.targets]
        self.metric_names = (*names, "ood")
        self._cache.clear()

    @abstractmethod
    def _fit_arrays(self, x: np.ndarray, z: np.ndarray, x_valid: np.ndarray | None,
                    z_valid: np.ndarray | None) -> None:
        """Fit on encoded features ``x`` (n, d) and normalized targets ``z`` (n, T)."""

    @abstractmethod
    def _raw_predict(self, x: np.ndarray) -> np.ndarray:
        """(n, members × T) normalized predictions, member-major."""

    @abstractmethod
    def _export_onnx(self, n_inputs: int) -> bytes:
        """The fitted model as a serialized ONNX graph ``X`` (n, d) → ``Y`` (n, members × T)."""

    # ---- inference -------------------------------------------------------------------------
    def _require_fitted(self) -> FeatureSchema:
        if self.schema is None or not self.targets:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or CostModel.load()")
        return self.schema

    def encode(self, inputs: Any, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Encoded feature matrix (the ONNX input, in its dtype) and OOD flags of ``inputs``."""
        x, ood = self._require_fitted().encode(inputs, strict=strict)
        return x.astype(self.input_dtype, copy=False), ood

    def decode(self, y: np.ndarray, ood: np.ndarray) -> Prediction:
        """A Prediction from the model's raw output (n, members × T)."""
        n, t = y.shape[0], len(self.targets)
        y = np.asarray(y, dtype=np.float64).reshape(n, self.members, t)
        mean = y.mean(axis=1)
        values = {s.name: s.inverse(mean[:, j]) for j, s in enumerate(self.targets)}
        std = None
        if self.members > 1:
            sd = y.std(axis=1)
            std = {s.name: s.inverse_std(values[s.name], sd[:, j]) for j, s in enumerate(self.targets)}
        return Prediction(values, std, ood)

    def predict(self, inputs: Any, strict: bool = False) -> Prediction:
        """Predicted metrics of a batch: a DataFrame, a mapping of columns, a list of design dicts
        or one dict. Missing feature columns raise SchemaMismatchError; ``strict`` also rejects
        design dicts with keys the model does not know."""
        x, ood = self.encode(inputs, strict=strict)
        return self.decode(self._raw_predict(x), ood)

    def predict_frame(self, inputs: Any) -> Any:
        """``predict(inputs).to_frame()``."""
        return self.predict(inputs).to_frame()

    # ---- Evaluator -------------------------------------------------------------------------
    @property
    def workload_feature_names(self) -> list[str]:
        """Features the model takes from the workload rather than the design."""
        schema = self._require_fitted()
        return [f.name for f in schema.features if f.source == "workload"]

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        wl_names = self.workload_feature_names
        rows: list[Mapping[str, Any]] = list(designs)
        outside = False
        if wl_names:
            wf = workload_features(workload)
            missing = [n for n in wl_names if n not in wf]
            if missing:
                raise SchemaMismatchError(f"model needs workload feature(s) {missing} that "
                                          f"workload_features() does not compute")
            extra = {n: wf[n] for n in wl_names}
            rows = [{**d, **extra} for d in designs]
        elif self.info.workloads:
            outside = self.workload_id(workload) not in self.info.workloads
        pred = self.predict(rows, strict=True)
        out: Metrics = dict(pred.values)
        if pred.std is not None:
            out.update({f"{k}_std": v for k, v in pred.std.items()})
        out["ood"] = (pred.ood | outside).astype(np.float64)
        return out

    # ---- persistence ----------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The JSON metadata saved beside the ONNX graph."""
        schema = self._require_fitted()
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
            "name": self.name, "version": self.version, "created": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "onnx": {"file": ONNX_FILE, "input": "X", "input_dtype": self.input_dtype,
                     "output": "Y", "layout": "(n, members * targets), member-major"},
            "members": self.members, "seed": self.seed,
            "schema": schema.to_json(),
            "targets": [vars(t) for t in self.targets],
            "hyperparameters": self.hyperparameters,
            "training": {"rows": self.info.rows, "valid_rows": self.info.valid_rows,
                         "data_hash": self.info.data_hash, "fit_seconds": self.info.fit_seconds,
                         "source_evaluators": self.info.source_evaluators,
                         "workloads": self.info.workloads},
            "validation": self.info.validation,
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.onnx`` and ``metadata.json`` into ``directory`` (created if needed).

        The metadata's ``provenance`` records where the model was saved
        (:func:`mlsysgym.core.target.provenance`: target fingerprint, mlsysgym version and commit,
        lock hash), this model's evaluator id and the evaluators its training rows came from."""
        from mlsysgym.core.target import provenance

        if self.onnx_bytes is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; nothing to save")
        d = Path(directory)
        meta = {**self.metadata(), "provenance": provenance(
            evaluator_id=self.id, source_evaluators=self.info.source_evaluators)}
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / ONNX_FILE).write_bytes(self.onnx_bytes)
            tmp = d / f".{META_FILE}.tmp"
            tmp.write_text(json.dumps(meta, indent=1, default=_json_default))
            os.replace(tmp, d / META_FILE)
        except OSError as e:
            raise ModelFileError(f"cannot save cost model to {d}: {e}") from None
        return d

    @staticmethod
    def load(directory: str | os.PathLike[str], threads: int = 1) -> OnnxCostModel:
        """A saved model, predicting through ONNX Runtime (imports neither torch nor lightgbm).

        An MLIR text model (``kind`` "mlir_text" in its metadata) loads as such."""
        try:
            kind = json.loads((Path(directory) / META_FILE).read_text(encoding="utf-8")
                              ).get("kind")
        except (OSError, ValueError, AttributeError):  # ValueError: bad JSON, not UTF-8
            kind = None  # from_dir reports what is wrong with the directory
        if kind == "mlir_text":
            from mlsysgym.costmodels.mlir_text import MlirTextCostModel

            return MlirTextCostModel.load(directory)
        return OnnxCostModel.from_dir(directory, threads=threads)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


class PicklableSession:
    """Mixin for a loaded model holding an ONNX Runtime ``session``: picklable (Ray workers),
    the session rebuilt from ``onnx_bytes`` on unpickling."""

    session: Any
    onnx_bytes: bytes | None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state["session"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.onnx_bytes is not None:
            self.session = _session(self.onnx_bytes, 1)


class OnnxCostModel(PicklableSession, CostModel):
    """A saved cost model run by ONNX Runtime (what :meth:`CostModel.load` returns)."""

    kind = "onnx"

    def __init__(self, cache_size: int = 100_000) -> None:
        super().__init__(cache_size=cache_size)
        self.session: Any = None
        self.meta: dict[str, Any] = {}
        self.path: Path | None = None
        self._input_name = "X"

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], threads: int = 1) -> OnnxCostModel:
        """Load ``model.onnx`` + ``metadata.json``; every field is checked (ModelFileError with
        one line naming the bad field), and the ONNX graph is probed to take the metadata's
        input and give ``members × targets`` outputs."""
        meta, onnx_bytes = read_saved(directory)
        if meta.get("format_version") != FORMAT_VERSION:
            raise bad_metadata(directory, "format_version",
                               f"is {meta.get('format_version')!r}, not {FORMAT_VERSION}")
        m = cls()
        m.meta, m.path = meta, Path(directory)
        m.kind = meta_field(meta, "kind", str, directory)  # type: ignore[misc]
        onnx_meta = meta_field(meta, "onnx", dict, directory)
        m.input_dtype = meta_field(onnx_meta, "input_dtype", str, directory)  # type: ignore[misc]
        if m.input_dtype not in ("float32", "float64"):
            raise bad_metadata(directory, "onnx.input_dtype",
                               f"is {m.input_dtype!r}, not 'float32' or 'float64'")
        m._input_name = meta_field(onnx_meta, "input", str, directory)
        load_common(m, meta, onnx_bytes, directory, threads)
        m.schema = parse_field(meta, "schema", FeatureSchema.from_json, directory)
        m.name = meta_field(meta, "name", str, directory, f"costmodel-{m.kind}")
        m._finish_identity()
        check_version(m, meta, directory)
        m._probe(directory)
        return m

    def _probe(self, directory: str | os.PathLike[str]) -> None:
        """Run the graph on one zero row: it must take the metadata's input name, dtype and
        width and give (1, members × targets); ModelFileError otherwise."""
        schema = self._require_fitted()
        names = [i.name for i in self.session.get_inputs()]
        if self._input_name not in names:
            raise bad_metadata(directory, "onnx.input", f"is {self._input_name!r}, but "
                               f"{ONNX_FILE} takes {names}")
        x = np.zeros((1, len(schema.encoded_names)), dtype=self.input_dtype)
        try:
            y = self.session.run(None, {self._input_name: x})[0]
        except Exception as e:  # noqa: BLE001 - ORT raises its own untyped errors
            raise bad_metadata(directory, "schema/onnx", f"do not match {ONNX_FILE} (a "
                               f"{x.shape[1]}-column {self.input_dtype} input fails: "
                               f"{str(e).splitlines()[0][:160]})") from None
        want = (1, self.members * len(self.targets))
        if np.shape(y) != want:
            raise bad_metadata(directory, "members/targets", f"say {want[1]} outputs per row "
                               f"({self.members} × {len(self.targets)}) but {ONNX_FILE} gives "
                               f"{np.shape(y)[1:]}")

    def _fit_arrays(self, x: np.ndarray, z: np.ndarray, x_valid: np.ndarray | None,
                    z_valid: np.ndarray | None) -> None:
        raise CostModelError("a loaded ONNX cost model cannot be refitted; train a new "
                             "LightGBMCostModel or MLPCostModel")

    def _export_onnx(self, n_inputs: int) -> bytes:
        assert self.onnx_bytes is not None
        return self.onnx_bytes

    def _raw_predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        return self.session.run(None, {self._input_name: x})[0]

    def run_encoded(self, x: np.ndarray) -> np.ndarray:
        """The fastest path for callers that encode themselves: raw ONNX output of ``x``."""
        return self.session.run(None, {self._input_name: x})[0]


def _session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(int(threads), 1)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own untyped errors
        raise ModelFileError(f"ONNX Runtime cannot load the model: {str(e).splitlines()[0]}") from None
