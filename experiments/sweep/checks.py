"""Checks on the driver, before Ray starts: every problem builds and every agent accepts each of
its hyperparameter values (:func:`check_runnable`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.experiments.sweep.config import AgentSpec, SweepConfig, _fail, import_plugins
from mlsysgym.experiments.sweep.trials import _close, _problem_name


def _candidate_values(spec: AgentSpec) -> dict[str, list[Any]]:
    """Every value a sweep may give each hyperparameter of ``spec``: fixed values, grid values,
    and the ends (or choices) of distributions."""
    out: dict[str, list[Any]] = {k: [v] for k, v in spec.fixed.items()}
    out.update({k: list(v) for k, v in spec.grid.items()})
    for k, d in spec.distributions.items():
        (_kind, args), = d.items()
        out[k] = list(args)
    return out


def _signature_names(fn: Callable[..., Any]) -> set[str] | None:
    """Keyword hyperparameters an agent function accepts (after problem and rng); None when it
    takes ``**kwargs``."""
    import inspect

    params = list(inspect.signature(fn).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def check_runnable(config: SweepConfig) -> None:
    """SweepConfigError (one line) unless every problem of ``config`` can be built here
    (zoo models, env ids and env keyword arguments resolve) and every agent accepts each of its
    hyperparameter values: names against the agent's signature, values by a dry run that stops
    at the agent's first evaluation. Run on the driver before Ray starts."""
    import warnings

    import numpy as np
    from mlsysgym.agents.base import (
        BudgetedProblem,
        BudgetExhausted,
        agent_function,
        agents_for,
        problem_kind,
    )
    from mlsysgym.agents.problems import make_problem

    class _DryRun(BudgetedProblem):
        def evaluate(self, designs: Any) -> Any:
            raise BudgetExhausted("dry run")

    import_plugins(config.imports)
    built = []
    try:
        for spec in config.problems:
            try:
                built.append(make_problem(spec))
            except MlsysgymError as e:
                _fail(f"problem {_problem_name(spec)!r} cannot be built: {e}")
        for a in config.agents:
            for spec, problem in zip(config.problems, built):  # one implementation per kind
                kind = problem_kind(problem)
                if agent_function(a.name, kind) is None:
                    _fail(f"agent {a.name!r} cannot search the {kind!r} problem "
                          f"{_problem_name(spec)!r}; agents for it: "
                          f"{', '.join(agents_for(kind)) or 'none'}")
            fn = agent_function(a.name, problem_kind(built[0]))
            assert fn is not None
            values = _candidate_values(a)
            accepted = _signature_names(fn)
            unknown = sorted(set(values) - accepted) if accepted is not None else []
            if unknown:
                _fail(f"agent {a.name!r} has no hyperparameter(s) {unknown}; it takes "
                      f"{sorted(accepted or ())}")
            base = {k: v[0] for k, v in values.items()}
            tried = [base] + [{**base, k: x} for k, vs in values.items() for x in vs[1:]]
            for hp in tried:
                try:
                    with warnings.catch_warnings():  # the trials report their own warnings
                        warnings.simplefilter("ignore")
                        fn(_DryRun(built[0], 1), np.random.default_rng(0), **hp)
                except BudgetExhausted:
                    pass
                except (MlsysgymError, TypeError, ValueError) as e:
                    _fail(f"agent {a.name!r} with {hp}: {str(e).splitlines()[0]}")
    finally:
        for problem in built:
            _close(problem)
