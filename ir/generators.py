"""Generated workloads: ir.Graph objects built in Python with exact shapes and per-op costs.

Every generator is deterministic (a random one takes a ``seed``) and costs each op with the
same rules as ONNX import (:func:`mlsysgym.ir.costs.op_cost`; ``bytes_read`` = the bytes of
its distinct inputs, weights included; ``bytes_written`` = its outputs'), so a generated graph
and an imported one are measured alike. Tensors are float32. Families:

- :func:`transformer_encoder` — BERT-style post-LN encoder layers (Q/K/V/O projections with
  biases, per-head attention as two batched MatMuls with a scaled Softmax, GELU MLP,
  LayerNormalization after each residual), from hidden states (no embedding).
- :func:`gpt_decoder` — GPT-2-style pre-LN decoder layers (causal mask added to the scores).
- :func:`llama_decoder` — Llama-style pre-RMSNorm decoder layers: grouped-query attention
  (K/V heads repeated by Expand), rotary embedding on Q and K (Mul/Mul/Add with a
  Slice/Neg/Concat rotation), SwiGLU MLP, no biases.
- :func:`resnet_stages` — a ResNet stem (7×7/2 conv, 3×3/2 max pool) and residual stages of
  basic blocks (batch norm folded into conv biases), global average pool and a classifier.
- :func:`mbconv_stages` — an EfficientNet-style CNN: a 3×3/2 stem and stages of MBConv blocks
  (1×1 expansion, depthwise conv, squeeze-excitation, 1×1 projection, residual where shapes
  allow; SiLU as Sigmoid·x), a 1×1 head conv, global average pool and a classifier.
- :func:`random_layered_dag` — a seeded random DAG in layers of MatMul / Add / unary ops on
  ``[rows, width]`` activations (widths from a small set), each op reading from earlier layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from mlsysgym.ir.costs import op_cost
from mlsysgym.ir.errors import WorkloadError
from mlsysgym.ir.graph import Graph, Op, Role, Tensor

__all__ = ["GraphBuilder", "gpt_decoder", "llama_decoder", "mbconv_stages", "random_layered_dag",
           "resnet_stages", "transformer_encoder"]

Shape = tuple[int, ...]


class GraphBuilder:
    """Builds an ir.Graph op by op: :meth:`input`, :meth:`weight`, :meth:`op`, then :meth:`build`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []

    def _tensor(self, name: str, shape: Shape, role: Role) -> str:
        if name in self.tensors:
            raise WorkloadError(f"generated graph {self.name!r}: tensor {name!r} defined twice")
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), "float32", 4, role)
        return name

    def input(self, name: str, shape: Shape) -> str:
        """A graph input of ``shape``; returns its name."""
        self.inputs.append(name)
        return self._tensor(name, shape, Role.INPUT)

    def weight(self, name: str, shape: Shape) -> str:
        """A parameter of ``shape``; returns its name."""
        return self._tensor(name, shape, Role.WEIGHT)

    def shape(self, tensor: str) -> Shape:
        """The shape of ``tensor``."""
        shape = self.tensors[tensor].shape
        assert shape is not None
        return shape

    def op(self, op_type: str, inputs: Sequence[str], out_shape: Shape,
           attrs: Mapping[str, Any] | None = None, name: str | None = None) -> str:
        """Append an op reading ``inputs`` and writing one tensor of ``out_shape``; returns
        the output's name (``<op name>_out``)."""
        attrs = dict(attrs or {})
        name = name or f"{op_type}_{len(self.ops)}"
        out = self._tensor(f"{name}_out", out_shape, Role.ACTIVATION)
        ins = [self.shape(t) for t in inputs]
        cost = op_cost(op_type, attrs, ins, [self.shape(out)])
        unique = dict.fromkeys(inputs)
        self.ops.append(Op(
            name=name, op_type=op_type, inputs=tuple(inputs), outputs=(out,), attributes=attrs,
            macs=cost.macs, flops=cost.flops,
            bytes_read=sum(self.tensors[t].nbytes for t in unique),
            bytes_written=self.tensors[out].nbytes, loop_nest=cost.loop_nest,
            estimated=cost.estimated))
        return out

    def build(self, outputs: Sequence[str], metadata: Mapping[str, Any] | None = None) -> Graph:
        """The Graph, with ``outputs`` as its graph outputs."""
        for t in outputs:
            self.tensors[t] = replace(self.tensors[t], role=Role.OUTPUT)
        return Graph(self.name, tuple(self.ops), dict(self.tensors), tuple(self.inputs),
                     tuple(outputs), dict(metadata or {}, generated=True))


def _positive(**values: int) -> None:
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise WorkloadError(f"generator argument {key} must be a positive integer, got {v!r}")


# ---- transformers -----------------------------------------------------------------------------
def _linear(g: GraphBuilder, x: str, n_out: int, name: str, bias: bool) -> str:
    shape = g.shape(x)
    y = g.op("MatMul", [x, g.weight(f"{name}_w", (shape[-1], n_out))], (*shape[:-1], n_out),
             name=name)
    if bias:
        y = g.op("Add", [y, g.weight(f"{name}_b", (n_out,))], g.shape(y), name=f"{name}_bias")
    return y


def _heads(g: GraphBuilder, x: str, heads: int, name: str, keys: bool = False) -> str:
    """[B, S, H·Dh] → [B, H, S, Dh] (or [B, H, Dh, S] for ``keys``) by Reshape + Transpose."""
    b, s, hd = g.shape(x)
    dh = hd // heads
    r = g.op("Reshape", [x], (b, s, heads, dh), name=f"{name}_reshape")
    perm, shape = ((0, 2, 3, 1), (b, heads, dh, s)) if keys else ((0, 2, 1, 3), (b, heads, s, dh))
    return g.op("Transpose", [r], shape, {"perm": list(perm)}, name=f"{name}_transpose")


def _merge_heads(g: GraphBuilder, x: str, name: str) -> str:
    b, h, s, dh = g.shape(x)
    t = g.op("Transpose", [x], (b, s, h, dh), {"perm": [0, 2, 1, 3]}, name=f"{name}_transpose")
    return g.op("Reshape", [t], (b, s, h * dh), name=f"{name}_reshape")


def _attention_core(g: GraphBuilder, q: str, k: str, v: str, name: str,
                    causal: bool) -> str:
    """softmax(Q Kᵀ · scale [+ mask]) V on [B, H, S, Dh] heads; returns [B, H, S, Dh]."""
    b, h, s, _ = g.shape(q)
    scores = g.op("MatMul", [q, k], (b, h, s, s), name=f"{name}_qk")
    scores = g.op("Mul", [scores, g.weight(f"{name}_scale", ())], (b, h, s, s), name=f"{name}_scale")
    if causal:
        scores = g.op("Add", [scores, g.weight(f"{name}_mask", (s, s))], (b, h, s, s),
                      name=f"{name}_mask")
    probs = g.op("Softmax", [scores], (b, h, s, s), {"axis": -1}, name=f"{name}_softmax")
    return g.op("MatMul", [probs, v], g.shape(v), name=f"{name}_pv")


def _layer_norm(g: GraphBuilder, x: str, name: str, rms: bool = False) -> str:
    d = g.shape(x)[-1]
    if rms:
        return g.op("RMSNormalization", [x, g.weight(f"{name}_g", (d,))], g.shape(x), name=name)
    return g.op("LayerNormalization", [x, g.weight(f"{name}_g", (d,)), g.weight(f"{name}_b", (d,))],
                g.shape(x), name=name)


def _mha(g: GraphBuilder, x: str, heads: int, name: str, causal: bool) -> str:
    d = g.shape(x)[-1]
    q = _heads(g, _linear(g, x, d, f"{name}_q", True), heads, f"{name}_q")
    k = _heads(g, _linear(g, x, d, f"{name}_k", True), heads, f"{name}_k", keys=True)
    v = _heads(g, _linear(g, x, d, f"{name}_v", True), heads, f"{name}_v")
    o = _merge_heads(g, _attention_core(g, q, k, v, f"{name}_attn", causal), f"{name}_o")
    return _linear(g, o, d, f"{name}_out", True)


def _gelu_mlp(g: GraphBuilder, x: str, d_ff: int, name: str) -> str:
    h = _linear(g, x, d_ff, f"{name}_fc1", True)
    h = g.op("Gelu", [h], g.shape(h), name=f"{name}_gelu")
    return _linear(g, h, g.shape(x)[-1], f"{name}_fc2", True)


def _check_transformer(layers: int, d_model: int, heads: int, d_ff: int, seq: int, batch: int) -> None:
    _positive(layers=layers, d_model=d_model, heads=heads, d_ff=d_ff, seq=seq, batch=batch)
    if d_model % heads:
        raise WorkloadError(f"d_model {d_model} is not a multiple of heads {heads}")


def transformer_encoder(layers: int = 12, d_model: int = 768, heads: int = 12, d_ff: int = 3072,
                        seq: int = 128, batch: int = 1, name: str | None = None) -> Graph:
    """BERT-style post-LN encoder: per layer ``x = LN(x + MHA(x)); x = LN(x + MLP(x))``.

    29 ops per layer. FLOPs per layer (B = batch, S = seq, d = d_model, f = d_ff, H = heads):
    projections 2BS(4d² + 2df), attention 4BS²d, biases BS(5d + f), residuals 2BSd, score
    scale BHS², Softmax 4BHS², GELU 8BSf, LayerNorms 16BSd.
    """
    _check_transformer(layers, d_model, heads, d_ff, seq, batch)
    g = GraphBuilder(name or f"bert_l{layers}_d{d_model}_s{seq}_b{batch}")
    x = g.input("hidden", (batch, seq, d_model))
    for i in range(layers):
        p = f"l{i}"
        x = _layer_norm(g, g.op("Add", [_mha(g, x, heads, p, False), x], g.shape(x),
                                name=f"{p}_res1"), f"{p}_ln1")
        x = _layer_norm(g, g.op("Add", [_gelu_mlp(g, x, d_ff, f"{p}_mlp"), x], g.shape(x),
                                name=f"{p}_res2"), f"{p}_ln2")
    return g.build([x], {"family": "bert", "layers": layers, "d_model": d_model, "heads": heads,
                         "d_ff": d_ff, "seq": seq, "batch": batch})


def gpt_decoder(layers: int = 12, d_model: int = 768, heads: int = 12, d_ff: int = 3072,
                seq: int = 128, batch: int = 1, name: str | None = None) -> Graph:
    """GPT-2-style pre-LN decoder (causal mask added to the scores), final LayerNorm:
    per layer ``x = x + MHA(LN(x)); x = x + MLP(LN(x))``."""
    _check_transformer(layers, d_model, heads, d_ff, seq, batch)
    g = GraphBuilder(name or f"gpt_l{layers}_d{d_model}_s{seq}_b{batch}")
    x = g.input("hidden", (batch, seq, d_model))
    for i in range(layers):
        p = f"l{i}"
        x = g.op("Add", [x, _mha(g, _layer_norm(g, x, f"{p}_ln1"), heads, p, True)], g.shape(x),
                 name=f"{p}_res1")
        x = g.op("Add", [x, _gelu_mlp(g, _layer_norm(g, x, f"{p}_ln2"), d_ff, f"{p}_mlp")],
                 g.shape(x), name=f"{p}_res2")
    x = _layer_norm(g, x, "ln_f")
    return g.build([x], {"family": "gpt", "layers": layers, "d_model": d_model, "heads": heads,
                         "d_ff": d_ff, "seq": seq, "batch": batch})


def _rope(g: GraphBuilder, x: str, cos: str, sin: str, name: str) -> str:
    """x·cos + rotate_half(x)·sin on [B, H, S, Dh]."""
    shape = g.shape(x)
    half = (*shape[:-1], shape[-1] // 2)
    lo = g.op("Slice", [x], half, name=f"{name}_lo")
    hi = g.op("Slice", [x], half, name=f"{name}_hi")
    rot = g.op("Concat", [g.op("Neg", [hi], half, name=f"{name}_neg"), lo], shape, {"axis": -1},
               name=f"{name}_rot")
    return g.op("Add", [g.op("Mul", [x, cos], shape, name=f"{name}_cos"),
                        g.op("Mul", [rot, sin], shape, name=f"{name}_sin")], shape, name=name)


def _gqa(g: GraphBuilder, x: str, heads: int, kv_heads: int, cos: str, sin: str, name: str) -> str:
    b, s, d = g.shape(x)
    dh = d // heads
    q = _rope(g, _heads(g, _linear(g, x, d, f"{name}_q", False), heads, f"{name}_q"), cos, sin,
              f"{name}_qrope")
    k = _rope(g, _heads(g, _linear(g, x, kv_heads * dh, f"{name}_k", False), kv_heads, f"{name}_k"),
              cos, sin, f"{name}_krope")
    v = _heads(g, _linear(g, x, kv_heads * dh, f"{name}_v", False), kv_heads, f"{name}_v")
    k = g.op("Expand", [k], (b, heads, s, dh), name=f"{name}_krep")
    k = g.op("Transpose", [k], (b, heads, dh, s), {"perm": [0, 1, 3, 2]}, name=f"{name}_kT")
    v = g.op("Expand", [v], (b, heads, s, dh), name=f"{name}_vrep")
    o = _merge_heads(g, _attention_core(g, q, k, v, f"{name}_attn", True), f"{name}_o")
    return _linear(g, o, d, f"{name}_out", False)


def _silu(g: GraphBuilder, x: str, name: str) -> str:
    """x · sigmoid(x), as two ops (``<name>_sigmoid``, ``<name>_silu``), as ONNX exports it."""
    sig = g.op("Sigmoid", [x], g.shape(x), name=f"{name}_sigmoid")
    return g.op("Mul", [x, sig], g.shape(x), name=f"{name}_silu")


def _swiglu(g: GraphBuilder, x: str, d_ff: int, name: str) -> str:
    gate = _linear(g, x, d_ff, f"{name}_gate", False)
    act = _silu(g, gate, name)
    h = g.op("Mul", [act, _linear(g, x, d_ff, f"{name}_up", False)], g.shape(gate), name=f"{name}_glu")
    return _linear(g, h, g.shape(x)[-1], f"{name}_down", False)


def llama_decoder(layers: int = 22, d_model: int = 2048, heads: int = 32, kv_heads: int = 4,
                  d_ff: int = 5632, seq: int = 128, batch: int = 1, name: str | None = None) -> Graph:
    """Llama-style decoder (defaults: TinyLlama-1.1B's geometry): per layer
    ``x = x + GQA(RMSNorm(x)); x = x + SwiGLU(RMSNorm(x))``, rotary embedding, final RMSNorm."""
    _check_transformer(layers, d_model, heads, d_ff, seq, batch)
    _positive(kv_heads=kv_heads)
    if heads % kv_heads or (d_model // heads) % 2:
        raise WorkloadError(f"heads {heads} must be a multiple of kv_heads {kv_heads} and the "
                            "head size even")
    g = GraphBuilder(name or f"llama_l{layers}_d{d_model}_s{seq}_b{batch}")
    x = g.input("hidden", (batch, seq, d_model))
    cos = g.input("rope_cos", (1, 1, seq, d_model // heads))
    sin = g.input("rope_sin", (1, 1, seq, d_model // heads))
    for i in range(layers):
        p = f"l{i}"
        x = g.op("Add", [x, _gqa(g, _layer_norm(g, x, f"{p}_norm1", rms=True), heads, kv_heads,
                                 cos, sin, p)], g.shape(x), name=f"{p}_res1")
        x = g.op("Add", [x, _swiglu(g, _layer_norm(g, x, f"{p}_norm2", rms=True), d_ff,
                                    f"{p}_mlp")], g.shape(x), name=f"{p}_res2")
    x = _layer_norm(g, x, "norm_f", rms=True)
    return g.build([x], {"family": "llama", "layers": layers, "d_model": d_model, "heads": heads,
                         "kv_heads": kv_heads, "d_ff": d_ff, "seq": seq, "batch": batch})


# ---- CNN ----------------------------------------------------------------------------------------
def _conv(g: GraphBuilder, x: str, k: int, kernel: int, stride: int, name: str,
          group: int = 1) -> str:
    """A ``kernel``×``kernel`` conv to ``k`` channels, "same" padding, with a bias (``group``
    = the channels: depthwise)."""
    n, c, h, w = g.shape(x)
    pad = kernel // 2
    ho, wo = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    attrs = {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": [pad] * 4,
             "group": group}
    w_shape = (k, c // group, kernel, kernel)
    return g.op("Conv", [x, g.weight(f"{name}_w", w_shape), g.weight(f"{name}_b", (k,))],
                (n, k, ho, wo), attrs, name=name)


def _check_stages(image: int, batch: int, classes: int, **stages: Sequence[int]) -> None:
    """Positive sizes and per-stage values; every per-stage sequence as long as the first."""
    first = next(iter(stages.values()))
    _positive(image=image, batch=batch, classes=classes, stages=len(first))
    _positive(**{f"{key}[{i}]": v for key, values in stages.items() for i, v in enumerate(values)})
    lengths = [len(v) for v in stages.values()]
    if len(set(lengths)) > 1:
        raise WorkloadError(f"{', '.join(stages)} must have the same length "
                            f"({' ≠ '.join(map(str, lengths))})")


def _classifier(g: GraphBuilder, x: str, classes: int) -> str:
    """Global average pool, flatten and a Gemm classifier."""
    n, c = g.shape(x)[:2]
    x = g.op("GlobalAveragePool", [x], (n, c, 1, 1), name="pool")
    x = g.op("Flatten", [x], (n, c), name="flatten")
    return g.op("Gemm", [x, g.weight("fc_w", (c, classes)), g.weight("fc_b", (classes,))],
                (n, classes), name="fc")


def _basic_block(g: GraphBuilder, x: str, k: int, stride: int, name: str) -> str:
    h = _conv(g, x, k, 3, stride, f"{name}_c1")
    h = g.op("Relu", [h], g.shape(h), name=f"{name}_r1")
    h = _conv(g, h, k, 3, 1, f"{name}_c2")
    skip = x if stride == 1 and g.shape(x)[1] == k else _conv(g, x, k, 1, stride, f"{name}_proj")
    y = g.op("Add", [h, skip], g.shape(h), name=f"{name}_add")
    return g.op("Relu", [y], g.shape(y), name=f"{name}_r2")


def resnet_stages(widths: Sequence[int] = (64, 128, 256, 512), blocks: Sequence[int] = (2, 2, 2, 2),
                  image: int = 224, batch: int = 1, classes: int = 1000,
                  name: str | None = None) -> Graph:
    """A ResNet of basic blocks: stem, ``len(widths)`` stages (stage i: ``blocks[i]`` blocks of
    ``widths[i]`` channels, the first of each stage after the first with stride 2), global
    average pool, flatten and a Gemm classifier (defaults: ResNet-18's geometry)."""
    _check_stages(image, batch, classes, widths=widths, blocks=blocks)
    g = GraphBuilder(name or f"resnet_w{widths[0]}x{len(widths)}_i{image}_b{batch}")
    x = g.input("image", (batch, 3, image, image))
    x = _conv(g, x, widths[0], 7, 2, "stem")
    x = g.op("Relu", [x], g.shape(x), name="stem_relu")
    n, c, hh, ww = g.shape(x)
    x = g.op("MaxPool", [x], (n, c, (hh - 1) // 2 + 1, (ww - 1) // 2 + 1),
             {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, name="stem_pool")
    for s, (width, count) in enumerate(zip(widths, blocks)):
        for b in range(count):
            x = _basic_block(g, x, width, 2 if s > 0 and b == 0 else 1, f"s{s}b{b}")
    x = _classifier(g, x, classes)
    return g.build([x], {"family": "resnet", "widths": list(widths), "blocks": list(blocks),
                         "image": image, "batch": batch})


def _squeeze_excite(g: GraphBuilder, x: str, reduced: int, name: str) -> str:
    """x · sigmoid(conv(silu(conv(avgpool(x))))): channel gates through ``reduced`` channels."""
    n, c = g.shape(x)[:2]
    s = g.op("GlobalAveragePool", [x], (n, c, 1, 1), name=f"{name}_pool")
    s = _silu(g, _conv(g, s, reduced, 1, 1, f"{name}_reduce"), f"{name}_reduce")
    s = g.op("Sigmoid", [_conv(g, s, c, 1, 1, f"{name}_expand")], (n, c, 1, 1), name=f"{name}_gate")
    return g.op("Mul", [x, s], g.shape(x), name=f"{name}_scale")


def _mbconv_block(g: GraphBuilder, x: str, k: int, expand: int, kernel: int, stride: int,
                  se_ratio: float, name: str) -> str:
    c = g.shape(x)[1]
    h = x if expand == 1 else _silu(g, _conv(g, x, c * expand, 1, 1, f"{name}_expand"),
                                    f"{name}_expand")
    e = g.shape(h)[1]
    h = _silu(g, _conv(g, h, e, kernel, stride, f"{name}_dw", group=e), f"{name}_dw")
    h = _squeeze_excite(g, h, max(1, int(c * se_ratio)), f"{name}_se")
    h = _conv(g, h, k, 1, 1, f"{name}_project")
    return g.op("Add", [h, x], g.shape(h), name=f"{name}_add") if stride == 1 and c == k else h


def mbconv_stages(widths: Sequence[int] = (16, 24, 40, 80, 112, 192, 320),
                  blocks: Sequence[int] = (1, 2, 2, 3, 3, 4, 1),
                  expand: Sequence[int] = (1, 6, 6, 6, 6, 6, 6),
                  kernels: Sequence[int] = (3, 3, 5, 3, 5, 5, 3),
                  strides: Sequence[int] = (1, 2, 2, 2, 1, 2, 1),
                  image: int = 224, batch: int = 1, classes: int = 1000, se_ratio: float = 0.25,
                  name: str | None = None) -> Graph:
    """An EfficientNet of MBConv blocks (defaults: EfficientNet-B0's geometry): a 3×3/2 stem
    conv to 32 channels, ``len(widths)`` stages (stage i: ``blocks[i]`` blocks of ``widths[i]``
    channels, expansion ``expand[i]``, ``kernels[i]``×``kernels[i]`` depthwise conv, stride
    ``strides[i]`` on its first block), a 1×1 head conv to 1280 channels, global average pool,
    flatten and a Gemm classifier; SiLU (Sigmoid, Mul) after the stem, expansion, depthwise,
    squeeze and head convs.

    A block of ``c`` → ``k`` channels: a 1×1 conv to ``e = c·expand`` channels (none when
    ``expand`` is 1), the depthwise conv, squeeze-excitation through ``max(1, int(c·se_ratio))``
    channels, a 1×1 projection to ``k`` and a residual Add when the stride is 1 and ``c == k``.
    """
    _check_stages(image, batch, classes, widths=widths, blocks=blocks, expand=expand,
                  kernels=kernels, strides=strides)
    if not 0 < se_ratio <= 1:
        raise WorkloadError(f"generator argument se_ratio must be in (0, 1], got {se_ratio!r}")
    g = GraphBuilder(name or f"mbconv_w{widths[0]}x{len(widths)}_i{image}_b{batch}")
    x = g.input("image", (batch, 3, image, image))
    x = _silu(g, _conv(g, x, 32, 3, 2, "stem"), "stem")
    for s, stage in enumerate(zip(widths, blocks, expand, kernels, strides)):
        width, count, e, kernel, stride = stage
        for b in range(count):
            x = _mbconv_block(g, x, width, e, kernel, stride if b == 0 else 1, se_ratio, f"s{s}b{b}")
    x = _silu(g, _conv(g, x, 1280, 1, 1, "head"), "head")
    x = _classifier(g, x, classes)
    return g.build([x], {"family": "efficientnet", "widths": list(widths), "blocks": list(blocks),
                         "expand": list(expand), "kernels": list(kernels),
                         "strides": list(strides), "image": image, "batch": batch})


# ---- random DAGs --------------------------------------------------------------------------------
UNARY = ("Relu", "Gelu", "Sigmoid", "Softmax", "LayerNormalization")


def random_layered_dag(n_ops: int = 100, width: int = 4, rows: int = 256,
                       widths: Sequence[int] = (256, 512, 1024), seed: int = 0,
                       name: str | None = None) -> Graph:
    """A seeded random DAG of about ``n_ops`` ops in layers of up to ``width`` ops, on
    activations ``[rows, w]`` (``w`` from ``widths``). Each op reads one tensor of the last
    three layers (its first operand) and is a MatMul with a new weight to a random width
    (40 %), an Add with another same-shaped tensor of those layers (30 %, else unary) or a
    unary op (Relu, Gelu, Sigmoid, Softmax, LayerNormalization). Tensors nobody reads are the
    graph outputs."""
    _positive(n_ops=n_ops, width=width, rows=rows)
    rng = np.random.default_rng(seed)
    g = GraphBuilder(name or f"random_dag_n{n_ops}_s{seed}")
    layers: list[list[str]] = [[g.input("x", (rows, int(rng.choice(widths))))]]
    read: set[str] = set()
    while len(g.ops) < n_ops:
        pool = [t for layer in layers[-3:] for t in layer]
        layer = []
        for _ in range(int(rng.integers(1, width + 1))):
            if len(g.ops) >= n_ops:
                break
            a = pool[int(rng.integers(len(pool)))]
            u = rng.random()
            same = [t for t in pool if t != a and g.shape(t) == g.shape(a)]
            if u < 0.4:
                out = int(rng.choice(widths))
                t = g.op("MatMul", [a, g.weight(f"w{len(g.ops)}", (g.shape(a)[1], out))],
                         (rows, out))
            elif u < 0.7 and same:
                b = same[int(rng.integers(len(same)))]
                t = g.op("Add", [a, b], g.shape(a))
                read.add(b)
            else:
                kind = UNARY[int(rng.integers(len(UNARY)))]
                t = g.op(kind, [a], g.shape(a), {"axis": -1} if kind == "Softmax" else None)
            read.add(a)
            layer.append(t)
        layers.append(layer)
    outs = [op.outputs[0] for op in g.ops if op.outputs[0] not in read]
    return g.build(outs, {"family": "random_dag", "n_ops": n_ops, "seed": seed})
