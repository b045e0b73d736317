"""The serving simulator as an Evaluator: plans (designs) × a serving workload → metrics.

A :class:`ServingWorkload` is a model, a cluster, a request trace and SLO targets. For each
plan, :func:`simulate` splits the trace round-robin (by arrival) over the ``dp`` replicas and,
within a replica of ``pp`` stages, over ``pp`` virtual engines (vLLM's pipeline scheduling:
each engine has its own batch and 1/pp of the KV cache, so up to ``pp`` batches are in
flight), runs every engine with :func:`.engine.simulate_instance` (with ``pd_disagg``: a prefill
instance, the KV transfer over the link, then a decode instance) and reduces the per-request
times to metrics. The ``dp`` replicas of an expert-parallel MoE plan (``ep > tp``, one stage,
no P/D split) step together (:func:`.lockstep.simulate_lockstep`, as vLLM V1 runs them). The workload's engine overheads (:mod:`.overheads`) delay each request by
its front-end time before the engine sees it and add CPU time to every iteration; TTFT and
end-to-end latency count from the request's arrival at the front end. Plans that break a rule or do not fit report ``infeasible = 1`` and sentinel
values (latencies 1e6 s, throughput 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Design, Evaluator, Metrics
from mlsysgym.core.space import DesignSpace
from mlsysgym.simulators.serving.costs import COMPONENTS, StepCost
from mlsysgym.simulators.serving.engine import simulate_instance
from mlsysgym.simulators.serving.hardware import Cluster, load_cluster
from mlsysgym.simulators.serving.lockstep import simulate_lockstep
from mlsysgym.simulators.serving.models import ModelSpec, load_model
from mlsysgym.simulators.serving.overheads import EngineOverheads, load_engine
from mlsysgym.simulators.serving.plans import Plan, PlanError, plan_space, validate_plan
from mlsysgym.simulators.serving.traces import Trace, poisson_trace, read_trace

__all__ = ["METRICS", "ServingEvaluator", "ServingWorkload", "pd_handoff_s", "simulate"]

METRICS: tuple[str, ...] = (
    "infeasible", "ttft_mean_s", "ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "tpot_mean_s",
    "tpot_p50_s", "tpot_p95_s", "tpot_p99_s", "tpot_token_weighted_s", "e2e_mean_s",
    "e2e_p99_s", "throughput_tok_s", "throughput_req_s", "slo_attainment",
    "energy_per_token_j", "energy_j", "weights_gb_per_device", "kv_tokens_per_instance",
    "makespan_s", "preemptions", "device_s_per_token")
_BAD = {"infeasible": 1.0, "throughput_tok_s": 0.0, "throughput_req_s": 0.0,
        "slo_attainment": 0.0, "kv_tokens_per_instance": 0.0, "preemptions": 0.0,
        "weights_gb_per_device": 0.0}
SENTINEL_S = 1e6


@dataclass(frozen=True, eq=False)  # holds arrays: identity equality and hash
class ServingWorkload:
    """What a plan serves: a model on a cluster, a trace, SLO targets (seconds) and the serving
    engine's overheads (:data:`.overheads.ENGINE_PRESETS`; default vLLM V1 seen by a client)."""

    model: ModelSpec
    cluster: Cluster
    trace: Trace
    slo_ttft_s: float = 1.0
    slo_tpot_s: float = 0.1
    engine: EngineOverheads = field(default_factory=load_engine)

    @property
    def name(self) -> str:
        """A readable id that changes with any input (the evaluator cache keys on it)."""
        c = self.cluster
        return (f"{self.model.name}@{c.nodes}x{c.per_node}x{c.device.name}:{self.trace.key}"
                f":slo{self.slo_ttft_s:g}/{self.slo_tpot_s:g}:{self.engine.key}")

    def space(self, dtypes: tuple[str, ...] | None = None,
              kv_dtypes: tuple[str, ...] | None = None) -> DesignSpace:
        """The plan space for this model and cluster (optionally restricted dtypes)."""
        kw: dict[str, Any] = {}
        if dtypes:
            kw["dtypes"] = tuple(dtypes)
        if kv_dtypes:
            kw["kv_dtypes"] = tuple(kv_dtypes)
        return plan_space(self.model, self.cluster.n_devices, **kw)

    @classmethod
    def make(cls, model: str | Path | ModelSpec = "Llama-3.1-8B", gpu: str = "H100-SXM",
             n_gpus: int = 8, nodes: int = 1, trace: str | Path | Trace | None = None,
             rate: float = 4.0, requests: int = 200, workload: str = "chat", seed: int = 0,
             slo_ttft_s: float = 1.0, slo_tpot_s: float = 0.1,
             cluster: str | Path | dict | Cluster | None = None,
             engine: str | dict | EngineOverheads | None = None) -> ServingWorkload:
        """Build a workload from names: a model, ``n_gpus`` devices over ``nodes`` nodes (or a
        cluster YAML), a trace file or a generated Poisson trace, an engine-overhead preset
        (None: the default)."""
        m = load_model(model)
        if cluster is not None:
            cl = load_cluster(cluster)
        else:
            if n_gpus < 1 or nodes < 1 or n_gpus % nodes:
                raise PlanError(f"n_gpus={n_gpus} must be a positive multiple of nodes={nodes}")
            cl = load_cluster(gpu, nodes, n_gpus // nodes)
        if isinstance(trace, Trace):
            tr = trace
        elif trace is not None:
            tr = read_trace(trace)
        else:
            tr = poisson_trace(rate, requests, workload, seed)
        return cls(m, cl, tr, slo_ttft_s, slo_tpot_s, load_engine(engine))


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else 0.0


def simulate(workload: ServingWorkload, plan: Plan | Mapping[str, Any],
             details: bool = False) -> dict[str, Any]:
    """Metrics of serving ``workload`` with ``plan`` (PlanError if the plan is invalid).
    ``details=True`` adds per-request ``first_token_s`` and ``finish_s`` arrays and
    ``ttft_parts``: each request's time to first token split into ``frontend`` (front end and
    tokenization, both servers' with a P/D split), ``queue`` (waiting for the engine),
    the :data:`.costs.COMPONENTS` of the iterations that computed its prompt (``compute``,
    ``floors``, ``comm``, ``cpu``) and ``kv_transfer`` (P/D hand-off setup and bytes); they sum
    to its TTFT."""
    if not isinstance(plan, Plan):
        plan = Plan.from_design(plan, workload.cluster.n_devices)
    m, cl, tr = workload.model, workload.cluster, workload.trace
    n_enc = m.encoder_tokens(tr.input_tokens)  # prompt tokens the engine prefills
    longest = int((n_enc + tr.output_tokens).max())
    mem = validate_plan(m, cl, plan, min_context=longest)
    eng = workload.engine
    cost = StepCost(m, cl, plan, eng)
    n = len(tr)
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    active = 0.0
    preempt = 0
    dev = cl.device
    engines = plan.dp * plan.pp  # pp virtual engines per replica share its stages (vLLM)
    kv = mem.kv_tokens // plan.pp
    seen = tr.arrival_s + eng.frontend_s(tr.input_tokens)  # when the engine gets each request
    parts = np.zeros((n, len(COMPONENTS))) if details else None
    xfer = np.zeros(n)
    if plan.ep > plan.tp and plan.pp == 1 and not plan.pd_disagg:  # DP ranks share experts
        ranks = [np.arange(r, n, engines) for r in range(engines)]
        results = simulate_lockstep(cost, [(seen[idx], n_enc[idx], tr.output_tokens[idx])
                                           for idx in ranks], kv, track_parts=details)
        for idx, res in zip(ranks, results):
            first[idx], finish[idx] = res.first_token_s, res.finish_s
            active += res.active_s
            preempt += res.preemptions
            if parts is not None:
                parts[idx] = res.ttft_parts
        engines = 0
    for r in range(engines):
        idx = np.arange(r, n, engines)
        a, i, o = seen[idx], n_enc[idx], tr.output_tokens[idx]
        if not plan.pd_disagg:
            res = simulate_instance(cost, a, i, o, kv, track_parts=details)
            first[idx], finish[idx] = res.first_token_s, res.finish_s
            active += res.active_s
            preempt += res.preemptions
            if parts is not None:
                parts[idx] = res.ttft_parts
            continue
        pre = simulate_instance(cost, a, i, np.ones_like(o), kv, track_parts=details)
        active += pre.active_s
        preempt += pre.preemptions
        xfer[idx] = pd_handoff_s(workload, plan, i)
        dec = simulate_instance(cost, pre.first_token_s + xfer[idx], i, o,
                                kv, prefilled=np.ones(len(idx), bool), track_parts=details)
        first[idx], finish[idx] = dec.first_token_s, dec.finish_s
        active += dec.active_s
        preempt += dec.preemptions
        if parts is not None:
            parts[idx] = pre.ttft_parts + dec.ttft_parts
    if np.isnan(finish).any():
        raise PlanError(f"plan {plan} left {int(np.isnan(finish).sum())} requests unserved "
                        f"(a prompt larger than the KV cache)")
    out = tr.output_tokens
    ttft = first - tr.arrival_s
    multi = out > 1
    tpot = (finish - first)[multi] / (out[multi] - 1)
    e2e = finish - tr.arrival_s
    makespan = float(finish.max() - tr.arrival_s.min())
    energy = plan.n_devices * dev.idle_w * makespan + plan.tp * (dev.tdp_w - dev.idle_w) * active
    ok = (ttft <= workload.slo_ttft_s) & np.where(
        multi, (finish - first) / np.maximum(out - 1, 1) <= workload.slo_tpot_s, True)
    res: dict[str, Any] = {
        "infeasible": 0.0, "ttft_mean_s": float(ttft.mean()), "ttft_p50_s": _pct(ttft, 50),
        "ttft_p95_s": _pct(ttft, 95), "ttft_p99_s": _pct(ttft, 99),
        "tpot_mean_s": float(tpot.mean()) if len(tpot) else 0.0,
        "tpot_p50_s": _pct(tpot, 50), "tpot_p95_s": _pct(tpot, 95), "tpot_p99_s": _pct(tpot, 99),
        "tpot_token_weighted_s": float(np.sum(finish - first) / np.sum(out)),
        "e2e_mean_s": float(e2e.mean()), "e2e_p99_s": _pct(e2e, 99),
        "throughput_tok_s": float(out.sum() / makespan), "throughput_req_s": n / makespan,
        "slo_attainment": float(ok.mean()), "energy_per_token_j": energy / float(out.sum()),
        "energy_j": energy, "weights_gb_per_device": mem.weight_bytes / 1e9,
        "kv_tokens_per_instance": float(mem.kv_tokens), "makespan_s": makespan,
        "preemptions": float(preempt),
        "device_s_per_token": plan.n_devices * makespan / float(out.sum())}
    if details:
        res["first_token_s"], res["finish_s"] = first, finish
        res["ttft_parts"] = _ttft_parts(eng.frontend_s(tr.input_tokens), ttft, parts, xfer,
                                        eng.frontend_s(n_enc) if plan.pd_disagg else 0.0)
    return res


def _ttft_parts(front: np.ndarray, ttft: np.ndarray, parts: np.ndarray, handoff: np.ndarray,
                front2: np.ndarray | float) -> dict[str, np.ndarray]:
    """Per-request TTFT breakdown (see :func:`simulate`): front ends, KV hand-off, the
    iterations' components, and the rest (queueing)."""
    out = {"frontend": front + front2}
    out["kv_transfer"] = handoff - front2
    comp = {c: parts[:, k] for k, c in enumerate(COMPONENTS)}
    out["queue"] = ttft - out["frontend"] - out["kv_transfer"] - parts.sum(axis=1)
    out.update(comp)
    return out


def pd_handoff_s(workload: ServingWorkload, plan: Plan, prompt_tokens: np.ndarray
                 ) -> np.ndarray:
    """Time from a prefill instance's first token to the request reaching the decode instance
    with its KV cache: the decode server's front end (a second request through vLLM's proxy),
    the transfer setup and the prompt's KV bytes over the link between the two instances (each
    of the ``tp·pp`` devices sends its shard): ``request_s + tokenize·n + kv_setup_s +
    latency + n · kv_bytes_per_token / (tp·pp · bandwidth)``."""
    m, cl, eng = workload.model, workload.cluster, workload.engine
    bw, lat = cl.group_link(2 * plan.tp * plan.pp)
    xfer = lat + prompt_tokens * m.kv_bytes_per_token(plan.kv_dtype) / (plan.tp * plan.pp * bw)
    return eng.frontend_s(prompt_tokens) + eng.kv_setup_s + xfer


class ServingEvaluator(Evaluator):
    """Plans → serving metrics on a :class:`ServingWorkload` (cached by plan and workload).

    ``evaluate(designs, workload)``: designs are plan dicts or designs of the plan space
    (:meth:`Plan.from_design`; missing fields take :class:`Plan`'s defaults); an infeasible plan gets ``infeasible = 1`` and sentinel values (the
    convention :class:`mlsysgym.envs.rewards.Penalty` reads).
    """

    name = "serving"
    version = "1"
    metric_names = METRICS

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        if not isinstance(workload, ServingWorkload):
            raise PlanError("the serving evaluator needs a ServingWorkload "
                            "(ServingWorkload.make(model=..., gpu=..., n_gpus=...))")
        rows = []
        for d in designs:
            try:
                rows.append(simulate(workload, Plan.from_design(d, workload.cluster.n_devices)))
            except PlanError:
                rows.append({k: _BAD.get(k, SENTINEL_S) for k in METRICS})
        return {k: np.array([float(r[k]) for r in rows]) for k in METRICS}
