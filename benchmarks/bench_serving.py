"""Plan search for LLM serving (issue #22): agents vs heuristics vs exhaustive enumeration.

Scenarios (H100-SXM, 8 per node; chat workload: Poisson arrivals, ShareGPT-shaped lengths;
SLOs TTFT ≤ 1 s and TPOT ≤ 50 ms; objective: goodput = output tokens/s × SLO attainment):
Llama-3.1-70B on 8 GPUs, Mixtral-8x7B on 8 and 16 GPUs, GPT-3-175B on 64 GPUs.

For each, over bf16 weights and KV cache (so that no plan wins by quantizing; the best
quantized plan is reported beside it):

* heuristics: the smallest TP that fits then DP, and one instance per node (vLLM style);
* exhaustive: every valid parallel plan (tp, pp, P/D split, expert parallelism; dp fills the
  devices) with vLLM's default
  batching, evaluated (APEX's approach) — its CPU time is the "time to find the best plan";
* agents (``ga``, ``tpe``) through ``search()`` on ``env:mlsysgym/LLMServing-v0``, over the
  full space (batching limits and chunked prefill included), ``--budget`` evaluations;
* energy: among exhaustive plans with SLO attainment ≥ 90 %, the energy-optimal vs the
  latency-optimal plan (energy per token saved);
* speed: simulated requests per CPU-second.

Writes ``benchmarks/results/serving_search.md`` (+ ``.json``, ``.provenance.json``).

Usage::

    .venv/bin/python benchmarks/bench_serving.py [--budget 120] [--requests 400] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("benchmarks/results/serving_search")  # written (.md .json), under the working directory

SCENARIOS = [  # model, GPUs, nodes, arrival rate (req/s)
    ("Llama-3.1-70B", 8, 1, 8.0),
    ("Mixtral-8x7B", 8, 1, 16.0),
    ("Mixtral-8x7B", 16, 2, 32.0),
    ("GPT-3-175B", 64, 8, 16.0),
]
SLO = {"slo_ttft_s": 1.0, "slo_tpot_s": 0.05}
SURROGATE = "## Learned surrogate"  # the section benchmarks/bench_serving_surrogate.py writes


def _plan_str(p: dict[str, Any]) -> str:
    s = f"dp{p['dp']}·tp{p['tp']}·pp{p['pp']}" + (f"·ep{p['ep']}" if p["ep"] > 1 else "")
    s += " P/D" if p["pd_disagg"] else ""
    s += f" {p['dtype']}/{p['kv_dtype']} seqs{p['max_num_seqs']} tok{p['max_batched_tokens']}"
    return s + ("" if p["chunked_prefill"] else " no-chunk")


def run_scenario(model: str, n: int, nodes: int, rate: float, requests: int, budget: int,
                 agents: list[str], seed: int) -> dict[str, Any]:
    from mlsysgym.agents import search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.simulators.serving.baselines import exhaustive, max_tp_plan, min_tp_plan, score
    from mlsysgym.simulators.serving.evaluator import ServingEvaluator, ServingWorkload

    w = ServingWorkload.make(model, "H100-SXM", n, nodes, rate=rate, requests=requests,
                             workload="chat", seed=seed, **SLO)
    bf16 = w.space(("bf16",), ("bf16",))
    ev = ServingEvaluator()
    from mlsysgym.simulators.serving.plans import Plan

    def show(d: dict[str, Any]) -> str:
        return _plan_str(Plan.from_design(d, n).as_design())

    heur = {"min-TP then DP": min_tp_plan(w).space_design(),
            "TP per node": max_tp_plan(w).space_design()}
    hm = ev.evaluate(list(heur.values()), w)
    hs = score(hm, "goodput")
    t0 = time.process_time()
    plans, em, best = exhaustive(w, "goodput", evaluator=ev, space=bf16)
    t_exh = time.process_time() - t0
    es = score(em, "goodput")
    # the quantized plans, for reference (same rules, all dtypes)
    qplans, qm, qbest = exhaustive(w, "goodput", evaluator=ev)
    # energy vs latency among plans that meet the SLOs for ≥ 90 % of requests
    ok = (em["slo_attainment"] >= 0.9) & (em["infeasible"] == 0)
    energy = {}
    if ok.any():
        idx = np.flatnonzero(ok)
        lat = idx[np.argmin(em["e2e_mean_s"][idx])]
        eng = idx[np.argmin(em["energy_per_token_j"][idx])]
        energy = {"latency_opt": show(plans[lat]), "energy_opt": show(plans[eng]),
                  "latency_opt_j_per_tok": float(em["energy_per_token_j"][lat]),
                  "energy_opt_j_per_tok": float(em["energy_per_token_j"][eng]),
                  "latency_opt_e2e_s": float(em["e2e_mean_s"][lat]),
                  "energy_opt_e2e_s": float(em["e2e_mean_s"][eng]),
                  "energy_saved_pct": 100 * (1 - em["energy_per_token_j"][eng]
                                             / em["energy_per_token_j"][lat])}
    found = {}
    spec = {"name": "env:mlsysgym/LLMServing-v0", "model": model, "gpu": "H100-SXM",
            "n_gpus": n, "nodes": nodes, "rate": rate, "requests": requests, "seed": seed,
            "dtypes": ["bf16"], "kv_dtypes": ["bf16"], **SLO}
    problem = make_problem(spec)
    for agent in agents:
        t = time.process_time()
        res = search(agent, problem, budget, seed=seed)
        dt = time.process_time() - t
        i = int(np.argmax(res.rewards))
        g = res.metrics[i]["throughput_tok_s"] * res.metrics[i]["slo_attainment"]
        hit = np.flatnonzero(res.best_so_far >= res.rewards[i] - 1e-12)[0]
        found[agent] = {"goodput": float(g), "plan": show(res.designs[i]),
                        "evaluations": res.n_evaluations, "cpu_s": dt,
                        "evals_to_best": int(hit + 1),
                        "time_to_best_s": float(res.times_s[hit]) if len(res.times_s) else None}
    best_h = float(np.max(hs))
    best_e = float(es[best])
    return {"scenario": f"{model} on {n}x H100-SXM ({nodes} node(s)), {rate:g} req/s x "
                        f"{requests}", "heuristics": {k: float(v) for k, v in zip(heur, hs)},
            "heuristic_plans": {k: show(v) for k, v in heur.items()},
            "best_heuristic": best_h, "exhaustive_best": best_e,
            "exhaustive_plan": show(plans[best]), "exhaustive_n": len(plans),
            "exhaustive_cpu_s": t_exh, "quantized_best": float(score(qm, "goodput")[qbest]),
            "quantized_plan": show(qplans[qbest]), "agents": found, "energy": energy,
            "requests_simulated": requests * (len(plans) + len(qplans)),
            "evaluator_cache_misses": ev.cache_misses}


def write(results: list[dict[str, Any]], args: argparse.Namespace, cpu_total: float,
          sim_rate: float) -> None:
    from mlsysgym.experiments.report import stamp_markdown, write_provenance

    lines = ["# LLM serving plan search", "",
             ("Goodput = output tokens/s × fraction of requests meeting TTFT ≤ 1 s and TPOT ≤ "
             "50 ms; bf16 weights and KV cache; chat workload (ShareGPT-shaped lengths, "
             f"Poisson arrivals), {args.requests} requests per run, seed {args.seed}; agents "
             f"searched the full plan space (batching included) with {args.budget} evaluations "
             "each through `search()` on `env:mlsysgym/LLMServing-v0`. Script: "
             "`benchmarks/bench_serving.py`."), "",
             ("| scenario | best heuristic (tok/s) | exhaustive best (tok/s) | plans | "
             "exhaustive CPU s | agent best (tok/s) | agent vs heuristic | agent gap to "
             "exhaustive | quantized best (tok/s) |"), "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in results:
        ag = max(r["agents"].items(), key=lambda kv: kv[1]["goodput"]) if r["agents"] else None
        a_str = f"{ag[1]['goodput']:.0f} ({ag[0]})" if ag else "—"
        x = f"{ag[1]['goodput'] / r['best_heuristic']:.2f}×" if ag and r["best_heuristic"] > 0 \
            else "—"
        gap = f"{100 * (1 - ag[1]['goodput'] / r['exhaustive_best']):+.1f} %" if ag else "—"
        lines.append(f"| {r['scenario']} | {r['best_heuristic']:.0f} | {r['exhaustive_best']:.0f}"
                     f" | {r['exhaustive_n']} | {r['exhaustive_cpu_s']:.1f} | {a_str} | {x} | "
                     f"{gap} | {r['quantized_best']:.0f} |")
    lines += ["", ("Gap = 1 − agent / exhaustive (negative: the agent's plan, which may also "
              "tune batching, beats the best parallel plan at default batching)."), "",
              "Plans:", ""]
    for r in results:
        lines.append(f"- {r['scenario']}: heuristics "
                     + "; ".join(f"{k}: {v} ({r['heuristics'][k]:.0f} tok/s)"
                                 for k, v in r["heuristic_plans"].items())
                     + f"; exhaustive: {r['exhaustive_plan']}; quantized: {r['quantized_plan']}; "
                     + "; ".join(f"{a}: {v['plan']} after {v['evals_to_best']} evaluations "
                                 f"({v['cpu_s']:.1f} CPU s for {v['evaluations']})"
                                 for a, v in r["agents"].items()))
    lines += ["", ("Energy-optimal vs latency-optimal plan (among exhaustive plans with SLO "
              "attainment ≥ 90 %):"), "",
              ("| scenario | latency-optimal | J/token | energy-optimal | J/token | energy saved |"
              " mean E2E (lat-opt → energy-opt) |"), "|---|---|---:|---|---:|---:|---|"]
    for r in results:
        e = r["energy"]
        if e:
            lines.append(f"| {r['scenario']} | {e['latency_opt']} | {e['latency_opt_j_per_tok']:.3f}"
                         f" | {e['energy_opt']} | {e['energy_opt_j_per_tok']:.3f} | "
                         f"{e['energy_saved_pct']:.1f} % | {e['latency_opt_e2e_s']:.2f} s → "
                         f"{e['energy_opt_e2e_s']:.2f} s |")
    lines += ["", f"Speed: {sim_rate:.0f} simulated requests per CPU-second over the "
              f"exhaustive runs; whole benchmark {cpu_total:.0f} CPU s. Time to find the best "
              "plan for GPT-3-175B on 64 GPUs by exhaustive enumeration: "
              + next((f"{r['exhaustive_cpu_s']:.1f} CPU s ({r['exhaustive_n']} plans)"
                      for r in results if r["scenario"].startswith("GPT-3")), "not run")
              + " (APEX reports 15 minutes for its search).", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    old = OUT.with_suffix(".md").read_text() if OUT.with_suffix(".md").exists() else ""
    keep = old[old.index(SURROGATE):] if SURROGATE in old else ""  # bench_serving_surrogate.py
    OUT.with_suffix(".md").write_text(stamp_markdown("\n".join(lines)) + "\n" + keep)
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    write_provenance(OUT.with_suffix(".provenance.json"), script="benchmarks/bench_serving.py",
                     evaluator="serving@1", seed=args.seed, budget=args.budget,
                     requests=args.requests)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=120)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--agents", default="ga,tpe")
    ap.add_argument("--quick", action="store_true", help="first scenario only, 30 evaluations")
    args = ap.parse_args(argv)
    if args.quick:
        args.budget = 30
    agents = [a for a in args.agents.split(",") if a]
    t0 = time.process_time()
    results = []
    sims = cpu = 0.0
    for sc in SCENARIOS[:1] if args.quick else SCENARIOS:
        r = run_scenario(*sc, requests=args.requests, budget=args.budget, agents=agents,
                         seed=args.seed)
        results.append(r)
        sims += r["exhaustive_n"] * args.requests
        cpu += r["exhaustive_cpu_s"]
        print(r["scenario"], "done", file=sys.stderr)
    write(results, args, time.process_time() - t0, sims / max(cpu, 1e-9))
    return 0


if __name__ == "__main__":
    sys.exit(main())
