"""Kernel scheduling as a sequential problem: ``make_problem({"name": "scheduling", ...})``.

Two registered problems, both of kind ``"scheduling"`` (so every scheduling agent searches
either), each the episodes of one instance in its env:

- ``scheduling`` — one model graph (``model``: a zoo name) on a platform (``platform``: a preset
  name or ``"balanced"``), or a random layered DAG (``n_ops``, ``n_pes``, ``seed``) on a generic
  platform of ``n_pes`` PEs; objective: makespan (KernelScheduling-v0; episode return
  = 1 − makespan / LB_0).
- ``scheduling-stream`` — a seeded Poisson stream of ``n_jobs`` jobs drawn from ``models`` at
  ``load`` on ``platform``; objective: mean job completion time (KernelSchedulingStream-v0,
  ``objective="jct"``; return = 1 − mean JCT / its bound) or ``objective="makespan"``.

A :class:`SchedulingEpisodes` exposes the instance (``.instance``, a
:class:`~mlsysgym.simulators.multicore.SchedulingInstance`), the ``.platform``, the env
``.window`` and the ``.objective`` for the exact and heuristic agents, and :meth:`variant`
builds the instance of the same family with other arguments (other graphs of a platform, other
streams) — what a learned agent trains on: the problem's ``train_graphs`` (a list of such
argument overrides, or zoo names; the held-out instance is the problem itself) unless the
agent's hyperparameter ``train_graphs`` says otherwise. Evaluating a design replays its
actions with the env's ``place`` fast path (no observation is built) and records
``makespan_us``, ``total_finish_us``, ``lower_bound_us`` (LB_0) and, on streams,
``mean_jct_us`` and ``jct_lower_bound_us``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mlsysgym.agents.base import Design, Outcome
from mlsysgym.agents.problems import register_problem
from mlsysgym.agents.sequential import EpisodeProblem
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv, resolve_instance
from mlsysgym.envs.kernel_scheduling_stream import KernelSchedulingStreamEnv
from mlsysgym.simulators.multicore import (
    PRESETS,
    Platform,
    Schedule,
    SchedulingInstance,
    load_platform,
    random_instance,
)
from mlsysgym.simulators.streams import build_stream_instance, poisson_stream

__all__ = [
    "BALANCED_PLATFORM",
    "SchedulingEpisodes",
    "SchedulingProblemError",
    "generic_platform",
    "scheduling_episodes",
    "scheduling_problem",
    "scheduling_stream_problem",
    "submit_schedule",
]


class SchedulingProblemError(MlsysgymError):
    """A scheduling problem spec that names no instance (no model and no random-DAG size),
    an unknown platform, or actions that are not an episode of the problem."""


# A platform where the placement choice matters: 2 big CPU cores, a GPU-like unit and a DSP
# of comparable speeds (no unit dominates as the NPU of ``soc_npu`` does), fast interconnect.
BALANCED_PLATFORM: dict[str, Any] = {
    "name": "balanced",
    "pes": [
        {**PRESETS["big_little"]["pes"][0], "count": 2},
        {"name": "gpu", "kind": "gpu", "bandwidth_gbps": 30.0, "active_power_w": 2.0,
         "idle_power_w": 0.1, "overhead_us": 5.0,
         "throughput_gflops": {"conv": 120.0, "matmul": 120.0, "attention": 80.0,
                               "elementwise": 20.0, "normalization": 15.0, "pool": 20.0,
                               "reduction": 15.0, "data_movement": 20.0, "*": 10.0}},
        {**PRESETS["soc_npu"]["pes"][3],
         "throughput_gflops": {**PRESETS["soc_npu"]["pes"][3]["throughput_gflops"],
                               "data_movement": 20.0}},
    ],
    "interconnect": {"bandwidth_gbps": 40.0, "latency_us": 1.0, "energy_pj_per_byte": 5.0},
}


def generic_platform(n_pes: int, name: str = "generic") -> Platform:
    """A placeholder platform of ``n_pes`` PEs, for envs over prebuilt SchedulingProblems
    (e.g. :func:`~mlsysgym.simulators.multicore.random_instance`) whose times are given."""
    if n_pes < 1:
        raise SchedulingProblemError(f"a platform needs at least one PE, got n_pes={n_pes}")
    pe = {"kind": "pe", "throughput_gflops": {"*": 1.0}, "bandwidth_gbps": 1.0,
          "active_power_w": 1.0, "idle_power_w": 0.1}
    pes = [{"name": "pe", "count": n_pes, **pe}] if n_pes > 1 else [{"name": "pe0", **pe}]
    return Platform.from_dict({"name": name, "pes": pes})


def _platform(name: str | Mapping[str, Any]) -> Platform:
    if name == "balanced":
        return load_platform(BALANCED_PLATFORM)
    if isinstance(name, str) and name not in PRESETS:
        raise SchedulingProblemError(f"unknown platform {name!r}; use 'balanced' or one of "
                                     f"{', '.join(sorted(PRESETS))}")
    return load_platform(name)


class SchedulingEpisodes(EpisodeProblem):
    """The episodes of one scheduling instance (see the module docstring). ``build(**kwargs)``
    makes the instance of this family for ``kwargs`` (its own are ``self.kwargs``)."""

    def __init__(self, name: str, instance: SchedulingInstance, platform: Platform,
                 objective: str, window: int, stream: bool, kwargs: Mapping[str, Any],
                 build: Any, train_graphs: Sequence[Any] | None = None) -> None:
        super().__init__(name, "scheduling", lambda: self.training_env([self.instance]))
        self.instance, self.platform, self.objective = instance, platform, objective
        self.window, self.stream = int(window), stream
        self.kwargs, self._build = dict(kwargs), build
        self.train_graphs = None if train_graphs is None else list(train_graphs)

    def training_env(self, instances: Sequence[SchedulingInstance], max_ops: int | None = None,
                     max_edges: int | None = None) -> KernelSchedulingEnv:
        """This problem's env class over ``instances`` (one drawn per reset)."""
        if self.stream:
            return KernelSchedulingStreamEnv(list(instances), self.platform, objective=self.objective,
                                             window=self.window, max_ops=max_ops, max_edges=max_edges)
        return KernelSchedulingEnv(list(instances), self.platform, window=self.window,
                                   max_ops=max_ops, max_edges=max_edges)

    @classmethod
    def of(cls, instance: SchedulingInstance, platform: Platform | str | Mapping[str, Any] | None = None,
           window: int = 16, objective: str | None = None, name: str | None = None
           ) -> SchedulingEpisodes:
        """The episodes of a prebuilt instance (a multi-job stream gets the stream env, objective
        ``"jct"`` by default); ``platform`` defaults to a generic one of the instance's PEs."""
        plat = generic_platform(instance.n_pes) if platform is None else load_platform(platform)
        stream = instance.n_jobs > 1
        obj = objective or ("jct" if stream else "makespan")
        if obj not in ("jct", "makespan") or (obj == "jct" and not stream):
            raise SchedulingProblemError(f"objective {obj!r} needs a stream of jobs; use 'makespan'")
        return cls(name or instance.name, instance, plat, obj, window, stream, {}, None)

    def variant(self, overrides: str | Mapping[str, Any]) -> SchedulingInstance:
        """The instance of this family with ``overrides`` of its arguments (a string is a zoo
        model name), on this problem's platform."""
        if self._build is None:
            raise SchedulingProblemError(f"problem {self.name!r} was built from an instance; it "
                                         "has no family to draw other graphs from")
        extra = {"model": overrides} if isinstance(overrides, str) else dict(overrides)
        return self._build(**{**self.kwargs, **extra})[0]

    def metrics(self, env: Any, info: Mapping[str, Any]) -> dict[str, float]:
        """Makespan, total op finish time (``info["total_finish_us"]``) and LB_0 (and the mean
        JCT with its bound on streams) of the env's finished episode."""
        out = {"makespan_us": float(env.makespan_us),
               "total_finish_us": float(info.get("total_finish_us", np.nan)),
               "lower_bound_us": float(env.initial_lower_bound_us)}
        if self.stream:
            out.update(mean_jct_us=float(env.mean_jct_us),
                       jct_lower_bound_us=float(env.initial_mean_jct_bound_us))
        return out

    def evaluate(self, designs: Sequence[Design]) -> Outcome:
        """Replay each design's actions with the env's ``place`` (an action outside the mask or
        an unfinished episode fails)."""
        env, n, cap = self.env, self.instance.n_ops, self.instance.capable
        P = env.n_pes
        rewards = np.zeros(len(designs))
        failed = np.zeros(len(designs), dtype=bool)
        metrics: list[dict[str, float]] = []
        for k, d in enumerate(designs):
            env.reset(seed=0)
            total, finish, placed = 0.0, 0.0, 0
            for a in d.get("actions", ()):
                slot, p = divmod(int(a), P)
                win = env.window_ops()
                if placed == n or not 0 <= slot < len(win) or not 0 <= p < P \
                        or not cap[win[slot], p]:
                    placed = -1
                    break
                _, f, r = env.place(win[slot], p)
                total, finish, placed = total + r, finish + f, placed + 1
            rewards[k], failed[k] = total, placed != n
            metrics.append({} if failed[k] else self.metrics(env, {"total_finish_us": finish}))
        return Outcome(rewards, metrics, failed)

    def reward_of(self, value_us: float) -> float:
        """The episode return of a schedule whose objective (makespan, or mean JCT on a stream
        with ``objective="jct"``) is ``value_us`` (return = (bound − value) · reward scale)."""
        env = self.env
        env.reset(seed=0)
        lb0 = env.initial_mean_jct_bound_us if self.stream and self.objective == "jct" \
            else env.initial_lower_bound_us
        return float((lb0 - value_us) * env.reward_scale)

    def actions_of(self, schedule: Schedule) -> list[int]:
        """The env actions that replay ``schedule``: its ops in its dispatch order, each on its
        PE; when an op is outside the env's ready window at its turn (a list scheduler's order
        over a job stream lists later jobs' ops early), in start-time order instead, which
        never starts an op later than the schedule does. SchedulingProblemError when neither
        fits the window."""
        from mlsysgym.agents.scheduling_baselines import ReplayError, schedule_to_actions

        env = self.make_env()
        orders = [None]
        if schedule.order is not None:
            orders.append(Schedule(schedule.assignment, schedule.start_us).dispatch_order(self.instance))
        for k, order in enumerate(orders):
            try:
                return schedule_to_actions(env, schedule, order=order)
            except ReplayError as e:
                if k == len(orders) - 1:
                    raise SchedulingProblemError(f"{e}; the schedule is not an episode") from None
        raise AssertionError("unreachable")

def _zoo_or_random(model: str | None, platform: str | Mapping[str, Any], n_ops: int | None,
                   n_pes: int | None, seed: int) -> tuple[SchedulingInstance, Platform]:
    if model is not None:
        plat = _platform(platform)
        return resolve_instance(model, plat), plat
    if n_ops is None or n_pes is None:
        raise SchedulingProblemError("a scheduling problem needs a model (zoo name) or a random "
                                     "DAG's n_ops and n_pes")
    return random_instance(int(n_ops), int(n_pes), seed=int(seed)), \
        generic_platform(int(n_pes), f"random{int(n_pes)}pe")


@register_problem("scheduling")
def scheduling_problem(model: str | None = None, platform: str | Mapping[str, Any] = "soc_npu",
                       n_ops: int | None = None, n_pes: int | None = None, seed: int = 0,
                       window: int = 16, train_graphs: Sequence[Any] | None = None
                       ) -> SchedulingEpisodes:
    """Makespan scheduling of a zoo model on ``platform``, or of a random DAG
    (``n_ops``, ``n_pes``, ``seed``; named ``random<n_ops>x<n_pes>s<seed>``). ``train_graphs``:
    the graphs a learned agent trains on (zoo names or overrides such as ``{"n_ops": 30,
    "seed": 1}``; platform and PE count stay this problem's)."""
    def build(**kw: Any) -> tuple[SchedulingInstance, Platform]:
        return _zoo_or_random(kw.get("model"), kw.get("platform", "soc_npu"), kw.get("n_ops"),
                              kw.get("n_pes"), kw.get("seed", 0))

    kwargs = {"model": model, "platform": platform, "n_ops": n_ops, "n_pes": n_pes, "seed": seed}
    instance, plat = build(**kwargs)
    label = getattr(model, "name", model)  # a Graph is named by its name, not its repr
    name = f"{label}@{plat.name}" if model is not None else instance.name
    return SchedulingEpisodes(name, instance, plat, "makespan", window, False, kwargs, build,
                              train_graphs)


@register_problem("scheduling-stream")
def scheduling_stream_problem(models: Sequence[str] = ("alexnet", "resnet18", "mobilenetv2"),
                              n_jobs: int = 5, load: float = 1.0, seed: int = 0,
                              platform: str | Mapping[str, Any] = "soc_npu",
                              objective: str = "jct", window: int = 16,
                              train_graphs: Sequence[Any] | None = None,
                              arrivals: Sequence[float] | None = None) -> SchedulingEpisodes:
    """A seeded Poisson stream of ``n_jobs`` jobs from ``models`` at ``load`` on ``platform``
    (named ``stream<n_jobs>-l<load>-s<seed>``); objective mean JCT (``"jct"``) or makespan.
    ``arrivals``: instead, the given jobs, ``models[k]`` arriving at ``arrivals[k]`` µs
    (``n_jobs``, ``load`` and ``seed`` unused; e.g. all 0: multi-tenant jobs released together).
    ``train_graphs``: the streams a learned agent trains on (overrides such as ``{"load": 0.5,
    "seed": 3}``)."""
    if objective not in ("jct", "makespan"):
        raise SchedulingProblemError(f"objective must be 'jct' or 'makespan', not {objective!r}")

    def build(**kw: Any) -> tuple[SchedulingInstance, Platform]:
        plat = _platform(kw["platform"])
        if kw.get("arrivals") is not None:
            if len(kw["arrivals"]) != len(kw["models"]):
                raise SchedulingProblemError(f"{len(kw['arrivals'])} arrivals for "
                                             f"{len(kw['models'])} models; give one per model")
            return build_stream_instance(list(zip(kw["models"], kw["arrivals"])), plat), plat
        jobs = poisson_stream(list(kw["models"]), kw["n_jobs"], kw["load"], plat, kw["seed"])
        name = f"stream{kw['n_jobs']}-l{kw['load']:g}-s{kw['seed']}"
        return build_stream_instance(jobs, plat, name=name), plat

    kwargs = {"models": list(models), "n_jobs": n_jobs, "load": load, "seed": seed,
              "platform": platform, "arrivals": None if arrivals is None else list(arrivals)}
    instance, plat = build(**kwargs)
    return SchedulingEpisodes(instance.name, instance, plat, objective, window, True, kwargs, build,
                              train_graphs)


def scheduling_episodes(problem: Any) -> SchedulingEpisodes:
    """The SchedulingEpisodes under a BudgetedProblem (AgentConfigError for any other problem)."""
    from mlsysgym.agents.base import AgentConfigError
    from mlsysgym.agents.sequential import sequential_problem

    inner = sequential_problem(problem)
    if not isinstance(inner, SchedulingEpisodes):
        raise AgentConfigError(f"{problem.name!r} is not a kernel scheduling problem")
    return inner


def submit_schedule(problem: Any, schedule: Schedule) -> float:
    """Score ``schedule`` through the budget (as the env episode that replays it); its reward."""
    from mlsysgym.agents.sequential import episode_design

    return problem.evaluate_one(episode_design(scheduling_episodes(problem).actions_of(schedule)))
