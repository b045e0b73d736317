"""ONNX (a zoo model or a file) → MLIR: torch-onnx dialect, then linalg on tensors through IREE.

The zoo's ONNX files are graph-only (their weights point to external data that does not
exist), so before import every external initializer becomes a graph input: weights turn into
function arguments of the imported function, shapes and MACs unchanged, no data needed.
Import uses IREE's ONNX importer (``iree.compiler.extras.onnx_importer``, what
``iree-import-onnx`` runs); lowering runs ``iree-compile --compile-to=input``, the last phase
whose output still holds linalg *named* ops (``linalg.matmul``, ``linalg.conv_2d_nchw_fchw``,
...; the next phase, ``global-optimization``, rewrites convs to ``linalg.generic``).

Lowered modules are cached on disk by content hash of (ONNX graph, flags, compiler version,
this CPU's :func:`~mlsysgym.core.target.host_key`, as phases past ``input`` can depend on it)
under ``$MLSYSGYM_CACHE_DIR`` or ``~/.cache/mlsysgym`` (``mlir-import/``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.limits import run_limited
from mlsysgym.core.target import host_key
from mlsysgym.ir.errors import WorkloadError

__all__ = ["DEFAULT_PHASE", "ExtractedKernel", "ImportedModel", "MlirImportError",
           "cache_dir", "compiler_version", "export_zoo_kernels", "extract_kernels",
           "import_model", "lower_to_linalg", "onnx_to_mlir"]

DEFAULT_PHASE = "input"
TARGET_FLAGS: tuple[str, ...] = ("--iree-hal-target-device=local",
                                 "--iree-hal-local-target-device-backends=llvm-cpu",
                                 "--iree-llvmcpu-target-cpu=host")


class MlirImportError(WorkloadError):
    """An ONNX model that IREE's importer or its lowering to linalg rejects."""


@dataclass(frozen=True)
class ImportedModel:
    """A model imported to MLIR: torch-onnx text, linalg text (phase ``phase``), timings."""

    name: str
    torch_mlir: str
    linalg_mlir: str
    phase: str
    import_s: float
    lower_s: float
    cached: bool = False


@dataclass(frozen=True)
class ExtractedKernel:
    """One linalg op of a module as a standalone function (``@kernel``) with its costs."""

    index: int
    op_name: str
    kind: str
    mlir: str
    domain: tuple[int | None, ...]
    iterator_types: tuple[str, ...]
    operand_types: tuple[str, ...]
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int


def cache_dir(sub: str = "") -> Path:
    """The on-disk cache root (``$MLSYSGYM_CACHE_DIR`` or ``~/.cache/mlsysgym``) / ``sub``."""
    root = Path(os.environ.get("MLSYSGYM_CACHE_DIR", Path.home() / ".cache" / "mlsysgym"))
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler_version() -> str:
    """The installed IREE compiler's version string (part of every cache key)."""
    try:
        from iree.compiler import version

        return str(getattr(version, "VERSION", "unknown"))
    except ImportError:  # pragma: no cover - iree is a dependency
        return "unknown"


def iree_compile_path() -> str:
    """Path of the ``iree-compile`` binary shipped with iree-base-compiler."""
    from iree.compiler.tools import binaries

    return binaries.find_tool("iree-compile")


def _load_onnx(source: Any) -> tuple[Any, str]:
    """An onnx.ModelProto (external data not loaded) and a name from a zoo name, path or proto."""
    import onnx

    if isinstance(source, onnx.ModelProto):
        return source, source.graph.name or "model"
    text = os.fspath(source)
    p = Path(text).expanduser()
    if not p.is_file():
        from mlsysgym.ir import zoo

        p = zoo.path(text)  # raises WorkloadNotFoundError with a hint
    try:
        return onnx.load(str(p), load_external_data=False), p.stem
    except Exception as e:  # noqa: BLE001 - onnx raises several types on bad files
        raise MlirImportError(f"cannot read ONNX file {p}: {e}") from None


def _weights_as_inputs(model: Any) -> Any:
    """A copy of ``model`` whose external (or any large) initializers are graph inputs."""
    import onnx
    from onnx import external_data_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep, moved = [], []
    for init in m.graph.initializer:
        if external_data_helper.uses_external_data(init):
            moved.append(onnx.helper.make_tensor_value_info(init.name, init.data_type,
                                                            list(init.dims)))
        else:
            keep.append(init)
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    existing = {i.name for i in m.graph.input}
    m.graph.input.extend(v for v in moved if v.name not in existing)
    return m


MIN_OPSET = 13  # older opsets (e.g. Softmax-1 semantics) are upgraded before import


def onnx_to_mlir(source: Any, min_opset: int = MIN_OPSET) -> tuple[str, str]:
    """(name, torch-onnx MLIR text) of a zoo name, ONNX path or ModelProto; weights become
    function arguments (no weight data is needed). Models of an opset below ``min_opset`` are
    converted to it first (IREE's lowering lacks some old-opset semantics)."""
    import onnx
    from iree.compiler import ir
    from iree.compiler.extras import onnx_importer
    from mlsysgym.ir.onnx_import import check_structure

    model, name = _load_onnx(source)
    check_structure(model)  # cycles, undefined or twice-written tensors: IREE takes them
    model = _weights_as_inputs(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset < min_opset:
        try:
            model = onnx.version_converter.convert_version(model, min_opset)
        except Exception:  # noqa: BLE001, S110 - import the original; lowering may still work
            pass
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001, S110 - shapes are usually present already; import anyway
        pass
    try:
        ctx = ir.Context()
        info = onnx_importer.ModelInfo(model)
        module = info.create_module(context=ctx).operation
        importer = onnx_importer.NodeImporter.define_function(info.main_graph, module)
        importer.import_all()
        module.verify()
        return name, module.get_asm()
    except Exception as e:  # noqa: BLE001 - the importer raises many types
        msg = " ".join(str(e).split())[:300]
        raise MlirImportError(f"IREE's ONNX importer rejected {name}: {msg}") from None


def lower_to_linalg(mlir_text: str, phase: str = DEFAULT_PHASE,
                    extra_flags: Sequence[str] = (), timeout_s: float | None = None) -> str:
    """Lower torch-onnx (or any IREE input) MLIR with ``iree-compile --compile-to=PHASE``,
    under the subprocess limits of :mod:`mlsysgym.core.limits` (``timeout_s`` None: the
    default, 600 s or ``MLSYSGYM_SUBPROCESS_TIMEOUT_S``); ResourceLimitError past them."""
    cmd = [iree_compile_path(), "-", "-o", "-", f"--compile-to={phase}", *TARGET_FLAGS,
           *extra_flags]
    proc = run_limited(cmd, f"iree-compile --compile-to={phase}", input=mlir_text.encode(),
                       timeout_s=timeout_s)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        first = next((ln for ln in err if "error" in ln), err[0] if err else "unknown error")
        raise MlirImportError(f"iree-compile --compile-to={phase} failed: {first.strip()[:300]}")
    return proc.stdout.decode()


_CHECKSUM_PREFIX = "// mlsysgym-cache sha256="


def _checksum_line(text: str) -> str:
    """The trailing comment that lets a cache entry be verified on read."""
    return f"\n{_CHECKSUM_PREFIX}{hashlib.sha256(text.encode()).hexdigest()}\n"


def _read_cache_entry(path: Path) -> str | None:
    """A cached module's text if the entry is whole (its checksum line matches); a missing
    entry is None, and so is a bad one (truncated, binary, from an older version), which is
    deleted with a one-line notice so that it is rebuilt."""
    if not path.is_file():
        return None
    try:
        raw = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raw = ""
    body, sep, digest = raw.rstrip("\n").rpartition("\n" + _CHECKSUM_PREFIX)
    if sep and hashlib.sha256(body.encode()).hexdigest() == digest:
        return body
    logging.getLogger(__name__).warning(
        "mlsysgym: discarding a damaged MLIR-import cache entry %s; rebuilding it", path)
    path.unlink(missing_ok=True)
    return None


def import_model(source: Any, phase: str = DEFAULT_PHASE, extra_flags: Sequence[str] = (),
                 cache: bool = True) -> ImportedModel:
    """Import a zoo model / ONNX file / ModelProto to MLIR and lower it to linalg (``phase``).

    Results are cached on disk (see module doc); ``cache=False`` recomputes.
    """
    t0 = time.perf_counter()
    name, torch_mlir = onnx_to_mlir(source)
    t1 = time.perf_counter()
    flags = [*TARGET_FLAGS, *extra_flags]  # phases past input can depend on the host's ISA
    key = hashlib.sha256(json.dumps([torch_mlir, phase, flags, compiler_version(),
                                     host_key(flags)]).encode()).hexdigest()[:24]
    path = cache_dir("mlir-import") / f"{name}-{phase}-{key}.mlir"
    cached = _read_cache_entry(path) if cache else None
    if cached is not None:
        return ImportedModel(name, torch_mlir, cached, phase, t1 - t0, 0.0, True)
    linalg = lower_to_linalg(torch_mlir, phase, extra_flags)
    t2 = time.perf_counter()
    if cache:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(linalg + _checksum_line(linalg), encoding="utf-8")
        os.replace(tmp, path)
    return ImportedModel(name, torch_mlir, linalg, phase, t1 - t0, t2 - t1, False)


def extract_kernels(parsed: Any) -> list[ExtractedKernel]:
    """Every linalg structured op of a ParsedModule as a standalone ``func.func @kernel``.

    Operands become function arguments (``tensor.empty`` outputs stay inside), results are
    returned. Ops with dynamic shapes are skipped.
    """
    from iree.compiler import ir
    from mlsysgym.ir.mlir_parse import _is_structured, _walk_bodies

    module = parsed.module
    ctx = module.context
    graph_ops = [op for op in parsed.graph.ops if op.attributes.get("kind")]
    out: list[ExtractedKernel] = []
    structured = [op for _f, op in _walk_bodies(module.operation) if _is_structured(op)]
    with ctx, ir.Location.unknown():
        for index, (op, gop) in enumerate(zip(structured, graph_ops)):
            if any(d is None for d in gop.attributes.get("iteration_domain", [None])):
                continue
            types = [v.type for v in op.operands]
            if not all(isinstance(t, ir.RankedTensorType) or not isinstance(t, ir.ShapedType)
                       for t in types):
                continue
            new = ir.Module.create()
            with ir.InsertionPoint(new.body):
                arg_types, empties = [], []
                for v in op.operands:
                    owner = v.owner
                    is_empty = (isinstance(owner, ir.OpView | ir.Operation)
                                and owner.operation.name == "tensor.empty")
                    empties.append(is_empty)
                    if not is_empty:
                        arg_types.append(v.type)
                res_types = [r.type for r in op.results]
                ftype = ir.FunctionType.get(arg_types, res_types)
                func = ir.Operation.create("func.func", regions=1, attributes={
                    "sym_name": ir.StringAttr.get("kernel"),
                    "function_type": ir.TypeAttr.get(ftype)})
                block = func.regions[0].blocks.append(*arg_types)
                with ir.InsertionPoint(block):
                    args = iter(block.arguments)
                    values = []
                    for v, is_empty in zip(op.operands, empties):
                        if is_empty:
                            values.append(ir.Operation.create(
                                "tensor.empty", results=[v.type], operands=[]).result)
                        else:
                            values.append(next(args))
                    captured = _captured_values(op)
                    replacement = [ir.Operation.create(
                        c.owner.operation.name, results=[c.type],
                        attributes={a.name: a.attr for a in _named_attrs(c.owner.operation)}
                    ).result for c in captured]
                    clone = op.clone()
                    for i, v in enumerate(values):
                        clone.operands[i] = v
                    _replace_nested(clone, captured, replacement)
                    ir.Operation.create("func.return", operands=list(clone.results))
            try:
                new.operation.verify()
            except ir.MLIRError:
                continue
            out.append(ExtractedKernel(
                index=index, op_name=gop.name, kind=gop.attributes["kind"], mlir=str(new),
                domain=tuple(gop.attributes["iteration_domain"]),
                iterator_types=tuple(gop.attributes["iterator_types"]),
                operand_types=tuple(str(t) for t in types), macs=gop.macs, flops=gop.flops,
                bytes_read=gop.bytes_read, bytes_written=gop.bytes_written))
    return out


def _named_attrs(op: Any) -> list[Any]:
    return [op.attributes[i] for i in range(len(op.attributes))]


def _nested_ops(op: Any) -> list[Any]:
    out = []
    for region in op.regions:
        for block in region.blocks:
            for inner in block.operations:
                out.append(inner.operation)
                out.extend(_nested_ops(inner.operation))
    return out


def _captured_values(op: Any) -> list[Any]:
    """Constants defined outside ``op`` but used inside its regions (e.g. ``%cst`` of a ReLU).

    Only constant-like captures (``arith.constant``) can be re-created; anything else makes
    the kernel non-standalone and it is skipped by verification.
    """
    from iree.compiler import ir

    inner = _nested_ops(op)
    inside = {id(o) for o in inner}
    inner_ops = [o for o in inner]
    found: list[Any] = []
    for o in inner_ops:
        for v in o.operands:
            owner = v.owner
            if isinstance(owner, ir.Block):
                continue
            owner_op = owner.operation
            if any(owner_op == x for x in inner_ops) or id(owner_op) in inside:
                continue
            if owner_op.name == "arith.constant" and not any(v == f for f in found):
                found.append(v)
    return found


def _replace_nested(op: Any, old: list[Any], new: list[Any]) -> None:
    if not old:
        return
    for o in _nested_ops(op):
        for i, v in enumerate(list(o.operands)):
            for a, b in zip(old, new):
                if v == a:
                    o.operands[i] = b


def _fmt(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def export_zoo_kernels(out_dir: str | os.PathLike[str], models: Sequence[str] | None = None,
                       dedupe: bool = True, progress: Any = None) -> dict[str, int]:
    """Write every zoo model's linalg kernels as a browsable folder; return kernels per model.

    Layout: ``OUT/index.md`` (models), ``OUT/<model>/index.md`` (one row per kernel: kind,
    domain, MACs, bytes, file), ``OUT/<model>/kernels.json`` and ``OUT/<model>/NNNN_<kind>.mlir``
    (standalone ``@kernel`` functions; identical kernels written once when ``dedupe``). A model
    that fails to import is listed with its error.
    """
    from mlsysgym.ir import zoo
    from mlsysgym.ir.mlir_parse import parse

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    lines = ["# Linalg kernels of the mlsysgym zoo", "",
             (f"Lowered with `iree-compile --compile-to={DEFAULT_PHASE}` (IREE "
              f"{compiler_version()})."), "", "| model | kernels | MACs | note |", "|---|---|---|---|"]
    for name in models or zoo.names():
        if progress is not None:
            progress(name)
        try:
            parsed = parse(import_model(name).linalg_mlir, name=name)
            kernels = extract_kernels(parsed)
        except MlsysgymError as e:
            lines.append(f"| {name} | 0 | - | {str(e)[:120]} |")
            continue
        mdir = root / name
        mdir.mkdir(exist_ok=True)
        seen: dict[str, str] = {}
        rows, meta = [], []
        for k in kernels:
            h = hashlib.sha256(k.mlir.encode()).hexdigest()[:16]
            if dedupe and h in seen:
                fname = seen[h]
            else:
                fname = f"{k.index:04d}_{k.kind}.mlir"
                (mdir / fname).write_text(k.mlir)
                seen[h] = fname
            dom = "×".join("?" if d is None else str(d) for d in k.domain)
            its = "".join("p" if t == "parallel" else "r" for t in k.iterator_types)
            rows.append(f"| {k.index} | {k.kind} | {dom} | {its} | {_fmt(k.macs)} | "
                        f"{_fmt(k.bytes_read + k.bytes_written)} | [{fname}]({fname}) |")
            meta.append({"index": k.index, "op": k.op_name, "kind": k.kind, "file": fname,
                         "domain": list(k.domain), "iterator_types": list(k.iterator_types),
                         "macs": k.macs, "flops": k.flops, "bytes_read": k.bytes_read,
                         "bytes_written": k.bytes_written})
        (mdir / "index.md").write_text("\n".join(
            [f"# {name}: {len(kernels)} linalg ops ({len(seen)} distinct kernels)", "",
             "| # | kind | domain | loops (p/r) | MACs | bytes | file |",
             "|---|---|---|---|---|---|---|", *rows, ""]))
        (mdir / "kernels.json").write_text(json.dumps(meta, indent=1))
        counts[name] = len(kernels)
        total = sum(k.macs for k in kernels)
        lines.append(f"| [{name}]({name}/index.md) | {len(kernels)} ({len(seen)} distinct) | "
                     f"{_fmt(total)} | |")
    (root / "index.md").write_text("\n".join(lines + [""]))
    return counts
