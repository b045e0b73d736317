"""``mlsysgym experiment NAME [ARGS...]``: the experiment scripts that are not sweeps (they build
data or models rather than compare agents), each with its own ``--help``. Agent comparisons are
sweep configs: ``mlsysgym sweep experiments/configs/NAME.yaml`` then ``mlsysgym report``."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

# name → (module with main(argv) -> int, what it does)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "make-zoo": ("mlsysgym.experiments.make_zoo", "regenerate the zoo's graph-only ONNX models"),
    "tiling-data": ("mlsysgym.experiments.tiling_data",
                    "measure tile configurations with IREE (training data of the tile pass)"),
    "tiling-models": ("mlsysgym.experiments.tiling_models",
                      "build the held-out models of the tile-pass benchmark"),
    "tiling-report": ("mlsysgym.experiments.tiling_report", "the tile-pass results report"),
    "train-malloc-policy": ("mlsysgym.experiments.train_malloc_policy",
                            "train the mallocGame graph-network policy (ONNX + card)"),
    "train-schedule-policy": ("mlsysgym.experiments.train_schedule_policy",
                              "train the learned list scheduler (ONNX + card)"),
}


def register(group: Any) -> None:
    """Add the top-level ``experiment`` command."""
    p = group("").add_parser(
        "experiment", help="run an experiment script (data and model builders; "
        "agent comparisons are sweep configs)",
        description="\n".join(f"{k}: {v[1]}" for k, v in EXPERIMENTS.items()))
    p.add_argument("name", choices=sorted(EXPERIMENTS), help="the experiment (see above)")
    p.add_argument("args", nargs=argparse.REMAINDER,
                   help="the experiment's own arguments (see mlsysgym experiment NAME --help)")
    p.set_defaults(func=run_experiment)


def run_experiment(args: argparse.Namespace) -> int:
    """Call the experiment module's ``main`` with the remaining arguments."""
    module = importlib.import_module(EXPERIMENTS[args.name][0])
    return int(module.main(args.args) or 0)
