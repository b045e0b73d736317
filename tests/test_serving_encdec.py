"""Encoder-decoder models in the serving simulator: config parsing, FLOPs and weights by hand
for a tiny T5-style config, the engine's prefill (encoder + first decoder step) and decode."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.simulators.serving import (
    Plan,
    PlanError,
    ServingWorkload,
    load_cluster,
    load_model,
    simulate,
    validate_plan,
)
from mlsysgym.simulators.serving.costs import StepCost
from mlsysgym.simulators.serving.traces import Trace

TINY = {"is_encoder_decoder": True, "d_model": 8, "d_ff": 16, "d_kv": 2, "num_heads": 4,
        "num_layers": 2, "num_decoder_layers": 3, "feed_forward_proj": "relu",
        "vocab_size": 10, "_name": "tiny-t5"}


def test_tiny_t5_flops_and_weights_by_hand():
    m = load_model(TINY)
    assert m.is_encoder_decoder and (m.n_encoder_layers, m.n_layers) == (2, 3)
    # self-attention: q, k, v, o of 8·(4·2) = 64 each → 256; ReLU FFN 2·8·16 = 256
    assert m.attn_params == 256 and m.dense_ffn_params == 256
    assert m.encoder_layer_params == 512
    # cross-attention: 256 weights; a decode step reads q and o (128), prefill k and v (128)
    assert (m.cross_attn_params, m.cross_step_params, m.cross_kv_params) == (256, 128, 128)
    assert m.attn_flops_per_pair == 4 * 4 * 2 == 32
    assert m.kv_elems_per_token == 2 * 4 * 2
    # encoder over 5 tokens: 2 layers × (2·5·512 linear + 32·5² bidirectional attention)
    # + cross K/V projection 2·5·(3 decoder layers · 128)
    assert m.encoder_flops(5) == 2 * (5120 + 800) + 3840 == 15680
    # decoder step: 2·3·(256 + 128 + 256) linear, 3·32·(c + 1) attention, LM head 2·8·10
    assert m.linear_flops_per_token() == 3840
    assert m.decode_flops(5) == 3840 + 3 * 32 * 6 + 160
    assert m.prefill_flops(5) == 15680 + 3840 + 576 + 160
    # weights: decoder 3·(256 + 256) + tied embedding 80 + norms 2·8·3 + 8; encoder 2·512 +
    # its norms 2·8·2 + 8; cross-attention 3·(256 + 8 norm)
    assert m.params() == 1536 + 80 + 56 + (1024 + 40 + 792) == 3528


def test_builtin_encoder_decoders():
    t5 = load_model("t5-11b")
    assert round(t5.params() / 1e9, 1) == 11.3          # the published 11B
    flan = load_model("Flan-T5-XXL")
    assert flan.gated_ffn and flan.head_dim == 64 and flan.n_encoder_layers == 24
    wh = load_model("whisper-large-v3")
    assert wh.encoder_len == 1500 and wh.n_layers == 32
    assert round(wh.params() / 1e9, 2) == 1.53            # 1.55B with convs and positions
    assert wh.encoder_tokens(np.array([3, 7])).tolist() == [1500, 1500]


def test_encoder_runs_at_prefill_only():
    m, cl = load_model("Flan-T5-XXL"), load_cluster("H100-SXM", 1, 1)
    cost = StepCost(m, cl, Plan())
    n = 400
    pre = float(cost.step(n, 1, n * (n + 1) / 2, float(n), 0, 0.0)[0])
    dec = float(cost.step(1, 1, 0.0, 0.0, 1, n + 1.0)[0])
    # prefill ≥ the encoder's FLOPs at peak; a decode step reads ~the decoder weights
    assert pre > m.encoder_flops(n) / cl.device.peak("bf16")
    dec_w = m.n_layers * (m.attn_params + m.cross_step_params + m.dense_ffn_params) * 2
    assert dec_w / cl.device.mem_bw < dec < 2 * pre
    # a decode-only batch pays nothing for the encoder: same as without prefill tokens
    assert float(cost.step(4, 4, 0.0, 0.0, 4, 1604.0)[0]) < pre


def test_encoder_decoder_serving_and_rules():
    tr = Trace(np.array([0.0, 0.1, 0.2]), np.array([300, 200, 100]), np.array([20, 30, 10]))
    w = ServingWorkload.make("whisper-large-v3", "L40S", 1, trace=tr, engine="none")
    r = simulate(w, {"tp": 1}, details=True)
    assert r["infeasible"] == 0.0 and (r["finish_s"] > r["first_token_s"]).all()
    w2 = ServingWorkload.make("Flan-T5-XXL", "H100-SXM", 2, trace=tr, engine="none")
    assert simulate(w2, {"tp": 2})["tpot_mean_s"] > 0
    with pytest.raises(PlanError, match="encoder-decoder"):
        validate_plan(w2.model, w2.cluster, Plan(tp=1, pp=2))
    assert not w2.space().is_valid({**w2.space().default, "pp": 2, "tp": 1})
