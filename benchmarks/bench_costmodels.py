"""Cost-model benchmark: proxy accuracy, speedup over the simulators, ONNX Runtime latency,
surrogate-assisted search, graph model — measured side by side in one run.

    .venv/bin/python benchmarks/bench_costmodels.py --write benchmarks/results/costmodels.md

Datasets are Parquet directories under ``--data-dir`` (default ``./results/data/costmodels``);
a missing one is generated first (ZigZag: ~10 s per design, so that one is generated once and
reused; pass ``--no-zigzag`` to skip it). Everything else — training, held-out scores, timings,
searches — runs in this process. Plots and a JSON dump (with the run's provenance: target
fingerprint, versions, commit) go to ``--out-dir`` (default ``./results/bench/costmodels``);
nothing is written inside the package. The repository's runs pass
``--data-dir costmodels/results/data --out-dir costmodels/results/bench`` (git-ignored).
The Markdown states the machine under its title (``--from-json``: the machine of that run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from mlsysgym.core.target import provenance
from mlsysgym.experiments.report import stamp_recorded
from mlsysgym.experiments.timing import time_calls

# CPU time of this process (the machine is shared: wall time would include other jobs' turns).
_clock = time.process_time


def _best_time(fn, repeats: int = 3) -> float:
    return time_calls(fn, repeats).best_cpu


def _median_time(fn, n: int) -> float:
    return time_calls(fn, n).median_cpu


def _dataset(path: Path, make) -> Any:
    from mlsysgym.core.dataset import read_dataset

    if path.is_dir() and any(path.glob("part-*.parquet")):
        return read_dataset(path)
    return make()


def _fit(kind: str, train, features, targets, **kw):
    from mlsysgym.costmodels.tabular import make_model

    fit_kw = {k: kw.pop(k) for k in ("derived", "log_features") if k in kw}
    t = time.perf_counter()
    model = make_model(kind, **kw).fit(train, features, targets, **fit_kw)
    return model, time.perf_counter() - t


def _save_load(model, d: Path):
    from mlsysgym.costmodels.base import CostModel

    model.save(d)
    return CostModel.load(d)


def _scores(model, test, targets) -> dict[str, dict[str, float]]:
    from mlsysgym.costmodels.metrics import regression_report

    pred = model.predict(test)
    return {t: regression_report(test[t].to_numpy(float), pred.values[t]) for t in targets}


def _plot(y, p, title, path):
    from mlsysgym.costmodels.report import _plot_pred_vs_true

    _plot_pred_vs_true(np.asarray(y), np.asarray(p), title, path)


def bench_accelerator(args, out: Path, res: dict) -> dict[str, Any]:
    """Accelerator analytical model on a zoo workload: 50k-row proxies, speed vs simulator."""
    from mlsysgym.costmodels.datasets import ACCEL_DERIVED, generate
    from mlsysgym.envs.accelerator_env import accelerator_space
    from mlsysgym.simulators.accelerator import AcceleratorSimulator, DesignArrays, layers_of

    space = accelerator_space()
    sim = AcceleratorSimulator()
    n_total = args.accel_rows + args.accel_test
    path = Path(args.data_dir) / f"accel_{args.workload}_{n_total}"
    frame = _dataset(path, lambda: generate(sim, space, args.workload, n_total, path, seed=0,
                                            batch_size=5000))
    train, test = frame.iloc[:args.accel_rows], frame.iloc[args.accel_rows:n_total]
    targets = ["latency_ms", "energy_uj"]
    feats = space.names
    out_models: dict[str, Any] = {}
    for kind, kw in (("lightgbm", {"n_estimators": args.gbm_trees, "learning_rate": 0.1,
                                       "num_leaves": 127, "min_data_in_leaf": 3,
                                       "derived": ACCEL_DERIVED}),
                     ("mlp", {"members": 2, "epochs": args.mlp_epochs, "hidden": 128, "layers": 3,
                                  "batch_size": 512, "derived": ACCEL_DERIVED})):
        model, fit_s = _fit(kind, train, feats, targets, **kw)
        loaded = _save_load(model, out / f"accel_{kind}")
        sc = _scores(loaded, test, targets)
        pred = loaded.predict(test)
        for t in targets:
            _plot(test[t], pred.values[t], f"accelerator {kind} {t}",
                  out / f"accel_{kind}_{t}.png")
        out_models[kind] = {"fit_s": fit_s, "scores": sc, "model": loaded}

    # speed: batched simulator vs batched surrogate (both one core), per design
    n = 10_000
    cols = space.sample_columns(np.random.default_rng(99), n)
    cols["word_bytes"] = cols["word_bytes"].astype(float)
    arrays = DesignArrays.from_columns(**cols)
    ls = layers_of(args.workload)
    sim_s = _best_time(lambda: sim.evaluate_arrays(arrays, ls)) / n
    designs = space.sample(np.random.default_rng(99), n)
    sim_dict_s = _best_time(lambda: sim.evaluate(designs, args.workload, cache=False), 2) / n
    frame_q = test.iloc[:n]
    speed = {"sim_arrays_s": sim_s, "sim_dicts_s": sim_dict_s}
    for kind, m in out_models.items():
        model = m["model"]
        x, _ = model.encode(frame_q)
        speed[f"{kind}_predict_s"] = _best_time(lambda m=model: m.predict(frame_q)) / len(frame_q)
        speed[f"{kind}_ort_s"] = _best_time(lambda m=model, x=x: m.run_encoded(x)) / len(frame_q)
    res["accelerator"] = {"train_rows": len(train), "test_rows": len(test),
                          "workload": args.workload, "layers": len(ls),
                          "models": {k: {"fit_s": v["fit_s"], "scores": v["scores"]}
                                     for k, v in out_models.items()}, "speed": speed}
    return out_models


def bench_dram(args, out: Path, res: dict) -> dict[str, Any]:
    """DRAM controller simulator on the cloud-1 trace."""
    from mlsysgym.costmodels.datasets import generate, split_frame
    from mlsysgym.simulators.dram import DESIGN_SPACE, DramSimulator

    space = DESIGN_SPACE
    sim = DramSimulator()
    path = Path(args.data_dir) / "dram_cloud1"
    frame = _dataset(path, lambda: generate(sim, space, "cloud-1", args.dram_rows, path,
                                            seed=0, batch_size=250))
    frame = frame.drop_duplicates(subset=space.names).reset_index(drop=True)
    train, test = split_frame(frame, 0.2, seed=0)
    targets = ["avg_latency_ns", "energy_nj", "power_mw"]
    models: dict[str, Any] = {}
    for kind, kw in (("lightgbm", {"n_estimators": 1500, "learning_rate": 0.05, "num_leaves": 31,
                                       "min_data_in_leaf": 3}),
                     ("mlp", {"members": 2, "epochs": 150, "hidden": 128, "layers": 3, "batch_size": 128})):
        model, fit_s = _fit(kind, train, space.names, targets, **kw)
        loaded = _save_load(model, out / f"dram_{kind}")
        sc = _scores(loaded, test, targets)
        pred = loaded.predict(test)
        for t in targets:
            _plot(test[t], pred.values[t], f"DRAM {kind} {t}", out / f"dram_{kind}_{t}.png")
        models[kind] = {"fit_s": fit_s, "scores": sc, "model": loaded}
    designs = space.sample(np.random.default_rng(7), 20)
    sim.prepare("cloud-1")
    sim_s = _best_time(lambda: sim.evaluate(designs, "cloud-1", cache=False), 2) / len(designs)
    speed = {"sim_s": sim_s}
    q = test.iloc[:1024] if len(test) >= 1024 else test
    for kind, m in models.items():
        speed[f"{kind}_predict_s"] = _best_time(lambda m=m: m["model"].predict(q)) / len(q)
    res["dram"] = {"train_rows": len(train), "test_rows": len(test), "trace": "cloud-1 (20,000 requests)",
                   "models": {k: {"fit_s": v["fit_s"], "scores": v["scores"]} for k, v in models.items()},
                   "speed": speed}
    return models


def bench_zigzag(args, out: Path, res: dict) -> None:
    """ZigZag on a one-conv workload (slow): held-out rank correlation and speedup."""
    from mlsysgym.costmodels.datasets import generate, split_frame, tiny_conv_model, zigzag_space
    from mlsysgym.simulators.zigzag_backend import ZigZagEvaluator

    space = zigzag_space()
    zz = ZigZagEvaluator(lpf_limit=3, spatial_mappings=1)
    model_onnx = tiny_conv_model()
    # shard k = args.zigzag_rows random designs with seed k (shard 0 in "zigzag", the rest in
    # "zigzag-k"), so the dataset grows without re-running ZigZag on the designs it already has
    import pandas as pd

    frames = []
    for k in range(args.zigzag_shards):
        path = Path(args.data_dir) / ("zigzag" if k == 0 else f"zigzag-{k}")
        frames.append(_dataset(path, lambda path=path, k=k: generate(
            zz, space, model_onnx, args.zigzag_rows, path, seed=k, batch_size=5)))
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[frame["layers_skipped"] == 0].drop_duplicates(subset=space.names)
    frame = frame.reset_index(drop=True)
    train, test = split_frame(frame, 0.25, seed=0)
    targets = ["cycles", "energy_uj"]
    models = {}
    for kind, kw in (("lightgbm", {"n_estimators": 400, "learning_rate": 0.05, "num_leaves": 7,
                                       "min_data_in_leaf": 2, "early_stopping": 400}),
                     ("mlp", {"members": 4, "epochs": 400, "hidden": 32, "layers": 2, "batch_size": 16})):
        model, fit_s = _fit(kind, train, space.names, targets, **kw)
        loaded = _save_load(model, out / f"zigzag_{kind}")
        models[kind] = {"fit_s": fit_s, "scores": _scores(loaded, test, targets), "model": loaded}
        pred = loaded.predict(test)
        _plot(test["cycles"], pred.values["cycles"], f"ZigZag {kind} cycles",
              out / f"zigzag_{kind}_cycles.png")
    fresh = space.sample(np.random.default_rng(123), 2)
    zz.clear_caches()
    t, w = _clock(), time.perf_counter()
    zz.evaluate(fresh, model_onnx, cache=False)
    zz_cpu = (_clock() - t) / len(fresh)
    zz_s = (time.perf_counter() - w) / len(fresh)  # wall: ZigZag's search may use workers
    q = test
    speed = {"zigzag_s": zz_s, "zigzag_cpu_s": zz_cpu,
             "zigzag_logged_median_s": float(frame["wall_time_s"].median())}
    for kind, m in models.items():
        speed[f"{kind}_predict_s"] = _best_time(lambda m=m: m["model"].predict(q), 5) / len(q)
    res["zigzag"] = {"train_rows": len(train), "test_rows": len(test),
                     "workload": "one 3x3 conv, 64->128 channels, 28x28 (lpf_limit 3, 1 spatial mapping)",
                     "models": {k: {"fit_s": v["fit_s"], "scores": v["scores"]} for k, v in models.items()},
                     "speed": speed}


def bench_latency(models: dict[str, Any], test, res: dict) -> None:
    """ONNX Runtime latency of one query and of a batch of 1,024 (one thread)."""
    out = {}
    one = test.iloc[:1].to_dict("records")
    one = [{k: v for k, v in one[0].items() if k in models["lightgbm"]["model"].schema.names}]
    batch = test.iloc[:1024]
    for kind, m in models.items():
        model = m["model"]
        x1, _ = model.encode(one)
        xb, _ = model.encode(batch)
        for _ in range(20):
            model.run_encoded(x1)
            model.predict(one)
        out[kind] = {
            "ort_one_us": 1e6 * _median_time(lambda m=model, x=x1: m.run_encoded(x), 2000),
            "predict_one_us": 1e6 * _median_time(lambda m=model: m.predict(one), 2000),
            "ort_1024_ms": 1e3 * _median_time(lambda m=model, x=xb: m.run_encoded(x), 100),
            "predict_1024_ms": 1e3 * _median_time(lambda m=model: m.predict(batch), 100),
        }
    res["latency"] = out


def bench_active_learning(args, res: dict) -> None:
    """GA on the surrogate + top-k verification vs GA on the simulator (real-evaluation ratio)."""
    from mlsysgym.agents.active_learning import edp_objective, sample_efficiency
    from mlsysgym.envs.accelerator_env import accelerator_space
    from mlsysgym.simulators.accelerator import AcceleratorSimulator

    t = time.perf_counter()
    eff = sample_efficiency(AcceleratorSimulator(), accelerator_space(), args.al_workload,
                            edp_objective(), ["latency_ms", "energy_uj"], args.al_budget,
                            seeds=tuple(range(args.al_seeds)), agent="ga", initial=32, top_k=16,
                            search_budget=1500,
                            model_kwargs={"n_estimators": 300, "num_leaves": 15,
                                          "min_data_in_leaf": 3})
    eff["wall_s"] = time.perf_counter() - t
    eff["workload"] = args.al_workload
    eff["budget"] = args.al_budget
    res["active_learning"] = eff


def bench_graph(args, out: Path, res: dict) -> None:
    """Message-passing model of whole-model latency, held out by source model."""
    from mlsysgym.costmodels.graph_model import build_graph_dataset, evaluate_graph_model
    from mlsysgym.ir import zoo

    names = [n for n in zoo.names() if n not in ("tinyllama_1b",)]
    t = time.perf_counter()
    data = build_graph_dataset(names, windows_per_model=args.graph_windows, seed=0)
    holdout = ["resnet50", "gpt2", "mobilenetv2"]
    r = evaluate_graph_model(data, holdout, epochs=args.graph_epochs)
    _plot(r["y"], r["pred"], "graph model (held-out models)", out / "graph_model.png")
    res["graph"] = {k: v for k, v in r.items() if k not in ("y", "pred", "sources")}
    srcs = np.array(r["sources"])
    res["graph"]["by_model_mape_pct"] = {
        s: float(100 * np.mean(np.abs(r["pred"][srcs == s] / r["y"][srcs == s] - 1)))
        for s in holdout}
    rr = evaluate_graph_model(data, (), test_fraction=0.25, epochs=args.graph_epochs)
    res["graph"]["random_split"] = {k: rr[k] for k in ("train_graphs", "test_graphs", "model",
                                                       "macs_baseline")}
    res["graph"]["models"] = names
    res["graph"]["wall_s"] = time.perf_counter() - t


NOTES = """## Notes (read before quoting a number)

- Which relative RMSE: NRMSE = RMSE ÷ mean of the true values, per metric, on held-out designs,
  in the metric's own unit (not in the log space the models are trained in). In this broad run
  (4,000 DRAM rows) the ≤ 0.61 % target is met by DRAM `power_mw` only; the dedicated DRAM proxy
  benchmark (`benchmarks/bench_dram_proxy.py`, 50,000 rows, longer training) meets it on all three
  DRAM metrics — see `benchmarks/results/dram_proxy.md`. The accelerator's latency is far from it.
- The accelerator model is vectorized NumPy (~5 µs per design on ResNet-50), so no learned proxy
  is thousands of times faster than it: the MLP is ~3-4× faster, LightGBM (1,600 deep trees,
  ~27 ns per tree per row in ONNX Runtime) is slower. The real speedups are against the DRAM
  simulator (a 20k-request trace per design) and ZigZag (a mapping search per layer).
- ZigZag time per design depends strongly on machine load (a fresh measurement in the run vs the
  median while its dataset was logged, both printed above); the ratio uses the faster, fresh
  number. Its dataset (shards of 90 random designs of one conv layer, one seed per shard; designs
  where ZigZag skipped the layer and duplicates dropped) is logged once and reused.
- LightGBM misses the 1,024-batch ≤ 5 ms target because of its size (trees × depth); the MLP meets
  every latency target. Fewer trees trade accuracy for speed.
- Graph model: on windows of models never seen in training it does not beat the MACs-proportional
  baseline (GPT-2's latency is off by ~2×); on a random split (windows of known model families) it
  does (7.6 % vs 35 % MAPE). Small data (210 graphs), modest model: report as such.
- Surrogate-assisted search: in one seed of three, active learning ended 0.5 % short (in EDP) of
  the direct search's best after 256 real evaluations.

"""


def _f(x, d=3):
    return "n/a" if x is None else f"{x:.{d}f}"


def _summary(res: dict) -> list[str]:
    """Targets of the issue, met or not, computed from the results."""
    out = ["## Targets", ""]
    best = []
    for sec in ("accelerator", "dram"):
        for kind, m in res.get(sec, {}).get("models", {}).items():
            for t, s in m["scores"].items():
                best.append((s["nrmse_pct"], s["rms_rel_pct"], sec, kind, t))
    if best:
        b = min(best)
        out.append(f"- Relative RMSE ≤ 0.61 % on held-out designs: best NRMSE {b[0]:.2f} % "
                   f"({b[2]} {b[3]} {b[4]}; RMS rel {b[1]:.2f} %) — "
                   f"**{'met' if b[0] <= 0.61 else 'not met'}**.")
    ratios = []
    for sec, base in (("dram", "sim_s"), ("zigzag", "zigzag_s"), ("accelerator", "sim_arrays_s")):
        sp = res.get(sec, {}).get("speed", {})
        for kind in ("lightgbm", "mlp"):
            if base in sp and f"{kind}_predict_s" in sp:
                ratios.append((sp[base] / sp[f"{kind}_predict_s"], sec, kind))
    for r, sec, kind in sorted(ratios, reverse=True):
        tag = "met (≥ 10,000× goal too)" if r >= 10_000 else ("met" if r >= 2000 else "not met")
        out.append(f"- Speedup vs {sec} simulator ({kind}, batched): {r:,.0f}× — {tag} (target ≥ 2,000×).")
    for kind, v in res.get("latency", {}).items():
        out.append(f"- {kind}: one query {v['ort_one_us']:.1f} µs ORT / {v['predict_one_us']:.1f} µs "
                   f"end to end ({'met' if v['predict_one_us'] <= 100 else 'not met'} ≤ 100 µs); "
                   f"1,024 queries {v['ort_1024_ms']:.2f} ms ORT / {v['predict_1024_ms']:.2f} ms end "
                   f"to end ({'met' if v['predict_1024_ms'] <= 5 else 'not met'} ≤ 5 ms).")
    al = res.get("active_learning")
    if al:
        out.append(f"- Surrogate-assisted search: median real-evaluation ratio "
                   f"{_f(al['median_ratio'], 2)} (reached in {al['reached']}/{al['seeds']} seeds).")
    out.append("")
    return out


def _header(res: dict, argv: list[str]) -> list[str]:
    """Title, command, machine and the definitions of the scores."""
    return ["# Learned cost models", "",
            f"Command: `.venv/bin/python benchmarks/bench_costmodels.py {' '.join(argv)}`", "",
            (f"Machine: {platform.machine()}, Python {platform.python_version()}, 2 cores shared with "
            f"other jobs (load average {res.get('load_average', os.getloadavg()[0]):.1f} at the end); ONNX Runtime and the "
            f"simulators on one thread; every time below is CPU time of this process (the "
            f"machine is shared, so wall time would count other jobs' turns). Total wall time {res['wall_s']:.0f} s."), "",
            ("Relative errors reported (see `costmodels/metrics.py`): **NRMSE % = 100·RMSE / mean(y)** "
            "(\"relative RMSE\", the ArchGym-style number) and the stricter **RMS rel % = "
            "100·sqrt(mean(((ŷ−y)/y)²))** (every design weighs alike), plus MAPE, R², Kendall τ, "
            "pairwise ranking accuracy and TenSet top-k score = true best ÷ best true value among the "
            "model's k picks (1 = perfect). All scores are on held-out designs (never seen in training), "
            "predicted through ONNX Runtime from the saved model."), ""]


def _scores_table(section: dict, title: str) -> list[str]:
    """A section's held-out scores per model and target, and its fit times."""
    L: list[str] = []
    L.append(f"## {title}")
    L.append("")
    L.append("| model | target | NRMSE % | RMS rel % | MAPE % | R² | Kendall τ | pairwise | top-1 | top-5 |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, m in section["models"].items():
        for t, s in m["scores"].items():
            L.append(f"| {kind} | {t} | {_f(s['nrmse_pct'])} | {_f(s['rms_rel_pct'])} | "
                     f"{_f(s['mape_pct'])} | {_f(s['r2'], 4)} | {_f(s['kendall_tau'], 4)} | "
                     f"{_f(s['pairwise_accuracy'], 4)} | {_f(s['top1_score'], 3)} | "
                     f"{_f(s['top5_score'], 3)} |")
    L.append("")
    L.append("Fit time (s, incl. ONNX export): " + ", ".join(
        f"{k} {v['fit_s']:.0f}" for k, v in section["models"].items()))
    L.append("")
    return L


def _accelerator_section(a: dict) -> list[str]:
    """The accelerator proxy: scores and speed per design."""
    L = _scores_table(a, f"Proxy of the accelerator model ({a['workload']}, "
                         f"{a['train_rows']:,} training rows, {a['test_rows']:,} held-out designs)")
    s = a["speed"]
    L.append("Speed per design, batched (10,000 designs, one core):")
    L.append("")
    L.append("| path | µs / design | simulator ÷ surrogate |")
    L.append("|---|---:|---:|")
    L.append(f"| simulator `evaluate_arrays` (vectorized NumPy) | {1e6 * s['sim_arrays_s']:.2f} | |")
    L.append(f"| simulator `evaluate(list of dicts)` | {1e6 * s['sim_dicts_s']:.2f} | |")
    for kind in ("lightgbm", "mlp"):
        if f"{kind}_predict_s" in s:
            L.append(f"| {kind} `predict(DataFrame)` (encode + ORT) | {1e6 * s[f'{kind}_predict_s']:.2f} | "
                     f"{s['sim_arrays_s'] / s[f'{kind}_predict_s']:.1f}× |")
            L.append(f"| {kind} ORT session only (encoded) | {1e6 * s[f'{kind}_ort_s']:.2f} | "
                     f"{s['sim_arrays_s'] / s[f'{kind}_ort_s']:.1f}× |")
    L.append("")
    return L


def _surrogate_speeds(s: dict, sim_key: str, digits: int) -> str:
    """Each surrogate's µs per design and its speedup over the simulator's ``s[sim_key]``."""
    return ", ".join(
        f"{k} {1e6 * s[f'{k}_predict_s']:.{digits}f} µs (**{s[sim_key] / s[f'{k}_predict_s']:,.0f}×**)"
        for k in ("lightgbm", "mlp") if f"{k}_predict_s" in s)


def _dram_section(d: dict) -> list[str]:
    """The DRAM proxy: scores and speed per design."""
    L = _scores_table(d, f"Proxy of the DRAM simulator ({d['trace']}, {d['train_rows']:,} "
                         f"training rows, {d['test_rows']:,} held-out designs)")
    s = d["speed"]
    L.append(f"Simulator: {1e3 * s['sim_s']:.2f} ms per design (serial, compiled). Surrogate per "
             f"design in a batch of 1,024: " + _surrogate_speeds(s, "sim_s", 2))
    L.append("")
    return L


def _zigzag_section(z: dict) -> list[str]:
    """The ZigZag proxy: scores and speed per design."""
    L = _scores_table(z, f"Proxy of ZigZag ({z['workload']}; {z['train_rows']} training rows, "
                         f"{z['test_rows']} held-out designs)")
    s = z["speed"]
    if "argv" in z:  # this section rerun on its own (results merged into the full run's JSON)
        L.append(f"This section's command: `.venv/bin/python benchmarks/bench_costmodels.py "
                 f"{' '.join(z['argv'])}`")
        L.append("")
    L.append(f"ZigZag: {s['zigzag_s']:.2f} s wall ({s.get('zigzag_cpu_s', float('nan')):.2f} s CPU "
             f"of this process) per design measured in this run "
             f"(median {s['zigzag_logged_median_s']:.2f} s while the dataset was logged). "
             f"Surrogate per design: " + _surrogate_speeds(s, "zigzag_s", 1))
    L.append("")
    return L


def _latency_section(latency: dict) -> list[str]:
    """ONNX Runtime inference latency per model."""
    L: list[str] = []
    L.append("## ONNX Runtime inference latency (accelerator proxies, one thread, median)")
    L.append("")
    L.append("| model | ORT run, 1 query | `predict(dict)`, 1 query | ORT run, 1,024 | `predict(DataFrame)`, 1,024 |")
    L.append("|---|---:|---:|---:|---:|")
    for k, v in latency.items():
        L.append(f"| {k} | {v['ort_one_us']:.1f} µs | {v['predict_one_us']:.1f} µs | "
                 f"{v['ort_1024_ms']:.3f} ms | {v['predict_1024_ms']:.3f} ms |")
    L.append("")
    L.append("Targets: one query ≤ 100 µs, a batch of 1,024 ≤ 5 ms.")
    L.append("")
    return L


def _active_learning_section(a: dict) -> list[str]:
    """Surrogate-assisted search vs direct search, per seed."""
    L: list[str] = []
    L.append(f"## Surrogate-assisted search (accelerator, {a['workload']}, EDP, GA, "
             f"{a['budget']} real evaluations)")
    L.append("")
    L.append("Direct: GA on the simulator. Active learning: 32 random designs, then rounds of "
             "LightGBM fit → GA on the surrogate (1,500 surrogate evaluations) → the 16 best "
             "unseen predicted designs verified on the simulator. Level = the direct search's "
             "best EDP after the full budget; ratio = real evaluations direct search needed to "
             "reach it ÷ those active learning needed.")
    L.append("")
    L.append("| seed | direct evals to its best | AL evals to the same level | ratio | AL final vs level |")
    L.append("|---:|---:|---:|---:|---:|")
    for p in a["per_seed"]:
        L.append(f"| {p['seed']} | {p['direct_evals']} | {p['al_evals'] or 'not reached'} | "
                 f"{_f(p['ratio'], 2)} | {p['al_best'] - p['level']:+.4f} (ln EDP) |")
    L.append("")
    L.append(f"Reached by active learning in {a['reached']}/{a['seeds']} seeds; median ratio "
             f"{_f(a['median_ratio'], 2)}, geometric mean {_f(a['geomean_ratio'], 2)} "
             f"({a['wall_s']:.0f} s).")
    L.append("")
    return L


def _graph_section(g: dict) -> list[str]:
    """The graph-level model on held-out models."""
    L: list[str] = []
    L.append("## Graph-level model (message passing over ir.Graph ops → whole-model latency)")
    L.append("")
    L.append(f"Accelerator simulator, default design. {g['train_graphs']} training graphs "
             f"(zoo models and op windows of them), {g['test_graphs']} test graphs from models "
             f"never seen in training ({', '.join(g['holdout'])}).")
    L.append("")
    L.append("| predictor | MAPE % | RMS rel % | R² | Kendall τ |")
    L.append("|---|---:|---:|---:|---:|")
    for k in ("model", "macs_baseline"):
        s = g[k]
        L.append(f"| {k} (held-out models) | {_f(s['mape_pct'])} | {_f(s['rms_rel_pct'])} | "
                 f"{_f(s['r2'], 4)} | {_f(s['kendall_tau'], 4)} |")
    rs = g.get("random_split")
    if rs:
        for k in ("model", "macs_baseline"):
            s = rs[k]
            L.append(f"| {k} (random 25 % of graphs) | {_f(s['mape_pct'])} | "
                     f"{_f(s['rms_rel_pct'])} | {_f(s['r2'], 4)} | {_f(s['kendall_tau'], 4)} |")
    L.append("")
    if "by_model_mape_pct" in g:
        L.append("Held-out MAPE by model: " + ", ".join(
            f"{k} {v:.1f} %" for k, v in g["by_model_mape_pct"].items()))
        L.append("")
    return L


def render(res: dict, argv: list[str]) -> str:
    """The Markdown report of a run's results."""
    L = _header(res, argv)
    sections = (("accelerator", _accelerator_section), ("dram", _dram_section),
                ("zigzag", _zigzag_section), ("latency", _latency_section),
                ("active_learning", _active_learning_section))
    for key, section in sections:
        if key in res:
            L += section(res[key])
    L += _summary(res)
    L.append(NOTES)
    if "graph" in res:
        L += _graph_section(res["graph"])
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="results/data/costmodels")
    p.add_argument("--out-dir", default="results/bench/costmodels")
    p.add_argument("--write", default=None, help="Markdown file to write")
    p.add_argument("--workload", default="resnet50")
    p.add_argument("--accel-rows", type=int, default=50_000)
    p.add_argument("--accel-test", type=int, default=10_000)
    p.add_argument("--gbm-trees", type=int, default=1500)
    p.add_argument("--mlp-epochs", type=int, default=40)
    p.add_argument("--dram-rows", type=int, default=4000)
    p.add_argument("--zigzag-rows", type=int, default=90, help="ZigZag designs per shard")
    p.add_argument("--zigzag-shards", type=int, default=4)
    p.add_argument("--no-zigzag", action="store_true")
    p.add_argument("--al-workload", default="resnet18")
    p.add_argument("--al-budget", type=int, default=256)
    p.add_argument("--al-seeds", type=int, default=3)
    p.add_argument("--graph-windows", type=int, default=20)
    p.add_argument("--graph-epochs", type=int, default=120)
    p.add_argument("--only", default=None, help="comma list of sections to run")
    p.add_argument("--from-json", default=None, help="only re-render a results.json")
    args = p.parse_args(argv)
    if args.from_json:
        res = json.loads(Path(args.from_json).read_text())
        text = stamp_recorded(render(res, res.get("argv", argv)), res)
        print(text)
        if args.write:
            Path(args.write).write_text(text)
        return 0

    import torch

    torch.set_num_threads(1)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    only = set((args.only or "accelerator,dram,zigzag,latency,al,graph").split(","))
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    accel = None
    if "accelerator" in only:
        accel = bench_accelerator(args, out, res)
        print("accelerator done", flush=True)
    if "latency" in only and accel is not None:
        from mlsysgym.core.dataset import read_dataset

        n_total = args.accel_rows + args.accel_test
        test = read_dataset(Path(args.data_dir) / f"accel_{args.workload}_{n_total}").iloc[args.accel_rows:]
        bench_latency(accel, test, res)
        print("latency done", flush=True)
    if "dram" in only:
        bench_dram(args, out, res)
        print("dram done", flush=True)
    if "zigzag" in only and not args.no_zigzag:
        bench_zigzag(args, out, res)
        print("zigzag done", flush=True)
    if "al" in only:
        bench_active_learning(args, res)
        print("active learning done", flush=True)
    if "graph" in only:
        bench_graph(args, out, res)
        print("graph done", flush=True)
    res["wall_s"] = time.perf_counter() - t0
    res["argv"] = argv
    res["load_average"] = os.getloadavg()[0]
    res["provenance"] = provenance(command=argv)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float))
    text = stamp_recorded(render(res, argv), res)
    print(text)
    if args.write:
        Path(args.write).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
