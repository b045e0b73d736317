"""Accelerator-v0 step time (one-shot, ResNet-50): total, evaluator share and env overhead.

Run: .venv/bin/python benchmarks/bench_env.py [--steps 2000] [--baseline OLD_design_env.py]
Writes benchmarks/results/env.md. Target: env overhead ≤ 200 µs per step.

``--baseline`` times another version of ``envs/design_env.py`` (a copy of the file, e.g. from
before a change) side by side: the same designs, alternating rounds, the evaluator's cache
cleared before each round. The last row times the RL agents' env
(``DesignEnv.from_scorer``) over a scorer that does no work: the env's own cost per step.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.envs.accelerator_env import AcceleratorEnv
from mlsysgym.envs.design_env import DesignEnv
from mlsysgym.experiments.report import stamp_markdown

RESULTS = Path("benchmarks/results/env.md")  # written, under the working directory


def per_call_us(fn, rounds_of_items, before_round=lambda: None) -> float:
    """Median over rounds of the mean CPU time per call (µs); each round has its own items.

    CPU time of this process, not wall time: the machine is shared, and other jobs' turns on
    the cores would otherwise count as ours."""
    times = []
    for items in rounds_of_items:
        before_round()
        t0 = time.process_time()
        for it in items:
            fn(it)
        times.append((time.process_time() - t0) / len(items) * 1e6)
    return statistics.median(times)


def baseline_env(path: str, env: AcceleratorEnv) -> Any:
    """``env``'s space, evaluator, workload and reward in the DesignEnv of the module at
    ``path`` (another version of envs/design_env.py)."""
    spec = importlib.util.spec_from_file_location("baseline_design_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DesignEnv(env.space, env.evaluator, env.workload, reward=env.reward_fn,
                            max_steps=env.max_steps,
                            observation_metrics=env.observation_metrics)


def scorer_env(env: AcceleratorEnv) -> DesignEnv:
    """The RL agents' env over ``env``'s space, scored by a function that does no work."""
    ones, metrics = np.ones(1), {"latency_ms": np.ones(1)}
    return DesignEnv.from_scorer(env.space, lambda designs: (ones, metrics, ones > 0),
                                 max_steps=env.max_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--baseline", help="another version of envs/design_env.py to time")
    args = parser.parse_args()
    load = os.getloadavg()[0]  # other jobs on the shared cores slow ours down, CPU time or not
    env = AcceleratorEnv(args.model, max_steps=10**9)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = args.steps // 5
    actions = [[rng.integers(0, env.space.nvec) for _ in range(n)] for _ in range(5)]
    designs = [[env.decode_action(a) for a in r] for r in actions]
    sim, layers = env.evaluator, env.workload
    old = None if args.baseline is None else baseline_env(args.baseline, env)
    if old is not None:
        old.reset(seed=0)

    # fresh designs (the space has ~4.5 M): the cache is cleared before each round; the
    # baseline (if any) steps through the same designs, each round in alternating order
    steps: dict[str, list[float]] = {"this": [], "baseline": []}
    for i, items in enumerate(actions):
        order = [("this", env), ("baseline", old)][:: 1 if i % 2 == 0 else -1]
        for name, e in order:
            if e is not None:
                steps[name].append(per_call_us(e.step, [items], sim.clear_cache))
    step = statistics.median(steps["this"])
    for ds in designs:  # the same designs again, all cached: the env's own cost shows
        sim.evaluate(ds, layers)
    hits: dict[str, list[float]] = {"this": [], "baseline": []}
    for i, items in enumerate(actions * 2):
        order = [("this", env), ("baseline", old)][:: 1 if i % 2 == 0 else -1]
        for name, e in order:
            if e is not None:
                hits[name].append(per_call_us(e.step, [items]))
    cached = statistics.median(hits["this"])
    sim_raw = per_call_us(lambda d: sim._evaluate([d], layers), designs)
    evaluate = per_call_us(lambda d: sim.evaluate([d], layers), designs, sim.clear_cache)
    scored = scorer_env(env)
    scored.reset(seed=0)
    scorer_step = per_call_us(scored.step, actions)
    lines = [
        f"# Env step time: Accelerator-v0, one-shot, {args.model}",
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_env.py --steps {args.steps}"
         f"{' --baseline OLD' if old is not None else ''}` "
         "(CPU time of the process on a 2-core shared machine; medians of 5 rounds, 10 for cached steps; "
         f"load average {load:.1f} at the start)."),
        "",
        "| what | µs per step |",
        "|---|---:|",
        f"| env.step, fresh designs (total) | {step:.0f} |",
        f"| simulator alone (`_evaluate`, one design) | {sim_raw:.0f} |",
        f"| evaluator with cache bookkeeping (`evaluate`, miss) | {evaluate:.0f} |",
        f"| env overhead = step − simulator | {step - sim_raw:.0f} |",
        f"| env.step when the design is cached | {cached:.0f} |",
        (f"| `DesignEnv.from_scorer` step, scorer doing no work (the RL agents' env) "
         f"| {scorer_step:.0f} |"),
    ]
    if old is not None:
        base = statistics.median(steps["baseline"])
        lines += [(f"| baseline ({Path(args.baseline).name}) env.step, same fresh designs "
                   f"| {base:.0f} |"),
                  f"| baseline env overhead = step − simulator | {base - sim_raw:.0f} |",
                  (f"| baseline env.step when the design is cached "
                   f"| {statistics.median(hits['baseline']):.0f} |")]
    lines.append("")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(stamp_markdown("\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
