"""DesignEnv: the ArchGym-style design-space-exploration env over any DesignSpace + Evaluator
(or any scorer of designs: :meth:`DesignEnv.from_scorer`, what the RL agents train on).

Two modes:

- ``one-shot`` (ArchGym): the action is a whole design (``MultiDiscrete`` over level indices,
  a unit ``Box`` with ``action_type="box"``, or ``Discrete`` over the flattened space with
  ``action_type="discrete"``, up to ``max_flat`` designs); every step evaluates one design;
  an episode is ``max_steps`` evaluations (truncated).
- ``sequential``: one parameter per step (``Discrete(max levels)``, with ``action_masks()``
  marking the current parameter's valid levels); the design is evaluated at the last
  parameter, which terminates the episode; earlier steps give reward 0.

Observation (float32, one layout for both modes): ``log10(metric / reference)`` of the
``observation_metrics`` of the last evaluated design (clipped to ±10; zeros before the
first evaluation), then the design's unit encoding (−1 for parameters not chosen yet),
then the fraction of the episode done. ``reference`` metrics come from a reference design
(the space's middle by default) evaluated once at construction. An env built
:meth:`~DesignEnv.from_scorer` has no reference (nothing is evaluated at construction): its
first observation value is the last reward (clipped to ±10; 0 before the first evaluation).

``score(designs)`` gives rewards, metrics and feasibility of a batch (what agents call); when
the ``scorer`` attribute is set, it goes there instead of the evaluator (the RL agents route a
user's env through their evaluation budget this way).

``info`` (after a step that evaluates a design): ``design`` (the design, a dict),
``metrics`` (the evaluator's metrics, floats), ``reward``, ``infeasible`` (over a budget or
violating a constraint of the space), ``workload_id`` and ``evaluator_id`` (for
:class:`mlsysgym.core.dataset.LogEvaluations`; None for a scorer env). Sequential steps that
evaluate nothing give ``{"action_mask": ...}``; ``reset`` gives ``{}``.

``reset(options={"workload": W})`` evaluates the next episodes on workload ``W`` (what the
env's constructor takes: a zoo model, a trace...; the reference design is re-evaluated on it, so
rewards stay relative to the reference on the new workload). ``render_mode``: ``"ansi"`` (a
line of text), ``"rgb_array"`` / ``"human"`` (:mod:`mlsysgym.envs.render`: the design and the
episode's rewards; the accelerator and DRAM envs draw their own pictures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Evaluator, resolve_evaluator
from mlsysgym.core.space import DesignSpace
from mlsysgym.envs.rewards import Penalty, Reward, make_reward

MODES = ("one-shot", "sequential")
ACTION_TYPES = ("multidiscrete", "box", "discrete")

Scores: TypeAlias = tuple[np.ndarray, Mapping[str, np.ndarray], np.ndarray]
Scorer: TypeAlias = Callable[[Sequence[Mapping[str, Any]]], Scores]
"""``designs -> (rewards, metrics, feasible)``: one reward and one feasibility flag per design,
and each metric as an array over the designs."""


class InvalidActionError(MlsysgymError):
    """An action outside the env's action space (wrong shape or type, NaN, out of range), or
    one its rules forbid."""


class EnvConfigError(MlsysgymError):
    """An env argument that makes no sense (unknown mode, metric, action type...)."""


def as_evaluator(spec: Evaluator | str | None, default: Callable[[], Evaluator]) -> Evaluator:
    """An env's ``evaluator=`` argument: None → ``default()``; an Evaluator as is; a string
    resolved by the evaluator registry (:func:`mlsysgym.core.evaluator.resolve_evaluator`),
    e.g. ``"surrogate:PATH"`` (a saved cost model), ``"accelerator"``, ``"dram"``, ``"zigzag"``."""
    if spec is None:
        return default()
    return resolve_evaluator(spec)


def middle_design(space: DesignSpace) -> dict[str, Any]:
    """The design at the middle level of every parameter."""
    return space.decode(space.nvec // 2, "index")


class DesignEnv(gym.Env):
    """Search a DesignSpace by evaluating designs with an Evaluator on one workload."""

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": 4}  # noqa: RUF012

    def __init__(self, space: DesignSpace, evaluator: Evaluator, workload: Any,
                 reward: Reward | str = "edp", reward_kwargs: Mapping[str, Any] | None = None,
                 budgets: Mapping[str, float] | None = None, mode: str = "one-shot",
                 max_steps: int = 100, observation_metrics: Sequence[str] | None = None,
                 reference_design: Mapping[str, Any] | None = None,
                 action_type: str = "multidiscrete", render_mode: str | None = None,
                 max_flat: int = 100_000) -> None:
        _check_config(mode, action_type, max_steps)
        self.evaluator, self.workload = evaluator, workload
        self.reference_design = space.validate(reference_design or middle_design(space),
                                               check_constraints=False)
        self.reference = evaluator.evaluate_one(self.reference_design, workload)
        metrics = tuple(observation_metrics or evaluator.metric_names)
        unknown = [m for m in metrics if m not in self.reference]
        if unknown:
            raise EnvConfigError(f"unknown observation metrics {unknown}; "
                                 f"the evaluator gives {sorted(self.reference)}")
        self._reward_spec = (reward, dict(reward_kwargs or {}), budgets)
        self.reward_fn = self._make_reward(self._reward_spec[0], dict(self._reward_spec[1]),
                                          self._reward_spec[2])
        self.workload_id = evaluator.workload_id(workload)
        self._setup(space, mode, max_steps, action_type, metrics, render_mode, max_flat)

    @classmethod
    def from_scorer(cls, space: DesignSpace, scorer: Scorer, mode: str = "one-shot",
                    max_steps: int = 100, action_type: str = "multidiscrete",
                    max_flat: int = 100_000, render_mode: str | None = None) -> DesignEnv:
        """A DesignEnv whose designs are scored by ``scorer`` (e.g. a budgeted search problem's
        objective) instead of an Evaluator on a workload. Nothing is evaluated at construction
        (no reference design); the observation starts with the last reward."""
        _check_config(mode, action_type, max_steps)
        env = DesignEnv.__new__(DesignEnv)
        env.evaluator = env.workload = env.workload_id = env.reward_fn = None
        env.reference_design, env.reference = None, {}
        env._setup(space, mode, max_steps, action_type, (), render_mode, max_flat)
        env.scorer = scorer
        return env

    def _setup(self, space: DesignSpace, mode: str, max_steps: int, action_type: str,
               observation_metrics: tuple[str, ...], render_mode: str | None,
               max_flat: int) -> None:
        """Spaces and episode state (shared by both constructors)."""
        from mlsysgym.envs.render import check_render_mode

        check_render_mode(render_mode, self.metadata["render_modes"])
        self.space, self.mode, self.action_type = space, mode, action_type
        self.render_mode = render_mode
        self.max_steps = max_steps if mode == "one-shot" else space.dim
        self.observation_metrics = observation_metrics
        self.scorer: Scorer | None = None
        self._nvec = space.nvec
        k, d = max(len(observation_metrics), 1), space.dim  # no metrics: the last reward
        self.observation_space = spaces.Box(-10.0, 10.0, shape=(k + d + 1,), dtype=np.float32)
        if mode == "sequential":
            self.action_space = spaces.Discrete(int(self._nvec.max()))
        elif action_type == "box":
            self.action_space = space.box_space()
        elif action_type == "discrete":
            size = math.prod(int(n) for n in self._nvec)
            if size > max_flat:
                raise EnvConfigError(f"a flat Discrete action over {size} designs exceeds "
                                     f"max_flat={max_flat}; use mode='sequential' or raise "
                                     f"max_flat")
            self.action_space = spaces.Discrete(size)
        else:
            self.action_space = space.multidiscrete_space()
        sp = self.action_space  # finite bounds of every action element, for check_action
        self._action_bounds = ((sp.low, sp.high) if isinstance(sp, spaces.Box) else
                               (0, sp.n - 1) if isinstance(sp, spaces.Discrete) else
                               (0, sp.nvec - 1))
        self._ref = np.array([max(abs(self.reference[m]), 1e-30) for m in observation_metrics])
        self._levels = ([space.levels(n) for n in space.names] if space.is_discrete else [])
        self._t = 0
        self._partial: list[int] = []
        self._last_obs_metrics = np.zeros(k)
        self._last_design_unit = -np.ones(d)
        self._rewards: list[float] = []
        self.last_info: dict[str, Any] = {}

    # ---- reward ---------------------------------------------------------------------------
    def _make_reward(self, reward: Reward | str, kwargs: dict[str, Any],
                     budgets: Mapping[str, float] | None) -> Reward:
        if isinstance(reward, Reward):
            return reward
        if reward == "edp" and "reference" not in kwargs:
            # the reference design scores 0; a 2× better energy·delay scores +ln 2
            kwargs["reference"] = max(self.reference.get(kwargs.get("energy", "energy_uj"), 1.0)
                                      * self.reference.get(kwargs.get("delay", "latency_ms"), 1.0),
                                      1e-300)
        if reward == "weighted" and "scales" not in kwargs:
            kwargs["scales"] = {m: self.reference[m] for m in kwargs.get("weights", {})
                                if self.reference.get(m)}
        if budgets and "penalty" not in kwargs:
            kwargs["penalty"] = Penalty(budgets=dict(budgets), mode="scaled", scale=10.0)
        elif "penalty" not in kwargs:
            kwargs["penalty"] = Penalty(mode="scaled", scale=10.0)
        return make_reward(reward, **kwargs)

    def score(self, designs: Sequence[Mapping[str, Any]], cache: bool = True) -> Scores:
        """Rewards, metrics and feasibility of a batch of designs (what agents call); through
        ``self.scorer`` when it is set. ``cache=False`` skips the evaluator's cache (same
        values, no hashing: faster for large batches of fresh designs)."""
        if self.scorer is not None:
            return self.scorer(designs)
        metrics = self.evaluator.evaluate(designs, self.workload, cache=cache)
        feasible = self.space.feasible(self.space.to_columns(designs))  # constraints, vectorized
        penalty = self.reward_fn.penalty
        if penalty is not None:
            feasible &= penalty.feasible(metrics)
        rewards = np.asarray(self.reward_fn(metrics, feasible=feasible), dtype=float).reshape(-1)
        return rewards, metrics, feasible

    # ---- gymnasium API ----------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        progress = self._t / self.max_steps
        return np.concatenate([self._last_obs_metrics, self._last_design_unit, [progress]]
                              ).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"workload": W}`` switches the workload first."""
        super().reset(seed=seed)
        if options and options.get("workload") is not None:
            self._set_workload(options["workload"])
        self._t = 0
        self._partial = []
        self._last_obs_metrics = np.zeros(len(self._last_obs_metrics))
        self._last_design_unit = -np.ones(self.space.dim)
        self._rewards = []
        self.last_info = {}
        if self.render_mode == "human":
            self.render()
        return self._obs(), {}

    def _resolve_workload(self, workload: Any) -> Any:
        """What the evaluator takes for ``workload`` (subclasses resolve names)."""
        return workload

    def _set_workload(self, workload: Any) -> None:
        """Evaluate on ``workload`` from now on: the reference design is evaluated on it and the
        reward rebuilt (rewards stay relative to the reference)."""
        if self.evaluator is None:
            raise EnvConfigError("this env scores designs with a scorer and has no workload; "
                                 "reset(options={'workload': ...}) needs an evaluator env")
        workload = self._resolve_workload(workload)
        self.reference = self.evaluator.evaluate_one(self.reference_design, workload)
        self.workload, self.workload_id = workload, self.evaluator.workload_id(workload)
        self._ref = np.array([max(abs(self.reference[m]), 1e-30)
                              for m in self.observation_metrics])
        self.reward_fn = self._make_reward(self._reward_spec[0], dict(self._reward_spec[1]),
                                          self._reward_spec[2])

    def action_masks(self) -> np.ndarray:
        """Valid actions: all in one-shot mode; the current parameter's levels in sequential mode."""
        if self.mode == "sequential":
            j = min(len(self._partial), self.space.dim - 1)
            return np.arange(self.action_space.n) < self._nvec[j]
        if self.action_type == "multidiscrete":
            return np.ones(int(np.sum(self._nvec)), dtype=bool)
        return np.ones(self.action_space.n if self.action_type == "discrete" else 1, dtype=bool)

    def _action_unit(self, action: np.ndarray) -> np.ndarray:
        """A checked one-shot action → the unit-cube vector of its design."""
        if self.action_type == "box":
            return np.clip(action, 0.0, 1.0)
        if self.action_type == "discrete":
            action = np.array(np.unravel_index(int(action), tuple(self._nvec)), dtype=np.float64)
        return (action + 0.5) / self._nvec

    def decode_action(self, action: Any) -> dict[str, Any]:
        """The design an action of one-shot mode stands for (what ``step`` evaluates)."""
        return self._decode_unit(self._action_unit(np.asarray(action, dtype=np.float64)))

    def _decode_unit(self, unit: np.ndarray) -> dict[str, Any]:
        """Unit-cube vector → design; a direct table lookup when every parameter is discrete."""
        if not self._levels:
            return self.space.decode(unit, "unit")
        idx = np.minimum((unit * self._nvec).astype(np.int64), self._nvec - 1)
        return {name: levels[i] for name, levels, i in zip(self.space.names, self._levels, idx)}

    def actions_inside(self, a: np.ndarray) -> bool:
        """Whether every entry of ``a`` (one action or a batch of them) lies in the action
        bounds and is integral where the action space is discrete (NaN fails both bound
        comparisons, ±inf one of them)."""
        lo, hi = self._action_bounds
        inside = (a >= lo) & (a <= hi)
        if self.mode == "sequential" or self.action_type != "box":
            inside &= a == np.round(a)
        return bool(inside.all())

    def check_action(self, action: Any) -> np.ndarray:
        """``action`` as a float array if it lies in the action space (shape, numeric, finite,
        integral for discrete spaces, in range); InvalidActionError otherwise, never clamped."""
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidActionError(f"action {action!r:.80} is not numeric; sample one with "
                                     f"env.action_space.sample()") from None
        if not (a.shape == self.action_space.shape and self.actions_inside(a)):
            raise InvalidActionError(f"action {np.asarray(action).tolist()!r:.80} is outside the "
                                     f"action space {self.action_space}; sample one with "
                                     f"env.action_space.sample()")
        return a

    def step(self, action: Any):
        action = self.check_action(action)
        self._t += 1
        nvec = self._nvec
        if self.mode == "sequential":
            j = len(self._partial)
            self._partial.append(int(action) % int(nvec[j]))  # masked; wrap if not
            unit = -np.ones(self.space.dim)
            unit[: j + 1] = (np.array(self._partial) + 0.5) / nvec[: j + 1]
            self._last_design_unit = unit
            if len(self._partial) < self.space.dim:
                return self._obs(), 0.0, False, False, {"action_mask": self.action_masks()}
        else:
            unit = self._action_unit(action)
        design = self._decode_unit(unit)
        rewards, metrics, feasible = self.score([design])
        reward = float(rewards[0])
        raw = {m: float(v[0]) for m, v in metrics.items()}
        if self.observation_metrics:
            vals = np.array([raw[m] for m in self.observation_metrics])
            self._last_obs_metrics = np.clip(np.log10(np.maximum(np.abs(vals), 1e-30) / self._ref),
                                             -10, 10)
        else:
            self._last_obs_metrics = np.clip([reward], -10.0, 10.0)
        self._last_design_unit = unit
        self._rewards.append(reward)
        info = {"design": design, "metrics": raw, "reward": reward,
                "infeasible": not bool(feasible[0]), "workload_id": self.workload_id,
                "evaluator_id": None if self.evaluator is None else self.evaluator.id}
        self.last_info = info
        terminated = self.mode == "sequential"
        truncated = self.mode == "one-shot" and self._t >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return self._obs(), reward, terminated, truncated, info

    def render(self) -> Any:
        """``ansi``: a line for the last step; ``rgb_array``: the picture (``human``: shown)."""
        if self.render_mode == "ansi" and self.last_info:
            i = self.last_info
            return (f"step {self._t}: reward {i['reward']:.4g} design {i['design']} "
                    f"{'INFEASIBLE ' if i['infeasible'] else ''}metrics "
                    + ", ".join(f"{m}={i['metrics'][m]:.4g}" for m in self.observation_metrics))
        if self.render_mode in ("rgb_array", "human"):
            from mlsysgym.envs.render import output

            return output(self, self._figure())
        return None

    def _figure(self) -> Any:
        """The picture of the env now (subclasses draw their own)."""
        from mlsysgym.envs.render import design_figure

        unit = self._last_design_unit
        design = self._decode_unit(np.where(unit < 0, 0.5, unit))
        labels = [f"{design[n]}" if u >= 0 else "(not chosen)"
                  for n, u in zip(self.space.names, unit)]
        title = f"{type(self).__name__} step {self._t}/{self.max_steps}"
        return design_figure(self.space.names, unit, labels, self._rewards, title)

    def _shown_design(self) -> dict[str, Any] | None:
        """The design to draw: the last evaluated one, else the reference design."""
        return self.last_info.get("design", self.reference_design)

    def close(self) -> None:
        from mlsysgym.envs.render import close_window

        close_window(self)
        super().close()


def _check_config(mode: str, action_type: str, max_steps: int) -> None:
    """One-line EnvConfigError for an unknown mode or action type, or max_steps < 1."""
    if mode not in MODES:
        raise EnvConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if action_type not in ACTION_TYPES:
        raise EnvConfigError(f"action_type must be one of {ACTION_TYPES}, got {action_type!r}")
    if max_steps < 1:
        raise EnvConfigError(f"max_steps must be >= 1, got {max_steps}")
