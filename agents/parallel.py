"""Parallel evaluation of design batches through Ray actors; a serial path with the same semantics.

A :class:`RayPool` starts ``num_workers`` Ray actors, each holding its own copy of an
:class:`~mlsysgym.core.evaluator.Evaluator` (its set-up and cache are paid once per
worker). ``pool.evaluate(designs, workload)`` splits the batch into chunks, keeps every worker
busy with one chunk at a time, and returns one :class:`EvalResult` per design. An evaluation
that raises, or that runs past ``timeout_s``, is *failed* (with a one-line reason, logged);
a worker that hung is killed and replaced, so the next batch finds a full pool.

:func:`evaluate_serial` does the same in-process for users without Ray. It cannot kill a
hung evaluation: it abandons the thread running it and goes on (use a RayPool for
evaluators that can hang).

:class:`EvaluatorProblem` is the :class:`~mlsysgym.agents.base.Problem` built from a
DesignSpace, an Evaluator, a workload and a reward function, on either path::

    problem = EvaluatorProblem(space, evaluator, "resnet50", reward=make_reward("edp"),
                               parallel=RayPool(evaluator, num_workers=2, timeout_s=30))
    result = search("random", problem, budget=200, seed=0)

``init_ray()`` starts an embedded, quiet Ray with the machine's cores, or connects to an
existing cluster when ``address`` or the ``RAY_ADDRESS`` environment variable is given.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from mlsysgym.agents.base import Design, Outcome
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Evaluator, Metrics

__all__ = [
    "EvalResult", "EvaluatorProblem", "ParallelEvaluationError", "RayPool", "RewardFn",
    "evaluate_serial", "init_ray", "shutdown_ray",
]

log = logging.getLogger(__name__)

RewardFn = Callable[[Metrics], np.ndarray]  # metrics (dict of arrays) -> one reward per design


class ParallelEvaluationError(MlsysgymError):
    """The parallel evaluation machinery itself failed (Ray missing, workers cannot start)."""


@dataclass(frozen=True)
class EvalResult:
    """The outcome of one design: its metrics, or ``error`` (a one-line reason) if it failed."""

    metrics: dict[str, Any] | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def _reason(exc: BaseException) -> str:
    """A one-line description of an exception: ``Type: first line of its message``."""
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


def _split(metrics: Mapping[str, np.ndarray], n: int) -> list[dict[str, Any]]:
    """Per-design dicts (Python scalars) from a dict of length-``n`` arrays."""
    cols = {m: np.asarray(v).tolist() for m, v in metrics.items()}
    return [{m: c[i] for m, c in cols.items()} for i in range(n)]


def _chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


# ---- Ray set-up ------------------------------------------------------------------------------
def init_ray(address: str | None = None, num_cpus: int | None = None,
             **kwargs: Any) -> bool:
    """Make sure Ray is running; return True if this call started (or connected) it.

    Without ``address`` and without ``RAY_ADDRESS``: an embedded local Ray with ``num_cpus``
    (default: the machine's cores), no dashboard, worker logs not forwarded. With either, the
    same code connects to that existing cluster (``"auto"`` finds a local one). A Ray that is
    already initialized (e.g. by a test fixture or the caller) is reused as is.
    """
    try:
        import ray
    except ImportError:
        raise ParallelEvaluationError(
            "Ray is not installed; pip install 'mlsysgym[ray]' or use the serial path") from None
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    opts: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, **kwargs}
    if address:
        ray.init(address=address, **opts)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **opts)
    return True


def shutdown_ray() -> None:
    """Shut Ray down if it is running."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


class _Worker:
    """Ray actor body: holds one Evaluator and the workloads it was sent (by token)."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.workloads: dict[str, Any] = {}

    def ready(self) -> int:
        return os.getpid()

    def evaluate(self, designs: list[Design], token: str, wref: list[Any]) -> Any:
        """Metrics of ``designs`` (a dict of arrays), or the one-line reason it raised."""
        if token not in self.workloads:
            import ray

            self.workloads = {token: ray.get(wref[0])}  # keep only the current workload
        try:
            return dict(self.evaluator.evaluate(designs, self.workloads[token]))
        except Exception as e:  # noqa: BLE001 - any evaluator failure is a failed evaluation
            return _Failure(_reason(e))


@dataclass(frozen=True)
class _Failure:
    reason: str


@dataclass
class _Slot:
    """One worker of the pool and what it is doing."""

    actor: Any
    ready_ref: Any = None          # set while the actor is starting
    jobs: deque[tuple[range, Any]] = field(default_factory=deque)  # (indices, ref), in order
    deadline: float = float("inf")  # of the head job (the one the actor is running)


class RayPool:
    """A pool of Ray actors, each with its own copy of ``evaluator``.

    ``timeout_s`` is per design: a call of k designs may run ``k * timeout_s`` seconds before
    its worker is killed and replaced. ``chunk_size`` designs go to a worker per call (1: each
    evaluation isolated; larger: fewer round trips for cheap vectorized evaluators). When a
    chunk of several designs fails, its designs are retried one by one so that only the bad
    ones are marked failed. Each worker has up to ``pipeline_depth`` calls queued so that it
    starts the next one without waiting for the driver; a call's timeout starts when the call
    before it on that worker finished, and the calls queued behind a killed worker's call are
    re-sent to other workers (not failed). When a worker process dies, the call Ray reports
    dead may be innocent (the call before the fatal one, whose result had not reached the
    driver yet; or a node that went away): a design whose worker died is retried once, alone,
    on a fresh worker (a chunk of several is first split into single designs), and marked
    failed only if that worker dies too. ``replaced`` counts replaced workers (hangs and
    deaths), ``retried`` the calls re-sent after their worker died (so every death is either a
    retry or a design failed).
    """

    def __init__(self, evaluator: Evaluator, num_workers: int | None = None,
                 timeout_s: float | None = None, chunk_size: int = 1,
                 cpus_per_worker: float = 1.0, address: str | None = None,
                 start_timeout_s: float = 120.0, pipeline_depth: int = 2) -> None:
        if chunk_size < 1:
            raise ParallelEvaluationError(f"chunk_size must be >= 1, got {chunk_size}")
        if timeout_s is not None and timeout_s <= 0:
            raise ParallelEvaluationError(f"timeout_s must be positive, got {timeout_s}")
        init_ray(address)
        import ray

        self._ray = ray
        self.evaluator = evaluator
        self.num_workers = int(num_workers or max(1, int(ray.available_resources().get("CPU", 1)
                                                           // max(cpus_per_worker, 1e-9))))
        self.timeout_s = timeout_s
        self.chunk_size = int(chunk_size)
        self.pipeline_depth = max(1, int(pipeline_depth))
        self.start_timeout_s = start_timeout_s
        self.replaced = 0  # how many workers were killed and replaced (hang or crash)
        self.retried = 0   # calls re-sent after their worker died (alone, or split into designs)
        self._actor_cls = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(_Worker)
        self._evaluator_ref = ray.put(evaluator)
        self._workload: tuple[Any, str, Any] | None = None  # (workload, token, object ref)
        self._slots = [self._start() for _ in range(self.num_workers)]
        self._closed = False

    # -- workers --
    def _start(self) -> _Slot:
        actor = self._actor_cls.remote(self._evaluator_ref)
        return _Slot(actor, ready_ref=actor.ready.remote())

    def _replace(self, slot: _Slot) -> None:
        self._ray.kill(slot.actor, no_restart=True)
        fresh = self._start()
        slot.actor, slot.ready_ref = fresh.actor, fresh.ready_ref
        slot.jobs.clear()
        slot.deadline = float("inf")
        self.replaced += 1

    def _wait_ready(self) -> None:
        """Block until every starting worker is up; a worker that cannot start is an error."""
        starting = [s for s in self._slots if s.ready_ref is not None]
        if not starting:
            return
        ready, _ = self._ray.wait([s.ready_ref for s in starting], num_returns=len(starting),
                                  timeout=self.start_timeout_s)
        for s in starting:
            if s.ready_ref not in ready:
                raise ParallelEvaluationError(
                    f"a Ray worker did not start within {self.start_timeout_s:.0f} s; "
                    f"is the cluster short of CPUs?")
            try:
                self._ray.get(s.ready_ref)
            except Exception as e:  # noqa: BLE001
                raise ParallelEvaluationError(
                    f"a Ray worker could not be created ({_reason(e)}); is the evaluator "
                    f"picklable and importable on the workers?") from None
            s.ready_ref = None

    def _workload_ref(self, workload: Any) -> tuple[str, Any]:
        if self._workload is None or self._workload[0] is not workload:
            token = f"{id(workload)}-{time.monotonic_ns()}"
            self._workload = (workload, token, self._ray.put(workload))
        return self._workload[1], self._workload[2]

    # -- evaluation --
    def evaluate(self, designs: Sequence[Design], workload: Any) -> list[EvalResult]:
        """One EvalResult per design, in order; failures (raise, timeout, crash) are marked."""
        if self._closed:
            raise ParallelEvaluationError("this RayPool was shut down; create a new one")
        for s in self._slots:  # calls left over by an interrupted evaluate(): discard them
            if s.jobs:
                self._replace(s)
        token, wref = self._workload_ref(workload)
        batch = _Batch(self, [dict(d) for d in designs], token, wref)
        self._wait_ready()
        while batch.queue or any(s.jobs for s in self._slots):
            batch.dispatch()
            heads = {s.jobs[0][1]: s for s in self._slots if s.jobs}
            starting = {s.ready_ref: s for s in self._slots if s.ready_ref is not None}
            done, _ = self._ray.wait(list(heads) + list(starting), num_returns=1,
                                     timeout=self._wait_s(heads))
            if not heads and not done:
                raise ParallelEvaluationError(
                    f"no Ray worker came back within {self.start_timeout_s:.0f} s")
            for ref in done:
                if ref in starting:
                    self._started(starting[ref], ref)
                else:
                    batch.collect(heads[ref], ref)
            batch.kill_overdue()
        return batch.results_in_order()

    def _wait_s(self, heads: Mapping[Any, _Slot]) -> float | None:
        """How long to wait for the next result: until the earliest deadline (None: no
        deadline), or the start timeout while every worker is being replaced."""
        if not heads:
            return self.start_timeout_s
        first = min(s.deadline for s in heads.values())
        return None if first == float("inf") else max(0.0, first - time.monotonic())

    def _started(self, s: _Slot, ref: Any) -> None:
        """A replacement worker reported ready (or failed to start: an error)."""
        try:
            self._ray.get(ref)
            s.ready_ref = None
        except Exception as e:  # noqa: BLE001
            raise ParallelEvaluationError(
                f"a replacement Ray worker could not start ({_reason(e)})") from None

    def shutdown(self) -> None:
        """Kill every worker (Ray itself keeps running)."""
        if self._closed:
            return
        self._closed = True
        for s in self._slots:
            try:
                self._ray.kill(s.actor, no_restart=True)
            except Exception:  # noqa: BLE001, S110 - already dead
                pass
        self._slots = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _Batch:
    """One :meth:`RayPool.evaluate` call: the queue of design chunks, the results, and the
    designs whose worker died once (re-run alone on a fresh worker)."""

    def __init__(self, pool: RayPool, designs: list[Design], token: str, wref: Any) -> None:
        self.pool, self.designs, self.token, self.wref = pool, designs, token, wref
        self.results: list[EvalResult | None] = [None] * len(designs)
        self.queue: deque[range] = deque(_chunks(len(designs), pool.chunk_size))
        self.suspects: set[range] = set()

    def deadline(self, idx: range) -> float:
        t = self.pool.timeout_s
        return time.monotonic() + t * len(idx) if t else float("inf")

    def finish(self, idx: range, out: Any) -> None:
        """Record a chunk's metrics; a failed chunk of several designs is split up first."""
        if isinstance(out, _Failure) and len(idx) > 1:
            self.queue.extend(range(i, i + 1) for i in idx)  # isolate the failing design(s)
            return
        if isinstance(out, _Failure):
            self.results[idx[0]] = EvalResult(None, out.reason)
            log.warning("evaluation failed (%s): %s", out.reason, self.designs[idx[0]])
            return
        for i, m in zip(idx, _split(out, len(idx))):
            self.results[i] = EvalResult(m)

    def requeue(self, s: _Slot) -> None:
        """Give the calls queued behind a dead worker's call back to the queue."""
        self.queue.extendleft(reversed([idx for idx, _ in list(s.jobs)[1:]]))

    def died(self, idx: range, reason: str) -> None:
        """The worker running ``idx`` died: retry it (alone) once, else it failed."""
        if len(idx) > 1:
            self.queue.extendleft(range(i, i + 1) for i in reversed(idx))
            self.pool.retried += 1
        elif idx not in self.suspects:
            self.suspects.add(idx)
            self.queue.appendleft(idx)
            self.pool.retried += 1
        else:
            self.finish(idx, _Failure(f"worker died twice, the second time running this design "
                                      f"alone ({reason})"))

    def alone(self, s: _Slot) -> bool:
        """Whether ``s`` may take the queue's next call (a suspect runs with nothing queued
        behind or before it)."""
        return not s.jobs or (self.queue[0] not in self.suspects
                              and s.jobs[-1][0] not in self.suspects)

    def dispatch(self) -> None:
        """Hand out queued chunks, breadth first: idle workers first, then up to the pipeline
        depth (at the tail, chunks are left for whichever worker frees up first)."""
        pool, queue = self.pool, self.queue
        ready = [s for s in pool._slots if s.ready_ref is None]
        for level in range(1, pool.pipeline_depth + 1):
            if level > 1 and len(queue) < len(ready):
                break
            for s in ready:
                if queue and len(s.jobs) < level and self.alone(s):
                    idx = queue.popleft()
                    ref = s.actor.evaluate.remote([self.designs[i] for i in idx], self.token,
                                                  [self.wref])
                    s.jobs.append((idx, ref))
                    if len(s.jobs) == 1:
                        s.deadline = self.deadline(idx)

    def collect(self, s: _Slot, ref: Any) -> None:
        """The head call of worker ``s`` finished: its result, or its worker died."""
        try:
            out = self.pool._ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the worker process died
            self.requeue(s)
            idx = s.jobs[0][0]
            self.pool._replace(s)
            self.died(idx, _reason(e))
            return
        idx = s.jobs.popleft()[0]
        if s.jobs:
            s.deadline = self.deadline(s.jobs[0][0])
        self.finish(idx, out)

    def kill_overdue(self) -> None:
        """Replace workers past their deadline (unless their call just finished)."""
        pool, now = self.pool, time.monotonic()
        for s in pool._slots:
            if s.jobs and now >= s.deadline and not pool._ray.wait([s.jobs[0][1]], timeout=0)[0]:
                idx = s.jobs[0][0]
                self.requeue(s)
                pool._replace(s)
                self.finish(idx, _Failure(
                    f"timed out after {pool.timeout_s * len(idx):.3g} s (worker replaced)"))

    def results_in_order(self) -> list[EvalResult]:
        if any(r is None for r in self.results):  # pragma: no cover - a scheduler bug
            raise ParallelEvaluationError("some designs got no result")
        return self.results  # type: ignore[return-value]


# ---- serial path -----------------------------------------------------------------------------
def _call_with_timeout(fn: Callable[[], Any], timeout_s: float | None) -> Any:
    """``fn()``, or a _Failure if it raises or runs longer than ``timeout_s`` (thread abandoned)."""
    if timeout_s is None:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001
            return _Failure(_reason(e))
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as e:  # noqa: BLE001
            box.append(_Failure(_reason(e)))

    t = threading.Thread(target=run, name="mlsysgym-eval", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        return _Failure(f"timed out after {timeout_s:.3g} s (thread abandoned)")
    return box[0]


def evaluate_serial(evaluator: Evaluator, designs: Sequence[Design], workload: Any,
                    timeout_s: float | None = None, chunk_size: int | None = None
                    ) -> list[EvalResult]:
    """In-process evaluation with RayPool's failure semantics: one EvalResult per design.

    The batch is evaluated in chunks of ``chunk_size`` (default: all at once, the fastest
    for a vectorized evaluator); a failing chunk of several designs is retried one design at
    a time. ``timeout_s`` is per design; a hung call is abandoned, not killed.
    """
    designs = [dict(d) for d in designs]
    results: list[EvalResult | None] = [None] * len(designs)
    queue: deque[range] = deque(_chunks(len(designs), chunk_size or max(len(designs), 1)))
    while queue:
        idx = queue.popleft()
        batch = [designs[i] for i in idx]
        limit = timeout_s * len(idx) if timeout_s else None
        out = _call_with_timeout(lambda b=batch: dict(evaluator.evaluate(b, workload)), limit)
        if isinstance(out, _Failure) and len(idx) > 1:
            queue.extendleft(range(i, i + 1) for i in reversed(idx))
        elif isinstance(out, _Failure):
            results[idx[0]] = EvalResult(None, out.reason)
            log.warning("evaluation failed (%s): %s", out.reason, designs[idx[0]])
        else:
            for i, m in zip(idx, _split(out, len(idx))):
                results[i] = EvalResult(m)
    return results  # type: ignore[return-value]


# ---- the Problem -----------------------------------------------------------------------------
@dataclass
class FailureRecord:
    """A failed evaluation: its position among the problem's evaluations, design and reason."""

    index: int
    design: Design
    reason: str


@dataclass
class EvaluatorProblem:
    """A :class:`~mlsysgym.agents.base.Problem`: DesignSpace + Evaluator + workload + reward.

    ``reward`` maps the metrics of the successful designs (a dict of arrays) to one reward per
    design (higher is better). ``parallel`` is None (serial, in-process), a :class:`RayPool`
    over this ``evaluator``, or an int: the number of Ray workers of a pool this problem starts
    (and ``close()`` shuts down). Designs that fail ``space.validate`` are failed evaluations
    too, when ``validate`` is True. Failures are recorded in ``failures``.
    """

    space: Any
    evaluator: Evaluator
    workload: Any
    reward: RewardFn
    parallel: RayPool | int | None = None
    timeout_s: float | None = None
    chunk_size: int | None = None
    validate: bool = False
    name: str = ""
    failures: list[FailureRecord] = field(default_factory=list)
    n_evaluated: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            wid = self.evaluator.workload_id(self.workload)
            self.name = f"{self.evaluator.name}:{wid}"
        self._owns_pool = False
        if isinstance(self.parallel, int) and not isinstance(self.parallel, bool):
            self.parallel = RayPool(self.evaluator, num_workers=self.parallel,
                                    timeout_s=self.timeout_s, chunk_size=self.chunk_size or 1)
            self._owns_pool = True
        elif isinstance(self.parallel, RayPool) and self.parallel.evaluator is not self.evaluator:
            raise ParallelEvaluationError(
                "the RayPool wraps a different evaluator than the problem; build the pool "
                "from the problem's evaluator")
        elif self.parallel is not None and not isinstance(self.parallel, RayPool):
            raise ParallelEvaluationError(
                f"parallel must be None, a RayPool or a number of workers, "
                f"got {type(self.parallel).__name__}")

    def _results(self, designs: list[Design]) -> list[EvalResult]:
        if isinstance(self.parallel, RayPool):
            return self.parallel.evaluate(designs, self.workload)
        return evaluate_serial(self.evaluator, designs, self.workload, self.timeout_s,
                               self.chunk_size)

    def evaluate(self, designs: Sequence[Design]) -> Outcome:
        """Rewards, metrics and failure flags of ``designs`` (failed: reward NaN, metrics {})."""
        designs = [dict(d) for d in designs]
        n = len(designs)
        results: list[EvalResult | None] = [None] * n
        todo = list(range(n))
        if self.validate:
            from mlsysgym.core.errors import DesignError

            todo = []
            for i, d in enumerate(designs):
                try:
                    self.space.validate(d)
                    todo.append(i)
                except DesignError as e:
                    results[i] = EvalResult(None, _reason(e))
                    log.warning("evaluation failed (%s): %s", results[i].error, d)
        for i, r in zip(todo, self._results([designs[i] for i in todo])):
            results[i] = r
        failed = np.array([r.failed for r in results], dtype=bool)  # type: ignore[union-attr]
        rewards = np.full(n, np.nan)
        ok = np.flatnonzero(~failed)
        if len(ok):
            names = list(results[ok[0]].metrics)  # type: ignore[union-attr]
            cols = {m: np.array([results[i].metrics[m] for i in ok]) for m in names}  # type: ignore
            r = np.asarray(self.reward(cols), dtype=float).reshape(-1)
            if r.shape != (len(ok),):
                raise MlsysgymError(f"reward function returned shape {r.shape} for "
                                    f"{len(ok)} designs; it must return one reward per design")
            rewards[ok] = r
        for i in np.flatnonzero(failed):
            self.failures.append(FailureRecord(self.n_evaluated + int(i), designs[i],
                                               results[i].error or ""))  # type: ignore
        self.n_evaluated += n
        metrics = [dict(r.metrics) if r.metrics else {} for r in results]  # type: ignore
        return Outcome(rewards, metrics, failed)

    def close(self) -> None:
        """Shut down the RayPool if this problem started it."""
        if self._owns_pool and isinstance(self.parallel, RayPool):
            self.parallel.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
