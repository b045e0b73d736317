"""MLIR layer benchmark: linalg vs ONNX MACs per zoo model, kernels measured per minute, and
measurement repeatability on this (shared) machine.

Run: .venv/bin/python benchmarks/bench_mlir.py [--minutes 10] [--kernels 16] [--repeats 5]
Writes benchmarks/results/mlir.md.

1. Import every zoo model to linalg (``iree-compile --compile-to=input``), parse it and compare
   its MACs to the ONNX ir.Graph's.
2. Throughput: ``measure_dataset`` (the ``mlsysgym mlir measure`` loop: sample, emit, compile
   in a background subprocess, check numerics, time) with a cold compile cache for
   ``--minutes``; kernels per minute and the projected time for 2,000 kernels.
3. Repeatability: ``--kernels`` already-compiled kernels measured ``--repeats`` times in
   interleaved rounds (fresh runtime context each time); per kernel the coefficient of
   variation of its medians across rounds, absolute and as a ratio to a reference kernel
   timed just before it in the same round. The median over kernels is the headline figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from mlsysgym.experiments.mlir_measure import measure_dataset, sample_specs
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir import mlir, zoo
from mlsysgym.simulators.iree_cpu import KernelCompiler, machine_description, measure

RESULTS = Path("benchmarks/results/mlir.md")  # written, under the working directory


def mac_agreement() -> list[tuple[str, int, int, float, float, float, int]]:
    """(model, onnx MACs, linalg MACs, ratio, import s, parse s, unsupported ops) per model."""
    rows = []
    for name in zoo.names():
        t0 = time.perf_counter()
        try:
            imported = mlir.import_model(name)
        except mlir.MlirImportError as e:
            print(f"{name}: {e}")
            continue
        t1 = time.perf_counter()
        parsed = mlir.parse(imported.linalg_mlir, name=name)
        t2 = time.perf_counter()
        lin = sum(op.macs for op in parsed.graph.ops)
        ref = zoo.load(name).totals().macs
        rows.append((name, ref, lin, lin / ref if ref else float("nan"),
                     imported.import_s + imported.lower_s if not imported.cached else t1 - t0,
                     t2 - t1, len(parsed.unsupported)))
        print(f"{name}: onnx {ref} linalg {lin} ({lin / ref:.4f})")
    return rows


def repeatability(n_kernels: int, repeats: int, seed: int, cache: Path,
                  timing: dict[str, float] | None = None) -> dict[str, float]:
    """Median CV across repeated measurements of the same kernels (absolute and ratio);
    ``timing`` goes to ``time_calls`` (e.g. a longer ``max_time_s``)."""
    timing = timing or {}
    samples = sample_specs(n_kernels, seed=seed + 1000)
    compiler = KernelCompiler(cache_path=cache)
    ref = mlir.emit(mlir.KernelSpec("matmul", (128, 128, 128)))
    kernels = [mlir.emit(s.spec) for s in samples]
    compiler.compile_many([k.mlir for k in [ref, *kernels]])
    abs_t: list[list[float]] = [[] for _ in kernels]
    rel_t: list[list[float]] = [[] for _ in kernels]
    within: list[float] = []
    for r in range(repeats):
        for i, k in enumerate(kernels):
            base = measure(ref, compiler, check=False, **timing)
            m = measure(k, compiler, seed=r, check=False, **timing)
            if m.ok and base.ok:
                abs_t[i].append(m.runtime_us)
                rel_t[i].append(m.runtime_us / base.runtime_us)
                within.append(m.runtime_cv)
        print(f"repeatability round {r + 1}/{repeats} done")

    def cvs(series: list[list[float]]) -> list[float]:
        return [float(np.std(s, ddof=1) / np.mean(s)) for s in series if len(s) >= 2]

    a, rr = cvs(abs_t), cvs(rel_t)
    return {"kernels": len(a), "repeats": repeats,
            "median_cv_abs": statistics.median(a) if a else float("nan"),
            "p90_cv_abs": float(np.percentile(a, 90)) if a else float("nan"),
            "median_cv_ratio": statistics.median(rr) if rr else float("nan"),
            "median_within_run_cv": statistics.median(within) if within else float("nan"),
            "share_cv_abs_le_5pct": float(np.mean(np.asarray(a) <= 0.05)) if a else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="throughput run length")
    parser.add_argument("--kernels", type=int, default=16, help="kernels for repeatability")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-macs", action="store_true")
    parser.add_argument("--n", type=int, default=2000, help="kernels to aim for")
    parser.add_argument("--out", default=None,
                        help="keep the measured dataset here (default: a temporary directory)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    machine = machine_description()
    macs = [] if args.skip_macs else mac_agreement()
    with tempfile.TemporaryDirectory(prefix="bench-mlir-") as tmp:
        cache = Path(tmp) / "cache"
        t0 = time.perf_counter()
        ds = Path(args.out) if args.out else Path(tmp) / "ds"
        summary = measure_dataset(args.n, ds, seed=args.seed, cache_path=cache,
                                  max_seconds=args.minutes * 60, show_progress=True)
        wall = time.perf_counter() - t0
        load_mid = os.getloadavg()
        from mlsysgym.core.dataset import read_dataset

        df = read_dataset(ds)
        rep = repeatability(args.kernels, args.repeats, args.seed, cache)
    load_after = os.getloadavg()

    rate = summary.kernels_per_minute
    lines = [
        "# MLIR layer: import, measurement throughput and repeatability",
        "",
        (f"Machine: {machine['cpu']}, {machine['cores']} cores (shared with other workers), "
        f"IREE {machine['compiler_version']}, llvm-cpu `--iree-llvmcpu-target-cpu=host`, "
        "local-sync driver (one thread)."),
        (f"Load average (1/5/15 min): before {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after the throughput run {load_mid[0]:.1f}, at the end "
        f"{load_after[0]:.1f} — on 2 cores, so this process got a fraction of one core."),
        "",
        ("Run: `.venv/bin/python benchmarks/bench_mlir.py "
        f"--n {args.n} --minutes {args.minutes:g} --kernels {args.kernels} "
        f"--repeats {args.repeats}`"),
        "",
    ]
    if macs:
        lines += ["## MACs: linalg (after `iree-compile --compile-to=input`) vs the ONNX ir.Graph",
                  "", ("| model | ONNX MACs | linalg MACs | ratio | import+lower s | parse s | "
                  "unsupported ops kept |"), "|---|---:|---:|---:|---:|---:|---:|"]
        for name, ref, lin, ratio, imp, prs, uns in macs:
            lines.append(f"| {name} | {ref:,} | {lin:,} | {ratio:.4f} | {imp:.1f} | {prs:.2f} | "
                         f"{uns} |")
        lines += ["", ("Unsupported ops are the `hal.*`/`util.*` ABI glue of IREE's input phase "
                  "(kept in the graph, flagged `supported=False`)."), ""]
    ok = int(df["ok"].sum()) if len(df) else 0
    comp = df["compile_s"].dropna()
    lines += [
        ("## Throughput (cold compile cache; batches of 8 kernels per iree-compile run, one batch "
        "compiled in the background while the previous one is timed)"),
        "",
        (f"- target {args.n} kernels within {args.minutes:g} minutes; "
        f"measured {summary.measured} kernels in {wall:.0f} s ({ok} ok, {summary.failed} failed): "
        f"**{rate:.1f} kernels/minute**"),
        f"- compile time per kernel: median {comp.median():.2f} s, p90 "
        f"{comp.quantile(0.9):.2f} s" if len(comp) else "- no compile times",
        "- kinds: " + ", ".join(f"{k} {v}" for k, v in df["kind"].value_counts().items()),
        f"- projection for 2,000 kernels at this rate: **{2000 / rate:.0f} minutes**"
        if rate > 0 else "- no projection (nothing measured)",
        "",
        "## Repeatability",
        "",
        (f"{rep['kernels']} kernels sampled like the dataset, each measured {rep['repeats']} times "
        "in interleaved rounds (a fresh runtime context per measurement)."),
        "",
        (f"- median CV of a kernel's median runtime across rounds: **{rep['median_cv_abs']:.1%}** "
        f"(p90 {rep['p90_cv_abs']:.1%}; {rep['share_cv_abs_le_5pct']:.0%} of kernels ≤ 5%)"),
        f"- same, as a ratio to a 128³ matmul timed just before: {rep['median_cv_ratio']:.1%}",
        f"- median within-run robust CV of single samples: {rep['median_within_run_cv']:.1%}",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(stamp_markdown("\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
