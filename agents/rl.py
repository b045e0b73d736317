"""Reinforcement learning agents through Stable-Baselines3 (and sb3-contrib's MaskablePPO).

The budgeted problem becomes a Gymnasium env, :class:`ProblemEnv`, in one of two forms:

- ``one-shot`` (ArchGym): one step = one budgeted evaluation. The action is a whole design:
  ``MultiDiscrete(nvec)`` over level indices (PPO, A2C), a unit ``Box`` decoded with the
  ``unit`` encoding (SAC), or ``Discrete(prod(nvec))`` over the flattened space (DQN, up to
  ``max_flat`` designs). The observation is the unit encoding of the last evaluated design,
  its normalized reward and the episode progress; episodes last ``episode_steps`` steps
  (truncated), the first observation being -1s.
- ``sequential``: one parameter per step, ``Discrete(max levels)`` with ``action_masks()``
  marking the current parameter's levels (MaskablePPO; without masks an out-of-range level
  wraps around). The observation is the unit encoding of the partial design (-1 for
  parameters not chosen yet), a one-hot of the parameter being chosen and the last
  normalized reward. The design is evaluated at its last parameter, which ends the episode;
  earlier steps give reward 0.

Rewards are normalized by the running mean and standard deviation of the rewards seen so far
and clipped to ±5 (``normalize_reward=True``); failed evaluations count as the worst success.
Designs are evaluated as chosen (a constraint of the space is the problem's to penalize).

Training is ``model.learn(total_timesteps = budget × steps per evaluation)``; the problem
raises :class:`~mlsysgym.agents.base.BudgetExhausted` at the budget, which ends the run.
``log_dir`` writes SB3's logs there (``log_formats``: ``csv``, and ``tensorboard`` when the
tensorboard package is installed). ``env=`` trains on a given Gymnasium env (an instance or
an id for ``gymnasium.make``) over the same DesignSpace — e.g. ``DesignEnv`` in sequential
mode for MaskablePPO — whose evaluations (its ``score`` method) are routed through the
budgeted problem, so the budget and the trajectory are accounted as for every agent.

torch and Stable-Baselines3 are imported when an agent runs; ``torch.set_num_threads(1)`` is
set during the run (and restored) so that a seed gives one trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent

__all__ = [
    "A2C_HYPERPARAMETERS",
    "DQN_HYPERPARAMETERS",
    "HYPERPARAMETERS",
    "MASKABLE_PPO_HYPERPARAMETERS",
    "PPO_HYPERPARAMETERS",
    "SAC_HYPERPARAMETERS",
    "ProblemEnv",
    "a2c",
    "dqn",
    "maskable_ppo",
    "ppo",
    "sac",
]

PPO_HYPERPARAMETERS: dict[str, list[Any]] = {
    "learning_rate": [3e-4, 1e-3, 3e-3],
    "n_steps": [16, 32, 64],
    "ent_coef": [0.0, 0.01],
}
A2C_HYPERPARAMETERS: dict[str, list[Any]] = {
    "learning_rate": [3e-4, 1e-3, 3e-3],
    "n_steps": [4, 8, 16],
    "ent_coef": [0.0, 0.01],
}
DQN_HYPERPARAMETERS: dict[str, list[Any]] = {
    "learning_rate": [1e-4, 1e-3],
    "exploration_fraction": [0.3, 0.5],
    "learning_starts": [16, 64],
}
SAC_HYPERPARAMETERS: dict[str, list[Any]] = {
    "learning_rate": [3e-4, 1e-3, 3e-3],
    "learning_starts": [16, 64],
    "batch_size": [32, 64],
}
MASKABLE_PPO_HYPERPARAMETERS: dict[str, list[Any]] = PPO_HYPERPARAMETERS
HYPERPARAMETERS = PPO_HYPERPARAMETERS


class _RewardScale:
    """Running normalization of the problem's rewards (failures → the worst success)."""

    def __init__(self, problem: BudgetedProblem, normalize: bool) -> None:
        self.problem, self.normalize = problem, normalize

    def __call__(self, rewards: np.ndarray, failed: np.ndarray) -> np.ndarray:
        all_r = np.asarray(self.problem.rewards, dtype=float)
        all_ok = ~np.asarray(self.problem.failed, dtype=bool) & np.isfinite(all_r)
        good = all_r[all_ok]
        worst = good.min() if len(good) else 0.0
        r = np.where(failed | ~np.isfinite(rewards), worst, rewards)
        if not self.normalize:
            return r
        if len(good) < 2:
            return np.zeros_like(r)
        return np.clip((r - good.mean()) / (good.std() + 1e-8), -5.0, 5.0)


class ProblemEnv(gym.Env):
    """A BudgetedProblem as a Gymnasium env (see the module docstring for the two forms)."""

    metadata = {"render_modes": []}  # noqa: RUF012  (gymnasium convention)

    def __init__(self, problem: BudgetedProblem, form: str = "one-shot",
                 action: str = "multidiscrete", episode_steps: int = 8,
                 normalize_reward: bool = True, max_flat: int = 100_000) -> None:
        if form not in ("one-shot", "sequential"):
            raise AgentConfigError(f"form must be 'one-shot' or 'sequential', got {form!r}")
        if action not in ("multidiscrete", "box", "discrete"):
            raise AgentConfigError(
                f"action must be 'multidiscrete', 'box' or 'discrete', got {action!r}")
        if episode_steps < 1:
            raise AgentConfigError(f"episode_steps must be >= 1, got {episode_steps}")
        self.problem, self.space = problem, problem.space
        self.form, self.action = form, action
        self.episode_steps = episode_steps if form == "one-shot" else self.space.dim
        self.scale = _RewardScale(problem, normalize_reward)
        self.nvec = self.space.nvec
        d = self.space.dim
        if form == "sequential":
            self.action_space = spaces.Discrete(int(self.nvec.max()))
            obs_dim = 2 * d + 1
        else:
            if action == "box":
                self.action_space = self.space.box_space()
            elif action == "discrete":
                size = math.prod(int(k) for k in self.nvec)
                if size > max_flat:
                    raise AgentConfigError(
                        f"a flat Discrete action over {size} designs exceeds max_flat="
                        f"{max_flat}; use form='sequential' or raise max_flat")
                self.action_space = spaces.Discrete(size)
            else:
                self.action_space = self.space.multidiscrete_space()
            obs_dim = d + 2
        self.observation_space = spaces.Box(-5.0, 5.0, shape=(obs_dim,), dtype=np.float32)
        self._t = 0
        self._partial: list[int] = []
        self._last_unit = -np.ones(d)
        self._last_reward = 0.0

    def _obs(self) -> np.ndarray:
        d = self.space.dim
        if self.form == "sequential":
            pos = np.zeros(d)
            pos[min(len(self._partial), d - 1)] = 1.0
            return np.concatenate([self._last_unit, pos, [self._last_reward]]).astype(np.float32)
        return np.concatenate([self._last_unit, [self._last_reward],
                               [self._t / self.episode_steps]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._partial = []
        self._last_unit = -np.ones(self.space.dim)
        return self._obs(), {}

    def action_masks(self) -> np.ndarray:
        """Valid actions: the current parameter's levels (sequential); all otherwise."""
        if self.form == "sequential":
            j = min(len(self._partial), self.space.dim - 1)
            return np.arange(self.action_space.n) < self.nvec[j]
        if isinstance(self.action_space, spaces.MultiDiscrete):
            return np.ones(int(self.nvec.sum()), dtype=bool)
        return np.ones(getattr(self.action_space, "n", 1), dtype=bool)

    def _indices(self, action: Any) -> np.ndarray:
        if self.action == "discrete":
            return np.array(np.unravel_index(int(action), tuple(self.nvec)))
        return np.asarray(action, dtype=np.int64)

    def _evaluate(self, unit: np.ndarray, kind: str, vec: np.ndarray) -> float:
        design = self.space.decode(vec, kind)
        raw = self.problem.evaluate([design])
        failed = np.asarray(self.problem.failed[-1:], dtype=bool)
        r = float(self.scale(raw, failed)[0])
        self._last_unit, self._last_reward = unit, r
        return r

    def step(self, action: Any):
        self._t += 1
        if self.form == "sequential":
            j = len(self._partial)
            self._partial.append(int(action) % int(self.nvec[j]))
            idx = np.array(self._partial)
            unit = -np.ones(self.space.dim)
            unit[: j + 1] = (idx + 0.5) / self.nvec[: j + 1]
            if j + 1 < self.space.dim:
                self._last_unit = unit
                return self._obs(), 0.0, False, False, {}
            r = self._evaluate(unit, "index", idx)
            return self._obs(), r, True, False, {}
        if self.action == "box":
            u = np.clip(np.asarray(action, dtype=np.float64), 0.0, 1.0)
            r = self._evaluate(u, "unit", u)
        else:
            idx = self._indices(action)
            r = self._evaluate((idx + 0.5) / self.nvec, "index", idx)
        return self._obs(), r, False, self._t >= self.episode_steps, {}


# ---- a user's Gymnasium env, with its evaluations routed through the budgeted problem ----------
def _routed_env(env: Any, problem: BudgetedProblem, normalize_reward: bool) -> Any:
    """``env`` (an instance or a gymnasium id) whose ``score`` goes through ``problem``."""
    if isinstance(env, str):
        env = gym.make(env)
    base = env.unwrapped
    if not callable(getattr(base, "score", None)):
        raise AgentConfigError(f"{type(base).__name__} has no score(designs) method to route "
                               f"evaluations through the budget; pass a DesignEnv")
    if getattr(base, "space", None) != problem.space:
        raise AgentConfigError("the env's DesignSpace differs from the problem's; build the "
                               "problem from the same space")
    scale = _RewardScale(problem, normalize_reward)
    reference = dict(getattr(base, "reference", {}))

    def score(designs: Sequence[Mapping[str, Any]]):
        raw = problem.evaluate(list(designs))
        n = len(raw)
        failed = np.asarray(problem.failed[-n:], dtype=bool)
        rows = problem.metrics[-n:]
        names = sorted({k for m in rows for k in m} | set(reference))
        metrics = {k: np.array([float(m.get(k, reference.get(k, np.nan))) for m in rows])
                   for k in names}
        return scale(raw, failed), metrics, np.ones(n, dtype=bool)

    base.score = score
    return env


# ---- the agents ---------------------------------------------------------------------------------
_ALGOS = ("ppo", "a2c", "dqn", "sac", "maskable_ppo")


def _train(algo: str, problem: BudgetedProblem, rng: np.random.Generator, form: str,
           action: str, episode_steps: int, normalize_reward: bool, env: Any,
           log_dir: str | None, log_formats: Sequence[str], policy_kwargs: dict | None,
           max_flat: int, **algo_kwargs: Any) -> None:
    """Build the env and the SB3 model, learn until the budget is used up."""
    import torch

    seed = int(rng.integers(2**31 - 1))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if env is not None:
            gym_env = _routed_env(env, problem, normalize_reward)
            if algo == "maskable_ppo" and not callable(getattr(gym_env.unwrapped, "action_masks",
                                                               None)):
                raise AgentConfigError("MaskablePPO needs an env with action_masks()")
            steps_per_eval = problem.space.dim if getattr(gym_env.unwrapped, "mode", "") == \
                "sequential" else 1
        else:
            gym_env = ProblemEnv(problem, form=form, action=action, episode_steps=episode_steps,
                                  normalize_reward=normalize_reward, max_flat=max_flat)
            steps_per_eval = problem.space.dim if form == "sequential" else 1
        model = _model(algo, gym_env, seed, policy_kwargs, algo_kwargs)
        if log_dir is not None:
            _configure_logger(model, log_dir, log_formats)
        model.learn(total_timesteps=problem.remaining * steps_per_eval)
        # learn() can stop short of the budget (e.g. a user env's steps that evaluate nothing):
        # keep acting with the trained policy until the budget is used
        obs, _ = gym_env.reset(seed=seed)
        while not problem.exhausted:
            masked = algo == "maskable_ppo"
            kw = {"action_masks": gym_env.unwrapped.action_masks()} if masked else {}
            act, _ = model.predict(obs, deterministic=False, **kw)
            obs, _, term, trunc, _ = gym_env.step(act)
            if term or trunc:
                obs, _ = gym_env.reset()
    finally:
        torch.set_num_threads(threads)


def _model(algo: str, env: Any, seed: int, policy_kwargs: dict | None,
           kwargs: dict[str, Any]) -> Any:
    pk = {"net_arch": [64, 64]} if policy_kwargs is None else dict(policy_kwargs)
    common = {"seed": seed, "verbose": 0, "device": "cpu", "policy_kwargs": pk}
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", env, **common, **kwargs)
    import stable_baselines3 as sb3

    cls = {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN, "sac": sb3.SAC}[algo]
    return cls("MlpPolicy", env, **common, **kwargs)


def _configure_logger(model: Any, log_dir: str, formats: Sequence[str]) -> None:
    from stable_baselines3.common.logger import configure

    formats = list(formats)
    if "tensorboard" in formats:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise AgentConfigError("log_formats has 'tensorboard' but the tensorboard package "
                                   "is not installed; pip install tensorboard or use 'csv'") \
                from None
    model.set_logger(configure(str(log_dir), formats))


def _common(problem: BudgetedProblem, kwargs: dict[str, Any], form: str, action: str
            ) -> dict[str, Any]:
    """Split the env/logging hyperparameters (with defaults) from the algorithm's own."""
    return {
        "form": kwargs.pop("form", form), "action": kwargs.pop("action", action),
        "episode_steps": kwargs.pop("episode_steps", 8),
        "normalize_reward": kwargs.pop("normalize_reward", True),
        "env": kwargs.pop("env", None), "log_dir": kwargs.pop("log_dir", None),
        "log_formats": kwargs.pop("log_formats", ("csv",)),
        "policy_kwargs": kwargs.pop("policy_kwargs", None),
        "max_flat": kwargs.pop("max_flat", 100_000),
    }


_DOC_COMMON = """Env and logging hyperparameters (all RL agents): ``form`` (``"one-shot"`` or
    ``"sequential"``), ``episode_steps`` (one-shot episode length, default 8),
    ``normalize_reward`` (default True), ``env`` (a Gymnasium env or id to train on instead,
    see the module docstring), ``log_dir`` (SB3 logs, default none), ``log_formats``
    (default ``("csv",)``), ``policy_kwargs`` (default ``net_arch=[64, 64]``); any other keyword
    goes to the SB3 algorithm's constructor."""


@register_agent("ppo")
def ppo(problem: BudgetedProblem, rng: np.random.Generator, learning_rate: float = 1e-3,
        n_steps: int = 32, batch_size: int = 32, n_epochs: int = 10, ent_coef: float = 0.01,
        **kwargs: Any) -> None:
    """PPO (one-shot MultiDiscrete actions by default). Defaults: learning_rate 1e-3, n_steps
    32, batch_size 32, n_epochs 10, ent_coef 0.01."""
    common = _common(problem, kwargs, "one-shot", "multidiscrete")
    _train("ppo", problem, rng, **common, learning_rate=learning_rate, n_steps=n_steps,
           batch_size=batch_size, n_epochs=n_epochs, ent_coef=ent_coef, **kwargs)


@register_agent("a2c")
def a2c(problem: BudgetedProblem, rng: np.random.Generator, learning_rate: float = 1e-3,
        n_steps: int = 8, ent_coef: float = 0.01, **kwargs: Any) -> None:
    """A2C (one-shot MultiDiscrete actions by default). Defaults: learning_rate 1e-3,
    n_steps 8, ent_coef 0.01."""
    common = _common(problem, kwargs, "one-shot", "multidiscrete")
    _train("a2c", problem, rng, **common, learning_rate=learning_rate, n_steps=n_steps,
           ent_coef=ent_coef, **kwargs)


@register_agent("dqn")
def dqn(problem: BudgetedProblem, rng: np.random.Generator, learning_rate: float = 1e-3,
        learning_starts: int = 16, exploration_fraction: float = 0.5,
        exploration_final_eps: float = 0.05, target_update_interval: int = 50,
        train_freq: int = 1, batch_size: int = 32, **kwargs: Any) -> None:
    """DQN over a flat ``Discrete`` action (one-shot, up to ``max_flat`` designs) or the
    sequential form (``form="sequential"``; levels wrap, DQN has no masks). Defaults:
    learning_rate 1e-3, learning_starts 16, exploration_fraction 0.5, exploration_final_eps
    0.05, target_update_interval 50, train_freq 1, batch_size 32."""
    common = _common(problem, kwargs, "one-shot", "discrete")
    _train("dqn", problem, rng, **common, learning_rate=learning_rate,
           learning_starts=learning_starts, exploration_fraction=exploration_fraction,
           exploration_final_eps=exploration_final_eps,
           target_update_interval=target_update_interval, train_freq=train_freq,
           batch_size=batch_size, **kwargs)


@register_agent("sac")
def sac(problem: BudgetedProblem, rng: np.random.Generator, learning_rate: float = 1e-3,
        learning_starts: int = 16, batch_size: int = 64, train_freq: int = 1,
        **kwargs: Any) -> None:
    """SAC over a unit ``Box`` action decoded with the ``unit`` encoding (one-shot only).
    Defaults: learning_rate 1e-3, learning_starts 16, batch_size 64, train_freq 1."""
    common = _common(problem, kwargs, "one-shot", "box")
    if common["form"] != "one-shot" or common["action"] != "box":
        raise AgentConfigError("SAC needs a continuous action: form='one-shot', action='box'")
    _train("sac", problem, rng, **common, learning_rate=learning_rate,
           learning_starts=learning_starts, batch_size=batch_size, train_freq=train_freq,
           **kwargs)


@register_agent("maskable_ppo")
def maskable_ppo(problem: BudgetedProblem, rng: np.random.Generator,
                 learning_rate: float = 1e-3, n_steps: int = 64, batch_size: int = 64,
                 n_epochs: int = 10, ent_coef: float = 0.01, **kwargs: Any) -> None:
    """MaskablePPO (sb3-contrib) on the sequential form, whose ``action_masks()`` restrict each
    step to the current parameter's levels, or on ``env=`` (which must have ``action_masks``).
    Defaults: learning_rate 1e-3, n_steps 64, batch_size 64, n_epochs 10, ent_coef 0.01."""
    common = _common(problem, kwargs, "sequential", "multidiscrete")
    _train("maskable_ppo", problem, rng, **common, learning_rate=learning_rate,
           n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, ent_coef=ent_coef,
           **kwargs)


for _fn in (ppo, a2c, dqn, sac, maskable_ppo):
    _fn.__doc__ = f"{_fn.__doc__}\n\n    {_DOC_COMMON}"
