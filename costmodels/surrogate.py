"""Surrogate use of cost models: a saved CostModel as an Evaluator.

- :class:`SurrogateEvaluator`: a saved CostModel as an Evaluator (ONNX Runtime inference);
  ``"surrogate:PATH"`` resolves to it through the evaluator registry
  (:func:`mlsysgym.core.evaluator.resolve_evaluator`, re-exported here).
- Active learning (a search over the surrogate) is in :mod:`mlsysgym.agents.active_learning`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsysgym.core.evaluator import (
    Design,
    Evaluator,
    Metrics,
    UnknownEvaluatorError,
    resolve_evaluator,
)
from mlsysgym.costmodels.base import CostModel, CostModelError, OnnxCostModel

__all__ = ["SurrogateEvaluator", "UnknownEvaluatorError", "load_surrogate", "resolve_evaluator"]


class SurrogateEvaluator(Evaluator):
    """A saved cost model (directory with model.onnx + metadata.json) as an Evaluator.

    Its metrics are the model's targets, ``<target>_std`` for ensembles and ``ood`` (1.0 for
    designs or workloads outside the training data). ``name`` is ``surrogate``, ``version``
    the model's content hash, so logged rows say which model produced them.
    """

    name = "surrogate"

    def __init__(self, model: str | os.PathLike[str] | CostModel, cache_size: int = 100_000,
                 seed: int = 0) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        self.model: CostModel = (model if isinstance(model, CostModel)
                                 else CostModel.load(model))
        self.path = getattr(self.model, "path", None)
        self.version = f"{self.model.kind}-{self.model.version}"
        self.metric_names = self.model.metric_names

    @classmethod
    def from_path(cls, path: str | os.PathLike[str] = "") -> SurrogateEvaluator:
        """The evaluator ``"surrogate:PATH"`` names; UnknownEvaluatorError if PATH is no model
        directory."""
        path = os.fspath(path)
        if not path or not Path(path).is_dir():
            raise UnknownEvaluatorError(f"no saved cost model directory at {path!r}; train one "
                                        f"with `mlsysgym costmodel train --out DIR`")
        return cls(path)

    def __getstate__(self) -> dict[str, Any]:
        return super().__getstate__()

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        return self.model._evaluate(designs, workload)


def load_surrogate(path: str | os.PathLike[str]) -> OnnxCostModel:
    """``CostModel.load(path)``; raises CostModelError subclasses on a bad directory."""
    m = CostModel.load(path)
    if not isinstance(m, OnnxCostModel):  # pragma: no cover - load always returns one
        raise CostModelError(f"{path} did not load as an ONNX cost model")
    return m
