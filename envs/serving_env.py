"""``mlsysgym/LLMServing-v0``: choose an LLM-serving plan (parallelism, dtypes, batching) for a
model on a cluster and a request trace, evaluated by the serving simulator.

One-shot mode: the action is a whole plan (``MultiDiscrete`` over the plan space's levels;
``action_masks()`` marks the levels that appear in at least one valid plan). Sequential mode:
one knob per step in the space's order — ``tp, pp, pd_disagg, expert_parallel`` (parallel
degrees; data parallelism fills the remaining devices),
``dtype, kv_dtype`` (dtypes), ``max_num_seqs, max_batched_tokens, chunked_prefill``
(batching) — and ``action_masks()`` marks the levels that keep at least one valid plan
reachable given the choices so far (divisibility, device count and memory fit with the
smallest batching limits).

``dtypes`` / ``kv_dtypes`` restrict the weight and KV-cache dtypes (e.g. ``["bf16"]``).
``engine`` names the serving-engine overheads (a preset of
:data:`mlsysgym.simulators.serving.overheads.ENGINE_PRESETS`; default vLLM V1 seen by a client).

Rewards (ratios to the reference plan, the smallest-TP-then-DP heuristic; invalid plans get
−1): ``goodput`` (output tokens/s × SLO attainment, default), ``throughput``, ``latency``
(mean end-to-end), ``energy`` (J per output token), ``cost`` (device-seconds per token).

``info`` after an evaluated step: ``design`` (the plan), ``metrics`` (the serving simulator's:
``ttft_mean_s``, ``tpot_mean_s``, ``throughput_tok_s``, ``slo_attainment``,
``energy_per_token_j``, ...), ``reward``, ``infeasible``, ``workload_id``, ``evaluator_id``;
sequential steps before the last: ``action_mask``. The workload (model, cluster, trace) is fixed
at construction: ``reset(options={"workload": ...})`` is refused (build another env).
``render_mode="rgb_array"`` draws the plan and the episode's rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.evaluator import Evaluator
from mlsysgym.envs.design_env import DesignEnv, EnvConfigError, as_evaluator
from mlsysgym.envs.rewards import Penalty, Reward
from mlsysgym.simulators.serving.baselines import feasible_plans, min_tp_plan
from mlsysgym.simulators.serving.evaluator import ServingEvaluator, ServingWorkload

__all__ = ["SERVING_REWARDS", "LLMServingEnv", "ServingReward"]

#: reward name → (metric, higher is better)
SERVING_REWARDS: dict[str, tuple[str, bool]] = {
    "goodput": ("goodput_tok_s", True), "throughput": ("throughput_tok_s", True),
    "latency": ("e2e_mean_s", False), "energy": ("energy_per_token_j", False),
    "cost": ("device_s_per_token", False),
}


@dataclass(frozen=True, kw_only=True)
class ServingReward(Reward):
    """``value / reference`` for a metric to maximize, ``reference / value`` for one to
    minimize (the reference plan scores 1; twice as good scores 2). ``goodput_tok_s`` is
    ``throughput_tok_s × slo_attainment``."""

    name: str = "goodput"
    reference: float = 1.0

    def raw(self, metrics: Any) -> np.ndarray:
        metric, up = SERVING_REWARDS[self.name]
        if metric == "goodput_tok_s":
            v = np.asarray(metrics["throughput_tok_s"], float) * \
                np.asarray(metrics["slo_attainment"], float)
        else:
            v = np.asarray(metrics[metric], float)
        ref = max(self.reference, 1e-12)
        return v / ref if up else ref / np.maximum(v, 1e-12)


class LLMServingEnv(DesignEnv):
    """Plan search for LLM serving (see the module docstring)."""

    def __init__(self, model: str | Path = "Llama-3.1-8B", gpu: str = "H100-SXM",
                 n_gpus: int = 2, nodes: int = 1, trace: str | Path | None = None,
                 rate: float = 4.0, requests: int = 100, workload: str = "chat", seed: int = 0,
                 slo_ttft_s: float = 1.0, slo_tpot_s: float = 0.1, reward: str = "goodput",
                 dtypes: tuple[str, ...] | None = None, kv_dtypes: tuple[str, ...] | None = None,
                 mode: str = "one-shot", max_steps: int = 50,
                 evaluator: Evaluator | str | None = None, action_type: str = "multidiscrete",
                 render_mode: str | None = None, engine: str | dict | None = None) -> None:
        if reward not in SERVING_REWARDS:
            raise EnvConfigError(f"reward must be one of {sorted(SERVING_REWARDS)}, "
                                 f"got {reward!r}")
        self.serving = ServingWorkload.make(model, gpu, n_gpus, nodes, trace, rate, requests,
                                            workload, seed, slo_ttft_s, slo_tpot_s,
                                            engine=engine)
        space = self.serving.space(dtypes, kv_dtypes)
        ref_plan = min_tp_plan(self.serving, dtype=space.levels("dtype")[0],
                               kv_dtype=space.levels("kv_dtype")[0]).space_design()
        ev = as_evaluator(evaluator, ServingEvaluator)
        ref_metrics = ev.evaluate_one(ref_plan, self.serving)
        metric, _ = SERVING_REWARDS[reward]
        ref = (ref_metrics["throughput_tok_s"] * ref_metrics["slo_attainment"]
               if metric == "goodput_tok_s" else ref_metrics[metric])
        r = ServingReward(name=reward, reference=float(ref) if ref > 0 else 1.0,
                          penalty=Penalty(mode="constant", value=-1.0))
        super().__init__(space, ev, self.serving, reward=r, mode=mode, max_steps=max_steps,
                         observation_metrics=("ttft_mean_s", "tpot_mean_s", "throughput_tok_s",
                                              "slo_attainment", "energy_per_token_j"),
                         reference_design=ref_plan, action_type=action_type,
                         render_mode=render_mode)
        valid = feasible_plans(self.serving, batching=False, space=space)
        self._valid_idx = space.encode_batch(valid, "index") if valid else \
            np.zeros((0, space.dim), np.int64)
        self._batch_from = space.names.index("max_num_seqs")

    def _set_workload(self, workload: Any) -> None:
        raise EnvConfigError("LLMServing-v0's workload (model, cluster, trace) is fixed at "
                             "construction; build another env for another one")

    def action_masks(self) -> np.ndarray:
        """Valid levels (see the module docstring)."""
        nv = self.space.nvec
        if self.mode == "one-shot":
            if self.action_type != "multidiscrete":
                return super().action_masks()
            parts = []
            for j, n in enumerate(nv):
                m = np.zeros(int(n), bool)
                if j >= self._batch_from:
                    m[:] = True
                else:
                    m[np.unique(self._valid_idx[:, j])] = True
                parts.append(m)
            return np.concatenate(parts)
        j = min(len(self._partial), self.space.dim - 1)
        mask = np.zeros(self.action_space.n, bool)
        if j >= self._batch_from:
            mask[: nv[j]] = True
            return mask
        rows = self._valid_idx
        if self._partial:
            rows = rows[np.all(rows[:, : len(self._partial)] == np.array(self._partial), axis=1)]
        mask[np.unique(rows[:, j])] = True
        if not mask.any():  # no valid completion: let any level through (it will be penalized)
            mask[: nv[j]] = True
        return mask

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.mode == "sequential" and not terminated:
            info["action_mask"] = self.action_masks()
        return obs, reward, terminated, truncated, info

