"""mallocGame agents (MCTS, MaskablePPO, local search) on hand-made graphs with known optima.

The "greedy trap" (tests/test_malloc.py): the XLA-style greedy gets 234 µs, the optimum
(a slow; b, c, d fast) is 180 µs. No timed assertions.
"""

from __future__ import annotations

from itertools import pairwise

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from mlsysgym.agents.malloc_agents import (
    MallocAgentResult,
    evaluate_actions,
    greedy_policy,
    heuristic_actions,
    local_search_malloc,
    mcts_malloc,
    ppo_malloc,
)
from mlsysgym.agents.malloc_baselines import cpsat_optimum, xla_greedy
from mlsysgym.agents.mcts import MCTSConfig, MCTSError, Snapshotter, mcts_search, play_actions
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.ir.graph import Graph, Role
from mlsysgym.simulators.memory import Placement, simulate
from test_malloc import UNIT_KW, greedy_trap, hand_graph, random_graph

SMALL = MCTSConfig(n_simulations=8, iterations=1, train_epochs=2, imitation_epochs=4)


def trap_env() -> MallocGameEnv:
    return MallocGameEnv(greedy_trap(), capacity_bytes=104, n_offsets=4, **UNIT_KW)


def placement_of(env: MallocGameEnv, actions: list[int]) -> Placement:
    play_actions(env, actions)
    return env.placement


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
    res = mcts_search(env, MCTSConfig(n_simulations=8, iterations=1), start_from=greedy,
                      rollout_policy=lambda e: int(e.action_masks()[1]))   # "take it if you can"
    assert res.actions == [0, 1, 1] and res.episode_return == pytest.approx(3.0)
    assert play_actions(env, res.actions) == (pytest.approx(3.0), True)


# ---- MCTS on the greedy trap ---------------------------------------------------------------
def test_mcts_finds_the_greedy_trap_optimum():
    env = trap_env()
    assert evaluate_actions(env, heuristic_actions(env)) == pytest.approx(234.0)
    res = mcts_malloc(env, SMALL)
    assert isinstance(res, MallocAgentResult)
    assert res.time_us == pytest.approx(180.0) and res.source != "start_from"
    assert res.improvement == pytest.approx(156.0 / 336.0)
    assert placement_of(env, res.actions).to_dict(env.problem) == {
        "b": ("fast", 0), "c": ("fast", 0), "d": ("fast", 100)}
    # without the heuristic to start from, the search still gets there
    assert mcts_malloc(env, SMALL, start_from_heuristic=False).time_us == pytest.approx(180.0)


def test_local_search_finds_the_greedy_trap_optimum():
    res = local_search_malloc(trap_env())
    assert res.time_us == pytest.approx(180.0) and res.source == "local_search"


# ---- a plateau of interchangeable weights: ejection chains and deeper rollouts -------------
def plateau() -> Graph:
    """x0[30] → op0 → x1 → op1 → ... → op4 → x5 (each x 30 bytes, x5 the output); weights
    w1, w2, w3 [60] are read by op0 and op4 (live throughout). No compute."""
    ops = [(f"op{i}", (f"x{i}",) + (("w1", "w2", "w3") if i in (0, 4) else ()), (f"x{i + 1}",), 0)
           for i in range(5)]
    sizes = {f"x{i}": 30 for i in range(6)} | {w: 60 for w in ("w1", "w2", "w3")}
    roles = {"w1": Role.WEIGHT, "w2": Role.WEIGHT, "w3": Role.WEIGHT, "x5": Role.OUTPUT}
    return hand_graph(ops, sizes, roles, "plateau")


def plateau_env() -> MallocGameEnv:
    # all slow: op0 and op4 move 30 + 180 + 30, op1..op3 move 60 → 660 µs. In fast memory a
    # weight saves 0.75·60·2 = 90 µs, x1..x4 45 µs each, x0 and x5 (one use) 22.5 µs.
    # Capacity 100: a weight leaves 40 bytes, room for every other activation (x1, x3, x5:
    # 112.5 µs), so the greedy (weights first, 90 µs each) gets 660 − 202.5 = 457.5 µs; with
    # the weights slow all six activations fit (two 30-byte slots): 660 − 225 = 435 µs.
    return MallocGameEnv(plateau(), capacity_bytes=100, n_offsets=4, **UNIT_KW)


def test_plateau_optimum_by_cpsat():
    env = plateau_env()
    assert [env.problem.buffer_names[b] for b in env.order[:3]] == ["w1", "w2", "w3"]
    assert env.all_slow_time_us == pytest.approx(660.0)
    assert evaluate_actions(env, heuristic_actions(env)) == pytest.approx(457.5)
    opt = cpsat_optimum(env.problem, time_limit_s=5, num_workers=1, n_offsets=4)
    assert opt.status == "OPTIMAL" and opt.time_us == pytest.approx(435.0) and opt.replayable
    assert sorted(opt.placement.to_dict(env.problem)) == [f"x{i}" for i in range(6)]


def test_local_search_ejection_chain_leaves_the_plateau():
    env = plateau_env()
    # one change at a time cannot: leaving w1 slow just lets w2 (then w3) take its place
    assert local_search_malloc(env, chain_depth=0).time_us == pytest.approx(457.5)
    assert local_search_malloc(env, chain_depth=1).time_us == pytest.approx(457.5)
    res = local_search_malloc(env, chain_depth=2)
    assert res.time_us == pytest.approx(435.0) and res.source == "local_search"
    assert res.log[0]["ejections"] == 2
    assert sorted(placement_of(env, res.actions).to_dict(env.problem)) == [f"x{i}" for i in range(6)]
    assert local_search_malloc(env).time_us == pytest.approx(435.0)   # default chain_depth=3


def test_mcts_deeper_rollouts_leave_the_plateau():
    env = plateau_env()
    cfg = MCTSConfig(n_simulations=16, iterations=1, train_epochs=2, imitation_epochs=4,
                     rollout_depth=3)
    assert mcts_malloc(env, cfg).time_us == pytest.approx(435.0)


def test_pure_alphazero_never_worse_than_start():
    # value head only (no rollouts): whatever the network learns, the start is kept
    env = trap_env()
    res = mcts_malloc(env, SMALL, rollouts=False)
    assert res.time_us <= 234.0 + 1e-9
    assert [lg.iteration for lg in res.log] == [-1, 0, 1]


def test_same_seed_same_result():
    env = MallocGameEnv(random_graph(4, n_ops=10), capacity_fraction=0.3, **UNIT_KW)
    cfg = MCTSConfig(n_simulations=6, iterations=1, train_epochs=2, imitation_epochs=2, seed=3)
    a, b = mcts_malloc(env, cfg), mcts_malloc(env, cfg)
    assert a.actions == b.actions and a.time_us == b.time_us and a.source == b.source
    assert [lg.policy_loss for lg in a.log[:-1]] == [lg.policy_loss for lg in b.log[:-1]]


@pytest.mark.parametrize("seed", range(4))
def test_agents_never_worse_than_heuristic_and_never_better_than_optimum(seed):
    env = MallocGameEnv(random_graph(seed, n_ops=10), capacity_fraction=0.3, n_offsets=4,
                        **UNIT_KW)
    heur = xla_greedy(env.problem).time_us
    opt = cpsat_optimum(env.problem, time_limit_s=5, num_workers=1, n_offsets=4)
    assert opt.status == "OPTIMAL"
    for res in (mcts_malloc(env, SMALL), local_search_malloc(env)):
        assert simulate(env.problem, placement_of(env, res.actions)).valid
        assert res.time_us <= heur + 1e-9
        assert opt.time_us <= res.time_us + 1e-9


def test_bad_start_from():
    env = trap_env()
    with pytest.raises(MCTSError, match="fewer than the episode needs") as e:
        mcts_search(env, SMALL, start_from=[1, 0])
    assert isinstance(e.value, MlsysgymError)
    with pytest.raises(MCTSError, match="not legal"):
        mcts_search(env, SMALL, start_from=[1, 1, 0, 0])   # b fits nowhere after a
    with pytest.raises(MCTSError, match="n_simulations"):
        MCTSConfig(n_simulations=0)


def test_greedy_policy_matches_the_heuristic_on_the_trap():
    env = trap_env()
    env.reset()
    acts, done = [], False
    while not done:
        a = greedy_policy(env)
        _, _, done, _, _ = env.step(a)
        acts.append(a)
    assert acts == heuristic_actions(env)


# ---- MaskablePPO, generic use, the experiment ----------------------------------------------------
@pytest.mark.slow
def test_ppo_never_worse_than_heuristic():
    env = trap_env()
    res = ppo_malloc(env, total_timesteps=128, n_steps=32, batch_size=16, n_epochs=1)
    assert res.time_us <= 234.0 + 1e-9
    assert res.source in ("policy", "training", "start_from")


@pytest.mark.slow
def test_mcts_on_kernel_scheduling_env():
    from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv

    env = KernelSchedulingEnv("alexnet", "soc_npu", window=2)
    env.reset(seed=0)
    first = [int(np.flatnonzero(env.action_masks())[0])]
    done = False
    while not done:
        _, _, done, _, _ = env.step(first[-1])
        if not done:
            first.append(int(np.flatnonzero(env.action_masks())[0]))
    start_ret, _ = play_actions(env, first)
    res = mcts_search(env, MCTSConfig(n_simulations=2, iterations=1, final_episode=False),
                      start_from=first)
    assert res.episode_return >= start_ret - 1e-12
    assert play_actions(env, res.actions) == (pytest.approx(res.episode_return), True)


@pytest.mark.slow
def test_quick_experiment_writes_its_files(tmp_path):
    from mlsysgym.experiments.malloc_experiment import main

    main(["--quick", "--capacities", "0.5", "--out", str(tmp_path), "--no-progress"])
    md = (tmp_path / "malloc.md").read_text()
    assert "| alexnet | 50% |" in md and "Summary" in md
    assert md.splitlines()[2].startswith("Machine: ") and "target_id `" in md  # where it ran
    assert (tmp_path / "malloc.provenance.json").is_file()
    assert (tmp_path / "malloc.png").stat().st_size > 1000
    lines = (tmp_path / "malloc.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("model,capacity")
    assert "## Ablation" in md and "| alexnet | 50% |" in md.split("## Ablation")[1]
    assert "abl_none_us" in lines[0] and "reach_pilot_s" in lines[0]


# ---- network ablation options, traces, pilot, behaviour cloning ------------------------------
def test_bad_network_option():
    with pytest.raises(MCTSError):
        MCTSConfig(network="random")


def test_self_play_policy_targets_are_visit_distributions():
    from mlsysgym.agents.mcts import _flat_featurizer, _Search

    env = trap_env()
    cfg = MCTSConfig(n_simulations=8, iterations=1)
    search = _Search(env, cfg, greedy_policy, _flat_featurizer(env.observation_space), ())
    obs, _ = env.reset(seed=0)
    from mlsysgym.agents.mcts import PolicyValueNet

    search.net = PolicyValueNet(len(search.featurize(obs)), search.n_actions, 8, 1e-3)
    samples, actions, ret, stopped = search.episode(noise=True, deadline=None)
    assert not stopped and len(samples) == len(actions) == env.n_buffers
    for _, mask, pi, _ in samples:
        assert pi.sum() == pytest.approx(1.0) and (pi >= 0).all()
        assert pi[~mask].sum() == 0.0          # no visits to masked actions
    # the value targets are the returns-to-go of the episode played
    assert samples[0][3] == pytest.approx(ret)


def test_value_baseline_targets_are_relative_to_start_from():
    from mlsysgym.agents.mcts import PolicyValueNet, _flat_featurizer, _imitation_data, _Search

    env = trap_env()
    search = _Search(env, MCTSConfig(value_baseline=True), None,
                     _flat_featurizer(env.observation_space), ())
    obs, _ = env.reset(seed=0)
    search.net = PolicyValueNet(len(search.featurize(obs)), search.n_actions, 8, 1e-3)
    rows = _imitation_data(search, heuristic_actions(env))
    assert all(v == 0.0 for *_, v in rows)     # start_from relative to itself
    # a prediction of 0 maps back to start_from's return-to-go at that step
    search.net.value.weight.data.zero_()
    search.net.value.bias.data.zero_()
    _, v0 = search.evaluate(rows[0][0], rows[0][1], 0)
    assert v0 == pytest.approx(search.baseline[0])


def test_no_network_uniform_prior_still_finds_the_trap_optimum():
    env = trap_env()
    res = mcts_malloc(env, MCTSConfig(n_simulations=8, iterations=1, network="none"))
    assert res.time_us == pytest.approx(180.0)
    untrained = mcts_malloc(env, MCTSConfig(n_simulations=8, iterations=1, network="untrained"))
    assert untrained.time_us <= 234.0 + 1e-9


def test_mcts_trace_is_the_best_so_far():
    env = trap_env()
    res = mcts_malloc(env, SMALL)
    times = [us for *_, us in res.trace]
    sims = [n for _, n, _, _ in res.trace]
    assert times[0] == pytest.approx(234.0)                 # start_from first
    assert all(b < a for a, b in pairwise(times))           # strictly improving
    assert sims == sorted(sims)
    assert times[-1] == pytest.approx(res.time_us)


def test_rollout_min_prior_above_one_disables_rollouts():
    env = trap_env()
    res = mcts_malloc(env, MCTSConfig(n_simulations=8, iterations=1, rollout_min_prior=1.1))
    assert res.source != "rollout" and res.time_us <= 234.0 + 1e-9


def test_pilot_finds_the_trap_optimum_and_never_loses_to_the_heuristic():
    from mlsysgym.agents.malloc_agents import pilot_malloc

    env = trap_env()
    res = pilot_malloc(env)
    assert res.time_us == pytest.approx(180.0) and res.source == "rollout"
    assert res.trace[-1][3] == pytest.approx(180.0)
    for seed in range(3):
        env = MallocGameEnv(random_graph(seed), capacity_fraction=0.3, n_offsets=2, **UNIT_KW)
        h = evaluate_actions(env, heuristic_actions(env))
        assert pilot_malloc(env).time_us <= h + 1e-9


def test_behaviour_clone_reproduces_the_heuristic():
    import torch
    from mlsysgym.agents.malloc_agents import behaviour_clone, heuristic_demo
    from sb3_contrib import MaskablePPO

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    env = trap_env()
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=16, seed=0,
                        device="cpu", policy_kwargs={"net_arch": [16, 16]})
    obs, acts, masks = heuristic_demo(env)
    first = behaviour_clone(model, obs, acts, masks, epochs=1)
    loss = behaviour_clone(model, obs, acts, masks, epochs=300)
    torch.set_num_threads(threads)
    assert loss < first and loss < 0.25     # mean -log p of the heuristic's actions
    pred, _ = model.predict(obs, action_masks=masks, deterministic=True)
    assert list(pred) == list(acts)



@pytest.mark.slow
def test_mcts_variants_script_writes_its_table(tmp_path, monkeypatch):
    from mlsysgym.experiments import malloc_mcts_variants as mv

    monkeypatch.setattr(mv, "VARIANTS", {"none": MCTSConfig(n_simulations=2, iterations=1,
                                                            network="none"), "pilot": None})
    monkeypatch.setattr(mv, "PPO_BUDGETS", ((128, 5),))
    rows = mv.run(["alexnet:0.5"], tmp_path, ppo_instances=("alexnet:0.5",))
    assert [r.variant for r in rows] == ["none", "pilot"]
    assert all(r.cpsat_us - 1e-6 <= r.time_us <= r.heuristic_us + 1e-9 for r in rows)
    md = (tmp_path / "malloc_mcts_variants.md").read_text()
    assert "| alexnet 50% (OPTIMAL) | none |" in md and "| alexnet 50% (OPTIMAL) | 128 | 5 |" in md
