"""Tile-size selection pass: candidate space, batched scoring, untouched ops, numerics, invalid configs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlsysgym.compiler.tiling_pass import OpDecision, TuningReport, compile_and_check, tune_module
from mlsysgym.core.target import TargetIsa, fingerprint, target_isa
from mlsysgym.costmodels.tiling_measure import MeasuredConfig, measure_configs
from mlsysgym.costmodels.tiling_model import TilingModel
from mlsysgym.costmodels.tiling_ops import annotate, find_root_ops
from mlsysgym.costmodels.tiling_score import score_candidates
from mlsysgym.costmodels.tiling_space import (
    FEATURE_NAMES,
    KNOBS,
    ConfigReadError,
    TileConfig,
    candidates,
    config_features,
    default_config,
    instance_for,
    knobs_from_config,
    lanes_and_registers,
    read_root_config,
    tiling_space,
)
from mlsysgym.ir.mlir_emit import emit

# Fixed configurations (not read from IREE: its defaults differ between CPUs) used where a
# test needs a default that is the same on every machine.

MM_DEFAULT = TileConfig((64, 64, 0), (8, 16, 0), (0, 0, 16))
CONV_DEFAULT = TileConfig((1, 4, 8, 32, 0, 0, 0), (1, 1, 8, 16, 0, 0, 0), (0, 0, 0, 0, 1, 1, 8),
                          "ConvTileAndDecomposeExpert")

MODULE = """
func.func @main(%a: tensor<64x96xf32>, %b: tensor<96x128xf32>, %x: tensor<2x10x10x16xf32>,
                %w: tensor<3x3x16x32xf32>) -> (tensor<64x128xf32>, tensor<2x8x8x32xf32>) {
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<64x128xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e0 : tensor<64x128xf32>) -> tensor<64x128xf32>
  %m = linalg.matmul ins(%a, %b : tensor<64x96xf32>, tensor<96x128xf32>) outs(%f0 : tensor<64x128xf32>) -> tensor<64x128xf32>
  %e1 = tensor.empty() : tensor<2x8x8x32xf32>
  %f1 = linalg.fill ins(%z : f32) outs(%e1 : tensor<2x8x8x32xf32>) -> tensor<2x8x8x32xf32>
  %c = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%x, %w : tensor<2x10x10x16xf32>, tensor<3x3x16x32xf32>) outs(%f1 : tensor<2x8x8x32xf32>) -> tensor<2x8x8x32xf32>
  return %m, %c : tensor<64x128xf32>, tensor<2x8x8x32xf32>
}
"""

UNTOUCHED = """
func.func @main(%y: tensor<1x10x10x16xf32>, %w: tensor<3x3x16x32xf32>, %d: tensor<3x3x16xf32>,
                %r: tensor<8x32xf32>) -> (tensor<1x8x8x32xf32>, tensor<1x8x8x16xf32>, tensor<8xf32>) {
  %z = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<1x8x8x32xf32>
  %f2 = linalg.fill ins(%z : f32) outs(%e2 : tensor<1x8x8x32xf32>) -> tensor<1x8x8x32xf32>
  %c1 = linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%y, %w : tensor<1x10x10x16xf32>, tensor<3x3x16x32xf32>) outs(%f2 : tensor<1x8x8x32xf32>) -> tensor<1x8x8x32xf32>
  %e3 = tensor.empty() : tensor<1x8x8x16xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<1x8x8x16xf32>) -> tensor<1x8x8x16xf32>
  %dw = linalg.depthwise_conv_2d_nhwc_hwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%y, %d : tensor<1x10x10x16xf32>, tensor<3x3x16xf32>) outs(%f3 : tensor<1x8x8x16xf32>) -> tensor<1x8x8x16xf32>
  %e4 = tensor.empty() : tensor<8xf32>
  %f4 = linalg.fill ins(%z : f32) outs(%e4 : tensor<8xf32>) -> tensor<8xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>], iterator_types = ["parallel", "reduction"]} ins(%r : tensor<8x32xf32>) outs(%f4 : tensor<8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %t = arith.addf %in, %acc : f32
    linalg.yield %t : f32
  } -> tensor<8xf32>
  return %c1, %dw, %s : tensor<1x8x8x32xf32>, tensor<1x8x8x16xf32>, tensor<8xf32>
}
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TilingModel:
    """A small LightGBM tiling model over the pass's features, trained on synthetic ratios
    for this machine's target, saved and loaded via ONNX Runtime."""
    from mlsysgym.costmodels.base import CostModel
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    rng = np.random.default_rng(0)
    frames = []
    for kind, dims, dflt in (("matmul", (64, 128, 96), MM_DEFAULT),
                             ("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 3, 3, 16), CONV_DEFAULT)):
        p = instance_for(kind, dims)
        cfgs = candidates(p, dflt)
        dk = knobs_from_config(p, dflt)
        rows = [knobs_from_config(p, c) for c in cfgs]
        cols = {k: np.array([r[k] for r in rows], dtype=float) for k in KNOBS}
        f = pd.DataFrame(config_features(p, cols, dk))
        f["runtime_ratio"] = np.exp(0.3 * np.abs(f["rv_m"]) + 0.2 * np.abs(f["rr_k"])
                                    + 0.05 * rng.standard_normal(len(f)))
        frames.append(f)
    m = LightGBMCostModel(n_estimators=30).fit(pd.concat(frames, ignore_index=True),
                                                list(FEATURE_NAMES), ["runtime_ratio"],
                                                target_transform="log")
    tid = fingerprint()["target_id"]
    m.hyperparameters["tiling"] = {"targets": {tid: {"level": "test"}}, "floor": {},
                                   "max_macs": {"matmul": 64 * 128 * 96,
                                                "conv_2d_nhwc_hwcf": 2 * 8 * 8 * 32 * 9 * 16}}
    path = tmp_path_factory.mktemp("tiling-model")
    m.save(path)
    return TilingModel(CostModel.load(path), tid, target_isa("host"))


# ---- candidate space ----------------------------------------------------------------------
@pytest.mark.parametrize("kind,dims,dflt", [("matmul", (64, 128, 96), MM_DEFAULT),
                                            ("matmul", (1, 1000, 24), TileConfig((0, 50, 0), (1, 25, 0), (0, 0, 16))),
                                            ("batch_matmul", (4, 49, 49, 32), TileConfig((1, 49, 49, 0), (1, 1, 1, 0), (0, 0, 0, 16))),
                                            ("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 3, 3, 16), CONV_DEFAULT)])
def test_space_respects_loop_bounds_and_keeps_default(kind: str, dims: tuple[int, ...],
                                                      dflt: TileConfig) -> None:
    p = instance_for(kind, dims)
    assert p is not None
    m, n, k, h = p.mnkh
    cfgs = candidates(p, dflt)
    assert cfgs[0] == dflt
    assert len(set(cfgs)) == len(cfgs) > 1
    assert dflt in candidates(p, dflt, max_n=5)
    for c in cfgs[1:]:
        kn = knobs_from_config(p, c)
        assert kn is not None
        assert kn["d_m"] <= m and kn["d_n"] <= n and kn["d_h"] <= h and kn["r_k"] <= k
        assert kn["v_m"] <= kn["d_m"] and kn["v_n"] <= kn["d_n"]
        assert kn["v_m"] * kn["v_n"] * kn["r_k"] * 4 < 32768
        assert len(c.distribution) == len(dims) == len(c.vector_reduction)
    space = tiling_space(p, dflt)
    assert space.is_valid(knobs_from_config(p, dflt))


def test_no_rule_ops_have_no_problem() -> None:
    assert instance_for("conv_2d_nhwc_hwcf", (1, 8, 8, 32, 3, 3, 16)) is None  # batch 1
    assert instance_for("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 1, 1, 16)) is None  # 1x1
    assert instance_for("depthwise_conv_2d_nhwc_hwc", (2, 8, 8, 16, 3, 3)) is None


def test_batch1_conv_and_ops_without_rule_are_untouched_and_reported(tiny_model) -> None:
    rep = tune_module(UNTOUCHED, "costmodel", model=tiny_model)
    assert len(rep.ops) == 3 and not rep.tuned
    reasons = " | ".join(o.reason for o in rep.untouched)
    assert "batch-1 conv" in reasons and "depthwise" in reasons and "generic" in reasons
    assert "compilation_info" not in rep.mlir
    assert "untouched" in rep.summary()


# ---- scoring ------------------------------------------------------------------------------
def test_scoring_all_candidates_is_one_batched_call(tiny_model) -> None:
    p = instance_for("matmul", (64, 128, 96))
    calls: list[int] = []
    real = tiny_model.base.run_encoded

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return real(x)
    tiny_model.base.run_encoded = counting
    try:
        sc = score_candidates(tiny_model, p, MM_DEFAULT)
    finally:
        tiny_model.base.run_encoded = real
    assert calls == [len(sc)] and len(sc) > 100
    assert sc.predicted.shape == (len(sc),) and np.isfinite(sc.predicted).all()
    assert sc.config(0) == MM_DEFAULT


# ---- compile-heavy ------------------------------------------------------------------------
@pytest.mark.slow
def test_default_is_read_from_iree_for_each_target() -> None:
    p = instance_for("matmul", (64, 128, 96))
    for cpu in ("host", "x86-64-v2"):  # every x86-64 CPU runs x86-64-v2 code
        d = default_config(p, cpu)
        assert len(d.distribution) == 3 and d.vector_reduction[2] > 0
        assert candidates(p, d, isa=target_isa(cpu))[0] == d
    # SSE has 4 f32 lanes: IREE's register tile of N is a multiple of 4, at most 4 x 4
    d2 = default_config(p, "x86-64-v2")
    assert d2.vector_common_parallel[1] % 4 == 0 and d2.vector_reduction[2] <= 16


# Both attribute orders IREE 3.13 prints (AVX-512 host: no cache level; AVX2: cache_parallel
# first), plus a level this code does not know: every level is kept, in any order.
_CONFIGS_OUT = """
module {
  func.func @d() {
    %0 = tensor.empty() : tensor<64x128xf32>
    %z = arith.constant 0.0 : f32
    %a = tensor.empty() : tensor<64x96xf32>
    %b = tensor.empty() : tensor<96x128xf32>
    %1 = linalg.fill {lowering_config = #iree_cpu.lowering_config<LEVELS_FILL>} ins(%z : f32) outs(%0 : tensor<64x128xf32>) -> tensor<64x128xf32>
    %2 = linalg.matmul {lowering_config = #iree_cpu.lowering_config<LEVELS>} ins(%a, %b : tensor<64x96xf32>, tensor<96x128xf32>) outs(%1 : tensor<64x128xf32>) -> tensor<64x128xf32>
    return
  }
}
"""


@pytest.mark.parametrize("levels,fill,want_extra", [
    ("distribution = [8, 64, 0], vector_common_parallel = [8, 16, 0], vector_reduction = [0, 0, 16]",
     "vector_common_parallel = [8, 16]", ()),
    (("cache_parallel = [8, 64, 0], distribution = [8, 64, 0], vector_common_parallel = [8, 8, 0], "
     "vector_reduction = [0, 0, 8]"), "cache_parallel = [8, 64], vector_common_parallel = [8, 8]",
     (("cache_parallel", (8, 64, 0)),)),
    (("vector_reduction = [0, 0, 8], cache_reduction = [0, 0, 32], vector_common_parallel = [8, 8, 0], "
     "distribution = [8, 64, 0], future_level = [1, 2, 3]"), "vector_common_parallel = [8, 8]",
     (("cache_reduction", (0, 0, 32)), ("future_level", (1, 2, 3)))),
])
def test_parser_reads_any_level_order_through_the_bindings(levels: str, fill: str,
                                                           want_extra: tuple) -> None:
    text = _CONFIGS_OUT.replace("LEVELS_FILL", fill).replace("LEVELS", levels)
    cfg = read_root_config(text, "matmul")
    assert cfg.distribution == (8, 64, 0) and cfg.vector_reduction[2] in (8, 16)
    assert cfg.extra == want_extra
    # the config written back keeps every level and parses again to the same config
    again = read_root_config(text.replace(f"<{levels}>", "<" + cfg.to_attr().split(
        "lowering_config<", 1)[1].split(">, translation_info")[0] + ">"), "matmul")
    assert again == cfg


def test_parser_rejects_output_without_a_root_config() -> None:
    text = _CONFIGS_OUT.replace("LEVELS_FILL", "vector_common_parallel = [8, 16]").replace(
        "lowering_config = #iree_cpu.lowering_config<LEVELS>", "foo = 1")
    with pytest.raises(ConfigReadError, match="no root-op lowering_config"):
        read_root_config(text, "matmul")


def test_candidates_keep_every_level_of_the_default_and_fit_the_vector_width() -> None:
    p = instance_for("matmul", (64, 128, 96))
    avx2 = TargetIsa("x86-64-v3", "x86-64-v3", 256, ())
    dflt = TileConfig((8, 64, 0), (8, 8, 0), (0, 0, 8), extra=(("cache_parallel", (8, 64, 0)),))
    cfgs = candidates(p, dflt, isa=avx2)
    assert cfgs[0] == dflt and len(cfgs) > 50
    for c in cfgs:
        cache = dict(c.extra)["cache_parallel"]
        assert cache[:2] == c.distribution[:2]  # cache level follows the distribution tile
        vm, vn = c.vector_common_parallel[:2]
        assert vn in (1, 2, 4, 8, 16, 32) and vm * -(-vn // 8) <= 16  # 16 ymm registers
        assert "cache_parallel" in c.to_attr()
    lanes, _ = lanes_and_registers(None)  # this host: 16 (AVX-512), 8 (AVX2) or 4 (SSE)
    sizes = {c.vector_common_parallel[1] for c in candidates(p, MM_DEFAULT)}
    assert sizes <= set(range(1, 4 * lanes + 1)) | {16} and max(sizes) >= 2 * lanes


def test_fingerprint_names_the_target_and_differs_between_isa_levels() -> None:
    host, v2 = fingerprint("host"), fingerprint("x86-64-v2")
    assert host["target_id"] != v2["target_id"]
    assert v2["target"]["vector_bits"] == 128 and v2["target"]["level"] == "x86-64-v2"
    assert host["machine"]["cores"] >= 1 and host["software"]["iree_compiler"]
    assert "--iree-llvmcpu-target-cpu=x86-64-v2" in v2["flags"]


@pytest.mark.slow
def test_pass_keeps_numerics_on_matmul_and_batch2_conv(tiny_model, tmp_path) -> None:
    rep = tune_module(MODULE, "costmodel", model=tiny_model)
    assert [o.problem_key for o in rep.tuned] == ["matmul:64x128x96",
                                                  "conv_2d_nhwc_hwcf:2x8x8x32x3x3x16"]
    chk = compile_and_check(rep, MODULE, out=tmp_path / "t.vmfb")
    assert chk.ok and chk.max_rel_err <= 1e-3 and (tmp_path / "t.vmfb").is_file()
    # and with explicit non-default configs on both ops
    roots = [r for r in find_root_ops(MODULE) if r.problem is not None]
    forced = {roots[0].index: TileConfig((32, 64, 0), (4, 32, 0), (0, 0, 8)),
              roots[1].index: TileConfig((1, 2, 8, 32, 0, 0, 0), (1, 1, 4, 32, 0, 0, 0),
                                         (0, 0, 0, 0, 1, 1, 4), "ConvTileAndDecomposeExpert")}
    ops = [OpDecision(i, "", "", True, chosen=c, default=None, is_default=False)
           for i, c in forced.items()]
    rep2 = TuningReport("costmodel", annotate(MODULE, forced), ops)
    assert rep2.mlir.count("{compilation_info =") == 2
    chk2 = compile_and_check(rep2, MODULE)
    assert chk2.ok and not chk2.fallback_ops


@pytest.mark.slow
def test_invalid_candidates_are_skipped_not_fatal() -> None:
    p = instance_for("matmul", (64, 128, 96))
    good = TileConfig((32, 64, 0), (8, 16, 0), (0, 0, 8))
    too_big = TileConfig((64, 64, 0), (16, 64, 0), (0, 0, 16))      # 64 KB vector tile
    no_red = TileConfig((64, 64, 0), (8, 16, 0), ())                 # no vector_reduction
    ms = measure_configs(p, [too_big, good, no_red], rounds=1)
    assert [m.ok for m in ms] == [False, True, False]
    assert all(isinstance(m, MeasuredConfig) for m in ms) and "compile failed" in ms[0].error
    assert ms[1].ratio > 0
    # an invalid config chosen for a whole module falls back to the default, not a crash
    roots = [r for r in find_root_ops(MODULE) if r.problem is not None]
    rep = TuningReport("costmodel", annotate(MODULE, {roots[0].index: too_big}),
                       [OpDecision(roots[0].index, "linalg.matmul", "", True, chosen=too_big,
                                   default=MM_DEFAULT, is_default=False)])
    chk = compile_and_check(rep, MODULE)
    assert chk.ok and chk.fallback_ops == (roots[0].index,)
    assert rep.ops[0].is_default and "rejected" in rep.ops[0].reason


@pytest.mark.slow
def test_verify_top_k_measures_k_and_never_loses(tiny_model: TilingModel) -> None:
    text = emit({"kind": "matmul", "shape": "64x128x96"}).mlir
    rep = tune_module(text, "costmodel+verify-top-k", model=tiny_model, k=2, rounds=1)
    (op,) = rep.tuned
    assert op.measured == 2 and op.model_calls == 1
    assert op.is_default or op.measured_ratio < 1.0


def test_compile_cli_registers_and_rejects_bad_tune(tmp_path) -> None:
    import argparse

    from mlsysgym.core.errors import MlsysgymError

    from mlsysgym.commands import compile_cmds

    top = argparse.ArgumentParser()
    sub = top.add_subparsers()
    compile_cmds.register(lambda name: sub)
    f = tmp_path / "m.mlir"
    f.write_text(MODULE)
    args = top.parse_args(["compile", str(f), "--tune", "nope:x"])
    with pytest.raises(MlsysgymError, match="costmodel:PATH"):
        args.func(args)
    args = top.parse_args(["compile", str(f), "--mode", "costmodel"])
    with pytest.raises(MlsysgymError, match="needs --tune"):
        args.func(args)


# ---- guards, unknown targets, calibration, verify -------------------------------------------
_MM_KEY = "matmul:64x128x96"
_DEFAULTS = {_MM_KEY: MM_DEFAULT, "conv_2d_nhwc_hwcf:2x8x8x32x3x3x16": CONV_DEFAULT}


def _with(model: TilingModel, **tiling: object) -> TilingModel:
    """A copy of ``model`` whose ``hyperparameters["tiling"]`` has ``tiling`` merged in."""
    import copy

    base = copy.copy(model.base)
    base.hyperparameters = {**model.base.hyperparameters,
                            "tiling": {**model.info, **tiling}}
    return TilingModel(base, model.target_id, model.isa, model.calibration)


def test_unknown_target_keeps_every_default(tiny_model: TilingModel) -> None:
    blind = _with(tiny_model, targets={"someone-elses-cpu": {"level": "x86-64-v4"}})
    assert not blind.knows_target
    rep = tune_module(MODULE, "costmodel", model=blind, defaults=_DEFAULTS)
    assert len(rep.tuned) == 2 and all(o.is_default for o in rep.tuned)
    assert all("no data for target" in o.reason for o in rep.tuned)
    assert "compilation_info" not in rep.mlir


def test_guards_keep_the_default(tiny_model: TilingModel) -> None:
    from mlsysgym.compiler.tiling_pass import Guards

    free = tune_module(MODULE, "costmodel", model=tiny_model, defaults=_DEFAULTS,
                       guards=Guards(margin=2.0, use_floor=False))
    assert all(not o.is_default for o in free.tuned)  # without guards every op changes
    # a floor above every prediction: no gain is supported by the data
    floored = tune_module(MODULE, "costmodel", model=_with(tiny_model, floor={
        "matmul": 50.0, "conv_2d_nhwc_hwcf": 50.0}), defaults=_DEFAULTS,
        guards=Guards(margin=2.0))
    assert all(o.is_default and "support" in o.reason for o in floored.tuned)
    # members that disagree by more than allowed
    spread = tune_module(MODULE, "costmodel", model=tiny_model, defaults=_DEFAULTS,
                         guards=Guards(margin=2.0, use_floor=False, max_spread=-1.0))
    assert all(o.is_default for o in spread.tuned)
    # an op far outside the training shapes (64x128x96 and a small conv): out of distribution
    big = emit({"kind": "matmul", "shape": "4096x4096x4096"}).mlir
    ood = tune_module(big, "costmodel", model=tiny_model, defaults={
        "matmul:4096x4096x4096": TileConfig((64, 64, 0), (8, 16, 0), (0, 0, 16))})
    assert ood.tuned[0].is_default and "outside" in ood.tuned[0].reason


def test_multithread_guard_keeps_the_defaults_parallelism() -> None:
    from mlsysgym.costmodels.tiling_score import parallel_ok

    p = instance_for("matmul", (64, 128, 96))
    dflt = {"d_m": 8, "d_n": 64, "d_h": 1}  # 8 x 2 = 16 workgroups
    knobs = {"d_m": np.array([8, 64, 32, 64]), "d_n": np.array([64, 128, 32, 64]),
             "d_h": np.ones(4)}
    # workgroups 16, 1, 8, 2; need min(16, 4 x 2 cores) = 8
    assert parallel_ok(p, knobs, dflt, per_core=4, cores=2).tolist() == [True, False, True, False]


def test_calibrated_measurements_decide_their_ops(tiny_model: TilingModel) -> None:
    from mlsysgym.costmodels.tiling_model import Calibration

    pick = TileConfig((32, 64, 0), (4, 32, 0), (0, 0, 8))
    cal = Calibration(tiny_model.target_id, 9, 1, None, {_MM_KEY: (pick, 0.8)})
    blind = _with(tiny_model, targets={})
    blind.calibration = cal
    rep = tune_module(MODULE, "costmodel", model=blind, defaults=_DEFAULTS)
    mm, conv = rep.tuned
    assert mm.chosen == pick and mm.measured_ratio == 0.8 and "calibration" in mm.reason
    assert conv.is_default and "no data for target" in conv.reason


@pytest.mark.slow
def test_calibration_measures_here_caches_per_target_and_resumes(tiny_model, tmp_path,
                                                                 monkeypatch) -> None:
    from mlsysgym.costmodels.tiling_model import calibrate, calibration_dir, load_tiling_model

    monkeypatch.setenv("MLSYSGYM_CACHE_DIR", str(tmp_path))
    p = instance_for("matmul", (32, 64, 48))
    lines: list[str] = []
    cal = calibrate(tiny_model, "host", [p], minutes=0.2, per_shape=4, rounds=1,
                    more_shapes=0, show_progress=False, log=lines.append)
    assert cal.rows == 4 and cal.shapes == 1 and "1 new shape" in lines[0]
    d = calibration_dir(tiny_model.target_id)
    assert str(d).startswith(str(tmp_path)) and any(d.glob("part-*.parquet"))
    again = calibrate(tiny_model, "host", [p], minutes=0.2, per_shape=4, rounds=1,
                      more_shapes=0, show_progress=False, log=lines.append)
    assert again.rows == 4 and "0 new shape" in lines[1]  # resumed: nothing re-measured
    # the measured best (if faster than the default) is what the pass applies
    for key, (cfg, ratio) in cal.best.items():
        assert key == p.key and 0 < ratio < 1 and isinstance(cfg, TileConfig)
    # a saved model picks the cached calibration up by target fingerprint
    tiny_model.base.save(tmp_path / "m")
    loaded = load_tiling_model(tmp_path / "m", "host")
    assert loaded.calibration is not None and loaded.calibration.rows == 4


@pytest.mark.slow
@pytest.mark.measured
def test_verify_reverts_an_op_that_makes_the_module_slower() -> None:
    from mlsysgym.compiler.tiling_verify import verify

    roots = [r for r in find_root_ops(MODULE) if r.problem is not None]
    scalar = TileConfig((64, 128, 0), (1, 1, 0), (0, 0, 1))  # no vectorization at all
    ops = [OpDecision(roots[0].index, "linalg.matmul", _MM_KEY, True, chosen=scalar,
                      default=MM_DEFAULT, is_default=False)]
    rep = TuningReport("costmodel", annotate(MODULE, {roots[0].index: scalar}), ops)
    logs: list[str] = []
    res = verify(rep, MODULE, drivers=("local-sync",), rounds=3, log=logs.append)
    assert res.reverted == [roots[0].index] and not res.kept
    assert rep.ops[0].is_default and "reverted" in rep.ops[0].reason
    assert "compilation_info" not in rep.mlir and logs and "×" in logs[0]


def _scripted_verify(monkeypatch: pytest.MonkeyPatch, keys: list[str], speedup: Any,
                     **kw: Any) -> tuple[Any, list[tuple[int, ...]]]:
    """:func:`verify` on ops of the problem keys ``keys``, each module's local-sync speedup
    given by ``speedup(ops it tunes, how many times it was timed before)`` (noise 0.5 %)."""
    import mlsysgym.compiler.tiling_verify as tv

    timed: list[tuple[int, ...]] = []

    def bench(untuned: str, tuned: tuple[int, ...], *a: object, **k: object) -> dict:
        x = speedup(tuned, timed.count(tuned))
        timed.append(tuned)
        return {"local-sync": tv.ModuleTiming("local-sync", 1.0, 1.0, x, 0.005, 7)}

    monkeypatch.setattr(tv, "annotate", lambda text, sel: tuple(sorted(sel)))
    monkeypatch.setattr(tv, "benchmark_modules", bench)
    ops = [OpDecision(i, "linalg.matmul", k, True, chosen=MM_DEFAULT, default=MM_DEFAULT,
                      is_default=False) for i, k in enumerate(keys)]
    res = tv.verify(TuningReport("costmodel", "", ops), "", drivers=("local-sync",),
                    log=lambda m: None, **kw)
    assert res.reverted == [i for i in range(len(keys)) if i not in res.kept]
    assert all(o.is_default == (o.index not in res.kept) for o in ops)
    return res, timed


# four changed ops: 0 and 1 of shape A (the same pick in two layers), 2 of B, 3 of C
@pytest.mark.parametrize(("script", "kept", "steps"), [
    # faster together and every shape faster alone: kept, not timed again
    ({(0, 1, 2, 3): [1.2], (0, 1): [1.10], (2,): [1.05], (3,): [1.02]}, [0, 1, 2, 3], 4),
    # faster together, but B alone is ×0.96: the others are timed afresh without it, ×1.25
    ({(0, 1, 2, 3): [1.2], (0, 1): [1.10], (2,): [0.96], (3,): [1.02], (0, 1, 3): [1.25]},
     [0, 1, 3], 5),
    # ×0.97: A ×1.10 and C ×1.02 pass alone, B ×0.82 does not; A and C together, timed
    # afresh, ×1.11: kept (halves of the op list, {0, 1} and {2, 3}, would both hold a
    # losing or neutral shape)
    ({(0, 1, 2, 3): [0.97], (0, 1): [1.10], (2,): [0.82], (3,): [1.02], (0, 1, 3): [1.11]},
     [0, 1, 3], 5),
    # the same, but A and C together are only ×1.005 afresh: every op back to default
    ({(0, 1, 2, 3): [0.97], (0, 1): [1.10], (2,): [0.82], (3,): [1.02], (0, 1, 3): [1.005]},
     [], 5),
    # not slower but no gain (×1.004 < 1.01) and no shape gains alone: nothing kept
    ({(0, 1, 2, 3): [1.004], (0, 1): [1.003], (2,): [0.99], (3,): [1.0]}, [], 4),
])
def test_verify_keeps_shapes_only_where_a_fresh_timing_shows_a_gain(
        monkeypatch: pytest.MonkeyPatch, script: dict, kept: list[int], steps: int) -> None:
    res, _ = _scripted_verify(monkeypatch, ["matmul:A", "matmul:A", "matmul:B", "matmul:C"],
                              lambda ops, n: script[ops][n])
    assert sorted(res.kept) == kept and res.steps == steps


@pytest.mark.parametrize(("speedup", "kept"), [(1.2, [0, 1, 2]), (0.97, []), (1.004, [])])
def test_verify_of_one_shape_times_the_module_once(monkeypatch: pytest.MonkeyPatch,
                                                   speedup: float, kept: list[int]) -> None:
    res, timed = _scripted_verify(monkeypatch, ["matmul:A"] * 3, lambda ops, n: speedup)
    assert sorted(res.kept) == kept and timed == [(0, 1, 2)]


def test_verify_times_at_most_max_steps_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six shapes, max_steps 4: the whole, the two shapes with the most ops alone, those two
    together; the other four go back to the default untimed."""
    keys = ["matmul:F", "matmul:A", "matmul:A", "matmul:B", "matmul:B", "matmul:C", "matmul:D",
            "matmul:E"]
    res, timed = _scripted_verify(monkeypatch, keys, lambda ops, n: 0.9 if len(ops) == 8 else 1.05,
                                  max_steps=4)
    assert timed == [tuple(range(8)), (1, 2), (3, 4), (1, 2, 3, 4)] and res.steps == 4
    assert sorted(res.kept) == [1, 2, 3, 4] and res.reverted == [0, 5, 6, 7]


def test_compile_cli_bad_inputs_are_one_line(tmp_path, capsys, tiny_model: TilingModel) -> None:
    from mlsysgym.cli import main

    mlir = tmp_path / "m.mlir"
    mlir.write_text(MODULE)
    binary = tmp_path / "b.mlir"
    binary.write_bytes(b"\x08\x07\xff\xfe onnx bytes")
    other = tmp_path / "not_tiling"
    tiny_model.base.save(other)
    meta = json.loads((other / "metadata.json").read_text())
    meta["hyperparameters"].pop("tiling")
    (other / "metadata.json").write_text(json.dumps(meta))
    cases = [
        ([str(binary), "--tune"], "is not UTF-8 text"),
        ([str(mlir), "--tune", f"costmodel:{other}"], "not a tile-size cost model"),
        ([str(mlir), "--tune", "-o", str(tmp_path / "missing" / "x.vmfb")], "does not exist"),
        ([str(mlir), "--tune", "--target-cpu", "pentium2"], "unknown target cpu"),
        ([str(mlir), "--tune", "--minutes", "0"], "--minutes"),
    ]
    for argv, want in cases:
        assert main(["compile", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want in err[0] and "Traceback" not in err[0], (argv, err)


def test_info_prints_the_fingerprint(capsys) -> None:
    from mlsysgym.cli import main

    assert main(["info", "--json"]) == 0
    fp = json.loads(capsys.readouterr().out)
    assert fp == json.loads(json.dumps(fingerprint()))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert fp["target_id"] in out and fp["machine"]["isa_level"] in out


def _synthetic_rows(target_id: str, level: str, bits: int, seed: int) -> pd.DataFrame:
    """Rows shaped like the collector's for two shapes on one target (ratios synthetic)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, dims, dflt in (("matmul", (64, 128, 96), MM_DEFAULT),
                             ("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 3, 3, 16), CONV_DEFAULT)):
        p = instance_for(kind, dims)
        dk = knobs_from_config(p, dflt)
        for c in candidates(p, dflt, max_n=12, seed=seed)[1:]:
            kn = knobs_from_config(p, c)
            rows.append({"problem_key": p.key, "kind": kind, "macs": p.macs,
                         "dims": "x".join(map(str, dims)),
                         "stride": 1, "dilation": 1, **kn, **{f"default_{k}": v for k, v in dk.items()},
                         "config": json.dumps(c.to_dict()), "default_config": json.dumps(dflt.to_dict()),
                         "runtime_ratio": float(np.exp(0.3 * abs(np.log2(kn["v_m"] / dk["v_m"]))
                                                      + 0.1 * rng.standard_normal())),
                         "ok": True, "target_id": target_id, "target_cpu": level,
                         "target_level": level, "vector_bits": bits, "l2_kib": 1024,
                         "cpu_model": "test CPU"})
    return pd.DataFrame(rows)


def test_a_trained_model_states_its_targets_and_floor(tmp_path) -> None:
    from mlsysgym.costmodels.tiling_model import (
        features_frame,
        load_tiling_model,
        train_tiling_model,
    )

    rows = pd.concat([_synthetic_rows("aaaa", "x86-64-v4", 512, 0),
                      _synthetic_rows("bbbb", "x86-64-v3", 256, 1)], ignore_index=True)
    frame = features_frame(rows)
    assert len(frame) == len(rows) + 4  # IREE's default of each (target, shape) added, ratio 1
    assert set(frame.loc[frame["is_default"] > 0.5, "runtime_ratio"]) == {1.0}
    assert sorted(frame["lanes"].unique()) == [3.0, 4.0]  # log2 of 8 and 16 f32 lanes
    train_tiling_model(frame, tmp_path / "m", members=2, n_estimators=20)
    model = load_tiling_model(tmp_path / "m", "host")
    info = model.info
    assert set(info["targets"]) == {"aaaa", "bbbb"}
    assert info["targets"]["bbbb"]["vector_bits"] == 256 and info["targets"]["aaaa"]["shapes"] == 2
    mm = rows[rows["kind"] == "matmul"]["runtime_ratio"]
    assert info["floor"]["matmul"] == pytest.approx(float(np.quantile(mm, 0.05)))
    assert info["max_macs"] == {"matmul": 64 * 128 * 96, "conv_2d_nhwc_hwcf": 2 * 8 * 8 * 32 * 9 * 16}
    assert model.in_data(instance_for("matmul", (128, 128, 96)))        # 2x the largest: in
    assert not model.in_data(instance_for("matmul", (128, 256, 96)))    # 4x: outside
    assert not model.knows_target  # this machine's target is neither aaaa nor bbbb
    small = [instance_for("matmul", (64, 128, 96))] * 2
    assert model.unsupported(small) == small[:1]  # unknown target: every distinct op
    with pytest.raises(Exception, match="target fingerprint"):
        features_frame(rows.drop(columns=["target_id"]))


def test_matrix_vector_products_keep_the_default() -> None:
    # whole-model runs lost 6-15 % on 1x1000xK classifier matmuls that won standalone
    text = emit({"kind": "matmul", "shape": "1x1000x512"}).mlir
    (root,) = find_root_ops(text)
    assert root.problem is None and "M = 1" in root.reason


def test_tiling_problem_is_searched_by_any_agent_on_the_pass_predictions():
    """``tiling`` under search(): IREE's default scores exactly 0; every other design's reward
    is -ln of the pass's own batched prediction relative to the default's; infeasible designs
    fail."""
    from mlsysgym.agents import search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.costmodels.tiling_space import KNOBS

    problem = make_problem({"name": "tiling", "kind": "matmul", "dims": [128, 256, 64],
                            "target_cpu": "x86-64-v2"})  # every x86-64 CPU runs it
    assert problem.evaluate([dict(problem.default_knobs)]).rewards[0] == pytest.approx(0.0, abs=1e-12)
    scored = score_candidates(problem.model, problem.instance, problem.default, per_core=0)
    picks = [1, len(scored) // 2, len(scored) - 1]
    designs = [{k: int(scored.columns[k][i]) for k in KNOBS} for i in picks]
    out = problem.evaluate(designs)
    expected = -np.log(scored.predicted[picks] / scored.predicted[0])
    assert out.rewards == pytest.approx(expected, rel=1e-5) and not out.failed.any()
    bad = {**dict(problem.default_knobs), "v_m": 16, "d_m": 8}  # register tile beyond its tile
    assert problem.evaluate([bad]).failed[0]
    result = search("ga", problem, budget=40, seed=0)
    assert result.n_evaluations == 40
    for d in result.designs:
        problem.space.validate(d, check_constraints=False)  # every design is a point of the space
    again = problem.evaluate(result.designs)
    ok = ~result.failed
    assert result.rewards[ok] == pytest.approx(again.rewards[ok], rel=1e-9)


# ---- operand layout: the form IREE's dispatch gives a matmul -----------------------------
# A weight stored [N, K] and transposed before the matmul, as ONNX exports of nn.Linear give
# it; the attention scores read K^T through a scale, as Llama-style exports give it.
FOLDED = """
func.func @main(%x: tensor<64x96xf32>, %w: tensor<128x96xf32>, %q: tensor<4x32x16xf32>,
                %k: tensor<4x32x16xf32>) -> (tensor<64x128xf32>, tensor<4x32x32xf32>) {
  %z = arith.constant 0.0 : f32
  %s = arith.constant 0.25 : f32
  %et = tensor.empty() : tensor<96x128xf32>
  %wt = linalg.transpose ins(%w : tensor<128x96xf32>) outs(%et : tensor<96x128xf32>) permutation = [1, 0]
  %e0 = tensor.empty() : tensor<64x128xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e0 : tensor<64x128xf32>) -> tensor<64x128xf32>
  %m = linalg.matmul ins(%x, %wt : tensor<64x96xf32>, tensor<96x128xf32>) outs(%f0 : tensor<64x128xf32>) -> tensor<64x128xf32>
  %ek = tensor.empty() : tensor<4x16x32xf32>
  %kt = linalg.transpose ins(%k : tensor<4x32x16xf32>) outs(%ek : tensor<4x16x32xf32>) permutation = [0, 2, 1]
  %ks = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%kt : tensor<4x16x32xf32>) outs(%ek : tensor<4x16x32xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = arith.mulf %in, %s : f32
    linalg.yield %v : f32
  } -> tensor<4x16x32xf32>
  %e1 = tensor.empty() : tensor<4x32x32xf32>
  %f1 = linalg.fill ins(%z : f32) outs(%e1 : tensor<4x32x32xf32>) -> tensor<4x32x32xf32>
  %b = linalg.batch_matmul ins(%q, %ks : tensor<4x32x16xf32>, tensor<4x16x32xf32>) outs(%f1 : tensor<4x32x32xf32>) -> tensor<4x32x32xf32>
  return %m, %b : tensor<64x128xf32>, tensor<4x32x32xf32>
}
"""


def test_root_ops_take_the_form_irees_dispatch_gives_them() -> None:
    from mlsysgym.costmodels.tiling_ops import in_iree_form

    as_written = [r.problem.key for r in find_root_ops(FOLDED) if r.problem is not None]
    assert as_written == ["matmul:64x128x96", "batch_matmul:4x32x32x16"]
    # IREE folds the transpose into the matmul, and propagates K^T through the scale
    folded = [r.problem for r in find_root_ops(FOLDED, "host") if r.problem is not None]
    assert [p.key for p in folded] == ["matmul:64x128x96:tB", "batch_matmul:4x32x32x16:tB"]
    assert all(p.transpose_b for p in folded) and folded[0].mnkh == (64, 128, 96, 1)
    assert [r.problem.key for r in find_root_ops(MODULE, "host") if r.problem] == \
        ["matmul:64x128x96", "conv_2d_nhwc_hwcf:2x8x8x32x3x3x16"]  # no transpose: as written
    # an op whose shape IREE's dispatches hold a different number of times loses its rule
    (mm, _conv) = [r for r in find_root_ops(MODULE) if r.problem is not None]
    (lost,) = in_iree_form([mm], FOLDED.replace("64x", "32x"), "host")
    assert lost.problem is None and "0 op(s) of this kind and shape" in lost.reason


@pytest.mark.parametrize(("kind", "shape"), [("matmul", "8x16x4"), ("batch_matmul", "2x8x16x4")])
def test_transposed_kernel_is_the_folded_op_and_computes_a_times_w_transposed(
        kind: str, shape: str) -> None:
    from mlsysgym.simulators.iree_cpu import KernelCompiler, Runner

    k = emit({"kind": kind, "shape": shape, "transpose_b": True})
    (root,) = find_root_ops(k.mlir)
    assert root.problem == instance_for(kind, tuple(map(int, shape.split("x"))),
                                        transpose_b=True)
    assert root.problem.to_spec_design()["transpose_b"] is True
    a, w = k.random_inputs(0)
    assert w.shape[-2:] == (16, 4)  # stored [N, K]
    res = KernelCompiler.for_target("host").compile(k.mlir)
    got = Runner(res.vmfb, res.func).run([a, w])
    np.testing.assert_allclose(got, a @ np.swapaxes(w, -1, -2), rtol=1e-5, atol=1e-5)


def test_the_base_model_leaves_transposed_ops_to_calibration(tiny_model: TilingModel) -> None:
    from mlsysgym.compiler.tiling_pass import Guards
    from mlsysgym.costmodels.tiling_model import Calibration

    tb = instance_for("matmul", (64, 128, 96), transpose_b=True)
    assert tiny_model.in_data(instance_for("matmul", (64, 128, 96))) and not tiny_model.in_data(tb)
    defaults = {tb.key: MM_DEFAULT,
                "batch_matmul:4x32x32x16:tB": TileConfig((1, 64, 64, 0), (1, 8, 16, 0),
                                                         (0, 0, 0, 16))}
    rep = tune_module(FOLDED, "costmodel", model=tiny_model, defaults=defaults,
                      guards=Guards(margin=2.0, use_floor=False, use_ood=False))
    assert all(o.is_default and "transposed" in o.reason for o in rep.tuned)
    # a calibration that measured the folded op decides it; the plain shape's does not
    pick = TileConfig((32, 64, 0), (4, 32, 0), (0, 0, 8))
    tiny_model.calibration = Calibration(tiny_model.target_id, 9, 1, None, {_MM_KEY: (pick, 0.5)})
    try:
        rep = tune_module(FOLDED, "costmodel", model=tiny_model, defaults=defaults)
        assert rep.tuned[0].is_default
        tiny_model.calibration = Calibration(tiny_model.target_id, 9, 1, None,
                                             {tb.key: (pick, 0.8)})
        rep = tune_module(FOLDED, "costmodel", model=tiny_model, defaults=defaults)
        assert rep.tuned[0].chosen == pick and rep.tuned[0].measured_ratio == 0.8
    finally:
        tiny_model.calibration = None


def test_rows_of_transposed_kernels_are_kept_apart() -> None:
    from mlsysgym.costmodels.tiling_model import features_frame, row_instance

    rows = _synthetic_rows("aaaa", "x86-64-v4", 512, 0)
    assert not row_instance(rows.iloc[0]).transpose_b  # rows written before the column
    tb = rows[rows["kind"] == "matmul"].assign(transpose_b=True,
                                                problem_key="matmul:64x128x96:tB")
    both = pd.concat([rows.assign(transpose_b=False), tb], ignore_index=True)
    assert row_instance(tb.iloc[0]).key == "matmul:64x128x96:tB"
    # the features cannot tell the layouts apart, so training and residual fits use plain rows
    assert len(features_frame(both)) == len(features_frame(rows)) == len(rows) + 2
