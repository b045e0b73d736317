"""Multi-objective Bayesian optimization with BoTorch: ``qnehvi`` and ``qparego``.

Both search a :class:`~mlsysgym.agents.multiobjective.MultiObjectiveProblem` (a problem with
``objectives``) and leave its Pareto summary in ``SearchResult.info``. Each round conditions
one multi-output ``SingleTaskGP`` (independent outputs, standardized) on the evaluated designs
that did not fail, and picks a batch of designs from a finite candidate set of valid, unseen
designs (as the ``bo`` agent does: every design of a small discrete space, else
``n_candidates`` random designs plus the neighbours of the best ones), evaluated as one batch.

- **Outputs.** When every objective value and reference coordinate is positive (latency,
  energy, area, ...), the GP models ``log(r / v)`` of a minimized metric and ``log(v / r)`` of a
  maximized one (a 2x better design than the reference point scores ln 2, the reference point
  itself 0): hardware metrics span orders of magnitude, which a GP on raw values fits poorly.
  Otherwise it models ``-g / |r|`` (the minimization form ``g`` scaled by the reference).
  Either way the acquisition's reference point is the problem's reference point.
- **qnehvi**: ``qLogNoisyExpectedHypervolumeImprovement``; its baseline is the ``max_baseline``
  feasible training designs of the best observed non-dominated ranks, pruned by BoTorch to
  the likely-best. The designs already picked for the batch are pending points.
- **qparego**: for each greedy step a random augmented Chebyshev scalarization (weights
  uniform on the simplex) under ``qLogNoisyExpectedImprovement``, with the designs already
  picked in the batch as pending points.
- **Batch selection** (sequential greedy over the candidates): the batch is chosen in at most
  ``max_steps`` steps; each step conditions the acquisition on the designs picked so far and
  takes the ``ceil(batch / max_steps)`` best candidates (one per step, i.e. the classic
  sequential greedy of ``optimize_acqf_discrete``, while ``batch <= max_steps``).
- **Large budgets.** The batch grows with the data: ``batch = max(q, ceil(n / q_growth))``
  with ``n`` designs evaluated so far (``q_growth=0``: always ``q``), so a 2,000-evaluation
  run takes about 50 rounds instead of 500. The GP hyperparameters are fitted by maximum
  marginal likelihood (at most ``fit_maxiter`` L-BFGS iterations, warm-started from the last
  fit) in the first round and every ``refit_every``-th round after it; in between the GP keeps
  the last fitted hyperparameters and is only conditioned on the new data (and re-standardized).
  With more than ``max_train`` evaluations the GP is fit on the best non-dominated ranks first.
- **Initial design**: ``n_init`` scrambled-Sobol designs (default ``2 * (dim + 1)``).

torch and BoTorch are imported when the agent runs. BoTorch compiles a C++ kernel for
qLogNEHVI on first use, with ``-march=native``; it is built once per CPU under mlsysgym's
cache (:func:`native_kernel_dir`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.bayesopt import _candidates, _hyperparameters, _initial_designs, features
from mlsysgym.agents.multiobjective import MultiObjectiveProblem, _key
from mlsysgym.agents.pareto import non_dominated_sort
from mlsysgym.core.target import target_id
from mlsysgym.ir.mlir_import import cache_dir

__all__ = ["HYPERPARAMETERS", "batch_size", "native_kernel_dir", "qnehvi", "qparego"]

HYPERPARAMETERS: dict[str, list[Any]] = {"q": [1, 4, 8], "n_init": [10, 20],
                                       "q_growth": [0, 20], "refit_every": [1, 5]}


def _outputs(problem: MultiObjectiveProblem, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GP targets (maximized) of minimization-form objectives ``g``, and the reference point in
    the same form (see the module docstring)."""
    raw = g * np.where(np.array(problem.directions) == "minimize", 1.0, -1.0)  # metric values
    ref = np.asarray(problem.reference, dtype=float)
    if np.all(raw > 0) and np.all(ref > 0):
        y = np.log(ref / raw) * np.where(np.array(problem.directions) == "minimize", 1.0, -1.0)
        return y, np.zeros(len(ref))
    return -g / np.abs(problem.ref_min), -problem.ref_min / np.abs(problem.ref_min)


@dataclass(frozen=True)
class Settings:
    """The hyperparameters of :func:`qnehvi` and :func:`qparego` (see their docstrings);
    an out-of-range value raises :class:`~mlsysgym.agents.base.AgentConfigError`."""

    q: int = 4
    q_growth: int = 10
    max_steps: int = 4
    n_init: int | None = None
    n_candidates: int = 300
    n_local: int = 5
    enumerate_limit: int = 5000
    max_train: int = 200
    max_baseline: int = 32
    mc_samples: int = 16
    refit_every: int = 5
    fit_maxiter: int = 100

    def __post_init__(self) -> None:
        at_least = {"q": 1, "max_steps": 1, "n_candidates": 1, "n_local": 0,
                    "enumerate_limit": 0, "max_train": 2, "max_baseline": 1, "mc_samples": 1,
                    "refit_every": 1, "fit_maxiter": 1, "q_growth": 0}
        for name, low in at_least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise AgentConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.n_init is not None and (not isinstance(self.n_init, (int, np.integer))
                                        or self.n_init < 2):
            raise AgentConfigError(f"n_init must be an integer >= 2, got {self.n_init!r}")


def batch_size(n: int, q: int, q_growth: int) -> int:
    """Designs in the next batch after ``n`` evaluations: ``max(q, ceil(n / q_growth))``
    (``q`` when ``q_growth`` is 0). With the defaults ``q=4, q_growth=10``: 4 up to 40
    evaluations, 100 at 1,000, 199 at 1,990."""
    return q if q_growth == 0 else max(q, -(-n // q_growth))


def _fit_gp(tx: Any, ty: Any, warm: dict | None, refit: bool, maxiter: int) -> Any:
    """A multi-output ``SingleTaskGP`` on ``(tx, ty)`` with the hyperparameters ``warm`` (None:
    BoTorch's initial ones), refitted by maximum marginal likelihood when ``refit``."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    model = SingleTaskGP(tx, ty)
    if warm:
        model.load_state_dict(warm, strict=False)
    if refit:
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                         optimizer_kwargs={"options": {"maxiter": maxiter}})
    return model.eval()


def _greedy(acquisition: Callable[[Any], Any], choices: Any, batch: int, steps: int,
            chunk: int = 256) -> list[int]:
    """Indices of ``batch`` distinct ``choices``, picked in at most ``steps`` greedy steps:
    each step builds ``acquisition(pending)`` (``pending``: the designs picked so far, or None)
    and takes the ``ceil(batch / steps)`` candidates with the highest values."""
    import torch

    picked: list[int] = []
    free = torch.ones(len(choices), dtype=torch.bool)
    per = -(-batch // steps)
    while len(picked) < batch:
        acq = acquisition(choices[picked] if picked else None)
        with torch.no_grad():
            values = torch.cat([acq(choices[i:i + chunk].unsqueeze(1))
                                for i in range(0, len(choices), chunk)])
        values[~free] = -torch.inf
        top = torch.topk(values, min(per, batch - len(picked))).indices
        picked += top.tolist()
        free[top] = False
    return picked


def _mobo(problem: BudgetedProblem, rng: np.random.Generator, method: str, s: Settings) -> None:
    """Initial design, then rounds of GP → acquisition → batch until the budget is spent."""
    import torch
    from botorch.exceptions import ModelFittingError

    inner = problem.problem
    if not isinstance(inner, MultiObjectiveProblem):
        raise AgentConfigError(f"{method} searches a multi-objective problem: wrap it with "
                               "objectives=[...] (mlsysgym.agents.multiobjective)")
    n_init = 2 * (problem.space.dim + 1) if s.n_init is None else int(s.n_init)
    problem.evaluate(_initial_designs(problem, rng, min(n_init, problem.remaining)))
    seen = {_key(d) for d in problem.designs}
    warm: dict | None = None
    rounds = 0
    while not problem.exhausted:
        cands = _candidates(problem, rng, seen, s.enumerate_limit, s.n_candidates, s.n_local)
        if not cands:
            return
        batch = min(batch_size(len(problem.designs), s.q, s.q_growth), problem.remaining,
                    len(cands))
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        refit = warm is None or rounds % s.refit_every == 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                picked, warm = _round(problem, inner, cands, batch, method, s, warm, refit, rng)
        except (ModelFittingError, RuntimeError, ValueError):  # degenerate data: explore at random
            picked = rng.choice(len(cands), batch, replace=False).tolist()
        rounds += 1
        proposals = [cands[i] for i in picked]
        problem.evaluate(proposals)
        seen.update(_key(d) for d in proposals)


def _round(problem: BudgetedProblem, inner: MultiObjectiveProblem, cands: list, batch: int,
           method: str, s: Settings, warm: dict | None, refit: bool,
           rng: np.random.Generator) -> tuple[list[int], dict]:
    """One round: the GP on the training designs, the acquisition, the batch (indices into
    ``cands``) and the GP's hyperparameters."""
    import torch
    from botorch.sampling import SobolQMCNormalSampler

    failed = np.asarray(problem.failed, dtype=bool)
    g = inner.objective_matrix(problem.metrics)
    ok = inner.feasible(problem.designs, problem.metrics, failed)
    use = rng.permutation(np.flatnonzero(~failed & np.all(np.isfinite(g), axis=1)))
    use = use[np.argsort(non_dominated_sort(g[use]), kind="stable")][: s.max_train]  # best first
    y, ref = _outputs(inner, g[use])
    x = features(problem.space, [problem.designs[i] for i in use], "onehot")
    tx, ty = (torch.as_tensor(a, dtype=torch.double) for a in (x, y))
    model = _fit_gp(tx, ty, warm, refit, s.fit_maxiter)
    base = np.flatnonzero(ok[use])[: s.max_baseline]
    baseline = tx[torch.as_tensor(base)] if base.size else tx[: s.max_baseline]
    sampler = SobolQMCNormalSampler(torch.Size([s.mc_samples]))
    choices = torch.as_tensor(features(problem.space, cands, "onehot"), dtype=torch.double)
    if method == "qnehvi":
        make = _nehvi(model, ref, baseline, sampler)
    else:
        make = _parego(model, ty, baseline, sampler, rng)
    return _greedy(make, choices, batch, s.max_steps), _hyperparameters(model)


def native_kernel_dir() -> str:
    """Where torch builds native extensions for this process: ``$TORCH_EXTENSIONS_DIR`` if the
    user set it, else (set here) ``torch-extensions/<this CPU's target_id>`` under mlsysgym's
    cache. BoTorch compiles its qLogNEHVI kernel with ``-march=native`` (about 30 s, once),
    and torch's own folder is keyed by the source, not the CPU: a home folder that machines
    share handed an AVX2 CPU AVX-512 code, and the process died of SIGILL."""
    return os.environ.setdefault("TORCH_EXTENSIONS_DIR",
                                 str(cache_dir("torch-extensions") / target_id("host")))


def _nehvi(model: Any, ref: np.ndarray, baseline: Any, sampler: Any) -> Callable[[Any], Any]:
    """qLogNEHVI (built once; the pending designs are folded into its box decompositions)."""
    native_kernel_dir()
    import torch
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )

    acq = qLogNoisyExpectedHypervolumeImprovement(
        model, ref_point=torch.as_tensor(ref), X_baseline=baseline, sampler=sampler,
        prune_baseline=True)

    def make(pending: Any) -> Any:
        acq.set_X_pending(pending)
        return acq
    return make


def _parego(model: Any, ty: Any, baseline: Any, sampler: Any,
            rng: np.random.Generator) -> Callable[[Any], Any]:
    """qLogNEI of a new random augmented Chebyshev scalarization at every greedy step."""
    import torch
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.utils.multi_objective.scalarization import get_chebyshev_scalarization
    from botorch.utils.sampling import sample_simplex

    def make(pending: Any) -> Any:
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        weights = sample_simplex(d=ty.shape[-1], n=1, dtype=torch.double).squeeze(0)
        objective = GenericMCObjective(get_chebyshev_scalarization(weights=weights, Y=ty))
        return qLogNoisyExpectedImprovement(model, X_baseline=baseline, sampler=sampler,
                                            objective=objective, X_pending=pending,
                                            prune_baseline=True)
    return make


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


def _run(problem: BudgetedProblem, rng: np.random.Generator, method: str,
         settings: Settings) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small GPs: one thread is faster on a shared CPU, and repeatable
    try:
        with _one_blas_thread():
            _mobo(problem, rng, method, settings)
    finally:
        torch.set_num_threads(threads)


@register_agent("qnehvi")
def qnehvi(problem: BudgetedProblem, rng: np.random.Generator, q: int = 4, q_growth: int = 10,
           max_steps: int = 4, n_init: int | None = None, n_candidates: int = 300,
           n_local: int = 5, enumerate_limit: int = 5000, max_train: int = 200,
           max_baseline: int = 32, mc_samples: int = 16, refit_every: int = 5,
           fit_maxiter: int = 100) -> None:
    """BoTorch qLogNEHVI over a finite candidate set (see the module docstring).

    Hyperparameters: ``q`` (smallest batch, default 4), ``q_growth`` (batch
    ``max(q, ceil(n / q_growth))`` after ``n`` evaluations, default 10; 0: always ``q``),
    ``max_steps`` (greedy steps per batch, default 4), ``n_init`` (Sobol designs first, default
    ``2 * (dim + 1)``), ``n_candidates`` (random candidates per round, default 300), ``n_local``
    (best designs whose neighbours are candidates, default 5), ``enumerate_limit`` (largest
    discrete space enumerated, default 5000), ``max_train`` (most GP training points, default
    200), ``max_baseline`` (most baseline designs of the acquisition, default 32),
    ``mc_samples`` (quasi-MC samples of the acquisition, default 16), ``refit_every`` (GP
    hyperparameters fitted in the first round and every that many rounds, default 5; 1: every
    round), ``fit_maxiter`` (L-BFGS iterations per fit, default 100). An out-of-range value
    raises AgentConfigError."""
    _run(problem, rng, "qnehvi", Settings(q, q_growth, max_steps, n_init, n_candidates, n_local,
                                          enumerate_limit, max_train, max_baseline, mc_samples,
                                          refit_every, fit_maxiter))


@register_agent("qparego")
def qparego(problem: BudgetedProblem, rng: np.random.Generator, q: int = 4, q_growth: int = 10,
            max_steps: int = 4, n_init: int | None = None, n_candidates: int = 300,
            n_local: int = 5, enumerate_limit: int = 5000, max_train: int = 200,
            max_baseline: int = 32, mc_samples: int = 16, refit_every: int = 5,
            fit_maxiter: int = 100) -> None:
    """BoTorch qParEGO: random Chebyshev scalarizations under qLogNEI (see the module
    docstring; hyperparameters as :func:`qnehvi`)."""
    _run(problem, rng, "qparego", Settings(q, q_growth, max_steps, n_init, n_candidates,
                                           n_local, enumerate_limit, max_train, max_baseline,
                                           mc_samples, refit_every, fit_maxiter))
