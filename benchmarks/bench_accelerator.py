"""Throughput of the analytical accelerator model: (design, layer) evaluations per second.

Vectorized path: ``simulate_totals(DesignArrays, LayerSet)`` over N random designs × every op of
a zoo model (default ResNet-50), on one core (BLAS/OpenMP threads pinned to 1; the model is
element-wise NumPy, which is single-threaded anyway). Also times the Evaluator path that takes a
list of design dicts (validation included, cache off). Writes ``benchmarks/results/accelerator.md``.

Usage::

    .venv/bin/python benchmarks/bench_accelerator.py [--designs 10000] [--model resnet50]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.experiments.timing import time_calls
from mlsysgym.simulators.accelerator import (
    AcceleratorSimulator,
    DesignArrays,
    layers_of,
    simulate_totals,
)
from mlsysgym.simulators.accelerator_layers import KIND_FREE

MD_PATH = Path("benchmarks/results/accelerator.md")  # written, under the working directory


def random_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """N random designs as columns."""
    rng = np.random.default_rng(seed)
    return {
        "rows": rng.choice([8, 16, 32, 64, 128, 256], n),
        "cols": rng.choice([8, 16, 32, 64, 128, 256], n),
        "dataflow": rng.choice(["os", "ws", "is"], n),
        "ifmap_kb": rng.choice([16, 32, 64, 128, 256, 512, 1024], n).astype(float),
        "filter_kb": rng.choice([16, 32, 64, 128, 256, 512, 1024], n).astype(float),
        "ofmap_kb": rng.choice([16, 32, 64, 128, 256], n).astype(float),
        "bandwidth": rng.choice([1, 2, 4, 8, 16, 32, 64], n).astype(float),
        "word_bytes": rng.choice([1, 2, 4], n),
        "clock_mhz": rng.choice([200, 500, 1000, 1500], n).astype(float),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=10_000)
    ap.add_argument("--dict-designs", type=int, default=2_000,
                    help="designs for the list-of-dicts Evaluator path")
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="do not write the Markdown result")
    args = ap.parse_args(argv)

    ls = layers_of(args.model)
    n_ops = ls.num_ops
    n_costed = int(np.unique(ls.op_index[ls.kind != KIND_FREE]).size)
    cols = random_columns(args.designs)
    designs = DesignArrays.from_columns(**cols)

    t_vec = time_calls(lambda: simulate_totals(designs, ls), args.repeat).best_wall
    t_cols = time_calls(lambda: simulate_totals(DesignArrays.from_columns(**cols), ls),
                        args.repeat).best_wall

    dicts = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
             for i in range(args.dict_designs)]
    sim = AcceleratorSimulator()
    t_dict = time_calls(lambda: sim.evaluate(dicts, ls, cache=False),
                        max(1, args.repeat // 2)).best_wall

    rate = args.designs * n_ops / t_vec
    rate_costed = args.designs * n_costed / t_vec
    rate_cols = args.designs * n_ops / t_cols
    rate_dict = args.dict_designs * n_ops / t_dict
    lines = [
        "# Accelerator model throughput",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_accelerator.py --designs {args.designs} "
        f"--model {args.model}`"),
        "",
        (f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}; one core (threads pinned to 1), "
        f"best of {args.repeat}; load average {os.getloadavg()[0]:.1f} at the end "
        "(the machine is shared)."),
        (f"Workload: zoo `{args.model}`, {n_ops} ops ({n_costed} with work: "
        f"{int((ls.kind == 0).sum())} GEMM items on the array, {int((ls.kind == 1).sum())} "
        "vector items), random designs over every parameter."),
        "",
        "| path | designs | time | (design, op) evaluations/s | (design, costed op)/s |",
        "|---|---:|---:|---:|---:|",
        (f"| `simulate_totals(DesignArrays, LayerSet)` | {args.designs} | {t_vec * 1e3:.1f} ms | "
        f"{rate:,.0f} | {rate_costed:,.0f} |"),
        (f"| `DesignArrays.from_columns` (validated) + simulate | {args.designs} | "
        f"{t_cols * 1e3:.1f} ms | {rate_cols:,.0f} | |"),
        (f"| `AcceleratorSimulator.evaluate(list of dicts, cache=False)` | {args.dict_designs} | "
        f"{t_dict * 1e3:.1f} ms | {rate_dict:,.0f} | |"),
        "",
        "Target: ≥ 1,000,000 (design, layer) evaluations per second, vectorized.",
        "The list-of-dicts path is bound by per-design validation in Python; batch agents should",
        "build `DesignArrays` directly (or call `AcceleratorSimulator.evaluate_arrays`).",
        "",
    ]
    text = stamp_markdown("\n".join(lines))
    print(text)
    if not args.no_write:
        MD_PATH.parent.mkdir(parents=True, exist_ok=True)
        MD_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
