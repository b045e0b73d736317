"""The ``mlsysgym`` command line: one sub-command group per concern, registered by small modules.

Every error on bad input is one line on stderr and a non-zero exit, never a traceback; so is
a command whose optional extra is not installed (it names the extra to install). Command
modules import their heavy dependencies inside the command, never at parser-build time.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from mlsysgym import __version__
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.extras import extra_for, missing_extra_message

GROUPS: dict[str, str] = {
    "zoo": "the model zoo",
    "ir": "workload graphs: inspect ONNX models and zoo entries",
    "sim": "run a simulator on a workload",
    "trace": "memory traces",
    "costmodel": "learned cost models: train, evaluate, predict",
    "mlir": "MLIR: import, inspect, measure kernels",
}

# Modules that add sub-commands: each has ``register(group)`` where ``group(name)`` returns
# the sub-parsers of a group (or of the top level for name "").
COMMAND_MODULES: tuple[str, ...] = (
    "mlsysgym.commands.info_cmds",
    "mlsysgym.commands.ir_cmds",
    "mlsysgym.commands.sim_accelerator",
    "mlsysgym.commands.serving_cmds",
    "mlsysgym.commands.dram_cmds",
    "mlsysgym.commands.costmodel_cmds",
    "mlsysgym.commands.mlir_cmds",
    "mlsysgym.commands.compile_cmds",
    "mlsysgym.commands.demo",
    "mlsysgym.commands.search_cmds",
    "mlsysgym.commands.experiment_cmds",
    "mlsysgym.commands.sweep_cmds",
    "mlsysgym.commands.report_cmds",
)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``mlsysgym: error: ...``, exit 2)
    instead of argparse's usage block plus error; sub-parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("mlsysgym").strip()
        self.exit(2, f"mlsysgym: error: {where + ': ' if where else ''}{message} "
                     f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = OneLineParser(
        prog="mlsysgym", description="A gym for ML-driven compilers and hardware design-space exploration.")
    parser.add_argument("--version", action="version", version=f"mlsysgym {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {"": top}

    def group(name: str) -> argparse._SubParsersAction:
        if name not in groups:
            p = top.add_parser(name, help=GROUPS.get(name, name))
            groups[name] = p.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return groups[name]

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MlsysgymError as e:
        print(f"mlsysgym: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        extra = extra_for(e.name)
        if extra is None:  # not an optional dependency: a broken install or a bug
            raise
        print(f"mlsysgym: error: {missing_extra_message(extra)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlsysgym: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`mlsysgym ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


if __name__ == "__main__":
    sys.exit(main())
