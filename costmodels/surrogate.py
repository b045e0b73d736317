"""A saved cost model as a surrogate: ``"surrogate:PATH"`` resolves to ``CostModel.load(PATH)``.

A loaded :class:`~mlsysgym.costmodels.base.CostModel` already is an Evaluator (its metrics are
the model's targets, ``<target>_std`` for ensembles and ``ood``; its id ``name@version`` names
the model and its content hash), so nothing wraps it. Active learning (a search over the
surrogate) is in :mod:`mlsysgym.agents.active_learning`.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlsysgym.core.evaluator import UnknownEvaluatorError, resolve_evaluator
from mlsysgym.costmodels.base import CostModel

__all__ = ["UnknownEvaluatorError", "load_surrogate", "resolve_evaluator"]


def load_surrogate(path: str | os.PathLike[str] = "") -> CostModel:
    """The evaluator ``"surrogate:PATH"`` names: the saved model at PATH; UnknownEvaluatorError
    if PATH is no directory, CostModelError subclasses if the directory is no valid model."""
    path = os.fspath(path)
    if not path or not Path(path).is_dir():
        raise UnknownEvaluatorError(f"no saved cost model directory at {path!r}; train one "
                                    f"with `mlsysgym costmodel train --out DIR`")
    return CostModel.load(path)
