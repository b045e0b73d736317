"""``mlsysgym sim accelerator``: the analytical PE-array model on a zoo model or ONNX file."""

from __future__ import annotations

import argparse
from typing import Any

from mlsysgym.commands.argtypes import integer
from mlsysgym.commands.common import add_json, add_workload, print_json, slow_step
from mlsysgym.simulators.accelerator import DESIGN_SPACE

DEFAULT = DESIGN_SPACE.default


def register(group) -> None:
    p = group("sim").add_parser(
        "accelerator", help="per-layer cycles, stalls, energy of a PE-array accelerator",
        description="Simulate a spatial PE array (SCALE-Sim semantics, analytical) on a workload.")
    add_workload(p, "zoo model name or path to an .onnx file", metavar="MODEL_OR_PATH")
    p.add_argument("--rows", type=integer, default=DEFAULT["rows"], help="PE rows")
    p.add_argument("--cols", type=integer, default=DEFAULT["cols"], help="PE columns")
    p.add_argument("--dataflow", choices=DESIGN_SPACE["dataflow"].choices,
                   default=DEFAULT["dataflow"], help="stationary operand")
    p.add_argument("--ifmap-kb", type=float, default=DEFAULT["ifmap_kb"],
                   help="input feature map SRAM (KB)")
    p.add_argument("--filter-kb", type=float, default=DEFAULT["filter_kb"], help="filter SRAM (KB)")
    p.add_argument("--ofmap-kb", type=float, default=DEFAULT["ofmap_kb"],
                   help="output feature map SRAM (KB)")
    p.add_argument("--bandwidth", type=float, default=DEFAULT["bandwidth"],
                   metavar="WORDS_PER_CYCLE", help="off-chip bandwidth")
    p.add_argument("--word-bytes", type=integer, default=DEFAULT["word_bytes"],
                   help="bytes per word: 1, 2 or 4")
    p.add_argument("--clock-mhz", type=float, default=DEFAULT["clock_mhz"], help="clock (MHz)")
    add_json(p)
    p.set_defaults(func=run)


def design_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The design dict the command-line options describe."""
    return {"rows": args.rows, "cols": args.cols, "dataflow": args.dataflow,
            "ifmap_kb": args.ifmap_kb, "filter_kb": args.filter_kb, "ofmap_kb": args.ofmap_kb,
            "bandwidth": args.bandwidth, "word_bytes": args.word_bytes,
            "clock_mhz": args.clock_mhz}


def report(design: dict[str, Any], workload: Any) -> dict[str, Any]:
    """The JSON document: design, per-layer rows and model totals."""
    from mlsysgym.simulators.accelerator import AcceleratorSimulator, layer_table, resolve

    graph = resolve(workload)
    table = layer_table(design, graph)
    totals = AcceleratorSimulator().evaluate([design], graph, cache=False)
    layers = []
    for row in table.to_dict(orient="records"):
        layers.append({
            "name": row["name"], "op_type": row["op_type"], "macs": int(row["macs"]),
            "compute_cycles": float(row["compute_cycles"]),
            "stall_cycles": float(row["stall_cycles"]), "total_cycles": float(row["cycles"]),
            "utilization": float(row["utilization"]), "sram_reads": float(row["sram_reads"]),
            "sram_writes": float(row["sram_writes"]), "dram_reads": float(row["dram_reads"]),
            "dram_writes": float(row["dram_writes"]), "energy_uj": float(row["energy_uj"]),
            "latency_ms": float(row["latency_ms"]),
        })
    tot = {k: float(v[0]) for k, v in totals.items()}
    tot["total_cycles"] = tot["cycles"]
    return {"model": getattr(graph, "name", str(workload)), "design": design,
            "layers": layers, "totals": tot}


def _num(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def print_report(doc: dict[str, Any]) -> None:
    """A rich per-layer table and the totals."""
    from rich.console import Console
    from rich.table import Table

    d = doc["design"]
    title = (f"{doc['model']} on {d['rows']}×{d['cols']} {d['dataflow']}, "
             f"{d['ifmap_kb']:g}/{d['filter_kb']:g}/{d['ofmap_kb']:g} KB, "
             f"{d['bandwidth']:g} words/cycle, {d['word_bytes']} B words, {d['clock_mhz']:g} MHz")
    table = Table(title=title)
    for col in ("layer", "op", "MACs", "compute cyc", "stall cyc", "total cyc", "util",
                "DRAM words", "energy µJ"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for r in doc["layers"]:
        table.add_row(r["name"], r["op_type"], _num(r["macs"]), _num(r["compute_cycles"]),
                      _num(r["stall_cycles"]), _num(r["total_cycles"]),
                      f"{r['utilization']:.1%}", _num(r["dram_reads"] + r["dram_writes"]),
                      f"{r['energy_uj']:.2f}")
    t = doc["totals"]
    table.add_section()
    table.add_row("total", "", _num(sum(r["macs"] for r in doc["layers"])),
                  _num(t["compute_cycles"]), _num(t["stall_cycles"]), _num(t["cycles"]),
                  f"{t['utilization']:.1%}", _num(t["dram_reads"] + t["dram_writes"]),
                  f"{t['energy_uj']:.2f}")
    console = Console()
    console.print(table)
    console.print(f"latency {t['latency_ms']:.4f} ms · energy {t['energy_uj']:.2f} µJ · "
                  f"power {t['power_mw']:.1f} mW · area {t['area_mm2']:.3f} mm²")


def run(args: argparse.Namespace) -> int:
    with slow_step(f"simulating {args.workload}"):
        doc = report(design_from_args(args), args.workload)
    if args.json:
        print_json(args, doc, indent=2)
    else:
        print_report(doc)
    return 0
