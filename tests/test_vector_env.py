"""DesignVectorEnv: N design envs stepped with one batched score per step, the same trajectories as
N separate envs (SyncVectorEnv), Gymnasium 1.x autoreset modes, and the SB3 adapter."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from mlsysgym.core.params import Categorical, Integer
from mlsysgym.core.space import DesignSpace
from mlsysgym.envs.design_env import DesignEnv, InvalidActionError
from mlsysgym.envs.vector import DesignVectorEnv, sb3_vec_env

import mlsysgym

SPACE = DesignSpace([Integer("a", 0, 3), Categorical("b", ("x", "y", "z"))])


class CountingScorer:
    """reward = a + 10·[b == "z"]; records the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, designs: Any) -> Any:
        self.calls.append(len(designs))
        r = np.array([d["a"] + 10.0 * (d["b"] == "z") for d in designs])
        return r, {"r": r}, np.ones(len(designs), bool)


def test_one_scorer_call_per_step_with_hand_computed_rewards() -> None:
    scorer = CountingScorer()
    venv = DesignVectorEnv(DesignEnv.from_scorer(SPACE, scorer, max_steps=2), num_envs=3)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 1 + 2 + 1) and (obs[:, 1:3] == -1).all()
    obs, r, term, trunc, info = venv.step(np.array([[0, 0], [3, 2], [1, 2]]))
    assert r.tolist() == [0.0, 13.0, 11.0]
    assert [d["b"] for d in info["design"]] == ["x", "z", "z"]
    np.testing.assert_allclose(obs[:, 0], [0.0, 10.0, 10.0])  # last reward, clipped to ±10
    np.testing.assert_allclose(obs[1, 1:3], [(3 + 0.5) / 4, (2 + 0.5) / 3])
    np.testing.assert_allclose(obs[:, 3], 0.5)  # 1 of 2 steps done
    _, r, term, trunc, _ = venv.step(np.array([[2, 1], [2, 1], [2, 1]]))
    assert r.tolist() == [2.0, 2.0, 2.0] and trunc.all() and not term.any()
    # next-step autoreset: the step after the end resets (action ignored, reward 0)
    obs, r, term, trunc, info = venv.step(np.array([[3, 2]] * 3))
    assert r.tolist() == [0.0] * 3 and not (term | trunc).any() and "reward" not in info
    assert (obs[:, 1:3] == -1).all() and (obs[:, 3] == 0).all()
    assert scorer.calls == [3, 3]  # one batched call per evaluating step, none for the reset


def test_same_step_autoreset_gives_the_final_observation() -> None:
    venv = DesignVectorEnv(DesignEnv.from_scorer(SPACE, CountingScorer(), max_steps=1), 2,
                           autoreset_mode="SameStep")
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    venv.reset()
    obs, r, _, trunc, info = venv.step(np.array([[1, 0], [2, 2]]))
    assert trunc.all() and r.tolist() == [1.0, 12.0]
    assert (obs[:, 1:3] == -1).all()  # already reset
    np.testing.assert_allclose(info["final_obs"][1][:4], [10.0, 2.5 / 4, 2.5 / 3, 1.0])
    assert info["final_info"]["reward"].tolist() == [1.0, 12.0]


def test_sequential_mode_scores_only_the_finished_designs() -> None:
    scorer = CountingScorer()
    venv = DesignVectorEnv(DesignEnv.from_scorer(SPACE, scorer, mode="sequential"), 2)
    venv.reset()
    assert venv.action_masks().tolist() == [[True] * 4] * 2  # a: 4 levels
    _, r, term, _, _ = venv.step(np.array([3, 1]))
    assert venv.action_masks().tolist() == [[True, True, True, False]] * 2  # b: 3 levels
    assert scorer.calls == [] and not term.any()
    _, r, term, _, _info = venv.step(np.array([2, 0]))
    assert term.all() and r.tolist() == [13.0, 1.0] and scorer.calls == [2]


@pytest.mark.parametrize("mode", ["one-shot", "sequential"])
def test_same_trajectories_as_separate_envs(mode: str) -> None:
    kw = {"model": "alexnet", "mode": mode, "max_steps": 3}
    native = gym.make_vec("mlsysgym/Accelerator-v0", num_envs=4,
                          vectorization_mode="vector_entry_point", **kw)
    assert isinstance(native, DesignVectorEnv)
    uncached = gym.make_vec("mlsysgym/Accelerator-v0", num_envs=4, cache=False,
                            vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec("mlsysgym/Accelerator-v0", num_envs=4, vectorization_mode="sync", **kw)
    np.testing.assert_array_equal(native.reset(seed=0)[0], sync.reset(seed=0)[0])
    uncached.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(10):  # crosses episode ends and autoresets
        if mode == "sequential":
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in native.action_masks()])
        else:
            actions = native.action_space.sample()
        expected = sync.step(actions)[:4]
        for venv in (native, uncached):
            for a, b in zip(venv.step(actions)[:4], expected):
                np.testing.assert_allclose(a, b, rtol=1e-12)


def test_invalid_actions_are_refused() -> None:
    venv = DesignVectorEnv(DesignEnv.from_scorer(SPACE, CountingScorer()), 2)
    venv.reset()
    for bad in ([[0, 0]], [[4, 0], [0, 0]], [[0.5, 0], [0, 0]], [[np.nan, 0], [0, 0]], "x"):
        with pytest.raises(InvalidActionError):
            venv.step(bad)


def test_workload_option_and_non_design_envs() -> None:
    venv = gym.make_vec("mlsysgym/Accelerator-v0", num_envs=2, model="alexnet",
                        vectorization_mode="vector_entry_point")
    venv.reset(options={"workload": "resnet18"})
    assert venv.env.workload.name == "resnet18"
    with pytest.raises(mlsysgym.envs.design_env.EnvConfigError, match="runs DesignEnvs"):
        DesignVectorEnv(gym.make("mlsysgym/MallocGame-v0", workload="alexnet"), 2)


def test_sb3_adapter_trains_ppo_with_terminal_observations() -> None:
    from stable_baselines3 import PPO

    scorer = CountingScorer()
    venv = DesignVectorEnv(DesignEnv.from_scorer(SPACE, scorer, max_steps=2), 4)
    vec = sb3_vec_env(venv)
    vec.reset()
    _, rewards, dones, infos = vec.step(np.array([[0, 0]] * 4))
    assert not dones.any()
    _, rewards, dones, infos = vec.step(np.array([[1, 2]] * 4))
    assert dones.all() and rewards.tolist() == [11.0] * 4
    assert all(i["TimeLimit.truncated"] for i in infos)
    np.testing.assert_allclose(infos[0]["terminal_observation"][1:3], [1.5 / 4, 2.5 / 3])
    model = PPO("MlpPolicy", vec, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert set(scorer.calls) == {4}  # every step one call with the 4 sub-envs' designs


# ---- the RL agents on the VectorEnv (search(..., n_envs=N)) -------------------------------------
def _small() -> Any:
    from mlsysgym.agents.problems import make_problem

    return make_problem("synthetic-discrete")  # 144 designs


@pytest.mark.parametrize("budget", [20, 10])
def test_ppo_with_n_envs_keeps_the_exact_budget_the_model_and_tensorboard_logs(
        budget: int, tmp_path: Any) -> None:
    """4 sub-envs: 5 steps of 4 designs for 20; for 10, the third step has only 2 designs left
    (the other 2 are not evaluated). The callback stops SB3; the model is returned and saved;
    TensorBoard event files and progress.csv are written."""
    from mlsysgym.agents import search
    from stable_baselines3 import PPO

    result = search("ppo", _small(), budget, seed=0, n_envs=4, n_steps=4, batch_size=8,
                    log_dir=str(tmp_path))
    assert result.n_evaluations == budget
    assert isinstance(result.info["model"], PPO) and result.info["model"].n_envs == 4
    assert result.info["model_path"] == f"{tmp_path}/model.zip"
    assert PPO.load(result.info["model_path"]).observation_space.shape == (1 + 3 + 1,)
    assert list(tmp_path.glob("events.out.tfevents.*")) and (tmp_path / "progress.csv").exists()


def test_maskable_ppo_sequential_with_n_envs_and_a_time_budget() -> None:
    from mlsysgym.agents import search

    result = search("maskable_ppo", _small(), 12, seed=0, n_envs=3, n_steps=6, batch_size=6)
    assert result.n_evaluations == 12
    timed = search("ppo", _small(), {"seconds": 1.0}, seed=0, n_envs=2, n_steps=4,
                   batch_size=8)
    assert timed.n_evaluations > 0 and "model" in timed.info  # stopped by the callback


def test_batched_accelerator_call_is_each_design_alone() -> None:
    """What makes the batched step fast changes no number: a batch of mixed dataflows, word
    sizes and value types (ints, floats, NumPy scalars, missing keys) gives each design's
    metrics bit for bit as evaluated alone, and the column-at-a-time validation builds the
    table the value-by-value check builds."""
    from mlsysgym.simulators.accelerator import (
        AcceleratorSimulator,
        _columns_checked,
        _columns_fast,
    )

    designs = [
        {"rows": 8, "cols": 16, "dataflow": "os", "ifmap_kb": 32, "filter_kb": 64.0,
         "ofmap_kb": 16, "bandwidth": 4, "word_bytes": 1},
        {"rows": np.int64(128), "cols": 4.0, "dataflow": "ws", "word_bytes": 2},
        {"rows": 3, "cols": 4096, "dataflow": "is", "ifmap_kb": 0.5, "bandwidth": 0.02,
         "word_bytes": np.float64(4), "clock_mhz": 7.5},
        {},
    ]
    assert np.array_equal(_columns_fast(designs), _columns_checked(designs))
    sim = AcceleratorSimulator()
    batch = sim.evaluate(designs, "resnet18", cache=False)
    for i, d in enumerate(designs):
        alone = sim.evaluate([d], "resnet18", cache=False)
        assert all(alone[m][0] == batch[m][i] for m in batch)
    # the cache: the same designs with their keys reordered and other number types hit it,
    # and give the same values
    assert (sim.cache_hits, sim.cache_misses) == (0, 0)
    cached = sim.evaluate(designs, "resnet18")
    again = sim.evaluate([dict(reversed(list(d.items()))) for d in designs[:1]]
                         + [{"rows": 128.0, "cols": np.int64(4), "dataflow": "ws",
                             "word_bytes": 2.0}], "resnet18")
    assert (sim.cache_hits, sim.cache_misses) == (2, 4)
    for m in batch:
        assert np.array_equal(cached[m], batch[m]) and cached[m].dtype == batch[m].dtype
        assert np.array_equal(again[m], batch[m][:2])
