"""The learned list scheduler (agents/learned_schedule.py), its shipped policy and online streams."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from mlsysgym.agents import Budget, search
from mlsysgym.agents.learned_schedule import (
    FEATURES,
    PE_FEATURES,
    POLICY_FILE,
    PolicyError,
    SchedulePolicy,
    build_network,
    decode,
    default_policy,
    export_onnx,
    heft_scores,
    online_schedule,
    op_features,
    optimistic_cost,
    policy_scores,
    torch_scores,
)
from mlsysgym.agents.policies import PolicyCardError, PolicyTargetWarning
from mlsysgym.agents.problems import make_problem
from mlsysgym.agents.scheduling_baselines import heft
from mlsysgym.agents.scheduling_problem import generic_platform
from mlsysgym.envs.kernel_scheduling_stream import KernelSchedulingStreamEnv
from mlsysgym.simulators.multicore import Platform, SchedulingInstance, random_instance, validate
from mlsysgym.simulators.streams import (
    arrival_groups,
    build_stream_instance,
    is_online_order,
    job_metrics,
)


def _chain_fork() -> SchedulingInstance:
    """a → b, a → c on two PEs; a: 2/4 µs, b: 3/3, c: 5/1 (µs on pe0/pe1); transfers 10 µs."""
    d = np.array([[2.0, 4.0], [3.0, 3.0], [5.0, 1.0]])
    return SchedulingInstance(
        name="fork", op_names=("a", "b", "c"), op_types=("Op",) * 3, pe_names=("pe0", "pe1"),
        durations_us=d, edge_src=np.array([0, 0]), edge_dst=np.array([1, 2]),
        edge_bytes=np.zeros(2), edge_comm_us=np.array([10.0, 10.0]),
        active_power_w=np.ones(2), idle_power_w=np.zeros(2))


def test_optimistic_cost_by_hand() -> None:
    # sinks b, c: 0. a on pe0: b stays (3) or moves (3 + 10); c stays (5) or moves (1 + 10):
    # max(min(3, 13), min(5, 11)) = 5; a on pe1: max(min(3, 13), min(1, 15)) = 3.
    oct_ = optimistic_cost(_chain_fork())
    np.testing.assert_allclose(oct_, [[5.0, 3.0], [0.0, 0.0], [0.0, 0.0]])


def test_heft_scores_decode_to_heft_and_pe_bias_changes_placement() -> None:
    inst = random_instance(40, 3, seed=2)
    pr, bias = heft_scores(inst)
    assert decode(inst, pr, bias).makespan_us(inst) == pytest.approx(heft(inst).makespan_us(inst))
    # fork (b and c tie at rank 3: b first): a on pe0 (ends 2 < 4); b: pe0 2 → 5, pe1
    # 12 → 15: pe0; c: pe0 5 → 10, pe1 2 + 10 = 12 → 13: pe0. Makespan 10.
    fork = _chain_fork()
    assert decode(fork, *heft_scores(fork)).makespan_us(fork) == pytest.approx(10.0)
    # a bias of +100 µs on pe0 for c pushes c to pe1 (ends 13): makespan 13
    bias = np.zeros((3, 2))
    bias[2, 0] = 100.0
    sched = decode(fork, heft_scores(fork)[0], bias)
    assert sched.assignment.tolist() == [0, 0, 1]
    assert sched.makespan_us(fork) == pytest.approx(13.0)


def test_any_scores_decode_to_valid_schedules() -> None:
    inst = random_instance(60, 4, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        sched = decode(inst, rng.normal(size=inst.n_ops), 50.0 * rng.normal(size=(inst.n_ops, 4)))
        assert validate(inst, sched).valid
        assert sorted(sched.order.tolist()) == list(range(inst.n_ops))


def test_features_shapes_and_scale() -> None:
    inst = random_instance(30, 3, seed=1)
    x, pe = op_features(inst)
    assert x.shape == (30, len(FEATURES)) and pe.shape == (30, 3, len(PE_FEATURES))
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(pe))
    assert x[:, 0].max() == pytest.approx(1.0)  # upward rank in critical-path units
    assert np.all(pe[~inst.capable] == 0.0)


def test_untrained_network_is_heft_order_with_lookahead(tmp_path) -> None:
    inst = random_instance(25, 3, seed=4)
    net = build_network(rounds=2, seed=0)
    pr, bias = torch_scores(net, inst)
    x, pe = op_features(inst)
    np.testing.assert_allclose(pr, x[:, 0], atol=1e-6)
    np.testing.assert_allclose(bias, pe[:, :, 0], atol=1e-6)


@pytest.mark.slow  # a dynamo ONNX export: ~10-20 s
def test_onnx_matches_torch(tmp_path) -> None:
    pytest.importorskip("torch")
    import torch

    net = build_network(rounds=2, seed=3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    path = export_onnx(net, tmp_path / "p.onnx")
    pol = SchedulePolicy.load(path)
    for inst in (random_instance(50, 4, seed=7), random_instance(12, 2, seed=8)):
        pr_t, b_t = torch_scores(net, inst)
        pr_o, b_o = pol.scores(inst)
        np.testing.assert_allclose(pr_o, pr_t, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b_o, b_t, rtol=1e-4, atol=1e-5)
        assert np.abs(b_t).max() > 0 and np.std(pr_t - op_features(inst)[0][:, 0]) > 1e-3


def test_shipped_policy_card_and_schedule() -> None:
    pol = default_policy()
    card = pol.card
    assert card["features"] == list(FEATURES) and card["pe_features"] == list(PE_FEATURES)
    from importlib import resources

    data = (resources.files("mlsysgym.agents.policies") / POLICY_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == card["onnx_sha256"]
    fp = card["fingerprint"]
    assert len(fp["target_id"]) == 12 and fp["machine"]["model_name"]
    assert card["split_version"] and card["cpu_hours"] > 0 and card["platforms"]
    inst = random_instance(80, 4, seed=11)
    sched = pol.schedule(inst)
    assert validate(inst, sched).valid


def test_bad_policy_file_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(PolicyError, match="no scheduling policy"):
        SchedulePolicy.load(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(PolicyError, match="cannot load"):
        SchedulePolicy.load(bad)
    from importlib import resources

    good = tmp_path / "g.onnx"
    good.write_bytes((resources.files("mlsysgym.agents.policies") / POLICY_FILE).read_bytes())
    card = json.loads((resources.files("mlsysgym.agents.policies") / POLICY_FILE)
                      .with_suffix(".json").read_text())
    good.with_suffix(".json").write_text(json.dumps({**card, "features": ["x"]}))
    with pytest.raises(PolicyCardError, match="other features .* retrain it"):
        SchedulePolicy.load(good)
    good.with_suffix(".json").write_text(json.dumps({**card, "onnx_sha256": "0" * 64}))
    with pytest.raises(PolicyCardError, match="sha256 differs"):
        SchedulePolicy.load(good)
    fp = {**card["fingerprint"], "target_id": "0123456789ab"}
    good.with_suffix(".json").write_text(json.dumps({**card, "fingerprint": fp}))
    with pytest.warns(PolicyTargetWarning, match="0123456789ab"):
        SchedulePolicy.load(good)


def test_learned_agent_and_ablation_are_valid_and_budgeted() -> None:
    problem = make_problem({"name": "scheduling", "n_ops": 40, "n_pes": 3, "seed": 1})
    inst = problem.instance
    h = heft(inst).makespan_us(inst)
    for network in (True, False):
        res = search("learned", problem, Budget(evaluations=60), seed=0, network=network,
                     samples=8)
        assert res.n_evaluations == 60 and not res.failed.any()
        best = min(m["makespan_us"] for m in res.metrics)
        assert best <= res.info["greedy_makespan_us"] + 1e-9
        if not network:  # the ablation's greedy start is HEFT itself
            assert res.info["greedy_makespan_us"] == pytest.approx(h)


def test_online_stream_env_hides_future_jobs() -> None:
    inst = build_stream_instance([(random_instance(6, 2, seed=1), 0.0),
                                  (random_instance(5, 2, seed=2), 3.0)], _two_pe())
    env = KernelSchedulingStreamEnv(inst, _two_pe(), online=True)
    obs, info = env.reset(seed=0)
    assert info["revealed_until_us"] == 0.0
    assert obs["op_mask"][:6].all() and not obs["op_mask"][6:11].any()
    assert all(i < 6 for i in env.window_ops())
    offline = KernelSchedulingStreamEnv(inst, _two_pe())
    offline.reset(seed=0)
    assert any(i >= 6 for i in offline.window_ops())  # job 1's sources are ready offline
    for _ in range(6):
        assert all(i < 6 for i in env.window_ops())
        env.place(env.window_ops()[0], int(np.flatnonzero(env.problem.capable[env.window_ops()[0]])[0]))
    assert env.revealed_until_us() == 3.0 and all(i >= 6 for i in env.window_ops())
    while env.window_ops():
        i = env.window_ops()[0]
        env.place(i, int(np.flatnonzero(env.problem.capable[i])[0]))
    assert is_online_order(inst, env.schedule().order)


def _two_pe() -> Platform:
    return generic_platform(2)


def test_online_schedule_commits_jobs_in_arrival_order() -> None:
    a, b = random_instance(8, 2, seed=3), random_instance(7, 2, seed=4)
    inst = build_stream_instance([(a, 0.0), (b, 5.0), (a, 5.0)], _two_pe())
    groups = arrival_groups(inst)
    assert [t for t, _ in groups] == [0.0, 5.0]
    assert [g.size for _, g in groups] == [8, 15]
    sched = online_schedule(inst, heft_scores)
    assert validate(inst, sched).valid and is_online_order(inst, sched.order)
    assert np.all(sched.start_us >= inst.release_us)
    # HEFT over the whole stream lists by rank across jobs: not an online order here
    assert not is_online_order(inst, heft(inst).order)
    # the first job is scheduled exactly as alone (nothing else is known then)
    alone = decode(a, *heft_scores(a))
    np.testing.assert_allclose(sched.start_us[:8], alone.start_us)
    # with one job per arrival, HEFT's scores online are HEFT-FIFO (job by job, rank within)
    fifo = build_stream_instance([(a, 0.0), (b, 2.0), (a, 4.0)], _two_pe())
    on, ref = online_schedule(fifo, heft_scores), heft(fifo, by_arrival=True)
    np.testing.assert_allclose(on.start_us, ref.start_us)
    assert on.assignment.tolist() == ref.assignment.tolist()
    pol = online_schedule(inst, policy_scores(default_policy()))
    assert validate(inst, pol).valid and is_online_order(inst, pol.order)
    assert job_metrics(inst, pol).mean_completion_us > 0


def test_learned_agent_skips_noisy_decodes_the_env_cannot_replay(tmp_path) -> None:
    # On mobilenetv2 @ soc_npu a Gumbel-noised decode of the untrained network (seed 0)
    # dispatches an op before the env's window of 16 holds it; that candidate is left out
    # instead of failing the run (it raised SchedulingProblemError before).
    from mlsysgym.ir import workloads

    spec = next(s for s in workloads.scheduling_instances("train") if s.name == "mobilenetv2@soc_npu")
    prior = export_onnx(build_network(1), tmp_path / "prior.onnx")
    res = search("learned", make_problem(spec.problem_spec()), Budget(evaluations=12), seed=0,
                 policy_path=str(prior))
    assert res.n_evaluations == 12 and not res.failed.any()
