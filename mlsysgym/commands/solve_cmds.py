"""``mlsysgym solve malloc|schedule WORKLOAD --agent A``: one instance, one agent, one answer.

WORKLOAD is a zoo model name, a split workload name (``mlsysgym list workloads --split
test``) or an ONNX file. The agent runs through the one agent API (``search`` with a
``Budget(seconds=--time-limit)``; an agent that takes ``time_limit_s`` gets 75 % − 2 s of
it, the rest kept to score its answer, except mallocGame's ``learned`` and
``learned_no_network``, which keep that time themselves and get all of it) and the
answer is its best design's objective: ``time_us`` (mallocGame) or ``makespan_us``
(scheduling), with the wall time, the proof status and bound (CP-SAT's, or mallocGame's
``learned`` where it proved its placement optimal), and the target fingerprint id.
``--agent learned`` is the agent registered as ``learned`` for the problem kind;
``heuristic`` names the baseline heuristic (``xla_greedy`` / ``heft``).
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import Any

from mlsysgym.commands.argtypes import positive_float, positive_int, seed
from mlsysgym.commands.common import add_json, add_out, add_workload, print_report

KINDS = {"malloc": "malloc", "schedule": "scheduling"}
OBJECTIVE = {"malloc": "time_us", "schedule": "makespan_us"}
HEURISTIC = {"malloc": "xla_greedy", "schedule": "heft"}
DEFAULT_TIME_LIMIT_S = 10.0


def register(group: Any) -> None:
    """Add ``mlsysgym solve malloc`` and ``mlsysgym solve schedule``."""
    solve = group("").add_parser("solve", help="solve one mallocGame or scheduling instance "
                                 "with one agent")
    sub = solve.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    m = sub.add_parser("malloc", help="place a workload's buffers in fast / slow memory")
    add_workload(m, "a zoo model, a split workload or an ONNX file", alias=None)
    m.add_argument("--fast-memory", type=positive_float, required=True, metavar="FRACTION",
                   help="fast-memory capacity as a fraction of --of")
    m.add_argument("--of", choices=("activations", "peak"), default="activations",
                   help="activations: the peak live bytes of non-weight buffers (as the "
                   "workload splits' instances); peak: the peak with weights (mallocGame's "
                   "capacity)")
    m.add_argument("--prefetch", type=int, default=0, metavar="K",
                   help="prefetch window in ops (0: no prefetch)")
    s = sub.add_parser("schedule", help="schedule a workload's ops on a heterogeneous platform")
    add_workload(s, "a zoo model, a split workload or an ONNX file", alias=None)
    s.add_argument("--platform", default="soc_npu",
                   help="a platform preset (soc_npu, big_little, quad_core) or balanced")
    s.add_argument("--window", type=positive_int, default=16, help="the env's ready window")
    for p, what in ((m, "malloc"), (s, "schedule")):
        p.add_argument("--agent", default="heuristic",
                       help=f"heuristic ({HEURISTIC[what]}), learned, or a registered agent for "
                       "the problem (mlsysgym list agents)")
        p.add_argument("--time-limit", type=positive_float, default=DEFAULT_TIME_LIMIT_S,
                       metavar="S", help="wall-clock budget of the agent in seconds")
        p.add_argument("--seed", type=seed, default=0, help="the agent's random seed")
        add_out(p, "also write the JSON answer, with the best episode's actions, to this file")
        add_json(p)
        p.set_defaults(func=run_solve, what=what)


def _problem(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The problem to solve and what the answer records about the instance."""
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.ir.workloads import resolve

    graph = resolve(args.workload)
    if args.what == "malloc":
        if args.prefetch < 0:
            from mlsysgym.simulators.memory import MemoryModelError

            raise MemoryModelError(f"--prefetch must be >= 0 ops; got {args.prefetch}")
        spec: dict[str, Any] = {"name": "malloc", "model": graph, "prefetch": args.prefetch}
        if args.of == "activations":
            spec["capacity_bytes"] = max(int(args.fast_memory * graph.peak_live_memory()), 1)
        else:
            spec["capacity"] = args.fast_memory
        problem = make_problem(spec)
        return problem, {"capacity_bytes": int(problem.instance.capacity_bytes),
                         "buffers": problem.instance.n_buffers}
    problem = make_problem({"name": "scheduling", "model": graph, "platform": args.platform,
                            "window": args.window})
    return problem, {"platform": problem.platform.name, "ops": problem.instance.n_ops}


def _agent(args: argparse.Namespace) -> str:
    """The registered agent name for ``--agent`` (one-line error when it has no implementation
    for this problem kind)."""
    from mlsysgym.agents.base import AgentConfigError, agent_function, agents_for

    name = HEURISTIC[args.what] if args.agent == "heuristic" else args.agent
    kind = KINDS[args.what]
    if agent_function(name, kind) is None:
        if name == "learned":
            raise AgentConfigError(f"no agent is registered as 'learned' for {kind} problems yet; "
                                   f"choose one of: {', '.join(agents_for(kind))}")
        raise AgentConfigError(f"agent {name!r} cannot solve a {kind} problem; choose one of: "
                               f"heuristic, {', '.join(agents_for(kind))}")
    return name


def time_limit_hp(agent: str, kind: str, seconds: float) -> dict[str, float]:
    """The ``time_limit_s`` hyperparameter ``agent`` gets of a ``seconds`` budget: all of it
    if it bounds its whole run (:func:`~mlsysgym.agents.base.bounds_whole_run`), else
    :func:`inner_limit_s`'s share; none if it takes none."""
    from mlsysgym.agents.base import agent_function, bounds_whole_run

    if "time_limit_s" not in inspect.signature(agent_function(agent, kind)).parameters:
        return {}
    return {"time_limit_s": seconds if bounds_whole_run(agent, kind) else inner_limit_s(seconds)}


def inner_limit_s(seconds: float) -> float:
    """The ``time_limit_s`` an agent that takes one gets of a ``seconds`` budget: 75 % less
    2 s (at least a quarter), the rest kept to build its model and score its answer in time
    (an answer scored after the budget is lost; CP-SAT's scheduling model of a 49-op graph
    took ~2 s to build on the shared 2-core machine)."""
    return max(0.75 * seconds - 2.0, 0.25 * seconds)


def _bound_us(args: argparse.Namespace, info: dict[str, Any]) -> float | None:
    """The proved bound on the objective in µs: CP-SAT's, or ``learned``'s where it proved its
    placement optimal (None otherwise)."""
    value = info.get("bound_us") if args.what == "malloc" else info.get("lower_bound_us")
    return None if value is None else float(value)


def solve(args: argparse.Namespace) -> dict[str, Any]:
    """Run the agent on the instance; the answer as a JSON-able dict."""
    from mlsysgym.agents.base import Budget, search
    from mlsysgym.core.target import target_id
    from mlsysgym.ir.workloads import SPLITS_VERSION

    problem, about = _problem(args)
    agent = _agent(args)
    hp = time_limit_hp(agent, KINDS[args.what], args.time_limit)
    result = search(agent, problem, Budget(seconds=args.time_limit), seed=args.seed, **hp)
    ok = [i for i in range(result.n_evaluations) if not result.failed[i]]
    if not ok:
        from mlsysgym.agents.base import AgentConfigError

        raise AgentConfigError(f"agent {agent!r} found no complete, legal episode in "
                               f"{args.time_limit:g} s; give it more --time-limit")
    best = max(ok, key=lambda i: result.rewards[i])
    metrics = result.metrics[best]
    key = OBJECTIVE[args.what]
    solver_status = result.info.get("solver_status", result.info.get("cpsat_status"))
    answer = {"problem": args.what, "workload": args.workload, "instance": result.problem,
              **about, "agent": agent, "seed": args.seed, "objective": key, key: metrics[key],
              "time_limit_s": args.time_limit, "wall_time_s": round(result.wall_time_s, 3),
              "evaluations": result.n_evaluations, "status": result.status,
              "solver_status": solver_status, "bound_us": _bound_us(args, result.info),
              "target_id": target_id(), "splits_version": SPLITS_VERSION}
    if args.what == "malloc":
        answer.update(all_slow_time_us=metrics["all_slow_time_us"],
                      improvement=metrics["improvement"])
    answer["actions"] = [int(a) for a in result.designs[best]["actions"]]
    return answer


def run_solve(args: argparse.Namespace) -> int:
    """Solve one instance and print the answer (``--json``: as JSON; ``-o``: also to a file)."""
    if args.out:
        from mlsysgym.ir.paths import check_output_file

        check_output_file(args.out, "--out file")
    answer = solve(args)
    if args.out:
        Path(args.out).write_text(json.dumps(answer, indent=1) + "\n")
    print_report(args, {k: v for k, v in answer.items() if k != "actions"})
    return 0
