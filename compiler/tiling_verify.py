"""Whole-module checks of the tile-size pass: tuned vs IREE's default, timed side by side.

:func:`benchmark_modules` compiles the untuned and the tuned module for the pass's target and
times one call of each, alternating in random order, for ``rounds`` rounds on each IREE driver
(``local-sync``: one thread; ``local-task``: the multi-threaded task system users run). The
speedup is the median over rounds of default time / tuned time of the same round, so machine
drift cancels; ``noise`` is the spread of the same ratio for two copies of the default
(an A/A test run in the same rounds), the smallest difference the run can resolve.

:func:`verify` is the pass's last guard. The tuned ops are kept only where the module is
faster than the default beyond the noise on some driver (:attr:`ModuleTiming.faster`) and
slower on none. With ops of more than one shape (problem key: the same configuration in every
layer), the module is also timed with each shape's ops alone, and only the shapes that pass
that test alone are kept; when that drops a shape, the rest is timed together afresh (they
won on noisy timings) and must pass again, else every op goes back to IREE's default. Shapes,
not halves of the op list: one shape whose pick loses in the module (measured on OPT-350m: a
pick 1.5× faster as a lone kernel made the module 0.82×) drags every half of the layers
down with it, and can hide behind another shape's gain when all are timed together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.compiler.tiling_pass import TuningError, TuningReport, _entry, _random_input
from mlsysgym.costmodels.tiling_ops import annotate
from mlsysgym.costmodels.tiling_space import TileConfig

__all__ = ["DRIVERS", "ModuleTiming", "VerifyResult", "benchmark_modules", "verify"]

DRIVERS = ("local-sync", "local-task")


@dataclass(frozen=True)
class ModuleTiming:
    """Default vs tuned whole-module time on one driver (medians over rounds, ms)."""

    driver: str
    default_ms: float
    tuned_ms: float
    speedup: float            # median over rounds of default / tuned (> 1: tuned is faster)
    noise: float              # median |log(default / default)| of an A/A pair, as a ratio - 1
    rounds: int
    speedups: tuple[float, ...] = ()

    @property
    def slower(self) -> bool:
        """Whether the tuned module is slower than the default beyond the measured noise."""
        return self.speedup < 1.0 / (1.0 + max(self.noise, 0.01))

    @property
    def faster(self) -> bool:
        """Whether the tuned module is faster than the default beyond the measured noise."""
        return self.speedup > 1.0 + max(self.noise, 0.01)


def _call(vmfb: Any, func: str, inputs: Sequence[np.ndarray], driver: str) -> Callable[[], Any]:
    from mlsysgym.simulators.iree_cpu import Runner

    return Runner(vmfb, func, driver).prepare(inputs)


def _time_once(fn: Callable[[], Any], min_s: float) -> float:
    """Seconds per call: repeat ``fn`` until at least ``min_s`` has passed."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_s:
            return dt / n


def benchmark_modules(untuned: str, tuned: str, target_cpu: str = "host",
                      drivers: Sequence[str] = DRIVERS, rounds: int = 7, min_s: float = 0.05,
                      seed: int = 0, compiler: Any = None) -> dict[str, ModuleTiming]:
    """Time the tuned module against the untuned one on each driver (see the module doc)."""
    from mlsysgym.simulators.iree_cpu import KernelCompiler

    compiler = compiler or KernelCompiler.for_target(target_cpu, timeout_s=900.0)
    base, tun = compiler.compile(untuned), compiler.compile(tuned)
    if not base.ok or not tun.ok:
        raise TuningError(f"module does not compile for benchmarking: "
                          f"{(base.error or tun.error)[:200]}")
    func, args = _entry(untuned)
    rng = np.random.default_rng(seed)
    inputs = [_random_input(rng, shape, t) for shape, t in args]
    out: dict[str, ModuleTiming] = {}
    for driver in drivers:
        calls = {"default": _call(base.vmfb, base.func if base.func != "kernel" else func,
                                  inputs, driver),
                 "tuned": _call(tun.vmfb, tun.func if tun.func != "kernel" else func,
                                inputs, driver)}
        calls["default2"] = calls["default"]
        for fn in calls.values():
            _time_once(fn, min_s)  # warm up
        times: dict[str, list[float]] = {k: [] for k in calls}
        order = np.array(list(calls))
        for _ in range(max(rounds, 1)):
            for name in rng.permutation(order):
                times[str(name)].append(_time_once(calls[str(name)], min_s))
        d, t, d2 = (np.asarray(times[k]) for k in ("default", "tuned", "default2"))
        ratios = d / t
        out[driver] = ModuleTiming(driver, float(np.median(d) * 1e3), float(np.median(t) * 1e3),
                                   float(np.median(ratios)),
                                   float(math.expm1(np.median(np.abs(np.log(d / d2))))),
                                   len(d), tuple(float(x) for x in ratios))
    return out


@dataclass
class VerifyResult:
    """What :func:`verify` measured and reverted."""

    timings: dict[str, ModuleTiming]
    kept: dict[int, TileConfig]
    reverted: list[int] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def _passes(tm: Mapping[str, ModuleTiming]) -> bool:
    """Faster beyond the noise on some driver and slower on none."""
    return any(t.faster for t in tm.values()) and not any(t.slower for t in tm.values())


def _shown(tm: Mapping[str, ModuleTiming]) -> str:
    """The timings on one line, for the log."""
    return ", ".join(f"{t.driver} ×{t.speedup:.3f} (noise ±{t.noise:.1%})" for t in tm.values())


def verify(report: TuningReport, untuned: str, drivers: Sequence[str] = DRIVERS,
           rounds: int = 7, max_steps: int = 8, log: Callable[[str], None] = print,
           **bench: Any) -> VerifyResult:
    """Benchmark the tuned module against the default, then (with more than one shape) each
    shape's changed ops alone, the shapes with the most ops first, at most ``max_steps``
    benchmarks in all (later shapes go back to the default); keep the shapes that pass alone,
    timed together afresh when that dropped any; if what is left does not pass, every op goes
    back to the default. Updates ``report`` (its MLIR and the decisions of reverted ops)."""
    t0 = time.perf_counter()
    chosen = {o.index: o.chosen for o in report.ops
              if o.tuned and not o.is_default and o.chosen is not None}
    if not chosen:
        return VerifyResult({}, {}, [], 0, 0.0)

    def bench_of(sel: Mapping[int, TileConfig]) -> dict[str, ModuleTiming]:
        return benchmark_modules(untuned, annotate(untuned, dict(sel)) if sel else untuned,
                                 report.target_cpu, drivers, rounds, **bench)

    timings = bench_of(chosen)
    steps = 1
    log(f"verify: {_shown(timings)} with {len(chosen)} changed op(s)")
    shapes: dict[str, dict[int, TileConfig]] = {}
    for o in report.ops:
        if o.index in chosen:
            shapes.setdefault(o.problem_key, {})[o.index] = chosen[o.index]
    if len(shapes) > 1:
        kept: dict[int, TileConfig] = {}
        for key, sel in sorted(shapes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            if steps >= max_steps - 1:
                log(f"verify: {key} not timed alone (max_steps): back to default")
                continue
            tm = bench_of(sel)
            steps += 1
            log(f"verify: {key} alone ({len(sel)} op(s)): {_shown(tm)}")
            if _passes(tm):
                kept.update(sel)
        if len(kept) < len(chosen):
            chosen, timings = kept, {}
            if kept:
                timings = bench_of(kept)
                steps += 1
                log(f"verify: the {len(kept)} op(s) of the shapes that passed, together: "
                    + _shown(timings))
    if not _passes(timings):
        if chosen:
            log("verify: not faster beyond the noise on any driver, or slower on one: every "
                "op back to default")
        chosen, timings = {}, {}
    original = {o.index for o in report.ops if o.tuned and not o.is_default}
    reverted = sorted(original - set(chosen))
    for o in report.ops:
        if o.index in reverted:
            o.chosen, o.is_default = o.default, True
            o.reason = "reverted by --verify (module not faster with it)"
    report.mlir = annotate(untuned, chosen) if chosen else untuned
    return VerifyResult(timings, chosen, reverted, steps, time.perf_counter() - t0)
