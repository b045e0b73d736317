"""How to train the learned scheduler (issue #21, item 3): MaskablePPO across graphs against the
list-scheduler policy's trainings, zero-shot on the validation split.

The list-scheduler policy (:mod:`mlsysgym.agents.learned_schedule`) was trained three ways by
``experiments/train_schedule_policy.py`` (``--method es``, ``imitation``, ``rollout``); each
card holds its greedy decode's makespan / HEFT's on every validation instance, the untrained
network's (HEFT's order with PEFT's lookahead) beside it. This script adds the fourth method
the issue names, PPO: the graph policy of ``maskable_ppo``
(:func:`~mlsysgym.agents.scheduling_agents.train_policy`, a message-passing network choosing
(ready op, PE) one decision at a time) trained with MaskablePPO on the same training graphs
(the train split's workloads of at most ``--max-ops`` ops, one policy per platform, as the
list scheduler's ES), then per validation instance its greedy rollout and the best of
``--samples`` sampled rollouts, against HEFT's makespan, and the same of the untrained PPO
policy (0 steps; its start). The table puts every method's
validation mean side by side.

Run: nice -n 19 .venv/bin/python benchmarks/bench_schedule_training.py [--timesteps 65536]
Writes benchmarks/results/schedule_training.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents.problems import make_problem
from mlsysgym.agents.scheduling_agents import rollout_schedules, train_policy
from mlsysgym.agents.scheduling_baselines import heft
from mlsysgym.core.target import provenance
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir import workloads

RESULTS = Path(__file__).parent / "results"  # the recorded training cards, read
CARDS = {"ES (shipped)": Path(__file__).parents[1] / "agents" / "policies" / "schedule_gnn.json",
         "imitation of searched schedules": RESULTS / "schedule_training" / "imitation_8s_lr0.003.json",
         "rollout labels, lr 0.003": RESULTS / "schedule_training" / "rollout_lr0.003.json",
         "rollout labels, lr 0.03": RESULTS / "schedule_training" / "rollout_lr0.03.json"}


def ppo_rows(platform: str, timesteps: int, samples: int, max_ops: int, seed: int) -> dict[str, Any]:
    """MaskablePPO trained on the train split (graphs ≤ ``max_ops`` ops) on ``platform``, then
    its rollouts on every validation instance of the platform."""
    specs = workloads.scheduling_instances("validation", (platform,))
    problems = [make_problem(s.problem_spec()) for s in specs]
    graphs = [w.build() for w in workloads.split("train")]
    train = [{"model": g} for g in graphs
             if problems[0].variant({"model": g}).n_ops <= max_ops]
    untrained, _ = train_policy(problems[0], train, seed, total_timesteps=0)
    policy, stats = train_policy(problems[0], train, seed, total_timesteps=timesteps)
    print(f"[{platform}] PPO: {stats.timesteps} steps in {stats.wall_s:.0f} s, makespan / LB0 "
          f"{stats.first_ratio:.3f} → {stats.last_ratio:.3f}", file=sys.stderr, flush=True)
    rows = []
    for spec, problem in zip(specs, problems):
        inst = problem.instance
        h = heft(inst).makespan_us(inst)
        t0 = time.perf_counter()
        runs = rollout_schedules(policy, problem, samples, (1.0, 0.3, 0.1), seed)
        t1 = time.perf_counter()
        spans = [s.makespan_us(inst) for s, _, _ in runs]
        start = [s.makespan_us(inst) for s, _, _ in rollout_schedules(
            untrained, problem, samples, (1.0, 0.3, 0.1), seed)]
        rows.append({"instance": spec.name, "n_ops": inst.n_ops, "heft_us": h,
                     "ppo_greedy_ratio": spans[0] / h, "ppo_best_ratio": min(spans) / h,
                     "untrained_greedy_ratio": start[0] / h, "untrained_best_ratio": min(start) / h,
                     "rollout_s": t1 - t0})
        print(f"[{platform}] {spec.name}: greedy {100 * (1 - spans[0] / h):+.2f} %, best of "
              f"{len(spans)} {100 * (1 - min(spans) / h):+.2f} % vs HEFT", file=sys.stderr, flush=True)
    return {"platform": platform, "train_graphs": list(stats.workloads), "timesteps": stats.timesteps,
            "train_s": stats.wall_s, "first_ratio": stats.first_ratio,
            "last_ratio": stats.last_ratio, "rows": rows}


def card_row(label: str, path: Path) -> dict[str, Any]:
    """A list-scheduler training's validation numbers, from its card."""
    c = json.loads(path.read_text())
    return {"method": label, "card": str(path.relative_to(Path(__file__).parents[1])),
            "cpu_hours": c["cpu_hours"],
            "untrained_pct": c["validation_untrained"]["mean_improvement_vs_heft_pct"],
            "trained_pct": c["validation"]["mean_improvement_vs_heft_pct"],
            "per_instance_pct": dict(zip(c["validation"]["instances"],
                                         c["validation"]["improvement_vs_heft_pct"]))}


def report(ppo: Sequence[dict[str, Any]], cards: Sequence[dict[str, Any]], args: argparse.Namespace) -> str:
    rows = [r for p in ppo for r in p["rows"]]

    def mean_pct(key: str) -> float:
        return float(np.mean([100 * (1 - r[key]) for r in rows]))

    lines = ["# How to train the learned scheduler: validation split, zero-shot", "",
             f"Command: `{' '.join(sys.argv)}`", "",
             ("Mean improvement of the makespan over HEFT's, % (greedy decode unless said), on "
             f"the {len(rows)} validation instances (families gpt, efficientnet; never trained on)."), "",
             "| method | validation mean vs HEFT | its untrained start | CPU h |", "|---|---:|---:|---:|"]
    for c in cards:
        lines.append(f"| list scheduler, {c['method']} (`{c['card']}`) | {c['trained_pct']:+.3f} % | "
                     f"{c['untrained_pct']:+.3f} % | {c['cpu_hours']:.3f} |")
    cpu_h = sum(p["train_s"] for p in ppo) / 3600
    lines += [(f"| MaskablePPO graph policy, greedy rollout | {mean_pct('ppo_greedy_ratio'):+.3f} % | "
              f"{mean_pct('untrained_greedy_ratio'):+.3f} % | {cpu_h:.3f} (training wall) |"),
              (f"| MaskablePPO graph policy, best of {1 + args.samples} rollouts | "
              f"{mean_pct('ppo_best_ratio'):+.3f} % | {mean_pct('untrained_best_ratio'):+.3f} % | |"),
              "", "## MaskablePPO per instance", "",
              "| instance | ops | greedy vs HEFT | best of rollouts vs HEFT | rollout s |",
              "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['instance']} | {r['n_ops']} | {100 * (1 - r['ppo_greedy_ratio']):+.2f} % | "
                     f"{100 * (1 - r['ppo_best_ratio']):+.2f} % | {r['rollout_s']:.1f} |")
    lines += ["", "PPO training per platform: " + "; ".join(
        f"{p['platform']}: {p['timesteps']} steps, {p['train_s']:.0f} s, {len(p['train_graphs'])} "
        f"graphs, makespan / LB0 {p['first_ratio']:.3f} → {p['last_ratio']:.3f}" for p in ppo), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timesteps", type=int, default=65536, help="PPO steps per platform")
    ap.add_argument("--samples", type=int, default=24, help="sampled rollouts per instance")
    ap.add_argument("--max-ops", type=int, default=800, help="largest training graph (as ES)")
    ap.add_argument("--platforms", nargs="+", default=list(workloads.SCHEDULING_PLATFORMS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/schedule_training.md"))
    args = ap.parse_args(argv)
    if args.timesteps < 1 or args.samples < 0:
        ap.error("--timesteps must be ≥ 1 and --samples ≥ 0")
    ppo = [ppo_rows(p, args.timesteps, args.samples, args.max_ops, args.seed) for p in args.platforms]
    cards = [card_row(k, v) for k, v in CARDS.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"ppo": ppo, "cards": cards, **provenance(command=" ".join(sys.argv))}, indent=1) + "\n")
    args.out.write_text(stamp_markdown(report(ppo, cards, args)))
    print(f"wrote {args.out} (+ .json)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
