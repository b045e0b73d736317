"""mlsysgym.costmodels: learned cost models that replace slow simulation and measurement.

- :class:`CostModel` (an Evaluator): ``fit`` / ``predict`` / ``save``; ``CostModel.load(dir)``
  predicts through ONNX Runtime only (no torch, no lightgbm).
- ``LightGBMCostModel`` and ``MLPCostModel`` (:mod:`.tabular`, imported on first use).
- :func:`resolve_evaluator` (``"surrogate:PATH"`` → the loaded model, an Evaluator).
- :mod:`.metrics` (RMSE, NRMSE, MAPE, R², Kendall τ, pairwise accuracy, top-k score),
  :mod:`.report` (plots), :mod:`.datasets`, :mod:`.graph_model`.
"""

from __future__ import annotations

from typing import Any

from mlsysgym.costmodels.base import (
    CostModel,
    CostModelError,
    ModelFileError,
    NotFittedError,
    OnnxCostModel,
    Prediction,
)
from mlsysgym.costmodels.features import SchemaMismatchError
from mlsysgym.costmodels.surrogate import UnknownEvaluatorError, load_surrogate, resolve_evaluator

__all__ = ["CostModel", "CostModelError", "LightGBMCostModel", "MLPCostModel", "ModelFileError",
           "NotFittedError", "OnnxCostModel", "Prediction", "SchemaMismatchError",
           "UnknownEvaluatorError", "load_surrogate", "make_model", "resolve_evaluator"]

_LAZY = {"LightGBMCostModel", "MLPCostModel", "make_model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mlsysgym.costmodels import tabular

        return getattr(tabular, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
