"""Multi-objective search: hypervolume vs evaluations and Pareto fronts, per agent, 5 seeds.

Problems (objectives all from the analytical simulators):

- ``accel``: Accelerator-v0 on resnet18; minimize latency_ms, energy_uj, area_mm2.
- ``dram``: DRAM-v0 on the ``sparse-local`` trace (light traffic with 60 % row locality, its
  first 5,000 requests); minimize avg_latency_ns and energy_nj. On this trace the page policy
  trades latency for energy (open rows: row hits but active-standby background power; closed:
  precharged standby but an activate per access), unlike the default ``stream`` trace where
  one design is best in everything.
- ``soc``: SoC-v0 on its ``mobile`` workload set (zoo graphs and a job stream, HEFT-mapped);
  minimize latency_ms, energy_uj and area_mm2.

The reference point is 2x the middle design's metrics (the default of ``multiobjective``),
stated in the report. Agents: the multi-objective ``nsga2``, ``qnehvi`` and ``qparego``
(BoTorch, with their large-budget defaults: the batch grows with the data, see
``agents/mobo.py``; run with a wall-clock cap ``--seconds`` as a safety net: a run stopped by
it is marked † in the report), the baselines ``random`` and ``grid``
(they ignore the objectives; their evaluations still give a front), and the single-objective
``ga`` and ``tpe`` on the weighted-sum reward (equal weights on the reference-normalized
objectives). Every run's hypervolume curve and final front go to
``benchmarks/results/pareto_runs/<problem>_<agent>.json`` (one run per agent, seed and
budget), so runs can be added separately (``--agents qnehvi --budget 2000 --seconds 600``);
``--report`` writes ``benchmarks/results/pareto.md`` and the PNGs (experiments/results/pareto/).

    nice -n 19 .venv/bin/python benchmarks/bench_pareto.py --problem accel --agents random nsga2 ga --budget 2000
    nice -n 19 .venv/bin/python benchmarks/bench_pareto.py --problem accel --agents grid --budget 100
    nice -n 19 .venv/bin/python benchmarks/bench_pareto.py --problem accel --agents qnehvi --budget 2000 --seconds 600
    nice -n 19 .venv/bin/python benchmarks/bench_pareto.py --report
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

# under the working directory: the runs' records (extended by each run, read by --report),
# pareto.md and its figures
RESULTS = Path("benchmarks/results")
RUNS = RESULTS / "pareto_runs"
FIGURES = Path("experiments/results/pareto")
PROBLEMS = {
    "accel": {"title": "Accelerator-v0 (resnet18)",
              "of": {"name": "env:mlsysgym/Accelerator-v0", "model": "resnet18"},
              "objectives": ["latency_ms", "energy_uj", "area_mm2"],
              "directions": ["minimize", "minimize", "minimize"]},
    "dram": {"title": "DRAM-v0 (sparse-local, 5,000 requests)",
             "of": {"name": "env:mlsysgym/DRAM-v0", "workload": "sparse-local",
                    "max_requests": 5000},
             "objectives": ["avg_latency_ns", "energy_nj"],
             "directions": ["minimize", "minimize"]},
    "soc": {"title": "SoC-v0 (mobile workload set)",
            "of": {"name": "env:mlsysgym/SoC-v0", "workloads": "mobile"},
            "objectives": ["latency_ms", "energy_uj", "area_mm2"],
            "directions": ["minimize", "minimize", "minimize"]},
}
MARKS = (100, 500, 2000)
WEIGHTED_SUM = ("ga", "tpe", "bo", "aco", "random_walk")  # single-objective agents


def run(problem_key: str, agents: list[str], seeds: list[int], budget: int,
        hp: dict[str, dict], seconds: float | None = None) -> None:
    """Run every agent × seed (at most ``seconds`` each when given) and put the records in the
    problem's JSON files (a run replaces the one of the same agent, seed and budget)."""
    from mlsysgym.agents.base import Budget
    from mlsysgym.agents.multiobjective import multiobjective, pareto_search
    from mlsysgym.core.target import fingerprint
    from mlsysgym.experiments.report import write_provenance

    fp = fingerprint()
    machine = f"{fp['target_id']} ({fp['machine']['isa_level']})"
    spec = PROBLEMS[problem_key]
    problem = multiobjective(spec["of"], spec["objectives"], spec["directions"])
    for agent in agents:
        path = RUNS / f"{problem_key}_{agent}.json"
        record = json.loads(path.read_text()) if path.exists() else {
            "problem": problem.name, "objectives": problem.objectives,
            "directions": problem.directions, "reference": problem.reference, "runs": []}
        for seed in seeds:
            t, cpu = time.perf_counter(), time.process_time()
            r = pareto_search(agent, problem, Budget(budget, seconds), seed, **hp.get(agent, {}))
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            info = r.info
            record["runs"] = [x for x in record["runs"] if not (
                x["agent"] == agent and x["seed"] == seed and x["budget"] == budget)]
            record["runs"].append({
                "agent": agent, "seed": seed, "budget": budget, "wall_s": wall, "cpu_s": cpu,
                "cap_s": seconds, "n_evaluations": r.n_evaluations, "machine": machine,
                "hyperparameters": hp.get(agent, {}),
                "curve": np.round(info["hypervolume_curve"], 6).tolist(),
                "front": [[f[o] for o in problem.objectives] for f in info["pareto_front"]],
                "n_feasible": int(sum(m.get("pareto_feasible", 0) for m in r.metrics))})
            print(f"{problem_key} {agent:8s} seed {seed} budget {budget}: HV "
                  f"{info['hypervolume_normalized']:.4f}, front {len(info['pareto_front'])}, "
                  f"{r.n_evaluations} evaluations, {wall:.1f} s ({cpu:.1f} s CPU)", flush=True)
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


def _label(agent: str) -> str:
    return f"{agent} (weighted sum)" if agent in WEIGHTED_SUM else agent


def _cell(runs: list[dict], mark: int) -> str:
    """HV after ``mark`` evaluations: mean ± 95 % interval over the runs made for that budget
    (else over longer runs, whose curve passes it; the longest run of each seed); runs stopped by their time cap before
    ``mark`` count at the cap, marked † with their mean evaluations."""
    from mlsysgym.experiments.pareto_report import mean_interval

    pick = [r for r in runs if r["budget"] == mark] or [r for r in runs if r["budget"] > mark]
    pick = list({r["seed"]: r for r in sorted(pick, key=lambda r: r["budget"])}.values())
    if not pick:
        return "—"
    vals = np.array([r["curve"][min(mark, len(r["curve"])) - 1] for r in pick])
    mean, half = mean_interval(vals[:, None])
    short = [r for r in pick if len(r["curve"]) < mark]
    evals = np.mean([len(r["curve"]) for r in short]) if short else 0
    capped = any(r.get("cap_s") for r in short)
    note = f" † at {evals:.0f} evals" if capped else f" ({evals:.0f} evals)" if short else ""
    return f"{mean[0]:.4f} ± {half[0]:.4f}{note}"


def _section(key: str, rec: dict) -> list[str]:
    """One problem's table and pictures."""
    from mlsysgym.experiments.pareto_report import (
        fronts_figure,
        hv_curves_figure,
        parallel_figure,
    )

    refs = ", ".join(f"{o} {'≤' if d == 'minimize' else '≥'} {r:.5g}"
                     for o, d, r in zip(rec["objectives"], rec["directions"], rec["reference"]))
    ex = RUNS / f"{key}.exhaustive.json"
    best = ""
    if ex.exists():
        e = json.loads(ex.read_text())
        best = (f" Exhaustive search ({e['designs']:,} designs, {e['wall_s']:.0f} s): the "
                f"true front has {e['front_size']} designs, hypervolume "
                f"**{e['hypervolume_normalized']:.4f}** (the most any agent can reach).")
    machines = Counter(r["machine"] for r in rec["runs"])
    where = "; ".join(f"{m}: {n} runs" for m, n in machines.most_common())
    about = (f"Problem `{rec['problem']}`. Reference point: {refs}.{best} "
             f"Machines (target_id, ISA level): {where}.")
    lines = [f"## {PROBLEMS[key]['title']}", "", about, "",
             "| agent | seeds | " + " | ".join(f"HV @ {m}" for m in MARKS)
             + " | distinct front points | evaluations to reach the final HV (median)"
             " | wall s per run (CPU s, where recorded) |", "|---" * (len(MARKS) + 5) + "|"]
    agents = sorted({r["agent"] for r in rec["runs"]})
    curves, fronts = {}, {}
    for agent in agents:
        runs = [r for r in rec["runs"] if r["agent"] == agent]
        top = max(r["budget"] for r in runs)
        longest = sorted((r for r in runs if r["budget"] == top), key=lambda r: r["seed"])
        reach = np.median([int(np.argmax(np.array(c) >= c[-1] * (1 - 1e-9))) + 1
                           for c in (r["curve"] for r in longest)])
        points = np.mean([len(np.unique(np.array(r["front"]), axis=0)) for r in longest])
        cap = {r["cap_s"] for r in longest if r.get("cap_s")}
        cpu = [r["cpu_s"] for r in longest if "cpu_s" in r]
        wall = f"{np.mean([r['wall_s'] for r in longest]):.1f}" + (
            f" ({np.mean(cpu):.1f} CPU)" if len(cpu) == len(longest) else "") + (
            f" (cap {max(cap):g} s)" if cap else "")
        lines.append(f"| {_label(agent)} | {len(longest)} | "
                     + " | ".join(_cell(runs, m) for m in MARKS)
                     + f" | {points:.0f} | {reach:.0f} | {wall} |")
        curves[_label(agent)] = [np.array(r["curve"]) for r in longest]
        fronts[_label(agent)] = np.array(longest[0]["front"]).reshape(-1, len(rec["objectives"]))
    for agent in agents:
        hps = {json.dumps(r["hyperparameters"], sort_keys=True) for r in rec["runs"]
               if r["agent"] == agent and r["hyperparameters"]}
        if hps:
            lines.append(f"\n{agent} ran with {', '.join(sorted(hps))} (otherwise defaults).")
    FIGURES.mkdir(parents=True, exist_ok=True)
    rel = "../../experiments/results/pareto"
    title = PROBLEMS[key]["title"]
    hv_curves_figure(curves, FIGURES / f"{key}_hv.png", f"{title}: largest budget per agent")
    fronts_figure(fronts, rec["objectives"], rec["reference"], FIGURES / f"{key}_fronts.png",
                  f"{title}: seed 0, largest budget")
    lines += ["", f"![hypervolume]({rel}/{key}_hv.png)", f"![fronts]({rel}/{key}_fronts.png)"]
    if len(rec["objectives"]) >= 3:
        parallel_figure(fronts, rec["objectives"], rec["reference"],
                        FIGURES / f"{key}_parallel.png", f"{title}: seed 0")
        lines.append(f"![parallel coordinates]({rel}/{key}_parallel.png)")
    return lines + [""]


def report() -> None:
    """pareto.md (benchmarks/results) and the PNGs (experiments/results/pareto) from the
    saved records; each section names the machines its runs were made on."""
    lines = ["# Multi-objective search: hypervolume and Pareto fronts", "",
             ("Hypervolume is normalized: the objectives are divided by the reference point "
              "(so the reference is 1 in every objective) and the value is the fraction of the "
              "box [0, reference] that the feasible designs found dominate (exact). "
              "Mean ± 95 % t-interval over seeds after that many evaluations (from the "
              "hypervolume-after-every-evaluation curve of each run; grid runs are made per "
              "budget, since the grid depends on it, and end when the grid is done: their "
              "evaluations in brackets). † = runs stopped by their wall-clock cap "
              "before that many evaluations: the value is the one at the cap. "
              "\"(weighted sum)\": a single-objective agent on the weighted sum of the "
              "normalized objectives (equal weights); random and grid ignore the objectives."),
             ""]
    for key in PROBLEMS:
        files = sorted(RUNS.glob(f"{key}_*.json"))
        if not files:
            continue
        recs = [json.loads(f.read_text()) for f in files]
        rec = {**recs[0], "runs": [r for x in recs for r in x["runs"]]}
        lines += _section(key, rec)
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pareto.md").write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="accel")
    ap.add_argument("--agents", nargs="+", default=["random", "nsga2", "ga", "tpe"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=None,
                    help="wall-clock cap per run (the BoTorch agents): results are at the cap")
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
        run(args.problem, args.agents, args.seeds, args.budget, args.hp, args.seconds)


if __name__ == "__main__":
    main()
