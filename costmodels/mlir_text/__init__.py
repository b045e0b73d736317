"""MLIR text cost model: a tokenizer for MLIR kernels and a small transformer on the tokens.

The approach of the "ML-driven Hardware Cost Model for MLIR" paper: read a kernel's MLIR text
like a sentence and regress a hardware metric (here the measured ``runtime_us`` of the
``iree-cpu`` kernel dataset, ``experiments/mlir_measure.py``) in log space.

The pieces, in the order a kernel flows through them:

- :mod:`.tokens` — the tokenization rules (:func:`tokenize`, :func:`tokenize_slots`), the
  vocabulary and encoder (:class:`MlirTokenizer`, :class:`EncodedTexts`);
- :mod:`.network` — the transformer encoder regressor (torch; training only);
- :mod:`.train` — fitting: auxiliary targets, validation folds, pretraining, ensemble members;
- :mod:`.export` — the members as one ONNX graph (``tokens``, ``numbers``, ``slots`` → ``Y``);
- :mod:`.model` — :class:`MlirTextCostModel` (hyperparameters, ``fit``, ``predict``, the
  Evaluator interface, metadata);
- :mod:`.infer` — :class:`OnnxMlirTextModel`, a saved model run by ONNX Runtime;
- :mod:`.residual` — :class:`ResidualTextModel`, the text model trained on the log ratio of
  the runtime to the fitted roofline (prediction = roofline × exp(correction));
- :mod:`.baselines` — :class:`RooflineModel` and :func:`hand_features` (for a
  ``LightGBMCostModel``) on the same rows.

At inference the tokenizer runs in Python and ONNX Runtime runs the network:
:meth:`MlirTextCostModel.load` imports neither torch nor lightgbm. The saved directory has the
CostModel format (``model.onnx`` + ``metadata.json``, ``kind`` = ``mlir_text``, the vocabulary
under ``tokenizer``), but its inputs are token matrices, not a feature schema: load it with
``MlirTextCostModel.load`` (``CostModel.load`` does not dispatch on ``kind``).
"""

from mlsysgym.costmodels.mlir_text.baselines import (
    ALIGN_FEATURES,
    HAND_FEATURES,
    RooflineModel,
    hand_features,
)
from mlsysgym.costmodels.mlir_text.infer import OnnxMlirTextModel
from mlsysgym.costmodels.mlir_text.model import KIND, MlirTextCostModel
from mlsysgym.costmodels.mlir_text.residual import (
    RATIO,
    ResidualTextModel,
    apply_correction,
    residual_ratio,
)
from mlsysgym.costmodels.mlir_text.tokens import (
    AUX_TARGETS,
    COMPACT_DROP,
    MAX_ALIGN,
    MAX_BITS,
    MAX_RANK,
    N_SLOTS,
    NUMEL_SLOT,
    PAD,
    SLOT_STRIDE,
    UNK,
    VALUE_SCALE,
    EncodedTexts,
    MlirTextError,
    MlirTokenizer,
    alignment,
    tokenize,
    tokenize_slots,
)
from mlsysgym.costmodels.mlir_text.train import _aux_labels as _aux_labels

__all__ = ["ALIGN_FEATURES", "AUX_TARGETS", "COMPACT_DROP", "HAND_FEATURES", "KIND", "MAX_ALIGN",
           "MAX_BITS", "MAX_RANK", "NUMEL_SLOT", "N_SLOTS", "PAD", "RATIO", "SLOT_STRIDE", "UNK",
           "VALUE_SCALE", "EncodedTexts", "MlirTextCostModel", "MlirTextError", "MlirTokenizer",
           "OnnxMlirTextModel", "ResidualTextModel", "RooflineModel", "alignment",
           "apply_correction", "hand_features", "residual_ratio", "tokenize", "tokenize_slots"]
