"""Serving-engine overheads outside the GPU roofline: front end, per-iteration CPU work,
eager-mode dispatch, and the KV-cache hand-off of a prefill/decode split.

The step-cost roofline (:mod:`.costs`) times GPU kernels only. A served request also spends
time in the HTTP front end and the tokenizer before the engine sees it, and every engine
iteration spends CPU time scheduling and preparing inputs before the GPU runs. An
:class:`EngineOverheads` holds those times; the presets in :data:`ENGINE_PRESETS` say which
apply to which vLLM version and which side of the request the TTFT clock starts on. Every
number comes from a published measurement (none from this project's validation set):

=======================  ==================================================================
``request_s`` 5.7 ms,    vLLM PR #54628 (vllm-project/vllm): a live ``vllm serve`` scraped
``tokenize_s_per_token`` for its server-side ``time_to_first_token_seconds`` around each
10 µs                    ``vllm bench serve`` run: client TTFT − server TTFT = 10.5, 12.2,
                         8.4, 12.0 and 11.0 ms (mean 10.8 ms, 512-token prompts).
                         Tokenization alone: 10 to 21 µs per token for 131-token prompts
                         (tenstorrent/tt-inference-server issue #2173, HF tokenizers, steady
                         state 10 µs); 512 × 10 µs = 5.1 ms of the 10.8 ms, so the fixed
                         HTTP/validation/streaming part is 5.7 ms.
``step_s`` 0.27 ms,      Vidur (microsoft/vidur ``data/profiling/a100/cpu_overheads.csv``),
``step_per_seq_s``       vLLM V0 CPU overheads measured per iteration, Llama-2-70B TP4 on
35.6 µs                  A100, medians of schedule + prepare-inputs: 0.556 ms at batch 8,
                         2.547 ms at batch 64 → 0.27 ms + 35.6 µs per sequence. Output
                         processing (detokenization) is not on the GPU's path: vLLM v0.6.0
                         overlaps it with the next step (async output processor, PR #7049;
                         but it delays the first token's timestamp, ``async_output`` below)
                         and V1 runs it in the front-end process.
``eager_op_s`` 35 µs     CPU time to dispatch one op (one kernel launch) from Python in an
                         iteration without CUDA graphs: a layer takes ``max(GPU time, ops ·
                         35 µs)``, its ops counted from vLLM's layer code
                         (:meth:`.costs.StepCost.layer_ops`: 12 for a Llama layer at TP > 1).
                         TensorRT-LLM PR #12653 (PyTorch model, 8 GPUs, nsys): "CPU dispatch
                         interval (~35us)" per kernel, so kernels of ~24 µs leave the GPU
                         waiting. Consistent with vLLM PR #1440 (CUDA graphs for Llama):
                         Llama-2-7B decode takes 12 ms per step eager vs 10.5 ms with CUDA
                         graphs (1.2 vs 1.05 s for 100 tokens); read as a launch-bound step,
                         12 ms / (32 layers · 10–12 ops) = 31–37.5 µs per op (an upper bound:
                         the step also embeds and samples). vLLM V0 (v0.6) captures CUDA graphs
                         for decode-only batches only, so every iteration with prefill tokens
                         runs eagerly; V1 runs mixed batches as piecewise CUDA graphs (no
                         eager dispatch). Raw per-op costs timed in a tight loop are lower
                         (10 µs: vLLM's custom all-reduce without graphs, SGLang PR #2904;
                         15 µs Python dispatch: torchcomms PR #2455); a model layer's Python
                         adds to them.
``eager_allreduce``      vLLM v0.6 runs iterations with prefill tokens eagerly, so each
(v0.6: on)               tensor-parallel all-reduce of them costs a published eager-launch
                         latency (vLLM's custom all-reduce on H100 without CUDA graphs, SGLang
                         PR #2904; table in :mod:`.collectives`) instead of the link's α-β
                         time. Decode iterations (CUDA graphs) and V1 keep the α-β model.
``act_scale_dynamic``    FP8/INT8 (W8A8) linear layers quantize their input activations
(off; on for             before each GEMM: one elementwise kernel per linear layer with a
``--quantization fp8``   static scale from the checkpoint, three with a dynamic per-tensor
on a bf16 checkpoint)    scale (vLLM ``scaled_fp8_quant(x, None)``: ``torch.zeros`` of the
                         scale, ``segmented_max_reduction``, ``scaled_fp8_quant_kernel``;
                         vLLM ``_custom_ops.py`` / ``csrc/quantization/fp8/common.cu``). Each
                         costs the calibrated elementwise floor plus its bytes (read bf16,
                         write fp8; the max-reduction reads only) at elementwise bandwidth
                         (:mod:`.calibration`); applied to the 4 dense linear layers of a layer
                         (QKV, output, gate-up, down; MoE experts not counted).
``async_output``         vLLM v0.6.0 processes an iteration's outputs in the *next*
(v0.6: on),              iteration (async output processor, PR #7049, on by default with
``output_s`` 0.226 ms,   CUDA graphs): ``ModelRunner.execute_model`` calls the callback that
``output_per_seq_s``     runs ``LLMEngine._process_model_outputs`` for step N after it has
70.2 µs                  launched step N+1's forward pass and logits, and the TTFT of the
                         Prometheus histogram is taken there (``_get_stats``: ``now -
                         arrival`` via ``get_last_latency(now)`` once the prefill is done).
                         So a first token made in step N is stamped at the start of step
                         N+1 + its CPU time (scheduling, inputs, eager dispatch) + the output
                         processing of step N's sequences; with no step N+1 (idle engine)
                         the queue is drained at once (end of N + output processing).
                         Output processing: Vidur ``cpu_overheads.csv`` (as ``step_s``),
                         Llama-2-70B TP4 medians of ``PROCESS_MODEL_OUTPUTS``: 0.787 ms at
                         batch 8, 4.716 ms at 64 → 0.226 ms + 70.2 µs per sequence (an
                         older vLLM than v0.6, which trimmed this path: possibly an
                         overestimate). Applied to the first token only (TPOT and end-to-end
                         latency are left as they were).
``mixed_attention``      vLLM V1 runs one varlen attention kernel over a batch's prefill
(V1: on)                 chunks and decodes together; beside a chunk the decodes run at the
                         device's *mixed* decode efficiency (``attn_decode_mixed`` of
                         :mod:`.calibration`: measured 2–3× slower than alone in published
                         kernel profiles — no split-KV decode path in the varlen kernel is a
                         likely cause; without such a profile the same as decodes alone).
                         vLLM v0.6 calls separate prefill and decode kernels.
``kv_setup_s`` 6.7 ms    KV hand-off of a P/D split besides bytes ÷ link bandwidth (vLLM
(V1), 30 ms (v0.6)       V1 NixlConnector): NIXL telemetry's mean transfer post duration
                         6.7 ms (vLLM RFC #50913, 2026). vLLM v0.6's first implementation
                         (PR #6170, Llama-70B TP4 on 8×H100, 2048-token prompts, QPS 1):
                         measured disaggregation overhead median 30.3 ms, of which the
                         bytes at NVLink speed take 0.4 ms; taken as 30 ms.
=======================  ==================================================================

Where the TTFT clock starts decides what counts: vLLM v0.6.0's Prometheus histogram
``time_to_first_token_seconds`` starts when the engine receives the (already tokenized)
request, so the front end is outside it (preset ``vllm-v0.6-server``); a client-side
benchmark (``vllm bench serve``'s ``mean_ttft_ms``) includes it (``vllm-v1-client``).
With a P/D split the decode server gets a second request through the same front end (vLLM's
disaggregation proxy resends the prompt to it), the KV cache follows (``kv_setup_s`` plus
bytes ÷ bandwidth), and the client's first token comes from the decode instance's first step.
vLLM V1 has no per-iteration CPU figure here: it overlaps scheduling with execution
(``step_s`` 0 is an assumption, stated).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from mlsysgym.core.errors import MlsysgymError

__all__ = ["DEFAULT_ENGINE", "ENGINE_PRESETS", "EngineOverheads", "UnknownEngineError",
           "load_engine"]


class UnknownEngineError(MlsysgymError):
    """An engine-overhead preset name that is not known, or a bad overhead value."""


@dataclass(frozen=True)
class EngineOverheads:
    """Times (s) a served request spends outside the GPU roofline, and the engine settings
    that change which kernels run (see the module table)."""

    name: str = "none"
    request_s: float = 0.0            # front end per request (HTTP, validation, streaming)
    tokenize_s_per_token: float = 0.0  # prompt tokenization, per prompt token
    step_s: float = 0.0               # CPU per iteration on the critical path
    step_per_seq_s: float = 0.0       # ... and per sequence in the batch
    eager_op_s: float = 0.0           # CPU dispatch per op, iterations without CUDA graphs
    kv_setup_s: float = 0.0           # P/D split: per-request KV-transfer setup
    eager_allreduce: bool = False     # prefill iterations' all-reduces launched eagerly
    act_scale_dynamic: bool = False   # W8A8 activations quantized with a dynamic scale
    async_output: bool = False        # V0 async output processor stamps the first token late
    mixed_attention: bool = False     # V1: decodes share one varlen kernel with prefill chunks
    output_s: float = 0.0             # ... its output processing per iteration
    output_per_seq_s: float = 0.0     # ... and per sequence of that iteration

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if k in _FLAGS:
                if not isinstance(v, bool):
                    raise UnknownEngineError(f"engine setting {k} must be true or false, "
                                             f"got {v!r}")
            elif k != "name" and not v >= 0.0:
                raise UnknownEngineError(f"engine overhead {k} must be >= 0, got {v}")

    def frontend_s(self, prompt_tokens: Any) -> Any:
        """Front-end time of requests with ``prompt_tokens`` prompt tokens (array-friendly)."""
        return self.request_s + self.tokenize_s_per_token * prompt_tokens

    @property
    def key(self) -> str:
        """A short id that changes with any value (the evaluator cache keys on it)."""
        vals = [f"{v:g}" for k, v in asdict(self).items() if k != "name"]
        return f"{self.name}[{','.join(vals)}]"


_FLAGS = ("eager_allreduce", "act_scale_dynamic", "async_output", "mixed_attention")
_FRONT = {"request_s": 5.7e-3, "tokenize_s_per_token": 10e-6}
_V0_STEP = {"step_s": 0.27e-3, "step_per_seq_s": 35.6e-6, "async_output": True,
            "output_s": 0.226e-3, "output_per_seq_s": 70.2e-6}

#: presets: ``none`` (the GPU roofline alone), vLLM V0 (v0.6) measured server-side (front end
#: outside the TTFT clock), vLLM V0 and V1 measured by a client.
ENGINE_PRESETS: dict[str, EngineOverheads] = {
    "none": EngineOverheads(),
    "vllm-v0.6-server": EngineOverheads("vllm-v0.6-server", eager_op_s=35e-6,
                                        kv_setup_s=30e-3, eager_allreduce=True, **_V0_STEP),
    "vllm-v0.6-client": EngineOverheads("vllm-v0.6-client", eager_op_s=35e-6,
                                        kv_setup_s=30e-3, eager_allreduce=True, **_V0_STEP,
                                        **_FRONT),
    "vllm-v1-client": EngineOverheads("vllm-v1-client", kv_setup_s=6.7e-3, mixed_attention=True,
                                      **_FRONT),
}
DEFAULT_ENGINE = "vllm-v1-client"


def _flag(key: str, value: Any) -> bool:
    """A boolean engine setting from a bool or a 0/1 or true/false string."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise UnknownEngineError(f"engine setting {key} must be true or false, got {value!r}")


def load_engine(spec: str | EngineOverheads | dict[str, Any] | None = None) -> EngineOverheads:
    """EngineOverheads from a preset name (None: :data:`DEFAULT_ENGINE`), a dict of fields
    (overrides on top of its ``preset``, default ``none``) or an EngineOverheads."""
    if isinstance(spec, EngineOverheads):
        return spec
    if spec is None:
        spec = DEFAULT_ENGINE
    if isinstance(spec, dict):
        d = dict(spec)
        base = load_engine(d.pop("preset", "none"))
        bad = sorted(set(d) - set(asdict(base)))
        if bad:
            raise UnknownEngineError(f"unknown engine overhead field(s) {bad}; fields are "
                                     f"{sorted(asdict(base))}")
        return replace(base, name=str(d.pop("name", base.name + "+custom")),
                       **{k: (_flag(k, v) if k in _FLAGS else float(v)) for k, v in d.items()})
    if spec not in ENGINE_PRESETS:
        raise UnknownEngineError(f"unknown engine preset {spec!r}; presets are "
                                 f"{', '.join(ENGINE_PRESETS)}")
    return ENGINE_PRESETS[spec]
