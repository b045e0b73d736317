"""Small hand-built ONNX models whose costs are computed by hand in the tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def value(name: str, shape: list[int | str], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def weight(name: str, shape: list[int], dtype=np.float32) -> TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def model(nodes, inputs, outputs, initializers=(), value_info=(), opset: int = 18,
          name: str = "test") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers),
                              value_info=list(value_info))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def conv_relu() -> onnx.ModelProto:
    """x[1,3,8,8] → Conv(4 filters 3×3, bias) → y[1,4,6,6] → Relu → z."""
    return model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[3, 3]),
         helper.make_node("Relu", ["y"], ["z"], name="relu")],
        [value("x", [1, 3, 8, 8])], [value("z", [1, 4, 6, 6])],
        [weight("w", [4, 3, 3, 3]), weight("b", [4])])


def matmul_chain() -> onnx.ModelProto:
    """x[1,10] → MatMul W1[10,1000] → big → MatMul W2[1000,1] → s1; x → MatMul W3[10,1] → s2;
    Add(s1, s2) → y. Used for live ranges: sizes 40, 4000, 4, 4, 4 bytes."""
    return model(
        [helper.make_node("MatMul", ["x", "w1"], ["big"], name="mm_big"),
         helper.make_node("MatMul", ["big", "w2"], ["s1"], name="mm_s1"),
         helper.make_node("MatMul", ["x", "w3"], ["s2"], name="mm_s2"),
         helper.make_node("Add", ["s1", "s2"], ["y"], name="add")],
        [value("x", [1, 10])], [value("y", [1, 1])],
        [weight("w1", [10, 1000]), weight("w2", [1000, 1]), weight("w3", [10, 1])])
