"""Every registered env fits Gymnasium and Stable-Baselines3 (issue #19): the env checkers, SB3's
``make_vec_env`` with DummyVecEnv and SubprocVecEnv (fresh worker processes find the ids by the
``mlsysgym:`` module prefix), ``gymnasium.make_vec`` (async), ``rgb_array`` renders; declared
render modes; registered ``max_episode_steps``; ``reset(options={"workload": ...})``.

The README's conventions table is :func:`conventions_table` (checked below); each of its cells is
one of the parametrized tests here, over every id of ``mlsysgym.ENVS``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from mlsysgym.envs.design_env import EnvConfigError
from mlsysgym.ir.errors import WorkloadError

import mlsysgym

# small workloads: every env builds in well under a second once the JIT caches are warm
KWARGS: dict[str, dict[str, Any]] = {
    "mlsysgym/Accelerator-v0": {"model": "alexnet"},
    "mlsysgym/DRAM-v0": {"max_requests": 300},
    "mlsysgym/MallocGame-v0": {"workload": "alexnet"},
    "mlsysgym/KernelScheduling-v0": {"workload": "alexnet"},
    "mlsysgym/KernelSchedulingStream-v0": {"models": ("alexnet",), "n_jobs": 2, "n_streams": 1},
    "mlsysgym/LLMServing-v0": {"requests": 20},
    "mlsysgym/SoC-v0": {"workloads": "tiny"},
}
IDS = list(mlsysgym.ENVS)
CHECKS = ("check_env (Gymnasium + SB3)", "SB3 `make_vec_env` (Dummy)",
          "SB3 `make_vec_env` (Subproc)", "`gymnasium.make_vec` (async)", "render `rgb_array`")
README = Path(__file__).resolve().parents[1] / "README.md"


def conventions_table() -> str:
    """The README's table: every registered env × every check (each cell a test here)."""
    head = "| env | " + " | ".join(CHECKS) + " |\n|---|" + "---|" * len(CHECKS) + "\n"
    return head + "".join(f"| `{i}` | " + " | ".join("✓" for _ in CHECKS) + " |\n"
                          for i in IDS)


def _valid_actions(venv: Any, n: int) -> np.ndarray:
    """A valid action per sub-env (the first unmasked one for masked discrete envs)."""
    masks = venv.env_method("action_masks") if hasattr(venv, "env_method") else None
    space = venv.action_space
    if isinstance(space, gym.spaces.Discrete) and masks is not None:
        return np.array([int(np.flatnonzero(m)[0]) for m in masks])
    return np.stack([space.sample() for _ in range(n)])


def _sb3_steps(vec_env: Any, steps: int = 3) -> None:
    vec_env.reset()
    for _ in range(steps):
        _obs, rewards, _dones, infos = vec_env.step(_valid_actions(vec_env, vec_env.num_envs))
        assert rewards.shape == (vec_env.num_envs,) and np.isfinite(rewards).all()
        assert len(infos) == vec_env.num_envs
    vec_env.close()


def test_every_registered_env_is_covered_and_the_readme_shows_the_table() -> None:
    assert set(KWARGS) == set(IDS)
    assert conventions_table() in README.read_text(), \
        "README's conventions table is stale; paste conventions_table()"


@pytest.mark.parametrize("env_id", IDS)
def test_checkers(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id, **KWARGS[env_id])
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=False)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_make_vec_env_dummy(env_id: str) -> None:
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=KWARGS[env_id])
    assert vec.get_attr("render_mode") == ["rgb_array", "rgb_array"]  # SB3's default
    _sb3_steps(vec)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", IDS)
def test_sb3_make_vec_env_subproc(env_id: str) -> None:
    """Fresh worker processes (forkserver): the ``mlsysgym:`` prefix imports mlsysgym there."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    vec = make_vec_env(f"mlsysgym:{env_id}", n_envs=2, seed=0, env_kwargs=KWARGS[env_id],
                       vec_env_cls=SubprocVecEnv)
    _sb3_steps(vec)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_gymnasium_make_vec(env_id: str, mode: str) -> None:
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, **KWARGS[env_id])
    envs.reset(seed=0)
    for _ in range(3):
        masks = envs.call("action_masks")
        if isinstance(envs.single_action_space, gym.spaces.Discrete):
            actions = np.array([int(np.flatnonzero(m)[0]) for m in masks])
        else:
            actions = envs.action_space.sample()
        _, rewards, _, _, _ = envs.step(actions)
        assert rewards.shape == (2,) and np.isfinite(rewards).all()
    envs.close()


@pytest.mark.parametrize("env_id", IDS)
def test_render_modes(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", **KWARGS[env_id])
    base = env.unwrapped
    assert {"rgb_array", "human"} <= set(base.metadata["render_modes"])
    env.reset(seed=0)
    env.step(_one_valid_action(env))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] > 100 and frame.shape[1] > 100
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 8  # a picture, not a blank canvas
    env.close()
    assert gym.make(env_id, **KWARGS[env_id]).unwrapped.render_mode is None  # the default
    with pytest.raises(EnvConfigError, match=r"^render_mode must be None or one of \[") as e:
        gym.make(env_id, render_mode="rgb", **KWARGS[env_id])
    assert "\n" not in str(e.value)


def _one_valid_action(env: Any) -> Any:
    base = env.unwrapped
    if isinstance(env.action_space, gym.spaces.Discrete) and hasattr(base, "action_masks"):
        return int(np.flatnonzero(base.action_masks())[0])
    return env.action_space.sample()


@pytest.mark.parametrize("env_id", ["mlsysgym/MallocGame-v0", "mlsysgym/KernelScheduling-v0"])
def test_human_mode_renders_on_reset_and_step(env_id: str) -> None:
    env = gym.make(env_id, render_mode="human", **KWARGS[env_id])
    env.reset(seed=0)
    window = env.unwrapped._window  # drawn on reset (a pyplot figure; Agg shows nothing)
    assert window.image.get_array().shape[2] == 3
    before = window.image.get_array().copy()
    env.step(_one_valid_action(env))
    assert env.render() is None  # human: shown, nothing returned
    assert not np.array_equal(before, window.image.get_array())  # redrawn after the step
    env.close()
    assert window.fig is None


def test_max_episode_steps_registered_for_the_design_envs() -> None:
    assert {i: gym.spec(i).max_episode_steps for i in IDS} == {
        "mlsysgym/Accelerator-v0": 100, "mlsysgym/DRAM-v0": 100, "mlsysgym/LLMServing-v0": 50,
        "mlsysgym/MallocGame-v0": None, "mlsysgym/KernelScheduling-v0": None,
        "mlsysgym/KernelSchedulingStream-v0": None, "mlsysgym/SoC-v0": 100}
    env = gym.make("mlsysgym/Accelerator-v0", model="alexnet", max_steps=3,
                   max_episode_steps=3)
    env.reset(seed=0)
    ends = [env.step(env.action_space.sample())[3] for _ in range(3)]
    assert ends == [False, False, True]


def test_reset_options_switch_the_workload_of_the_design_envs() -> None:
    """After the switch, a design scores what a fresh env on that workload gives it."""
    action = np.array([2, 3, 0, 4, 4, 3, 2, 0])
    for env_id, first, second, key in [
            ("mlsysgym/Accelerator-v0", "alexnet", "resnet18", "model"),
            ("mlsysgym/DRAM-v0", "stream", "random", "workload")]:
        kw = {"max_requests": 300} if env_id.endswith("DRAM-v0") else {}
        a = action if env_id.endswith("Accelerator-v0") else np.zeros(10, np.int64) + 1
        env = gym.make(env_id, **{key: first}, **kw)
        env.reset(seed=0)
        r_first = env.step(a)[1]
        env.reset(options={"workload": second})
        _, r_switched, _, _, info = env.step(a)
        fresh = gym.make(env_id, **{key: second}, **kw)
        fresh.reset(seed=0)
        _, r_fresh, _, _, info_fresh = fresh.step(a)
        assert r_switched == pytest.approx(r_fresh, rel=1e-12)
        assert info["metrics"] == pytest.approx(info_fresh["metrics"], rel=1e-12)
        assert r_switched != pytest.approx(r_first)
    with pytest.raises(EnvConfigError, match="fixed at construction"):
        gym.make("mlsysgym/LLMServing-v0", requests=20).reset(options={"workload": "x"})


def test_reset_options_switch_the_workload_of_malloc_and_scheduling() -> None:
    malloc = gym.make("mlsysgym/MallocGame-v0", workload="alexnet")
    _, info = malloc.reset(options={"workload": "resnet18"})
    _, fresh = gym.make("mlsysgym/MallocGame-v0", workload="resnet18").reset()
    assert info["n_buffers"] == fresh["n_buffers"] != malloc.reset(
        options={"workload": "alexnet"})[1]["n_buffers"]
    assert info["all_slow_time_us"] == pytest.approx(fresh["all_slow_time_us"])

    sched = gym.make("mlsysgym/KernelScheduling-v0", workload="resnet18")
    _, info = sched.reset(options={"workload": "alexnet"})
    _, fresh = gym.make("mlsysgym/KernelScheduling-v0", workload="alexnet").reset()
    assert info["workload"] == "alexnet"
    assert info["lower_bound_us"] == pytest.approx(fresh["lower_bound_us"], rel=1e-12)
    assert sched.unwrapped.reset(options={"workload": "alexnet"})[1]["workload"] == "alexnet"
    assert len(sched.unwrapped.problems) == 2  # the new workload joined the list once
    with pytest.raises(WorkloadError, match="more than this env's max_ops"):
        gym.make("mlsysgym/KernelScheduling-v0", workload="alexnet").reset(
            options={"workload": "resnet50"})


def test_readme_documents_how_workers_find_the_ids() -> None:
    text = README.read_text()
    assert re.search(r'make_vec_env\("mlsysgym:mlsysgym/', text)
    assert 'vectorization_mode="vector_entry_point"' in text


def test_pettingzoo_dram_env_api_and_render() -> None:
    from mlsysgym.envs.dram_marl import parallel_env
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env(max_requests=300, max_steps=3), num_cycles=5)
    env = parallel_env(max_requests=300, max_steps=3, render_mode="rgb_array")
    env.reset(seed=0)
    env.step({a: env.action_space(a).sample() for a in env.agents})
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3
    with pytest.raises(EnvConfigError, match="render_mode must be None or one of"):
        parallel_env(render_mode="rgb")


def test_pictures_hold_the_episode() -> None:
    """The Gantt chart has one bar per op, spanning its start and finish, the last ending at the
    makespan; the memory map one rectangle per fast or prefetched buffer at its offset, and the
    fast-memory live bytes never above the capacity."""
    from mlsysgym.envs.render import _play, gantt_figure, memory_map_figure

    env = gym.make("mlsysgym/KernelScheduling-v0", workload="alexnet")
    _play(env, seed=0)
    base = env.unwrapped
    fig = gantt_figure(base.problem.pe_names, np.array(base._assign), np.array(base._start),
                       np.array(base._finish), "t")
    bars = fig.axes[0].patches
    assert len(bars) == base.problem.n_ops
    assert max(b.get_x() + b.get_width() for b in bars) == pytest.approx(base.makespan_us)
    assert sorted(b.get_x() for b in bars) == pytest.approx(sorted(base._start))

    env = gym.make("mlsysgym/MallocGame-v0", workload="resnet18", prefetch_window=2)
    _play(env, seed=0)
    p, s = env.unwrapped.problem, env.unwrapped.state
    fig = memory_map_figure(p, s.mode, s.offset, p.n_buffers, s.total_us, "t")
    rects = fig.axes[0].patches
    placed = np.flatnonzero(s.mode > 0)
    assert len(rects) == placed.size and (s.mode == 2).any()
    assert sorted(r.get_y() for r in rects) == pytest.approx(sorted(s.offset[placed] / 2**20))
    fast_mib = fig.axes[1].collections[0].get_paths()[0].vertices[:, 1]
    assert fast_mib.max() <= p.capacity_bytes / 2**20 + 1e-9
