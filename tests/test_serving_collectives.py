"""Serving TTFT mechanisms checked by hand: the eager and α-β all-reduce times, W8A8
activation quantization kernels, what the v0.6 preset adds to an unqueued TTFT, and the TTFT
breakdown (its parts sum to the TTFT)."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.simulators.serving import Plan, ServingWorkload, load_cluster, load_model, simulate
from mlsysgym.simulators.serving.calibration import CALIBRATION
from mlsysgym.simulators.serving.collectives import allreduce_eager_s, allreduce_link_s
from mlsysgym.simulators.serving.costs import StepCost
from mlsysgym.simulators.serving.overheads import load_engine
from mlsysgym.simulators.serving.traces import Trace

MIB = 1048576.0


def test_eager_allreduce_table_by_hand():
    # table points (SGLang PR #2904, vLLM custom all-reduce on H100 without CUDA graphs; its
    # sizes are float32 elements: 4 bytes each)
    assert allreduce_eager_s(4 * MIB, 8) == pytest.approx(45.0e-6)
    assert allreduce_eager_s(MIB, 8) == pytest.approx(24.1e-6)
    assert allreduce_eager_s(2048.0, 2) == pytest.approx(9.5e-6)
    assert allreduce_eager_s(100.0, 4) == pytest.approx(9.1e-6)  # below the table: 2 KiB
    # linear between 1 MiB (20.6 µs) and 2 MiB (26.9 µs) at tp4: midpoint 23.75 µs
    assert allreduce_eager_s(1.5 * MIB, 4) == pytest.approx(23.75e-6)
    # beyond 4 MiB: + 8.0 µs per MiB (vLLM PR #24532): 8 MiB → 45 + 4 · 8 = 77 µs
    assert allreduce_eager_s(8 * MIB, 8) == pytest.approx(77.0e-6)
    assert allreduce_eager_s(MIB, 6) == allreduce_eager_s(MIB, 8)  # nearest measured group
    assert allreduce_eager_s(MIB, 3) == allreduce_eager_s(MIB, 4)
    assert allreduce_eager_s(MIB, 1) == 0.0
    np.testing.assert_allclose(allreduce_eager_s(np.array([2048.0, 4 * MIB]), 2),
                               [9.5e-6, 26.6e-6])


def test_link_allreduce_alpha_beta_by_hand():
    # 1 MB over 8 ranks at 450 GB/s, 5 µs: 5 µs + 2·7/8 · 1e6 / 450e9 = 8.889 µs
    assert allreduce_link_s(1e6, 8, 450e9, 5e-6) == pytest.approx(5e-6 + 1.75e6 / 450e9)
    assert allreduce_link_s(1e6, 1, 450e9, 5e-6) == 0.0


def test_eager_allreduce_replaces_link_time_in_prefill_only():
    m, cl = load_model("Llama-3.1-70B"), load_cluster("H100-SXM", 1, 8)
    plan = Plan(tp=8)
    link = StepCost(m, cl, plan, load_engine("none"))
    eager = StepCost(m, cl, plan, load_engine({"eager_allreduce": True}))
    # 64-token prefill: 64 · 8192 · 2 B = 1 MiB per all-reduce, 2 per layer, 80 layers
    pre = (64, 1, 64 * 65 / 2, 64.0, 0, 0.0)
    t_link = 5e-6 + 1.75 * MIB / cl.device.link_bw
    diff = float(eager.step(*pre)[0] - link.step(*pre)[0])
    assert diff == pytest.approx(160 * (24.1e-6 - t_link), rel=1e-9)
    assert float(eager.parts(*pre)["comm"] - link.parts(*pre)["comm"]) == pytest.approx(diff)
    dec = (16, 16, 0.0, 0.0, 16, 16000.0)  # decode runs in CUDA graphs: unchanged
    assert float(eager.step(*dec)[0]) == float(link.step(*dec)[0])


def test_activation_quantization_kernels_by_hand():
    m, cl = load_model("Llama-3.1-8B"), load_cluster("H100-SXM", 1, 1)
    el = CALIBRATION["elementwise"]
    per_byte = 1.0 / (cl.device.mem_bw * el["eff_memory"])
    elems = 100 * (4096 + 4096 + 4096 + 14336)  # inputs of QKV, output, gate-up, down
    pre = (100, 1, 100 * 101 / 2, 100.0, 0, 0.0)
    bf16 = StepCost(m, cl, Plan(dtype="bf16"), load_engine({"act_scale_dynamic": True}))
    bf16_static = StepCost(m, cl, Plan(dtype="bf16"))
    assert float(bf16.step(*pre)[0]) == float(bf16_static.step(*pre)[0])  # no W8A8: no kernels
    static = StepCost(m, cl, Plan(dtype="fp8"))
    dynamic = StepCost(m, cl, Plan(dtype="fp8"), load_engine({"act_scale_dynamic": True}))
    # static: 4 quantize kernels per layer (3 B per element); dynamic adds per linear layer
    # a zero-fill and a max-reduction (2 B per element): 32 layers · (8 t0 + 2 · elems / bw)
    q_static = 4 * el["t0_s"] + 3 * elems * per_byte
    assert float(static._act_quant(100.0)[0]) == pytest.approx(q_static)
    diff = float(dynamic.step(*pre)[0] - static.step(*pre)[0])
    assert diff == pytest.approx(32 * (8 * el["t0_s"] + 2 * elems * per_byte), rel=1e-9)


def test_flag_settings_are_typed():
    assert load_engine({"eager_allreduce": "true"}).eager_allreduce is True
    assert load_engine("vllm-v0.6-server").eager_allreduce is True
    assert load_engine("vllm-v1-client").eager_allreduce is False
    with pytest.raises(MlsysgymError, match="true or false"):
        load_engine({"act_scale_dynamic": "maybe"})


def _one_request(engine: str, n_in: int = 64, tp: int = 8):
    w = ServingWorkload.make("Llama-3.1-70B", "H100-SXM", tp, engine=engine,
                             trace=Trace(np.zeros(1), np.array([n_in]), np.array([4])))
    return w, Plan(tp=tp, max_batched_tokens=512)


def test_v06_preset_adds_exactly_its_terms_to_an_unqueued_ttft():
    base = simulate(*_one_request("none"))["ttft_mean_s"]
    w, plan = _one_request("vllm-v0.6-server")
    got = simulate(w, plan)["ttft_mean_s"]
    none = StepCost(w.model, w.cluster, plan)
    t_layer = float(none._layer(64.0, np.float64(64 * 65 / 2), 64.0, 0.0, 0.0,
                                none.dense_w_layers, False)[0])
    t_link = 5e-6 + 1.75 * MIB / w.cluster.device.link_bw
    # a layer on the GPU with 2 eager all-reduces of 1 MiB (24.1 µs instead of the link
    # time) is shorter than dispatching its 12 ops at 35 µs: the 80 layers take 33.6 ms
    assert t_layer + 2 * (24.1e-6 - t_link) < 12 * 35e-6
    # + step CPU 0.27 ms + 35.6 µs · 1 sequence; the first token is stamped by the async
    # output processor in the next (decode, CUDA-graph) iteration: after its CPU time
    # 0.27 ms + 35.6 µs · 1, plus the output processing of the prefill's 1 sequence,
    # 0.226 ms + 70.2 µs
    want = (0.27e-3 + 35.6e-6 + 80 * (12 * 35e-6 - t_layer)
            + 0.27e-3 + 35.6e-6 + 0.226e-3 + 70.2e-6)
    assert got - base == pytest.approx(want, rel=1e-9)


def test_ttft_parts_sum_to_ttft():
    w, plan = _one_request("vllm-v1-client")
    r = simulate(w, plan, details=True)
    p = r["ttft_parts"]
    ttft = r["first_token_s"] - w.trace.arrival_s
    np.testing.assert_allclose(sum(p.values()), ttft, rtol=1e-12)
    assert p["frontend"][0] == pytest.approx(5.7e-3 + 64 * 10e-6)
    assert p["queue"][0] == pytest.approx(0.0, abs=1e-12)  # alone: no waiting
    t_pre = float(StepCost(w.model, w.cluster, plan, w.engine).step(64, 1, 64 * 65 / 2, 64.0,
                                                                     0, 0.0)[0])
    assert p["compute"][0] + p["floors"][0] + p["comm"][0] + p["cpu"][0] == pytest.approx(t_pre)
    # P/D split: both front ends, the KV hand-off, the decode instance's first step
    r = simulate(w, Plan(tp=4, pd_disagg=1), details=True)
    p = r["ttft_parts"]
    np.testing.assert_allclose(sum(p.values()), r["first_token_s"] - w.trace.arrival_s,
                               rtol=1e-12)
    assert p["frontend"][0] == pytest.approx(2 * (5.7e-3 + 64 * 10e-6))
    assert p["kv_transfer"][0] > 6.7e-3  # setup (NIXL) + bytes


def test_fused_moe_efficiency_refits_and_is_used():
    from mlsysgym.simulators.serving import moe_kernels

    fit = moe_kernels.fit_fused_moe()
    assert fit["eff_memory"] == pytest.approx(moe_kernels.FUSED_MOE["eff_memory"], abs=5e-4)
    assert fit["eff_compute"] == pytest.approx(moe_kernels.FUSED_MOE["eff_compute"], abs=5e-4)
    # the additive model at batch 1024 (all 8 experts, 2048 routed tokens) vs 833.72 µs
    per_expert = (14336 * 4096 + 4096 * 7168) * 2.0
    t = 3 * 1.123e-05 + 8 * per_expert / (3.35e12 * 0.985) + \
        2 * 2048 * per_expert / 2 / (989e12 * 0.876)
    assert t == pytest.approx(833.72e-6, rel=0.06)
    # StepCost's MoE term is exactly weights / (bw·η_m) + FLOPs / (peak·η_c) per layer
    m, cl = load_model("Mixtral-8x7B"), load_cluster("H100-SXM", 1, 2)
    args = (1024, 1, 1024 * 1025 / 2, 1024.0, 0, 0.0)
    cost = StepCost(m, cl, Plan(tp=2))
    assert (cost.moe_em, cost.moe_ec) == (moe_kernels.FUSED_MOE["eff_memory"],
                                          moe_kernels.FUSED_MOE["eff_compute"])
    t_real = float(cost.step(*args)[0])
    cost.moe_em = cost.moe_ec = 1e30
    t_free = float(cost.step(*args)[0])
    active = 8 * (1 - 0.75 ** 1024)
    want = 32 * (active * per_expert / (cl.device.mem_bw * 0.985)
                 + 2 * 2048 * per_expert / 2 / (989e12 * 0.876))
    assert t_real - t_free == pytest.approx(want, rel=1e-9)


def test_expert_parallel_exchange_is_allgather_reducescatter_by_hand():
    # vLLM's default EP exchange (allgather_reducescatter): per MoE layer an all-gather of the
    # other replica's T·h bf16 hidden states and a reduce-scatter back. Mixtral-8x7B (32 MoE
    # layers, hidden 4096) as dp2·tp1·ep2 on one H100 node: NVLink 450 GB/s, 5 µs; tp1 has
    # no all-reduce or logits gather, so that is all of the step's communication.
    m, cl = load_model("Mixtral-8x7B"), load_cluster("H100-SXM", 1, 2)
    cost = StepCost(m, cl, Plan(dp=2, ep=2))
    T = 64
    comm = float(cost.parts(T, T, 0.0, 0.0, T, T * 100.0)["comm"])
    assert comm == pytest.approx(32 * 2 * (5e-6 + T * 4096 * 2 / 450e9), rel=1e-12)
    # ep = tp (one replica): the experts' partial sums ride the tensor-parallel all-reduce
    one = StepCost(m, load_cluster("H100-SXM", 1, 2), Plan(tp=2, ep=2))
    two = StepCost(m, load_cluster("H100-SXM", 1, 2), Plan(tp=2))
    assert float(one.parts(T, T, 0.0, 0.0, T, T * 100.0)["comm"]) == \
        pytest.approx(float(two.parts(T, T, 0.0, 0.0, T, T * 100.0)["comm"]), rel=1e-12)


def _lockstep_pair(n_out: list[int]) -> tuple[dict, StepCost]:
    """dp2·ep2 Mixtral on 2 H100s, no engine overheads: request 0 (1000-token prompt) on rank
    0, request 1 (10 tokens) on rank 1 (round-robin), both arriving at 0 with ``n_out``
    output tokens; the simulation's details and the plan's step cost."""
    m = load_model("Mixtral-8x7B")
    w = ServingWorkload.make(m, "H100-SXM", 2, engine="none",
                             trace=Trace(np.zeros(2), np.array([1000, 10]), np.array(n_out)))
    plan = Plan(dp=2, ep=2, max_batched_tokens=2048)
    return simulate(w, plan, details=True), StepCost(m, w.cluster, plan)


def test_expert_parallel_ranks_step_in_lockstep():
    # both ranks' iterations last as long as rank 0's
    r, cost = _lockstep_pair([2, 2])
    pre0 = float(cost.step(1000, 1, 1000 * 1001 / 2, 1000.0, 0, 0.0)[0])
    pre1 = float(cost.step(10, 1, 10 * 11 / 2, 10.0, 0, 0.0)[0])
    dec0 = float(cost.step(1, 1, 0.0, 0.0, 1, 1001.0)[0])
    assert pre1 < pre0
    np.testing.assert_allclose(r["first_token_s"], [pre0, pre0], rtol=1e-12)
    np.testing.assert_allclose(r["finish_s"], [pre0 + dec0, pre0 + dec0], rtol=1e-12)
    # rank 1's wait for rank 0 is queueing in its TTFT breakdown
    assert r["ttft_parts"]["queue"][1] == pytest.approx(pre0 - pre1, rel=1e-9)


def test_lockstep_decode_stretch_runs_at_the_slowest_ranks_pace():
    # 5 and 3 output tokens: after the prefill both decode together, each step as long as
    # rank 0's (it reads more KV), so request 1 finishes after rank 0's first two decode
    # steps and request 0 after its four, rank 1 idle for the last two
    r, cost = _lockstep_pair([5, 3])
    pre0 = float(cost.step(1000, 1, 1000 * 1001 / 2, 1000.0, 0, 0.0)[0])
    dec0 = [float(cost.step(1, 1, 0.0, 0.0, 1, 1000.0 + j)[0]) for j in (1, 2, 3, 4)]
    dec1 = [float(cost.step(1, 1, 0.0, 0.0, 1, 10.0 + j)[0]) for j in (1, 2)]
    assert all(a > b for a, b in zip(dec0, dec1))
    np.testing.assert_allclose(r["finish_s"], [pre0 + sum(dec0), pre0 + dec0[0] + dec0[1]],
                               rtol=1e-12)
