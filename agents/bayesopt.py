"""Bayesian optimization with BoTorch: a GP surrogate, log expected improvement, batch proposals.

Each round fits a GP to every evaluated design and picks the next ``q`` designs by
maximizing ``qLogExpectedImprovement`` (or ``qLogNoisyExpectedImprovement``) over a finite
candidate set of valid, not-yet-evaluated designs (greedy sequential batch selection,
``optimize_acqf_discrete``); the ``q`` designs are evaluated as one batch.

- **Inputs.** Ordered parameters (Integer, PowerOfTwo: level index; Float: unit position)
  are scaled to [0, 1]. Categorical parameters either become one-hot blocks for a
  ``SingleTaskGP`` (``kernel="onehot"``, the default) or keep their level index for BoTorch's
  ``MixedSingleTaskGP`` (a categorical kernel: ``kernel="mixed"``; about ten times slower to
  fit). Without categoricals both are a ``SingleTaskGP`` (BoTorch's default kernel with
  ARD, standardized outputs), warm-started from the previous round's hyperparameters.
- **Candidates.** When the space is discrete and has at most ``enumerate_limit`` feasible
  designs, all of them (exact acquisition maximization); otherwise ``n_candidates`` uniform
  random feasible designs plus every neighbour (``DesignSpace.neighbours``) of the
  ``n_local`` best designs so far. Already-evaluated designs are never candidates, so no
  design is proposed twice. This is simple and honest for the mostly discrete spaces of
  hardware DSE; Floats are searched through random samples and grid neighbours.
- **Initial design.** ``n_init`` scrambled-Sobol points in the unit cube, decoded to designs
  (infeasible or repeated ones replaced by random designs).
- **Failures.** Failed evaluations enter the GP at the worst successful reward. With more
  than ``max_train`` points the GP is fit on the best half and a random half of the rest.

torch and BoTorch are imported when the agent runs, not when this module is imported.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, Design, register_agent

__all__ = ["HYPERPARAMETERS", "bayesian_optimization", "features"]

HYPERPARAMETERS: dict[str, list[Any]] = {
    "q": [1, 4, 8],
    "n_init": [5, 10, 20],
    "acquisition": ["qlogei", "qlognei"],
    "kernel": ["onehot", "mixed"],
}


def _key(design: Design) -> tuple:
    return tuple(design.values())


def features(space: Any, designs: list[Design], kernel: str) -> np.ndarray:
    """GP inputs: ordered parameters scaled to [0, 1]; categoricals as level index (``mixed``)
    or one-hot blocks (``onehot``). Returns an (n, width) float array."""
    ordinal = space.encode_batch(designs, "ordinal", validate=False)
    nvec = space.nvec
    cols: list[np.ndarray] = []
    for j, p in enumerate(space.params):
        x = ordinal[:, j]
        if not p.discrete:
            cols.append(x[:, None])
        elif p.ordered:
            cols.append((x / max(nvec[j] - 1, 1))[:, None])
        elif kernel == "mixed":
            cols.append(x[:, None])
        else:
            cols.append(np.eye(int(nvec[j]))[x.astype(np.int64)])
    return np.concatenate(cols, axis=1)


def _categorical_columns(space: Any) -> list[int]:
    return [j for j, p in enumerate(space.params) if p.discrete and not p.ordered]


def _initial_designs(problem: BudgetedProblem, rng: np.random.Generator, n: int) -> list[Design]:
    """``n`` distinct feasible designs from a scrambled Sobol sequence (random fill-ins)."""
    import torch

    space = problem.space
    sobol = torch.quasirandom.SobolEngine(space.dim, scramble=True,
                                          seed=int(rng.integers(2**31 - 1)))
    designs = space.decode_batch(sobol.draw(n).double().numpy(), "unit")
    out: list[Design] = []
    keys: set[tuple] = set()
    for d in designs + space.sample(rng, 4 * n + 8):
        k = _key(d)
        if len(out) < n and k not in keys and space.is_valid(d):
            out.append(d)
            keys.add(k)
    return out


def _candidates(problem: BudgetedProblem, rng: np.random.Generator, seen: set[tuple],
                enumerate_limit: int, n_candidates: int, n_local: int) -> list[Design]:
    """Valid, unseen designs to maximize the acquisition over (see the module docstring)."""
    space = problem.space
    if space.is_discrete and space.size() <= enumerate_limit:
        pool = space.enumerate()
    else:
        pool = space.sample(rng, n_candidates)
        order = np.argsort(-np.asarray(problem.rewards), kind="stable")[:n_local]
        for i in order:
            pool += space.neighbours(problem.designs[i])
    out: list[Design] = []
    keys: set[tuple] = set()
    for d in pool:
        k = _key(d)
        if k not in seen and k not in keys:
            out.append(d)
            keys.add(k)
    return out


def _fit(x: np.ndarray, y: np.ndarray, cat_dims: list[int], warm: dict | None,
         maxiter: int) -> Any:
    """A GP fitted by maximum marginal likelihood (MixedSingleTaskGP if ``cat_dims``),
    starting from the hyperparameters ``warm`` of the previous round when given."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import MixedSingleTaskGP, SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    tx = torch.as_tensor(x, dtype=torch.double)
    ty = torch.as_tensor(y, dtype=torch.double)[:, None]
    model = MixedSingleTaskGP(tx, ty, cat_dims=cat_dims) if cat_dims else SingleTaskGP(tx, ty)
    if warm:
        model.load_state_dict(warm, strict=False)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                     optimizer_kwargs={"options": {"maxiter": maxiter}})
    return model


def _hyperparameters(model: Any) -> dict:
    """The GP's kernel, mean and noise parameters (not its data or outcome transform)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k.startswith(("covar_module.", "mean_module.", "likelihood."))}


@register_agent("bo")
def bayesian_optimization(problem: BudgetedProblem, rng: np.random.Generator, q: int = 4,
                          n_init: int | None = None, acquisition: str = "qlogei",
                          kernel: str = "onehot", n_candidates: int = 2000, n_local: int = 5,
                          enumerate_limit: int = 20_000, max_train: int = 300,
                          fit_maxiter: int = 100) -> None:
    """GP + LogEI Bayesian optimization over a finite candidate set (see the module docstring).

    Hyperparameters: ``q`` (designs per batch, default 4), ``n_init`` (initial Sobol designs,
    default ``max(5, 2 * dim)``), ``acquisition`` (``"qlogei"``, default, or ``"qlognei"``),
    ``kernel`` (``"onehot"``: SingleTaskGP over one-hot categoricals, default; ``"mixed"``:
    MixedSingleTaskGP with a categorical kernel, ~10× slower to fit), ``n_candidates``
    (random candidates per round when the space is not enumerated, default 2000), ``n_local`` (best designs whose
    neighbours are candidates, default 5), ``enumerate_limit`` (largest discrete space searched
    exhaustively, default 20,000), ``max_train`` (most points the GP is fit on, default 300),
    ``fit_maxiter`` (L-BFGS iterations per GP fit, warm-started from the last round, default
    100). Runs torch on one thread (restored afterwards): faster for these small GPs on a
    shared CPU, and one trajectory per seed.
    """
    if q < 1:
        raise AgentConfigError(f"q must be >= 1, got {q}")
    if acquisition not in ("qlogei", "qlognei"):
        raise AgentConfigError(f"acquisition must be 'qlogei' or 'qlognei', got {acquisition!r}")
    if kernel not in ("mixed", "onehot"):
        raise AgentConfigError(f"kernel must be 'mixed' or 'onehot', got {kernel!r}")
    import torch

    space = problem.space
    cat_dims = _categorical_columns(space) if kernel == "mixed" else []
    n_init = max(5, 2 * space.dim) if n_init is None else int(n_init)
    if n_init < 1:
        raise AgentConfigError(f"n_init must be >= 1, got {n_init}")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _loop(problem, rng, q, n_init, acquisition, kernel, cat_dims, n_candidates, n_local,
              enumerate_limit, max_train, fit_maxiter)
    finally:
        torch.set_num_threads(threads)


def _loop(problem: BudgetedProblem, rng: np.random.Generator, q: int, n_init: int,
          acquisition: str, kernel: str, cat_dims: list[int], n_candidates: int, n_local: int,
          enumerate_limit: int, max_train: int, fit_maxiter: int) -> None:
    """The BO rounds: initial design, then fit → acquisition → batch, until the budget is gone."""
    import torch
    from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
    from botorch.exceptions import ModelFittingError
    from botorch.optim import optimize_acqf_discrete

    space = problem.space
    warm: dict | None = None
    init = _initial_designs(problem, rng, min(n_init, problem.remaining))
    problem.evaluate(init)
    seen = {_key(d) for d in problem.designs}
    while not problem.exhausted:
        cands = _candidates(problem, rng, seen, enumerate_limit, n_candidates, n_local)
        if not cands:
            return  # every design has been evaluated
        batch = min(q, problem.remaining, len(cands))
        y = np.asarray(problem.rewards, dtype=float)
        failed = np.asarray(problem.failed, dtype=bool)
        ok = ~failed & np.isfinite(y)
        y = np.where(ok, y, y[ok].min() if ok.any() else 0.0)
        idx = np.arange(len(y))
        if len(y) > max_train:  # the best half, and a random sample of the rest
            order = np.argsort(-y, kind="stable")
            rest = rng.choice(order[max_train // 2:], max_train - max_train // 2, replace=False)
            idx = np.concatenate([order[: max_train // 2], rest])
        train_designs = [problem.designs[i] for i in idx]
        x = features(space, train_designs, kernel)
        torch.manual_seed(int(rng.integers(2**31 - 1)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = _fit(x, y[idx], cat_dims, warm, fit_maxiter)
                warm = _hyperparameters(model)
                tx = torch.as_tensor(x, dtype=torch.double)
                if acquisition == "qlognei":
                    acq = qLogNoisyExpectedImprovement(model, X_baseline=tx)
                else:
                    acq = qLogExpectedImprovement(model, best_f=float(y[idx].max()))
                choices = torch.as_tensor(features(space, cands, kernel), dtype=torch.double)
                picked, _ = optimize_acqf_discrete(acq, q=batch, choices=choices, unique=True)
            match = (choices[None, :, :] == picked[:, None, :]).all(-1).double().argmax(1)
            proposals = [cands[int(i)] for i in match]
        except (ModelFittingError, RuntimeError, ValueError):  # degenerate data: explore at random
            proposals = [cands[int(i)] for i in rng.choice(len(cands), batch, replace=False)]
        problem.evaluate(proposals)
        seen.update(_key(d) for d in proposals)
