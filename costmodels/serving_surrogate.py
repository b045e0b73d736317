"""A learned surrogate of the serving simulator for plan spaces too large to simulate whole.

Plans of a :class:`~mlsysgym.simulators.serving.ServingWorkload` become feature rows that do
not name the model or cluster, so one regressor transfers across them:

* the plan's knobs (``tp``, ``pp``, ``dp``, expert parallelism, P/D split, KV dtype bytes,
  ``max_num_seqs``, ``max_batched_tokens``, chunked prefill);
* its memory plan (:func:`~mlsysgym.simulators.serving.plans.memory_columns`): weight GB per
  device, KV-cache tokens per engine and how many mean-length requests that holds;
* analytic estimates from the simulator's own step-cost roofline
  (:class:`~mlsysgym.simulators.serving.costs.StepCost`), each one call per plan: the prefill
  time of a mean prompt, the decode step time of the batch the plan can hold, the token
  capacity of its engines and the offered load over it (utilization), and both latency
  estimates over their SLOs;
* the workload: arrival rate, mean prompt and output lengths, SLOs, devices, model size.

The target is ``log10(1 + goodput)`` (goodput = output tokens/s × SLO attainment, the
objective of ``benchmarks/bench_serving.py``), fitted by the project's tabular cost models
(:func:`mlsysgym.costmodels.tabular.make_model`, LightGBM by default).

:func:`surrogate_search` is the pre-screening search: predict every candidate plan, simulate
only the ``top_k`` best predicted, return the best simulated. Its cost is the feature pass,
the prediction and ``top_k`` simulations, against one simulation per plan for exhaustive
enumeration.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from mlsysgym.costmodels.base import CostModel, CostModelError
from mlsysgym.simulators.serving.baselines import score
from mlsysgym.simulators.serving.costs import StepCost
from mlsysgym.simulators.serving.evaluator import ServingEvaluator, ServingWorkload
from mlsysgym.simulators.serving.models import DTYPE_BYTES
from mlsysgym.simulators.serving.plans import Plan, memory_columns

__all__ = ["FEATURES", "TARGET", "collect_rows", "serving_features", "surrogate_search",
           "train_surrogate"]

TARGET = "log_goodput"
FEATURES: tuple[str, ...] = (
    "tp", "pp", "dp", "ep_on", "pd_disagg", "kv_bytes", "max_num_seqs", "max_batched_tokens",
    "chunked", "weights_gb", "kv_tokens", "kv_requests", "batch", "t_prefill_s", "t_decode_s",
    "capacity_tok_s", "utilization", "ttft_over_slo", "tpot_over_slo", "rate", "mean_in",
    "mean_out", "n_devices", "params_b", "tp_spans_nodes")


def _workload_stats(w: ServingWorkload) -> dict[str, float]:
    tr = w.trace
    span = float(tr.arrival_s.max() - tr.arrival_s.min())
    return {"rate": len(tr) / span if span > 0 else float(len(tr)),
            "mean_in": float(np.mean(w.model.encoder_tokens(tr.input_tokens))),
            "mean_out": float(np.mean(tr.output_tokens)),
            "n_devices": float(w.cluster.n_devices), "params_b": w.model.params() / 1e9}


def _step_estimates(w: ServingWorkload, plan: Plan, batch: float, mean_in: float,
                    mean_out: float) -> tuple[float, float]:
    """(prefill time of a mean prompt, decode step time of ``batch`` mean sequences)."""
    cost = StepCost(w.model, w.cluster, plan, w.engine)
    t_pre = float(cost.step(mean_in, 1, mean_in * (mean_in + 1) / 2, mean_in, 0, 0.0)[0])
    ctx = batch * (mean_in + mean_out / 2)
    t_dec = float(cost.step(batch, batch, 0.0, 0.0, batch, ctx)[0])
    return t_pre, t_dec


def serving_features(w: ServingWorkload, designs: Sequence[dict[str, Any]]) -> Any:
    """A DataFrame of :data:`FEATURES` for plan-space designs (or plan dicts) of ``w``."""
    import pandas as pd

    n_dev = w.cluster.n_devices
    plans = [Plan.from_design(d, n_dev) for d in designs]
    cols = {k: np.array([getattr(p, k) for p in plans]) for k in Plan.__dataclass_fields__}
    mem = memory_columns(w.model, w.cluster.device.mem_bytes, cols)
    st = _workload_stats(w)
    per_req = st["mean_in"] + st["mean_out"]
    kv_engine = np.maximum(mem["kv_tokens"], 0) / cols["pp"]
    kv_req = kv_engine / per_req
    batch = np.maximum(np.minimum(cols["max_num_seqs"], kv_req), 1.0)
    est = np.array([_step_estimates(w, p, b, st["mean_in"], st["mean_out"])
                    for p, b in zip(plans, batch)])
    decode_engines = cols["dp"] * cols["pp"]
    capacity = decode_engines * batch / est[:, 1]
    f = {"tp": cols["tp"], "pp": cols["pp"], "dp": cols["dp"], "ep_on": (cols["ep"] > 1) * 1.0,
         "pd_disagg": cols["pd_disagg"] * 1.0,
         "kv_bytes": np.array([DTYPE_BYTES[k] for k in cols["kv_dtype"]]),
         "max_num_seqs": cols["max_num_seqs"], "max_batched_tokens": cols["max_batched_tokens"],
         "chunked": cols["chunked_prefill"] * 1.0, "weights_gb": mem["weight_bytes"] / 1e9,
         "kv_tokens": kv_engine, "kv_requests": kv_req, "batch": batch,
         "t_prefill_s": est[:, 0], "t_decode_s": est[:, 1], "capacity_tok_s": capacity,
         "utilization": st["rate"] * st["mean_out"] / capacity,
         "ttft_over_slo": est[:, 0] / w.slo_ttft_s, "tpot_over_slo": est[:, 1] / w.slo_tpot_s,
         "tp_spans_nodes": (cols["tp"] > w.cluster.per_node) * 1.0}
    f.update({k: np.full(len(plans), v) for k, v in st.items()})
    return pd.DataFrame({k: np.asarray(f[k], float) for k in FEATURES})


def collect_rows(w: ServingWorkload, designs: Sequence[dict[str, Any]],
                 evaluator: ServingEvaluator | None = None) -> Any:
    """Features plus simulated ``goodput`` and :data:`TARGET` of ``designs`` (infeasible
    plans dropped), with a ``workload`` column naming ``w`` and ``design_index`` (the row's
    position in ``designs``)."""
    ev = evaluator or ServingEvaluator()
    metrics = ev.evaluate(list(designs), w)
    ok = metrics["infeasible"] == 0
    frame = serving_features(w, [d for d, k in zip(designs, ok) if k])
    good = score(metrics, "goodput")[ok]
    frame["goodput"] = good
    frame[TARGET] = np.log10(1.0 + good)
    frame["workload"] = w.name
    frame["design_index"] = np.flatnonzero(ok)
    return frame


def train_surrogate(frame: Any, kind: str = "lightgbm", seed: int = 0, **hp: Any) -> CostModel:
    """Fit a tabular cost model (``lightgbm`` or ``mlp``) of :data:`TARGET` on
    :func:`collect_rows` frames (concatenated)."""
    from mlsysgym.costmodels.tabular import make_model

    if len(frame) < 20:
        raise CostModelError(f"need at least 20 simulated plans to train the serving "
                             f"surrogate, got {len(frame)}")
    model = make_model(kind, seed=seed, **hp)
    return model.fit(frame, list(FEATURES), [TARGET], target_transform="identity",
                     log_features=[])


def surrogate_search(w: ServingWorkload, model: CostModel, designs: Sequence[dict[str, Any]],
                     top_k: int = 20, evaluator: ServingEvaluator | None = None
                     ) -> dict[str, Any]:
    """Rank ``designs`` by the surrogate's predicted goodput, simulate the ``top_k`` best and
    return the best simulated: ``best`` (design), ``goodput``, ``predicted`` (all designs),
    ``simulated`` (how many), ``cpu_s`` (features + prediction + simulations)."""
    if top_k < 1:
        raise CostModelError(f"top_k must be >= 1, got {top_k}")
    t0 = time.process_time()
    pred = model.predict(serving_features(w, designs)).values[TARGET]
    top = np.argsort(-pred, kind="stable")[:top_k]
    ev = evaluator or ServingEvaluator()
    chosen = [designs[i] for i in top]
    good = score(ev.evaluate(chosen, w), "goodput")
    best = int(np.argmax(good))
    return {"best": chosen[best], "goodput": float(good[best]), "predicted": pred,
            "simulated": len(chosen), "cpu_s": time.process_time() - t0}
