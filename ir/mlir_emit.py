"""Emit a standalone MLIR function for one kernel — the unit a cost model predicts.

A :class:`KernelSpec` names a kernel kind, its iteration domain (``shape``, in the loop order
of the linalg op) and element type; :func:`emit` returns the MLIR text of
``func.func @kernel(inputs...) -> output`` on tensors plus the input shapes and a NumPy
reference. Kinds and the meaning of ``shape``:

============================== ===================================================
``matmul``                     (M, N, K); ``transpose_b``: B stored as (N, K)
``batch_matmul``               (B, M, N, K); ``transpose_b``: B stored as (B, N, K)
``conv_2d_nhwc_hwcf``          (N, OH, OW, F, KH, KW, C); input is pre-padded
``depthwise_conv_2d_nhwc_hwc`` (N, OH, OW, C, KH, KW)
``elementwise``                output shape; ``op`` in :data:`ELEMENTWISE_OPS`
``reduction``                  input shape; ``reduce_dims`` (default: last), ``op`` sum|max
============================== ===================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["DTYPES", "ELEMENTWISE_OPS", "KINDS", "EmittedKernel", "KernelSpec",
           "KernelSpecError", "emit", "transposed_b_maps"]

KINDS: dict[str, int] = {"matmul": 3, "batch_matmul": 4, "conv_2d_nhwc_hwcf": 7,
                         "depthwise_conv_2d_nhwc_hwc": 6, "elementwise": 0, "reduction": 0}
DTYPES: dict[str, Any] = {"f32": np.float32, "f16": np.float16, "f64": np.float64}
ELEMENTWISE_OPS: dict[str, int] = {"add": 2, "sub": 2, "mul": 2, "maximum": 2, "relu": 1,
                                   "exp": 1, "tanh": 1, "sigmoid": 1}
REDUCTION_OPS = ("sum", "max")
_NEG_INF = {"f32": "0xFF800000", "f16": "0xFC00", "f64": "0xFFF0000000000000"}


class KernelSpecError(MlsysgymError):
    """A kernel description that cannot be emitted (unknown kind, bad shape or dtype)."""


def _shape_tuple(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.lower().replace(",", "x").split("x") if p.strip()]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise KernelSpecError(f"shape {value!r} is not like '128x64x32'") from None
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: kind, iteration domain ``shape`` (see module doc), dtype and options."""

    kind: str
    shape: tuple[int, ...]
    dtype: str = "f32"
    op: str = ""
    stride: int = 1
    dilation: int = 1
    reduce_dims: tuple[int, ...] = ()
    transpose_b: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape_tuple(self.shape))
        object.__setattr__(self, "reduce_dims", tuple(int(d) for d in self.reduce_dims))
        if self.kind not in KINDS:
            raise KernelSpecError(f"unknown kernel kind {self.kind!r}; use one of "
                                  f"{', '.join(KINDS)}")
        if self.dtype not in DTYPES:
            raise KernelSpecError(f"unsupported dtype {self.dtype!r}; use one of "
                                  f"{', '.join(DTYPES)}")
        rank = KINDS[self.kind]
        if rank and len(self.shape) != rank:
            raise KernelSpecError(f"{self.kind} needs a shape of {rank} sizes (see "
                                  f"mlsysgym.ir.mlir_emit), got {self.shape}")
        if not self.shape or any(d < 1 for d in self.shape):
            raise KernelSpecError(f"shape sizes must be positive, got {self.shape}")
        if self.stride < 1 or self.dilation < 1:
            raise KernelSpecError("stride and dilation must be >= 1")
        if self.transpose_b and self.kind not in ("matmul", "batch_matmul"):
            raise KernelSpecError(f"transpose_b applies to matmul and batch_matmul, not {self.kind}")
        if self.kind == "elementwise":
            op = self.op or "add"
            if op not in ELEMENTWISE_OPS:
                raise KernelSpecError(f"unknown elementwise op {op!r}; use one of "
                                      f"{', '.join(ELEMENTWISE_OPS)}")
            object.__setattr__(self, "op", op)
        if self.kind == "reduction":
            op = self.op or "sum"
            if op not in REDUCTION_OPS:
                raise KernelSpecError(f"unknown reduction op {op!r}; use sum or max")
            object.__setattr__(self, "op", op)
            dims = self.reduce_dims or (len(self.shape) - 1,)
            if any(not 0 <= d < len(self.shape) for d in dims) or len(set(dims)) != len(dims):
                raise KernelSpecError(f"reduce_dims {dims} out of range for shape {self.shape}")
            object.__setattr__(self, "reduce_dims", tuple(sorted(dims)))

    # ---- conversions ------------------------------------------------------------------
    def to_design(self) -> dict[str, Any]:
        """A JSON-able dict (the design of the ``iree-cpu`` evaluator)."""
        d: dict[str, Any] = {"kind": self.kind, "shape": "x".join(map(str, self.shape)),
                             "dtype": self.dtype}
        if self.op:
            d["op"] = self.op
        if self.stride != 1:
            d["stride"] = self.stride
        if self.dilation != 1:
            d["dilation"] = self.dilation
        if self.reduce_dims:
            d["reduce_dims"] = ",".join(map(str, self.reduce_dims))
        if self.transpose_b:
            d["transpose_b"] = True
        return d

    @classmethod
    def from_design(cls, design: Mapping[str, Any]) -> KernelSpec:
        """Inverse of :meth:`to_design` (``shape`` may be a list or ``"AxB"``)."""
        try:
            rd = design.get("reduce_dims", ())
            if isinstance(rd, str):
                rd = tuple(int(x) for x in rd.split(",") if x.strip())
            return cls(kind=str(design["kind"]), shape=design["shape"],
                       dtype=str(design.get("dtype", "f32")), op=str(design.get("op", "") or ""),
                       stride=int(design.get("stride", 1) or 1),
                       dilation=int(design.get("dilation", 1) or 1), reduce_dims=tuple(rd),
                       transpose_b=bool(design.get("transpose_b", False)))
        except KeyError as e:
            raise KernelSpecError(f"kernel design lacks {e.args[0]!r} (needs kind and shape)")\
                from None

    # ---- costs -----------------------------------------------------------------------
    @property
    def points(self) -> int:
        """Points of the iteration domain."""
        return math.prod(self.shape)

    @property
    def macs(self) -> int:
        """Multiply-accumulates (contractions and convolutions; 0 otherwise)."""
        return self.points if self.kind in ("matmul", "batch_matmul", "conv_2d_nhwc_hwcf",
                                            "depthwise_conv_2d_nhwc_hwc") else 0

    def input_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the kernel's inputs, in argument order."""
        s, k = self.shape, self.kind
        if k == "matmul":
            m, n, kk = s
            return [(m, kk), (n, kk) if self.transpose_b else (kk, n)]
        if k == "batch_matmul":
            b, m, n, kk = s
            return [(b, m, kk), (b, n, kk) if self.transpose_b else (b, kk, n)]
        if k == "conv_2d_nhwc_hwcf":
            n, oh, ow, f, kh, kw, c = s
            return [(n, self._in_size(oh, kh), self._in_size(ow, kw), c), (kh, kw, c, f)]
        if k == "depthwise_conv_2d_nhwc_hwc":
            n, oh, ow, c, kh, kw = s
            return [(n, self._in_size(oh, kh), self._in_size(ow, kw), c), (kh, kw, c)]
        if k == "elementwise":
            return [s] * ELEMENTWISE_OPS[self.op]
        return [s]

    def output_shape(self) -> tuple[int, ...]:
        """Shape of the kernel's result."""
        s, k = self.shape, self.kind
        if k == "matmul":
            return (s[0], s[1])
        if k == "batch_matmul":
            return (s[0], s[1], s[2])
        if k == "conv_2d_nhwc_hwcf":
            return s[:4]
        if k == "depthwise_conv_2d_nhwc_hwc":
            return s[:4]
        if k == "elementwise":
            return s
        return tuple(d for i, d in enumerate(s) if i not in self.reduce_dims)

    def bytes(self) -> tuple[int, int]:
        """(bytes read, bytes written) of inputs and output, each touched once."""
        item = np.dtype(DTYPES[self.dtype]).itemsize
        read = sum(math.prod(sh) for sh in self.input_shapes()) * item
        return read, math.prod(self.output_shape()) * item

    def _in_size(self, out: int, k: int) -> int:
        return (out - 1) * self.stride + (k - 1) * self.dilation + 1


@dataclass(frozen=True)
class EmittedKernel:
    """MLIR text of ``func.func @<func_name>`` for ``spec`` and how to feed and check it."""

    spec: KernelSpec
    mlir: str
    func_name: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    reference: Callable[[Sequence[np.ndarray]], np.ndarray] = field(repr=False, compare=False)

    @property
    def np_dtype(self) -> Any:
        return DTYPES[self.spec.dtype]

    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        """Inputs drawn uniformly from [-1, 1) (deterministic for ``seed``)."""
        rng = np.random.default_rng(seed)
        return [rng.uniform(-1.0, 1.0, size=s).astype(self.np_dtype) for s in self.input_shapes]


def _ttype(shape: Sequence[int], t: str) -> str:
    return "tensor<" + "x".join(map(str, shape)) + f"x{t}>"


def _float_body(op: str, t: str, args: Sequence[str]) -> list[str]:
    a = args[0]
    if op == "add":
        return [f"%r = arith.addf {a}, {args[1]} : {t}"]
    if op == "sub":
        return [f"%r = arith.subf {a}, {args[1]} : {t}"]
    if op == "mul":
        return [f"%r = arith.mulf {a}, {args[1]} : {t}"]
    if op == "maximum":
        return [f"%r = arith.maximumf {a}, {args[1]} : {t}"]
    if op == "relu":
        return [f"%z = arith.constant 0.0 : {t}", f"%r = arith.maximumf {a}, %z : {t}"]
    if op == "exp":
        return [f"%r = math.exp {a} : {t}"]
    if op == "tanh":
        return [f"%r = math.tanh {a} : {t}"]
    # sigmoid
    return [f"%one = arith.constant 1.0 : {t}", f"%n = arith.negf {a} : {t}",
            f"%e = math.exp %n : {t}", f"%d = arith.addf %one, %e : {t}",
            f"%r = arith.divf %one, %d : {t}"]


def _dims(n: int) -> str:
    return ", ".join(f"d{i}" for i in range(n))


def transposed_b_maps(rank: int) -> list[str]:
    """Indexing maps of a (batch) matmul with loops (batch.., m, n, k) whose right operand is
    stored ``[.., n, k]``, as MLIR prints them: ``(d0, d1, d2) -> (d0, d2)``, ..."""
    *batch, m, n, k = [f"d{i}" for i in range(rank)]
    return [f"({_dims(rank)}) -> ({', '.join(v)})"
            for v in ((*batch, m, k), (*batch, n, k), (*batch, m, n))]


def _contraction(spec: KernelSpec, t: str) -> str:
    ins = spec.input_shapes()
    out = _ttype(spec.output_shape(), t)
    a, b = _ttype(ins[0], t), _ttype(ins[1], t)
    attrs = ""
    if spec.transpose_b:  # the form IREE gives a matmul after folding its weight transpose
        maps = transposed_b_maps(len(spec.shape))
        attrs = " indexing_maps = [" + ", ".join(f"affine_map<{m}>" for m in maps) + "]"
    if spec.kind.startswith(("conv", "depthwise")):
        attrs = (f" {{dilations = dense<{spec.dilation}> : tensor<2xi64>, "
                 f"strides = dense<{spec.stride}> : tensor<2xi64>}}")
    return "\n".join([
        f"func.func @kernel(%a: {a}, %b: {b}) -> {out} {{",
        f"  %zero = arith.constant 0.0 : {t}",
        f"  %init = tensor.empty() : {out}",
        f"  %acc = linalg.fill ins(%zero : {t}) outs(%init : {out}) -> {out}",
        f"  %res = linalg.{spec.kind}{attrs} ins(%a, %b : {a}, {b}) outs(%acc : {out}) -> {out}",
        f"  return %res : {out}",
        "}", ""])


def _elementwise(spec: KernelSpec, t: str) -> str:
    n_in = ELEMENTWISE_OPS[spec.op]
    tt = _ttype(spec.shape, t)
    rank = len(spec.shape)
    ident = f"affine_map<({_dims(rank)}) -> ({_dims(rank)})>"
    names = [f"%x{i}" for i in range(n_in)]
    bargs = [f"%i{i}" for i in range(n_in)]
    body = _float_body(spec.op, t, bargs)
    iters = ", ".join(['"parallel"'] * rank)
    return "\n".join([
        f"func.func @kernel({', '.join(f'{n}: {tt}' for n in names)}) -> {tt} {{",
        f"  %init = tensor.empty() : {tt}",
        (f"  %res = linalg.generic {{indexing_maps = [{', '.join([ident] * (n_in + 1))}], "
         f"iterator_types = [{iters}]}} "
         f"ins({', '.join(names)} : {', '.join([tt] * n_in)}) outs(%init : {tt}) {{"),
        f"  ^bb0({', '.join(f'{b}: {t}' for b in bargs)}, %o: {t}):",
        *(f"    {line}" for line in body),
        f"    linalg.yield %r : {t}",
        f"  }} -> {tt}",
        f"  return %res : {tt}",
        "}", ""])


def _reduction(spec: KernelSpec, t: str) -> str:
    rank = len(spec.shape)
    it, ot = _ttype(spec.shape, t), _ttype(spec.output_shape(), t)
    kept = ", ".join(f"d{i}" for i in range(rank) if i not in spec.reduce_dims)
    in_map = f"affine_map<({_dims(rank)}) -> ({_dims(rank)})>"
    out_map = f"affine_map<({_dims(rank)}) -> ({kept})>"
    iters = ", ".join('"reduction"' if i in spec.reduce_dims else '"parallel"'
                      for i in range(rank))
    init = "0.0" if spec.op == "sum" else _NEG_INF[spec.dtype]
    combine = "arith.addf" if spec.op == "sum" else "arith.maximumf"
    ot_decl = ot if spec.output_shape() else f"tensor<{t}>"
    return "\n".join([
        f"func.func @kernel(%x: {it}) -> {ot_decl} {{",
        f"  %c = arith.constant {init} : {t}",
        f"  %init = tensor.empty() : {ot_decl}",
        f"  %acc = linalg.fill ins(%c : {t}) outs(%init : {ot_decl}) -> {ot_decl}",
        (f"  %res = linalg.generic {{indexing_maps = [{in_map}, {out_map}], "
         f"iterator_types = [{iters}]}} ins(%x : {it}) outs(%acc : {ot_decl}) {{"),
        f"  ^bb0(%i: {t}, %o: {t}):",
        f"    %r = {combine} %o, %i : {t}",
        f"    linalg.yield %r : {t}",
        f"  }} -> {ot_decl}",
        f"  return %res : {ot_decl}",
        "}", ""])


def _reference(spec: KernelSpec) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    dt = DTYPES[spec.dtype]

    def ref(xs: Sequence[np.ndarray]) -> np.ndarray:
        x = [np.asarray(v, dtype=np.float64) for v in xs]
        k = spec.kind
        if k in ("matmul", "batch_matmul"):
            out = np.matmul(x[0], np.swapaxes(x[1], -1, -2) if spec.transpose_b else x[1])
        elif k in ("conv_2d_nhwc_hwcf", "depthwise_conv_2d_nhwc_hwc"):
            oh, ow = spec.shape[1], spec.shape[2]
            kh, kw = x[1].shape[0], x[1].shape[1]
            s, d = spec.stride, spec.dilation
            out = np.zeros(spec.output_shape())
            for i in range(kh):
                for j in range(kw):
                    win = x[0][:, i * d:i * d + (oh - 1) * s + 1:s, j * d:j * d + (ow - 1) * s + 1:s, :]
                    if k == "conv_2d_nhwc_hwcf":
                        out += np.einsum("nhwc,cf->nhwf", win, x[1][i, j])
                    else:
                        out += win * x[1][i, j]
        elif k == "elementwise":
            op = spec.op
            a = x[0]
            out = {"add": lambda: a + x[1], "sub": lambda: a - x[1], "mul": lambda: a * x[1],
                   "maximum": lambda: np.maximum(a, x[1]), "relu": lambda: np.maximum(a, 0.0),
                   "exp": lambda: np.exp(a), "tanh": lambda: np.tanh(a),
                   "sigmoid": lambda: 1.0 / (1.0 + np.exp(-a))}[op]()
        else:
            fn = np.sum if spec.op == "sum" else np.max
            out = fn(x[0], axis=spec.reduce_dims)
        return np.asarray(out).astype(dt)

    return ref


def emit(spec: KernelSpec | Mapping[str, Any]) -> EmittedKernel:
    """The standalone MLIR function ``@kernel`` of ``spec`` (a KernelSpec or its design dict)."""
    if not isinstance(spec, KernelSpec):
        spec = KernelSpec.from_design(spec)
    t = spec.dtype
    if spec.kind == "elementwise":
        text = _elementwise(spec, t)
    elif spec.kind == "reduction":
        text = _reduction(spec, t)
    else:
        text = _contraction(spec, t)
    return EmittedKernel(spec=spec, mlir=text, func_name="kernel",
                         input_shapes=tuple(spec.input_shapes()),
                         output_shape=spec.output_shape(), reference=_reference(spec))
