"""``mlsysgym report SWEEP_DIR...``: Markdown summary and PNG plots of sweeps — the agent
study, or (for sweeps over sequential problems, detected or ``--sequential``) the per-instance
comparison against a baseline and an exact agent, or (for sweeps with objectives) the Pareto
fronts and hypervolume curves (:mod:`mlsysgym.experiments.pareto_report`)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mlsysgym.commands.common import add_json, add_out, print_json


def register(group) -> None:
    p = group("").add_parser("report", help="summarize sweeps: agent study tables and plots, or "
                                            "sequential problems against a baseline and an exact agent")
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="output_dir(s) of `mlsysgym sweep`")
    add_out(p, "output folder (default ./results/agent_study, ./results/pareto for sweeps "
               "with objectives, or ./results/problems for "
               "sequential problems; the repository's published results use "
               "experiments/results/...)", metavar="DIR")
    add_json(p, "print the files written as JSON")
    seq = p.add_argument_group("sequential problems (episodes as designs)")
    seq.add_argument("--sequential", action="store_true",
                     help="write the sequential-problem report (the default when the sweeps' "
                          "designs are episodes)")
    seq.add_argument("--metric", default="reward", help="metric to compare")
    seq.add_argument("--minimize", action="store_true", help="lower metric is better")
    seq.add_argument("--baseline", default=None, help="agent that %% better is relative to")
    seq.add_argument("--exact", default=None, help="exact agent: gap to its result, its status")
    seq.add_argument("--reach", type=float, default=0.9,
                     help="fraction of the baseline→exact gap for the reach columns")
    seq.add_argument("--compare", nargs="+", default=(), metavar="ARM",
                     help="arms of the head-to-head count (default: all but the exact agent)")
    seq.add_argument("--title", default=None, help="the Markdown title")
    seq.add_argument("--name", default=None, help="file name stem (default: the sweep's name)")
    seq.add_argument("--scheduling", action="store_true",
                     help="kernel scheduling sweeps: write the experiment's own tables "
                          "(<name>_details.md/.png: the learned agent's rollouts, proofs, averages)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlsysgym.experiments.pareto_report import is_pareto_sweep, write_pareto_report
    from mlsysgym.experiments.report import (
        ProblemReportSpec,
        is_sequential,
        load_sweeps,
        write_problem_report,
        write_report,
    )
    from mlsysgym.ir.paths import check_output_dir

    if args.scheduling:
        from mlsysgym.experiments.report_scheduling import write_scheduling_report

        out = args.out or "results/problems"
        check_output_dir(out, "report folder")
        return _done(args, write_scheduling_report(args.sweeps, out, args.name))
    if args.out:
        check_output_dir(args.out, "report folder")
    trials, trajs = load_sweeps(args.sweeps)
    if not args.sequential and is_pareto_sweep(trials):  # objectives: fronts, hypervolume
        out = args.out or "results/pareto"
        check_output_dir(out, "report folder")
        return _done(args, write_pareto_report(args.sweeps, out))
    sequential = args.sequential or is_sequential(trajs)
    out = args.out or ("results/problems" if sequential else "results/agent_study")
    check_output_dir(out, "report folder")
    if sequential:
        spec = ProblemReportSpec(args.metric, args.minimize, args.baseline, args.exact,
                                 args.reach, compare=tuple(args.compare),
                                 **({"title": args.title} if args.title else {}))
        path = write_problem_report(args.sweeps, out, spec, args.name)
    else:
        path = write_report(args.sweeps, out)
    return _done(args, path)


def _done(args: argparse.Namespace, path: Path) -> int:
    """Say what was written: the Markdown report and the plots it shows."""
    if args.json:
        links = re.findall(r"\]\(([^)\s]+\.png)\)", path.read_text(encoding="utf-8"))
        plots = [str(path.parent / link) for link in dict.fromkeys(links)]
        print_json(args, {"report": str(path), "out": str(path.parent), "plots": plots})
    else:
        print(f"wrote {path} and its plot(s)")
    return 0
