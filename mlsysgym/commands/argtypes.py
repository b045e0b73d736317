"""Argument types for numeric flags: a value out of range is a one-line usage error at parse
time (``mlsysgym: error: argument --top: ...``), never a silent oddity such as ``--top -3``
listing all but the last three ops."""

from __future__ import annotations

import argparse
import math

__all__ = ["integer", "positive_float", "positive_int", "seed"]


def positive_int(text: str) -> int:
    """An integer >= 1 (``--top``, ``--max-trials``, ``-k``...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts, budgets in seconds or minutes, caps)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer >= 0 (NumPy refuses negative seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed must be an integer >= 0, got {value}")
    return value


def integer(text: str) -> int:
    """An integer that fits 64 bits (design knobs: a 400-digit value is refused here, not
    deep in a simulator that converts it to a float)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text[:20]}... does not fit a 64-bit integer")
    return value
