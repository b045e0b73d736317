"""LLM-serving plan simulator (APEX/Vidur-style): models, devices, plans, traces, an
iteration-level continuous-batching engine and the ``serving`` Evaluator.

    from mlsysgym.simulators.serving import ServingEvaluator, ServingWorkload
    w = ServingWorkload.make("Llama-3.1-70B", gpu="H100-SXM", n_gpus=8, rate=2, requests=300)
    ServingEvaluator().evaluate_one({"tp": 8, "dp": 1}, w)["tpot_mean_s"]
"""

from mlsysgym.simulators.serving.evaluator import (
    METRICS,
    ServingEvaluator,
    ServingWorkload,
    simulate,
)
from mlsysgym.simulators.serving.hardware import Cluster, Device, load_cluster, load_device
from mlsysgym.simulators.serving.models import ModelSpec, load_model
from mlsysgym.simulators.serving.overheads import ENGINE_PRESETS, EngineOverheads, load_engine
from mlsysgym.simulators.serving.plans import Plan, PlanError, plan_space, validate_plan
from mlsysgym.simulators.serving.traces import Trace, poisson_trace, read_trace

__all__ = ["ENGINE_PRESETS", "METRICS", "Cluster", "Device", "EngineOverheads", "ModelSpec",
           "Plan", "PlanError", "ServingEvaluator", "ServingWorkload", "Trace", "load_cluster",
           "load_device", "load_engine", "load_model", "plan_space", "poisson_trace",
           "read_trace", "simulate", "validate_plan"]

from mlsysgym.core.evaluator import register_evaluator

register_evaluator("serving", "mlsysgym.simulators.serving.evaluator:ServingEvaluator")
