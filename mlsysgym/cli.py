"""The ``mlsysgym`` command line: one sub-command group per concern, registered by small modules.

Every error on bad input is one line on stderr and a non-zero exit, never a traceback; so is
a command whose optional extra is not installed (it names the extra to install) and a crash
in a dependency (``--debug`` or ``MLSYSGYM_DEBUG=1`` shows the traceback). A warning is one
line too (``--debug`` shows Python's form, with the source line). Command modules
import their heavy dependencies inside the command, never at parser-build time, and follow
the conventions of :mod:`mlsysgym.commands.common` (``-o/--out``, a positional workload,
``--json``, notices on stderr). ``--help`` shows every option's default.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from mlsysgym import __version__
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.extras import extra_for, missing_extra_message

# The source tree (or installed package) holding mlsysgym's subpackages.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent).replace("\\", "/")

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
    "mlsysgym.commands.solve_cmds",
    "mlsysgym.commands.experiment_cmds",
    "mlsysgym.commands.sweep_cmds",
    "mlsysgym.commands.report_cmds",
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (line breaks kept) and every option's default after its help,
    unless the help already names it or there is none to show (None, False, empty)."""

    @staticmethod
    def shows_default(action: argparse.Action) -> bool:
        """Whether ``action`` has a default worth showing: an option's (or an optional
        positional's) value other than None, False, an empty list or a suppressed one."""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS:
            return False
        if isinstance(default, list | tuple) and not default:
            return False
        return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL,
                                                                argparse.ZERO_OR_MORE)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or not self.shows_default(action):
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``mlsysgym: error: ...``, exit 2)
    instead of argparse's usage block plus error, and whose help shows defaults
    (:class:`HelpFormatter`); sub-parsers inherit the class and so both."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("mlsysgym").strip()
        self.exit(2, f"mlsysgym: error: {where + ': ' if where else ''}{message} "
                     f"(see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = OneLineParser(
        prog="mlsysgym", description="A gym for ML-driven compilers and hardware design-space exploration.")
    parser.add_argument("--version", action="version", version=f"mlsysgym {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the traceback too (also: MLSYSGYM_DEBUG=1)")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {"": top}

    def group(name: str) -> argparse._SubParsersAction:
        if name not in groups:
            p = top.add_parser(name, help=GROUPS.get(name, name))
            groups[name] = p.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return groups[name]

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(group)
    for sub in leaf_parsers(parser):
        for action in sub._actions:  # an option without help still shows its default
            if action.help is None and HelpFormatter.shows_default(action):
                action.help = "(default: %(default)s)"
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="on an error, show the traceback too")  # also after the command
    return parser


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands of ``parser`` by name (empty for a leaf command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command parser below ``parser`` that has no sub-commands, in registration order."""
    out = []
    for sub in subparsers(parser).values():
        out += leaf_parsers(sub) if subparsers(sub) else [sub]
    return out


@contextlib.contextmanager
def _json_stdout(args: argparse.Namespace) -> Iterator[None]:
    """With ``--json`` (on a command that uses :func:`mlsysgym.commands.common.add_json`):
    stdout is reserved for the JSON document; whatever else the command prints goes to stderr."""
    if not (getattr(args, "json", False) and getattr(args, "json_stdout_guard", False)):
        yield
        return
    args.json_stream = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _culprit(path: str) -> str:
    """The package a source file belongs to: an installed distribution's top-level module,
    ``mlsysgym`` (installed or this source tree), or the file's module name (the standard
    library)."""
    path = path.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(PROJECT_ROOT + "/"):
        return "mlsysgym"
    return Path(path).stem


def _crash_line(error: Exception) -> str:
    """One line for an unexpected exception: what, where (the dependency whose code raised it,
    or mlsysgym: a bug), and how to see more."""
    frames = traceback.extract_tb(error.__traceback__)
    culprit = _culprit(frames[-1].filename) if frames else "mlsysgym"
    where = "in mlsysgym (a bug: please report it)" if culprit == "mlsysgym" else f"in {culprit}"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (f"mlsysgym: error: {type(error).__name__} {where}"
            + (f": {text[:300]}" if text else "") + " (rerun with --debug for the traceback)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    debug = bool(getattr(args, "debug", False) or os.environ.get("MLSYSGYM_DEBUG"))
    try:
        with _json_stdout(args), warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _warning_line
            return int(args.func(args) or 0)
    except MlsysgymError as e:
        return _fail(f"mlsysgym: error: {e}", debug)
    except ModuleNotFoundError as e:
        extra = extra_for(e.name)
        if extra is None:  # not an optional dependency: a broken install or a bug
            return _fail(_crash_line(e), debug, code=1)
        return _fail(f"mlsysgym: error: {missing_extra_message(extra)}", debug)
    except KeyboardInterrupt:
        print("mlsysgym: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`mlsysgym ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    except Exception as e:  # noqa: BLE001 - a crash in a dependency (or a bug): one line
        return _fail(_crash_line(e), debug, code=1)


def _warning_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Show a warning as one line on stderr, without the source line Python adds."""
    print(f"mlsysgym: warning: {message} ({category.__name__})", file=sys.stderr)


def _fail(line: str, debug: bool, code: int = 2) -> int:
    """Print the one error line (after the traceback with ``--debug``); return ``code``."""
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
