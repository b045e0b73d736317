"""mallocGame agents (MCTS, MaskablePPO, local search, pilot, CP-SAT, the heuristics) through
``search()`` on hand-made graphs with known optima.

The "greedy trap" (tests/test_malloc.py): the XLA-style greedy gets 234 µs, the optimum
(a slow; b, c, d fast) is 180 µs; all slow is 336 µs. No timed assertions.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from mlsysgym.agents import search
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem
from mlsysgym.agents.malloc_agents import greedy_policy
from mlsysgym.agents.malloc_baselines import cpsat_optimum, heuristic_actions, xla_greedy
from mlsysgym.agents.malloc_problem import MallocProblem, malloc_problem
from mlsysgym.agents.mcts import MCTSError, Snapshotter, mcts_episodes
from mlsysgym.agents.problems import make_problem
from mlsysgym.agents.sequential import EpisodeProblem, replay_episode
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.ir.graph import Graph, Role
from mlsysgym.simulators.memory import Placement, simulate
from test_malloc import UNIT_KW, greedy_trap, hand_graph, random_graph

SMALL = {"n_simulations": 8, "iterations": 1, "train_epochs": 2, "imitation_epochs": 4}
BUDGET = 1000   # evaluations: more than any of these searches submits


def trap() -> MallocProblem:
    return malloc_problem(greedy_trap(), capacity_bytes=104, n_offsets=4, **UNIT_KW)


def best_time(res) -> float:
    return res.metrics[res.best_index]["time_us"]


def placement_of(problem: MallocProblem, actions: list[int]) -> Placement:
    env = problem.make_env()
    _, done, _ = replay_episode(env, actions)
    assert done
    return env.placement


# ---- the problem -----------------------------------------------------------------------------
def test_malloc_problem_from_a_spec_and_its_metrics():
    p = make_problem({"name": "malloc", "model": "alexnet", "capacity": 0.5, "n_offsets": 4})
    assert isinstance(p, MallocProblem) and p.kind == "malloc" and p.name == "malloc:alexnet:0.5"
    assert p.instance.n_buffers == p.env.n_buffers == 45 and p.n_offsets == 4
    res = search("xla_greedy", p, 5)
    m = res.metrics[0]
    assert res.n_evaluations == 1 and m["time_us"] == pytest.approx(xla_greedy(p.instance).time_us)
    assert m["improvement"] == pytest.approx(res.best_reward)   # return = fraction saved
    assert m["all_slow_time_us"] == pytest.approx(p.instance.all_slow_time_us)
    slow = search("all_slow", p, 5)
    assert slow.best_reward == 0.0 and best_time(slow) == pytest.approx(m["all_slow_time_us"])
    with pytest.raises(MlsysgymError, match="bad arguments for problem 'malloc'"):
        make_problem({"name": "malloc", "model": "alexnet", "capacity_fraction": 0.5})


def test_masked_or_short_episodes_fail():
    p = trap()
    out = p.evaluate([{"actions": [1, 0, 0]}, {"actions": [1, 1, 0, 0]}])
    assert out.failed.tolist() == [True, True]   # too short; b fits nowhere after a
    res = search("random_episodes", p, 3, seed=1)
    assert not res.failed.any() and all(m["time_us"] <= 336.0 for m in res.metrics)


# ---- env snapshots --------------------------------------------------------------------------
def test_get_state_set_state_round_trip():
    env = MallocGameEnv(random_graph(3), capacity_fraction=0.5, prefetch_window=2, **UNIT_KW)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
    snap = env.get_state()
    ref = env._obs(), env.action_masks(), env.state.total_us
    tail = []
    done = False
    while not done:
        a = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, r, done, _, info = env.step(a)
        tail.append((a, r, info["time_us"]))
    for _ in range(2):  # a snapshot can be restored more than once
        env.set_state(snap)
        obs = env._obs()
        for k, v in ref[0].items():
            assert np.array_equal(obs[k], v)
        assert np.array_equal(env.action_masks(), ref[1]) and env.state.total_us == ref[2]
        for a, r, t in tail:
            _, r2, _, _, info = env.step(a)
            assert r2 == r and info["time_us"] == t
        assert simulate(env.problem, env.placement).valid


class TrapToy(gym.Env):
    """No get_state: 3 steps of 0/1; a 1 at step 0 pays 2 but masks every later 1 (each pays 1.5)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (4,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t, self.blocked = 0, False

    def _obs(self) -> np.ndarray:
        return np.array([self.t == 0, self.t == 1, self.t == 2, self.blocked], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.blocked = 0, False
        return self._obs(), {}

    def action_masks(self) -> np.ndarray:
        return np.array([True, not self.blocked])

    def step(self, action):
        r = 0.0
        if action == 1:
            r = 2.0 if self.t == 0 else 1.5
            self.blocked = self.blocked or self.t == 0
        self.t += 1
        return self._obs(), r, self.t == 3, False, {}


def test_generic_env_with_deepcopy_snapshots():
    env = TrapToy()
    snap = Snapshotter(env)
    assert not snap.native
    env.reset()
    env.step(1)
    s = snap.get()
    env.step(0)
    snap.set(s)
    assert env.t == 1 and env.blocked and env.action_space is snap.env.action_space
    greedy = [1, 0, 0]   # return 2; the optimum [0, 1, 1] returns 3
    problem = BudgetedProblem(EpisodeProblem("toy", "toy", TrapToy), BUDGET)
    mcts_episodes(problem, np.random.default_rng(0), start_from=greedy,
                  rollout_policy=lambda e: int(e.action_masks()[1]), n_simulations=8, iterations=1)
    res = problem.result("mcts", 0, 0.0, {})
    assert res.designs[0] == {"actions": greedy}          # the start is the first evaluation
    assert res.best_design == {"actions": [0, 1, 1]} and res.best_reward == pytest.approx(3.0)
    # the generic registration searches any sequential problem (no start, value head only)
    generic = search("mcts", EpisodeProblem("toy", "toy", TrapToy), BUDGET, **SMALL)
    assert generic.n_evaluations >= 1 and generic.best_reward <= 3.0


# ---- MCTS on the greedy trap ---------------------------------------------------------------
def test_mcts_finds_the_greedy_trap_optimum():
    p = trap()
    assert search("xla_greedy", p, 1).metrics[0]["time_us"] == pytest.approx(234.0)
    res = search("mcts", p, BUDGET, **SMALL)
    assert best_time(res) == pytest.approx(180.0) and res.info["source"] != "start_from"
    assert res.best_reward == pytest.approx(156.0 / 336.0)
    assert res.metrics[res.best_index]["improvement"] == pytest.approx(156.0 / 336.0)
    assert placement_of(p, res.best_design["actions"]).to_dict(p.instance) == {
        "b": ("fast", 0), "c": ("fast", 0), "d": ("fast", 100)}
    # without the heuristic to start from, the search still gets there
    res = search("mcts", p, BUDGET, start_from_heuristic=False, **SMALL)
    assert best_time(res) == pytest.approx(180.0)


def test_mcts_stops_at_the_evaluation_budget():
    # one evaluation: the heuristic's episode (the start); the first improvement ends the run
    res = search("mcts", trap(), 1, **SMALL)
    assert res.n_evaluations == 1 and best_time(res) == pytest.approx(234.0)


def test_local_search_finds_the_greedy_trap_optimum():
    res = search("local_search", trap(), BUDGET)
    assert best_time(res) == pytest.approx(180.0) and res.metrics[0]["time_us"] == pytest.approx(234.0)


# ---- a plateau of interchangeable weights: ejection chains and deeper rollouts -------------
def plateau() -> Graph:
    """x0[30] → op0 → x1 → op1 → ... → op4 → x5 (each x 30 bytes, x5 the output); weights
    w1, w2, w3 [60] are read by op0 and op4 (live throughout). No compute."""
    ops = [(f"op{i}", (f"x{i}",) + (("w1", "w2", "w3") if i in (0, 4) else ()), (f"x{i + 1}",), 0)
           for i in range(5)]
    sizes = {f"x{i}": 30 for i in range(6)} | {w: 60 for w in ("w1", "w2", "w3")}
    roles = {"w1": Role.WEIGHT, "w2": Role.WEIGHT, "w3": Role.WEIGHT, "x5": Role.OUTPUT}
    return hand_graph(ops, sizes, roles, "plateau")


def plateau_problem() -> MallocProblem:
    # all slow: op0 and op4 move 30 + 180 + 30, op1..op3 move 60 → 660 µs. In fast memory a
    # weight saves 0.75·60·2 = 90 µs, x1..x4 45 µs each, x0 and x5 (one use) 22.5 µs.
    # Capacity 100: a weight leaves 40 bytes, room for every other activation (x1, x3, x5:
    # 112.5 µs), so the greedy (weights first, 90 µs each) gets 660 − 202.5 = 457.5 µs; with
    # the weights slow all six activations fit (two 30-byte slots): 660 − 225 = 435 µs.
    return malloc_problem(plateau(), capacity_bytes=100, n_offsets=4, **UNIT_KW)


def test_plateau_optimum_by_cpsat():
    p = plateau_problem()
    env = p.env
    assert [p.instance.buffer_names[b] for b in env.order[:3]] == ["w1", "w2", "w3"]
    assert env.all_slow_time_us == pytest.approx(660.0)
    assert search("xla_greedy", p, 1).metrics[0]["time_us"] == pytest.approx(457.5)
    opt = cpsat_optimum(p.instance, time_limit_s=5, num_workers=1, n_offsets=4)
    assert opt.status == "OPTIMAL" and opt.time_us == pytest.approx(435.0) and opt.replayable
    assert sorted(opt.placement.to_dict(p.instance)) == [f"x{i}" for i in range(6)]
    # the agent: its episode is the optimum, proved, and the bound is its reward
    res = search("cpsat", p, {"seconds": 10})
    assert res.n_evaluations == 1 and best_time(res) == pytest.approx(435.0)
    assert res.status == "optimal" and res.info["solver_status"] == "OPTIMAL"
    assert res.bound == pytest.approx(res.best_reward) == pytest.approx(225.0 / 660.0)


def test_a_placement_off_the_candidates_replays_with_its_modes():
    from mlsysgym.agents.malloc_baselines import actions_for, demoted_actions, mode_actions
    from mlsysgym.simulators.memory import NotReplayableError

    p = trap()
    env = p.make_env()
    odd = Placement.from_dict(p.instance, {"b": 0, "c": 2})   # c at 2: not a candidate offset
    with pytest.raises(NotReplayableError):
        actions_for(env, odd)
    want = simulate(p.instance, odd).total_time_us
    for acts in (mode_actions(env, odd), demoted_actions(env, odd)):
        _, done, info = replay_episode(env, acts)
        assert done and info["time_us"] == pytest.approx(want)
        assert env.placement.mode.tolist() == odd.mode.tolist()
    # no room for a mode at all: the search gives up, the demoted episode leaves it slow
    crowded = Placement(odd.mode.copy(), odd.offset.copy())
    crowded.mode[p.instance.index("a")] = crowded.mode[p.instance.index("b")]
    crowded.offset[p.instance.index("a")] = 0
    assert mode_actions(env, crowded) is None
    acts = demoted_actions(env, crowded)
    assert replay_episode(env, acts)[1] and env.placement.mode.tolist() != crowded.mode.tolist()


def test_cpsat_agent_bad_hyperparameters():
    with pytest.raises(AgentConfigError, match="num_workers"):
        search("cpsat", trap(), 1, num_workers=0)


def test_local_search_ejection_chain_leaves_the_plateau():
    p = plateau_problem()
    # one change at a time cannot: leaving w1 slow just lets w2 (then w3) take its place
    assert best_time(search("local_search", p, BUDGET, chain_depth=0)) == pytest.approx(457.5)
    assert best_time(search("local_search", p, BUDGET, chain_depth=1)) == pytest.approx(457.5)
    res = search("local_search", p, BUDGET, chain_depth=2)
    assert best_time(res) == pytest.approx(435.0) and res.n_evaluations == 2
    assert res.info["passes"][0]["ejections"] == 2
    assert sorted(placement_of(p, res.best_design["actions"]).to_dict(p.instance)) == [
        f"x{i}" for i in range(6)]
    assert best_time(search("local_search", p, BUDGET)) == pytest.approx(435.0)  # chain_depth=3
    with pytest.raises(AgentConfigError, match="max_passes"):
        search("local_search", p, BUDGET, max_passes=0)


def test_mcts_deeper_rollouts_leave_the_plateau():
    # with this small budget the search leaves it for 5 of the seeds 0-7 (1, 3, 4, 6, 7)
    res = search("mcts", plateau_problem(), BUDGET, seed=1, **{**SMALL, "n_simulations": 16,
                                                               "rollout_depth": 3})
    assert best_time(res) == pytest.approx(435.0)


def test_pure_alphazero_never_worse_than_start():
    # value head only (no rollouts): whatever the network learns, the start is kept
    res = search("mcts", trap(), BUDGET, rollouts=False, **SMALL)
    assert best_time(res) <= 234.0 + 1e-9
    assert [lg["iteration"] for lg in res.info["mcts_log"]] == [-1, 0, 1]


def test_same_seed_same_result():
    p = malloc_problem(random_graph(4, n_ops=10), capacity=0.3, **UNIT_KW)
    hp = {**SMALL, "imitation_epochs": 2}
    a, b = search("mcts", p, BUDGET, seed=3, **hp), search("mcts", p, BUDGET, seed=3, **hp)
    assert a.designs == b.designs and a.rewards.tolist() == b.rewards.tolist()
    assert a.info["source"] == b.info["source"]
    assert ([lg["policy_loss"] for lg in a.info["mcts_log"][:-1]]
            == [lg["policy_loss"] for lg in b.info["mcts_log"][:-1]])


@pytest.mark.parametrize("seed", range(4))
def test_agents_never_worse_than_heuristic_and_never_better_than_optimum(seed):
    p = malloc_problem(random_graph(seed, n_ops=10), capacity=0.3, n_offsets=4, **UNIT_KW)
    heur = xla_greedy(p.instance).time_us
    opt = search("cpsat", p, {"seconds": 10})
    assert opt.status == "optimal"
    for agent, hp in (("mcts", SMALL), ("local_search", {}), ("pilot", {})):
        res = search(agent, p, BUDGET, **hp)
        assert simulate(p.instance, placement_of(p, res.best_design["actions"])).valid
        assert best_time(res) <= heur + 1e-9
        assert best_time(opt) <= best_time(res) + 1e-9


def test_bad_start_from_and_hyperparameters():
    def run(start):
        problem = BudgetedProblem(trap(), BUDGET)
        mcts_episodes(problem, np.random.default_rng(0), start_from=start, **SMALL)

    with pytest.raises(MCTSError, match="fewer than the episode needs") as e:
        run([1, 0])
    assert isinstance(e.value, MlsysgymError)
    with pytest.raises(MCTSError, match="not legal"):
        run([1, 1, 0, 0])   # b fits nowhere after a
    with pytest.raises(AgentConfigError, match="n_simulations"):
        search("mcts", trap(), BUDGET, n_simulations=0)
    with pytest.raises(AgentConfigError, match="network must be"):
        search("mcts", trap(), BUDGET, network="random")
    with pytest.raises(AgentConfigError, match=r"unknown hyperparameter\(s\) \['simulations'\]"):
        search("mcts", trap(), BUDGET, simulations=8)


def test_greedy_policy_matches_the_heuristic_on_the_trap():
    env = trap().make_env()
    env.reset()
    acts, done = [], False
    while not done:
        a = greedy_policy(env)
        _, _, done, _, _ = env.step(a)
        acts.append(a)
    assert acts == heuristic_actions(env)


# ---- MaskablePPO, generic use ------------------------------------------------------------------
@pytest.mark.slow
def test_ppo_never_worse_than_heuristic(system_tmp):
    res = search("maskable_ppo", trap(), BUDGET, total_timesteps=128, n_steps=32, batch_size=16,
                 n_epochs=1)
    assert list(system_tmp.glob("SB3-*")) == []  # no log folder left behind
    assert res.metrics[0]["time_us"] == pytest.approx(234.0)   # the heuristic is submitted first
    assert best_time(res) <= 234.0 + 1e-9 and res.n_evaluations in (2, 3)
    assert res.info["episodes"] >= 128 // 4 - 1


@pytest.mark.slow
def test_mcts_on_kernel_scheduling_env():
    from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv

    def make():
        return KernelSchedulingEnv("alexnet", "soc_npu", window=2)

    env = make()
    env.reset(seed=0)
    first = [int(np.flatnonzero(env.action_masks())[0])]
    done = False
    while not done:
        _, _, done, _, _ = env.step(first[-1])
        if not done:
            first.append(int(np.flatnonzero(env.action_masks())[0]))
    start_ret, _, _ = replay_episode(make(), first)
    problem = BudgetedProblem(EpisodeProblem("alexnet-soc", "scheduling", make), BUDGET)
    mcts_episodes(problem, np.random.default_rng(0), start_from=first, n_simulations=2,
                  iterations=1, final_episode=False)
    res = problem.result("mcts", 0, 0.0, {})
    assert res.rewards[0] == pytest.approx(start_ret) and res.best_reward >= start_ret - 1e-12
    ret, done, _ = replay_episode(make(), res.best_design["actions"])
    assert done and ret == pytest.approx(res.best_reward)


# ---- network ablation options, traces, pilot, behaviour cloning ------------------------------
def test_self_play_policy_targets_are_visit_distributions():
    from mlsysgym.agents.mcts import PolicyValueNet, _flat_featurizer, _Params, _Search

    env = trap().make_env()
    search_ = _Search(env, _Params(n_simulations=8, iterations=1), greedy_policy,
                      _flat_featurizer(env.observation_space), ())
    obs, _ = env.reset(seed=0)
    search_.net = PolicyValueNet(len(search_.featurize(obs)), search_.n_actions, 8, 1e-3)
    samples, actions, ret, stopped = search_.episode(noise=True, deadline=None)
    assert not stopped and len(samples) == len(actions) == env.n_buffers
    for _, mask, pi, _ in samples:
        assert pi.sum() == pytest.approx(1.0) and (pi >= 0).all()
        assert pi[~mask].sum() == 0.0          # no visits to masked actions
    # the value targets are the returns-to-go of the episode played
    assert samples[0][3] == pytest.approx(ret)


def test_value_baseline_targets_are_relative_to_start_from():
    from mlsysgym.agents.mcts import (
        PolicyValueNet,
        _flat_featurizer,
        _imitation_data,
        _Params,
        _Search,
    )

    env = trap().make_env()
    search_ = _Search(env, _Params(value_baseline=True), None,
                      _flat_featurizer(env.observation_space), ())
    obs, _ = env.reset(seed=0)
    search_.net = PolicyValueNet(len(search_.featurize(obs)), search_.n_actions, 8, 1e-3)
    rows = _imitation_data(search_, heuristic_actions(env))
    assert all(v == 0.0 for *_, v in rows)     # start_from relative to itself
    # a prediction of 0 maps back to start_from's return-to-go at that step
    search_.net.value.weight.data.zero_()
    search_.net.value.bias.data.zero_()
    _, v0 = search_.evaluate(rows[0][0], rows[0][1], 0)
    assert v0 == pytest.approx(search_.baseline[0])


def test_no_network_uniform_prior_still_finds_the_trap_optimum():
    p = trap()
    res = search("mcts", p, BUDGET, n_simulations=8, iterations=1, network="none")
    assert best_time(res) == pytest.approx(180.0)
    untrained = search("mcts", p, BUDGET, n_simulations=8, iterations=1, network="untrained")
    assert best_time(untrained) <= 234.0 + 1e-9


def test_mcts_trajectory_is_the_best_so_far_trace():
    res = search("mcts", trap(), BUDGET, **SMALL)
    times = [m["time_us"] for m in res.metrics]
    assert times[0] == pytest.approx(234.0)                 # start_from first
    assert all(b < a for a, b in pairwise(times))           # strictly improving
    assert times[-1] == pytest.approx(best_time(res)) == pytest.approx(180.0)
    assert list(res.times_s) == sorted(res.times_s)
    trace = res.info["trace"]                                # (s, simulations, steps, return)
    assert len(trace) == res.n_evaluations
    assert [r for *_, r in trace] == pytest.approx(res.rewards.tolist())
    assert [n for _, n, _, _ in trace] == sorted(n for _, n, _, _ in trace)


def test_rollout_min_prior_above_one_disables_rollouts():
    res = search("mcts", trap(), BUDGET, n_simulations=8, iterations=1, rollout_min_prior=1.1)
    assert res.info["source"] != "rollout" and best_time(res) <= 234.0 + 1e-9


def test_pilot_finds_the_trap_optimum_and_never_loses_to_the_heuristic():
    res = search("pilot", trap(), BUDGET)
    assert best_time(res) == pytest.approx(180.0) and res.metrics[0]["time_us"] == pytest.approx(234.0)
    assert res.info["trace"][-1][3] == pytest.approx(156.0 / 336.0)
    for seed in range(3):
        p = malloc_problem(random_graph(seed), capacity=0.3, n_offsets=2, **UNIT_KW)
        h = xla_greedy(p.instance).time_us
        assert best_time(search("pilot", p, BUDGET)) <= h + 1e-9


def test_behaviour_clone_reproduces_the_heuristic():
    import torch
    from mlsysgym.agents.malloc_agents import behaviour_clone, heuristic_demo
    from sb3_contrib import MaskablePPO

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    env = trap().make_env()
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=16, seed=0,
                        device="cpu", policy_kwargs={"net_arch": [16, 16]})
    obs, acts, masks = heuristic_demo(env)
    first = behaviour_clone(model, obs, acts, masks, epochs=1)
    loss = behaviour_clone(model, obs, acts, masks, epochs=300)
    torch.set_num_threads(threads)
    assert loss < first and loss < 0.25     # mean -log p of the heuristic's actions
    pred, _ = model.predict(obs, action_masks=masks, deterministic=True)
    assert list(pred) == list(acts)


def test_episode_demo_records_each_decision_before_it():
    from mlsysgym.agents.malloc_agents import episode_demo

    env = trap().make_env()
    acts = [0] + [1] * (env.n_buffers - 1)          # the first buffer slow, the rest best fit
    obs, got, masks = episode_demo(env, acts)
    assert list(got) == acts and masks.shape == (env.n_buffers, env.action_space.n)
    assert obs["progress"][:, 0] == pytest.approx(np.arange(env.n_buffers) / env.n_buffers)
    assert masks[0, 0] and masks[np.arange(1, env.n_buffers), 1].all()   # every action legal
    assert env.state.total_us < env.all_slow_time_us                       # the episode was played


# ---- the experiment: one trial of each config, through the sweep's run_trial -----------------
CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def _trial(config: str, agent: str, problem_index: int = 0, **hp):
    """The config's first trial of ``agent`` on one of its problems (``hp`` added), with a
    10-second budget instead of the config's 30 s."""
    from dataclasses import replace

    from mlsysgym.experiments.sweep import expand, load_config

    cfg = load_config(CONFIGS / config, check_names=True)
    assert cfg.budgets == [(None, 30.0)]
    trials, groups = expand(cfg)
    assert not groups
    spec = next(t for t in trials if t.agent == agent and t.problem == cfg.problems[problem_index])
    return replace(spec, hyperparameters={**spec.hyperparameters, **hp}, budget_s=10.0)


def test_malloc_config_one_trial_and_the_report(tmp_path):
    from mlsysgym.experiments.report import ProblemReportSpec, write_problem_report
    from mlsysgym.experiments.sweep import run_trial

    out = tmp_path / "sweep"
    for agent in ("xla_greedy", "cpsat", "mcts"):
        spec = _trial("malloc.yaml", agent, 3, **(SMALL if agent == "mcts" else {}))  # alexnet 50 %
        row = run_trial(spec, out, sweep="malloc")
        assert row["problem"] == "malloc" and row["n_evaluations"] >= 1 and row["budget_s"] == 10.0
        if agent == "cpsat":
            assert row["status"] == "optimal" and row["bound"] == pytest.approx(row["best_reward"])
    md = write_problem_report([out], tmp_path / "rep", ProblemReportSpec(
        "time_us", True, "xla_greedy", "cpsat"), name="malloc").read_text()
    # alexnet 50 %: heuristic 881.1 µs, CP-SAT's proved optimum 876.8 µs, MCTS reaches it
    assert "| malloc:alexnet:0.5 | xla_greedy | 881.132 | +0.00% | +0.49% |" in md
    assert "| malloc:alexnet:0.5 | mcts | 876.848 | +0.49% | +0.00% | optimal |" in md
    assert "budget per run: 10 s" in md
    assert (tmp_path / "rep" / "malloc.png").stat().st_size > 1000


def test_variants_config_expands_to_its_arms():
    from mlsysgym.experiments.sweep import expand, load_config

    cfg = load_config(CONFIGS / "malloc_mcts_variants.yaml", check_names=True)
    trials, _ = expand(cfg)
    per_problem = [t for t in trials if t.problem == cfg.problems[0]]
    # xla_greedy, cpsat, 5 MCTS variants, pilot, 3 x 2 MaskablePPO budgets
    assert len(per_problem) == 14 and len(trials) == 3 * 14
    mcts = [t.hyperparameters for t in per_problem if t.agent == "mcts"]
    assert len({tuple(sorted(h)) for h in mcts}) == 1   # same keys: only the ablated values differ
