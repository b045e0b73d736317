"""The learned mallocGame policy zero-shot on the test split (issue #21).

Every instance of ``mlsysgym.ir.workloads.malloc_instances("test")`` (model families absent from
training) is solved by

* ``xla_greedy`` — the XLA-style heuristic;
* ``learned`` — the shipped agent (``agents/learned_malloc.py``: local search, then LNS whose
  neighbourhoods the graph network picks), ``--seconds`` (default 10, network inference
  included), ``--seeds`` seeds;
* ``learned_no_network`` — the same search without the network (the ablation), same budget
  and seeds;
* ``cpsat`` at 10 s (seed 0), then at ``--long`` s (default 60) on the instances it did not
  prove optimal at 10 s (at most ``--long-max``, largest first).

Claims are reported for the headroom test set (``malloc_instances("test", headroom=True)``,
19 instances: the primary result) and for all 24; with ``--fresh [NAME]``, for every instance of
a fresh test set (``workloads.TEST_CAPACITY_SETS[NAME]``, default ``fresh``: the test workloads
at capacities declared before any agent ran on them; write it with ``--out`` beside the
others); with ``--large`` too, the large test graphs (``workloads.LARGE_TEST_WORKLOADS``, at
least 1,000 buffers) at that set's capacities.
Reports (``benchmarks/results/learned_malloc.md`` + ``.png``; raw rows in ``.jsonl``): the win
rate of ``learned`` over the heuristic, the mean difference to the ablation with a 95 % bootstrap
interval (instances resampled; each instance's difference is its mean over seeds), how often it
beats CP-SAT's long run where CP-SAT proves nothing, the policy's training cost (from its card)
and inference time. Resumable: rows already in the ``.jsonl`` are not rerun.

Run: nice -n 19 .venv/bin/python benchmarks/bench_learned_malloc.py [--seconds 10] [--seeds 3]
[--long 60] [--long-max 8] [--workers 2] [--limit N]

``--validation``: instead, the check of a search change on the validation split only (its
workloads, or ``--workloads``: validation workloads or mixes of them run concurrently such as
``gpt2+gpt2``, at 0.25 / 0.5 / 1, or at ``--capacities``; choose those of the test sets'
range) — both
agents interleaved per instance and seed, ``--seconds`` each, ``--seeds`` seeds (with
``--off NAME`` also both with that option off, all four interleaved); the rows and the
difference learned − ablation (fraction of the all-slow time saved), and each agent against
its rows with the option off, or in ``--baseline`` (a JSON written the same way; rows with
``restarts`` true skipped), learned − ablation also per workload family, and whether the
change clears the bar for a test set (``validation_bar``), in
``learned_malloc_validation_<--tag>_<seconds>s.json`` (with ``--after NAME``:
``learned_malloc_NAME_<--tag>_<seconds>s.json``) beside
``--out`` (default ``benchmarks/results/``). ``--split train`` runs the same check on the
training split instead: a diagnostic of what the network adds on the families it was trained
on. ``--after NAME`` runs it on the test instances of the fresh set NAME once that set's
evaluation has run, against its rows: what an option (e.g. a rule without learning chosen on
training and validation) did on families it never saw, and the evaluation's claims at this
``--seconds`` (``claims_after``: e.g. at 5 s, what a CPU half as fast would see). It is
reported, never used to choose a design, and computes no bar.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

RECORDED = Path(__file__).parent / "results"  # the evaluations' rows (--after reads them)
RESULTS = Path("benchmarks/results/learned_malloc.md")  # default --out, under the working directory
SHORT_CPSAT_S = 10.0


def run_one(instance: str, agent: str, seed: int, seconds: float,
            off: str | None = None, options: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """One agent run on one instance: its best time, wall time and what it reports (``off``:
    a boolean option of ``learned``, and of the ablation if it has it, set to false;
    ``options``: (name, value) pairs for ``learned``, and for the ablation those it has)."""
    import inspect

    from mlsysgym.agents import Budget, search
    from mlsysgym.agents.learned_malloc import no_network_malloc
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    problem = make_problem(workloads.MallocInstanceSpec.from_name(instance).problem_spec())
    hp: dict[str, Any] = {}
    budget = Budget(seconds=seconds + 30)
    if agent in ("learned", "learned_no_network"):
        hp["time_limit_s"] = seconds
        own = inspect.signature(no_network_malloc).parameters
        hp.update((k, v) for k, v in options if agent == "learned" or k in own)
        # after the options: the other arm of a --set NAME=true run (the ablation's, if it has it)
        if off and (agent == "learned" or off in own):
            hp[off] = False
    elif agent == "cpsat":  # the solver's limit; the budget leaves room to build and replay
        hp["time_limit_s"] = seconds
        budget = Budget(seconds=(seconds + 60.0) / 0.9)
    t0 = time.perf_counter()
    res = search(agent, problem, budget, seed=seed, **hp)
    wall = time.perf_counter() - t0
    best = res.metrics[res.best_index] if res.n_evaluations else {}
    return {"instance": instance, "agent": agent, "seed": seed, "seconds": seconds,
            "time_us": float(best.get("time_us", np.nan)),
            "all_slow_us": float(problem.instance.all_slow_time_us),
            "buffers": int(problem.instance.n_buffers), "wall_s": wall, "status": res.status,
            "inference_s": res.info.get("inference_s"), "moves": res.info.get("moves"),
            "passes": res.info.get("passes"), "repairs": res.info.get("repairs"),
            "network_repairs": res.info.get("network_repairs"),
            "class_improvements": res.info.get("class_improvements"),
            "jump_improvements": res.info.get("jump_improvements"),
            "whole": res.info.get("whole"), "off": off,
            "options": dict(options), "load": os.getloadavg()[0]}


def _key(row: dict[str, Any]) -> tuple:
    return row["instance"], row["agent"], row["seed"], row["seconds"]


def run_jobs(jobs: list[tuple], rows_path: Path, workers: int) -> list[dict[str, Any]]:
    """Run the jobs not yet in ``rows_path`` (one JSON row per line, appended as they finish)."""
    done = [json.loads(ln) for ln in rows_path.read_text().splitlines()] if rows_path.exists() else []
    have = {_key(r) for r in done}
    todo = [j for j in jobs if j not in have]
    with ProcessPoolExecutor(max_workers=workers) as pool, rows_path.open("a") as out:
        futs = {pool.submit(run_one, *j): j for j in todo}
        for i, f in enumerate(as_completed(futs)):
            row = f.result()
            out.write(json.dumps(row) + "\n")
            out.flush()
            done.append(row)
            print(f"[{i + 1}/{len(todo)}] {row['instance']} {row['agent']} seed {row['seed']} "
                  f"{row['seconds']:g}s: {row['time_us']:.2f} us ({row['wall_s']:.1f} s wall)",
                  file=sys.stderr, flush=True)
    return done


def instance_names(works: list[Any], caps: tuple[float, ...]) -> list[str]:
    """The mallocGame instances of the workloads ``works`` (WorkloadSpecs) at ``caps``, workload
    by workload (as ``workloads.malloc_instances`` orders a split)."""
    from mlsysgym.ir.workloads import MallocInstanceSpec

    return [MallocInstanceSpec(w, c).name for w in works for c in caps]


def after_name(args: argparse.Namespace) -> str | None:
    """The name of the evaluation ``--after`` follows (``fresh12``, ``fresh12_large``), or None."""
    return args.after and args.after + ("_large" if args.large else "")


def validate(args: argparse.Namespace) -> dict[str, Any]:
    """Both agents on the validation split (interleaved per instance and seed): the rows, the
    difference learned − ablation and, with ``args.baseline``, each agent against its rows
    there (:func:`compare_runs`: of the fraction of the all-slow time saved), and where they
    ran (the target fingerprint)."""
    from mlsysgym.core.target import fingerprint
    from mlsysgym.ir import workloads

    caps = tuple(args.capacities or workloads.MALLOC_CAPACITIES)
    works = ([workloads.workload(w) for w in args.workloads] if args.workloads
             else workloads.split(args.split))
    if any(w.split != args.split for w in works):
        raise SystemExit(f"--validation: --workloads must be {args.split} workloads (or mixes of them)")
    if args.after:  # a diagnostic on a test set whose evaluation has run, against its rows
        if args.workloads or args.split != "validation" or args.baseline or args.capacities:
            raise SystemExit("--after NAME: the set's test instances and rows; no --workloads, "
                             "--split, --capacities or --baseline")
        evaluated = RECORDED / f"learned_malloc_{after_name(args)}.jsonl"
        if not evaluated.exists():
            raise SystemExit(f"--after {args.after}: its evaluation has not run ({evaluated} missing)")
        caps = workloads.TEST_CAPACITY_SETS[args.after]
        works = ([workloads.workload(w) for w in workloads.LARGE_TEST_WORKLOADS] if args.large
                 else workloads.split("test"))
    elif args.large:
        raise SystemExit("--validation --large needs --after NAME")
    names = instance_names(works, caps)
    agents = ("learned", "learned_no_network")
    offs = (None, args.off) if args.off else (None,)
    jobs = [(n, a, s, args.seconds, o, tuple(args.set)) for s in range(args.seeds)
            for n in names for o in offs for a in agents]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for row in pool.map(run_one, *zip(*jobs)):
            rows.append(row)
            print(f"{row['instance']} {row['agent']} seed {row['seed']} off {row['off']}: "
                  f"{row['time_us']:.2f} us, {row['moves']} moves", file=sys.stderr, flush=True)

    def saved(rs: list[dict[str, Any]], off: bool = False) -> dict[tuple, float]:
        return {(r["instance"], r["seed"], r["agent"]): 1.0 - r["time_us"] / r["all_slow_us"]
                for r in rs if not r.get("restarts") and bool(r.get("off")) == off}

    new = saved(rows)
    out: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "fingerprint": fingerprint(),
        "metric": "fraction of the all-slow time saved (differences in points = 100 ×)",
        "seconds": args.seconds, "capacities": list(caps), "seeds": list(range(args.seeds)),
        "workers": args.workers,
        "learned-ablation": compare_runs(new, new, *agents),
        "learned-ablation by family": by_family(new, *agents)}
    if args.off or args.baseline or args.after:
        base = (rows if args.off else
                [json.loads(ln) for ln in evaluated.read_text().splitlines()] if args.after else
                json.loads(args.baseline.read_text())["rows"])
        old, moved = saved(base, bool(args.off)), redefined(rows, base)
        new = {k: v for k, v in new.items() if k[0] not in moved}
        out["baseline"] = (f"{args.off} off" if args.off else
                           str(evaluated.name if args.after else args.baseline))
        out["baseline instances redefined (left out)"] = sorted(moved)
        out["baseline learned-ablation"] = compare_runs(old, old, *agents)
        out["baseline learned-ablation by family"] = by_family(old, *agents)
        for a in agents:
            out[f"{a}: this - baseline"] = compare_runs(new, old, a, a)
    if args.after:  # the evaluation's claims at this budget (a slower CPU's 10 s, say)
        out["claims at this budget"] = claims_after(
            [json.loads(ln) for ln in evaluated.read_text().splitlines()], rows, args.seconds)
    else:  # the bar is for validation; a test set chooses nothing
        out["bar"] = validation_bar(out, agents[0])
    moves = {f"{a}, {o} off" if o else a: [r["moves"] for r in rows if r["agent"] == a
                                           and r["off"] == o] for a in agents for o in offs}
    out.update(moves_median={a: float(np.median(v)) for a, v in moves.items()},
               load=[min(r["load"] for r in rows), max(r["load"] for r in rows)], rows=rows)
    return out


def claims_after(evaluated: list[dict[str, Any]], rows: list[dict[str, Any]],
                 seconds: float) -> dict[str, Any]:
    """:func:`summarize` of both agents' ``rows`` at ``seconds`` (``--off`` rows left out)
    against the heuristic and CP-SAT rows of the evaluation they follow."""
    ref = [r for r in evaluated if r["agent"] in ("xla_greedy", "cpsat")]
    return summarize(_table(ref + [r for r in rows if not r.get("off")], seconds), {})


def redefined(rows: list[dict[str, Any]], base: list[dict[str, Any]]) -> set[str]:
    """The instances whose all-slow time differs between ``rows`` and a baseline's ``base``
    (their definition changed in between, e.g. by a cost-model fix): not comparable."""
    slow = {r["instance"]: r["all_slow_us"] for r in base}
    return {r["instance"] for r in rows
            if r["instance"] in slow and not np.isclose(r["all_slow_us"], slow[r["instance"]])}


def validation_bar(out: dict[str, Any], learned: str = "learned") -> dict[str, bool]:
    """The bar a search change must clear on validation before a test set is used (set from
    the eighteenth design on): learned − ablation with its 95 % interval above zero, at least
    zero on average in every workload family, and (with a baseline) ``learned`` not worse on
    average than in the baseline."""
    bar = {"interval_above_zero": out["learned-ablation"]["interval_points"][0] > 0,
           "every_family_at_least_zero": all(
               f["mean_points"] >= 0 for f in out["learned-ablation by family"].values())}
    if f"{learned}: this - baseline" in out:
        bar["learned_not_worse_than_baseline"] = out[f"{learned}: this - baseline"]["mean_points"] >= 0
    return {**bar, "passed": all(bar.values())}


def by_family(x: dict[tuple, float], ax: str, ay: str) -> dict[str, dict[str, Any]]:
    """:func:`compare_runs` of ``ax`` against ``ay`` within ``x`` per workload family (a mix:
    its workloads' families joined by +): what a change does to each kind of graph, which a
    mean over a split of GPT decoders and vision CNNs can hide."""
    from mlsysgym.ir.workloads import MallocInstanceSpec

    family = {k[0]: MallocInstanceSpec.from_name(k[0]).workload.family for k in x}
    return {f: compare_runs({k: v for k, v in x.items() if family[k[0]] == f}, x, ax, ay)
            for f in sorted(set(family.values()))}


def compare_runs(x: dict[tuple, float], y: dict[tuple, float], ax: str,
                 ay: str) -> dict[str, Any]:
    """Agent ``ax``'s fraction saved in ``x`` minus agent ``ay``'s in ``y`` (both keyed by
    instance, seed, agent) on each (instance, seed) of ``x``: the mean in points, wins and
    losses over runs, and over instances (each its mean over seeds) the 95 % bootstrap
    interval of the mean and how many are better or worse."""
    keys = sorted({k[:2] for k in x})
    d = np.array([x[(*k, ax)] - y[(*k, ay)] for k in keys])
    _, g = np.unique([k[0] for k in keys], return_inverse=True)
    per = 100 * np.bincount(g, d) / np.bincount(g)  # each instance's mean over seeds
    lo, hi = bootstrap_mean(per)
    return {"mean_points": float(100 * d.mean()), "wins": int((d > 1e-12).sum()),
            "losses": int((d < -1e-12).sum()), "runs": len(d), "interval_points": [lo, hi],
            "instances_better": int((per > 1e-10).sum()),
            "instances_worse": int((per < -1e-10).sum()), "instances": len(per)}


def bootstrap_mean(x: np.ndarray, n: int = 10000, seed: int = 0,
                   groups: list[str] | None = None) -> tuple[float, float]:
    """95 % percentile interval of the mean of ``x``: its elements resampled with replacement,
    or with ``groups`` (a label per element) whole groups, the mean then over every element
    of the groups drawn (elements of one group, e.g. one workload's instances, are not
    independent)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        means = x[rng.integers(0, len(x), (n, len(x)))].mean(axis=1)
    else:
        _, g = np.unique(groups, return_inverse=True)
        sums, counts = np.bincount(g, weights=x), np.bincount(g)
        pick = rng.integers(0, len(sums), (n, len(sums)))
        means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _table(rows: list[dict[str, Any]], seconds: float) -> dict[str, dict[str, Any]]:
    """Per instance: buffers, heuristic time, per-seed times of both arms, CP-SAT runs."""
    inst: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = inst.setdefault(r["instance"], {"buffers": r["buffers"], "learned": {},
                                            "learned_no_network": {}, "inference_s": [],
                                            "walls": [], "moves": {}})
        if r["agent"] == "xla_greedy":
            d["xla"] = r["time_us"]
        elif r["agent"] in ("learned", "learned_no_network") and r["seconds"] == seconds:
            d[r["agent"]][r["seed"]] = r["time_us"]
            d["walls"].append(r["wall_s"])
            if r.get("moves") is not None:
                d["moves"].setdefault(r["agent"], []).append(r["moves"])
            if r["inference_s"] is not None:
                d["inference_s"].append(r["inference_s"])
        elif r["agent"] == "cpsat":
            tag = "cpsat_short" if r["seconds"] == SHORT_CPSAT_S else "cpsat_long"
            d[tag] = (r["time_us"], r["status"])
    return inst


def _beats(d: dict[str, Any], cpsat: str, agent: str = "learned") -> bool:
    """``agent`` (mean over seeds) faster than that CP-SAT run, or CP-SAT gave no placement."""
    t = d[cpsat][0]
    return bool(np.isnan(t) or np.mean(list(d[agent].values())) < t - 1e-9)


def summarize(inst: dict[str, dict[str, Any]], card: dict[str, Any],
              subset: set[str] | frozenset[str] | None = None) -> dict[str, Any]:
    """The numbers of the report's claims (over ``subset`` of the instances if given)."""
    names = [n for n, d in inst.items() if d["learned"] and d["learned_no_network"] and "xla" in d
             and (subset is None or n in subset)]
    lt = np.array([np.mean(list(inst[n]["learned"].values())) for n in names])
    at = np.array([np.mean(list(inst[n]["learned_no_network"].values())) for n in names])
    xt = np.array([inst[n]["xla"] for n in names])
    seeds_l = [(inst[n]["learned"][s], inst[n]["xla"]) for n in names for s in inst[n]["learned"]]
    diff = 100.0 * (at - lt) / at  # % time the network saves over the ablation (+ = better)
    lo, hi = bootstrap_mean(diff) if len(diff) else (np.nan, np.nan)
    by_workload = (bootstrap_mean(diff, groups=[n.rsplit(":", 1)[0] for n in names])
                   if len(diff) else (np.nan, np.nan))
    unproved = [n for n in names if "cpsat_long" in inst[n] and inst[n]["cpsat_long"][1] != "optimal"]
    beats_long = [n for n in unproved if _beats(inst[n], "cpsat_long")]
    ablation_long = [n for n in unproved if _beats(inst[n], "cpsat_long", "learned_no_network")]
    short = [n for n in names if "cpsat_short" in inst[n]]
    moves = {a: [v for n in names for v in inst[n]["moves"].get(a, [])]
             for a in ("learned", "learned_no_network")}
    inf = [v for n in names for v in inst[n]["inference_s"]]
    walls = [v for n in names for v in inst[n]["walls"]]
    return {
        "instances": len(names),
        "beats_xla": int((lt < xt * (1 - 1e-12)).sum()),
        "beats_xla_runs": sum(t < x * (1 - 1e-12) for t, x in seeds_l), "runs": len(seeds_l),
        "ablation_mean_pct": float(diff.mean()) if len(diff) else np.nan, "ablation_ci": (lo, hi),
        "ablation_ci_workloads": by_workload,
        "ablation_wins": int((diff > 1e-9).sum()), "ablation_losses": int((diff < -1e-9).sum()),
        "cpsat_short_proved": sum(inst[n]["cpsat_short"][1] == "optimal" for n in short),
        "cpsat_short_n": len(short),
        "beats_cpsat_short": sum(_beats(inst[n], "cpsat_short") for n in short),
        "long_n": sum("cpsat_long" in inst[n] for n in names), "unproved_long": len(unproved),
        "beats_long": len(beats_long), "ablation_beats_long": len(ablation_long),
        "inference_median_s": float(np.median(inf)) if inf else np.nan,
        "inference_max_s": float(np.max(inf)) if inf else np.nan,
        "cpu_hours": card.get("cpu_hours"),
        "moves_median": {a: float(np.median(v)) if v else np.nan for a, v in moves.items()},
        "wall_median_s": float(np.median(walls)) if walls else np.nan,
        "wall_max_s": float(np.max(walls)) if walls else np.nan,
    }


def _cell(v: tuple[float, str] | None, xla: float) -> str:
    if v is None:
        return "—"
    if np.isnan(v[0]):
        return "no placement in time"
    return f"{100 * (xla - v[0]) / xla:+.3f} % ({v[1] or '?'})"


def _claims(s: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The claim lines of one instance set."""
    lo, hi = s["ablation_ci"]
    wlo, whi = s["ablation_ci_workloads"]
    return [
        (f"- vs the XLA-style heuristic: `learned` at ≤ {args.seconds:g} s is faster on "
        f"{s['beats_xla']}/{s['instances']} instances ({s['beats_xla_runs']}/{s['runs']} runs); "
        "issue #21 asks for ≥ 80 %."),
        (f"- vs the same search without the network: mean time saved {s['ablation_mean_pct']:+.4f} % "
        f"(95 % bootstrap interval over instances [{lo:+.4f}, {hi:+.4f}] %, resampling whole "
        f"workloads [{wlo:+.4f}, {whi:+.4f}] %; better on "
        f"{s['ablation_wins']}, worse on {s['ablation_losses']}, tied on "
        f"{s['instances'] - s['ablation_wins'] - s['ablation_losses']})."),
        (f"- vs CP-SAT 10 s: proved optimal on {s['cpsat_short_proved']}/{s['cpsat_short_n']}; "
        f"`learned` faster than its 10-s result on {s['beats_cpsat_short']}/{s['cpsat_short_n']}."),
        (f"- vs CP-SAT {args.long:g} s (run on {s['long_n']} instances): not proved on "
        f"{s['unproved_long']}; `learned` at ≤ {args.seconds:g} s faster than CP-SAT's "
        f"{args.long:g}-s result on {s['beats_long']}/{s['unproved_long']} of those (the "
        f"ablation on {s['ablation_beats_long']}/{s['unproved_long']}).")]


def render(inst: dict[str, dict[str, Any]], sets: list[tuple[str, dict[str, Any]]],
           card: dict[str, Any], args: argparse.Namespace, load: str) -> str:
    from mlsysgym.ir.workloads import (
        HEADROOM_MALLOC,
        MALLOC_CAPACITIES,
        TEST_CAPACITY_SETS,
        MallocInstanceSpec,
    )

    caps = TEST_CAPACITY_SETS[args.fresh] if args.fresh else MALLOC_CAPACITIES
    families = sorted({f for n in inst for f in
                       MallocInstanceSpec.from_name(n).workload.family.split("+")})
    graphs = " of the large test graphs (`workloads.LARGE_TEST_WORKLOADS`)" if args.large else ""
    tr = card.get("training", {})
    lines = [
        "# Learned mallocGame policy, zero-shot on the test split (issue #21)", "",
        (f"Test split (splits version {tr.get('splits_version')}, digest `{tr.get('splits_digest')}`): "
        f"{len(inst)} instances{graphs} (families {', '.join(families)}; fast memory "
        f"{' / '.join(f'{c:g}' for c in caps)} × each workload's activation working set), none of "
        "whose families either policy saw in training (both trained on the train split only; "
        f"the LNS policy on {len(tr.get('instances', []))} instances). `learned` and "
        "`learned_no_network` "
        f"(the same search without the network) run {args.seconds:g} s each (wall, inference "
        f"included), seeds {list(range(args.seeds))}; CP-SAT 1 worker at 10 s (seed 0) and at "
        f"{args.long:g} s on the instances 10 s did not prove (at most {args.long_max}, largest "
        f"first). Load average (1 min) at the end of the runs: {load} (2 cores shared with other "
        "jobs: wall-clock budgets bought less CPU than on an idle machine, alike for every "
        f"agent; `learned` and its ablation run side by side on the same instance and seed). "
        f"{args.reuse_note}"), "",
        (f"Primary set: every instance, as declared (`workloads.TEST_CAPACITY_SETS[{args.fresh!r}]`"
         f"{' and `workloads.LARGE_TEST_WORKLOADS`' if args.large else ''}) "
         "before any agent ran on them." if args.fresh else
         "Primary set: the 19 test instances with headroom (`malloc_instances(\"test\", "
         "headroom=True)`, chosen from heuristic / CP-SAT / local-search measurements, marked "
         "* below); all 24 beside it."), "",
        ("Columns: % of the heuristic's time saved (+ = faster than `xla_greedy`); learned and "
        "ablation are means over seeds; CP-SAT with its status."), "",
        ("| instance | buffers | xla_greedy µs | learned | no network | CP-SAT 10 s | "
        f"CP-SAT {args.long:g} s |"), "|---|---|---|---|---|---|---|"]
    for n, d in sorted(inst.items(), key=lambda kv: kv[1]["buffers"]):
        if "xla" not in d or not d["learned"] or not d["learned_no_network"]:
            continue
        x = d["xla"]
        lm = np.mean(list(d["learned"].values()))
        am = np.mean(list(d["learned_no_network"].values()))
        star = " *" if n in HEADROOM_MALLOC else ""
        lines.append(f"| {n}{star} | {d['buffers']} | {x:.2f} | {100 * (x - lm) / x:+.3f} % | "
                     f"{100 * (x - am) / x:+.3f} % | {_cell(d.get('cpsat_short'), x)} | "
                     f"{_cell(d.get('cpsat_long'), x)} |")
    lines += ["", "## Claims (test split only, zero-shot)", ""]
    for title, t in sets:
        lines += [f"### {title}", ""] + _claims(t, args) + [""]
    s = sets[0][1]
    lines += [
        (f"- Training cost: {s['cpu_hours']:.3f} CPU hours (labels, training and validation; the "
        "cards `agents/policies/malloc_lns_gnn.json` and `malloc_jump_gnn.json`). Inference "
        f"(graph features + the ONNX Runtime calls): median {s['inference_median_s']:.3f} s, "
        f"max {s['inference_max_s']:.3f} s per instance. Wall time per run of `learned` / the ablation: median "
        f"{s['wall_median_s']:.2f} s, max {s['wall_max_s']:.2f} s. Moves tried per run (median): "
        f"learned {s['moves_median']['learned']:g}, ablation "
        f"{s['moves_median']['learned_no_network']:g}."), ""]
    return "\n".join(lines)


def plot(inst: dict[str, dict[str, Any]], path: Path, long_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, d in sorted(inst.items(), key=lambda kv: kv[1]["buffers"])
             if "xla" in d and d["learned"] and d["learned_no_network"]]
    arms = [("learned", "learned"), ("learned_no_network", "no network"),
            ("cpsat_short", "CP-SAT 10 s"), ("cpsat_long", f"CP-SAT {long_s:g} s")]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    w = 0.2
    for k, (arm, label) in enumerate(arms):
        vals = []
        for n in names:
            d, x = inst[n], inst[n]["xla"]
            v = d.get(arm)
            t = np.mean(list(v.values())) if isinstance(v, dict) and v else \
                (v[0] if isinstance(v, tuple) else np.nan)
            vals.append(100 * (x - t) / x)
        ax.bar(np.arange(len(names)) + (k - 1.5) * w, vals, w, label=label)
    ax.set_xticks(np.arange(len(names)), names, rotation=70, fontsize=7)
    ax.set_ylabel("% time saved vs xla_greedy")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title("mallocGame test split, zero-shot")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE as JSON (a number, true / false) or else a string."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _args(argv: list[str] | None) -> argparse.Namespace:
    from mlsysgym.ir import workloads

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--long", type=float, default=60.0, help="CP-SAT's long run (s)")
    ap.add_argument("--long-max", type=int, default=8, help="at most this many long CP-SAT runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N test instances only")
    ap.add_argument("--fresh", nargs="?", const="fresh", default=None,
                    choices=sorted(workloads.TEST_CAPACITY_SETS), metavar="NAME",
                    help="a fresh test set (workloads.TEST_CAPACITY_SETS; default fresh), all primary")
    ap.add_argument("--large", action="store_true",
                    help="with --fresh (or --validation --after): the large test graphs "
                         "(workloads.LARGE_TEST_WORKLOADS) at that set's capacities instead of "
                         "the test workloads")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--reuse-note", default="", help="what the report says of reused rows")
    ap.add_argument("--load-note", default="not recorded in the rows",
                    help="what to say of the load when the rows do not record it")
    ap.add_argument("--validation", action="store_true",
                    help="the validation check of a search change (module docstring) instead")
    ap.add_argument("--tag", default="check", help="--validation: the output file's tag")
    ap.add_argument("--capacities", type=float, nargs="+", default=None,
                    help="--validation: fast-memory fractions (default 0.25 0.5 1)")
    ap.add_argument("--split", choices=("validation", "train"), default="validation",
                    help="--validation: the split to run on (train: how the network does on the "
                         "families it was trained on, a diagnostic; never test)")
    ap.add_argument("--workloads", nargs="+", default=None,
                    help="--validation: these validation workloads (or 'a+b' mixes of them) "
                         "instead of the split's")
    ap.add_argument("--off", default=None,
                    help="--validation: also run both agents with this boolean option off")
    ap.add_argument("--set", type=_option, action="append", default=[], metavar="NAME=VALUE",
                    help="--validation: an option of learned (and of the ablation if it has it)")
    ap.add_argument("--after", default=None, choices=sorted(workloads.TEST_CAPACITY_SETS),
                    metavar="NAME",
                    help="--validation: on the test instances of fresh set NAME instead, against "
                         "the rows of its evaluation, which must have run (a diagnostic after "
                         "it, e.g. of a rule without learning; never to choose a design)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="--validation: a JSON of an earlier --validation run to compare with")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from mlsysgym.agents.learned_malloc import JUMP_POLICY_PATH, LNS_POLICY_PATH, load_policy
    from mlsysgym.experiments.report import stamp_markdown, write_provenance
    from mlsysgym.ir import workloads

    args = _args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.validation:
        out = args.out.with_name(f"learned_malloc_{after_name(args) or 'validation'}_{args.tag}_"
                                 f"{args.seconds:g}s.json")
        out.write_text(json.dumps(validate(args), indent=1) + "\n")
        print(out.read_text()[:1500])
        return
    _, card = load_policy(LNS_POLICY_PATH)
    _, jump_card = load_policy(JUMP_POLICY_PATH)
    card = {**card, "cpu_hours": card["cpu_hours"] + jump_card["cpu_hours"]}  # both policies
    caps = workloads.TEST_CAPACITY_SETS[args.fresh] if args.fresh else workloads.MALLOC_CAPACITIES
    if args.large and not args.fresh:
        raise SystemExit("--large needs --fresh NAME (the capacities)")
    works = ([workloads.workload(w) for w in workloads.LARGE_TEST_WORKLOADS] if args.large
             else workloads.split("test"))
    names = instance_names(works, caps)[: args.limit]
    rows_path = args.out.with_suffix(".jsonl")
    jobs = [(n, "xla_greedy", 0, 0.0) for n in names]
    jobs += [(n, a, s, args.seconds) for s in range(args.seeds) for n in names
             for a in ("learned", "learned_no_network")]
    jobs += [(n, "cpsat", 0, SHORT_CPSAT_S) for n in names]
    rows = run_jobs(jobs, rows_path, args.workers)
    short = {r["instance"]: r for r in rows
             if r["agent"] == "cpsat" and r["seconds"] == SHORT_CPSAT_S}
    unproved = sorted((n for n in names if short[n]["status"] != "optimal"),
                      key=lambda n: -short[n]["buffers"])[: args.long_max]
    rows = run_jobs([(n, "cpsat", 0, args.long) for n in unproved], rows_path, args.workers)
    inst = _table([r for r in rows if r["instance"] in names], args.seconds)
    sets = [("Headroom set (primary)", summarize(inst, card, workloads.HEADROOM_MALLOC)),
            ("All test instances", summarize(inst, card))]
    if args.fresh:
        sets = [("All fresh test instances (primary)", summarize(inst, card))]
    loads = [r["load"] for r in rows if r.get("load") is not None]
    load = (f"{min(loads):.1f}–{max(loads):.1f} over {len(loads)} runs" if loads else
            args.load_note)
    args.out.write_text(stamp_markdown(render(inst, sets, card, args, load)))
    plot(inst, args.out.with_suffix(".png"), args.long)
    write_provenance(args.out.with_suffix(".provenance.json"),
                     summary={title: s for title, s in sets},
                     policy_card_sha256=card.get("onnx_sha256"),
                     jump_policy_card_sha256=jump_card.get("onnx_sha256"), argv=sys.argv)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
