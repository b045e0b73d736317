"""Kernel scheduling: multi-core simulator, KernelSchedulingEnv, HEFT / CPOP / CP-SAT baselines.

Every makespan asserted below is worked out by hand in the comments.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from mlsysgym.agents.scheduling_baselines import (
    ReplayError,
    cpop,
    cpsat_schedule,
    heft,
    schedule_to_actions,
)
from mlsysgym.envs.kernel_scheduling import InvalidActionError, KernelSchedulingEnv
from mlsysgym.ir import Graph, GraphCycleError, MlsysgymError
from mlsysgym.ir.graph import Op
from mlsysgym.simulators.multicore import (
    PRESETS,
    EmptyGraphError,
    InvalidScheduleError,
    MulticoreEvaluator,
    Platform,
    PlatformError,
    Schedule,
    SchedulingInstance,
    UnsupportedOpError,
    build_instance,
    critical_path_lb,
    load_platform,
    op_class,
    random_instance,
    schedule_from_order,
    simulate,
    validate,
)
from onnx import helper
from onnx_builders import conv_relu, model, value

INF = math.inf
CP_LIMIT_S = 5.0


def dag(durations, edges, comm, name="dag") -> SchedulingInstance:
    """A problem from an op × PE time table, (src, dst) edges and per-edge cross-PE costs."""
    d = np.asarray(durations, dtype=float)
    n, p = d.shape
    src = np.array([e[0] for e in edges], dtype=np.int64)
    dst = np.array([e[1] for e in edges], dtype=np.int64)
    return SchedulingInstance(
        name=name, op_names=tuple(f"op{i}" for i in range(n)), op_types=("Op",) * n,
        pe_names=tuple(f"pe{k}" for k in range(p)), durations_us=d, edge_src=src, edge_dst=dst,
        edge_bytes=np.zeros(len(edges)), edge_comm_us=np.broadcast_to(comm, (len(edges),)),
        active_power_w=np.ones(p), idle_power_w=np.full(p, 0.5))


def generic_platform(n_pes: int) -> dict:
    return {"name": f"generic{n_pes}", "pes": [{"name": "pe", "count": n_pes, "kind": "cpu",
            "throughput_gflops": {"*": 1.0}, "bandwidth_gbps": 1.0, "active_power_w": 1.0,
            "idle_power_w": 0.5}], "interconnect": {"bandwidth_gbps": 1.0}}


# Hand-checked instances: (problem, optimal makespan, HEFT makespan)
# 1. chain a(2) → b(3) → c(4) on 2 identical PEs, transfer 5: splitting only adds transfers,
#    so optimum = HEFT = 2 + 3 + 4 = 9.
CHAIN = (dag([[2, 2], [3, 3], [4, 4]], [(0, 1), (1, 2)], 5.0, "chain"), 9.0, 9.0)
# 2. fork-join a(1) → {b(4), c(4)} → d(1) on 2 identical PEs, transfer 1 on every edge.
#    a pe0 [0,1], b pe0 [1,5], c pe1 [1+1=2, 6], d pe1 at max(6, 5+1) = 6 → makespan 7.
#    Lower bound: b, c on one PE ≥ 1+4+4+1 = 10; else the one not on a's PE ends ≥ 1+1+4 = 6
#    and d starts after it → ≥ 7. HEFT (ranks a 8, b = c 6, d 1) finds the same 7.
FORK_JOIN = (dag([[1, 1], [4, 4], [4, 4], [1, 1]], [(0, 1), (0, 2), (1, 3), (2, 3)], 1.0, "fork"),
             7.0, 7.0)
# 3. conv a → relu b; "cpu" runs a in 10, b in 1; "npu" runs a in 2 and cannot run b; transfer 3.
#    a npu [0,2], b cpu [2+3=5, 6] → 6 (all on cpu: 10 + 1 = 11).
HETERO = (dag([[10, 2], [1, INF]], [(0, 1)], 3.0, "hetero"), 6.0, 6.0)
# 4. five independent ops 3, 3, 2, 2, 2 on 2 identical PEs: total 12 → optimum ≥ 6, reached by
#    {3, 3} | {2, 2, 2}. HEFT places by decreasing rank at earliest finish: 3 | 3, 2 → 5 | 3,
#    2 → 5 | 5, 2 → 7 | 5 → makespan 7 (strictly worse than the optimum).
LPT = (dag([[3, 3], [3, 3], [2, 2], [2, 2], [2, 2]], [], 0.0, "independent"), 6.0, 7.0)

HAND = [CHAIN, FORK_JOIN, HETERO, LPT]
HAND_IDS = ["chain", "fork_join", "hetero", "independent"]


# ---- platform and problem construction ------------------------------------------------------


def test_presets_load_and_soc_npu_shape():
    for name in PRESETS:
        assert load_platform(name).name == name
    soc = load_platform("soc_npu")
    kinds = [pe.kind for pe in soc.pes]
    assert kinds == ["cpu_big"] * 2 + ["cpu_little"] * 4 + ["npu", "dsp"]
    assert not soc.pes[6].can_run("Reshape") and soc.pes[0].can_run("Reshape")


def test_platform_round_trips_through_json_and_yaml(tmp_path):
    plat = load_platform("soc_npu")
    (tmp_path / "p.json").write_text(json.dumps(plat.to_dict()))
    import yaml

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(plat.to_dict()))
    assert load_platform(tmp_path / "p.json") == plat
    assert load_platform(str(tmp_path / "p.yaml")) == plat


def test_op_classes():
    assert [op_class(t) for t in ("Conv", "Gemm", "Relu", "Softmax", "MaxPool", "Reshape", "Foo")] \
        == ["conv", "matmul", "elementwise", "normalization", "pool", "data_movement", "other"]


TWO_PE = {
    "name": "cpu_npu",
    "pes": [
        # 2 GFLOP/s = 2000 FLOP/us, 1 GB/s = 1000 B/us, 1 us per op
        {"name": "cpu", "kind": "cpu_big", "throughput_gflops": {"*": 2.0}, "bandwidth_gbps": 1.0,
         "active_power_w": 2.0, "idle_power_w": 0.5, "overhead_us": 1.0},
        # convs only: 20000 FLOP/us, 10000 B/us, 0.5 us per op
        {"name": "npu", "kind": "npu", "throughput_gflops": {"conv": 20.0}, "bandwidth_gbps": 10.0,
         "active_power_w": 4.0, "idle_power_w": 1.0, "overhead_us": 0.5}],
    # 1 GB/s, 1 us latency
    "interconnect": {"bandwidth_gbps": 1.0, "latency_us": 1.0, "energy_pj_per_byte": 10.0},
}


def test_roofline_times_transfers_and_optimum_on_conv_relu():
    prob = build_instance(Graph.from_onnx(conv_relu()), TWO_PE)
    # conv: 7920 FLOPs, 1216 + 576 bytes. cpu: 1 + max(7920/2000, 1792/1000) = 1 + 3.96 = 4.96;
    #       npu: 0.5 + max(7920/20000, 1792/10000) = 0.5 + 0.396 = 0.896.
    # relu: 144 FLOPs, 576 + 576 bytes. cpu: 1 + max(0.072, 1.152) = 2.152; npu: cannot run.
    np.testing.assert_allclose(prob.durations_us, [[4.96, 0.896], [2.152, INF]])
    # edge conv → relu carries y (1·4·6·6 floats = 576 B): 1 us + 576 B / 1000 B/us = 1.576 us
    assert prob.edge_src.tolist() == [0] and prob.edge_dst.tolist() == [1]
    np.testing.assert_allclose(prob.edge_comm_us, [1.576])
    # optimum: conv on npu [0, 0.896], relu on cpu [0.896 + 1.576 = 2.472, 4.624] → 4.624
    # (all on cpu: 4.96 + 2.152 = 7.112)
    res = cpsat_schedule(prob, time_limit_s=CP_LIMIT_S)
    assert res.optimal and res.exact_resolution
    assert res.makespan_us == pytest.approx(4.624)
    assert heft(prob).makespan_us(prob) == pytest.approx(4.624)
    run = simulate(prob, res.schedule)
    # busy: cpu 2.152, npu 0.896; energy = 2·2.152 + 4·0.896 (active) + 0.5·(4.624 − 2.152)
    #       + 1·(4.624 − 0.896) (idle) + 576 B · 10 pJ/B = 1e-6·5760 µJ
    np.testing.assert_allclose(run.busy_us, [2.152, 0.896])
    np.testing.assert_allclose(run.utilization, [2.152 / 4.624, 0.896 / 4.624])
    expect = 2 * 2.152 + 4 * 0.896 + 0.5 * (4.624 - 2.152) + 1.0 * (4.624 - 0.896) + 5760e-6
    assert run.energy_uj == pytest.approx(expect)
    assert run.transferred_bytes == 576


def test_pluggable_op_time_replaces_the_roofline_of_one_pe():
    g = Graph.from_onnx(conv_relu())
    prob = build_instance(g, TWO_PE, op_time={"npu": lambda graph, pe: np.full(len(graph.ops), 7.0)})
    np.testing.assert_allclose(prob.durations_us[:, 1], [7.0, INF])  # relu stays unsupported
    np.testing.assert_allclose(prob.durations_us[:, 0], [4.96, 2.152])


def test_accelerator_model_as_npu_time():
    pytest.importorskip("mlsysgym.simulators.accelerator")
    from mlsysgym.ir import zoo
    from mlsysgym.simulators.multicore import accelerator_op_times

    g = zoo.load("resnet18")
    base = build_instance(g, "soc_npu")
    acc = build_instance(g, "soc_npu", op_time={"npu": accelerator_op_times()})
    npu = base.pe_names.index("npu")
    conv = np.array([t == "Conv" for t in base.op_types])
    assert np.all(np.isfinite(acc.durations_us[conv, npu]))
    assert not np.allclose(acc.durations_us[conv, npu], base.durations_us[conv, npu])
    np.testing.assert_array_equal(np.isfinite(acc.durations_us), np.isfinite(base.durations_us))
    assert simulate(acc, heft(acc)).valid


# ---- hand-checked optima --------------------------------------------------------------------


@pytest.mark.parametrize(("case", "optimum", "heft_ms"), HAND, ids=HAND_IDS)
def test_hand_checked_optimum_and_heft(case, optimum, heft_ms):
    res = cpsat_schedule(case, time_limit_s=CP_LIMIT_S)
    assert res.status == "OPTIMAL" and res.optimal and res.gap == pytest.approx(0.0)
    assert res.makespan_us == pytest.approx(optimum)
    assert heft(case).makespan_us(case) == pytest.approx(heft_ms)
    assert cpop(case).makespan_us(case) >= optimum - 1e-9
    assert critical_path_lb(case) <= optimum + 1e-9
    for sched in (res.schedule, heft(case), cpop(case)):
        assert validate(case, sched).valid


def test_cpsat_never_worse_than_heft_or_cpop():
    for seed in range(6):
        prob = random_instance(12, 3, seed=seed)
        res = cpsat_schedule(prob, time_limit_s=CP_LIMIT_S)
        h, c = heft(prob).makespan_us(prob), cpop(prob).makespan_us(prob)
        assert res.makespan_us <= h + 1e-9 and res.makespan_us <= c + 1e-9
        assert res.lower_bound_us <= res.makespan_us + 1e-9
        assert critical_path_lb(prob) <= res.makespan_us + 1e-9
        if res.optimal:
            assert res.gap == pytest.approx(0.0)


def test_cpsat_on_a_real_graph_reports_status_and_gap():
    from mlsysgym.ir import zoo

    prob = build_instance(zoo.load("alexnet"), "soc_npu")
    res = cpsat_schedule(prob, time_limit_s=CP_LIMIT_S)
    assert res.status in ("OPTIMAL", "FEASIBLE")
    assert res.makespan_us <= res.heft_makespan_us + 1e-9
    # the lower bound is at least the critical-path bound (9017.3 vs HEFT 9345.9), so the gap is
    # below 1 − 9017.3 / 9345.9 = 3.5% even if the solver stops early
    assert 0.0 <= res.gap < 0.05
    assert simulate(prob, res.schedule).valid


# ---- simulator validity ---------------------------------------------------------------------


def test_simulator_rejects_broken_dependency():
    prob, _, _ = FORK_JOIN
    good = schedule_from_order(prob, [0, 0, 1, 1])
    # a pe0 [0,1], b pe0 [1,5], c pe1 [2,6], d pe1 [max(6, 5+1) = 6, 7]
    np.testing.assert_allclose(good.start_us, [0, 1, 2, 6])
    assert simulate(prob, good).makespan_us == 7
    # c on pe1 at 1.5: its input from a (pe0, ends 1) arrives at 1 + 1 = 2 → violation
    bad = Schedule(good.assignment, [0, 1, 1.5, 6])
    rep = validate(prob, bad)
    assert not rep.valid and rep.n_dependency == 1 and rep.n_overlap == 0
    assert "'op2' starts at 1.5 us before its input from 'op0'" in rep.violations[0]
    with pytest.raises(InvalidScheduleError, match="before its input") as e:
        simulate(prob, bad)
    assert "\n" not in str(e.value)
    assert not simulate(prob, bad, strict=False).valid


def test_simulator_rejects_overlap_on_a_pe():
    prob, _, _ = LPT
    # op0 [0,3] and op1 [2,5] both on pe0 overlap
    bad = Schedule([0, 0, 1, 1, 1], [0, 2, 0, 2, 4])
    rep = validate(prob, bad)
    assert not rep.valid and rep.n_overlap == 1 and rep.n_dependency == 0
    assert rep.violations[0] == "ops 'op0' and 'op1' overlap on PE 'pe0' at 2 us"
    with pytest.raises(InvalidScheduleError, match="overlap"):
        simulate(prob, bad)
    # back to back is fine: op1 at 3
    assert validate(prob, Schedule([0, 0, 1, 1, 1], [0, 3, 0, 2, 4])).valid


def test_simulator_rejects_unsupported_placement_and_bad_order():
    prob, _, _ = HETERO
    rep = validate(prob, Schedule([0, 1], [0, 20]))  # relu on the npu
    assert not rep.valid and "cannot run on PE 'pe1'" in rep.violations[0]
    with pytest.raises(InvalidScheduleError, match="cannot run"):
        schedule_from_order(prob, [0, 1])
    chain, _, _ = CHAIN
    with pytest.raises(InvalidScheduleError, match="deadlock"):
        schedule_from_order(chain, [0, 0, 0], order=[2, 1, 0])


# ---- bad input --------------------------------------------------------------------------------


def one_line(e: pytest.ExceptionInfo) -> None:
    assert isinstance(e.value, MlsysgymError) and "\n" not in str(e.value)


def test_platform_without_a_pe_for_some_op_type():
    npu_only = {"name": "npu_only", "pes": [TWO_PE["pes"][1]], "interconnect": {"bandwidth_gbps": 1}}
    with pytest.raises(UnsupportedOpError, match="'Relu'") as e:
        build_instance(Graph.from_onnx(conv_relu()), npu_only)
    one_line(e)
    with pytest.raises(UnsupportedOpError):
        KernelSchedulingEnv(Graph.from_onnx(conv_relu()), platform=npu_only)


def cyclic_graph() -> Graph:
    """a reads t2 and writes t1; b reads t1 and writes t2 (a hand-built Graph, not via ONNX)."""
    def op(name, i, o):
        return Op(name, "Relu", (i,), (o,), {}, 0, 4, 4, 4)
    return Graph("cyclic", (op("a", "t2", "t1"), op("b", "t1", "t2")), {}, (), ())


def test_cycles_are_rejected():
    with pytest.raises(GraphCycleError, match="cycle") as e:
        build_instance(cyclic_graph(), "big_little")
    one_line(e)
    with pytest.raises(GraphCycleError):
        KernelSchedulingEnv(cyclic_graph(), platform="big_little")
    with pytest.raises(GraphCycleError):
        dag([[1], [1]], [(0, 1), (1, 0)], 0.0)
    onnx_cycle = model([helper.make_node("Relu", ["b"], ["a"], name="r1"),
                        helper.make_node("Relu", ["a"], ["b"], name="r2")],
                       [value("x", [1])], [value("b", [1])])
    with pytest.raises(GraphCycleError):
        Graph.from_onnx(onnx_cycle)


def test_empty_graph_and_bad_platforms():
    empty = Graph("empty", (), {}, (), ())
    with pytest.raises(EmptyGraphError, match="no ops") as e:
        build_instance(empty, "soc_npu")
    one_line(e)
    with pytest.raises(EmptyGraphError):
        KernelSchedulingEnv(empty)
    with pytest.raises(PlatformError, match="unknown platform") as e:
        load_platform("no_such_soc")
    one_line(e)
    with pytest.raises(PlatformError, match="no processing elements"):
        Platform.from_dict({"name": "x", "pes": [], "interconnect": {"bandwidth_gbps": 1}})
    with pytest.raises(PlatformError, match="unknown PE field"):
        Platform.from_dict({"pes": [{"name": "a", "speed": 1}]})


# ---- env ---------------------------------------------------------------------------------------


def test_check_env_gymnasium_and_sb3():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(KernelSchedulingEnv("resnet18", "soc_npu", render_mode="ansi"), skip_render_check=False)
    sb3_check_env(KernelSchedulingEnv(FORK_JOIN[0], generic_platform(2)), warn=False)


@pytest.mark.parametrize("scale", [None, 1.0])
def test_return_identity(scale):
    """Episode return = (LB_0 − makespan) · reward_scale, with reward_scale = 1 / LB_0 by default."""
    env = KernelSchedulingEnv("resnet18", "soc_npu", reward_scale=scale)
    rng = np.random.default_rng(0)
    for ep in range(3):
        _, info = env.reset(seed=ep)
        lb0, total, done, steps = env.initial_lower_bound_us, 0.0, False, 0
        while not done:
            mask = info["action_mask"]
            assert np.array_equal(mask, env.action_masks())
            _, r, done, trunc, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            assert r <= 0 and not trunc
            total += r
            steps += 1
        assert steps == env.problem.n_ops
        s = 1.0 / lb0 if scale is None else scale
        assert total == pytest.approx((lb0 - env.makespan_us) * s, rel=1e-9, abs=1e-9)
        assert env.lower_bound_us == pytest.approx(env.makespan_us)
        assert simulate(env.problem, env.schedule()).makespan_us == pytest.approx(env.makespan_us)


def test_observation_layout():
    env = KernelSchedulingEnv(FORK_JOIN[0], generic_platform(2), window=2, max_ops=6, max_edges=5)
    obs, info = env.reset(seed=0)
    assert obs["ops"].shape == (6, 10 + 3 * 2) and obs["op_mask"].tolist() == [1, 1, 1, 1, 0, 0]
    ei = obs["edge_index"][:, obs["edge_mask"] > 0]
    assert sorted(map(tuple, ei.T.tolist())) == [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert obs["window"].tolist() == [0, 6]  # only a is ready; 6 = empty slot
    assert info["action_mask"].tolist() == [True, True, False, False]
    obs, _, *_, info = env.step(1)  # a on pe1 at [0, 1]
    assert info["op"] == 0 and info["pe"] == 1 and info["finish_us"] == 1.0
    assert obs["window"].tolist() == [1, 2] and obs["ops"][0, 6] == 1.0  # scheduled flag
    assert obs["ops"][0, 10 + 2 * 2 + 1] == 1.0  # assigned to pe1
    np.testing.assert_allclose(obs["pes"][1, 0] * critical_path_lb(env.problem), 1.0)


def test_invalid_actions():
    env = KernelSchedulingEnv(HETERO[0], generic_platform(2), invalid_action="raise")
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step(3)  # empty window slot
    env = KernelSchedulingEnv(HETERO[0], generic_platform(2))
    env.reset(seed=0)
    env.step(1)  # conv on pe1 (the "npu")
    _, _, done, _, info = env.step(1)  # relu cannot run on pe1 → first valid action
    assert info["invalid_action"] and info["pe"] == 0 and done
    with pytest.raises(InvalidActionError):
        env.step(0)


def play(env: KernelSchedulingEnv, actions) -> float:
    """The return of ``actions`` from reset (the env is left at the episode's end)."""
    env.reset()
    return sum(env.step(a)[1] for a in actions)


@pytest.mark.parametrize(("case", "optimum", "heft_ms"), HAND, ids=HAND_IDS)
def test_replay_baselines_in_env(case, optimum, heft_ms):
    env = KernelSchedulingEnv(case, generic_platform(case.n_pes), reward_scale=1.0)
    for sched in (heft(case), cpop(case), cpsat_schedule(case, time_limit_s=CP_LIMIT_S).schedule):
        actions = schedule_to_actions(env, sched)
        assert env.makespan_us == pytest.approx(sched.makespan_us(case))
        ret = play(env, actions)
        assert env.makespan_us == pytest.approx(sched.makespan_us(case))
        assert ret == pytest.approx(env.initial_lower_bound_us - env.makespan_us)


@pytest.mark.parametrize(("case", "optimum", "heft_ms"), HAND, ids=HAND_IDS)
def test_baseline_agents_score_their_schedules_as_episodes(case, optimum, heft_ms):
    from mlsysgym.agents import search
    from mlsysgym.agents.scheduling_problem import SchedulingEpisodes

    problem = SchedulingEpisodes.of(case, generic_platform(case.n_pes))
    lb0 = critical_path_lb(case)
    h = search("heft", problem, 5)
    # one evaluation, the hand-checked HEFT makespan, return = 1 − makespan / LB_0
    assert h.n_evaluations == 1 and h.metrics[0]["makespan_us"] == pytest.approx(heft_ms)
    assert h.best_reward == pytest.approx(1 - heft_ms / lb0)
    c = search("cpop", problem, 5)
    assert c.n_evaluations == 1 and c.metrics[0]["makespan_us"] >= optimum - 1e-9
    ex = search("cpsat", problem, 5, time_limit_s=CP_LIMIT_S)
    # CP-SAT proves the hand optimum; its bound (a reward) is the optimum's return
    assert ex.status == "optimal" and ex.metrics[0]["makespan_us"] == pytest.approx(optimum)
    assert ex.bound == pytest.approx(1 - optimum / lb0) and ex.best_reward == pytest.approx(ex.bound)
    assert ex.info["lower_bound_us"] == pytest.approx(optimum)


def test_replay_on_zoo_graph():
    from mlsysgym.ir import zoo

    g = zoo.load("resnet18")
    env = KernelSchedulingEnv(g, "soc_npu")
    prob = build_instance(g, "soc_npu")
    for sched in (heft(prob), cpop(prob)):
        schedule_to_actions(env, sched)
        assert env.makespan_us == pytest.approx(sched.makespan_us(prob))


def test_replay_outside_window_is_a_clear_error():
    case = LPT[0]  # 5 independent ops, all ready at once
    env = KernelSchedulingEnv(case, generic_platform(2), window=1)
    sched = heft(case)
    with pytest.raises(ReplayError, match="window") as e:
        schedule_to_actions(env, sched, order=[4, 3, 2, 1, 0])
    one_line(e)


def test_multiple_workloads_share_one_space():
    env = KernelSchedulingEnv([CHAIN[0], FORK_JOIN[0]], generic_platform(2))
    assert env.max_ops == 4
    seen = set()
    for seed in range(8):
        env.reset(seed=seed)
        seen.add(env.problem.name)
    assert seen == {"chain", "fork"}


def test_multicore_evaluator():
    prob = FORK_JOIN[0]
    ev = MulticoreEvaluator(generic_platform(2))
    out = ev.evaluate([{"assignment": [0, 0, 1, 1]}, {"assignment": [0, 0, 0, 0]},
                       {"assignment": [0, 0, 1, 1], "order": [3, 2, 1, 0]}], prob)
    # 7 (see FORK_JOIN), 1+4+4+1 = 10 on one PE, and a deadlocking order → invalid
    assert out["makespan_us"].tolist() == [7.0, 10.0, INF]
    assert out["valid"].tolist() == [1.0, 1.0, 0.0]


@pytest.mark.slow
def test_maskable_ppo_runs():
    from sb3_contrib import MaskablePPO

    env = KernelSchedulingEnv("resnet18", "soc_npu")
    agent = MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    agent.learn(128)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action, _ = agent.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, _ = env.step(int(action))
    assert simulate(env.problem, env.schedule()).valid
