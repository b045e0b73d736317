"""Can a learned model rank the mallocGame LNS's centres better than a rule? Training split only.

The LNS (``agents/malloc_lns.py``) repairs the neighbourhood of one centre buffer per step.
This measures, on the **training split** (validation and test are not touched), how much
each way of choosing among four uniformly drawn centres gains per step:

1. **Oracle steps**: on every training instance at ``--capacities``, from the placement where
   the ablation's LNS starts (``learned_malloc.lns_start``, seed 0, a 10-s run), ``--seconds``
   of LNS whose every step repairs all four drawn centres' neighbourhoods
   (``malloc_lns.lns(oracle=4, record=...)``): per step the four centres'
   ``malloc_lns.centre_features`` and the fraction of the time each repair saved. The
   shipped LNS policy's logit per centre (what ``learned`` draws its centres by) is added.
2. **Rankers**, each training family held out in turn (trained on the others' steps with a
   saving; scored on all the held-out family's steps): the saving of the centre each picks,
   in points (100 × fraction of the time) per step, against a uniform pick (the mean of the
   four), the rule ``potential_rank`` (no learning), the network's logit alone, an MLP on
   the 11 features, an MLP on them and the logit, and the oracle (the best of the four).
   Intervals: 95 % bootstrap over the held-out instances of the difference to the rule.

Writes ``benchmarks/results/learned_malloc_rankers.{md,json,png}`` and a provenance file.

Run: nice -n 19 .venv/bin/python benchmarks/learned_malloc_rankers.py [--seconds 4]
[--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path("benchmarks/results/learned_malloc_rankers.md")  # default --out, under the working directory
K = 4  # centres drawn per step


def oracle_steps(name: str, seconds: float) -> dict[str, Any]:
    """One training instance's oracle steps: per step the centres' features (and the shipped
    LNS policy's logits appended) and their repairs' savings."""
    from mlsysgym.agents.learned_malloc import (
        LNS_POLICY_PATH,
        heuristic_fast,
        lns_start,
        network_scores,
    )
    from mlsysgym.agents.malloc_lns import lns
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads
    from mlsysgym.simulators.memory import xla_order

    spec = workloads.MallocInstanceSpec.from_name(name)
    problem = make_problem(spec.problem_spec())
    p = problem.instance
    order = xla_order(p)
    logits = network_scores(p, order, LNS_POLICY_PATH, heur=heuristic_fast(p, order))
    start = lns_start(problem, seed=0, time_limit_s=10.0)
    record: list = []
    lns(p, start, np.random.default_rng(1), deadline=time.perf_counter() + seconds, oracle=K,
        record=record)
    steps = [(np.column_stack([f, logits[c]]), s) for c, f, s, _ in record if len(s) == K]
    return {"name": name, "family": spec.workload.family,
            "x": np.array([x for x, _ in steps], np.float32).reshape(-1, K, 12),
            "saved": np.array([s for _, s in steps]).reshape(-1, K)}


def _log(x: np.ndarray) -> np.ndarray:
    """Signed log of the features, and each less its step's mean (the ranker compares four)."""
    g = np.sign(x) * np.log1p(np.abs(x) * 100)
    return np.concatenate([g, g - g.mean(-2, keepdims=True)], -1)


def fit_mlp(x: np.ndarray, saved: np.ndarray, cols: list[int], epochs: int,
            seed: int = 0) -> Any:
    """An MLP (32 hidden) scoring centres from the columns ``cols`` of ``x`` ([steps, K, F]),
    trained listwise: cross-entropy against the softmax of 5 × each step's savings over its
    best. Returns a function [steps, K, F] → scores [steps, K]."""
    import torch

    torch.manual_seed(seed)
    z = _log(x[..., cols])
    mu, sd = z.reshape(-1, z.shape[-1]).mean(0), z.reshape(-1, z.shape[-1]).std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(z.shape[-1], 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    xt = torch.tensor((z - mu) / sd, dtype=torch.float32)
    best = saved.max(1, keepdims=True)
    yt = torch.softmax(torch.tensor(5.0 * saved / best, dtype=torch.float32), 1)
    for _ in range(epochs):
        opt.zero_grad()
        loss = -(yt * torch.log_softmax(net(xt)[..., 0], 1)).sum(1).mean()
        loss.backward()
        opt.step()

    def score(xs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            zs = torch.tensor((_log(xs[..., cols]) - mu) / sd, dtype=torch.float32)
            return net(zs)[..., 0].numpy()
    return score


def held_out(data: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    """Per training family held out: per arm the points saved per step, pooled and per family,
    and per learned arm its difference to the rule with a bootstrap interval over the
    held-out instances."""
    from mlsysgym.agents.malloc_lns import CENTRE_FEATURES

    pot = CENTRE_FEATURES.index("slow_potential")
    n_f = len(CENTRE_FEATURES)
    fixed = {"potential (rule)": lambda x: x[..., pot], "network logit": lambda x: x[..., n_f]}
    mlps = {"MLP, 11 features": list(range(n_f)), "MLP, 11 features + logit": list(range(n_f + 1))}
    per_inst: dict[str, dict[str, float]] = {}  # arm -> instance -> points per step
    for fam in sorted({d["family"] for d in data}):
        train = [d for d in data if d["family"] != fam and len(d["saved"])]
        x = np.concatenate([d["x"] for d in train])
        s = np.concatenate([d["saved"] for d in train])
        keep = s.max(1) > 0
        rank = {**fixed, **{a: fit_mlp(x[keep], s[keep], c, epochs) for a, c in mlps.items()}}
        for d in data:
            if d["family"] != fam or not len(d["saved"]):
                continue
            got = {"uniform": d["saved"].mean(1), "oracle (best of 4)": d["saved"].max(1)}
            for a, r in rank.items():
                got[a] = np.take_along_axis(d["saved"], r(d["x"]).argmax(1)[:, None], 1)[:, 0]
            for a, v in got.items():
                per_inst.setdefault(a, {})[d["name"]] = 100 * float(v.mean())
    steps = {d["name"]: len(d["saved"]) for d in data}
    fam_of = {d["name"]: d["family"] for d in data}
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"steps": int(sum(steps.values())),
                           "steps with a saving": int(sum((d["saved"].max(1) > 0).sum()
                                                          for d in data if len(d["saved"]))),
                           "arms": {}}
    names = sorted(per_inst["uniform"])
    w = np.array([steps[n] for n in names], np.float64)
    for a, v in per_inst.items():
        vals = np.array([v[n] for n in names])
        diff = vals - np.array([per_inst["potential (rule)"][n] for n in names])
        boot = [np.average(diff[i], weights=w[i])
                for i in (rng.integers(0, len(names), len(names)) for _ in range(2000))]
        by_family = {}
        for f in sorted(set(fam_of.values())):
            m = np.array([fam_of[n] == f for n in names])
            if m.any():
                by_family[f] = float(np.average(vals[m], weights=w[m]))
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out["arms"][a] = {"points_per_step": float(np.average(vals, weights=w)),
                          "minus_rule": float(np.average(diff, weights=w)),
                          "minus_rule_interval": [float(lo), float(hi)], "by_family": by_family}
    return out


def render(out: dict[str, Any]) -> str:
    """The Markdown report."""
    arms = out["result"]["arms"]
    fams = list(next(iter(arms.values()))["by_family"])
    lines = [("# Ranking the LNS's centres: a rule vs learned models (training split, families "
             "held out)"),
             "", f"Command: `{out['command']}`", "",
             (f"{out['instances']} training instances at capacities {out['capacities']}, "
             f"{out['seconds']:g} s of oracle LNS each from the ablation's LNS start; "
             f"{out['result']['steps']:,} steps of {K} centres, "
             f"{out['result']['steps with a saving']:,} with a saving. Points of the time saved "
             "per step by the centre each arm picks (steps weighted equally); − rule: the "
             "difference "
             "to the rule, 95 % bootstrap interval over the held-out instances."), "",
             "| arm | points per step | − rule | " + " | ".join(fams) + " |",
             "|---|---:|---|" + "---:|" * len(fams)]
    for a, v in arms.items():
        lo, hi = v["minus_rule_interval"]
        lines.append(f"| {a} | {v['points_per_step']:.4f} | {v['minus_rule']:+.4f} "
                     f"[{lo:+.4f}, {hi:+.4f}] | "
                     + " | ".join(f"{v['by_family'][f]:.4f}" for f in fams) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.experiments.report import family_bars, write_results
    from mlsysgym.ir import workloads

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="oracle LNS per instance")
    ap.add_argument("--capacities", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    names = [f"{w.name}:{c:g}" for w in workloads.split("train") for c in args.capacities]
    data = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, d in enumerate(pool.map(oracle_steps, names, [args.seconds] * len(names))):
            data.append(d)
            print(f"[{i + 1}/{len(names)}] {d['name']}: {len(d['saved'])} steps", file=sys.stderr,
                  flush=True)
    out = {"command": " ".join(["nice -n 19 .venv/bin/python benchmarks/learned_malloc_rankers.py",
                                *sys.argv[1:]]),
           "instances": len(names), "capacities": args.capacities, "seconds": args.seconds,
           "result": held_out(data, args.epochs)}

    def plot(png: Path) -> None:
        family_bars({a: v["by_family"] for a, v in out["result"]["arms"].items()}, png,
                    ylabel="points of the time saved per LNS step",
                    title="Centre ranking, each training family held out")

    write_results(args.out, out, render(out), plot, summary=out["result"], argv=sys.argv)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
