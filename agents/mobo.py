"""Multi-objective Bayesian optimization with BoTorch: ``qnehvi`` and ``qparego``.

Both search a :class:`~mlsysgym.agents.multiobjective.MultiObjectiveProblem` (a problem with
``objectives``) and leave its Pareto summary in ``SearchResult.info``. Each round fits one
multi-output ``SingleTaskGP`` (independent outputs, standardized) to every evaluated design
that did not fail, and picks ``q`` designs from a finite candidate set of valid, unseen designs
(as the ``bo`` agent does: every design of a small discrete space, else ``n_candidates``
random designs plus the neighbours of the best ones), evaluated as one batch.

- **Outputs.** When every objective value and reference coordinate is positive (latency,
  energy, area, ...), the GP models ``log(r / v)`` of a minimized metric and ``log(v / r)`` of a
  maximized one (a 2x better design than the reference point scores ln 2, the reference point
  itself 0): hardware metrics span orders of magnitude, which a GP on raw values fits poorly.
  Otherwise it models ``-g / |r|`` (the minimization form ``g`` scaled by the reference).
  Either way the acquisition's reference point is the problem's reference point.
- **qnehvi**: ``qLogNoisyExpectedHypervolumeImprovement`` (the baseline: the feasible designs
  evaluated so far, pruned to the likely-best), maximized greedily over the candidates.
- **qparego**: for each of the ``q`` designs, a random augmented Chebyshev scalarization
  (weights uniform on the simplex) under ``qLogNoisyExpectedImprovement``, with the designs
  already picked in the batch as pending points.
- **Initial design**: ``n_init`` scrambled-Sobol designs (default ``2 * (dim + 1)``).
- With more than ``max_train`` evaluations the GP is fit on the best non-dominated ranks first.

torch and BoTorch are imported when the agent runs.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.bayesopt import _candidates, _initial_designs, features
from mlsysgym.agents.multiobjective import MultiObjectiveProblem, _key
from mlsysgym.agents.pareto import non_dominated_sort

__all__ = ["HYPERPARAMETERS", "qnehvi", "qparego"]

HYPERPARAMETERS: dict[str, list[Any]] = {"q": [1, 4, 8], "n_init": [10, 20]}


def _outputs(problem: MultiObjectiveProblem, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GP targets (maximized) of minimization-form objectives ``g``, and the reference point in
    the same form (see the module docstring)."""
    raw = g * np.where(np.array(problem.directions) == "minimize", 1.0, -1.0)  # metric values
    ref = np.asarray(problem.reference, dtype=float)
    if np.all(raw > 0) and np.all(ref > 0):
        y = np.log(ref / raw) * np.where(np.array(problem.directions) == "minimize", 1.0, -1.0)
        return y, np.zeros(len(ref))
    return -g / np.abs(problem.ref_min), -problem.ref_min / np.abs(problem.ref_min)


def _mobo(problem: BudgetedProblem, rng: np.random.Generator, method: str, q: int,
          n_init: int | None, n_candidates: int, n_local: int, enumerate_limit: int,
          max_train: int, mc_samples: int) -> None:
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.exceptions import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf_discrete
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization
    from botorch.utils.sampling import sample_simplex
    from gpytorch.mlls import ExactMarginalLogLikelihood

    inner = problem.problem
    if not isinstance(inner, MultiObjectiveProblem):
        raise AgentConfigError(f"{method} searches a multi-objective problem: wrap it with "
                               "objectives=[...] (mlsysgym.agents.multiobjective)")
    if q < 1:
        raise AgentConfigError(f"q must be >= 1, got {q}")
    space = problem.space
    n_init = 2 * (space.dim + 1) if n_init is None else int(n_init)
    if n_init < 2:
        raise AgentConfigError(f"n_init must be >= 2, got {n_init}")
    problem.evaluate(_initial_designs(problem, rng, min(n_init, problem.remaining)))
    seen = {_key(d) for d in problem.designs}
    while not problem.exhausted:
        cands = _candidates(problem, rng, seen, enumerate_limit, n_candidates, n_local)
        if not cands:
            return
        batch = min(q, problem.remaining, len(cands))
        failed = np.asarray(problem.failed, dtype=bool)
        g = inner.objective_matrix(problem.metrics)
        ok = inner.feasible(problem.designs, problem.metrics, failed)
        use = np.flatnonzero(~failed & np.all(np.isfinite(g), axis=1))
        if len(use) > max_train:  # the best non-dominated ranks first
            use = use[np.argsort(non_dominated_sort(g[use]), kind="stable")[:max_train]]
        y, ref = _outputs(inner, g[use])
        x = features(space, [problem.designs[i] for i in use], "onehot")
        base = np.isin(use, np.flatnonzero(ok))
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        tx, ty = (torch.as_tensor(a, dtype=torch.double) for a in (x, y))
        choices = torch.as_tensor(features(space, cands, "onehot"), dtype=torch.double)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SingleTaskGP(tx, ty)
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
                sampler = SobolQMCNormalSampler(torch.Size([mc_samples]))
                baseline = tx[torch.as_tensor(base)] if base.any() else tx
                if method == "qnehvi":
                    acq = qLogNoisyExpectedHypervolumeImprovement(
                        model, ref_point=torch.as_tensor(ref), X_baseline=baseline,
                        sampler=sampler, prune_baseline=True)
                    picked, _ = optimize_acqf_discrete(acq, q=batch, choices=choices, unique=True)
                else:
                    picked = _parego(model, tx, ty, baseline, choices, batch, sampler, rng,
                                     qLogNoisyExpectedImprovement, GenericMCObjective,
                                     get_chebyshev_scalarization, sample_simplex,
                                     optimize_acqf_discrete)
            match = (choices[None, :, :] == picked[:, None, :]).all(-1).double().argmax(1)
            proposals = [cands[int(i)] for i in match]
        except (ModelFittingError, RuntimeError, ValueError):  # degenerate data: explore at random
            proposals = [cands[int(i)] for i in rng.choice(len(cands), batch, replace=False)]
        problem.evaluate(proposals)
        seen.update(_key(d) for d in proposals)


def _parego(model: Any, tx: Any, ty: Any, baseline: Any, choices: Any, batch: int, sampler: Any,
            rng: np.random.Generator, nei: Any, generic: Any, chebyshev: Any, simplex: Any,
            optimize: Any) -> Any:
    """``batch`` designs, each maximizing qLogNEI of its own random Chebyshev scalarization."""
    import torch

    picked = []
    for _ in range(batch):
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        weights = simplex(d=ty.shape[-1], n=1, dtype=torch.double).squeeze(0)
        objective = generic(chebyshev(weights=weights, Y=ty))
        pending = torch.cat(picked) if picked else None
        acq = nei(model, X_baseline=baseline, sampler=sampler, objective=objective,
                  X_pending=pending, prune_baseline=True)
        left = choices
        if picked:
            done = torch.cat(picked)
            left = choices[~(choices[:, None, :] == done[None, :, :]).all(-1).any(1)]
        x, _ = optimize(acq, q=1, choices=left)
        picked.append(x)
    return torch.cat(picked)


def _one_blas_thread() -> Any:
    """A context with the BLAS/OpenMP pools (scipy's L-BFGS-B under the GP fit) at one thread:
    on a busy shared CPU their spinning threads made a GP fit 3x slower (23 s vs 7 s for 18
    points, 3 objectives). A no-op where threadpoolctl is missing."""
    import scipy.optimize  # noqa: F401  (loads scipy's BLAS, so that the limit covers it)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _run(problem: BudgetedProblem, rng: np.random.Generator, method: str, **kw: Any) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small GPs: one thread is faster on a shared CPU, and repeatable
    try:
        with _one_blas_thread():
            _mobo(problem, rng, method, **kw)
    finally:
        torch.set_num_threads(threads)


@register_agent("qnehvi")
def qnehvi(problem: BudgetedProblem, rng: np.random.Generator, q: int = 4,
           n_init: int | None = None, n_candidates: int = 500, n_local: int = 5,
           enumerate_limit: int = 5000, max_train: int = 200, mc_samples: int = 64) -> None:
    """BoTorch qLogNEHVI over a finite candidate set (see the module docstring).

    Hyperparameters: ``q`` (designs per batch, default 4), ``n_init`` (Sobol designs first,
    default ``2 * (dim + 1)``), ``n_candidates`` (random candidates per round, default 500),
    ``n_local`` (best designs whose neighbours are candidates, default 5), ``enumerate_limit``
    (largest discrete space enumerated, default 5000), ``max_train`` (most GP training points,
    default 200), ``mc_samples`` (quasi-MC samples of the acquisition, default 64)."""
    _run(problem, rng, "qnehvi", q=q, n_init=n_init, n_candidates=n_candidates, n_local=n_local,
         enumerate_limit=enumerate_limit, max_train=max_train, mc_samples=mc_samples)


@register_agent("qparego")
def qparego(problem: BudgetedProblem, rng: np.random.Generator, q: int = 4,
            n_init: int | None = None, n_candidates: int = 500, n_local: int = 5,
            enumerate_limit: int = 5000, max_train: int = 200, mc_samples: int = 64) -> None:
    """BoTorch qParEGO: random Chebyshev scalarizations under qLogNEI (hyperparameters as
    :func:`qnehvi`)."""
    _run(problem, rng, "qparego", q=q, n_init=n_init, n_candidates=n_candidates,
         n_local=n_local, enumerate_limit=enumerate_limit, max_train=max_train,
         mc_samples=mc_samples)
