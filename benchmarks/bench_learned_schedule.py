"""The learned list scheduler, zero-shot on the test split (issue #21): against HEFT, against
"HEFT + the same search" (the ablation), against CP-SAT, and online on job streams.

Every instance is a test-split workload (:mod:`mlsysgym.ir.workloads`, families never seen in
training or validation) on each scheduling platform. Per instance:

- ``heft``: HEFT's makespan (the reference of every percentage);
- ``prior``: the untrained network (HEFT's order, PEFT's lookahead), greedy — what the
  features alone give, no learning;
- ``greedy``: the shipped policy's greedy schedule, and its inference time (features + ONNX
  Runtime; decoding separately);
- ``learned``: ``search("learned", ..., Budget(seconds=S))`` — the policy's decodes, then local
  search, in S seconds of wall clock (policy inference included) — one run per seed;
- ``ablation``: the same agent with ``network=False`` (HEFT's scores; the same sampling and
  local search), same budget and seeds;
- ``prior_search``: the same agent with the untrained network (zero heads: HEFT's order and
  PEFT's lookahead) — what the search gets from the features without any training;
- ``cpsat``: CP-SAT with a time limit (``--cpsat-s``; ``--cpsat60`` instances also at 60 s).

Improvements are ``100 · (1 − makespan / reference)``; the 95 % intervals are percentile
bootstraps over the (instance, seed) pairs. Online streams: Poisson streams of test-split
models at loads and job mixes never used in training (the policy was trained on single
graphs only), each scheduled online (:func:`~mlsysgym.agents.learned_schedule.online_schedule`:
jobs revealed on arrival, committed then) with the policy and with HEFT on arrival.

Run: nice -n 19 .venv/bin/python benchmarks/bench_learned_schedule.py [--seeds 3] [--seconds 10]
Writes benchmarks/results/learned_schedule.md, .json and .png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents import Budget, search
from mlsysgym.agents.learned_schedule import (
    SchedulePolicy,
    decode,
    default_policy,
    heft_scores,
    instance_scale,
    online_schedule,
    op_features,
    policy_scores,
)
from mlsysgym.agents.problems import make_problem
from mlsysgym.agents.scheduling_baselines import heft
from mlsysgym.agents.scheduling_problem import BALANCED_PLATFORM
from mlsysgym.core.target import provenance
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir import workloads
from mlsysgym.simulators.multicore import load_platform, validate
from mlsysgym.simulators.streams import build_stream_instance, job_metrics, poisson_stream

RESULTS = Path("benchmarks/results/learned_schedule.md")  # default --out, under the cwd
MIXES = {"vision": ("convnext_tiny", "swin_tiny"),
         "speech+text": ("whisper_tiny_encoder", "t5_small_encoder"),
         "all four": ("convnext_tiny", "swin_tiny", "whisper_tiny_encoder", "t5_small_encoder")}
LOADS = (0.5, 1.0, 2.0, 4.0)


def bootstrap(values: Sequence[float], n: int = 10000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 % percentile bootstrap of the mean)."""
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _best_makespan(res: Any) -> float:
    return min(m["makespan_us"] for m, f in zip(res.metrics, res.failed) if not f)


def prior_policy_path(folder: Path) -> Path:
    """The untrained network (zero heads: HEFT's order, PEFT's lookahead) as an ONNX file."""
    from mlsysgym.agents.learned_schedule import build_network, export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    return export_onnx(build_network(rounds=default_policy().card["network"]["rounds"]),
                       folder / "prior.onnx")


def search_arm(problem: Any, seeds: int, seconds: float, **hp: Any) -> tuple[list[float], list[int]]:
    """Best makespan and evaluations of ``search("learned", ..., **hp)`` per seed."""
    runs = [search("learned", problem, Budget(seconds=seconds), seed=s, **hp) for s in range(seeds)]
    return [_best_makespan(r) for r in runs], [r.n_evaluations for r in runs]


def instance_row(spec: Any, seeds: int, seconds: float, cpsat_s: Sequence[float],
                 prior_path: Path | None = None) -> dict[str, Any]:
    """Every measurement of one test instance (see the module docstring)."""
    problem = make_problem(spec.problem_spec())
    inst = problem.instance
    pol = default_policy()
    row: dict[str, Any] = {"instance": spec.name, "family": spec.workload.family,
                           "n_ops": inst.n_ops, "heft_us": heft(inst).makespan_us(inst)}
    _x, pe = op_features(inst)
    row["prior_us"] = decode(inst, heft_scores(inst)[0], pe[:, :, 0] * instance_scale(inst)).makespan_us(inst)
    t0 = time.perf_counter()
    pr, b = pol.scores(inst)
    t1 = time.perf_counter()
    sched = decode(inst, pr, b * instance_scale(inst))
    t2 = time.perf_counter()
    validate(inst, sched).raise_if_invalid()
    row.update(greedy_us=sched.makespan_us(inst), inference_s=t1 - t0, decode_s=t2 - t1)
    for arm, network in (("learned", True), ("ablation", False)):
        row[f"{arm}_us"], row[f"{arm}_evaluations"] = search_arm(problem, seeds, seconds,
                                                                 network=network)
    if prior_path is not None:
        row["prior_search_us"], row["prior_search_evaluations"] = search_arm(
            problem, seeds, seconds, policy_path=str(prior_path))
    for limit in cpsat_s:
        res = search("cpsat", problem, Budget(seconds=limit + 600), seed=0, time_limit_s=limit)
        row[f"cpsat{limit:g}_us"] = _best_makespan(res)
        row[f"cpsat{limit:g}_status"] = res.status
        row[f"cpsat{limit:g}_wall_s"] = res.wall_time_s
    return row


def online_rows(arms: dict[str, Any], seeds: int, platforms: Sequence[str], n_jobs: int,
                rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Mean JCT and makespan of online schedulers (``arms``: name → scorer for
    :func:`online_schedule`) on unseen streams; with ``rows`` (the same streams, in this
    order), the arms are added to them."""
    out_rows = [] if rows is None else rows
    k = 0
    for plat_name in platforms:
        plat = load_platform(BALANCED_PLATFORM if plat_name == "balanced" else plat_name)
        for mix, models in MIXES.items():
            for load in LOADS:
                for seed in range(seeds):
                    inst = build_stream_instance(poisson_stream(list(models), n_jobs, load, plat, seed), plat)
                    if rows is None:
                        out_rows.append({"platform": plat_name, "mix": mix, "load": load,
                                         "seed": seed, "n_ops": inst.n_ops})
                    out = out_rows[k]
                    k += 1
                    for arm, scorer in arms.items():
                        jm = job_metrics(inst, online_schedule(inst, scorer))
                        out[f"{arm}_jct_us"], out[f"{arm}_makespan_us"] = jm.mean_completion_us, jm.makespan_us
    return out_rows


def _pct(ref: np.ndarray, new: np.ndarray) -> np.ndarray:
    return 100.0 * (1.0 - np.asarray(new) / np.asarray(ref))


def _ci(vals: Sequence[float]) -> str:
    m, lo, hi = bootstrap(vals)
    return f"{m:+.2f} % [{lo:+.2f}, {hi:+.2f}]"


def summary_lines(rows: Sequence[dict[str, Any]], cpsat_s: Sequence[float]) -> list[str]:
    """The headline numbers: mean improvements with bootstrap intervals over (instance, seed)."""
    heft_r = np.concatenate([[r["heft_us"]] * len(r["learned_us"]) for r in rows])
    learned = np.concatenate([r["learned_us"] for r in rows])
    ablation = np.concatenate([r["ablation_us"] for r in rows])
    greedy = np.array([r["greedy_us"] for r in rows])
    prior = np.array([r["prior_us"] for r in rows])
    heft1 = np.array([r["heft_us"] for r in rows])
    d = _pct(ablation, learned)
    lines = [
        (f"- learned ≤ budget vs HEFT: {_ci(_pct(heft_r, learned))}; better on "
        f"{int((learned < heft_r - 1e-6).sum())}/{learned.size} (instance, seed) pairs"),
        f"- HEFT + the same search (ablation) vs HEFT: {_ci(_pct(heft_r, ablation))}",
        (f"- learned vs HEFT + the same search: {_ci(d)}; learned better on "
        f"{int((d > 1e-9).sum())}, worse on {int((d < -1e-9).sum())} of {d.size} pairs"),
        (f"- policy greedy (one decode) vs HEFT: {_ci(_pct(heft1, greedy))} over instances; "
        f"the untrained prior (HEFT order + PEFT lookahead): {_ci(_pct(heft1, prior))}"),
    ]
    if all("prior_search_us" in r for r in rows):
        ps = np.concatenate([r["prior_search_us"] for r in rows])
        dp = _pct(ps, learned)
        lines.append(f"- the untrained network + the same search vs HEFT: {_ci(_pct(heft_r, ps))}; "
                     f"learned vs it: {_ci(dp)} (better on {int((dp > 1e-9).sum())}, worse on "
                     f"{int((dp < -1e-9).sum())} of {dp.size} pairs)")
    for limit in cpsat_s:
        cp = np.array([r.get(f"cpsat{limit:g}_us", np.nan) for r in rows])
        ok = np.isfinite(cp)
        if ok.any():
            lrn = np.array([min(r["learned_us"]) for r in rows])
            lines.append(f"- CP-SAT {limit:g} s vs HEFT: {_ci(_pct(heft1[ok], cp[ok]))} "
                         f"({ok.sum()} instances; learned best-of-seeds beats it on "
                         f"{int((lrn[ok] < cp[ok] - 1e-6).sum())})")
    return lines


def instance_table(rows: Sequence[dict[str, Any]], cpsat_s: Sequence[float]) -> list[str]:
    cols = ["prior", "greedy", "ablation", "prior_search", "learned",
            *[f"cpsat{c:g}" for c in cpsat_s]]
    out = ["| instance | ops | HEFT µs | " + " | ".join(cols) + " | inference s |",
           "|---|---:|---:|" + "---:|" * len(cols) + "---:|"]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(f"{c}_us")
            if v is None:
                cells.append("—")
                continue
            v = float(np.mean(v))
            status = r.get(f"{c}_status")
            cells.append(f"{100 * (1 - v / r['heft_us']):+.2f} %" + (f" ({status})" if status else ""))
        out.append(f"| {r['instance']} | {r['n_ops']} | {r['heft_us']:.0f} | " + " | ".join(cells)
                   + f" | {r['inference_s']:.3f} |")
    return out


def online_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    prior = all("prior_jct_us" in r for r in rows)
    head = "| mix | load | streams | mean JCT vs HEFT on arrival | makespan vs HEFT on arrival |"
    out = [head + (" untrained net: mean JCT vs HEFT on arrival |" if prior else ""),
           "|---|---:|---:|---:|---:|" + ("---:|" if prior else "")]
    keys = sorted({(r["mix"], r["load"]) for r in rows}, key=lambda k: (list(MIXES).index(k[0]), k[1]))
    groups = [(mix, f"{load:g}", [r for r in rows if r["mix"] == mix and r["load"] == load])
              for mix, load in keys] + [("all", "all", list(rows))]
    for mix, load, sel in groups:
        jct = _pct([r["heft_jct_us"] for r in sel], [r["learned_jct_us"] for r in sel])
        ms = _pct([r["heft_makespan_us"] for r in sel], [r["learned_makespan_us"] for r in sel])
        line = f"| {mix} | {load} | {len(sel)} | {_ci(jct)} | {_ci(ms)} |"
        if prior:
            line += f" {_ci(_pct([r['heft_jct_us'] for r in sel], [r['prior_jct_us'] for r in sel]))} |"
        out.append(line)
    return out


def plot(rows: Sequence[dict[str, Any]], cpsat_s: Sequence[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = ["prior", "greedy", "ablation", "prior_search", "learned",
            *[f"cpsat{c:g}" for c in cpsat_s]]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    w = 0.8 / len(arms)
    xs = np.arange(len(rows))
    for k, arm in enumerate(arms):
        vals = [100 * (1 - float(np.mean(r[f"{arm}_us"])) / r["heft_us"]) if f"{arm}_us" in r else np.nan
                for r in rows]
        ax.bar(xs + k * w, vals, w, label=arm)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(xs + 0.4 - w / 2, [r["instance"] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("makespan improvement vs HEFT (%)")
    ax.set_title("Learned scheduler, zero-shot on the test split")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="budget of the search arms")
    ap.add_argument("--cpsat-s", type=float, nargs="*", default=[10.0])
    ap.add_argument("--cpsat60", nargs="*", default=[], help="instances also solved for 60 s")
    ap.add_argument("--platforms", nargs="+", default=list(workloads.SCHEDULING_PLATFORMS))
    ap.add_argument("--only", nargs="*", default=None, help="instance names (default: all)")
    ap.add_argument("--setting", choices=("single", "multi"), default="single",
                    help="single graphs, or the multi-tenant mixes with headroom "
                         "(ir.workloads.HEADROOM_MULTI)")
    ap.add_argument("--online-seeds", type=int, default=5)
    ap.add_argument("--online-jobs", type=int, default=6)
    ap.add_argument("--extend", type=Path, default=None,
                    help="a saved .json of this script: add the untrained-network arms (search "
                         "and online) where missing and re-render (the rest is kept)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    pol = default_policy()
    prior = prior_policy_path(Path(tempfile.mkdtemp(prefix="learned_schedule_prior")))
    where = provenance(seeds=args.seeds, seconds=args.seconds)
    if args.extend is not None:
        saved = json.loads(args.extend.read_text())
        rows, online = saved["instances"], saved["online"]
        where = {**saved["provenance"], "prior_search_arm_added_by": where}
        for r in (r for r in rows if "prior_search_us" not in r):
            problem = make_problem(next(s for s in workloads.scheduling_instances(
                "test", tuple(args.platforms)) if s.name == r["instance"]).problem_spec())
            r["prior_search_us"], r["prior_search_evaluations"] = search_arm(
                problem, len(r["learned_us"]), args.seconds, policy_path=str(prior))
            print(f"{r['instance']}: prior + search {np.mean(r['prior_search_us']):.0f}", flush=True)
        online_rows({"prior": policy_scores(SchedulePolicy(prior))}, args.online_seeds,
                    args.platforms, args.online_jobs, online)
        args.seeds = len(rows[0]["learned_us"])
    else:
        specs = [s for s in workloads.scheduling_instances(
                     "test", tuple(args.platforms), headroom=args.setting == "multi",
                     setting=args.setting) if args.only is None or s.name in args.only]
        rows = []
        for spec in specs:
            limits = list(args.cpsat_s) + ([60.0] if spec.name in args.cpsat60 else [])
            rows.append(instance_row(spec, args.seeds, args.seconds, limits, prior))
            r = rows[-1]
            print(f"{spec.name}: heft {r['heft_us']:.0f}, greedy {r['greedy_us']:.0f}, learned "
                  f"{np.mean(r['learned_us']):.0f}, ablation {np.mean(r['ablation_us']):.0f}",
                  flush=True)
        online = online_rows({"learned": policy_scores(pol), "heft": heft_scores,
                              "prior": policy_scores(SchedulePolicy(prior))},
                             args.online_seeds, args.platforms, args.online_jobs) \
            if args.online_seeds else []
    cps = sorted({float(k[5:-3]) for r in rows for k in r if k.startswith("cpsat") and k.endswith("_us")})
    card = pol.card
    lines = [
        "# Learned scheduler, zero-shot on the test split (issue #21)", "",
        (f"Test split v{workloads.SPLITS_VERSION} (digest `{workloads.splits_digest()}`): "
        f"{len({r['instance'].split('@')[0] for r in rows})} workloads × platforms "
        f"{', '.join(args.platforms)} = {len(rows)} instances; seeds {args.seeds}; budget "
        f"{args.seconds:g} s wall clock per run (policy inference included)."),
        (f"Policy: `agents/policies/schedule_gnn.onnx`, trained on the train split "
        f"({len(card['train']['instances'])} instances, platforms {', '.join(card['platforms'])}) "
        f"in {card['cpu_hours']:.3f} CPU hours on target_id `{card['fingerprint']['target_id']}`; "
        f"validation (gpt, efficientnet) greedy vs HEFT "
        f"{card['validation']['mean_improvement_vs_heft_pct']:+.2f} % "
        f"(untrained prior {card['validation_untrained']['mean_improvement_vs_heft_pct']:+.2f} %)."),
        "", "## Summary (mean improvement in makespan, 95 % bootstrap interval)", "",
        *summary_lines(rows, cps),
        (f"- inference (features + ONNX Runtime) per instance: median "
        f"{np.median([r['inference_s'] for r in rows]):.3f} s, max "
        f"{max(r['inference_s'] for r in rows):.3f} s; one greedy decode median "
        f"{np.median([r['decode_s'] for r in rows]):.3f} s"),
        "", "## Per instance (improvement vs HEFT; learned / ablation: mean over seeds)", "",
        *instance_table(rows, cps), "", f"![per instance]({args.out.with_suffix('.png').name})",
        ""]
    if online:
        lines += [
            "## Online job streams (jobs revealed on arrival)", "",
            (f"Poisson streams of {args.online_jobs} jobs, {args.online_seeds} seeds per "
             f"(mix, load) on each platform; both schedulers commit each job's ops when it "
             f"arrives (`online_schedule`); HEFT on arrival = HEFT-FIFO. The policy never saw "
             f"a stream."), "", *online_table(online), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(stamp_markdown("\n".join(lines)))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"instances": rows, "online": online, "provenance": where},
        indent=1, default=str) + "\n")
    plot(rows, cps, args.out.with_suffix(".png"))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
