"""The conventions every ``mlsysgym`` command shares, in one place.

- one output flag, ``-o/--out`` (older spellings stay as hidden aliases);
- one workload argument, positional (``mlsysgym sim accelerator resnet50``), with the
  older ``--model``/``--trace`` option kept as a hidden alias;
- ``--json``: one JSON document on stdout and nothing else there (the CLI sends
  everything else a command prints to stderr while it runs);
- a one-line notice on stderr for a step that takes longer than ~2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import Any

SLOW_STEP_S = 2.0  # a step that runs longer than this gets a notice on stderr


def add_out(parser: argparse.ArgumentParser, help: str, *, metavar: str = "PATH",
            default: str | None = None, required: bool = False,
            aliases: Sequence[str] = ()) -> None:
    """Add ``-o/--out`` (dest ``out``) and the command's older spellings (``--output``,
    ``--output-dir``) as hidden aliases of it."""
    if required:
        parser = parser.add_mutually_exclusive_group(required=True)  # type: ignore[assignment]
    parser.add_argument("-o", "--out", default=default, metavar=metavar, help=help)
    for alias in aliases:
        parser.add_argument(alias, dest="out", default=default, metavar=metavar,
                            help=argparse.SUPPRESS)


def add_workload(parser: argparse.ArgumentParser, help: str, *, metavar: str = "WORKLOAD",
                 default: str | None = None, alias: str | None = "--model") -> None:
    """Add the positional workload argument (dest ``workload``); ``alias`` (the option the
    command took before) stays accepted, hidden. Without ``default`` it is required."""
    if alias is None and default is None:
        parser.add_argument("workload", metavar=metavar, help=help)
        return
    group = parser.add_mutually_exclusive_group(required=default is None)
    group.add_argument("workload", nargs="?", default=argparse.SUPPRESS, metavar=metavar,
                       help=help + (f" (default: {default})" if default is not None else ""))
    if alias:
        group.add_argument(alias, dest="workload", default=default, metavar=metavar,
                           help=argparse.SUPPRESS)
    elif default is not None:
        parser.set_defaults(workload=default)


def add_json(parser: argparse.ArgumentParser, help: str = "print one JSON document on stdout "
             "(everything else goes to stderr)") -> None:
    """Add ``--json``. While such a command runs with ``--json``, the CLI points ``sys.stdout``
    at stderr; :func:`print_json` writes to the real stdout."""
    parser.add_argument("--json", action="store_true", help=help)
    parser.set_defaults(json_stdout_guard=True)


def print_json(args: argparse.Namespace, doc: Any, *, indent: int | None = None) -> None:
    """Print ``doc`` as JSON on the command's real stdout (see :func:`add_json`)."""
    stream = getattr(args, "json_stream", None) or sys.stdout
    text = json.dumps(_finite(doc), indent=indent, default=_plain, allow_nan=False)
    print(text, file=stream, flush=True)


def print_report(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    """Print a flat report: JSON with ``--json``, else one aligned ``key value`` line per
    field that has a value."""
    if getattr(args, "json", False):
        print_json(args, doc)
        return
    width = max(map(len, doc), default=0) + 1
    for k, v in doc.items():
        if v is not None:
            print(f"{k:<{width}} {v}")


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (a std of one trial, a failed metric) as None: strict
    JSON has no NaN, and readers such as jq refuse it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return _finite(value.tolist())
    return value


def _plain(value: Any) -> str:
    """A value json cannot write as itself (a path, an enum, a dataclass) as its string."""
    return str(value)


def say(message: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    print(f"mlsysgym: {message}", file=sys.stderr, flush=True)


def progress_to_stderr() -> Any:
    """A context in which what a library prints on stdout (rich progress bars on the default
    console, Ray workers' lines) goes to stderr: stdout keeps only the command's results."""
    return redirect_stdout(sys.stderr)


@contextmanager
def slow_step(message: str, after_s: float | None = SLOW_STEP_S) -> Iterator[None]:
    """Print ``mlsysgym: <message>...`` on stderr if the block is still running after
    ``after_s`` seconds: a silent wait gets one line, a quick step none (``None``: never)."""
    if after_s is None:
        yield
        return
    timer = threading.Timer(after_s, say, args=(f"{message}...",))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def counting_evaluations(problem: Any, advance: Callable[[int], Any]) -> Iterator[Any]:
    """Within the block, ``problem.evaluate`` calls ``advance(n)`` after every batch of ``n``
    designs (drives a progress bar). The problem keeps its type (agents check it); a problem
    whose attributes cannot be set is searched the same, without progress."""
    evaluate = problem.evaluate
    own = "evaluate" in getattr(problem, "__dict__", {})

    def counted(designs: Sequence[dict]) -> Any:
        out = evaluate(designs)
        advance(len(designs))
        return out

    try:
        problem.evaluate = counted
    except (AttributeError, TypeError):
        yield problem
        return
    try:
        yield problem
    finally:
        if own:
            problem.evaluate = evaluate
        else:
            del problem.evaluate  # the class's method again


def stderr_progress(enabled: bool = True, transient: bool = False) -> Any:
    """A rich progress bar on stderr (agents' evaluations, trials, kernels); ``transient``:
    erased when done."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), disable=not enabled,
                    transient=transient)
