"""Active learning: an agent searches a learned surrogate, the top-k predicted designs are
verified on the real evaluator, the model is retrained on every real row, repeat;
:func:`sample_efficiency` compares it with the same agent searching the real evaluator.

(Moved from ``mlsysgym.costmodels.surrogate``: it runs a search, so it belongs to the agents.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.agents.base import Outcome, search
from mlsysgym.core.evaluator import Design, Evaluator

__all__ = ["ActiveLearningResult", "active_learning", "direct_search", "edp_objective",
           "evaluations_to_reach", "sample_efficiency"]

Objective = Callable[[Mapping[str, np.ndarray]], np.ndarray]  # metrics -> score (higher better)


def edp_objective(energy: str = "energy_uj", delay: str = "latency_ms") -> Objective:
    """Score = −ln(energy · delay) (higher is better)."""
    def score(m: Mapping[str, np.ndarray]) -> np.ndarray:
        return -np.log(np.maximum(np.asarray(m[energy]) * np.asarray(m[delay]), 1e-300))
    return score


# ---- search problems ---------------------------------------------------------------------------
@dataclass
class _ScoredProblem:
    """A Problem (agents.base protocol) over an Evaluator, scored by an objective."""

    name: str
    space: Any
    evaluator: Evaluator
    workload: Any
    objective: Objective

    def evaluate(self, designs: Sequence[Design]) -> Any:
        designs = list(designs)
        m = self.evaluator.evaluate(designs, self.workload)
        score = np.asarray(self.objective(m), dtype=float)
        failed = ~np.isfinite(score)
        rows = [{k: float(v[i]) for k, v in m.items()} for i in range(len(designs))]
        return Outcome(np.where(failed, -np.inf, score), rows, failed)


def _key(d: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v.item() if isinstance(v, np.generic) else v) for k, v in d.items()))


def direct_search(real: Evaluator, space: Any, workload: Any, objective: Objective, budget: int,
                  agent: str = "ga", seed: int = 0, **hp: Any) -> np.ndarray:
    """Best objective so far after each real evaluation, ``agent`` searching ``real`` directly."""
    problem = _ScoredProblem("direct", space, real, workload, objective)
    return search(agent, problem, budget, seed=seed, **hp).best_so_far


@dataclass
class ActiveLearningResult:
    """Every real evaluation of an active-learning run, in order, and the models' fit scores."""

    designs: list[Design]
    scores: np.ndarray
    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def best_so_far(self) -> np.ndarray:
        return np.maximum.accumulate(self.scores)

    @property
    def best_design(self) -> Design:
        return self.designs[int(np.argmax(self.scores))]


def active_learning(real: Evaluator, space: Any, workload: Any, objective: Objective,
                    targets: Sequence[str], budget: int, initial: int = 32, top_k: int = 16,
                    search_budget: int = 1500, agent: str = "ga", kind: str = "lightgbm",
                    model_kwargs: Mapping[str, Any] | None = None,
                    fit_kwargs: Mapping[str, Any] | None = None, seed: int = 0,
                    agent_hp: Mapping[str, Any] | None = None) -> ActiveLearningResult:
    """Surrogate-assisted search with ``budget`` real evaluations.

    ``initial`` random designs are evaluated on ``real``; then each round fits a ``kind`` cost
    model on every real row (features: the space's parameters; ``targets``: the metrics the
    ``objective`` needs), lets ``agent`` search the model for ``search_budget`` evaluations,
    and evaluates on ``real`` the ``top_k`` designs with the best predicted objective that were
    not evaluated for real yet.
    """
    import pandas as pd
    from mlsysgym.costmodels.tabular import make_model

    rng = np.random.default_rng(seed)
    designs: list[Design] = [dict(d) for d in space.sample(rng, min(initial, budget))]
    seen = {_key(d) for d in designs}
    metrics = real.evaluate(designs, workload)
    rows = pd.DataFrame(designs)
    for t in targets:
        rows[t] = metrics[t]
    scores = list(np.asarray(objective(metrics), dtype=float))
    rounds: list[dict[str, float]] = []
    r = 0
    while len(designs) < budget:
        r += 1
        model = make_model(kind, seed=seed + r, **dict(model_kwargs or {}))
        model.fit(rows, space.names, list(targets), valid_fraction=0.0, **dict(fit_kwargs or {}))
        problem = _ScoredProblem("surrogate", space, model, workload, objective)
        res = search(agent, problem, search_budget, seed=seed * 1000 + r, **dict(agent_hp or {}))
        order = np.argsort(-res.rewards, kind="stable")
        picks: list[Design] = []
        for i in order:
            d = dict(res.designs[i])
            k = _key(d)
            if k in seen:
                continue
            seen.add(k)
            picks.append(d)
            if len(picks) >= min(top_k, budget - len(designs)):
                break
        if not picks:  # the surrogate search only found known designs: explore at random
            for d in space.sample(rng, 4 * top_k):
                if _key(d) not in seen and len(picks) < min(top_k, budget - len(designs)):
                    seen.add(_key(d))
                    picks.append(dict(d))
            if not picks:
                break
        m = real.evaluate(picks, workload)
        pred = model.predict(picks)
        new_scores = np.asarray(objective(m), dtype=float)
        rounds.append({"round": r, "rows": float(len(rows)),
                       "pred_best": float(np.max(objective(pred.values))),
                       "real_best_of_picks": float(np.max(new_scores))})
        designs += picks
        scores += list(new_scores)
        add = pd.DataFrame(picks)
        for t in targets:
            add[t] = m[t]
        rows = pd.concat([rows, add], ignore_index=True)
    return ActiveLearningResult(designs, np.asarray(scores), rounds)


def evaluations_to_reach(best_so_far: np.ndarray, level: float, rtol: float = 1e-9) -> int | None:
    """1-based number of evaluations after which ``best_so_far`` reaches ``level`` (None: never)."""
    hit = np.flatnonzero(best_so_far >= level - rtol * abs(level))
    return int(hit[0]) + 1 if hit.size else None


def sample_efficiency(real: Evaluator, space: Any, workload: Any, objective: Objective,
                      targets: Sequence[str], budget: int, seeds: Sequence[int] = (0, 1, 2),
                      agent: str = "ga", **al_kwargs: Any) -> dict[str, Any]:
    """Direct search vs active learning, same agent, same real budget, several seeds.

    Per seed: the direct search's best design after ``budget`` real evaluations sets the level;
    ``direct_evals`` is when direct search first reached it, ``al_evals`` when active learning
    did (None if it did not within ``budget``). ``ratio = direct_evals / al_evals`` (> 1 means
    active learning needed fewer real evaluations).
    """
    per_seed = []
    for s in seeds:
        direct = direct_search(real, space, workload, objective, budget, agent=agent, seed=s)
        al = active_learning(real, space, workload, objective, targets, budget, agent=agent,
                             seed=s, **al_kwargs)
        level = float(direct[-1])
        n_direct = evaluations_to_reach(direct, level)
        n_al = evaluations_to_reach(al.best_so_far, level)
        per_seed.append({"seed": s, "level": level, "direct_evals": n_direct, "al_evals": n_al,
                         "al_best": float(al.best_so_far[-1]),
                         "ratio": (n_direct / n_al) if n_al else None})
    ratios = [p["ratio"] for p in per_seed if p["ratio"] is not None]
    return {"per_seed": per_seed, "reached": len(ratios), "seeds": len(per_seed),
            "median_ratio": float(np.median(ratios)) if ratios else None,
            "geomean_ratio": float(np.exp(np.mean(np.log(ratios)))) if ratios else None}
