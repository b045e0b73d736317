"""The MLIR text cost model (:class:`MlirTextCostModel`): hyperparameters, ``fit`` (delegated to
:mod:`.train`), prediction on kernel texts, the Evaluator interface and the saved metadata."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from mlsysgym.core.evaluator import Design, Metrics
from mlsysgym.costmodels.base import (
    FORMAT,
    FORMAT_VERSION,
    ONNX_FILE,
    CostModel,
    NotFittedError,
    Prediction,
)
from mlsysgym.costmodels.mlir_text.tokens import (
    AUX_TARGETS,
    EncodedTexts,
    MlirTextError,
    MlirTokenizer,
    _texts_of,
)
from mlsysgym.costmodels.mlir_text.train import fit_model

if TYPE_CHECKING:
    from mlsysgym.costmodels.mlir_text.infer import OnnxMlirTextModel

KIND = "mlir_text"


class MlirTextCostModel(CostModel):
    """Transformer on MLIR kernel text → a runtime metric (``runtime_us``), log-space regression.

    ``fit(frame)`` reads the ``mlir`` column (``text_column``) and the target column; ``predict``
    takes a DataFrame, a list of texts or ``{"mlir": text}`` dicts, or one text. As an
    Evaluator, designs are ``{"mlir": text}`` dicts (the workload is ignored).

    Hyperparameters (:attr:`DEFAULTS`) include options evaluated and left off by default
    (benchmarks/results/mlir_costmodel.md): ``pool="mean+attn"`` adds attention pooling with a
    learned scoring vector; ``readouts=k`` feeds k extra log-linear readouts (learned sums of
    log sizes) into the runtime head; ``alignment=False`` drops the alignment embedding;
    ``pretrain=n`` first trains the encoder for ``pretrain_epochs`` epochs on ``n`` unmeasured
    kernels emitted from perturbed shapes of the training rows
    (:func:`mlsysgym.costmodels.mlir_pretrain.pretrain_frame`; needs the frame's ``kind`` and
    ``shape`` columns) to predict their analytic auxiliary targets (no runtime), and every
    member fine-tunes from those weights (``finetune_lr_scale`` scales the fine-tuning
    learning rate; 0.3 did worse than 1). ``periodic=k`` adds to each number's linear value
    embedding a linear map of sin/cos of its log value at k learned frequencies (0 = off; the
    default 16 lifted the random split's Kendall τ from 0.912/0.910 to 0.922/0.928, one member,
    two seeds). The benchmark trains with ``pretrain=100000, pretrain_epochs=2`` (9 min alone
    on this machine); the library default stays 0 so that a plain ``fit`` takes minutes, not a
    quarter hour.
    """

    kind = KIND
    input_dtype = "int64"

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "d_model": 48, "heads": 4, "layers": 2, "ffn": 96, "dropout": 0.0, "max_len": 160,
        "epochs": 40, "patience": 8, "batch_size": 32, "learning_rate": 3e-3,
        "weight_decay": 1e-4, "min_count": 1, "compact": True, "threads": 1,
        "max_seconds": 600.0, "aux_targets": AUX_TARGETS,
        "aux_weight": 0.3, "rank_weight": 0.5, "token_dropout": 0.0,
        "pool": "mean", "alignment": True, "readouts": 0, "pretrain": 0, "pretrain_epochs": 3,
        "finetune_lr_scale": 1.0, "periodic": 16}

    def __init__(self, members: int = 1, seed: int = 0, text_column: str = "mlir",
                 **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(self.DEFAULTS)
        if unknown:
            raise MlirTextError(f"unknown MLIR text model hyperparameter(s) {sorted(unknown)}; "
                                f"known: {', '.join(self.DEFAULTS)}")
        super().__init__(members=members, seed=seed, **{**self.DEFAULTS, **hyperparameters})
        self.text_column = text_column
        self.tokenizer: MlirTokenizer | None = None
        self.module: Any = None
        self.history: list[dict[str, float]] = []
        self.aux_targets: list[str] = []
        self.pretrain_history: list[dict[str, float]] = []


    def fit(self, frame: Any, features: Sequence[str] = (), targets: Sequence[str] = ("runtime_us",),
            *, valid_fraction: float = 0.1, valid_frame: Any = None, unlabeled: Any = None,
            **_ignored: Any) -> MlirTextCostModel:
        """Train on a DataFrame's ``text_column`` → the (single) target, log-transformed.

        The validation rows for early stopping are ``valid_frame`` when given, else a random
        ``valid_fraction`` of ``frame``. ``features`` is accepted for API symmetry and ignored
        (the text is the only input). ``unlabeled``: kernels without runtimes (a frame of
        ``kind``/``shape``/... design columns, e.g. every kernel of the models a compiler will
        see), used only with ``pretrain``: as extra seeds of the pretraining kernels and in the
        vocabulary (their own tokens still flag a row out of distribution)."""
        return fit_model(self, frame, targets, valid_fraction, valid_frame, unlabeled)

    def _fit_arrays(self, x: np.ndarray, z: np.ndarray, x_valid: np.ndarray | None,
                    z_valid: np.ndarray | None) -> None:
        raise MlirTextError("MlirTextCostModel trains from texts; call fit(frame)")

    def _export_onnx(self, n_inputs: int) -> bytes:
        if self.onnx_bytes is None:
            raise NotFittedError("MlirTextCostModel is not fitted; call fit()")
        return self.onnx_bytes

    # ---- inference ----------------------------------------------------------------------------
    def _require_tokenizer(self) -> MlirTokenizer:
        if self.tokenizer is None or not self.targets:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or "
                                 f"MlirTextCostModel.load()")
        return self.tokenizer

    def encode_texts(self, inputs: Any) -> EncodedTexts:
        """Token ids and values of ``inputs`` (texts, frame, dicts) — the ONNX inputs."""
        return self._require_tokenizer().encode(_texts_of(inputs, self.text_column))

    def _raw_predict(self, x: Any) -> np.ndarray:
        import torch

        if self.module is None:
            raise NotFittedError("MlirTextCostModel is not fitted; call fit()")
        with torch.no_grad():
            return self.module(torch.from_numpy(x.tokens), torch.from_numpy(x.numbers),
                               torch.from_numpy(x.slots)).numpy()

    def predict(self, inputs: Any, strict: bool = False, batch_size: int = 512) -> Prediction:
        """Predicted runtimes of kernel texts (a frame with the text column, texts, dicts);
        ``ood`` flags rows with unseen tokens, sizes beyond the training range, or truncation."""
        texts = _texts_of(inputs, self.text_column)
        tok = self._require_tokenizer()
        outs, oods = [], []
        for i in range(0, len(texts), batch_size):
            enc = tok.encode(texts[i:i + batch_size])
            outs.append(np.asarray(self._raw_predict(enc)))
            oods.append(enc.ood)
        if not texts:
            return self.decode(np.zeros((0, 1)), np.zeros(0, dtype=bool))
        return self.decode(np.concatenate(outs), np.concatenate(oods))

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        pred = self.predict(list(designs))
        out: Metrics = dict(pred.values)
        out["ood"] = pred.ood.astype(np.float64)
        return out

    # ---- persistence --------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The JSON metadata saved beside the ONNX graph (tokenizer included)."""
        tok = self._require_tokenizer()
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND,
            "name": self.name, "version": self.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "onnx": {"file": ONNX_FILE, "inputs": ["tokens", "numbers", "slots"],
                     "input_dtypes": ["int64", "float32", "int64"], "output": "Y",
                     "layout": "(n, members): standardized log target per member"},
            "members": self.members, "seed": self.seed, "text_column": self.text_column,
            "tokenizer": tok.to_json(),
            "targets": [vars(t) for t in self.targets],
            "hyperparameters": self.hyperparameters,
            "training": {"rows": self.info.rows, "valid_rows": self.info.valid_rows,
                         "data_hash": self.info.data_hash, "fit_seconds": self.info.fit_seconds,
                         "epochs_run": len(self.history),
                         "source_evaluators": self.info.source_evaluators,
                         "workloads": self.info.workloads},
            "validation": self.info.validation,
        }

    @staticmethod
    def load(directory: str | os.PathLike[str], threads: int = 1) -> OnnxMlirTextModel:  # type: ignore[override]
        """A saved MLIR text model run by ONNX Runtime (no torch import)."""
        from mlsysgym.costmodels.mlir_text.infer import OnnxMlirTextModel

        return OnnxMlirTextModel.from_dir(directory, threads=threads)
