"""Job streams on a multi-core SoC (DeepSoCS-style): several model graphs arriving over time.

A *stream* is a list of :class:`Job` (a workload and its arrival time in µs). :func:`build_stream_instance`
compiles it with a platform into one :class:`~mlsysgym.simulators.multicore.SchedulingInstance`:
the disjoint union of the jobs' graphs, op names prefixed ``j<k>/``, every op released at its
job's arrival (``release_us``) and tagged with its job (``job_of``). Everything that schedules a
SchedulingInstance (the simulator, the env, HEFT/CPOP/CP-SAT) then respects the arrivals.

:func:`poisson_stream` draws a seeded stream: Poisson arrivals of zoo models at a given *load*
ρ — the mean inter-arrival time is ``mean job lower bound / ρ``, where a job's lower bound is
:func:`~mlsysgym.simulators.multicore.critical_path_lb` of the job alone on the platform (the
time it needs even with the SoC to itself), so ρ ≈ 1 means a job arrives about as often as the
SoC could possibly finish one.

:func:`job_metrics` gives what DeepSoCS reports: per job its finish and completion time
(finish − arrival), their mean, and the makespan.

Online scheduling (jobs not known before they arrive): :func:`arrival_groups` lists the arrival
events with the ops each reveals; :func:`is_online_order` tells whether a dispatch order commits
every job's ops before any later job's (what an online scheduler that commits on arrival does).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.ir.errors import WorkloadError
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.multicore import (
    OpTimeFn,
    Platform,
    Schedule,
    SchedulingInstance,
    build_instance,
    critical_path_lb,
    load_platform,
)

__all__ = ["Job", "JobMetrics", "StreamError", "arrival_groups", "build_stream_instance",
           "is_online_order", "job_lower_bounds", "job_metrics", "mean_jct_lower_bound",
           "poisson_stream"]

JobWorkload = str | os.PathLike[str] | Graph | SchedulingInstance


class StreamError(WorkloadError):
    """A job stream is malformed (empty, negative or non-finite arrival time, bad load, ...)."""


@dataclass(frozen=True)
class Job:
    """One job of a stream: a workload (zoo name, ONNX path, ir.Graph or a prebuilt single-job
    SchedulingInstance of the same platform) arriving at ``arrival_us``."""

    workload: JobWorkload
    arrival_us: float = 0.0

    def __post_init__(self) -> None:
        try:
            t = float(self.arrival_us)
        except (TypeError, ValueError):
            raise StreamError(f"arrival time must be a number of µs, got {self.arrival_us!r}") from None
        if not math.isfinite(t) or t < 0:
            raise StreamError(f"arrival time must be a finite time ≥ 0 µs, got {self.arrival_us!r}")
        object.__setattr__(self, "arrival_us", t)


def _as_jobs(jobs: Sequence[Job | tuple[JobWorkload, float]]) -> list[Job]:
    if isinstance(jobs, (str, Path, Graph, SchedulingInstance, Job)) or not isinstance(jobs, Sequence):
        raise StreamError("a stream is a sequence of Job or (workload, arrival_us) pairs, "
                          f"not a {type(jobs).__name__}")
    out: list[Job] = []
    for j in jobs:
        if isinstance(j, Job):
            out.append(j)
        elif isinstance(j, Sequence) and not isinstance(j, str) and len(j) == 2:
            out.append(Job(j[0], j[1]))
        else:
            raise StreamError(f"a stream entry must be a Job or a (workload, arrival_us) pair, got {j!r}")
    if not out:
        raise StreamError("the job stream is empty; give at least one (workload, arrival_us)")
    return out


def _job_instance(workload: JobWorkload, platform: Platform,
                 op_time: Mapping[str, OpTimeFn] | None) -> SchedulingInstance:
    if isinstance(workload, SchedulingInstance):
        if workload.n_pes != len(platform.pes):
            raise StreamError(f"job {workload.name!r} has {workload.n_pes} PEs but platform "
                              f"{platform.name!r} has {len(platform.pes)}")
        if workload.n_jobs != 1 or workload.has_releases:
            raise StreamError(f"job {workload.name!r} is itself a stream; give single-job problems")
        return workload
    from mlsysgym.ir import zoo

    return build_instance(zoo.resolve(workload), platform, op_time)


def build_stream_instance(jobs: Sequence[Job | tuple[JobWorkload, float]],
                         platform: str | Path | Mapping[str, Any] | Platform = "soc_npu",
                         op_time: Mapping[str, OpTimeFn] | None = None,
                         name: str | None = None) -> SchedulingInstance:
    """One SchedulingInstance for a stream of jobs: the jobs' ops side by side (job k's ops named
    ``j<k>/<op>``), each released at its job's arrival. Jobs keep their given order (job index
    k = position in ``jobs``); the same workload may appear several times (compiled once)."""
    plat = load_platform(platform)
    items = _as_jobs(jobs)
    cache: dict[tuple[str, Any], SchedulingInstance] = {}
    parts: list[SchedulingInstance] = []
    for job in items:
        key = ("path", str(job.workload)) if isinstance(job.workload, (str, Path)) \
            else ("obj", id(job.workload))
        if key not in cache:
            cache[key] = _job_instance(job.workload, plat, op_time)
        parts.append(cache[key])
    sizes = np.array([p.n_ops for p in parts], np.int64)
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    arrivals = np.array([j.arrival_us for j in items])
    first = parts[0]
    return SchedulingInstance(
        name=name or f"stream{len(items)}[{'+'.join(dict.fromkeys(p.name for p in parts))}]",
        op_names=tuple(f"j{k}/{o}" for k, p in enumerate(parts) for o in p.op_names),
        op_types=tuple(t for p in parts for t in p.op_types), pe_names=first.pe_names,
        durations_us=np.concatenate([p.durations_us for p in parts]),
        edge_src=np.concatenate([p.edge_src + o for p, o in zip(parts, offsets)]),
        edge_dst=np.concatenate([p.edge_dst + o for p, o in zip(parts, offsets)]),
        edge_bytes=np.concatenate([p.edge_bytes for p in parts]),
        edge_comm_us=np.concatenate([p.edge_comm_us for p in parts]),
        active_power_w=first.active_power_w, idle_power_w=first.idle_power_w,
        transfer_energy_pj_per_byte=first.transfer_energy_pj_per_byte,
        op_flops=np.concatenate([p.op_flops for p in parts]),
        op_bytes=np.concatenate([p.op_bytes for p in parts]),
        release_us=np.repeat(arrivals, sizes), job_of=np.repeat(np.arange(len(items)), sizes))


def poisson_stream(models: Sequence[JobWorkload], n_jobs: int, load: float,
                   platform: str | Path | Mapping[str, Any] | Platform = "soc_npu", seed: int = 0,
                   op_time: Mapping[str, OpTimeFn] | None = None) -> list[Job]:
    """``n_jobs`` jobs, each a model drawn uniformly from ``models``, with Poisson arrivals at
    load ``load`` (> 0; see the module docstring); the first job arrives at 0. Seeded."""
    if isinstance(models, (str, Path, Graph, SchedulingInstance)) or not models:
        raise StreamError("models must be a non-empty sequence of workloads")
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise StreamError(f"n_jobs must be an integer ≥ 1, got {n_jobs!r}")
    if not (isinstance(load, (int, float)) and math.isfinite(load) and load > 0):
        raise StreamError(f"load must be a finite number > 0, got {load!r}")
    plat = load_platform(platform)
    rng = np.random.default_rng(seed)
    lbs = np.array([critical_path_lb(_job_instance(m if not isinstance(m, (str, Path)) else str(m),
                                                  plat, op_time)) for m in models])
    picks = rng.integers(0, len(models), int(n_jobs))
    gaps = rng.exponential(float(lbs.mean()) / float(load), int(n_jobs))
    gaps[0] = 0.0
    arrivals = np.cumsum(gaps)
    return [Job(models[int(k)], float(t)) for k, t in zip(picks, arrivals)]


@dataclass(frozen=True)
class JobMetrics:
    """Per-job results of a schedule of a stream (times in µs)."""

    arrival_us: np.ndarray
    finish_us: np.ndarray
    completion_us: np.ndarray  # finish − arrival (DeepSoCS's job duration)
    makespan_us: float

    @property
    def mean_completion_us(self) -> float:
        return float(self.completion_us.mean())

    def metrics(self) -> dict[str, float]:
        """Scalar metrics with units in their names."""
        return {"makespan_us": self.makespan_us, "mean_jct_us": self.mean_completion_us,
                "max_jct_us": float(self.completion_us.max()), "n_jobs": float(self.finish_us.size)}


def job_metrics(problem: SchedulingInstance, schedule: Schedule) -> JobMetrics:
    """Each job's finish (its last op's finish) and completion time, and the makespan."""
    fin = schedule.finish_us(problem)
    if fin.shape != (problem.n_ops,):
        raise StreamError(f"schedule has {fin.size} ops but problem {problem.name!r} has {problem.n_ops}")
    job_fin = np.full(problem.n_jobs, -np.inf)
    np.maximum.at(job_fin, problem.job_of, fin)
    arr = problem.job_arrival_us
    return JobMetrics(arrival_us=arr.copy(), finish_us=job_fin, completion_us=job_fin - arr,
                      makespan_us=float(fin.max()))


def job_lower_bounds(problem: SchedulingInstance) -> np.ndarray:
    """(n_jobs,) a lower bound on each job's finish: the longest path of fastest op times
    through the job from its arrival (other jobs and transfers ignored)."""
    bound = problem.head_us + problem.min_durations_us + problem.tail_us
    out = np.zeros(problem.n_jobs)
    np.maximum.at(out, problem.job_of, bound)
    return out


def mean_jct_lower_bound(problem: SchedulingInstance) -> float:
    """A lower bound on the mean job completion time: mean of :func:`job_lower_bounds` − arrival."""
    return float(np.mean(job_lower_bounds(problem) - problem.job_arrival_us))


def arrival_groups(problem: SchedulingInstance) -> list[tuple[float, np.ndarray]]:
    """The arrival events of a stream, earliest first: (time, sorted indices of the ops of every
    job arriving then). What an online scheduler learns at each event (one event for a single
    graph)."""
    times = problem.job_arrival_us[problem.job_of]
    keys = np.unique(times)
    return [(float(t), np.flatnonzero(times == t)) for t in keys]


def is_online_order(problem: SchedulingInstance, order: Sequence[int] | np.ndarray) -> bool:
    """Whether a dispatch order could come from an online scheduler that commits each job's ops
    when the job arrives: the ops appear grouped by arrival time, earliest first (every op of a
    job is placed before any op of a job that arrives later)."""
    seq = np.asarray(order, dtype=np.int64).reshape(-1)
    if sorted(seq.tolist()) != list(range(problem.n_ops)):
        raise StreamError(f"order must list each of the {problem.n_ops} op indices exactly once")
    times = problem.job_arrival_us[problem.job_of][seq]
    return bool(np.all(np.diff(times) >= 0))
