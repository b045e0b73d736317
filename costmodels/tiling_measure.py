"""Measuring tile-size configurations on a codegen target into a dataset (training and calibration rows).

:func:`collect` takes shapes (:class:`ShapeSample`), reads IREE's default configuration of each
for the target, picks candidates (the best predicted by a model when one is given, the rest
mostly one or two knobs away from the default), measures them with
:func:`measure_configs` (single-threaded, each candidate timed
right after the default, median ratio over rounds) and appends one row per (shape, config) to
a Parquet dataset. Every row records the target fingerprint (``target_id``, level, vector
width, L2 size, CPU model); ``resume`` skips shapes already measured for that target. The next
shape compiles in a background thread while one is timed. :func:`perturbed` derives more
shapes from given ones (sizes scaled by 0.5–2×).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.costmodels.tiling_ops import annotate_kernel
from mlsysgym.costmodels.tiling_space import (
    KNOBS,
    TileConfig,
    TilingError,
    TilingInstance,
    default_config,
    instance_for,
    knobs_from_config,
    sample_candidates,
)

__all__ = ["FACTORS", "FAST_TIMING", "MAX_MACS", "MeasuredConfig", "ShapeSample", "collect",
           "measure_configs", "perturbed", "pick_candidates", "row_key", "shrink"]

FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)
MAX_MACS = 1.2e7


@dataclass(frozen=True)
class ShapeSample:
    """A problem to measure and its origin (``zoo:<model>`` or ``perturbed:<model>``)."""

    problem: TilingInstance
    source: str
    base: str  # key of the zoo problem it derives from


def shrink(kind: str, dims: list[int], max_macs: float = MAX_MACS) -> list[int]:
    """Halve the largest free loop until the op has at most ``max_macs`` MACs (conv batch and
    window fixed), so one kernel runs in about a millisecond."""
    fixed = {0, 4, 5} if kind == "conv_2d_nhwc_hwcf" else set()
    while math.prod(dims) > max_macs:
        i = max((j for j in range(len(dims)) if j not in fixed), key=lambda j: dims[j])
        if dims[i] <= 1:
            break
        dims[i] = max(1, dims[i] // 2)
    return dims


def perturbed(bases: Sequence[tuple[str, TilingInstance]], n: int, seed: int = 0,
              exclude: set[str] | None = None, max_macs: float = MAX_MACS) -> list[ShapeSample]:
    """Up to ``n`` new shapes derived from ``(origin, problem)`` pairs: every free loop scaled
    by a factor of :data:`FACTORS`, shrunk to ``max_macs``; keys in ``exclude`` skipped."""
    rng = np.random.default_rng(seed)
    seen = set(exclude or ()) | {p.key for _, p in bases}
    out: list[ShapeSample] = []
    tries = 0
    while bases and len(out) < n and tries < 50 * n:
        tries += 1
        origin, p = bases[int(rng.integers(len(bases)))]
        fixed = {0, 4, 5} if p.kind == "conv_2d_nhwc_hwcf" else set()
        dims = [d if (j in fixed or d == 1) else max(1, round(d * float(rng.choice(FACTORS))))
                for j, d in enumerate(p.dims)]
        q = instance_for(p.kind, shrink(p.kind, dims, max_macs), p.stride, p.dilation,
                         transpose_b=p.transpose_b)
        if q is None or q.key in seen:
            continue
        seen.add(q.key)
        out.append(ShapeSample(q, f"perturbed:{origin}", p.key))
    return out


def row_key(problem: TilingInstance, config_key: str, target_id: str) -> str:
    """Identity of a row: hash of (problem, config, target fingerprint id)."""
    return hashlib.sha256(json.dumps([problem.key, config_key, target_id]).encode()).hexdigest()[:24]


def _stable_seed(text: str) -> int:
    """A seed from a string that is the same in every process (``hash`` is salted)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def pick_candidates(problem: TilingInstance, default: Any, n: int, isa: Any = None,
                    ranker: Any = None) -> list[Any]:
    """``n`` candidates: with a ranker, its ``n // 2`` best predicted, then sampled ones."""
    seed = _stable_seed(problem.key)
    if ranker is None:
        return sample_candidates(problem, default, n, seed=seed, isa=isa)
    from mlsysgym.costmodels.tiling_score import score_candidates

    sc = score_candidates(ranker, problem, default)
    top = [sc.config(int(i)) for i in np.argsort(sc.predicted, kind="stable") if int(i) != 0]
    out = list(dict.fromkeys(top[: n // 2]))
    for c in sample_candidates(problem, default, n, seed=seed, isa=isa):
        if len(out) < n and c not in out:
            out.append(c)
    return out


def collect(out: str | os.PathLike[str], minutes: float = 30.0, per_shape: int = 8,
            rounds: int = 3, seed: int = 0, resume: bool = True, show_progress: bool = True,
            target_cpu: str = "host", shapes: Sequence[ShapeSample] = (),
            ranker: Any = None) -> dict[str, Any]:
    """Measure ``shapes`` compiled for codegen target ``target_cpu`` until ``minutes`` run out
    (see the module doc); ``ranker`` (a :class:`~mlsysgym.costmodels.tiling_model.TilingModel`)
    picks half of each shape's candidates as its best predicted. Returns a summary dict."""
    from mlsysgym.core.dataset import ParquetAppender, read_dataset
    from mlsysgym.core.target import fingerprint, target_isa
    from mlsysgym.ir.mlir_emit import emit
    from mlsysgym.simulators.iree_cpu import KernelCompiler, machine_description

    out_path = Path(out)
    fp = fingerprint(target_cpu)
    isa = target_isa(target_cpu)
    compiler = KernelCompiler.for_target(target_cpu)
    done: set[str] = set()
    if resume and out_path.is_dir() and any(out_path.glob("part-*.parquet")):
        df = read_dataset(out_path)
        if "target_id" in df:
            done = set(df.loc[df["target_id"] == fp["target_id"], "problem_key"].astype(str))
    shapes = [s for s in dict.fromkeys(shapes) if s.problem.key not in done]
    machine = {**machine_description(), "fingerprint": fp}
    t0 = time.perf_counter()
    deadline = t0 + minutes * 60.0
    pool = ThreadPoolExecutor(max_workers=1)

    def prepare(s: ShapeSample) -> tuple[Any, list[Any], list[Any]]:
        d = default_config(s.problem, target_cpu)
        cfgs = pick_candidates(s.problem, d, per_shape, isa, ranker)
        k = emit(s.problem.to_spec_design())
        texts = [k.mlir] + [annotate_kernel(k.mlir, c) for c in cfgs]
        return d, cfgs, compiler.compile_many(texts)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]tiling data"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                        disable=not show_progress)
    writer = ParquetAppender(out_path, flush_every=1, part_rows=2000)
    n_rows = n_ok = n_shape = 0
    fut: Future[Any] | None = pool.submit(prepare, shapes[0]) if shapes else None
    try:
        with progress:
            task = progress.add_task("m", total=len(shapes), info="")
            for i, s in enumerate(shapes):
                if time.perf_counter() > deadline or fut is None:
                    break
                try:
                    d, cfgs, compiled = fut.result()
                except Exception as e:  # noqa: BLE001 - a shape whose default cannot be read
                    progress.console.print(f"skip {s.problem.key}: {e}")
                    fut = pool.submit(prepare, shapes[i + 1]) if i + 1 < len(shapes) else None
                    continue
                fut = pool.submit(prepare, shapes[i + 1]) if i + 1 < len(shapes) else None
                try:
                    ms = measure_configs(s.problem, cfgs, rounds=rounds, compiler=compiler,
                                         compiled=compiled, seed=seed)
                except Exception as e:  # noqa: BLE001 - keep collecting
                    progress.console.print(f"skip {s.problem.key}: {e}")
                    continue
                dk = knobs_from_config(s.problem, d)
                load = round(os.getloadavg()[0], 2)
                rows = []
                for m in ms:
                    kn = knobs_from_config(s.problem, m.config) or {}
                    rows.append({
                        "key": row_key(s.problem, m.config.key, fp["target_id"]),
                        "problem_key": s.problem.key, "kind": s.problem.kind,
                        "dims": "x".join(map(str, s.problem.dims)), "stride": s.problem.stride,
                        "dilation": s.problem.dilation, "transpose_b": s.problem.transpose_b,
                        "macs": s.problem.macs,
                        "source": s.source, "base": s.base,
                        **{k: kn.get(k) for k in KNOBS},
                        **({f"default_{k}": dk[k] for k in KNOBS} if dk else {}),
                        "config": json.dumps(m.config.to_dict()),
                        "default_config": json.dumps(d.to_dict()),
                        "runtime_ratio": m.ratio, "runtime_us": m.runtime_us,
                        "default_runtime_us": m.default_us,
                        "ratio_spread": float(np.std(np.log(m.ratios))) if m.ratios else math.nan,
                        "ok": m.ok, "error": m.error, "max_rel_err": m.max_rel_err,
                        "load_avg_1m": load, "machine": json.dumps(machine),
                        "compiler_version": compiler.version,
                        "target_cpu": target_cpu, "target_id": fp["target_id"],
                        "target_level": isa.level, "vector_bits": isa.vector_bits,
                        "l2_kib": fp["machine"]["l2_kib"], "cpu_model": fp["machine"]["model_name"],
                        "evaluator_id": "iree-cpu-interleaved-ratio@2",
                        "workload_id": s.source.split(":", 1)[-1], "seed": seed,
                        "timestamp": datetime.now(UTC).isoformat(),
                        "row_id": row_key(s.problem, m.config.key, fp["target_id"])})
                writer.append(rows, ("kind", "dims", *KNOBS), ("runtime_ratio", "ok"))
                n_rows += len(rows)
                n_ok += sum(m.ok for m in ms)
                n_shape += 1
                best = min((m.ratio for m in ms if m.ok), default=math.nan)
                progress.update(task, advance=1, info=f"{s.problem.key[:34]} best×{best:.2f} "
                                f"rows={n_rows} load={load}")
    finally:
        writer.close()
        pool.shutdown(wait=False, cancel_futures=True)
    return {"shapes": n_shape, "rows": n_rows, "ok_rows": n_ok,
            "seconds": time.perf_counter() - t0, "out": str(out_path)}


# ---- measuring configurations against IREE's default --------------------------------------
@dataclass(frozen=True)
class MeasuredConfig:
    """A configuration measured against the default: runtime ratio (< 1 is faster), times."""

    config: TileConfig
    ok: bool
    ratio: float
    runtime_us: float
    default_us: float
    ratios: tuple[float, ...] = ()
    max_rel_err: float = float("nan")
    error: str = ""
    compile_s: float = float("nan")


FAST_TIMING: dict[str, Any] = {"warmup_s": 0.004, "min_reps": 3, "max_reps": 12,
                               "max_time_s": 0.03, "min_sample_s": 2e-4, "target_rse": 0.02}


def measure_configs(problem: TilingInstance, configs: Sequence[TileConfig], rounds: int = 3,
                    timing: Mapping[str, Any] | None = None, compiler: Any = None, seed: int = 0,
                    compiled: Sequence[Any] | None = None) -> list[MeasuredConfig]:
    """Measure each configuration on a standalone kernel of ``problem``'s shape against IREE's
    default (the unannotated kernel): numerics checked against the default's output (and the
    default against NumPy); then ``rounds`` rounds in which every candidate is timed right
    after a timing of the default; ratio = median over rounds of candidate / adjacent default.
    A candidate that fails to compile or run is returned with ``ok=False``."""
    from mlsysgym.ir.mlir_emit import emit
    from mlsysgym.simulators.iree_cpu import KernelCompiler, Runner, time_calls

    compiler = compiler or KernelCompiler()
    kernel = emit(problem.to_spec_design())
    texts = [kernel.mlir] + [annotate_kernel(kernel.mlir, c) for c in configs]
    results = list(compiled) if compiled is not None else compiler.compile_many(texts)
    nan = float("nan")
    if not results[0].ok:
        raise TilingError(f"the untuned kernel {problem.key} does not compile: {results[0].error}")
    inputs = kernel.random_inputs(seed)
    base = Runner(results[0].vmfb, results[0].func)
    want = base.run(inputs).astype(np.float64)
    ref = kernel.reference(inputs).astype(np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-6)
    if float(np.max(np.abs(want - ref))) / scale > 1e-3:
        raise TilingError(f"the untuned kernel {problem.key} disagrees with NumPy")
    calls: dict[int, Callable[[], Any]] = {}
    out: dict[int, MeasuredConfig] = {}
    for i, (cfg, res) in enumerate(zip(configs, results[1:])):
        if not res.ok:
            out[i] = MeasuredConfig(cfg, False, nan, nan, nan, error=res.error[:300],
                                    compile_s=res.compile_s)
            continue
        try:
            r = Runner(res.vmfb, res.func)
            got = r.run(inputs).astype(np.float64)
            err = float(np.max(np.abs(got - want))) / scale if got.shape == want.shape else math.inf
            if not err <= 1e-3:
                out[i] = MeasuredConfig(cfg, False, nan, nan, nan, max_rel_err=err,
                                        error=f"numerics: max relative error {err:.2e}")
                continue
            calls[i] = r.prepare(inputs)
            out[i] = MeasuredConfig(cfg, True, nan, nan, nan, max_rel_err=err,
                                    compile_s=res.compile_s)
        except Exception as e:  # noqa: BLE001 - a candidate that cannot run is skipped
            out[i] = MeasuredConfig(cfg, False, nan, nan, nan, error=f"run failed: {e}"[:300])
    tm = {**FAST_TIMING, **(timing or {})}
    base_call = base.prepare(inputs)
    ratios: dict[int, list[float]] = {i: [] for i in calls}
    times: dict[int, list[float]] = {i: [] for i in calls}
    dtimes: list[float] = []
    rng = np.random.default_rng(seed)
    for _ in range(max(rounds, 1)):
        for i in rng.permutation(sorted(calls)):
            td = time_calls(base_call, **tm).median_us
            tc = time_calls(calls[int(i)], **tm).median_us
            dtimes.append(td)
            ratios[int(i)].append(tc / td)
            times[int(i)].append(tc)
    d_us = float(np.median(dtimes)) if dtimes else nan
    for i in calls:
        rs = np.asarray(ratios[i])
        old = out[i]
        out[i] = MeasuredConfig(old.config, True, float(np.exp(np.median(np.log(rs)))),
                                float(np.median(times[i])), d_us, tuple(float(x) for x in rs),
                                old.max_rel_err, "", old.compile_s)
    return [out[i] for i in range(len(configs))]
