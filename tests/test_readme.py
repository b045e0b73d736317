"""Every shell example in README.md runs as written.

Each ```bash block runs in a fresh temporary folder with an empty ``MLSYSGYM_CACHE_DIR``,
its ``mlsysgym`` commands through the installed CLI, in order, each one exiting 0. Install
lines (``make``, ``pip``, ``git clone``) are skipped. Inputs the README leaves to the reader
come from here (``model.onnx``: any ONNX file) or from the README's own Python block that
writes them (``accel_data``). Long commands get small flags (:data:`SMALL`) and their blocks
are marked slow.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_builders import helper, model, value, weight

README = Path(__file__).resolve().parent.parent / "README.md"
MLSYSGYM = Path(sys.executable).parent / "mlsysgym"
INSTALLS = ("make", "pip", "git")
# Commands whose blocks are slow (Ray start-up, IREE compiles, training).
SLOW = ("mlsysgym sweep", "mlsysgym mlir", "mlsysgym costmodel", "mlsysgym compile")
# Small flags for long commands: (command prefix, flags to replace, their replacement).
SMALL: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("mlsysgym sweep", (), ("--max-trials", "1", "--no-progress")),
    ("mlsysgym mlir measure", ("-n", "200"), ("-n", "2")),
    ("mlsysgym compile", (), ("--minutes", "0.5")),  # calibration budget on an unknown target
)
# Paths a README Python block writes and a later shell block reads.
FROM_PYTHON = ("accel_data",)
# Blocks not run here, and why.
NOT_RUN: dict[str, str] = {}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def _commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists (continuations joined, comments dropped)."""
    argvs = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv and argv[0] not in INSTALLS:
            argvs.append(argv)
    return argvs


def _small(argv: list[str]) -> list[str]:
    text = " ".join(argv)
    for prefix, old, new in SMALL:
        if text.startswith(prefix):
            if not old:
                return argv + list(new)
            i = next(i for i in range(len(argv)) if tuple(argv[i:i + len(old)]) == old)
            return argv[:i] + list(new) + argv[i + len(old):]
    return argv


def _cases() -> list:
    cases = []
    for block in _blocks("(?:bash|sh)"):
        argvs = _commands(block)
        if not argvs:
            continue
        first = " ".join(argvs[0])
        reason = next((why for key, why in NOT_RUN.items() if key in block), None)
        marks = [pytest.mark.slow] if any(" ".join(a).startswith(SLOW) for a in argvs) else []
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        cases.append(pytest.param(block, id=first[:40], marks=marks))
    return cases


def test_readme_has_shell_examples_and_each_runs_here() -> None:
    cases = _cases()
    assert len(cases) >= 5
    for case in cases:
        for argv in _commands(case.values[0]):
            assert argv[0] == "mlsysgym" or any(k in case.values[0] for k in NOT_RUN), argv


def _symbolic_batch_onnx(path: Path) -> None:
    m = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])],
              [value("x", ["batch", 3, 8, 8])], [value("y", ["batch", 4, 6, 6])],
              [weight("w", [4, 3, 3, 3])])
    path.write_bytes(m.SerializeToString())


@pytest.mark.parametrize("block", _cases())
def test_readme_shell_block(block: str, tmp_path: Path) -> None:
    env = {**os.environ, "MLSYSGYM_CACHE_DIR": str(tmp_path / "cache")}
    _symbolic_batch_onnx(tmp_path / "model.onnx")
    for name in FROM_PYTHON:
        if name in block:
            code = next(b for b in _blocks("python") if f'"{name}"' in b)
            subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                           timeout=300)
    for argv in _commands(block):
        argv = _small(argv)
        res = subprocess.run([str(MLSYSGYM), *argv[1:]], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600, check=False)
        assert res.returncode == 0, f"{shlex.join(argv)}\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr, res.stderr[-2000:]
