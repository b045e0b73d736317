"""Does a graph's shape say which LNS neighbourhood size suits it? Training and validation rows.

``benchmarks/learned_malloc_sizes.py`` found that the best size differs by family, and the
validation runs of ``lns_size=20`` moved single instances by up to ±2.7 points, in opposite
directions by family. This reads those rows (nothing is rerun) and asks whether three
features of the instance, known before any search, rank the gain of size 20 over the
default 40 the same way on both splits (Spearman's ρ per feature):

- on the **training split**: per instance, size 20's rate minus size 40's (points per second
  of repair, ``learned_malloc_sizes.json``);
- on the **validation split**: per instance, the ablation's points at size 20
  (``learned_malloc_validation_lns_size20_10s.json``) minus at the default
  (``learned_malloc_validation_rank_potential_10s.json``), means over seeds.

Features: the buffers (``n_buffers``), the fast capacity over the peak live bytes, weights
included (``capacity / peak``), and the median live range of a buffer in ops
(``median life``). Instances where neither size saved anything are left out on training.

Then per feature the one-feature rule "size 20 on one side of a threshold, else 40" that
gains most on the training rows (:func:`threshold_rule`; no learning beyond the threshold),
scored on the validation rows: each instance's points at the size the rule picks, from the
fixed-size runs above, against the default's.

Writes ``benchmarks/results/learned_malloc_size_features.md`` (or ``--out``) and a
provenance file.

Run: .venv/bin/python benchmarks/learned_malloc_size_features.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"  # the recorded rows, read
FEATURES = ("n_buffers", "capacity / peak", "median life")


def graph_features(name: str) -> tuple[float, float, float]:
    """:data:`FEATURES` of the mallocGame instance ``name`` (``workload:capacity``)."""
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    p = make_problem(workloads.MallocInstanceSpec.from_name(name).problem_spec()).instance
    return (float(p.n_buffers), p.capacity_bytes / max(p.peak_live_bytes, 1),
            float(np.median(p.end - p.start)))


def ablation_points(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per instance, the ablation's mean over seeds of the % of the all-slow time saved (the
    rows of the run itself, not of an ``--off`` arm)."""
    got: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["agent"] == "learned_no_network" and r.get("off") is None:
            got[r["instance"]].append(100 * (r["all_slow_us"] - r["time_us"]) / r["all_slow_us"])
    return {k: float(np.mean(v)) for k, v in got.items()}


def gains() -> dict[str, dict[str, float]]:
    """Per split, per instance: the gain of size 20 over 40 (see the module docstring)."""
    sizes = json.loads((RESULTS / "learned_malloc_sizes.json").read_text())["result"]
    r20 = sizes["arms"]["size 20"]["per_instance"]
    r40 = sizes["arms"]["size 40"]["per_instance"]
    train = {n: a - b for n, a, b in zip(sizes["names"], r20, r40) if a or b}
    rows = {k: json.loads((RESULTS / f"learned_malloc_validation_{k}_10s.json").read_text())["rows"]
            for k in ("lns_size20", "rank_potential")}
    new, old = ablation_points(rows["lns_size20"]), ablation_points(rows["rank_potential"])
    return {"train": train, "validation": {n: new[n] - old[n] for n in new if n in old}}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y)[0])


def threshold_rule(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The one-feature rule "size 20 where ``sign`` × feature ≤ ``sign`` × ``t``, else 40" whose
    mean gain over the instances (``x``: the feature, ``y``: the gain of 20 over 40) is
    largest: (``t``, ``sign``); (−inf, 1), never 20, if no rule gains."""
    best = (0.0, -np.inf, 1)
    for sign in (1, -1):
        for t in np.unique(x):
            gain = float(np.where(sign * x <= sign * t, y, 0.0).mean())
            if gain > best[0] + 1e-12:
                best = (gain, float(t), sign)
    return best[1], best[2]


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.experiments.report import stamp_markdown, write_provenance

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path,
                    default=Path("benchmarks/results/learned_malloc_size_features.md"))
    md = ap.parse_args(argv).out
    out: dict[str, Any] = {}
    xy = {}
    for split, gain in gains().items():
        names = sorted(gain)
        x = np.array([graph_features(n) for n in names])
        y = np.array([gain[n] for n in names])
        xy[split] = x, y
        out[split] = {"instances": len(names), "better at 20": int((y > 0).sum()),
                      "worse at 20": int((y < 0).sum()),
                      "rho": {f: spearman(x[:, j], y) for j, f in enumerate(FEATURES)}}
    from bench_learned_malloc import bootstrap_mean

    (xt, yt), (xv, yv) = xy["train"], xy["validation"]
    out["rules"] = {}
    for j, f in enumerate(FEATURES):
        t, sign = threshold_rule(xt[:, j], yt)
        got = np.where(sign * xv[:, j] <= sign * t, yv, 0.0)
        lo, hi = bootstrap_mean(got, n=2000)
        out["rules"][f] = {"threshold": t, "sign": sign,
                           "train gain": float(np.where(sign * xt[:, j] <= sign * t, yt, 0).mean()),
                           "validation gain": float(got.mean()),
                           "validation interval": [float(lo), float(hi)],
                           "validation picks 20": int((sign * xv[:, j] <= sign * t).sum())}
    lines = ["# Graph features against the gain of LNS size 20 over 40", "",
             "Command: `.venv/bin/python benchmarks/learned_malloc_size_features.py`", "",
             ("Spearman's ρ between each feature and the gain (training: points per second of "
              "repair; validation: the ablation's points in 10-s runs). The same sign on both "
              "splits means the feature points the same way on families it was not read on."),
             "", "| split | instances | better / worse at 20 | " + " | ".join(FEATURES) + " |",
             "|---|---:|---:|" + "---:|" * len(FEATURES)]
    for split in ("train", "validation"):
        v = out[split]
        lines.append(f"| {split} | {v['instances']} | {v['better at 20']} / {v['worse at 20']} | "
                     + " | ".join(f"{v['rho'][f]:+.3f}" for f in FEATURES) + " |")
    lines += ["", ("One-feature rules (no learning beyond a threshold): size 20 where the "
                   "feature is at or below (≤) or at or above (≥) the threshold that gains "
                   "most on the training rows, else 40; their gain on validation (the "
                   "ablation's points, mean over the 32 instances of the size-20 or the "
                   "default rows it picks; 95 % bootstrap interval over instances)."), "",
              ("| feature | rule (chosen on training) | training gain (points per s) | "
               "validation gain (points) | validation instances at 20 |"),
              "|---|---|---:|---|---:|"]
    for f, r in out["rules"].items():
        rule = (f"20 where {'≤' if r['sign'] > 0 else '≥'} {r['threshold']:.4g}"
                if np.isfinite(r["threshold"]) else "never 20")
        lo, hi = r["validation interval"]
        lines.append(f"| {f} | {rule} | {r['train gain']:+.3f} | {r['validation gain']:+.3f} "
                     f"[{lo:+.3f}, {hi:+.3f}] | {r['validation picks 20']} |")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(stamp_markdown("\n".join(lines) + "\n"))
    write_provenance(md.with_suffix(".provenance.json"), summary=out, argv=sys.argv)
    print(md.read_text())


if __name__ == "__main__":
    main()
