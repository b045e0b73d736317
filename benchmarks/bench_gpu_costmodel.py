"""GPU kernel cost models (issue #26): roofline vs LightGBM vs MLP on held-out shape families.

    .venv/bin/python benchmarks/bench_gpu_costmodel.py \\
        --data benchmarks/data/gpu/h200_kernels.parquet --write benchmarks/results/gpu_costmodel.md

Reads the measured rows (``benchmarks/gpu/measure_kernels.py`` on the GPU named in the
fingerprint), trains each model on every split's training rows (``costmodels.gpu_kernels.
split_rows``) and scores the pooled held-out predictions (``gpu_kernels.score``). Writes a
Markdown report with the device fingerprint and a PNG of predicted vs measured runtime and
power on the held-out-family splits.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pandas as pd
from mlsysgym.costmodels import gpu_kernels as G

MODELS = {"roofline": G.Roofline, "lightgbm": G.GBMKernelModel, "mlp": G.MLPKernelModel}
FAMILY_SPLITS = ("gemm_family", "attn_config")
GPPERF = {"rt_r2": 0.98, "rt_mape": 15.6, "pw_r2": 0.78, "pw_medape": 5.4}


def _fmt(v: float, pct: bool = False, tie: bool = False) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "ties" if tie else "–"
    return f"{v:.1f}" if pct else f"{v:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=G.DEFAULT_DATA)
    ap.add_argument("--write", type=Path, default=Path("benchmarks/results/gpu_costmodel.md"))
    ap.add_argument("--models", default="roofline,lightgbm,mlp")
    ap.add_argument("--splits", default="")
    a = ap.parse_args(argv)
    t_start = time.time()
    df = G.load_gpu_kernels(a.data)
    splits = G.split_rows(df)
    if a.splits:
        splits = {k: v for k, v in splits.items() if k in a.splits.split(",")}
    results: dict[tuple[str, str], dict[str, float]] = {}
    pooled: dict[tuple[str, str], pd.DataFrame] = {}
    for sname, folds in splits.items():
        for mname in a.models.split(","):
            t0 = time.time()
            res, pred = G.evaluate(df, folds, MODELS[mname])
            results[(sname, mname)] = res
            pooled[(sname, mname)] = pred
            print(f"{sname:13s} {mname:9s} folds={len(folds):2d} n={int(res['n']):4d} "
                  f"R2={res['rt_r2']:.3f} R2log={res['rt_r2_log']:.3f} MAPE={res['rt_mape']:.1f}% "
                  f"pwR2={res.get('pw_r2', np.nan):.3f} pwMed={res.get('pw_medape', np.nan):.1f}% "
                  f"tau={res['triton_tau']:.3f} top1={res['triton_top1']:.3f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
    # the headline: both held-out-family splits pooled (every row predicted once, unseen family)
    for mname in a.models.split(","):
        parts = [pooled[(s, mname)] for s in FAMILY_SPLITS if (s, mname) in pooled]
        if parts:
            p = pd.concat(parts)
            results[("family (gemm+attn)", mname)] = G.score(p, p["pred_runtime_us"].to_numpy(),
                                                               p["pred_power_w"].to_numpy())
            pooled[("family (gemm+attn)", mname)] = p
    write_report(a.write, df, results, pooled, time.time() - t_start, a.data)


def write_report(path: Path, df: pd.DataFrame, results: dict, pooled: dict, wall_s: float,
                 data: Path) -> None:
    fp = {c[3:]: df[c].iloc[0] for c in df.columns if c.startswith("fp_")}
    lines = ["# GPU kernel cost models (issue #26)", "",
             (f"`.venv/bin/python benchmarks/bench_gpu_costmodel.py --data {_rel(data)}` "
             f"({wall_s:.0f} s on this CPU). Data: {len(df)} measured kernels "
             f"({', '.join(f'{k} {v}' for k, v in df['op'].value_counts().items())}); "
             f"power/energy scored on the {int(df['power_ok'].sum()) if 'power_ok' in df else len(df)} "
             "rows whose power is a kernel's (`power_ok`)."), "",
             "Device fingerprint: " + ", ".join(f"{k}={v}" for k, v in fp.items()), "",
             ("Splits (`costmodels/gpu_kernels.py::split_rows`): each row of a split's test set is "
             "predicted by a model trained without it. `family (gemm+attn)` pools "
             "`gemm_family` (leave one of llm/cnn/square/bmm/random GEMM families out, Triton "
             "rows of that family included) and `attn_config` (leave one LLM's attention head "
             "configuration out): the held-out-shape-family headline."), "",
             ("| split | model | n | runtime R² | R² (log) | MAPE % | MAPE ≥30 µs % | median APE % | power R² | "
             "power median err % | energy R² (log) | energy median err % | Triton τ | "
             "Triton top-1 |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (s, m), r in results.items():
        lines.append(f"| {s} | {m} | {int(r['n'])} | {_fmt(r['rt_r2'])} | {_fmt(r['rt_r2_log'])} | "
                     f"{_fmt(r['rt_mape'], True)} | {_fmt(r.get('rt_mape_ge30us', np.nan), True)} | "
                     f"{_fmt(r['rt_medape'], True)} | "
                     f"{_fmt(r.get('pw_r2', np.nan))} | {_fmt(r.get('pw_medape', np.nan), True)} | "
                     f"{_fmt(r.get('en_r2_log', np.nan))} | {_fmt(r.get('en_medape', np.nan), True)} | "
                     f"{_fmt(r['triton_tau'], tie=r['triton_shapes'] > 0)} "
                     f"({int(r['triton_shapes'])}) | "
                     f"{_fmt(r['triton_top1'])} |")
    lines += ["", (f"GPPerf (RTX 4070, random 80/20 split, random forest): runtime R² "
              f"{GPPERF['rt_r2']}, MAPE {GPPERF['rt_mape']} %; power R² {GPPERF['pw_r2']}, "
              f"median error {GPPERF['pw_medape']} %."), ""]
    # fitted roofline efficiencies on all rows
    rf = G.Roofline().fit(df)
    lines += [("Roofline fitted on all rows (datasheet peaks; e_c, e_m = share of peak FLOP/s and "
              "bandwidth; t0 = fixed cost; e_m > 1 where inputs still hit the 60 MB L2 across "
              "calls — `bytes` is the compulsory-traffic lower bound):"), "",
              "| op | dtype | e_c | e_m | t0 µs | median power W |", "|---|---|---:|---:|---:|---:|"]
    for (op, dt), (ec, em, t0) in sorted(rf.params.items()):
        if op == "*":
            continue
        lines.append(f"| {op} | {dt} | {ec:.3f} | {em:.3f} | {t0 * 1e6:.2f} | "
                     f"{rf.power.get((op, dt), float('nan')):.0f} |")
    png = path.with_suffix(".png")
    try:
        _plot(png, pooled)
        lines += ["", f"Predicted vs measured on the held-out families: `{png.name}`."]
    except Exception as e:  # noqa: BLE001 - a missing matplotlib must not lose the report
        lines += ["", f"(plot skipped: {e})"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(
        {f"{s}|{m}": r for (s, m), r in results.items()}, indent=1, default=float) + "\n")
    print("wrote", path)


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _plot(png: Path, pooled: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for (s, m) in pooled if s == "family (gemm+attn)"]
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 8.2), squeeze=False)
    for j, m in enumerate(models):
        p = pooled[("family (gemm+attn)", m)]
        ax = axes[0, j]
        for op, g in p.groupby("op"):
            ax.scatter(g["runtime_us"], g["pred_runtime_us"], s=5, alpha=0.6, label=op)
        lo, hi = p["runtime_us"].min() * 0.7, p["runtime_us"].max() * 1.4
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="measured runtime µs",
               ylabel="predicted µs", title=f"{m}: runtime, held-out families")
        if j == 0:
            ax.legend(fontsize=7, markerscale=2)
        ax = axes[1, j]
        q = p[(p.get("power_ok", 1) == 1) & p["pred_power_w"].notna()]
        ax.scatter(q["power_w"], q["pred_power_w"], s=5, alpha=0.6)
        ax.plot([100, 900], [100, 900], "k--", lw=0.8)
        ax.set(xlabel="measured power W", ylabel="predicted W", title=f"{m}: power")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
