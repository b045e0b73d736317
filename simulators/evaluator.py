"""Compatibility path, the same module object as :mod:`mlsysgym.core.evaluator`.

Kept for user code that imports ``Evaluator`` (to subclass it) from here; the project imports from ``mlsysgym.core.evaluator``.
"""

from __future__ import annotations

import sys

import mlsysgym.core.evaluator

sys.modules[__name__] = mlsysgym.core.evaluator
