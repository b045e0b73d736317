"""Time IR construction (ONNX parse + shape inference + per-op costs) and full analysis per zoo model.

Run: .venv/bin/python benchmarks/bench_ir.py [--repeat 7]
Writes benchmarks/results/ir.md. Target: ResNet-50 load + full analysis under 0.5 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir import Graph, zoo
from rich.progress import track

RESULTS = Path("benchmarks/results/ir.md")  # written, under the working directory


def time_model(name: str, repeat: int) -> tuple[float, float, int]:
    """Median seconds of (load, load + totals incl. peak live memory) and the op count."""
    path = zoo.path(name)
    loads, fulls = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        g = Graph.from_onnx(path)
        t1 = time.perf_counter()
        g.totals()
        g.live_ranges()
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        fulls.append(t2 - t0)
    return statistics.median(loads), statistics.median(fulls), len(g.ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = [(n, *time_model(n, args.repeat)) for n in track(zoo.names(), description="timing")]
    lines = [
        "# IR construction time per zoo model",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_ir.py --repeat {args.repeat}` "
        "(median of the repeats, one process, 2-core shared machine)."),
        "",
        "| model | ops | load (ms) | load + full analysis (ms) |",
        "|---|---:|---:|---:|",
        *[f"| {n} | {ops} | {load * 1e3:.1f} | {full * 1e3:.1f} |" for n, load, full, ops in rows],
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(stamp_markdown("\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
