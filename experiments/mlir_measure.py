"""Measured-kernel dataset: kernels with the shapes of the zoo's models, timed on this CPU.

:func:`zoo_kernel_specs` imports every zoo model to linalg (``mlsysgym.ir.mlir``) and turns
each matmul, batch matmul, conv, depthwise conv, element-wise and reduction op into a
:class:`KernelSpec` (convs re-laid out as NHWC/HWCF, the layout the emitter writes).
:func:`sample_specs` draws a deterministic sequence: the distinct zoo shapes, interleaved with
controlled perturbations of them (each size scaled by a factor in :data:`FACTORS`, window
sizes and strides kept), every kernel capped at ``max_macs`` / ``max_elements``.
:func:`measure_dataset` measures them with the ``iree-cpu`` evaluator's machinery and appends
one row per kernel to a Parquet dataset directory (``core.dataset.ParquetAppender``). A row's
``key`` hashes (kernel, compile flags, compiler version); ``resume=True`` skips keys already in
the dataset, so a killed run continues where it stopped. Compiles of upcoming kernels run in
``compile_workers`` background subprocesses while the current one is timed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.mlir_emit import ELEMENTWISE_OPS, KernelSpec, emit
from mlsysgym.ir.mlir_import import cache_dir, compiler_version

__all__ = ["FACTORS", "MeasureSummary", "Sample", "measure_dataset", "sample_specs",
           "spec_from_op", "zoo_kernel_specs"]

FACTORS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
# How often each kind is drawn for a perturbation (the zoo has far more element-wise ops).
KIND_WEIGHTS: dict[str, float] = {"matmul": 0.1, "batch_matmul": 0.2, "conv_2d_nhwc_hwcf": 0.25,
                                  "depthwise_conv_2d_nhwc_hwc": 0.1, "elementwise": 0.2,
                                  "reduction": 0.15}
DESIGN_COLUMNS = ("kind", "shape", "dtype", "op", "stride", "dilation", "reduce_dims")
METRIC_COLUMNS = ("runtime_us", "runtime_spread_us", "runtime_cv", "compile_s", "ok")


@dataclass(frozen=True)
class Sample:
    """A kernel to measure and where its shape comes from (``zoo:<model>`` or ``perturbed:<model>``)."""

    spec: KernelSpec
    source: str


@dataclass(frozen=True)
class MeasureSummary:
    """What a :func:`measure_dataset` run did."""

    requested: int
    skipped: int
    measured: int
    failed: int
    seconds: float
    out: str

    @property
    def kernels_per_minute(self) -> float:
        return 60.0 * self.measured / self.seconds if self.seconds > 0 else 0.0


def _elementwise_op(body: Sequence[str], n_inputs: int) -> str:
    names = set(body)
    if "math.exp" in names and "arith.divf" in names:
        return "sigmoid"
    if "math.exp" in names:
        return "exp"
    if "math.tanh" in names:
        return "tanh"
    if n_inputs < 2:
        return "relu"
    for op, name in (("arith.mulf", "mul"), ("arith.subf", "sub"), ("arith.maximumf", "maximum")):
        if op in names:
            return name
    return "add"


def spec_from_op(op: Any, dtype: str = "f32") -> KernelSpec | None:
    """The KernelSpec of a parsed linalg op (an ``ir.Op`` from ``mlir.parse``), else None."""
    a = op.attributes
    kind = a.get("kind")
    dom = a.get("iteration_domain")
    if not kind or not dom or any(d is None for d in dom):
        return None
    strides = a.get("strides", [1])
    dils = a.get("dilations", [1])
    stride = int(strides[0]) if isinstance(strides, list) and strides else 1
    dil = int(dils[0]) if isinstance(dils, list) and dils else 1
    try:
        if kind in ("matmul", "batch_matmul", "conv_2d_nhwc_hwcf", "depthwise_conv_2d_nhwc_hwc"):
            return KernelSpec(kind, tuple(dom), dtype, stride=stride, dilation=dil)
        if kind == "conv_2d_nchw_fchw":
            n, f, oh, ow, c, kh, kw = dom
            return KernelSpec("conv_2d_nhwc_hwcf", (n, oh, ow, f, kh, kw, c), dtype,
                              stride=stride, dilation=dil)
        if kind == "depthwise_conv_2d_nchw_chw":
            n, c, oh, ow, kh, kw = dom
            return KernelSpec("depthwise_conv_2d_nhwc_hwc", (n, oh, ow, c, kh, kw), dtype,
                              stride=stride, dilation=dil)
        if kind == "generic" and op.macs == 0:
            iters = a.get("iterator_types", [])
            body = a.get("body_ops", ())
            if all(t == "parallel" for t in iters):
                n_in = max(len(op.inputs) - len(op.outputs), 1)
                return KernelSpec("elementwise", tuple(dom), dtype,
                                  op=_elementwise_op(body, n_in))
            red = tuple(i for i, t in enumerate(iters) if t != "parallel")
            rop = "max" if "arith.maximumf" in body else "sum"
            if len(red) < len(dom):
                return KernelSpec("reduction", tuple(dom), dtype, op=rop, reduce_dims=red)
    except MlsysgymError:
        return None
    return None


def _spec_key(spec: KernelSpec) -> str:
    return json.dumps(spec.to_design(), sort_keys=True)


def zoo_kernel_specs(models: Sequence[str] | None = None, dtype: str = "f32",
                     progress: Callable[[str], None] | None = None) -> list[tuple[str, KernelSpec]]:
    """Distinct (model, KernelSpec) pairs of the zoo's linalg ops (cached on disk).

    A model that fails to import is skipped (with a note to ``progress`` if given).
    """
    from mlsysgym.ir import zoo
    from mlsysgym.ir.mlir_import import import_model
    from mlsysgym.ir.mlir_parse import parse

    models = list(models or zoo.names())
    key = hashlib.sha256(json.dumps([models, dtype, compiler_version(), 3]).encode()).hexdigest()
    path = cache_dir("mlir-import") / f"zoo-kernel-specs-{key[:16]}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return [(m, KernelSpec.from_design(d)) for m, d in data]
    seen: set[str] = set()
    out: list[tuple[str, KernelSpec]] = []
    for name in models:
        if progress:
            progress(f"importing {name}")
        try:
            parsed = parse(import_model(name).linalg_mlir, name=name)
        except MlsysgymError as e:
            if progress:
                progress(f"skipped {name}: {e}")
            continue
        for op in parsed.graph.ops:
            spec = spec_from_op(op, dtype)
            if spec is not None and _spec_key(spec) not in seen:
                seen.add(_spec_key(spec))
                out.append((name, spec))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps([[m, s.to_design()] for m, s in out]))
    os.replace(tmp, path)
    return out


def _elements(spec: KernelSpec) -> int:
    return max(math.prod(s) for s in [*spec.input_shapes(), spec.output_shape()])


def _shrink(spec: KernelSpec, max_macs: float, max_elements: float) -> KernelSpec:
    """Halve the largest non-window size until the kernel fits the caps."""
    shape = list(spec.shape)
    window = {"conv_2d_nhwc_hwcf": (4, 5), "depthwise_conv_2d_nhwc_hwc": (4, 5)}.get(spec.kind, ())

    def fits(s: KernelSpec) -> bool:
        work = s.macs if s.macs else s.points
        return work <= max_macs and _elements(s) <= max_elements

    cur = spec
    while not fits(cur):
        idx = max((i for i in range(len(shape)) if i not in window), key=lambda i: shape[i])
        if shape[idx] <= 1:
            break
        shape[idx] = max(1, shape[idx] // 2)
        cur = KernelSpec(spec.kind, tuple(shape), spec.dtype, spec.op, spec.stride,
                         spec.dilation, spec.reduce_dims)
    return cur


def _perturb(spec: KernelSpec, rng: np.random.Generator) -> KernelSpec:
    window = {"conv_2d_nhwc_hwcf": (4, 5), "depthwise_conv_2d_nhwc_hwc": (4, 5)}.get(spec.kind, ())
    shape = []
    for i, d in enumerate(spec.shape):
        if i in window or d == 1:
            shape.append(d)
        else:
            shape.append(max(1, round(d * float(rng.choice(FACTORS)))))
    op = spec.op
    if spec.kind == "elementwise" and rng.random() < 0.3:
        op = str(rng.choice(list(ELEMENTWISE_OPS)))
    return KernelSpec(spec.kind, tuple(shape), spec.dtype, op, spec.stride, spec.dilation,
                      spec.reduce_dims)


def sample_specs(n: int, seed: int = 0, models: Sequence[str] | None = None,
                 max_macs: float = 2.5e8, max_elements: float = 4e6, exact_fraction: float = 0.5,
                 progress: Callable[[str], None] | None = None) -> list[Sample]:
    """``n`` distinct kernels (deterministic for ``seed``): zoo shapes and perturbations."""
    base = zoo_kernel_specs(models, progress=progress)
    if not base:
        raise MlsysgymError("no zoo model could be imported to linalg; check `mlsysgym mlir import`")
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(base)))
    by_kind: dict[str, list[int]] = {}
    for i, (_m, sp) in enumerate(base):
        by_kind.setdefault(sp.kind, []).append(i)
    kinds = [k for k in KIND_WEIGHTS if k in by_kind]
    weights = np.array([KIND_WEIGHTS[k] for k in kinds])
    weights = weights / weights.sum()
    out: list[Sample] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n and attempts < 50 * n + 1000:
        attempts += 1
        if order and rng.random() < exact_fraction:
            model, spec = base[order.pop()]
            source = f"zoo:{model}"
        else:
            pool = by_kind[kinds[int(rng.choice(len(kinds), p=weights))]]
            model, spec = base[pool[int(rng.integers(len(pool)))]]
            spec = _perturb(spec, rng)
            source = f"perturbed:{model}"
        spec = _shrink(spec, max_macs, max_elements)
        k = _spec_key(spec)
        if k in seen:
            continue
        seen.add(k)
        out.append(Sample(spec, source))
    return out


def row_key(spec: KernelSpec, flags: Sequence[str]) -> str:
    """Identity of a dataset row: hash of (kernel, compile flags, compiler version)."""
    blob = json.dumps([spec.to_design(), list(flags), compiler_version()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _kernel_costs(spec: KernelSpec, mlir_text: str) -> dict[str, int]:
    from mlsysgym.ir.mlir_parse import parse

    g = parse(mlir_text).graph
    main = [op for op in g.ops if op.attributes.get("kind") and op.op_type != "linalg.fill"]
    read, written = spec.bytes()
    return {"macs": spec.macs, "flops": int(sum(op.flops for op in main)),
            "bytes_read": read, "bytes_written": written}


def _done_keys(out_path: Path, resume: bool) -> set[str]:
    """Row keys already in the dataset at ``out_path`` when resuming; MlsysgymError if it
    has rows and ``resume`` is False."""
    from mlsysgym.core.dataset import read_dataset

    done: set[str] = set()
    if resume and out_path.is_dir():
        df = read_dataset(out_path)
        if "key" in df:
            done = set(df["key"].astype(str))
    elif out_path.is_dir() and any(out_path.glob("part-*.parquet")) and not resume:
        raise MlsysgymError(f"dataset {out_path} already has rows; pass --resume to continue it "
                            "or choose another --out")
    return done


def _progress_bar() -> Any:
    """A rich progress bar for the measurement (not started)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]measuring"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                    TimeRemainingColumn())


def _dataset_row(sample: Sample, kernel: Any, m: Any, compiler: Any, machine: dict[str, Any],
                 evaluator_id: str, seed: int) -> dict[str, Any]:
    """The dataset row of one measured kernel."""
    costs = _kernel_costs(sample.spec, kernel.mlir)
    key = row_key(sample.spec, compiler.flags)
    return {
        "key": key, "mlir": kernel.mlir,
        **{c: None for c in DESIGN_COLUMNS}, **sample.spec.to_design(),
        "rank": len(sample.spec.shape), **costs,
        "compile_flags": " ".join(compiler.flags), "source": sample.source,
        "runtime_us": m.runtime_us, "runtime_spread_us": m.runtime_spread_us,
        "runtime_cv": m.runtime_cv, "runtime_min_us": m.runtime_min_us,
        "compile_s": m.compile_s, "ok": m.ok,
        "reps": m.reps, "max_rel_err": m.max_rel_err, "error": m.error,
        "compile_cached": m.compile_cached, "machine": json.dumps(machine),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "compiler_version": compiler.version, "evaluator_id": evaluator_id,
        "workload_id": sample.source.split(":", 1)[-1], "seed": seed,
        "timestamp": datetime.now(UTC).isoformat(), "row_id": key,
    }


def measure_dataset(n: int, out: str | os.PathLike[str], resume: bool = False, seed: int = 0,
                    models: Sequence[str] | None = None, max_macs: float = 2.5e8,
                    compile_workers: int = 1, batch_size: int = 8, timeout_s: float = 60.0,
                    extra_flags: Sequence[str] = (), timing: dict[str, Any] | None = None,
                    cache_path: str | os.PathLike[str] | None = None, show_progress: bool = True,
                    samples: Sequence[Sample] | None = None,
                    max_seconds: float | None = None) -> MeasureSummary:
    """Measure ``n`` sampled kernels and append one row each to the dataset at ``out``.

    Kernels are compiled ``batch_size`` at a time (one ``iree-compile`` run per batch, see
    ``KernelCompiler.compile_many``), up to ``compile_workers`` batches ahead in background
    threads while the current batch is timed (0: compile in the foreground). ``samples``
    replaces the sampler; ``max_seconds`` stops early (rows so far are kept, and
    ``resume=True`` continues later).
    """
    from mlsysgym.core.dataset import ParquetAppender
    from mlsysgym.simulators.iree_cpu import KernelCompiler, machine_description, measure

    compiler = KernelCompiler(extra_flags=extra_flags, timeout_s=timeout_s, cache_path=cache_path)
    out_path = Path(out)
    done = _done_keys(out_path, resume)
    notes: list[str] = []
    todo_samples = list(samples) if samples is not None else sample_specs(
        n, seed, models, max_macs, progress=notes.append)
    todo = [s for s in todo_samples if row_key(s.spec, compiler.flags) not in done]
    skipped = len(todo_samples) - len(todo)
    machine = machine_description()
    evaluator_id = f"iree-cpu@1+{hashlib.sha256(json.dumps([list(compiler.flags), compiler.version]).encode()).hexdigest()[:8]}"
    t0 = time.perf_counter()
    measured = failed = 0
    kernels = [emit(s.spec) for s in todo]
    batch_size = max(int(batch_size), 1)
    batches = [list(range(b, min(b + batch_size, len(kernels))))
               for b in range(0, len(kernels), batch_size)]
    batch_of = {i: bi for bi, idx in enumerate(batches) for i in idx}
    pool = ThreadPoolExecutor(max_workers=compile_workers) if compile_workers > 0 else None
    futures: dict[int, Future[Any]] = {}
    compiled: dict[int, Any] = {}

    def submit(bi: int) -> None:
        if pool is not None and bi < len(batches) and bi not in futures:
            futures[bi] = pool.submit(compiler.compile_many,
                                      [kernels[i].mlir for i in batches[bi]])

    def results_of(bi: int) -> None:
        if bi in futures:
            res = futures.pop(bi).result()
        else:
            res = compiler.compile_many([kernels[i].mlir for i in batches[bi]])
        compiled.update(zip(batches[bi], res))

    progress_ctx = _progress_bar() if show_progress else None
    writer = ParquetAppender(out_path, flush_every=8, part_rows=512,
                             provenance_extra={"evaluator": "iree-cpu",
                                               "evaluator_id": evaluator_id})
    try:
        task = None
        if progress_ctx is not None:
            progress_ctx.start()
            task = progress_ctx.add_task("measure", total=len(kernels), info="")
        for i, (sample, kernel) in enumerate(zip(todo, kernels)):
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
            bi = batch_of[i]
            for ahead in range(bi, bi + compile_workers + 1):
                submit(ahead)
            if i not in compiled:
                results_of(bi)
            m = measure(kernel, compiler, seed=seed, compiled=compiled.pop(i), **(timing or {}))
            row = _dataset_row(sample, kernel, m, compiler, machine, evaluator_id, seed)
            writer.append([row], DESIGN_COLUMNS, METRIC_COLUMNS)
            measured += 1
            failed += 0 if m.ok else 1
            if progress_ctx is not None and task is not None:
                info = (f"{sample.spec.kind} {'x'.join(map(str, sample.spec.shape))} "
                        + (f"{m.runtime_us:.1f} µs" if m.ok else "FAILED"))
                progress_ctx.update(task, advance=1, info=info[:48])
    finally:
        writer.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if progress_ctx is not None:
            progress_ctx.stop()
    return MeasureSummary(len(todo_samples), skipped, measured, failed,
                          time.perf_counter() - t0, str(out_path))
