"""Serving plans: parallelism, dtypes and batching limits, their DesignSpace, and a validator.

A plan serves one model on a cluster with ``dp`` replicas, each ``pp`` pipeline stages of
``tp`` tensor-parallel devices; an MoE model may instead shard its experts over all
``ep = dp·tp`` devices of a stage (expert parallelism, attention stays data parallel, as
vLLM's ``--enable-expert-parallel``). With prefill/decode disaggregation (``pd_disagg=1``)
every replica is a prefill instance plus a decode instance of the same shape, so a plan uses
``dp·tp·pp·(1 + pd_disagg)`` devices, which must equal the cluster's.

Memory per device (the largest pipeline stage): weights (non-expert weights ÷ tp, expert
weights ÷ (ep, else tp), embedding and LM head ÷ tp), activations reserved for one batch of
``max_batched_tokens`` tokens plus the logits of ``max_num_seqs`` sequences, a fixed 1 GiB of
runtime overhead (CUDA context, graphs, communication buffers: an assumption), and the KV
cache in 16-token blocks with what is left of ``gpu_mem_util`` × capacity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.params import Categorical, Integer, PowerOfTwo
from mlsysgym.core.space import DesignSpace
from mlsysgym.simulators.serving.hardware import Cluster
from mlsysgym.simulators.serving.models import DTYPE_BYTES, ModelSpec

__all__ = ["BLOCK_TOKENS", "MemoryPlan", "Plan", "PlanError", "memory_columns", "plan_space",
           "validate_plan"]

BLOCK_TOKENS = 16
RUNTIME_OVERHEAD_BYTES = 1 << 30
WEIGHT_DTYPES = ("bf16", "fp8", "int8", "int4")
KV_DTYPES = ("bf16", "fp8")


class PlanError(MlsysgymError):
    """A plan that cannot run: a degree that does not divide the model, the wrong number of
    devices, or a model that does not fit in memory; the message says which."""


@dataclass(frozen=True)
class Plan:
    """One serving plan (see the module docstring)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    pd_disagg: int = 0
    dtype: str = "bf16"
    kv_dtype: str = "bf16"
    max_num_seqs: int = 256
    max_batched_tokens: int = 2048
    chunked_prefill: bool = True
    gpu_mem_util: float = 0.9

    @classmethod
    def from_design(cls, design: Mapping[str, Any], n_devices: int | None = None) -> Plan:
        """A Plan from a plan dict or a design of :func:`plan_space` (which leaves ``dp`` out —
        it is ``n_devices / (tp·pp·(1 + pd_disagg))`` — and says ``expert_parallel``
        instead of ``ep``). Unknown keys are rejected, missing ones defaulted."""
        d = dict(design)
        if "expert_parallel" in d:
            d["_ep_on"] = bool(d.pop("expert_parallel"))
        if "dp" not in d and n_devices is not None:
            per = int(d.get("tp", 1)) * int(d.get("pp", 1)) * (1 + int(d.get("pd_disagg", 0)))
            d["dp"] = max(n_devices // per, 1)
        if d.pop("_ep_on", False):
            d["ep"] = int(d["dp"]) * int(d.get("tp", 1))
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise PlanError(f"unknown plan field(s) {bad}; fields are {sorted(known)}")
        return cls(**{k: (bool(v) if k == "chunked_prefill" else v) for k, v in d.items()})

    def space_design(self) -> dict[str, Any]:
        """The plan as a design of :func:`plan_space` (no dp, ``expert_parallel``)."""
        d = asdict(self)
        for k in ("dp", "gpu_mem_util"):
            d.pop(k)
        d["expert_parallel"] = d.pop("ep") > 1
        return d

    def as_design(self) -> dict[str, Any]:
        """The plan as a design dict."""
        return asdict(self)

    @property
    def instance_devices(self) -> int:
        """Devices of one model instance (one replica's prefill or decode part)."""
        return self.tp * self.pp

    @property
    def n_devices(self) -> int:
        """Devices the plan uses."""
        return self.dp * self.tp * self.pp * (1 + int(self.pd_disagg))


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device of the largest stage and the KV-cache capacity it leaves."""

    weight_bytes: float
    activation_bytes: float
    kv_bytes_per_token: float     # per device (its layers and KV heads)
    kv_tokens: int                # KV-cache capacity of one instance, in tokens
    budget_bytes: float


def memory_columns(model: ModelSpec, mem_bytes: float, cols: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Vectorized memory plan over plan columns (tp, pp, dp, ep, dtype, kv_dtype,
    max_num_seqs, max_batched_tokens, gpu_mem_util): weight, activation, per-token KV bytes
    per device and KV capacity in tokens (negative when the weights do not fit)."""
    tp = np.asarray(cols["tp"], float)
    pp = np.asarray(cols["pp"], float)
    dp = np.asarray(cols["dp"], float)
    ep = np.asarray(cols.get("ep", np.ones_like(tp)), float)
    wb = np.array([DTYPE_BYTES[d] for d in np.asarray(cols["dtype"]).tolist()])
    kb = np.array([DTYPE_BYTES[d] for d in np.asarray(cols["kv_dtype"]).tolist()])
    util = np.asarray(cols.get("gpu_mem_util", np.full(len(tp), 0.9)), float)
    seqs = np.asarray(cols["max_num_seqs"], float)
    mbt = np.asarray(cols["max_batched_tokens"], float)
    h, L = model.hidden, model.n_layers
    per_layer = model.attn_params + 2 * h
    dense_layers = model.n_dense_layers * model.dense_ffn_params
    moe_shared = model.n_moe_layers * model.shared_params
    experts = model.n_moe_layers * model.n_experts * model.expert_params
    expert_shard = np.where(ep > 1, ep, tp)
    layer_w = (L * per_layer + dense_layers + moe_shared + model.encoder_params) / tp \
        + experts / expert_shard
    head = np.where(pp > 1, model.vocab * h, model.embed_params) / tp
    weights = (layer_w / pp + head) * wb
    ffn_local = max(model.ffn, model.moe_ffn * max(model.experts_per_token, 1))
    act = mbt * (6 * h + 3 * ffn_local / tp) * 2.0 + seqs * model.vocab * 4.0 / tp \
        + RUNTIME_OVERHEAD_BYTES
    if model.is_mla:
        kv_heads_frac = np.ones_like(tp)
    else:
        kv_heads_frac = np.maximum(model.n_kv_heads / tp, 1.0) / model.n_kv_heads
    kv_tok = (L / pp) * model.kv_elems_per_token * kv_heads_frac * kb
    budget = util * mem_bytes
    free = budget - weights - act
    blocks = np.floor(free / (kv_tok * BLOCK_TOKENS))
    kv_tokens = np.where(free > 0, blocks * BLOCK_TOKENS, -1.0)
    del dp
    return {"weight_bytes": weights, "activation_bytes": act, "kv_bytes_per_token": kv_tok,
            "kv_tokens": kv_tokens, "budget_bytes": budget}


def structural_ok(model: ModelSpec, n_devices: int, cols: Mapping[str, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(ok, reason index) of the divisibility and device-count rules, vectorized; reason
    indexes :data:`REASONS` (0 when ok)."""
    tp = np.asarray(cols["tp"], np.int64)
    pp = np.asarray(cols["pp"], np.int64)
    dp = np.asarray(cols["dp"], np.int64)
    ep = np.asarray(cols.get("ep", np.ones_like(tp)), np.int64)
    pd = np.asarray(cols.get("pd_disagg", np.zeros_like(tp)), np.int64)
    reason = np.zeros(len(tp), np.int64)
    kv = model.n_kv_heads

    def mark(bad: np.ndarray, code: int) -> None:
        reason[(reason == 0) & bad] = code

    mark(dp * tp * pp * (1 + pd) != n_devices, 1)
    mark(model.n_heads % tp != 0, 2)
    if not model.is_mla:
        mark((kv % tp != 0) & (tp % kv != 0), 3)
    mark(model.n_layers % pp != 0, 4)
    if model.is_moe:
        mark((ep != 1) & (ep != dp * tp), 5)
        mark(model.n_experts % ep != 0, 6)
    else:
        mark(ep != 1, 7)
    if model.is_encoder_decoder:
        mark(pp != 1, 8)
    return reason == 0, reason


REASONS = ("", "dp·tp·pp·(1+pd_disagg) must equal the cluster's {n} devices",
           "tp must divide the {heads} attention heads", ("tp and the {kv} KV heads must divide "
           "one another"), "pp must divide the {layers} layers",
           "ep must be 1 or dp·tp (experts shard over every device of a stage)",
           "ep must divide the {experts} experts", "ep must be 1 for a dense model",
           "pp must be 1 for an encoder-decoder model")


def validate_plan(model: ModelSpec, cluster: Cluster, plan: Plan, min_context: int = 0
                  ) -> MemoryPlan:
    """The plan's MemoryPlan, or PlanError with a one-line reason. ``min_context``: the KV
    cache must hold at least this many tokens (the longest request)."""
    for k in ("tp", "pp", "dp", "ep", "max_num_seqs", "max_batched_tokens"):
        if int(getattr(plan, k)) < 1:
            raise PlanError(f"{k} must be >= 1, got {getattr(plan, k)}")
    for k, allowed in (("dtype", DTYPE_BYTES), ("kv_dtype", DTYPE_BYTES)):
        if getattr(plan, k) not in allowed:
            raise PlanError(f"{k}={getattr(plan, k)!r} is not one of {sorted(allowed)}")
    if not 0.1 <= plan.gpu_mem_util <= 1.0:
        raise PlanError(f"gpu_mem_util must be in [0.1, 1], got {plan.gpu_mem_util}")
    cols = {k: np.array([v]) for k, v in plan.as_design().items()}
    ok, reason = structural_ok(model, cluster.n_devices, cols)
    if not ok[0]:
        msg = REASONS[int(reason[0])].format(n=cluster.n_devices, heads=model.n_heads,
                                              kv=model.n_kv_heads, layers=model.n_layers,
                                              experts=model.n_experts)
        raise PlanError(f"plan {_short(plan)} for {model.name}: {msg}")
    mem = {k: float(v[0]) for k, v in memory_columns(model, cluster.device.mem_bytes,
                                                     cols).items()}
    need = max(min_context, BLOCK_TOKENS) * plan.pp  # pp virtual engines split the cache
    if mem["kv_tokens"] < need:
        gib = 1 << 30
        raise PlanError(
            f"plan {_short(plan)} for {model.name} does not fit {cluster.device.name}: weights "
            f"{mem['weight_bytes'] / gib:.1f} GiB + activations "
            f"{mem['activation_bytes'] / gib:.1f} GiB leave room for "
            f"{max(mem['kv_tokens'], 0):.0f} KV tokens per instance, need {need} "
            f"(of {mem['budget_bytes'] / gib:.1f} GiB usable); raise tp/pp or lower the dtype")
    return MemoryPlan(mem["weight_bytes"], mem["activation_bytes"], mem["kv_bytes_per_token"],
                      int(mem["kv_tokens"]), mem["budget_bytes"])


def _short(plan: Plan) -> str:
    s = f"dp{plan.dp}·tp{plan.tp}·pp{plan.pp}"
    if plan.ep > 1:
        s += f"·ep{plan.ep}"
    if plan.pd_disagg:
        s += " (P/D split)"
    return s + f" {plan.dtype}/{plan.kv_dtype}"


def plan_space(model: ModelSpec, n_devices: int, max_degree: int | None = None,
               dtypes: tuple[str, ...] = WEIGHT_DTYPES, kv_dtypes: tuple[str, ...] = KV_DTYPES
               ) -> DesignSpace:
    """The DesignSpace of plans for ``model`` on ``n_devices`` devices: power-of-two ``tp``
    and ``pp`` (up to ``n_devices`` or ``max_degree``), P/D disaggregation, expert parallelism
    (MoE only: experts over every device of a stage), weight/KV dtypes, batching limits and
    chunked prefill. ``dp`` is not a knob: it fills the devices,
    ``dp = n_devices / (tp·pp·(1 + pd_disagg))`` (:meth:`Plan.from_design`). Divisibility
    rules are constraints; memory fit is checked by the evaluator (``infeasible``).
    ``dtypes`` / ``kv_dtypes`` restrict the dtypes (e.g. ``("bf16",)``)."""
    from mlsysgym.core.constraints import Constraint

    top = 1 << int(np.log2(max_degree or n_devices))
    kv = model.n_kv_heads
    cons = [(f"tp * pp * (1 + pd_disagg) <= {n_devices}",
             f"tp·pp·(1+pd_disagg) must not exceed {n_devices} devices"),
            (f"{model.n_heads} % tp == 0", f"tp must divide {model.n_heads} heads"),
            (f"{model.n_layers} % pp == 0", f"pp must divide {model.n_layers} layers")]
    if not model.is_mla:
        cons.append((f"({kv} % tp == 0) or (tp % {kv} == 0)",
                     f"tp and the {kv} KV heads must divide one another"))
    if model.is_encoder_decoder:
        cons.append(("pp == 1", "pp must be 1 for an encoder-decoder model"))
    if model.is_moe:
        cons.append(((f"(not expert_parallel) or ({model.n_experts} % "
                     f"({n_devices} / (pp * (1 + pd_disagg))) == 0)"),
                     "expert parallelism needs dp·tp to divide the experts"))
    params = [PowerOfTwo("tp", 1, top), PowerOfTwo("pp", 1, top), Integer("pd_disagg", 0, 1),
              Categorical("expert_parallel", (False, True) if model.is_moe else (False,)),
              Categorical("dtype", tuple(dtypes)), Categorical("kv_dtype", tuple(kv_dtypes)),
              PowerOfTwo("max_num_seqs", 16, 512), PowerOfTwo("max_batched_tokens", 512, 8192),
              Categorical("chunked_prefill", (True, False))]
    default = {"tp": min(top, 8), "pp": 1, "pd_disagg": 0, "expert_parallel": False,
               "dtype": dtypes[0], "kv_dtype": kv_dtypes[0], "max_num_seqs": 256,
               "max_batched_tokens": 2048, "chunked_prefill": True}
    space = DesignSpace(params, [Constraint(r, m) for r, m in cons])
    if space.is_valid(default):
        return DesignSpace(params, [Constraint(r, m) for r, m in cons], default=default)
    return space
