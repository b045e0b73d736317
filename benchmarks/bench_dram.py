"""Simulated DRAM requests per second on one core, for a few traces and controller designs.

    .venv/bin/python benchmarks/bench_dram.py [--requests 500000] [--write benchmarks/results/dram.md]

Times are CPU seconds of this process (``time.process_time``), so other load on a shared
machine inflates them less than wall time; wall time is reported too. The numba kernel is
compiled (or loaded from its cache) before timing. Each timing covers ``simulate`` on a decoded
trace: the controller kernel plus latency percentiles, the active-time sweep and the energy model.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile

import numpy as np
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.experiments.timing import time_calls
from mlsysgym.simulators.dram import ControllerSettings, prepare_trace, simulate
from mlsysgym.simulators.dram_traces import (
    mixed_trace,
    random_trace,
    read_trace,
    stream_trace,
    write_trace,
)

DESIGNS: dict[str, dict] = {
    "default (Open, FrFcfs, Bankwise 8, AllBank)": {},
    "Closed, Fifo, Shared 32": {"PagePolicy": "Closed", "Scheduler": "Fifo", "SchedulerBuffer": "Shared",
                                "RequestBufferSize": 32},
    "OpenAdaptive, FrFcfsGrp, ReadWrite 64, PerBank, Reorder 16": {
        "PagePolicy": "OpenAdaptive", "Scheduler": "FrFcfsGrp", "SchedulerBuffer": "ReadWrite",
        "RequestBufferSize": 64, "RefreshPolicy": "PerBank", "Arbiter": "Reorder", "MaxActiveTransactions": 16},
}
RAMULATOR_LIKE = ControllerSettings(write_drain=True, read_forwarding=True, active_buffer=32, ready_first=True)
SETTINGS: dict[str, tuple[dict, ControllerSettings]] = {
    **{name: (d, ControllerSettings()) for name, d in DESIGNS.items()},
    "ReadWrite 32 + Ramulator-like settings (drain, forwarding, active buffer, ready-first)": (
        {"SchedulerBuffer": "ReadWrite", "RequestBufferSize": 32}, RAMULATOR_LIKE),
}


def traces(n: int) -> dict:
    """The benchmark traces (moderately loaded, as the built-in ones)."""
    return {
        "stream (1 req / 5 cycles)": stream_trace(n, interval_cycles=5),
        "random (1 req / 10 cycles)": random_trace(n, interval_cycles=10, seed=1),
        "cloud-like mixed (30% writes)": mixed_trace(n, stream_share=0.6, row_hit=0.6, write_fraction=0.3,
                                                     interval_cycles=7, seed=3),
    }


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Best CPU and wall seconds over ``repeat`` calls, and the last call's result."""
    t = time_calls(fn, repeat)
    return t.best_cpu, t.best_wall, t.result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", default=None, help="write a markdown report here")
    args = ap.parse_args(argv)
    n = args.requests

    simulate(stream_trace(100))  # compile or load the kernel
    rows = []
    for tname, tr in traces(n).items():
        p = prepare_trace(tr)
        for dname, (design, st) in SETTINGS.items():
            cpu, wall, res = timed(lambda p=p, design=design, st=st: simulate(p, design, settings=st), args.repeat)
            rows.append((tname, dname, n / cpu, n / wall, res))
            print(f"{tname:30s} {dname:58s} {n / cpu / 1e6:6.2f} M req/s cpu  {n / wall / 1e6:6.2f} M req/s wall  "
                  f"lat {res.avg_latency_ns:9.1f} ns  bw {res.bandwidth_gbps:5.2f} GB/s  hit {res.row_hit_rate:.3f}",
                  flush=True)

    # reader: 1M lines
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "big.trace")
        write_trace(mixed_trace(1_000_000, seed=11), path)
        read_trace(path)  # compile or load the scanner
        rcpu, rwall, _ = timed(lambda: read_trace(path), args.repeat)
    print(f"read_trace: 1,000,000 lines in {rcpu:.2f} s cpu ({rwall:.2f} s wall)")

    if args.write:
        rates = np.array([r[2] for r in rows])
        lines = [
            "# DRAM simulator throughput",
            "",
            f"Command: `.venv/bin/python benchmarks/bench_dram.py --requests {n} --write {args.write}`",
            "",
            (f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, Python "
             f"{sys.version.split()[0]}, numpy {np.__version__}, numba {__import__('numba').__version__}. "
             f"One core; best of {args.repeat}; {n:,} requests per run; device Micron MT40A1G8-083E "
             "DDR4-2400, 1 channel, 1 rank, 16 banks. CPU time of the process (wall time under "
             "load from other jobs shown beside it)."),
            "",
            "| trace | design | M req/s (cpu) | M req/s (wall) | avg latency ns | BW GB/s | row-hit |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for tname, dname, rc, rw, res in rows:
            lines.append(f"| {tname} | {dname} | {rc / 1e6:.2f} | {rw / 1e6:.2f} | {res.avg_latency_ns:.1f} | "
                         f"{res.bandwidth_gbps:.2f} | {res.row_hit_rate:.3f} |")
        lines += [
            "",
            (f"Minimum {rates.min() / 1e6:.2f} M, median {np.median(rates) / 1e6:.2f} M simulated requests/s "
             "(target: 1 M/s on one core)."),
            "",
            f"Trace reader: 1,000,000 lines in {rcpu:.2f} s CPU ({rwall:.2f} s wall).",
            "",
        ]
        os.makedirs(os.path.dirname(args.write) or ".", exist_ok=True)
        with open(args.write, "w") as fh:
            fh.write(stamp_markdown("\n".join(lines)))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
