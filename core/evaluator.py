"""The Evaluator protocol: anything that turns a batch of designs into metrics for a workload.

Analytical simulators, external simulators (ZigZag), real measurement and learned cost
models all implement it, so one can be passed wherever another was. Evaluations are
batched, deterministic for a seed, named and versioned, and cached by content hash.

A subclass sets ``name``, ``version`` and ``metric_names`` and implements ``_evaluate``::

    class Toy(Evaluator):
        name, version, metric_names = "toy", "1", ("cycles",)

        def _evaluate(self, designs, workload):
            return {"cycles": np.array([d["rows"] * d["cols"] for d in designs])}

    Toy().evaluate([{"rows": 4, "cols": 8}], "resnet50")  # {"cycles": array([32])}
"""

from __future__ import annotations

import hashlib
import json
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

Design = Mapping[str, Any]
Metrics = dict[str, np.ndarray]  # metric name (with unit) -> one value per design


class EvaluationError(MlsysgymError):
    """An evaluator could not evaluate a design (bad design or workload, simulator failure)."""


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=repr)
    raise TypeError(f"cannot hash a value of type {type(o).__name__}")


def content_hash(obj: Any) -> str:
    """A stable SHA-256 of a JSON-able object (dict keys sorted, numpy scalars as Python).

    Integral floats hash like ints (``32.0`` like ``32``) so a design decoded by an agent
    as floats hits the cache entry of the same design written with ints.
    """
    blob = json.dumps(_canonical(obj), sort_keys=True, default=_json_default,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_FLAT_TYPES = frozenset((str, int, float, np.int64, np.int32, np.float64, np.float32))
_STR = frozenset((str,))


def _flat_key(prefix: tuple[Any, ...], design: Any) -> tuple[Any, ...] | None:
    """The cache key of a flat design (a dict of str keys to str/int/float values, numpy's
    included; no bools): ``prefix``, its sorted keys and their values, which compare as
    :func:`content_hash` does (any key order; an integral float equals its int) at a fraction
    of its cost, and hold no container the garbage collector must visit. None for any other
    design (it is keyed by its content hash)."""
    if type(design) is not dict or not set(map(type, design.values())) <= _FLAT_TYPES \
            or not set(map(type, design)) <= _STR:
        return None
    names = tuple(sorted(design))
    return (prefix, names, tuple(map(design.__getitem__, names)))


def _canonical(obj: Any) -> Any:
    """Normalize values that are equal but serialize differently (1.0 vs 1, np.int64 vs int)."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 2**53:
        return int(obj)
    return obj


def _graph_fingerprint(workload: Any) -> str | None:
    """A short content hash of an ir.Graph-like workload (ops and tensor shapes), else None."""
    ops = getattr(workload, "ops", None)
    tensors = getattr(workload, "tensors", None)
    if ops is None or tensors is None:
        return None
    parts = [[op.name, op.op_type, list(op.inputs), list(op.outputs), op.macs,
              op.bytes_read, op.bytes_written] for op in ops]
    shapes = sorted((k, list(t.shape) if t.shape is not None else None, t.dtype)
                    for k, t in tensors.items())
    return content_hash([parts, shapes])[:16]


class Evaluator(ABC):
    """Base class: subclasses implement ``_evaluate``; this class adds batching checks and a cache.

    ``evaluate(designs, workload)`` returns ``{metric: array of len(designs)}``; metric names
    carry their unit (``cycles``, ``latency_ms``, ``energy_uj``, ``area_mm2``, ...). The cache
    is an LRU keyed by the content hash of (evaluator id, seed, workload, design); cached and
    uncached calls return the same values with the same dtypes.
    """

    name: str = "evaluator"
    version: str = "0"
    metric_names: tuple[str, ...] = ()

    def __init__(self, cache_size: int = 100_000, seed: int = 0) -> None:
        self.seed = seed
        self._cache: OrderedDict[Any, tuple[Any, ...]] = OrderedDict()  # key: str or tuple
        self._cache_size = int(cache_size)
        self._cache_layout: tuple[tuple[str, np.dtype], ...] | None = None
        self._workload_keys: dict[int, tuple[Any, str]] = {}
        self.cache_hits = 0
        self.cache_misses = 0

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for Ray workers): the workload-key memo holds weak references; drop it."""
        state = self.__dict__.copy()
        state["_workload_keys"] = {}
        return state

    @property
    def id(self) -> str:
        """``name@version``: what datasets record as the evaluator of a row."""
        return f"{self.name}@{self.version}"

    def workload_id(self, workload: Any) -> str:
        """A stable, readable identifier of a workload for logging (its ``name``, else ``str``)."""
        return str(getattr(workload, "name", workload))

    def workload_key(self, workload: Any) -> str:
        """The workload's part of the cache key: ``workload_id`` plus, for an ir.Graph-like
        workload, a hash of its ops and shapes (two graphs with one name do not collide).

        Memoized per workload object so evaluating a large graph again costs nothing.
        """
        wid = self.workload_id(workload)
        memo = self._workload_keys.get(id(workload))
        if memo is not None and memo[0]() is workload:
            return memo[1]
        fp = _graph_fingerprint(workload)
        key = wid if fp is None else f"{wid}#{fp}"
        try:
            self._workload_keys[id(workload)] = (weakref.ref(workload), key)
        except TypeError:  # str, Path, ... are not weak-referenceable; they are cheap anyway
            pass
        return key

    @abstractmethod
    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        """Evaluate a batch without caching; return one array of ``len(designs)`` per metric."""

    def _checked(self, designs: Sequence[Design], workload: Any) -> Metrics:
        """``_evaluate`` plus a check that every metric has one value per design."""
        out = self._evaluate(designs, workload)
        n = len(designs)
        metrics: Metrics = {}
        for m, v in out.items():
            arr = np.asarray(v)
            if arr.shape != (n,):
                raise EvaluationError(
                    f"{self.id} returned metric {m!r} with shape {arr.shape} for {n} designs; "
                    f"_evaluate must return one value per design")
            metrics[m] = arr
        return metrics

    def evaluate(self, designs: Sequence[Design], workload: Any, cache: bool = True) -> Metrics:
        """Metrics for every design in ``designs`` (cached by content hash of design × workload).

        Duplicate designs in a batch are evaluated once. ``cache=False`` skips hashing and the
        cache (neither read nor written): the fastest path for huge vectorized batches.
        """
        designs = list(designs)
        if not designs:
            if self._cache_layout is not None:
                return {m: np.zeros(0, dtype=dt) for m, dt in self._cache_layout}
            return {m: np.zeros(0) for m in self.metric_names}
        if not cache:
            return self._checked(designs, workload)
        wkey = self.workload_key(workload)
        prefix = (self.id, self.seed, wkey)
        try:
            keys = [_flat_key(prefix, d) or content_hash([self.id, self.seed, wkey, dict(d)])
                    for d in designs]
        except TypeError as e:
            raise EvaluationError(f"design is not JSON-able ({e}); use str/int/float/bool values")\
                from None
        found: dict[Any, tuple[Any, ...]] = {}
        todo: dict[Any, int] = {}  # unique missing key -> index of its first design
        for i, k in enumerate(keys):
            if k in found or k in todo:
                continue
            row = self._cache.get(k)
            if row is None:
                todo[k] = i
            else:
                self._cache.move_to_end(k)
                found[k] = row
        self.cache_misses += len(todo)
        self.cache_hits += len(designs) - len(todo)
        if todo:
            fresh = self._checked([designs[i] for i in todo.values()], workload)
            layout = tuple((m, v.dtype) for m, v in fresh.items())
            if layout != self._cache_layout:
                self._cache_layout = self._merged_layout(layout)
            for k, row in zip(todo, zip(*[v.tolist() for v in fresh.values()])):
                found[k] = row
                self._cache[k] = row
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        assert self._cache_layout is not None
        if len(todo) == len(keys):  # all fresh and distinct: the arrays as evaluated
            return {m: np.array(fresh[m], dtype=dt) for m, dt in self._cache_layout}
        cols = zip(*[found[k] for k in keys])
        return {m: np.array(col, dtype=dt) for col, (m, dt) in zip(cols, self._cache_layout)}

    def _merged_layout(self, layout: tuple[tuple[str, np.dtype], ...]
                       ) -> tuple[tuple[str, np.dtype], ...]:
        """The cache's (metric, dtype) layout after a fresh batch of ``layout``."""
        if self._cache_layout is None or not self._cache:
            return layout
        if [m for m, _ in layout] != [m for m, _ in self._cache_layout]:
            raise EvaluationError(
                f"{self.id} returned metrics {[m for m, _ in layout]} after "
                f"{[m for m, _ in self._cache_layout]}; an evaluator's metric set must be fixed")
        # promote (e.g. int64 then float64) so cached and fresh values agree
        return tuple((m, np.result_type(dt, new))
                     for (m, dt), (_, new) in zip(self._cache_layout, layout))

    def clear_cache(self) -> None:
        """Forget every cached result (the hit/miss counters are kept)."""
        self._cache.clear()
        self._cache_layout = None

    def evaluate_one(self, design: Design, workload: Any) -> dict[str, float]:
        """Metrics of a single design as a plain dict of Python scalars."""
        return {m: v[0].item() for m, v in self.evaluate([design], workload).items()}


# ---- registry ----------------------------------------------------------------------------------
class UnknownEvaluatorError(MlsysgymError):
    """An evaluator spec that names no registered evaluator, or a surrogate path with no model."""


EvaluatorFactory = Callable[..., Evaluator]
_REGISTRY: dict[str, EvaluatorFactory | str] = {
    # name → factory, or "module:attribute" imported on first use (so this layer imports none)
    "accelerator": "mlsysgym.simulators.accelerator:AcceleratorSimulator",
    "dram": "mlsysgym.simulators.dram:DramSimulator",
    "multicore": "mlsysgym.simulators.multicore:MulticoreEvaluator",
    "soc": "mlsysgym.simulators.soc.evaluator:SocEvaluator",
    "memory": "mlsysgym.simulators.memory_evaluator:MemoryEvaluator",
    "serving": "mlsysgym.simulators.serving.evaluator:ServingEvaluator",
    "zigzag": "mlsysgym.simulators.zigzag_backend:ZigZagEvaluator",
    "iree-cpu": "mlsysgym.simulators.iree_cpu:IreeCpuEvaluator",
    "surrogate": "mlsysgym.costmodels.surrogate:load_surrogate",
}


def register_evaluator(name: str, factory: EvaluatorFactory | str) -> None:
    """Make ``name`` (and ``"name:ARG"``) resolve to ``factory()`` (``factory(ARG)``).

    ``factory`` is a callable returning an Evaluator, or ``"module:attribute"`` imported on
    first use. Registering a name again replaces it."""
    if not name or ":" in name:
        raise UnknownEvaluatorError(f"evaluator name {name!r} must be non-empty without ':'")
    _REGISTRY[name] = factory


def evaluator_names() -> list[str]:
    """The registered evaluator names."""
    return sorted(_REGISTRY)


def _factory(name: str) -> EvaluatorFactory:
    f = _REGISTRY[name]
    if isinstance(f, str):
        import importlib

        module, _, attr = f.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        f = _REGISTRY[name] = obj
    return f


def resolve_evaluator(spec: Any) -> Evaluator | None:
    """The Evaluator a spec names: None → None (the caller's default); an Evaluator as is; a
    path → a saved surrogate; ``"name"`` → the registered factory with default settings;
    ``"name:ARG"`` → the factory called with ARG (``"surrogate:PATH"``)."""
    import os

    if spec is None or isinstance(spec, Evaluator):
        return spec
    if isinstance(spec, os.PathLike):
        spec = f"surrogate:{os.fspath(spec)}"
    if not isinstance(spec, str):
        raise UnknownEvaluatorError(f"cannot make an evaluator from a {type(spec).__name__}; "
                                    f"pass an Evaluator or a string such as 'surrogate:PATH'")
    name, sep, arg = spec.partition(":")
    if name not in _REGISTRY:
        raise UnknownEvaluatorError(
            f"unknown evaluator {spec!r}; use 'surrogate:PATH' or one of "
            f"{', '.join(repr(n) for n in evaluator_names())} (or register_evaluator(name, ...))")
    factory = _factory(name)
    return factory(arg) if sep else factory()
