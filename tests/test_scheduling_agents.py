"""Learned kernel schedulers through ``search``: padding invariance of the graph network, valid
episodes scored through the budget, the HEFT guard, CP-SAT as a bound, determinism, training
graphs (train/test split) and the quick experiment through ``run_trial``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sb3_contrib")

from mlsysgym.agents import AgentConfigError, search
from mlsysgym.agents.scheduling_agents import GraphSchedulingExtractor
from mlsysgym.agents.scheduling_baselines import cpsat_schedule, heft
from mlsysgym.agents.scheduling_problem import (
    SchedulingEpisodes,
    SchedulingProblemError,
    generic_platform,
)
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
from mlsysgym.simulators.multicore import random_instance, schedule_from_order, simulate

TINY = {"total_timesteps": 64, "n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1}
TRAIN = [{"seed": s} for s in range(3)]  # random 12-op DAGs on 3 PEs, seeds 0-2


def _obs_tensor(obs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=torch.float32).unsqueeze(0) for k, v in obs.items()}


def random_episodes_problem(n_ops: int, seed: int, **kw) -> object:
    from mlsysgym.agents.problems import make_problem

    return make_problem({"name": "scheduling", "n_ops": n_ops, "n_pes": 3, "seed": seed, **kw})


def test_extractor_ignores_padding() -> None:
    prob = random_instance(10, 3, seed=1)
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


def test_rollouts_are_valid_episodes_scored_through_the_budget(system_tmp: Path) -> None:
    problem = random_episodes_problem(12, 5, train_graphs=TRAIN)
    res = search("maskable_ppo", problem, 100, seed=1, samples=4, **TINY)
    assert list(system_tmp.glob("SB3-*")) == []  # no log folder left behind
    # greedy + 4 samples, each one evaluation; training on the three other graphs
    assert res.n_evaluations == 5 and not res.failed.any()
    assert res.info["train_graphs"] == [f"random12x3s{s}" for s in range(3)]
    inst = problem.instance
    for design, m, r in zip(res.designs, res.metrics, res.rewards):
        env = problem.make_env()
        env.reset()
        total = sum(env.step(a)[1] for a in design["actions"])
        sched = env.schedule()
        # the env's episode is a valid schedule; its makespan and return are what was recorded
        assert simulate(inst, sched).makespan_us == pytest.approx(m["makespan_us"])
        assert total == pytest.approx(r) == pytest.approx(1 - m["makespan_us"] / m["lower_bound_us"])


def test_heft_guard_and_cpsat_bound() -> None:
    for s in range(3):
        problem = random_episodes_problem(8, 20 + s, train_graphs=TRAIN)
        res = search("maskable_ppo", problem, 100, seed=0, samples=2, heft_guard=True, **TINY)
        h = heft(problem.instance).makespan_us(problem.instance)
        # the guard scores HEFT's episode last, so the best is never worse than HEFT
        assert res.n_evaluations == 4 and res.metrics[-1]["makespan_us"] == pytest.approx(h)
        best = res.metrics[res.best_index]["makespan_us"]
        assert best <= h + 1e-9
        ex = cpsat_schedule(problem.instance, time_limit_s=5.0, num_workers=1)
        assert ex.optimal and ex.makespan_us <= best + 1e-9


def test_training_is_outside_the_budget_and_cached() -> None:
    problem = random_episodes_problem(12, 6, train_graphs=TRAIN)
    a = search("maskable_ppo", problem, {"seconds": 30}, seed=4, samples=1, **TINY)
    b = search("maskable_ppo", problem, 3, seed=4, samples=1, **TINY)
    assert a.info["train_timesteps"] == 64 and not a.info["train_cached"]
    assert b.info["train_cached"] and b.designs == a.designs  # same seed: same policy, rollouts
    # the trajectory's clock starts after training
    assert a.times_s.max() < a.wall_time_s - a.info["train_s"] + 1e-6


@pytest.mark.slow
def test_same_seed_same_result() -> None:
    from mlsysgym.agents import scheduling_agents

    out = []
    for _ in range(2):
        scheduling_agents._TRAINED.clear()  # train again
        res = search("maskable_ppo", random_episodes_problem(12, 1), 100, seed=5, samples=3, **TINY)
        out.append((res.rewards.tolist(), res.designs))
    assert out[0] == out[1]


def test_policy_local_search_never_worse_than_its_rollouts() -> None:
    problem = random_episodes_problem(12, 7, train_graphs=TRAIN)
    for proposal in ("uniform", "policy"):
        res = search("policy_local_search", problem, 120, seed=2, samples=4, proposal=proposal,
                     patience=20, **TINY)
        assert res.n_evaluations == 120 and not res.failed.any()
        first = res.rewards[:5].max()  # the rollouts
        assert res.best_reward >= first
        stats = res.info["local_search"]
        assert stats["moves"] == 115 and stats["accepted"] >= 1
        assert (stats["policy_calls"] > 0) == (proposal == "policy")


def test_bad_use_raises() -> None:
    problem = random_episodes_problem(5, 0)
    with pytest.raises(AgentConfigError, match="hidden"):
        search("maskable_ppo", problem, 10, hidden=0)
    with pytest.raises(AgentConfigError, match="unknown training"):
        search("maskable_ppo", problem, 10, learning_rte=1e-3)
    with pytest.raises(AgentConfigError, match="train_graphs"):
        search("maskable_ppo", problem, 10, train_graphs="resnet18")
    with pytest.raises(SchedulingProblemError, match="family"):
        search("maskable_ppo", SchedulingEpisodes.of(random_instance(5, 2)), 10, train_graphs=[{}])
    with pytest.raises(SchedulingProblemError):
        generic_platform(0)


def test_schedule_outside_the_window_is_not_an_episode() -> None:
    prob = random_instance(6, 2, seed=0, edge_prob=0.0)  # 6 independent ops, all ready at once
    problem = SchedulingEpisodes.of(prob, window=1)
    sched = schedule_from_order(prob, [0] * 6, order=list(range(6))[::-1])
    with pytest.raises(SchedulingProblemError, match="window"):
        problem.actions_of(sched)


def _one_trial_each(config: str, problem_index: int, out, cpsat_s: float = 2.0, **small) -> None:
    """Run the config's trials of one problem through ``run_trial`` (no Ray) with a tiny budget
    and tiny training (``small`` overrides of every agent's hyperparameters it takes), CP-SAT
    capped at ``cpsat_s``."""
    from dataclasses import replace

    from mlsysgym.experiments.sweep import expand, load_config, run_trial

    cfg = load_config(f"experiments/configs/{config}.yaml")
    trials, _ = expand(cfg)
    spec = cfg.problems[problem_index]
    for t in trials:
        if t.problem != spec:
            continue
        hp = dict(t.hyperparameters)
        if t.agent == "policy_local_search":
            hp.update(TINY, samples=2)
        if t.agent == "cpsat":
            hp.update(time_limit_s=cpsat_s)
        run_trial(replace(t, hyperparameters=hp, budget=small.get("budget", 40)), out, config)


def test_quick_scheduling_experiment_through_run_trial_and_report(tmp_path) -> None:
    """One random DAG of experiments/configs/scheduling_random.yaml with every agent of the
    config (tiny budget and training), then both reports over it."""
    from mlsysgym.experiments.report import ProblemReportSpec, write_problem_report
    from mlsysgym.experiments.report_scheduling import write_scheduling_report

    # CP-SAT proves this 20-op optimum (62) in 0.25 s on a Zen 4 (1.5 s cold) and stops; the cap is
    # for a slow CPU (under AVX2 emulation 2 s ended at 65, unproven)
    _one_trial_each("scheduling_random", 0, tmp_path / "sweep", cpsat_s=120.0)
    md = write_scheduling_report([tmp_path / "sweep"], tmp_path, "scheduling").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| random20x4s0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # instance, platform, ops, PEs, then HEFT (78, as in the published table) and CPOP (80)
    assert cells[:6] == ["random20x4s0", "random4pe", "20", "4", "78.0", "80.0"]
    assert "optimal (proven)" in row and "## Targets" in md and "Machine: " in md
    assert (tmp_path / "scheduling_details.png").stat().st_size > 1000
    spec = ProblemReportSpec("makespan_us", True, "heft", "cpsat")
    generic = write_problem_report([tmp_path / "sweep"], tmp_path, spec, "generic").read_text()
    assert "| random20x4s0 | heft | 78 |" in generic and "| random20x4s0 | cpsat | 62 |" in generic


def test_quick_stream_experiment_through_run_trial_and_report(tmp_path) -> None:
    """A short stream of experiments/configs/scheduling_stream.yaml with every agent."""
    from mlsysgym.experiments.report_scheduling import write_scheduling_report

    _one_trial_each("scheduling_stream", 6, tmp_path / "sweep")
    md = write_scheduling_report([tmp_path / "sweep"], tmp_path, "stream").read_text()
    assert "## CP-SAT on short streams" in md and "| 0.5 | 100 | resnet18+resnet18 | 98 |" in md


def test_bad_problem_specs_are_one_line_errors() -> None:
    from mlsysgym.agents.problems import make_problem
    from mlsysgym.core.errors import MlsysgymError

    for spec, match in (({"name": "scheduling"}, "needs a model"),
                        ({"name": "scheduling", "model": "resnet18", "platform": "nope"},
                         "unknown platform"),
                        ({"name": "scheduling-stream", "objective": "energy"}, "objective")):
        with pytest.raises(MlsysgymError, match=match) as e:
            make_problem(spec)
        assert "\n" not in str(e.value)
    with pytest.raises(AgentConfigError, match="cannot search"):
        search("heft", make_problem("synthetic-discrete"), 1)  # a design space, not episodes
