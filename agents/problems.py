"""Named problems: ``make_problem("synthetic-mixed")`` or ``make_problem({"name": ..., **kwargs})``.

The synthetic problems are analytic objectives over a DesignSpace with a known optimum in
closed form (``problem.optimum``, ``problem.optimal_reward``); agent tests and sweep tests
use them. Each is an :class:`~mlsysgym.agents.parallel.EvaluatorProblem` over a
:class:`SyntheticEvaluator`, so it runs on the serial path or through a RayPool like a real one.

The objective (maximized) is separable::

    reward = bonus[categorical] - sum_k w_k * (u_k - u*_k)^2

where ``u_k`` is the position of numeric parameter k in [0, 1] (an Integer's value, a
PowerOfTwo's log2, a Float's value, each scaled by its range) and ``u*_k`` the target's.
Targets are on each parameter's grid, so the optimum is exactly ``max(bonus)`` at the
target design.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.agents.base import Design, Outcome, Problem
from mlsysgym.agents.parallel import EvaluatorProblem
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Evaluator, Metrics
from mlsysgym.core.params import Categorical, Float, Integer, PowerOfTwo
from mlsysgym.core.space import DesignSpace

__all__ = ["PROBLEMS", "EnvProblem", "SyntheticEvaluator", "SyntheticProblem", "UnknownProblemError",
           "make_problem", "problem_names", "register_problem", "synthetic_problem"]


class UnknownProblemError(MlsysgymError):
    """A problem name (or spec) that is not registered or is malformed."""


ProblemFactory = Callable[..., Problem]
PROBLEMS: dict[str, ProblemFactory] = {}


def register_problem(name: str) -> Callable[[ProblemFactory], ProblemFactory]:
    """Decorator: make a problem factory available to :func:`make_problem` under ``name``."""
    def wrap(fn: ProblemFactory) -> ProblemFactory:
        PROBLEMS[name] = fn
        return fn
    return wrap


def problem_names() -> list[str]:
    """Registered problem names, sorted."""
    return sorted(PROBLEMS)


def parse_spec(spec: Mapping[str, Any] | str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``{"name": ..., **kwargs}`` (or ``{"name": ..., "kwargs": {...}}``) →
    (name, kwargs)."""
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise UnknownProblemError(f"a problem spec is a name or a mapping with a 'name' key, "
                                  f"got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "kwargs")}
    kwargs.update(spec.get("kwargs") or {})
    return str(spec["name"]), kwargs


def check_spec(spec: Mapping[str, Any] | str) -> str:
    """The problem's name if ``spec`` names a known problem; UnknownProblemError otherwise."""
    name, _ = parse_spec(spec)
    if name.startswith("env:"):
        return name
    if name not in PROBLEMS:
        raise UnknownProblemError(f"unknown problem {name!r}; choose one of "
                                  f"{', '.join(problem_names())} or env:<gymnasium id>")
    return name


def make_problem(spec: Mapping[str, Any] | str) -> Problem:
    """The Problem a spec names: a registered name (plus keyword arguments) or ``env:<id>``."""
    name, kwargs = parse_spec(spec)
    if name.startswith("env:"):
        return _env_problem(name[len("env:"):], **kwargs)
    check_spec(name)
    try:
        return PROBLEMS[name](**kwargs)
    except TypeError as e:
        raise UnknownProblemError(f"bad arguments for problem {name!r}: {e}") from None


# ---- env-based problems ----------------------------------------------------------------------
@dataclass
class EnvProblem(EvaluatorProblem):
    """The search problem of a DesignEnv (``env.space``, ``env.evaluator``, ``env.workload``,
    ``env.reward_fn``): rewards equal what ``env.step`` would give, designs that break a
    constraint of the space included (they get the env's penalty, not a failure)."""

    def evaluate(self, designs: Sequence[Design]) -> Outcome:
        out = super().evaluate(designs)
        ok = self.space.feasible(self.space.to_columns(designs))  # constraints, vectorized
        bad = np.flatnonzero(~out.failed & ~ok)
        if not bad.size:
            return out
        cols = {m: np.array([out.metrics[i][m] for i in bad]) for m in out.metrics[bad[0]]}
        rewards = out.rewards.copy()
        rewards[bad] = np.asarray(self.reward(cols, feasible=np.zeros(len(bad), bool))).reshape(-1)
        return Outcome(rewards, out.metrics, out.failed)


def _env_problem(env_id: str, parallel: int | None = None, timeout_s: float | None = None,
                 **kwargs: Any) -> Problem:
    """``env:<gymnasium id>``: the env's DesignSpace, Evaluator, workload and reward as a Problem
    (``parallel`` = number of Ray workers, ``timeout_s`` per evaluation)."""
    import gymnasium as gym

    import mlsysgym  # noqa: F401  (registers the envs)

    try:
        env = gym.make(env_id, disable_env_checker=True, **kwargs).unwrapped
    except (gym.error.Error, TypeError) as e:  # an unknown id, or keyword arguments it rejects
        raise UnknownProblemError(f"cannot make env {env_id!r}: {e}") from None
    if not hasattr(env, "space") or not hasattr(env, "reward_fn"):
        raise UnknownProblemError(f"env {env_id!r} is not a design-space env (no space/reward_fn)")
    return EnvProblem(env.space, env.evaluator, env.workload, env.reward_fn, parallel=parallel,
                      timeout_s=timeout_s, name=f"{env_id}:{env.workload_id}")


# ---- synthetic analytic problems -------------------------------------------------------------
def _unit(p: Any, values: np.ndarray) -> np.ndarray:
    """Position of numeric values in [0, 1] along the parameter's own scale."""
    if isinstance(p, PowerOfTwo):
        lo, hi = math.log2(p.low), math.log2(p.high)
        v = np.log2(values.astype(float))
    elif isinstance(p, Integer):
        lo, hi, v = p.low, p.high, values.astype(float)
    else:
        lo, hi, v = p.low, p.high, values.astype(float)
    return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


class SyntheticEvaluator(Evaluator):
    """The separable analytic objective of a synthetic problem as metrics.

    Metrics: ``distance`` (the weighted squared distance to the target, ≥ 0), ``bonus`` (of
    the categorical choices) and ``objective`` = bonus − distance (what the reward maximizes).
    """

    name = "synthetic"
    version = "1"
    metric_names = ("objective", "distance", "bonus")

    def __init__(self, space: DesignSpace, target: Mapping[str, Any],
                 bonus: Mapping[str, Mapping[Any, float]], weights: Mapping[str, float],
                 cache_size: int = 100_000, seed: int = 0) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        self.space = space
        self.target = dict(target)
        self.bonus = {k: dict(v) for k, v in bonus.items()}
        self.weights = dict(weights)

    @property
    def id(self) -> str:
        """Includes a hash of the objective so two synthetic problems never share cache rows."""
        blob = json.dumps([self.target, {k: sorted(v.items(), key=repr)
                                         for k, v in self.bonus.items()}, self.weights],
                          sort_keys=True, default=str)
        import hashlib

        return f"{self.name}@{self.version}#{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def _evaluate(self, designs: list[Design], workload: Any) -> Metrics:
        cols = self.space.to_columns(designs)
        n = len(designs)
        distance = np.zeros(n)
        bonus = np.zeros(n)
        for p in self.space.params:
            if isinstance(p, Categorical):
                table = self.bonus.get(p.name, {})
                bonus += np.array([table.get(v, 0.0) for v in cols[p.name].tolist()])
            else:
                u = _unit(p, cols[p.name])
                u0 = _unit(p, np.array([self.target[p.name]]))[0]
                distance += self.weights.get(p.name, 1.0) * (u - u0) ** 2
        return {"objective": bonus - distance, "distance": distance, "bonus": bonus}


def _objective_reward(metrics: Metrics) -> np.ndarray:
    return np.asarray(metrics["objective"], dtype=float)


@dataclass
class SyntheticProblem(EvaluatorProblem):
    """An EvaluatorProblem with a known optimum: ``optimum`` (a design) and ``optimal_reward``."""

    optimum: Design | None = None
    optimal_reward: float = 0.0

    def regret(self, reward: float) -> float:
        """How far ``reward`` is below the optimum (0 at the optimum)."""
        return self.optimal_reward - float(reward)


def synthetic_problem(space: DesignSpace, target: Mapping[str, Any],
                      bonus: Mapping[str, Mapping[Any, float]] | None = None,
                      weights: Mapping[str, float] | None = None, name: str = "synthetic",
                      **problem_kwargs: Any) -> SyntheticProblem:
    """A SyntheticProblem over ``space`` whose optimum is ``target`` (categoricals at their best
    bonus, numeric parameters at ``target``; the target must be a valid design)."""
    bonus = {k: dict(v) for k, v in (bonus or {}).items()}
    optimum = dict(target)
    for p in space.params:
        if isinstance(p, Categorical):
            table = bonus.setdefault(p.name, {p.choices[0]: 0.0})
            optimum[p.name] = max(p.choices, key=lambda c: table.get(c, 0.0))
    optimum = space.validate(optimum)
    evaluator = SyntheticEvaluator(space, optimum, bonus, weights or {})
    best = float(sum(max(t.values(), default=0.0) for t in bonus.values()))
    return SyntheticProblem(space, evaluator, workload=name, reward=_objective_reward,
                            name=name, optimum=optimum, optimal_reward=best, **problem_kwargs)


@register_problem("synthetic-mixed")
def synthetic_mixed(**kwargs: Any) -> SyntheticProblem:
    """Mixed space: categorical × integer × power-of-two × float (log-scaled too).

    Optimum: dataflow="os", pes=13, tile=32, clock_ghz=1.25, sram_kb=64.0 → reward 1.0.
    """
    space = DesignSpace([
        Categorical("dataflow", ("ws", "os", "is")),
        Integer("pes", 1, 32),
        PowerOfTwo("tile", 1, 256),
        Float("clock_ghz", 0.5, 2.0),
        Float("sram_kb", 8.0, 512.0, log=True),
    ])
    return synthetic_problem(
        space, {"pes": 13, "tile": 32, "clock_ghz": 1.25, "sram_kb": 64.0},
        bonus={"dataflow": {"ws": 0.0, "os": 1.0, "is": 0.4}},
        weights={"pes": 1.0, "tile": 1.0, "clock_ghz": 0.5, "sram_kb": 0.5},
        name="synthetic-mixed", **kwargs)


@register_problem("synthetic-discrete")
def synthetic_discrete(**kwargs: Any) -> SyntheticProblem:
    """A small fully discrete space (3 × 8 × 6 = 144 designs) where the exact optimum is
    findable by any agent: dataflow="os", pes=5, tile=8 → reward 1.0."""
    space = DesignSpace([
        Categorical("dataflow", ("ws", "os", "is")),
        Integer("pes", 1, 8),
        PowerOfTwo("tile", 1, 32),
    ])
    return synthetic_problem(space, {"pes": 5, "tile": 8},
                             bonus={"dataflow": {"ws": 0.0, "os": 1.0, "is": 0.5}},
                             name="synthetic-discrete", **kwargs)


@register_problem("synthetic-large")
def synthetic_large(n_int: int = 6, n_cat: int = 2, levels: int = 16, seed: int = 0,
                    **kwargs: Any) -> SyntheticProblem:
    """A larger discrete space (``n_cat`` categoricals of 4 choices, ``n_int`` integers of
    ``levels`` levels) with a target drawn from ``seed``; optimum reward = ``n_cat``."""
    rng = np.random.default_rng(seed)
    params: list[Any] = [Categorical(f"c{i}", ("a", "b", "c", "d")) for i in range(n_cat)]
    params += [Integer(f"x{i}", 0, levels - 1) for i in range(n_int)]
    bonus = {f"c{i}": {c: float(b) for c, b in zip("abcd", rng.permutation([0.0, 0.2, 0.5, 1.0]))}
             for i in range(n_cat)}
    target = {f"x{i}": int(rng.integers(levels)) for i in range(n_int)}
    return synthetic_problem(DesignSpace(params), target, bonus=bonus,
                             name=f"synthetic-large-{n_cat}c{n_int}i{levels}l-s{seed}", **kwargs)
