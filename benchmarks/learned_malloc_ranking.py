"""Does the LNS policy rank repairs on graphs it never saw, and what is left for it to rank?

``learned`` draws the centres of its LNS repairs by the softmax of the LNS policy's scores
(``agents/policies/malloc_lns_gnn.onnx``); its ablation draws them uniformly. This measures the
policy alone, off the search, in two states of each instance (a split's workloads at the given
fast-memory fractions):

- ``heuristic``: the XLA-style heuristic's placement, the state its training labels were
  measured in;
- ``lns_start``: where the ablation's LNS starts in a 10-s run (seed 0), after its local search
  and the class sweep (:func:`mlsysgym.agents.learned_malloc.lns_start`): the state in which
  ``learned`` draws its centres.

In each state ``--centres`` seeded candidate centres are labelled with the fraction of the time
one CP-SAT repair around each saves (:func:`mlsysgym.agents.malloc_lns.repair_gain`, as the
training labels) and scored as ``learned`` scores them (on the heuristic's fast buffers). Per
instance (:func:`ranking`): the AUC of the scores for "improves" (instances with improving and
non-improving centres), the expected gain of one of the labelled centres drawn by the scores'
softmax and drawn uniformly (the LNS draws from all candidates), and the best centre's gain.
Per split and state: their means over instances, with a 95 % bootstrap interval of softmax −
uniform over instances.

Writes ``benchmarks/results/learned_malloc_ranking.{md,json,png}`` and a provenance file.

Run: .venv/bin/python benchmarks/learned_malloc_ranking.py [--splits validation test]
    [--capacities 0.07 0.13 0.19 0.33] [--centres 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

RESULTS = Path("benchmarks/results")  # default --out folder, under the working directory
STATES = ("heuristic", "lns_start")


def ranking(scores: np.ndarray, gains: np.ndarray) -> dict[str, Any]:
    """How ``scores`` rank centres whose repairs save ``gains`` (fractions of the time): AUC
    for "improves" (ties count one half; None unless both classes occur), the expected gain of
    a centre drawn by the softmax of the scores and drawn uniformly, the gain of the top-scored
    centre and the best gain."""
    s, g = np.asarray(scores, np.float64), np.asarray(gains, np.float64)
    pos = g > 1e-12
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    auc = (None if n_pos == 0 or n_neg == 0
           else float((rankdata(s)[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)))
    w = np.exp(s - s.max())
    return {"improving": n_pos, "centres": len(g), "auc": auc,
            "softmax_gain": float(w @ g / w.sum()), "uniform_gain": float(g.mean()),
            "top_gain": float(g[np.argmax(s)]), "best_gain": float(g.max())}


def label(name: str, state: str, centres: int, seed: int = 0) -> dict[str, Any]:
    """One instance in one state: the sampled centres' gains and the policy's scores, and
    :func:`ranking` of them."""
    from mlsysgym.agents.learned_malloc import LNS_POLICY_PATH, lns_start, network_scores
    from mlsysgym.agents.malloc_baselines import xla_greedy
    from mlsysgym.agents.malloc_lns import candidates, repair_gain
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir.workloads import MallocInstanceSpec
    from mlsysgym.simulators.memory import FAST, xla_order

    problem = make_problem(MallocInstanceSpec.from_name(name).problem_spec())
    inst = problem.instance
    order = xla_order(inst)
    greedy = xla_greedy(inst, order).placement  # the heuristic: the network's input
    start = greedy if state == "heuristic" else lns_start(problem, seed)
    rng = np.random.default_rng([seed, inst.n_buffers])
    cand = np.flatnonzero(candidates(inst, start))
    picked = cand if len(cand) <= centres else rng.choice(cand, centres, replace=False)
    gains = np.array([repair_gain(inst, start, int(c), rng) for c in picked])
    scores = network_scores(inst, order, LNS_POLICY_PATH, heur=greedy.mode == FAST)[picked]
    return {"instance": name, "state": state, "buffers": int(inst.n_buffers),
            "candidates": len(cand), "gains": gains.tolist(), "scores": scores.tolist(),
            **ranking(scores, gains)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over one split's instances in one state (points = 100 × fractions of the
    placement's time)."""
    from bench_learned_malloc import bootstrap_mean

    auc = [r["auc"] for r in rows if r["auc"] is not None]
    diff = 100 * np.array([r["softmax_gain"] - r["uniform_gain"] for r in rows])
    lo, hi = bootstrap_mean(diff)
    return {"instances": len(rows),
            "with_improving": sum(r["improving"] > 0 for r in rows),
            "improving_share": sum(r["improving"] for r in rows) / sum(r["centres"] for r in rows),
            "auc_mean": float(np.mean(auc)) if auc else None, "auc_instances": len(auc),
            **{k: float(100 * np.mean([r[k] for r in rows]))
               for k in ("softmax_gain", "uniform_gain", "top_gain", "best_gain")},
            "softmax_minus_uniform": float(diff.mean()), "interval": [lo, hi]}


def render(summary: dict[str, dict[str, dict[str, Any]]], capacities: list[float],
           centres: int) -> str:
    """The Markdown report."""
    caps = " / ".join(f"{c:g}" for c in capacities)
    lines = ["# How the LNS policy ranks repairs, off the search (learned mallocGame, issue #21)",
             "", (f"Each split's workloads at {caps} of their activation working set; {centres} "
                  "seeded candidate centres per instance, each labelled with the time one CP-SAT "
                  "repair around it saves; gains in points of that placement's time (mean over "
                  "instances). `heuristic`: the XLA-style heuristic's placement (where the "
                  "training labels were measured); `lns_start`: where the ablation's LNS starts "
                  "in a 10-s run, seed 0 (after its local search and class sweep), where "
                  "`learned` draws its centres."), "",
             ("| split | state | instances with an improving centre | improving centres | AUC "
              "(instances) | one centre by the policy's softmax | one centre uniformly | "
              "softmax − uniform [95 %] | top-scored centre | best centre |"),
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for split, states in summary.items():
        for state, s in states.items():
            auc = "—" if s["auc_mean"] is None else f"{s['auc_mean']:.3f} ({s['auc_instances']})"
            lo, hi = s["interval"]
            lines.append(
                f"| {split} | {state} | {s['with_improving']}/{s['instances']} | "
                f"{100 * s['improving_share']:.1f} % | {auc} | {s['softmax_gain']:.4f} | "
                f"{s['uniform_gain']:.4f} | {s['softmax_minus_uniform']:+.4f} [{lo:+.4f}, "
                f"{hi:+.4f}] | {s['top_gain']:.4f} | {s['best_gain']:.4f} |")
    lines += ["", ("An AUC of 0.5 is a random ranking. What one repair can still save where "
                   "`learned` draws its centres (`lns_start`, best centre) bounds what the "
                   "network's choice of centre can add per repair."), ""]
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """Expected gain of one repair, by the policy's softmax and uniformly, per split and state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(sp, st) for sp, states in summary.items() for st in states]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, (field, name) in enumerate((("softmax_gain", "policy's softmax"),
                                       ("uniform_gain", "uniform"),
                                       ("best_gain", "best centre"))):
        ax.bar(x + (k - 1) * 0.27, [summary[sp][st][field] for sp, st in keys], 0.27,
               label=name)
    ax.set_xticks(x, [f"{sp}\n{st}" for sp, st in keys])
    ax.set_yscale("log")
    ax.set_ylabel("one repair saves (points of the placement's time)")
    ax.set_title("LNS centres off the search: where the search starts vs where LNS runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.experiments.report import write_provenance
    from mlsysgym.ir import workloads

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", nargs="+", default=["validation", "test"])
    ap.add_argument("--capacities", type=float, nargs="+", default=[0.07, 0.13, 0.19, 0.33])
    ap.add_argument("--centres", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS / "learned_malloc_ranking.md")
    args = ap.parse_args(argv)
    jobs = [(split, s.name, state) for split in args.splits
            for s in workloads.malloc_instances(split, tuple(args.capacities)) for state in STATES]
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futs = [pool.submit(label, name, state, args.centres) for _, name, state in jobs]
        for i, ((split, _, _), f) in enumerate(zip(jobs, futs)):
            rows.append({"split": split, **f.result()})
            r = rows[-1]
            print(f"[{i + 1}/{len(jobs)}] {r['instance']} {r['state']}: {r['improving']}/"
                  f"{r['centres']} improve, best {100 * r['best_gain']:.3f} points",
                  file=sys.stderr, flush=True)
    summary = {sp: {st: summarize([r for r in rows if r["split"] == sp and r["state"] == st])
                    for st in STATES} for sp in args.splits}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(summary, args.capacities, args.centres))
    args.out.with_suffix(".json").write_text(json.dumps({"summary": summary, "rows": rows}) + "\n")
    plot(summary, args.out.with_suffix(".png"))
    write_provenance(args.out.with_suffix(".provenance.json"), summary=summary, argv=sys.argv)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
