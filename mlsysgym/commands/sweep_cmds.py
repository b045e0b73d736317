"""``mlsysgym sweep CONFIG.yaml [--resume [--allow-mixed]] [--ray-address ADDR]``: a Ray Tune
sweep."""

from __future__ import annotations

import argparse


def register(group) -> None:
    p = group("").add_parser(
        "sweep", help="run problem × agent × hyperparameters × seeds through Ray Tune",
        description="Run a sweep described by a YAML config (see experiments/configs/). "
                    "Each trial is one search run; results go to Parquet under output_dir.")
    p.add_argument("config", metavar="CONFIG.yaml", help="sweep configuration file")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted sweep: skip finished trials, run the rest")
    p.add_argument("--allow-mixed", action="store_true",
                   help="with --resume: continue even if the finished trials were made by another "
                        "evaluator version or on another target (target_id)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="connect to this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--output-dir", default=None, metavar="DIR",
                   help="override the config's output_dir")
    p.add_argument("--max-trials", type=int, default=None, metavar="N",
                   help="run at most N trials now; --resume runs the rest later")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from mlsysgym.experiments.sweep import completed, load_config, print_summary, run_sweep

    config = load_config(args.config, output_dir=args.output_dir)
    try:
        summary = run_sweep(config, resume=args.resume, address=args.ray_address,
                            max_trials=args.max_trials, progress=not args.no_progress,
                            allow_mixed=args.allow_mixed)
    except KeyboardInterrupt:
        print(f"mlsysgym: interrupted; {len(completed(config.output_dir))} trials are finished "
              f"in {config.output_dir}; rerun with --resume to continue", file=sys.stderr)
        return 130
    print_summary(summary)
    return 1 if summary.errors else 0
