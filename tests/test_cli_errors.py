"""Issue #25: every bad input the CLI or the API is fed ends in one typed error line — exit 2,
one line on stderr, no traceback — and nothing already written is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from onnx import helper
from onnx_builders import model, value, weight

from mlsysgym.cli import main

DESIGN = {"rows": 16, "cols": 32, "dataflow": "ws", "ifmap_kb": 64, "filter_kb": 64,
          "ofmap_kb": 64, "bandwidth": 8, "word_bytes": 1}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSYSGYM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def one_error_line(capsys, argv: list[str]) -> str:
    """Run the CLI; assert exit 2 and exactly one ``mlsysgym: error:`` line; return it."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("mlsysgym: error: "), err
    assert "Traceback" not in err
    return err


# ---- damaged cost-model metadata ------------------------------------------------------------
def _drop(key):
    return lambda m: m.pop(key) and None


META_CASES = {
    "null": (lambda m: None, "not a JSON object"),
    "list": (lambda m: [1], "not a JSON object"),
    "no_kind": (_drop("kind"), "'kind' is missing"),
    "no_schema": (_drop("schema"), "'schema' is missing"),
    "no_onnx": (_drop("onnx"), "'onnx' is missing"),
    "no_members": (_drop("members"), "'members' is missing"),
    "no_targets": (_drop("targets"), "'targets' is missing"),
    "features_string": (lambda m: m["schema"].__setitem__("features", "rows,cols"), "'schema'"),
    "members_wrong": (lambda m: m.__setitem__("members", 3), "members/targets"),
    "members_string": (lambda m: m.__setitem__("members", "two"), "'members' must be int"),
    "empty_categories": (lambda m: m["schema"]["features"][2].__setitem__("categories", []),
                         "at least one category"),
    "bad_input_name": (lambda m: m["onnx"].__setitem__("input", "Z"), "onnx.input"),
    "unknown_transform": (lambda m: m["targets"][0].__setitem__("transform", "sqrt"),
                          "transform 'sqrt'"),
    "extra_target_key": (lambda m: m["targets"][0].__setitem__("foo", 1), "'targets'"),
    "short_normalization": (lambda m: m["schema"]["normalization"].__setitem__("mean", [0.0]),
                            "normalization mean"),
    "mlir_kind_no_tokenizer": (lambda m: m.__setitem__("kind", "mlir_text"), "'tokenizer'"),
}


def _damaged(saved_model: Path, tmp_path: Path, mutate) -> Path:
    d = tmp_path / "damaged"
    shutil.copytree(saved_model, d)
    meta = json.loads((d / "metadata.json").read_text())
    out = mutate(meta)
    (d / "metadata.json").write_text(json.dumps(meta if out is None and meta is not None
                                                else out))
    return d


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_predict_with_damaged_metadata(saved_model, tmp_path, capsys, case):
    mutate, message = META_CASES[case]
    if case == "null":
        d = tmp_path / "damaged"
        shutil.copytree(saved_model, d)
        (d / "metadata.json").write_text("null")
    else:
        d = _damaged(saved_model, tmp_path, mutate)
    err = one_error_line(capsys, ["costmodel", "predict", "--model", str(d),
                                  "--design", json.dumps(DESIGN)])
    assert message in err and "metadata.json" in err


def test_undamaged_model_still_predicts(saved_model, capsys):
    assert main(["costmodel", "predict", "--model", str(saved_model),
                 "--design", json.dumps(DESIGN)]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > 0


def test_damaged_metadata_api_is_typed(saved_model, tmp_path):
    from mlsysgym.costmodels.base import CostModel, ModelFileError

    d = _damaged(saved_model, tmp_path, META_CASES["unknown_transform"][0])
    with pytest.raises(ModelFileError, match="transform") as e:
        CostModel.load(d)
    assert "\n" not in str(e.value)


# ---- output paths, non-UTF-8 input, overflow, huge inputs -------------------------------------
@pytest.fixture
def dyn_onnx(tmp_path) -> Path:
    """A MatMul whose batch dimension is symbolic."""
    p = tmp_path / "dyn.onnx"
    m = model([helper.make_node("MatMul", ["X", "W"], ["Y"])], [value("X", ["batch", 64])],
              [value("Y", ["batch", 16])], [weight("W", [64, 16])])
    p.write_bytes(m.SerializeToString())
    return p


ARG_CASES = {
    "trace_missing_dir": (["trace", "gen", "--kind", "stream", "-n", "10", "-o", "nodir/t.trace"],
                          "does not exist"),
    "trace_onto_dir": (["trace", "gen", "--kind", "stream", "-n", "10", "-o", "adir"],
                       "is a directory"),
    "mlir_import_missing_dir": (["mlir", "import", "resnet18", "-o", "nodir/x.mlir"],
                                "does not exist"),
    "mlir_import_onto_dir": (["mlir", "import", "resnet18", "-o", "adir"], "is a directory"),
    "kernels_dir_is_file": (["mlir", "import", "resnet18", "--kernels-dir", "afile"],
                            "is a file"),
    "report_out_is_file": (["report", "adir", "--out", "afile"], "is a file"),
    "mlir_inspect_binary": (["mlir", "inspect", "binary.mlir"], "not UTF-8"),
    "mlir_inspect_onnx": (["mlir", "inspect", "dyn.onnx"], "not UTF-8"),
    "dim_overflow": (["ir", "inspect", "dyn.onnx", "--dim", f"batch={10**21}"], "[1, 2147483647]"),
    "dim_zero": (["ir", "inspect", "dyn.onnx", "--dim", "batch=0"], "positive size"),
    "trace_huge": (["trace", "gen", "--kind", "stream", "-n", str(10**11), "-o", "t.trace"],
                   "10,000,000"),
    "trace_negative_seed": (["trace", "gen", "--kind", "random", "-o", "t.trace", "--seed", "-1"],
                            "seed=-1"),
    "trace_zero_stride": (["trace", "gen", "--kind", "strided", "-o", "t.trace", "--stride", "0"],
                          "stride=0"),
    "trace_infinite_rate": (["trace", "gen", "--kind", "stream", "-o", "t.trace",
                             "--rate-per-ns", "inf"], "rate_per_ns=inf"),
}


@pytest.mark.parametrize("case", sorted(ARG_CASES))
def test_bad_arguments_one_line(tmp_path, capsys, dyn_onnx, case):
    argv, message = ARG_CASES[case]
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("keep")
    (tmp_path / "binary.mlir").write_bytes(bytes(range(128, 256)))
    (tmp_path / "t.trace").write_text("keep")
    err = one_error_line(capsys, argv)
    assert message in err
    assert (tmp_path / "afile").read_text() == "keep"  # nothing already written is lost
    assert (tmp_path / "t.trace").read_text() == "keep"


# ---- sweeps: validated on the driver, before Ray starts ---------------------------------------
SWEEP_CASES = {
    "unknown_hyperparameter": ("synthetic-discrete", {"name": "random",
                               "hyperparameters": {"bogus": 3}}, "no hyperparameter"),
    "negative_batch_size": ("synthetic-discrete", {"name": "random",
                            "hyperparameters": {"batch_size": -1}}, "batch_size must be >= 1"),
    "bad_grid_value": ("synthetic-discrete", {"name": "random_walk",
                       "hyperparameters": {"walkers": [1, 0]}}, "walkers must be >= 1"),
    "bad_distribution_end": ("synthetic-discrete", {"name": "ga", "num_samples": 2,
                             "hyperparameters": {"population": {"int": [-4, 8]}}},
                             "population must be >= 2"),
    "bad_zoo_model": ({"name": "env:mlsysgym/Accelerator-v0", "model": "nosuchmodel"}, "random",
                      "no zoo model"),
    "bad_env_id": ("env:mlsysgym/Nope-v0", "random", "cannot make env"),
    "bad_env_kwarg": ({"name": "env:mlsysgym/Accelerator-v0", "model": "resnet18",
                       "colour": "red"}, "random", "unexpected keyword"),
}


@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_sweep_config_refused_before_ray(tmp_path, capsys, monkeypatch, case):
    import yaml
    from mlsysgym.agents import parallel

    def no_ray(*a, **k):
        raise AssertionError("Ray must not start for a bad config")

    monkeypatch.setattr(parallel, "init_ray", no_ray)
    problem, agent, message = SWEEP_CASES[case]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"name": "bad", "budget": 4, "seeds": 1,
                                   "problems": [problem], "agents": [agent]}))
    err = one_error_line(capsys, ["sweep", str(cfg), "--output-dir", str(tmp_path / "out"),
                                  "--no-progress"])
    assert message in err
    assert not (tmp_path / "out").exists()


def test_sweep_check_accepts_the_shipped_config():
    from mlsysgym.experiments.sweep import check_runnable, load_config

    check_runnable(load_config(Path(__file__).parents[1] / "experiments/configs/synthetic.yaml"))


def test_real_process_one_line_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mlsysgym.cli", "trace", "gen", "--kind",
                           "stream", "-o", str(tmp_path / "no" / "t.trace")],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_a_warning_is_one_line_unless_debugging(monkeypatch, capsys, debug):
    import argparse
    import warnings

    from mlsysgym.agents.policies import PolicyTargetWarning

    from mlsysgym import cli

    def command(args):
        warnings.warn("trained elsewhere", PolicyTargetWarning, stacklevel=2)

    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true")
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    if debug:  # Python's own handling (here pytest's record), not the one line
        with pytest.warns(PolicyTargetWarning, match="trained elsewhere"):
            assert main(["--debug"]) == 0
        assert capsys.readouterr().err == ""
    else:
        assert main([]) == 0
        assert capsys.readouterr().err == "mlsysgym: warning: trained elsewhere (PolicyTargetWarning)\n"


# ---- the API's typed exceptions -------------------------------------------------------------
def test_output_path_checks(tmp_path):
    from mlsysgym.ir.paths import OutputPathError, check_output_dir, check_output_file

    (tmp_path / "f").write_text("x")
    assert check_output_file(tmp_path / "new.txt") == tmp_path / "new.txt"
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    for bad in (lambda: check_output_file(tmp_path / "missing" / "x"),
                lambda: check_output_file(tmp_path),
                lambda: check_output_dir(tmp_path / "f"),
                lambda: check_output_dir(tmp_path / "f" / "sub")):
        with pytest.raises(OutputPathError):
            bad()
    assert not (tmp_path / "a").exists()  # checks create nothing


def test_read_mlir_file_errors(tmp_path):
    from mlsysgym.ir.mlir_parse import MlirParseError, read_mlir_file

    (tmp_path / "ok.mlir").write_text("module {}\n")
    assert read_mlir_file(tmp_path / "ok.mlir") == "module {}\n"
    (tmp_path / "bc.mlir").write_bytes(b"ML\xefR\x00\x01")
    (tmp_path / "bin.mlir").write_bytes(b"\xff\xfe\x00")
    for name, message in (("bc.mlir", "bytecode"), ("bin.mlir", "not UTF-8"),
                          ("none.mlir", "no such")):
        with pytest.raises(MlirParseError, match=message):
            read_mlir_file(tmp_path / name)


@pytest.mark.parametrize("size", [0, -5, 10**21, 2**31, 2.5, True])
def test_dim_sizes_are_checked(dyn_onnx, size):
    from mlsysgym.ir import InvalidDimensionError
    from mlsysgym.ir.onnx_import import graph_from_onnx

    with pytest.raises(InvalidDimensionError):
        graph_from_onnx(dyn_onnx, dims={"batch": size})
    assert graph_from_onnx(dyn_onnx, dims={"batch": 2}).totals().macs == 2 * 64 * 16


@pytest.mark.parametrize("call", [
    lambda dt: dt.stream_trace(10**11),
    lambda dt: dt.random_trace(0),
    lambda dt: dt.random_trace(10, seed=-1),
    lambda dt: dt.strided_trace(10, stride=-64),
    lambda dt: dt.stream_trace(10, rate_per_ns=float("inf")),
    lambda dt: dt.stream_trace(10, interval_cycles=float("nan")),
    lambda dt: dt.mixed_trace(10, stream_share=2.0),
])
def test_trace_generators_refuse_before_allocating(call):
    from mlsysgym.simulators import dram_traces as dt

    with pytest.raises(dt.TraceError):
        call(dt)


def test_mixed_trace_at_share_bounds():
    from mlsysgym.simulators import dram_traces as dt

    assert len(dt.mixed_trace(50, stream_share=1.0)) == 50
    assert len(dt.mixed_trace(50, stream_share=0.0)) == 50


def test_damaged_mlir_import_cache_entry_is_rebuilt(tmp_path, monkeypatch, caplog):
    from mlsysgym.ir import mlir_import

    calls: list[str] = []

    def fake_lower(torch_mlir, phase, extra_flags):
        calls.append(phase)
        return "module {\n  // a lowered module\n}"

    monkeypatch.setattr(mlir_import, "onnx_to_mlir", lambda source: ("m", "torch text"))
    monkeypatch.setattr(mlir_import, "lower_to_linalg", fake_lower)
    first = mlir_import.import_model("m")
    assert not first.cached and mlir_import.import_model("m").cached and len(calls) == 1
    entry, = (tmp_path / "cache" / "mlir-import").glob("*.mlir")
    entry.write_bytes(entry.read_bytes()[:10])  # truncated
    again = mlir_import.import_model("m")
    assert not again.cached and again.linalg_mlir == first.linalg_mlir and len(calls) == 2
    assert "damaged" in caplog.text
    entry.write_bytes(np.arange(64, dtype=np.uint8).tobytes() + b"\xff")  # binary
    assert mlir_import.import_model("m").linalg_mlir == first.linalg_mlir and len(calls) == 3


def test_errors_are_mlsysgym_errors():
    from mlsysgym.costmodels.base import ModelFileError
    from mlsysgym.experiments.sweep import SweepConfigError
    from mlsysgym.ir import InvalidDimensionError
    from mlsysgym.ir.paths import OutputPathError

    for cls in (ModelFileError, SweepConfigError, InvalidDimensionError, OutputPathError):
        assert issubclass(cls, MlsysgymError)


@pytest.mark.parametrize("env_id", ["mlsysgym/Accelerator-v0", "mlsysgym/DRAM-v0"])
def test_env_rejects_actions_outside_its_space(env_id):
    import gymnasium as gym
    from mlsysgym.envs.design_env import InvalidActionError

    env = gym.make(env_id, disable_env_checker=True).unwrapped
    env.reset(seed=0)
    n = env.action_space.shape[0]
    for bad in (np.full(n, np.nan), np.zeros(n + 1), ["x"] * n, env.action_space.nvec,
                np.full(n, -1), np.full(n, 0.5)):
        with pytest.raises(InvalidActionError):
            env.step(bad)
    assert np.isfinite(env.step(env.action_space.sample())[1])


def test_report_on_a_corrupt_part_is_one_line(tmp_path, capsys):
    part = tmp_path / "sweep" / "trials" / "part-0.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"PAR1 truncated")
    err = one_error_line(capsys, ["report", str(tmp_path / "sweep"), "--out", "rep"])
    assert "cannot read dataset part part-0.parquet" in err and "--resume" in err


def _discrete_envs():
    from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
    from mlsysgym.envs.kernel_scheduling_stream import KernelSchedulingStreamEnv
    from mlsysgym.envs.malloc_game import MallocGameEnv

    return [KernelSchedulingEnv("resnet18", window=4),
            KernelSchedulingStreamEnv(n_streams=1, n_jobs=2, window=4),
            MallocGameEnv("resnet18", capacity_fraction=0.5)]


def test_discrete_envs_reject_actions_outside_their_space():
    from mlsysgym.envs.design_env import InvalidActionError

    for env in _discrete_envs():
        env.reset(seed=0)
        n = int(env.action_space.n)
        for bad in (np.nan, np.inf, "0", None, True, 2.5, -1, n, 10**30, np.array([0, 1]), [0]):
            with pytest.raises(InvalidActionError):
                env.step(bad)
        for good in (0, np.int64(0), np.array(0), np.array([0]), 0.0):  # valid or masked
            _, reward, *_ = env.step(good)
            assert np.isfinite(reward)


# ---- argparse errors are one line; numeric flags in range -------------------------------------
PARSE_CASES = {
    "not_an_int": (["compile", "m.mlir", "-k", "x"], "invalid int value: 'x'"),
    "seed_not_an_int": (["trace", "gen", "--kind", "stream", "-o", "t", "--seed", "x"],
                        "'x' is not an integer"),
    "top_not_an_int": (["ir", "inspect", "resnet18", "--top", "x"], "'x' is not an integer"),
    "negative_top": (["ir", "inspect", "resnet18", "--top", "-3"], "positive integer, got -3"),
    "zero_max_trials": (["sweep", "synthetic", "--max-trials", "0"], "positive integer, got 0"),
    "negative_max_trials": (["sweep", "synthetic", "--max-trials", "-1"], "got -1"),
    "unknown_flag": (["ir", "inspect", "resnet18", "--bogus"], "unrecognized arguments"),
    "unknown_command": (["nosuch"], "invalid choice"),
    "missing_argument": (["ir", "inspect"], "required"),
    "infinite_timeout": (["mlir", "measure", "--out", "d", "--timeout", "inf"], "finite number"),
    "negative_seed": (["demo", "--seed", "-1"], "a seed must be an integer >= 0, got -1"),
}


@pytest.mark.parametrize("case", sorted(PARSE_CASES))
def test_usage_errors_are_one_line(capsys, case):
    argv, message = PARSE_CASES[case]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith("mlsysgym: error: ") and message in err, err


# ---- costmodel predict: out-of-domain designs refused, output always valid JSON ---------------
PREDICT_CASES = {  # value, refused even with --allow-ood, message
    "nan": ("rows", float("nan"), True, "not a finite number"),
    "infinity": ("rows", float("inf"), True, "not a finite number"),
    "zero_under_log": ("rows", 0, True, "must be > 0"),
    "negative": ("bandwidth", -8, True, "must be > 0"),
    "bool": ("rows", True, True, "not a number"),
    "string_number": ("rows", "16", True, "not a number"),
    "null": ("ifmap_kb", None, True, "not a number"),
    "huge": ("rows", 1e308, False, "outside the training range [4, 256]"),
    "huge_int": ("rows", 10**400, True, "not a finite number a float can hold"),
    "above_range": ("cols", 512, False, "outside the training range"),
    "unknown_category": ("dataflow", "xx", False, "not a category"),
    "bool_category": ("dataflow", True, True, "is a bool"),
}


def _strict_json(line: str) -> dict:
    def refuse(token):
        raise AssertionError(f"invalid JSON token {token} in {line}")

    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_predict_refuses_out_of_domain_designs(saved_model, capsys, case):
    key, value, always, message = PREDICT_CASES[case]
    design = json.dumps({**DESIGN, key: value})  # NaN/Infinity as Python writes them
    err = one_error_line(capsys, ["costmodel", "predict", "--model", str(saved_model),
                                  "--design", design])
    assert message in err and f"{key}=" in err
    rc = main(["costmodel", "predict", "--model", str(saved_model), "--allow-ood",
               "--design", design])
    out, err = capsys.readouterr()
    if always:
        assert rc == 2 and message in err and not out
    else:
        assert rc == 0, err
        row = _strict_json(out)
        assert row["ood"] is True and (row["latency_ms"] is None or row["latency_ms"] > 0)


def test_predict_in_range_is_not_flagged(saved_model, capsys):
    assert main(["costmodel", "predict", "--model", str(saved_model),
                 "--design", json.dumps({**DESIGN, "rows": 16.5})]) == 0
    assert _strict_json(capsys.readouterr().out)["ood"] is False


def test_predict_design_not_an_object(saved_model, capsys):
    err = one_error_line(capsys, ["costmodel", "predict", "--model", str(saved_model),
                                  "--design", "[1, 2]"])
    assert "design 1 is list JSON" in err


# ---- silent wrong answers now refused or marked ------------------------------------------------
def test_matmul_with_mismatched_k_is_refused_naming_the_node(tmp_path, capsys):
    p = tmp_path / "mm.onnx"  # X[4,64] x W[32,16]: K differs (64 vs 32)
    p.write_bytes(model([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm0")],
                        [value("X", [4, 64])], [value("Y", [4, 16])],
                        [weight("W", [32, 16])]).SerializeToString())
    err = one_error_line(capsys, ["ir", "inspect", str(p)])
    assert "node name: mm0" in err and "Incompatible dimensions" in err


def test_nodes_out_of_file_order_still_infer(tmp_path):
    from mlsysgym.ir.onnx_import import graph_from_onnx

    m = model([helper.make_node("Relu", ["H"], ["Y"]),  # consumer first in the file
               helper.make_node("MatMul", ["X", "W"], ["H"])],
              [value("X", [4, 64])], [value("Y", [4, 16])], [weight("W", [64, 16])])
    g = graph_from_onnx(m)
    assert [o.op_type for o in g.ops] == ["MatMul", "Relu"]
    assert g.totals().macs == 4 * 64 * 16 and g.ops[0].name == "MatMul_1"  # file position kept


DYNAMIC_MLIR = """func.func @mm(%a: tensor<?x64xf32>, %b: tensor<64x16xf32>) -> tensor<?x16xf32> {
  %c0 = arith.constant 0 : index
  %cst = arith.constant 0.0 : f32
  %n = tensor.dim %a, %c0 : tensor<?x64xf32>
  %e = tensor.empty(%n) : tensor<?x16xf32>
  %f = linalg.fill ins(%cst : f32) outs(%e : tensor<?x16xf32>) -> tensor<?x16xf32>
  %r = linalg.matmul ins(%a, %b : tensor<?x64xf32>, tensor<64x16xf32>)
                     outs(%f : tensor<?x16xf32>) -> tensor<?x16xf32>
  return %r : tensor<?x16xf32>
}
"""


def test_dynamic_matmul_is_marked_estimated_not_a_silent_zero(tmp_path, capsys):
    pytest.importorskip("iree.compiler")
    (tmp_path / "dyn.mlir").write_text(DYNAMIC_MLIR)
    assert main(["mlir", "inspect", str(tmp_path / "dyn.mlir"), "--json"]) == 0
    ops = {o["op_type"]: o for o in json.loads(capsys.readouterr().out)["ops"]}
    mm = ops["linalg.matmul"]
    assert mm["dynamic"] and mm["estimated"] and mm["iteration_domain"] == [None, 16, 64]
    assert main(["mlir", "inspect", str(tmp_path / "dyn.mlir")]) == 0
    assert "2 linalg ops have a dynamic bound" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty"),
    ("   \n", "is empty"),
    ("module {\n}\n", "no ops inside a function"),
    ("%0 = arith.constant 1 : i32\n", "no ops inside a function"),
])
def test_mlir_inspect_of_nothing_says_so(tmp_path, capsys, text, message):
    pytest.importorskip("iree.compiler")
    (tmp_path / "x.mlir").write_text(text)
    assert message in one_error_line(capsys, ["mlir", "inspect", str(tmp_path / "x.mlir")])


def test_unclosed_logger_flushes_at_interpreter_exit(tmp_path):
    from mlsysgym.core.dataset import read_dataset

    script = ("import gymnasium as gym, mlsysgym.envs\n"
              "from mlsysgym.core.dataset import LogEvaluations, ParquetAppender\n"
              f"w = ParquetAppender({str(tmp_path / 'a')!r}, flush_every=50)\n"
              "w.append([{'x': i, 'y': 2.0 * i} for i in range(7)], ['x'], ['y'])\n"
              "env = LogEvaluations(gym.make('mlsysgym/Accelerator-v0', model='resnet18',\n"
              f"                    disable_env_checker=True), {str(tmp_path / 'b')!r},\n"
              "                     flush_every=50)\n"
              "env.reset(seed=0)\n"
              "for _ in range(3):\n"
              "    env.step(env.action_space.sample())\n")  # exits without close()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    frame = read_dataset(tmp_path / "a")
    assert sorted(frame["x"]) == list(range(7)) and (frame["y"] == 2 * frame["x"]).all()
    assert len(read_dataset(tmp_path / "b")) == 3


# ---- resource limits on subprocesses --------------------------------------------------------
def test_subprocess_over_the_memory_limit_is_stopped_with_one_line(monkeypatch):
    from mlsysgym.core.limits import MEMORY_ENV, ResourceLimitError, run_limited

    monkeypatch.setenv(MEMORY_ENV, "0.5")
    grab = "import sys; x = bytearray(int(sys.argv[1]) * 2**20); print(len(x))"
    ok = run_limited([sys.executable, "-c", grab, "64"], "python child")
    assert ok.returncode == 0 and ok.stdout.strip() == str(64 * 2**20).encode()
    with pytest.raises(ResourceLimitError) as e:
        run_limited([sys.executable, "-c", grab, "2048"], "python child")
    assert str(e.value) == ("python child ran out of memory under the 0.5 GiB limit (set "
                            "MLSYSGYM_SUBPROCESS_MEM_GB to change it; 0 removes it)")


def test_subprocess_past_the_time_limit_is_stopped(monkeypatch):
    from mlsysgym.core.limits import TIMEOUT_ENV, ResourceLimitError, run_limited

    monkeypatch.setenv(TIMEOUT_ENV, "0.3")
    with pytest.raises(ResourceLimitError, match=r"^sleeper timed out after 0.3 s \(the time "
                                                 r"limit; set MLSYSGYM_SUBPROCESS_TIMEOUT_S"):
        run_limited([sys.executable, "-c", "import time; time.sleep(30)"], "sleeper")


def test_limit_settings(monkeypatch):
    from mlsysgym.core.limits import (
        GIB,
        MEMORY_ENV,
        TIMEOUT_ENV,
        ResourceLimitError,
        subprocess_limits,
    )

    monkeypatch.delenv(MEMORY_ENV, raising=False)
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert subprocess_limits().memory_bytes == min(8 * GIB, ram // 2)
    assert subprocess_limits().timeout_s == 600.0 and subprocess_limits(5).timeout_s == 5.0
    monkeypatch.setenv(MEMORY_ENV, "0")
    assert subprocess_limits().memory_bytes is None
    for name, bad in ((MEMORY_ENV, "-1"), (MEMORY_ENV, "lots"), (TIMEOUT_ENV, "nan")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ResourceLimitError, match=name):
            subprocess_limits()
        monkeypatch.delenv(name)


def test_iree_compile_under_a_small_memory_cap_is_a_failed_kernel(monkeypatch, tmp_path):
    pytest.importorskip("iree.compiler")
    from mlsysgym.core import limits
    from mlsysgym.core.limits import MEMORY_ENV
    from mlsysgym.ir import mlir_emit

    if limits._PRLIMIT is None:
        pytest.skip("without util-linux prlimit the cap is set just after start (see core/limits)")
    from mlsysgym.simulators.iree_cpu import KernelCompiler

    monkeypatch.setenv(MEMORY_ENV, "0.2")  # iree-compile maps ~140 MB of code and data alone
    compiler = KernelCompiler(cache_path=tmp_path)
    res = compiler.compile(mlir_emit.emit(mlir_emit.KernelSpec("matmul", (8, 8, 8))).mlir)
    assert res.vmfb is None and "ran out of memory under the 0.2 GiB limit" in res.error
    assert not list(tmp_path.glob("*.err"))  # not cached: a larger cap may succeed


@pytest.mark.parametrize(("argv", "message"), [
    (["ir", "inspect", "dyn.onnx", "--dim", "batch=1", "--dim", "batch=2"], "given twice"),
    (["ir", "inspect", "dyn.onnx", "--dim", "bacth=2"],
     "no symbolic input dimension named 'bacth'; this model's are: X[0], batch"),
    (["ir", "inspect", "resnet18", "--dim", "batch=2"], "zoo models have fixed shapes"),
    (["trace", "gen", "--kind", "stream", "-o", "t.trace", "--rate-per-ns", "1e-300"],
     "span 1e+304 cycles"),
    (["trace", "gen", "--kind", "stream", "-o", "t.trace", "-n", "100",
      "--interval-cycles", "1e14"], "span 1e+16 cycles"),
])
def test_ignored_or_overflowing_arguments_are_refused(dyn_onnx, capsys, argv, message):
    assert message in one_error_line(capsys, argv)
    assert not Path("t.trace").exists()


def test_surrogate_with_a_wrong_schema_model_is_typed(saved_model):
    import gymnasium as gym
    from mlsysgym.costmodels.surrogate import load_surrogate
    from mlsysgym.envs.accelerator_env import accelerator_space

    tiling = Path(__file__).parents[1] / "costmodels" / "models" / "tiling"
    designs = accelerator_space().sample(0, 20)  # 20 > 16: the vectorized encoder too
    for saved, rows in ((tiling, designs[:2]), (tiling, designs),
                        (saved_model, [{k: v for k, v in d.items() if k != "rows"}
                                       for d in designs]),
                        (saved_model, [{**d, "rows": "many"} for d in designs])):
        with pytest.raises(MlsysgymError) as e:
            load_surrogate(saved).evaluate(rows, "resnet18")
        assert "\n" not in str(e.value)
    with pytest.raises(MlsysgymError, match="the model was not trained on"):
        gym.make("mlsysgym/DRAM-v0", evaluator=f"surrogate:{saved_model}",
                 disable_env_checker=True)


def test_sweep_interrupted_exits_130_with_the_resume_hint(tmp_path, capsys, monkeypatch):
    from mlsysgym.experiments import sweep

    def interrupted(*a, **k):
        raise KeyboardInterrupt  # what run_sweep raises once Tune has stopped on Ctrl-C

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    rc = main(["sweep", "synthetic", "--output-dir", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 130 and err.count("\n") == 1
    assert "interrupted; 0 trials are finished" in err and "rerun with --resume" in err


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty: nothing to compile"),
    ("module {\n}\n", "has no function to compile"),
])
def test_compile_of_nothing_says_so(tmp_path, capsys, text, message):
    (tmp_path / "x.mlir").write_text(text)
    assert message in one_error_line(capsys, ["compile", str(tmp_path / "x.mlir"), "--tune"])


def test_a_closed_output_pipe_is_no_traceback(tmp_path):
    """`mlsysgym ... --json | head -c 1`: the reader leaves early; no BrokenPipeError trace."""
    proc = subprocess.Popen([sys.executable, "-m", "mlsysgym.cli", "ir", "inspect",
                             "tinyllama_1b", "--json"],  # ~330 kB: more than a pipe holds
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.read(1) == b"{"
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and proc.returncode == 141, err


def test_integers_beyond_64_bits_are_refused_at_parse_time(capsys):
    huge = "1" + "0" * 400
    for argv in (["sim", "accelerator", "--model", "resnet18", "--rows", huge],
                 ["trace", "gen", "--kind", "stream", "-o", "t.trace", "-n", huge]):
        assert "does not fit a 64-bit integer" in one_error_line_exit(capsys, argv)


def one_error_line_exit(capsys, argv: list[str]) -> str:
    """Like one_error_line, for usage errors (argparse exits with SystemExit(2))."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("mlsysgym: error: ")
    return err
