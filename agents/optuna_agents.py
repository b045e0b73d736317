"""Optuna's samplers as agents: TPE (``tpe``) and Gaussian-process BO (``optuna_gp``).

An in-memory study (direction ``maximize``) is driven with Optuna's ask/tell interface:
``batch_size`` trials are asked at once, each turned into a design by
``DesignSpace.suggest(trial)``, evaluated as one batch, and told their rewards. Asking
several trials before telling relies on the sampler's handling of running trials (TPE's
``constant_liar``).

Designs that repeat an already-evaluated design are told its known reward without spending
budget, and designs breaking a constraint of the space are told the worst reward seen so far
(also without evaluating them). When a whole round yields nothing new, one random unseen
design is enqueued (``study.enqueue_trial``) so the search always makes progress. Failed
evaluations are told the worst successful reward. Optuna's logging is silenced.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, Design, register_agent

__all__ = ["GP_HYPERPARAMETERS", "HYPERPARAMETERS", "TPE_HYPERPARAMETERS", "optuna_gp",
           "optuna_search", "tpe"]

TPE_HYPERPARAMETERS: dict[str, list[Any]] = {
    "n_startup_trials": [5, 10, 20],
    "multivariate": [True, False],
    "batch_size": [1, 4, 8],
}
GP_HYPERPARAMETERS: dict[str, list[Any]] = {
    "n_startup_trials": [5, 10, 20],
    "batch_size": [1, 4],
}
HYPERPARAMETERS = TPE_HYPERPARAMETERS


def _key(design: Design) -> tuple:
    return tuple(design.values())


def optuna_search(problem: BudgetedProblem, rng: np.random.Generator, sampler: Any,
                  batch_size: int = 1, max_idle_rounds: int = 3) -> None:
    """Drive an Optuna ``sampler`` with ask/tell on ``problem`` (see the module docstring)."""
    import optuna

    if batch_size < 1:
        raise AgentConfigError(f"batch_size must be >= 1, got {batch_size}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = problem.space
    study = optuna.create_study(direction="maximize", sampler=sampler)
    distributions = space.optuna_distributions()
    memo: dict[tuple, float] = {}
    idle = 0
    while not problem.exhausted:
        trials = [study.ask(distributions) for _ in range(min(batch_size, problem.remaining))]
        designs = [space.validate(space.suggest(t), check_constraints=False) for t in trials]
        worst = min(memo.values(), default=0.0)
        todo: list[int] = []
        told: dict[int, float] = {}
        batch_keys: dict[tuple, int] = {}
        for i, d in enumerate(designs):
            k = _key(d)
            if k in memo:
                told[i] = memo[k]
            elif not space.is_valid(d):
                told[i] = worst
            elif k in batch_keys:  # the same design twice in one batch: evaluate it once
                told[i] = -1.0  # placeholder, filled after evaluation
            else:
                batch_keys[k] = i
                todo.append(i)
        if todo:
            rewards = problem.evaluate([designs[i] for i in todo])
            failed = np.asarray(problem.failed[-len(rewards):], dtype=bool)
            ok = ~failed & np.isfinite(rewards)
            known = list(memo.values()) + rewards[ok].tolist()
            floor = min(known) if known else 0.0
            for i, r, good in zip(todo, rewards.tolist(), ok):
                memo[_key(designs[i])] = r if good else floor
            idle = 0
        else:
            idle += 1
        for i, (t, d) in enumerate(zip(trials, designs)):
            k = _key(d)
            value = memo.get(k, told.get(i, worst))
            study.tell(t, value)
        if idle >= max_idle_rounds:  # the sampler keeps repeating itself: nudge it
            for d in space.sample(rng, 64):
                if _key(d) not in memo:
                    study.enqueue_trial(d)
                    break
            else:
                if space.is_discrete and len(memo) >= space.count_feasible():
                    return  # every design has been evaluated
            idle = 0


@register_agent("tpe")
def tpe(problem: BudgetedProblem, rng: np.random.Generator, n_startup_trials: int = 10,
        multivariate: bool = True, batch_size: int = 1, n_ei_candidates: int = 24) -> None:
    """Tree-structured Parzen estimator (``optuna.samplers.TPESampler``).

    Hyperparameters: ``n_startup_trials`` (random trials first, default 10), ``multivariate``
    (joint TPE over all parameters, default True), ``batch_size`` (trials asked per evaluated
    batch, with ``constant_liar``, default 1), ``n_ei_candidates`` (default 24).
    """
    import optuna

    sampler = optuna.samplers.TPESampler(
        seed=int(rng.integers(2**31 - 1)), n_startup_trials=n_startup_trials,
        multivariate=multivariate, constant_liar=True, n_ei_candidates=n_ei_candidates)
    optuna_search(problem, rng, sampler, batch_size)


@register_agent("optuna_gp")
def optuna_gp(problem: BudgetedProblem, rng: np.random.Generator, n_startup_trials: int = 10,
              batch_size: int = 1) -> None:
    """Optuna's Gaussian-process sampler (``optuna.samplers.GPSampler``, LogEI).

    Hyperparameters: ``n_startup_trials`` (random trials first, default 10), ``batch_size``
    (trials asked per evaluated batch, default 1; repeated proposals within a batch are
    evaluated once).
    """
    import optuna
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.GPSampler(seed=int(rng.integers(2**31 - 1)),
                                            n_startup_trials=n_startup_trials,
                                            deterministic_objective=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small GPs: one thread is faster on a shared CPU, and repeatable
    try:
        optuna_search(problem, rng, sampler, batch_size)
    finally:
        torch.set_num_threads(threads)
