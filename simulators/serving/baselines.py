"""Plans people pick by hand, and exhaustive enumeration (APEX's approach) for small spaces.

* :func:`min_tp_plan` — the smallest tensor-parallel degree whose instance fits the model
  (bf16, no pipeline), replicated data-parallel over the remaining devices;
* :func:`max_tp_plan` — vLLM-style deployment: one instance per node at ``tp`` = devices per
  node (TP over NVLink), data parallel across nodes;
* :func:`feasible_plans` — every plan of the space that passes the rules and fits memory
  (vectorized), optionally with the batching knobs held at vLLM's defaults;
* :func:`exhaustive` — evaluate them all and return the best under an objective.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Evaluator, Metrics
from mlsysgym.simulators.serving.evaluator import ServingEvaluator, ServingWorkload
from mlsysgym.simulators.serving.plans import (
    Plan,
    PlanError,
    memory_columns,
    structural_ok,
    validate_plan,
)

__all__ = ["OBJECTIVES", "exhaustive", "feasible_plans", "max_tp_plan", "min_tp_plan",
           "plan_columns", "score"]

VLLM_DEFAULTS = {"max_num_seqs": 256, "max_batched_tokens": 2048, "chunked_prefill": True}

#: objective name → score of metrics (higher is better); infeasible plans score -inf.
OBJECTIVES: dict[str, Callable[[Metrics], np.ndarray]] = {
    "goodput": lambda m: m["throughput_tok_s"] * m["slo_attainment"],
    "throughput": lambda m: m["throughput_tok_s"],
    "latency": lambda m: -m["e2e_mean_s"],
    "ttft": lambda m: -m["ttft_mean_s"],
    "tpot": lambda m: -m["tpot_mean_s"],
    "energy": lambda m: -m["energy_per_token_j"],
}


def score(metrics: Metrics, objective: str) -> np.ndarray:
    """Objective values of evaluated plans (``-inf`` for infeasible ones)."""
    s = np.asarray(OBJECTIVES[objective](metrics), float)
    return np.where(metrics["infeasible"] > 0, -np.inf, s)


def _fits(w: ServingWorkload, plan: Plan) -> bool:
    try:
        validate_plan(w.model, w.cluster, plan,
                      int((w.trace.input_tokens + w.trace.output_tokens).max()))
    except PlanError:
        return False
    return True


def min_tp_plan(w: ServingWorkload, **overrides: Any) -> Plan:
    """The smallest power-of-two TP that fits, then DP over the rest (PlanError if none)."""
    n = w.cluster.n_devices
    tp = 1
    while tp <= n:
        plan = Plan(tp=tp, dp=n // tp, **{**VLLM_DEFAULTS, **overrides})
        if n % tp == 0 and _fits(w, plan):
            return plan
        tp *= 2
    raise PlanError(f"{w.model.name} fits no tensor-parallel plan on {n} x "
                    f"{w.cluster.device.name}; try pipeline parallelism or a smaller dtype")


def max_tp_plan(w: ServingWorkload, **overrides: Any) -> Plan:
    """One instance per node (tp = devices per node), DP across nodes; if it does not fit,
    pipeline stages across nodes."""
    c = w.cluster
    for pp in (1, 2, 4, 8, 16):
        if c.nodes % pp:
            continue
        plan = Plan(tp=c.per_node, pp=pp, dp=c.nodes // pp, **{**VLLM_DEFAULTS, **overrides})
        if _fits(w, plan):
            return plan
    raise PlanError(f"{w.model.name} does not fit one node of {c.per_node} "
                    f"{c.device.name} nor a pipeline across nodes")


def plan_columns(cols: Mapping[str, np.ndarray], n_devices: int) -> dict[str, np.ndarray]:
    """Plan columns (with ``dp`` and ``ep``) of plan-space design columns."""
    out = dict(cols)
    tp = np.asarray(cols["tp"], np.int64)
    per = tp * np.asarray(cols["pp"], np.int64) * (1 + np.asarray(cols["pd_disagg"], np.int64))
    out["dp"] = np.maximum(n_devices // per, 1)
    ep_on = np.asarray(cols["expert_parallel"]).astype(bool)
    out["ep"] = np.where(ep_on, out["dp"] * tp, 1)
    return out


def feasible_plans(w: ServingWorkload, batching: bool = True, space: Any = None
                   ) -> list[dict[str, Any]]:
    """Every design of ``space`` (default ``w.space()``) whose plan passes the rules and fits
    memory; ``batching=False`` keeps max_num_seqs / max_batched_tokens / chunked_prefill at
    vLLM's defaults."""
    space = space or w.space()
    idx = space.all_indices() if batching else _structural_indices(space)
    cols = space.columns_from_indices(idx)
    ok = space.feasible(cols)
    cols = {k: v[ok] for k, v in cols.items()}
    pc = plan_columns(cols, w.cluster.n_devices)
    ok2, _ = structural_ok(w.model, w.cluster.n_devices, pc)
    mem = memory_columns(w.model, w.cluster.device.mem_bytes, pc)
    longest = int((w.trace.input_tokens + w.trace.output_tokens).max())
    keep = ok2 & (mem["kv_tokens"] >= max(longest, 16) * np.asarray(pc["pp"]))
    names = list(space.names)
    rows = zip(*[cols[k][keep].tolist() for k in names])
    return [dict(zip(names, r)) for r in rows]


def _structural_indices(space: Any) -> np.ndarray:
    fixed = {k: space.levels(k).index(v) for k, v in VLLM_DEFAULTS.items()}
    grids = [np.arange(n) if name not in fixed else np.array([fixed[name]])
             for name, n in zip(space.names, space.nvec)]
    mesh = np.meshgrid(*grids, indexing="ij")
    return np.stack([g.ravel() for g in mesh], axis=1).astype(np.int64)


def exhaustive(w: ServingWorkload, objective: str = "goodput", batching: bool = False,
               evaluator: Evaluator | None = None, space: Any = None
               ) -> tuple[list[dict[str, Any]], Metrics, int]:
    """(every plan, their metrics, index of the best) over :func:`feasible_plans`."""
    ev = evaluator or ServingEvaluator()
    plans = feasible_plans(w, batching, space)
    if not plans:
        raise PlanError(f"no plan of {w.model.name} fits {w.cluster.n_devices} x "
                        f"{w.cluster.device.name}")
    metrics = ev.evaluate(plans, w)
    return plans, metrics, int(np.argmax(score(metrics, objective)))
