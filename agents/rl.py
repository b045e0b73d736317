"""Reinforcement learning agents through Stable-Baselines3 (and sb3-contrib's MaskablePPO).

Every agent trains on a :class:`~mlsysgym.envs.design_env.DesignEnv` whose designs are scored
by the budgeted problem (:meth:`DesignEnv.from_scorer <mlsysgym.envs.design_env.DesignEnv.from_scorer>`),
in one of its two modes:

- ``one-shot`` (ArchGym): one step = one budgeted evaluation. The action is a whole design:
  ``action_type="multidiscrete"`` over level indices (PPO, A2C), ``"box"``, a unit cube
  decoded with the ``unit`` encoding (SAC), or ``"discrete"`` over the flattened space (DQN,
  up to ``max_flat`` designs). Episodes last ``max_steps`` steps (truncated; 8 by default).
- ``sequential``: one parameter per step, ``Discrete(max levels)`` with ``action_masks()``
  marking the current parameter's levels (MaskablePPO; without masks an out-of-range level
  wraps around). The design is evaluated at its last parameter, which ends the episode;
  earlier steps give reward 0.

The observation is DesignEnv's for a scorer: the last normalized reward, the unit encoding of
the (partial) design (-1 for parameters not chosen yet) and the fraction of the episode done.
Rewards are normalized by the running mean and standard deviation of the rewards seen so far
and clipped to ±5 (``normalize_reward=True``); failed evaluations count as the worst success.
Designs are evaluated as chosen (a constraint of the space is the problem's to penalize).

Training is ``model.learn(total_timesteps = budget × steps per evaluation)`` with an SB3
callback that returns False once the budget (evaluations and/or seconds) is used up, so SB3
stops the run its own way and the trained model is kept: ``SearchResult.info["model"]`` is
the SB3 model (and ``info["model_path"]`` the ``model.zip`` it is saved to when ``log_dir``
is given). A step that asks for more designs than the budget has left (``n_envs`` > 1) has
only the first ones evaluated; the others are scored as failures and not counted.
``n_envs`` (default 1) trains on that many sub-envs at once: a
:class:`~mlsysgym.envs.vector.DesignVectorEnv` whose designs are evaluated in one batched call
per step, through SB3's VecEnv adapter. ``log_dir`` writes SB3's logs there (``log_formats``,
default ``("csv", "tensorboard")``: TensorBoard event files through the ``tensorboard``
package, or ``tensorboardX`` when only that is installed; without either, the default writes
csv only). ``env=`` trains on a given DesignEnv instead (an instance
or an id for ``gymnasium.make``) over the same DesignSpace — e.g. in sequential mode for
MaskablePPO, with its own observation — whose ``scorer`` is set to the budgeted problem, so
the budget and the trajectory are accounted as for every agent.

torch and Stable-Baselines3 are imported when an agent runs; ``torch.set_num_threads(1)`` is
set during the run (and restored) so that a seed gives one trajectory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import gymnasium as gym
import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.envs.design_env import DesignEnv, EnvConfigError, Scorer, Scores

__all__ = [
    "A2C_HYPERPARAMETERS",
    "DQN_HYPERPARAMETERS",
    "HYPERPARAMETERS",
    "MASKABLE_PPO_HYPERPARAMETERS",
    "PPO_HYPERPARAMETERS",
    "SAC_HYPERPARAMETERS",
    "a2c",
    "budget_scorer",
    "dqn",
    "maskable_ppo",
    "ppo",
    "sac",
    "training_progress",
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
    """Running normalization of the problem's rewards (failures → the worst success): count,
    mean, sum of squared deviations and minimum of the successful rewards, updated with each
    new batch (Chan et al.'s pairwise update), so a step costs the same at any budget."""

    def __init__(self, problem: BudgetedProblem, normalize: bool) -> None:
        self.problem, self.normalize = problem, normalize
        self.seen, self.n, self.mean, self.m2, self.worst = 0, 0, 0.0, 0.0, np.inf

    def _update(self) -> None:
        """Fold the rewards evaluated since the last call into the running statistics."""
        r = np.asarray(self.problem.rewards[self.seen:], dtype=float)
        ok = ~np.asarray(self.problem.failed[self.seen:], dtype=bool) & np.isfinite(r)
        self.seen += len(r)
        good = r[ok]
        if not good.size:
            return
        n, mean = self.n + good.size, good.mean()
        delta = mean - self.mean
        self.m2 += float(((good - mean) ** 2).sum()) + delta**2 * self.n * good.size / n
        self.mean += delta * good.size / n
        self.n, self.worst = n, min(self.worst, float(good.min()))

    def __call__(self, rewards: np.ndarray, failed: np.ndarray) -> np.ndarray:
        self._update()
        worst = self.worst if self.n else 0.0
        r = np.where(failed | ~np.isfinite(rewards), worst, rewards)
        if not self.normalize:
            return r
        if self.n < 2:
            return np.zeros_like(r)
        std = (self.m2 / self.n) ** 0.5
        return np.clip((r - self.mean) / (std + 1e-8), -5.0, 5.0)


def budget_scorer(problem: BudgetedProblem, normalize_reward: bool = True,
                  reference: Mapping[str, float] | None = None) -> Scorer:
    """A DesignEnv scorer that evaluates through ``problem`` (its budget and trajectory):
    normalized rewards, the problem's metrics (a metric some design lacks is taken from
    ``reference``, else NaN) and every design feasible (the problem penalizes). Designs beyond
    the budget left are not evaluated: they score as failures (never raises BudgetExhausted;
    the training callback stops the run)."""
    scale = _RewardScale(problem, normalize_reward)
    reference = dict(reference or {})

    def score(designs: Sequence[Mapping[str, Any]]) -> Scores:
        n = len(designs)
        raw = np.zeros(0) if problem.exhausted else problem.evaluate(list(designs))
        k = len(raw)
        first = len(problem.failed) - k
        failed = np.ones(n, dtype=bool)
        failed[:k] = problem.failed[first:]
        rows = problem.metrics[first:] + [{}] * (n - k)
        names = sorted({key for m in rows for key in m} | set(reference))
        metrics = {key: np.array([float(m.get(key, reference.get(key, np.nan))) for m in rows])
                   for key in names}
        rewards = np.concatenate([raw, np.full(n - k, np.nan)])
        return scale(rewards, failed), metrics, np.ones(n, dtype=bool)

    return score


def _design_env(problem: BudgetedProblem, mode: str, action_type: str, max_steps: int,
                normalize_reward: bool, env: Any, max_flat: int) -> tuple[Any, Scorer | None]:
    """The DesignEnv to train on — over the problem's objective, or ``env`` (a DesignEnv or a
    gymnasium id) with its evaluations routed through the problem — and the env's scorer
    before (to restore after training)."""
    if env is None:
        try:
            return DesignEnv.from_scorer(problem.space, budget_scorer(problem, normalize_reward),
                                         mode=mode, max_steps=max_steps,
                                         action_type=action_type, max_flat=max_flat), None
        except EnvConfigError as e:
            raise AgentConfigError(str(e)) from None
    if isinstance(env, str):
        env = gym.make(env)
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, DesignEnv):
        raise AgentConfigError(f"env= must be a DesignEnv (its scorer is routed through the "
                               f"budget), got {type(base).__name__}")
    if base.space != problem.space:
        raise AgentConfigError("the env's DesignSpace differs from the problem's; build the "
                               "problem from the same space")
    previous, base.scorer = base.scorer, budget_scorer(problem, normalize_reward, base.reference)
    return env, previous


# ---- the agents ---------------------------------------------------------------------------------
_ALGOS = ("ppo", "a2c", "dqn", "sac", "maskable_ppo")
_RENAMED = {"form": "mode", "action": "action_type", "episode_steps": "max_steps"}


def _train(algo: str, problem: BudgetedProblem, rng: np.random.Generator, mode: str,
           action_type: str, max_steps: int, normalize_reward: bool, env: Any,
           log_dir: str | None, log_formats: Sequence[str] | None, policy_kwargs: dict | None,
           max_flat: int, n_envs: int, **algo_kwargs: Any) -> None:
    """Build the env and the SB3 model, learn until the budget is used up (the callback stops
    SB3), keep the model in ``problem.info``."""
    import torch

    if int(n_envs) < 1:
        raise AgentConfigError(f"n_envs must be >= 1, got {n_envs}")
    seed = int(rng.integers(2**31 - 1))
    gym_env, previous = _design_env(problem, mode, action_type, max_steps, normalize_reward,
                                    env, max_flat)
    design_env = gym_env.unwrapped
    if n_envs > 1:
        from mlsysgym.envs.vector import DesignVectorEnv, sb3_vec_env

        gym_env = sb3_vec_env(DesignVectorEnv(design_env, int(n_envs), "SameStep"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps_per_eval = design_env.space.dim if design_env.mode == "sequential" else 1
        model = _model(algo, gym_env, seed, policy_kwargs, algo_kwargs)
        if log_dir is not None:
            _configure_logger(model, log_dir, log_formats)
        else:
            quiet_logger(model)
        model.learn(total_timesteps=min(problem.remaining * steps_per_eval, 2**62),
                    callback=_callbacks(problem))
        # learn() can stop short of the budget (e.g. a user env's steps that evaluate nothing):
        # keep acting with the trained policy until the budget is used
        venv = model.get_env()
        obs = venv.reset()
        while not problem.exhausted:
            kw = {"action_masks": np.stack(venv.env_method("action_masks"))} \
                if algo == "maskable_ppo" else {}
            act, _ = model.predict(obs, deterministic=False, **kw)
            obs, _, _, _ = venv.step(act)
        problem.info["model"] = model
        if log_dir is not None:
            model.save(f"{log_dir}/model.zip")
            problem.info["model_path"] = f"{log_dir}/model.zip"
    finally:
        torch.set_num_threads(threads)
        if env is not None:  # a user's env scores through its own evaluator again
            design_env.scorer = previous


_PROGRESS: ContextVar[dict[str, float] | None] = ContextVar("mlsysgym_rl_progress",
                                                            default=None)


@contextmanager
def training_progress() -> Iterator[dict[str, float]]:
    """While inside, an RL agent's training keeps the yielded dict up to date (after every
    env step) with its learning curve: ``rl_timesteps`` (env steps, all sub-envs),
    ``rl_episodes`` (episodes ended) and, once an episode has ended, ``rl_episode_reward_mean``
    (mean return of the last 100 episodes, in the env's reward units: normalized rewards by
    default). A sweep trial adds it to its intermediate Tune results."""
    sink: dict[str, float] = {}
    token = _PROGRESS.set(sink)
    try:
        yield sink
    finally:
        _PROGRESS.reset(token)


def _callbacks(problem: BudgetedProblem) -> Any:
    """The budget callback, and the learning-curve callback inside :func:`training_progress`."""
    budget = _budget_callback(problem)
    sink = _PROGRESS.get()
    if sink is None:
        return budget
    from stable_baselines3.common.callbacks import CallbackList

    return CallbackList([_curve_callback(sink), budget])


def _curve_callback(sink: dict[str, float]) -> Any:
    """An SB3 callback that writes the run's learning curve into ``sink`` every step."""
    from collections import deque

    from stable_baselines3.common.callbacks import BaseCallback

    class LearningCurve(BaseCallback):
        def _on_training_start(self) -> None:
            self.returns = np.zeros(self.training_env.num_envs)
            self.recent: deque[float] = deque(maxlen=100)
            self.episodes = 0

        def _on_step(self) -> bool:
            self.returns += np.asarray(self.locals["rewards"], dtype=float).reshape(-1)
            done = np.asarray(self.locals["dones"], dtype=bool).reshape(-1)
            if done.any():
                self.recent.extend(self.returns[done].tolist())
                self.returns[done] = 0.0
                self.episodes += int(done.sum())
                sink["rl_episode_reward_mean"] = float(np.mean(self.recent))
            sink["rl_timesteps"] = int(self.num_timesteps)
            sink["rl_episodes"] = self.episodes
            return True

    return LearningCurve()


def _budget_callback(problem: BudgetedProblem) -> Any:
    """An SB3 callback whose ``on_step`` returns False once ``problem``'s budget is used up."""
    from stable_baselines3.common.callbacks import BaseCallback

    class BudgetCallback(BaseCallback):
        def _on_step(self) -> bool:
            return not problem.exhausted

    return BudgetCallback()


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


def quiet_logger(model: Any) -> None:
    """Give an SB3 ``model`` a logger that writes nothing. Without one, every ``learn`` makes
    an empty ``SB3-<time>`` folder in the temporary directory, and leaves it there."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(None, []))


def _configure_logger(model: Any, log_dir: str, formats: Sequence[str] | None) -> None:
    """SB3's logger writing ``formats`` under ``log_dir`` (None: csv and, when a TensorBoard
    writer is installed, tensorboard)."""
    from stable_baselines3.common.logger import Logger, make_output_format

    wanted = list(formats) if formats is not None else ["csv", "tensorboard"]
    outputs = []
    for fmt in wanted:
        if fmt != "tensorboard":
            outputs.append(make_output_format(fmt, str(log_dir)))
            continue
        writer = _tensorboard_format(str(log_dir))
        if writer is not None:
            outputs.append(writer)
        elif formats is not None:
            raise AgentConfigError("log_formats has 'tensorboard' but neither the tensorboard "
                                   "nor the tensorboardX package is installed; pip install "
                                   "tensorboard or use 'csv'")
    model.set_logger(Logger(str(log_dir), outputs))


def _tensorboard_format(log_dir: str) -> Any:
    """SB3's TensorBoard output when ``tensorboard`` is installed, else one writing the same
    scalars with ``tensorboardX``; None without either."""
    from stable_baselines3.common.logger import KVWriter, make_output_format

    try:
        import tensorboard  # noqa: F401

        return make_output_format("tensorboard", log_dir)
    except ImportError:
        pass
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        return None

    class TensorBoardXFormat(KVWriter):
        """Numeric values as TensorBoard scalars (event files under ``log_dir``)."""

        def __init__(self) -> None:
            self.writer = SummaryWriter(log_dir)

        def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any],
                  step: int = 0) -> None:
            for key, value in key_values.items():
                excluded = key_excluded.get(key) or ()
                if "tensorboard" in excluded or isinstance(value, (str, bool)):
                    continue
                if isinstance(value, (int, float, np.integer, np.floating)):
                    self.writer.add_scalar(key, float(value), step)
            self.writer.flush()

        def close(self) -> None:
            self.writer.close()

    return TensorBoardXFormat()


def _common(problem: BudgetedProblem, kwargs: dict[str, Any], mode: str, action_type: str
            ) -> dict[str, Any]:
    """Split the env/logging hyperparameters (with defaults) from the algorithm's own."""
    for old, new in _RENAMED.items():
        if old in kwargs:
            raise AgentConfigError(f"hyperparameter {old!r} is now {new!r} (DesignEnv's name)")
    return {
        "mode": kwargs.pop("mode", mode), "action_type": kwargs.pop("action_type", action_type),
        "max_steps": kwargs.pop("max_steps", 8),
        "normalize_reward": kwargs.pop("normalize_reward", True),
        "env": kwargs.pop("env", None), "log_dir": kwargs.pop("log_dir", None),
        "log_formats": kwargs.pop("log_formats", None),
        "policy_kwargs": kwargs.pop("policy_kwargs", None),
        "max_flat": kwargs.pop("max_flat", 100_000), "n_envs": kwargs.pop("n_envs", 1),
    }


_DOC_COMMON = """Env and logging hyperparameters (all RL agents), DesignEnv's: ``mode``
    (``"one-shot"`` or ``"sequential"``), ``action_type`` (one-shot: ``"multidiscrete"``,
    ``"box"`` or ``"discrete"``), ``max_steps`` (one-shot episode length, default 8),
    ``max_flat`` (largest ``discrete`` action, default 100,000), ``normalize_reward`` (default
    True), ``env`` (a DesignEnv or id to train on instead, see the module docstring),
    ``n_envs`` (sub-envs trained on at once, one batched evaluation per step; default 1),
    ``log_dir`` (SB3 logs and the trained ``model.zip``, default none), ``log_formats``
    (default ``("csv", "tensorboard")``), ``policy_kwargs`` (default ``net_arch=[64, 64]``);
    any other keyword goes to the SB3 algorithm's constructor. The trained model is
    ``SearchResult.info["model"]``."""


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
    sequential mode (``mode="sequential"``; levels wrap, DQN has no masks). Defaults:
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
    if common["mode"] != "one-shot" or common["action_type"] != "box":
        raise AgentConfigError("SAC needs a continuous action: mode='one-shot', "
                               "action_type='box'")
    _train("sac", problem, rng, **common, learning_rate=learning_rate,
           learning_starts=learning_starts, batch_size=batch_size, train_freq=train_freq,
           **kwargs)


@register_agent("maskable_ppo")
def maskable_ppo(problem: BudgetedProblem, rng: np.random.Generator,
                 learning_rate: float = 1e-3, n_steps: int = 64, batch_size: int = 64,
                 n_epochs: int = 10, ent_coef: float = 0.01, **kwargs: Any) -> None:
    """MaskablePPO (sb3-contrib) in sequential mode, whose ``action_masks()`` restrict each
    step to the current parameter's levels (or on ``env=``, in its mode).
    Defaults: learning_rate 1e-3, n_steps 64, batch_size 64, n_epochs 10, ent_coef 0.01."""
    common = _common(problem, kwargs, "sequential", "multidiscrete")
    _train("maskable_ppo", problem, rng, **common, learning_rate=learning_rate,
           n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, ent_coef=ent_coef,
           **kwargs)


for _fn in (ppo, a2c, dqn, sac, maskable_ppo):
    _fn.__doc__ = f"{_fn.__doc__}\n\n    {_DOC_COMMON}"
