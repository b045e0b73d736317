"""Import a script of benchmarks/ (not a package) as a module, for tests of its logic."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(relative: str) -> ModuleType:
    """The module of ``benchmarks/<relative>`` (e.g. ``"gpu/measure_kernels.py"``), registered
    in ``sys.modules`` under its stem (dataclasses look their module up there)."""
    path = BENCHMARKS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
