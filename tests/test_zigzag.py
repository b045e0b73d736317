"""ZigZag backend: typed errors, YAML knob rewriting, and (slow) small ZigZag runs on tpu_like."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("zigzag")

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir import Graph
from mlsysgym.ir.errors import WorkloadNotFoundError
from mlsysgym.simulators.zigzag_backend import (
    HARDWARE,
    UnknownHardwareError,
    ZigZagDesignError,
    ZigZagEvaluator,
    ZigZagRunError,
    _rewrite,
    hardware_knobs,
    parsed_layers,
    resolve_workload,
    shipped_workload_path,
)


def _model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, list[int]],
    outputs: dict[str, list[int]],
    weights: dict[str, list[int]],
) -> onnx.ModelProto:
    inits = [
        helper.make_tensor(n, TensorProto.FLOAT, s, np.zeros(math.prod(s), np.float32))
        for n, s in weights.items()
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_model(c: int = 16, k: int = 32, hw: int = 7, layers: int = 1) -> onnx.ModelProto:
    """A Relu, then ``layers`` 3x3 convs named ``conv0``, ... (later ones need c == k), each followed
    by a Relu. (The leading Relu makes every conv read an activation, not a graph input, which
    ZigZag treats as a constant operand.) Sizes with few prime factors keep ZigZag's search short."""
    nodes = [helper.make_node("Relu", ["x"], ["x1"], name="relu_in")]
    weights: dict[str, list[int]] = {}
    x = "x1"
    for i in range(layers):
        cin = c if i == 0 else k
        weights[f"w{i}"] = [k, cin, 3, 3]
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"w{i}"],
                [f"c{i}"],
                name=f"conv{i}",
                pads=[1, 1, 1, 1],
                kernel_shape=[3, 3],
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        x = f"r{i}"
    return _model(nodes, {"x": [1, c, hw, hw]}, {x: [1, k, hw, hw]}, weights)


def gemm_model(m: int = 8, k: int = 64, n: int = 48) -> onnx.ModelProto:
    """One Gemm ``y = x @ W`` with x of shape (m, k) and W of shape (k, n); the node is unnamed."""
    return _model(
        [helper.make_node("Gemm", ["x", "W"], ["y"])], {"x": [m, k]}, {"y": [m, n]}, {"W": [k, n]}
    )


@pytest.fixture(scope="module")
def ev() -> ZigZagEvaluator:
    return ZigZagEvaluator("tpu_like")


@pytest.fixture(scope="module")
def conv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zz") / "conv1.onnx"
    onnx.save(conv_model(), path)
    return path


# ---- fast: no mapping search ----------------------------------------------------------------
def test_unknown_hardware_is_a_typed_one_line_error(ev: ZigZagEvaluator) -> None:
    with pytest.raises(UnknownHardwareError) as info:
        ev.evaluate([{"hardware": "tpu_lik"}], gemm_model())
    assert isinstance(info.value, MlsysgymError)
    assert "\n" not in str(info.value) and "tpu_like" in str(info.value)
    with pytest.raises(UnknownHardwareError):
        ZigZagEvaluator("no_such_chip")


def test_bad_knobs_and_workloads_are_typed_errors(ev: ZigZagEvaluator) -> None:
    with pytest.raises(ZigZagDesignError, match="rows"):
        ev.evaluate([{"rows": 4}], gemm_model())
    with pytest.raises(ZigZagDesignError, match="d3"):
        ev.evaluate([{"hardware": "tpu_like", "d3": 4}], gemm_model())
    with pytest.raises(ZigZagDesignError, match="positive integer"):
        ev.evaluate([{"d1": 0}], gemm_model())
    with pytest.raises(WorkloadNotFoundError):
        ev.evaluate([{}], "no_such_model_anywhere")


def test_workloads_resolve_from_names_paths_and_graphs(conv_path: Path) -> None:
    label, model = resolve_workload("zigzag:resnet18")
    assert label == "zigzag:resnet18" and len(model.graph.node) == 49
    assert resolve_workload(conv_path)[0] == "conv1"
    zoo = pytest.importorskip("mlsysgym.ir.zoo")
    if "resnet18" in zoo.names():
        assert resolve_workload(zoo.load("resnet18"))[0] == "resnet18"
    with pytest.raises(WorkloadNotFoundError, match="ONNX path"):
        resolve_workload(Graph.from_onnx(conv_path, name="not_a_zoo_model"))


def test_knobs_rewrite_the_shipped_yaml() -> None:
    knobs = hardware_knobs("tpu_like")
    assert knobs["d1"] == 32 and knobs["d2"] == 32 and knobs["mem_bytes.sram_2MB"] == 2 * 2**20
    assert set(HARDWARE) >= {"tpu_like", "edge_tpu_like", "eyeriss_like"}
    import yaml

    hw, mapping = (
        yaml.safe_load(t)
        for t in _rewrite(
            "tpu_like", {"d1": 16, "d2": 8, "mem_bytes.sram_2MB": 1024, "dram_bw_bits": 32}
        )
    )
    assert hw["operational_array"]["sizes"] == [16, 8]
    assert hw["memories"]["sram_2MB"]["size"] == 8 * 1024
    assert all(p["bandwidth_max"] == 32 for p in hw["memories"]["dram"]["ports"])
    default = next(e for e in mapping if e["name"] == "default")
    assert default["spatial_mapping"] == {"D1": ["K, 16"], "D2": ["C, 8"]}
    as_floats = _rewrite("tpu_like", {"d1": 16.0, "d2": 8.0, "mem_bytes.sram_2MB": 1024.0})
    assert as_floats == _rewrite("tpu_like", {"d1": 16, "d2": 8, "mem_bytes.sram_2MB": 1024})


def test_parsed_layers_match_ir_graph_macs_on_resnet18() -> None:
    path = shipped_workload_path("resnet18")
    graph = Graph.from_onnx(path)
    layers = parsed_layers(path)
    assert len(layers) == 21 and all(layer.supported for layer in layers)
    assert len(layers) == sum(op.op_type in {"Conv", "Gemm"} for op in graph.ops)
    for layer in layers:
        assert layer.macs == graph.op(layer.name).macs, layer.name


@pytest.mark.parametrize("name", ["bert_base", "whisper_tiny_encoder"])
def test_zoo_transformers_parse_with_macs_matching_ir_graph(name: str) -> None:
    """MatMul-based graphs are costed (MatMul goes through ZigZag's Gemm parser); 1-D convs
    (whisper's encoder stem) are not: they are skipped with a flag."""
    zoo = pytest.importorskip("mlsysgym.ir.zoo")
    if name not in zoo.names():
        pytest.skip(f"{name} is not in the zoo")
    graph = zoo.load(name)
    layers = parsed_layers(name)
    costed = [layer for layer in layers if layer.supported]
    assert costed and all(layer.macs == graph.op(layer.name).macs for layer in costed)
    assert {layer.op_type for layer in costed} <= {"MatMul", "Gemm", "Conv"}
    skipped = [layer for layer in layers if not layer.supported]
    assert all(graph.op(layer.name).op_type == "Conv" for layer in skipped)
    assert len(skipped) == (2 if name == "whisper_tiny_encoder" else 0)


# ---- slow: ZigZag mapping searches (small layers) ---------------------------------------------
@pytest.mark.slow
def test_one_conv_layer_on_tpu_like(ev: ZigZagEvaluator, conv_path: Path) -> None:
    graph = Graph.from_onnx(conv_path)
    result = ev.layers({"hardware": "tpu_like"}, conv_path)
    assert [layer.name for layer in result.layers] == ["conv0"]
    layer = result.layers[0]
    assert layer.op_type == "Conv" and layer.supported and not layer.reused
    assert layer.macs == graph.op("conv0").macs == 16 * 32 * 7 * 7 * 9
    assert layer.ideal_cycles == math.ceil(layer.macs / (32 * 32))
    assert layer.cycles >= layer.ideal_cycles > 0 and layer.energy_pj > 0 and layer.wall_s > 0
    assert result.ignored_ops == {"Relu": 2}
    m = ev.evaluate([{"hardware": "tpu_like"}], conv_path)
    assert m["cycles"][0] == layer.cycles and m["macs"][0] == layer.macs
    assert m["energy_uj"][0] == pytest.approx(layer.energy_pj * 1e-6)


@pytest.mark.slow
def test_one_gemm_layer_names_match_ir_graph(ev: ZigZagEvaluator) -> None:
    model = gemm_model()
    graph = Graph.from_onnx(model)
    result = ev.layers({}, model)
    assert [(layer.name, layer.op_type) for layer in result.layers] == [(graph.ops[0].name, "Gemm")]
    assert result.layers[0].macs == graph.ops[0].macs == 8 * 64 * 48
    assert result.metrics()["layers_costed"] == 1.0


@pytest.mark.slow
def test_same_design_twice_gives_same_metrics(conv_path: Path) -> None:
    design = {"hardware": "tpu_like", "d1": 16, "d2": 16}
    first = ZigZagEvaluator().evaluate([design], conv_path)
    again = ZigZagEvaluator()  # fresh caches: ZigZag searches again
    second = again.evaluate([design], conv_path)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert first["ideal_cycles"][0] == math.ceil(
        16 * 32 * 7 * 7 * 9 / (16 * 16)
    )  # the knob reached ZigZag
    third = again.evaluate([dict(design)], conv_path)
    assert again.cache_hits == 1 and third["cycles"][0] == second["cycles"][0]


@pytest.mark.slow
def test_identical_layers_are_searched_once(tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    onnx.save(conv_model(c=16, k=16, layers=2), path)
    result = ZigZagEvaluator().layers({}, path)
    first, second = result.layers
    assert (first.name, second.name) == ("conv0", "conv1")
    assert not first.reused and second.reused and second.wall_s == 0.0
    assert (first.cycles, first.energy_pj) == (second.cycles, second.energy_pj)


def test_unparseable_layer_is_skipped_with_a_flag(tmp_path: Path) -> None:
    """ZigZag's MatMul parser accepts ranks 2-4 only; a rank-5 MatMul is skipped, not fatal."""
    model = _model(
        [
            helper.make_node("MatMul", ["x", "W"], ["y"], name="mm5"),
            helper.make_node("Relu", ["y"], ["z"], name="relu"),
        ],
        {"x": [1, 1, 1, 4, 8]},
        {"z": [1, 1, 1, 4, 8]},
        {"W": [8, 8]},
    )
    result = ZigZagEvaluator().layers({}, model)
    assert [(layer.name, layer.supported) for layer in result.layers] == [("mm5", False)]
    assert "MatMul" in result.layers[0].note
    assert result.metrics()["layers_skipped"] == 1.0 and result.metrics()["cycles"] == 0.0
    with pytest.raises(ZigZagRunError, match="mm5"):
        ZigZagEvaluator(skip_unsupported=False).evaluate([{}], model)
