"""How much room does the search leave a network? The learned mallocGame agent's test rows.

``learned`` and its ablation ``learned_no_network`` run the same search and differ only where
the network steers it. This reads the rows of every fresh test evaluation
(``benchmarks/results/learned_malloc_<set>.jsonl``; nothing is rerun) and reports per set:

- the runs (instance, seed) where both agents end on the same time: the network changed
  nothing there;
- the share of the gap from the XLA-style heuristic to the best known placement that the
  ablation closes (the best known: the fastest of all runs on the instance — both agents'
  seeds, CP-SAT at 10 s and 60 s; an upper bound on the optimum, so the share is an upper
  bound too);
- the ablation's residual to the best known (points of the all-slow time, mean of seeds):
  what a network could still add, at most, against that best known;
- learned − ablation (points, mean over instances of the mean of seeds).

Then per test family, every set pooled (each instance once: the large sets repeat their
fresh set's rows of the single large workloads): learned − ablation with a 95 % bootstrap
interval (whole workloads resampled: one workload's instances are not independent), how many
instances are better or worse, and the ablation's residual there. The sets come from different
designs (fifth to seventeenth, the potential rule, the size rule), so a family's row says
whether any of them helped it.

Writes ``benchmarks/results/learned_malloc_headroom.{md,png}`` and a provenance file. Each
set's rows keep the machine they ran on (its provenance file's target id, in the table).

Run: .venv/bin/python benchmarks/learned_malloc_headroom.py [--sets fresh fresh2 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"  # the evaluations' rows, read
SETS = ("fresh", "fresh2", "fresh3", "fresh4", "fresh5", "fresh6", "fresh7", "fresh7_large",
        "fresh8", "fresh8_large", "fresh9", "fresh9_large", "fresh10", "fresh10_large",
        "fresh11", "fresh11_large", "fresh12", "fresh12_large")
# the evaluation (and so the design) each set's rows come from
EVALUATION = {"fresh": "5th", "fresh2": "6th", "fresh3": "7th", "fresh4": "8th", "fresh5": "9th",
              "fresh6": "10th", "fresh7": "11th", "fresh7_large": "11th, large graphs",
              "fresh8": "12th", "fresh8_large": "12th, large graphs", "fresh9": "13th",
              "fresh9_large": "13th, large graphs", "fresh10": "14th",
              "fresh10_large": "14th, large graphs", "fresh11": "15th",
              "fresh11_large": "15th, large graphs", "fresh12": "16th",
              "fresh12_large": "16th, large graphs"}
AGENTS = ("learned", "learned_no_network")


def headroom(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per instance of one set's rows: both agents' residuals to the best known (points of the
    all-slow time, one per seed both ran) and the heuristic's."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["instance"]].append(r)
    out = {}
    for name, rs in sorted(by.items()):
        slow, best = rs[0]["all_slow_us"], min(r["time_us"] for r in rs)
        res = {a: {r["seed"]: 100 * (r["time_us"] - best) / slow for r in rs if r["agent"] == a}
               for a in (*AGENTS, "xla_greedy")}
        seeds = sorted(set(res["learned"]) & set(res["learned_no_network"]))
        out[name] = {"learned": [res["learned"][s] for s in seeds],
                     "ablation": [res["learned_no_network"][s] for s in seeds],
                     "heuristic": res["xla_greedy"][0]}
    return out


def summarize(inst: dict[str, Any]) -> dict[str, Any]:
    """One set's figures (module docstring)."""
    lea = [np.asarray(v["learned"]) for v in inst.values()]
    abl = [np.asarray(v["ablation"]) for v in inst.values()]
    heur = np.array([v["heuristic"] for v in inst.values()])
    ties = sum(int((np.abs(a - b) < 1e-9).sum()) for a, b in zip(lea, abl))
    abl_mean = np.array([a.mean() for a in abl])
    gap = heur > 1e-9
    closed = 1.0 - abl_mean[gap] / heur[gap]
    worst = int(np.argmax(abl_mean))
    return {"instances": len(inst), "runs": int(sum(len(a) for a in abl)), "ties": ties,
            "closed_mean": float(closed.mean()), "closed_median": float(np.median(closed)),
            "heuristic_mean": float(heur.mean()), "residual_mean": float(abl_mean.mean()),
            "residual_median": float(np.median(abl_mean)),
            "residual_max": float(abl_mean[worst]), "residual_max_at": list(inst)[worst],
            "learned_minus_ablation": float(np.mean([b.mean() - a.mean()
                                                     for a, b in zip(lea, abl)]))}


def family_of(instance: str) -> str:
    """The test family of an instance ``workload:capacity``; ``mix`` for concurrent workloads."""
    from mlsysgym.ir import workloads

    name = instance.rsplit(":", 1)[0]
    return "mix" if workloads.CONCURRENT_SEP in name else workloads.workload(name).family


def by_family(sets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family (and ``all``), every set pooled, each instance once (module docstring)."""
    from bench_learned_malloc import bootstrap_mean

    inst = {}
    for rows in sets.values():
        for name, v in rows.items():
            inst.setdefault(name, v)
    names = sorted(inst)
    diff = np.array([np.mean(inst[n]["ablation"]) - np.mean(inst[n]["learned"]) for n in names])
    resid = np.array([np.mean(inst[n]["ablation"]) for n in names])
    fam = np.array([family_of(n) for n in names])
    work = [n.rsplit(":", 1)[0] for n in names]
    out = {}
    for f in [*sorted(set(fam)), "all"]:
        sel = np.ones(len(names), bool) if f == "all" else fam == f
        groups = [w for w, s in zip(work, sel) if s]
        lo, hi = (bootstrap_mean(diff[sel], groups=groups) if len(set(groups)) > 1
                  else (float("nan"), float("nan")))
        out[f] = {"instances": int(sel.sum()), "workloads": len(set(groups)),
                  "mean": float(diff[sel].mean()), "interval": [lo, hi],
                  "better": int((diff[sel] > 1e-9).sum()), "worse": int((diff[sel] < -1e-9).sum()),
                  "residual": float(resid[sel].mean())}
    return out


def target_of(name: str) -> str:
    """The target id of the machine a set's rows ran on (its provenance file), or '?'."""
    path = RESULTS / f"learned_malloc_{name}.provenance.json"
    try:
        return str(json.loads(path.read_text())["fingerprint"]["target_id"])
    except (OSError, ValueError, KeyError):
        return "?"


def render(summary: dict[str, dict[str, Any]], families: dict[str, dict[str, Any]]) -> str:
    """The Markdown report."""
    lines = ["# Headroom the search leaves the network (learned mallocGame, issue #21)", "",
             ("From the rows of the fresh test evaluations, nothing rerun. Points = % of the "
             "all-slow time. Best known = the fastest run on the instance (both agents, 3 seeds "
             "each, CP-SAT 10 s and 60 s), not a proven optimum."), "",
             ("| set (evaluation in BENCHMARKS.md, machine) | instances | runs where learned "
             "= ablation | heuristic → best known (points, mean) | share the ablation closes (mean / median) | ablation → "
             "best known (points, mean / median) | largest (instance) | learned − ablation "
             "(points) |"), "|---|---:|---:|---:|---:|---:|---|---:|"]
    for name, s in summary.items():
        lines.append(
            f"| {name} ({EVALUATION.get(name, '?')}, `{target_of(name)}`) | "
            f"{s['instances']} | {s['ties']}/{s['runs']} | {s['heuristic_mean']:.2f} | {100 * s['closed_mean']:.1f} % / "
            f"{100 * s['closed_median']:.1f} % | {s['residual_mean']:.3f} / "
            f"{s['residual_median']:.3f} | {s['residual_max']:.2f} ({s['residual_max_at']}) | "
            f"{s['learned_minus_ablation']:+.3f} |")
    lines += ["", ("A network that steers this search can gain at most the ablation's residual "
              "(against the best known) on an instance; where the two agents tie, it gained "
              "nothing."), "",
              "## learned − ablation per test family, every set above pooled", "",
              ("Each instance once (mean of its seeds); interval: 95 % bootstrap, whole "
               "workloads resampled (none for a family of one workload). The sets come from "
               "different designs."), "",
              ("| family | workloads | instances | learned − ablation (points) [95 %] | better "
               "/ worse | ablation → best known (points, mean) |"),
              "|---|---:|---:|---|---:|---:|"]
    for f, r in families.items():
        lo, hi = r["interval"]
        ci = f"[{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else "(one workload)"
        lines.append(f"| {f} | {r['workloads']} | {r['instances']} | {r['mean']:+.3f} {ci} | "
                     f"{r['better']} / {r['worse']} | {r['residual']:.3f} |")
    return "\n".join(lines + [""])


def plot(sets: dict[str, dict[str, Any]], families: dict[str, dict[str, Any]],
         path: Path) -> None:
    """Left: per instance, learned's residual against the ablation's (mean of seeds), per set.
    Right: learned − ablation per family, with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 5))
    top = 0.0
    for name, inst in sets.items():
        a = np.array([np.mean(v["ablation"]) for v in inst.values()])
        b = np.array([np.mean(v["learned"]) for v in inst.values()])
        ax.scatter(a, b, s=14, label=name, alpha=0.8)
        top = max(top, a.max(), b.max())
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlabel("ablation: points of the all-slow time behind the best known")
    ax.set_ylabel("learned: points behind the best known")
    ax.set_title("Per test instance (mean of 3 seeds)")
    ax.legend(fontsize=8)
    names = list(families)
    mean = np.array([families[f]["mean"] for f in names])
    lo, hi = np.array([families[f]["interval"] for f in names]).T
    y = np.arange(len(names))
    bx.errorbar(mean, y, xerr=np.nan_to_num([mean - lo, hi - mean]), fmt="o", capsize=3)
    bx.axvline(0, color="k", lw=0.8)
    bx.set_yticks(y, [f"{f} ({families[f]['instances']})" for f in names])
    bx.set_xlabel("learned − ablation, points (95 % interval over workloads)")
    bx.set_title("Per test family, every set pooled")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.experiments.report import write_provenance

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/learned_malloc_headroom.md"))
    args = ap.parse_args(argv)
    sets = {}
    for name in args.sets:
        path = RESULTS / f"learned_malloc_{name}.jsonl"
        if not path.is_file():
            sys.exit(f"error: no rows {path}")
        sets[name] = headroom([json.loads(line) for line in path.read_text().splitlines()])
    summary = {name: summarize(inst) for name, inst in sets.items()}
    families = by_family(sets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(summary, families))
    plot(sets, families, args.out.with_suffix(".png"))
    write_provenance(args.out.with_suffix(".provenance.json"), summary=summary,
                     families=families, argv=sys.argv,
                     rows={n: target_of(n) for n in sets})
    print(args.out.read_text())


if __name__ == "__main__":
    main()
