"""The MLIR text model as a correction of the fitted roofline (:class:`ResidualTextModel`).

The plain text model (:class:`~mlsysgym.costmodels.mlir_text.MlirTextCostModel`) regresses the
whole log runtime; on a model family absent from training it ranks kernels below FLOPs alone
(benchmarks/results/costmodel_families.md). This variant fits the roofline
(:class:`~mlsysgym.costmodels.mlir_text.RooflineModel`) on the training rows first and trains
the same text model (tokenizer, encoder, pretraining, loss, ensemble) on what the roofline
misses, the log ratio ``log(runtime / roofline)``; the prediction is
``roofline × exp(correction)``. A correction that stays near a constant leaves the roofline's
ranking as it is, so the analytic model is the fallback and the text adds what it can.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.costmodels.base import NotFittedError, Prediction
from mlsysgym.costmodels.mlir_text.baselines import RooflineModel
from mlsysgym.costmodels.mlir_text.model import MlirTextCostModel
from mlsysgym.costmodels.mlir_text.tokens import MlirTextError

#: The column the text model of a :class:`ResidualTextModel` is trained on.
RATIO = "roofline_ratio"
ROOFLINE_FILE = "roofline.json"


def residual_ratio(runtime: Any, roofline: Any) -> np.ndarray:
    """The text model's target: measured runtime ÷ the roofline's estimate, per row (its log is
    the correction the text model learns)."""
    y, r = np.asarray(runtime, dtype=np.float64), np.asarray(roofline, dtype=np.float64)
    if y.shape != r.shape or not (np.isfinite(y).all() and np.isfinite(r).all()) \
            or (y <= 0).any() or (r <= 0).any():
        raise MlirTextError("runtimes and roofline estimates must be positive, finite and "
                            "of equal length")
    return y / r


def apply_correction(roofline: Any, log_correction: Any) -> np.ndarray:
    """The prediction: ``roofline × exp(log_correction)`` per row (the inverse of
    :func:`residual_ratio` in log space)."""
    return np.asarray(roofline, dtype=np.float64) * np.exp(np.asarray(log_correction, np.float64))


class ResidualTextModel:
    """Fitted roofline × exp(the text model's correction); see the module docstring.

    ``members``, ``seed`` and ``hyperparameters`` are the text model's
    (:attr:`MlirTextCostModel.DEFAULTS`). ``fit`` and ``predict`` need the rows' ``flops``,
    ``bytes_read`` and ``bytes_written`` columns (the roofline's inputs) beside the text."""

    def __init__(self, members: int = 1, seed: int = 0, text_column: str = "mlir",
                 **hyperparameters: Any) -> None:
        self.text = MlirTextCostModel(members=members, seed=seed, text_column=text_column,
                                      **hyperparameters)
        self.roofline: RooflineModel | None = None

    def fit(self, frame: Any, targets: Any = ("runtime_us",), **kwargs: Any) -> ResidualTextModel:
        """Fit the roofline on ``frame``'s target, then the text model on the ratio of the
        target to the roofline's estimate (``kwargs`` go to :meth:`MlirTextCostModel.fit`;
        a ``valid_frame`` gets its ratio column too)."""
        targets = list(targets)
        if len(targets) != 1:
            raise MlirTextError(f"the residual text model predicts one target, got {targets}")
        missing = [c for c in ("flops", "bytes_read", "bytes_written", targets[0])
                   if c not in frame.columns]
        if missing:
            raise MlirTextError(f"the residual text model needs the column(s) {missing}")
        self.roofline = RooflineModel(target=targets[0]).fit(frame)
        if kwargs.get("valid_frame") is not None:
            kwargs["valid_frame"] = self._with_ratio(kwargs["valid_frame"])
        self.text.fit(self._with_ratio(frame), targets=[RATIO], **kwargs)
        return self

    def _with_ratio(self, frame: Any) -> Any:
        """``frame`` with the :data:`RATIO` column (the target ÷ the roofline's estimate)."""
        roof = self._roofline()
        est = roof.predict(frame).values[roof.target]
        return frame.assign(**{RATIO: residual_ratio(frame[roof.target], est)})

    def _roofline(self) -> RooflineModel:
        if self.roofline is None:
            raise NotFittedError("ResidualTextModel is not fitted; call fit()")
        return self.roofline

    def predict(self, frame: Any) -> Prediction:
        """Predicted runtimes of a frame's kernels: the roofline's estimate × the text model's
        predicted ratio (its ensemble spread scaled alike; its ``ood`` flags kept)."""
        roof = self._roofline()
        base = roof.predict(frame).values[roof.target]
        ratio = self.text.predict(frame)
        std = None if ratio.std is None else {roof.target: base * ratio.std[RATIO]}
        return Prediction({roof.target: apply_correction(base, np.log(ratio.values[RATIO]))},
                          std, ratio.ood)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """The text model's ``model.onnx`` + ``metadata.json`` and the roofline's parameters
        (``roofline.json``) in ``directory``."""
        import json

        roof = self._roofline()
        d = self.text.save(directory)
        (Path(directory) / ROOFLINE_FILE).write_text(json.dumps(
            {"peak": roof.peak, "bandwidth": roof.bandwidth, "t0": roof.t0,
             "target": roof.target, "fit_rmse_log": roof.fit_rmse_log}, indent=1))
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str], threads: int = 1) -> ResidualTextModel:
        """A saved residual model: the text model run by ONNX Runtime, the roofline from JSON."""
        import json

        path = Path(directory) / ROOFLINE_FILE
        if not path.is_file():
            raise MlirTextError(f"{path} is missing: not a saved residual text model")
        m = cls.__new__(cls)
        m.text = MlirTextCostModel.load(directory, threads=threads)
        m.roofline = RooflineModel(**json.loads(path.read_text()))
        return m
