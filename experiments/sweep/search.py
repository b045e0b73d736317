"""One Tune searcher for a whole sweep (:func:`sweep_searcher`): the grid trials, then the
Optuna groups' samples in turn, so that a single ``Tuner.fit`` keeps every CPU of the cluster
busy (the groups no longer run one blocking fit after another). Each group keeps its own
seeded OptunaSearch (TPE), told only its own trials' results."""

from __future__ import annotations

import json
import pickle
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from mlsysgym.experiments.sweep.trials import OptunaGroup

_CLASS: list[type] = []


def _optuna_search(group: OptunaGroup, done: Sequence[Mapping[str, Any]]) -> Any:
    """A seeded OptunaSearch over ``group``'s distributions, warm-started with its finished
    rows ``done`` (their rewards are told, they are not run again)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = sorted(group.distributions)
    points, rewards = [], []
    for row in sorted(done, key=lambda r: r["finished_at"]):
        hp = json.loads(row["hyperparameters"])
        points.append({k: hp[k] for k in names})
        rewards.append(float(row["best_reward"]))
    return OptunaSearch(space=group.optuna_space(), metric="best_reward", mode="max",
                        sampler=optuna.samplers.TPESampler(seed=group.sampler_seed),
                        points_to_evaluate=points or None, evaluated_rewards=rewards or None)


def _searcher_class() -> type:
    """The Searcher class (built once, after Ray is imported)."""
    if not _CLASS:
        from ray.tune.search import Searcher

        class SweepSearch(Searcher):
            """Suggests ``{"trial": spec}`` for each grid trial, then ``{"group": key,
            "sampled": {...}}`` round-robin over the groups with samples left; routes results
            to the group's OptunaSearch."""

            def __init__(self, grid: list[dict[str, Any]],
                         groups: list[tuple[str, Any, int]]) -> None:
                super().__init__(metric="best_reward", mode="max")
                self.grid = deque(grid)
                self.searchers = {key: s for key, s, _ in groups}
                self.left = {key: n for key, _, n in groups}
                self.turn = deque(key for key, _, n in groups if n > 0)
                self.owner: dict[str, str] = {}

            def set_search_properties(self, metric: Any, mode: Any, config: Any,
                                      **spec: Any) -> bool:
                return True  # fixed at construction

            def suggest(self, trial_id: str) -> dict[str, Any] | str:
                if self.grid:
                    return {"trial": self.grid.popleft()}
                if not self.turn:
                    return Searcher.FINISHED
                key = self.turn.popleft()
                self.left[key] -= 1
                if self.left[key] > 0:
                    self.turn.append(key)
                self.owner[trial_id] = key
                return {"group": key, "sampled": self.searchers[key].suggest(trial_id)}

            def on_trial_result(self, trial_id: str, result: dict) -> None:
                if trial_id in self.owner:
                    self.searchers[self.owner[trial_id]].on_trial_result(trial_id, result)

            def on_trial_complete(self, trial_id: str, result: dict | None = None,
                                  error: bool = False) -> None:
                if trial_id in self.owner:
                    self.searchers[self.owner[trial_id]].on_trial_complete(
                        trial_id, result=result, error=error)

            def save(self, checkpoint_path: str) -> None:
                with open(checkpoint_path, "wb") as f:
                    pickle.dump(self.__dict__, f)

            def restore(self, checkpoint_path: str) -> None:
                with open(checkpoint_path, "rb") as f:
                    self.__dict__.update(pickle.load(f))

        SweepSearch.__module__ = __name__
        SweepSearch.__qualname__ = "SweepSearch"
        globals()["SweepSearch"] = SweepSearch
        _CLASS.append(SweepSearch)
    return _CLASS[0]


def sweep_searcher(grid: list[dict[str, Any]],
                   groups: Sequence[tuple[OptunaGroup, Sequence[Mapping[str, Any]], int]]) -> Any:
    """The searcher of one sweep: ``grid`` (trial spec dicts to run as they are) and, for each
    ``(group, finished rows, samples to run)``, a warm-started OptunaSearch."""
    return _searcher_class()(grid, [(g.key, _optuna_search(g, done), n) for g, done, n in groups])
