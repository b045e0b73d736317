"""Root ops of an MLIR module and their tile configurations, through the MLIR Python bindings.

:func:`find_root_ops` parses a module with ``iree.compiler.ir`` and lists its linalg root ops
(matmul, batch matmul, convolutions, ...) with their :class:`~mlsysgym.costmodels.tiling_space.TilingInstance`
when a tiling rule applies (and why not otherwise). Given a codegen target it takes each op's
form from IREE's own dispatch creation: IREE folds a weight transpose into the matmul that
reads it, and a matmul whose right operand is transposed is a different kernel (on a Xeon with
AVX-512, IREE's default of OPT's FFN matmul took 37–46 ms plain and 12 ms folded, and 32 of
45 tile choices faster on plain kernels were slower on folded ones: ``benchmarks/tiling_layout.py``),
so the standalone kernel that is measured must have that form too.
:func:`annotate` writes a
:class:`~mlsysgym.costmodels.tiling_space.TileConfig` as the ``compilation_info`` attribute of
chosen ops; :func:`annotate_kernel` does it for a one-op kernel. Used by the compiler pass
(:mod:`mlsysgym.compiler.tiling_pass`) and by measurement (:mod:`.tiling_measure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from mlsysgym.costmodels.tiling_space import (
    TileConfig,
    TilingError,
    TilingInstance,
    _reason_no_rule,
    instance_for,
)
from mlsysgym.ir.mlir_emit import transposed_b_maps

__all__ = ["RootOp", "annotate", "annotate_kernel", "find_root_ops", "in_iree_form",
           "parse_module"]

_OP_KINDS = {"linalg.matmul": "matmul", "linalg.batch_matmul": "batch_matmul",
             "linalg.conv_2d_nhwc_hwcf": "conv_2d_nhwc_hwcf"}
_CANDIDATE_OPS = ("linalg.matmul", "linalg.batch_matmul", "linalg.conv_2d_nhwc_hwcf",
                  "linalg.conv_2d_nchw_fchw", "linalg.conv_2d", "linalg.depthwise_conv_2d_nhwc_hwc",
                  "linalg.depthwise_conv_2d_nchw_chw", "linalg.matvec", "linalg.vecmat",
                  "linalg.batch_matvec", "linalg.generic", "linalg.conv_2d_nhwc_fhwc",
                  "linalg.matmul_transpose_b", "linalg.batch_matmul_transpose_b")


@dataclass(frozen=True)
class RootOp:
    """A candidate root op of a module: index in walk order, op name, problem (None: no rule)."""

    index: int
    name: str
    problem: TilingInstance | None
    reason: str = ""
    location: str = ""


def _context() -> Any:
    from mlsysgym.ir.mlir_parse import context

    return context()


def parse_module(source: str | Any, ctx: Any | None = None) -> Any:
    """An ``ir.Module`` (a fresh parse of the text, or of a given module's printed form)."""
    from mlsysgym.ir.mlir_parse import _parse_text

    text = source if isinstance(source, str) else str(source)
    return _parse_text(text, ctx or _context())


def _walk(op: Any, out: list[Any]) -> None:
    for region in op.regions:
        for block in region.blocks:
            for child in block.operations:
                child = child.operation
                if child.name.startswith("linalg."):
                    out.append(child)
                if child.regions and not child.name.startswith("linalg."):
                    _walk(child, out)


def _linalg_ops(module: Any) -> list[Any]:
    out: list[Any] = []
    _walk(module.operation, out)
    return out


def _shape(value: Any) -> tuple[tuple[int, ...], str] | None:
    from iree.compiler import ir

    t = value.type
    if not isinstance(t, ir.RankedTensorType) or not t.has_static_shape:
        return None
    return tuple(int(d) for d in t.shape), str(t.element_type)


def _int_attr(op: Any, name: str) -> int:
    if name not in op.attributes:
        return 1
    vals = [int(x) for x in str(op.attributes[name]).replace("dense<", "").split(">")[0]
            .replace("[", "").replace("]", "").split(",") if x.strip().lstrip("-").isdigit()]
    if not vals or len(set(vals)) != 1:
        return -1  # anisotropic: no rule
    return vals[0]


def _maps(op: Any) -> list[str]:
    """The op's indexing maps as text, e.g. ``(d0, d1, d2) -> (d0, d2)``."""
    from iree.compiler import ir

    return [str(ir.AffineMapAttr(a).value) for a in ir.ArrayAttr(op.attributes["indexing_maps"])]


def _root_op(index: int, op: Any) -> RootOp | None:
    name = op.name
    if name not in _CANDIDATE_OPS:
        return None
    loc = str(op.location)
    if name == "linalg.generic":
        iters = str(op.attributes["iterator_types"]) if "iterator_types" in op.attributes else ""
        if "reduction" not in iters:
            return None  # element-wise: not a root op of interest
        return RootOp(index, name, None, "no tiling rule for linalg.generic", loc)
    kind = _OP_KINDS.get(name)
    if kind is None:
        return RootOp(index, name, None, f"no tiling rule for {name}", loc)
    transpose_b = False
    if "indexing_maps" in str(op).split(" ins(")[0]:  # printed only when not the default maps
        transpose_b = kind != "conv_2d_nhwc_hwcf" and \
            _maps(op) == transposed_b_maps({"matmul": 3, "batch_matmul": 4}[kind])
        if not transpose_b:
            return RootOp(index, name, None,
                          f"no tiling rule for {name} with these indexing maps", loc)
    shapes = [_shape(v) for v in op.operands]
    if len(shapes) < 3 or any(s is None for s in shapes[:3]):
        return RootOp(index, name, None, "dynamic or non-tensor operands", loc)
    (a, ta), (b, tb), (c, tc) = shapes[0], shapes[1], shapes[2]  # type: ignore[misc]
    dtype = "f32" if ta == tb == tc == "f32" else ta
    if kind == "matmul":
        dims: tuple[int, ...] = (a[0], c[1], a[1])
    elif kind == "batch_matmul":
        dims = (a[0], a[1], c[2], a[2])
    else:
        dims = (c[0], c[1], c[2], c[3], b[0], b[1], b[2])
    stride, dil = _int_attr(op, "strides"), _int_attr(op, "dilations")
    if stride < 1 or dil < 1:
        return RootOp(index, name, None, "anisotropic strides or dilations", loc)
    problem = instance_for(kind, dims, stride, dil, dtype, transpose_b)
    if problem is not None and problem.mnkh[0] == 1:
        return RootOp(index, name, None, "M = 1 (a matrix-vector product): IREE folds the unit "
                      "dim in context, which a standalone kernel does not show; default kept",
                      loc)
    if problem is None:
        reason = _reason_no_rule(kind, dims) if dtype == "f32" else f"element type {dtype} (rules are f32)"
        return RootOp(index, name, None, reason, loc)
    return RootOp(index, name, problem, "", loc)


def find_root_ops(module: str | Any, target_cpu: str | None = None) -> list[RootOp]:
    """Contraction / convolution / reduction linalg ops of a module (MLIR text or
    ``ir.Module``), each with its TilingInstance or the reason it has no rule. With a codegen
    ``target_cpu``, each (batch) matmul takes the form IREE's dispatch creation gives it
    (:func:`in_iree_form`)."""
    ctx = _context()
    with ctx:
        mod = parse_module(module, ctx)
        roots = [r for i, op in enumerate(_linalg_ops(mod)) if (r := _root_op(i, op)) is not None]
    if target_cpu is None or not any(r.problem is not None for r in roots):
        return roots
    return in_iree_form(roots, str(module), target_cpu)


def _loops(p: TilingInstance) -> tuple[Any, ...]:
    return p.kind, p.dims, p.stride, p.dilation


@lru_cache(maxsize=4)  # the pass and its callers (calibration, the CLI) ask for one module twice
def _dispatch_problems(text: str, target_cpu: str) -> tuple[TilingInstance, ...]:
    """The problems of the root ops of ``iree-compile --compile-to=dispatch-creation``."""
    from mlsysgym.costmodels.tiling_space import executable_configurations

    out = executable_configurations(text, target_cpu, timeout_s=600.0, what="the module",
                                    phase="dispatch-creation")
    return tuple(r.problem for r in find_root_ops(out) if r.problem is not None)


def in_iree_form(roots: list[RootOp], text: str, target_cpu: str) -> list[RootOp]:
    """``roots`` (of module ``text``) with each (batch) matmul's problem in the form IREE's
    dispatch creation gives it for ``target_cpu`` (``iree-compile
    --compile-to=dispatch-creation``, parsed with the bindings): ops of one kind and loop
    bounds are paired in program order. One whose shape IREE's dispatches hold a different
    number of times, or in a form without a rule, loses its problem (IREE's default is kept)
    with the reason. Convolutions are left as they are: IREE generalizes them, in a module
    and in a standalone kernel alike."""
    from collections import defaultdict

    theirs: dict[tuple[Any, ...], list[TilingInstance]] = defaultdict(list)
    for p in _dispatch_problems(text, target_cpu):
        theirs[_loops(p)].append(p)
    ours: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in roots:
        if r.problem is not None:
            ours[_loops(r.problem)] += 1
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    out = []
    for r in roots:
        if r.problem is None or r.problem.kind not in ("matmul", "batch_matmul"):
            out.append(r)
            continue
        key = _loops(r.problem)
        forms = theirs.get(key, [])
        if len(forms) != ours[key]:
            out.append(replace(r, problem=None, reason=(
                f"IREE's dispatches hold {len(forms)} op(s) of this kind and shape where the "
                f"module has {ours[key]}: its form is unknown; default kept")))
            continue
        out.append(replace(r, problem=forms[seen[key]]))
        seen[key] += 1
    return out


def annotate(module: str | Any, configs: Mapping[int, TileConfig]) -> str:
    """MLIR text of ``module`` with ``compilation_info`` set on the linalg ops whose walk index
    (``RootOp.index``) is a key of ``configs``."""
    from iree.compiler import ir

    ctx = _context()
    with ctx:
        mod = parse_module(module, ctx)
        ops = _linalg_ops(mod)
        for i, cfg in configs.items():
            try:
                attr = ir.Attribute.parse(cfg.to_attr())
            except ir.MLIRError as e:
                raise TilingError(f"configuration does not parse as compilation_info: {e}") from None
            ops[i].attributes["compilation_info"] = attr
        return str(mod)


def annotate_kernel(text: str, cfg: TileConfig | None) -> str:
    """A one-root-op kernel's text with ``cfg`` on its root op (unchanged when None)."""
    if cfg is None:
        return text
    roots = [r for r in find_root_ops(text) if r.problem is not None]
    if len(roots) != 1:
        raise TilingError("kernel text must hold exactly one root op with a tiling rule")
    return annotate(text, {roots[0].index: cfg})
