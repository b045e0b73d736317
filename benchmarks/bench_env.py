"""Accelerator-v0 step time (one-shot, ResNet-50): total, evaluator share and env overhead.

Run: .venv/bin/python benchmarks/bench_env.py [--steps 2000]
Writes benchmarks/results/env.md. Target: env overhead ≤ 200 µs per step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from mlsysgym.envs.accelerator_env import AcceleratorEnv
from mlsysgym.experiments.report import stamp_markdown

RESULTS = Path(__file__).parent / "results" / "env.md"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--model", default="resnet50")
    args = parser.parse_args()
    env = AcceleratorEnv(args.model, max_steps=10**9)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = args.steps // 5
    actions = [[rng.integers(0, env.space.nvec) for _ in range(n)] for _ in range(5)]
    designs = [[env.decode_action(a) for a in r] for r in actions]
    sim, layers = env.evaluator, env.workload

    step = per_call_us(env.step, actions)  # fresh designs (the space has ~4.5 M)
    cached = per_call_us(env.step, actions)  # the same designs again: all cached
    sim_raw = per_call_us(lambda d: sim._evaluate([d], layers), designs)
    evaluate = per_call_us(lambda d: sim.evaluate([d], layers), designs, sim.clear_cache)
    lines = [
        f"# Env step time: Accelerator-v0, one-shot, {args.model}",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_env.py --steps {args.steps}` "
        "(CPU time of the process on a 2-core shared machine; medians of 5 rounds).",
        "",
        "| what | µs per step |",
        "|---|---:|",
        f"| env.step, fresh designs (total) | {step:.0f} |",
        f"| simulator alone (`_evaluate`, one design) | {sim_raw:.0f} |",
        f"| evaluator with cache bookkeeping (`evaluate`, miss) | {evaluate:.0f} |",
        f"| env overhead = step − simulator | {step - sim_raw:.0f} |",
        f"| env.step when the design is cached | {cached:.0f} |",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(stamp_markdown("\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
