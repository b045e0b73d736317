"""What a sweep ships to a remote Ray cluster (:func:`runtime_env`): mlsysgym itself, staged as
the installed package layout (a source checkout maps ``mlsysgym.core`` to ``core/`` etc.), and
the modules named in the config's ``imports:``, as Ray ``py_modules``; nodes then need only
Python and mlsysgym's dependencies, not mlsysgym or the plugins."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlsysgym.experiments.sweep.errors import SweepConfigError

SUBPACKAGES = ("core", "ir", "simulators", "envs", "agents", "costmodels", "experiments")
_SKIP = shutil.ignore_patterns("__pycache__", "results", "*.pyc", "*.png", "*.parquet", "*.csv")


def stage_package(dest: str | Path) -> Path:
    """Copy the importable ``mlsysgym`` package (every subpackage where Python finds it; no
    caches, results or images) to ``dest/mlsysgym``; return that directory."""
    import mlsysgym

    root = Path(dest) / "mlsysgym"
    top = Path(mlsysgym.__path__[0]).resolve()
    shutil.copytree(top, root, ignore=_SKIP, dirs_exist_ok=True)
    for name in SUBPACKAGES:
        where = Path(importlib.import_module(f"mlsysgym.{name}").__path__[0]).resolve()
        if where.parent != top:  # a source checkout: mlsysgym.<name> lives elsewhere
            shutil.copytree(where, root / name, ignore=_SKIP, dirs_exist_ok=True)
    return root


def _module_path(name: str) -> str:
    """The file or package directory of the top-level module of ``name``."""
    top = name.split(".")[0]
    try:
        module = importlib.import_module(top)
    except ImportError as e:
        raise SweepConfigError(f"cannot import {top!r} listed in imports: {e}") from None
    paths = list(getattr(module, "__path__", []))
    if paths:
        return str(Path(paths[0]).resolve())
    if getattr(module, "__file__", None) is None:
        raise SweepConfigError(f"module {top!r} listed in imports has no file to ship")
    return str(Path(module.__file__).resolve())


def runtime_env(imports: Iterable[str], staging: str | Path | None = None) -> dict[str, Any]:
    """The Ray ``runtime_env`` shipping mlsysgym (staged under ``staging``, default a new
    temporary directory) and the top-level modules of ``imports`` to every worker."""
    staging = Path(staging or tempfile.mkdtemp(prefix="mlsysgym-ship-"))
    modules = [str(stage_package(staging))]
    for name in imports:
        path = _module_path(name)
        if path not in modules:
            modules.append(path)
    return {"py_modules": modules}
