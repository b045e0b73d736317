"""DRAM-v0 and DRAM-MultiAgent-v0: checkers, rewards by hand, multi-agent reward semantics,
accelerator-derived traces, bad input, and a short PPO run."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.design_env import EnvConfigError
from mlsysgym.envs.dram_env import (
    OBJECTIVES,
    TARGET_FRACTION,
    DramEnv,
    ideal_metrics,
    load_trace,
)
from mlsysgym.envs.dram_marl import AGENT_KNOBS, RESPONSIBILITIES, DramMultiAgentEnv, parallel_env
from mlsysgym.envs.rewards import RewardError
from mlsysgym.ir.errors import WorkloadNotFoundError
from mlsysgym.simulators.accel_traces import AccelTraceError, accel_streams, accel_trace
from mlsysgym.simulators.accelerator import AcceleratorSimulator, default_design
from mlsysgym.simulators.dram import DESIGN_SPACE, DramSimulator
from mlsysgym.simulators.dram_timing import MT40A1G8_083E
from mlsysgym.simulators.dram_traces import TRACES, TraceError

DEFAULT_DESIGN = DESIGN_SPACE.default
DRAM_KNOBS = {p.name: tuple(DESIGN_SPACE.levels(p.name)) for p in DESIGN_SPACE}

N = 600  # requests kept from a built-in trace: a step is about a millisecond


def _term(value: float, target: float) -> float:
    return target / abs(value - target)  # ArchGym: target / |value - target|


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def env() -> DramEnv:
    return DramEnv("cloud-1", max_requests=N)


# ----------------------------------------------------------------------------- DRAM-v0

def test_space_is_the_ten_knobs():
    space = DramEnv(workload="stream", max_requests=64).space
    assert space is DESIGN_SPACE and len(space) == 10
    assert space.levels("PagePolicy") == ["Open", "OpenAdaptive", "Closed", "ClosedAdaptive"]
    assert space.levels("RequestBufferSize") == [1, 2, 4, 8, 16, 32, 64, 128]
    assert space.levels("RefreshMaxPostponed") == list(range(1, 9))
    assert space.validate(DEFAULT_DESIGN) == DEFAULT_DESIGN


@pytest.mark.parametrize("kw", [{}, {"mode": "sequential"}, {"action_type": "box"}])
def test_checkers(kw):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    e = DramEnv("stream", max_requests=N, **kw)
    check_env(e, skip_render_check=True)
    sb3_check_env(e)


def test_registered_id_if_registered():
    if "mlsysgym/DRAM-v0" not in gym.registry:
        import mlsysgym  # noqa: F401  (registration lives there)
    if "mlsysgym/DRAM-v0" not in gym.registry:
        pytest.skip("mlsysgym/DRAM-v0 not registered yet")
    e = gym.make("mlsysgym/DRAM-v0", workload="stream", max_requests=N)
    assert isinstance(e.unwrapped, DramEnv)


def test_episode_is_100_designs_and_observes_energy_power_latency(env):
    obs, _ = env.reset(seed=0)
    assert np.all(obs[:3] == 0)
    steps = 0
    truncated = False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert not terminated and math.isfinite(reward)
    assert steps == 100
    m = info["metrics"]
    expect = [math.log10(m[k] / env.reference[k]) for k in ("energy_nj", "power_mw", "avg_latency_ns")]
    assert obs[:3] == pytest.approx(expect, rel=1e-5, abs=1e-5)
    assert info["workload_id"] == env.workload_id and info["evaluator_id"] == "dram@1"


@pytest.mark.parametrize("objective", ["latency", "power", "energy"])
def test_target_spec_by_hand(objective):
    e = DramEnv("cloud-1", objective=objective, max_requests=N,
                targets={OBJECTIVES[objective][0]: {"latency": 20.0, "power": 500.0, "energy": 9e3}[objective]})
    e.reset(seed=0)
    _, reward, _, _, info = e.step(e.action_space.sample())
    (metric,) = OBJECTIVES[objective]
    assert reward == pytest.approx(_term(info["metrics"][metric], e.targets[metric]))


def test_joint_is_the_product_and_default_targets_are_half_the_ideal(env):
    ideal = ideal_metrics(env.trace)
    assert env.targets == pytest.approx({m: TARGET_FRACTION * ideal[m] for m in OBJECTIVES["joint"]})
    env.reset(seed=1)
    for _ in range(5):
        _, reward, _, _, info = env.step(env.action_space.sample())
        m = info["metrics"]
        terms = [_term(m[k], env.targets[k]) for k in OBJECTIVES["joint"]]
        assert reward == pytest.approx(float(np.prod(terms)))
        # the ideal is out of reach: each term 1 / (2 value / ideal - 1) lies in (0, 1)
        assert all(m[k] > ideal[k] for k in ideal) and all(0 < t < 1 for t in terms)


def test_ideal_latency_is_read_and_write_access_time():
    t = MT40A1G8_083E.timing
    reads = ideal_metrics(load_trace("stream", N))["avg_latency_ns"]
    writes = ideal_metrics(load_trace("stream-write", N))["avg_latency_ns"]
    assert reads == pytest.approx((t.CL + t.burst_cycles) * t.tck_ns)
    assert writes == pytest.approx((t.CWL + t.burst_cycles) * t.tck_ns)


def test_other_rewards_by_hand():
    w = DramEnv("stream", reward="weighted", objective="joint", max_requests=N)
    w.reset(seed=0)
    _, r, _, _, info = w.step(w.action_space.sample())
    m, ref = info["metrics"], w.reference
    assert r == pytest.approx(-sum(m[k] / ref[k] for k in OBJECTIVES["joint"]))
    e = DramEnv("stream", reward="edp", max_requests=N)
    e.reset(seed=0)
    _, r, _, _, info = e.step(e.space.encode(DEFAULT_DESIGN))
    assert r == pytest.approx(0.0, abs=1e-9)  # the reference design scores 0
    _, r, _, _, info = e.step(e.action_space.sample())
    m = info["metrics"]
    ed = m["energy_nj"] * m["avg_latency_ns"] / (e.reference["energy_nj"] * e.reference["avg_latency_ns"])
    assert r == pytest.approx(-math.log(ed))


def test_archgym_targets_and_full_override():
    e = DramEnv("stream", max_requests=N, targets={"power_mw": 1.0, "avg_latency_ns": 0.1})
    assert e.targets["power_mw"] == 1.0 and e.targets["avg_latency_ns"] == 0.1
    o = DramEnv("stream", max_requests=N, reward_kwargs={"targets": {"p99_latency_ns": 50.0}})
    o.reset(seed=0)
    _, r, _, _, info = o.step(o.action_space.sample())
    assert r == pytest.approx(_term(info["metrics"]["p99_latency_ns"], 50.0))


def test_whole_named_trace_keeps_its_name():
    e = DramEnv("stream", max_steps=2)
    assert e.workload_id == "stream" and len(e.trace) == len(TRACES["stream"]())


def test_bad_input_errors():
    with pytest.raises(TraceError) as err:
        DramEnv("no-such-trace")
    assert "no-such-trace" in _one_line(err)
    with pytest.raises(EnvConfigError) as err:
        DramEnv("stream", objective="throughput", max_requests=N)
    assert "latency, power, energy, joint" in _one_line(err)
    with pytest.raises(EnvConfigError) as err:
        DramEnv("stream", objective="power", targets={"energy_nj": 1.0}, max_requests=N)
    _one_line(err)
    with pytest.raises(RewardError) as err:
        DramEnv("stream", reward="speed", max_requests=N)
    _one_line(err)
    with pytest.raises(TraceError) as err:
        DramEnv("stream", max_requests=0)
    _one_line(err)
    with pytest.raises(EnvConfigError) as err:
        DramMultiAgentEnv("stream", reward_mode="selfish", max_requests=N)
    _one_line(err)
    with pytest.raises(EnvConfigError) as err:
        DramMultiAgentEnv("stream", objective="speed", max_requests=N)
    _one_line(err)


# ----------------------------------------------------------------------------- multi-agent

def test_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    for mode in ("shared", "per_agent", "difference"):
        parallel_api_test(parallel_env(workload="cloud-1", max_requests=N, max_steps=15,
                                       reward_mode=mode), num_cycles=40)


def test_agents_own_disjoint_knobs_covering_all_ten():
    knobs = [k for ks in AGENT_KNOBS.values() for k in ks]
    assert sorted(knobs) == sorted(DRAM_KNOBS) and len(knobs) == 10
    e = DramMultiAgentEnv("stream", max_requests=N)
    for a, ks in AGENT_KNOBS.items():
        assert list(e.action_space(a).nvec) == [len(DRAM_KNOBS[k]) for k in ks]


def _actions(e: DramMultiAgentEnv, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {a: rng.integers(0, e.action_space(a).nvec) for a in e.agents}


def test_shared_reward_is_the_joint_target_spec():
    e = DramMultiAgentEnv("cloud-1", max_requests=N, reward_mode="shared", max_steps=3)
    e.reset(seed=0)
    acts = _actions(e, 0)
    obs, rew, term, trunc, infos = e.step(acts)
    info = infos["scheduling"]
    m = info["metrics"]
    g = float(np.prod([_term(m[k], e.targets[k]) for k in OBJECTIVES["joint"]]))
    assert set(rew) == set(AGENT_KNOBS) and all(r == pytest.approx(g) for r in rew.values())
    assert info["joint_reward"] == pytest.approx(g)
    assert info["design"] == e.design_of(acts)
    # each agent sees the metrics and its own action
    for a, o in obs.items():
        assert e.observation_space(a).contains(o)
        assert o[3:-1] == pytest.approx((np.asarray(acts[a]) + 0.5) / e.action_space(a).nvec)
    # the joint design gives what DRAM-v0 gives for it
    single = DramEnv("cloud-1", max_requests=N)
    single.reset(seed=0)
    _, r1, *_ = single.step(single.space.encode(info["design"]))
    assert r1 == pytest.approx(g)
    e.step(_actions(e, 1))
    _, _, term, trunc, _ = e.step(_actions(e, 2))
    assert all(trunc.values()) and not any(term.values()) and e.agents == []


def test_per_agent_reward_is_its_metrics_term():
    e = DramMultiAgentEnv("cloud-1", max_requests=N, reward_mode="per_agent")
    e.reset(seed=0)
    _, rew, _, _, infos = e.step(_actions(e, 3))
    m = infos["refresh"]["metrics"]
    for a, metrics in RESPONSIBILITIES.items():
        assert rew[a] == pytest.approx(float(np.prod([_term(m[k], e.targets[k]) for k in metrics])))
    # with one objective metric, agents responsible for others fall back to the joint reward
    lat = DramMultiAgentEnv("cloud-1", objective="latency", max_requests=N, reward_mode="per_agent")
    lat.reset(seed=0)
    _, rew, _, _, infos = lat.step(_actions(lat, 3))
    g = infos["refresh"]["joint_reward"]
    assert rew["refresh"] == pytest.approx(g) and rew["page_policy"] == pytest.approx(g)
    assert rew["scheduling"] == pytest.approx(g)  # latency is the whole objective


def test_difference_reward_is_the_marginal_contribution():
    e = DramMultiAgentEnv("cloud-1", max_requests=N, reward_mode="difference")
    e.reset(seed=0)
    acts = _actions(e, 4)
    ref = e.reference_design
    # page_policy keeps the reference knob: its counterfactual is the same design
    acts["page_policy"] = np.array([list(DRAM_KNOBS["PagePolicy"]).index(ref["PagePolicy"])])
    _, rew, _, _, infos = e.step(acts)
    g = infos["scheduling"]["joint_reward"]
    assert rew["page_policy"] == pytest.approx(0.0, abs=1e-12)
    counter = {**infos["scheduling"]["design"], **{k: ref[k] for k in AGENT_KNOBS["scheduling"]}}
    m = e.evaluator.evaluate_one(counter, e.workload)
    g_without = float(np.prod([_term(m[k], e.targets[k]) for k in OBJECTIVES["joint"]]))
    assert rew["scheduling"] == pytest.approx(g - g_without)


# ----------------------------------------------------------------------------- accel traces

@pytest.fixture(scope="module")
def resnet18_full():
    return accel_trace("resnet18", max_requests=None)


def test_accel_trace_bytes_match_the_accelerator_model(resnet18_full):
    tr = resnet18_full
    m = AcceleratorSimulator().evaluate_one(default_design(), "resnet18")
    traffic = (m["dram_reads"] + m["dram_writes"]) * default_design()["word_bytes"]
    n_streams = len(accel_streams("resnet18"))
    assert traffic <= len(tr) * 64 < traffic + 64 * n_streams  # one burst of rounding a stream
    assert tr.meta["total_requests"] == len(tr) and tr.meta["scale"] == 1.0
    reads_bytes = m["dram_reads"] * default_design()["word_bytes"]
    assert reads_bytes <= np.count_nonzero(~tr.is_write) * 64 < reads_bytes + 64 * n_streams


def test_accel_trace_is_valid_ordered_and_deterministic(resnet18_full):
    tr = resnet18_full
    cap = MT40A1G8_083E.capacity_bytes
    assert tr.addresses.min() >= 0 and tr.addresses.max() < cap
    assert np.all(tr.addresses % 64 == 0)
    assert np.all(np.diff(tr.cycles) >= 0)
    a, b = accel_trace("resnet18", max_requests=3000), accel_trace("resnet18", max_requests=3000)
    assert len(a) == 3000 and a.name == b.name == "accel:resnet18"
    for f in ("cycles", "is_write", "addresses"):
        assert np.array_equal(getattr(a, f), getattr(b, f))


def test_accel_streams_reuse_activation_regions():
    streams = accel_streams("resnet18")
    written = {s.tensor: s.base for s in streams if s.is_write}
    read_back = [s for s in streams if not s.is_write and s.tensor in written]
    assert read_back and all(s.base == written[s.tensor] for s in read_back)
    roles = {s.role for s in streams}
    assert {"ifmap", "filter", "ofmap"} <= roles


def test_accel_trace_caps(resnet18_full):
    full = resnet18_full
    scaled = accel_trace("resnet18", max_requests=5000)
    assert len(scaled) == 5000 and scaled.meta["scale"] == pytest.approx(5000 / len(full))
    assert scaled.write_fraction == pytest.approx(full.write_fraction, abs=0.05)
    win = accel_trace("resnet18", max_requests=5000, cap="window", window=0.5)
    k = win.meta["window_first"]
    assert np.array_equal(win.addresses, full.addresses[k:k + 5000])
    assert np.array_equal(win.cycles, full.cycles[k:k + 5000])


def test_accel_trace_names_work_wherever_a_trace_name_does():
    assert "accel:resnet18" in TRACES
    sim = DramSimulator()
    m = sim.evaluate_one(DEFAULT_DESIGN, "accel:resnet18")
    assert m["bandwidth_gbps"] > 0 and sim.workload_id("accel:resnet18") == "accel:resnet18"
    e = DramEnv("accel:resnet18", max_requests=N, max_steps=2)
    e.reset(seed=0)
    _, r, *_ = e.step(e.action_space.sample())
    assert math.isfinite(r) and 0 < r < 1


def test_accel_trace_bad_input():
    with pytest.raises(AccelTraceError) as err:
        accel_trace("resnet18", cap="shrink")
    _one_line(err)
    with pytest.raises(AccelTraceError) as err:
        accel_trace("resnet18", window=2.0)
    _one_line(err)
    with pytest.raises(WorkloadNotFoundError) as err:
        accel_trace("resnet19")
    assert isinstance(err.value, MlsysgymError) and "resnet18" in _one_line(err)


# ----------------------------------------------------------------------------- PPO

@pytest.mark.slow
def test_ppo_trains_on_dram_v0():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor

    torch.set_num_threads(1)
    e = Monitor(DramEnv("cloud-1", max_requests=300))
    model = PPO("MlpPolicy", e, n_steps=512, batch_size=128, n_epochs=2, seed=0, verbose=0,
                device="cpu")
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    returns = e.get_episode_rewards()
    assert len(returns) >= 20 and all(math.isfinite(r) and r > 0 for r in returns)
    action, _ = model.predict(e.reset(seed=0)[0], deterministic=True)
    assert e.action_space.contains(action)
