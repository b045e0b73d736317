"""Parallel (Ray) and serial evaluation: failures and timeouts become penalties, the pool
recovers from hung workers, both paths give identical results; the named problems."""

from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np
import pytest
from mlsysgym.agents.base import AGENTS, register_agent, search
from mlsysgym.agents.parallel import (
    EvaluatorProblem,
    ParallelEvaluationError,
    RayPool,
    evaluate_serial,
    init_ray,
)
from mlsysgym.agents.problems import (
    SyntheticProblem,
    UnknownProblemError,
    make_problem,
    problem_names,
)
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Evaluator
from mlsysgym.core.params import Integer
from mlsysgym.core.space import DesignSpace

# Ray workers cannot import this test module: ship its evaluators and agents by value.
try:
    from ray import cloudpickle as _cp

    _cp.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover - Ray tests are skipped then
    pass

PENALTY = -1e9  # BudgetedProblem's default failure penalty
RELEASED = [False]  # set at teardown so hung evaluations in this process finish (picklable)


@pytest.fixture(autouse=True, scope="module")
def _release_hung_threads():
    yield
    RELEASED[0] = True


def hang(max_s: float = 600.0) -> None:
    """Block like a hung simulator (until RELEASED, which a Ray worker never sees change)."""
    end = time.monotonic() + max_s
    while not RELEASED[0] and time.monotonic() < end:
        time.sleep(0.05)


if "test_random" not in AGENTS:
    @register_agent("test_random")
    def _test_random(problem, rng, batch_size: int = 4) -> None:
        """Uniform random sampling in batches (a stand-in for the real agents)."""
        while True:
            problem.evaluate(problem.space.sample(rng, n=batch_size))


SPACE = DesignSpace([Integer("x", 0, 9)])


class Square(Evaluator):
    """cost = x²; raises for x in ``bad``; hangs for x in ``hang`` (until RELEASED, or for 10 min in
    a Ray worker, where the flag is a copy)."""

    name, version, metric_names = "square", "1", ("cost",)

    def __init__(self, bad=(), hang=(), crash=()) -> None:
        super().__init__()
        self.bad, self.hang, self.crash = set(bad), set(hang), set(crash)

    def _evaluate(self, designs, workload):
        for d in designs:
            if d["x"] in self.bad:
                raise RuntimeError(f"simulator crashed on x={d['x']}\nsecond line of the trace")
            if d["x"] in self.hang:
                hang()
            if d["x"] in self.crash:
                os._exit(3)  # the worker process dies (only ever used in a Ray worker)
        return {"cost": np.array([float(d["x"]) ** 2 for d in designs])}


def neg_cost(metrics):
    return -metrics["cost"]


# ---- serial path -----------------------------------------------------------------------------
def test_serial_raise_is_failed_with_penalty_and_search_continues(caplog):
    problem = EvaluatorProblem(SPACE, Square(bad={3}), "w", neg_cost)
    with caplog.at_level(logging.WARNING, logger="mlsysgym.agents.parallel"):
        res = search("test_random", problem, budget=40, seed=0)
    assert res.n_evaluations == 40
    xs = np.array([d["x"] for d in res.designs])
    assert (xs == 3).any()
    assert np.array_equal(res.failed, xs == 3)
    assert np.all(res.rewards[xs == 3] == PENALTY)
    assert np.allclose(res.rewards[xs != 3], -(xs[xs != 3] ** 2.0))
    assert res.best_reward == 0.0  # the search went on and found x = 0
    assert all(f.reason == "RuntimeError: simulator crashed on x=3" for f in problem.failures)
    assert len(problem.failures) == int((xs == 3).sum())
    assert "evaluation failed (RuntimeError: simulator crashed on x=3)" in caplog.text
    assert res.metrics[int(np.flatnonzero(xs == 3)[0])] == {}


def test_serial_timeout_is_failed_and_search_continues():
    problem = EvaluatorProblem(SPACE, Square(hang={7}), "w", neg_cost, timeout_s=0.3)
    designs = [{"x": 1}, {"x": 7}, {"x": 2}]
    out = problem.evaluate(designs)
    assert out.failed.tolist() == [False, True, False]
    assert out.rewards[0] == -1.0 and out.rewards[2] == -4.0 and np.isnan(out.rewards[1])
    assert "timed out" in problem.failures[0].reason
    res = search("test_random", EvaluatorProblem(SPACE, Square(hang={7}), "w", neg_cost,
                                                 timeout_s=0.3, chunk_size=1), 12, seed=3)
    assert res.n_evaluations == 12
    xs = np.array([d["x"] for d in res.designs])
    assert np.array_equal(res.failed, xs == 7)


def test_evaluate_serial_isolates_the_failing_design_of_a_batch():
    ev = Square(bad={4})
    out = evaluate_serial(ev, [{"x": i} for i in range(6)], "w")
    assert [r.failed for r in out] == [False, False, False, False, True, False]
    assert [r.metrics["cost"] for r in out if not r.failed] == [0.0, 1.0, 4.0, 9.0, 25.0]


def test_validate_marks_invalid_designs_failed():
    problem = EvaluatorProblem(SPACE, Square(), "w", neg_cost, validate=True)
    out = problem.evaluate([{"x": 2}, {"x": 99}])
    assert out.failed.tolist() == [False, True]
    assert "OutOfRangeError" in problem.failures[0].reason


def test_reward_of_wrong_shape_is_an_error():
    problem = EvaluatorProblem(SPACE, Square(), "w", lambda m: np.zeros(1))
    with pytest.raises(MlsysgymError, match="one reward per design"):
        problem.evaluate([{"x": 1}, {"x": 2}])


def test_bad_parallel_argument():
    with pytest.raises(ParallelEvaluationError, match="parallel must be"):
        EvaluatorProblem(SPACE, Square(), "w", neg_cost, parallel="yes")


# ---- named problems --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["synthetic-discrete", "synthetic-mixed", "synthetic-large"])
def test_synthetic_optimum_is_known(name):
    p = make_problem(name)
    assert isinstance(p, SyntheticProblem)
    out = p.evaluate([p.optimum])
    assert out.rewards[0] == pytest.approx(p.optimal_reward)
    others = p.evaluate(p.space.sample(np.random.default_rng(0), n=200))
    assert others.rewards.max() <= p.optimal_reward + 1e-12


def test_synthetic_discrete_optimum_is_the_unique_argmax():
    p = make_problem({"name": "synthetic-discrete"})
    designs = p.space.enumerate()
    rewards = p.evaluate(designs).rewards
    assert len(designs) == 144
    assert designs[int(np.argmax(rewards))] == p.optimum
    assert (rewards == rewards.max()).sum() == 1 and rewards.max() == 1.0


def test_problem_specs_and_errors():
    assert {"synthetic-discrete", "synthetic-mixed", "synthetic-large"} <= set(problem_names())
    p = make_problem({"name": "synthetic-large", "seed": 4, "n_int": 3})
    assert p.space.dim == 5 and p.optimal_reward == 2.0
    with pytest.raises(UnknownProblemError, match="unknown problem 'nope'"):
        make_problem("nope")
    with pytest.raises(UnknownProblemError, match="bad arguments"):
        make_problem({"name": "synthetic-discrete", "colour": "red"})
    with pytest.raises(UnknownProblemError, match="cannot make env"):
        make_problem("env:mlsysgym/No-Such-Env-v0")


# ---- Ray path --------------------------------------------------------------------------------
@pytest.mark.parametrize("env, arg, expected", [
    (None, None, {"num_cpus": os.cpu_count(), "include_dashboard": False}),
    ("ray://head:10001", None, {"address": "ray://head:10001"}),
    ("ray://head:10001", "auto", {"address": "auto"}),  # the argument wins over RAY_ADDRESS
])
def test_init_ray_local_or_cluster(monkeypatch, env, arg, expected):
    ray = pytest.importorskip("ray")
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert init_ray(address=arg) is True
    (kw,) = calls
    assert kw["log_to_driver"] is False
    assert {k: kw.get(k) for k in expected} == expected
    if "address" in expected:
        assert "num_cpus" not in kw  # a cluster brings its own resources


def test_init_ray_reuses_a_running_ray(ray_session):
    assert init_ray() is False  # already initialized by the fixture: nothing started


@pytest.mark.slow
def test_ray_raise_and_hang_are_failed_and_pool_recovers(ray_session, caplog):
    ev = Square(bad={3}, hang={7})
    with RayPool(ev, num_workers=2, timeout_s=2.0) as pool, \
            caplog.at_level(logging.WARNING, logger="mlsysgym.agents.parallel"):
        first = pool.evaluate([{"x": i} for i in range(10)], "w")
        assert [r.failed for r in first] == [i in (3, 7) for i in range(10)]
        assert first[3].error == "RuntimeError: simulator crashed on x=3"
        assert first[7].error.startswith("timed out")
        assert [r.metrics["cost"] for r in first if not r.failed] == \
            [float(i * i) for i in range(10) if i not in (3, 7)]
        assert pool.replaced == 1  # the hung worker was killed and replaced
        again = pool.evaluate([{"x": i} for i in (0, 1, 2, 4, 5, 6)], "w")  # full pool again
        assert not any(r.failed for r in again)
        assert len({pid for pid in ray_session.get([s.actor.ready.remote()
                                                   for s in pool._slots])}) == 2
    assert "evaluation failed (RuntimeError: simulator crashed on x=3)" in caplog.text
    assert "timed out after 2 s (worker replaced)" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("pipeline_depth, chunk_size", [(1, 1), (3, 1), (2, 3)])
def test_ray_worker_crash_is_failed_and_replaced(ray_session, pipeline_depth, chunk_size):
    """Only the designs that kill their worker are failed, whatever else was queued on it: with
    calls queued behind the crashing one, Ray can report the call before it as dead too (its
    result was still on its way back); that call is retried alone on a fresh worker. Every
    death replaces a worker and either retries a design or (the second time, alone) fails it."""
    xs = [i % 8 for i in range(16)]  # x = 5 twice
    with RayPool(Square(crash={5}), num_workers=2, timeout_s=30.0,
                 pipeline_depth=pipeline_depth, chunk_size=chunk_size) as pool:
        out = pool.evaluate([{"x": x} for x in xs], "w")
        assert [r.failed for r in out] == [x == 5 for x in xs]
        assert [r.metrics["cost"] for r in out if not r.failed] == \
            [float(x * x) for x in xs if x != 5]
        assert out[5].error.startswith("worker died twice, the second time running this "
                                       "design alone (")
        assert pool.retried >= 2  # each x = 5 once, plus innocent calls caught with it
        assert pool.replaced == pool.retried + 2  # the two x = 5 died twice, nothing else did
        assert not any(r.failed for r in pool.evaluate([{"x": 1}, {"x": 2}, {"x": 4}], "w"))


@pytest.mark.slow
def test_pool_discards_calls_of_an_interrupted_evaluate(ray_session, monkeypatch):
    with RayPool(Square(hang={9}), num_workers=1) as pool:
        pool.evaluate([{"x": 1}], "w")  # the worker is up
        real_wait = pool._ray.wait
        monkeypatch.setattr(pool._ray, "wait", lambda *a, **k: (_ for _ in ()).throw(
            KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C while x=9 hangs in the worker
            pool.evaluate([{"x": 9}], "w")
        monkeypatch.setattr(pool._ray, "wait", real_wait)
        out = pool.evaluate([{"x": 2}, {"x": 3}], "w")
        assert [r.metrics["cost"] for r in out] == [4.0, 9.0]
        assert pool.replaced == 1


@pytest.mark.slow
def test_ray_search_with_failures_continues(ray_session):
    problem = EvaluatorProblem(SPACE, Square(bad={3}), "w", neg_cost, parallel=2)
    try:
        res = search("test_random", problem, budget=24, seed=1, batch_size=6)
    finally:
        problem.close()
    xs = np.array([d["x"] for d in res.designs])
    assert res.n_evaluations == 24 and (xs == 3).any()
    assert np.array_equal(res.failed, xs == 3)
    assert np.all(res.rewards[xs == 3] == PENALTY)


@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [1, 3])
def test_parallel_and_serial_give_identical_results(ray_session, chunk_size):
    serial = make_problem("synthetic-mixed")
    parallel = make_problem("synthetic-mixed")
    with RayPool(parallel.evaluator, num_workers=2, chunk_size=chunk_size) as pool:
        parallel.parallel = pool
        a = search("test_random", serial, budget=30, seed=7, batch_size=8)
        b = search("test_random", parallel, budget=30, seed=7, batch_size=8)
    assert a.designs == b.designs
    assert np.array_equal(a.rewards, b.rewards)
    assert a.metrics == b.metrics
    assert not b.failed.any()


@pytest.mark.slow
def test_pool_rejects_a_foreign_evaluator(ray_session):
    with RayPool(Square(), num_workers=1) as pool:
        with pytest.raises(ParallelEvaluationError, match="different evaluator"):
            EvaluatorProblem(SPACE, Square(), "w", neg_cost, parallel=pool)
        pool.shutdown()
        with pytest.raises(ParallelEvaluationError, match="shut down"):
            pool.evaluate([{"x": 1}], "w")

