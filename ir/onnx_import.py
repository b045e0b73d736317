"""ONNX (file, bytes, ModelProto, torch module) → ir.Graph, with shape inference and clear errors."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from mlsysgym.ir.costs import op_cost
from mlsysgym.ir.errors import (
    DynamicDimensionError,
    GraphCycleError,
    InvalidDimensionError,
    OnnxDecodeError,
    WorkloadError,
    WorkloadNotFoundError,
)
from mlsysgym.ir.graph import Graph, Op, Role, Tensor, kahn_order
from onnx import helper

OnnxSource = str | os.PathLike | bytes | onnx.ModelProto


def load_model(source: OnnxSource) -> tuple[onnx.ModelProto, str]:
    """Read an ONNX model (weights' external data is never loaded) and a default name for it."""
    if isinstance(source, onnx.ModelProto):
        return source, source.graph.name or "model"
    if isinstance(source, bytes | bytearray):
        return _decode(bytes(source), "<bytes>"), "model"
    path = Path(source)
    if not path.is_file():
        raise WorkloadNotFoundError(f"no such ONNX file: {path}")
    return _decode(path.read_bytes(), str(path)), path.stem


def _decode(data: bytes, where: str) -> onnx.ModelProto:
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise OnnxDecodeError(
            f"{where} is not a valid ONNX model (truncated or corrupt?): {type(e).__name__}") from None
    if model.ir_version == 0 or not model.graph.node:
        raise OnnxDecodeError(f"{where} is not an ONNX model (no IR version or no nodes)")
    return model


MAX_DIM = 2**31 - 1
"""The largest size a symbolic input dimension may be given (sizes multiply into byte counts)."""


def _dim_size(name: str, size: Any) -> int:
    """``size`` as a dimension size: an integer in [1, MAX_DIM], else InvalidDimensionError."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 1 <= size <= MAX_DIM:
        raise InvalidDimensionError(f"dimension {name} = {size!r} is not an integer in [1, "
                                    f"{MAX_DIM}]; give a positive size (CLI: --dim {name}=1)")
    return int(size)


def _fix_dims(model: onnx.ModelProto, dims: Mapping[str, int]) -> None:
    """Give symbolic input dimensions their sizes; raise if one has none."""
    weights = {init.name for init in model.graph.initializer}
    missing: list[str] = []
    known: set[str] = set()
    for inp in model.graph.input:
        if inp.name in weights or not inp.type.HasField("tensor_type"):
            continue
        for i, d in enumerate(inp.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            key = d.dim_param if d.HasField("dim_param") else f"{inp.name}[{i}]"
            known.update((key, f"{inp.name}[{i}]"))
            size = dims.get(key, dims.get(f"{inp.name}[{i}]"))
            if size is None:
                missing.append(key)
            else:
                d.dim_value = _dim_size(key, size)
    unknown = sorted(set(dims) - known)
    if unknown:  # a typo would otherwise be ignored silently
        have = ", ".join(sorted(known)) or "none (every input shape is fixed)"
        raise InvalidDimensionError(f"no symbolic input dimension named {unknown[0]!r}; this "
                                    f"model's are: {have}")
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise DynamicDimensionError(
            f"input dimensions {names} are symbolic; give their sizes, e.g. dims={{{missing[0]!r}: 1}} "
            f"(CLI: --dim {missing[0]}=1)")


def _shape_of(type_proto: onnx.TypeProto) -> tuple[tuple[int, ...] | None, int]:
    if not type_proto.HasField("tensor_type"):
        return None, 0
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return None, tt.elem_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
    shape = tuple(dims) if all(d >= 0 for d in dims) else None
    return shape, tt.elem_type


def _dtype(elem_type: int) -> tuple[str, int]:
    if elem_type == 0:
        return "unknown", 0
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
        return dt.name, dt.itemsize
    except Exception:  # noqa: BLE001 - bfloat16, float8, ... map to ml_dtypes or nothing
        name = onnx.TensorProto.DataType.Name(elem_type).lower()
        bits = 16 if "16" in name else 8 if "8" in name else 4 if "4" in name else 32
        return name, max(bits // 8, 1)


def _attr_value(attr: onnx.AttributeProto) -> Any:
    if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return "<subgraph>"
    if attr.type in (onnx.AttributeProto.TENSOR, onnx.AttributeProto.SPARSE_TENSOR):
        return "<tensor>"
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def _topological_order(nodes: Sequence[onnx.NodeProto], defined: set[str]) -> list[int]:
    """Kahn's algorithm, stable in file order; raises on a cycle, an undefined tensor or a
    tensor written by two nodes (ONNX tensors have one producer)."""
    producer: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if not out:
                continue
            if out in producer:
                first = nodes[producer[out]]
                raise WorkloadError(
                    f"tensor {out!r} is written by node {first.name or first.op_type!r} and "
                    f"again by node {node.name or node.op_type!r}; each ONNX tensor has one "
                    f"producer (corrupt model?)")
            producer[out] = i
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for t in set(node.input):
            if not t:
                continue
            if t in producer:
                consumers[producer[t]].append(i)
            elif t not in defined:
                raise WorkloadError(
                    f"tensor {t!r} read by node {node.name or node.op_type!r} is never defined "
                    "(truncated or corrupt model?)")
    order = kahn_order(consumers)
    if len(order) != len(nodes):
        stuck = nodes[min(set(range(len(nodes))) - set(order))]
        raise GraphCycleError(
            f"graph has a cycle through node {stuck.name or stuck.op_type!r}; ONNX graphs must be acyclic")
    return order


def _weight_names(model: onnx.ModelProto) -> set[str]:
    """Initializers and Constant outputs: tensors that hold data, not activations."""
    names = {init.name for init in model.graph.initializer}
    names.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output if o)
    return names


def unique_op_names(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """The name of each node as ir.Graph calls its op: its own, else ``OpType_i``; a repeated
    name gets ``_i`` appended (i = the node's position in the file)."""
    names: list[str] = []
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        name = node.name or f"{node.op_type}_{i}"
        if name in seen:
            name = f"{name}_{i}"
        seen.add(name)
        names.append(name)
    return names


def check_structure(model: onnx.ModelProto) -> list[int]:
    """A topological order of ``model``'s nodes; WorkloadError (one line naming the node) for
    a tensor read but never defined or written by two nodes, GraphCycleError for a cycle.
    Needs no shapes, so it also vets models kept dynamic (``mlir import``)."""
    weights = _weight_names(model)
    inputs = {vi.name for vi in model.graph.input if vi.name not in weights}
    return _topological_order(model.graph.node, weights | inputs)


def prepare_model(model: onnx.ModelProto, dims: Mapping[str, int] | None = None
                  ) -> tuple[onnx.ModelProto, list[int]]:
    """A copy of ``model`` with local functions inlined, symbolic input dimensions sized from
    ``dims`` and shapes inferred, plus a topological order of its nodes.

    Raises DynamicDimensionError, GraphCycleError (checked before shape inference) or
    WorkloadError with a one-line message. Shape inference is strict: inconsistent shapes
    (e.g. a MatMul whose inner dimensions differ) are an error naming the node, not an op
    costed from one side.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if out.functions:
        out = onnx.inliner.inline_local_functions(out)
    _fix_dims(out, dims or {})
    order = check_structure(out)
    shuffled = order != list(range(len(order)))
    if shuffled:  # strict inference reads nodes in file order: give it a topological one
        _reorder(out.graph, order)
    try:
        out = onnx.shape_inference.infer_shapes(out, check_type=False, strict_mode=True,
                                                data_prop=True)
    except Exception as e:  # noqa: BLE001 - onnx raises its own untyped errors; one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WorkloadError(f"ONNX shape inference failed: {first[:300]}") from None
    if shuffled:  # back to file order (op names of unnamed nodes are by file position)
        position = {i: k for k, i in enumerate(order)}
        _reorder(out.graph, [position[i] for i in range(len(order))])
    return out, order


def _reorder(graph: onnx.GraphProto, order: Sequence[int]) -> None:
    """Put ``graph``'s nodes in ``order`` (a permutation of their indices), in place."""
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


def graph_from_onnx(source: OnnxSource, name: str | None = None,
                    dims: Mapping[str, int] | None = None) -> Graph:
    """Build an ir.Graph from an ONNX path, bytes or ModelProto (see Graph.from_onnx)."""
    model, default_name = load_model(source)
    model, order = prepare_model(model, dims)
    g = model.graph
    weight_names = _weight_names(model)
    input_names = tuple(vi.name for vi in g.input if vi.name not in weight_names)

    types: dict[str, tuple[tuple[int, ...] | None, int]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        shape, elem = _shape_of(vi.type)
        if vi.name not in types or types[vi.name][0] is None:
            types[vi.name] = (shape, elem)
    for init in g.initializer:  # weights, and Constant outputs (hold data), are WEIGHT tensors
        types[init.name] = (tuple(int(d) for d in init.dims), init.data_type)
    output_names = tuple(vi.name for vi in g.output)

    def role(t: str) -> Role:
        if t in weight_names:
            return Role.WEIGHT
        if t in output_names:
            return Role.OUTPUT
        if t in input_names:
            return Role.INPUT
        return Role.ACTIVATION

    tensors: dict[str, Tensor] = {}

    def tensor(t: str) -> Tensor:
        if t not in tensors:
            shape, elem = types.get(t, (None, 0))
            dtype, size = _dtype(elem)
            tensors[t] = Tensor(t, shape, dtype, size, role(t))
        return tensors[t]

    for t in input_names:
        tensor(t)
    ops: list[Op] = []
    op_names = unique_op_names(g.node)
    for i in order:
        node = g.node[i]
        op_name = op_names[i]
        ins = [tensor(t) if t else None for t in node.input]
        outs = [tensor(t) for t in node.output if t]
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        cost = op_cost(node.op_type, attrs, [t.shape if t else None for t in ins],
                       [t.shape for t in outs])
        unique_in = {t.name: t for t in ins if t is not None}
        ops.append(Op(
            name=op_name, op_type=node.op_type, inputs=tuple(node.input),
            outputs=tuple(o for o in node.output if o), attributes=attrs,
            macs=cost.macs, flops=cost.flops,
            bytes_read=sum(t.nbytes for t in unique_in.values()),
            bytes_written=sum(t.nbytes for t in outs),
            loop_nest=cost.loop_nest, estimated=cost.estimated, domain=node.domain,
        ))
    for t in output_names:
        tensor(t)
    meta = {"producer": model.producer_name, "opset": {o.domain or "ai.onnx": o.version
                                                       for o in model.opset_import}}
    meta.update({p.key: p.value for p in model.metadata_props})
    return Graph(name or default_name, tuple(ops), tensors, input_names, output_names, meta)


def graph_from_torch(module: Any, example_inputs: Sequence[Any], name: str | None = None) -> Graph:
    """Export ``module`` (switched to eval mode) with the dynamo ONNX exporter; build an ir.Graph."""
    import torch

    module.eval()
    try:
        program = torch.onnx.export(module, tuple(example_inputs), dynamo=True, verbose=False)
    except Exception as e:  # noqa: BLE001 - the exporter raises many kinds; one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WorkloadError(f"torch.onnx.export failed for {type(module).__name__}: {first[:300]}") from None
    return graph_from_onnx(program.model_proto, name=name or type(module).__name__)
