"""How much can ordering the moves gain at all? The learned mallocGame agent vs an oracle order.

``learned`` and its ablation ``learned_no_network`` are the same local search and differ only
in the order in which moves are tried (network score vs XLA order). This measures the ceiling
of that lever on the **validation split** (the test split is not touched):

1. **Oracle labels**: on every validation instance, :func:`move_gains` plays every move of the
   search at the first ``--positions`` positions of the heuristic's episode in XLA order (the
   region a 10-s search works in) and records the fraction of time each saves.
2. **Arms**, interleaved per instance and seed, ``--seconds`` each, all the same search
   (:func:`guided_search`) with other move orders: ``oracle`` — by those measured gains
   (improving moves first, best first; then the unlabelled positions in XLA order;
   non-improving last); ``learned`` with ``prune=False`` (every move by the network's score,
   the order the first three test evaluations used); ``fused`` — the network's order and XLA order taken in
   turn (1st of each, 2nd of each, ..., each position once); ``portfolio`` — half the time in
   the network's order, then a fresh search from the heuristic in XLA order, the better kept;
   and the ablation ``learned_no_network`` (XLA order).
3. **Test-split variance** (existing rows of ``learned_malloc.jsonl``, nothing rerun): per
   instance, how much of learned − ablation is seed noise and how much is the instance, and
   how many instances an interval above zero would need at the observed mean and spread.

Writes ``benchmarks/results/learned_malloc_ceiling.{md,json,png}`` and a provenance file.

Run: nice -n 19 .venv/bin/python benchmarks/learned_malloc_ceiling.py [--seconds 10]
[--seeds 2] [--positions 192] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"  # the evaluations' rows, read
ARMS = ("oracle", "learned", "fused", "portfolio", "learned_no_network")


def _problem(name: str) -> Any:
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    return make_problem(workloads.MallocInstanceSpec.from_name(name).problem_spec())


def labels(name: str, positions: int) -> dict[str, Any]:
    """The measured gain of the best move at each of the first ``positions`` XLA positions."""
    from mlsysgym.agents.learned_malloc import move_gains

    problem = _problem(name)
    pos = np.arange(min(positions, problem.instance.n_buffers))
    gains, _ = move_gains(problem.instance, pos, n_offsets=problem.n_offsets)
    return {"name": name, "buffers": int(problem.instance.n_buffers), "positions": pos.tolist(),
            "gains": [None if np.isnan(g) else float(g) for g in gains]}


def oracle_scores(n: int, order: np.ndarray, positions: list[int],
                  gains: list[float | None]) -> np.ndarray:
    """Per buffer: improving labelled moves by gain (> 0), then the unlabelled positions in XLA
    order (in (-3, -2]), then the labelled moves that do not improve or do not fit (-4)."""
    sc = np.empty(n)
    sc[order] = -2.0 - np.arange(n) / n
    g = np.array([-4.0 if v is None or v <= 1e-12 else v for v in gains])
    sc[order[np.asarray(positions, np.int64)]] = g
    return sc


def fused_scores(net_scores: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per buffer a score whose order takes the network's order and XLA order in turn."""
    n = len(order)
    rank_net = np.empty(n, np.int64)
    rank_net[np.argsort(-net_scores, kind="stable")] = np.arange(n)
    rank_xla = np.empty(n, np.int64)
    rank_xla[order] = np.arange(n)
    return -np.minimum(2 * rank_net, 2 * rank_xla + 1).astype(np.float64)


def _order_agent(problem: Any, rng: np.random.Generator, *, time_limit_s: float, arm: str,
                 scores: list[float] | None = None) -> None:
    """``oracle`` (``scores`` given), ``fused`` or ``portfolio`` (network inference inside the
    time limit)."""
    import time

    from mlsysgym.agents.learned_malloc import guided_search, network_scores
    from mlsysgym.agents.malloc_problem import malloc_of
    from mlsysgym.simulators.memory import xla_order

    t0 = time.perf_counter()
    if arm == "oracle":
        guided_search(problem, rng, np.asarray(scores), seconds=time_limit_s)
        return
    inst = malloc_of(problem).instance
    order = xla_order(inst)
    net = network_scores(inst, order)
    if arm == "fused":
        guided_search(problem, rng, fused_scores(net, order),
                      seconds=time_limit_s - (time.perf_counter() - t0))
        return
    guided_search(problem, rng, net, seconds=time_limit_s / 2 - (time.perf_counter() - t0))
    first = problem.info["moves"]
    guided_search(problem, rng, None, seconds=time_limit_s - (time.perf_counter() - t0))
    problem.info["moves"] += first


def run(name: str, arm: str, seed: int, seconds: float, lab: dict[str, Any]) -> dict[str, Any]:
    """One arm on one instance: the fraction of the all-slow time saved and the moves tried."""
    from mlsysgym.agents import Budget, search
    from mlsysgym.agents.base import register_agent
    from mlsysgym.simulators.memory import xla_order

    problem = _problem(name)
    inst = problem.instance
    hp: dict[str, Any] = {"time_limit_s": seconds}
    agent = arm
    if arm == "learned":
        hp["prune"] = False
    if arm in ("oracle", "fused", "portfolio"):
        register_agent("move_order", kinds=("malloc",))(_order_agent)
        agent = "move_order"
        hp["arm"] = arm
    if arm == "oracle":
        hp["scores"] = oracle_scores(inst.n_buffers, xla_order(inst), lab["positions"],
                                     lab["gains"]).tolist()
    res = search(agent, problem, Budget(seconds=seconds + 30), seed=seed, **hp)
    t = float(res.metrics[res.best_index]["time_us"])
    return {"instance": name, "arm": arm, "seed": seed, "saved": 1.0 - t / inst.all_slow_time_us,
            "moves": res.info.get("moves")}


def compare(rows: list[dict[str, Any]], arm: str, base: str = "learned_no_network") -> dict[str, Any]:
    """``arm`` − ``base`` per (instance, seed) in points of the all-slow time saved; over the
    instance means (seeds averaged), the 95 % bootstrap interval of their mean and mean ÷ SD
    (an interval above zero over n instances needs about 1.96 / √n)."""
    from bench_learned_malloc import bootstrap_mean

    v = {(r["instance"], r["seed"], r["arm"]): r["saved"] for r in rows}
    keys = sorted({k[:2] for k in v})
    d = 100 * np.array([v[(*k, arm)] - v[(*k, base)] for k in keys])
    per: dict[str, list[float]] = defaultdict(list)
    for k, x in zip(keys, d):
        per[k[0]].append(float(x))
    m = np.array([np.mean(x) for x in per.values()])
    sd = float(m.std(ddof=1))
    return {"mean_points": float(d.mean()), "wins": int((d > 1e-9).sum()),
            "losses": int((d < -1e-9).sum()), "runs": len(d),
            "interval_instances": bootstrap_mean(m), "mean_over_sd": float(m.mean()) / sd
            if sd > 0 else None}


def test_variance(path: Path) -> dict[str, Any]:
    """From the test split's rows: learned − ablation (% of the ablation's time, as in
    ``bench_learned_malloc``'s claim) per instance and
    seed; the spread within instances (seeds) and between instance means; the instances an
    interval of ±1.96 standard errors above zero would need at this mean and spread."""
    from mlsysgym.ir import workloads

    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    t = {(r["instance"], r["seed"], r["agent"]): r["time_us"] for r in rows
         if r["agent"] in ("learned", "learned_no_network")}
    diff: dict[str, list[float]] = defaultdict(list)
    for (name, seed, agent) in sorted(t):
        if agent == "learned":
            diff[name].append(100 * (t[(name, seed, "learned_no_network")]
                                     - t[(name, seed, "learned")])
                              / t[(name, seed, "learned_no_network")])
    head = [s.name for s in workloads.malloc_instances("test", headroom=True)]
    means = np.array([np.mean(diff[n]) for n in head])
    within = float(np.sqrt(np.mean([np.var(diff[n], ddof=1) for n in head])))
    mean, between = float(means.mean()), float(means.std(ddof=1))
    return {"instances": len(head), "seeds": len(diff[head[0]]), "mean_percent": mean,
            "sd_between_instances": between, "sd_within_instance": within,
            "instances_needed": int(np.ceil((1.96 * between / mean) ** 2)) if mean > 0 else None,
            "per_instance": {n: [round(x, 3) for x in diff[n]] for n in head}}


def _row(label: str, v: dict[str, Any]) -> str:
    lo, hi = v["interval_instances"]
    ratio = "—" if v["mean_over_sd"] is None else f"{v['mean_over_sd']:.2f}"
    return (f"| {label} | {v['mean_points']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | {ratio} | "
            f"{v['wins']} | {v['losses']} | {v['runs']} |")


def render(out: dict[str, Any]) -> str:
    a, c = out["args"], out["compare"]
    tv = out["test_variance"]
    lines = [
        "# Ceiling of the move order (learned mallocGame, issue #21)", "",
        (f"Validation split ({out['instances']} instances), {a['seconds']:g} s per run, seeds "
        f"{list(range(a['seeds']))}, {a['workers']} workers, the {len(ARMS)} arms interleaved per "
        f"instance and seed. Oracle: the moves ordered by their measured gain at the first "
        f"{a['positions']} XLA positions of the heuristic's episode (labels "
        f"{out['label_seconds']:.0f} s)."), "",
        ("| arm − ablation (points of the all-slow time saved) | mean | 95 % interval (instances) "
        "| mean ÷ SD (instances) | better | worse | runs |"),
        "|---|---:|---|---:|---:|---:|---:|"]
    for arm in ARMS[:-1]:
        lines.append(_row(arm, c[arm]))
    lines += [_row("learned − oracle", c["learned_vs_oracle"]), "",
              (f"An interval above zero over the {out['instances']} instances needs mean ÷ SD "
              f"≳ {1.96 / np.sqrt(out['instances']):.2f}; over the test split's 19 headroom "
              f"instances ≳ {1.96 / np.sqrt(19):.2f}."), "",
              "Moves tried per run (median): " + ", ".join(
                  f"{k} {m:g}" for k, m in out["moves_median"].items()) + ".", "",
              "## Test split: seed noise vs instance (existing rows, nothing rerun)", "",
              (f"learned − ablation over {tv['instances']} headroom instances × {tv['seeds']} "
              f"seeds (% of the ablation's time): mean {tv['mean_percent']:+.3f}; standard "
              f"deviation between instance means {tv['sd_between_instances']:.3f}, within an "
              f"instance across seeds {tv['sd_within_instance']:.3f} (mean ÷ SD "
              f"{tv['mean_percent'] / tv['sd_between_instances']:.2f}). At this mean and spread an "
              f"interval of ±1.96 standard errors above zero needs about "
              f"{tv['instances_needed']} instances."), ""]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = defaultdict(list)
    for r in rows:
        v[(r["instance"], r["arm"])].append(100 * r["saved"])
    names = sorted({r["instance"] for r in rows})
    fig, ax = plt.subplots(figsize=(11, 4))
    w = 0.8 / (len(ARMS) - 1)
    for k, arm in enumerate(ARMS[:-1]):
        d = [np.mean(v[(n, arm)]) - np.mean(v[(n, "learned_no_network")]) for n in names]
        ax.bar(np.arange(len(names)) + (k - 1.5) * w, d, w, label=f"{arm} − ablation")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(np.arange(len(names)), names, rotation=70, fontsize=7)
    ax.set_ylabel("points of the all-slow time saved")
    ax.set_title("Validation split: move orders against the ablation (XLA order)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    import time

    from mlsysgym.experiments.report import stamp_markdown, write_provenance
    from mlsysgym.ir import workloads

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--positions", type=int, default=192)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path,
                    default=Path("benchmarks/results/learned_malloc_ceiling.md"))
    args = ap.parse_args(argv)
    names = [s.name for s in workloads.malloc_instances("validation")]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        labs = {r["name"]: r for r in pool.map(labels, names, [args.positions] * len(names))}
        label_s = time.perf_counter() - t0
        print(f"labels: {label_s:.0f} s", file=sys.stderr, flush=True)
        jobs = [(n, a, s, args.seconds, labs[n]) for s in range(args.seeds) for n in names
                for a in ARMS]
        rows = []
        for i, row in enumerate(pool.map(run, *zip(*jobs))):
            rows.append(row)
            print(f"[{i + 1}/{len(jobs)}] {row['instance']} {row['arm']} seed {row['seed']}: "
                  f"{100 * row['saved']:.3f} % saved, {row['moves']} moves", file=sys.stderr,
                  flush=True)
    out = {"args": vars(args) | {"out": str(args.out)}, "instances": len(names),
           "label_seconds": label_s,
           "compare": {**{a: compare(rows, a) for a in ARMS[:-1]},
                       "learned_vs_oracle": compare(rows, "learned", "oracle")},
           "moves_median": {a: float(np.median([r["moves"] for r in rows if r["arm"] == a]))
                            for a in ARMS},
           "test_variance": test_variance(RESULTS / "learned_malloc.jsonl"),
           "labels": list(labs.values()), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    args.out.write_text(stamp_markdown(render(out)))
    plot(rows, args.out.with_suffix(".png"))
    write_provenance(args.out.with_suffix(".provenance.json"), summary=out["compare"],
                     argv=sys.argv)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
