"""Memory execution model, MallocGame-v0 env and its baselines, on graphs checked by hand.

Hand graphs use a machine with round numbers: 1 FLOP takes 1 µs, 1 byte moved from slow
memory takes 1 µs and from fast memory 0.25 µs, so placing a byte in fast memory saves
0.75 µs at each op that touches it (while that op is memory-bound).
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mlsysgym.agents.malloc_baselines import actions_for, cpsat_optimum, xla_greedy
from mlsysgym.agents.sequential import replay_episode
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.malloc_game import InvalidActionError, MallocGameEnv
from mlsysgym.ir.graph import Graph, Op, Role, Tensor
from mlsysgym.simulators.memory import (
    FAST,
    PREFETCH,
    SLOW,
    AllocationState,
    CapacityError,
    MemorySystem,
    NoBuffersError,
    NotReplayableError,
    Placement,
    PlacementError,
    build_instance,
    simulate,
    validate,
    xla_order,
)

UNIT = MemorySystem(compute_tflops=1e-6, fast_bandwidth_gbps=4e-3, slow_bandwidth_gbps=1e-3)
UNIT_KW = {"compute_tflops": 1e-6, "fast_bandwidth_gbps": 4e-3, "slow_bandwidth_gbps": 1e-3}


def hand_graph(ops: list[tuple[str, tuple[str, ...], tuple[str, ...], int]],
               sizes: dict[str, int], roles: dict[str, Role] | None = None,
               name: str = "hand") -> Graph:
    """A Graph from (op name, inputs, outputs, flops) and tensor sizes in bytes (1-byte items)."""
    roles = roles or {}
    produced = {t for _, _, outs, _ in ops for t in outs}
    tensors = {}
    for t, n in sizes.items():
        role = roles.get(t, Role.ACTIVATION if t in produced else Role.INPUT)
        tensors[t] = Tensor(t, (n,), "float8", 1, role)
    graph_outputs = tuple(t for t, r in roles.items() if r is Role.OUTPUT)
    return Graph(name, tuple(Op(nm, "Custom", ins, outs, {}, 0, fl, 0, 0)
                             for nm, ins, outs, fl in ops),
                 tensors, tuple(t for t, v in tensors.items() if v.role is Role.INPUT),
                 graph_outputs)


def chain() -> Graph:
    """x[100] → A → y[100] → B → z[100]; no compute."""
    return hand_graph([("A", ("x",), ("y",), 0), ("B", ("y",), ("z",), 0)],
                      {"x": 100, "y": 100, "z": 100}, {"z": Role.OUTPUT})


def greedy_trap() -> Graph:
    """op0 reads a[64], b[100], writes d[4]; op1 reads a, d, writes c[100]; no compute."""
    return hand_graph([("op0", ("a", "b"), ("d",), 0), ("op1", ("a", "d"), ("c",), 0)],
                      {"a": 64, "b": 100, "d": 4, "c": 100}, {"c": Role.OUTPUT})


def prefetch_graph() -> Graph:
    """x[60] → op0 → a[4] → op1 (1000 FLOPs) → b[4] → op2 (1000 FLOPs) → c[4];
    op3 reads c and weight w[100], writes y[4]."""
    return hand_graph(
        [("op0", ("x",), ("a",), 0), ("op1", ("a",), ("b",), 1000),
         ("op2", ("b",), ("c",), 1000), ("op3", ("c", "w"), ("y",), 0)],
        {"x": 60, "a": 4, "b": 4, "c": 4, "w": 100, "y": 4},
        {"w": Role.WEIGHT, "y": Role.OUTPUT})


# ---- the simulator on hand-checked cases ---------------------------------------------------
def test_chain_all_slow_and_all_fast():
    p = build_instance(chain(), capacity_bytes=200, system=UNIT)
    # live ranges: x [0,0], y [0,1], z [1,1]
    assert list(p.start) == [0, 0, 1] and list(p.end) == [0, 1, 1]
    # all slow: each op moves 200 bytes at 1 µs/B → 200 + 200
    assert p.all_slow_time_us == pytest.approx(400.0)
    # all fast: x and z never live together, so they share [0,100); y at [100,200).
    # each op moves 200 bytes at 0.25 µs/B → 50 + 50
    fast = Placement.from_dict(p, {"x": 0, "y": 100, "z": 0})
    r = simulate(p, fast)
    assert r.valid and r.total_time_us == pytest.approx(100.0)
    assert list(r.op_time_us) == pytest.approx([50.0, 50.0])
    assert r.fast_peak_bytes == 200 and r.fast_live_peak_bytes == 200
    # the optimum is that placement; the greedy finds it too
    assert cpsat_optimum(p, time_limit_s=5, num_workers=1).time_us == pytest.approx(100.0)
    assert xla_greedy(p).time_us == pytest.approx(100.0)


def test_greedy_trap_optimum_by_hand():
    p = build_instance(greedy_trap(), capacity_bytes=104, system=UNIT)
    # all slow: op0 moves 64+100+4, op1 64+4+100 → 168 + 168
    assert p.all_slow_time_us == pytest.approx(336.0)
    # savings at 0.75 µs/B: a 48+48=96, b 75, c 75, d 3+3=6; ÷ √size: a 12, b 7.5, c 7.5, d 3
    order = [p.buffer_names[b] for b in xla_order(p)]
    assert order == ["a", "b", "c", "d"]
    # greedy: a at [0,64) for both ops leaves a 40-byte gap: b and c (100) no longer fit,
    # d (4) does → saves 96 + 6 → 336 − 102 = 234
    h = xla_greedy(p)
    assert h.time_us == pytest.approx(234.0)
    assert h.placement.to_dict(p) == {"a": ("fast", 0), "d": ("fast", 64)}
    # optimum: b [0,100) during op0, c [0,100) during op1, d [100,104) → saves 75+75+6 = 156;
    # a with anything but d exceeds 104 bytes, so nothing beats 336 − 156 = 180
    hand = Placement.from_dict(p, {"b": 0, "c": 0, "d": 100})
    assert simulate(p, hand).total_time_us == pytest.approx(180.0)
    opt = cpsat_optimum(p, time_limit_s=5, num_workers=1)
    assert opt.status == "OPTIMAL" and opt.gap == 0.0
    assert opt.time_us == pytest.approx(180.0)


def test_compute_bound_op_gains_nothing():
    g = hand_graph([("A", ("x",), ("y",), 500)], {"x": 100, "y": 100}, {"y": Role.OUTPUT})
    p = build_instance(g, capacity_bytes=200, system=UNIT)
    # compute 500 µs > memory 200 µs: time 500 whatever the placement
    assert p.all_slow_time_us == pytest.approx(500.0)
    assert simulate(p, Placement.from_dict(p, {"x": 0, "y": 100})).total_time_us == pytest.approx(500.0)
    h = xla_greedy(p)  # memory-boundedness min(75, 200 − 500) < 0: left slow
    assert h.placement.to_dict(p) == {} and h.time_us == pytest.approx(500.0)


def test_prefetch_frees_memory_before_first_use():
    # all slow: op0 60+4 = 64; op1, op2 compute 1000 (memory 8); op3 4+100+4 = 108 → 2172
    g = prefetch_graph()
    p0 = build_instance(g, capacity_bytes=100, system=UNIT)
    assert p0.all_slow_time_us == pytest.approx(2172.0)
    # no prefetch: w resident from op0 fills all 100 bytes through op3 → saves 75 at op3;
    # without w the best is x 45 + a/c/y 3 each = 54 < 75 → optimum 2097
    assert cpsat_optimum(p0, time_limit_s=5, num_workers=1).time_us == pytest.approx(2097.0)
    # prefetch k=2: w is copied during ops 1..2 (+50 µs of slow traffic each, hidden under
    # 1000 µs of compute) and occupies memory from op1; x fits at op0: saves 45 + 75 → 2052
    p = build_instance(g, capacity_bytes=100, system=UNIT, prefetch_window=2)
    w = p.index("w")
    assert p.pf_start[w] == 1 and not p.prefetchable[p.index("x")]
    hand = Placement.from_dict(p, {"w": ("prefetch", 0), "x": 0})
    r = simulate(p, hand)
    assert r.valid and r.total_time_us == pytest.approx(2052.0)
    assert list(r.op_memory_us) == pytest.approx([19.0, 58.0, 58.0, 33.0])
    # the greedy keeps w resident (it fits) → 2097; CP-SAT finds the prefetch
    assert xla_greedy(p).time_us == pytest.approx(2097.0)
    opt = cpsat_optimum(p, time_limit_s=5, num_workers=1)
    assert opt.status == "OPTIMAL" and opt.time_us == pytest.approx(2052.0)
    # and the env reaches it: prefetch w at candidate 0, then x fast at candidate 0
    env = MallocGameEnv(problem=p, n_offsets=4)
    ret, t = replay(env, opt.placement)
    assert t == pytest.approx(2052.0)
    assert ret * env.reward_scale_us == pytest.approx(2172.0 - 2052.0)


def test_prefetch_copy_costs_time_when_memory_bound():
    # no compute anywhere: w's copy adds 50 µs to ops 1 and 2, while it saves 75 at op3
    g = prefetch_graph()
    g = Graph(g.name, tuple(Op(o.name, o.op_type, o.inputs, o.outputs, {}, 0, 0, 0, 0)
                            for o in g.ops), g.tensors, g.inputs, g.outputs)
    p = build_instance(g, capacity_bytes=100, system=UNIT, prefetch_window=2)
    st = AllocationState(p)
    assert st.delta_time(p.index("w"), PREFETCH) == pytest.approx(50 + 50 - 75)
    assert st.delta_time(p.index("w"), FAST) == pytest.approx(-75)


# ---- validation -----------------------------------------------------------------------------
def test_overlapping_placement_is_rejected():
    p = build_instance(chain(), capacity_bytes=200, system=UNIT)
    bad = Placement.from_dict(p, {"x": 0, "y": 50})  # both live at op0, [0,100) ∩ [50,150)
    r = simulate(p, bad)
    assert not r.valid and len(r.violations) == 1
    assert "'x'" in r.violations[0] and "'y'" in r.violations[0] and "overlap" in r.violations[0]
    with pytest.raises(PlacementError, match="overlap in fast memory during ops 0..0"):
        validate(p, bad)
    # x and z are never live together: the same addresses are fine
    validate(p, Placement.from_dict(p, {"x": 0, "z": 0}))


def test_out_of_capacity_and_bad_prefetch_are_rejected():
    p = build_instance(chain(), capacity_bytes=150, system=UNIT)
    with pytest.raises(PlacementError, match=r"outside fast memory \[0, 150\)"):
        validate(p, Placement.from_dict(p, {"y": 100}))
    with pytest.raises(PlacementError, match="cannot be prefetched"):
        validate(p, Placement.from_dict(p, {"y": ("prefetch", 0)}))
    with pytest.raises(PlacementError, match="3 entries"):
        simulate(p, Placement(np.zeros(2, np.int8), np.zeros(2, np.int64)))
    st = AllocationState(p)
    st.place(p.index("y"), FAST, 0)
    with pytest.raises(PlacementError, match="does not fit"):
        st.place(p.index("x"), FAST, 50)


# ---- the optimum is never worse than the heuristic -----------------------------------------------
def random_graph(seed: int, n_ops: int = 8) -> Graph:
    """A chain with skip connections: op i reads the previous output and sometimes an older one."""
    rng = np.random.default_rng(seed)
    ops, sizes = [], {"t0": int(rng.integers(8, 100))}
    for i in range(n_ops):
        ins = [f"t{i}"]
        if i >= 2 and rng.random() < 0.5:
            ins.append(f"t{int(rng.integers(0, i - 1))}")
        if rng.random() < 0.4:
            sizes[f"w{i}"] = int(rng.integers(8, 100))
            ins.append(f"w{i}")
        sizes[f"t{i + 1}"] = int(rng.integers(8, 100))
        ops.append((f"op{i}", tuple(ins), (f"t{i + 1}",), int(rng.integers(0, 300))))
    roles = {k: Role.WEIGHT for k in sizes if k.startswith("w")}
    roles[f"t{n_ops}"] = Role.OUTPUT
    return hand_graph(ops, sizes, roles, name=f"random{seed}")


@pytest.mark.parametrize("seed", range(6))
def test_cpsat_never_worse_than_greedy(seed):
    for window in (0, 2):
        p = build_instance(random_graph(seed), capacity_fraction=0.4, system=UNIT,
                          prefetch_window=window)
        h = xla_greedy(p)
        opt = cpsat_optimum(p, time_limit_s=5, num_workers=1)
        assert simulate(p, opt.placement).valid
        assert opt.time_us <= h.time_us + 1e-9
        assert opt.bound_us is not None and opt.bound_us <= opt.time_us + 1e-9
        if opt.status == "OPTIMAL":
            assert opt.gap == 0.0


# ---- the env -------------------------------------------------------------------------------------
def replay(env: MallocGameEnv, placement: Placement) -> tuple[float, float]:
    """Play ``placement`` in ``env`` from reset: (episode return, final time in µs)."""
    ret, done, info = replay_episode(env, actions_for(env, placement))
    assert done
    return ret, float(info["time_us"])


def play_random(env: MallocGameEnv, seed: int) -> tuple[float, dict]:
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    total, done = 0.0, False
    while not done:
        a = int(rng.choice(np.flatnonzero(info["action_mask"])))
        assert env.action_masks()[a]
        _, r, done, trunc, info = env.step(a)
        total += r
        assert not trunc
    return total, info


@pytest.mark.parametrize("window", [0, 2])
def test_episode_return_is_all_slow_minus_final(window):
    env = MallocGameEnv(random_graph(3), capacity_fraction=0.5, prefetch_window=window, **UNIT_KW)
    for seed in range(5):
        ret, info = play_random(env, seed)
        final = simulate(env.problem, env.placement)
        assert final.valid
        assert info["time_us"] == pytest.approx(final.total_time_us)
        assert ret * env.reward_scale_us == pytest.approx(env.all_slow_time_us - final.total_time_us)
        assert info["step"] == env.n_buffers


def test_env_on_real_graph_return_and_replay():
    env = MallocGameEnv("resnet18", capacity_fraction=0.1, prefetch_window=3)
    ret, _ = play_random(env, 0)
    final = simulate(env.problem, env.placement)
    assert final.valid
    assert ret * env.reward_scale_us == pytest.approx(env.all_slow_time_us - final.total_time_us)
    h = xla_greedy(env.problem)
    ret, t = replay(env, h.placement)
    assert t == pytest.approx(h.time_us)
    assert env.placement.same_as(h.placement)
    assert ret == pytest.approx(h.improvement)
    # best fit is candidate 0, so the greedy (without prefetch fallbacks) is "always action 1"
    assert set(actions_for(env, h.placement)) <= {0, 1, 1 + env.n_offsets}


def test_greedy_trap_in_env():
    env = MallocGameEnv(greedy_trap(), capacity_bytes=104, n_offsets=4, **UNIT_KW)
    assert env.action_space.n == 5
    opt = cpsat_optimum(env.problem, time_limit_s=5, num_workers=1, n_offsets=4)
    assert opt.replayable
    ret, t = replay(env, opt.placement)
    assert t == pytest.approx(180.0) and ret == pytest.approx(156.0 / 336.0)
    # a non-candidate offset cannot be replayed
    odd = Placement.from_dict(env.problem, {"b": 0, "c": 2})
    with pytest.raises(NotReplayableError, match="not among"):
        actions_for(env, odd)


def test_check_env_gymnasium_and_sb3():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for window in (0, 2):
        check_env(MallocGameEnv(random_graph(1), capacity_fraction=0.5, prefetch_window=window,
                                **UNIT_KW), skip_render_check=True)
        sb3_check_env(MallocGameEnv(random_graph(1), capacity_fraction=0.5,
                                    prefetch_window=window, **UNIT_KW))


def test_observation_contents():
    env = MallocGameEnv(greedy_trap(), capacity_bytes=104, n_offsets=4, time_bins=2,
                        address_bins=4, **UNIT_KW)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.current_buffer == env.problem.index("a")
    assert obs["candidates"][:2] == pytest.approx([0.0, 1.0])  # offset 0, gap = all memory
    assert obs["candidates"][2:4] == pytest.approx([40 / 104, 1.0])  # high end: 104 − 64
    assert list(info["action_mask"]) == [True, True, True, False, False]
    obs, r, *_ = env.step(1)  # a at [0,64) over both ops → saves 96 µs
    assert r == pytest.approx(96 / 336)
    occ = obs["occupancy"].reshape(2, 4)
    # a covers address bins [0,26), [26,52) fully and 12 of [52,78) bytes, during both ops
    assert occ[:, 0] == pytest.approx([1, 1]) and occ[:, 2] == pytest.approx([12 / 26] * 2)
    assert obs["progress"] == pytest.approx([0.25, 96 / 336])


# ---- bad input and invalid actions -------------------------------------------------------------
def test_capacity_errors():
    for kw in ({"capacity_bytes": 0}, {"capacity_fraction": 0.0}, {"capacity_bytes": -5},
               {"capacity_bytes": 10, "capacity_fraction": 0.5}):
        with pytest.raises(CapacityError) as e:
            MallocGameEnv(chain(), **kw)
        assert isinstance(e.value, MlsysgymError) and "\n" not in str(e.value)
    with pytest.raises(CapacityError, match="give a fast-memory capacity"):
        build_instance(chain())


def test_graph_without_buffers():
    empty = Graph("empty", (), {}, (), ())
    with pytest.raises(NoBuffersError, match="no ops"):
        MallocGameEnv(empty, capacity_bytes=100)
    unknown = Graph("unknown", (Op("A", "Custom", ("x",), ("y",), {}, 0, 0, 0, 0),),
                    {"x": Tensor("x", None, "float32", 4, Role.INPUT),
                     "y": Tensor("y", None, "float32", 4, Role.OUTPUT)}, ("x",), ("y",))
    with pytest.raises(NoBuffersError, match="no buffer of known non-zero size"):
        MallocGameEnv(unknown, capacity_bytes=100)


def test_buffer_larger_than_fast_memory_is_always_masked():
    env = MallocGameEnv(greedy_trap(), capacity_bytes=80, n_offsets=4, **UNIT_KW)
    _, info = env.reset(seed=0)
    seen = set()
    done = False
    while not done:
        name = env.problem.buffer_names[env.current_buffer]
        if name in ("b", "c"):  # 100 bytes > 80
            assert list(info["action_mask"]) == [True] + [False] * 4
            seen.add(name)
        _, _, done, _, info = env.step(int(np.flatnonzero(info["action_mask"])[-1]))
    assert seen == {"b", "c"}
    assert xla_greedy(env.problem).placement.mode[env.problem.index("b")] == SLOW


def test_invalid_actions():
    env = MallocGameEnv(greedy_trap(), capacity_bytes=104, n_offsets=4, **UNIT_KW)
    env.reset(seed=0)
    env.step(1)  # a at 0
    assert env.problem.buffer_names[env.current_buffer] == "b"
    _, r, _, _, info = env.step(2)  # masked: b fits nowhere
    assert r == pytest.approx(-env.invalid_penalty) and info["invalid_actions"] == 1
    assert env.placement.mode[env.problem.index("b")] == SLOW
    with pytest.raises(InvalidActionError, match="must be in"):
        env.step(99)
    strict = MallocGameEnv(greedy_trap(), capacity_bytes=104, n_offsets=4,
                           invalid_action="raise", **UNIT_KW)
    strict.reset(seed=0)
    strict.step(1)
    with pytest.raises(InvalidActionError, match="masked"):
        strict.step(2)
    for _ in range(3):
        strict.step(0)
    with pytest.raises(InvalidActionError, match="episode is over"):
        strict.step(0)


@pytest.mark.slow
def test_maskable_ppo_runs():
    from sb3_contrib import MaskablePPO

    env = MallocGameEnv(random_graph(2, n_ops=12), capacity_fraction=0.4, prefetch_window=2,
                        **UNIT_KW)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0,
                        device="cpu")
    model.learn(total_timesteps=256)
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        a, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, info = env.step(int(a))
    assert info["invalid_actions"] == 0
    assert simulate(env.problem, env.placement).valid


def test_memory_evaluator_resolves_by_name_and_scores_placements():
    """``"memory"`` through the evaluator registry: a placement's time equals simulate()'s;
    an overlapping placement is invalid (time inf), not an exception."""
    from mlsysgym.core.evaluator import resolve_evaluator
    from mlsysgym.ir import zoo
    from mlsysgym.simulators.memory import Placement, build_instance, simulate

    problem = build_instance(zoo.load("alexnet"), capacity_fraction=0.25)
    ev = resolve_evaluator("memory")
    big = int(np.argmax(np.where(problem.size <= problem.capacity_bytes, problem.size, -1)))
    name = problem.buffer_names[big]  # the largest buffer that fits alone
    fast = {name: 0}
    out = ev.evaluate([{"fast": fast}, {}], problem)
    expected = simulate(problem, Placement.from_dict(problem, fast)).total_time_us
    assert out["time_us"][0] == pytest.approx(expected)
    assert out["time_us"][1] == pytest.approx(problem.all_slow_time_us)
    assert out["n_fast"].tolist() == [1.0, 0.0] and out["valid"].tolist() == [1.0, 1.0]
    # the same buffer placed beyond the capacity is invalid
    bad = ev.evaluate([{"fast": {name: problem.capacity_bytes}}], problem)
    assert bad["valid"][0] == 0.0 and np.isinf(bad["time_us"][0])
