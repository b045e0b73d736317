"""CLI sub-command modules (each exposes ``register(group)``)."""

from __future__ import annotations

from mlsysgym.experiments.console import make_console

__all__ = ["make_console"]
