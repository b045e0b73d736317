"""A native ``gymnasium.vector.VectorEnv`` for the design envs: all sub-envs' designs are scored
in ONE batched call per step (one ``Evaluator.evaluate`` — or one scorer call — for the batch).

:class:`DesignVectorEnv` runs ``num_envs`` copies of one :class:`~mlsysgym.envs.design_env.DesignEnv`
(the same space, evaluator, workload and reward; any ``DesignEnv.from_scorer`` too) as arrays:
each sub-env's step counter, last observed metrics and (partial) design. A step decodes the
batch of actions, scores the designs of the sub-envs that evaluate this step with
``env.score(designs)`` (one call) and builds the batched observation — what N separate envs
would return, at the cost of one batched evaluation instead of N. Both modes are supported
(one-shot: every sub-env evaluates every step; sequential: those at their last parameter).

Autoreset follows Gymnasium 1.x (``metadata["autoreset_mode"]``): ``NEXT_STEP`` (default, as
``SyncVectorEnv``): the step after a sub-env's episode ends resets it (its action is ignored,
reward 0, terminated and truncated False); ``SAME_STEP``: a sub-env is reset in the step its
episode ends, its last observation in ``infos["final_obs"]`` and its info in
``infos["final_info"]``; ``DISABLED``: call ``reset(options={"reset_mask": mask})``.

``cache=False`` scores without the evaluator's cache (the same values without hashing every
design: faster for large batches of fresh designs).

``infos`` (dict of arrays, with the ``_key`` masks of Gymnasium's vector convention) for the
sub-envs that evaluated a design this step: ``reward``, ``infeasible``, ``design`` (object
array of dicts) and ``metrics`` (a dict of arrays).

:func:`sb3_vec_env` is the thin Stable-Baselines3 adapter (``SAME_STEP`` underneath, SB3's
``terminal_observation`` / ``TimeLimit.truncated`` infos; ``env_method("action_masks")`` for
MaskablePPO). The registered design envs have vector entry points::

    envs = gymnasium.make_vec("mlsysgym/Accelerator-v0", num_envs=256,
                              vectorization_mode="vector_entry_point", model="resnet18")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from mlsysgym.envs.design_env import DesignEnv, EnvConfigError, InvalidActionError

__all__ = ["DesignVectorEnv", "accelerator_vector_env", "dram_vector_env", "sb3_vec_env",
           "serving_vector_env"]


class DesignVectorEnv(VectorEnv):
    """``num_envs`` copies of a DesignEnv, stepped together with one batched evaluation."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, env: Any, num_envs: int,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 cache: bool = True) -> None:
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, DesignEnv):
            raise EnvConfigError(f"DesignVectorEnv runs DesignEnvs, got {type(base).__name__}")
        if int(num_envs) < 1:
            raise EnvConfigError(f"num_envs must be >= 1, got {num_envs}")
        self.env, self.num_envs, self.cache = base, int(num_envs), cache
        mode = AutoresetMode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.render_mode = None
        self.single_observation_space = base.observation_space
        self.single_action_space = base.action_space
        self.observation_space = batch_space(base.observation_space, self.num_envs)
        self.action_space = batch_space(base.action_space, self.num_envs)
        space, n = base.space, self.num_envs
        self._dim, self._nvec = space.dim, base._nvec
        self._levels = [_objects(lv) for lv in base._levels] if base._levels else None
        self._t = np.zeros(n, np.int64)
        self._count = np.zeros(n, np.int64)  # parameters chosen (sequential mode)
        self._idx = np.zeros((n, space.dim), np.int64)
        self._metrics = np.zeros((n, len(base._last_obs_metrics)))
        self._unit = -np.ones((n, space.dim))
        self._autoreset = np.zeros(n, bool)

    # ---- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the sub-envs (``options["reset_mask"]``: only those); ``options["workload"]``
        switches every sub-env's workload (see :meth:`DesignEnv.reset`)."""
        if seed is not None:
            first = seed if isinstance(seed, (int, np.integer)) else seed[0]
            self._np_random, self._np_random_seed = seeding.np_random(int(first))
        options = dict(options or {})
        if options.get("workload") is not None:
            self.env._set_workload(options["workload"])
        mask = np.asarray(options.get("reset_mask", np.ones(self.num_envs, bool)), bool)
        self._reset_rows(mask)
        return self._obs(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        a = self._check(actions)
        n, env = self.num_envs, self.env
        rewards = np.zeros(n)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        stepping = np.ones(n, bool)
        if self.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP and self._autoreset.any():
            stepping = ~self._autoreset
            self._reset_rows(self._autoreset)
        rows = np.flatnonzero(stepping)
        self._t[rows] += 1
        if env.mode == "sequential":
            j = self._count[rows]
            self._idx[rows, j] = a[rows].astype(np.int64) % self._nvec[j]
            self._count[rows] += 1
            done = self._count[rows] == self._dim
            chosen = np.arange(self._dim)[None, :] < self._count[rows, None]
            self._unit[rows] = np.where(chosen, (self._idx[rows] + 0.5) / self._nvec, -1.0)
            rows = rows[done]
            terminated[rows] = True
        else:
            self._unit[rows] = self._action_unit(a[rows])
            truncated[rows] = self._t[rows] >= env.max_steps
        infos: dict[str, Any] = {}
        if rows.size:
            rewards[rows] = self._evaluate(rows, infos)
        obs = self._obs()
        ended = terminated | truncated
        if self.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP and ended.any():
            final = np.empty(n, dtype=object)
            for i in np.flatnonzero(ended):
                final[i] = obs[i].copy()
            infos["final_info"], infos["_final_info"] = dict(infos), ended.copy()
            infos["final_obs"], infos["_final_obs"] = final, ended.copy()
            self._reset_rows(ended)
            obs = self._obs()
        self._autoreset = ended
        return obs, rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n)`` valid actions, each sub-env's ``DesignEnv.action_masks()``."""
        env = self.env
        saved = env._partial
        try:
            rows = []
            for i in range(self.num_envs):
                env._partial = self._idx[i, : self._count[i]].tolist()
                rows.append(env.action_masks())
        finally:
            env._partial = saved
        return np.stack(rows)

    def close_extras(self, **kwargs: Any) -> None:
        self.env.close()

    # ---- internals --------------------------------------------------------------------------
    def _reset_rows(self, mask: np.ndarray) -> None:
        self._t[mask] = 0
        self._count[mask] = 0
        self._metrics[mask] = 0.0
        self._unit[mask] = -1.0
        self._autoreset[mask] = False

    def _obs(self) -> np.ndarray:
        progress = (self._t / self.env.max_steps)[:, None]
        return np.concatenate([self._metrics, self._unit, progress], axis=1).astype(np.float32)

    def _check(self, actions: Any) -> np.ndarray:
        """The batch as floats if every action lies in the single action space (shape, finite,
        integral where discrete, in range); InvalidActionError otherwise."""
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidActionError(f"actions {actions!r:.80} are not numeric; sample a batch "
                                     f"with envs.action_space.sample()") from None
        if not (a.shape == self.action_space.shape and self.env.actions_inside(a)):
            raise InvalidActionError(f"actions of shape {np.shape(actions)} are not all in the "
                                     f"action space {self.action_space}; sample a batch with "
                                     f"envs.action_space.sample()")
        return a

    def _action_unit(self, a: np.ndarray) -> np.ndarray:
        """One-shot actions → unit-cube vectors of their designs (DesignEnv._action_unit, batched)."""
        t = self.env.action_type
        if t == "box":
            return np.clip(a, 0.0, 1.0)
        if t == "discrete":
            a = np.stack(np.unravel_index(a.astype(np.int64), tuple(self._nvec)), axis=1)
        return (a + 0.5) / self._nvec

    def _designs(self, unit: np.ndarray) -> list[dict[str, Any]]:
        """Unit vectors → designs: a table lookup per parameter when the space is discrete."""
        if self._levels is None:
            return [self.env._decode_unit(u) for u in unit]
        idx = np.minimum((unit * self._nvec).astype(np.int64), self._nvec - 1)
        cols = [lv[idx[:, j]] for j, lv in enumerate(self._levels)]
        names = self.env.space.names
        return [dict(zip(names, row)) for row in zip(*cols)]

    def _evaluate(self, rows: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
        """Score the designs of ``rows`` in one call; update their observed metrics; fill the
        infos. Returns their rewards."""
        env, n = self.env, self.num_envs
        designs = self._designs(self._unit[rows])
        rewards, metrics, feasible = env.score(designs, cache=self.cache)
        rewards = np.asarray(rewards, dtype=float).reshape(-1)
        if env.observation_metrics:
            vals = np.stack([np.asarray(metrics[m], float) for m in env.observation_metrics], 1)
            self._metrics[rows] = np.clip(np.log10(np.maximum(np.abs(vals), 1e-30) / env._ref),
                                          -10, 10)
        else:
            self._metrics[rows, 0] = np.clip(rewards, -10.0, 10.0)
        design = np.empty(n, dtype=object)
        design[rows] = designs
        if rows.size == n:  # every sub-env evaluated (one-shot mode): the arrays as they are
            mask = np.ones(n, bool)
            full_r, infeasible = rewards, ~np.asarray(feasible, bool)
            met = {m: np.asarray(v, float) for m, v in metrics.items()}
        else:
            mask = np.zeros(n, bool)
            mask[rows] = True
            full_r, infeasible = np.zeros(n), np.zeros(n, bool)
            full_r[rows], infeasible[rows] = rewards, ~np.asarray(feasible, bool)
            met = {}
            for m, v in metrics.items():
                col = np.full(n, np.nan)
                col[rows] = np.asarray(v, float)
                met[m] = col
        infos.update(reward=full_r, _reward=mask, infeasible=infeasible, _infeasible=mask.copy(),
                     design=design, _design=mask.copy(), metrics=met, _metrics=mask.copy())
        return rewards


def sb3_vec_env(venv: DesignVectorEnv) -> Any:
    """``venv`` (reset on its own in the same step) wrapped as an SB3 ``VecEnv``: ``dones`` =
    terminated or truncated, ``infos[i]["terminal_observation"]`` and
    ``["TimeLimit.truncated"]`` as SB3 expects, ``env_method("action_masks")`` for MaskablePPO."""
    from stable_baselines3.common.vec_env import VecEnv

    if venv.metadata["autoreset_mode"] is not AutoresetMode.SAME_STEP:
        venv = DesignVectorEnv(venv.env, venv.num_envs, AutoresetMode.SAME_STEP)

    class _Adapter(VecEnv):
        def __init__(self) -> None:
            self.venv = venv
            super().__init__(venv.num_envs, venv.single_observation_space,
                             venv.single_action_space)
            self._actions: Any = None

        def reset(self) -> np.ndarray:
            seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
            obs, _ = self.venv.reset(seed=seed)
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self) -> Any:
            obs, rewards, term, trunc, info = self.venv.step(self._actions)
            dones = term | trunc
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            final = info.get("final_obs")
            for i in np.flatnonzero(info.get("_reward", np.zeros(self.num_envs, bool))):
                infos[i].update(design=info["design"][i], reward=float(info["reward"][i]),
                                infeasible=bool(info["infeasible"][i]))
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = final[i]
                infos[i]["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            return obs, rewards.astype(np.float32), dones, infos

        def close(self) -> None:
            self.venv.close()

        def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
            return [getattr(self.venv.env, attr_name)] * len(self._get_indices(indices))

        def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
            setattr(self.venv.env, attr_name, value)

        def env_method(self, method_name: str, *method_args: Any, indices: Any = None,
                       **method_kwargs: Any) -> list[Any]:
            idx = list(self._get_indices(indices))
            if method_name == "action_masks":
                return list(self.venv.action_masks()[idx])
            out = getattr(self.venv.env, method_name)(*method_args, **method_kwargs)
            return [out] * len(idx)

        def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
            return [False] * len(self._get_indices(indices))

    return _Adapter()


# ---- vector entry points of the registered design envs ---------------------------------------
def _vector_env(cls: type, num_envs: int, max_episode_steps: int | None,
                autoreset_mode: AutoresetMode | str, kwargs: dict[str, Any]) -> DesignVectorEnv:
    if max_episode_steps is not None and "max_steps" not in kwargs:
        kwargs["max_steps"] = max_episode_steps
    cache = kwargs.pop("cache", True)
    return DesignVectorEnv(cls(**kwargs), num_envs, autoreset_mode, cache)


def accelerator_vector_env(num_envs: int = 1, max_episode_steps: int | None = None,
                           autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                           **kwargs: Any) -> DesignVectorEnv:
    """``Accelerator-v0`` × ``num_envs`` (kwargs: AcceleratorEnv's, and ``cache``)."""
    from mlsysgym.envs.accelerator_env import AcceleratorEnv

    return _vector_env(AcceleratorEnv, num_envs, max_episode_steps, autoreset_mode, kwargs)


def dram_vector_env(num_envs: int = 1, max_episode_steps: int | None = None,
                    autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                    **kwargs: Any) -> DesignVectorEnv:
    """``DRAM-v0`` × ``num_envs`` (kwargs: DramEnv's, and ``cache``)."""
    from mlsysgym.envs.dram_env import DramEnv

    return _vector_env(DramEnv, num_envs, max_episode_steps, autoreset_mode, kwargs)


def serving_vector_env(num_envs: int = 1, max_episode_steps: int | None = None,
                       autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                       **kwargs: Any) -> DesignVectorEnv:
    """``LLMServing-v0`` × ``num_envs`` (kwargs: LLMServingEnv's, and ``cache``)."""
    from mlsysgym.envs.serving_env import LLMServingEnv

    return _vector_env(LLMServingEnv, num_envs, max_episode_steps, autoreset_mode, kwargs)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (kept as they are, tuples included)."""
    out = np.empty(len(values), dtype=object)
    for k, v in enumerate(values):
        out[k] = v
    return out
