"""``mlsysgym zoo list`` and ``mlsysgym ir inspect MODEL_OR_PATH``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlsysgym.commands import make_console
from mlsysgym.commands.argtypes import positive_int
from mlsysgym.commands.common import add_json, add_workload, print_json, slow_step
from mlsysgym.core.errors import MlsysgymError


def register(group) -> None:
    p = group("zoo").add_parser("list", help="list the zoo's models with their size and provenance")
    add_json(p)
    p.set_defaults(func=run_zoo_list)

    p = group("ir").add_parser("inspect", help="per-op table and totals of a zoo model or ONNX file")
    add_workload(p, "zoo model name or path to an .onnx file", metavar="MODEL_OR_PATH", alias=None)
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic input dimension (repeatable)")
    p.add_argument("--top", type=positive_int, default=0, metavar="N",
                   help="show only the N ops with the most FLOPs")
    add_json(p)
    p.set_defaults(func=run_inspect)


class CliArgumentError(MlsysgymError):
    """A command-line value that cannot be parsed."""


def parse_dims(items: list[str]) -> dict[str, int]:
    """``["batch=1", "seq=128"]`` → ``{"batch": 1, "seq": 128}``."""
    dims: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise CliArgumentError(f"--dim expects NAME=SIZE with a positive integer, got {item!r}")
        if name.strip() in dims:
            raise CliArgumentError(f"--dim {name.strip()} is given twice")
        dims[name.strip()] = int(value)
    return dims


def graph_report(graph) -> dict[str, Any]:
    """The JSON document of ``ir inspect``: per-op rows and totals."""
    from dataclasses import asdict

    ops = graph.op_rows()
    for row in ops:
        row["arithmetic_intensity"] = round(row["arithmetic_intensity"], 4)
    return {"model": graph.name, "totals": asdict(graph.totals()), "ops": ops}


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def print_graph(graph, top: int = 0) -> None:
    """A rich per-op table (the ``top`` costliest ops if ``top``) and the totals."""
    from rich.table import Table

    ops = sorted(graph.ops, key=lambda o: -o.flops)[:top] if top else list(graph.ops)
    table = Table(title=f"{graph.name}: {len(graph.ops)} ops" + (f" (top {top} by FLOPs)" if top else ""))
    for col in ("op", "type", "output shape", "MACs", "FLOPs", "bytes R", "bytes W", "FLOP/B"):
        table.add_column(col, justify="left" if col in ("op", "type", "output shape") else "right")
    for op in ops:
        shape = graph.tensors[op.outputs[0]].shape if op.outputs else None
        table.add_row(op.name[:40], op.op_type + ("*" if op.estimated else ""),
                      "×".join(map(str, shape)) if shape else "?", _si(op.macs), _si(op.flops),
                      _si(op.bytes_read), _si(op.bytes_written), f"{op.arithmetic_intensity:.1f}")
    console = make_console()
    console.print(table)
    t = graph.totals()
    console.print(
        f"[bold]totals[/bold]: {t.ops} ops, MACs {_si(t.macs)}, FLOPs {_si(t.flops)}, "
        f"params {_si(t.params)} ({_si(t.param_bytes)}B), bytes read {_si(t.bytes_read)}B, "
        f"written {_si(t.bytes_written)}B, peak live memory {_si(t.peak_live_bytes)}B"
        + (f", {t.estimated_ops} ops estimated (*)" if t.estimated_ops else ""))


def run_inspect(args: argparse.Namespace) -> int:
    from mlsysgym.ir import zoo

    dims = parse_dims(args.dim)
    if dims and not Path(args.workload).expanduser().is_file():
        raise CliArgumentError(f"--dim sizes symbolic dimensions of an ONNX file; "
                               f"{args.workload!r} is no file (zoo models have fixed shapes)")
    with slow_step(f"loading {args.workload}"):
        graph = zoo.resolve(args.workload, dims=dims)
    if args.json:
        print_json(args, graph_report(graph))
    else:
        print_graph(graph, args.top)
    return 0


def zoo_row(name: str) -> dict[str, Any]:
    """One ``zoo list`` row from a model's provenance: the package it comes from (name and
    version), the model class (or the file copied from the package), input shapes and MACs."""
    from mlsysgym.ir import zoo

    prov = zoo.provenance(name)
    src = prov.get("source", {})
    package = " ".join(str(src[k]) for k in ("package", "package_version") if src.get(k))
    inputs = ", ".join(f"{i['name']}: {'x'.join(map(str, i['shape']))}"
                       for i in prov.get("inputs", []))
    return {"name": name, "source": package or "?",
            "model_class": src.get("model_class") or src.get("file") or "?",
            "input_shapes": inputs or "?", "macs": prov.get("totals", {}).get("macs")}


def run_zoo_list(args: argparse.Namespace) -> int:
    from mlsysgym.ir import zoo

    rows = [zoo_row(name) for name in zoo.names()]
    if args.json:
        print_json(args, rows)
        return 0
    from rich.table import Table

    table = Table(title=f"mlsysgym zoo: {len(rows)} models")
    for col in ("name", "source", "model class", "inputs", "MACs"):
        table.add_column(col)
    for r in rows:
        cls = r["model_class"]  # a dotted class path shows its class name; a file path stays
        table.add_row(r["name"], r["source"], cls if "/" in cls else cls.rsplit(".", 1)[-1],
                      r["input_shapes"], _si(r["macs"]) if isinstance(r["macs"], int | float) else "?")
    make_console().print(table)
    return 0
