"""The tile-size cost model: which targets it knows, how it is checked before use, calibration.

A tiling model is a saved :class:`~mlsysgym.costmodels.base.CostModel` (features
:data:`~mlsysgym.costmodels.tiling_space.FEATURE_NAMES` → ``runtime_ratio`` to IREE's default,
log target) whose ``hyperparameters["tiling"]`` records

- ``targets``: every codegen target it has measured rows of, by fingerprint ``target_id``
  (level, vector width, CPU model, rows, shapes);
- ``floor``: per op kind, the 5th percentile of the measured ratios — a predicted gain beyond
  it is outside what the data supports, and the pass keeps IREE's default there.

:func:`load_tiling_model` loads one (the package's default model when no path is given) for a
codegen target and attaches that target's **calibration** when one is cached: on a target the
model has no rows of, :func:`calibrate` measures a budgeted set of kernels here (the ops to
tune first, then the training shapes), each candidate timed against IREE's default, and fits
a small residual model (LightGBM on ``log(measured) − log(predicted)``) that corrects the base
model on this target. Rows and the residual model are kept per ``target_id`` under
``$MLSYSGYM_CACHE_DIR/tiling-calibration/<target_id>/`` (resumable: measured shapes are
skipped). Measured shapes also give the pass their measured best configuration.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.target import TargetIsa
from mlsysgym.costmodels.tiling_space import (
    FEATURE_NAMES,
    KNOBS,
    TileConfig,
    TilingError,
    TilingInstance,
    config_features,
)

__all__ = ["DEFAULT_MODEL_DIR", "Calibration", "TilingModel", "calibrate", "calibration_dir",
           "features_frame", "fit_residual", "load_tiling_model", "ratio_floor", "row_instance",
           "train_tiling_model"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "tiling"
FLOOR_QUANTILE = 0.05
SIZE_SLACK = 2.0        # an op up to twice the largest training shape counts as in the data
MEASURED_MARGIN = 0.97  # a measured config replaces the default only when >= 3 % faster


def _isa(level: str, vector_bits: int) -> TargetIsa:
    return TargetIsa(level, level, int(vector_bits), ())


def row_instance(row: Mapping[str, Any]) -> TilingInstance:
    """The problem a dataset row measured (rows written before ``transpose_b`` was recorded
    are of plain kernels)."""
    tb = row.get("transpose_b", False)
    return TilingInstance(str(row["kind"]), tuple(int(x) for x in str(row["dims"]).split("x")),
                          int(row["stride"]), int(row["dilation"]),
                          transpose_b=tb is True or tb == 1.0)  # NaN or None in older rows


def features_frame(rows: Any) -> Any:
    """The ok rows of a tiling dataset (``experiments.tiling_data`` columns; IREE's default of
    every (shape, target) added as a row of ratio 1) with the feature columns added; each row's
    features use the target it was measured on (``vector_bits``, ``l2_kib``). Rows of kernels
    with a transposed right operand are left out: no feature tells the layouts apart."""
    import pandas as pd

    df = rows[rows["ok"].astype(bool) & np.isfinite(rows["runtime_ratio"])]
    if "transpose_b" in df:  # the features do not describe the operand layout
        df = df[~df["transpose_b"].fillna(False).astype(bool)]
    df = df.reset_index(drop=True)
    if "target_id" not in df:
        raise TilingError("tiling rows without a target fingerprint (target_id) cannot train a "
                          "target-aware model; re-measure them")
    firsts = df.groupby(["target_id", "problem_key"], sort=False).head(1).copy()
    for k in KNOBS:
        firsts[k] = firsts[f"default_{k}"]
    firsts["runtime_ratio"] = 1.0
    firsts["config"] = firsts["default_config"]
    df = pd.concat([df, firsts], ignore_index=True)
    parts = []
    for (_, _), g in df.groupby(["target_id", "problem_key"], sort=False):
        r = g.iloc[0]
        p = row_instance(r)
        dk = {k: int(r[f"default_{k}"]) for k in KNOBS}
        f = config_features(p, {k: g[k].to_numpy(dtype=np.float64) for k in KNOBS}, dk,
                            _isa(str(r["target_level"]), int(r["vector_bits"])),
                            float(r["l2_kib"]))
        parts.append(pd.DataFrame(f, index=g.index))
    feats = pd.concat(parts).sort_index()
    return pd.concat([df.drop(columns=[c for c in FEATURE_NAMES if c in df]), feats], axis=1)


def ratio_floor(rows: Any) -> dict[str, float]:
    """Per op kind, the :data:`FLOOR_QUANTILE` quantile of the measured ratios of ``rows``
    (IREE's default rows excluded): the largest gain the data supports."""
    ok = rows[rows["ok"].astype(bool) & np.isfinite(rows["runtime_ratio"])] \
        if "ok" in rows else rows
    if "is_default" in ok:
        ok = ok[ok["is_default"] < 0.5]
    return {str(k): float(np.quantile(g["runtime_ratio"], FLOOR_QUANTILE))
            for k, g in ok.groupby("kind")}


def _target_summary(frame: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for tid, g in frame.groupby("target_id"):
        r = g.iloc[0]
        out[str(tid)] = {"target_cpu": str(r.get("target_cpu", "")), "level": str(r["target_level"]),
                         "vector_bits": int(r["vector_bits"]), "cpu_model": str(r.get("cpu_model", "")),
                         "rows": len(g), "shapes": int(g["problem_key"].nunique())}
    return out


def train_tiling_model(frame: Any, out: str | os.PathLike[str] | None = None, members: int = 3,
                       seed: int = 0, n_estimators: int = 100) -> Any:
    """Fit a LightGBM ensemble on a :func:`features_frame`; records the targets and the
    per-kind ratio floor in ``hyperparameters["tiling"]``; saved to ``out`` when given."""
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    model = LightGBMCostModel(members=members, seed=seed, n_estimators=n_estimators,
                              learning_rate=0.15, num_leaves=15, min_data_in_leaf=8,
                              feature_fraction=0.8, early_stopping=30)
    model.fit(frame, features=list(FEATURE_NAMES), targets=["runtime_ratio"],
              target_transform="log", valid_fraction=0.15)
    model.hyperparameters["tiling"] = {
        "targets": _target_summary(frame), "floor": ratio_floor(frame),
        "shapes": int(frame["problem_key"].nunique()),
        "max_macs": {str(k): int(g["macs"].max()) for k, g in frame.groupby("kind")}}
    if out is not None:
        model.save(out)
    return model


# ---- the loaded model ---------------------------------------------------------------------
@dataclass
class Calibration:
    """A target's calibration: its measured rows, residual model, measured best configs and
    the per-kind ratio floor of its rows (what the data supports on this target)."""

    target_id: str
    rows: int
    shapes: int
    residual: Any | None
    best: dict[str, tuple[TileConfig, float]] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    measured: frozenset[str] = frozenset()  # every shape key with measured rows


@dataclass
class TilingModel:
    """A loaded tiling model for one codegen target, with that target's calibration if any."""

    base: Any
    target_id: str
    isa: TargetIsa
    calibration: Calibration | None = None
    path: Path | None = None

    @property
    def info(self) -> dict[str, Any]:
        """``hyperparameters["tiling"]`` of the base model (targets, floor)."""
        return dict(self.base.hyperparameters.get("tiling", {}))

    @property
    def trained_targets(self) -> dict[str, dict[str, Any]]:
        """Targets the base model has measured rows of, by ``target_id``."""
        return dict(self.info.get("targets", {}))

    @property
    def knows_target(self) -> bool:
        """True when the base model was trained on this target or a calibration is attached."""
        return self.target_id in self.trained_targets or (
            self.calibration is not None and self.calibration.residual is not None)

    def in_data(self, problem: TilingInstance) -> bool:
        """Whether the op is no larger than ``SIZE_SLACK`` × the largest training shape of its
        kind (the model extrapolates beyond; the pass keeps IREE's default there unless the
        op was measured by a calibration) and has the operand layout of the training kernels
        (not ``transpose_b``: the features cannot tell the layouts apart)."""
        most = self.info.get("max_macs", {}).get(problem.kind)
        return most is not None and problem.macs <= SIZE_SLACK * float(most) \
            and not problem.transpose_b

    def unsupported(self, problems: Sequence[TilingInstance]) -> list[TilingInstance]:
        """The distinct ``problems`` the model cannot decide on this target: all of them on a
        target it has no data for, else those outside its data (:meth:`in_data`); shapes a
        calibration already measured are left out."""
        done = self.calibration.measured if self.calibration is not None else frozenset()
        return [p for p in dict.fromkeys(problems)
                if p.key not in done and (not self.knows_target or not self.in_data(p))]

    def floor(self, kind: str) -> float:
        """The smallest ratio the data supports for ``kind`` on this target: the calibration's
        when it measured that kind, else the base model's (0 when unknown)."""
        if self.calibration is not None and kind in self.calibration.floor:
            return self.calibration.floor[kind]
        return float(self.info.get("floor", {}).get(kind, 0.0))

    def predict(self, feats: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predicted ratio, ensemble spread of the log ratio, OOD flag) per candidate: one
        batched ONNX Runtime call of the base model (plus one of the residual when calibrated)."""
        m = self.base
        x, ood = m.encode(feats)
        y = m.run_encoded(x)
        t = m.targets[0]
        n = len(x)
        z = np.asarray(y, dtype=np.float64).reshape(n, m.members, -1)[:, :, 0]
        log_pred = np.log(np.maximum(t.inverse(z.mean(axis=1)), 1e-9))
        spread = z.std(axis=1) * t.std if t.transform == "log" else np.zeros(n)
        res = self.calibration.residual if self.calibration is not None else None
        if res is not None:
            xr, _ = res.encode(feats)
            log_pred = log_pred + res.targets[0].inverse(
                np.asarray(res.run_encoded(xr), dtype=np.float64).reshape(n, -1).mean(axis=1))
        return np.exp(log_pred), spread, np.asarray(ood, dtype=bool)


def calibration_dir(target_id: str) -> Path:
    """Where a target's calibration rows and residual model are cached."""
    from mlsysgym.ir.mlir_import import cache_dir

    return cache_dir("tiling-calibration") / target_id


def _load_base(path: Path) -> Any:
    from mlsysgym.costmodels.base import CostModel

    model = CostModel.load(path)
    if "tiling" not in model.hyperparameters or list(model.schema.names) != list(FEATURE_NAMES):
        raise TilingError(f"{path} is not a tile-size cost model for this version (its features "
                          f"differ from the pass's); retrain it with "
                          "`python -m mlsysgym.experiments.tiling_data --train DIR`")
    model.run_encoded(np.zeros((1, len(FEATURE_NAMES)), dtype=model.input_dtype))  # warm up
    return model


def load_tiling_model(path: str | os.PathLike[str] | None = None,
                      target_cpu: str = "host") -> TilingModel:
    """The tiling model at ``path`` (the package's default model when None) for codegen target
    ``target_cpu``, with this target's cached calibration attached when there is one."""
    from mlsysgym.core.target import target_id, target_isa

    p = Path(path) if path is not None else DEFAULT_MODEL_DIR
    if not (p / "metadata.json").is_file():
        raise TilingError(f"no tile-size cost model at {p} (model.onnx + metadata.json)")
    model = TilingModel(_load_base(p), target_id(target_cpu), target_isa(target_cpu), path=p)
    model.calibration = _load_calibration(model)
    return model


def _load_calibration(model: TilingModel) -> Calibration | None:
    from mlsysgym.core.dataset import read_dataset

    d = calibration_dir(model.target_id)
    if not any(d.glob("part-*.parquet")):
        return None
    return _calibration_from(model, read_dataset(d), d, refit=False)


def _calibration_from(model: TilingModel, rows: Any, d: Path, refit: bool,
                      seconds: float = 0.0) -> Calibration:
    """A Calibration of ``rows`` (measured here, cached in ``d``). Only on a target the base
    model has no rows of does it adapt the model: a residual model (fitted now when
    ``refit``, else the saved one if it matches these rows) and the floor of these rows; on
    a known target the measurements decide their own shapes and nothing else."""
    adapt = model.target_id not in model.trained_targets
    residual = None
    if adapt and refit:
        residual = fit_residual(model, rows, d / "residual")
    elif adapt and (d / "residual" / "metadata.json").is_file():
        meta = json.loads((d / "residual" / "metadata.json").read_text())
        info = meta.get("hyperparameters", {}).get("calibration", {})
        if info.get("base_version") == model.base.version and info.get("rows") == len(rows):
            from mlsysgym.costmodels.base import CostModel

            residual = CostModel.load(d / "residual")
    keys = frozenset(rows["problem_key"].astype(str))
    return Calibration(model.target_id, len(rows), len(keys), residual, _measured_best(rows),
                       ratio_floor(rows) if adapt else {}, seconds, keys)


def _measured_best(rows: Any) -> dict[str, tuple[TileConfig, float]]:
    """Per problem key, the measured fastest configuration and its ratio (when below
    :data:`MEASURED_MARGIN`) among those
    that keep the multi-threaded driver's parallelism
    (:func:`~mlsysgym.costmodels.tiling_score.parallel_ok`)."""
    from mlsysgym.costmodels.tiling_score import parallel_ok

    ok = rows[rows["ok"].astype(bool) & np.isfinite(rows["runtime_ratio"])]
    out: dict[str, tuple[TileConfig, float]] = {}
    for key, g in ok.groupby("problem_key"):
        r0 = g.iloc[0]
        p = row_instance(r0)
        g = g[parallel_ok(p, {k: g[k].to_numpy() for k in KNOBS},
                          {k: int(r0[f"default_{k}"]) for k in KNOBS})]
        if g.empty:
            continue
        r = g.loc[g["runtime_ratio"].idxmin()]
        if float(r["runtime_ratio"]) < MEASURED_MARGIN:
            out[str(key)] = (TileConfig.from_dict(json.loads(r["config"])), float(r["runtime_ratio"]))
    return out


def fit_residual(model: TilingModel, rows: Any, out: Path) -> Any | None:
    """Fit the residual model (log measured − log predicted by the base model) on a target's
    rows, save it to ``out`` and return it loaded from there (ONNX Runtime); None when there
    are too few rows (< 10)."""
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    frame = features_frame(rows)
    if len(frame) < 10:
        return None
    base_pred, _, _ = TilingModel(model.base, model.target_id, model.isa).predict(
        {f: frame[f].to_numpy() for f in FEATURE_NAMES})
    frame["residual"] = np.log(frame["runtime_ratio"].to_numpy()) - np.log(base_pred)
    res = LightGBMCostModel(members=1, seed=0, n_estimators=60, learning_rate=0.1, num_leaves=7,
                            min_data_in_leaf=5, lambda_l2=1.0, early_stopping=20)
    res.fit(frame, features=list(FEATURE_NAMES), targets=["residual"],
            target_transform="identity", valid_fraction=0.15)
    res.hyperparameters["calibration"] = {"base_version": model.base.version, "rows": len(rows),
                                          "target_id": model.target_id}
    res.save(out)
    from mlsysgym.costmodels.base import CostModel

    return CostModel.load(out)  # predict through ONNX Runtime, as the pass does


def calibrate(model: TilingModel, target_cpu: str, problems: Sequence[TilingInstance],
              minutes: float = 10.0, per_shape: int = 6, rounds: int = 3,
              more_shapes: int = 200, show_progress: bool = True,
              log: Callable[[str], None] = print) -> Calibration:
    """Measure kernels on this target for at most ``minutes``: the given ``problems`` first,
    then up to ``more_shapes`` perturbations of the plain-layout ones (the models use only
    those) while time is left; shapes already measured for this target are skipped. Per
    shape: the ``per_shape // 2`` best predicted candidates and near-default ones, each timed
    against IREE's default. On a target the base model has no rows of, fit the residual model
    (see :func:`_calibration_from`); attach the result to ``model``. Everything is cached
    under :func:`calibration_dir`."""
    from mlsysgym.core.dataset import read_dataset
    from mlsysgym.costmodels.tiling_measure import ShapeSample, collect, perturbed

    d = calibration_dir(model.target_id)
    t0 = time.perf_counter()
    own = list(dict.fromkeys(problems))
    shapes = [ShapeSample(p, "calibration:module", p.key) for p in own]
    shapes += perturbed([("module", p) for p in own if not p.transpose_b], more_shapes, seed=1)
    summary = collect(d, minutes=minutes, per_shape=per_shape, rounds=rounds,
                      show_progress=show_progress, target_cpu=target_cpu, shapes=shapes,
                      ranker=model)
    if not any(d.glob("part-*.parquet")):
        raise TilingError(f"calibration measured nothing on target {model.target_id} in "
                          f"{minutes:g} min; give it more time (--minutes)")
    cal = _calibration_from(model, read_dataset(d), d, refit=True,
                            seconds=time.perf_counter() - t0)
    model.calibration = cal
    log(f"calibrated for target {model.target_id}: {summary['shapes']} new shape(s), "
        f"{cal.rows} rows in all, {cal.seconds:.0f} s (cached in {d})")
    return cal
