"""KernelSchedulingStream-v0: list-schedule a stream of model graphs (jobs) arriving over time.

The DeepSoCS setting on :class:`~mlsysgym.envs.kernel_scheduling.KernelSchedulingEnv`'s game:
several jobs (zoo models, ONNX files, Graphs) arrive at known times; an op cannot start before
its job arrives (its release time, see :mod:`mlsysgym.simulators.streams`). The arrivals are
known to the scheduler in advance (offline/clairvoyant scheduling with release times). Actions,
masks, observation and the search hooks are the single-graph env's (same spaces, so the same
policy network runs on both); the window holds ready ops by (job arrival, longest path to the
end), so the earliest jobs' ops come first, and an op's ``head`` feature (column 3) is its
earliest possible start, release included.

**Objective and reward.** ``objective="jct"`` (default, DeepSoCS's metric): the mean job
completion time (job finish − arrival). ``LBJ_t[k]`` is a lower bound on job k's finish:
initially the longest fastest path through the job from its arrival, then
``LBJ_t[k] = max(LBJ_{t-1}[k], finish(op_t) + tail(op_t))`` for the job of the placed op; the
reward is ``-(mean_k LBJ_t[k] − mean_k LBJ_{t-1}[k]) * reward_scale``. Since ``LBJ_T[k]`` is job
k's finish, **episode return = (mean JCT bound − mean JCT) · reward_scale**, with
``reward_scale`` defaulting to ``1 / mean JCT bound``: return = 1 − mean JCT / its bound.
``objective="makespan"`` uses the single-graph env's makespan reward unchanged.
``info`` reports both ``makespan_us`` and ``mean_jct_us`` (a lower bound while the episode
runs, the mean job completion time once it ends).

**Kwargs**: ``jobs`` — one stream (a sequence of :class:`~mlsysgym.simulators.streams.Job` or
``(workload, arrival_us)`` pairs, or a prebuilt stream SchedulingInstance) or a list of streams,
one drawn per reset; when None, ``n_streams`` streams of ``n_jobs`` jobs drawn by
:func:`~mlsysgym.simulators.streams.poisson_stream` from ``models`` at ``load`` (seeds
``seed .. seed + n_streams − 1``). ``objective`` ("jct" | "makespan"); ``online`` (False);
the rest as in
KernelScheduling-v0.

**info**: KernelScheduling-v0's keys (``action_mask``, ``makespan_us``, ``lower_bound_us``,
``workload``; after a step ``op``, ``pe``, ``start_us``, ``finish_us``, ``invalid_action``) plus
``mean_jct_us`` and ``n_jobs``. ``reset(options={"workload": S})`` plays stream ``S`` (a
sequence of Jobs or ``(workload, arrival_us)`` pairs, or a stream SchedulingInstance; it must fit
``max_ops`` / ``max_edges``); ``options={"workload_index": k}`` the k-th stream. The
``rgb_array`` picture is the Gantt chart coloured by job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
from mlsysgym.ir.errors import WorkloadError
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.multicore import OpTimeFn, Platform, SchedulingInstance, load_platform
from mlsysgym.simulators.streams import (
    Job,
    StreamError,
    build_stream_instance,
    job_lower_bounds,
    poisson_stream,
)

__all__ = ["KernelSchedulingStreamEnv"]

_OBJECTIVES = ("jct", "makespan")


@dataclass(frozen=True, eq=False)
class _JobStatic:
    job_of: list[int]
    arrival: np.ndarray
    job_lb0: np.ndarray  # lower bound on each job's finish
    jct_lb0: float  # mean over jobs of (job_lb0 − arrival)


def _job_static(prob: SchedulingInstance) -> _JobStatic:
    job_lb = job_lower_bounds(prob)
    arr = prob.job_arrival_us
    return _JobStatic(job_of=prob.job_of.tolist(), arrival=arr, job_lb0=job_lb,
                      jct_lb0=float(np.mean(job_lb - arr)))


def _is_single_stream(jobs: Sequence[Any]) -> bool:
    first = jobs[0]
    if isinstance(first, Job):
        return True
    return (isinstance(first, Sequence) and not isinstance(first, str) and len(first) == 2
            and isinstance(first[1], (int, float, np.integer, np.floating))
            and isinstance(first[0], (str, Path, Graph, SchedulingInstance)))


class KernelSchedulingStreamEnv(KernelSchedulingEnv):
    """List scheduling of a stream of jobs with arrival times (see the module docstring)."""

    def __init__(self, jobs: Any = None,
                 platform: str | Path | Mapping[str, Any] | Platform = "soc_npu",
                 models: Sequence[str] = ("alexnet", "resnet18"), n_jobs: int = 4,
                 load: float = 1.0, n_streams: int = 8, seed: int = 0, objective: str = "jct",
                 window: int = 16, max_ops: int | None = None, max_edges: int | None = None,
                 op_time: Mapping[str, OpTimeFn] | None = None, reward_scale: float | None = None,
                 invalid_action: str = "fallback", render_mode: str | None = None,
                 online: bool = False) -> None:
        if objective not in _OBJECTIVES:
            raise ValueError(f"objective must be one of {_OBJECTIVES}, not {objective!r}")
        plat = load_platform(platform)
        if jobs is None:
            if n_streams < 1:
                raise StreamError(f"n_streams must be ≥ 1, got {n_streams}")
            streams: list[Any] = [poisson_stream(models, n_jobs, load, plat, seed + k, op_time)
                                  for k in range(n_streams)]
        elif isinstance(jobs, SchedulingInstance):
            streams = [jobs]
        elif isinstance(jobs, (str, Path, Graph)) or not isinstance(jobs, Sequence):
            raise StreamError("jobs must be a stream of (workload, arrival_us) pairs or Jobs, a "
                              f"stream SchedulingInstance, or a list of streams; got {type(jobs).__name__}")
        elif not jobs:
            raise StreamError("the job stream is empty; give at least one (workload, arrival_us)")
        else:
            streams = [jobs] if _is_single_stream(jobs) else list(jobs)
        problems = [s if isinstance(s, SchedulingInstance) else build_stream_instance(s, plat, op_time)
                    for s in streams]
        self.objective = objective
        self.online = bool(online)
        self._jst: _JobStatic | None = None
        self._job_left = np.zeros(0, np.int64)
        self._job_statics: dict[int, _JobStatic] = {}
        super().__init__(problems, plat, window=window, max_ops=max_ops, max_edges=max_edges,
                         reward_scale=reward_scale, invalid_action=invalid_action,
                         render_mode=render_mode)

    def _workload_index(self, workload: Any) -> int:
        """A stream given as jobs is built into a problem first (see the base class)."""
        if not isinstance(workload, (SchedulingInstance, str)):
            if not isinstance(workload, Sequence) or not workload or not _is_single_stream(workload):
                raise StreamError("options['workload'] must be one stream: a sequence of Jobs or "
                                  "(workload, arrival_us) pairs, or a stream SchedulingInstance")
            workload = build_stream_instance(workload, self.platform, self.op_time)
        return super()._workload_index(workload)

    # ---- episode ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode on one stream; ``options={"workload_index": k}`` picks the k-th."""
        self._jst = None  # the previous episode's jobs must not shape this one's first window
        super().reset(seed=seed, options=options)
        prob = self.problem
        key = next(k for k, p in enumerate(self.problems) if p is prob)
        jst = self._job_statics.get(key)
        if jst is None:
            jst = self._job_statics[key] = _job_static(prob)
        self._jst = jst
        self._job_lb = jst.job_lb0.copy()
        self._job_fin = np.full(prob.n_jobs, -np.inf)
        self._job_left = np.bincount(prob.job_of, minlength=prob.n_jobs)
        if self.objective == "jct" and self.fixed_reward_scale is None:
            self.reward_scale = 1.0 / jst.jct_lb0 if jst.jct_lb0 > 0 else 1.0
        self._refresh_window()
        return self._obs(), self._info()

    def _place(self, i: int, p: int) -> tuple[float, float, float]:
        t, f, reward = super()._place(i, p)
        jst = self._jst
        assert jst is not None
        k = jst.job_of[i]
        self._job_left[k] -= 1
        if self.online:
            self._window_ops = self._online_window()
        self._job_fin[k] = max(self._job_fin[k], f)
        new = max(self._job_lb[k], f + self._static.tail[i])  # type: ignore[union-attr]
        if self.objective == "jct":
            reward = -(new - self._job_lb[k]) * self.reward_scale / len(self._job_lb)
        self._job_lb[k] = new
        return t, f, reward

    # ---- results ----------------------------------------------------------------------------
    @property
    def mean_jct_us(self) -> float:
        """Mean job completion time (finish − arrival): a lower bound while the episode runs,
        exact once it has ended."""
        if self._jst is None:
            raise WorkloadError("call reset() before asking for the mean job completion time")
        return float(np.mean(self._job_lb - self._jst.arrival))

    @property
    def initial_mean_jct_bound_us(self) -> float:
        """The mean JCT lower bound at the start: the constant of the return identity."""
        if self._jst is None:
            raise WorkloadError("call reset() before asking for the bound")
        return self._jst.jct_lb0

    def job_finish_us(self) -> np.ndarray:
        """Finish time of each job's ops placed so far (−inf for a job with none placed)."""
        return self._job_fin.copy()

    def get_state(self) -> dict[str, Any]:
        """:meth:`KernelSchedulingEnv.get_state` plus the per-job bounds."""
        state = super().get_state()
        state.update(jst=self._jst, job_lb=self._job_lb.copy(), job_fin=self._job_fin.copy(),
                     job_left=self._job_left.copy())
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot (the snapshot stays usable)."""
        self._jst = state["jst"]
        self._job_lb, self._job_fin = state["job_lb"].copy(), state["job_fin"].copy()
        self._job_left = state["job_left"].copy()
        super().set_state(state)

    # ---- online mode ------------------------------------------------------------------------
    def revealed_until_us(self) -> float:
        """Online mode: the arrival time of the jobs revealed last (the earliest arrival among
        jobs with ops left; inf once all are placed). Offline: inf (everything is known)."""
        if not self.online or self._jst is None or not np.any(self._job_left > 0):
            return float("inf")
        return float(self._jst.arrival[self._job_left > 0].min())

    def _online_window(self) -> list[int]:
        """Ready ops of revealed jobs (arrival ≤ :meth:`revealed_until_us`), in window order."""
        now, arrival, job_of = self.revealed_until_us(), self._jst.arrival, self._jst.job_of  # type: ignore[union-attr]
        return [i for _, i in self._ready if arrival[job_of[i]] <= now][:self.window]

    def _refresh_window(self) -> None:
        super()._refresh_window()
        if not self.online or self._jst is None or self._static is None:
            return
        W, P = self.window, self.n_pes
        self._window_ops = self._online_window()
        mask = np.zeros((W, P), bool)
        if self._window_ops:
            mask[:len(self._window_ops)] = self._static.problem.capable[self._window_ops]
        self._mask = mask.reshape(-1)
        self._window_arr = np.full(W, self.max_ops, np.int64)
        self._window_arr[:len(self._window_ops)] = self._window_ops

    def _obs(self) -> dict[str, np.ndarray]:
        obs = super()._obs()
        if self.online and self._jst is not None:
            hidden = np.zeros(self.max_ops, bool)
            n = len(self._jst.job_of)
            hidden[:n] = self._jst.arrival[self._jst.job_of] > self.revealed_until_us()
            obs["ops"][hidden] = 0.0
            obs["op_mask"][hidden] = 0.0
            ei = obs["edge_index"]
            obs["edge_mask"][hidden[ei[0]] | hidden[ei[1]]] = 0.0
            obs["edge_comm"][obs["edge_mask"] == 0] = 0.0
        return obs

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        if self._jst is not None:
            info.update(mean_jct_us=self.mean_jct_us, n_jobs=len(self._job_lb))
            if self.online:
                info["revealed_until_us"] = self.revealed_until_us()
        return info
