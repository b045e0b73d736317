"""Job streams (DeepSoCS-style): release times in the simulator, the stream builder and generator,
KernelSchedulingStream-v0, and HEFT / CPOP / CP-SAT with arrivals.

Every number asserted below is worked out by hand in the comments.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mlsysgym.agents.scheduling_baselines import cpop, cpsat_schedule, heft, schedule_to_actions
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.kernel_scheduling_stream import KernelSchedulingStreamEnv
from mlsysgym.ir.errors import WorkloadError
from mlsysgym.simulators.multicore import (
    InvalidScheduleError,
    Schedule,
    SchedulingInstance,
    critical_path_lb,
    random_instance,
    schedule_from_order,
    simulate,
    validate,
)
from mlsysgym.simulators.streams import (
    Job,
    StreamError,
    build_stream_instance,
    job_metrics,
    poisson_stream,
)

import mlsysgym  # noqa: F401  (registers the envs)

GENERIC2 = {"name": "generic2", "pes": [{"name": "pe", "count": 2, "kind": "cpu",
            "throughput_gflops": {"*": 1.0}, "bandwidth_gbps": 1.0, "active_power_w": 1.0,
            "idle_power_w": 0.5}], "interconnect": {"bandwidth_gbps": 1.0}}


def chain(d0, d1, comm: float, name: str) -> SchedulingInstance:
    """A two-op job x0 → x1 with per-PE times d0, d1 and a cross-PE transfer ``comm``."""
    return SchedulingInstance(
        name=name, op_names=("x0", "x1"), op_types=("Op", "Op"), pe_names=("pe0", "pe1"),
        durations_us=np.array([d0, d1], float), edge_src=np.array([0]), edge_dst=np.array([1]),
        edge_bytes=np.zeros(1), edge_comm_us=np.array([comm]), active_power_w=np.ones(2),
        idle_power_w=np.full(2, 0.5))


# Job A (arrives at 0): a0 → a1, a0 = [2, 4] on (pe0, pe1), a1 = [3, 6], transfer 1.
# Job B (arrives at 3): b0 → b1, b0 = [4, 2], b1 = [2, 2], transfer 1.
# Stream op indices: a0 = 0, a1 = 1, b0 = 2, b1 = 3.
#
# HEFT: mean times a0 3, a1 4.5, b0 3, b1 2; upward ranks a1 4.5, a0 3 + 1 + 4.5 = 8.5,
# b1 2, b0 3 + 1 + 2 = 6 → list a0, b0, a1, b1.
#   a0: pe0 [0, 2] (pe1 would end at 4).
#   b0: released at 3: pe0 [3, 7], pe1 [3, 5] → pe1.
#   a1: pe0 from 2 (same PE) → [2, 5]; pe1 from 3, busy until 5 → [5, 11] → pe0 [2, 5].
#   b1: pe0 from 5 + 1 = 6 → [6, 8]; pe1 from 5 → [5, 7] → pe1 [5, 7].
# Makespan 7; job A finishes at 5 (JCT 5), job B at 7 (JCT 7 − 3 = 4); mean JCT 4.5.
# Lower bounds: job A ≥ 2 + 3 = 5, job B ≥ 3 + 2 + 2 = 7 → the schedule is optimal for both.


@pytest.fixture()
def two_jobs() -> SchedulingInstance:
    a = chain([2, 4], [3, 6], 1.0, "A")
    b = chain([4, 2], [2, 2], 1.0, "B")
    return build_stream_instance([(a, 0.0), Job(b, 3.0)], GENERIC2)


def test_stream_problem_structure(two_jobs: SchedulingInstance) -> None:
    p = two_jobs
    assert p.op_names == ("j0/x0", "j0/x1", "j1/x0", "j1/x1")
    np.testing.assert_array_equal(p.release_us, [0, 0, 3, 3])
    np.testing.assert_array_equal(p.job_of, [0, 0, 1, 1])
    np.testing.assert_array_equal(p.job_arrival_us, [0, 3])
    assert (p.n_jobs, p.has_releases) == (2, True)
    np.testing.assert_array_equal(np.c_[p.edge_src, p.edge_dst], [[0, 1], [2, 3]])
    # head: a0 0, a1 2, b0 3 (release), b1 3 + 2 = 5; LB = max(7, 0 + (2+3+2+2)/2)
    np.testing.assert_allclose(p.head_us, [0, 2, 3, 5])
    assert critical_path_lb(p) == pytest.approx(7.0)


def test_heft_respects_release_hand_computed(two_jobs: SchedulingInstance) -> None:
    s = heft(two_jobs)
    np.testing.assert_array_equal(s.assignment, [0, 0, 1, 1])
    np.testing.assert_allclose(s.start_us, [0, 2, 3, 5])
    m = job_metrics(two_jobs, s)
    np.testing.assert_allclose(m.finish_us, [5, 7])
    np.testing.assert_allclose(m.completion_us, [5, 4])
    assert (m.makespan_us, m.mean_completion_us) == (pytest.approx(7.0), pytest.approx(4.5))
    assert simulate(two_jobs, s).makespan_us == pytest.approx(7.0)
    # FIFO over jobs gives the same list here (job A's ops, then job B's)
    np.testing.assert_allclose(heft(two_jobs, by_arrival=True).start_us, [0, 2, 3, 5])
    c = cpop(two_jobs)
    assert validate(two_jobs, c).valid
    assert np.all(c.start_us >= two_jobs.release_us)


def test_without_release_job_b_would_start_at_zero(two_jobs: SchedulingInstance) -> None:
    # the same ops all released at 0: b0 on pe1 [0, 2], b1 on pe1 [2, 4]
    flat = SchedulingInstance(**{f: getattr(two_jobs, f) for f in (
        "name", "op_names", "op_types", "pe_names", "durations_us", "edge_src", "edge_dst",
        "edge_bytes", "edge_comm_us", "active_power_w", "idle_power_w")})
    s = heft(flat)
    assert s.start_us[2] == 0.0 and s.assignment[2] == 1
    # that schedule is invalid once job B arrives at 3: two ops start before their release
    rep = validate(two_jobs, s)
    assert not rep.valid and rep.n_release == 2
    assert "before its release at 3 us" in rep.violations[0]
    with pytest.raises(InvalidScheduleError, match="release"):
        simulate(two_jobs, s)
    # re-timed under the stream, the same assignment and order respect the arrival
    r = schedule_from_order(two_jobs, s.assignment, s.order)
    assert validate(two_jobs, r).valid and r.start_us[2] == 3.0


def test_simulator_rejects_op_before_release(two_jobs: SchedulingInstance) -> None:
    bad = Schedule(assignment=[0, 0, 1, 1], start_us=[0, 2, 2.5, 4.5])  # b0 at 2.5 < 3
    rep = validate(two_jobs, bad)
    assert (rep.valid, rep.n_release, rep.n_dependency, rep.n_overlap) == (False, 1, 0, 0)
    assert "'j1/x0' starts at 2.5 us, before its release at 3 us" in rep.violations[0]
    assert not simulate(two_jobs, bad, strict=False).valid


def test_cpsat_with_releases_optimal_on_hand_case(two_jobs: SchedulingInstance) -> None:
    res = cpsat_schedule(two_jobs, time_limit_s=5.0, num_workers=1)
    assert res.optimal and res.makespan_us == pytest.approx(7.0)
    assert validate(two_jobs, res.schedule).valid


def test_cpsat_never_worse_than_heft_on_small_stream() -> None:
    plat = {**GENERIC2, "pes": [{**GENERIC2["pes"][0], "count": 3}]}
    jobs = [(random_instance(6, 3, seed=s), t) for s, t in ((0, 0.0), (1, 7.0), (2, 15.0))]
    prob = build_stream_instance(jobs, plat)
    h = heft(prob)
    res = cpsat_schedule(prob, time_limit_s=5.0, num_workers=1)
    assert res.makespan_us <= h.makespan_us(prob) + 1e-9
    assert validate(prob, res.schedule).valid
    assert np.all(res.schedule.start_us >= prob.release_us - 1e-9)
    assert res.lower_bound_us <= res.makespan_us + 1e-9


def test_env_hand_episode_and_return_identity(two_jobs: SchedulingInstance) -> None:
    env = KernelSchedulingStreamEnv(two_jobs, GENERIC2, window=4)
    _, info = env.reset(seed=0)
    # bound: job A ≥ 5, job B ≥ 7 − 3 = 4 → mean 4.5; window (by release): a0, b0
    assert env.initial_mean_jct_bound_us == pytest.approx(4.5)
    assert env.window_ops() == [0, 2]
    P, total = 2, 0.0
    # a0 → pe1 [0, 4]; a1 → pe1 [4, 10]; b0 → pe0 [3, 7]; b1 → pe0 [7, 9]
    for op, pe in ((0, 1), (1, 1), (2, 0), (3, 0)):
        _, r, term, trunc, info = env.step(env.window_ops().index(op) * P + pe)
        total += r
    assert term and not trunc
    # job A ends at 10 (JCT 10), job B at 9 (JCT 6): mean 8; return = 1 − 8 / 4.5 = −7/9
    assert info["mean_jct_us"] == pytest.approx(8.0) and info["makespan_us"] == pytest.approx(10.0)
    assert total == pytest.approx(-7 / 9)
    np.testing.assert_allclose(env.job_finish_us(), [10, 9])
    # HEFT's (optimal) schedule replayed: return 0, mean JCT 4.5, makespan 7
    actions = schedule_to_actions(env, heft(two_jobs))
    env.reset()
    ret = sum(env.step(a)[1] for a in actions)
    assert ret == pytest.approx(0.0) and env.mean_jct_us == pytest.approx(4.5)
    assert env.makespan_us == pytest.approx(7.0)
    # the makespan objective keeps the single-graph reward: return = 1 − makespan / LB_0 (= 7)
    env_m = KernelSchedulingStreamEnv(two_jobs, GENERIC2, window=4, objective="makespan")
    env_m.reset()
    total = sum(env_m.step(env_m.window_ops().index(op) * P + pe)[1]
                for op, pe in ((0, 1), (1, 1), (2, 0), (3, 0)))
    assert total == pytest.approx(1 - 10 / 7)


def test_env_checker_state_and_random_return_identity() -> None:
    env = gym.make("mlsysgym/KernelSchedulingStream-v0", models=("alexnet",), n_jobs=2,
                   n_streams=2, load=1.0)
    check_env(env.unwrapped, skip_render_check=True)
    u = env.unwrapped
    rng = np.random.default_rng(0)
    u.reset(seed=1)
    total, snap, snap_total, done, later = 0.0, None, 0.0, False, []
    while not done:
        if len(u._order) == 5:
            snap, snap_total = u.get_state(), total
        a = int(rng.choice(np.flatnonzero(u.action_masks())))
        if snap is not None:
            later.append(a)
        _, r, done, _, info = u.step(a)
        total += r
    assert total == pytest.approx(1 - info["mean_jct_us"] / u.initial_mean_jct_bound_us)
    jm = job_metrics(u.problem, u.schedule())
    assert jm.mean_completion_us == pytest.approx(info["mean_jct_us"])
    assert validate(u.problem, u.schedule()).valid
    # restoring a snapshot and replaying the remaining decisions gives the same result
    u.set_state(snap)
    again = snap_total + sum(u.step(a)[1] for a in later)
    assert again == pytest.approx(total) and u.mean_jct_us == pytest.approx(info["mean_jct_us"])


def test_poisson_stream_seeded_and_scaled_by_load() -> None:
    a = poisson_stream(["alexnet", "resnet18"], 5, 1.0, "soc_npu", seed=7)
    b = poisson_stream(["alexnet", "resnet18"], 5, 1.0, "soc_npu", seed=7)
    c = poisson_stream(["alexnet", "resnet18"], 5, 2.0, "soc_npu", seed=7)
    ta, tc = (np.array([j.arrival_us for j in s]) for s in (a, c))
    assert [j.workload for j in a] == [j.workload for j in b] == [j.workload for j in c]
    assert ta[0] == 0.0 and np.all(np.diff(ta) >= 0)
    np.testing.assert_allclose(tc, ta / 2)  # twice the load: every gap halves
    prob = build_stream_instance(a, "soc_npu")
    assert prob.n_jobs == 5 and prob.n_ops == sum(24 if j.workload == "alexnet" else 49 for j in a)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "soon"])
def test_bad_arrival_time(bad: object) -> None:
    with pytest.raises(StreamError, match="arrival time"):
        Job("alexnet", bad)  # type: ignore[arg-type]
    with pytest.raises(StreamError, match="arrival time"):
        build_stream_instance([("alexnet", bad)], "soc_npu")


def test_bad_streams() -> None:
    with pytest.raises(StreamError, match="empty"):
        build_stream_instance([], "soc_npu")
    with pytest.raises(StreamError, match="empty"):
        KernelSchedulingStreamEnv([])
    with pytest.raises(StreamError, match="sequence of Job"):
        build_stream_instance("alexnet", "soc_npu")  # type: ignore[arg-type]
    with pytest.raises(StreamError, match="load"):
        poisson_stream(["alexnet"], 3, 0.0)
    with pytest.raises(StreamError, match="n_jobs"):
        poisson_stream(["alexnet"], 0, 1.0)
    with pytest.raises(ValueError, match="objective"):
        KernelSchedulingStreamEnv([("alexnet", 0.0)], objective="latency")
    with pytest.raises(WorkloadError, match="release_us"):
        SchedulingInstance(name="x", op_names=("a",), op_types=("Op",), pe_names=("p",),
                          durations_us=np.ones((1, 1)), edge_src=[], edge_dst=[], edge_bytes=[],
                          edge_comm_us=[], active_power_w=1.0, idle_power_w=0.0, release_us=[-1.0])
    assert issubclass(StreamError, WorkloadError)


def test_maskable_ppo_runs_on_stream_env() -> None:
    pytest.importorskip("sb3_contrib")
    import torch
    from mlsysgym.agents.scheduling_agents import GraphSchedulingPolicy
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)
    env = KernelSchedulingStreamEnv(models=("alexnet",), n_jobs=2, n_streams=2, window=8)
    model = MaskablePPO(GraphSchedulingPolicy, env, n_steps=48, batch_size=48, n_epochs=1,
                        seed=0, device="cpu", policy_kwargs={"features_extractor_kwargs": {
                            "hidden": 16, "rounds": 1}})
    model.learn(total_timesteps=48)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        a, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, info = env.step(int(a))
    assert not info["invalid_action"] and validate(env.problem, env.schedule()).valid


def test_local_search_jct_objective_never_worse_than_start() -> None:
    from mlsysgym.agents import search
    from mlsysgym.agents.scheduling_problem import SchedulingEpisodes

    plat = {**GENERIC2, "pes": [{**GENERIC2["pes"][0], "count": 3}]}
    prob = build_stream_instance([(random_instance(8, 3, seed=s), t)
                                 for s, t in ((0, 0.0), (1, 10.0), (2, 12.0))], plat)
    problem = SchedulingEpisodes.of(prob, plat)
    assert problem.stream and problem.objective == "jct"
    res = search("local_search", problem, 201, seed=0, start="heft")
    m0 = job_metrics(prob, heft(prob))
    # the first evaluation is HEFT's schedule, its mean JCT what the simulator says
    assert res.metrics[0]["mean_jct_us"] == pytest.approx(m0.mean_completion_us)
    best = res.metrics[res.best_index]
    assert best["mean_jct_us"] <= m0.mean_completion_us + 1e-9
    # reward = 1 − mean JCT / its bound, so the best reward is the best mean JCT
    assert res.best_reward == pytest.approx(1 - best["mean_jct_us"] / best["jct_lower_bound_us"])
    env = problem.make_env()
    env.reset()
    for a in res.best_design["actions"]:
        env.step(a)
    m1 = job_metrics(prob, env.schedule())
    assert m1.mean_completion_us == pytest.approx(best["mean_jct_us"])
    assert m1.makespan_us == pytest.approx(best["makespan_us"])
    assert validate(prob, env.schedule()).valid
    with pytest.raises(MlsysgymError, match="objective"):
        SchedulingEpisodes.of(random_instance(4, 2), objective="jct")


def test_stream_agents_heft_fifo_and_cpsat_on_the_hand_case(two_jobs: SchedulingInstance) -> None:
    from mlsysgym.agents import search
    from mlsysgym.agents.scheduling_problem import SchedulingEpisodes

    problem = SchedulingEpisodes.of(two_jobs, GENERIC2, window=4)
    for by_arrival in (False, True):
        res = search("heft", problem, 1, by_arrival=by_arrival)
        assert res.metrics[0]["mean_jct_us"] == pytest.approx(
            job_metrics(two_jobs, heft(two_jobs, by_arrival=by_arrival)).mean_completion_us)
    ex = search("cpsat", problem, 1, time_limit_s=5.0)
    # mean JCT 4.5 = the per-job bound: proven optimal, bound = return 0
    assert ex.status == "optimal" and ex.bound == pytest.approx(0.0)
    assert ex.metrics[0]["mean_jct_us"] == pytest.approx(4.5) and ex.best_reward == pytest.approx(0.0)


def test_cpsat_mean_jct_objective(two_jobs: SchedulingInstance) -> None:
    # hand case: mean JCT 4.5 equals the per-job bound (5 + 4) / 2, so CP-SAT proves it optimal
    res = cpsat_schedule(two_jobs, time_limit_s=5.0, num_workers=1, objective="jct")
    assert res.objective == "jct" and res.optimal
    assert res.mean_jct_us == pytest.approx(4.5) and res.lower_bound_us == pytest.approx(4.5)
    assert res.heft_mean_jct_us == pytest.approx(4.5) and res.makespan_us == pytest.approx(7.0)
    # a small random stream: never worse than the better of HEFT / HEFT-FIFO, bound below it
    plat = {**GENERIC2, "pes": [{**GENERIC2["pes"][0], "count": 3}]}
    prob = build_stream_instance([(random_instance(6, 3, seed=s), t)
                                 for s, t in ((3, 0.0), (4, 5.0), (5, 6.0))], plat)
    ref = min(job_metrics(prob, heft(prob, by_arrival=b)).mean_completion_us for b in (False, True))
    res = cpsat_schedule(prob, time_limit_s=5.0, num_workers=1, objective="jct")
    assert res.mean_jct_us <= ref + 1e-9 and res.heft_mean_jct_us == pytest.approx(ref)
    assert res.mean_jct_us == pytest.approx(job_metrics(prob, res.schedule).mean_completion_us)
    assert res.lower_bound_us <= res.mean_jct_us + 1e-9
    assert validate(prob, res.schedule).valid
    with pytest.raises(MlsysgymError, match="objective"):
        cpsat_schedule(prob, objective="energy")
