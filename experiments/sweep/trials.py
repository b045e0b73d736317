"""Expansion of a sweep into trials: grid trials (:class:`TrialSpec`) and Optuna-sampled groups
(:class:`OptunaGroup`), each keyed by a content hash (:func:`expand`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

from mlsysgym.core.evaluator import content_hash
from mlsysgym.experiments.sweep.config import SweepConfig, _fail


def _problem_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec.get("name"))


def _close(problem: Any) -> None:
    """Close a built problem if it holds resources (a ``close`` method)."""
    close = getattr(problem, "close", None)
    if callable(close):
        close()


@dataclass(frozen=True)
class TrialSpec:
    """One search run: problem spec, agent, hyperparameters, budget and seed."""

    problem: Any
    agent: str
    hyperparameters: dict[str, Any]
    budget: int | None   # evaluations (None: seconds only)
    seed: int
    group: str = "grid"  # "grid", or the key of the Optuna group it was sampled in
    instance: str = ""   # for Optuna-sampled trials: the Tune trial (two samples may coincide)
    budget_s: float | None = None  # seconds

    @property
    def key(self) -> str:
        """The hash that identifies this trial across runs: its config (plus, for a sampled
        trial, the Tune trial that sampled it)."""
        parts = [self.problem, self.agent, self.hyperparameters, self.budget, self.seed]
        if self.budget_s is not None:
            parts.append({"seconds": self.budget_s})
        return content_hash(parts + [self.instance] if self.instance else parts)[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OptunaGroup:
    """``num_samples`` trials whose ``distributions`` Optuna samples; the rest is fixed."""

    problem: Any
    agent: str
    fixed: dict[str, Any]
    distributions: dict[str, dict[str, Any]]
    budget: int | None
    seed: int
    num_samples: int
    budget_s: float | None = None

    @property
    def key(self) -> str:
        parts = [self.problem, self.agent, self.fixed, self.distributions, self.budget, self.seed]
        if self.budget_s is not None:
            parts.append({"seconds": self.budget_s})
        return "optuna-" + content_hash(parts)[:12]

    @property
    def sampler_seed(self) -> int:
        """The TPE sampler's seed: from the group's hash, so that groups differing only in
        their problem do not start from the same random proposals."""
        return int(self.key[-8:], 16)

    def trial(self, sampled: Mapping[str, Any]) -> TrialSpec:
        return TrialSpec(self.problem, self.agent, {**self.fixed, **dict(sampled)},
                         self.budget, self.seed, self.key, budget_s=self.budget_s)

    def optuna_space(self) -> dict[str, Any]:
        """Optuna distributions of the sampled hyperparameters."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for k, d in self.distributions.items():
            (kind, args), = d.items()
            if kind == "choice":
                out[k] = CategoricalDistribution(list(args))
            elif kind in ("int", "logint"):
                out[k] = IntDistribution(int(args[0]), int(args[1]), log=kind == "logint")
            else:
                out[k] = FloatDistribution(float(args[0]), float(args[1]),
                                           log=kind == "loguniform")
        return out


def expand(config: SweepConfig) -> tuple[list[TrialSpec], list[OptunaGroup]]:
    """The grid trials and the Optuna groups of a sweep, in a deterministic order."""
    trials: list[TrialSpec] = []
    groups: list[OptunaGroup] = []
    for problem, agent, (budget, budget_s) in product(config.problems, config.agents,
                                                      config.budgets):
        names = list(agent.grid)
        for values in product(*(agent.grid[n] for n in names)):
            hp = {**agent.fixed, **dict(zip(names, values))}
            for seed in config.seeds:
                if agent.distributions:
                    groups.append(OptunaGroup(problem, agent.name, hp, agent.distributions,
                                              budget, seed, agent.num_samples, budget_s))
                else:
                    trials.append(TrialSpec(problem, agent.name, hp, budget, seed,
                                            budget_s=budget_s))
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        _fail("the config lists the same trial twice (duplicate agents or grid values)")
    return trials, groups
