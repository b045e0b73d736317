"""The mallocGame placement problem as a sequential problem: ``make_problem({"name": "malloc", ...})``.

One instance is a workload (zoo name, ONNX path or ``ir.Graph``) with a fast memory of some
capacity; its designs are complete episodes of :class:`~mlsysgym.envs.malloc_game.MallocGameEnv`
(``{"actions": [...]}``, one decision per buffer in XLA's order). The reward of an episode is
its return, the fraction of the all-slow execution time saved; the metrics of each evaluated
episode are ``time_us`` (simulated execution time), ``all_slow_time_us``, ``improvement``
(= (all-slow − time) / all-slow), ``n_buffers`` and ``invalid_actions``. Exact and heuristic
agents read the underlying :class:`~mlsysgym.simulators.memory.MemoryInstance` as ``.instance``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from mlsysgym.agents.base import AgentConfigError
from mlsysgym.agents.problems import UnknownProblemError, register_problem
from mlsysgym.agents.sequential import EpisodeProblem, sequential_problem
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.memory import MemoryInstance

__all__ = ["MallocProblem", "malloc_of", "malloc_problem"]

ENV_ONLY = ("n_offsets", "time_bins", "address_bins", "reward_scale_us", "invalid_action",
            "invalid_penalty")


class MallocProblem(EpisodeProblem):
    """Episodes of one mallocGame instance. ``instance`` is its MemoryInstance; every env it
    makes shares it (and the env options: ``n_offsets``, occupancy bins, reward scale)."""

    def __init__(self, env: MallocGameEnv, name: str, env_options: dict[str, Any]) -> None:
        super().__init__(name, "malloc", self._new_env, metrics=self._metrics)
        self.instance: MemoryInstance = env.problem
        self.env_options = dict(env_options)
        self._env = env

    def _new_env(self) -> MallocGameEnv:
        return MallocGameEnv(problem=self.instance, **self.env_options)

    @staticmethod
    def _metrics(env: gym.Env, info: dict[str, Any]) -> dict[str, float]:
        slow = float(info["all_slow_time_us"])
        t = float(info["time_us"])
        return {"time_us": t, "all_slow_time_us": slow, "improvement": (slow - t) / slow,
                "n_buffers": float(info["n_buffers"]),
                "invalid_actions": float(info["invalid_actions"])}

    @property
    def n_offsets(self) -> int:
        return int(self.env.n_offsets)


def _label(model: str | Path | Graph) -> str:
    return model.name if isinstance(model, Graph) else Path(str(model)).stem


@register_problem("malloc")
def malloc_problem(model: str | Path | Graph = "resnet18", capacity: float | None = 0.25,
                   capacity_bytes: int | None = None, n_offsets: int = 4, prefetch: int = 0,
                   include_weights: bool = True, **env_kwargs: Any) -> MallocProblem:
    """mallocGame on ``model`` with a fast memory of ``capacity`` × the buffers' peak live
    memory (or ``capacity_bytes``), ``n_offsets`` candidate offsets per fast mode and a
    prefetch window of ``prefetch`` ops (0: no prefetch actions). Other keyword arguments go
    to :class:`MallocGameEnv` (the machine: ``compute_tflops``, ``fast_bandwidth_gbps``,
    ``slow_bandwidth_gbps``; ``time_bins``, ``address_bins``, ...)."""
    if capacity_bytes is not None:
        capacity = None
    try:
        env = MallocGameEnv(model, capacity_bytes=capacity_bytes, capacity_fraction=capacity,
                            include_weights=include_weights, prefetch_window=int(prefetch),
                            n_offsets=n_offsets, **env_kwargs)
    except TypeError as e:
        raise UnknownProblemError(f"bad arguments for problem 'malloc': {e}") from None
    options = {"n_offsets": n_offsets, **{k: v for k, v in env_kwargs.items() if k in ENV_ONLY}}
    size = f"{capacity:g}" if capacity_bytes is None else f"{capacity_bytes}B"
    name = f"malloc:{_label(model)}:{size}" + (f":pf{prefetch}" if prefetch else "")
    return MallocProblem(env, name, options)


def malloc_of(problem: Any) -> MallocProblem:
    """The MallocProblem under a budgeted problem (AgentConfigError for any other problem)."""
    inner = sequential_problem(problem)
    if not isinstance(inner, MallocProblem):
        raise AgentConfigError(f"{problem.name!r} is not a mallocGame problem "
                               "(make it with make_problem({'name': 'malloc', ...}))")
    return inner
