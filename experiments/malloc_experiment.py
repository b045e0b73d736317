"""mallocGame experiment: zoo models × fast-memory capacities, heuristic vs agents vs CP-SAT.

For each instance (model, capacity as a fraction of peak live memory) it reports the
simulated execution time of all-slow, the XLA-style greedy (the heuristic), each agent of
:mod:`mlsysgym.agents.malloc_agents` started from the heuristic (MCTS, MaskablePPO, local
search), and CP-SAT's placement (optimal when its status says so); the % improvement of each
agent over the heuristic, its gap to CP-SAT, and search times. A second table ablates MCTS's
network at the same budget (simulations per move, iterations, rollout depth, time cap): the
self-play-trained network vs no network (uniform prior, zero value; rollouts kept) vs rollouts
only (:func:`~mlsysgym.agents.malloc_agents.pilot_malloc`, no tree), with the seconds and
simulations (rollouts for the pilot) each needed to close ``REACH_FRACTION`` of the gap
between the heuristic and CP-SAT's placement. Writes ``malloc.{md,csv,png}`` and
``malloc.provenance.json`` (where it ran: target fingerprint, versions, commit) into
``./results/malloc/`` (or ``--out DIR``); the Markdown states the machine under its title. The
repository's published results in ``experiments/results/`` are written with
``--out experiments/results``.

Run: ``python -m mlsysgym.experiments.malloc_experiment [--quick] [--models ...] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mlsysgym.agents.malloc_agents import (
    MallocAgentResult,
    evaluate_actions,
    heuristic_actions,
    local_search_malloc,
    mcts_malloc,
    pilot_malloc,
    ppo_malloc,
)
from mlsysgym.agents.malloc_baselines import cpsat_optimum
from mlsysgym.agents.mcts import MCTSConfig
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.experiments.report import stamp_markdown, write_provenance

AGENTS = ("mcts", "ppo", "local_search")
DEFAULT_MODELS = ("alexnet", "resnet18", "mobilenetv2")
DEFAULT_CAPACITIES = (0.05, 0.10, 0.25, 0.50)
RESULTS = Path("results") / "malloc"  # relative to the working directory, never the package


@dataclass(frozen=True)
class Budget:
    """Per-instance budget of every solver."""

    n_offsets: int = 4
    mcts_simulations: int = 32
    mcts_iterations: int = 3
    mcts_value_baseline: bool = True   # value head on returns relative to the heuristic's
    mcts_rollout_depth: int = 3
    mcts_time_s: float = 30.0
    ppo_timesteps: int = 4096
    ppo_bc_epochs: int = 200
    ls_passes: int = 2
    ls_chain_depth: int = 3
    ls_time_s: float = 30.0
    cpsat_time_s: float = 60.0
    cpsat_workers: int = 1
    seed: int = 0


REACH_FRACTION = 0.9   # ablation: time until this fraction of the heuristic→CP-SAT gap is closed
QUICK = Budget(mcts_simulations=4, mcts_iterations=1, mcts_time_s=10.0, ppo_timesteps=256,
               ppo_bc_epochs=20, ls_passes=1, ls_time_s=5.0, cpsat_time_s=5.0)
ABLATION = ("trained", "none", "pilot")   # MCTS with its network, MCTS without, rollouts only


@dataclass(frozen=True)
class Row:
    """One instance's results (times in µs of simulated execution, wall times in s)."""

    model: str
    capacity: float
    buffers: int
    all_slow_us: float
    heuristic_us: float
    mcts_us: float
    ppo_us: float
    local_search_us: float
    cpsat_us: float
    cpsat_status: str
    cpsat_gap: float | None
    mcts_s: float
    ppo_s: float
    local_search_s: float
    cpsat_s: float
    mcts_source: str
    ppo_source: str
    # ablation (same MCTS budget and cap): final times, wall, and the seconds /
    # simulations (pilot: rollouts) to first close REACH_FRACTION of the heuristic→CP-SAT gap
    # (None: never)
    abl_trained_us: float = float("nan")
    abl_none_us: float = float("nan")
    abl_pilot_us: float = float("nan")
    abl_trained_s: float = float("nan")
    abl_none_s: float = float("nan")
    abl_pilot_s: float = float("nan")
    reach_trained_s: float | None = None
    reach_none_s: float | None = None
    reach_pilot_s: float | None = None
    reach_trained_sims: int | None = None
    reach_none_sims: int | None = None
    reach_pilot_sims: int | None = None

    def over_heuristic(self, agent: str) -> float:
        """% of the heuristic's time saved by ``agent`` (positive = faster)."""
        return 100.0 * (self.heuristic_us - getattr(self, f"{agent}_us")) / self.heuristic_us

    def gap_to_cpsat(self, agent: str) -> float:
        """% by which ``agent`` is slower than CP-SAT's placement (negative: faster)."""
        return 100.0 * (getattr(self, f"{agent}_us") - self.cpsat_us) / self.cpsat_us


def reach(result: MallocAgentResult, target_us: float) -> tuple[float | None, int | None]:
    """(seconds, simulations) at which ``result``'s trace first got to ``target_us`` or below."""
    for t, n, _, us in result.trace:
        if us <= target_us + 1e-9:
            return t, n
    return None, None


def ablation(env: MallocGameEnv, cfg: MCTSConfig,
             trained: MallocAgentResult) -> dict[str, MallocAgentResult]:
    """``trained`` (the MCTS run with ``cfg``) next to MCTS with no network (uniform prior,
    zero value, same ``cfg`` otherwise) and rollouts only (pilot), under the same time cap."""
    return {"trained": trained,
            "none": mcts_malloc(env, replace(cfg, network="none")),
            "pilot": pilot_malloc(env, time_limit_s=cfg.time_limit_s)}


def run_instance(model: str, capacity: float, budget: Budget) -> Row:
    """All solvers on one instance."""
    env = MallocGameEnv(model, capacity_fraction=capacity, n_offsets=budget.n_offsets)
    heur = evaluate_actions(env, heuristic_actions(env))
    cfg = MCTSConfig(n_simulations=budget.mcts_simulations, iterations=budget.mcts_iterations,
                     rollout_depth=budget.mcts_rollout_depth, time_limit_s=budget.mcts_time_s,
                     value_baseline=budget.mcts_value_baseline, seed=budget.seed)
    mcts = mcts_malloc(env, cfg)
    res: dict[str, MallocAgentResult] = {
        "mcts": mcts,
        "ppo": ppo_malloc(env, total_timesteps=budget.ppo_timesteps, seed=budget.seed,
                          bc_epochs=budget.ppo_bc_epochs),
        "local_search": local_search_malloc(env, max_passes=budget.ls_passes,
                                            chain_depth=budget.ls_chain_depth,
                                            time_limit_s=budget.ls_time_s),
    }
    opt = cpsat_optimum(env.problem, time_limit_s=budget.cpsat_time_s,
                        num_workers=budget.cpsat_workers,
                        n_offsets=budget.n_offsets, seed=budget.seed)
    abl = ablation(env, cfg, mcts)
    target = heur - REACH_FRACTION * max(heur - opt.time_us, 0.0)
    extra = {}
    for k, r in abl.items():
        t, n = reach(r, target)
        extra.update({f"abl_{k}_us": r.time_us, f"abl_{k}_s": r.search_s,
                      f"reach_{k}_s": t, f"reach_{k}_sims": n})
    return Row(model, capacity, env.n_buffers, env.all_slow_time_us, heur,
               res["mcts"].time_us, res["ppo"].time_us, res["local_search"].time_us,
               opt.time_us, opt.status, opt.gap, res["mcts"].search_s, res["ppo"].search_s,
               res["local_search"].search_s, opt.wall_s, res["mcts"].source, res["ppo"].source,
               **extra)


def _f(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def summary(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Per agent: instances improved over the heuristic, and max/mean gap where CP-SAT is optimal."""
    out = {}
    opt = [r for r in rows if r.cpsat_status == "OPTIMAL"]
    for a in AGENTS:
        gaps = [r.gap_to_cpsat(a) for r in opt]
        out[a] = {"improved": sum(r.over_heuristic(a) > 1e-6 for r in rows),
                  "instances": len(rows), "optimal_instances": len(opt),
                  "within_2pct": sum(g <= 2.0 + 1e-9 for g in gaps),
                  "max_gap_pct": max(gaps, default=float("nan")),
                  "mean_over_heuristic_pct": sum(r.over_heuristic(a) for r in rows) / max(len(rows), 1)}
    return out


def markdown(rows: list[Row], budget: Budget, command: str, wall_s: float) -> str:
    """The results table and a summary, as Markdown."""
    lines = [
        "# mallocGame: heuristic vs agents vs CP-SAT", "",
        f"Command: `{command}` ({wall_s:.0f} s wall on 2 shared cores).", "",
        (f"Budget per instance: {asdict(budget)}. Env `n_offsets={budget.n_offsets}`, no prefetch; "
        "every agent starts from the XLA-style heuristic and returns its best complete episode "
        "(never worse than the heuristic). Times are simulated execution in µs; "
        "`vs heur` = % of the heuristic's time saved; `gap` = % slower than CP-SAT's placement "
        "(its status: OPTIMAL = proved optimal; FEASIBLE = best found in the time limit, "
        "so a negative gap means the agent beat it)."), "",
        ("| model | cap | bufs | all-slow | heuristic | MCTS | PPO | local search | CP-SAT | status "
        "| MCTS vs heur | PPO vs heur | LS vs heur | MCTS gap | PPO gap | LS gap "
        "| MCTS s | PPO s | LS s | CP-SAT s |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.capacity:.0%} | {r.buffers} | {r.all_slow_us:.1f} | "
            f"{r.heuristic_us:.1f} | {r.mcts_us:.1f} | {r.ppo_us:.1f} | {r.local_search_us:.1f} | "
            f"{r.cpsat_us:.1f} | {r.cpsat_status} | "
            + " | ".join(f"{r.over_heuristic(a):+.2f}%" for a in AGENTS) + " | "
            + " | ".join(f"{r.gap_to_cpsat(a):+.2f}%" for a in AGENTS)
            + f" | {r.mcts_s:.1f} | {r.ppo_s:.1f} | {r.local_search_s:.1f} | {r.cpsat_s:.1f} |")
    lines += ["", "Summary:", ""]
    for a, s in summary(rows).items():
        lines.append(
            f"- {a}: faster than the heuristic on {s['improved']}/{s['instances']} instances "
            f"(mean {s['mean_over_heuristic_pct']:+.2f}%); within 2% of the proved optimum on "
            f"{s['within_2pct']}/{s['optimal_instances']} (max gap {s['max_gap_pct']:+.2f}%).")
    lines += ablation_markdown(rows)
    return "\n".join(lines) + "\n"


def _reach(s: float | None, n: int | None) -> str:
    return "never" if s is None else f"{s:.1f} s / {n}"


def ablation_markdown(rows: list[Row]) -> list[str]:
    """The network ablation table and its summary lines."""
    lines = [
        "", "## Ablation: what MCTS's network contributes", "",
        ("Same MCTS budget (simulations per move, self-play iterations, rollout depth) and time "
         "cap for each variant. *trained*: the MCTS above (the network imitates the heuristic's "
         "episode, then each self-play iteration trains the policy on the root visit counts and "
         "the value on returns-to-go relative to the heuristic's); *no net*: "
         "the same search with a uniform prior and zero value (greedy rollouts kept); *pilot*: "
         "rollouts only, no tree, no network (every legal action at each step + greedy "
         "completion). `reach` = wall seconds / simulations (pilot: rollouts) until the best "
         f"episode first closed {REACH_FRACTION:.0%} of the gap between the heuristic and "
         "CP-SAT's placement (`never` = not in the run; times include the network's training)."),
        "",
        ("| model | cap | heuristic | CP-SAT | trained | no net | pilot | trained s | no net s | "
         "pilot s | trained reach | no net reach | pilot reach |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.capacity:.0%} | {r.heuristic_us:.1f} | {r.cpsat_us:.1f} | "
            f"{r.abl_trained_us:.2f} | {r.abl_none_us:.2f} | {r.abl_pilot_us:.2f} | "
            f"{r.abl_trained_s:.1f} | {r.abl_none_s:.1f} | {r.abl_pilot_s:.1f} | "
            f"{_reach(r.reach_trained_s, r.reach_trained_sims)} | "
            f"{_reach(r.reach_none_s, r.reach_none_sims)} | "
            f"{_reach(r.reach_pilot_s, r.reach_pilot_sims)} |")
    lines += ["", "Ablation summary:", ""]
    for k, s in ablation_summary(rows).items():
        lines.append(
            f"- {k}: best of the three on {s['best']}/{s['instances']} instances (ties count); "
            f"strictly better than the others on {s['strictly_best']}; closed "
            f"{REACH_FRACTION:.0%} of the heuristic→CP-SAT gap on {s['reached']}/{s['instances']} "
            f"(median {s['median_reach_s']:.1f} s, {s['median_reach_sims']:.0f} simulations/rollouts "
            "where reached).")
    return lines


def ablation_summary(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Per ablation variant: instances where it is (strictly) best, and reach statistics."""
    import statistics

    out = {}
    for k in ABLATION:
        best = strict = reached = 0
        times, sims = [], []
        for r in rows:
            mine = getattr(r, f"abl_{k}_us")
            others = [getattr(r, f"abl_{o}_us") for o in ABLATION if o != k]
            best += mine <= min(others) + 1e-6
            strict += mine < min(others) - 1e-6
            s = getattr(r, f"reach_{k}_s")
            if s is not None:
                reached += 1
                times.append(s)
                sims.append(getattr(r, f"reach_{k}_sims"))
        out[k] = {"best": best, "strictly_best": strict, "reached": reached,
                  "instances": len(rows),
                  "median_reach_s": statistics.median(times) if times else float("nan"),
                  "median_reach_sims": statistics.median(sims) if sims else float("nan")}
    return out


def plot(rows: list[Row], path: Path) -> None:
    """Bars: % saved over the heuristic per instance, per agent and CP-SAT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r.model}\n{r.capacity:.0%}" for r in rows]
    series = {"MCTS": [r.over_heuristic("mcts") for r in rows],
              "MaskablePPO": [r.over_heuristic("ppo") for r in rows],
              "local search": [r.over_heuristic("local_search") for r in rows],
              "CP-SAT": [100.0 * (r.heuristic_us - r.cpsat_us) / r.heuristic_us for r in rows]}
    x = np.arange(len(rows))
    w = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4))
    for k, (name, ys) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * w, ys, w, label=name)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("execution time saved over the heuristic (%)")
    ax.set_title("mallocGame: improvement over the XLA-style heuristic")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _warm_up() -> None:
    """Pay torch's one-time costs (import, first optimizer steps) before anything is timed."""
    import numpy as np
    from mlsysgym.agents.mcts import PolicyValueNet

    net = PolicyValueNet(4, 2, 4, 1e-3)
    rng = np.random.default_rng(0)
    net.fit(np.zeros((2, 4), np.float32), np.ones((2, 2), bool), np.full((2, 2), 0.5, np.float32),
            np.zeros(2, np.float32), 2, 2, rng)


def run(models: list[str], capacities: list[float], budget: Budget, out: Path,
        command: str, progress: bool = True) -> list[Row]:
    """Run every instance and write ``malloc.md``, ``malloc.csv`` and ``malloc.png`` to ``out``."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    _warm_up()
    jobs = [(m, c) for m in models for c in capacities]
    rows = []
    bar = tqdm(jobs, desc="malloc", disable=not progress)
    for m, c in bar:
        bar.set_postfix_str(f"{m} {c:.0%}")
        rows.append(run_instance(m, c, budget))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "malloc.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        w.writeheader()
        w.writerows(asdict(r) for r in rows)
    (out / "malloc.md").write_text(stamp_markdown(markdown(rows, budget, command,
                                                          time.perf_counter() - t0)))
    plot(rows, out / "malloc.png")
    write_provenance(out / "malloc.provenance.json", command=command, budget=asdict(budget))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small instances, small budgets")
    ap.add_argument("--models", nargs="+", default=None)
    ap.add_argument("--capacities", nargs="+", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None, help=f"output folder (default {RESULTS})")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        models, caps, budget = args.models or ["alexnet"], args.capacities or [0.1, 0.5], QUICK
    else:
        models = args.models or list(DEFAULT_MODELS)
        caps, budget = args.capacities or list(DEFAULT_CAPACITIES), Budget()
    import sys

    command = "python -m mlsysgym.experiments.malloc_experiment " + " ".join(
        argv if argv is not None else sys.argv[1:])
    rows = run(models, caps, budget, args.out or RESULTS, command.strip(), not args.no_progress)
    print((args.out or RESULTS) / "malloc.md")
    for a, s in summary(rows).items():
        print(a, s)


if __name__ == "__main__":
    main()
