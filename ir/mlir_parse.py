"""Parse MLIR (text or a module object) with the upstream MLIR Python bindings into an ir.Graph view.

Every op of every function body (``func.func``, ``util.func``) becomes an ``ir.Op``:

- linalg structured ops (named ones such as ``linalg.matmul``, ``linalg.conv_2d_nchw_fchw``,
  ``linalg.depthwise_conv_2d_nhwc_hwc``, ``linalg.pooling_*``, ``linalg.fill``, and
  ``linalg.generic``) get their iteration domain, iterator types and indexing maps from the
  op's generalized form (MLIR's ``linalg-generalize-named-ops`` run on a copy), MACs
  (multiply-accumulate bodies: one MAC per point of the domain), FLOPs (arith/math ops of the
  body per point) and bytes (operands read, results written);
- element-wise ``arith``/``math`` ops on tensors: one FLOP per output element;
- ``tensor`` ops: data movement (bytes, no FLOPs); ``func``/``util`` calls and returns: free;
- every other op (other dialects, unregistered ops) is kept with ``estimated=True`` (one
  FLOP per output element) and ``attributes["supported"] = False``; IREE's ABI glue
  (``hal.tensor.import``/``export``, fences) is flagged the same way but costed zero.

Bad text raises :class:`MlirParseError` with the line and column of the first error.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.costs import ConvNest, MatmulNest
from mlsysgym.ir.graph import Graph, Op, Role, Tensor

__all__ = ["LinalgInfo", "MlirParseError", "ParsedModule", "context", "parse", "read_mlir_file",
           "to_graph"]

_ID_ATTR = "mlsysgym.id"
_FUNC_OPS = ("func.func", "util.func")
_CONTROL_OPS = frozenset({"func.return", "util.return", "func.call", "util.call"})
# IREE ABI glue of the input phase (buffer views <-> tensors, fences): flagged, costed zero.
_GLUE_PREFIXES = ("hal.tensor.", "hal.fence.", "hal.devices.", "hal.buffer_view.", "util.null",
                  "util.global")
_FREE_OPS = frozenset({"arith.constant", "tensor.empty", "arith.index_cast", "arith.bitcast"})
# Body ops that are not arithmetic (not counted as FLOPs).
_NON_FLOP = frozenset({"linalg.yield", "linalg.index", "arith.constant", "arith.index_cast",
                       "arith.index_castui", "arith.bitcast", "arith.extf", "arith.truncf",
                       "arith.extsi", "arith.extui", "arith.trunci", "arith.sitofp",
                       "arith.uitofp", "arith.fptosi", "arith.fptoui", "tensor.extract"})
_MULS = frozenset({"arith.mulf", "arith.muli"})
_ADDS = frozenset({"arith.addf", "arith.addi"})

_DTYPES: dict[str, tuple[str, int]] = {
    "f64": ("float64", 8), "f32": ("float32", 4), "f16": ("float16", 2), "bf16": ("bfloat16", 2),
    "i64": ("int64", 8), "i32": ("int32", 4), "i16": ("int16", 2), "i8": ("int8", 1),
    "i1": ("bool", 1), "index": ("int64", 8), "ui8": ("uint8", 1), "si8": ("int8", 1),
}


class MlirParseError(MlsysgymError):
    """MLIR text that does not parse or verify; the message names the line and column."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True)
class LinalgInfo:
    """The loop structure of one linalg structured op (from its generalized form).

    ``domain`` holds the loop bounds (``None`` for a dynamic bound), ``iterator_types`` is
    ``"parallel"``/``"reduction"``/``"window"`` per loop (pooling windows are reductions in
    MLIR; they are reported as ``"reduction"``), ``indexing_maps`` the affine maps as text.
    """

    kind: str
    domain: tuple[int | None, ...]
    iterator_types: tuple[str, ...]
    indexing_maps: tuple[str, ...]
    body_ops: tuple[str, ...]
    is_contraction: bool

    @property
    def points(self) -> int:
        """Number of points of the iteration domain (0 if any bound is dynamic)."""
        if any(d is None for d in self.domain):
            return 0
        return math.prod(self.domain)  # type: ignore[arg-type]

    @property
    def parallel_dims(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.iterator_types) if t == "parallel")

    @property
    def reduction_dims(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.iterator_types) if t != "parallel")


@dataclass
class ParsedModule:
    """A parsed MLIR module: the bindings' module object and its ir.Graph view.

    ``linalg`` maps the name of each linalg structured op of ``graph`` to its loop structure.
    Keep the object alive while using ``module`` (it owns the MLIR context).
    """

    module: Any
    graph: Graph
    linalg: dict[str, LinalgInfo] = field(default_factory=dict)

    def print(self) -> str:
        """The module as MLIR text (the bindings' printer)."""
        return str(self.module)

    @property
    def unsupported(self) -> list[Op]:
        """Ops kept but not understood (other dialects, unregistered ops)."""
        return [op for op in self.graph.ops if not op.attributes.get("supported", True)]


def context() -> Any:
    """A fresh MLIR context with every dialect IREE registers; unregistered dialects allowed."""
    from iree.compiler import ir

    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    return ctx


_LOC_RE = re.compile(r'loc\("[^"]*":(\d+):(\d+)\)')


def _parse_error(e: Exception) -> MlirParseError:
    diags = getattr(e, "error_diagnostics", None) or []
    line = column = None
    message = str(e).splitlines()[-1] if str(e) else type(e).__name__
    if diags:
        d = diags[0]
        message = d.message
        m = _LOC_RE.search(str(d.location))
        if m:
            line, column = int(m.group(1)), int(m.group(2))
    else:
        m = re.search(r":(\d+):(\d+):\s*(.*)", str(e))
        if m:
            line, column, message = int(m.group(1)), int(m.group(2)), m.group(3)
    message = " ".join(message.split())
    where = f"line {line}, column {column}" if line is not None else "unknown position"
    return MlirParseError(f"invalid MLIR at {where}: {message}", line, column)


def _parse_text(text: str, ctx: Any) -> Any:
    from iree.compiler import ir

    try:
        return ir.Module.parse(text, ctx)
    except ir.MLIRError as e:
        raise _parse_error(e) from None


def _tensor_info(t: Any) -> tuple[tuple[int, ...] | None, str, int] | None:
    """(shape, dtype name, itemsize) of a ranked tensor or scalar type; None for others."""
    from iree.compiler import ir

    if isinstance(t, ir.RankedTensorType):
        rt = t
        elem = str(rt.element_type)
        shape: tuple[int, ...] | None = tuple(rt.shape)
        if not rt.has_static_shape:
            shape = None
        dtype, size = _DTYPES.get(elem, (elem, 4))
        return shape, dtype, size
    text = str(t)
    if text in _DTYPES:
        dtype, size = _DTYPES[text]
        return (), dtype, size
    return None


def _nbytes(info: tuple[tuple[int, ...] | None, str, int] | None) -> int:
    if info is None or info[0] is None:
        return 0
    return math.prod(info[0]) * info[2]


def _walk_bodies(module_op: Any) -> Iterator[tuple[str, Any]]:
    """(function name, op) for every op directly inside function bodies (nested non-linalg
    regions, e.g. scf loops, are entered; linalg / tensor.pad bodies are not)."""

    def ops_in(region_owner: Any) -> Iterator[Any]:
        for region in region_owner.regions:
            for block in region.blocks:
                for op in block.operations:
                    op = op.operation
                    yield op
                    name = op.name
                    if op.regions and not (name.startswith(("linalg.", "tensor.")) or name in _FUNC_OPS):
                        yield from ops_in(op)

    for f in _func_ops(module_op):
        fname = str(f.attributes["sym_name"]).strip('"')
        for op in ops_in(f):
            yield fname, op


def _is_structured(op: Any) -> bool:
    name = op.name
    return (name.startswith("linalg.") and name not in ("linalg.yield", "linalg.index")
            and len(op.regions) > 0)


def _generalized(module: Any, ctx: Any) -> dict[int, Any]:
    """Tag linalg ops with ids, generalize a clone, return id -> generic op (tags removed)."""
    from iree.compiler import ir, passmanager

    ids: list[Any] = []
    with ctx:
        i64 = ir.IntegerType.get_signless(64)
        for _fname, op in _walk_bodies(module.operation):
            if _is_structured(op):
                op.attributes[_ID_ATTR] = ir.IntegerAttr.get(i64, len(ids))
                ids.append(op)
        clone = module.operation.clone()
        for op in ids:
            del op.attributes[_ID_ATTR]
        try:
            pm = passmanager.PassManager.parse("builtin.module(any(linalg-generalize-named-ops))")
            pm.run(clone)
        except Exception:  # noqa: BLE001, S110 - fall back to the named ops (domain from shapes)
            pass
    out: dict[int, Any] = {}
    for _fname, op in _walk_bodies(clone):
        if _ID_ATTR in op.attributes:
            out[op.attributes[_ID_ATTR].value] = op
    out[-1] = clone  # keep the clone alive with the mapping
    return out


def _domain(generic: Any) -> tuple[tuple[int | None, ...], tuple[str, ...], tuple[str, ...]]:
    """Loop bounds, iterator types and indexing maps (text) of a (generalized) linalg op."""
    from iree.compiler import ir

    maps_attr = generic.attributes["indexing_maps"]
    maps = [a.value for a in maps_attr]
    iters_attr = generic.attributes["iterator_types"]
    iters = []
    for a in iters_attr:
        s = str(a)
        iters.append("parallel" if "parallel" in s else "reduction")
    n = maps[0].n_dims if maps else len(iters)
    bounds: list[int | None] = [None] * n
    for operand, amap in zip(generic.operands, maps):
        info = _tensor_info(operand.type)
        if info is None or info[0] is None:
            continue
        shape = info[0]
        for pos, expr in enumerate(amap.results):
            if isinstance(expr, ir.AffineDimExpr) and pos < len(shape):
                d = expr.position
                if bounds[d] is None:
                    bounds[d] = int(shape[pos])
    return tuple(bounds), tuple(iters), tuple(str(m) for m in maps)


def _body(generic: Any) -> tuple[list[Any], Any]:
    block = generic.regions[0].blocks[0]
    return [o.operation for o in block.operations], block


def _is_mac_body(ops: list[Any], block: Any) -> bool:
    """Does the body accumulate a product into the output (``out + a * b``)?"""
    names = {op.name for op in ops}
    if not (names & _MULS) or not (names & _ADDS):
        return False
    out_arg = block.arguments[len(block.arguments) - 1]
    for op in ops:
        if op.name in _ADDS and any(v == out_arg for v in op.operands):
            return True
    return False


def _linalg_info(op: Any, generic: Any | None) -> LinalgInfo:
    kind = op.name.removeprefix("linalg.")
    if generic is None or "indexing_maps" not in generic.attributes:
        res = [_tensor_info(r.type) for r in op.results]
        shape = res[0][0] if res and res[0] and res[0][0] is not None else ()
        return LinalgInfo(kind, tuple(shape), ("parallel",) * len(shape), (), (), False)
    domain, iters, maps = _domain(generic)
    ops, block = _body(generic)
    body = tuple(o.operation.name for o in ops)
    return LinalgInfo(kind, domain, iters, maps, body, _is_mac_body(ops, block))


def _attr_value(a: Any) -> Any:
    from iree.compiler import ir

    if isinstance(a, ir.DenseIntElementsAttr):
        return [int(v) for v in a]
    if isinstance(a, ir.IntegerAttr) and not isinstance(a, ir.BoolAttr):
        return a.value
    if isinstance(a, ir.StringAttr):
        return a.value
    return str(a)


def _loop_nest(info: LinalgInfo, attrs: dict[str, Any]) -> MatmulNest | ConvNest | None:
    d = info.domain
    if any(x is None for x in d):
        return None
    k = info.kind
    if k == "matmul" and len(d) == 3:
        return MatmulNest(1, d[0], d[1], d[2])  # type: ignore[arg-type]
    if k == "batch_matmul" and len(d) == 4:
        return MatmulNest(d[0], d[1], d[2], d[3])  # type: ignore[arg-type]
    stride = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1])
    sh, sw = (stride + [1, 1])[:2] if isinstance(stride, list) else (1, 1)
    dh, dw = (dil + [1, 1])[:2] if isinstance(dil, list) else (1, 1)
    if k in ("conv_2d_nchw_fchw", "conv_2d_nchw_fchw_q") and len(d) == 7:  # n f oh ow c kh kw
        n, f, oh, ow, c, kh, kw = d
        return ConvNest(n, f, c, oh, ow, kh, kw, sh, sw, dh, dw)  # type: ignore[arg-type]
    if k in ("conv_2d_nhwc_hwcf", "conv_2d_nhwc_fhwc") and len(d) == 7:  # n oh ow f kh kw c
        n, oh, ow, f, kh, kw, c = d
        return ConvNest(n, f, c, oh, ow, kh, kw, sh, sw, dh, dw)  # type: ignore[arg-type]
    if k == "depthwise_conv_2d_nchw_chw" and len(d) == 6:  # n c oh ow kh kw
        n, c, oh, ow, kh, kw = d
        return ConvNest(n, c, c, oh, ow, kh, kw, sh, sw, dh, dw, groups=c)  # type: ignore[arg-type]
    if k == "depthwise_conv_2d_nhwc_hwc" and len(d) == 6:  # n oh ow c kh kw
        n, oh, ow, c, kh, kw = d
        return ConvNest(n, c, c, oh, ow, kh, kw, sh, sw, dh, dw, groups=c)  # type: ignore[arg-type]
    return None


def _body_flops(info: LinalgInfo) -> int:
    return sum(1 for name in info.body_ops if name not in _NON_FLOP)


def read_mlir_file(path: str | os.PathLike[str]) -> str:
    """The text of an MLIR file; MlirParseError with one line if it is missing, unreadable or
    not UTF-8 text (MLIR bytecode, an ONNX file, other binary data)."""
    p = Path(path)
    if not p.is_file():
        raise MlirParseError(f"no such MLIR file: {p}")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise MlirParseError(f"cannot read {p}: {e.strerror or e}") from None
    if data.startswith(b"ML\xefR"):
        raise MlirParseError(f"{p} is MLIR bytecode; give MLIR text (`iree-opt {p}` "
                             f"prints it as text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MlirParseError(f"{p} is not UTF-8 text (byte {data[e.start]:#04x} at offset "
                             f"{e.start}); give an MLIR text file, not an ONNX or binary file"
                             ) from None


def _module_of(source: str | Any) -> tuple[Any, Any]:
    """The bindings module of MLIR text, a ``Module`` or a module ``Operation``, and its
    context."""
    from iree.compiler import ir

    if isinstance(source, str):
        ctx = context()
        return _parse_text(source, ctx), ctx
    module = source
    if isinstance(source, ir.Operation):  # a module op: re-parse its text in its context
        module = _parse_text(str(source), source.context)
    return module, module.context


def _tensor_of(key: str, v: Any, role: Role) -> Tensor:
    """The Tensor named ``key`` of an MLIR value ``v``."""
    info = _tensor_info(v.type)
    if info is None:
        return Tensor(key, None, str(v.type), 0, role)
    return Tensor(key, info[0], info[1], info[2], role)


def parse(source: str | Any, name: str | None = None) -> ParsedModule:
    """Parse MLIR text (or take a bindings ``Module``/module ``Operation``) into a ParsedModule.

    Raises :class:`MlirParseError` (with ``line`` and ``column``) on text that does not parse.
    """
    from iree.compiler import ir

    module, ctx = _module_of(source)
    generics = _generalized(module, ctx)
    state = ir.AsmState(module.operation)
    tensors: dict[str, Tensor] = {}
    ops: list[Op] = []
    linalg: dict[str, LinalgInfo] = {}
    graph_inputs: list[str] = []
    graph_outputs: list[str] = []
    structured_index = 0
    counts: dict[str, int] = {}
    func_names: list[str] = []

    def vname(fname: str, v: Any) -> str:
        return f"{fname}/{v.get_name(state)}"

    def add_tensor(key: str, v: Any, role: Role) -> None:
        if key not in tensors:
            tensors[key] = _tensor_of(key, v, role)

    for f in _func_ops(module.operation):
        fname = str(f.attributes["sym_name"]).strip('"')
        func_names.append(fname)
        if f.regions and f.regions[0].blocks:
            for arg in f.regions[0].blocks[0].arguments:
                key = vname(fname, arg)
                add_tensor(key, arg, Role.INPUT)
                graph_inputs.append(key)

    for fname, op in _walk_bodies(module.operation):
        opname = op.name
        in_keys = tuple(vname(fname, v) for v in op.operands)
        out_keys = tuple(vname(fname, r) for r in op.results)
        for v, k in zip(op.operands, in_keys):
            add_tensor(k, v, Role.ACTIVATION)
        for r, k in zip(op.results, out_keys):
            add_tensor(k, r, Role.ACTIVATION)
        ins_info = [_tensor_info(v.type) for v in op.operands]
        outs_info = [_tensor_info(r.type) for r in op.results]
        bytes_written = sum(_nbytes(i) for i in outs_info)
        attrs = _op_attributes(op)
        dialect = opname.split(".", 1)[0]
        if _is_structured(op):
            generic = generics.get(structured_index)
            structured_index += 1
            info = _linalg_info(op, generic)
            macs, flops, bytes_read, nest, estimated = _structured_costs(op, generic, info,
                                                                         ins_info, attrs)
            key_name = f"{fname}/{info.kind}_{counts.get(info.kind, 0)}"
            linalg[key_name] = info
        else:
            macs, nest = 0, None
            key_name = f"{fname}/{opname}_{counts.get(opname, 0)}"
            flops, bytes_read, writes, estimated = _other_costs(opname, dialect, ins_info,
                                                                outs_info, attrs)
            if not writes:
                bytes_written = 0
            if opname in _CONTROL_OPS and opname.endswith("return"):
                graph_outputs.extend(in_keys)
        base = key_name.rsplit("/", 1)[1].rsplit("_", 1)[0]
        counts[base] = counts.get(base, 0) + 1
        ops.append(Op(name=key_name, op_type=opname, inputs=in_keys, outputs=out_keys,
                      attributes=attrs, macs=int(macs), flops=int(flops),
                      bytes_read=int(bytes_read), bytes_written=int(bytes_written),
                      loop_nest=nest, estimated=estimated, domain=dialect))
    for k in graph_outputs:
        t = tensors[k]
        tensors[k] = Tensor(t.name, t.shape, t.dtype, t.itemsize, Role.OUTPUT)
    gname = name or (func_names[0] if func_names else "mlir")
    graph = Graph(name=gname, ops=tuple(ops), tensors=tensors, inputs=tuple(graph_inputs),
                  outputs=tuple(dict.fromkeys(graph_outputs)),
                  metadata={"source": "mlir", "functions": func_names,
                            "unsupported_ops": sum(1 for o in ops
                                                   if not o.attributes.get("supported", True))})
    parsed = ParsedModule(module=module, graph=graph, linalg=linalg)
    parsed.__dict__["_keepalive"] = (ctx, generics)
    return parsed


def _op_attributes(op: Any) -> dict[str, Any]:
    """An op's attributes as Python values (less a structured op's maps) and its source line."""
    attrs: dict[str, Any] = {}
    for i in range(len(op.attributes)):
        na = op.attributes[i]
        if na.name in ("indexing_maps", "iterator_types", "operandSegmentSizes",
                       "linalg.memoized_indexing_maps"):
            continue
        attrs[na.name] = _attr_value(na.attr)
    loc = _LOC_RE.search(str(op.location))
    if loc:
        attrs["line"] = int(loc.group(1))
    return attrs


def _structured_costs(op: Any, generic: Any, info: LinalgInfo, ins_info: list[Any],
                      attrs: dict[str, Any]
                      ) -> tuple[int, int, int, MatmulNest | ConvNest | None, bool]:
    """MACs, FLOPs, bytes read, loop nest and ``estimated`` flag of a linalg structured op;
    records its analysis in ``attrs``."""
    points = info.points
    n_in = len(op.operands) - len(op.results)
    out_used = generic is not None and _out_arg_used(generic)
    bytes_read = sum(_nbytes(i) for i in ins_info[:max(n_in, 0)])
    if out_used:
        bytes_read += sum(_nbytes(i) for i in ins_info[max(n_in, 0):])
    macs = 0
    if info.is_contraction:
        macs = points
        flops = 2 * points + max(_body_flops(info) - 2, 0) * points
    else:
        flops = _body_flops(info) * points
    nest = _loop_nest(info, attrs)
    estimated = False
    if any(d is None for d in info.domain):  # a dynamic bound: its cost is unknown
        estimated = True
        attrs["dynamic"] = True
    attrs.update(kind=info.kind, iteration_domain=list(info.domain),
                 iterator_types=list(info.iterator_types),
                 indexing_maps=list(info.indexing_maps), body_ops=list(info.body_ops),
                 supported=True)
    return macs, flops, bytes_read, nest, estimated


def _other_costs(opname: str, dialect: str, ins_info: list[Any], outs_info: list[Any],
                 attrs: dict[str, Any]) -> tuple[int, int, bool, bool]:
    """FLOPs, bytes read, whether its results count as bytes written, and ``estimated`` flag
    of an op that is not a linalg structured op; sets ``supported`` (and ``abi_glue``)."""
    flops = bytes_read = 0
    writes, estimated = True, False
    if opname in _CONTROL_OPS or opname in _FREE_OPS:
        attrs["supported"] = True
    elif dialect in ("arith", "math"):
        attrs["supported"] = True
        bytes_read = sum(_nbytes(i) for i in ins_info)
        if opname not in _NON_FLOP:
            flops = sum(max(_nbytes(i) // max(i[2], 1), 1) for i in outs_info if i)
    elif dialect == "tensor":
        attrs["supported"] = True
        bytes_read = sum(_nbytes(i) for i in ins_info if i and i[0])
    elif opname.startswith(_GLUE_PREFIXES):
        attrs["supported"] = False  # kept and flagged, but known to compute nothing
        attrs["abi_glue"] = True
        writes = False
    else:
        attrs["supported"] = False
        estimated = True
        bytes_read = sum(_nbytes(i) for i in ins_info)
        flops = sum(_nbytes(i) // max(i[2], 1) for i in outs_info if i)
    return flops, bytes_read, writes, estimated


def _func_ops(owner: Any) -> Iterator[Any]:
    for region in owner.regions:
        for block in region.blocks:
            for op in block.operations:
                op = op.operation
                if op.name in _FUNC_OPS:
                    yield op
                elif op.name == "builtin.module":
                    yield from _func_ops(op)


def _out_arg_used(generic: Any) -> bool:
    """Does a linalg body read its output (accumulator) argument?"""
    block = generic.regions[0].blocks[0]
    n_out = len(generic.results)
    args = list(block.arguments)[len(block.arguments) - n_out:]
    return any(len(list(a.uses)) > 0 for a in args)


def to_graph(source: str | Any, name: str | None = None) -> Graph:
    """The ir.Graph view of MLIR text or a bindings module (see :func:`parse`)."""
    return parse(source, name=name).graph
