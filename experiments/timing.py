"""Timing for benchmark scripts: one way to time a call, in CPU and wall seconds.

``time_calls(fn, repeat)`` calls ``fn`` ``repeat`` times and keeps both clocks; benchmarks
report ``best_cpu`` / ``median_cpu`` (CPU time of this process: on a shared machine other jobs'
turns on the cores do not count) or the wall-clock pair where the work happens elsewhere (Ray
workers, subprocesses). Markdown output goes through
:func:`mlsysgym.experiments.report.stamp_markdown` (the machine line and provenance).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Timing", "time_calls"]


@dataclass(frozen=True)
class Timing:
    """The CPU and wall seconds of each call, and the last call's return value."""

    cpu_s: list[float]
    wall_s: list[float]
    result: Any = field(default=None, repr=False)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu_s)

    @property
    def best_wall(self) -> float:
        return min(self.wall_s)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu_s)

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall_s)


def time_calls(fn: Callable[[], Any], repeat: int = 1) -> Timing:
    """Call ``fn`` ``repeat`` times (at least once), timing each call on both clocks."""
    cpu, wall, result = [], [], None
    for _ in range(max(int(repeat), 1)):
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return Timing(cpu, wall, result)
