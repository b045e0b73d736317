"""Compatibility path, the same module object as :mod:`mlsysgym.core.dataset`.

Kept for user code that imports ``DatasetLogger``, ``LogEvaluations``, ``read_dataset`` from here; the project imports from ``mlsysgym.core.dataset``.
"""

from __future__ import annotations

import sys

import mlsysgym.core.dataset

sys.modules[__name__] = mlsysgym.core.dataset
