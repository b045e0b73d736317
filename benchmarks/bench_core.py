"""Before/after the one-core redesign (#18), side by side in one run: accelerator evaluations/s,
env step overhead, DRAM simulated requests/s, mallocGame and kernel-scheduling step time.

Each source tree (``--before REV``, a git revision checked out into a temporary worktree, and
the working tree) is imported in its own child process; rounds alternate between the trees
so that load from other jobs on the machine falls on both alike; the table reports medians
of the rounds (CPU time of the child, not wall time).

Run: .venv/bin/python benchmarks/bench_core.py [--before a9f82bd^1] [--rounds 5]
Writes benchmarks/results/core.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mlsysgym.experiments.report import stamp_markdown

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path("benchmarks/results/core.md")  # written, under the working directory
LAYERS = ("core", "ir", "simulators", "envs", "agents", "costmodels", "compiler", "experiments")

# What one child measures (the public APIs both trees share); prints one JSON line.
PROBE = r"""
import json, time
import numpy as np

def cpu(fn, n):
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n

out = {}
from mlsysgym.envs.accelerator_env import AcceleratorEnv
env = AcceleratorEnv("resnet50", max_steps=10**9)
env.reset(seed=0)
rng = np.random.default_rng(0)
actions = [rng.integers(0, env.space.nvec) for _ in range(2048)]
designs = [env.decode_action(a) for a in actions]
sim, graph = env.evaluator, env.workload
sim._evaluate(designs[:8], graph)
out["accelerator_evals_per_s"] = len(designs) / cpu(lambda: sim._evaluate(designs, graph), 3)
for a in actions[:256]:
    env.step(a)                                      # cache them
it = iter(actions[:256] * 8)
step = cpu(lambda: env.step(next(it)), 2048)
one = cpu(lambda: sim.evaluate([designs[0]], graph), 2048)   # a cache hit
out["env_step_cached_us"] = step * 1e6
out["env_overhead_us"] = (step - one) * 1e6

from mlsysgym.simulators.dram import prepare_trace, simulate
from mlsysgym.simulators.dram_traces import stream_trace
p = prepare_trace(stream_trace(200_000))
simulate(prepare_trace(stream_trace(100)))
out["dram_requests_per_s"] = 200_000 / cpu(lambda: simulate(p), 3)

def episode_step_us(env, n_episodes):
    steps, t0 = 0, time.process_time()
    r = np.random.default_rng(0)
    for e in range(n_episodes):
        env.reset(seed=e)
        done = False
        while not done:
            a = int(r.choice(np.flatnonzero(env.action_masks())))
            _, _, term, trunc, _ = env.step(a)
            done, steps = term or trunc, steps + 1
    return (time.process_time() - t0) / steps * 1e6

from mlsysgym.envs.malloc_game import MallocGameEnv
out["malloc_step_us"] = episode_step_us(MallocGameEnv("resnet18", capacity_fraction=0.1), 10)
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
out["scheduling_step_us"] = episode_step_us(KernelSchedulingEnv("resnet18"), 5)
print(json.dumps(out))
"""

METRICS = (("accelerator_evals_per_s", "accelerator evaluations/s (ResNet-50, batch 2,048)", "higher"),
           ("env_step_cached_us", "Accelerator-v0 step, design cached (µs)", "lower"),
           ("env_overhead_us", "env overhead = step − evaluator cache hit (µs)", "lower"),
           ("dram_requests_per_s", "DRAM simulated requests/s (stream, 200 k requests)", "higher"),
           ("malloc_step_us", "MallocGame-v0 step (ResNet-18, random valid actions, µs)", "lower"),
           ("scheduling_step_us", "KernelScheduling-v0 step (ResNet-18, µs)", "lower"))


def package_view(tree: Path, into: Path) -> Path:
    """A directory whose ``mlsysgym`` package is ``tree`` laid out as installed (the
    pyproject's package-dir mapping, by symlinks)."""
    pkg = into / "mlsysgym"
    pkg.mkdir(parents=True)
    for entry in (tree / "mlsysgym").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for layer in LAYERS:
        if (tree / layer).is_dir():  # a layer the older tree does not have yet is left out
            (pkg / layer).symlink_to(tree / layer)
    return into


def measure(path: Path) -> dict[str, float]:
    """One child process importing mlsysgym from ``path``."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       check=False)
    if r.returncode:
        raise SystemExit(f"bench_core: the probe failed for {path}: "
                         f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a9f82bd^1",
                        help="git revision before the redesign (default: the parent of its merge)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        worktree = tmp_path / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                        args.before], check=True, capture_output=True)
        try:
            trees = {"before": package_view(worktree, tmp_path / "view-before"),
                     "after": package_view(ROOT, tmp_path / "view-after")}
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
            for i in range(args.rounds):
                for name, path in trees.items():
                    runs[name].append(measure(path))
                    print(f"round {i + 1}/{args.rounds} {name}: {runs[name][-1]}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], check=False, capture_output=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m, _, _ in METRICS}
           for k, v in runs.items()}
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
                         capture_output=True, text=True, check=False).stdout.strip()
    lines = [f"# One core (#18): performance before ({rev}) and after, one run", "",
             (f"Command: `.venv/bin/python benchmarks/bench_core.py --before {args.before} "
             f"--rounds {args.rounds}` — medians of {args.rounds} alternating rounds, CPU time "
             "of each child process."), "",
             "| what | before | after | after / before | better is |", "|---|---:|---:|---:|---|"]
    for m, label, better in METRICS:
        b, a = med["before"][m], med["after"][m]
        fmt = ",.0f" if b >= 1000 else ".1f"
        lines.append(f"| {label} | {b:{fmt}} | {a:{fmt}} | {a / b:.2f} | {better} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(stamp_markdown("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
