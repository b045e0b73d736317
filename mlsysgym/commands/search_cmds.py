"""``mlsysgym list envs|agents|evaluators|problems|workloads`` and ``mlsysgym search AGENT
PROBLEM``: what is registered, and one search run without a sweep config."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlsysgym.commands.argtypes import positive_float, positive_int, seed
from mlsysgym.commands.common import (
    SLOW_STEP_S,
    add_json,
    add_out,
    counting_evaluations,
    print_json,
    print_report,
    slow_step,
    stderr_progress,
)

KINDS = ("envs", "agents", "evaluators", "problems", "workloads", "configs")


def register(group: Any) -> None:
    """Add the top-level ``list`` and ``search`` commands."""
    top = group("")
    p = top.add_parser("list", help="registered envs, agents, evaluators, problems, workloads "
                       "or the shipped sweep configs")
    p.add_argument("what", choices=KINDS, help="what to list")
    add_json(p, "a JSON list instead of lines")
    p.add_argument("--split", choices=("train", "validation", "test"), default=None,
                   help="workloads: the workloads of one split (mlsysgym.ir.workloads)")
    p.set_defaults(func=run_list)

    s = top.add_parser("search", help="one search run: AGENT on PROBLEM for a budget")
    s.add_argument("agent", help="a registered agent (mlsysgym list agents)")
    s.add_argument("problem", help='a registered problem name, env:<gymnasium id>, or a JSON '
                   'spec such as \'{"name": "malloc", "model": "alexnet", "capacity": 0.1}\'')
    s.add_argument("--budget", type=positive_int, default=None,
                   help="evaluations (default 100 unless --seconds is given)")
    s.add_argument("--seconds", type=positive_float, default=None, help="time budget")
    s.add_argument("--seed", type=seed, default=0, help="random seed of the agent")
    s.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter (VALUE parsed as JSON if it is JSON); repeatable")
    add_out(s, "write the trajectory as a Parquet dataset part into this folder", metavar="DIR")
    add_json(s, "print the result as JSON")
    s.set_defaults(func=run_search)


def _names(what: str) -> list[str]:
    if what == "envs":
        import mlsysgym

        return sorted(mlsysgym.ENVS)
    if what == "agents":
        from mlsysgym.agents.base import AGENT_KINDS

        return [f"{a} ({', '.join(k)})" for a, k in sorted(AGENT_KINDS.items())]
    if what == "evaluators":
        import mlsysgym.simulators  # registers the built-in evaluators
        from mlsysgym.core.evaluator import evaluator_names

        return evaluator_names()
    if what == "problems":
        import mlsysgym.agents  # registers the problems
        from mlsysgym.agents.problems import problem_names

        return [*problem_names(), "env:<gymnasium id>"]
    if what == "configs":
        from mlsysgym.commands.sweep_cmds import packaged_configs

        return packaged_configs()
    from mlsysgym.ir import zoo

    return zoo.names()


def run_list(args: argparse.Namespace) -> int:
    """Print the registered names of one kind (``--split``: a split's workloads with their
    families; JSON rows with name, family, split and how it is built)."""
    if args.split is not None:
        from mlsysgym.ir.errors import WorkloadError
        from mlsysgym.ir.workloads import split

        if args.what != "workloads":
            raise WorkloadError("--split goes with `mlsysgym list workloads`")
        rows = [s.row() for s in split(args.split)]
        if args.json:
            print_json(args, rows)
        else:
            print("\n".join(f"{r['name']} ({r['family']})" for r in rows))
        return 0
    names = _names(args.what)
    if args.json:
        print_json(args, names)
    else:
        print("\n".join(names))
    return 0


def _problem_spec(text: str) -> Any:
    from mlsysgym.agents.problems import UnknownProblemError

    if not text.lstrip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UnknownProblemError(f"the problem spec is not valid JSON: {e}") from None


def _hyperparameters(items: list[str]) -> dict[str, Any]:
    from mlsysgym.agents import AgentConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AgentConfigError(f"--hp takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_search(args: argparse.Namespace) -> int:
    """Run one search and print its best result."""
    from mlsysgym.agents import search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir.paths import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out folder")
    budget = {"evaluations": args.budget if args.budget or args.seconds else 100,
              "seconds": args.seconds}
    problem = make_problem(_problem_spec(args.problem))
    # A live progress bar on a terminal's stderr (RL training included); in a log, one line
    # if the search takes longer than a couple of seconds.
    live = sys.stderr.isatty()
    limits = " / ".join(f"{v:g} {'s' if k == 'seconds' else 'evaluations'}"
                        for k, v in budget.items() if v)
    try:
        with stderr_progress(enabled=live, transient=True) as progress, \
                slow_step(f"{args.agent} searching {problem.name} ({limits})",
                          after_s=None if live else SLOW_STEP_S):
            task = progress.add_task(f"{args.agent} on {problem.name}",
                                     total=budget["evaluations"])
            with counting_evaluations(problem, lambda n: progress.advance(task, n)):
                result = search(args.agent, problem, {k: v for k, v in budget.items() if v},
                                seed=args.seed, **_hyperparameters(args.hp))
    except TypeError as e:  # a hyperparameter the agent does not take
        from mlsysgym.agents import AgentConfigError

        raise AgentConfigError(f"agent {args.agent!r}: {e}") from None
    finally:
        getattr(problem, "close", lambda: None)()
    if args.out:
        from pathlib import Path

        from mlsysgym.core.dataset import write_part

        write_part(Path(args.out) / f"part-{args.agent}-{args.seed}.parquet", result.to_frame())
    summary = {"agent": result.agent, "problem": result.problem, "seed": result.seed,
               "evaluations": result.n_evaluations, "failed": int(result.failed.sum()),
               "wall_time_s": round(result.wall_time_s, 3), "status": result.status,
               "bound": result.bound}
    if result.n_evaluations:
        summary.update(best_reward=result.best_reward, best_design=result.best_design,
                       best_metrics=result.metrics[result.best_index])
    print_report(args, summary)
    return 0
