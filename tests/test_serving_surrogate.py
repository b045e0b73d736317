"""The serving surrogate: features by hand, a tiny train → predict → save/load round trip, and
the top-k search reducing to exhaustive enumeration when k covers every plan."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.costmodels.base import CostModel, CostModelError
from mlsysgym.costmodels.serving_surrogate import (
    FEATURES,
    TARGET,
    collect_rows,
    serving_features,
    surrogate_search,
    train_surrogate,
)
from mlsysgym.simulators.serving import ServingEvaluator, ServingWorkload
from mlsysgym.simulators.serving.baselines import feasible_plans, score
from mlsysgym.simulators.serving.traces import fixed_trace


@pytest.fixture(scope="module")
def small():
    w = ServingWorkload.make("Llama-3.1-8B", "H100-SXM", 2, trace=fixed_trace(8.0, 12, 200, 40),
                             slo_tpot_s=0.05)
    plans = feasible_plans(w, batching=True, space=w.space(("bf16",), ("bf16",)))
    rng = np.random.default_rng(0)
    pick = [plans[i] for i in rng.choice(len(plans), 24, replace=False)]
    return w, pick, collect_rows(w, pick)


def test_features_by_hand(small):
    w, _, _ = small
    f = serving_features(w, [{"tp": 2, "dp": 1, "max_num_seqs": 16}]).iloc[0]
    assert list(f.index) == list(FEATURES)
    # 12 requests over the trace's arrival span; 200 in, 40 out per request
    span = w.trace.arrival_s.max() - w.trace.arrival_s.min()
    assert f["rate"] == pytest.approx(12 / span)
    assert (f["mean_in"], f["mean_out"], f["n_devices"]) == (200, 40, 2)
    assert f["kv_requests"] == pytest.approx(f["kv_tokens"] / 240)
    assert f["batch"] == 16                              # max_num_seqs binds, not the KV cache
    assert f["capacity_tok_s"] == pytest.approx(16 / f["t_decode_s"])
    assert f["utilization"] == pytest.approx(f["rate"] * 40 / f["capacity_tok_s"])
    assert f["tpot_over_slo"] == pytest.approx(f["t_decode_s"] / 0.05)


def test_round_trip_and_target(small, tmp_path):
    frame = small[2]
    assert len(frame) == 24 and frame["design_index"].tolist() == list(range(24))
    assert np.allclose(frame[TARGET], np.log10(1 + frame["goodput"]))
    model = train_surrogate(frame, n_estimators=40, num_leaves=7)
    assert [t.name for t in model.targets] == [TARGET]
    assert model.targets[0].transform == "identity"
    pred = model.predict(frame).values[TARGET]
    assert np.corrcoef(pred, frame[TARGET])[0, 1] > 0.8     # fits its own training rows
    loaded = CostModel.load(model.save(tmp_path / "surr"))
    assert np.allclose(loaded.predict(frame).values[TARGET], pred, rtol=1e-5, atol=1e-6)
    with pytest.raises(CostModelError, match="at least 20"):
        train_surrogate(frame.iloc[:5])


def test_top_k_covering_every_plan_is_exhaustive(small):
    w, pick, frame = small
    model = train_surrogate(frame, n_estimators=20, num_leaves=7)
    r = surrogate_search(w, model, pick, top_k=len(pick))
    best = score(ServingEvaluator().evaluate(pick, w), "goodput").max()
    assert r["simulated"] == 24 and r["goodput"] == pytest.approx(best)
    with pytest.raises(CostModelError, match="top_k"):
        surrogate_search(w, model, pick, top_k=0)
