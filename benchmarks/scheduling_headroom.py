"""Headroom of the multi-tenant scheduling instances: heuristics vs the best known schedule.

Run: nice -n 19 .venv/bin/python benchmarks/scheduling_headroom.py [--search-s 15] [--cpsat-s 60]
Writes benchmarks/results/scheduling_headroom.md (~10 min on 2 shared cores).

Instances: ``workloads.scheduling_instances(split, setting="multi", objective=...)`` — the
mixes of :data:`mlsysgym.ir.workloads.MULTI_TENANT` (several graphs of the split released
together) on each of ``SCHEDULING_PLATFORMS``, on two objectives:

- makespan: HEFT, CPOP, HEFT-FIFO (the jobs one after the other in the mix's order, each op on
  its earliest-finish PE), local search (``--search-s``, from HEFT) and, on ``CPSAT``, CP-SAT
  (``--cpsat-s``, one worker, hinted with HEFT). Bounds: the critical-path bound
  (``critical_path_lb``: fastest PE per op, free transfers) and the load bound (an LP: ops
  split fractionally over the PEs that can run them; the busiest PE's time), ``lb_us`` the
  larger. gap = (HEFT − best known) / HEFT; ``gap_best_heur`` the same from the best of the
  three list schedulers.
- mean job completion time (``:jct``): HEFT (upward rank over all jobs) and HEFT-FIFO (job by
  job, in the mix's order), local search (``--search-s``, mean JCT as its cost, from the better
  of the two). ``gap_heft`` = (HEFT − best) / HEFT; ``gap_best_heur`` = (the better heuristic −
  best) / the better heuristic: what is left once the job order is chosen well.

Time-budgeted searches on a shared machine depend on its load (see the machine line).
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlsysgym.agents  # noqa: F401  (registers agents and problems)
import numpy as np
from mlsysgym.agents.base import Budget, search
from mlsysgym.agents.problems import make_problem
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir import workloads
from mlsysgym.simulators.multicore import SchedulingInstance
from mlsysgym.simulators.multicore.instance import critical_path_lb
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

sys.path.insert(0, str(Path(__file__).parent))
from instance_headroom import _best, _fmt, table  # the sibling benchmark's helpers

OUT = Path("benchmarks/results/scheduling_headroom.md")  # default --out, under the cwd
CPSAT = ("whisper_tiny_encoder+llama_l8_d1024_s256_b1@soc_npu",
         "whisper_tiny_encoder+llama_l8_d1024_s256_b1@balanced")
REPLAY_S = 30.0  # budget beyond CP-SAT's time limit to build its model and replay its answer
MAKESPAN_COLS = ["instance", "ops", "cp_lb_us", "load_lb_us", "heft_us", "cpop_us", "heft_fifo_us",
                 "local_search_us", "ls_evals", "cpsat_us", "cpsat_status", "best_us", "gap_pct",
                 "gap_best_heur_pct", "heft_over_lb"]
JCT_COLS = ["instance", "ops", "jct_lb_us", "heft_us", "heft_fifo_us", "local_search_us",
            "ls_evals", "best_us", "gap_heft_pct", "gap_best_heur_pct"]


def load_lb(inst: SchedulingInstance) -> float:
    """Makespan bound from the work alone: min T s.t. each op is split over the PEs that can
    run it (fractions summing to 1) and every PE's busy time ≤ T (an LP, HiGHS)."""
    d = inst.durations_us
    n, p = d.shape
    cap = np.argwhere(np.isfinite(d))
    m = len(cap)
    eq = coo_matrix((np.ones(m), (cap[:, 0], np.arange(m))), shape=(n, m + 1))
    ub = coo_matrix((np.r_[d[cap[:, 0], cap[:, 1]], -np.ones(p)],
                     (np.r_[cap[:, 1], np.arange(p)], np.r_[np.arange(m), np.full(p, m)])),
                    shape=(p, m + 1))
    cost = np.r_[np.zeros(m), 1.0]
    res = linprog(cost, A_ub=ub, b_ub=np.zeros(p), A_eq=eq, b_eq=np.ones(n), bounds=(0, None),
                  method="highs")
    return float(res.fun) if res.success else float("nan")


def makespan_row(spec: workloads.SchedulingInstanceSpec, search_s: float,
                 cpsat_s: float) -> dict[str, Any]:
    """HEFT, CPOP, local search, the bounds (and CP-SAT) on one multi-tenant instance."""
    problem = make_problem(spec.problem_spec())
    inst = problem.instance
    row: dict[str, Any] = {"instance": spec.name, "ops": inst.n_ops,
                           "cp_lb_us": critical_path_lb(inst), "load_lb_us": load_lb(inst)}
    for agent in ("heft", "cpop"):
        row[f"{agent}_us"] = _best(search(agent, problem, 1), "makespan_us")
    jobs = make_problem(replace(spec, objective="jct").problem_spec())  # same ops, as jobs
    row["heft_fifo_us"] = _best(search("heft", jobs, 1, by_arrival=True), "makespan_us")
    ls = search("local_search", problem, Budget(seconds=search_s))
    row.update(local_search_us=_best(ls, "makespan_us"), ls_evals=len(ls.metrics),
               cpsat_us=float("nan"), cpsat_status="")
    if spec.name in CPSAT:
        try:
            r = search("cpsat", problem, Budget(seconds=cpsat_s + REPLAY_S), time_limit_s=cpsat_s)
            row.update(cpsat_us=_best(r, "makespan_us"),
                       cpsat_status=r.info.get("cpsat_status", r.status))
        except MlsysgymError as e:  # e.g. its schedule does not replay in the env's window
            row["cpsat_status"] = f"no replay ({type(e).__name__})"
    row["best_us"] = min(row[k] for k in ("heft_us", "cpop_us", "heft_fifo_us", "local_search_us",
                                          "cpsat_us") if not math.isnan(row[k]))
    row["gap_pct"] = 100 * (row["heft_us"] - row["best_us"]) / row["heft_us"]
    heur = min(row["heft_us"], row["cpop_us"], row["heft_fifo_us"])
    row["gap_best_heur_pct"] = 100 * (heur - row["best_us"]) / heur
    row["heft_over_lb"] = row["heft_us"] / max(row["cp_lb_us"], row["load_lb_us"])
    return row


def jct_row(spec: workloads.SchedulingInstanceSpec, search_s: float) -> dict[str, Any]:
    """HEFT, HEFT-FIFO and local search on the mean job completion time of one mix."""
    problem = make_problem(spec.problem_spec())
    row: dict[str, Any] = {"instance": spec.name, "ops": problem.instance.n_ops}
    h = search("heft", problem, 1)
    row.update(jct_lb_us=_best(h, "jct_lower_bound_us"), heft_us=_best(h, "mean_jct_us"),
               heft_fifo_us=_best(search("heft", problem, 1, by_arrival=True), "mean_jct_us"))
    start = "heft_fifo" if row["heft_fifo_us"] < row["heft_us"] else "heft"
    ls = search("local_search", problem, Budget(seconds=search_s), start=start)
    row.update(local_search_us=_best(ls, "mean_jct_us"), ls_evals=len(ls.metrics))
    heur = min(row["heft_us"], row["heft_fifo_us"])
    row["best_us"] = min(heur, row["local_search_us"])
    row["gap_heft_pct"] = 100 * (row["heft_us"] - row["best_us"]) / row["heft_us"]
    row["gap_best_heur_pct"] = 100 * (heur - row["best_us"]) / heur
    return row


def report(mk: list[dict[str, Any]], jct: list[dict[str, Any]], args: argparse.Namespace,
           wall_s: float) -> str:
    """The results file's text."""
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    over2 = [r["instance"] for r in mk if r["gap_pct"] >= 2.0]
    jct2 = [r["instance"] for r in jct if r["gap_heft_pct"] >= 2.0]
    lines = [
        f"# Scheduling headroom on multi-tenant instances (issue #21), {args.split} split", "",
        (f"Splits version {workloads.SPLITS_VERSION} (digest `{workloads.splits_digest()}`); mixes "
         f"`workloads.MULTI_TENANT[{args.split!r}]` on {', '.join(workloads.SCHEDULING_PLATFORMS)}. "
         f"Command: `{' '.join(sys.argv)}`; local search {args.search_s:g} s per instance, CP-SAT "
         f"{args.cpsat_s:g} s (one worker) on {len(CPSAT)}; total {wall_s / 60:.1f} min, peak RSS "
         f"{rss_mb:.0f} MB. Shared 2-core machine: time-budgeted searches depend on its load "
         "(ls_evals = schedules the local search scored)."), "",
        "## Makespan", "",
        table(mk, MAKESPAN_COLS), "",
        ("gap_pct = (HEFT − best known) / HEFT; gap_best_heur_pct = (the best of HEFT, CPOP and "
         "HEFT-FIFO − best known) / that; heft_over_lb = HEFT / max(cp_lb, load_lb) (both "
         "bounds loose: the first ignores contention and transfers, the second precedence). "
         f"Instances with gap ≥ 2 %: {len(over2)} of {len(mk)}{': ' + ', '.join(over2) if over2 else ''}."),
        "", "## Mean job completion time (all jobs released at 0)", "",
        table(jct, JCT_COLS), "",
        ("gap_heft_pct = (HEFT − best) / HEFT; gap_best_heur_pct = (min(HEFT, HEFT-FIFO) − best) "
         f"/ min(HEFT, HEFT-FIFO). Instances where HEFT is ≥ 2 % from the best: {len(jct2)} of "
         f"{len(jct)}."), "",
    ]
    return stamp_markdown("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=workloads.SPLITS)
    parser.add_argument("--search-s", type=float, default=15.0)
    parser.add_argument("--cpsat-s", type=float, default=60.0)
    parser.add_argument("--limit", type=int, default=None, help="first N instances (a smoke run)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    mk, jct = [], []
    for spec in workloads.scheduling_instances(args.split, setting="multi")[: args.limit]:
        mk.append(makespan_row(spec, args.search_s, args.cpsat_s))
        print({k: _fmt(v) for k, v in mk[-1].items()}, flush=True)
    for spec in workloads.scheduling_instances(args.split, setting="multi",
                                               objective="jct")[: args.limit]:
        jct.append(jct_row(spec, args.search_s))
        print({k: _fmt(v) for k, v in jct[-1].items()}, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(mk, jct, args, time.perf_counter() - t0))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
