"""The analytical accelerator model: hand-computed folds and cycles, traffic, energy, area,
vectorization, errors, and the ``sim accelerator`` command."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from mlsysgym.core.errors import (
    MlsysgymError,
    OutOfRangeError,
    ParameterTypeError,
    UnknownParameterError,
)
from mlsysgym.ir import Graph
from mlsysgym.simulators import accelerator as acc
from mlsysgym.simulators import accelerator_energy as en
from mlsysgym.simulators.accelerator import (
    AcceleratorSimulator,
    DesignArrays,
    designs_to_arrays,
    layer_table,
    simulate_items,
    simulate_totals,
)
from mlsysgym.simulators.accelerator_layers import conv_layers, gemm_layers, lower
from onnx import TensorProto, helper

BIG = {"ifmap_kb": 1024, "filter_kb": 1024, "ofmap_kb": 1024, "bandwidth": 65536,
       "word_bytes": 1}


def design(**kw):
    return {"rows": 4, "cols": 4, "dataflow": "ws", **BIG, **kw}


def one(d: dict, ls) -> dict[str, float]:
    items = simulate_items(designs_to_arrays([d]), ls)
    return {m: float(v[0].sum()) for m, v in items.items()}


# ---- hand-computed GEMM on a 4x4 array: M=8, K=6, N=5 -----------------------------------------
GEMM = gemm_layers([(8, 6, 5)])


@pytest.mark.parametrize("flow, folds, fold_len", [
    ("os", 2 * 2, 6 + 4 + 4 - 2),       # Sr=M=8, Sc=N=5, T=K=6
    ("ws", 2 * 2, 2 * 4 + 4 + 8 - 2),   # Sr=K=6, Sc=N=5, T=M=8
    ("is", 2 * 2, 2 * 4 + 4 + 5 - 2),   # Sr=K=6, Sc=M=8, T=N=5
])
def test_compute_cycles_by_hand(flow, folds, fold_len):
    r = one(design(dataflow=flow), GEMM)
    assert r["compute_cycles"] == folds * fold_len - 1


def test_non_square_array_folds():
    # 8 rows x 2 cols, os: Sr=M=8 -> 1 row fold, Sc=N=5 -> 3 col folds, T=6
    r = one(design(rows=8, cols=2, dataflow="os"), GEMM)
    assert r["compute_cycles"] == 3 * (6 + 8 + 2 - 2) - 1


def test_utilization_and_stall_free_with_large_buffers():
    d = designs_to_arrays([design(dataflow="os")])
    t = simulate_totals(d, GEMM)
    cycles = 4 * 12 - 1  # os has no stationary tile to preload; bandwidth is huge
    assert t["cycles"][0] == pytest.approx(cycles, abs=0.01)
    assert t["utilization"][0] == pytest.approx(8 * 6 * 5 / (16 * cycles), rel=1e-3)


@pytest.mark.parametrize("flow", ["os", "ws", "is"])
def test_dram_traffic_each_operand_once_when_buffers_are_large(flow):
    r = one(design(dataflow=flow), GEMM)
    assert r["dram_reads"] == 8 * 6 + 6 * 5
    assert r["dram_writes"] == 8 * 5


def test_sram_accesses_by_hand_os():
    r = one(design(dataflow="os"), GEMM)
    # ifmap rows re-read per column fold (2), filter columns per row fold (2), outputs once;
    # plus write-back reads of the outputs and DRAM fills
    assert r["sram_reads"] == 8 * 6 * 2 + 6 * 5 * 2 + 8 * 5
    assert r["sram_writes"] == (8 * 6 + 6 * 5) + 8 * 5


def test_energy_is_counts_times_table():
    d = design(dataflow="os")
    r = one(d, GEMM)
    e_sram = en.sram_energy_pj_per_word(np.array(1024.0), np.array(1)).item()
    e = (240 * en.mac_energy_pj(np.array(1)).item()
         + (r["sram_reads"] + r["sram_writes"]) * e_sram
         + (r["dram_reads"] + r["dram_writes"]) * en.dram_energy_pj_per_word(np.array(1)).item())
    assert r["energy_pj"] == pytest.approx(e, rel=1e-9)


def test_horowitz_anchor_points():
    assert en.sram_energy_pj_per_word(np.array(32.0), np.array(8)) == pytest.approx(20.0)
    assert en.mac_energy_pj(np.array(4)) == pytest.approx(3.7 + 0.9)
    assert en.dram_energy_pj_per_word(np.array(1)) == pytest.approx(1950 / 8)


def test_area_model():
    d = designs_to_arrays([design(rows=2, cols=3, ifmap_kb=1, filter_kb=1, ofmap_kb=2)])
    pe = 282 + 36 + 3 * 8 * 4.522
    expected = (6 * pe + 3 * (282 + 36)) * 1e-6 + 4 * 8192 * 0.692 * 1e-6
    assert acc.area_mm2(d)[0] == pytest.approx(expected)


# ---- buffers and bandwidth --------------------------------------------------------------------
def test_small_ifmap_buffer_restreams_ifmap_per_column_fold():
    ls = gemm_layers([(512, 64, 64)])  # ifmap 32 K words; 4 column folds on a 16x16 array
    big = one(design(rows=16, cols=16, dataflow="ws"), ls)
    small = one(design(rows=16, cols=16, dataflow="ws", ifmap_kb=8), ls)
    assert big["dram_reads"] == 512 * 64 + 64 * 64
    assert small["dram_reads"] == 4 * 512 * 64 + 64 * 64


def test_psum_spill_when_ofmap_buffer_is_small():
    ls = gemm_layers([(512, 64, 64)])  # ws: 4 row folds, psum tile 512 x 16 = 8 K words
    r = one(design(rows=16, cols=16, dataflow="ws", ofmap_kb=1), ls)
    assert r["dram_writes"] == 4 * 512 * 64
    assert r["dram_reads"] == 512 * 64 + 64 * 64 + 3 * 512 * 64


def test_bandwidth_bound_stalls():
    ls = gemm_layers([(64, 64, 64)])
    d = design(rows=16, cols=16, dataflow="os", bandwidth=1)
    r = one(d, ls)
    words = r["dram_reads"] + r["dram_writes"]
    assert r["stall_cycles"] == pytest.approx(words - r["compute_cycles"])
    assert r["cycles"] == pytest.approx(words)


def test_less_bandwidth_never_faster():
    ls = conv_layers([(16, 16, 3, 3, 8, 16, 1)])
    bws = np.array([0.5, 1, 2, 4, 8, 64])
    d = DesignArrays.from_columns(rows=8, cols=8, dataflow="ws", ifmap_kb=2, filter_kb=2,
                                  ofmap_kb=2, bandwidth=bws)
    cycles = simulate_totals(d, ls)["cycles"]
    assert np.all(np.diff(cycles) <= 0)


# ---- graphs: conv, depthwise, vector ops ------------------------------------------------------
def conv_model(group: int = 1, c: int = 8, k: int = 8, relu: bool = False) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 6, 6])
    y = helper.make_tensor_value_info("z" if relu else "y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [k, c // group, 3, 3],
                           np.zeros(k * (c // group) * 9, np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], group=group, name="conv")]
    if relu:
        nodes.append(helper.make_node("Relu", ["y"], ["z"], name="relu"))
    g = helper.make_graph(nodes, "conv", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def gemm_model(m: int = 4, k: int = 16, n: int = 8) -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    b = helper.make_tensor("b", TensorProto.FLOAT, [k, n], np.zeros(k * n, np.float32))
    g = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"], name="fc")], "gemm",
                          [a], [y], [b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_lowering_matches_im2col():
    ls = lower(Graph.from_onnx(conv_model(c=8, k=16), name="c"))
    assert (ls.m[0], ls.k[0], ls.n[0], ls.groups[0]) == (16, 72, 16, 1)
    assert ls.ifmap_words[0] == 8 * 36 and ls.filter_words[0] == 16 * 72
    assert ls.ofmap_words[0] == 16 * 16


def test_depthwise_groups_share_the_array_diagonal():
    graph = Graph.from_onnx(conv_model(group=8, c=8, k=8), name="dw")
    ls = lower(graph)
    assert (ls.m[0], ls.k[0], ls.n[0], ls.groups[0]) == (16, 9, 1, 8)
    # ws on 32x32: Sr=K=9, Sc=N=1 -> 3 groups per fold, 3 passes, T=M=16
    r = one(design(rows=32, cols=32, dataflow="ws"), ls)
    assert r["compute_cycles"] == 3 * (2 * 32 + 32 + 16 - 2) - 1
    # 4x4 ws: a group's 9 rows need 3 row folds; groups run one after another
    r = one(design(rows=4, cols=4, dataflow="ws"), ls)
    assert r["compute_cycles"] == 8 * 3 * (2 * 4 + 4 + 16 - 2) - 1


def test_vector_op_on_cols_lanes():
    graph = Graph.from_onnx(conv_model(relu=True), name="cr")
    t = layer_table(design(cols=4), graph)
    relu = t[t.op_type == "Relu"].iloc[0]
    assert relu.compute_cycles == np.ceil(8 * 16 / 4)
    assert relu.dram_reads == 8 * 16 and relu.dram_writes == 8 * 16
    assert relu.utilization == 0


# ---- vectorization ----------------------------------------------------------------------------
def random_designs(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"rows": int(rng.choice([4, 8, 16, 32, 128])), "cols": int(rng.choice([4, 8, 12, 64])),
             "dataflow": str(rng.choice(["os", "ws", "is"])),
             "ifmap_kb": float(rng.choice([1, 8, 64, 512])),
             "filter_kb": float(rng.choice([1, 8, 64, 512])),
             "ofmap_kb": float(rng.choice([1, 8, 64])),
             "bandwidth": float(rng.choice([0.5, 4, 32])),
             "word_bytes": int(rng.choice([1, 2, 4])),
             "clock_mhz": float(rng.choice([200, 1000]))} for _ in range(n)]


def test_vectorized_equals_per_design_loop():
    graph = Graph.from_onnx(conv_model(group=2, relu=True), name="g")
    designs = random_designs(40)
    sim = AcceleratorSimulator()
    batch = sim.evaluate(designs, graph, cache=False)
    for i, d in enumerate(designs):
        single = sim.evaluate([d], graph, cache=False)
        for m in sim.metric_names:
            assert batch[m][i] == pytest.approx(single[m][0], rel=1e-12), (m, d)


def test_evaluator_metrics_and_table_agree():
    graph = Graph.from_onnx(conv_model(relu=True), name="cr")
    d = design(dataflow="is", ifmap_kb=0.5, bandwidth=2)
    totals = AcceleratorSimulator().evaluate_one(d, graph)
    table = layer_table(d, graph)
    assert set(AcceleratorSimulator.metric_names) == set(totals)
    for m in ("cycles", "compute_cycles", "stall_cycles", "dram_reads", "energy_uj"):
        assert table[m].sum() == pytest.approx(totals[m])
    assert totals["latency_ms"] == pytest.approx(totals["cycles"] / 1e6)
    assert totals["power_mw"] == pytest.approx(totals["energy_uj"] / totals["latency_ms"])


def test_from_columns_matches_dicts():
    designs = random_designs(10, seed=3)
    cols = {k: [d[k] for d in designs] for k in designs[0]}
    a, b = DesignArrays.from_columns(**cols), designs_to_arrays(designs)
    for f in ("rows", "dataflow", "ifmap_kb", "word_bytes"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, error, words", [
    ({"rowz": 4}, UnknownParameterError, "unknown accelerator parameter 'rowz'"),
    ({"rows": 0}, OutOfRangeError, "rows=0 is out of range"),
    ({"rows": 2.5}, ParameterTypeError, "rows must be an integer"),
    ({"rows": "32"}, ParameterTypeError, "rows must be a number"),
    ({"rows": True}, ParameterTypeError, "rows must be a number"),
    ({"bandwidth": -1.0}, OutOfRangeError, "bandwidth=-1.0 is out of range"),
    ({"word_bytes": 3}, OutOfRangeError, "word_bytes=3 is not allowed"),
    ({"dataflow": "rs"}, OutOfRangeError, "unknown dataflow 'rs'"),
    ({"dataflow": 1}, ParameterTypeError, "dataflow must be a string"),
])
def test_bad_designs_raise_one_line_typed_errors(bad, error, words):
    with pytest.raises(error) as e:
        AcceleratorSimulator().evaluate([{**design(), **bad}], gemm_layers([(4, 4, 4)]))
    assert isinstance(e.value, MlsysgymError)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_bad_columns_raise():
    with pytest.raises(OutOfRangeError):
        DesignArrays.from_columns(dataflow=["ws", "xs"])
    with pytest.raises(OutOfRangeError):
        DesignArrays.from_columns(rows=[4, 100000])
    with pytest.raises(UnknownParameterError):
        DesignArrays.from_columns(colz=[4])


def test_env_search_grid_lies_inside_the_simulator_space():
    grid = acc.accelerator_space()
    for p in grid:
        for v in grid.levels(p.name):
            acc.DESIGN_SPACE[p.name].check(v)
    assert acc.DESIGN_SPACE.default == acc.default_design()


def test_bad_workload():
    with pytest.raises(MlsysgymError):
        AcceleratorSimulator().evaluate([design()], 42)
    with pytest.raises(MlsysgymError):
        AcceleratorSimulator().evaluate([design()], "/no/such/model.onnx")


# ---- CLI --------------------------------------------------------------------------------------
def cli(argv: list[str]) -> int:
    import mlsysgym.cli as cli_mod

    if "mlsysgym.commands.sim_accelerator" not in cli_mod.COMMAND_MODULES:
        cli_mod.COMMAND_MODULES = (*cli_mod.COMMAND_MODULES, "mlsysgym.commands.sim_accelerator")
    return cli_mod.main(argv)


@pytest.mark.parametrize("model", [gemm_model, conv_model])
def test_cli_json_on_one_layer_onnx(tmp_path, capsys, model):
    path = tmp_path / "m.onnx"
    onnx.save(model(), str(path))
    code = cli(["sim", "accelerator", "--model", str(path), "--rows", "4", "--cols", "4",
                "--dataflow", "os", "--ifmap-kb", "64", "--filter-kb", "64", "--ofmap-kb", "64",
                "--bandwidth", "16", "--word-bytes", "1", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    (layer,) = doc["layers"]
    for key in ("name", "op_type", "compute_cycles", "stall_cycles", "total_cycles",
                "utilization", "energy_uj"):
        assert key in layer
    assert doc["totals"]["total_cycles"] == pytest.approx(layer["total_cycles"])
    if model is gemm_model:  # M=4, K=16, N=8 on 4x4 os: 1x2 folds of 16 + 4 + 4 - 2
        assert layer["compute_cycles"] == 2 * 22 - 1


def test_cli_table_and_bad_input(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(gemm_model(), str(path))
    assert cli(["sim", "accelerator", "--model", str(path)]) == 0
    assert "total" in capsys.readouterr().out
    assert cli(["sim", "accelerator", "--model", str(path), "--rows", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsysgym: error: rows=0") and "\n" not in err
    assert cli(["sim", "accelerator", "--model", str(tmp_path / "none.onnx")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
