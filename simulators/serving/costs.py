"""Time of one forward pass (an engine iteration) of a batch, from a calibrated roofline.

For one device of a pipeline stage (``L/pp`` layers, tensor-parallel degree ``tp``) each
kernel takes ``t0 + max(flops / (eff_c · peak), bytes / (eff_m · bandwidth))`` with the
efficiencies and kernel floor ``t0`` of its class on that device
(:func:`.calibration.device_calibration`). Per layer:

* projections and a dense FFN: 4 GEMM kernels over the batch's ``T`` new tokens, weights read
  once (÷ tp), activations in and out;
* an MoE FFN: 3 fused-MoE kernels over the ``T·k`` routed tokens, reading the experts the
  batch activates (uniform routing: ``E·(1 − (1 − k/E)^T)`` of them), sharded over ``ep``
  devices (else over ``tp``), timed as weight streaming **plus** math at the efficiencies
  fitted on published fused-MoE measurements (H100: :mod:`.moe_kernels`; RTX PRO 6000: its
  kernel profile, :mod:`.calibration`); with expert
  parallelism over ``dp > 1`` replicas, vLLM's default EP exchange (``--all2all-backend
  allgather_reducescatter``, vLLM ``ParallelConfig``): an all-gather of every replica's
  ``T·h`` hidden states before the experts and a reduce-scatter after them, each
  ``latency + (dp − 1) · T·h · 2 bytes / bandwidth`` (ring; ``ep = tp`` needs none: the
  tensor-parallel all-reduce combines);
* attention: one prefill kernel (FLOPs of the causal query–key pairs; bytes of the KV it
  reads) and one decode kernel (bytes of the KV cache, FLOPs of one query per sequence); in
  an engine that runs them as one varlen kernel (``EngineOverheads.mixed_attention``, vLLM
  V1) the decodes of an iteration with prefill tokens run at the device's mixed-batch decode
  efficiency;
* 4 elementwise kernels (norms, rotary embedding, activation) over ``T·h`` values;
* with ``tp > 1``, two all-reduces of ``T·h`` bf16 values (:mod:`.collectives`): over the
  link, ``latency + 2(tp − 1)/tp · bytes / bandwidth``; in an engine that launches prefill
  iterations eagerly (``EngineOverheads.eager_allreduce``) those iterations pay the published
  eager latency of vLLM's custom all-reduce instead (at least the link time);
* with W8A8 weights (fp8, int8), the activation-quantization kernels before the 4 dense linear
  layers (1 kernel each with a static scale, 3 with a dynamic one: :mod:`.overheads`).

An encoder-decoder (T5, BART, Whisper) runs its encoder layers over the batch's prefill tokens
(bidirectional attention), projects the decoder's cross-attention K and V from them, and runs
its decoder layers over one token per sequence that emits one, attending self and cross KV
(:meth:`StepCost._encdec_stage`; pipeline parallelism is not offered for it).

The last stage adds the LM head (a GEMM over the sequences that emit a token), the gather of
its vocabulary-parallel logits over the TP group, and sampling. With ``pp > 1`` a batch
crosses the stages one after another plus one point-to-point activation transfer per
boundary; the step time returned is that latency. (The evaluator runs ``pp`` virtual engines
per replica, as vLLM does, so up to ``pp`` batches are in flight; with fewer busy engines the
idle stages are the pipeline bubble.)

Engine overheads (:mod:`.overheads`) add CPU time the GPU waits for: ``step_s +
step_per_seq_s · sequences`` per iteration (scheduling and input preparation). An iteration
with prefill tokens in an engine without CUDA graphs for it launches every kernel from Python:
a layer then takes ``max(its GPU time, ops · eager_op_s)`` (the GPU waits for the CPU when
its kernels are shorter than their dispatch; the ops are counted from vLLM's layer code,
:meth:`StepCost.layer_ops`); the excess counts as engine CPU time.

``active_s`` is the part of the step spent in roofline work (no floors, no communication, no
CPU overhead): the energy model charges TDP over it and idle power over the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from mlsysgym.simulators.serving.calibration import device_calibration, mixed_decode_eff
from mlsysgym.simulators.serving.collectives import allreduce_eager_s, allreduce_link_s
from mlsysgym.simulators.serving.hardware import Cluster
from mlsysgym.simulators.serving.models import DTYPE_BYTES, ModelSpec
from mlsysgym.simulators.serving.overheads import EngineOverheads
from mlsysgym.simulators.serving.plans import Plan

__all__ = ["COMPONENTS", "StepCost"]

#: the parts :meth:`StepCost.parts` splits an iteration's time into
COMPONENTS = ("compute", "floors", "comm", "cpu")

ACT_BYTES = 2.0  # activations in bf16


@dataclass
class StepCost:
    """The per-iteration time model of one model instance of a plan on a cluster."""

    model: ModelSpec
    cluster: Cluster
    plan: Plan
    overheads: EngineOverheads = field(default_factory=EngineOverheads)

    def __post_init__(self) -> None:
        m, p, dev = self.model, self.plan, self.cluster.device
        self.tp, self.pp = p.tp, p.pp
        self.layers = m.n_layers / p.pp
        self.wb = DTYPE_BYTES[p.dtype]
        self.kb = DTYPE_BYTES[p.kv_dtype]
        cal = device_calibration(dev)
        gemm = cal["gemm_fp8" if p.dtype in ("fp8", "int8") else "gemm"]
        self.peak_lin = dev.peak(p.dtype if p.dtype in ("fp8", "int8") else "bf16")
        self.peak_attn = dev.peak("fp8" if p.kv_dtype == "fp8" and "fp8" in dev.flops else "bf16")
        self.peak_bf16 = dev.peak("bf16")
        self.bw = dev.mem_bw
        self.g_ec, self.g_em, self.g_t0 = gemm["eff_compute"], gemm["eff_memory"], gemm["t0_s"]
        self.moe_em, self.moe_ec = cal["fused_moe"]["eff_memory"], cal["fused_moe"]["eff_compute"]
        ap, ad, el = cal["attn_prefill"], cal["attn_decode"], cal["elementwise"]
        self.ap_ec, self.ap_t0 = ap["eff_compute"], ap["t0_s"]
        self.ad_ec, self.ad_em, self.ad_t0 = ad["eff_compute"], ad["eff_memory"], ad["t0_s"]
        # decodes beside a prefill chunk in one varlen kernel (engines that run it so)
        self.adm_em = (mixed_decode_eff(cal["attn_decode_mixed"], m.n_heads / m.n_kv_heads)
                       if self.overheads.mixed_attention else self.ad_em)
        self.el_em, self.el_t0 = el["eff_memory"], el["t0_s"]
        h = m.hidden
        # per-layer weights (local to one device)
        self.dense_w = (m.attn_params + (m.dense_ffn_params if not m.is_moe else m.shared_params))
        self.dense_w_layers = (m.n_layers * (m.attn_params + m.cross_step_params)
                               + m.n_dense_layers * m.dense_ffn_params
                               + m.n_moe_layers * m.shared_params) / m.n_layers
        self.enc_w_layer = m.encoder_layer_params
        self.moe_frac = m.n_moe_layers / m.n_layers
        self.ep = p.ep if m.is_moe else 1
        self.expert_shard = self.ep if self.ep > 1 else p.tp
        self.local_experts = m.n_experts / self.ep if m.is_moe else 0
        # EP dispatch/combine spans the dp replicas of a stage (tp ranks hold the same tokens)
        self.ep_groups = self.ep // p.tp if self.ep > 1 else 1
        qkv = (m.n_heads + 2 * m.n_kv_heads) * m.head_dim
        ffn_local = (m.ffn if not m.is_moe else m.moe_ffn * m.experts_per_token)
        self.act_per_token = ACT_BYTES * (4 * h + (qkv + m.n_heads * m.head_dim) / p.tp
                                          + 3 * ffn_local / p.tp)
        if m.is_mla:
            kv_frac = 1.0
        else:
            kv_frac = max(m.n_kv_heads / p.tp, 1.0) / m.n_kv_heads
        self.kv_layer = m.kv_elems_per_token * kv_frac * self.kb  # bytes/token/layer/device
        self.pair_flops = m.attn_flops_per_pair / p.tp
        bw_l, lat_l = self.cluster.group_link(p.tp)
        self.tp_bw, self.tp_lat = bw_l, lat_l
        bw_e, lat_e = self.cluster.group_link(p.dp * p.tp if self.ep > 1 else 1)
        self.ep_bw, self.ep_lat = bw_e, lat_e
        bw_p, lat_p = self.cluster.group_link(p.tp * p.pp)
        self.pp_bw, self.pp_lat = bw_p, lat_p
        self.head_w = m.vocab * h / p.tp
        # W8A8 activation quantization before the dense linear layers: elements per token of
        # their inputs (QKV and gate-up read h, output n_heads·head_dim/tp, down ffn/tp)
        self.quant = p.dtype in ("fp8", "int8")
        ffn_in = (m.ffn if not m.is_moe else 0.0) / p.tp
        self.quant_inputs = [h, m.n_heads * m.head_dim / p.tp, h] + ([ffn_in] if ffn_in else [])
        self.quant_dynamic = self.overheads.act_scale_dynamic
        self.eager_ar = self.overheads.eager_allreduce and p.tp <= self.cluster.per_node
        self.eager_op_s = self.overheads.eager_op_s
        # CPU time to launch a whole eager prefill iteration (the async output stamp waits
        # for it)
        self.prefill_dispatch_s = ((m.n_layers + m.n_encoder_layers) * self.eager_op_s
                                   * float(self.layer_ops(True, 0.0, m.is_moe)))

    # ---- the model -----------------------------------------------------------------------
    def _roof(self, flops, nbytes, peak, ec, em):
        return np.maximum(flops / (peak * ec), nbytes / (self.bw * em))

    def step(self, tokens, logits, pre_pairs, pre_kv, dec_n, dec_kv, seqs=None):
        """(time_s, active_s) of one iteration; every argument may be an array (broadcast):
        ``tokens`` new tokens in the batch, ``logits`` sequences emitting a token,
        ``pre_pairs`` causal query–key pairs of the prefill chunks and ``pre_kv`` the KV
        tokens they read, ``dec_n`` decoding sequences and ``dec_kv`` the KV tokens they read,
        ``seqs`` sequences in the batch (default ``logits``; the per-sequence CPU overhead)."""
        total, act, _comm, _cpu = self._parts(tokens, logits, pre_pairs, pre_kv, dec_n, dec_kv,
                                              seqs)
        return total, act

    def parts(self, tokens, logits, pre_pairs, pre_kv, dec_n, dec_kv, seqs=None
              ) -> dict[str, np.ndarray]:
        """One iteration's time split into :data:`COMPONENTS` (same arguments as
        :meth:`step`; the parts sum to its time): ``compute`` the roofline work (GEMMs,
        attention, elementwise, LM head), ``floors`` the per-kernel floors, ``comm`` the
        collectives and pipeline transfers, ``cpu`` the engine's CPU time (:mod:`.overheads`)."""
        total, act, comm, cpu = self._parts(tokens, logits, pre_pairs, pre_kv, dec_n, dec_kv,
                                            seqs)
        return {"compute": act, "floors": total - act - comm - cpu, "comm": comm, "cpu": cpu}

    def _parts(self, tokens, logits, pre_pairs, pre_kv, dec_n, dec_kv, seqs):
        """(time, active, communication, CPU) of one iteration (see :meth:`step`)."""
        m = self.model
        T = np.asarray(tokens, float)
        tp = self.tp
        pre_pairs = np.asarray(pre_pairs, float)
        S = np.asarray(logits, float)
        if m.is_encoder_decoder:
            stage, act, comm, eager = self._encdec_stage(T, S, pre_pairs, pre_kv, dec_n, dec_kv)
        else:
            t_layer, active, c_layer, e_layer = self._layer(T, pre_pairs, pre_kv, dec_n,
                                                            dec_kv, self.dense_w_layers, m.is_moe)
            stage = self.layers * t_layer
            act = self.layers * active
            comm = self.layers * c_layer
            eager = self.layers * e_layer
        comm = self.pp * comm
        # LM head + sampling (last stage)
        head = self._roof(2.0 * S * self.head_w, self.head_w * self.wb + S * m.vocab * 4.0 / tp,
                          self.peak_lin, self.g_ec, self.g_em)
        total = self.pp * stage + self.g_t0 + head + 2 * self.el_t0
        if tp > 1:  # vocab-parallel logits gathered on one rank (bf16)
            gather = self.tp_lat + (tp - 1) / tp * S * m.vocab * ACT_BYTES / self.tp_bw
            total = total + gather
            comm = comm + gather
        act_total = self.pp * act + head
        if self.pp > 1:
            p2p = (self.pp - 1) * (self.pp_lat + T * m.hidden * ACT_BYTES / self.pp_bw)
            total = total + p2p
            comm = comm + p2p
        cpu = self.cpu_s(S if seqs is None else seqs) + self.pp * eager
        return total + cpu, act_total, comm, cpu

    def layer_ops(self, has_pre, dec_n, moe):
        """Ops one layer dispatches from Python when it runs eagerly (vLLM's layer code: one
        kernel launch each, except where noted): 4 GEMMs, 2 norms, rotary embedding,
        SiLU-and-mul, the KV-cache write, a prefill and a decode attention kernel when the
        batch has them, 2 all-reduces (tp > 1; vLLM's eager custom all-reduce is one op
        that copies and reduces), an MoE FFN's 7 (router GEMM, top-k, block alignment, 2
        fused-MoE kernels, SiLU-and-mul, sum) and the EP exchange's 2, and before each
        dense linear layer of W8A8 weights the activation quantization's 1 op (static scale)
        or 2 (dynamic: zero-filled scale, then one op that launches the max-reduction and
        the quantize kernel)."""
        k = 9 + np.where(has_pre, 1, 0) + np.where(np.asarray(dec_n, float) > 0, 1, 0)
        k = k + (2 if self.tp > 1 else 0) + (7 if moe else 0) \
            + (2 if moe and self.ep_groups > 1 else 0)
        if self.quant:
            k = k + len(self.quant_inputs) * (2 if self.quant_dynamic else 1)
        return k

    def _layer(self, T, pre_pairs, pre_kv, dec_n, dec_kv, w_layer, moe):
        """(time, active time, communication time, eager CPU excess) of one layer over ``T``
        new tokens with ``w_layer`` dense weights (projections + dense FFN) per layer, an MoE
        FFN if ``moe``; the time excludes the excess (kernel dispatch beyond the GPU time of
        an eager iteration, see the module docstring)."""
        m = self.model
        tp = self.tp
        comm = 0.0
        # dense projections + FFN
        lin_f = 2.0 * T * w_layer / tp
        lin_b = w_layer / tp * self.wb + T * self.act_per_token
        lin = self._roof(lin_f, lin_b, self.peak_lin, self.g_ec, self.g_em)
        t_layer = 4 * self.g_t0 + lin
        active = lin
        if moe:
            k, E = m.experts_per_token, m.n_experts
            tok_global = T * (self.ep / tp if self.ep > 1 else 1.0)
            frac = 1.0 - np.power(1.0 - k / E, tok_global)
            moe_f = 2.0 * T * k * m.expert_params / tp
            moe_b = (self.local_experts * frac if self.ep > 1 else E * frac) * \
                m.expert_params / (1 if self.ep > 1 else tp) * self.wb
            # fused MoE: weight streaming plus math, not overlapped (:mod:`.moe_kernels`)
            moe = moe_b / (self.bw * self.moe_em) + moe_f / (self.peak_lin * self.moe_ec)
            a2a = np.where(T > 0, 2 * (self.ep_lat + (self.ep_groups - 1) * T * m.hidden
                                       * ACT_BYTES / self.ep_bw), 0.0) \
                if self.ep_groups > 1 else 0.0
            t_layer = t_layer + self.moe_frac * (3 * self.g_t0 + moe + a2a)
            active = active + self.moe_frac * moe
            comm = comm + self.moe_frac * a2a
        # attention
        has_pre = pre_pairs > 0
        ap = self._roof(pre_pairs * self.pair_flops, np.asarray(pre_kv, float) * self.kv_layer,
                        self.peak_attn, self.ap_ec, self.g_em)
        dec_n = np.asarray(dec_n, float)
        dec_kv = np.asarray(dec_kv, float)
        ad = self._roof(dec_kv * self.pair_flops, dec_kv * self.kv_layer, self.peak_attn,
                        self.ad_ec, np.where(has_pre, self.adm_em, self.ad_em))
        t_layer = t_layer + np.where(has_pre, self.ap_t0 + ap, 0.0) + \
            np.where(dec_n > 0, self.ad_t0 + ad, 0.0)
        active = active + ap + ad
        # elementwise
        el = T * m.hidden * ACT_BYTES * 2 / (self.bw * self.el_em)
        t_layer = t_layer + 4 * (self.el_t0 + el)
        active = active + 4 * el
        if self.quant:
            q_t, q_act = self._act_quant(T)
            t_layer = t_layer + q_t
            active = active + q_act
        # tensor-parallel all-reduces
        if tp > 1:
            ar = self.allreduce_s(T * m.hidden * ACT_BYTES, has_pre)
            t_layer = t_layer + 2 * ar
            comm = comm + 2 * ar
        eager = 0.0
        if self.eager_op_s:
            dispatch = self.layer_ops(has_pre, dec_n, moe) * self.eager_op_s
            eager = np.where(has_pre, np.maximum(dispatch - t_layer, 0.0), 0.0)
        return t_layer, active, comm, eager

    def allreduce_s(self, nbytes, has_pre):
        """One tensor-parallel all-reduce of ``nbytes`` (:mod:`.collectives`): the link's α-β
        time, or for iterations with prefill tokens in an eager engine the published eager
        latency (at least the link time)."""
        link = allreduce_link_s(nbytes, self.tp, self.tp_bw, self.tp_lat)
        if not self.eager_ar:
            return link
        return np.where(has_pre, np.maximum(allreduce_eager_s(nbytes, self.tp), link), link)

    def _act_quant(self, T):
        """(time, active time) of one layer's W8A8 activation quantization over ``T`` tokens:
        per dense linear layer's input of ``n`` elements per token, a quantize kernel (read
        bf16, write 8-bit: 3 bytes per element) and, with a dynamic scale, a zero-fill of the
        scale and a max-reduction (2 bytes per element)."""
        elems = T * float(sum(self.quant_inputs))
        per_byte = 1.0 / (self.bw * self.el_em)
        n_lin = len(self.quant_inputs)
        act = 3.0 * elems * per_byte
        kernels = n_lin
        if self.quant_dynamic:
            act = act + 2.0 * elems * per_byte
            kernels = 3 * n_lin
        return kernels * self.el_t0 + act, act

    def _encdec_stage(self, T, S, pre_pairs, pre_kv, dec_n, dec_kv):
        """(time, active time, communication time, eager CPU excess) of an encoder-decoder's
        layers: the encoder over the prefill tokens (``T − dec_n``; bidirectional, ``2×`` the
        causal pairs = ``n² + n``), the cross-attention K/V projection of its output in every
        decoder layer, and the decoder over one token per sequence emitting one (``S``),
        attending its self and cross KV (a finishing prompt's cross KV taken as ``pre_kv``)."""
        m = self.model
        T_e = T - np.asarray(dec_n, float)
        enc, enc_act, enc_comm, enc_eager = self._layer(T_e, 2.0 * pre_pairs, pre_kv, 0.0,
                                                        0.0, self.enc_w_layer, False)
        xw = m.n_layers * m.cross_kv_params / self.tp
        cross = self._roof(2.0 * T_e * xw, xw * self.wb + T_e * m.hidden * ACT_BYTES,
                           self.peak_lin, self.g_ec, self.g_em)
        run = T_e > 0
        dec_kv = np.asarray(dec_kv, float) + np.where(run, np.asarray(pre_kv, float), 0.0)
        dec, dec_act, dec_comm, _ = self._layer(S, 0.0, 0.0, S, dec_kv, self.dense_w_layers,
                                                False)
        stage = self.layers * dec + np.where(run, m.n_encoder_layers * enc + self.g_t0
                                             + cross, 0.0)
        act = self.layers * dec_act + np.where(run, m.n_encoder_layers * enc_act + cross, 0.0)
        comm = self.layers * dec_comm + np.where(run, m.n_encoder_layers * enc_comm, 0.0)
        return stage, act, comm, np.where(run, m.n_encoder_layers * enc_eager, 0.0)

    def cpu_s(self, seqs):
        """CPU time of an iteration of ``seqs`` sequences before its GPU work starts
        (scheduling and input preparation, :mod:`.overheads`)."""
        o = self.overheads
        return o.step_s + o.step_per_seq_s * np.asarray(seqs, float)

    def dispatch_s(self, has_pre):
        """CPU time to launch the kernels of an iteration (``has_pre``: with prefill tokens,
        no decodes) that runs eagerly, 0 for a CUDA-graph iteration."""
        return np.where(has_pre, self.prefill_dispatch_s, 0.0)
