"""SoC-v0 (issue #23): HEFT in the simulators layer, the SoC platform model, its evaluator and env.

Every number asserted below is worked out by hand in the comments.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.design_env import EnvConfigError
from mlsysgym.ir import zoo
from mlsysgym.simulators.multicore import SchedulingInstance, build_instance, simulate
from mlsysgym.simulators.multicore.heft import Dag, heft, heft_arrays, upward_rank
from mlsysgym.simulators.soc import (
    REFERENCE_DESIGN,
    SocEvaluator,
    SocWorkloadError,
    evaluate_platform,
    soc_platform,
    workload_set,
)
from mlsysgym.simulators.soc.mapping import map_workload, op_times, throughput_table

import mlsysgym  # noqa: F401  (registers the envs)

# one big core at 2.4 GHz, nothing else, a bus, one DRAM channel, no system SRAM
SMALL = {**REFERENCE_DESIGN, "big_cores": 1, "big_ghz": 2.4, "little_cores": 0, "gpu_cores": 0,
         "dsps": 0, "npu_array": 0, "sram_mb": 0, "noc": "bus", "noc_gbps": 16,
         "dram_channels": 1}


def chain3() -> SchedulingInstance:
    """a → b → c on 2 PEs: times a (2, 4), b (4, 1), c (3, 6); each edge costs 1 across PEs."""
    return SchedulingInstance(
        name="chain3", op_names=("a", "b", "c"), op_types=("Op",) * 3, pe_names=("p0", "p1"),
        durations_us=np.array([[2.0, 4.0], [4.0, 1.0], [3.0, 6.0]]),
        edge_src=np.array([0, 1]), edge_dst=np.array([1, 2]), edge_bytes=np.array([1e3, 1e3]),
        edge_comm_us=np.array([1.0, 1.0]), active_power_w=np.ones(2), idle_power_w=np.zeros(2))


def test_heft_by_hand_on_a_two_pe_chain() -> None:
    # mean times a 3, b 2.5, c 4.5; ranks c 4.5, b 2.5 + 1 + 4.5 = 8, a 3 + 1 + 8 = 12.
    # a: p0 ends 2, p1 ends 4 → p0 [0, 2]. b: p0 ends 2 + 4 = 6, p1 starts 2 + 1 = 3 ends 4
    # → p1 [3, 4]. c: p0 starts 4 + 1 = 5 ends 8, p1 ends 4 + 6 = 10 → p0 [5, 8]. Makespan 8.
    prob = chain3()
    assert upward_rank(prob).tolist() == [12.0, 8.0, 4.5]
    sched = heft(prob)
    assert sched.assignment.tolist() == [0, 1, 0]
    assert sched.start_us.tolist() == [0.0, 3.0, 5.0]
    assert sched.makespan_us(prob) == 8.0
    a, s, order = heft_arrays(prob.durations_us, prob.edge_comm_us, Dag.of(prob))
    assert a.tolist() == [0, 1, 0] and s.tolist() == [0.0, 3.0, 5.0] and order.tolist() == [0, 1, 2]


def test_small_platform_area_and_power_by_hand() -> None:
    sp = soc_platform(SMALL)
    # area: big core 1.40 + bus routers 0.004 × 2 endpoints (1 PE + memory) + 1 LPDDR4X PHY 1.25
    assert sp.area_mm2 == pytest.approx(1.40 + 0.008 + 1.25)
    # peak: 0.75 W × (2.4 / 2.6)³ = 0.58990 + routers 2 × 5 mW + DRAM background 20 mW
    #       + one channel at full bandwidth: 8.532 GB/s × 40 pJ/B = 0.34128 W
    assert sp.peak_power_w == pytest.approx(0.75 * (2.4 / 2.6) ** 3 + 0.010 + 0.020 + 0.34128)
    # no SRAM: every byte misses; the core sees min(25 GB/s port, 8.532 GB/s DRAM)
    assert sp.miss == 1.0 and sp.platform.pes[0].bandwidth_gbps == pytest.approx(8.532)
    # an NPU of 32 × 32 MACs with 1 MB SRAM adds 1,024 × 5.5 × 0.6 / 1,024 = 3.3 mm² of MACs,
    # 0.453 mm² of SRAM and one more bus endpoint (0.004 mm²)
    npu = soc_platform({**SMALL, "npu_array": 32, "npu_sram_kb": 1024})
    assert npu.area_mm2 - sp.area_mm2 == pytest.approx(3.3 + 8 * 1024 * 1024 * 0.027e-6 / 0.5
                                                        + 0.004)


def test_noc_of_the_reference_design() -> None:
    # 4 big + 4 little + the GPU (8 cores, one PE) + 1 DSP + 1 NPU = 11 PEs, 12 endpoints on
    # a ring: 12 / 4 = 3 hops, 2 × 64 GB/s bisection, 2 µs + 3 × 3 ns, 3 × 0.8 pJ/B
    sp = soc_platform(REFERENCE_DESIGN)
    ic = sp.platform.interconnect
    assert ic.bandwidth_gbps == 128.0
    assert ic.latency_us == pytest.approx(2.009)
    assert ic.energy_pj_per_byte == pytest.approx(2.4)
    # the GPU PE: 8 cores × 48 FLOP/cycle × 0.8 GHz × 0.5 on conv = 153.6 GFLOP/s, 8 × 0.25 W
    gpu = sp.platform.pes[sp.kinds.index("gpu")]
    assert gpu.throughput("Conv") == pytest.approx(153.6)
    assert gpu.active_power_w == pytest.approx(2.0)


def test_soc_mapping_is_the_multicore_models_heft_and_roofline() -> None:
    """Without an NPU the SoC's op times are the multi-core roofline of its Platform and its
    mapping is HEFT on that instance: same makespan, and the same energy as the multi-core
    simulator plus the memory and static terms."""
    design = {**REFERENCE_DESIGN, "npu_array": 0}
    sp = soc_platform(design)
    wset = workload_set("tiny")
    w = wset.workloads[1]  # resnet18
    dur = op_times(sp, w, throughput_table(sp, wset.type_names), wset.type_idx[1], None)
    inst = build_instance(zoo.resolve("resnet18"), sp.platform)
    np.testing.assert_allclose(dur, inst.durations_us, rtol=1e-12)
    run = map_workload(sp, w, dur)
    sched = heft(inst)
    assert run.makespan_us == pytest.approx(sched.makespan_us(inst), rel=1e-12)
    res = simulate(inst, sched)
    extra = float(inst.op_bytes.sum()) * sp.byte_pj * 1e-6 + sp.static_w * run.makespan_us
    assert run.energy_uj == pytest.approx(res.energy_uj + extra, rel=1e-9)


def test_batched_evaluation_equals_one_by_one_and_is_cached() -> None:
    ev = SocEvaluator()
    designs = [REFERENCE_DESIGN, SMALL, {**REFERENCE_DESIGN, "noc": "mesh", "npu_array": 64},
               {**SMALL, "gpu_cores": 4, "dsps": 2}]
    batch = ev.evaluate(designs, "tiny", cache=False)
    for k, d in enumerate(designs):
        one = ev.evaluate([d], "tiny", cache=False)
        for m, v in one.items():
            assert v[0] == batch[m][k], m
    ev.evaluate(designs, "tiny")
    again = ev.evaluate(designs, "tiny")
    assert ev.cache_hits == 4
    assert all(np.array_equal(again[m], batch[m]) for m in batch)
    # the small SoC is 2.658 mm², its latency is set by one core: longer than the reference's
    assert batch["area_mm2"][1] == pytest.approx(2.658)
    assert batch["latency_ms"][1] > batch["latency_ms"][0]
    assert batch["n_pes"].tolist() == [11, 1, 11, 4]  # a bigger NPU or GPU is still one PE
    # the set's latency is the geometric mean of the workloads' latencies
    detail = evaluate_platform(SMALL, "tiny")
    per = detail["latency_ms_per_workload"]
    assert sorted(per) == ["alexnet", "resnet18"]
    assert detail["latency_ms"] == pytest.approx(np.sqrt(per["alexnet"] * per["resnet18"]))
    assert detail["latency_ms"] == pytest.approx(batch["latency_ms"][1])


def test_inner_search_never_loses_to_heft() -> None:
    """The local search starts from HEFT's assignment re-timed in HEFT's order (the same
    schedule) and keeps only moves that do not lengthen it."""
    designs = [REFERENCE_DESIGN, {**SMALL, "little_cores": 2, "dsps": 1}]
    heft_m = SocEvaluator().evaluate(designs, "tiny", cache=False)
    search_m = SocEvaluator("search", mapping_budget=20).evaluate(designs, "tiny", cache=False)
    assert np.all(search_m["latency_ms"] <= heft_m["latency_ms"] * (1 + 1e-12))


def test_env_budgets_flag_infeasible_designs() -> None:
    env = gym.make("mlsysgym/SoC-v0", workloads="tiny", area_budget_mm2=10.0,
                   power_budget_w=3.0).unwrapped
    _, metrics, feasible = env.score([REFERENCE_DESIGN, SMALL])
    # the reference is 33.2 mm² (> 10) and 7.5 W peak (> 3); the small SoC fits both
    assert feasible.tolist() == [False, True]
    assert metrics["area_mm2"][0] > 10.0 and metrics["power_w"][0] > 3.0
    env.reset(seed=0)
    action = np.array([list(env.space.levels(n)).index(SMALL[n]) for n in env.space.names])
    _, _, _, _, info = env.step(action)
    assert info["design"] == SMALL and info["infeasible"] is False


def test_env_objectives_make_a_weighted_reward() -> None:
    objectives = ["latency_ms", "energy_uj", "area_mm2"]
    env = gym.make("mlsysgym/SoC-v0", workloads="tiny", objectives=objectives).unwrapped
    rewards, metrics, _ = env.score([REFERENCE_DESIGN, SMALL])
    # weighted: −Σ (1/3) · metric / reference metric; the reference design scores −1
    assert rewards[0] == pytest.approx(-1.0)
    ref = {o: metrics[o][0] for o in objectives}
    assert rewards[1] == pytest.approx(-sum(metrics[o][1] / ref[o] for o in objectives) / 3)
    with pytest.raises(EnvConfigError, match=r"^unknown objective\(s\) \['speed'\]") as e:
        gym.make("mlsysgym/SoC-v0", workloads="tiny", objectives=["speed"])
    assert "\n" not in str(e.value)


def test_bad_inputs_are_one_line_typed_errors() -> None:
    with pytest.raises(SocWorkloadError, match="non-empty list"):
        workload_set([])
    with pytest.raises(MlsysgymError) as e:
        SocEvaluator().evaluate([{**REFERENCE_DESIGN, "big_cores": 9}], "tiny")
    assert "\n" not in str(e.value) and "big_cores" in str(e.value)
    with pytest.raises(MlsysgymError, match="mapping must be one of"):
        SocEvaluator("annealing")


def test_pareto_search_on_soc() -> None:
    """The multi-objective wrapper of the agents layer searches SoC-v0 (what issue #23's
    hypervolume benchmarks run)."""
    from mlsysgym.agents.base import search
    from mlsysgym.agents.problems import make_problem

    problem = make_problem({"name": "pareto", "of": {"name": "env:mlsysgym/SoC-v0",
                                                     "workloads": "tiny"},
                            "objectives": ["latency_ms", "energy_uj", "area_mm2"]})
    res = search("random", problem, 6, seed=0)
    assert res.n_evaluations == 6
    assert all({"latency_ms", "energy_uj", "area_mm2", "pareto_feasible"} <= set(m)
               for m in res.metrics)


def test_bench_codesign_reports_the_edp_winners() -> None:
    """benchmarks/bench_soc.py's co-design step: EDP = energy × latency per candidate under
    both mappings, and the winners are their argmins."""
    from benchmark_scripts import load_script

    bench = load_script("bench_soc.py")
    cands = [REFERENCE_DESIGN, SMALL]
    res = bench.codesign("tiny", cands, inner_budget=5)
    m = SocEvaluator().evaluate(cands, "tiny", cache=False)
    np.testing.assert_allclose(res["heft_edp"], m["energy_uj"] * m["latency_ms"], rtol=1e-12)
    assert res["winner_heft"] == int(np.argmin(res["heft_edp"]))
    assert res["winner_search"] == int(np.argmin(res["search_edp"]))
    assert np.all(res["search_latency"] <= res["heft_latency"] * (1 + 1e-12))


def test_bench_rank_flips_counts_every_pair_once() -> None:
    """benchmarks/bench_soc.py (d): 6 platforms make 15 pairs, each in exactly one gap bin, and
    the inner search never makes the median latency worse than HEFT's."""
    from benchmark_scripts import load_script

    bench = load_script("bench_soc.py")
    res = bench.rank_flips("tiny", 6, inner_budget=5, seed=0)
    for name in ("latency", "edp"):
        assert sum(cnt for cnt, _ in res[name]) == 15
        assert all(0.0 <= frac <= 1.0 for _, frac in res[name])
    assert res["latency_gain"] >= 0.0
