"""Tile-size pass on whole models: tuned vs IREE's default, end to end, on both IREE drivers.

Run: .venv/bin/python benchmarks/bench_tiling_models.py [--target-cpu host] [--model DIR]
     [--calibration-minutes 10] [--rounds 7] [--verify] [--only NAME ...]
Writes benchmarks/results/tiling_models{.md,.json,.png}.

For each model (zoo models and the held-out models of ``benchmarks/data/tiling_models/``, none
of which, nor any of their shapes, was measured for training): import to linalg, load the
tile-size model for the target (the package's default unless ``--model``), calibrate as
``mlsysgym compile --tune`` does (on a target the model has no data for: the module's ops,
then perturbations of them, for ``--calibration-minutes``; on a known target: only the ops
larger than the model's data; the one-time cost is reported), run the pass in the default mode (``costmodel``, guarded), compile tuned and
untuned, compare outputs on random inputs, then time both interleaved
(:func:`~mlsysgym.compiler.tiling_verify.benchmark_modules`: per round one call of each in
random order, ``--rounds`` rounds; the speedup is the median of default / tuned per round and
the noise an A/A pair of the default in the same rounds) on ``local-sync`` and ``local-task``.
``--verify`` (what ``mlsysgym compile --tune`` does by default) also runs the pass's
verification (:func:`~mlsysgym.compiler.tiling_verify.verify`), then times the final module
again in a fresh run (the confirmed speedup, free of the selection the verification made on
its own timings).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.compiler.tiling_pass import compile_and_check, tune_module
from mlsysgym.compiler.tiling_verify import DRIVERS, benchmark_modules, verify
from mlsysgym.core.target import fingerprint
from mlsysgym.costmodels.tiling_model import calibrate, load_tiling_model
from mlsysgym.costmodels.tiling_ops import find_root_ops
from mlsysgym.experiments.report import stamp_markdown, write_provenance
from mlsysgym.ir.mlir_import import import_model

HERE = Path(__file__).resolve().parent
HELD_OUT_DIR = HERE / "data" / "tiling_models"
ZOO_MODELS = ("gpt2", "bert_base", "distilbert_base", "t5_small_encoder")
RESULTS = Path("benchmarks/results/tiling_models")  # default --out, under the working directory


def models() -> list[tuple[str, str, bool]]:
    """(name, source for import_model, held out?) of every benchmarked model."""
    held = [(p.stem, str(p), True) for p in sorted(HELD_OUT_DIR.glob("*.onnx"))]
    return [(m, m, False) for m in ZOO_MODELS] + held


def run_one(name: str, source: str, held: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Tune, check and time one model; a row of the results table."""
    t0 = time.perf_counter()
    text = import_model(source).linalg_mlir
    model = load_tiling_model(args.model, args.target_cpu)
    roots = find_root_ops(text, args.target_cpu)
    probs = [r.problem for r in roots if r.problem is not None]
    cal_s = 0.0
    todo = model.unsupported(probs)
    if todo:  # what `mlsysgym compile --tune` does: measure what the model cannot decide
        cal = calibrate(model, args.target_cpu, todo, minutes=args.calibration_minutes,
                        more_shapes=0 if model.knows_target else 200, show_progress=False,
                        log=lambda m: print(f"  {m}", file=sys.stderr))
        cal_s = cal.seconds
    rep = tune_module(text, "costmodel", model=model, target_cpu=args.target_cpu)
    chk = compile_and_check(rep, text)
    changed = [o for o in rep.ops if o.tuned and not o.is_default]
    own = [o for o in rep.tuned if o.reused_from is None]
    row: dict[str, Any] = {
        "model": name, "held_out": held, "root_ops": len(roots), "with_rule": len(rep.tuned),
        "changed": len(changed), "from_calibration": sum("calibration" in o.reason for o in changed),
        "numerics_ok": chk.ok, "max_rel_err": chk.max_rel_err, "calibration_s": cal_s,
        "pass_ms_per_op": (float(np.mean([o.pass_ms - o.default_ms for o in own])) if own else 0.0),
        "default_read_ms_per_op": (float(np.mean([o.default_ms for o in own])) if own else 0.0),
        "model_ms_per_op": (float(np.mean([o.model_ms for o in own])) if own else 0.0)}
    timings = benchmark_modules(text, rep.mlir, args.target_cpu, DRIVERS, args.rounds) \
        if changed else {}
    for d in DRIVERS:
        t = timings.get(d)
        row[f"{d}_default_ms"] = t.default_ms if t else math.nan
        row[f"{d}_speedup"] = t.speedup if t else 1.0
        row[f"{d}_noise"] = t.noise if t else math.nan
    if args.verify and changed:  # the default mode: revert ops, then confirm in a fresh run
        lines: list[str] = []

        def log(m: str) -> None:
            lines.append(m)
            print(f"  {m}", file=sys.stderr)

        v = verify(rep, text, rounds=args.rounds, log=log)
        row["reverted"] = len(v.reverted)
        row["verify_s"] = v.seconds
        row["verify_log"] = lines  # what it timed: the whole, then each shape alone
        conf = benchmark_modules(text, rep.mlir, args.target_cpu, DRIVERS, args.rounds) \
            if v.kept else {}
        for d in DRIVERS:
            t = conf.get(d)
            row[f"{d}_confirmed"] = t.speedup if t else 1.0
            row[f"{d}_confirmed_noise"] = t.noise if t else math.nan
    row["seconds"] = time.perf_counter() - t0
    return row


def _geomean(xs: list[float]) -> float:
    return float(np.exp(np.mean(np.log(xs)))) if xs else math.nan


def render(rows: list[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    """The Markdown report."""
    fp = fingerprint(args.target_cpu)
    lines = ["# Tile-size pass on whole models: tuned vs IREE's default", "",
             (f"Command: `{' '.join(sys.argv)}`; {seconds / 60:.1f} min in all. Codegen target "
             f"`{args.target_cpu}` ({fp['target']['level']}, {fp['target']['vector_bits']}-bit "
             f"vectors, target_id `{fp['target_id']}`); model: "
             f"{args.model or 'the package default'}. Speedup = median over {args.rounds} "
             "interleaved rounds of default / tuned time (> 1: tuned is faster); noise = the same "
             "statistic for two copies of the default (A/A) in the same rounds. Pass alone: the "
             "pass's picks without verification; verified: after the verification (each shape's "
             "ops alone, keeping the shapes that make the module faster), timed again in a "
             "fresh run; verify s: the verification's own time. Pass ms/op: the "
             "pass's own time per distinct op (candidates, features, model call, guards), "
             "without reading IREE's default configuration (one `iree-compile` per new shape "
             "and target, then cached on disk)."), "",
             "| model | held out | root ops | with rule | changed | numerics | pass alone: "
             "local-sync × | noise | local-task × | noise |"
             + (" verified: ops reverted | local-sync × | noise | local-task × | noise | verify s |"
                if args.verify else "")
             + " calibration s | pass ms/op | IREE default read ms/op |",
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|---|---|---|" if args.verify
                                                            else "") + "---|---|---|"]
    for r in rows:
        line = (f"| {r['model']} | {'yes' if r['held_out'] else 'zoo'} | {r['root_ops']} | "
                f"{r['with_rule']} | {r['changed']} | {'ok' if r['numerics_ok'] else 'MISMATCH'} | "
                f"{r['local-sync_speedup']:.3f} | ±{r['local-sync_noise']:.1%} | "
                f"{r['local-task_speedup']:.3f} | ±{r['local-task_noise']:.1%} |")
        if args.verify:
            line += (f" {r.get('reverted', 0)} | {r.get('local-sync_confirmed', 1.0):.3f} | "
                     f"±{r.get('local-sync_confirmed_noise', math.nan):.1%} | "
                     f"{r.get('local-task_confirmed', 1.0):.3f} | "
                     f"±{r.get('local-task_confirmed_noise', math.nan):.1%} | "
                     f"{r.get('verify_s', 0.0):.0f} |")
        line += (f" {r['calibration_s']:.0f} | {r['pass_ms_per_op']:.1f} | "
                 f"{r['default_read_ms_per_op']:.0f} |")
        lines.append(line.replace("±nan%", "—"))
    keys = [("pass alone", "speedup")] + ([("verified (default mode)", "confirmed")]
                                         if args.verify else [])
    for label, key in keys:
        for d in DRIVERS:
            sp = [r.get(f"{d}_{key}", 1.0) for r in rows]
            held = [r.get(f"{d}_{key}", 1.0) for r in rows if r["held_out"]]
            lines.append(f"- {label}, {d}: geomean ×{_geomean(sp):.3f} over {len(rows)} models "
                         f"(held out only: ×{_geomean(held):.3f}); lowest ×{min(sp):.3f} "
                         f"({rows[int(np.argmin(sp))]['model']}).")
    lines.append(f"- numerics mismatches: {sum(not r['numerics_ok'] for r in rows)} of {len(rows)}.")
    return stamp_markdown("\n".join(lines) + "\n", fingerprint())


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Bar chart of the speedups per model and driver."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(rows))
    for j, d in enumerate(DRIVERS):
        ax.bar(x + (j - 0.5) * 0.38, [r[f"{d}_speedup"] for r in rows], 0.38, label=d)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.98, color="r", lw=0.8, ls="--", label="0.98 (goal: never below)")
    ax.set_xticks(x, [r["model"] + ("*" if r["held_out"] else "") for r in rows], rotation=30,
                  ha="right")
    ax.set_ylabel("speedup vs IREE default")
    ax.set_title("tile-size pass, whole models (* = held out)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-cpu", default="host")
    ap.add_argument("--model", default=None, help="tile-size model dir (default: the package's)")
    ap.add_argument("--calibration-minutes", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, source, held in models():
        if args.only and name not in args.only:
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows.append(run_one(name, source, held, args))
        r = rows[-1]
        print(f"  changed {r['changed']}/{r['with_rule']} ops, sync ×{r['local-sync_speedup']:.3f},"
              f" task ×{r['local-task_speedup']:.3f}, {r['seconds']:.0f} s", file=sys.stderr)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    args.out.with_suffix(".md").write_text(render(rows, args, time.perf_counter() - t0))
    write_provenance(args.out.with_suffix(".provenance.json"), command=sys.argv,
                     target=fingerprint(args.target_cpu))
    plot(rows, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
