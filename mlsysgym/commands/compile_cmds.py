"""``mlsysgym compile MODEL_OR_MLIR --tune``: per-op tile sizes chosen by a cost model for this target.

Parses the module (an ``.mlir`` file in linalg on tensors, an ``.onnx`` file or a zoo name,
imported with ``iree-compile --compile-to=input``), tunes every root op for the codegen target
(``--target-cpu``, default ``host``) with :func:`mlsysgym.compiler.tiling_pass.tune_module`,
compiles the tuned module with IREE and checks its outputs against the untuned compile.

``--tune`` alone uses the cost model shipped with the package; ``--tune costmodel:PATH`` another.
When the model has no data for this target (its fingerprint, ``mlsysgym info``), the first
``--tune`` calibrates: it measures this module's ops (then more shapes) here for at most
``--minutes`` (default 10), cached per target; ``--calibrate`` does it explicitly and
``--no-calibrate`` keeps IREE's default on an unknown target instead. The tuned module is then
timed against the default on both drivers, with all tuned ops and with each shape's ops
alone; only the shapes that make it faster beyond the noise on one and slower on none are
kept (``--no-verify`` skips this); ``--benchmark`` prints the comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlsysgym.commands.common import (
    add_json,
    add_out,
    add_workload,
    print_json,
    progress_to_stderr,
    say,
    slow_step,
)
from mlsysgym.core.errors import MlsysgymError


class CompileCliError(MlsysgymError):
    """A bad ``mlsysgym compile`` argument."""


DEFAULT_CALIBRATION_MINUTES = 10.0


def register(group: Any) -> None:
    """Add the top-level ``compile`` command."""
    p = group("").add_parser("compile", help="compile a model with IREE (llvm-cpu), choosing "
                             "tile sizes per op with a learned cost model for this target")
    add_workload(p, "an .mlir file (linalg on tensors), an .onnx file or a zoo model name",
                 metavar="MODEL_OR_MLIR", alias=None)
    p.add_argument("--tune", metavar="costmodel[:PATH]", nargs="?", const="costmodel",
                   default=None, help="tune tile sizes with the package's cost model, or the "
                   "one in PATH (model.onnx + metadata.json)")
    p.add_argument("--mode", default="costmodel",
                   choices=("costmodel", "costmodel+verify-top-k", "measure"),
                   help="costmodel: no measurement at compile time; costmodel+verify-top-k: "
                   "measure the k best predicted; measure: search over a sampled candidate set")
    p.add_argument("-k", type=int, default=5, help="candidates measured in verify-top-k")
    p.add_argument("--target-cpu", default="host",
                   help="codegen target (--iree-llvmcpu-target-cpu): host, x86-64-v3, ...")
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--calibrate", action="store_true",
                     help="measure this module's ops on this target and adapt the model first "
                     "(cached per target fingerprint)")
    cal.add_argument("--no-calibrate", action="store_true",
                     help="on a target the model has no data for, keep IREE's defaults "
                     "instead of calibrating")
    p.add_argument("--minutes", type=float, default=DEFAULT_CALIBRATION_MINUTES,
                   help="calibration budget in minutes")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="time tuned vs default (local-sync and local-task), all tuned ops and "
                   "each shape's alone; keep only the shapes that make the module faster")
    p.add_argument("--benchmark", action="store_true",
                   help="print default vs tuned whole-module time on local-sync and local-task")
    add_out(p, "write the tuned module here", metavar="OUT.vmfb", aliases=("--output",))
    p.add_argument("--emit-mlir", metavar="FILE", help="also write the annotated MLIR here")
    p.add_argument("--no-check", action="store_true",
                   help="skip compiling and the numerics check against the untuned compile")
    add_json(p, "print the report as JSON")
    p.set_defaults(func=run_compile)


def _model_path(tune: str | None, mode: str) -> str | None:
    """The cost model directory of ``--tune`` (None: the package's default model)."""
    if tune is None:
        if mode != "measure":
            raise CompileCliError(f"--mode {mode} needs --tune [costmodel:PATH]")
        return None
    kind, _, path = tune.partition(":")
    if kind != "costmodel":
        raise CompileCliError(f"--tune {tune!r} is not like costmodel or costmodel:PATH")
    if path and not Path(path).is_dir():
        raise CompileCliError(f"no cost model directory at {path}; train one with "
                              "`mlsysgym experiment tiling-data --out DATA_DIR --train MODEL_DIR`")
    return path or None


def _load_source(source: str) -> str:
    if Path(source).suffix == ".mlir":
        from mlsysgym.ir.mlir_parse import read_mlir_file

        text = read_mlir_file(source)
        if not text.strip():
            raise CompileCliError(f"{source} is empty: nothing to compile")
        if "func" not in text:  # no func.func / util.func: nothing IREE would compile
            raise CompileCliError(f"{source} has no function to compile (func.func or util.func)")
        return text
    from mlsysgym.ir.mlir_import import import_model

    return import_model(source).linalg_mlir


def _print_timings(timings: Any) -> None:
    for t in timings.values():
        print(f"  {t.driver:10s} default {t.default_ms:9.2f} ms  tuned {t.tuned_ms:9.2f} ms  "
              f"speedup ×{t.speedup:.3f} (noise ±{t.noise:.1%}, {t.rounds} rounds)")


def run_compile(args: argparse.Namespace) -> int:
    """Tune (calibrating first on a new target), compile, check, verify; prints the report."""
    from mlsysgym.compiler.tiling_pass import tune_module

    model_path = _model_path(args.tune, args.mode)
    _check_compile_args(args)
    with slow_step(f"importing {args.workload}"):
        text = _load_source(args.workload)
    with progress_to_stderr():  # the calibration's progress bar
        model = _calibrated_model(args, text, model_path)
    say(f"tuning tile sizes ({args.mode})")
    report = tune_module(text, args.mode, model=model, k=args.k, target_cpu=args.target_cpu)
    timings = _check_and_time(args, report, text)
    if args.out and report.check is not None and report.check.ok:
        import shutil

        shutil.copyfile(report.check.vmfb, args.out)
    if args.emit_mlir:
        Path(args.emit_mlir).write_text(report.mlir)
    if args.json:
        _print_json(args, report, timings)
    else:
        print(report.summary())
        if timings:
            print("whole module, tuned vs IREE's default (interleaved):")
            _print_timings(timings)
        if args.out and report.check is not None and report.check.ok:
            print(f"wrote {args.out}")
    _warn_if_slower(args, report, timings)
    if report.check is not None and not report.check.ok:
        print(f"mlsysgym: error: tuned module disagrees with the untuned compile "
              f"({report.check.error or f'max rel err {report.check.max_rel_err:.2e}'})",
              file=sys.stderr)
        return 1
    return 0


def _check_compile_args(args: argparse.Namespace) -> None:
    """One-line errors for out-of-range options, unwritable outputs and an unknown target."""
    from mlsysgym.core.target import target_isa
    from mlsysgym.ir.paths import check_output_file

    if not 1 <= args.k <= 64:
        raise CompileCliError(f"-k must be between 1 and 64, got {args.k}")
    if not 0 < args.minutes <= 24 * 60:
        raise CompileCliError(f"--minutes must be in (0, 1440], got {args.minutes}")
    for path, what in ((args.out, "-o/--out"), (args.emit_mlir, "--emit-mlir")):
        if path:
            check_output_file(path, what)
    target_isa(args.target_cpu)  # an unknown or unrunnable target fails here, in one line


def _calibrated_model(args: argparse.Namespace, text: str, model_path: str | None) -> Any:
    """The tiling cost model (None in measure mode), first calibrated here when it has no data
    for this target or these op shapes (unless --no-calibrate)."""
    from mlsysgym.costmodels.tiling_model import calibrate, load_tiling_model
    from mlsysgym.costmodels.tiling_ops import find_root_ops

    if args.mode == "measure":
        return None
    model = load_tiling_model(model_path, args.target_cpu)
    probs = [r.problem for r in find_root_ops(text, args.target_cpu) if r.problem is not None]
    todo = model.unsupported(probs)
    if args.calibrate or (todo and not args.no_calibrate):
        why = (f"the cost model has no data for target {model.target_id} ({model.isa.level})"
               if not model.knows_target else
               f"{len(todo)} op shape(s) lie outside the cost model's data")
        print(f"{why}; measuring them here for at most {args.minutes:g} min (cached per "
              "target; --no-calibrate skips)", file=sys.stderr)
        calibrate(model, args.target_cpu, todo or probs, minutes=args.minutes,
                  more_shapes=0 if model.knows_target else 200,
                  show_progress=not args.json, log=lambda m: print(m, file=sys.stderr))
    return model


def _check_and_time(args: argparse.Namespace, report: Any, text: str) -> Any:
    """Compile and check the tuned module, verify it (reverting slower ops) and time it as
    asked; returns the whole-module timings or None."""
    from mlsysgym.compiler.tiling_pass import compile_and_check

    if not args.no_check or args.verify or args.out:
        say("compiling the tuned module and checking it against the untuned compile")
        report.check = compile_and_check(report, text)  # also drops configs IREE rejects
    verified = None
    if args.verify and report.check.ok:
        from mlsysgym.compiler.tiling_verify import verify

        say("timing the tuned module against IREE's default (--no-verify skips)")
        verified = verify(report, text, log=lambda m: print(m, file=sys.stderr))
        if verified.reverted:
            report.check = compile_and_check(report, text)
    timings = verified.timings if verified is not None and verified.timings else None
    if args.benchmark and timings is None:
        from mlsysgym.compiler.tiling_verify import benchmark_modules

        say("benchmarking default vs tuned")
        timings = benchmark_modules(text, report.mlir, args.target_cpu)
    return timings


def _print_json(args: argparse.Namespace, report: Any, timings: Any) -> None:
    """The report, check and timings as one JSON object on stdout."""
    print_json(args, {
        "mode": report.mode, "pass_s": report.pass_s, "target_cpu": args.target_cpu,
        "ops": [{"index": o.index, "op": o.name, "problem": o.problem_key, "tuned": o.tuned,
                 "reason": o.reason, "is_default": o.is_default,
                 "config": o.chosen.to_dict() if o.chosen else None,
                 "predicted_ratio": o.predicted_ratio, "measured_ratio": o.measured_ratio,
                 "candidates": o.candidates, "model_ms": o.model_ms} for o in report.ops],
        "check": None if report.check is None else vars(report.check),
        "timings": None if timings is None else {k: vars(v) for k, v in timings.items()}})


def _warn_if_slower(args: argparse.Namespace, report: Any, timings: Any) -> None:
    """Warn on stderr when the tuned module was slower than IREE's default, or not timed."""
    changed = any(o.tuned and not o.is_default for o in report.ops)
    if timings and any(t.slower for t in timings.values()):
        print("mlsysgym: warning: the tuned module is slower than IREE's default on "
              + ", ".join(t.driver for t in timings.values() if t.slower)
              + " (--no-verify was given or every revert was within noise)", file=sys.stderr)
    elif changed and not args.verify and not timings:
        print("mlsysgym: warning: --no-verify: the tuned module was not timed against IREE's "
              "default and may be slower", file=sys.stderr)
