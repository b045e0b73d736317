"""Search agents: known optima of synthetic problems, exact budgets, one trajectory per seed,
and a smoke run of every agent on Accelerator-v0 (ResNet-18)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlsysgym.agents import AGENT_HYPERPARAMETERS, AGENTS, AgentConfigError, Outcome, search
from mlsysgym.agents.problems import make_problem

CLASSIC = ["random", "random_walk", "ga", "aco", "tpe", "bo", "optuna_gp"]
RL = ["ppo", "a2c", "dqn", "sac", "maskable_ppo"]
ALL = CLASSIC + RL
SLOW_FOR_DETERMINISM = {"bo", "optuna_gp", *RL}

# small settings that make the last batch of every batch proposer a truncated one
BATCHY: dict[str, dict[str, Any]] = {
    "random": {"batch_size": 3}, "random_walk": {"walkers": 3}, "ga": {"population": 4},
    "aco": {"ants": 3}, "tpe": {"batch_size": 3}, "bo": {"q": 3, "n_init": 2},
    "optuna_gp": {"batch_size": 3, "n_startup_trials": 2},
    "ppo": {"n_steps": 4, "batch_size": 4}, "a2c": {"n_steps": 4},
    "dqn": {"learning_starts": 2}, "sac": {"learning_starts": 2, "batch_size": 4},
    "maskable_ppo": {"n_steps": 6, "batch_size": 6},
}


def large() -> Any:
    """4 × 8 × 8 × 8 = 2,048 designs (one categorical, three integers); optimum reward 1."""
    return make_problem({"name": "synthetic-large", "n_int": 3, "n_cat": 1, "levels": 8,
                         "seed": 1})


def small() -> Any:
    """3 × 8 × 6 = 144 designs (categorical, integer, power of two); optimum reward 1."""
    return make_problem("synthetic-discrete")


def hits(agent: str, problem_fn: Any, budget: int, seeds: int, tol: float = 1e-9,
         **hp: Any) -> list[float]:
    """Best reward of each seed's run (asserting the exact budget on the way)."""
    best = []
    for seed in range(seeds):
        problem = problem_fn()
        result = search(agent, problem, budget, seed=seed, **hp)
        assert result.n_evaluations == budget
        best.append(result.best_reward - problem.optimal_reward)
    return best


# ---- registry, imports, hyperparameter grids ----------------------------------------------------
def test_every_agent_is_registered_with_a_hyperparameter_grid() -> None:
    assert set(ALL) <= set(AGENTS)
    from mlsysgym.agents.base import implementations

    for name in ALL:
        assert "design" not in implementations(name) or AGENTS[name] is implementations(name)["design"]
        grid = AGENT_HYPERPARAMETERS[name]
        assert grid and all(len(v) >= 2 for v in grid.values())
        # every grid key is a hyperparameter of at least one implementation of the name
        params = set().union(*(inspect.signature(fn).parameters
                               for fn in implementations(name).values()))
        assert set(grid) <= params, (name, set(grid) - params)
        assert all(fn.__doc__ for fn in implementations(name).values())


def test_importing_agents_does_not_import_heavy_libraries() -> None:
    code = ("import sys, mlsysgym.agents; heavy = [m for m in ('torch', 'botorch', 'optuna', "
            "'stable_baselines3', 'sb3_contrib', 'ray') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_hyperparameters_raise_one_line_typed_errors() -> None:
    with pytest.raises(AgentConfigError, match="population"):
        search("ga", small(), 10, population=1)
    with pytest.raises(AgentConfigError, match="accept"):
        search("random_walk", small(), 10, accept="sometimes")
    with pytest.raises(AgentConfigError, match="max_flat"):
        search("dqn", large(), 10, max_flat=100)


# ---- exact budgets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", ALL)
def test_budget_is_exact_with_a_truncated_last_batch(agent: str) -> None:
    problem = small()
    result = search(agent, problem, 7, seed=3, **BATCHY[agent])
    assert result.n_evaluations == 7 == len(result.rewards) == len(result.metrics)
    assert problem.n_evaluated == 7  # nothing evaluated beyond the budget either
    assert np.isfinite(result.rewards).all()


@pytest.mark.parametrize("agent", ["random", "random_walk", "ga", "aco", "tpe",
                                   pytest.param("bo", marks=pytest.mark.slow)])
def test_agents_stop_when_the_space_is_exhausted(agent: str) -> None:
    """A budget above the space's size: every design once, no repeats, no endless loop."""
    problem = small()
    result = search(agent, problem, 200, seed=0, **BATCHY[agent])
    keys = [tuple(d.values()) for d in result.designs]
    assert len(keys) == len(set(keys))
    assert result.best_reward == pytest.approx(problem.optimal_reward)
    if agent in ("random", "random_walk", "bo"):  # these draw the last unseen designs exactly
        assert result.n_evaluations == 144
    assert result.n_evaluations <= 144


# ---- one trajectory per seed -----------------------------------------------------------------------
def _same_run(agent: str, budget: int, problem_fn: Any = small, **hp: Any) -> None:
    a = search(agent, problem_fn(), budget, seed=11, **hp)
    b = search(agent, problem_fn(), budget, seed=11, **hp)
    c = search(agent, problem_fn(), budget, seed=12, **hp)
    assert a.designs == b.designs
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert a.designs != c.designs


@pytest.mark.parametrize("agent", [a for a in ALL if a not in SLOW_FOR_DETERMINISM])
def test_same_seed_same_trajectory(agent: str) -> None:
    _same_run(agent, 40, large)


@pytest.mark.slow
@pytest.mark.parametrize("agent", sorted(SLOW_FOR_DETERMINISM))
def test_same_seed_same_trajectory_slow(agent: str) -> None:
    _same_run(agent, 24 if agent in RL else 14, large, **BATCHY[agent])


# ---- known optima ----------------------------------------------------------------------------------
@pytest.mark.parametrize("agent,budget", [("random_walk", 150), ("ga", 150), ("aco", 150),
                                          ("tpe", 80)])
def test_finds_the_optimum_of_a_2048_design_space(agent: str, budget: int) -> None:
    regrets = hits(agent, large, budget, seeds=5)
    assert sum(r >= -1e-9 for r in regrets) >= 3, regrets


def test_random_search_finds_the_optimum_of_a_small_space_and_not_of_a_large_one() -> None:
    assert sum(r >= -1e-9 for r in hits("random", small, 110, seeds=5)) >= 3
    # the control: at 150 of 2,048 designs, random search mostly misses (what the others beat)
    assert sum(r >= -1e-9 for r in hits("random", large, 150, seeds=5)) <= 2


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["bo", "optuna_gp"])
def test_model_based_agents_find_the_optimum_with_few_evaluations(agent: str) -> None:
    regrets = hits(agent, small, 25, seeds=5)
    assert sum(r >= -1e-9 for r in regrets) >= 3, regrets


@pytest.mark.slow
@pytest.mark.parametrize("agent", RL)
def test_rl_agents_get_close_to_the_optimum_and_learn(agent: str) -> None:
    """RL is less sample-efficient: 150 evaluations of a 144-design space (with repeats; 300
    for SAC, whose unit-box actions are decoded to levels), best within 0.05 of the optimum
    (one grid step of one parameter) in 2 of 3 seeds, and the last quarter of its designs
    better on average than the first quarter in 2 of 3 seeds."""
    budget = 300 if agent == "sac" else 150
    regrets, learned = [], []
    for seed in range(3):
        problem = small()
        result = search(agent, problem, budget, seed=seed)
        assert result.n_evaluations == budget
        regrets.append(result.best_reward - problem.optimal_reward)
        q = len(result.rewards) // 4
        learned.append(result.rewards[-q:].mean() > result.rewards[:q].mean())
    assert sum(r >= -0.05 for r in regrets) >= 2, regrets
    assert sum(learned) >= 2, learned


# ---- the RL agents' env: DesignEnv over a scorer ---------------------------------------------------
def test_design_env_from_a_scorer_decodes_flat_actions_and_observes_the_reward() -> None:
    """Nothing is scored at construction; Discrete(3·8·6 = 144) action 75 = indices (1, 4, 3)
    = (os, pes 5, tile 8), scored 5 + 8/2 = 9; the observation is [last reward, unit encoding
    (index + 0.5) / levels, fraction of the episode done]."""
    from gymnasium.utils.env_checker import check_env
    from mlsysgym.envs.design_env import DesignEnv, EnvConfigError

    seen: list[dict[str, Any]] = []

    def scorer(designs: Any) -> Any:
        seen.extend(designs)
        pes = np.array([d["pes"] for d in designs], dtype=float)
        tile = np.array([d["tile"] for d in designs], dtype=float)
        return pes + tile / 2, {"pes": pes}, np.ones(len(designs), bool)

    space = small().space
    env = DesignEnv.from_scorer(space, scorer, action_type="discrete", max_steps=2)
    assert seen == [] and env.action_space.n == 144
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, -1.0, -1.0, -1.0, 0.0])
    obs, reward, terminated, truncated, info = env.step(75)
    assert info["design"] == {"dataflow": "os", "pes": 5, "tile": 8} == seen[0]
    assert reward == 9.0 and info["metrics"] == {"pes": 5.0}
    assert not terminated and not truncated
    np.testing.assert_allclose(obs, [9.0, 1.5 / 3, 4.5 / 8, 3.5 / 6, 0.5], rtol=1e-6)
    assert env.step(0)[3]  # the second step ends the episode (max_steps=2)
    check_env(env, skip_render_check=True)
    with pytest.raises(EnvConfigError, match="144 designs exceeds max_flat=100"):
        DesignEnv.from_scorer(space, scorer, action_type="discrete", max_flat=100)


def test_rl_hyperparameters_use_design_env_names() -> None:
    with pytest.raises(AgentConfigError, match="'form' is now 'mode'"):
        search("ppo", small(), 4, form="sequential")
    with pytest.raises(AgentConfigError, match="DesignEnv"):
        search("ppo", small(), 4, env=object())


# ---- Accelerator-v0 smoke ----------------------------------------------------------------------------
@dataclass
class EnvProblem:
    """A Problem from a DesignEnv's ``score`` (penalized infeasible designs are not failures)."""

    env: Any
    name: str = "accelerator:resnet18"

    @property
    def space(self) -> Any:
        return self.env.space

    def evaluate(self, designs: list[dict[str, Any]]) -> Outcome:
        rewards, metrics, _ = self.env.score(designs)
        rows = [{k: float(v[i]) for k, v in metrics.items()} for i in range(len(designs))]
        return Outcome(np.asarray(rewards, dtype=float), rows, np.zeros(len(designs), bool))


@pytest.fixture(scope="module")
def accelerator_env() -> Any:
    from mlsysgym.envs.accelerator_env import AcceleratorEnv

    return AcceleratorEnv("resnet18")


@pytest.mark.parametrize("agent", ALL)
def test_every_agent_runs_on_accelerator_resnet18(agent: str, accelerator_env: Any) -> None:
    hp = {"bo": {"q": 2, "n_init": 4, "n_candidates": 200}, "ga": {"population": 4},
          "aco": {"ants": 4}, "optuna_gp": {"n_startup_trials": 4},
          "ppo": {"n_steps": 4, "batch_size": 4}, "a2c": {"n_steps": 4},
          "dqn": {"mode": "sequential", "learning_starts": 2},
          "sac": {"learning_starts": 4, "batch_size": 4},
          "maskable_ppo": {"n_steps": 16, "batch_size": 16}}.get(agent, {})
    result = search(agent, EnvProblem(accelerator_env), 8, seed=0, **hp)
    assert result.n_evaluations == 8
    assert np.isfinite(result.rewards).all()
    assert {"latency_ms", "energy_uj"} <= set(result.metrics[0])
    assert all(accelerator_env.space.validate(d, check_constraints=False) for d in result.designs)


def test_rl_agents_leave_no_folder_in_the_temporary_directory(system_tmp: Path,
                                                              accelerator_env: Any) -> None:
    """Without log_dir SB3 would make an ``SB3-<time>`` folder there on every learn()."""
    search("ppo", EnvProblem(accelerator_env), 8, seed=0, n_steps=4, batch_size=4)
    assert list(system_tmp.glob("SB3-*")) == []


def test_dqn_refuses_a_flat_action_over_a_huge_space(accelerator_env: Any) -> None:
    with pytest.raises(AgentConfigError, match="sequential"):
        search("dqn", EnvProblem(accelerator_env), 8, seed=0)


def test_maskable_ppo_on_the_sequential_design_env_with_csv_logs(tmp_path: Any) -> None:
    """MaskablePPO trains on DesignEnv's own sequential mode (its action masks); its
    evaluations go through the budget; SB3 writes progress.csv."""
    from mlsysgym.envs.accelerator_env import AcceleratorEnv

    env = AcceleratorEnv("resnet18", mode="sequential")
    result = search("maskable_ppo", EnvProblem(AcceleratorEnv("resnet18")), 12, seed=0,
                    env=env, n_steps=16, batch_size=16, log_dir=str(tmp_path))
    assert result.n_evaluations == 12
    assert np.isfinite(result.rewards).all()
    assert (tmp_path / "progress.csv").exists()
    assert env.scorer is None  # after the search, the env scores with its own evaluator again
