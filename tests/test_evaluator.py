"""Evaluator base class: cache hits, determinism, duplicates in a batch, the cache=False path."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import EvaluationError, Evaluator, content_hash


class Toy(Evaluator):
    """cycles = rows * cols * len(workload); noise_ms depends on the seed only through the rng."""

    name = "toy"
    version = "1"
    metric_names = ("cycles", "noise_ms")

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: list[int] = []  # batch size of every _evaluate call

    def _evaluate(self, designs, workload):
        self.calls.append(len(designs))
        rows = np.array([d["rows"] for d in designs])
        cols = np.array([d["cols"] for d in designs])
        rng = np.random.default_rng([self.seed, *rows.tolist()])
        return {"cycles": rows * cols * len(str(workload)),
                "noise_ms": rng.random(len(designs))}


D = [{"rows": r, "cols": c} for r in (1, 2, 4) for c in (8, 16)]


def test_values_and_units_of_a_batch():
    out = Toy().evaluate(D, "abc")
    assert set(out) == {"cycles", "noise_ms"}
    np.testing.assert_array_equal(out["cycles"], [d["rows"] * d["cols"] * 3 for d in D])
    assert out["cycles"].dtype == np.int64  # dtype survives the cache


def test_cache_hits_skip_evaluation():
    ev = Toy()
    a = ev.evaluate(D, "abc")
    assert ev.calls == [6] and (ev.cache_hits, ev.cache_misses) == (0, 6)
    b = ev.evaluate(D[::-1], "abc")
    assert ev.calls == [6]  # nothing new evaluated
    assert (ev.cache_hits, ev.cache_misses) == (6, 6)
    for m in a:
        np.testing.assert_array_equal(b[m], a[m][::-1])
        assert a[m].dtype == b[m].dtype
    # a partly new batch evaluates only the new design
    ev.evaluate(D + [{"rows": 8, "cols": 8}], "abc")
    assert ev.calls == [6, 1]


def test_workload_and_seed_are_part_of_the_key():
    ev = Toy()
    ev.evaluate(D, "abc")
    out = ev.evaluate(D, "abcd")
    assert ev.calls == [6, 6]
    np.testing.assert_array_equal(out["cycles"], [d["rows"] * d["cols"] * 4 for d in D])
    assert content_hash(["toy@1", 0, "w", D[0]]) != content_hash(["toy@1", 1, "w", D[0]])


def test_duplicates_in_a_batch_are_evaluated_once():
    ev = Toy()
    batch = [D[0], D[1], D[0], dict(D[0]), D[1]]
    out = ev.evaluate(batch, "abc")
    assert ev.calls == [2]
    assert (ev.cache_hits, ev.cache_misses) == (3, 2)
    np.testing.assert_array_equal(out["cycles"], [24, 48, 24, 24, 48])
    assert out["noise_ms"][0] == out["noise_ms"][2] == out["noise_ms"][3]


def test_equal_designs_hash_equal():
    # key order, numpy scalars and integral floats do not change the key
    a = {"rows": 4, "cols": 8}
    b = {"cols": np.int64(8), "rows": 4.0}
    assert content_hash(a) == content_hash(b)
    assert content_hash({"x": 0.5}) != content_hash({"x": 0.25})


def test_determinism_across_instances_with_same_seed():
    a = Toy(seed=3).evaluate(D, "abc")
    b = Toy(seed=3).evaluate(D, "abc")
    c = Toy(seed=4).evaluate(D, "abc")
    np.testing.assert_array_equal(a["noise_ms"], b["noise_ms"])
    assert not np.array_equal(a["noise_ms"], c["noise_ms"])


def test_cache_false_path_matches_and_does_not_touch_the_cache():
    ev = Toy()
    raw = ev.evaluate(D, "abc", cache=False)
    assert ev.calls == [6] and len(ev._cache) == 0
    assert (ev.cache_hits, ev.cache_misses) == (0, 0)
    ev.evaluate(D + D, "abc", cache=False)
    assert ev.calls == [6, 12]  # no dedup without the cache
    cached = ev.evaluate(D, "abc")
    for m in raw:
        np.testing.assert_array_equal(raw[m], cached[m])
        assert raw[m].dtype == cached[m].dtype


def test_batch_larger_than_the_cache_and_lru_eviction():
    ev = Toy(cache_size=2)
    out = ev.evaluate(D, "abc")  # 6 designs through a 2-entry cache
    assert len(out["cycles"]) == 6 and len(ev._cache) == 2
    ev = Toy(cache_size=2)
    ev.evaluate([D[0]], "w")
    ev.evaluate([D[1]], "w")
    ev.evaluate([D[0]], "w")  # touch D[0]: D[1] is now least recently used
    ev.evaluate([D[2]], "w")  # evicts D[1]
    ev.evaluate([D[0]], "w")
    assert ev.calls == [1, 1, 1]
    ev.evaluate([D[1]], "w")
    assert ev.calls == [1, 1, 1, 1]


def test_empty_batch_and_evaluate_one():
    ev = Toy()
    out = ev.evaluate([], "abc")
    assert set(out) == {"cycles", "noise_ms"} and all(len(v) == 0 for v in out.values())
    one = ev.evaluate_one(D[1], "abc")
    assert one["cycles"] == 48 and isinstance(one["cycles"], int)
    assert ev.id == "toy@1"


def test_bad_evaluator_output_is_a_typed_error():
    class Bad(Toy):
        def _evaluate(self, designs, workload):
            return {"cycles": np.zeros(len(designs) + 1)}

    with pytest.raises(EvaluationError, match="shape"):
        Bad().evaluate(D, "w")
    with pytest.raises(EvaluationError, match="shape"):
        Bad().evaluate(D, "w", cache=False)
    assert issubclass(EvaluationError, MlsysgymError)


def test_unhashable_design_value_is_a_typed_error():
    with pytest.raises(EvaluationError, match="JSON"):
        Toy().evaluate([{"rows": 1, "cols": object()}], "w")


def test_graph_workloads_with_one_name_do_not_collide():
    from mlsysgym.ir.graph import Graph, Op, Role, Tensor

    def graph(n: int) -> Graph:
        t = {"x": Tensor("x", (n,), "float32", 4, Role.INPUT),
             "y": Tensor("y", (n,), "float32", 4, Role.OUTPUT)}
        op = Op("relu", "Relu", ("x",), ("y",), {}, 0, n, 4 * n, 4 * n)
        return Graph("same", (op,), t, ("x",), ("y",))

    ev = Toy()
    g1, g2 = graph(4), graph(8)
    assert ev.workload_id(g1) == ev.workload_id(g2) == "same"
    assert ev.workload_key(g1) != ev.workload_key(g2)
    ev.evaluate(D, g1)
    ev.evaluate(D, g2)
    ev.evaluate(D, g1)
    assert ev.calls == [6, 6]
    # picklable for Ray workers after a graph was evaluated; the cache travels along
    import pickle

    clone = pickle.loads(pickle.dumps(ev))
    clone.evaluate(D, g1)
    assert clone.calls == [6, 6]


def test_evaluator_registry_resolves_names_and_registered_factories():
    from mlsysgym.core.evaluator import (
        UnknownEvaluatorError,
        evaluator_names,
        register_evaluator,
        resolve_evaluator,
    )
    from mlsysgym.simulators.accelerator import AcceleratorSimulator

    assert {"accelerator", "dram", "multicore", "zigzag", "iree-cpu", "surrogate"} <= set(
        evaluator_names())
    assert isinstance(resolve_evaluator("accelerator"), AcceleratorSimulator)
    assert type(resolve_evaluator("multicore")).__name__ == "MulticoreEvaluator"
    register_evaluator("toy-accel", lambda arg="": AcceleratorSimulator(seed=int(arg or 0)))
    try:
        assert resolve_evaluator("toy-accel:3").seed == 3
    finally:
        from mlsysgym.core import evaluator

        evaluator._REGISTRY.pop("toy-accel")
    with pytest.raises(UnknownEvaluatorError, match="unknown evaluator 'nope'"):
        resolve_evaluator("nope")
    with pytest.raises(UnknownEvaluatorError, match="no saved cost model directory"):
        resolve_evaluator("surrogate:/no/such/dir")
