"""``mlsysgym sweep CONFIG.yaml [--resume [--allow-mixed]] [--ray-address ADDR] [-o DIR]
[--json]``: a Ray Tune sweep.

CONFIG is a YAML file, or the name of a config shipped with the package
(``mlsysgym/experiments/configs/<name>.yaml``, e.g. ``study_search``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlsysgym.commands.argtypes import positive_int
from mlsysgym.commands.common import add_json, add_out, print_json, progress_to_stderr


def register(group) -> None:
    p = group("").add_parser(
        "sweep", help="run problem × agent × hyperparameters × seeds through Ray Tune",
        description="Run a sweep described by a YAML config (see experiments/configs/). "
                    "Each trial is one search run; results go to Parquet under output_dir.")
    p.add_argument("config", metavar="CONFIG.yaml",
                   help="sweep configuration file, or the name of a shipped config "
                        "(mlsysgym list configs)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep: skip finished trials, run the rest")
    p.add_argument("--allow-mixed", action="store_true",
                   help="with --resume: continue even if the finished trials were made by another "
                        "evaluator version or on another target (target_id)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="connect to this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    add_out(p, "results folder (default: the config's output_dir)", metavar="DIR",
            aliases=("--output-dir",))
    p.add_argument("--max-trials", type=positive_int, default=None, metavar="N",
                   help="run at most N trials now; --resume runs the rest later")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true",
                   help="show the Ray workers' output (trial prints, warnings, logs)")
    add_json(p, "print what ran and the per-agent results as JSON")
    p.set_defaults(func=run)


def packaged_configs() -> list[str]:
    """Names of the sweep configs shipped with the package."""
    from mlsysgym import experiments

    return sorted(p.stem for p in (Path(experiments.__file__).parent / "configs").glob("*.yaml"))


def resolve_config(config: str) -> str:
    """``config`` if it is a file, else the shipped config of that name (``study_search`` or
    ``study_search.yaml``); unchanged when neither exists (loading it reports the error)."""
    from mlsysgym import experiments

    shipped = Path(experiments.__file__).parent / "configs" / f"{Path(config).stem}.yaml"
    if not Path(config).is_file() and Path(config).name == config and shipped.is_file():
        return str(shipped)
    return config


def run(args: argparse.Namespace) -> int:
    import sys

    from mlsysgym.experiments.sweep import completed, load_config, print_summary, run_sweep

    config = load_config(resolve_config(args.config), output_dir=args.out)
    try:
        with progress_to_stderr():  # the trial bar and Ray's lines; the table to stdout
            summary = run_sweep(config, resume=args.resume, address=args.ray_address,
                                max_trials=args.max_trials, progress=not args.no_progress,
                                allow_mixed=args.allow_mixed, verbose=args.verbose)
    except KeyboardInterrupt:
        print(f"mlsysgym: interrupted; {len(completed(config.output_dir))} trials are finished "
              f"in {config.output_dir}; rerun with --resume to continue", file=sys.stderr)
        return 130
    if args.json:
        print_json(args, summary_document(summary))
    else:
        print_summary(summary)
    return 1 if summary.errors else 0


def summary_document(summary: Any) -> dict[str, Any]:
    """The JSON of a sweep run: trial counts, errors and the per-agent results table."""
    from mlsysgym.experiments.sweep.summary import summary_table

    table = summary_table(summary.output_dir)
    return {"output_dir": str(summary.output_dir), "total": summary.total,
            "skipped": summary.skipped, "ran": summary.ran, "remaining": summary.remaining,
            "errors": list(summary.errors),
            "results": [] if table.empty else table.to_dict(orient="records")}
