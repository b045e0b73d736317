"""Learned kernel schedulers: padding invariance, valid and replayable schedules, the HEFT guard,
CP-SAT as a bound, determinism, and the quick experiment."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sb3_contrib")

from mlsysgym.agents.scheduling_agents import (
    AgentConfig,
    GraphSchedulingExtractor,
    SchedulingAgent,
    SchedulingAgentError,
    generic_platform,
)
from mlsysgym.agents.scheduling_baselines import cpsat_schedule, heft, replay
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
from mlsysgym.simulators.multicore import random_problem, simulate, validate

TINY = AgentConfig(total_timesteps=64, n_envs=2, n_steps=32, batch_size=32, n_epochs=1, seed=3)


def _obs_tensor(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=torch.float32).unsqueeze(0) for k, v in obs.items()}


@pytest.fixture(scope="module")
def problems() -> list:
    return [random_problem(12, 3, seed=s) for s in range(3)]


@pytest.fixture(scope="module")
def agent(problems: list) -> SchedulingAgent:
    a = SchedulingAgent(generic_platform(3), TINY)
    a.train(problems)
    return a


def test_extractor_ignores_padding() -> None:
    prob = random_problem(10, 3, seed=1)
    plat = generic_platform(3)
    small = KernelSchedulingEnv(prob, plat, window=4)
    padded = KernelSchedulingEnv(prob, plat, window=4, max_ops=prob.n_ops + 7,
                                 max_edges=prob.n_edges + 11)
    torch.manual_seed(0)
    ext = GraphSchedulingExtractor(small.observation_space, hidden=8, rounds=2)
    with torch.no_grad():  # non-zero weights everywhere, so padding would show if it leaked
        ext.score[2].weight.normal_()
    o1, _ = small.reset(seed=0)
    o2, _ = padded.reset(seed=0)
    for _ in range(4):
        with torch.no_grad():
            f1, f2 = ext(_obs_tensor(o1)), ext(_obs_tensor(o2))
        assert f1.shape == f2.shape == (1, 4 * 3 + ext.value_dim)
        np.testing.assert_allclose(f1.numpy(), f2.numpy(), rtol=1e-5, atol=1e-5)
        a = int(np.flatnonzero(small.action_masks())[-1])
        o1, *_ = small.step(a)
        o2, *_ = padded.step(a)


def test_schedules_are_valid_and_replay(agent: SchedulingAgent, problems: list) -> None:
    for prob in problems:
        res = agent.schedule(prob, samples=4, seed=1)
        assert validate(prob, res.schedule).valid
        assert simulate(prob, res.schedule).makespan_us == pytest.approx(res.makespan_us)
        assert res.makespan_us == min(res.greedy_makespan_us, res.best_sample_makespan_us)
        env = KernelSchedulingEnv(prob, agent.platform, window=agent.config.window)
        assert replay(env, res.schedule).makespan_us == pytest.approx(res.makespan_us)


def test_never_worse_than_heft(agent: SchedulingAgent, problems: list) -> None:
    for prob in problems + [random_problem(15, 3, seed=7)]:
        res = agent.schedule(prob, samples=2, never_worse_than_heft=True)
        h = heft(prob).makespan_us(prob)
        assert res.makespan_us <= h + 1e-9
        assert res.heft_makespan_us == pytest.approx(h)
        assert (res.source == "heft") == (res.makespan_us < min(res.greedy_makespan_us,
                                                                res.best_sample_makespan_us))


def test_cpsat_bounds_agent_where_optimal(agent: SchedulingAgent) -> None:
    for s in range(3):
        prob = random_problem(8, 3, seed=20 + s)
        ex = cpsat_schedule(prob, time_limit_s=5.0, num_workers=1)
        assert ex.optimal
        assert ex.makespan_us <= agent.schedule(prob, samples=4).makespan_us + 1e-9


@pytest.mark.slow
def test_same_seed_same_result(problems: list) -> None:
    out = []
    for _ in range(2):
        a = SchedulingAgent(generic_platform(3), TINY)
        a.train(problems)
        r = a.schedule(problems[1], samples=3, seed=5)
        out.append((r.makespan_us, r.schedule.assignment.tolist(), r.schedule.order.tolist()))
    assert out[0] == out[1]


def test_bad_use_raises() -> None:
    with pytest.raises(SchedulingAgentError):
        AgentConfig(hidden=0)
    with pytest.raises(SchedulingAgentError):
        SchedulingAgent(generic_platform(2)).schedule(random_problem(5, 2))
    with pytest.raises(SchedulingAgentError):
        generic_platform(0)


@pytest.mark.slow
def test_quick_experiment_writes_files(tmp_path) -> None:
    from mlsysgym.experiments.scheduling_experiment import main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "scheduling.md").read_text()
    assert "| instance |" in md and "## Targets" in md
    assert "Machine: " in md and (tmp_path / "scheduling.provenance.json").is_file()
    rows = (tmp_path / "scheduling.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3 and rows[0].startswith("instance,")
    assert (tmp_path / "scheduling.png").stat().st_size > 1000
