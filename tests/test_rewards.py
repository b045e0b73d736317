"""Rewards from metrics: hand-computed values, vectorization, penalties, the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.rewards import (
    EDP,
    Penalty,
    RewardError,
    TargetSpec,
    Weighted,
    list_rewards,
    make_reward,
)


def test_target_spec_per_metric_by_hand():
    # ArchGym DRAMGym example targets: power 1 mW, latency 0.1 ns
    r = make_reward("target_spec", targets={"latency_ns": 0.1})
    assert r({"latency_ns": 0.2}) == pytest.approx(0.1 / 0.1)       # 1.0
    assert r({"latency_ns": 0.15}) == pytest.approx(0.1 / 0.05)     # 2.0
    assert r({"latency_ns": 0.05}) == pytest.approx(0.1 / 0.05)     # symmetric: 2.0
    assert r({"latency_ns": 1.1}) == pytest.approx(0.1)             # 0.1 / 1.0
    assert isinstance(r({"latency_ns": 0.2}), float)


def test_target_spec_joint_is_the_product_by_hand():
    r = make_reward("target_spec", targets={"latency_ns": 0.1, "power_mw": 1.0})
    # latency: 0.1/|0.3-0.1| = 0.5; power: 1/|1.5-1| = 2  -> 1.0
    assert r({"latency_ns": 0.3, "power_mw": 1.5}) == pytest.approx(1.0)
    # latency: 0.1/0.4 = 0.25; power 1/|5-1| = 0.25 -> 0.0625
    assert r({"latency_ns": 0.5, "power_mw": 5.0}) == pytest.approx(0.0625)
    s = make_reward("target_spec", targets={"latency_ns": 0.1, "power_mw": 1.0}, combine="sum")
    assert s({"latency_ns": 0.3, "power_mw": 1.5}) == pytest.approx(2.5)


def test_target_spec_cap_when_on_target():
    r = TargetSpec(targets={"latency_ns": 0.1, "power_mw": 1.0}, cap=1000.0)
    assert r({"latency_ns": 0.1, "power_mw": 2.0}) == pytest.approx(1000.0 * 1.0)
    assert r({"latency_ns": 0.1, "power_mw": 1.0}) == pytest.approx(1e6)
    # within 1e-4 of target: 0.1/1e-4 = 1000 hits the cap exactly; closer stays capped
    assert r({"latency_ns": 0.1 + 1e-7, "power_mw": 2.0}) == pytest.approx(1000.0)
    assert np.isfinite(r({"latency_ns": np.array([0.1, 0.2]), "power_mw": 1.0})).all()


def test_target_spec_one_sided():
    r = TargetSpec(targets={"latency_ns": 1.0, "bandwidth_gbps": 10.0}, one_sided=True, cap=100.0,
                   maximize=("bandwidth_gbps",), combine="sum")
    # latency beats target -> 100; bandwidth 8 below target 10 -> 10/2 = 5
    assert r({"latency_ns": 0.5, "bandwidth_gbps": 8.0}) == pytest.approx(105.0)
    # latency worse: 1/|3-1| = 0.5; bandwidth beats target -> 100
    assert r({"latency_ns": 3.0, "bandwidth_gbps": 12.0}) == pytest.approx(100.5)


def test_target_spec_vectorized_matches_scalar():
    r = make_reward("target_spec", targets={"latency_ns": 0.1, "power_mw": 1.0})
    lat = np.array([0.3, 0.5, 0.2, 0.11])
    pw = np.array([1.5, 5.0, 3.0, 0.9])
    vec = r({"latency_ns": lat, "power_mw": pw})
    assert vec.shape == (4,)
    for i in range(4):
        assert vec[i] == pytest.approx(r({"latency_ns": lat[i], "power_mw": pw[i]}))
    per = r.per_metric({"latency_ns": lat, "power_mw": pw})
    np.testing.assert_allclose(per["latency_ns"], [0.5, 0.25, 1.0, 10.0])


def test_weighted_by_hand():
    r = make_reward("weighted", weights={"latency_ms": 2.0, "energy_uj": 1.0,
                                          "bandwidth_gbps": 0.5},
                    scales={"latency_ms": 10.0, "energy_uj": 100.0}, maximize="bandwidth_gbps")
    # -(2 * 5/10) - (1 * 50/100) + 0.5 * 4 = -1 - 0.5 + 2 = 0.5
    assert r({"latency_ms": 5.0, "energy_uj": 50.0, "bandwidth_gbps": 4.0}) == pytest.approx(0.5)
    v = r({"latency_ms": np.array([5.0, 10.0]), "energy_uj": np.array([50.0, 0.0]),
           "bandwidth_gbps": np.array([4.0, 0.0])})
    np.testing.assert_allclose(v, [0.5, -2.0])


def test_edp_forms_by_hand():
    m = {"energy_uj": 4.0, "latency_ms": 0.5}
    assert make_reward("edp")(m) == pytest.approx(-math.log(2.0))
    assert make_reward("edp", form="inverse")(m) == pytest.approx(0.5)
    assert EDP(reference=2.0)(m) == pytest.approx(0.0)
    assert EDP(energy="energy_nj", delay="cycles")({"energy_nj": 3.0, "cycles": 5.0}) == \
        pytest.approx(-math.log(15.0))
    # halving the EDP adds ln 2 whatever the scale
    big = EDP()({"energy_uj": np.array([1e6, 5e5]), "latency_ms": np.array([1e3, 1e3])})
    assert big[1] - big[0] == pytest.approx(math.log(2.0))
    with pytest.raises(RewardError, match="positive"):
        EDP()({"energy_uj": 0.0, "latency_ms": 1.0})


def test_constant_and_scaled_penalties():
    budgets = {"area_mm2": 10.0, "power_mw": 100.0}
    metrics = {"latency_ns": np.array([0.2, 0.2, 0.2]), "area_mm2": np.array([5.0, 15.0, 20.0]),
               "power_mw": np.array([50.0, 50.0, 150.0])}
    r = make_reward("target_spec", targets={"latency_ns": 0.1},
                    penalty=Penalty(budgets=budgets, value=-1.0))
    np.testing.assert_allclose(r(metrics), [1.0, -1.0, -1.0])
    s = make_reward("target_spec", targets={"latency_ns": 0.1},
                    penalty={"budgets": budgets, "mode": "scaled", "scale": 2.0})
    # excess: [0, 0.5, 1.0 + 0.5]; reward 1 - 2 * max(excess, 1): [1, -1, -2]
    np.testing.assert_allclose(s(metrics), [1.0, -1.0, -2.0])
    s2 = make_reward("target_spec", targets={"latency_ns": 0.1},
                     penalty=Penalty(budgets=budgets, mode="scaled", scale=2.0, min_excess=0.0))
    np.testing.assert_allclose(s2(metrics), [1.0, 0.0, -2.0])


def test_infeasible_flags_and_feasible_argument():
    r = make_reward("edp", penalty=-100.0)
    m = {"energy_uj": np.array([1.0, 1.0]), "latency_ms": np.array([1.0, 1.0]),
         "infeasible": np.array([False, True])}
    np.testing.assert_allclose(r(m), [0.0, -100.0])
    np.testing.assert_allclose(r({"energy_uj": 1.0, "latency_ms": np.array([1.0, 1.0])},
                                 feasible=[True, False]), [0.0, -100.0])
    with pytest.raises(RewardError, match="no penalty"):
        make_reward("edp")(m)
    # all-feasible flags are fine without a penalty
    assert make_reward("edp")({"energy_uj": 1.0, "latency_ms": 1.0, "infeasible": False}) == 0.0


def test_registry_and_errors():
    assert {"target_spec", "weighted", "edp"} <= set(list_rewards())
    with pytest.raises(RewardError, match="unknown reward 'edpp'"):
        make_reward("edpp")
    with pytest.raises(RewardError, match="needs metric 'power_mw'"):
        make_reward("target_spec", targets={"power_mw": 1.0})({"latency_ns": 1.0})
    with pytest.raises(RewardError, match="bad arguments"):
        make_reward("weighted", weights={"x": 1.0}, wieghts={})
    with pytest.raises(RewardError, match="targets"):
        make_reward("target_spec")
    assert issubclass(RewardError, MlsysgymError)
    assert isinstance(make_reward("weighted", weights={"x": 1}), Weighted)
