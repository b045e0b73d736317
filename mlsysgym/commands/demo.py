"""``mlsysgym demo``: the README's main job on an embedded default."""

from __future__ import annotations

import argparse


def register(group) -> None:
    p = group("").add_parser("demo", help="run the demo: analyse a zoo model")
    p.add_argument("--model", default="resnet50", help="zoo model name (default: resnet50)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlsysgym.commands.ir_cmds import print_graph
    from mlsysgym.ir import zoo

    print_graph(zoo.load(args.model), top=15)
    return 0
