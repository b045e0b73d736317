"""MLIR layer: ONNX → linalg import, parsing into ir.Graph, kernel emission, IREE CPU measurement."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

pytest.importorskip("iree.compiler")
pytest.importorskip("iree.runtime")

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir import Graph, mlir, zoo


@pytest.fixture(scope="module")
def resnet18():
    return mlir.parse(mlir.import_model("resnet18").linalg_mlir, name="resnet18")


@pytest.fixture
def compiler_cache(tmp_path, monkeypatch):
    """Compile into a fresh cache so every test really compiles."""
    monkeypatch.setenv("MLSYSGYM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _linalg_macs(parsed) -> int:
    return sum(op.macs for op in parsed.graph.ops)


def _check_macs(name: str) -> None:
    parsed = mlir.parse(mlir.import_model(name).linalg_mlir, name=name)
    onnx_macs = zoo.load(name).totals().macs
    assert onnx_macs > 0
    assert abs(_linalg_macs(parsed) - onnx_macs) <= 0.01 * onnx_macs


# ---- import + parse ---------------------------------------------------------------------
def test_resnet18_linalg_macs_equal_onnx(resnet18):
    onnx_macs = zoo.load("resnet18").totals().macs
    assert abs(_linalg_macs(resnet18) - onnx_macs) <= 0.01 * onnx_macs
    kinds = {i.kind for i in resnet18.linalg.values()}
    assert {"conv_2d_nchw_fchw", "matmul", "generic", "fill"} <= kinds
    conv = next(op for op in resnet18.graph.ops if op.op_type == "linalg.conv_2d_nchw_fchw")
    assert conv.attributes["iterator_types"] == ["parallel"] * 4 + ["reduction"] * 3
    assert conv.loop_nest is not None and conv.loop_nest.macs == conv.macs
    assert conv.bytes_read > 0 and conv.bytes_written > 0 and conv.flops == 2 * conv.macs


def test_distilbert_linalg_macs_equal_onnx():
    _check_macs("distilbert_base")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert_base", "mobilenetv2", "alexnet"])
def test_more_zoo_models_macs_equal_onnx(name):
    _check_macs(name)


def test_round_trip_of_zoo_module(resnet18):
    text = resnet18.print()
    again = mlir.parse(text, name="resnet18")
    assert again.print() == text
    assert _linalg_macs(again) == _linalg_macs(resnet18)
    assert [op.op_type for op in again.graph.ops] == [op.op_type for op in resnet18.graph.ops]


def test_graph_view_is_an_ir_graph(resnet18):
    g = resnet18.graph
    assert isinstance(g, Graph)
    t = g.totals()
    assert t.macs == _linalg_macs(resnet18) and t.flops > 2 * t.macs
    assert g.peak_live_memory() > 0
    assert len(g.to_frame()) == len(g.ops)


def test_unsupported_ops_kept_and_flagged():
    text = """
    func.func @f(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>) -> tensor<4x8xf32> {
      %s = arith.addf %a, %b : tensor<4x8xf32>
      %u = "mydialect.magic"(%s) : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %e = math.exp %u : tensor<4x8xf32>
      return %e : tensor<4x8xf32>
    }"""
    parsed = mlir.parse(text)
    types = [op.op_type for op in parsed.graph.ops]
    assert types == ["arith.addf", "mydialect.magic", "math.exp", "func.return"]
    assert [op.op_type for op in parsed.unsupported] == ["mydialect.magic"]
    assert parsed.unsupported[0].estimated
    add = parsed.graph.ops[0]
    assert add.flops == 32 and add.bytes_read == 2 * 32 * 4 and add.bytes_written == 32 * 4


def test_invalid_mlir_reports_line_and_column():
    text = "func.func @f() {\n  %0 = arith.constant 1 : i32\n  %1 = arith.addi %0, : i32\n}"
    with pytest.raises(mlir.MlirParseError) as info:
        mlir.parse(text)
    err = info.value
    assert isinstance(err, MlsysgymError)
    assert err.line == 3 and err.column is not None and err.column > 1
    assert "line 3" in str(err) and "\n" not in str(err)


def test_extracted_kernels_are_standalone(resnet18):
    kernels = mlir.extract_kernels(resnet18)
    assert len(kernels) == len(resnet18.linalg)
    conv = next(k for k in kernels if k.kind == "conv_2d_nchw_fchw")
    again = mlir.parse(conv.mlir)
    assert _linalg_macs(again) == conv.macs > 0


def test_export_folder(tmp_path):
    counts = mlir.export_zoo_kernels(tmp_path, models=["resnet18"])
    assert counts["resnet18"] > 0
    assert (tmp_path / "index.md").is_file() and (tmp_path / "resnet18" / "index.md").is_file()
    meta = json.loads((tmp_path / "resnet18" / "kernels.json").read_text())
    assert len(meta) == counts["resnet18"]
    assert all((tmp_path / "resnet18" / m["file"]).is_file() for m in meta)


# ---- emission ---------------------------------------------------------------------------
SPECS = [
    mlir.KernelSpec("matmul", (16, 24, 32)),
    mlir.KernelSpec("batch_matmul", (2, 8, 12, 16)),
    mlir.KernelSpec("conv_2d_nhwc_hwcf", (2, 6, 6, 8, 3, 3, 4), stride=2),
    mlir.KernelSpec("depthwise_conv_2d_nhwc_hwc", (2, 6, 6, 8, 3, 3), dilation=2),
    mlir.KernelSpec("elementwise", (8, 16), op="sigmoid"),
    mlir.KernelSpec("reduction", (4, 8, 6), op="max", reduce_dims=(0, 2)),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.kind for s in SPECS])
def test_emitted_kernel_parses_with_expected_costs(spec):
    k = mlir.emit(spec)
    parsed = mlir.parse(k.mlir)
    main = [op for op in parsed.graph.ops
            if op.attributes.get("kind") and op.op_type != "linalg.fill"]
    assert len(main) == 1
    assert main[0].macs == spec.macs
    assert tuple(main[0].attributes["iteration_domain"]) == spec.shape
    assert mlir.KernelSpec.from_design(spec.to_design()) == spec


@pytest.mark.parametrize("spec", SPECS, ids=[s.kind for s in SPECS])
def test_emitted_kernel_compiles_runs_and_matches_numpy(spec, compiler_cache):
    from mlsysgym.simulators.iree_cpu import KernelCompiler, measure

    compiler = KernelCompiler(cache_path=compiler_cache)
    m = measure(mlir.emit(spec), compiler, min_reps=3, max_reps=5, max_time_s=0.05)
    assert m.ok, m.error
    assert m.max_rel_err < 1e-3
    assert m.runtime_us > 0 and m.reps >= 3 and not m.compile_cached
    again = measure(mlir.emit(spec), compiler, min_reps=3, max_reps=3, max_time_s=0.05)
    assert again.ok and again.compile_cached  # content-hash cache hit


def test_bad_kernel_spec_is_a_typed_error():
    with pytest.raises(mlir.KernelSpecError, match="needs a shape of 3"):
        mlir.KernelSpec("matmul", (4, 4))
    with pytest.raises(mlir.KernelSpecError, match="unknown kernel kind"):
        mlir.KernelSpec("softmax", (4,))
    with pytest.raises(mlir.KernelSpecError, match="dtype"):
        mlir.KernelSpec("matmul", (4, 4, 4), dtype="i4")


# ---- evaluator --------------------------------------------------------------------------
def test_evaluator_failed_compile_is_a_failed_row(compiler_cache):
    from mlsysgym.simulators.iree_cpu import IreeCpuEvaluator

    good = mlir.KernelSpec("matmul", (8, 8, 8)).to_design()
    ev = IreeCpuEvaluator(cache_path=compiler_cache, timing={"max_time_s": 0.02, "max_reps": 5})
    out = ev.evaluate([good, {"mlir": "func.func @kernel( {"}, {"kind": "matmul"}], "kernels")
    assert list(out["ok"]) == [True, False, False]
    assert out["runtime_us"][0] > 0 and math.isnan(out["runtime_us"][1])
    assert "compile failed" in ev.last_measurements[1].error
    assert "shape" in ev.last_measurements[2].error

    broken = IreeCpuEvaluator(extra_flags=["--no-such-iree-flag"], cache_path=compiler_cache)
    assert broken.evaluate_one(good, "kernels")["ok"] is False


def test_compile_timeout_is_a_failed_row(compiler_cache):
    from mlsysgym.simulators.iree_cpu import KernelCompiler, measure

    compiler = KernelCompiler(timeout_s=0.001, cache_path=compiler_cache)
    m = measure(mlir.emit(mlir.KernelSpec("matmul", (8, 8, 8))), compiler)
    assert not m.ok and "timed out" in m.error
    assert not list(compiler_cache.glob("*.err"))  # timeouts are not cached as failures


# ---- dataset + CLI ----------------------------------------------------------------------
def test_measure_dataset_appends_and_resumes(tmp_path, compiler_cache):
    from mlsysgym.core.dataset import read_dataset
    from mlsysgym.experiments.mlir_measure import Sample, measure_dataset

    samples = [Sample(mlir.KernelSpec("matmul", (8, 16, 8)), "test"),
               Sample(mlir.KernelSpec("elementwise", (4, 32), op="relu"), "test")]
    timing = {"max_time_s": 0.02, "max_reps": 5}
    out = tmp_path / "ds"
    s1 = measure_dataset(2, out, samples=samples[:1], timing=timing, show_progress=False)
    assert s1.measured == 1
    s2 = measure_dataset(2, out, resume=True, samples=samples, timing=timing,
                         show_progress=False)
    assert s2.skipped == 1 and s2.measured == 1
    df = read_dataset(out)
    assert len(df) == 2 and df["ok"].all()
    for col in ("mlir", "kind", "shape", "dtype", "macs", "bytes_read", "compile_flags",
                "runtime_us", "runtime_spread_us", "machine", "compiler_version"):
        assert col in df.columns
    assert df.loc[df["kind"] == "matmul", "macs"].item() == 8 * 16 * 8
    with pytest.raises(MlsysgymError, match="--resume"):
        measure_dataset(1, out, samples=samples, timing=timing, show_progress=False)


def test_sampler_is_deterministic_and_capped(monkeypatch):
    from mlsysgym.experiments import mlir_measure as mm

    base = [("m", mlir.KernelSpec("matmul", (512, 512, 4096))),
            ("m", mlir.KernelSpec("conv_2d_nhwc_hwcf", (1, 56, 56, 64, 3, 3, 64))),
            ("m", mlir.KernelSpec("elementwise", (1, 64, 112, 112), op="relu"))]
    monkeypatch.setattr(mm, "zoo_kernel_specs", lambda *a, **k: base)
    a = mm.sample_specs(20, seed=3, max_macs=1e8)
    b = mm.sample_specs(20, seed=3, max_macs=1e8)
    assert [s.spec for s in a] == [s.spec for s in b]
    assert len({s.spec for s in a}) == 20
    assert all((s.spec.macs or s.spec.points) <= 1e8 for s in a)
    convs = [s.spec for s in a if s.spec.kind == "conv_2d_nhwc_hwcf"]
    assert convs and all(c.shape[4:6] == (3, 3) for c in convs)  # windows kept


def test_cli_inspect_json(tmp_path, capsys):
    from mlsysgym.commands import mlir_cmds

    f = tmp_path / "k.mlir"
    f.write_text(mlir.emit(mlir.KernelSpec("matmul", (4, 8, 16))).mlir)
    parser = argparse.ArgumentParser()
    top = parser.add_subparsers()
    groups: dict[str, argparse._SubParsersAction] = {}

    def group(name):
        if name not in groups:
            groups[name] = top.add_parser(name).add_subparsers()
        return groups[name]

    mlir_cmds.register(group)
    args = parser.parse_args(["mlir", "inspect", str(f), "--json"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["macs"] == 4 * 8 * 16
    assert doc["linalg_kinds"] == {"fill": 1, "matmul": 1}
    bad = tmp_path / "bad.mlir"
    bad.write_text("func.func @f( {")
    args = parser.parse_args(["mlir", "inspect", str(bad)])
    with pytest.raises(mlir.MlirParseError, match="line 1"):
        args.func(args)


def test_kernel_reference_numpy_shapes():
    k = mlir.emit(SPECS[2])
    xs = k.random_inputs(0)
    assert [x.shape for x in xs] == list(k.input_shapes)
    assert k.reference(xs).shape == k.output_shape
    assert np.isfinite(k.reference(xs)).all()


def test_batched_compile_isolates_a_bad_kernel(compiler_cache):
    from mlsysgym.simulators.iree_cpu import KernelCompiler, measure

    compiler = KernelCompiler(cache_path=compiler_cache)
    good = [mlir.emit(mlir.KernelSpec("matmul", (4, 4, 4 + i))) for i in range(2)]
    bad = 'func.func @kernel() -> tensor<2xf32> {\n  %0 = "nope.op"() : () -> tensor<2xf32>\n' \
          '  return %0 : tensor<2xf32>\n}'
    res = compiler.compile_many([good[0].mlir, bad, good[1].mlir])
    assert [r.ok for r in res] == [True, False, True]
    for k, r in zip(good, [res[0], res[2]]):
        m = measure(k, compiler, compiled=r, max_reps=3, max_time_s=0.02)
        assert m.ok and m.max_rel_err < 1e-3


def test_host_code_is_cached_per_cpu_and_named_targets_are_shared(tmp_path, monkeypatch):
    """A cache shared by two machines (a network home, a restored CI cache) must not hand an
    AVX2 CPU the AVX-512 code compiled for ``host`` on another: seen under qemu -cpu Haswell,
    the old key reused the vmfb and the process died of SIGILL."""
    from mlsysgym.core import target
    from mlsysgym.simulators.iree_cpu import KernelCompiler

    text = mlir.emit(mlir.KernelSpec("matmul", (4, 4, 4))).mlir
    host = KernelCompiler(cache_path=tmp_path)
    named = KernelCompiler.for_target("x86-64-v2")
    keys = []
    for cpu_id in ("avx512-machine", "avx2-machine"):
        monkeypatch.setattr(target, "target_id", lambda cpu="host", extra=(), i=cpu_id: i)
        keys.append((host.key(text), named.key(text)))
    assert keys[0][0] != keys[1][0]  # host code: one entry per CPU
    assert keys[0][1] == keys[1][1]  # x86-64-v2 code: the same on every machine
    assert target.host_key(host.flags) == "avx2-machine"
    assert target.host_key(named.flags) is None
