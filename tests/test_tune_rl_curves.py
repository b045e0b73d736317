"""RL learning curves in sweep trials (issue #19 item 6): an RL agent's training keeps
``training_progress()`` up to date, and a sweep trial's intermediate Tune results carry it to
the driver (where Tune's schedulers and loggers see it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

# one-shot A2C on 24 evaluations, episodes of 4 steps, raw (not normalized) rewards: an
# episode's return is the sum of its 4 rewards, so every number below follows from the run's
# own trajectory
HP = {"n_steps": 8, "max_steps": 4, "normalize_reward": False}


def test_training_progress_follows_the_run():
    from mlsysgym.agents.base import search
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.agents.rl import training_progress

    with training_progress() as curve:
        result = search("a2c", make_problem("synthetic-discrete"), 24, 0, **HP)
    rewards = np.asarray(result.rewards, float)
    assert len(rewards) == 24 and not result.failed.any()
    assert curve["rl_timesteps"] == 24 and curve["rl_episodes"] == 6  # 24 steps / 4 per episode
    assert curve["rl_episode_reward_mean"] == pytest.approx(rewards.sum() / 6)
    # outside the context an RL run records nothing (and is the same run)
    again = search("a2c", make_problem("synthetic-discrete"), 24, 0, **HP)
    assert np.asarray(again.rewards).tolist() == rewards.tolist()


def test_intermediate_trial_reports_carry_the_learning_curve():
    from mlsysgym.agents.rl import training_progress
    from mlsysgym.experiments.sweep.storage import trial_result
    from mlsysgym.experiments.sweep.trials import TrialSpec

    spec = TrialSpec("synthetic-discrete", "a2c", HP, 24, 0)
    seen = []
    with training_progress() as curve:
        row, traj = trial_result(spec, "s", report=lambda r, t: seen.append(dict(curve)),
                                 report_every=8)
    # reports when evaluations 8 and 16 are done (none at 24: the final result follows); the
    # evaluation happens inside env.step, before the callback counts that step
    assert [c["rl_timesteps"] for c in seen] == [7, 15]
    assert [c["rl_episodes"] for c in seen] == [1, 3]
    r = traj["reward"].to_numpy()
    assert seen[0]["rl_episode_reward_mean"] == pytest.approx(r[:4].sum())
    assert seen[1]["rl_episode_reward_mean"] == pytest.approx(r[:12].sum() / 3)
    assert curve["rl_timesteps"] == 24 and row["n_evaluations"] == 24


@pytest.mark.slow
def test_rl_trial_reports_reach_the_tune_driver(ray_session, tmp_path):
    from mlsysgym.experiments.sweep import load_config, run_sweep

    cfg = load_config({"name": "rl", "output_dir": str(tmp_path / "out"),
                       "problems": ["synthetic-discrete"], "budget": 24, "seeds": [0],
                       "agents": [{"name": "a2c", "hyperparameters": HP}],
                       "report_every": 8, "max_concurrent_trials": 1})
    summary = run_sweep(cfg, progress=False)
    assert (summary.ran, summary.errors) == (1, [])
    # Tune's JSON logger on the driver writes one line per result the trial reported
    (log,) = (tmp_path / "out" / "tune").glob("*/*/result.json")
    results = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["n_evaluations"] for r in results] == [8, 16, 24]
    assert [r["rl_timesteps"] for r in results] == [7, 15, 24]  # 2 intermediate + final
    assert [r["rl_episodes"] for r in results] == [1, 3, 6]
    assert all(np.isfinite(r["rl_episode_reward_mean"]) for r in results)
    assert results[-1]["best_reward"] >= results[0]["best_reward"]
