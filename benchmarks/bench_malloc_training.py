"""How to train a mallocGame policy across graphs (issue #21, item 3): MaskablePPO on the
whole training split, zero-shot on the validation split, against the XLA-style heuristic.

The shipped ``learned`` agent's networks rank search steps (which buffer's decision to change,
which LNS neighbourhood to repair); they do not place buffers themselves. This script
measures the constructive alternative the issue names: one MaskablePPO policy
(``MultiInputPolicy`` on :class:`~mlsysgym.envs.malloc_game.MallocGameEnv`'s observation,
whose size does not depend on the graph) that places every buffer of any graph. Each
episode is a training instance drawn at random (all 72 of the train split: its workloads ×
0.25 / 0.5 / 1 of the activation working set). Four arms, each rolled out on the 15
validation instances (families gpt and efficientnet, never trained on), beside the greedy
rule without a network (best fit in fast memory when that lowers the time now, else slow;
:func:`~mlsysgym.agents.malloc_agents.greedy_policy`):

* ``untrained`` — the random initial network;
* ``bc`` — behaviour-cloned on the heuristic's episodes of every training instance (the
  start PPO's episodes then perturb);
* ``bc+ppo`` — that start trained with PPO across the training instances;
* ``ppo`` — PPO from the random start;
* ``imitation`` — behaviour-cloned on searched episodes: each training instance's heuristic
  episode after up to ``--improvements`` first improvements of the ``learned`` agents' local
  search (:func:`~mlsysgym.agents.learned_malloc.improved_episode`, XLA order, at most
  ``--max-moves`` moves; no clock, so the same on any machine).

Per instance: the greedy rollout's time and the best of ``--samples`` sampled rollouts, as %
of the heuristic's time saved (positive: faster than the heuristic).

Run: nice -n 19 .venv/bin/python benchmarks/bench_malloc_training.py [--timesteps 131072]
Writes benchmarks/results/malloc_training.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from mlsysgym.agents.malloc_agents import behaviour_clone, episode_demo, greedy_policy
from mlsysgym.agents.malloc_baselines import heuristic_actions
from mlsysgym.agents.problems import make_problem
from mlsysgym.agents.rl import quiet_logger
from mlsysgym.agents.sequential import replay_episode
from mlsysgym.core.target import cpu_seconds, provenance
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir import workloads
from mlsysgym.simulators.memory import MemoryInstance

RESULTS = Path("benchmarks/results")  # default --out folder, under the working directory
ARMS = ("untrained", "bc", "bc+ppo", "ppo", "imitation")


class AcrossGraphs(gym.Wrapper):
    """A mallocGame env that plays a training instance drawn at random each episode."""

    def __init__(self, env: MallocGameEnv, instances: Sequence[MemoryInstance], seed: int) -> None:
        super().__init__(env)
        self.instances = list(instances)
        self.rng = np.random.default_rng(seed)

    def reset(self, **kwargs: Any):
        k = int(self.rng.integers(len(self.instances)))
        return self.env.reset(seed=kwargs.get("seed"), options={"workload": self.instances[k]})

    def action_masks(self) -> np.ndarray:
        return self.env.unwrapped.action_masks()


def _env(spec: workloads.MallocInstanceSpec) -> MallocGameEnv:
    """A fresh env of one instance, with the options of its ``make_problem`` problem."""
    return make_problem(spec.problem_spec()).make_env()


def _play(model: Any, env: MallocGameEnv, deterministic: bool) -> float:
    """One masked rollout in ``env`` of ``model`` (None: the greedy rule, :func:`greedy_policy`):
    the episode's time (µs)."""
    obs, _ = env.reset()
    done = False
    while not done:
        if model is None:
            a = greedy_policy(env)
        else:
            a, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=deterministic)
        obs, _, term, trunc, info = env.step(int(a))
        done = term or trunc
    return float(info["time_us"])


def episode_time(env: MallocGameEnv, acts: Sequence[int]) -> float:
    """The time (µs) of the episode ``acts``, replayed in ``env`` (ValueError if it does not
    replay to the end inside the masks)."""
    _, finished, info = replay_episode(env, acts)
    if not finished:
        raise ValueError(f"the episode does not replay in {env.problem.name}")
    return float(info["time_us"])


def evaluate(model: Any, envs: dict[str, MallocGameEnv], base: dict[str, float], samples: int,
             seed: int) -> list[dict[str, Any]]:
    """Per validation instance: greedy and best-of-``samples`` % of the heuristic's time saved."""
    import torch

    rows = []
    for name, env in envs.items():
        t0 = time.perf_counter()
        greedy = _play(model, env, True)
        torch.manual_seed(seed)
        sampled = [_play(model, env, False) for _ in range(samples if model is not None else 0)]
        best = min([greedy, *sampled])
        rows.append({"instance": name, "n_buffers": env.n_buffers,
                     "greedy_pct": 100 * (1 - greedy / base[name]),
                     "best_pct": 100 * (1 - best / base[name]),
                     "rollout_s": time.perf_counter() - t0})
    return rows


def clone_demos(train_envs: Sequence[MallocGameEnv], episodes: Sequence[Sequence[int]]
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """One episode (actions) per training instance as stacked demonstrations."""
    demos = [episode_demo(e, acts) for e, acts in zip(train_envs, episodes)]
    obs = {k: np.concatenate([d[0][k] for d in demos]) for k in demos[0][0]}
    return obs, np.concatenate([d[1] for d in demos]), np.concatenate([d[2] for d in demos])


def searched_actions(name: str, improvements: int, max_moves: int) -> list[int]:
    """The env actions of one training instance's searched episode (see the module doc)."""
    from mlsysgym.agents.learned_malloc import improved_episode, start_episode

    env = _env(workloads.MallocInstanceSpec.from_name(name))
    builder, best, best_t = start_episode(env.problem, env.order)
    best, _ = improved_episode(builder, best, best_t, env.n_offsets, improvements, max_moves)
    return [int(a) for a in best]  # 0 slow, a ≥ 1 the a-th best-fit offset: the env's actions


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train the arms and roll each out on the validation split."""
    import torch
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    train_specs = workloads.malloc_instances("train")
    train_envs = [_env(s) for s in train_specs]
    val_envs = {s.name: _env(s) for s in workloads.malloc_instances("validation")}
    base = {k: episode_time(e, heuristic_actions(e)) for k, e in val_envs.items()}
    print(f"{len(train_envs)} training instances, {len(val_envs)} validation instances",
          file=sys.stderr, flush=True)

    def new_model(seed: int) -> Any:
        env = AcrossGraphs(_env(train_specs[0]), [e.problem for e in train_envs], seed)
        model = MaskablePPO("MultiInputPolicy", env, n_steps=args.n_steps,
                            batch_size=args.batch_size, n_epochs=4,
                            learning_rate=args.learning_rate, ent_coef=0.0, seed=seed,
                            device="cpu", verbose=0, policy_kwargs={"net_arch": [args.hidden] * 2})
        quiet_logger(model)
        return model

    heuristic = [heuristic_actions(e) for e in train_envs]
    demos = clone_demos(train_envs, heuristic)
    teacher, teacher_cpu_s = None, None
    if "imitation" in args.arms:
        c0 = cpu_seconds()
        with ProcessPoolExecutor(args.workers) as pool:
            searched = list(pool.map(searched_actions, [s.name for s in train_specs],
                                     [args.improvements] * len(train_specs),
                                     [args.max_moves] * len(train_specs)))
        teacher_cpu_s = cpu_seconds() - c0
        imitation = clone_demos(train_envs, searched)
        teacher = [100 * (1 - episode_time(e, a) / episode_time(e, h))
                   for e, a, h in zip(train_envs, searched, heuristic)]
    out: dict[str, Any] = {"train_instances": [s.name for s in train_specs],
                           "demo_steps": len(demos[1]),
                           "searched_vs_heuristic_pct": teacher, "searched_cpu_s": teacher_cpu_s,
                           "arms": {"greedy rule": [{"seed": 0, "cpu_s": 0.0, "wall_s": 0.0,
                                                     "bc_loss": None,
                                                     "rows": evaluate(None, val_envs, base, 0, 0)}]}}
    for seed in args.seeds:
        for arm in args.arms:
            c0, t0 = cpu_seconds(), time.perf_counter()
            model = new_model(seed)
            loss = None
            if arm.startswith("bc") or arm == "imitation":
                loss = behaviour_clone(model, *(demos if arm != "imitation" else imitation),
                                       epochs=args.bc_epochs)
            if arm.endswith("ppo"):
                model.learn(total_timesteps=args.timesteps)
            train = {"cpu_s": cpu_seconds() - c0, "wall_s": time.perf_counter() - t0, "bc_loss": loss}
            rows = evaluate(model, val_envs, base, args.samples, seed)
            out["arms"].setdefault(arm, []).append({"seed": seed, **train, "rows": rows})
            print(f"[seed {seed}] {arm}: trained in {train['wall_s']:.0f} s; greedy "
                  f"{np.mean([r['greedy_pct'] for r in rows]):+.2f} %, best of {1 + args.samples} "
                  f"{np.mean([r['best_pct'] for r in rows]):+.2f} % vs the heuristic",
                  file=sys.stderr, flush=True)
    return out


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    """The Markdown table: each arm's mean over instances (and seeds)."""
    lines = ["# How to train a mallocGame policy across graphs: validation split, zero-shot", "",
             f"Command: `{' '.join(sys.argv)}`", "",
             (f"MaskablePPO trained on the {len(res['train_instances'])} train-split instances "
              f"(behaviour cloning: {res['demo_steps']} decisions, one episode per instance); "
              "% of the XLA-style heuristic's time saved on the 15 validation instances (families gpt, efficientnet; "
              "never trained on), mean over instances, per seed; positive is faster."), "",
             "| arm | seed | greedy | best of rollouts | worse than heuristic (greedy) | training CPU s |",
             "|---|---:|---:|---:|---:|---:|"]
    for arm, runs in res["arms"].items():
        for r in runs:
            g = np.array([x["greedy_pct"] for x in r["rows"]])
            b = np.array([x["best_pct"] for x in r["rows"]])
            lines.append(f"| {arm} | {r['seed']} | {g.mean():+.2f} % | {b.mean():+.2f} % | "
                         f"{int((g < -1e-9).sum())}/{len(g)} | {r['cpu_s']:.0f} |")
    if res.get("searched_vs_heuristic_pct"):
        lines += ["", (f"Imitation's teacher: the searched episodes save "
                       f"{np.mean(res['searched_vs_heuristic_pct']):.2f} % of the heuristic's time "
                       f"on the training instances (mean; {args.improvements} improvements, "
                       f"{args.max_moves} moves at most; {res['searched_cpu_s']:.0f} CPU s, not in "
                       "the table's training CPU s).")]
    lines += ["", f"Best of rollouts: the greedy and {args.samples} sampled rollouts.", "",
              "## Per instance, greedy (first seed)", "",
              "| instance | buffers | " + " | ".join(res["arms"]) + " |",
              "|---|---:|" + "---:|" * len(res["arms"])]
    first = {arm: runs[0]["rows"] for arm, runs in res["arms"].items()}
    for i, row in enumerate(next(iter(first.values()))):
        cells = " | ".join(f"{first[a][i]['greedy_pct']:+.2f}" for a in first)
        lines.append(f"| {row['instance']} | {row['n_buffers']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timesteps", type=int, default=131072, help="PPO steps per arm and seed")
    ap.add_argument("--samples", type=int, default=15, help="sampled rollouts per instance")
    ap.add_argument("--bc-epochs", type=int, default=300)
    ap.add_argument("--n-steps", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--learning-rate", type=float, default=3e-4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--improvements", type=int, default=64, help="imitation: first improvements")
    ap.add_argument("--max-moves", type=int, default=256, help="imitation: moves tried at most")
    ap.add_argument("--workers", type=int, default=2, help="processes for the searched episodes")
    ap.add_argument("--out", type=Path, default=RESULTS / "malloc_training.md")
    args = ap.parse_args(argv)
    if min(args.timesteps, args.bc_epochs, args.n_steps, args.batch_size, args.hidden,
           args.improvements, args.max_moves, args.workers) < 1 \
            or args.samples < 0:
        ap.error("--timesteps, --bc-epochs, --n-steps, --batch-size, --hidden, --improvements, "
                 "--max-moves and --workers must be ≥ 1, --samples ≥ 0")
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {**res, **provenance(command=" ".join(sys.argv))}, indent=1) + "\n")
    args.out.write_text(stamp_markdown(report(res, args)))
    print(f"wrote {args.out} (+ .json)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
