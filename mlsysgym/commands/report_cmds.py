"""``mlsysgym report SWEEP_DIR...``: Markdown summary and PNG plots of agent-study sweeps."""

from __future__ import annotations

import argparse


def register(group) -> None:
    p = group("").add_parser("report", help="summarize sweeps: agent study tables and plots")
    p.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="output_dir(s) of `mlsysgym sweep`")
    p.add_argument("--out", default="results/agent_study",
                   help="folder for agent_study.md and PNGs (default ./results/agent_study; the "
                        "repository's published study uses experiments/results/agent_study)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlsysgym.experiments.report import write_report
    from mlsysgym.ir.paths import check_output_dir

    check_output_dir(args.out, "report folder")
    path = write_report(args.sweeps, args.out)
    print(f"wrote {path} and its plots")
    return 0
