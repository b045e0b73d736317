"""``mlsysgym compile MODEL_OR_MLIR --tune costmodel:PATH``: per-op tile sizes chosen by a cost model.

Parses the module (an ``.mlir`` file in linalg on tensors, an ``.onnx`` file or a zoo name,
imported with ``iree-compile --compile-to=input``), tunes every root op with
:func:`mlsysgym.costmodels.tiling_pass.tune_module`, compiles the tuned module with IREE and checks
its outputs against the untuned compile.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlsysgym.ir.errors import MlsysgymError


class CompileCliError(MlsysgymError):
    """A bad ``mlsysgym compile`` argument."""


def register(group: Any) -> None:
    """Add the top-level ``compile`` command."""
    p = group("").add_parser("compile", help="compile a model with IREE (llvm-cpu), choosing "
                             "tile sizes per op with a learned cost model")
    p.add_argument("source", metavar="MODEL_OR_MLIR",
                   help="an .mlir file (linalg on tensors), an .onnx file or a zoo model name")
    p.add_argument("--tune", metavar="costmodel:PATH", default=None,
                   help="the cost model directory (model.onnx + metadata.json)")
    p.add_argument("--mode", default="costmodel",
                   choices=("costmodel", "costmodel+verify-top-k", "measure"),
                   help="costmodel: no measurement; costmodel+verify-top-k: measure the k best "
                   "predicted; measure: exhaustive search over a sampled candidate set")
    p.add_argument("-k", type=int, default=5, help="candidates measured in verify-top-k (≤ 5)")
    p.add_argument("-o", "--output", metavar="OUT.vmfb", help="write the tuned module here")
    p.add_argument("--emit-mlir", metavar="FILE", help="also write the annotated MLIR here")
    p.add_argument("--no-check", action="store_true",
                   help="skip compiling and the numerics check against the untuned compile")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=run_compile)


def _model_path(tune: str | None, mode: str) -> str | None:
    if tune is None:
        if mode != "measure":
            raise CompileCliError(f"--mode {mode} needs --tune costmodel:PATH")
        return None
    kind, _, path = tune.partition(":")
    if kind != "costmodel" or not path:
        raise CompileCliError(f"--tune {tune!r} is not like costmodel:PATH")
    if not Path(path).is_dir():
        raise CompileCliError(f"no cost model directory at {path}; train one with "
                              "`python -m mlsysgym.experiments.tiling_data --train DIR`")
    return path


def _load_source(source: str) -> str:
    path = Path(source)
    if path.suffix == ".mlir":
        if not path.is_file():
            raise CompileCliError(f"no such MLIR file: {source}")
        return path.read_text()
    from mlsysgym.ir.mlir_import import import_model

    return import_model(source).linalg_mlir


def run_compile(args: argparse.Namespace) -> int:
    """Tune, compile, check; prints the report."""
    from mlsysgym.costmodels.tiling_pass import compile_and_check, tune_module

    model_path = _model_path(args.tune, args.mode)
    if not 1 <= args.k <= 64:
        raise CompileCliError(f"-k must be between 1 and 64, got {args.k}")
    text = _load_source(args.source)
    report = tune_module(text, args.mode, model_path, k=args.k)
    if not args.no_check:
        report.check = compile_and_check(report, text, out=args.output)
    if args.emit_mlir:
        Path(args.emit_mlir).write_text(report.mlir)
    if args.json:
        print(json.dumps({
            "mode": report.mode, "pass_s": report.pass_s,
            "ops": [{"index": o.index, "op": o.name, "problem": o.problem_key, "tuned": o.tuned,
                     "reason": o.reason, "is_default": o.is_default,
                     "config": o.chosen.to_dict() if o.chosen else None,
                     "predicted_ratio": o.predicted_ratio, "measured_ratio": o.measured_ratio,
                     "candidates": o.candidates, "model_ms": o.model_ms} for o in report.ops],
            "check": None if report.check is None else vars(report.check)}, default=str))
    else:
        print(report.summary())
        if args.output and report.check is not None and report.check.ok:
            print(f"wrote {args.output}")
    if report.check is not None and not report.check.ok:
        print(f"mlsysgym: error: tuned module disagrees with the untuned compile "
              f"({report.check.error or f'max rel err {report.check.max_rel_err:.2e}'})",
              file=sys.stderr)
        return 1
    return 0
