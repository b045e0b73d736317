"""Cross-target transfer of the tile-size cost model: trained on target A, calibrated on target B.

Run: .venv/bin/python benchmarks/bench_tiling_transfer.py --data experiments/results/tiling/data_targets
Writes benchmarks/results/tiling_transfer{.md,.json,.png}.

The dataset holds measured rows of several codegen targets (``host`` and lower x86-64 levels
a machine can run, or the ``host`` of several machines; each row with its ``target_id``),
ordered by ISA level, highest first (ties: by ``target_id``). For every ordered pair
(A → B): B's shapes are split in half by a hash of the shape key: a calibration pool and a test
set. The base model is trained on A's rows only, without B's test shapes. For each fraction
of B's pool (0 %, 2 %, 5 %, 10 %, 25 %, 100 % of its shapes, seeds averaged) the residual
calibration (:func:`~mlsysgym.costmodels.tiling_model.fit_residual`) is fitted on those rows,
and the calibrated model is scored on B's test shapes, among each shape's measured candidates
(IREE's default included, ratio 1):

- Kendall τ of predicted vs measured ratio within each shape (mean over shapes);
- top-1 score: best measured ratio / measured ratio of the predicted best (1 = perfect);
- speedup: 1 / measured ratio of the pass's guarded pick (geomean over shapes; 1 = default).

Beside it: IREE's default (speedup 1), a model trained on B's pool alone (100 %, no A), the
base model on A's own test shapes (in-target reference) and the oracle (best measured).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlsysgym.core.dataset import read_dataset
from mlsysgym.core.target import TargetIsa, fingerprint
from mlsysgym.costmodels.tiling_model import (
    Calibration,
    TilingModel,
    features_frame,
    fit_residual,
    ratio_floor,
    train_tiling_model,
)
from mlsysgym.costmodels.tiling_space import FEATURE_NAMES
from mlsysgym.experiments.report import stamp_markdown, write_provenance
from scipy.stats import kendalltau

RESULTS = Path("benchmarks/results/tiling_transfer")  # default --out, under the working directory
FRACTIONS = (0.0, 0.02, 0.05, 0.10, 0.25, 1.0)
MARGIN = 0.95


def _test_half(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 2 == 0


def _fit(frame: pd.DataFrame, out: Path) -> Any:
    """Train a tiling model on ``frame``, save it to ``out`` and load it back (ONNX Runtime,
    as the pass uses it)."""
    from mlsysgym.costmodels.base import CostModel

    train_tiling_model(frame, out, members=3)
    return CostModel.load(out)


def _model_for(base: Any, frame_target: pd.DataFrame) -> TilingModel:
    r = frame_target.iloc[0]
    isa = TargetIsa(str(r["target_level"]), str(r["target_level"]), int(r["vector_bits"]), ())
    return TilingModel(base, str(r["target_id"]), isa)


def score(model: TilingModel, test: pd.DataFrame) -> dict[str, float]:
    """Kendall τ, top-1 score and guarded-pick speedup of ``model`` on a features frame."""
    pred, spread, _ = model.predict({f: test[f].to_numpy() for f in FEATURE_NAMES})
    test = test.assign(pred=pred, spread=spread)
    taus, top1, picks, oracle = [], [], [], []
    for key, g in test.groupby("problem_key"):
        y, p = g["runtime_ratio"].to_numpy(), g["pred"].to_numpy()
        if len(g) >= 3 and np.ptp(y) > 0:
            t = kendalltau(p, y).statistic
            if np.isfinite(t):
                taus.append(t)
        best = float(y.min())
        top1.append(best / float(y[int(np.argmin(p))]))
        kind = str(g["kind"].iloc[0])
        floor = model.floor(kind)
        safe = np.log(np.maximum(p, 1e-9)) + g["spread"].to_numpy()
        safe[(g["is_default"].to_numpy() > 0.5) | (p < floor)] = np.inf
        i = int(np.argmin(safe))
        picks.append(float(y[i]) if safe[i] < math.log(MARGIN) else 1.0)
        oracle.append(min(best, 1.0))
    def geo(xs: list[float]) -> float:  # speedup: 1 / geometric mean of the ratios
        return float(np.exp(-np.mean(np.log(xs))))
    return {"tau": float(np.mean(taus)) if taus else math.nan, "top1": float(np.mean(top1)),
            "speedup": geo(picks), "oracle": geo(oracle), "shapes": int(test["problem_key"].nunique())}


def run_pair(raw: pd.DataFrame, frame: pd.DataFrame, a: str, b: str, seeds: int, work: Path,
             log: Any) -> list[dict[str, Any]]:
    """Rows of the transfer curve A → B (target ids); ``raw`` the dataset rows, ``frame``
    their :func:`features_frame`."""
    fb = frame[frame["target_id"] == b]
    keys = sorted(fb["problem_key"].unique())
    test_keys = {k for k in keys if _test_half(k)}
    pool_keys = [k for k in keys if k not in test_keys]
    fa = frame[(frame["target_id"] == a) & ~frame["problem_key"].isin(test_keys)]
    t0 = time.perf_counter()
    base = _fit(fa, work / f"base-{a}-{b}")
    log(f"  base on {a}: {len(fa)} rows, {time.perf_counter() - t0:.0f} s")
    test = fb[fb["problem_key"].isin(test_keys)]
    model = _model_for(base, fb)
    out = []
    raw_b = raw[raw["target_id"] == b]
    for frac in FRACTIONS:
        res_scores = []
        for seed in range(seeds if 0 < frac < 1 else 1):
            rng = np.random.default_rng(seed)
            n = round(frac * len(pool_keys))
            if frac > 0:
                n = max(n, 1)
            pick = set(rng.choice(pool_keys, size=n, replace=False)) if n else set()
            cal_rows = raw_b[raw_b["problem_key"].isin(pick)]
            m = TilingModel(base, model.target_id, model.isa)
            if len(cal_rows):
                res = fit_residual(m, cal_rows, work / f"res-{a}-{b}-{frac}-{seed}")
                m.calibration = Calibration(b, len(cal_rows), n, res,
                                            floor=ratio_floor(cal_rows))
            res_scores.append(score(m, test))
        agg = {k: float(np.nanmean([s[k] for s in res_scores])) for k in res_scores[0]}
        out.append({"from": a, "to": b, "fraction": frac, "pool_shapes": len(pool_keys),
                    "calibration_shapes": round(frac * len(pool_keys)), **agg})
        log(f"  {a}->{b} {frac:>5.0%}: tau {agg['tau']:.3f} top1 {agg['top1']:.3f} "
            f"speedup {agg['speedup']:.3f} (oracle {agg['oracle']:.3f})")
    only_b = _fit(fb[fb["problem_key"].isin(pool_keys)], work / f"only-{b}")
    sb = score(_model_for(only_b, fb), test)
    out.append({"from": f"{b} only", "to": b, "fraction": 1.0, "pool_shapes": len(pool_keys),
                "calibration_shapes": len(pool_keys), **sb})
    ta = frame[(frame["target_id"] == a) & frame["problem_key"].isin(test_keys)]
    if len(ta):
        sa = score(_model_for(base, ta), ta)
        out.append({"from": a, "to": f"{a} (in-target)", "fraction": math.nan, "pool_shapes": 0,
                    "calibration_shapes": 0, **sa})
    return out


def whole_model_curve(raw: pd.DataFrame, frame: pd.DataFrame, a: str, b: str, source: str,
                      work: Path, rounds: int, log: Any) -> list[dict[str, Any]]:
    """Whole-model speedup on target B of the pass alone (no measurement of the model's own
    ops, no verification) with A's model calibrated on each fraction of B's shapes."""
    from mlsysgym.compiler.tiling_pass import compile_and_check, tune_module
    from mlsysgym.compiler.tiling_verify import DRIVERS, benchmark_modules
    from mlsysgym.ir.mlir_import import import_model

    fb = frame[frame["target_id"] == b]
    pool = sorted(fb["problem_key"].unique())
    base = _fit(frame[frame["target_id"] == a], work / f"whole-base-{a}")
    model = _model_for(base, fb)
    target_cpu = str(raw.loc[raw["target_id"] == b, "target_cpu"].iloc[0])
    text = import_model(source).linalg_mlir
    raw_b = raw[raw["target_id"] == b]
    out = []
    for frac in (0.0, 0.05, 0.25, 1.0):
        n = max(round(frac * len(pool)), 1) if frac else 0
        pick = set(np.random.default_rng(0).choice(pool, size=n, replace=False)) if n else set()
        m = TilingModel(base, model.target_id, model.isa)
        cal_rows = raw_b[raw_b["problem_key"].isin(pick)]
        if len(cal_rows):
            res = fit_residual(m, cal_rows, work / f"whole-res-{b}-{frac}")
            m.calibration = Calibration(b, len(cal_rows), n, res, floor=ratio_floor(cal_rows))
        rep = tune_module(text, "costmodel", model=m, target_cpu=target_cpu)
        changed = sum(o.tuned and not o.is_default for o in rep.ops)
        chk = compile_and_check(rep, text)
        tm = benchmark_modules(text, rep.mlir, target_cpu, DRIVERS, rounds) if changed else {}
        row = {"model": Path(source).stem, "from": a, "to": b, "fraction": frac,
               "changed": changed, "with_rule": len(rep.tuned), "numerics_ok": chk.ok,
               **{f"{d}_speedup": (tm[d].speedup if d in tm else 1.0) for d in DRIVERS},
               **{f"{d}_noise": (tm[d].noise if d in tm else math.nan) for d in DRIVERS}}
        out.append(row)
        log(f"  whole {row['model']} {frac:.0%}: {changed} changed, sync "
            f"×{row['local-sync_speedup']:.3f} task ×{row['local-task_speedup']:.3f}")
    return out


def render(rows: list[dict[str, Any]], levels: dict[str, str], cmd: str, seconds: float) -> str:
    """The Markdown report."""
    def name(t: str) -> str:
        for tid, lvl in levels.items():
            t = t.replace(tid, f"{lvl} ({tid[:6]})")
        return t
    lines = ["# Tile-size cost model across targets: trained on A, calibrated on B", "",
             (f"Command: `{cmd}`; {seconds / 60:.1f} min. Test shapes: half of B's measured "
             "shapes (by hash), never in A's training rows nor in B's calibration. Speedup: "
             f"guarded pick (margin {MARGIN}) among each test shape's measured candidates, "
             "geomean of 1/ratio; IREE's default is 1.000."), "",
             "| from | to | fraction of B's pool | shapes | Kendall τ | top-1 | speedup | oracle |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frac = "—" if not np.isfinite(r["fraction"]) else f"{r['fraction']:.0%}"
        lines.append(f"| {name(r['from'])} | {name(r['to'])} | {frac} | {r['calibration_shapes']} |"
                     f" {r['tau']:.3f} | {r['top1']:.3f} | {r['speedup']:.3f} | {r['oracle']:.3f} |")
    return stamp_markdown("\n".join(lines) + "\n", fingerprint())


def plot(rows: list[dict[str, Any]], levels: dict[str, str], path: Path) -> None:
    """τ and speedup vs calibration fraction, one line per pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    df = pd.DataFrame([r for r in rows if r["to"] in levels and r["from"] in levels])
    for (a, b), g in df.groupby(["from", "to"]):
        x = np.maximum(g["fraction"].to_numpy() * 100, 0.5)
        lbl = f"{levels[a]} ({a[:6]}) → {levels[b]} ({b[:6]})"
        axes[0].plot(x, g["tau"], marker="o", label=lbl)
        axes[1].plot(x, g["speedup"], marker="o", label=lbl)
    for ax, ylab in zip(axes, ("Kendall τ (test shapes of B)", "speedup of guarded pick")):
        ax.set_xscale("log")
        ax.set_xlabel("% of B's calibration pool (0 % plotted at 0.5)")
        ax.set_ylabel(ylab)
        ax.grid(alpha=0.3)
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="tiling dataset with several targets")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--whole", default=None, metavar="MODEL",
                    help="only the whole-model curve of MODEL (zoo name or .onnx) for the first "
                    "pair (highest level -> next), written to OUT_whole.md")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows_raw = read_dataset(args.data)
    frame = features_frame(rows_raw)
    levels = {str(t): str(g["target_level"].iloc[0]) for t, g in frame.groupby("target_id")}
    order = sorted(sorted(levels), key=lambda t: levels[t], reverse=True)  # v4 first
    if len(order) < 2:
        print("need rows of at least two targets", file=sys.stderr)
        return 2
    pairs = [(order[0], b) for b in order[1:]] + [(order[1], order[0])]
    if args.whole:
        with tempfile.TemporaryDirectory() as work:
            rows = whole_model_curve(rows_raw, frame, order[0], order[1], args.whole, Path(work),
                                     args.rounds, lambda m: print(m, file=sys.stderr, flush=True))
        path = args.out.with_name(args.out.stem + "_whole.md")
        lines = [(f"# Whole model on an unseen target: {levels[order[0]]} model calibrated on a "
                 f"fraction of {levels[order[1]]}'s shapes"), "",
                 (f"Command: `{' '.join(['python', *sys.argv])}`. The pass alone (`costmodel` mode, "
                 "no measurement of the model's own ops, no verification); speedup = median over "
                 f"{args.rounds} interleaved rounds of default / tuned."), "",
                 ("| model | fraction | ops changed / with rule | numerics | local-sync × | noise | "
                 "local-task × | noise |"), "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['fraction']:.0%} | {r['changed']} / {r['with_rule']} | "
                  f"{'ok' if r['numerics_ok'] else 'MISMATCH'} | {r['local-sync_speedup']:.3f} | "
                  f"±{r['local-sync_noise']:.1%} | {r['local-task_speedup']:.3f} | "
                  f"±{r['local-task_noise']:.1%} |".replace("±nan%", "—") for r in rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(stamp_markdown("\n".join(lines) + "\n", fingerprint()))
        print(path.read_text())
        return 0
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        for a, b in pairs:
            print(f"{levels[a]} -> {levels[b]}", file=sys.stderr)
            out += run_pair(rows_raw, frame, a, b, args.seeds, Path(work),
                            lambda m: print(m, file=sys.stderr, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1))
    cmd = " ".join(["python", *sys.argv])
    args.out.with_suffix(".md").write_text(render(out, levels, cmd, time.perf_counter() - t0))
    write_provenance(args.out.with_suffix(".provenance.json"), command=sys.argv, data=args.data)
    plot(out, levels, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
