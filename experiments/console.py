"""The rich Console every printed table uses (the CLI's and the experiments')."""

from __future__ import annotations

import sys
from typing import Any


def make_console() -> Any:
    """A rich Console: the terminal's width, or 160 columns when output is not a terminal."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)
