"""Scoring a root op's candidate tile configurations with the tile-size cost model: every
candidate (IREE's default first) in one batched model call, after dropping those that would
starve the multi-threaded driver of workgroups."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from mlsysgym.costmodels.tiling_space import (
    KNOBS,
    TileConfig,
    TilingError,
    TilingInstance,
    candidate_columns,
    config_features,
    config_from_knobs,
    knobs_from_config,
    workgroups,
)

if TYPE_CHECKING:
    from mlsysgym.costmodels.tiling_model import TilingModel

__all__ = ["Scored", "default_knobs", "parallel_ok", "score_candidates"]


@dataclass(frozen=True)
class Scored:
    """Candidates of one op (knob columns, default first) with their predicted runtime ratios
    from one batched cost-model call."""

    problem: TilingInstance
    default: TileConfig
    columns: dict[str, np.ndarray]
    predicted: np.ndarray
    spread: np.ndarray       # ensemble members' std of the log ratio (0 for one member)
    ood: np.ndarray          # candidate's features outside the training data
    model_s: float
    features_s: float
    calls: int

    def __len__(self) -> int:
        return len(self.predicted)

    def config(self, i: int) -> TileConfig:
        """The TileConfig of candidate ``i`` (0 is IREE's default, as read)."""
        if i == 0:
            return self.default
        return config_from_knobs(self.problem, {k: int(self.columns[k][i]) for k in KNOBS},
                                 self.default)

    @property
    def configs(self) -> list[TileConfig]:
        """Every candidate as a TileConfig (slow for big spaces; for tests and reports)."""
        return [self.config(i) for i in range(len(self))]


def default_knobs(problem: TilingInstance, default: TileConfig) -> dict[str, int]:
    """IREE's default configuration as knob values (TilingError if the knobs cannot say it)."""
    dk = knobs_from_config(problem, default)
    if dk is None:
        raise TilingError(f"IREE's default config of {problem.key} is not expressible by the knobs")
    return dk


def parallel_ok(problem: TilingInstance, knobs: Mapping[str, np.ndarray], default: Mapping[str, int],
                per_core: int = 4, cores: int | None = None) -> np.ndarray:
    """Which knob assignments keep enough workgroups for the multi-threaded driver: at least
    as many as IREE's default has, or ``per_core`` × cores when the default has more."""
    from mlsysgym.core.target import cpu_info

    need = min(float(workgroups(problem, {k: [v] for k, v in default.items()})[0]),
               float(per_core * (cores or cpu_info().cores)))
    return workgroups(problem, knobs) >= need


def score_candidates(model: TilingModel, problem: TilingInstance, default: TileConfig,
                     max_n: int | None = None, per_core: int = 4) -> Scored:
    """Score every candidate of ``problem`` on the model's target with one batched model call
    (:meth:`~mlsysgym.costmodels.tiling_model.TilingModel.predict`); candidates that keep
    fewer workgroups than :func:`parallel_ok` allows (``per_core``; 0: keep all) are left out."""
    t0 = time.perf_counter()
    cols = candidate_columns(problem, default, max_n=max_n, isa=model.isa)
    dk = default_knobs(problem, default)
    if per_core:  # drop candidates the multi-threaded driver would lose on before scoring
        keep = parallel_ok(problem, cols, dk, per_core)
        keep[0] = True
        cols = {k: v[keep] for k, v in cols.items()}
    feats = config_features(problem, cols, dk, model.isa)
    t1 = time.perf_counter()
    pred, spread, ood = model.predict(feats)
    t2 = time.perf_counter()
    return Scored(problem, default, cols, pred, spread, ood, t2 - t1, t1 - t0, 1)
