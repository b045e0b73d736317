"""LLM descriptions for the serving simulator: shapes from a Hugging Face-style ``config.json``
or a built-in name, and per-layer FLOPs, bytes, weights and KV-cache sizes.

A :class:`ModelSpec` holds the architecture (decoder-only: dense with MHA/GQA/MQA, mixture of
experts with optional shared experts and leading dense layers, and multi-head latent attention
as in DeepSeek-V3/Kimi-K2; encoder-decoder: T5/BART/Whisper-style, see below). Counting
conventions (one multiply-add = 2 FLOPs):

* a linear layer of ``p`` weights costs ``2·p`` FLOPs per token and reads its weights once per
  forward pass (per device shard);
* attention of a query against ``c`` cached keys costs ``2·heads·(qk_dim + v_dim)·c`` FLOPs
  (scores and the weighted sum of values); a causal prefill of ``n`` new tokens after ``p``
  cached ones attends ``n·p + n·(n+1)/2`` query–key pairs;
* the KV cache holds ``kv_elems_per_token`` elements per layer per token
  (``2·kv_heads·head_dim`` for MHA/GQA, ``kv_lora_rank + qk_rope_dim`` for MLA);
* the LM head runs only on the last position of each sequence that emits a token (as vLLM).

Encoder-decoder models (``n_encoder_layers > 0``; ``n_layers`` counts decoder layers): encoder
layers have the decoder's width, heads and FFN (true of T5, BART and Whisper configs) and
bidirectional attention (``n²`` query–key pairs over ``n`` encoder tokens); each decoder layer
adds cross-attention (Q, K, V, O projections). A request's prompt is the encoder input, or a
fixed ``encoder_len`` frames (Whisper: 1,500 per 30 s of audio; its two input convolutions and
positional tables are left out). Prefill runs the encoder, projects every decoder layer's
cross-attention K and V from the encoder output once (``2·n·2·kv_heads·head_dim·hidden`` FLOPs
per decoder layer), and runs the decoder's first step; every decode step runs the decoder,
whose token attends its own previous tokens and the ``n`` encoder positions. The KV cache
holds both, so a sequence's cache is ``n + generated`` tokens of ``kv_elems_per_token`` per
decoder layer, and the engine treats it as a prompt of ``n`` tokens.

Built-in configs are public facts copied from each model's published ``config.json`` (or
paper); each entry names its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError

__all__ = ["BUILTIN_MODELS", "DTYPE_BYTES", "ModelSpec", "UnknownModelError", "dtype_bytes",
           "load_model", "model_names"]

#: bytes per element of the dtypes plans may choose (int4: two values per byte).
DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
                                 "int4": 0.5}


class UnknownModelError(MlsysgymError):
    """A model name that is not built in, or a config.json that cannot be read as an LLM."""


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype``; UnknownModelError for an unknown dtype."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise UnknownModelError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPE_BYTES)}") \
            from None


@dataclass(frozen=True)
class ModelSpec:
    """A transformer's shapes: decoder-only, or encoder-decoder when ``n_encoder_layers > 0``
    (see the module docstring for the counting rules)."""

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int                      # intermediate size of a dense FFN layer
    vocab: int
    n_experts: int = 0            # 0: dense model
    experts_per_token: int = 0
    moe_ffn: int = 0              # intermediate size of one expert
    n_shared_experts: int = 0
    first_dense_layers: int = 0   # leading layers with a dense FFN in an MoE model
    gated_ffn: bool = True        # SwiGLU (3 matrices) or GELU MLP (2 matrices)
    tie_embeddings: bool = False
    max_context: int = 4096
    # multi-head latent attention (0 = off)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_dim: int = 0
    qk_nope_dim: int = 0
    v_head_dim: int = 0
    n_encoder_layers: int = 0     # encoder-decoder: encoder layers (n_layers = decoder layers)
    encoder_len: int = 0          # fixed encoder input length (0: the request's prompt)
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ---- structure ----------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.n_experts > 0

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def is_encoder_decoder(self) -> bool:
        """True for an encoder-decoder model."""
        return self.n_encoder_layers > 0

    def encoder_tokens(self, prompt_tokens: Any) -> Any:
        """Tokens the engine prefills for requests with ``prompt_tokens`` prompt tokens: the
        prompt, or ``encoder_len`` for a fixed-length encoder."""
        if self.encoder_len:
            return prompt_tokens * 0 + self.encoder_len
        return prompt_tokens

    @property
    def n_moe_layers(self) -> int:
        """Layers whose FFN is a mixture of experts."""
        return self.n_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def n_dense_layers(self) -> int:
        """Layers whose FFN is dense."""
        return self.n_layers - self.n_moe_layers

    @property
    def ffn_mats(self) -> int:
        """Weight matrices per FFN (3 for a gated FFN)."""
        return 3 if self.gated_ffn else 2

    # ---- weights ------------------------------------------------------------------------
    @property
    def attn_params(self) -> int:
        """Weights of one layer's attention projections (Q, K, V, O; MLA's down/up projections)."""
        h, nh = self.hidden, self.n_heads
        if self.is_mla:
            qk = self.qk_nope_dim + self.qk_rope_dim
            q = h * nh * qk if not self.q_lora_rank else \
                h * self.q_lora_rank + self.q_lora_rank * nh * qk
            kv = h * (self.kv_lora_rank + self.qk_rope_dim) + \
                self.kv_lora_rank * nh * (self.qk_nope_dim + self.v_head_dim)
            return q + kv + nh * self.v_head_dim * h
        hd = self.head_dim
        return h * nh * hd + 2 * h * self.n_kv_heads * hd + nh * hd * h

    @property
    def cross_attn_params(self) -> int:
        """Weights of one decoder layer's cross-attention (0 for a decoder-only model)."""
        return self.attn_params if self.is_encoder_decoder else 0

    @property
    def cross_step_params(self) -> int:
        """Cross-attention weights a decoder step reads (Q and O; K and V project the encoder
        output once, at prefill)."""
        return 2 * self.hidden * self.n_heads * self.head_dim if self.is_encoder_decoder else 0

    @property
    def cross_kv_params(self) -> int:
        """Cross-attention K and V weights of one decoder layer (applied at prefill)."""
        return self.cross_attn_params - self.cross_step_params

    @property
    def encoder_layer_params(self) -> int:
        """Weights of one encoder layer (self-attention and a dense FFN, norms excluded)."""
        return self.attn_params + self.dense_ffn_params if self.is_encoder_decoder else 0

    @property
    def dense_ffn_params(self) -> int:
        """Weights of one dense FFN."""
        return self.ffn_mats * self.hidden * self.ffn

    @property
    def expert_params(self) -> int:
        """Weights of one routed expert."""
        return self.ffn_mats * self.hidden * self.moe_ffn

    @property
    def shared_params(self) -> int:
        """Weights of one MoE layer that every token uses besides its routed experts
        (shared experts and the router)."""
        return self.n_shared_experts * self.expert_params + self.hidden * self.n_experts

    @property
    def embed_params(self) -> int:
        """Token embedding plus (untied) LM head."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def encoder_params(self) -> int:
        """Encoder weights plus the decoder's cross-attention weights (0 for decoder-only):
        what an encoder-decoder holds besides a decoder-only model of its decoder's shape."""
        if not self.is_encoder_decoder:
            return 0
        enc_norms = 2 * self.hidden * self.n_encoder_layers + self.hidden
        return (self.n_encoder_layers * self.encoder_layer_params + enc_norms
                + self.n_layers * (self.cross_attn_params + self.hidden))

    def params(self) -> int:
        """Total weights (norm weights included)."""
        norms = 2 * self.hidden * self.n_layers + self.hidden + self.encoder_params
        return (self.n_layers * self.attn_params + self.n_dense_layers * self.dense_ffn_params
                + self.n_moe_layers * (self.n_experts * self.expert_params + self.shared_params)
                + self.embed_params + norms)

    def active_params(self) -> int:
        """Weights one token uses (routed experts: ``experts_per_token`` of them)."""
        norms = 2 * self.hidden * self.n_layers + self.hidden + self.encoder_params
        return (self.n_layers * self.attn_params + self.n_dense_layers * self.dense_ffn_params
                + self.n_moe_layers * (self.experts_per_token * self.expert_params
                                       + self.shared_params)
                + self.embed_params + norms)

    # ---- attention and KV cache -----------------------------------------------------------
    @property
    def kv_elems_per_token(self) -> int:
        """KV-cache elements per token per layer."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_dim
        return 2 * self.n_kv_heads * self.head_dim

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes per token of the whole model: ``layers · kv_elems · bytes``."""
        return self.n_layers * self.kv_elems_per_token * dtype_bytes(kv_dtype)

    @property
    def attn_flops_per_pair(self) -> int:
        """FLOPs of one query attending one key, all heads (scores + values). MLA is counted in
        its weight-absorbed form (scores over the latent + rope dims, values over the latent)."""
        if self.is_mla:
            return 2 * self.n_heads * (2 * self.kv_lora_rank + self.qk_rope_dim)
        return 4 * self.n_heads * self.head_dim

    # ---- whole-model FLOPs for a forward pass ------------------------------------------------
    def linear_flops_per_token(self) -> float:
        """FLOPs of every layer's projections and FFN for one token (LM head excluded)."""
        moe = self.experts_per_token * self.expert_params + self.shared_params
        return 2.0 * (self.n_layers * (self.attn_params + self.cross_step_params)
                      + self.n_dense_layers * self.dense_ffn_params + self.n_moe_layers * moe)

    def encoder_flops(self, n: int) -> float:
        """FLOPs of an encoder pass over ``n`` tokens (bidirectional: ``n²`` pairs) plus the
        decoder layers' cross-attention K/V projections of its output (0 for decoder-only)."""
        if not self.is_encoder_decoder:
            return 0.0
        layer = 2.0 * n * self.encoder_layer_params + self.attn_flops_per_pair * n * n
        return self.n_encoder_layers * layer + 2.0 * n * self.n_layers * self.cross_kv_params

    def prefill_flops(self, n: int, past: int = 0) -> float:
        """FLOPs of a causal prefill of ``n`` tokens after ``past`` cached ones, LM head on the
        last token only; for an encoder-decoder, the encoder pass over ``n`` tokens and the
        decoder's first step (attending the ``n`` encoder positions)."""
        if self.is_encoder_decoder:
            return self.encoder_flops(n) + self.decode_flops(n)
        pairs = n * past + n * (n + 1) / 2
        return (n * self.linear_flops_per_token() + self.n_layers * self.attn_flops_per_pair * pairs
                + 2.0 * self.hidden * self.vocab)

    def decode_flops(self, context: int) -> float:
        """FLOPs of generating one token with ``context`` tokens already cached (the new token
        attends ``context + 1`` keys)."""
        return (self.linear_flops_per_token()
                + self.n_layers * self.attn_flops_per_pair * (context + 1)
                + 2.0 * self.hidden * self.vocab)

    def decode_bytes(self, context: int, dtype: str = "bf16", kv_dtype: str = "bf16",
                     batch: int = 1) -> float:
        """Bytes a decode step of ``batch`` sequences of ``context`` cached tokens moves on one
        device holding the whole model: every weight once (all experts, once the batch routes
        to all of them; ``batch=1`` reads only the active experts), the KV cache read, the new
        KV written."""
        wb = dtype_bytes(dtype)
        if self.is_moe:
            routed = min(self.n_experts, batch * self.experts_per_token)
            weights = self.params() - self.n_moe_layers * (self.n_experts - routed) * \
                self.expert_params
        else:
            weights = self.params()
        weights -= self.vocab * self.hidden if not self.tie_embeddings else 0  # embedding: gather
        kv = self.kv_bytes_per_token(kv_dtype) * batch * (context + 1)
        return weights * wb + kv

    def with_name(self, name: str) -> ModelSpec:
        """A copy under another name."""
        return replace(self, name=name)


# ---- config.json ----------------------------------------------------------------------------
def _is_encoder_decoder(cfg: dict[str, Any]) -> bool:
    return bool(cfg.get("is_encoder_decoder")) or "num_decoder_layers" in cfg \
        or "decoder_layers" in cfg


def encdec_from_hf_config(cfg: dict[str, Any], name: str = "model") -> ModelSpec:
    """An encoder-decoder ModelSpec from a T5-style (``d_model``, ``d_ff``, ``d_kv``,
    ``num_heads``, ``num_layers``, ``num_decoder_layers``, ``feed_forward_proj``) or a
    BART/Whisper-style config (``encoder_layers``, ``decoder_layers``,
    ``decoder_attention_heads``, ``decoder_ffn_dim``, ``max_source_positions``)."""
    try:
        h = int(cfg["d_model"])
        if "decoder_layers" in cfg:  # BART / Whisper
            enc, dec = int(cfg["encoder_layers"]), int(cfg["decoder_layers"])
            heads = int(cfg["decoder_attention_heads"])
            ffn, hd = int(cfg["decoder_ffn_dim"]), h // heads
            gated = False
            enc_len = int(cfg.get("max_source_positions", 0)) if "num_mel_bins" in cfg else 0
            ctx = int(cfg.get("max_target_positions", cfg.get("max_position_embeddings", 1024)))
        else:  # T5
            enc = int(cfg["num_layers"])
            dec = int(cfg.get("num_decoder_layers") or enc)
            heads, ffn, hd = int(cfg["num_heads"]), int(cfg["d_ff"]), int(cfg["d_kv"])
            gated = str(cfg.get("feed_forward_proj", "relu")).startswith("gated")
            enc_len, ctx = 0, int(cfg.get("n_positions", 512))
        vocab = int(cfg["vocab_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise UnknownModelError(f"encoder-decoder config of {name!r} lacks or has a bad {e}") \
            from None
    return ModelSpec(name=name, n_layers=dec, hidden=h, n_heads=heads, n_kv_heads=heads,
                     head_dim=hd, ffn=ffn, vocab=vocab, gated_ffn=gated,
                     tie_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                     max_context=max(ctx, enc_len) + ctx, n_encoder_layers=enc,
                     encoder_len=enc_len,
                     source=str(cfg.get("_source", cfg.get("_provenance", "config.json"))))


def from_hf_config(cfg: dict[str, Any], name: str = "model") -> ModelSpec:
    """A ModelSpec from the keys of a Hugging Face ``config.json`` (Llama, Mistral, Mixtral,
    Qwen2/3, Qwen3-MoE, GPT-2/3-style, DeepSeek-V3/Kimi-K2-style MLA; T5, BART and Whisper
    encoder-decoders)."""
    if _is_encoder_decoder(cfg):
        return encdec_from_hf_config(cfg, name)

    def get(*keys: str, default: Any = None) -> Any:
        for k in keys:
            if k in cfg and cfg[k] is not None:
                return cfg[k]
        return default

    try:
        h = int(get("hidden_size", "n_embd", "d_model"))
        layers = int(get("num_hidden_layers", "n_layer", "num_layers"))
        heads = int(get("num_attention_heads", "n_head", "num_heads"))
    except TypeError:
        raise UnknownModelError(f"config of {name!r} lacks hidden_size / num_hidden_layers / "
                                f"num_attention_heads") from None
    kv = int(get("num_key_value_heads", default=heads))
    hd = int(get("head_dim", default=h // heads))
    experts = int(get("num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    mtype = str(get("model_type", default=""))
    gated = mtype not in ("gpt2", "gpt3", "opt", "gpt_neox", "bloom")
    ffn = int(get("intermediate_size", "n_inner", "ffn_dim", default=4 * h) or 4 * h)
    spec = ModelSpec(
        name=name, n_layers=layers, hidden=h, n_heads=heads, n_kv_heads=kv, head_dim=hd,
        ffn=ffn, vocab=int(get("vocab_size")), n_experts=experts,
        experts_per_token=int(get("num_experts_per_tok", "num_experts_per_token", default=0) or 0),
        moe_ffn=int(get("moe_intermediate_size", default=ffn) or ffn) if experts else 0,
        n_shared_experts=int(get("n_shared_experts", default=0) or 0),
        first_dense_layers=int(get("first_k_dense_replace", default=0) or 0),
        gated_ffn=gated, tie_embeddings=bool(get("tie_word_embeddings", default=False)),
        max_context=int(get("max_position_embeddings", "n_positions", default=4096)),
        q_lora_rank=int(get("q_lora_rank", default=0) or 0),
        kv_lora_rank=int(get("kv_lora_rank", default=0) or 0),
        qk_rope_dim=int(get("qk_rope_head_dim", default=0) or 0),
        qk_nope_dim=int(get("qk_nope_head_dim", default=0) or 0),
        v_head_dim=int(get("v_head_dim", default=0) or 0),
        source=str(cfg.get("_source", cfg.get("_provenance", "config.json"))))
    if spec.is_moe and spec.experts_per_token < 1:
        raise UnknownModelError(f"config of {name!r} has {experts} experts but no "
                                f"num_experts_per_tok")
    return spec


_L31 = "meta-llama/Llama-3.1-{}/config.json on the Hugging Face Hub"
_CONFIGS: dict[str, dict[str, Any]] = {
    "Llama-3.1-8B": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
                         "max_position_embeddings": 131072, "_source": _L31.format("8B")},
    "Llama-3.1-70B": {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64,
                          "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 128256,
                          "max_position_embeddings": 131072, "_source": _L31.format("70B")},
    "Llama-2-7B": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                       "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
                       "max_position_embeddings": 4096,
                       "_source": "meta-llama/Llama-2-7b-hf/config.json"},
    "Llama-2-13B": {"hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 40,
                        "num_key_value_heads": 40, "intermediate_size": 13824, "vocab_size": 32000,
                        "max_position_embeddings": 4096,
                        "_source": "meta-llama/Llama-2-13b-hf/config.json"},
    "Mistral-7B": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                       "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
                       "max_position_embeddings": 32768,
                       "_source": "mistralai/Mistral-7B-v0.1/config.json"},
    "Mixtral-8x7B": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
                         "num_local_experts": 8, "num_experts_per_tok": 2,
                         "max_position_embeddings": 32768,
                         "_source": "mistralai/Mixtral-8x7B-v0.1/config.json"},
    "Mistral-Large-2407": {"hidden_size": 12288, "num_hidden_layers": 88, "num_attention_heads": 96,
                               "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 28672,
                               "vocab_size": 32768, "max_position_embeddings": 131072,
                               "_source": "mistralai/Mistral-Large-Instruct-2407/config.json"},
    "Qwen3-32B": {"hidden_size": 5120, "num_hidden_layers": 64, "num_attention_heads": 64,
                      "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 25600,
                      "vocab_size": 151936, "max_position_embeddings": 40960,
                      "_source": "Qwen/Qwen3-32B/config.json"},
    "Qwen3-30B-A3B": {"hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
                          "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144,
                          "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
                          "vocab_size": 151936, "max_position_embeddings": 262144,
                          "_source": "Qwen/Qwen3-30B-A3B-Instruct-2507/config.json"},
    "GPT-3-175B": {"model_type": "gpt3", "hidden_size": 12288, "num_hidden_layers": 96,
                       "num_attention_heads": 96, "intermediate_size": 4 * 12288, "vocab_size": 50257,
                       "max_position_embeddings": 2048, "tie_word_embeddings": True,
                       "_source": "Brown et al., Language Models are Few-Shot Learners, 2020, "
                               "Table 2.1 (GPT-3 175B: 96 layers, d_model 12288, 96 heads of "
                               "128, FFN 4·d_model, context 2048; GPT-2 BPE vocabulary 50257)"},
    "Kimi-K2": {"hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 64,
                    "num_key_value_heads": 64, "intermediate_size": 18432, "moe_intermediate_size": 2048,
                    "n_routed_experts": 384, "num_experts_per_tok": 8, "n_shared_experts": 1,
                    "first_k_dense_replace": 1, "q_lora_rank": 1536, "kv_lora_rank": 512,
                    "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
                    "vocab_size": 163840, "max_position_embeddings": 131072,
                    "_source": "moonshotai/Kimi-K2-Instruct/config.json (1.04T parameters, "
                            "32B active)"},
}
_CONFIGS.update({
    "T5-11B": {"is_encoder_decoder": True, "d_model": 1024, "d_ff": 65536, "d_kv": 128,
               "num_heads": 128, "num_layers": 24, "num_decoder_layers": 24,
               "feed_forward_proj": "relu", "vocab_size": 32128, "n_positions": 512,
               "tie_word_embeddings": True,
               "_source": "google-t5/t5-11b/config.json (Raffel et al. 2020, Table 14: 11B)"},
    "Flan-T5-XXL": {"is_encoder_decoder": True, "d_model": 4096, "d_ff": 10240, "d_kv": 64,
                    "num_heads": 64, "num_layers": 24, "num_decoder_layers": 24,
                    "feed_forward_proj": "gated-gelu", "vocab_size": 32128, "n_positions": 512,
                    "tie_word_embeddings": False, "_source": "google/flan-t5-xxl/config.json"},
    "Whisper-large-v3": {"is_encoder_decoder": True, "d_model": 1280, "encoder_layers": 32,
                         "decoder_layers": 32, "encoder_attention_heads": 20,
                         "decoder_attention_heads": 20, "encoder_ffn_dim": 5120,
                         "decoder_ffn_dim": 5120, "vocab_size": 51866, "num_mel_bins": 128,
                         "max_source_positions": 1500, "max_target_positions": 448,
                         "tie_word_embeddings": True,
                         "_source": "openai/whisper-large-v3/config.json"},
})
_ALIASES = {"mixtral-8x7b-v0.1": "Mixtral-8x7B", "mistral-large-instruct-2407": "Mistral-Large-2407",
            "qwen3-30b-a3b-instruct-2507": "Qwen3-30B-A3B", "mistral-7b-v0.1": "Mistral-7B",
            "gpt3-175b": "GPT-3-175B", "gpt-3": "GPT-3-175B",
            "t5-11b": "T5-11B", "flan-t5-xxl": "Flan-T5-XXL",
            "whisper-large-v3": "Whisper-large-v3"}

BUILTIN_MODELS: tuple[str, ...] = tuple(_CONFIGS)


def model_names() -> list[str]:
    """The built-in model names."""
    return list(_CONFIGS)


def load_model(spec: str | Path | ModelSpec | dict[str, Any]) -> ModelSpec:
    """A ModelSpec from a built-in name (case-insensitive), a path to a ``config.json``, a
    config dict, or a ModelSpec (returned as is)."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, dict):
        return from_hf_config(spec, str(spec.get("_name", "model")))
    text = str(spec)
    lower = {k.lower(): k for k in _CONFIGS}
    key = lower.get(text.lower()) or _ALIASES.get(text.lower())
    if key:
        return from_hf_config(_CONFIGS[key], key)
    p = Path(text)
    if p.suffix == ".json" or p.is_file():
        try:
            cfg = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise UnknownModelError(f"cannot read model config {text!r}: {e}") from None
        if not isinstance(cfg, dict):
            raise UnknownModelError(f"model config {text!r} is not a JSON object")
        return from_hf_config(cfg, p.stem)
    raise UnknownModelError(f"unknown model {text!r}; use a config.json path or one of "
                            f"{', '.join(_CONFIGS)}")
