"""Tile-size selection pass: candidate space, batched scoring, untouched ops, numerics, invalid configs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlsysgym.ir.mlir_emit import emit
from mlsysgym.costmodels.tiling_pass import (
    MeasuredConfig,
    OpDecision,
    TuningReport,
    annotate,
    compile_and_check,
    find_root_ops,
    measure_configs,
    score_candidates,
    tune_module,
)
from mlsysgym.costmodels.tiling_space import (
    FEATURE_NAMES,
    KNOBS,
    TileConfig,
    candidates,
    config_features,
    default_config,
    knobs_from_config,
    problem_for,
    tiling_space,
)

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
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    """A small LightGBM cost model over the pass's features, saved and loaded via ONNX Runtime."""
    from mlsysgym.costmodels.base import CostModel
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    rng = np.random.default_rng(0)
    frames = []
    for kind, dims, dflt in (("matmul", (64, 128, 96), MM_DEFAULT),
                             ("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 3, 3, 16), CONV_DEFAULT)):
        p = problem_for(kind, dims)
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
    path = tmp_path_factory.mktemp("tiling-model")
    m.save(path)
    return CostModel.load(path)


# ---- candidate space ----------------------------------------------------------------------
@pytest.mark.parametrize("kind,dims,dflt", [("matmul", (64, 128, 96), MM_DEFAULT),
                                            ("matmul", (1, 1000, 24), TileConfig((0, 50, 0), (1, 25, 0), (0, 0, 16))),
                                            ("batch_matmul", (4, 49, 49, 32), TileConfig((1, 49, 49, 0), (1, 1, 1, 0), (0, 0, 0, 16))),
                                            ("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 3, 3, 16), CONV_DEFAULT)])
def test_space_respects_loop_bounds_and_keeps_default(kind: str, dims: tuple[int, ...],
                                                      dflt: TileConfig) -> None:
    p = problem_for(kind, dims)
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
    assert problem_for("conv_2d_nhwc_hwcf", (1, 8, 8, 32, 3, 3, 16)) is None  # batch 1
    assert problem_for("conv_2d_nhwc_hwcf", (2, 8, 8, 32, 1, 1, 16)) is None  # 1x1
    assert problem_for("depthwise_conv_2d_nhwc_hwc", (2, 8, 8, 16, 3, 3)) is None


def test_batch1_conv_and_ops_without_rule_are_untouched_and_reported(tiny_model) -> None:
    rep = tune_module(UNTOUCHED, "costmodel", model=tiny_model)
    assert len(rep.ops) == 3 and not rep.tuned
    reasons = " | ".join(o.reason for o in rep.untouched)
    assert "batch-1 conv" in reasons and "depthwise" in reasons and "generic" in reasons
    assert "compilation_info" not in rep.mlir
    assert "untouched" in rep.summary()


# ---- scoring ------------------------------------------------------------------------------
def test_scoring_all_candidates_is_one_batched_call(tiny_model) -> None:
    p = problem_for("matmul", (64, 128, 96))
    calls: list[int] = []
    real = tiny_model.run_encoded

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return real(x)
    tiny_model.run_encoded = counting
    try:
        sc = score_candidates(tiny_model, p, MM_DEFAULT)
    finally:
        tiny_model.run_encoded = real
    assert calls == [len(sc)] and len(sc) > 100
    assert sc.predicted.shape == (len(sc),) and np.isfinite(sc.predicted).all()
    assert sc.config(0) == MM_DEFAULT


# ---- compile-heavy ------------------------------------------------------------------------
@pytest.mark.slow
def test_default_is_read_from_iree() -> None:
    p = problem_for("matmul", (64, 128, 96))
    d = default_config(p)
    assert len(d.distribution) == 3 and d.vector_reduction[2] > 0
    assert candidates(p, d)[0] == d


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
    p = problem_for("matmul", (64, 128, 96))
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
def test_verify_top_k_measures_k_and_never_loses(tiny_model) -> None:
    text = emit({"kind": "matmul", "shape": "64x128x96"}).mlir
    rep = tune_module(text, "costmodel+verify-top-k", model=tiny_model, k=2, rounds=1)
    (op,) = rep.tuned
    assert op.measured == 2 and op.model_calls == 1
    assert op.is_default or op.measured_ratio < 1.0


def test_compile_cli_registers_and_rejects_bad_tune(tmp_path) -> None:
    import argparse

    from mlsysgym.ir.errors import MlsysgymError

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
