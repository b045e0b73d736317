"""Inference of a saved MLIR text model: the tokenizer runs in Python and ONNX Runtime runs the
network (:class:`OnnxMlirTextModel`); loading imports neither torch nor lightgbm."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.costmodels.base import (
    FORMAT,
    META_FILE,
    ModelFileError,
    PicklableSession,
    check_version,
    load_common,
    meta_field,
    parse_field,
    read_saved,
)
from mlsysgym.costmodels.mlir_text.model import KIND, MlirTextCostModel
from mlsysgym.costmodels.mlir_text.tokens import MlirTextError, MlirTokenizer


class OnnxMlirTextModel(PicklableSession, MlirTextCostModel):
    """A saved MLIR text model: Python tokenizer + ONNX Runtime network."""

    def __init__(self) -> None:
        super().__init__()
        self.session: Any = None
        self.meta: dict[str, Any] = {}
        self.path: Path | None = None

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str], threads: int = 1) -> OnnxMlirTextModel:
        """Load ``model.onnx`` + ``metadata.json`` written by :meth:`MlirTextCostModel.save`."""
        meta, onnx_bytes = read_saved(directory, "MLIR text model")
        if meta.get("format") != FORMAT or meta.get("kind") != KIND:
            raise ModelFileError(f"{Path(directory) / META_FILE} is not a {FORMAT} file of "
                                 f"kind {KIND!r}")
        m = cls()
        m.meta, m.path = meta, Path(directory)
        m.text_column = meta_field(meta, "text_column", str, directory, "mlir")
        load_common(m, meta, onnx_bytes, directory, threads, members=1)
        m.tokenizer = parse_field(meta, "tokenizer", MlirTokenizer.from_json, directory)
        m.name = meta.get("name", m.name)
        m._finish_identity()
        check_version(m, meta, directory)
        return m

    def fit(self, *args: Any, **kwargs: Any) -> MlirTextCostModel:
        raise MlirTextError("a loaded MLIR text model cannot be refitted; train a new "
                            "MlirTextCostModel")

    def _raw_predict(self, x: Any) -> np.ndarray:
        return self.session.run(None, {"tokens": x.tokens, "numbers": x.numbers,
                                       "slots": x.slots})[0]

