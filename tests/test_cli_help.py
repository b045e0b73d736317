"""One consistent CLI (#19 item 5): the README's CLI section is the parser's help; every option
has help and shows its default; -o/--out, the positional workload and --json everywhere (old
spellings still parse); python -m mlsysgym; --debug; notices for slow steps."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from onnx_builders import conv_relu

from mlsysgym.cli import build_parser, leaf_parsers, main
from mlsysgym.commands import helpdoc

# Commands that write files, and the older spellings of their output flag that still parse.
WRITERS: dict[str, tuple[str, ...]] = {
    "trace gen": ("--output",), "mlir import": ("--output",), "compile": ("--output",),
    "sweep": ("--output-dir",), "mlir measure": (), "costmodel train": (), "demo": (),
    "report": (), "search": (), "solve malloc": (), "solve schedule": (),
}
# Commands that report results: each takes --json.
REPORTERS = ("info", "zoo list", "ir inspect", "sim accelerator", "sim serving", "sim dram",
             "trace gen", "costmodel train", "costmodel eval", "mlir inspect", "mlir measure",
             "compile", "demo", "list", "search", "sweep", "report", "solve malloc",
             "solve schedule")


def _leaves() -> dict[str, object]:
    return {p.prog.removeprefix("mlsysgym "): p for p in leaf_parsers(build_parser())}


def test_readme_cli_section_is_the_parsers_help() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert helpdoc.updated(readme) == readme, \
        "README's CLI section is stale: run python -m mlsysgym.commands.helpdoc"


def test_helpdoc_replaces_only_its_section() -> None:
    doc = f"# T\n\nbefore\n\n{helpdoc.START}\nold text\n{helpdoc.END}\n\nafter\n"
    new = helpdoc.updated(doc)
    assert new.startswith("# T\n\nbefore\n\n" + helpdoc.START) and new.endswith(
        helpdoc.END + "\n\nafter\n")
    assert "old text" not in new and "$ mlsysgym --help" in new
    assert "<code>mlsysgym sim dram --help</code>" in new
    with pytest.raises(helpdoc.HelpDocError):
        helpdoc.updated("no markers here")


def test_every_default_shows_in_help() -> None:
    from mlsysgym.cli import HelpFormatter

    leaves = _leaves()
    for name, parser in leaves.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if HelpFormatter.shows_default(action):
                text = formatter._expand_help(action)
                assert "default" in text, f"mlsysgym {name}: {action.option_strings}: {text!r}"
    with helpdoc._columns(100):
        text = leaves["sim accelerator"].format_help()
    # DESIGN_SPACE.default of the accelerator: 32x32 PEs, weight stationary.
    assert "PE rows (default: 32)" in text and "stationary operand (default: ws)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_dram_knob_tables_match_the_design_space() -> None:
    from mlsysgym.simulators.dram import DESIGN_SPACE

    from mlsysgym.commands.dram_cmds import _CHOICES, _DEFAULTS

    assert _DEFAULTS == DESIGN_SPACE.default
    assert _CHOICES == {p.name: tuple(p.choices) for p in DESIGN_SPACE if hasattr(p, "choices")}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_takes_dash_o_out_and_its_old_spelling(name: str) -> None:
    parser = _leaves()[name]
    flags = {s for a in parser._actions for s in a.option_strings}
    assert {"-o", "--out"} <= flags
    base = {"trace gen": ["--kind", "stream"], "mlir import": ["m"], "compile": ["m.mlir"],
            "sweep": ["c.yaml"], "report": ["d"], "search": ["random", "synthetic"],
            "solve malloc": ["alexnet", "--fast-memory", "0.5"],
            "solve schedule": ["alexnet"]}.get(name, [])
    base = base + (["--data", "d", "--targets", "t"] if name == "costmodel train" else [])
    for flag in ("-o", "--out", *WRITERS[name]):
        args = parser.parse_args([*base, flag, "x/y"])
        assert args.out == "x/y", (name, flag)


@pytest.mark.parametrize("name", REPORTERS)
def test_every_reporter_takes_json(name: str) -> None:
    assert "--json" in {s for a in _leaves()[name]._actions for s in a.option_strings}


@pytest.mark.parametrize("argv, workload", [
    (["sim", "accelerator", "resnet18"], "resnet18"),
    (["sim", "accelerator", "--model", "resnet18", "--rows", "8"], "resnet18"),
    (["sim", "serving", "Mistral-7B", "--workload", "code"], "Mistral-7B"),
    (["sim", "dram", "cloud-1"], "cloud-1"),
    (["sim", "dram", "--trace", "cloud-1"], "cloud-1"),
    (["demo"], "resnet50"),
    (["demo", "alexnet"], "alexnet"),
    (["demo", "--model", "alexnet"], "alexnet"),
    (["ir", "inspect", "gpt2"], "gpt2"),
    (["compile", "m.mlir"], "m.mlir"),
])
def test_the_workload_is_positional_and_the_old_option_still_parses(argv, workload) -> None:
    assert build_parser().parse_args(argv).workload == workload


@pytest.mark.parametrize("argv, message", [
    (["sim", "accelerator"], "one of the arguments MODEL_OR_PATH is required"),
    (["sim", "accelerator", "resnet18", "--model", "alexnet"], "not allowed with"),
    (["trace", "gen", "--kind", "stream"], "one of the arguments -o/--out is required"),
])
def test_missing_or_doubled_workload_and_out_are_one_line(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1 and message in err[0]


def test_sim_accelerator_json_both_spellings(tmp_path, capsys) -> None:
    onnx_file = tmp_path / "conv.onnx"
    onnx_file.write_bytes(conv_relu().SerializeToString())
    docs = []
    for argv in ([str(onnx_file)], ["--model", str(onnx_file)]):
        assert main(["sim", "accelerator", *argv, "--json"]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    assert docs[0] == docs[1]
    # 4 filters of 3x3x3 over a 6x6 output: 4 * 27 * 36 MACs
    assert [(layer["name"], layer["macs"]) for layer in docs[0]["layers"]] == [("conv", 3888),
                                                                               ("relu", 0)]


def test_json_mode_keeps_everything_else_off_stdout(tmp_path, capsys) -> None:
    """demo prints a per-op table, progress and a results table; with --json stdout is one
    JSON document and the rest went to stderr."""
    out = tmp_path / "demo"
    assert main(["demo", "resnet18", "--agents", "random", "--budget", "4", "-o", str(out),
                 "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # the whole of stdout parses
    assert doc["model"] == "resnet18" and [a["agent"] for a in doc["agents"]] == ["random"]
    assert 1 <= doc["agents"][0]["found_at"] <= 4
    assert "best design per agent" in captured.err
    assert (out / "demo_best_so_far.png").is_file()


def test_trace_gen_json_and_old_output_flag(tmp_path, capsys) -> None:
    path = tmp_path / "s.trace"
    assert main(["trace", "gen", "--kind", "stream", "-n", "50", "--output", str(path),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"kind": "stream", "requests": 50, "seed": 0, "out": str(path)}
    assert len(path.read_text().splitlines()) >= 50


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_crash_in_a_dependency_is_one_line_unless_debug(monkeypatch, capsys, debug) -> None:
    import numpy as np

    from mlsysgym.commands import info_cmds

    monkeypatch.delenv("MLSYSGYM_DEBUG", raising=False)
    monkeypatch.setattr(info_cmds, "run_info", lambda args: np.linalg.inv(np.zeros((2, 2))))
    assert main(["info", *debug]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("mlsysgym: error: LinAlgError in numpy: Singular matrix "
                                    "(rerun with --debug for the traceback)")
    assert ("Traceback" in err) is bool(debug)
    if not debug:
        assert err.count("\n") == 1


def test_python_dash_m_mlsysgym() -> None:
    from mlsysgym import __version__

    run = subprocess.run([sys.executable, "-m", "mlsysgym", "--version"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0 and run.stdout.strip() == f"mlsysgym {__version__}"
    run = subprocess.run([sys.executable, "-m", "mlsysgym", "list", "nothing"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and run.stderr.startswith("mlsysgym: error: list: argument what")


def test_slow_step_notice_only_when_slow(capsys) -> None:
    from mlsysgym.commands.common import slow_step

    with slow_step("quick", after_s=5.0):
        pass
    with slow_step("compiling", after_s=0.05):
        time.sleep(0.5)
    assert capsys.readouterr().err == "mlsysgym: compiling...\n"


@pytest.mark.slow
def test_every_benchmark_script_answers_help() -> None:
    """Benchmarks are scripts, documented by their --help (argparse): it exits 0 with a usage
    line and runs nothing."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    scripts = sorted((Path(__file__).resolve().parents[1] / "benchmarks").rglob("*.py"))
    assert len(scripts) >= 20

    def help_of(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                              text=True, timeout=120, check=False)

    with ThreadPoolExecutor(2) as pool:
        runs = dict(zip(scripts, pool.map(help_of, scripts), strict=True))
    bad = {p.name: r.stderr[-300:] for p, r in runs.items()
           if r.returncode != 0 or not r.stdout.startswith("usage:")}
    assert not bad, bad


def test_print_json_writes_strict_json(capsys) -> None:
    import argparse
    from pathlib import Path

    import numpy as np

    from mlsysgym.commands.common import print_json

    print_json(argparse.Namespace(), {"std": float("nan"), "x": np.float32(1.5),
                                      "v": np.arange(3), "p": Path("/a"), "t": (np.inf, 2)})
    assert capsys.readouterr().out == ('{"std": null, "x": 1.5, "v": [0, 1, 2], "p": "/a", '
                                       '"t": [null, 2]}\n')


def test_sweep_json_and_old_output_dir_flag(tmp_path, monkeypatch, capsys) -> None:
    """sweep --json prints the run's counts as one JSON document (run_sweep replaced: no Ray);
    --output-dir still overrides the config's output_dir."""
    import mlsysgym.experiments.sweep as sweep_pkg

    seen = {}

    def fake_run_sweep(config, **kw):
        seen["out"] = config.output_dir
        print("a line a library printed")  # goes to stderr under --json
        return sweep_pkg.SweepSummary(config.output_dir, 4, 1, 2, ["trial x: boom"], 1)

    monkeypatch.setattr(sweep_pkg, "run_sweep", fake_run_sweep)
    out = tmp_path / "elsewhere"
    assert main(["sweep", "synthetic", "--output-dir", str(out), "--json"]) == 1  # an error
    captured = capsys.readouterr()
    assert str(seen["out"]) == str(out)
    assert json.loads(captured.out) == {"output_dir": str(out), "total": 4, "skipped": 1,
                                        "ran": 2, "remaining": 1, "errors": ["trial x: boom"],
                                        "results": []}
    assert "a line a library printed" in captured.err


def test_list_configs_names_the_shipped_sweep_configs(capsys) -> None:
    assert main(["list", "configs", "--json"]) == 0
    names = json.loads(capsys.readouterr().out)
    assert {"study_search", "synthetic"} <= set(names) and names == sorted(names)


def test_every_experiment_script_is_a_cli_experiment() -> None:
    """An experiments/ module with a main() is reachable as `mlsysgym experiment NAME`."""
    from pathlib import Path

    from mlsysgym import experiments
    from mlsysgym.commands.experiment_cmds import EXPERIMENTS

    root = Path(experiments.__file__).parent
    scripts = {f"mlsysgym.experiments.{p.stem}" for p in root.glob("*.py")
               if "\ndef main(" in p.read_text(encoding="utf-8")}
    assert len(scripts) >= 6
    assert scripts <= {module for module, _ in EXPERIMENTS.values()}
