"""Is there headroom in choosing the size of the mallocGame LNS's neighbourhoods? Training split.

The LNS (``agents/malloc_lns.py``) repairs one neighbourhood of ``size`` buffers per step,
0.3 s each: 40 when this was measured ("shipped" below; since, 20 or 40 by
``malloc_lns.auto_size``, a rule chosen from this script's rows). A network could choose the
size where the search had no rule. This measures, on the **training split** only, the most
such a choice could gain:

1. **Steps**: on every training instance at ``--capacities``, from the placement where the
   ablation's LNS starts (``learned_malloc.lns_start``, seed 0, a 10-s run), ``--seconds``
   (wall) of steps: the centre is the best of four uniform draws by the shipped rule
   (``malloc_lns.potential_rank``), as in both agents; its neighbourhood is repaired at each
   of ``--sizes`` from the same placement (``malloc_lns.repair``, 0.3 s each); the step keeps
   the largest saving (ties: the fastest repair). Per step and size: the saving (fraction of
   the time) and the seconds. A centre fruitless at every size is set aside until a step
   keeps a saving (``lns`` sets aside only those whose neighbourhood the change meets).
2. **Rates**, points of the time saved per second of repair, per instance (its steps
   summed), then the mean over instances: each fixed size; the best fixed size per instance
   (what a model of the whole graph could choose); the best size per step (a perfect
   per-step choice, charged only its own repair; a fruitless step is charged the fastest
   size's). Intervals: 95 % bootstrap over instances of the difference to size 40. The
   steps follow the per-step best's trajectory, so the fixed sizes' rates are measured on
   the states that choice reaches, not on their own.

Writes ``benchmarks/results/learned_malloc_sizes.{md,json,png}`` and a provenance file.

Run: nice -n 19 .venv/bin/python benchmarks/learned_malloc_sizes.py [--seconds 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents.malloc_lns import REPAIR_S
from mlsysgym.agents.malloc_lns import SIZE as SHIPPED

RESULTS = Path("benchmarks/results/learned_malloc_sizes.md")  # default --out, under the working directory
K = 4  # uniform draws ranked by the rule per step


def size_steps(name: str, seconds: float, sizes: list[int]) -> dict[str, Any]:
    """One training instance's steps: per step and size the saving and the seconds."""
    from mlsysgym.agents.learned_malloc import lns_start
    from mlsysgym.agents.malloc_lns import (
        candidates,
        centre_features,
        centre_state,
        neighbourhood,
        potential_rank,
        repair,
        total_time,
    )
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    spec = workloads.MallocInstanceSpec.from_name(name)
    problem = make_problem(spec.problem_spec())
    p = problem.instance
    best = lns_start(problem, seed=0, time_limit_s=10.0)
    rng = np.random.default_rng(1)
    cand = candidates(p, best)
    on = cand.copy()  # centres not set aside
    saved, secs = [], []
    end = time.perf_counter() + seconds
    while on.any() and time.perf_counter() < end:
        pool = np.flatnonzero(on)
        t_best = total_time(p, best.mode)
        centres = rng.choice(pool, size=min(K, pool.size), replace=False)
        frees = [neighbourhood(p, int(c), SHIPPED, cand, rng) for c in centres]
        feats = centre_features(p, best, centres, frees, centre_state(p, best), None)
        c = int(centres[int(np.argmax(potential_rank(feats)))])
        tried = []
        for s in sizes:
            t0 = time.perf_counter()
            new = repair(p, best, neighbourhood(p, c, s, cand, rng), seconds=REPAIR_S,
                         seed=int(rng.integers(2**31)))
            t = t_best if new is None else min(total_time(p, new.mode), t_best)
            tried.append(((t_best - t) / t_best, time.perf_counter() - t0, new))
        saved.append([x[0] for x in tried])
        secs.append([x[1] for x in tried])
        keep = max(range(len(sizes)), key=lambda i: (tried[i][0], -tried[i][1]))
        if tried[keep][0] > 1e-9:
            best, on = tried[keep][2], cand.copy()
        else:
            on[c] = False
    return {"name": name, "family": spec.workload.family,
            "saved": np.array(saved).reshape(-1, len(sizes)),
            "secs": np.array(secs).reshape(-1, len(sizes))}


def rates(data: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Per arm the rate (points per second of repair) per instance, its mean over instances
    (each instance weighs the same: each gets the same seconds in a run) and per family, and
    the mean difference to the shipped size with a bootstrap interval over instances."""
    data = [d for d in data if len(d["saved"])]
    arms: dict[str, list[float]] = {}  # arm -> rate per instance
    chosen = []  # the best fixed size of each instance with a saving
    for d in data:
        pts, sec = 100 * d["saved"], d["secs"]
        fixed = pts.sum(0) / sec.sum(0)
        for s, r in zip(sizes, fixed):
            arms.setdefault(f"size {s}", []).append(float(r))
        arms.setdefault("best fixed size per instance", []).append(float(fixed.max()))
        if pts.any():
            chosen.append(sizes[int(np.argmax(fixed))])
        pick = np.lexsort((sec, -pts), axis=1)[:, 0]  # largest saving, then fastest
        rows = np.arange(len(pts))
        arms.setdefault("best size per step", []).append(
            float(pts[rows, pick].sum() / sec[rows, pick].sum()))
    ref = np.array(arms[f"size {SHIPPED}"])
    fams = np.array([str(d["family"]) for d in data])
    draws = np.random.default_rng(0).integers(0, len(data), (2000, len(data)))
    out: dict[str, Any] = {"instances": len(data), "steps": int(sum(len(d["saved"]) for d in data)),
                           "best fixed size counts": {f"size {s}": chosen.count(s) for s in sizes},
                           "names": [d["name"] for d in data], "arms": {}}
    for a, v in arms.items():
        v = np.array(v)
        lo, hi = np.percentile((v - ref)[draws].mean(1), [2.5, 97.5])
        out["arms"][a] = {"points_per_s": float(v.mean()), "minus_shipped": float((v - ref).mean()),
                          "minus_shipped_interval": [float(lo), float(hi)],
                          "by_family": {f: float(v[fams == f].mean()) for f in sorted(set(fams))},
                          "per_instance": v.tolist()}
    return out


def render(out: dict[str, Any]) -> str:
    """The Markdown report."""
    r = out["result"]
    fams = list(next(iter(r["arms"].values()))["by_family"])
    lines = ["# Choosing the LNS's neighbourhood size: the headroom (training split)", "",
             f"Command: `{out['command']}`", "",
             (f"{r['instances']} training instances at capacities {out['capacities']}, "
              f"{out['seconds']:g} s (wall) of steps each from the ablation's LNS start; "
              f"{r['steps']:,} steps, each the rule's centre repaired at sizes {out['sizes']} "
              f"({REPAIR_S:g} s each). Points of the time saved per second of repair, the mean of "
              "the instances' rates; "
              f"− size {SHIPPED}: the difference to the shipped size, 95 % bootstrap interval "
              "over instances. Best fixed size of the instances with a saving: "
              + ", ".join(f"{k} {v}" for k, v in r["best fixed size counts"].items()) + "."), "",
             f"| arm | points per s | − size {SHIPPED} | " + " | ".join(fams) + " |",
             "|---|---:|---|" + "---:|" * len(fams)]
    for a, v in r["arms"].items():
        lo, hi = v["minus_shipped_interval"]
        lines.append(f"| {a} | {v['points_per_s']:.4f} | {v['minus_shipped']:+.4f} "
                     f"[{lo:+.4f}, {hi:+.4f}] | "
                     + " | ".join(f"{v['by_family'][f]:.4f}" for f in fams) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.experiments.report import family_bars, write_results
    from mlsysgym.ir import workloads

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="steps per instance (wall)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40, 80])
    ap.add_argument("--capacities", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if SHIPPED not in args.sizes or min(args.sizes) < 1:
        raise SystemExit(f"--sizes: positive sizes that include the shipped {SHIPPED}")
    names = [f"{w.name}:{c:g}" for w in workloads.split("train") for c in args.capacities]
    data = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, d in enumerate(pool.map(size_steps, names, [args.seconds] * len(names),
                                       [args.sizes] * len(names))):
            data.append(d)
            print(f"[{i + 1}/{len(names)}] {d['name']}: {len(d['saved'])} steps", file=sys.stderr,
                  flush=True)
    out = {"command": " ".join(["nice -n 19 .venv/bin/python benchmarks/learned_malloc_sizes.py",
                                *sys.argv[1:]]),
           "capacities": args.capacities, "seconds": args.seconds, "sizes": args.sizes,
           "result": rates(data, args.sizes)}

    def plot(png: Path) -> None:
        family_bars({a: v["by_family"] for a, v in out["result"]["arms"].items()}, png,
                    ylabel="points of the time saved per second of repair",
                    title="LNS neighbourhood size, training families")

    write_results(args.out, out, render(out), plot, summary=out["result"], argv=sys.argv)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
