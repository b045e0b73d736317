"""Lowering of an ir.Graph to the work items of the analytical accelerator model.

Every op becomes one or more *items*, stored column-wise in a :class:`LayerSet`:

- **GEMM items** run on the PE array. An item is ``groups`` independent GEMMs
  ``out[M, N] += a[M, K] * b[K, N]`` (SCALE-Sim's names: M = ofmap pixels, K = conv window,
  N = filters):

  * Conv (im2col): M = n·p·q, K = (c/groups)·r·s, N = k/groups, one GEMM per group
    (depthwise: ``groups == c`` GEMMs with N = 1; the model packs several of them on the
    array's diagonal when they fit, see ``accelerator.simulate``);
  * ConvTranspose (col2im): M = n·p·q input positions, K = c/groups, N = (k/groups)·r·s;
  * MatMul / Gemm: M = m, K = k, N = n; a batched MatMul whose right operand is 2-D (shared
    weights) is one GEMM with M = batch·m, otherwise ``batch`` GEMMs;
  * Attention: two items, Q·Kᵀ (M = seq_q, K = head_dim, N = seq_kv) and P·V (M = seq_q,
    K = seq_kv, N = v_head_dim), ``batch·heads`` GEMMs each, plus a softmax vector item.

- **Vector items** (every other op that computes) run on a vector unit of ``cols`` lanes, one
  FLOP per lane per cycle; their inputs are read from and their outputs written to DRAM once.
- **Free items**: ops that are views or bookkeeping (Reshape, Flatten, Squeeze, Unsqueeze,
  Identity, Shape, Constant, Dropout, ...) cost nothing. Other data-movement ops (Transpose,
  Concat, Slice, Gather, Pad, ...) are vector items with zero FLOPs: DRAM traffic only.

Operand sizes (``ifmap_words``, ``filter_words``, ``ofmap_words``) are unique element counts
(the ifmap of a conv is the input tensor, not its im2col matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.ir.costs import AttentionNest, ConvNest, MatmulNest
from mlsysgym.ir.graph import Graph, Op

KIND_GEMM, KIND_VECTOR, KIND_FREE = 0, 1, 2

#: Ops that move no data on an accelerator (views, metadata, inference no-ops).
FREE_OPS: frozenset[str] = frozenset({
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size", "Constant",
    "ConstantOfShape", "Dropout", "Range", "EyeLike",
})


@dataclass
class LayerSet:
    """Work items of a workload, one entry per item in every array (length L)."""

    op_index: np.ndarray       # index of the item's op in ``op_names`` (items of an op are adjacent)
    op_names: list[str]        # one per op (not per item)
    op_types: list[str]
    kind: np.ndarray           # KIND_GEMM | KIND_VECTOR | KIND_FREE
    m: np.ndarray              # GEMM rows (ofmap pixels) per group
    k: np.ndarray              # GEMM reduction (conv window) per group
    n: np.ndarray              # GEMM columns (filters) per group
    groups: np.ndarray         # independent GEMMs of this shape
    macs: np.ndarray
    ifmap_words: np.ndarray    # unique input elements (all groups)
    filter_words: np.ndarray   # unique weight / second-operand elements (all groups)
    ofmap_words: np.ndarray    # output elements (all groups)
    vec_flops: np.ndarray      # vector-unit FLOPs (vector items)
    vec_in_words: np.ndarray   # DRAM words read by a vector item
    vec_out_words: np.ndarray  # DRAM words written by a vector item
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @property
    def num_ops(self) -> int:
        return len(self.op_names)


def _numel(graph: Graph, names: tuple[str, ...]) -> int:
    total = 0
    for t in names:
        tensor = graph.tensors.get(t) if t else None
        if tensor is not None and tensor.shape is not None:
            total += tensor.numel
    return total


def _shape(graph: Graph, name: str) -> tuple[int, ...] | None:
    t = graph.tensors.get(name) if name else None
    return None if t is None else t.shape


def _gemm(m: int, k: int, n: int, groups: int, ifmap: int, filt: int, ofmap: int) -> dict:
    return {"kind": KIND_GEMM, "m": m, "k": k, "n": n, "groups": groups,
            "macs": m * k * n * groups, "ifmap_words": ifmap, "filter_words": filt,
            "ofmap_words": ofmap}


def _vector(flops: int, words_in: int, words_out: int) -> dict:
    return {"kind": KIND_VECTOR, "vec_flops": flops, "vec_in_words": words_in,
            "vec_out_words": words_out}


def op_items(graph: Graph, op: Op) -> list[dict]:
    """The work items of one op (see the module docstring)."""
    nest = op.loop_nest
    if isinstance(nest, ConvNest) and nest.macs > 0:
        g = max(nest.groups, 1)
        x = _shape(graph, op.inputs[0]) if op.inputs else None
        if nest.transposed:
            m, k, n = nest.n * nest.p * nest.q, nest.c // g, (nest.k // g) * nest.r * nest.s
            ifmap = nest.n * nest.c * nest.p * nest.q
        else:
            m, k, n = nest.n * nest.p * nest.q, (nest.c // g) * nest.r * nest.s, nest.k // g
            h = (nest.p - 1) * nest.stride_h + (nest.r - 1) * nest.dilation_h + 1
            w = (nest.q - 1) * nest.stride_w + (nest.s - 1) * nest.dilation_w + 1
            ifmap = nest.n * nest.c * h * w
        if x is not None:
            ifmap = math.prod(x)
        filt = nest.k * (nest.c // g) * nest.r * nest.s
        ofmap = _numel(graph, op.outputs[:1]) or nest.n * nest.k * nest.p * nest.q
        return [_gemm(m, k, n, g, ifmap, filt, ofmap)]
    if isinstance(nest, MatmulNest) and nest.macs > 0:
        b = _shape(graph, op.inputs[1]) if len(op.inputs) > 1 else None
        shared = op.op_type == "Gemm" or (b is not None and len(b) <= 2)
        m, groups = (nest.batch * nest.m, 1) if shared else (nest.m, nest.batch)
        a_words = nest.batch * nest.m * nest.k
        b_words = nest.k * nest.n * (1 if shared else nest.batch)
        return [_gemm(m, nest.k, nest.n, groups, a_words, b_words, nest.batch * nest.m * nest.n)]
    if isinstance(nest, AttentionNest) and nest.macs > 0:
        bh = nest.batch * nest.heads
        sq, skv, d, dv = nest.seq_q, nest.seq_kv, nest.head_dim, nest.v_head_dim
        scores = bh * sq * skv
        return [
            _gemm(sq, d, skv, bh, bh * sq * d, bh * skv * d, scores),
            _vector(4 * scores, 0, 0),  # softmax on chip between the two GEMMs
            _gemm(sq, skv, dv, bh, scores, bh * skv * dv, bh * sq * dv),
        ]
    if op.op_type in FREE_OPS:
        return [{"kind": KIND_FREE}]
    return [_vector(op.flops, _numel(graph, op.inputs), _numel(graph, op.outputs))]


_INT_FIELDS = ("m", "k", "n", "groups", "macs", "ifmap_words", "filter_words", "ofmap_words",
               "vec_flops", "vec_in_words", "vec_out_words")


def lower(graph: Graph) -> LayerSet:
    """The work items of every op of ``graph``, in op order."""
    items: list[dict] = []
    owner: list[int] = []
    for i, op in enumerate(graph.ops):
        for it in op_items(graph, op):
            items.append(it)
            owner.append(i)
    cols = {f: np.array([float(it.get(f, 0)) for it in items], dtype=np.float64)
            for f in _INT_FIELDS}
    cols["groups"] = np.maximum(cols["groups"], 1.0)
    return LayerSet(
        op_index=np.array(owner, dtype=np.int64),
        op_names=[op.name for op in graph.ops],
        op_types=[op.op_type for op in graph.ops],
        kind=np.array([it["kind"] for it in items], dtype=np.int8),
        meta={"graph": graph.name}, **cols)


def gemm_layers(shapes: list[tuple[int, int, int]], names: list[str] | None = None) -> LayerSet:
    """A LayerSet of plain GEMMs ``(M, K, N)`` (SCALE-Sim's GEMM topology), one op each."""
    items = [_gemm(m, k, n, 1, m * k, k * n, m * n) for m, k, n in shapes]
    cols = {f: np.array([float(it.get(f, 0)) for it in items], dtype=np.float64)
            for f in _INT_FIELDS}
    names = names or [f"gemm{i}" for i in range(len(shapes))]
    return LayerSet(op_index=np.arange(len(items)), op_names=list(names),
                    op_types=["Gemm"] * len(items),
                    kind=np.zeros(len(items), dtype=np.int8), **cols)


def conv_layers(convs: list[tuple[int, int, int, int, int, int, int]],
                names: list[str] | None = None) -> LayerSet:
    """A LayerSet of unpadded convs ``(ifmap_h, ifmap_w, r, s, c, k, stride)`` (SCALE-Sim's
    conv topology), output size ``ceil((H - R + stride) / stride)`` as SCALE-Sim computes it."""
    items = []
    for h, w, r, s, c, k, st in convs:
        p, q = math.ceil((h - r + st) / st), math.ceil((w - s + st) / st)
        items.append(_gemm(p * q, r * s * c, k, 1, h * w * c, r * s * c * k, p * q * k))
    cols = {f: np.array([float(it.get(f, 0)) for it in items], dtype=np.float64)
            for f in _INT_FIELDS}
    names = names or [f"conv{i}" for i in range(len(convs))]
    return LayerSet(op_index=np.arange(len(items)), op_names=list(names),
                    op_types=["Conv"] * len(items),
                    kind=np.zeros(len(items), dtype=np.int8), **cols)
