"""DRAM proxy cost model: ≤ 0.61 % relative RMSE on held-out designs with ≤ 50k training rows,
and ≥ 2,000× faster than the simulator (batched) — measured side by side in one run.

    .venv/bin/python benchmarks/bench_dram_proxy.py --write benchmarks/results/dram_proxy.md

Dataset: uniform random designs of ArchGym's ten DRAM controller knobs evaluated on the
cloud-1 trace (all 20,000 requests) by ``DramSimulator`` through ``costmodels.datasets.generate``
(a DatasetLogger), in shards (one Parquet directory per seed) under ``--data-dir`` (git-ignored);
missing shards are generated first, ``--jobs`` at a time. Training, ONNX export, held-out scores
through ONNX Runtime from the saved model, and the simulator-vs-surrogate timing all run here.
Defaults: ``--data-dir ./results/data/dram_proxy_cloud1``, ``--out-dir ./results/bench/dram_proxy``
(nothing inside the package; the repository's runs pass
``--data-dir costmodels/results/data/dram_proxy_cloud1 --out-dir costmodels/results/bench/dram_proxy``).
``results.json`` records the run's provenance (target fingerprint, versions, commit); the
Markdown states the machine under its title.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from mlsysgym.core.target import provenance
from mlsysgym.experiments.report import stamp_recorded

TRACE = "cloud-1"
TARGETS = ("energy_nj", "power_mw", "avg_latency_ns")
sys.path.insert(0, str(Path(__file__).parent))
from bench_costmodels import _best_time, _clock

# ----------------------------------------------------------------------------- data

def _shard_path(data_dir: Path, seed: int) -> Path:
    return data_dir / f"shard-{seed}"


def _generate_shard(data_dir: str, seed: int, n: int) -> tuple[int, int, float]:
    """Evaluate ``n`` random designs (seed ``seed``) into one shard; returns (seed, rows, CPU s)."""
    from mlsysgym.costmodels.datasets import generate
    from mlsysgym.simulators.dram import DESIGN_SPACE, DramSimulator

    path = _shard_path(Path(data_dir), seed)
    t = _clock()
    frame = generate(DramSimulator(), DESIGN_SPACE, TRACE, n, path, seed=seed, batch_size=250)
    return seed, len(frame), _clock() - t


def _complete(path: Path, n: int) -> bool:
    from mlsysgym.core.dataset import read_dataset

    return path.is_dir() and any(path.glob("part-*.parquet")) and len(read_dataset(path)) >= n


def load_dataset(data_dir: Path, shards: int, shard_rows: int, jobs: int, first_seed: int = 1000):
    """All shards (generating the missing ones) as one DataFrame, in shard order."""
    import pandas as pd
    from mlsysgym.core.dataset import read_dataset

    seeds = [first_seed + i for i in range(shards)]
    todo = []
    for s in seeds:
        p = _shard_path(data_dir, s)
        if not _complete(p, shard_rows):
            if p.exists():  # a partial shard (interrupted run): start it again
                import shutil
                shutil.rmtree(p)
            todo.append(s)
    gen_cpu = 0.0
    if todo:
        print(f"generating {len(todo)} shard(s) of {shard_rows} rows with {jobs} process(es)", flush=True)
        t = time.perf_counter()
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for seed, rows, cpu in ex.map(_generate_shard, [str(data_dir)] * len(todo), todo,
                                          [shard_rows] * len(todo)):
                gen_cpu += cpu
                print(f"  shard {seed}: {rows} rows, {cpu:.0f} s CPU "
                      f"({time.perf_counter() - t:.0f} s wall so far)", flush=True)
    frames = [read_dataset(_shard_path(data_dir, s)).iloc[:shard_rows] for s in seeds]
    return pd.concat(frames, ignore_index=True), len(todo), gen_cpu



# ----------------------------------------------------------------------------- features

#: Columns derived from the knobs the way the simulator combines them (see simulators/dram.py's
#: controller): responses in order (RespQueue or Arbiter Reorder), whether the arbiter caps
#: transactions in flight, the effective cap (none with the Simple arbiter), refresh postponement
#: knobs (void without refresh), total scheduler-buffer slots and the resulting concurrency.
DERIVED = ("in_order", "limit", "eff_maxact", "eff_post", "eff_pull", "buf_total", "conc")
#: Bankwise = RequestBufferSize per bank (16 banks: 1 channel, 1 rank, 4 bank groups x 4),
#: ReadWrite = that many reads plus that many writes, Shared = that many in all.
KNOBS = ("PagePolicy", "Scheduler", "SchedulerBuffer", "RequestBufferSize", "RespQueue",
         "RefreshPolicy", "RefreshMaxPostponed", "RefreshMaxPulledin", "Arbiter",
         "MaxActiveTransactions")


def derived_columns(frame) -> dict[str, np.ndarray]:
    """The ten knob columns of ``frame`` (a DataFrame) plus the DERIVED ones, as a mapping of
    NumPy columns (what ``CostModel.predict`` accepts; vectorized, part of the timed path)."""
    cols = {k: frame[k].to_numpy() for k in KNOBS}
    arb = cols["Arbiter"]
    limit = arb != "Simple"
    no_ref = cols["RefreshPolicy"] == "NoRefresh"
    eff_maxact = np.where(limit, cols["MaxActiveTransactions"], 1024).astype(float)
    sb = cols["SchedulerBuffer"]
    mult = np.where(sb == "Bankwise", 16, np.where(sb == "ReadWrite", 2, 1))
    buf = (cols["RequestBufferSize"] * mult).astype(float)
    cols.update(
        in_order=((cols["RespQueue"] == "Reorder") | (arb == "Reorder")).astype(float),
        limit=limit.astype(float), eff_maxact=eff_maxact,
        eff_post=np.where(no_ref, 0, cols["RefreshMaxPostponed"]).astype(float),
        eff_pull=np.where(no_ref, 0, cols["RefreshMaxPulledin"]).astype(float),
        buf_total=buf, conc=np.minimum(buf, eff_maxact))
    return cols


def with_derived(frame):
    """``frame`` plus the DERIVED columns (for training)."""
    d = derived_columns(frame)
    return frame.assign(**{k: d[k] for k in DERIVED})


def canonical_keys(frame) -> np.ndarray:
    """A key per design that is equal for designs the simulator cannot tell apart (knobs that
    have no effect in that configuration normalized away)."""
    d = with_derived(frame)
    cols = ["PagePolicy", "Scheduler", "SchedulerBuffer", "RequestBufferSize", "RefreshPolicy",
            "in_order", "eff_maxact", "eff_post", "eff_pull"]
    return d[cols].astype(str).agg("|".join, axis=1).to_numpy()


# ----------------------------------------------------------------------------- models

def _fit_save_load(kind_kw: dict[str, Any], train, feats, targets, transform, out: Path):
    from mlsysgym.costmodels.base import CostModel
    from mlsysgym.costmodels.tabular import make_model

    t = _clock()
    w = time.perf_counter()
    model = make_model("mlp", **kind_kw).fit(train, feats, list(targets), target_transform=transform)
    fit_cpu, fit_wall = _clock() - t, time.perf_counter() - w
    model.save(out)
    return CostModel.load(out), fit_cpu, fit_wall, model.info.validation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="results/data/dram_proxy_cloud1")
    p.add_argument("--out-dir", default="results/bench/dram_proxy")
    p.add_argument("--shards", type=int, default=22)
    p.add_argument("--shard-rows", type=int, default=2500)
    p.add_argument("--train-rows", type=int, default=50_000)
    p.add_argument("--jobs", type=int, default=2, help="processes generating missing shards")
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sim-designs", type=int, default=20)
    p.add_argument("--write", default=None, help="write the Markdown report here")
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    from mlsysgym.costmodels.metrics import regression_report
    from mlsysgym.simulators.dram import DESIGN_SPACE, DramSimulator

    t_start = time.perf_counter()
    space = DESIGN_SPACE
    knobs = list(space.names)
    assert tuple(knobs) == KNOBS, knobs
    frame, made, gen_cpu = load_dataset(Path(args.data_dir), args.shards, args.shard_rows, args.jobs)
    train = with_derived(frame.iloc[:args.train_rows].reset_index(drop=True))
    test = frame.iloc[args.train_rows:].reset_index(drop=True)
    # held-out designs: drop test rows whose knob values equal a training design's (repeats)
    seen = set(map(tuple, train[knobs].astype(str).to_numpy()))
    dup = np.array([tuple(r) in seen for r in test[knobs].astype(str).to_numpy()])
    test = test[~dup].reset_index(drop=True)
    test_keys = canonical_keys(test)
    novel = ~np.isin(test_keys, np.unique(canonical_keys(train)))
    print(f"{len(frame)} rows: {len(train)} train, {len(test)} held out "
          f"({int(dup.sum())} repeats of training designs dropped; {int(novel.sum())} not "
          f"equivalent to any training design)", flush=True)

    feats = knobs + list(DERIVED)
    mlp = {"members": args.members, "hidden": args.hidden, "layers": args.layers, "epochs": args.epochs,
               "batch_size": args.batch_size, "threads": args.threads}
    out = Path(args.out_dir)
    # two candidate models; per metric the one with the lower NRMSE on its *validation* rows
    # (10 % of the training rows, inside fit) is used — the held-out set plays no part in it
    cands = {
        "log": (list(TARGETS), "log"),  # all three in log space
        "lat_lin": (list(TARGETS), {"energy_nj": "log", "power_mw": "log",
                                    "avg_latency_ns": "identity"}),  # latency on a linear scale
    }
    models, fits, valid = {}, {}, {}
    for name, (tg, tf) in cands.items():
        m, fc, fw, v = _fit_save_load(mlp, train, feats, tg, tf, out / name)
        models[name], fits[name], valid[name] = m, (fc, fw), v
        print(f"fit {name}: {fc:.0f} s CPU, {fw:.0f} s wall; validation NRMSE "
              + ", ".join(f"{k} {x['nrmse_pct']:.3f}" for k, x in v.items()), flush=True)
    # one model is used (one ONNX session keeps the surrogate fast): the one whose worst
    # validation NRMSE over the three metrics is lowest
    best = min(cands, key=lambda n: max(valid[n][t]["nrmse_pct"] for t in TARGETS))
    choice = dict.fromkeys(TARGETS, best)
    used = [best]

    # held-out scores through ONNX Runtime (the loaded models)
    td = with_derived(test)
    preds = {n: models[n].predict(td) for n in cands}
    scores, extra = {}, {}
    for n in cands:
        for t in cands[n][0]:
            y, yp = test[t].to_numpy(float), preds[n].values[t]
            scores[(n, t)] = regression_report(y, yp)
            extra[(n, t)] = regression_report(y[novel], yp[novel])

    # speed: simulator vs surrogate, per design, both CPU time of this process
    sim = DramSimulator()
    designs = space.sample(np.random.default_rng(7), args.sim_designs)
    sim.prepare(TRACE)
    sim.evaluate(designs[:1], TRACE, cache=False)  # compile / warm
    sim_s = _best_time(lambda: sim.evaluate(designs, TRACE, cache=False), 2) / len(designs)
    q = test[knobs].iloc[:1024].reset_index(drop=True)

    def surrogate(q=q):
        d = derived_columns(q)
        return [models[n].predict(d) for n in used]

    surrogate()
    sur_s = _best_time(surrogate, 5) / len(q)
    one_s = {n: _best_time(lambda n=n: models[n].predict(derived_columns(q)), 5) / len(q) for n in cands}
    total = time.perf_counter() - t_start
    res = {"args": vars(args), "rows": len(frame), "train": len(train), "test": len(test),
               "dropped_repeats": int(dup.sum()), "novel": int(novel.sum()), "generated_shards": made,
               "gen_cpu_s": gen_cpu, "fits": fits, "valid": valid, "choice": choice, "sim_s": sim_s, "sur_s": sur_s,
               "one_s": one_s, "wall_s": total,
               "scores": {f"{n}/{t}": v for (n, t), v in scores.items()},
               "scores_novel": {f"{n}/{t}": v for (n, t), v in extra.items()},
               "provenance": provenance(command=sys.argv[1:])}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float))
    lat = test["avg_latency_ns"].to_numpy(float)
    text = stamp_recorded(report(args, res, scores, extra, choice, lat), res)
    print(text)
    if args.write:
        Path(args.write).write_text(text)


def report(args, res, scores, extra, choice, lat) -> str:
    cmd = ".venv/bin/python benchmarks/bench_dram_proxy.py " + " ".join(
        a for a in sys.argv[1:])
    L = ["# DRAM proxy cost model (issue 9: relative RMSE ≤ 0.61 %, ≥ 2,000× faster)", "",
         f"Command: `{cmd.strip()}`", "",
         f"Machine: {platform.machine()}, Python {platform.python_version()}, 2 cores shared with "
         f"other jobs (load average {os.getloadavg()[0]:.1f} at the end); torch, ONNX Runtime and "
         f"the simulator on one thread; times are CPU time of this process. Total wall time "
         f"{res['wall_s']:.0f} s" + (f" (incl. generating {res['generated_shards']} shards, "
                                      f"{res['gen_cpu_s']:.0f} s CPU)" if res["generated_shards"] else
                                      " (dataset already on disk)") + ".", "",
         (f"Data: DramSimulator (ArchGym DRAMGym's ten knobs) on the **cloud-1 trace, all 20,000 "
         f"requests**; {res['rows']:,} uniform random designs logged through "
         f"`costmodels.datasets.generate` (DatasetLogger), {args.shards} shards × "
         f"{args.shard_rows:,} (seeds 1000…). **{res['train']:,} training rows** (the first "
         f"{args.train_rows:,}; 10 % of them are the fit's early-stopping validation), "
         f"**{res['test']:,} held-out designs** (the rest; {res['dropped_repeats']} rows whose knob "
         f"values repeat a training design were dropped). Nothing else is excluded."), "",
         f"Model: MLP ensemble (`MLPCostModel`, {args.members} members × {args.layers}×{args.hidden} "
         f"SiLU, {args.epochs} epochs, batch {args.batch_size}) on the ten knobs (one-hot / log2, "
         f"standardized) plus derived columns {', '.join(DERIVED)} (how the simulator combines the "
         f"knobs; computed from the knobs inside the timed path). Two saved models, each predicting "
         f"all three metrics: `log` (all in log space) and `lat_lin` (energy and power in log "
         f"space, latency standardized on a linear scale, which is what NRMSE rewards). One is "
         f"used (one ONNX session keeps the surrogate fast): the one with the lower worst-metric "
         f"NRMSE on its own validation rows (the held-out set plays no part in the choice): " + ", ".join(f"{t} → `{n}`" for t, n in choice.items()) + ".",
         "", ("Scores on held-out designs, predicted through ONNX Runtime from the saved models "
         "(`CostModel.load`). **NRMSE % = 100·RMSE / mean(y)** (the ArchGym-style relative RMSE), "
         "**RMS rel % = 100·sqrt(mean(((ŷ−y)/y)²))** (every design weighs alike)."), "",
         "| model | target | NRMSE % | RMS rel % | MAPE % | R² | Kendall τ | ≤ 0.61 % |",
         "|---|---|---:|---:|---:|---:|---:|---|"]
    for (n, t), s in scores.items():
        mark = "used" if choice[t] == n else "alt"
        L.append(f"| {n} ({mark}) | {t} | {s['nrmse_pct']:.3f} | {s['rms_rel_pct']:.3f} | "
                 f"{s['mape_pct']:.3f} | {s['r2']:.5f} | {s['kendall_tau']:.4f} | "
                 f"{'**met**' if s['nrmse_pct'] <= 0.61 else 'not met'} |")
    L += ["", (f"Same scores on the {res['novel']:,} held-out designs that are not functionally "
          "equivalent to any training design (equivalent = equal after normalizing knobs the "
          "simulator ignores in that configuration: MaxActiveTransactions with the Simple arbiter, "
          "the refresh postpone/pull-in knobs without refresh, RespQueue vs Arbiter Reorder):"), "",
          "| model | target | NRMSE % | RMS rel % | MAPE % | R² | Kendall τ |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for (n, t), s in extra.items():
        L.append(f"| {n} | {t} | {s['nrmse_pct']:.3f} | {s['rms_rel_pct']:.3f} | "
                 f"{s['mape_pct']:.3f} | {s['r2']:.5f} | {s['kendall_tau']:.4f} |")
    fits = res["fits"]
    L += ["", "Fit time (incl. ONNX export): " + ", ".join(
        f"`{n}` {c:.0f} s CPU / {w:.0f} s wall" for n, (c, w) in fits.items()), "",
          "Speed per design (CPU time of this process, one thread):", "",
          "| path | µs / design | simulator ÷ path |", "|---|---:|---:|",
          (f"| simulator `DramSimulator.evaluate` ({args.sim_designs} designs, cloud-1 20k requests) "
          f"| {res['sim_s'] * 1e6:,.0f} | 1× |")]
    for n, s in res["one_s"].items():
        L.append(f"| `{n}`: derived columns + `predict(columns)` (encode + ORT), batch 1,024 "
                 f"| {s * 1e6:.2f} | {res['sim_s'] / s:,.0f}× |")
    L.append(f"| **surrogate as used** (models {', '.join(sorted(set(choice.values())))}), batch 1,024 "
             f"| {res['sur_s'] * 1e6:.2f} | **{res['sim_s'] / res['sur_s']:,.0f}×** |")
    q = np.percentile(lat, [0, 25, 50, 75, 95, 100])
    L += ["", "## Notes", "",
          (f"- Held-out latency is bimodal and heavy-tailed: min {q[0]:,.0f}, quartiles "
          f"{q[1]:,.0f} / {q[2]:,.0f} / {q[3]:,.0f}, p95 {q[4]:,.0f}, max {q[5]:,.0f} ns (mean "
          f"{lat.mean():,.0f}). Designs that keep up with the trace answer in ~50–300 ns; designs "
          f"whose throughput is below the trace's rate queue up and their average latency grows "
          f"with the backlog (tens to hundreds of µs). NRMSE divides by the mean, so it is set "
          f"almost entirely by the overloaded designs; RMS rel is set by the fast ones."),
          ]
    return "\n".join(L) + "\n"


if __name__ == "__main__" and "--generate-only" in sys.argv:
    p = argparse.ArgumentParser()
    p.add_argument("--generate-only", action="store_true")
    p.add_argument("--data-dir", default="costmodels/results/data/dram_proxy_cloud1")
    p.add_argument("--shards", type=int, default=22)
    p.add_argument("--shard-rows", type=int, default=2500)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    f, made, cpu = load_dataset(Path(a.data_dir), a.shards, a.shard_rows, a.jobs)
    print(len(f), made, cpu)
elif __name__ == "__main__":
    main()
