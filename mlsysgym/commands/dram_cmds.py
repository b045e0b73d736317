"""``mlsysgym sim dram`` (simulate a DRAM controller design on a trace) and ``mlsysgym trace gen``."""

from __future__ import annotations

import argparse

from mlsysgym.commands.argtypes import integer
from mlsysgym.commands.common import add_json, add_out, add_workload, print_json, slow_step

# Knob name -> CLI flag (one flag per ArchGym DRAMGym knob).
FLAGS: dict[str, str] = {
    "PagePolicy": "--page-policy",
    "Scheduler": "--scheduler",
    "SchedulerBuffer": "--scheduler-buffer",
    "RequestBufferSize": "--request-buffer-size",
    "RespQueue": "--resp-queue",
    "RefreshPolicy": "--refresh-policy",
    "RefreshMaxPostponed": "--refresh-max-postponed",
    "RefreshMaxPulledin": "--refresh-max-pulledin",
    "Arbiter": "--arbiter",
    "MaxActiveTransactions": "--max-active-transactions",
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "PagePolicy": ("Open", "OpenAdaptive", "Closed", "ClosedAdaptive"),
    "Scheduler": ("Fifo", "FrFcfs", "FrFcfsGrp"),
    "SchedulerBuffer": ("Bankwise", "ReadWrite", "Shared"),
    "RespQueue": ("Fifo", "Reorder"),
    "RefreshPolicy": ("NoRefresh", "AllBank", "PerBank"),
    "Arbiter": ("Simple", "Fifo", "Reorder"),
}
# DESIGN_SPACE.default, shown in --help without importing the simulator (numba) to build the
# parser; tests/test_cli_help.py checks both tables against DESIGN_SPACE.
_DEFAULTS: dict[str, str | int] = {
    "PagePolicy": "Open", "Scheduler": "FrFcfs", "SchedulerBuffer": "Bankwise",
    "RequestBufferSize": 8, "RespQueue": "Fifo", "RefreshPolicy": "AllBank",
    "RefreshMaxPostponed": 1, "RefreshMaxPulledin": 1, "Arbiter": "Simple",
    "MaxActiveTransactions": 128,
}

METRICS = ("avg_latency_ns", "p99_latency_ns", "bandwidth_gbps", "row_hit_rate", "energy_nj", "power_mw",
           "total_time_ns", "activate_count", "refresh_count")


def register(group) -> None:
    """Add ``sim dram`` and ``trace gen``."""
    p = group("sim").add_parser("dram", help="simulate a DDR4 memory-controller design on a trace")
    add_workload(p, "built-in trace (stream, stream-write, random, strided, cloud-1, cloud-2, "
                 "accel:<zoo model>) or a trace file", metavar="TRACE", alias="--trace")
    for knob, flag in FLAGS.items():
        if knob in _CHOICES:
            p.add_argument(flag, dest=knob, choices=_CHOICES[knob], default=None,
                           help=f"{knob} knob (default: {_DEFAULTS[knob]})")
        else:
            p.add_argument(flag, dest=knob, type=integer, default=None, metavar="N",
                           help=f"{knob} knob (default: {_DEFAULTS[knob]})")
    add_json(p)
    p.set_defaults(func=run)

    g = group("trace").add_parser("gen", help="generate a DRAM request trace file")
    g.add_argument("--kind", required=True,
                   choices=("stream", "random", "strided", "locality", "mixed"),
                   help="address pattern")
    g.add_argument("-n", "--requests", type=integer, default=10_000, help="number of requests")
    add_out(g, "trace file to write", metavar="FILE", required=True, aliases=("--output",))
    g.add_argument("--seed", type=integer, default=0, help="random seed")
    rate = g.add_mutually_exclusive_group()
    rate.add_argument("--interval-cycles", type=float, default=None,
                      help="mean cycles between requests (4 unless --rate-per-ns)")
    rate.add_argument("--rate-per-ns", type=float, default=None, help="requests per ns")
    g.add_argument("--poisson", action="store_true", help="exponential gaps instead of fixed ones")
    g.add_argument("--write-fraction", type=float, default=0.0, help="share of writes")
    g.add_argument("--stride", type=integer, default=4096, help="bytes between requests (strided)")
    g.add_argument("--row-hit", type=float, default=0.5, help="probability of hitting the previous row (locality, mixed)")
    g.add_argument("--stream-share", type=float, default=0.5, help="share of streaming requests (mixed)")
    add_json(g, "print what was written as JSON")
    g.set_defaults(func=run_gen)


def run(args: argparse.Namespace) -> int:
    """Simulate one design and print its metrics and the timing parameters used."""
    from mlsysgym.simulators.dram import DESIGN_SPACE, simulate
    from mlsysgym.simulators.dram_timing import MT40A1G8_083E
    from mlsysgym.simulators.dram_traces import resolve_trace

    design = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    knobs = DESIGN_SPACE.complete(design)
    device = MT40A1G8_083E
    with slow_step("simulating (the first run compiles the DRAM kernels with numba, ~20 s; "
                   "cached after)"):
        trace = resolve_trace(args.workload, capacity_bytes=device.capacity_bytes)
        res = simulate(trace, knobs, device)
    metrics = res.metrics()
    timing = device.timing
    out = {
        "trace": args.workload,
        "requests": len(trace),
        "device": device.name,
        "design": {k: knobs[k] for k in FLAGS},
        "metrics": metrics,
        "timing_cycles": {k: v for k, v in vars(timing).items() if k != "tck_ns"},
        "tck_ns": timing.tck_ns,
    }
    if args.json:
        print_json(args, out, indent=2)
        return 0
    print(f"trace {args.workload}: {len(trace)} requests on {device.name}")
    print("design: " + ", ".join(f"{k}={v}" for k, v in out["design"].items()))
    for m in METRICS:
        v = metrics[m]
        print(f"  {m:16s} {v:,.0f}" if m.endswith("count") else f"  {m:16s} {v:,.4g}")
    print(f"timing (cycles of tCK = {timing.tck_ns:.3f} ns): "
          + ", ".join(f"{k}={v}" for k, v in out["timing_cycles"].items()))
    return 0


MAX_TRACE_SPAN = 1e15  # cycles (or ns) a generated trace may span: ~10 days at 1 GHz


def run_gen(args: argparse.Namespace) -> int:
    """Generate a trace and write it to ``--out``."""
    from mlsysgym.ir.paths import check_output_file
    from mlsysgym.simulators import dram_traces as dt

    check_output_file(args.out, "trace file")
    common = {"write_fraction": args.write_fraction, "interval_cycles": args.interval_cycles,
              "rate_per_ns": args.rate_per_ns, "poisson": args.poisson, "seed": args.seed}
    n = args.requests
    span = max(n * (args.interval_cycles or 0.0), n / args.rate_per_ns if args.rate_per_ns else 0.0)
    if span > MAX_TRACE_SPAN:  # arrival cycles would overflow 64-bit integers
        raise dt.TraceError(f"{n:,} requests at that rate span {span:.3g} cycles (or ns), beyond "
                            f"{MAX_TRACE_SPAN:.0e}; give a higher --rate-per-ns or a smaller "
                            f"--interval-cycles")
    if args.kind == "stream":
        trace = dt.stream_trace(n, **common)
    elif args.kind == "random":
        trace = dt.random_trace(n, **common)
    elif args.kind == "strided":
        trace = dt.strided_trace(n, stride=args.stride, **common)
    elif args.kind == "locality":
        trace = dt.locality_trace(n, row_hit=args.row_hit, **common)
    else:
        trace = dt.mixed_trace(n, stream_share=args.stream_share, row_hit=args.row_hit, **common)
    path = dt.write_trace(trace, args.out)
    if args.json:
        print_json(args, {"kind": args.kind, "requests": len(trace), "seed": args.seed,
                          "out": str(path)})
    else:
        print(f"wrote {len(trace)} {args.kind} requests to {path}")
    return 0
