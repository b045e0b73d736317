"""mlsysgym/LLMServing-v0: gymnasium conventions, masks, rewards, search through env:<id>."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mlsysgym.envs.design_env import EnvConfigError
from mlsysgym.envs.serving_env import LLMServingEnv

import mlsysgym  # noqa: F401  (registers the env)

KW = {"model": "Llama-3.1-8B", "gpu": "H100-SXM", "n_gpus": 2, "requests": 30, "rate": 4.0}


@pytest.mark.parametrize("mode", ["one-shot", "sequential"])
def test_check_env(mode):
    env = gym.make("mlsysgym/LLMServing-v0", mode=mode, **KW).unwrapped
    check_env(env, skip_render_check=True)


def test_reference_plan_scores_one_and_invalid_is_penalized():
    env = LLMServingEnv(**KW)
    r, _, feasible = env.score([env.reference_design,
                                      {**env.reference_design, "tp": 4}])
    assert r[0] == pytest.approx(1.0)
    assert r[1] == -1.0 and not feasible[1]


def test_sequential_masks_follow_the_rules():
    env = LLMServingEnv(mode="sequential", **KW)
    env.reset(seed=0)
    # tp levels 1, 2 (and 4 would exceed 2 devices): an 8B model fits one H100, so both
    assert env.action_masks()[:2].tolist() == [True, True] and not env.action_masks()[2:].any()
    env.step(1)                       # tp = 2
    assert env.action_masks()[:2].tolist() == [True, False]   # pp must be 1
    env.step(0)                       # pp = 1
    assert env.action_masks()[:2].tolist() == [True, False]   # no room for a P/D split
    for _ in range(env.space.dim - 2):
        _, reward, terminated, _, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
    assert terminated and not info["infeasible"] and reward > 0


def test_unknown_reward():
    with pytest.raises(EnvConfigError, match="reward must be one of"):
        LLMServingEnv(reward="speed", **KW)


def test_search_through_env_problem():
    from mlsysgym.agents import search
    from mlsysgym.agents.problems import make_problem

    p = make_problem({"name": "env:mlsysgym/LLMServing-v0", **KW})
    res = search("random", p, 12, seed=0)
    assert res.best_reward > 0


def test_sb3_checker_box_actions_and_vector_env():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for kw in ({}, {"mode": "sequential"}, {"action_type": "box"}):
        env = gym.make("mlsysgym/LLMServing-v0", disable_env_checker=True, **KW, **kw).unwrapped
        sb3_check_env(env)
    vec = gym.make_vec("mlsysgym/LLMServing-v0", num_envs=2, vectorization_mode="sync", **KW)
    vec.reset(seed=0)
    _, rewards, _, _, _ = vec.step(vec.action_space.sample())
    assert rewards.shape == (2,)
    vec.close()
