"""SoC-v0 (issue #23): evaluation time per design, the best platform per budget vs the
hand-designed reference, and whether an inner mapping search changes which platform wins.

(a) ``SocEvaluator`` on the largest workload set (``mixed``: 5 zoo graphs + an 8-job stream,
    2,075 ops) with HEFT mapping: median ms per design over batches of random designs (no cache).
(b) For each (area, peak power) budget: the ``ga`` agent through ``search`` on
    ``env:mlsysgym/SoC-v0`` (reward ``edp``, budgets as constraints) vs the reference design
    (Snapdragon 855-class, :data:`mlsysgym.simulators.soc.REFERENCE_DESIGN`).
(c) Co-design: the best distinct feasible platforms of (b) plus the reference, re-evaluated with
    ``mapping="search"`` (HEFT + local search per workload); does the EDP winner change? And a
    nested search: the same outer agent and budget with the inner search inside every
    evaluation, its best platform scored both ways.
(d) When does the inner search change the winner? ``--flips`` random platforms evaluated with
    both mappings; for every pair, whether the search reverses their HEFT order in latency and
    in EDP, by how far apart HEFT puts them.

Run: .venv/bin/python benchmarks/bench_soc.py [--evals 400] [--nested-evals 60] [--quick]
Writes benchmarks/results/soc.md and soc.provenance.json. Goal for (a): ≤ 5 ms per design.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents import search
from mlsysgym.agents.problems import make_problem
from mlsysgym.experiments.report import stamp_markdown, write_provenance
from mlsysgym.simulators.soc import REFERENCE_DESIGN, SocEvaluator, soc_space, workload_set

RESULTS = Path("benchmarks/results/soc.md")  # default --out, under the working directory
BUDGETS = ((12.0, 3.0), (20.0, 5.0), (35.0, 8.0))  # (area mm², peak W)
SHOWN = ("latency_ms", "energy_uj", "area_mm2", "power_w", "throughput_per_s")


def eval_time(wset_name: str, n_designs: int, repeats: int) -> dict[str, float]:
    """ms per design over ``repeats`` batches of ``n_designs`` random designs: ``cold`` with a
    fresh evaluator per batch (the accelerator model runs for every NPU configuration of the
    batch), ``warm`` with one evaluator (NPU op times memoized per NPU configuration, as in a
    search); and the reference design alone (warm)."""
    space = soc_space()
    wset = workload_set(wset_name)
    SocEvaluator().evaluate([REFERENCE_DESIGN], wset, cache=False)  # JIT / lowering warm-up
    rng = np.random.default_rng(0)
    batches = [[space.decode(rng.integers(0, space.nvec), "index") for _ in range(n_designs)]
               for _ in range(repeats)]
    timed: dict[str, list[float]] = {"cold": [], "warm": []}
    warm = SocEvaluator()
    for kind in ("cold", "warm"):
        for designs in batches:
            ev = SocEvaluator() if kind == "cold" else warm
            t0 = time.perf_counter()
            ev.evaluate(designs, wset, cache=False)
            timed[kind].append((time.perf_counter() - t0) / n_designs * 1e3)
    t0 = time.perf_counter()
    for _ in range(repeats):
        warm.evaluate([REFERENCE_DESIGN], wset, cache=False)
    ref_ms = (time.perf_counter() - t0) / repeats * 1e3
    return {"ops": wset.n_ops, "jobs": wset.n_jobs, "workloads": len(wset.workloads),
            "cold_ms": float(np.median(timed["cold"])), "warm_ms": float(np.median(timed["warm"])),
            "best_ms": float(np.min(timed["cold"] + timed["warm"])),
            "reference_ms": ref_ms, "load_avg_1min": os.getloadavg()[0]}


def edp(m: dict[str, float]) -> float:
    return m["energy_uj"] * m["latency_ms"]


def _fmt_design(d: dict[str, Any]) -> str:
    npu = f"NPU {d['npu_array']}² @{d['npu_ghz']} GHz/{d['npu_sram_kb']} KB" \
        if d["npu_array"] else "no NPU"
    return (f"{d['big_cores']}×big@{d['big_ghz']} + {d['little_cores']}×little@{d['little_ghz']}"
            f", {d['gpu_cores']} GPU, {d['dsps']} DSP, {npu}, {d['sram_mb']} MB SRAM, "
            f"{d['noc']} {d['noc_gbps']} GB/s, {d['dram_channels']} ch")


def best_per_budget(wset: str, evals: int, agent: str, seed: int) -> list[dict[str, Any]]:
    """Per budget: the feasible designs the search found, best EDP first, one per distinct set of
    metrics."""
    out = []
    for area, power in BUDGETS:
        problem = make_problem({"name": "env:mlsysgym/SoC-v0", "workloads": wset,
                                "area_budget_mm2": area, "power_budget_w": power})
        t0 = time.perf_counter()
        res = search(agent, problem, evals, seed=seed)
        wall = time.perf_counter() - t0
        feas = [(edp(m), i) for i, m in enumerate(res.metrics)
                if m["area_mm2"] <= area and m["power_w"] <= power]
        seen, top = set(), []
        for _, i in sorted(feas):  # distinct by metrics: e.g. a clock of 0 cores changes nothing
            key = json.dumps([res.metrics[i][m] for m in SHOWN])
            if key not in seen:
                seen.add(key)
                top.append(i)
        out.append({"area": area, "power": power, "wall_s": wall, "n": res.n_evaluations,
                    "feasible": len(feas), "top": [(res.designs[i], res.metrics[i]) for i in top[:5]]})
    return out


def codesign(wset: str, candidates: list[dict[str, Any]], inner_budget: int) -> dict[str, Any]:
    """EDP of each candidate under HEFT and under HEFT + local search; the winners."""
    heft = SocEvaluator().evaluate(candidates, wset, cache=False)
    SocEvaluator("search", mapping_budget=1).evaluate(candidates[:1], "tiny", cache=False)  # JIT
    t0 = time.perf_counter()
    srch = SocEvaluator("search", mapping_budget=inner_budget).evaluate(candidates, wset, cache=False)
    per_design_s = (time.perf_counter() - t0) / len(candidates)
    e_h = heft["energy_uj"] * heft["latency_ms"]
    e_s = srch["energy_uj"] * srch["latency_ms"]
    return {"heft_edp": e_h, "search_edp": e_s, "heft_latency": heft["latency_ms"],
            "search_latency": srch["latency_ms"], "winner_heft": int(np.argmin(e_h)),
            "winner_search": int(np.argmin(e_s)), "search_s_per_design": per_design_s}


def nested(wset: str, area: float, power: float, evals: int, agent: str, inner_budget: int,
           seed: int) -> dict[str, Any]:
    """The outer agent with the inner search in every evaluation vs with HEFT (same budget);
    both winners then scored under the inner search."""
    out = {}
    for mapping in ("heft", "search"):
        problem = make_problem({"name": "env:mlsysgym/SoC-v0", "workloads": wset,
                                "area_budget_mm2": area, "power_budget_w": power,
                                "mapping": mapping, "mapping_budget": inner_budget})
        t0 = time.perf_counter()
        res = search(agent, problem, evals, seed=seed)
        out[mapping] = {"design": res.best_design, "wall_s": time.perf_counter() - t0}
    scored = SocEvaluator("search", mapping_budget=inner_budget).evaluate(
        [out["heft"]["design"], out["search"]["design"]], wset, cache=False)
    for k, mapping in enumerate(("heft", "search")):
        out[mapping]["edp_under_search"] = float(scored["energy_uj"][k] * scored["latency_ms"][k])
    return out


GAP_BINS = (0.0, 0.005, 0.01, 0.02, 0.05, np.inf)  # relative HEFT gap between two platforms


def rank_flips(wset: str, n: int, inner_budget: int, seed: int) -> dict[str, Any]:
    """``n`` random platforms under HEFT and under HEFT + local search: per bin of the pair's
    relative HEFT gap (``GAP_BINS``), the pairs and the fraction whose order the search reverses,
    in latency and in EDP."""
    space = soc_space()
    rng = np.random.default_rng(seed)
    designs = [space.decode(rng.integers(0, space.nvec), "index") for _ in range(n)]
    heft = SocEvaluator().evaluate(designs, wset, cache=False)
    srch = SocEvaluator("search", mapping_budget=inner_budget).evaluate(designs, wset, cache=False)
    i, j = np.triu_indices(n, 1)
    out: dict[str, Any] = {"n": n, "bins": GAP_BINS}
    for name, h, s in (("latency", heft["latency_ms"], srch["latency_ms"]),
                       ("edp", heft["latency_ms"] * heft["energy_uj"],
                        srch["latency_ms"] * srch["energy_uj"])):
        gap = np.abs(h[i] - h[j]) / np.minimum(h[i], h[j])
        flip = np.sign(h[i] - h[j]) * np.sign(s[i] - s[j]) < 0
        b = np.digitize(gap, GAP_BINS[1:-1])
        out[name] = [(int(np.sum(b == k)), float(flip[b == k].mean()) if np.any(b == k) else 0.0)
                     for k in range(len(GAP_BINS) - 1)]
        out[f"{name}_gain"] = float(np.median(1 - s / h))
    return out


def render(timing: dict[str, float], ref: dict[str, float], budgets: list[dict[str, Any]],
           co: list[tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]],
           nest: dict[str, Any], flips: dict[str, Any], args: argparse.Namespace) -> str:
    lines = ["# SoC-v0 (issue #23)", "",
             f"## (a) Evaluation time per design, HEFT mapping, workload set `{args.timing_set}`",
             "", (f"{timing['workloads']} workloads, {timing['ops']} ops, {timing['jobs']} jobs; "
             f"{args.batch} random designs per batch, {args.repeats} batches, no cache; the "
             f"machine's 1-minute load average during the timing was {timing['load_avg_1min']:.1f} "
             "(other jobs shared its 2 cores)."), "",
             ("| cold ms/design (median) | warm ms/design (median) | best batch | reference "
             "design alone (warm) | goal ≤ 5 ms |"), "|---|---|---|---|---|",
             (f"| {timing['cold_ms']:.2f} | {timing['warm_ms']:.2f} | {timing['best_ms']:.2f} | "
             f"{timing['reference_ms']:.2f} | "
             f"{'met' if timing['cold_ms'] <= 5 else 'NOT met'} (cold) |"), "",
             ("Cold: a fresh evaluator per batch (the accelerator model times every NPU "
             "configuration of the batch); warm: one evaluator, NPU op times memoized per NPU "
             "configuration (at most 3 × 3 × 2 × 18 memory settings), as in a search."), "",
             (f"## (b) Best platform per budget vs the reference (set `{args.set}`, agent "
             f"`{args.agent}`, {args.evals} evaluations, seed {args.seed}, reward `edp`)"), "",
             "Reference (hand-designed, Snapdragon 855-class): " + _fmt_design(REFERENCE_DESIGN),
             "", ("| budget (mm², W) | platform | latency ms | energy µJ | area mm² | peak W | "
             "jobs/s | EDP vs reference |"), "|---|---|---|---|---|---|---|---|",
             (f"| — | reference | {ref['latency_ms']:.2f} | {ref['energy_uj']:.0f} | "
             f"{ref['area_mm2']:.1f} | {ref['power_w']:.2f} | {ref['throughput_per_s']:.1f} | 1.00 |")]
    for b in budgets:
        label = f"≤ {b['area']:g}, ≤ {b['power']:g}"
        fits = ref["area_mm2"] <= b["area"] and ref["power_w"] <= b["power"]
        if not b["top"]:
            lines.append(f"| {label} | no feasible design found | | | | | | |")
            continue
        d, m = b["top"][0]
        lines.append(f"| {label} | {_fmt_design(d)} | {m['latency_ms']:.2f} | {m['energy_uj']:.0f}"
                     f" | {m['area_mm2']:.1f} | {m['power_w']:.2f} | {m['throughput_per_s']:.1f} |"
                     f" {edp(m) / edp(ref):.2f} (reference {'fits' if fits else 'over budget'}) |")
    lines += ["", "Search wall time per budget: " + ", ".join(
        f"{b['wall_s']:.2f} s ({b['feasible']}/{b['n']} feasible)" for b in budgets), "",
              (f"## (c) Co-design: HEFT vs HEFT + local search ({args.inner_budget} moves per "
              "workload)"), "",
              ("Candidates per budget: the search's best distinct feasible platforms by HEFT EDP, "
              "plus the reference when it fits. EDP in µJ·ms."), "",
              "| budget | candidate | HEFT EDP | search EDP | latency gain | winner |",
              "|---|---|---|---|---|---|"]
    for b, res, cands in co:
        label = f"≤ {b['area']:g} mm², ≤ {b['power']:g} W"
        for k, d in enumerate(cands):
            win = [w for w, key in (("HEFT", "winner_heft"), ("search", "winner_search"))
                   if res[key] == k]
            gain = 1 - res["search_latency"][k] / res["heft_latency"][k]
            name = "reference" if d == REFERENCE_DESIGN else f"#{k + 1}"
            lines.append(f"| {label} | {name} | {res['heft_edp'][k]:.0f} | {res['search_edp'][k]:.0f}"
                         f" | {gain:.2%} | {', '.join(win)} |")
        changed = res["winner_heft"] != res["winner_search"]
        lines.append(f"| {label} | **winner changes: {'yes' if changed else 'no'}** | | | | "
                     f"({res['search_s_per_design']:.2f} s/design with search) |")
    if nest:
        lines += ["", (f"Nested search ({args.agent}, {args.nested_evals} outer evaluations, budget "
                  f"≤ {nest['area']:g} mm², ≤ {nest['power']:g} W): best platform found with HEFT "
                  f"inside has EDP {nest['heft']['edp_under_search']:.0f} under the inner search "
                  f"({nest['heft']['wall_s']:.1f} s); found with the inner search inside: "
                  f"{nest['search']['edp_under_search']:.0f} ({nest['search']['wall_s']:.1f} s). "
                  f"Same platform: {'yes' if nest['heft']['design'] == nest['search']['design'] else 'no'}.")]
    if flips:
        edges = flips["bins"]
        heads = [f"{100 * a:g}–{100 * b:g} %" if np.isfinite(b) else f"≥ {100 * a:g} %"
                 for a, b in itertools.pairwise(edges)]
        lines += ["", (f"## (d) When the inner search changes the winner ({flips['n']} random "
                  f"platforms, set `{args.set}`, {args.inner_budget} moves per workload)"), "",
                  ("Every pair of platforms, binned by how far apart HEFT puts them (relative gap); "
                   "the share of pairs whose order HEFT + local search reverses. Median gain of "
                   f"the search over HEFT: latency {flips['latency_gain']:.2%}, EDP "
                   f"{flips['edp_gain']:.2%}."), "",
                  "| metric | " + " | ".join(f"gap {h}" for h in heads) + " |",
                  "|---" * (len(heads) + 1) + "|"]
        for name in ("latency", "edp"):
            lines.append(f"| {name} | " + " | ".join(
                f"{frac:.1%} of {cnt}" if cnt else "— (0)" for cnt, frac in flips[name]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="mixed", help="workload set for (b) and (c)")
    ap.add_argument("--timing-set", default="mixed")
    ap.add_argument("--agent", default="ga")
    ap.add_argument("--evals", type=int, default=400)
    ap.add_argument("--nested-evals", type=int, default=60)
    ap.add_argument("--inner-budget", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flips", type=int, default=150,
                    help="random platforms for (d), 0 to skip")
    ap.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.set = args.timing_set = "tiny"
        args.evals, args.nested_evals, args.inner_budget, args.batch, args.repeats = 20, 6, 10, 5, 2
        args.flips = 6
    timing = eval_time(args.timing_set, args.batch, args.repeats)
    ref = SocEvaluator().evaluate_one(REFERENCE_DESIGN, args.set)
    budgets = best_per_budget(args.set, args.evals, args.agent, args.seed)
    co = []
    for b in budgets:
        cands = [d for d, _ in b["top"][:4]]
        if ref["area_mm2"] <= b["area"] and ref["power_w"] <= b["power"]:
            cands.append(dict(REFERENCE_DESIGN))
        if len(cands) >= 2:
            co.append((b, codesign(args.set, cands, args.inner_budget), cands))
    nest: dict[str, Any] = {}
    if args.nested_evals > 0:
        area, power = BUDGETS[1]
        nest = {"area": area, "power": power,
                **nested(args.set, area, power, args.nested_evals, args.agent, args.inner_budget,
                         args.seed)}
    flips = rank_flips(args.set, args.flips, args.inner_budget, args.seed) if args.flips else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(stamp_markdown(render(timing, ref, budgets, co, nest, flips, args)))
    write_provenance(args.out.with_suffix(".provenance.json"), evaluator=SocEvaluator().id,
                     seed=args.seed, command="benchmarks/bench_soc.py", timing=timing,
                     args={k: str(v) for k, v in vars(args).items()})
    print(args.out.read_text())


if __name__ == "__main__":
    main()
