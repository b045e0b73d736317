"""Multi-objective search: hypervolume vs evaluations and Pareto fronts, per agent, 5 seeds.

Problems (objectives all from the analytical simulators):

- ``accel``: Accelerator-v0 on resnet18; minimize latency_ms, energy_uj, area_mm2; reference
  point = 2x the middle design's metrics (the default of ``multiobjective``), stated in the
  report.
- ``dram``: DRAM-v0 (the default stream trace); minimize avg_latency_ns and energy_nj,
  maximize bandwidth_gbps; reference = 2x / 2x / 0.5x the middle design's metrics.

Agents: the multi-objective ``nsga2``, ``qnehvi`` and ``qparego`` (BoTorch; small budgets, they
are slow on 2 shared cores), ``random`` (ignores the objectives; its evaluations still give a
front) and the single-objective ``ga`` and ``tpe`` on the weighted-sum reward (equal weights
on the reference-normalized objectives). Every run's hypervolume curve and final front go to
``benchmarks/results/pareto_runs/<problem>_<agent>.json`` (runs appended), so
runs can be added separately (``--agents qnehvi --budget 100``); ``--report`` writes
``benchmarks/results/pareto.md`` and the PNGs from those records.

    nice -n 19 .venv/bin/python benchmarks/bench_pareto.py --problem accel --agents random nsga2 ga --budget 2000
    nice -n 19 .venv/bin/python benchmarks/bench_pareto.py --report
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "pareto_runs"
PROBLEMS = {
    "accel": {"of": {"name": "env:mlsysgym/Accelerator-v0", "model": "resnet18"},
                  "objectives": ["latency_ms", "energy_uj", "area_mm2"],
                  "directions": ["minimize", "minimize", "minimize"]},
    "dram": {"of": "env:mlsysgym/DRAM-v0",
                 "objectives": ["avg_latency_ns", "energy_nj", "bandwidth_gbps"],
                 "directions": ["minimize", "minimize", "maximize"]},
}
MARKS = (100, 500, 2000)


def run(problem_key: str, agents: list[str], seeds: list[int], budget: int,
        hp: dict[str, dict]) -> None:
    """Run every agent × seed and append the records to the problem's JSON file."""
    from mlsysgym.agents.multiobjective import multiobjective, pareto_search
    from mlsysgym.experiments.report import write_provenance

    spec = PROBLEMS[problem_key]
    problem = multiobjective(spec["of"], spec["objectives"], spec["directions"])
    for agent in agents:
        path = RUNS / f"{problem_key}_{agent}.json"
        record = json.loads(path.read_text()) if path.exists() else {
            "problem": problem.name, "objectives": problem.objectives,
            "directions": problem.directions, "reference": problem.reference, "runs": []}
        for seed in seeds:
            t = time.perf_counter()
            r = pareto_search(agent, problem, budget, seed, **hp.get(agent, {}))
            wall = time.perf_counter() - t
            info = r.info
            record["runs"] = [x for x in record["runs"]
                              if not (x["agent"] == agent and x["seed"] == seed)]
            record["runs"].append({
                "agent": agent, "seed": seed, "budget": budget, "wall_s": wall,
                "hyperparameters": hp.get(agent, {}),
                "curve": np.round(info["hypervolume_curve"], 6).tolist(),
                "front": [[f[o] for o in problem.objectives] for f in info["pareto_front"]],
                "n_feasible": int(sum(m.get("pareto_feasible", 0) for m in r.metrics))})
            print(f"{problem_key} {agent:8s} seed {seed} budget {budget}: HV "
                  f"{info['hypervolume_normalized']:.4f}, front {len(info['pareto_front'])}, "
                  f"{wall:.1f} s", flush=True)
            RUNS.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record) + "\n")
    write_provenance(RUNS / f"{problem_key}.provenance.json", bench="bench_pareto",
                     problem=problem.name, reference=problem.reference)


def exhaustive(problem_key: str, chunk: int = 20_000) -> None:
    """Evaluate every design of the (discrete) space and record the true front and its
    hypervolume: the ceiling every agent's curve is compared against."""
    from mlsysgym.agents.multiobjective import multiobjective
    from mlsysgym.agents.pareto import hypervolume, pareto_mask

    spec = PROBLEMS[problem_key]
    problem = multiobjective(spec["of"], spec["objectives"], spec["directions"])
    space, inner = problem.space, problem.problem
    grids = np.meshgrid(*[np.arange(n) for n in space.nvec], indexing="ij")
    idx = np.stack([g.reshape(-1) for g in grids], axis=1)
    t = time.perf_counter()
    front = np.zeros((0, len(problem.objectives)))
    for start in range(0, len(idx), chunk):
        designs = space.decode_batch(idx[start:start + chunk], "index")
        out = inner.evaluate(designs)
        g = problem.objective_matrix(out.metrics)
        ok = problem.feasible(designs, out.metrics, out.failed)
        new = g[ok]
        if len(front):  # drop what the front so far already dominates or equals (cheap)
            covered = np.zeros(len(new), dtype=bool)
            for p in front:
                covered |= np.all(p <= new, axis=1)
            new = new[~covered]
        both = np.vstack([front, new])
        front = both[pareto_mask(both)]
    wall = time.perf_counter() - t
    hv = hypervolume(front, problem.ref_min) / float(np.prod(np.abs(problem.ref_min)))
    RUNS.mkdir(parents=True, exist_ok=True)
    (RUNS / f"{problem_key}.exhaustive.json").write_text(json.dumps(
        {"designs": len(idx), "hypervolume_normalized": hv, "front_size": len(front),
         "wall_s": wall}) + "\n")
    print(f"{problem_key}: {len(idx)} designs, true front {len(front)}, HV {hv:.4f}, {wall:.0f} s")


def _interval(values: np.ndarray) -> str:
    """mean ± 95 % t-interval half-width (n seeds)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return f"{values.mean():.4f} (n=1)"
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return f"{values.mean():.4f} ± {half:.4f}"


def report() -> None:
    """pareto.md and pareto_<problem>_hv.png / _fronts.png from the saved records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlsysgym.experiments.report import stamp_recorded

    lines = ["# Multi-objective search: hypervolume and Pareto fronts", "",
             ("Hypervolume is normalized: the objectives are divided by the reference point "
             "(so the reference is 1 in every objective) and the value is the fraction of the "
             "box [0, reference] that the feasible designs found dominate (exact, 3 objectives)."
             " Mean ± 95 % t-interval over seeds, at each number of evaluations (from the "
             "hypervolume-after-every-evaluation curve of one run per agent and seed). "
             "ga and tpe are single-objective agents on the weighted sum of the normalized "
             "objectives (equal weights); random ignores the objectives."), ""]
    prov = None
    for key in PROBLEMS:
        files = sorted(RUNS.glob(f"{key}_*.json"))
        if not files:
            continue
        recs = [json.loads(f.read_text()) for f in files]
        rec = {**recs[0], "runs": [r for x in recs for r in x["runs"]]}
        ppath = RUNS / f"{key}.provenance.json"
        prov = json.loads(ppath.read_text()) if ppath.exists() else prov
        refs = ", ".join(f"{o} {'≤' if d == 'minimize' else '≥'} {r:.5g}"
                         for o, d, r in zip(rec["objectives"], rec["directions"], rec["reference"]))
        ex = RUNS / f"{key}.exhaustive.json"
        best = ""
        if ex.exists():
            e = json.loads(ex.read_text())
            best = (f" Exhaustive search ({e['designs']:,} designs, {e['wall_s']:.0f} s): the "
                    f"true front has {e['front_size']} designs, hypervolume "
                    f"**{e['hypervolume_normalized']:.4f}** (the most any agent can reach).")
        lines += [f"## {rec['problem']}", "", f"Reference point: {refs}.{best}", "",
                  "| agent | seeds | " + " | ".join(f"HV @ {m}" for m in MARKS)
                  + " | distinct front points (final) | evaluations to reach the final HV (median)"
                  " | wall s per run |", "|---" * (len(MARKS) + 5) + "|"]
        agents = sorted({r["agent"] for r in rec["runs"]})
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for agent in agents:
            runs = [r for r in rec["runs"] if r["agent"] == agent]
            n = min(len(r["curve"]) for r in runs)
            curves = np.array([r["curve"][:n] for r in runs])
            cells = [_interval(curves[:, m - 1]) if m <= n else "—" for m in MARKS]
            fronts = np.mean([len(np.unique(np.array(r["front"]), axis=0)) for r in runs])
            reach = np.median([int(np.argmax(c >= c[-1] * (1 - 1e-9))) + 1 for c in curves])
            lines.append(f"| {agent} | {len(runs)} | " + " | ".join(cells)
                         + f" | {fronts:.0f} | {reach:.0f} | "
                         f"{np.mean([r['wall_s'] for r in runs]):.1f} |")
            x = np.arange(1, n + 1)
            mean, lo, hi = curves.mean(0), curves.min(0), curves.max(0)
            (line,) = ax.plot(x, mean, label=agent)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
        for agent in agents:
            hps = {json.dumps(r["hyperparameters"], sort_keys=True) for r in rec["runs"]
                   if r["agent"] == agent and r["hyperparameters"]}
            if hps:
                lines.append(f"\n{agent} ran with {', '.join(sorted(hps))} (otherwise defaults).")
        ax.set_xscale("log")
        ax.set_xlabel("evaluations")
        ax.set_ylabel("normalized hypervolume")
        ax.set_title(f"{rec['problem']}: mean, band = min..max over seeds", fontsize=8)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / f"pareto_{key}_hv.png", dpi=110)
        plt.close(fig)
        _fronts_plot(rec, agents, RESULTS / f"pareto_{key}_fronts.png", plt)
        lines += ["", f"![hypervolume](pareto_{key}_hv.png)", f"![fronts](pareto_{key}_fronts.png)",
                  ""]
    text = "\n".join(lines) + "\n"
    if prov:
        text = stamp_recorded(text, {"provenance": prov})
    (RESULTS / "pareto.md").write_text(text)
    print(text)


def _fronts_plot(rec: dict, agents: list[str], path: Path, plt: object) -> None:
    """2-D projections of each agent's final front (seed 0's largest-budget run)."""
    objs = rec["objectives"]
    pairs = [(0, 1), (0, 2), (1, 2)][: max(1, len(objs) * (len(objs) - 1) // 2)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.2))
    axes = np.atleast_1d(axes)
    for agent in agents:
        runs = sorted((r for r in rec["runs"] if r["agent"] == agent),
                      key=lambda r: (-r["budget"], r["seed"]))
        f = np.array(runs[0]["front"])
        if not len(f):
            continue
        for ax, (i, j) in zip(axes, pairs):
            ax.scatter(f[:, i], f[:, j], s=10, alpha=0.7,
                       label=f"{agent} (seed {runs[0]['seed']}, {runs[0]['budget']} evals)")
    ref = rec["reference"]
    for ax, (i, j) in zip(axes, pairs):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(ref[i], color="k", lw=0.5, ls="--")
        ax.axhline(ref[j], color="k", lw=0.5, ls="--")
        ax.set_xlabel(objs[i])
        ax.set_ylabel(objs[j])
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Pareto fronts (3-D front, 2-D projections; dashed: reference) — "
                 f"{rec['problem']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="accel")
    ap.add_argument("--agents", nargs="+", default=["random", "nsga2", "ga", "tpe"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--hp", type=json.loads, default={},
                    help='per-agent hyperparameters, e.g. \'{"qnehvi": {"mc_samples": 32}}\'')
    ap.add_argument("--report", action="store_true", help="write pareto.md and PNGs only")
    ap.add_argument("--exhaustive", action="store_true",
                    help="evaluate the whole space: the true front and its hypervolume")
    args = ap.parse_args()
    if args.exhaustive:
        exhaustive(args.problem)
    elif args.report:
        report()
    else:
        run(args.problem, args.agents, args.seeds, args.budget, args.hp)


if __name__ == "__main__":
    main()
