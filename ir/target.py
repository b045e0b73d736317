"""Compatibility path, the same module object as :mod:`mlsysgym.core.target`.

Kept for user code that imports ``fingerprint`` / ``provenance`` from here; the project imports from ``mlsysgym.core.target``.
"""

from __future__ import annotations

import sys

import mlsysgym.core.target

sys.modules[__name__] = mlsysgym.core.target
