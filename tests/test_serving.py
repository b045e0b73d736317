"""Serving simulator: model arithmetic, devices, plans, traces, engine and evaluator.

Numbers are hand-computed from the public configs (see each comment); no test reads
/work/shared.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.simulators.serving import (
    Plan,
    PlanError,
    ServingEvaluator,
    ServingWorkload,
    load_cluster,
    load_device,
    load_engine,
    load_model,
    read_trace,
    validate_plan,
)
from mlsysgym.simulators.serving.calibration import (
    CALIBRATION,
    DEFAULT_DATA,
    DEVICE_CALIBRATION,
    PROFILE_MIN_BYTES,
    PROFILES,
    device_calibration,
    device_scales,
    fit_calibration,
    fit_device,
    mixed_decode_eff,
)
from mlsysgym.simulators.serving.costs import StepCost
from mlsysgym.simulators.serving.engine import simulate_instance
from mlsysgym.simulators.serving.models import UnknownModelError, model_names
from mlsysgym.simulators.serving.traces import Trace, TraceError, fixed_trace, poisson_trace


# ---- models --------------------------------------------------------------------------------
def test_llama31_8b_params_and_kv():
    m = load_model("Llama-3.1-8B")
    # per layer: q 4096², k,v 4096·1024 each, o 4096²  = 41,943,040
    #            FFN 3·4096·14336                      = 176,160,768;  norms 2·4096
    layer = 41_943_040 + 176_160_768 + 8192
    total = 32 * layer + 2 * 128256 * 4096 + 4096  # untied embedding + LM head, final norm
    assert total == 8_030_261_248
    assert m.params() == total
    assert m.kv_bytes_per_token("bf16") == 2 * 32 * 8 * 128 * 2 == 131072
    assert m.kv_bytes_per_token("fp8") == 65536


def test_other_builtin_sizes():
    assert load_model("Llama-3.1-70B").kv_bytes_per_token() == 2 * 80 * 8 * 128 * 2
    mix = load_model("Mixtral-8x7B")
    assert round(mix.params() / 1e9, 2) == 46.70 and round(mix.active_params() / 1e9, 2) == 12.88
    # GPT-3: 12·L·h² (attention 4h², MLP 8h²) + norms + tied embedding 50257·12288
    g = load_model("GPT-3-175B")
    assert g.params() == 12 * 96 * 12288**2 + 2 * 12288 * 96 + 12288 + 50257 * 12288
    assert 1.0e12 < load_model("Kimi-K2").params() < 1.05e12
    assert {"Llama-2-7B", "Llama-2-13B", "Mistral-7B", "Qwen3-32B"} <= set(model_names())


def test_flops_hand_computed():
    m = load_model("Llama-3.1-8B")
    lin = 2 * 32 * (41_943_040 + 176_160_768)          # 13,958,643,712
    head = 2 * 4096 * 128256                           # LM head on one token
    assert m.decode_flops(0) == lin + 32 * 4 * 32 * 128 * 1 + head
    # prefill of 3 tokens: 3 linear passes, 1+2+3 causal pairs, one LM head
    assert m.prefill_flops(3) == 3 * lin + 32 * 4 * 32 * 128 * 6 + head


def test_hf_config_and_errors(tmp_path):
    cfg = {"hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
           "num_key_value_heads": 4, "head_dim": 128, "moe_intermediate_size": 768,
           "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936,
           "intermediate_size": 6144}
    p = tmp_path / "qwen.json"
    p.write_text(json.dumps(cfg))
    m = load_model(p)
    assert m.is_moe and m.experts_per_token == 8
    assert m.kv_bytes_per_token() == 48 * 2 * 4 * 128 * 2
    with pytest.raises(UnknownModelError):
        load_model("no-such-model")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MlsysgymError, match="cannot read"):
        load_model(bad)


# ---- plans ---------------------------------------------------------------------------------
def test_plan_rules_one_line():
    m = load_model("Llama-3.1-70B")
    c = load_cluster("H100-SXM", 1, 8)
    with pytest.raises(PlanError, match="must equal the cluster's 8 devices"):
        validate_plan(m, c, Plan(tp=4, dp=1))
    with pytest.raises(PlanError, match="does not fit"):
        validate_plan(m, c, Plan(tp=1, dp=8))
    with pytest.raises(PlanError, match="ep must be 1 for a dense"):
        validate_plan(m, c, Plan(tp=8, ep=8))
    mem = validate_plan(m, c, Plan(tp=8))
    # per device: weights/8 in bf16 (LM head and embedding vocab-parallel); KV: 80 layers ·
    # 1 KV head · 128 · 2 (K,V) · 2 B = 40,960 B per token
    assert mem.weight_bytes == pytest.approx((m.params() - m.hidden) * 2 / 8)
    assert mem.kv_bytes_per_token == 80 * 1 * 128 * 2 * 2


def test_kv_capacity_hand_computed():
    m = load_model("Llama-3.1-8B")
    c = load_cluster("H100-SXM", 1, 1)
    plan = Plan(max_num_seqs=16, max_batched_tokens=512, gpu_mem_util=0.9)
    mem = validate_plan(m, c, plan)
    budget = 0.9 * 80 * 2**30
    weights = (8_030_261_248 - 4096) * 2
    act = 512 * (6 * 4096 + 3 * 14336) * 2 + 16 * 128256 * 4 + 2**30
    blocks = int((budget - weights - act) // (131072 * 16))
    assert mem.kv_tokens == blocks * 16


def test_space_designs_fill_the_devices():
    from mlsysgym.simulators.serving import plan_space

    m = load_model("Mixtral-8x7B")
    space = plan_space(m, 16)
    d = {**space.default, "tp": 2, "pp": 2, "expert_parallel": True}
    p = Plan.from_design(space.validate(d), 16)
    assert (p.dp, p.ep) == (4, 8)            # dp = 16 / (2·2), ep = dp·tp
    assert not space.is_valid({**d, "tp": 8, "pp": 4})   # 32 devices > 16
    assert Plan.from_design(p.space_design(), 16) == p


def test_moe_expert_parallel_rules():
    m = load_model("Mixtral-8x7B")
    c = load_cluster("H100-SXM", 1, 8)
    validate_plan(m, c, Plan(tp=2, dp=4, ep=8))
    with pytest.raises(PlanError, match="ep must be 1 or dp"):
        validate_plan(m, c, Plan(tp=2, dp=4, ep=4))


# ---- traces --------------------------------------------------------------------------------
def test_trace_formats(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text('{"arrival_s": 1.5, "input_tokens": 10, "output_tokens": 3}\n'
                 '{"arrival_s": 0.5, "input_tokens": 7, "output_tokens": 2}\n')
    t = read_trace(a)
    assert t.arrival_s.tolist() == [0.5, 1.5] and t.input_tokens.tolist() == [7, 10]
    b = tmp_path / "b.jsonl"
    b.write_text('{"StartTimeOffset": 2000000000, "ContextTokens": 5, "GeneratedTokens": 9}\n')
    assert read_trace(b).arrival_s.tolist() == [2.0]
    c = tmp_path / "c.jsonl"
    c.write_text('{"foo": 1}\n')
    with pytest.raises(TraceError, match="c.jsonl:1"):
        read_trace(c)


def test_poisson_generator_rate():
    t = poisson_trace(rate=5.0, n=4000, workload="chat", seed=1)
    assert np.mean(np.diff(t.arrival_s)) == pytest.approx(0.2, rel=0.05)
    # log-normal σ=1 with the ShareGPT means (161 / 338) → sample means near them
    assert np.mean(t.input_tokens) == pytest.approx(161, rel=0.1)
    assert np.mean(t.output_tokens) == pytest.approx(338, rel=0.1)


# ---- engine --------------------------------------------------------------------------------
def _cost(model="Llama-3.1-8B", gpu="H100-SXM", n=1, **plan):
    return StepCost(load_model(model), load_cluster(gpu, 1, n), Plan(**plan))


def test_decode_step_roofline_hand_computed():
    cost = _cost()
    m = cost.model
    g, a, e = CALIBRATION["gemm"], CALIBRATION["attn_decode"], CALIBRATION["elementwise"]
    bw, peak = 3350e9, 989e12
    layer_w = 41_943_040 + 176_160_768
    act = 2 * (4 * 4096 + (32 + 16) * 128 + 32 * 128 + 3 * 14336)
    lin = max(2 * layer_w / (peak * g["eff_compute"]), (layer_w * 2 + act) / (bw * g["eff_memory"]))
    kv_layer = 2 * 8 * 128 * 2
    attn = max(101 * 4 * 32 * 128 / (peak * a["eff_compute"]), 101 * kv_layer / (bw * a["eff_memory"]))
    el = 4096 * 2 * 2 / (bw * e["eff_memory"])
    per_layer = 4 * g["t0_s"] + lin + a["t0_s"] + attn + 4 * (e["t0_s"] + el)
    head_w = 128256 * 4096
    head = max(2 * head_w / (peak * g["eff_compute"]), (head_w * 2 + 128256 * 4) / (bw * g["eff_memory"]))
    expected = 32 * per_layer + g["t0_s"] + head + 2 * e["t0_s"]
    dt, _ = cost.step(1, 1, 0.0, 0.0, 1, 101.0)
    assert float(dt) == pytest.approx(expected, rel=1e-12)
    assert m.n_layers == 32


def test_device_scales_from_published_measurements(tmp_path):
    # RTX 4090: median best BF16 matmul of 170.06, 173.31, 162.39, 163.09 = 166.575 TFLOP/s of a
    # 165.2 datasheet peak, against the H200's 790.29 of 989; copy: median(921.85, 912) GB/s of
    # 1,008 against the H200 copy efficiency
    cs, ms = device_scales(load_device("RTX-4090"))
    assert cs == pytest.approx((166.575 / 165.2) / (790.29 / 989), rel=1e-9)
    assert ms == pytest.approx((916.925 / 1008) / CALIBRATION["elementwise"]["eff_memory"], rel=1e-9)
    assert device_scales(load_device("H200")) == (1.0, 1.0)
    assert device_scales(load_device("TPU-v5p")) == (1.0, 1.0)  # nothing published: 1
    # L40S (no kernel profile): its GEMMs run at the H200's efficiency times its factor; a
    # user's own matmul measurement in a cluster file, half the table's, halves it
    cal = device_calibration(load_device("L40S"))
    assert cal["gemm"]["eff_compute"] == pytest.approx(
        CALIBRATION["gemm"]["eff_compute"] * (269.15 / 362) / (790.29 / 989), rel=1e-9)
    f = tmp_path / "c.yaml"
    f.write_text("device: L40S\nnodes: 1\nper_node: 1\noverrides: {gemm_bf16_tflops: 134.575}\n")
    mine = load_cluster(f)
    assert device_calibration(mine.device)["gemm"]["eff_compute"] == pytest.approx(
        cal["gemm"]["eff_compute"] / 2, rel=1e-9)
    # a compute-bound prefill's roofline work nearly doubles (its elementwise kernels do not)
    big = (4096, 1, 4096 * 4097 / 2, 4096.0, 0, 0.0)  # tokens, logits, pairs, kv, decodes, dec kv
    table = StepCost(load_model("Llama-3.1-8B"), load_cluster("L40S", 1, 1), Plan())
    ratio = float(StepCost(load_model("Llama-3.1-8B"), mine, Plan()).step(*big)[1]) / float(
        table.step(*big)[1])
    assert 1.9 < ratio < 2.0


@pytest.mark.skipif(not PROFILES.exists(), reason="no published kernel profiles")
def test_device_calibration_matches_published_profiles():
    import pandas as pd

    df = pd.read_parquet(PROFILES)
    for name, min_bytes in PROFILE_MIN_BYTES.items():
        assert fit_device(df, load_device(name), min_bytes) == DEVICE_CALIBRATION[name]
        assert device_calibration(load_device(name)) is DEVICE_CALIBRATION[name]
    # the H200 (and the H100, the same die) keep the H200 fit and the H100 fused-MoE fit
    h100 = device_calibration(load_device("H100-SXM"))
    assert {k: v for k, v in h100.items() if k not in ("fused_moe", "attn_decode_mixed")} \
        == CALIBRATION
    assert h100["attn_decode_mixed"] == CALIBRATION["attn_decode"]  # no mixed kernel measured
    # mixed batches: a 128-token chunk beside 64 decodes of 1,024 tokens on the RTX PRO 6000
    # (Llama-3.1-8B) takes 315.605 µs, the chunk alone 8.58667 µs, so the decodes' 256 MiB of
    # KV (64·1024 tokens · 2·8·128·2 bytes) take 307.0 µs: 0.87 TB/s, 0.49 of 1,792 GB/s
    # (221.237 µs without the chunk)
    mix = df[(df.device == "RTX-PRO-6000") & (df.model == "meta-llama/Llama-3.1-8B")
             & (df.tp == 1) & (df.op == "attn_decode_mixed") & (df.bytes == 64 * 1024 * 4096)]
    assert np.isclose(mix.runtime_us.to_numpy(), 315.605 - 8.58667).any()
    # the RTX PRO 6000's GEMMs, by hand from the profile: gate_up_proj of Llama-3.1-8B at
    # 2,048 tokens, 2·2048·4096·28672 FLOPs in 1,152.83 µs = 0.828 of 504 TFLOP/s
    row = df[(df.device == "RTX-PRO-6000") & (df.model == "meta-llama/Llama-3.1-8B") & (df.tp == 1)
             & (df.op == "gemm") & (df.flops == 2 * 2048 * 4096 * 28672)]
    assert float(row.runtime_us.iloc[0]) == pytest.approx(1152.83)


def test_mixed_batches_slow_decodes_in_v1_only():
    # RTX PRO 6000, Llama-3.1-8B: 64 decodes of 1,024 tokens beside a 128-token chunk. The
    # decode kernel's roofline is its KV bytes (64·1024 · 4,096 B per layer) over the
    # bandwidth at the decode efficiency; V1 (one varlen kernel) takes the mixed one.
    m, cl = load_model("Llama-3.1-8B"), load_cluster("RTX-PRO-6000", 1, 1)
    cal = DEVICE_CALIBRATION["RTX-PRO-6000"]
    args = (128 + 64, 64, 128 * 129 / 2, 128.0, 64, 64 * 1024.0)
    kv = 32 * 64 * 1024 * 4096  # bytes of KV read, all 32 layers
    act = {e: float(StepCost(m, cl, Plan(), load_engine(e)).step(*args)[1])
           for e in ("vllm-v1-client", "vllm-v0.6-client")}
    want = kv / 1792e9 * (1 / cal["attn_decode_mixed"]["gqa4"]  # Llama: 32 / 8 heads
                          - 1 / cal["attn_decode"]["eff_memory"])
    assert act["vllm-v1-client"] - act["vllm-v0.6-client"] == pytest.approx(want, rel=1e-9)
    # a decode-only iteration is the same in both
    dec = (64, 64, 0.0, 0.0, 64, 64 * 1024.0)
    assert float(StepCost(m, cl, Plan(), load_engine("vllm-v1-client")).step(*dec)[1]) == \
        pytest.approx(float(StepCost(m, cl, Plan(), load_engine("vllm-v0.6-client")).step(*dec)[1]))


def test_mixed_decode_efficiency_by_query_heads_per_kv_head():
    cls = {"eff_memory": 0.3, "gqa4": 0.43, "gqa8": 0.24}
    assert mixed_decode_eff(cls, 8) == 0.24
    assert mixed_decode_eff(cls, 4) == 0.43
    assert mixed_decode_eff(cls, 1) == 0.43 and mixed_decode_eff(cls, 16) == 0.24  # nearest
    assert mixed_decode_eff(cls, 5.5) == 0.43  # log2 5.5 is nearer 2 than 3
    assert mixed_decode_eff({"eff_memory": 0.3}, 8) == 0.3  # no group measured: pooled


def test_single_request_timeline():
    cost = _cost()
    r = simulate_instance(cost, np.array([0.0]), np.array([100]), np.array([5]), 10_000)
    t_pre, _ = cost.step(100, 1, 100 * 101 / 2, 100.0, 0, 0.0)
    t_dec = sum(float(cost.step(1, 1, 0.0, 0.0, 1, 100 + j + 1)[0]) for j in range(4))
    assert r.first_token_s[0] == pytest.approx(float(t_pre), rel=1e-12)
    assert r.finish_s[0] == pytest.approx(float(t_pre) + t_dec, rel=1e-12)
    assert r.iterations == 5


def test_batching_and_preemption():
    cost = _cost(max_num_seqs=8, max_batched_tokens=512)
    arr = np.zeros(4)
    # ample KV: all four decode together, so 4 requests take far less than 4× one
    one = simulate_instance(cost, arr[:1], np.array([64]), np.array([50]), 100_000)
    four = simulate_instance(cost, arr, np.full(4, 64), np.full(4, 50), 100_000)
    assert four.finish_s.max() < 1.5 * one.finish_s.max()
    # 10 blocks of 16 tokens: two requests that grow to 64+50 tokens cannot both stay
    tight = simulate_instance(cost, arr[:2], np.full(2, 64), np.full(2, 50), 160)
    assert tight.preemptions > 0 and not np.isnan(tight.finish_s).any()


def test_non_chunked_prefill_runs_alone():
    cost = _cost(chunked_prefill=False, max_batched_tokens=4096)
    r = simulate_instance(cost, np.array([0.0, 0.0]), np.array([200, 300]), np.array([3, 3]),
                          100_000)
    # both prompts in one prefill iteration → same first-token time
    assert r.first_token_s[0] == r.first_token_s[1]


# ---- evaluator -----------------------------------------------------------------------------
def test_evaluator_metrics_cache_and_infeasible():
    w = ServingWorkload.make("Llama-3.1-8B", "H100-SXM", 2, trace=fixed_trace(4.0, 40, 200, 50))
    ev = ServingEvaluator()
    r = ev.evaluate([{"tp": 1, "dp": 2}, {"tp": 2, "dp": 1}, {"tp": 3, "dp": 1}], w)
    assert r["infeasible"].tolist() == [0.0, 0.0, 1.0]
    assert r["throughput_tok_s"][2] == 0.0
    assert np.all(r["ttft_p99_s"][:2] >= r["ttft_p50_s"][:2])
    # every output token counted: throughput × makespan = 40 · 50 tokens
    assert r["throughput_tok_s"][0] * r["makespan_s"][0] == pytest.approx(2000)
    ev.evaluate([{"tp": 1, "dp": 2}], w)
    assert ev.cache_hits == 1


def test_disaggregated_plan_runs():
    w = ServingWorkload.make("Llama-3.1-8B", "H100-SXM", 2, trace=fixed_trace(2.0, 20, 500, 20))
    r = ServingEvaluator().evaluate_one({"tp": 1, "dp": 1, "pd_disagg": 1}, w)
    assert r["infeasible"] == 0.0 and r["ttft_mean_s"] > 0


@pytest.mark.skipif(not DEFAULT_DATA.exists(), reason="no H200 kernel data")
def test_calibration_matches_kernel_data():
    import pandas as pd

    assert fit_calibration(pd.read_parquet(DEFAULT_DATA)) == CALIBRATION


def test_trace_validation():
    with pytest.raises(TraceError):
        Trace(np.array([0.0]), np.array([0]), np.array([1]))


def test_exhaustive_beats_or_ties_heuristics():
    from mlsysgym.simulators.serving.baselines import (
        exhaustive,
        feasible_plans,
        max_tp_plan,
        min_tp_plan,
        score,
    )

    w = ServingWorkload.make("Llama-3.1-8B", "H100-SXM", 2, trace=fixed_trace(20.0, 30, 300, 30))
    space = w.space(("bf16",), ("bf16",))
    plans = [Plan.from_design(d, 2) for d in feasible_plans(w, batching=False, space=space)]
    # 2 devices, bf16: dp2·tp1, dp1·tp2, tp1·pp2 and the P/D split of tp1 → 4 plans
    assert sorted((p.dp, p.tp, p.pp, p.pd_disagg) for p in plans) == \
        [(1, 1, 1, 1), (1, 1, 2, 0), (1, 2, 1, 0), (2, 1, 1, 0)]
    ev = ServingEvaluator()
    plans, metrics, best = exhaustive(w, "goodput", evaluator=ev, space=space)
    heur = [min_tp_plan(w).as_design(), max_tp_plan(w).as_design()]
    assert score(metrics, "goodput")[best] >= score(ev.evaluate(heur, w), "goodput").max()


def test_pipeline_runs_pp_virtual_engines():
    # two simultaneous requests on tp1·pp2: each virtual engine carries one, so both first
    # tokens come after one full prefill pass (two stages), not one after the other
    from mlsysgym.simulators.serving import simulate

    w = ServingWorkload.make("Llama-3.1-8B", "H100-SXM", 2, engine="none",
                             trace=Trace(np.zeros(2), np.array([512, 512]), np.array([2, 2])))
    r = simulate(w, {"tp": 1, "pp": 2, "dp": 1}, details=True)
    assert r["first_token_s"][0] == pytest.approx(r["first_token_s"][1])
    cost = StepCost(w.model, w.cluster, Plan(tp=1, pp=2))
    one_pass = float(cost.step(512, 1, 512 * 513 / 2, 512.0, 0, 0.0)[0])
    assert r["first_token_s"][0] == pytest.approx(one_pass)


def test_tight_kv_cache_never_preempts_a_sequence_already_in_the_batch():
    """With a KV cache far too small for the load, making room for one decode must not preempt
    a sequence already scheduled in the same iteration (that crashed the engine when the
    preempted sequence later finished); every request still completes, each exactly once."""
    from mlsysgym.simulators.serving.traces import poisson_trace

    trace = poisson_trace(30.0, 400, "chat", seed=1, max_len=3000)
    for chunked in (True, False):
        cost = _cost(chunked_prefill=chunked, max_num_seqs=64, max_batched_tokens=2048)
        r = simulate_instance(cost, trace.arrival_s, trace.input_tokens, trace.output_tokens,
                              8000)
        assert r.preemptions > 0
        assert not np.isnan(r.finish_s).any() and (r.finish_s >= r.first_token_s).all()
