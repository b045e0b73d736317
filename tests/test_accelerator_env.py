"""mlsysgym/Accelerator-v0: Gymnasium/SB3 checkers, both modes, rewards, budgets, logging."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mlsysgym.core.errors import ConstraintViolationError
from mlsysgym.envs.accelerator_env import AcceleratorEnv, accelerator_space
from mlsysgym.envs.design_env import EnvConfigError

import mlsysgym  # noqa: F401  (registers the envs)


@pytest.fixture(scope="module")
def env():
    return AcceleratorEnv("resnet18")


def test_checkers_both_modes():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for kw in ({}, {"mode": "sequential"}, {"action_type": "box"}):
        e = gym.make("mlsysgym/Accelerator-v0", model="resnet18", disable_env_checker=True, **kw)
        check_env(e.unwrapped, skip_render_check=True)
        sb3_check_env(e.unwrapped)


def test_reference_design_scores_zero_edp(env):
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.space.nvec // 2)  # the middle design is the reference
    assert info["design"] == env.reference_design
    assert reward == pytest.approx(0.0, abs=1e-9)
    assert info["metrics"] == pytest.approx(env.reference)
    assert not info["infeasible"]


def test_edp_reward_is_log_ratio(env):
    env.reset(seed=0)
    action = env.action_space.sample()
    _, reward, _, _, info = env.step(action)
    m = info["metrics"]
    ref = env.reference["energy_uj"] * env.reference["latency_ms"]
    assert not info["infeasible"]  # no budget, and rows × cols ≤ 256 × 256 always holds
    assert reward == pytest.approx(-np.log(m["energy_uj"] * m["latency_ms"] / ref))


def test_target_spec_reward_by_hand():
    e = AcceleratorEnv("resnet18", reward="target_spec",
                       reward_kwargs={"targets": {"latency_ms": 1.0}})
    e.reset(seed=0)
    _, reward, _, _, info = e.step(e.space.nvec // 2)
    lat = info["metrics"]["latency_ms"]
    assert reward == pytest.approx(1.0 / abs(lat - 1.0))  # ArchGym: target / |value - target|


def test_area_budget_penalizes_and_flags():
    tight = AcceleratorEnv("resnet18", area_budget_mm2=0.01)
    tight.reset(seed=0)
    _, r_tight, _, _, info = tight.step(tight.space.nvec // 2)
    assert info["infeasible"] and info["metrics"]["area_mm2"] > 0.01
    assert r_tight < 0.0  # the reference would score 0 if feasible


def test_constraint_violation_is_infeasible_not_an_error():
    space = accelerator_space(max_pes=1024)
    big = {**space.decode(space.nvec // 2), "rows": 256, "cols": 256}
    with pytest.raises(ConstraintViolationError):
        space.validate(big)
    e = AcceleratorEnv("resnet18")
    e.space = space
    rewards, _, feasible = e.score([big])
    assert not feasible[0] and rewards[0] < 0


def test_sequential_mode_matches_one_shot(env):
    seq = AcceleratorEnv("resnet18", mode="sequential")
    seq.reset(seed=0)
    levels = [int(n) - 1 for n in seq.space.nvec]
    total, steps = 0.0, 0
    for level in levels:
        mask = seq.action_masks()
        assert mask[level] and not mask[int(seq.space.nvec[steps]):].any()
        _, reward, terminated, truncated, _info = seq.step(level)
        total += reward
        steps += 1
    assert terminated and not truncated and steps == seq.space.dim
    env.reset(seed=0)
    _, one_shot_reward, _, _, _ = env.step(np.array(levels))
    assert total == pytest.approx(one_shot_reward)


def test_one_shot_truncates_at_max_steps():
    e = AcceleratorEnv("resnet18", max_steps=3)
    e.reset(seed=0)
    flags = [e.step(e.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_bad_arguments():
    with pytest.raises(EnvConfigError, match="mode"):
        AcceleratorEnv("resnet18", mode="twice")
    from mlsysgym.envs.rewards import RewardError

    with pytest.raises(RewardError, match="unknown reward"):
        AcceleratorEnv("resnet18", reward="happiness")


def test_log_evaluations_wrapper(tmp_path):
    from mlsysgym.core.dataset import LogEvaluations, read_dataset

    e = LogEvaluations(AcceleratorEnv("resnet18"), tmp_path / "runs")
    e.reset(seed=1)
    for _ in range(5):
        e.step(e.action_space.sample())
    e.close()
    frame = read_dataset(tmp_path / "runs")
    assert len(frame) == 5 and {"rows", "dataflow", "latency_ms", "energy_uj"} <= set(frame.columns)
    assert (frame["evaluator_id"] == "accelerator@1").all()
