"""What the ``cpsat`` mallocGame agent loses when its placement is replayed in the env.

CP-SAT places buffers at any offset; the env scores an episode in which each fast buffer sits
at one of its candidate offsets at its turn. The agent repacks its placement among those,
else searches for an episode with its modes, else submits the better of the heuristic's
episode and the demoted one (buffers with no room left slow). Its result's
``info["unreplayable_time_us"]`` is then the solver's own time. Per instance (seed 0): the
submitted time, the solver's own, the loss in points of the all-slow time, the status.

``--set NAME`` runs a fresh test set's instances (``workloads.TEST_CAPACITY_SETS``; a
diagnostic of the baseline after that set's evaluation, choosing nothing); default the
validation split at 0.07 / 0.13 / 0.19 / 0.33.

Writes ``benchmarks/results/cpsat_replay_<set>_<seconds>s.json`` (rows, summary,
fingerprint) under the working directory.

Run: nice -n 19 .venv/bin/python benchmarks/cpsat_replay_loss.py [--seconds 10] [--set fresh12]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path("benchmarks/results")  # under the working directory
VALIDATION_CAPACITIES = (0.07, 0.13, 0.19, 0.33)


def run_one(instance: str, seconds: float) -> dict[str, Any]:
    """The ``cpsat`` agent on one instance, budgeted as the learned-mallocGame benchmark does."""
    from mlsysgym.agents import Budget, search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir import workloads

    problem = make_problem(workloads.MallocInstanceSpec.from_name(instance).problem_spec())
    t0 = time.perf_counter()
    res = search("cpsat", problem, Budget(seconds=(seconds + 60.0) / 0.9), seed=0,
                 time_limit_s=seconds)
    submitted = float(res.metrics[res.best_index]["time_us"])
    own = res.info.get("unreplayable_time_us")
    all_slow = float(problem.instance.all_slow_time_us)
    return {"instance": instance, "seconds": seconds, "wall_s": time.perf_counter() - t0,
            "status": res.status, "time_us": submitted,
            "solver_time_us": submitted if own is None else float(own),
            "replayed": own is None, "all_slow_us": all_slow,
            "lost_points": 0.0 if own is None else 100.0 * (submitted - own) / all_slow}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Instances, those not proved optimal, failed replays, mean and largest loss (points)."""
    unproved = [r for r in rows if r["status"] != "optimal"]
    lost = [r["lost_points"] for r in rows]
    return {"instances": len(rows), "unproved": len(unproved),
            "replay_failed": sum(not r["replayed"] for r in rows),
            "mean_lost_points": sum(lost) / len(rows) if rows else 0.0,
            "mean_lost_points_unproved": (sum(r["lost_points"] for r in unproved) / len(unproved)
                                          if unproved else 0.0),
            "max_lost_points": max(lost, default=0.0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="CP-SAT's time limit")
    ap.add_argument("--set", default=None, help="a fresh test set (default: validation)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="the JSON to write")
    args = ap.parse_args(argv)
    from mlsysgym.core.target import fingerprint
    from mlsysgym.ir import workloads

    if args.set is not None and args.set not in workloads.TEST_CAPACITY_SETS:
        raise SystemExit(f"--set: one of {', '.join(workloads.TEST_CAPACITY_SETS)}")
    caps, split = ((workloads.TEST_CAPACITY_SETS[args.set], "test") if args.set
                   else (VALIDATION_CAPACITIES, "validation"))
    names = [workloads.MallocInstanceSpec(w, c).name for w in workloads.split(split) for c in caps]
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, row in enumerate(pool.map(run_one, names, [args.seconds] * len(names))):
            rows.append(row)
            print(f"[{i + 1}/{len(names)}] {row['instance']}: {row['status']}, lost "
                  f"{row['lost_points']:.3f} points", file=sys.stderr, flush=True)
    out = args.out or RESULTS / f"cpsat_replay_{args.set or 'validation'}_{args.seconds:g}s.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["benchmarks/cpsat_replay_loss.py", *sys.argv[1:]]),
                               "fingerprint": fingerprint(), "summary": summary(rows),
                               "rows": rows}, indent=1) + "\n")
    print(json.dumps(summary(rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
