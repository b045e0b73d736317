"""ir.Graph on hand-built ONNX graphs: every number below is computed by hand."""

from __future__ import annotations

import pytest
from mlsysgym.ir import (
    ConvNest,
    DynamicDimensionError,
    Graph,
    GraphCycleError,
    MatmulNest,
    OnnxDecodeError,
    OpOrderError,
    Role,
    WorkloadError,
    WorkloadNotFoundError,
)
from onnx import TensorProto, helper
from onnx_builders import conv_relu, matmul_chain, model, value, weight


def single(node, inputs, outputs, inits=(), **kw) -> Graph:
    return Graph.from_onnx(model([node], inputs, outputs, inits, **kw))


def test_conv_relu_costs_roles_and_bytes():
    g = Graph.from_onnx(conv_relu())
    conv, relu = g.ops
    # MACs = N·K·P·Q·C·R·S = 1·4·6·6·3·3·3
    assert conv.macs == 3888
    assert conv.flops == 2 * 3888 + 144  # + bias add per output element
    assert conv.loop_nest == ConvNest(n=1, k=4, c=3, p=6, q=6, r=3, s=3)
    # read x (192 floats) + w (108) + b (4); write y (144)
    assert conv.bytes_read == (192 + 108 + 4) * 4
    assert conv.bytes_written == 144 * 4
    assert conv.arithmetic_intensity == pytest.approx((2 * 3888 + 144) / ((304 + 144) * 4))
    assert relu.flops == 144 and relu.macs == 0
    assert g.tensors["x"].role is Role.INPUT
    assert g.tensors["w"].role is Role.WEIGHT
    assert g.tensors["y"].role is Role.ACTIVATION
    assert g.tensors["z"].role is Role.OUTPUT
    t = g.totals()
    assert (t.params, t.param_bytes, t.macs) == (112, 448, 3888)


def test_depthwise_and_strided_conv():
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=4, kernel_shape=[3, 3],
                            strides=[2, 2], pads=[1, 1, 1, 1])
    g = single(node, [value("x", [1, 4, 8, 8])], [value("y", [1, 4, 4, 4])], [weight("w", [4, 1, 3, 3])])
    nest = g.ops[0].loop_nest
    assert nest.is_depthwise and (nest.p, nest.q, nest.stride_h, nest.groups) == (4, 4, 2, 4)
    assert g.ops[0].macs == 4 * 4 * 4 * 1 * 9  # K·P·Q·(C/groups)·R·S


def test_conv1d_and_conv_transpose():
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3])
    g = single(node, [value("x", [2, 8, 10])], [value("y", [2, 16, 8])], [weight("w", [16, 8, 3])])
    assert g.ops[0].macs == 2 * 16 * 8 * 8 * 3
    assert (g.ops[0].loop_nest.q, g.ops[0].loop_nest.s) == (1, 1)
    # ConvTranspose: each of N·C·H·W inputs scatters into (K/g)·R·S outputs
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    g = single(node, [value("x", [1, 2, 3, 3])], [value("y", [1, 4, 6, 6])], [weight("w", [2, 4, 2, 2])])
    assert g.ops[0].macs == 1 * 2 * 3 * 3 * 4 * 2 * 2
    assert g.ops[0].loop_nest.transposed


def test_matmul_batched_broadcast_and_gemm():
    node = helper.make_node("MatMul", ["a", "b"], ["c"])
    g = single(node, [value("a", [2, 3, 4, 5]), value("b", [2, 3, 5, 6])], [value("c", [2, 3, 4, 6])])
    assert g.ops[0].loop_nest == MatmulNest(batch=6, m=4, n=6, k=5)
    assert g.ops[0].macs == 720
    # a linear layer on a 3-D input: the shared weight makes it one (2·4)×5 @ 5×6 matmul
    g = single(node, [value("a", [2, 4, 5])], [value("c", [2, 4, 6])], [weight("b", [5, 6])])
    assert g.ops[0].loop_nest == MatmulNest(batch=1, m=8, n=6, k=5)
    assert g.ops[0].macs == 2 * 4 * 6 * 5
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1)
    g = single(node, [value("a", [2, 8])], [value("y", [2, 16])], [weight("b", [16, 8]), weight("c", [16])])
    assert g.ops[0].loop_nest == MatmulNest(batch=1, m=2, n=16, k=8)
    assert g.ops[0].flops == 2 * 256 + 32


def test_pooling_softmax_and_layernorm_flops():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"])]
    g = Graph.from_onnx(model(nodes, [value("x", [1, 2, 4, 4])], [value("g", [1, 2, 1, 1])]))
    assert g.ops[0].flops == 8 * 4  # 8 outputs × 4-window
    assert g.ops[1].flops == 8  # one add per input element
    # a global pool exported as a 1280x1280 kernel (torch's efficientnet_b0): the window is
    # the 7x7 input, so 1280 outputs x 49, not x 1280^2
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[1280, 1280],
                            strides=[1280, 1280], ceil_mode=1)
    g = Graph.from_onnx(model([node], [value("x", [1, 1280, 7, 7])], [value("y", [1, 1280, 1, 1])]))
    assert g.ops[0].flops == 1280 * 49


def test_unknown_op_is_kept_flagged_and_estimated():
    node = helper.make_node("FancyOp", ["x"], ["y"], domain="com.example")
    m = model([node], [value("x", [3, 5])], [value("y", [3, 5])])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    g = Graph.from_onnx(m)
    op = g.ops[0]
    assert op.estimated and op.op_type == "FancyOp" and op.flops == 15
    assert g.totals().estimated_ops == 1


def test_live_ranges_and_peak_for_two_orders():
    g = Graph.from_onnx(matmul_chain())
    ranges = {r.tensor: (r.start, r.end, r.nbytes) for r in g.live_ranges()}
    assert ranges == {"x": (0, 2, 40), "big": (0, 1, 4000), "s1": (1, 3, 4), "s2": (2, 3, 4),
                      "y": (3, 3, 4)}
    # step 0: x+big; 1: x+big+s1; 2: x+s1+s2; 3: s1+s2+y
    assert g.live_bytes().tolist() == [4040, 4044, 48, 12]
    assert g.peak_live_memory() == 4044
    order = ["mm_s2", "mm_big", "mm_s1", "add"]
    # step 0: x+s2; 1: x+big+s2; 2: big+s1+s2; 3: s1+s2+y
    assert g.live_bytes(order).tolist() == [44, 4044, 4008, 12]
    with_w = g.peak_live_memory(include_weights=True)
    assert with_w == 4040 + 40_000 + 4000 + 40  # step 0, where all three weights are live
    with pytest.raises(OpOrderError, match="before"):
        g.live_bytes(["mm_s1", "mm_big", "mm_s2", "add"])
    with pytest.raises(OpOrderError, match="exactly once"):
        g.live_bytes(["mm_big", "mm_big", "mm_s2", "add"])


def test_topological_order_fixes_file_order():
    nodes = [helper.make_node("Relu", ["a"], ["y"], name="second"),
             helper.make_node("Relu", ["x"], ["a"], name="first")]
    g = Graph.from_onnx(model(nodes, [value("x", [4])], [value("y", [4])]))
    assert [op.name for op in g.ops] == ["first", "second"]


def test_cycle_is_rejected():
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
             helper.make_node("Relu", ["a"], ["b"], name="n2")]
    with pytest.raises(GraphCycleError, match="cycle"):
        Graph.from_onnx(model(nodes, [value("x", [4])], [value("b", [4])]))


def test_dynamic_dims_need_sizes():
    node = helper.make_node("Relu", ["x"], ["y"])
    m = model([node], [value("x", ["batch", 16])], [value("y", ["batch", 16])])
    with pytest.raises(DynamicDimensionError, match="batch"):
        Graph.from_onnx(m)
    g = Graph.from_onnx(m, dims={"batch": 4})
    assert g.tensors["y"].shape == (4, 16) and g.ops[0].flops == 64


def test_bad_files(tmp_path):
    with pytest.raises(WorkloadNotFoundError, match="no such ONNX file"):
        Graph.from_onnx(tmp_path / "missing.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 10)
    with pytest.raises(OnnxDecodeError):
        Graph.from_onnx(text)
    data = matmul_chain().SerializeToString()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        truncated = tmp_path / f"cut{cut}.onnx"
        truncated.write_bytes(data[:cut])
        with pytest.raises(WorkloadError):
            Graph.from_onnx(truncated)
    with pytest.raises(OnnxDecodeError):
        Graph.from_onnx(b"\x00\x01\x02garbage")


def test_from_bytes_and_path_agree(tmp_path):
    m = conv_relu()
    p = tmp_path / "conv.onnx"
    p.write_bytes(m.SerializeToString())
    a, b, c = Graph.from_onnx(p), Graph.from_onnx(m.SerializeToString()), Graph.from_onnx(m)
    assert a.name == "conv" and a.totals() == b.totals() == c.totals()


def test_uint8_dtype_bytes():
    node = helper.make_node("Relu", ["x"], ["y"])
    g = single(node, [value("x", [10], TensorProto.UINT8)], [value("y", [10], TensorProto.UINT8)])
    assert g.ops[0].bytes_read == 10 and g.tensors["x"].dtype == "uint8"


@pytest.mark.slow
def test_from_torch_module():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 6 * 6, 10))
    g = Graph.from_torch(net, (torch.zeros(1, 3, 8, 8),))
    # conv: 8·6·6·3·3·3 ; linear: 288·10
    assert g.totals().macs == 8 * 36 * 27 + 288 * 10
    assert g.totals().params == 8 * 27 + 8 + 288 * 10 + 10
    assert not g.estimated_ops
