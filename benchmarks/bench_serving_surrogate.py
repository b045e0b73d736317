"""A learned surrogate pre-screens serving plans (issue #22 item 6): GPT-3-175B on 64 H100s.

Training: simulated plans of *other* models and clusters (Llama-3.1-70B on 8/16/32 GPUs,
Mixtral-8x7B on 16, Llama-2-13B on 8), ``--train-plans`` random feasible plans each, fitted
by :func:`mlsysgym.costmodels.serving_surrogate.train_surrogate` (LightGBM). Held out: the
GPT-3-175B 64-GPU scenario of ``benchmarks/bench_serving.py`` (8 nodes × 8 H100-SXM, chat
workload, SLOs TTFT ≤ 1 s and TPOT ≤ 50 ms, goodput objective) over its large space: every
parallel plan × KV dtype × ``max_num_seqs`` × ``max_batched_tokens`` × chunked prefill, bf16
weights. Exhaustive enumeration simulates all of them (the ground truth); the surrogate search
predicts all and simulates the ``top_k`` best predicted. A warm-started variant adds
``--warm`` random simulated plans of the target scenario to the training set (their
simulations and the refit are charged to its time).

Writes ``benchmarks/results/serving_surrogate.json`` and the "Learned surrogate" section of
``benchmarks/results/serving_search.md`` (+ ``serving_surrogate.provenance.json``).

Usage::

    .venv/bin/python benchmarks/bench_serving_surrogate.py [--requests 200] [--train-plans 250]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RECORDED = Path(__file__).parent / "results"  # the recorded run, read by --report-only
OUT = Path("benchmarks/results")  # written, under the working directory
MARK = "## Learned surrogate"
TRAIN = [("Llama-3.1-70B", 8, 1, 8.0), ("Llama-3.1-70B", 16, 2, 16.0),
         ("Llama-3.1-70B", 32, 4, 24.0), ("Mixtral-8x7B", 16, 2, 32.0),
         ("Llama-2-13B", 8, 1, 24.0)]
TARGET = ("GPT-3-175B", 64, 8, 16.0)
SLO = {"slo_ttft_s": 1.0, "slo_tpot_s": 0.05}


def workload(model: str, n: int, nodes: int, rate: float, requests: int, seed: int) -> Any:
    from mlsysgym.simulators.serving import ServingWorkload

    return ServingWorkload.make(model, "H100-SXM", n, nodes=nodes, rate=rate,
                                requests=requests, seed=seed, **SLO)


def space_plans(w: Any) -> list[dict[str, Any]]:
    from mlsysgym.simulators.serving.baselines import feasible_plans

    return feasible_plans(w, batching=True, space=w.space(("bf16",), None))


def sample(plans: list[dict[str, Any]], k: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [plans[i] for i in rng.choice(len(plans), min(k, len(plans)), replace=False)]


def train_frame(args: argparse.Namespace) -> tuple[Any, float, int]:
    import pandas as pd
    from mlsysgym.costmodels.serving_surrogate import collect_rows

    frames, t0 = [], time.process_time()
    for j, sc in enumerate(TRAIN):
        w = workload(*sc, args.requests, args.seed)
        frames.append(collect_rows(w, sample(space_plans(w), args.train_plans, args.seed + j)))
        print(f"train {sc}: {len(frames[-1])} plans", flush=True)
    frame = pd.concat(frames, ignore_index=True)
    return frame, time.process_time() - t0, len(frame)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--train-plans", type=int, default=250)
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--top-k", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the Markdown section from serving_surrogate.json")
    args = ap.parse_args(argv)
    if args.report_only:
        write(json.loads((RECORDED / "serving_surrogate.json").read_text()), args, provenance=False)
        return 0
    from mlsysgym.costmodels.metrics import kendall_tau
    from mlsysgym.costmodels.serving_surrogate import (
        collect_rows,
        surrogate_search,
        train_surrogate,
    )
    from mlsysgym.simulators.serving.baselines import max_tp_plan, min_tp_plan, score
    from mlsysgym.simulators.serving.evaluator import ServingEvaluator
    from scipy.stats import spearmanr

    frame, sim_s, n_train = train_frame(args)
    t0 = time.process_time()
    model = train_surrogate(frame, seed=args.seed)
    fit_s = time.process_time() - t0
    w = workload(*TARGET, args.requests, args.seed)
    plans = space_plans(w)
    t0 = time.process_time()
    truth = collect_rows(w, plans, ServingEvaluator(cache_size=0))
    exh_s = time.process_time() - t0
    feasible = [plans[i] for i in truth["design_index"]]
    ev = ServingEvaluator(cache_size=0)
    heur = max(float(score(ev.evaluate([h(w).as_design()], w), "goodput")[0])
               for h in (min_tp_plan, max_tp_plan))
    best = float(truth["goodput"].max())
    pred_all = model.predict(truth).values["log_goodput"]
    res: dict[str, Any] = {
        "target": list(TARGET), "requests": args.requests, "train_scenarios": TRAIN,
        "train_rows": n_train, "train_sim_cpu_s": sim_s, "fit_cpu_s": fit_s,
        "space_plans": len(plans), "feasible_simulated": len(truth),
        "exhaustive_cpu_s": exh_s, "exhaustive_best": best, "best_heuristic": heur,
        "heldout_spearman": float(spearmanr(truth["log_goodput"], pred_all).statistic),
        "heldout_kendall": kendall_tau(truth["log_goodput"], pred_all), "search": []}
    for label, mdl, extra_s in (("transfer", model, 0.0),) + _warm(args, w, plans, frame):
        for k in args.top_k:
            r = surrogate_search(w, mdl, feasible, top_k=k, evaluator=ServingEvaluator(cache_size=0))
            res["search"].append({"surrogate": label, "top_k": k, "best": r["goodput"],
                                  "cpu_s": r["cpu_s"] + extra_s,
                                  "gap_pct": 100 * (best - r["goodput"]) / best,
                                  "plan": r["best"]})
            print(res["search"][-1], flush=True)
    write(res, args)
    return 0


def _warm(args: argparse.Namespace, w: Any, plans: list[dict[str, Any]], frame: Any
          ) -> tuple[tuple[str, Any, float], ...]:
    """The warm-started surrogate: + ``--warm`` simulated target plans, refit (CPU charged)."""
    if args.warm <= 0:
        return ()
    import pandas as pd
    from mlsysgym.costmodels.serving_surrogate import collect_rows, train_surrogate
    from mlsysgym.simulators.serving.evaluator import ServingEvaluator

    t0 = time.process_time()
    extra = collect_rows(w, sample(plans, args.warm, args.seed + 99), ServingEvaluator(cache_size=0))
    model = train_surrogate(pd.concat([frame, extra], ignore_index=True), seed=args.seed)
    return ((f"warm +{args.warm}", model, time.process_time() - t0),)


def write(res: dict[str, Any], args: argparse.Namespace, provenance: bool = True) -> None:
    from mlsysgym.experiments.report import write_provenance

    OUT.mkdir(parents=True, exist_ok=True)
    if provenance:
        (OUT / "serving_surrogate.json").write_text(json.dumps(res, indent=1, default=str))
        write_provenance(OUT / "serving_surrogate.provenance.json",
                         script="benchmarks/bench_serving_surrogate.py", evaluator="serving@1")
    m, n, nodes, rate = res["target"]
    lines = [MARK, "",
             (f"Held out: {m} on {n} H100-SXM ({nodes} nodes), {rate:g} req/s, "
              f"{res['requests']} requests; space: the {res['space_plans']} plans that pass the "
              f"rules and fit memory (parallel plan × KV dtype × max_num_seqs × "
              f"max_batched_tokens × chunked prefill, bf16 weights), {res['feasible_simulated']} "
              f"of them serve every request. Surrogate: LightGBM on "
              f"{res['train_rows']} simulated plans of other models/clusters "
              f"({', '.join(f'{a} on {b}' for a, b, _, _ in res['train_scenarios'])}; "
              f"{res['train_sim_cpu_s']:.0f} CPU s to simulate, {res['fit_cpu_s']:.1f} s to fit, "
              f"once). CPU s are process time on the machine of "
              f"`serving_surrogate.provenance.json` (2 cores shared with other jobs). Script: "
              f"`benchmarks/bench_serving_surrogate.py`."), "",
             (f"Held-out rank correlation of predicted vs simulated goodput over all feasible "
              f"plans: Spearman {res['heldout_spearman']:.3f}, Kendall "
              f"{res['heldout_kendall']:.3f}."), "",
             "| search | simulations | CPU s | best goodput (tok/s) | gap to exhaustive |",
             "|---|---:|---:|---:|---:|",
             (f"| exhaustive | {res['feasible_simulated']} | {res['exhaustive_cpu_s']:.1f} | "
              f"{res['exhaustive_best']:.0f} | 0 % |"),
             (f"| best heuristic | 2 | — | {res['best_heuristic']:.0f} | "
              f"{100 * (1 - res['best_heuristic'] / res['exhaustive_best']):.1f} % |")]
    for s in res["search"]:
        lines.append(f"| surrogate ({s['surrogate']}), top {s['top_k']} | {s['top_k']} | "
                     f"{s['cpu_s']:.1f} | {s['best']:.0f} | {s['gap_pct']:.1f} % |")
    path = OUT / "serving_search.md"
    text = path.read_text() if path.exists() else ""
    head = text.split(MARK)[0].rstrip() + "\n\n" if text else ""
    path.write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
