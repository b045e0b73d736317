"""``mlsysgym/DRAM-MultiAgent-v0``: the DRAM controller tuned by one agent per sub-system.

A PettingZoo ``ParallelEnv`` over the same simulator, traces, objectives and targets as
:class:`mlsysgym.envs.dram_env.DramEnv`. Four agents each own some of the ten knobs:

=========================  ===================================================
agent                      knobs (its ``MultiDiscrete`` action, in this order)
=========================  ===================================================
``scheduling``             Scheduler, SchedulerBuffer, RequestBufferSize
``page_policy``            PagePolicy
``refresh``                RefreshPolicy, RefreshMaxPostponed, RefreshMaxPulledin
``buffering_arbitration``  RespQueue, Arbiter, MaxActiveTransactions
=========================  ===================================================

Every step all agents act at once; their knobs form one design, which is simulated once.
An episode is ``max_steps`` steps (then every agent is truncated).

**Observation** of an agent (float32, in [−10, 10]): ``log10(metric / reference)`` of
[``energy_nj``, ``power_mw``, ``avg_latency_ns``] of the last design (zeros before the first
step; the reference is the simulator's ``DESIGN_SPACE.default``), then the agent's own last action as
level centres ``(index + 0.5) / levels`` (−1 before the first step), then the fraction of the
episode done.

**Rewards** (``reward_mode``). ``G`` is the joint target-spec reward of the objective (the
product over its metrics of ``target / |value − target|``, as DRAM-v0 with
``reward="target_spec"``):

- ``"shared"`` (default): every agent gets ``G``.
- ``"per_agent"``: an agent gets the product of the target-spec terms of the metrics it is
  responsible for (``responsibilities``; by default scheduling → ``avg_latency_ns``,
  page_policy → ``energy_nj`` (activates and precharges), refresh → ``power_mw`` (refresh
  current and background), buffering_arbitration → ``avg_latency_ns`` (back-pressure and
  in-order responses)), restricted to the objective's metrics; an agent left with none gets
  ``G``.
- ``"difference"``: ``G(design) − G(design with this agent's knobs at the reference design's
  values)``, the agent's marginal contribution (Wolpert & Tumer's difference reward with the
  reference as the default action); costs up to four more simulations a step (cached).

``infos[agent]`` holds the design, the metrics, ``joint_reward`` (G), the workload and
evaluator ids. ``state()`` is the global view (metrics, whole design, progress).
``render_mode``: ``"ansi"`` (a line), ``"rgb_array"`` / ``"human"`` (the last design's DRAM
command timeline, :func:`mlsysgym.envs.render.dram_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from mlsysgym.core.evaluator import Evaluator
from mlsysgym.envs.design_env import EnvConfigError
from mlsysgym.envs.dram_env import (
    OBJECTIVES,
    OBSERVATION_METRICS,
    load_trace,
    objective_targets,
)
from mlsysgym.envs.rewards import TargetSpec
from mlsysgym.simulators.dram import DESIGN_SPACE, DramSimulator
from mlsysgym.simulators.dram_timing import MT40A1G8_083E
from mlsysgym.simulators.dram_traces import DramTrace
from pettingzoo import ParallelEnv

__all__ = ["AGENT_KNOBS", "RESPONSIBILITIES", "REWARD_MODES", "DramMultiAgentEnv", "env", "parallel_env"]

AGENT_KNOBS: dict[str, tuple[str, ...]] = {
    "scheduling": ("Scheduler", "SchedulerBuffer", "RequestBufferSize"),
    "page_policy": ("PagePolicy",),
    "refresh": ("RefreshPolicy", "RefreshMaxPostponed", "RefreshMaxPulledin"),
    "buffering_arbitration": ("RespQueue", "Arbiter", "MaxActiveTransactions"),
}
"""Agent -> the controller knobs it chooses."""

RESPONSIBILITIES: dict[str, tuple[str, ...]] = {
    "scheduling": ("avg_latency_ns",),
    "page_policy": ("energy_nj",),
    "refresh": ("power_mw",),
    "buffering_arbitration": ("avg_latency_ns",),
}
"""Agent -> the metrics whose target-spec terms make its ``per_agent`` reward."""

REWARD_MODES = ("shared", "per_agent", "difference")


class DramMultiAgentEnv(ParallelEnv):
    """One agent per controller sub-system choosing its knobs; one simulation per step."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array", "human"],
                                          "render_fps": 4, "is_parallelizable": True,
                                          "name": "mlsysgym/DRAM-MultiAgent-v0"}

    def __init__(self, workload: str | os.PathLike[str] | DramTrace = "stream",
                 objective: str = "joint", reward_mode: str = "shared",
                 targets: Mapping[str, float] | None = None,
                 responsibilities: Mapping[str, Sequence[str]] | None = None,
                 max_requests: int | None = None, max_steps: int = 100,
                 evaluator: Evaluator | None = None, render_mode: str | None = None) -> None:
        if objective not in OBJECTIVES:
            raise EnvConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if reward_mode not in REWARD_MODES:
            raise EnvConfigError(f"reward_mode must be one of {', '.join(REWARD_MODES)}, got {reward_mode!r}")
        if max_steps < 1:
            raise EnvConfigError(f"max_steps must be >= 1, got {max_steps}")
        from mlsysgym.envs.render import check_render_mode

        check_render_mode(render_mode, self.metadata["render_modes"])
        self.evaluator = evaluator or DramSimulator()
        device = getattr(self.evaluator, "device", MT40A1G8_083E)
        self.trace = load_trace(workload, max_requests, device)
        self.workload: Any = self.trace if self.trace is not workload and \
            "truncated_from" in self.trace.meta else workload
        self.workload_id = self.evaluator.workload_id(self.workload)
        self.objective, self.reward_mode = objective, reward_mode
        self.max_steps, self.render_mode = int(max_steps), render_mode
        self.targets = objective_targets(objective, self.trace, targets, device)
        self.reward_fn = TargetSpec(targets=self.targets, combine="product")

        resp = {a: tuple(v) for a, v in (responsibilities or RESPONSIBILITIES).items()}
        unknown = sorted(set(resp) - set(AGENT_KNOBS))
        if unknown:
            raise EnvConfigError(f"responsibilities name unknown agents {unknown}; agents are {', '.join(AGENT_KNOBS)}")
        self.responsibilities = {a: tuple(m for m in resp.get(a, ()) if m in self.targets)
                                 for a in AGENT_KNOBS}

        self.space = DESIGN_SPACE
        self.possible_agents = list(AGENT_KNOBS)
        self.agents: list[str] = []
        self._levels = {n: self.space.levels(n) for n in self.space.names}
        self._nvec = {a: np.array([len(self._levels[k]) for k in AGENT_KNOBS[a]], dtype=np.int64)
                      for a in self.possible_agents}
        self._action_spaces = {a: spaces.MultiDiscrete(self._nvec[a]) for a in self.possible_agents}
        k = len(OBSERVATION_METRICS)
        self._obs_spaces = {a: spaces.Box(-10.0, 10.0, shape=(k + len(AGENT_KNOBS[a]) + 1,), dtype=np.float32)
                            for a in self.possible_agents}
        self.state_space = spaces.Box(-10.0, 10.0, shape=(k + self.space.dim + 1,), dtype=np.float32)

        self.reference_design = self.space.default
        self.reference = self.evaluator.evaluate_one(self.reference_design, self.workload)
        self._ref = np.array([max(abs(self.reference[m]), 1e-30) for m in OBSERVATION_METRICS])
        self._t = 0
        self._last_metrics = np.zeros(k)
        self._last_unit = {a: -np.ones(len(AGENT_KNOBS[a])) for a in self.possible_agents}
        self.last_info: dict[str, Any] = {}

    # ---- spaces -----------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        """An agent's observation space (metrics, its own last action, progress); the same
        object on every call, as PettingZoo requires."""
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.MultiDiscrete:
        """An agent's action space: one level index per knob it owns."""
        return self._action_spaces[agent]

    # ---- helpers ----------------------------------------------------------------------------
    def design_of(self, actions: Mapping[str, Any]) -> dict[str, Any]:
        """The joint design of the agents' actions (an agent without an action keeps the
        reference design's knobs)."""
        design = dict(self.reference_design)
        for a, act in actions.items():
            if a not in AGENT_KNOBS:
                raise EnvConfigError(f"unknown agent {a!r}; agents are {', '.join(self.possible_agents)}")
            idx = np.asarray(act, dtype=np.int64).reshape(-1)
            if idx.shape != self._nvec[a].shape:
                raise EnvConfigError(f"agent {a!r} needs {len(self._nvec[a])} action entries "
                                     f"({', '.join(AGENT_KNOBS[a])}), got {idx.tolist()}")
            idx = np.clip(idx, 0, self._nvec[a] - 1)
            for knob, i in zip(AGENT_KNOBS[a], idx):
                v = self._levels[knob][int(i)]
                design[knob] = v.item() if isinstance(v, np.generic) else v
        return design

    def _joint(self, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.reward_fn(metrics), dtype=np.float64).reshape(-1)

    def _rewards(self, design: dict[str, Any], metrics: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
        g = float(self._joint(metrics)[0])
        if self.reward_mode == "shared":
            return {a: g for a in self.agents}, g
        if self.reward_mode == "per_agent":
            terms = self.reward_fn.per_metric(metrics)
            out = {}
            for a in self.agents:
                ms = self.responsibilities[a]
                out[a] = float(np.prod([terms[m][0] for m in ms])) if ms else g
            return out, g
        counter = []
        for a in self.agents:
            d = dict(design)
            for knob in AGENT_KNOBS[a]:
                d[knob] = self.reference_design[knob]
            counter.append(d)
        alt = self._joint(self.evaluator.evaluate(counter, self.workload))
        return {a: g - float(alt[i]) for i, a in enumerate(self.agents)}, g

    def _obs(self, agent: str) -> np.ndarray:
        return np.concatenate([self._last_metrics, self._last_unit[agent],
                               [self._t / self.max_steps]]).astype(np.float32)

    # ---- PettingZoo API ---------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            for i, a in enumerate(self.possible_agents):
                self._action_spaces[a].seed(seed + i)
        self.agents = list(self.possible_agents)
        self._t = 0
        self._last_metrics = np.zeros(len(OBSERVATION_METRICS))
        self._last_unit = {a: -np.ones(len(AGENT_KNOBS[a])) for a in self.possible_agents}
        self.last_info = {}
        if self.render_mode == "human":
            self.render()
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: Mapping[str, Any]):
        if not self.agents:
            raise EnvConfigError("step() after the episode ended; call reset() first")
        design = self.design_of(actions)
        metrics = self.evaluator.evaluate([design], self.workload)
        rewards, g = self._rewards(design, metrics)
        raw = {m: float(v[0]) for m, v in metrics.items()}
        vals = np.array([raw[m] for m in OBSERVATION_METRICS])
        self._last_metrics = np.clip(np.log10(np.maximum(np.abs(vals), 1e-30) / self._ref), -10, 10)
        for a in self.agents:
            idx = np.array([list(self._levels[k]).index(design[k]) for k in AGENT_KNOBS[a]])
            self._last_unit[a] = (idx + 0.5) / self._nvec[a]
        self._t += 1
        info = {"design": design, "metrics": raw, "joint_reward": g, "workload_id": self.workload_id,
                "evaluator_id": self.evaluator.id}
        self.last_info = info
        obs = {a: self._obs(a) for a in self.agents}
        done = self._t >= self.max_steps
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        infos = {a: dict(info) for a in self.agents}
        if done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The global state: metrics of the last design, the whole last design, progress."""
        unit = np.concatenate([self._last_unit[a] for a in self.possible_agents])
        order = [k for a in self.possible_agents for k in AGENT_KNOBS[a]]
        by_name = dict(zip(order, unit))
        design_unit = np.array([by_name[n] for n in self.space.names])
        return np.concatenate([self._last_metrics, design_unit, [self._t / self.max_steps]]).astype(np.float32)

    def render(self) -> Any:
        """``ansi``: a line for the last step; ``rgb_array``: the last design's DRAM command
        timeline (the default design before the first step; ``human``: shown)."""
        if self.render_mode in ("rgb_array", "human"):
            from mlsysgym.envs.render import dram_design_figure, output

            design = self.last_info.get("design", self.space.default)
            return output(self, dram_design_figure(self.trace, design, self.evaluator,
                                                   f"{self.trace.name}, step {self._t}"))
        if self.render_mode == "ansi" and self.last_info:
            i = self.last_info
            return (f"step {self._t}: joint reward {i['joint_reward']:.4g} design {i['design']} metrics "
                    + ", ".join(f"{m}={i['metrics'][m]:.4g}" for m in OBSERVATION_METRICS))
        return None

    def close(self) -> None:
        from mlsysgym.envs.render import close_window

        close_window(self)


def parallel_env(**kwargs: Any) -> DramMultiAgentEnv:
    """The multi-agent DRAM env (PettingZoo's ``parallel_env`` convention); kwargs as
    :class:`DramMultiAgentEnv`."""
    return DramMultiAgentEnv(**kwargs)


def env(**kwargs: Any):
    """The same env as a PettingZoo AEC env (agents act in turn; one simulation per cycle)."""
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(parallel_env(**kwargs))
