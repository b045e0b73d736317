"""CLI sub-command modules (each exposes ``register(group)``)."""

from __future__ import annotations

import sys


def make_console():
    """A rich Console: the terminal's width, or 160 columns when output is not a terminal."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)
