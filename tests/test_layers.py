"""The layer contracts (.importlinter) hold: `lint-imports` over the package as installed.

The repository maps each top-level folder to a subpackage of ``mlsysgym`` (pyproject's
``package-dir``), so the package is laid out here as it is installed (a copy of every module
under one ``mlsysgym/`` folder) and import-linter reads that copy. Function-level imports count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str | None:
    exe = Path(sys.executable).with_name("lint-imports")
    return str(exe) if exe.exists() else shutil.which("lint-imports")


def installed_layout(dst: Path) -> Path:
    """Copy every module of the package to ``dst/mlsysgym/...`` as package-dir maps it."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, folder in setuptools["package-dir"].items():
        target = dst.joinpath(*package.split("."))
        src = ROOT / folder
        for f in src.rglob("*.py"):
            rel = f.relative_to(src)
            if rel.parts[0] in {"__pycache__", "tests"}:
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)
    return dst


@pytest.mark.skipif(_lint_imports() is None, reason="import-linter (dev extra) not installed")
def test_layer_contracts_hold(tmp_path):
    installed_layout(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([_lint_imports(), "--config", str(ROOT / ".importlinter"), "--no-cache"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_core_imports_no_other_layer_at_run_time():
    code = ("import sys, mlsysgym.core.space, mlsysgym.core.evaluator, mlsysgym.core.dataset, "
            "mlsysgym.core.target, mlsysgym.core.errors; "
            "print(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('mlsysgym.') and m.count('.') >= 1}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['core']"
