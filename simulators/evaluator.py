"""The Evaluator protocol: anything that turns a batch of designs into metrics for a workload.

Analytical simulators, external simulators (ZigZag), real measurement and learned cost
models all implement it, so one can be passed wherever another was. Evaluations are
batched, deterministic for a seed, named and versioned, and cached by content hash.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlsysgym.ir.errors import MlsysgymError

Design = Mapping[str, Any]
Metrics = dict[str, np.ndarray]  # metric name (with unit) -> one value per design


class EvaluationError(MlsysgymError):
    """An evaluator could not evaluate a design (bad design or workload, simulator failure)."""


def content_hash(obj: Any) -> str:
    """A stable SHA-256 of a JSON-able object (dict keys sorted, numpy scalars as Python)."""
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"cannot hash {type(o).__name__}")

    blob = json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class Evaluator(ABC):
    """Base class: subclasses implement ``_evaluate``; this class adds batching checks and a cache.

    ``evaluate(designs, workload)`` returns ``{metric: array of len(designs)}``; metric names
    carry their unit (``cycles``, ``latency_ms``, ``energy_uj``, ``area_mm2``, ...).
    """

    name: str = "evaluator"
    version: str = "0"
    metric_names: tuple[str, ...] = ()

    def __init__(self, cache_size: int = 100_000, seed: int = 0) -> None:
        self.seed = seed
        self._cache: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def id(self) -> str:
        """``name@version``: what datasets record as the evaluator of a row."""
        return f"{self.name}@{self.version}"

    def workload_id(self, workload: Any) -> str:
        """A stable identifier of a workload for caching and logging."""
        return str(getattr(workload, "name", workload))

    @abstractmethod
    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        """Evaluate a batch without caching; return one array per metric."""

    def evaluate(self, designs: Sequence[Design], workload: Any, cache: bool = True) -> Metrics:
        """Metrics for every design in ``designs`` (cached by content hash of design × workload).

        ``cache=False`` skips hashing and the cache: the fastest path for huge vectorized batches.
        """
        designs = list(designs)
        if not designs:
            return {m: np.zeros(0) for m in self.metric_names}
        if not cache:
            return self._evaluate(designs, workload)
        wid = self.workload_id(workload)
        keys = [content_hash([self.id, self.seed, wid, dict(d)]) for d in designs]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        self.cache_hits += len(designs) - len(todo)
        self.cache_misses += len(todo)
        if todo:
            unique = list(dict.fromkeys(keys[i] for i in todo))
            first = {k: next(i for i in todo if keys[i] == k) for k in unique}
            fresh = self._evaluate([designs[first[k]] for k in unique], workload)
            for j, k in enumerate(unique):
                self._cache[k] = {m: float(v[j]) for m, v in fresh.items()}
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        rows = [self._cache[k] for k in keys]
        return {m: np.array([r[m] for r in rows]) for m in rows[0]}

    def evaluate_one(self, design: Design, workload: Any) -> dict[str, float]:
        """Metrics of a single design as a plain dict."""
        return {m: float(v[0]) for m, v in self.evaluate([design], workload).items()}
