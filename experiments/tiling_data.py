"""Training data for the tile-size cost model: (op shape, configuration) → runtime ratio to IREE's default.

Shapes come from the zoo's models (:func:`mlsysgym.experiments.mlir_measure.zoo_kernel_specs`):
every matmul, batch matmul and conv with a window larger than 1×1 (convs at batch 2, since
batch-1 convs cannot take a per-op config), shrunk to at most ``max_macs`` so one kernel runs
in about a millisecond, plus perturbations of them (sizes scaled by 0.5–2×). A fixed set of
zoo shapes is held out (:func:`split_shapes`) — neither they nor perturbations of their zoo
origin are measured for training; the report evaluates on them.

For each shape, ``per_shape`` candidate configurations (mostly one or two knobs away from
IREE's default, the rest uniform over the op's space) are measured with
:func:`mlsysgym.costmodels.tiling_pass.measure_configs`: single-threaded, each timing of a candidate
right after one of the default, the ratio's median over ``rounds`` rounds. One row per
(shape, configuration) is appended to a Parquet dataset (``envs.dataset.ParquetAppender``);
the row key hashes (shape, config, compiler version), and ``resume=True`` skips shapes whose
rows are already there. The next shape compiles in a background thread while one is timed.

Run: ``python -m mlsysgym.experiments.tiling_data --minutes 30 --out experiments/results/tiling/data``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.costmodels.tiling_space import (
    KNOBS,
    TilingProblem,
    config_features,
    default_config,
    knobs_from_config,
    problem_for,
    sample_candidates,
)

__all__ = ["ShapeSample", "collect", "held_out_shapes", "split_shapes",
           "training_frame", "training_shapes"]

FACTORS = (0.5, 0.75, 1.25, 1.5, 2.0)
MAX_MACS = 1.2e7
N_HELD_OUT = 12


@dataclass(frozen=True)
class ShapeSample:
    """A problem to measure and its origin (``zoo:<model>`` or ``perturbed:<model>``)."""

    problem: TilingProblem
    source: str
    base: str  # key of the zoo problem it derives from


def _shrink(kind: str, dims: list[int], max_macs: float) -> list[int]:
    fixed = {4, 5} if kind == "conv_2d_nhwc_hwcf" else set()
    if kind == "conv_2d_nhwc_hwcf":
        fixed.add(0)  # batch stays 2
    while math.prod(dims) > max_macs:
        i = max((j for j in range(len(dims)) if j not in fixed), key=lambda j: dims[j])
        if dims[i] <= 1:
            break
        dims[i] = max(1, dims[i] // 2)
    return dims


def _zoo_problems(max_macs: float) -> list[tuple[str, TilingProblem]]:
    from mlsysgym.experiments.mlir_measure import zoo_kernel_specs

    out: list[tuple[str, TilingProblem]] = []
    seen: set[str] = set()
    for model, spec in zoo_kernel_specs():
        dims = list(spec.shape)
        if spec.kind == "conv_2d_nhwc_hwcf":
            dims[0] = 2
        dims = _shrink(spec.kind, dims, max_macs)
        p = problem_for(spec.kind, dims, spec.stride, spec.dilation)
        if p is not None and p.key not in seen:
            seen.add(p.key)
            out.append((model, p))
    return out


def split_shapes(max_macs: float = MAX_MACS, n_held_out: int = N_HELD_OUT, seed: int = 0
                 ) -> tuple[list[tuple[str, TilingProblem]], list[tuple[str, TilingProblem]]]:
    """(training base shapes, held-out shapes) of the zoo, deterministic; the held-out set has
    a few of each kind."""
    probs = _zoo_problems(max_macs)
    rng = np.random.default_rng(seed)
    held: list[tuple[str, TilingProblem]] = []
    by_kind: dict[str, list[int]] = {}
    for i, (_, p) in enumerate(probs):
        by_kind.setdefault(p.kind, []).append(i)
    share = {"matmul": 3, "batch_matmul": 5, "conv_2d_nhwc_hwcf": 4}
    for kind, idx in sorted(by_kind.items()):
        take = min(share.get(kind, 2), max(len(idx) // 3, 1))
        used: set[str] = set()
        picked: list[int] = []
        for i in rng.permutation(idx):  # spread over models first
            if len(picked) < take and probs[int(i)][0] not in used:
                picked.append(int(i))
                used.add(probs[int(i)][0])
        for i in rng.permutation(idx):
            if len(picked) < take and int(i) not in picked:
                picked.append(int(i))
        held += [probs[i] for i in picked]
    held = held[:n_held_out]
    keys = {p.key for _, p in held}
    return [(m, p) for m, p in probs if p.key not in keys], held


def held_out_shapes(**kw: Any) -> list[tuple[str, TilingProblem]]:
    """The zoo shapes the report evaluates on (never measured for training)."""
    return split_shapes(**kw)[1]


def training_shapes(n: int, seed: int = 0, max_macs: float = MAX_MACS) -> list[ShapeSample]:
    """``n`` training shapes: the training zoo shapes first, then perturbations of them."""
    train, held = split_shapes(max_macs)
    held_keys = {p.key for _, p in held}
    rng = np.random.default_rng(seed)
    out = [ShapeSample(p, f"zoo:{m}", p.key) for m, p in
           (train[int(i)] for i in rng.permutation(len(train)))]
    seen = {s.problem.key for s in out} | held_keys
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        m, p = train[int(rng.integers(len(train)))]
        window = {4, 5} if p.kind == "conv_2d_nhwc_hwcf" else set()
        dims = [d if (j in window or d == 1 or (p.kind == "conv_2d_nhwc_hwcf" and j == 0))
                else max(1, round(d * float(rng.choice(FACTORS)))) for j, d in enumerate(p.dims)]
        q = problem_for(p.kind, _shrink(p.kind, dims, max_macs), p.stride, p.dilation)
        if q is None or q.key in seen:
            continue
        seen.add(q.key)
        out.append(ShapeSample(q, f"perturbed:{m}", p.key))
    # interleave: zoo shapes and perturbations alternate so a short run covers both
    zoo = [s for s in out if s.source.startswith("zoo")]
    pert = [s for s in out if not s.source.startswith("zoo")]
    mixed: list[ShapeSample] = []
    for i in range(max(len(zoo), len(pert))):
        mixed += ([zoo[i]] if i < len(zoo) else []) + ([pert[i]] if i < len(pert) else [])
    return mixed[:n]


def row_key(problem: TilingProblem, config_key: str, target_id: str) -> str:
    """Identity of a row: hash of (problem, config, target fingerprint id)."""
    return hashlib.sha256(json.dumps([problem.key, config_key, target_id]).encode()).hexdigest()[:24]


def _stable_seed(text: str) -> int:
    """A seed from a string that is the same in every process (``hash`` is salted)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def target_isa_of(fp: dict[str, Any]) -> Any:
    """The TargetIsa recorded in a fingerprint."""
    from mlsysgym.ir.target import TargetIsa

    t = fp["target"]
    return TargetIsa(t["cpu"], t["level"], int(t["vector_bits"]), tuple(t["features"]))


def target_compiler(target_cpu: str, timeout_s: float = 60.0) -> Any:
    """A KernelCompiler that compiles for codegen target ``target_cpu``."""
    from mlsysgym.ir.target import target_flags
    from mlsysgym.simulators.iree_cpu import KernelCompiler

    return KernelCompiler(flags=(*target_flags(target_cpu), "--mlir-disable-threading"),
                          timeout_s=timeout_s)


def collect(out: str | os.PathLike[str], minutes: float = 30.0, n_shapes: int = 400,
            per_shape: int = 8, rounds: int = 3, seed: int = 0, resume: bool = True,
            show_progress: bool = True, target_cpu: str = "host",
            shapes: Sequence[ShapeSample] | None = None) -> dict[str, Any]:
    """Measure training shapes (or the given ``shapes``) compiled for codegen target
    ``target_cpu`` until ``minutes`` run out; every row records the target fingerprint.
    Returns a summary dict."""
    from mlsysgym.envs.dataset import ParquetAppender, read_dataset
    from mlsysgym.ir.mlir_emit import emit
    from mlsysgym.costmodels.tiling_pass import annotate_kernel, measure_configs
    from mlsysgym.ir.target import fingerprint
    from mlsysgym.simulators.iree_cpu import machine_description

    out_path = Path(out)
    fp = fingerprint(target_cpu)
    isa = target_isa_of(fp)
    compiler = target_compiler(target_cpu)
    done: set[str] = set()
    if resume and out_path.is_dir() and any(out_path.glob("part-*.parquet")):
        df = read_dataset(out_path)
        if "target_id" in df:
            done = set(df.loc[df["target_id"] == fp["target_id"], "problem_key"].astype(str))
    todo = list(shapes) if shapes is not None else training_shapes(n_shapes, seed)
    shapes = [s for s in todo if s.problem.key not in done]
    machine = {**machine_description(), "fingerprint": fp}
    t0 = time.perf_counter()
    deadline = t0 + minutes * 60.0
    pool = ThreadPoolExecutor(max_workers=1)

    def prepare(s: ShapeSample) -> tuple[Any, list[Any], list[Any]]:
        d = default_config(s.problem, target_cpu)
        cfgs = sample_candidates(s.problem, d, per_shape, seed=_stable_seed(s.problem.key),
                                 isa=isa)
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
                        "dilation": s.problem.dilation, "macs": s.problem.macs,
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


def training_frame(path: str | os.PathLike[str]) -> Any:
    """The dataset's ok rows with the cost model's feature columns added."""
    import pandas as pd
    from mlsysgym.envs.dataset import read_dataset

    df = read_dataset(path)
    df = df[df["ok"].astype(bool) & np.isfinite(df["runtime_ratio"])].reset_index(drop=True)
    # IREE's default of every shape is a row by definition (ratio 1): it anchors the model
    firsts = df.groupby("problem_key", sort=False).head(1).copy()
    for k in KNOBS:
        firsts[k] = firsts[f"default_{k}"]
    firsts["runtime_ratio"] = 1.0
    firsts["config"] = firsts["default_config"]
    df = pd.concat([df, firsts], ignore_index=True)
    parts = []
    for key, g in df.groupby("problem_key", sort=False):
        r = g.iloc[0]
        dims = tuple(int(x) for x in str(r["dims"]).split("x"))
        p = TilingProblem(str(r["kind"]), dims, int(r["stride"]), int(r["dilation"]))
        dk = {k: int(r[f"default_{k}"]) for k in KNOBS}
        f = config_features(p, {k: g[k].to_numpy(dtype=np.float64) for k in KNOBS}, dk)
        parts.append(pd.DataFrame(f, index=g.index))
    feats = pd.concat(parts).sort_index()
    return pd.concat([df, feats], axis=1)


def train(data: str | os.PathLike[str], out: str | os.PathLike[str], seed: int = 0,
          members: int = 1) -> Any:
    """Fit a LightGBM cost model (features ``FEATURE_NAMES`` → ``runtime_ratio``, log target)
    on the dataset and save it (ONNX + JSON) to ``out``; returns the fitted model."""
    from mlsysgym.costmodels.tabular import LightGBMCostModel
    from mlsysgym.costmodels.tiling_space import FEATURE_NAMES

    frame = training_frame(data)
    model = LightGBMCostModel(members=members, seed=seed, n_estimators=80, learning_rate=0.15,
                              num_leaves=15, min_data_in_leaf=8, feature_fraction=0.8,
                              early_stopping=30)
    model.fit(frame, features=list(FEATURE_NAMES), targets=["runtime_ratio"],
              target_transform="log", valid_fraction=0.15)
    model.hyperparameters["shapes"] = int(frame["problem_key"].nunique())
    model.save(out)
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: collect training data."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/tiling/data")
    ap.add_argument("--target-cpu", default="host",
                    help="codegen target: host, x86-64-v3, x86-64-v2 (this CPU must run it)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--shapes", type=int, default=400)
    ap.add_argument("--per-shape", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--train", metavar="MODEL_DIR", help="fit the cost model on --out instead")
    a = ap.parse_args(argv)
    if a.train:
        m = train(a.out, a.train)
        print(json.dumps({"rows": m.info.rows, "validation": m.info.validation}, default=str))
        return 0
    s = collect(a.out, a.minutes, a.shapes, a.per_shape, a.rounds, resume=not a.no_resume,
                target_cpu=a.target_cpu)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
