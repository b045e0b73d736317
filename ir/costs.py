"""Per-op cost rules: MACs, FLOPs and a normalized loop nest from an op's shapes and attributes.

Conventions (the ones fvcore, ptflops and most papers use):
- one MAC = one multiply + one add = 2 FLOPs; published "GFLOPs" of CNNs are usually MACs;
- element-wise ops cost a fixed number of FLOPs per output element (table below), a
  transcendental function (exp, tanh, erf, ...) counting as one FLOP;
- data movement (Reshape, Transpose, Gather, ...) costs no FLOPs, only bytes;
- an op type without a rule is flagged ``estimated`` and costed one FLOP per output element.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ConvNest:
    """Conv loop nest: out[n, k, p, q] += in[n, c, p*stride+r*dil, q*stride+s*dil] * w[k, c, r, s].

    ``c`` is the number of input channels of the whole layer; each group reduces over
    ``c // groups`` of them (depthwise: ``groups == c == k``). 1-D convs have ``q == s == 1``.
    For a transposed conv (``transposed``), ``p, q`` iterate the *input* positions.
    """

    n: int
    k: int
    c: int
    p: int
    q: int
    r: int
    s: int
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1
    transposed: bool = False

    @property
    def macs(self) -> int:
        return self.n * self.k * self.p * self.q * (self.c // self.groups) * self.r * self.s

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.c == self.k


@dataclass(frozen=True)
class MatmulNest:
    """Batched matmul loop nest: out[b, m, n] += a[b, m, k] * w[b, k, n]."""

    batch: int
    m: int
    n: int
    k: int

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.n * self.k


@dataclass(frozen=True)
class AttentionNest:
    """Fused attention: softmax(Q Kᵀ) V over ``batch × heads``, query length ``seq_q``."""

    batch: int
    heads: int
    seq_q: int
    seq_kv: int
    head_dim: int
    v_head_dim: int

    @property
    def macs(self) -> int:
        bh = self.batch * self.heads
        return bh * self.seq_q * self.seq_kv * (self.head_dim + self.v_head_dim)


LoopNest = ConvNest | MatmulNest | AttentionNest


@dataclass(frozen=True)
class OpCost:
    """What a rule returns for one op."""

    macs: int
    flops: int
    loop_nest: LoopNest | None = None
    estimated: bool = False


# FLOPs per output element of element-wise ops.
ELEMENTWISE_FLOPS: dict[str, int] = {
    **{op: 1 for op in (
        "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min", "Mean", "Sum", "Relu", "LeakyRelu",
        "PRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "Sqrt", "Pow", "Reciprocal", "Exp",
        "Log", "Tanh", "Erf", "Sin", "Cos", "Clip", "Sign", "Floor", "Ceil", "Round", "Mod",
        "Where", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And", "Or",
        "Xor", "IsNaN", "IsInf", "BitShift",
    )},
    "Sigmoid": 3, "HardSigmoid": 2, "HardSwish": 3, "Softplus": 2, "Softsign": 2, "Mish": 5,
    "Gelu": 8, "FastGelu": 8, "BiasGelu": 9, "QuickGelu": 4, "Swish": 4,
    "BatchNormalization": 2, "Softmax": 4, "LogSoftmax": 5,
    "LayerNormalization": 8, "SimplifiedLayerNormalization": 5, "RMSNormalization": 5,
    "SkipLayerNormalization": 9, "InstanceNormalization": 8, "GroupNormalization": 8,
    "Dropout": 0, "DequantizeLinear": 2, "QuantizeLinear": 3,
}

# FLOPs per *input* element (reductions).
REDUCTION_FLOPS: dict[str, int] = {
    "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1,
    "ReduceL1": 2, "ReduceL2": 2, "ReduceSumSquare": 2, "ReduceLogSum": 1,
    "ReduceLogSumExp": 2, "ArgMax": 1, "ArgMin": 1, "GlobalAveragePool": 1,
    "GlobalMaxPool": 1, "GlobalLpPool": 2, "CumSum": 1, "TopK": 1,
}

# Pure data movement or shape bookkeeping: bytes, no FLOPs.
DATA_MOVEMENT: frozenset[str] = frozenset({
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
    "Gather", "GatherElements", "GatherND", "Shape", "Size", "Constant", "ConstantOfShape",
    "Expand", "Identity", "Pad", "Tile", "Range", "Cast", "CastLike", "ScatterND",
    "ScatterElements", "Trilu", "NonZero", "OneHot", "DepthToSpace", "SpaceToDepth",
    "EyeLike", "SequenceConstruct", "SplitToSequence", "ConcatFromSequence", "Compress",
})


def numel(shape: Shape | None) -> int:
    """Number of elements of a shape (0 when unknown)."""
    return math.prod(shape) if shape is not None else 0


def _pair(values: Sequence[int] | None, spatial: int, default: int = 1) -> tuple[int, int]:
    vals = list(values) if values else [default] * spatial
    vals = (vals + [default, default])[:2] if spatial >= 2 else [vals[0], default]
    return int(vals[0]), int(vals[1])


def _conv(attrs: Mapping[str, Any], ins: list[Shape | None], outs: list[Shape | None],
          transposed: bool) -> OpCost | None:
    x, w, y = ins[0], ins[1] if len(ins) > 1 else None, outs[0]
    if x is None or w is None or y is None or len(x) < 3:
        return None
    spatial = len(x) - 2
    groups = int(attrs.get("group", 1))
    kernel = tuple(w[2:])
    r = kernel[0]
    s = math.prod(kernel[1:]) if spatial >= 2 else 1
    if transposed:  # w: [C, K/g, kernel...]; iterate input positions
        k, c = w[1] * groups, w[0]
        pos = x[2:]
    else:  # w: [K, C/g, kernel...]
        k, c = w[0], w[1] * groups
        pos = y[2:]
    p = pos[0]
    q = math.prod(pos[1:]) if spatial >= 2 else 1
    sh, sw = _pair(attrs.get("strides"), spatial)
    dh, dw = _pair(attrs.get("dilations"), spatial)
    nest = ConvNest(n=x[0], k=k, c=c, p=p, q=q, r=r, s=s, stride_h=sh, stride_w=sw,
                    dilation_h=dh, dilation_w=dw, groups=groups, transposed=transposed)
    bias = numel(y) if len(ins) > 2 and ins[2] is not None else 0
    return OpCost(nest.macs, 2 * nest.macs + bias, nest)


def _matmul(ins: list[Shape | None], outs: list[Shape | None]) -> OpCost | None:
    a, b = ins[0], ins[1] if len(ins) > 1 else None
    if a is None or b is None or outs[0] is None:
        return None
    k = a[-1]
    n = b[-1] if len(b) >= 2 else 1
    if len(b) <= 2:  # a linear layer: one weight matrix shared by every row of ``a``
        nest = MatmulNest(batch=1, m=math.prod(a[:-1]), n=n, k=k)
    else:
        m = a[-2] if len(a) >= 2 else 1
        nest = MatmulNest(batch=max(math.prod(outs[0][:-2]), 1), m=m, n=n, k=k)
    return OpCost(nest.macs, 2 * nest.macs, nest)


def _gemm(attrs: Mapping[str, Any], ins: list[Shape | None],
          outs: list[Shape | None]) -> OpCost | None:
    a, b = ins[0], ins[1] if len(ins) > 1 else None
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m, k = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
    n = b[0] if attrs.get("transB", 0) else b[1]
    nest = MatmulNest(batch=1, m=m, n=n, k=k)
    bias = m * n if len(ins) > 2 and ins[2] is not None else 0
    return OpCost(nest.macs, 2 * nest.macs + bias, nest)


def _attention(attrs: Mapping[str, Any], ins: list[Shape | None]) -> OpCost | None:
    q, k, v = (ins + [None, None, None])[:3]
    if q is None or k is None or v is None:
        return None
    if len(q) == 4:  # [B, H, S, D]
        nest = AttentionNest(q[0], q[1], q[2], k[2], q[3], v[3])
    else:  # [B, S, H*D] with num_heads attributes
        heads = int(attrs.get("q_num_heads", attrs.get("num_heads", 1)))
        kv_heads = int(attrs.get("kv_num_heads", heads))
        nest = AttentionNest(q[0], heads, q[1], k[1], q[2] // heads, v[2] // kv_heads)
    softmax = nest.batch * nest.heads * nest.seq_q * nest.seq_kv * ELEMENTWISE_FLOPS["Softmax"]
    return OpCost(nest.macs, 2 * nest.macs + softmax, nest)


def _einsum(attrs: Mapping[str, Any], ins: list[Shape | None]) -> OpCost | None:
    eq = str(attrs.get("equation", "")).replace(" ", "")
    lhs = eq.split("->")[0].split(",")
    if len(lhs) != len(ins) or any(s is None for s in ins) or "..." in eq:
        return None
    sizes: dict[str, int] = {}
    for letters, shape in zip(lhs, ins):
        if len(letters) != len(shape):
            return None
        sizes.update(zip(letters, shape))
    macs = math.prod(sizes.values()) if len(ins) >= 2 else 0
    return OpCost(macs, 2 * macs)


def _pool(attrs: Mapping[str, Any], ins: list[Shape | None],
          outs: list[Shape | None]) -> OpCost | None:
    """One operation per window element per output; a window larger than the padded input
    (exporters write a global pool as a huge kernel with ceil_mode) covers only the input."""
    kernel = attrs.get("kernel_shape")
    if kernel is None or outs[0] is None:
        return None
    window = list(kernel)
    if ins and ins[0] is not None and len(ins[0]) == len(kernel) + 2:
        pads = list(attrs.get("pads") or [0] * (2 * len(kernel)))
        window = [min(k, n + pads[i] + pads[i + len(kernel)])
                  for i, (k, n) in enumerate(zip(kernel, ins[0][2:]))]
    return OpCost(0, numel(outs[0]) * math.prod(window))


def _lrn(attrs: Mapping[str, Any], outs: list[Shape | None]) -> OpCost:
    size = int(attrs.get("size", 5))
    return OpCost(0, numel(outs[0]) * (2 * size + 3))


def op_cost(op_type: str, attrs: Mapping[str, Any], ins: list[Shape | None],
            outs: list[Shape | None]) -> OpCost:
    """MACs, FLOPs and loop nest of one op from its input/output shapes (None = unknown).

    Never raises: an op type without a rule, or a rule missing the shapes it needs,
    returns an estimate of one FLOP per output element with ``estimated=True``.
    """
    rule: OpCost | None = None
    out_elems = sum(numel(s) for s in outs)
    if op_type in ("Conv", "ConvInteger", "QLinearConv"):
        rule = _conv(attrs, ins if op_type != "QLinearConv" else [ins[0], ins[3]], outs, False)
    elif op_type == "ConvTranspose":
        rule = _conv(attrs, ins, outs, True)
    elif op_type in ("MatMul", "MatMulInteger", "FusedMatMul"):
        rule = _matmul(ins, outs)
    elif op_type == "QLinearMatMul":
        rule = _matmul([ins[0], ins[3]], outs)
    elif op_type == "Gemm":
        rule = _gemm(attrs, ins, outs)
    elif op_type == "Attention":
        rule = _attention(attrs, ins)
    elif op_type == "Einsum":
        rule = _einsum(attrs, ins)
    elif op_type in ("MaxPool", "AveragePool", "LpPool"):
        rule = _pool(attrs, ins, outs)
    elif op_type == "LRN":
        rule = _lrn(attrs, outs)
    elif op_type in ELEMENTWISE_FLOPS:
        rule = OpCost(0, ELEMENTWISE_FLOPS[op_type] * out_elems)
    elif op_type in REDUCTION_FLOPS:
        rule = OpCost(0, REDUCTION_FLOPS[op_type] * numel(ins[0] if ins else None))
    elif op_type in DATA_MOVEMENT:
        rule = OpCost(0, 0)
    elif op_type == "Resize":  # interpolation: ~4 FLOPs per output element (bilinear)
        rule = OpCost(0, 4 * out_elems)
    if rule is None:
        return OpCost(0, out_elems, None, estimated=True)
    return rule

