"""The CLI on a lean install: ``zoo list`` columns from the provenance files, a one-line hint
naming the extra when a command's optional dependency is missing, and no heavy imports while
the parser is built."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from mlsysgym.ir import zoo

from mlsysgym.cli import main
from mlsysgym.extras import extra_for, extras_by_module, module_of

ROOT = Path(__file__).resolve().parent.parent


def test_zoo_list_reads_the_nested_provenance(capsys) -> None:
    assert main(["zoo", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(zoo.names())
    for r in rows.values():
        assert "?" not in (r["source"], r["model_class"], r["input_shapes"]), r
        assert isinstance(r["macs"], int) and r["macs"] > 0
    assert rows["resnet50"]["source"].startswith("transformers ")
    assert rows["resnet50"]["model_class"].endswith(".ResNetForImageClassification")
    assert rows["resnet50"]["input_shapes"] == "pixel_values: 1x3x224x224"
    assert rows["resnet18"]["source"].startswith("zigzag-dse ")
    assert rows["resnet18"]["model_class"].endswith("resnet18.onnx")
    assert rows["alexnet"]["macs"] == 654_560_384


def test_zoo_list_table_has_no_unknown_cells(capsys) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "ResNetForImageClassification" in out and "654.56M" in out
    assert "?" not in out


def test_every_extra_dependency_maps_to_an_importable_module() -> None:
    """The module → extra table covers every distribution pyproject.toml declares in an extra
    (with this dev install, each of those modules is importable under the name we derive)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    table = extras_by_module()
    for extra, reqs in extras.items():
        for req in reqs:
            dist = re.match(r"[A-Za-z0-9._-]+", req).group(0)
            if dist == "mlsysgym":
                continue
            module = module_of(dist)
            assert importlib.util.find_spec(module) is not None, (dist, module)
            assert table[module] == extra, (dist, module, table.get(module))
    assert extra_for("ray.tune") == "ray" and extra_for("iree.compiler") == "mlir"
    assert extra_for("gpytorch") == "bo"
    assert extra_for("numpy") is None and extra_for(None) is None


def _run_without(module: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter where importing ``module`` fails as if not installed."""
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None  # import {module} → ModuleNotFoundError\n"
        "from mlsysgym.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=300, check=False)


@pytest.mark.parametrize("module, argv, extra", [
    ("gymnasium", ["demo", "--budget", "4", "--agents", "random"], "rl"),
    ("iree", ["mlir", "import", "resnet18", "-o", "r.mlir"], "mlir"),
])
def test_missing_extra_is_one_line_naming_it(tmp_path: Path, module: str, argv: list[str],
                                             extra: str) -> None:
    res = _run_without(module, argv, tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr == (f"mlsysgym: error: this command needs the '{extra}' extra: "
                          f"pip install 'mlsysgym[{extra}]'\n")


@pytest.mark.parametrize("debug", [False, True])
def test_a_missing_module_of_no_extra_is_one_line_or_a_traceback_with_debug(monkeypatch, capsys,
                                                                            debug) -> None:
    """Only optional dependencies get the install hint; anything else is reported as a bug in
    one line (exit 1), and ``--debug`` shows its traceback."""
    import argparse

    def broken(args: argparse.Namespace) -> int:
        raise ModuleNotFoundError("No module named 'mlsysgym_nonexistent'", name="mlsysgym_nonexistent")

    monkeypatch.delenv("MLSYSGYM_DEBUG", raising=False)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args",
                        lambda self, argv=None: argparse.Namespace(func=broken, debug=debug))
    assert main([]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "mlsysgym: error: ModuleNotFoundError in mlsysgym (a bug: please report it): No module "
        "named 'mlsysgym_nonexistent' (rerun with --debug for the traceback)")
    assert ("Traceback (most recent call last)" in err) is debug


def test_building_the_parser_imports_no_heavy_extra() -> None:
    code = ("import sys\nfrom mlsysgym.cli import build_parser\nbuild_parser()\n"
            "heavy = ('torch', 'ray', 'iree', 'onnxruntime', 'lightgbm', 'optuna', 'botorch', "
            "'matplotlib', 'stable_baselines3', 'zigzag', 'transformers', 'scipy', 'ortools')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_sweep_finds_a_shipped_config_by_name(tmp_path: Path, monkeypatch) -> None:
    from mlsysgym.commands.sweep_cmds import packaged_configs, resolve_config

    assert "study_search" in packaged_configs()
    monkeypatch.chdir(tmp_path)  # no experiments/configs/ here
    shipped = Path(resolve_config("study_search"))
    assert shipped.is_file() and shipped.name == "study_search.yaml"
    assert resolve_config("study_search.yaml") == str(shipped)
    (tmp_path / "study_search.yaml").write_text("name: mine\n")  # a file of that name wins
    assert resolve_config("study_search.yaml") == "study_search.yaml"
    assert resolve_config("no_such_config") == "no_such_config"
