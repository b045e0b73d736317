"""``mlsysgym mlir import|inspect|measure``: MLIR import, inspection and the measured-kernel dataset."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from mlsysgym.commands.argtypes import positive_float, positive_int, seed
from mlsysgym.commands.common import (
    add_json,
    add_out,
    add_workload,
    print_json,
    progress_to_stderr,
    slow_step,
)
from mlsysgym.core.errors import MlsysgymError


class MlirCliError(MlsysgymError):
    """A bad ``mlsysgym mlir`` argument."""


def register(group) -> None:
    """Add the ``mlir`` sub-commands."""
    g = group("mlir")
    p = g.add_parser("import", help="zoo model or ONNX file -> MLIR lowered to linalg on tensors")
    add_workload(p, "zoo name, path to an .onnx file, or 'all' (with --kernels-dir)",
                 metavar="MODEL_OR_PATH", alias=None)
    add_out(p, "write the MLIR here (default: stdout)", metavar="FILE", aliases=("--output",))
    p.add_argument("--phase", default="input",
                   help="iree-compile --compile-to phase (input: linalg named ops)")
    p.add_argument("--torch", action="store_true",
                   help="write the torch-onnx MLIR of the importer instead (no lowering)")
    p.add_argument("--kernels-dir", metavar="DIR",
                   help="also export every linalg op as a standalone kernel into DIR/<model>/")
    p.set_defaults(func=run_import)

    p = g.add_parser("inspect", help="per-op costs of an MLIR file (linalg, arith, math, ...)")
    add_workload(p, "an MLIR file", metavar="FILE.mlir", alias=None)
    p.add_argument("--top", type=positive_int, default=0, metavar="N",
                   help="show only the N ops with the most FLOPs")
    add_json(p)
    p.set_defaults(func=run_inspect)

    p = g.add_parser("measure", help="measure kernels with the zoo's shapes on this CPU "
                     "(IREE llvm-cpu) into a Parquet dataset")
    p.add_argument("-n", "--kernels", type=positive_int, default=100, help="kernels to measure")
    p.add_argument("--n", dest="kernels", type=positive_int, help=argparse.SUPPRESS)
    add_out(p, "dataset directory", metavar="DATASET_DIR", default="mlir_kernels")
    p.add_argument("--resume", action="store_true", help="continue a dataset: skip measured kernels")
    p.add_argument("--seed", type=seed, default=0, help="random seed of the kernel sample")
    p.add_argument("--models", nargs="*", default=None,
                   help="zoo models to take shapes from (default: all)")
    p.add_argument("--max-macs", type=positive_float, default=2.5e8, help="cap on a kernel's MACs")
    p.add_argument("--compile-workers", type=positive_int, default=1,
                   help="batches compiled in the background ahead of the timed one (0: none)")
    p.add_argument("--batch-size", type=positive_int, default=8,
                   help="kernels per iree-compile run (amortizes its start-up)")
    p.add_argument("--timeout", type=positive_float, default=60.0, help="compile timeout per kernel (s)")
    p.add_argument("--time-budget", type=positive_float, default=0.5, metavar="S",
                   help="timing budget per kernel in seconds (1.5 with --min-reps 15 roughly "
                        "halves the run-to-run CV on a loaded machine)")
    p.add_argument("--min-reps", type=positive_int, default=5, help="minimum timed samples per kernel")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json(p, "print what was measured as JSON")
    p.set_defaults(func=run_measure)


def run_import(args: argparse.Namespace) -> int:
    from mlsysgym.ir.mlir_import import export_zoo_kernels, import_model, onnx_to_mlir
    from mlsysgym.ir.paths import check_output_dir, check_output_file

    if args.out:
        check_output_file(args.out, "MLIR output file")
    if args.kernels_dir:
        check_output_dir(args.kernels_dir, "--kernels-dir")
    if args.workload == "all":
        if not args.kernels_dir:
            raise MlirCliError("MODEL 'all' needs --kernels-dir DIR (one folder per zoo model)")
        counts = export_zoo_kernels(args.kernels_dir, progress=lambda m: print(
            f"exporting {m}", file=sys.stderr))
        print(f"wrote {sum(counts.values())} kernels of {len(counts)} models to "
              f"{args.kernels_dir}/index.md", file=sys.stderr)
        return 0
    if args.torch:
        with slow_step(f"importing {args.workload} (iree-import-onnx)"):
            text = onnx_to_mlir(args.workload)[1]
    else:
        with slow_step(f"importing {args.workload} (iree-import-onnx, iree-compile)"):
            imported = import_model(args.workload, phase=args.phase)
        text = imported.linalg_mlir
        if args.kernels_dir:
            counts = export_zoo_kernels(args.kernels_dir, models=[imported.name]) \
                if not Path(args.workload).is_file() else _export_file(text, imported.name,
                                                                    args.kernels_dir)
            print(f"wrote {sum(counts.values())} kernels to {args.kernels_dir}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out} ({len(text)} bytes)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _export_file(text: str, name: str, out: str) -> dict[str, int]:
    from mlsysgym.ir.mlir_import import extract_kernels
    from mlsysgym.ir.mlir_parse import parse

    d = Path(out) / name
    d.mkdir(parents=True, exist_ok=True)
    kernels = extract_kernels(parse(text, name=name))
    for k in kernels:
        (d / f"{k.index:04d}_{k.kind}.mlir").write_text(k.mlir)
    return {name: len(kernels)}


def inspect_report(parsed: Any) -> dict[str, Any]:
    """The JSON document of ``mlir inspect``: totals, linalg kinds, per-op rows."""
    from dataclasses import asdict

    g = parsed.graph
    ops = [{"name": op.name, "op_type": op.op_type, "macs": op.macs, "flops": op.flops,
            "bytes_read": op.bytes_read, "bytes_written": op.bytes_written,
            "supported": op.attributes.get("supported", True), "estimated": op.estimated,
            "dynamic": bool(op.attributes.get("dynamic")),
            "iteration_domain": op.attributes.get("iteration_domain"),
            "iterator_types": op.attributes.get("iterator_types"),
            "line": op.attributes.get("line")} for op in g.ops]
    t = g.totals()
    return {"name": g.name, "totals": {k: v for k, v in asdict(t).items()
                                       if k not in ("params", "param_bytes")},
            "linalg_kinds": dict(Counter(i.kind for i in parsed.linalg.values())),
            "unsupported_ops": dict(Counter(op.op_type for op in parsed.unsupported)),
            "ops": ops}


def run_inspect(args: argparse.Namespace) -> int:
    from mlsysgym.ir.mlir_parse import parse, read_mlir_file

    path = Path(args.workload)
    text = read_mlir_file(path)
    parsed = parse(text, name=path.stem)
    if not parsed.graph.ops:
        raise MlirCliError(f"{path} is empty: nothing to inspect" if not text.strip() else
                           f"{path} has no ops inside a function (func.func or util.func); "
                           f"ops outside a function are not costed")
    if args.json:
        print_json(args, inspect_report(parsed))
        return 0
    from rich.console import Console

    from mlsysgym.commands.ir_cmds import print_graph

    print_graph(parsed.graph, args.top)
    kinds = Counter(i.kind for i in parsed.linalg.values())
    console = Console()
    console.print("[bold]linalg ops[/bold]: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    if parsed.unsupported:
        bad = Counter(op.op_type for op in parsed.unsupported)
        console.print("[bold]unsupported (kept, costed 1 FLOP/element)[/bold]: "
                      + ", ".join(f"{k} {v}" for k, v in bad.most_common()))
    dynamic = [op.name for op in parsed.graph.ops if op.attributes.get("dynamic")]
    if dynamic:
        console.print(f"[bold]dynamic[/bold]: {len(dynamic)} linalg ops have a dynamic bound "
                      f"(?); their MACs and FLOPs are unknown and counted as 0 (marked *)")
    return 0


def run_measure(args: argparse.Namespace) -> int:
    from mlsysgym.experiments.mlir_measure import measure_dataset
    from mlsysgym.ir.paths import check_output_dir

    check_output_dir(args.out, "dataset folder")
    with progress_to_stderr():
        s = measure_dataset(args.kernels, args.out, resume=args.resume, seed=args.seed,
                            models=args.models, max_macs=args.max_macs,
                            compile_workers=args.compile_workers, batch_size=args.batch_size,
                            timing={"max_time_s": args.time_budget, "min_reps": args.min_reps,
                                    "max_reps": max(60, 4 * args.min_reps)},
                            timeout_s=args.timeout, show_progress=not args.no_progress)
    if args.json:
        print_json(args, {"requested": s.requested, "measured": s.measured, "failed": s.failed,
                          "skipped": s.skipped, "seconds": round(s.seconds, 3),
                          "kernels_per_minute": round(s.kernels_per_minute, 3), "out": str(s.out)})
        return 0
    print(f"measured {s.measured} kernels ({s.failed} failed, {s.skipped} already in the "
          f"dataset) in {s.seconds:.0f} s = {s.kernels_per_minute:.1f}/min -> {s.out}")
    return 0
