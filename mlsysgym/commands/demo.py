"""``mlsysgym demo``: analyse a zoo model, then search accelerator designs for it with several agents."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlsysgym.commands import make_console
from mlsysgym.commands.argtypes import positive_float, positive_int, seed
from mlsysgym.commands.common import (
    add_json,
    add_out,
    add_workload,
    counting_evaluations,
    print_json,
    stderr_progress,
)

DEFAULT_AGENTS = ("random", "random_walk", "ga", "aco", "tpe")


def register(group) -> None:
    p = group("").add_parser("demo", help="analyse a zoo model and search accelerators for it")
    add_workload(p, "zoo model name or path to an .onnx file", metavar="MODEL_OR_PATH",
                 default="resnet50")
    p.add_argument("--agents", default=",".join(DEFAULT_AGENTS), help="comma-separated agents")
    p.add_argument("--budget", type=positive_int, default=300, help="evaluations per agent")
    p.add_argument("--seed", type=seed, default=0, help="random seed of every agent")
    p.add_argument("--area-budget-mm2", type=positive_float, default=20.0,
                   help="designs above this area are penalized")
    add_out(p, "folder for the trajectories (Parquet) and the PNG plot", metavar="DIR",
            default="demo-results")
    add_json(p, "print the best design per agent as JSON (tables and progress go to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.table import Table

    from mlsysgym.agents import AGENTS, UnknownAgentError, search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.commands.ir_cmds import print_graph
    from mlsysgym.core.dataset import write_part
    from mlsysgym.ir import zoo
    from mlsysgym.ir.paths import check_output_dir

    check_output_dir(args.out, "--out folder")
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = [a for a in agents if a not in AGENTS]
    if unknown:
        raise UnknownAgentError(f"unknown agent(s) {unknown}; choose from {', '.join(sorted(AGENTS))}")
    console = make_console()
    graph = zoo.resolve(args.workload)
    print_graph(graph, top=10)
    problem = make_problem({"name": "env:mlsysgym/Accelerator-v0", "model": graph,
                            "area_budget_mm2": args.area_budget_mm2})
    console.print(f"\n[bold]Searching accelerator designs for {graph.name}[/bold]: "
                  f"{problem.space.size():,} designs, reward = −ln(energy·delay / reference), "
                  f"area budget {args.area_budget_mm2} mm², {args.budget} evaluations per agent")
    results = []
    with stderr_progress() as progress:
        for agent in agents:
            task = progress.add_task(f"{agent:>12}", total=args.budget)
            with counting_evaluations(problem, lambda n, t=task: progress.advance(t, n)):
                results.append(search(agent, problem, budget=args.budget, seed=args.seed))

    table = Table(title=f"best design per agent ({args.budget} evaluations, seed {args.seed})")
    for col in ("agent", "best reward", "found at", "latency ms", "energy µJ", "area mm²",
                "design", "time s"):
        table.add_column(col, justify="left" if col in ("agent", "design") else "right")
    for r in sorted(results, key=lambda r: -r.best_reward):
        m, d = r.metrics[r.best_index], r.best_design
        design = f"{d['rows']}×{d['cols']} {d['dataflow']} {d['ifmap_kb']}/{d['filter_kb']}/" \
                 f"{d['ofmap_kb']}KB bw{d['bandwidth']} {d['word_bytes']}B"
        table.add_row(r.agent, f"{r.best_reward:.3f}", str(r.best_index + 1),
                      f"{m['latency_ms']:.3f}", f"{m['energy_uj']:.0f}", f"{m['area_mm2']:.2f}",
                      design, f"{r.wall_time_s:.1f}")
    console.print(table)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.concat([r.to_frame() for r in results], ignore_index=True)
    write_part(out / "demo_trajectories" / "part-demo.parquet", frame, model=graph.name)
    _plot(results, out / "demo_best_so_far.png", graph.name)
    console.print(f"trajectories: {out / 'demo_trajectories'} (Parquet; read_dataset); "
                  f"plot: {out / 'demo_best_so_far.png'}")
    if args.json:
        print_json(args, {"model": graph.name, "budget": args.budget, "seed": args.seed,
                          "trajectories": str(out / "demo_trajectories"),
                          "plot": str(out / "demo_best_so_far.png"),
                          "agents": [_best(r) for r in results]})
    return 0


def _best(result: Any) -> dict[str, Any]:
    """An agent's best design, its reward and metrics, when it was found, and the run's time."""
    return {"agent": result.agent, "best_reward": float(result.best_reward),
            "found_at": int(result.best_index) + 1, "best_design": result.best_design,
            "best_metrics": result.metrics[result.best_index],
            "wall_time_s": round(result.wall_time_s, 3)}


def _plot(results, path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(range(1, r.n_evaluations + 1), r.best_so_far, label=r.agent)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best reward so far (−ln EDP ratio)")
    ax.set_title(f"Accelerator-v0 on {model}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
