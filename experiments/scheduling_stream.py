"""Streaming kernel scheduling (DeepSoCS setting): jobs of zoo models arriving over time on a SoC.

``python -m mlsysgym.experiments.scheduling_stream [--quick] [--out DIR]``

For a few seeded Poisson job streams (:func:`~mlsysgym.simulators.streams.poisson_stream`) at
two loads on ``soc_npu`` it compares, by mean job completion time (JCT = job finish − arrival,
DeepSoCS's metric) and makespan:

- HEFT (ops by upward rank over the whole stream), HEFT-FIFO (job by job in arrival order,
  upward rank within a job) and CPOP, all respecting the arrivals;
- the learned agent: MaskablePPO with the graph policy of
  :mod:`mlsysgym.agents.scheduling_agents`, trained on other streams (other seeds, both loads)
  in KernelSchedulingStream-v0 with the mean-JCT reward; best by mean JCT of its greedy rollout
  and ``samples`` sampled rollouts (PPO), then local search on mean JCT
  (:mod:`mlsysgym.agents.scheduling_search`, PPO+LS) and the same search from HEFT-FIFO
  (FIFO+LS, the control), each with the same budget;
- CP-SAT minimizing the mean JCT with release constraints (time limit, hinted with the better
  of HEFT and HEFT-FIFO): its schedule and its lower bound on the mean JCT (never below the
  per-job critical-path bound), and on short streams (``small_*``) where it can bound the
  optimum, how far the list schedulers are from it. Writes ``scheduling_stream.md`` (the machine
stated under its title), ``scheduling_stream.png`` and ``scheduling_stream.provenance.json``
into ``./results/scheduling_stream/`` (or ``--out``); the repository's published results in
``experiments/results/`` are written with ``--out experiments/results``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.experiments.report import stamp_markdown, write_provenance
from mlsysgym.simulators.multicore import Schedule, SchedulingProblem, load_platform, simulate
from mlsysgym.simulators.streams import (
    build_stream_problem,
    job_metrics,
    poisson_stream,
)

__all__ = ["SmallRow", "StreamConfig", "StreamRow", "main", "quick_config", "run", "run_small",
           "stream_config", "write_results"]

RESULTS_DIR = Path("results") / "scheduling_stream"  # relative to the working directory
METHODS = ("HEFT", "HEFT-FIFO", "CPOP", "PPO", "PPO+LS", "FIFO+LS", "CP-SAT")


@dataclass(frozen=True)
class StreamConfig:
    """The streams and the budgets."""

    models: tuple[str, ...] = ("alexnet", "resnet18", "mobilenetv2")
    platform: str = "soc_npu"
    loads: tuple[float, ...] = (0.5, 2.0)
    n_jobs: int = 5
    test_seeds: tuple[int, ...] = (100, 101, 102)
    train_seeds: tuple[int, ...] = tuple(range(6))
    train_timesteps: int = 4096
    samples: int = 16
    search_time_s: float = 3.0
    cpsat_time_s: float = 3.0
    small_models: tuple[str, ...] = ("alexnet", "resnet18")   # the CP-SAT section
    small_n_jobs: int = 2
    small_seeds: tuple[int, ...] = (100, 101)
    small_cpsat_time_s: float = 6.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.models or not self.loads or not self.test_seeds:
            raise MlsysgymError("give at least one model, load and test seed")


def stream_config() -> StreamConfig:
    """The reported run (about 2–3 minutes on 2 shared cores)."""
    return StreamConfig()


def quick_config() -> StreamConfig:
    """A smoke run (< 30 s): short streams of small models, tiny budgets."""
    return StreamConfig(models=("alexnet", "resnet18"), n_jobs=3, test_seeds=(100,),
                        train_seeds=(0,), train_timesteps=128, samples=2, search_time_s=0.5,
                        cpsat_time_s=1.0, small_seeds=(100,), small_cpsat_time_s=1.0)


@dataclass(frozen=True)
class StreamRow:
    """One stream: per method (mean JCT µs, makespan µs), the mean-JCT bound, CP-SAT's status."""

    load: float
    seed: int
    jobs: str
    n_ops: int
    jct_us: dict[str, float]
    makespan_us: dict[str, float]
    jct_lb_us: float  # CP-SAT's lower bound on the mean JCT (≥ the static bound)
    cpsat_status: str
    cpsat_optimal: bool
    wall_s: dict[str, float]


def _train(cfg: StreamConfig, platform: Any) -> Any:
    """The graph policy trained with MaskablePPO on the training streams, mean-JCT reward."""
    from mlsysgym.agents.scheduling_agents import AgentConfig, SchedulingAgent
    from mlsysgym.envs.kernel_scheduling_stream import KernelSchedulingStreamEnv

    class _StreamAgent(SchedulingAgent):
        def _env(self, workloads: Sequence[Any], max_ops: int, max_edges: int,
                 rank: int) -> KernelSchedulingStreamEnv:
            env = KernelSchedulingStreamEnv(list(workloads), self.platform, window=self.config.window,
                                            max_ops=max_ops, max_edges=max_edges, objective="jct")
            env.reset(seed=self.config.seed + 1000 * rank)
            return env

    train = [build_stream_problem(poisson_stream(cfg.models, cfg.n_jobs, load, platform, s), platform,
                                  name=f"train-l{load}-s{s}")
             for load in cfg.loads for s in cfg.train_seeds]
    agent = _StreamAgent(platform, AgentConfig(total_timesteps=cfg.train_timesteps, n_envs=2,
                                               n_steps=256, batch_size=128, n_epochs=2,
                                               seed=cfg.seed))
    agent.train(train)
    return agent


def _ppo(agent: Any, problem: SchedulingProblem, cfg: StreamConfig) -> Schedule:
    """Best by mean JCT of the greedy rollout and ``samples`` sampled ones (ties: earlier)."""
    import torch
    from mlsysgym.agents.scheduling_agents import policy_rollouts

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        agent.policy.set_training_mode(False)
        cands = policy_rollouts(agent.policy, problem, agent.platform, 1, True, cfg.seed,
                                agent.config.window)
        done = 0
        while done < cfg.samples:
            k = min(8, cfg.samples - done)
            cands += policy_rollouts(agent.policy, problem, agent.platform, k, False,
                                     cfg.seed * 100_003 + done, agent.config.window)
            done += k
    finally:
        torch.set_num_threads(threads)
    return min(cands, key=lambda s: job_metrics(problem, s).mean_completion_us)


def _timed(wall: dict[str, float], name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    wall[name] = time.perf_counter() - t
    return out


def _run_stream(prob: SchedulingProblem, agent: Any, cfg: StreamConfig, load: float, seed: int,
                jobs: str) -> StreamRow:
    """Every method on one stream."""
    from mlsysgym.agents.scheduling_baselines import cpop, cpsat_schedule, heft
    from mlsysgym.agents.scheduling_search import SearchConfig, local_search

    search = SearchConfig(time_limit_s=cfg.search_time_s, samples=0, objective="jct", seed=cfg.seed)
    wall: dict[str, float] = {}
    s: dict[str, Schedule] = {}
    s["HEFT"] = _timed(wall, "HEFT", heft, prob)
    s["HEFT-FIFO"] = _timed(wall, "HEFT-FIFO", heft, prob, by_arrival=True)
    s["CPOP"] = _timed(wall, "CPOP", cpop, prob)
    s["PPO"] = _timed(wall, "PPO", _ppo, agent, prob, cfg)
    s["PPO+LS"] = _timed(wall, "PPO+LS", local_search, prob, agent.platform, search,
                         policy=agent.policy, starts=[s["PPO"]], window=agent.config.window).schedule
    s["FIFO+LS"] = _timed(wall, "FIFO+LS", local_search, prob, agent.platform, search,
                          starts=[s["HEFT-FIFO"]]).schedule
    ex = _timed(wall, "CP-SAT", cpsat_schedule, prob, time_limit_s=cfg.cpsat_time_s, num_workers=1,
                seed=cfg.seed, objective="jct")
    s["CP-SAT"] = ex.schedule
    jct, ms = {}, {}
    for name, sched in s.items():
        simulate(prob, sched)  # raises if a method produced an invalid schedule
        m = job_metrics(prob, sched)
        jct[name], ms[name] = m.mean_completion_us, m.makespan_us
    return StreamRow(load=load, seed=seed, jobs=jobs, n_ops=prob.n_ops, jct_us=jct, makespan_us=ms,
                     jct_lb_us=ex.lower_bound_us, cpsat_status=ex.status,
                     cpsat_optimal=ex.optimal, wall_s=wall)


def run(cfg: StreamConfig, progress: bool = True) -> tuple[list[StreamRow], dict[str, float]]:
    """Every method on every test stream; also returns training stats."""
    platform = load_platform(cfg.platform)
    t0 = time.perf_counter()
    agent = _train(cfg, platform)
    train = {"train_s": time.perf_counter() - t0, "timesteps": float(agent.stats.timesteps)}
    rows: list[StreamRow] = []
    for load in cfg.loads:
        for seed in cfg.test_seeds:
            jobs = poisson_stream(cfg.models, cfg.n_jobs, load, platform, seed)
            prob = build_stream_problem(jobs, platform)
            row = _run_stream(prob, agent, cfg, load, seed, "+".join(str(j.workload) for j in jobs))
            rows.append(row)
            if progress:
                print(f"load {load} seed {seed}: {prob.n_ops} ops, mean JCT "
                      + ", ".join(f"{k} {v:.0f}" for k, v in row.jct_us.items())
                      + f" (LB {row.jct_lb_us:.0f})", flush=True)
    return rows, train


@dataclass(frozen=True)
class SmallRow:
    """A small stream: mean JCT (µs) of the list schedulers and of CP-SAT, with its bound."""

    load: float
    seed: int
    jobs: str
    n_ops: int
    jct_us: dict[str, float]
    jct_lb_us: float
    cpsat_status: str
    cpsat_optimal: bool
    cpsat_s: float


def run_small(cfg: StreamConfig) -> list[SmallRow]:
    """CP-SAT (mean-JCT objective) against the list schedulers on short streams it can bound."""
    from mlsysgym.agents.scheduling_baselines import cpop, cpsat_schedule, heft

    platform = load_platform(cfg.platform)
    rows = []
    for load in cfg.loads:
        for seed in cfg.small_seeds:
            jobs = poisson_stream(cfg.small_models, cfg.small_n_jobs, load, platform, seed)
            prob = build_stream_problem(jobs, platform)
            t = time.perf_counter()
            ex = cpsat_schedule(prob, time_limit_s=cfg.small_cpsat_time_s, num_workers=1,
                                seed=cfg.seed, objective="jct")
            wall = time.perf_counter() - t
            jct = {name: job_metrics(prob, sched).mean_completion_us for name, sched in (
                ("HEFT", heft(prob)), ("HEFT-FIFO", heft(prob, by_arrival=True)),
                ("CPOP", cpop(prob)), ("CP-SAT", ex.schedule))}
            rows.append(SmallRow(load=load, seed=seed, jobs="+".join(str(j.workload) for j in jobs),
                                 n_ops=prob.n_ops, jct_us=jct, jct_lb_us=ex.lower_bound_us,
                                 cpsat_status=ex.status, cpsat_optimal=ex.optimal, cpsat_s=wall))
    return rows


def _mean_ratio(rows: Sequence[StreamRow], method: str, metric: str) -> float:
    key = "jct_us" if metric == "jct" else "makespan_us"
    return float(np.mean([getattr(r, key)[method] / getattr(r, key)["HEFT"] for r in rows]))


def _bold_min(values: dict[str, float], methods: Sequence[str]) -> list[str]:
    """Table cells for ``methods`` (µs, no decimals), the smallest over all of ``values`` in bold."""
    best = min(values.values())
    return [f"**{values[m]:.0f}**" if values[m] <= best + 1e-6 else f"{values[m]:.0f}"
            for m in methods]


def _jct_row(r: StreamRow | SmallRow, methods: Sequence[str], gap_digits: int) -> str:
    """One mean-JCT table row: cells, the JCT lower bound, its gap and CP-SAT's status."""
    best = min(r.jct_us.values())
    status = "proven optimal" if r.cpsat_optimal else (
        "optimal on its grid" if r.cpsat_status == "OPTIMAL" else r.cpsat_status.lower())
    return (f"| {r.load:g} | {r.seed} | {r.jobs} | {r.n_ops} | "
            + " | ".join(_bold_min(r.jct_us, methods))
            + f" | {r.jct_lb_us:.0f} | {100 * (1 - r.jct_lb_us / best):.{gap_digits}f}% | {status} |")


def markdown(rows: Sequence[StreamRow], cfg: StreamConfig, train: dict[str, float],
             wall_s: float, command: str, small: Sequence[SmallRow] = ()) -> str:
    """The results as Markdown: per-stream tables, per-load means relative to HEFT."""
    intro = (f"Platform `{cfg.platform}`; streams of {cfg.n_jobs} jobs drawn uniformly from "
             f"{', '.join(cfg.models)} with Poisson arrivals at load ρ ∈ "
             f"{{{', '.join(str(x) for x in cfg.loads)}}} (mean inter-arrival = mean single-job "
             "makespan lower bound / ρ), test seeds "
             f"{', '.join(str(s) for s in cfg.test_seeds)}. Arrivals are known in advance "
             "(offline scheduling with release times). JCT = job finish − arrival; times in µs.")
    methods = (f"PPO: MaskablePPO graph policy trained {int(train['timesteps'])} steps "
               f"({train['train_s']:.0f} s) in KernelSchedulingStream-v0 (mean-JCT reward) on "
               f"{len(cfg.train_seeds) * len(cfg.loads)} other streams; best of greedy + "
               f"{cfg.samples} samples by mean JCT. PPO+LS / FIFO+LS: local search on mean JCT "
               f"from PPO / from HEFT-FIFO, {cfg.search_time_s:g} s each. CP-SAT: minimum mean "
               f"JCT with start ≥ release constraints, {cfg.cpsat_time_s:g} s, 1 worker, hinted "
               "with the better of HEFT and HEFT-FIFO; *JCT LB* is its lower bound on the mean "
               "JCT (never below the per-job critical-path bound), *gap* = 1 − LB / best found.")
    out = ["# Streaming kernel scheduling (DeepSoCS setting)", "",
           (f"Command: `{command}` — {wall_s:.0f} s wall on 2 shared cores (torch 1 thread, "
           "CP-SAT 1 worker)."), "", intro, "", methods, "",
           "## Mean job completion time (µs; lower is better; best in bold)", "",
           "| load | seed | jobs | ops | " + " | ".join(METHODS) + " | JCT LB | gap | CP-SAT |",
           "|---|---|---|---|" + "---|" * (len(METHODS) + 3)]
    out += [_jct_row(r, METHODS, gap_digits=1) for r in rows]
    out += ["", "## Makespan (µs; lower is better; best in bold)", "",
            "| load | seed | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    out += [f"| {r.load:g} | {r.seed} | " + " | ".join(_bold_min(r.makespan_us, METHODS)) + " |"
            for r in rows]
    out += ["", "## Mean over streams, relative to HEFT (< 1 is better)", "",
            "| load | metric | " + " | ".join(METHODS) + " |", "|---|---|" + "---|" * len(METHODS)]
    for load in cfg.loads:
        sub = [r for r in rows if r.load == load]
        for metric in ("jct", "makespan"):
            out.append(f"| {load:g} | {'mean JCT' if metric == 'jct' else 'makespan'} | "
                       + " | ".join(f"{_mean_ratio(sub, m, metric):.3f}" for m in METHODS) + " |")
    walls = {m: float(np.mean([r.wall_s[m] for r in rows])) for m in METHODS}
    out += ["", "Mean wall time per stream (s): "
            + ", ".join(f"{m} {walls[m]:.2f}" for m in METHODS) + ".", ""]
    if small:
        small_methods = ("HEFT", "HEFT-FIFO", "CPOP", "CP-SAT")
        out += ["## CP-SAT on short streams (mean JCT, µs)", "",
                (f"Streams of {cfg.small_n_jobs} jobs from {', '.join(cfg.small_models)}, same "
                f"loads; CP-SAT minimizes the mean JCT for {cfg.small_cpsat_time_s:g} s (1 worker). "
                "*gap* = 1 − LB / best found: how far the best schedule can be from optimal. "
                "Status: *proven optimal* when the bound meets the schedule; *optimal on its grid* "
                "when CP-SAT proved its time-rounded model optimal (the rounding leaves a "
                "small slack in the bound)."), "",
                "| load | seed | jobs | ops | " + " | ".join(small_methods)
                + " | JCT LB | gap | CP-SAT status |", "|---|---|---|---|" + "---|" * 7]
        out += [_jct_row(r, small_methods, gap_digits=2) for r in small]
        out.append("")
    return "\n".join(out)


def _plot(rows: Sequence[StreamRow], cfg: StreamConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(cfg.loads))
    width = 0.8 / len(METHODS)
    for ax, metric, title in zip(axes, ("jct", "makespan"), ("mean job completion time", "makespan")):
        for k, m in enumerate(METHODS):
            vals = [_mean_ratio([r for r in rows if r.load == load], m, metric) for load in cfg.loads]
            ax.bar(x + (k - (len(METHODS) - 1) / 2) * width, vals, width, label=m)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, [f"load {load:g}" for load in cfg.loads])
        ax.set_ylabel(f"{title} / HEFT's")
        ax.set_title(f"{title} (lower is better)")
        lo = min(_mean_ratio([r for r in rows if r.load == load], m, metric)
                 for load in cfg.loads for m in METHODS)
        ax.set_ylim(max(0.0, lo - 0.1), None)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Job streams on {cfg.platform}: relative to HEFT, mean over streams")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(rows: Sequence[StreamRow], cfg: StreamConfig, train: dict[str, float],
                  out_dir: Path, wall_s: float, command: str,
                  small: Sequence[SmallRow] = ()) -> dict[str, Path]:
    """scheduling_stream.md and scheduling_stream.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "scheduling_stream.md", "png": out_dir / "scheduling_stream.png",
             "provenance": out_dir / "scheduling_stream.provenance.json"}
    paths["md"].write_text(stamp_markdown(markdown(rows, cfg, train, wall_s, command, small)))
    write_provenance(paths["provenance"], command=command, seed=cfg.seed)
    _plot(rows, cfg, paths["png"])
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlsysgym.experiments.scheduling_stream",
                                 description="Job streams: HEFT/CPOP vs learned agent vs CP-SAT.")
    ap.add_argument("--quick", action="store_true", help="tiny streams and budgets (< 30 s)")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR,
                    help=f"output directory (default ./{RESULTS_DIR})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = quick_config() if args.quick else stream_config()
    cfg = replace(cfg, seed=args.seed)
    t0 = time.perf_counter()
    rows, train = run(cfg)
    small = run_small(cfg)
    command = "python -m mlsysgym.experiments.scheduling_stream" + (" --quick" if args.quick else "")
    paths = write_results(rows, cfg, train, args.out, time.perf_counter() - t0, command, small)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
