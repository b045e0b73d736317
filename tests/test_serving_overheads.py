"""Serving engine overheads: front-end time, per-iteration CPU time, eager prefill, and the
KV hand-off of a prefill/decode split, each checked against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.simulators.serving import Plan, ServingWorkload, load_cluster, load_model, simulate
from mlsysgym.simulators.serving.costs import StepCost
from mlsysgym.simulators.serving.evaluator import pd_handoff_s
from mlsysgym.simulators.serving.overheads import ENGINE_PRESETS, load_engine
from mlsysgym.simulators.serving.traces import Trace

FRONT = {"preset": "none", "request_s": 5e-3, "tokenize_s_per_token": 10e-6}


def _one(n_in, n_out, engine, n=1, **plan):
    return ServingWorkload.make("Llama-3.1-8B", "H100-SXM", n, engine=engine,
                                trace=Trace(np.zeros(1), np.array([n_in]), np.array([n_out]))), \
        Plan(**plan)


def test_presets_and_errors():
    assert ENGINE_PRESETS["none"].frontend_s(1000) == 0.0
    v1 = load_engine("vllm-v1-client")
    assert v1.frontend_s(512) == pytest.approx(5.7e-3 + 512 * 10e-6)  # 10.8 ms, PR #54628
    assert load_engine(None) is v1
    assert load_engine({"preset": "vllm-v1-client", "kv_setup_s": 0.0}).kv_setup_s == 0.0
    with pytest.raises(MlsysgymError, match="unknown engine preset"):
        load_engine("sglang")
    with pytest.raises(MlsysgymError, match="unknown engine overhead field"):
        load_engine({"step_ms": 1})
    with pytest.raises(MlsysgymError, match=">= 0"):
        load_engine({"request_s": -1})


def test_front_end_time_by_hand():
    # one request of 100 prompt tokens: TTFT = 5 ms + 100 · 10 µs + the prefill step
    w, plan = _one(100, 3, FRONT)
    r = simulate(w, plan, details=True)
    t_pre = float(StepCost(w.model, w.cluster, plan).step(100, 1, 100 * 101 / 2, 100.0, 0, 0.0)[0])
    assert r["ttft_mean_s"] == pytest.approx(0.005 + 0.001 + t_pre, rel=1e-12)
    # the cache key follows the overheads
    assert w.name != _one(100, 3, "none")[0].name


def test_step_cpu_and_eager_overheads_by_hand():
    m, cl = load_model("Llama-3.1-8B"), load_cluster("H100-SXM", 1, 1)
    bare = StepCost(m, cl, Plan())
    pre = (100, 1, 100 * 101 / 2, 100.0, 0, 0.0)
    # one layer of the 100-token prefill on the GPU (no eager dispatch)
    t_layer = float(bare._layer(100.0, np.float64(100 * 101 / 2), 100.0, 0.0, 0.0,
                                bare.dense_w_layers, False)[0])
    assert 50e-6 < t_layer < 1e-3
    # 10 ops a layer at TP1: 4 GEMMs, 2 norms, rotary, SiLU, KV-cache write, prefill attention
    assert int(bare.layer_ops(True, 0, False)) == 10
    for d, launch_bound in ((1e-6, False), (100e-6, True)):
        eng = load_engine({"step_s": 1e-3, "step_per_seq_s": 1e-4, "eager_op_s": d})
        cost = StepCost(m, cl, Plan(), eng)
        # + 1 ms + 0.1 ms CPU; a layer takes max(GPU time, 10 · d): at 1 µs the GPU's,
        # at 100 µs 1 ms (32 layers)
        excess = 32 * (10 * d - t_layer) if launch_bound else 0.0
        diff = float(cost.step(*pre)[0]) - float(bare.step(*pre)[0])
        assert diff == pytest.approx(1.1e-3 + excess, rel=1e-9)
        assert float(cost.parts(*pre)["cpu"]) == pytest.approx(1.1e-3 + excess, rel=1e-9)
        assert float(cost.dispatch_s(True)) == pytest.approx(32 * 10 * d)
        assert float(cost.dispatch_s(False)) == 0.0
        # decode of 8 sequences (CUDA graph): no dispatch term; + 1 ms + 8 · 0.1 ms
        dec = (8, 8, 0.0, 0.0, 8, 800.0)
        assert float(cost.step(*dec)[0]) - float(bare.step(*dec)[0]) == pytest.approx(1.8e-3)
        # CPU time is not GPU-active time (energy)
        assert float(cost.step(*dec)[1]) == float(bare.step(*dec)[1])
        assert float(cost.step(*pre)[1]) == float(bare.step(*pre)[1])


def test_layer_op_counts_by_hand():
    # Llama-3.1-70B TP8 prefill: 10 + 2 all-reduces; with a decode beside it 13;
    # W8A8 before each of the 4 dense linear layers: 1 op (static scale), 2 (dynamic)
    cl8 = load_cluster("H100-SXM", 1, 8)
    m70 = load_model("Llama-3.1-70B")
    assert int(StepCost(m70, cl8, Plan(tp=8)).layer_ops(True, 0, False)) == 12
    assert int(StepCost(m70, cl8, Plan(tp=8)).layer_ops(True, 3, False)) == 13
    dyn = StepCost(m70, cl8, Plan(tp=8, dtype="fp8"), load_engine({"act_scale_dynamic": True}))
    assert int(dyn.layer_ops(True, 0, False)) == 12 + 4 * 2
    static = StepCost(m70, cl8, Plan(tp=8, dtype="fp8"))
    assert int(static.layer_ops(True, 0, False)) == 12 + 4
    # an MoE layer: + 7 ops (router, top-k, alignment, 2 fused-MoE kernels, SiLU, sum)
    mix = load_model("Mixtral-8x7B")
    assert int(StepCost(mix, cl8, Plan(tp=8)).layer_ops(True, 0, True)) == 19


def test_kv_transfer_and_decode_first_step_by_hand():
    # Llama-3.1-8B: 131,072 KV bytes per token (bf16); P/D split of tp1 instances on one
    # H100 node: NVLink 450 GB/s per direction, 5 µs
    n_in, n_out = 1000, 4
    eng = dict(FRONT, kv_setup_s=6.7e-3)
    w, plan = _one(n_in, n_out, eng, n=2, pd_disagg=1)
    xfer = 5e-6 + n_in * 131072 / 450e9                       # 0.2963 ms
    handoff = 5e-3 + n_in * 10e-6 + 6.7e-3 + xfer             # decode front end + setup + bytes
    assert float(pd_handoff_s(w, plan, np.array([n_in]))[0]) == pytest.approx(handoff, rel=1e-12)
    cost = StepCost(w.model, w.cluster, plan, w.engine)
    t_pre = float(cost.step(n_in, 1, n_in * (n_in + 1) / 2, float(n_in), 0, 0.0)[0])
    # the decode instance emits every output token; its first step reads n_in + 1 KV tokens
    steps = [float(cost.step(1, 1, 0.0, 0.0, 1, n_in + 1 + j)[0]) for j in range(n_out)]
    r = simulate(w, plan, details=True)
    front = 5e-3 + n_in * 10e-6
    assert r["first_token_s"][0] == pytest.approx(front + t_pre + handoff + steps[0], rel=1e-9)
    assert r["finish_s"][0] == pytest.approx(front + t_pre + handoff + sum(steps), rel=1e-9)


def test_async_output_stamp_by_hand():
    # vLLM v0.6's async output processor: a first token made in iteration N is stamped when
    # iteration N+1 has done its CPU work and processed N's outputs
    out = {"preset": "none", "async_output": True, "output_s": 2e-4, "output_per_seq_s": 5e-5,
           "step_s": 1e-3, "step_per_seq_s": 1e-4}
    w, plan = _one(100, 3, out)
    cost = StepCost(w.model, w.cluster, plan, w.engine)
    t_pre = float(cost.step(100, 1, 100 * 101 / 2, 100.0, 0, 0.0)[0])
    r = simulate(w, plan, details=True)
    # the next iteration (a decode of 1 sequence) starts at t_pre: + 1.1 ms CPU + 0.25 ms
    assert r["first_token_s"][0] == pytest.approx(t_pre + 1.1e-3 + 2.5e-4, rel=1e-12)
    assert r["ttft_parts"]["queue"][0] == pytest.approx(0.0, abs=1e-12)  # the delay is CPU
    assert r["ttft_parts"]["cpu"][0] == pytest.approx(1.1e-3 + 1.1e-3 + 2.5e-4, rel=1e-9)
    # a one-token request: no next iteration, the engine drains its outputs at once
    w1, _ = _one(100, 1, out)
    r1 = simulate(w1, plan, details=True)
    assert r1["first_token_s"][0] == pytest.approx(t_pre + 2.5e-4, rel=1e-12)
    assert r1["finish_s"][0] == r1["first_token_s"][0]
    # decode timing is unchanged by the stamp
    steps = [float(cost.step(1, 1, 0.0, 0.0, 1, 101 + j)[0]) for j in range(2)]
    assert r["finish_s"][0] == pytest.approx(t_pre + sum(steps), rel=1e-12)
