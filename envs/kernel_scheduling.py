"""KernelScheduling-v0: list-schedule the ops of a model graph on a heterogeneous multi-core SoC.

Each step the agent picks a (ready op, PE) pair; the op starts at its earliest feasible time on
that PE (after its inputs arrive, transfers included, and not before its release time when the
problem is a job stream, in the earliest idle gap of the PE that fits it: insertion scheduling).
The episode ends when every op is placed (``len(ops)`` steps). For streams of jobs arriving
over time see :mod:`mlsysgym.envs.kernel_scheduling_stream` (KernelSchedulingStream-v0).

**Actions.** ``Discrete(window * n_pes)``: action ``slot * n_pes + pe`` places the op in window
slot ``slot`` on PE ``pe``. The window holds the first ``window`` ready ops by priority (release
time — all 0 unless the problem is a job stream —, then longest path to the end over fastest
PEs, then topological position). ``action_masks()`` (MaskablePPO) and ``info["action_mask"]``
mark the valid pairs: a filled slot and a PE able to run that op. An invalid action is replaced by the first valid one with ``info["invalid_action"] = True``
(``invalid_action="raise"`` raises instead); an action outside the action space (not an
integer in ``[0, window * n_pes)``) always raises :class:`InvalidActionError`.

**Reward.** ``LB_t`` is a makespan lower bound: ``LB_0`` = :func:`critical_path_lb` (longest
path on fastest PEs without transfers, and total fastest work / PEs), and
``LB_t = max(LB_{t-1}, finish(op_t) + tail(op_t))`` where ``tail`` is the longest fastest path
after the op. The reward is ``-(LB_t - LB_{t-1}) * reward_scale``. Since ``LB_T`` = makespan when
all ops are placed, **episode return = (LB_0 − makespan) · reward_scale**; ``reward_scale``
defaults to ``1 / LB_0``, so return = 1 − makespan / LB_0.

**Observation** (Dict; N = ``max_ops``, E = ``max_edges``, P = PEs, W = ``window``; times are
divided by ``LB_0``):

- ``ops`` (N, 10 + 3P) float32, one row per op (zero rows beyond the graph's ops):
  [fastest time, mean time over capable PEs, tail, head, log1p(FLOPs)/30, log1p(bytes)/30,
  scheduled, ready, start, finish, time on each PE (0 where unsupported) ×P,
  can-run on each PE ×P, assigned PE one-hot ×P].
- ``edge_index`` (2, E) int64: data dependencies producer → consumer (op indices; padding 0);
  ``edge_mask`` (E,) float32 marks the real edges, ``edge_comm`` (E,) float32 their cross-PE
  transfer time. With torch-geometric: ``edge_index[:, edge_mask > 0]``.
- ``op_mask`` (N,) float32: 1 for real ops.
- ``pes`` (P, 3) float32: time each PE becomes free (its last finish), busy time, share of ops.
- ``window`` (W,) int64: the op index in each window slot, N for an empty slot.
- ``progress`` (2,) float32: current lower bound ``LB_t / LB_0``, fraction of ops scheduled.

**Kwargs**: ``workload`` (zoo name, ONNX path, ir.Graph, SchedulingInstance, or a sequence of
them, one drawn per reset), ``platform`` (preset name, dict, JSON/YAML path or Platform),
``window`` (16), ``max_ops`` / ``max_edges`` (default: the largest workload's), ``op_time``
(per-PE time functions, see :func:`build_instance`), ``reward_scale`` (None → 1 / LB_0),
``invalid_action`` ("fallback" | "raise"), ``render_mode`` (None | "ansi" | "rgb_array" |
"human"; the pictures are Gantt charts, :func:`mlsysgym.envs.render.gantt_figure`).

**info** (reset and every step): ``action_mask`` (the valid actions now), ``makespan_us`` (of
the ops placed so far), ``lower_bound_us`` (``LB_t``), ``workload`` (the instance's name);
after a step also ``op`` and ``pe`` (what was placed where), ``start_us``, ``finish_us`` and
``invalid_action`` (True when the action was replaced by a valid one). Episodes last
``len(ops)`` steps (terminated). ``reset(options={"workload": W})`` plays workload ``W`` (one of
the env's workloads or a new one that fits ``max_ops`` / ``max_edges``; it joins the env's
list); ``options={"workload_index": k}`` the k-th of the list.

**Search hooks**: ``get_state()`` / ``set_state(state)`` snapshot and restore an episode (tree
and local search, :mod:`mlsysgym.agents.scheduling_search`); ``place(op, pe)`` is ``step``
without building the observation (a ready op in the window, on a PE that can run it).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from mlsysgym.envs.actions import InvalidActionError, check_discrete_action
from mlsysgym.ir.errors import WorkloadError
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.multicore import (
    OpTimeFn,
    Platform,
    Schedule,
    SchedulingInstance,
    build_instance,
    critical_path_lb,
    earliest_start,
    load_platform,
)

__all__ = ["N_OP_FEATURES_BASE", "InvalidActionError", "KernelSchedulingEnv", "resolve_instance"]

N_OP_FEATURES_BASE = 10
Workload = str | Path | Graph | SchedulingInstance


def resolve_instance(workload: Workload, platform: Platform,
                    op_time: Mapping[str, OpTimeFn] | None = None) -> SchedulingInstance:
    """A SchedulingInstance from a zoo name, ONNX path, ir.Graph or a problem (returned as is)."""
    if isinstance(workload, SchedulingInstance):
        if workload.n_pes != len(platform.pes):
            raise WorkloadError(f"problem {workload.name!r} has {workload.n_pes} PEs but platform "
                                f"{platform.name!r} has {len(platform.pes)}")
        return workload
    from mlsysgym.ir import zoo

    return build_instance(zoo.resolve(workload), platform, op_time)


@dataclass(frozen=True, eq=False)
class _Static:
    """Per-problem data computed once: priorities, predecessor lists, static feature block."""

    problem: SchedulingInstance
    lb0: float
    priority: list[tuple[float, float, int]]  # sort key per op (smaller = earlier in the window)
    preds: list[list[tuple[int, float]]]  # (producer, cross-PE transfer µs)
    succs: list[list[int]]
    n_preds: np.ndarray
    ops_static: np.ndarray  # (N, F) with dynamic columns zero
    edge_index: np.ndarray
    edge_mask: np.ndarray
    edge_comm: np.ndarray
    op_mask: np.ndarray
    durations: list[list[float]]
    tail: list[float]
    release: list[float]


class KernelSchedulingEnv(gym.Env):
    """List scheduling of a model graph's ops on a heterogeneous SoC (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array", "human"],  # noqa: RUF012
                                "render_fps": 4}

    def __init__(self, workload: Workload | Sequence[Workload] = "resnet50",
                 platform: str | Path | Mapping[str, Any] | Platform = "soc_npu", window: int = 16,
                 max_ops: int | None = None, max_edges: int | None = None,
                 op_time: Mapping[str, OpTimeFn] | None = None, reward_scale: float | None = None,
                 invalid_action: str = "fallback", render_mode: str | None = None) -> None:
        self.platform = load_platform(platform)
        items = [workload] if isinstance(workload, (str, Path, Graph, SchedulingInstance)) \
            else list(workload)
        if not items:
            raise WorkloadError("workload is an empty sequence; give at least one model")
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        if invalid_action not in ("fallback", "raise"):
            raise ValueError(f"invalid_action must be 'fallback' or 'raise', not {invalid_action!r}")
        from mlsysgym.envs.render import check_render_mode

        check_render_mode(render_mode, self.metadata["render_modes"])
        self.op_time = op_time
        self.problems = [resolve_instance(w, self.platform, op_time) for w in items]
        self.n_pes = len(self.platform.pes)
        self.window = int(window)
        self.max_ops = int(max_ops or max(p.n_ops for p in self.problems))
        self.max_edges = int(max_edges or max(1, max(p.n_edges for p in self.problems)))
        for p in self.problems:
            if p.n_ops > self.max_ops or p.n_edges > self.max_edges:
                raise WorkloadError(f"workload {p.name!r} has {p.n_ops} ops / {p.n_edges} edges, more "
                                    f"than max_ops={self.max_ops} / max_edges={self.max_edges}")
        self.fixed_reward_scale = reward_scale
        self.invalid_action = invalid_action
        self.render_mode = render_mode
        N, E, P, W = self.max_ops, self.max_edges, self.n_pes, self.window
        self.n_op_features = N_OP_FEATURES_BASE + 3 * P
        self.action_space = spaces.Discrete(W * P)
        self.observation_space = spaces.Dict({
            "ops": spaces.Box(0.0, np.inf, (N, self.n_op_features), np.float32),
            "edge_index": spaces.Box(0, max(N - 1, 0), (2, E), np.int64),
            "edge_mask": spaces.Box(0.0, 1.0, (E,), np.float32),
            "edge_comm": spaces.Box(0.0, np.inf, (E,), np.float32),
            "op_mask": spaces.Box(0.0, 1.0, (N,), np.float32),
            "pes": spaces.Box(0.0, np.inf, (P, 3), np.float32),
            "window": spaces.Box(0, N, (W,), np.int64),
            "progress": spaces.Box(0.0, np.inf, (2,), np.float32),
        })
        self._statics: dict[int, _Static] = {}
        self._static: _Static | None = None
        self._done = True
        self._stale = False

    # ---- static precomputation ----------------------------------------------------------------
    def _build_static(self, k: int) -> _Static:
        prob = self.problems[k]
        n, P, N, E = prob.n_ops, prob.n_pes, self.max_ops, self.max_edges
        lb0 = critical_path_lb(prob)
        scale = lb0 if lb0 > 0 else 1.0
        pos = np.empty(n, np.int64)
        pos[prob.topo_order] = np.arange(n)
        bottom = prob.tail_us + prob.min_durations_us
        rel = prob.release_us
        priority = [(float(rel[i]), -float(bottom[i]), int(pos[i])) for i in range(n)]
        preds: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        succs: list[list[int]] = [[] for _ in range(n)]
        for s, d, c in zip(prob.edge_src.tolist(), prob.edge_dst.tolist(), prob.edge_comm_us.tolist()):
            preds[d].append((s, c))
            succs[s].append(d)
        dur = prob.durations_us
        cap = prob.capable
        finite = np.where(cap, dur, 0.0)
        ops = np.zeros((N, self.n_op_features), np.float32)
        ops[:n, 0] = prob.min_durations_us / scale
        ops[:n, 1] = finite.sum(1) / np.maximum(cap.sum(1), 1) / scale
        ops[:n, 2] = prob.tail_us / scale
        ops[:n, 3] = prob.head_us / scale
        ops[:n, 4] = np.log1p(prob.op_flops) / 30.0
        ops[:n, 5] = np.log1p(prob.op_bytes) / 30.0
        b = N_OP_FEATURES_BASE
        ops[:n, b:b + P] = finite / scale
        ops[:n, b + P:b + 2 * P] = cap
        ei = np.zeros((2, E), np.int64)
        ei[0, :prob.n_edges] = prob.edge_src
        ei[1, :prob.n_edges] = prob.edge_dst
        em = np.zeros(E, np.float32)
        em[:prob.n_edges] = 1.0
        ec = np.zeros(E, np.float32)
        ec[:prob.n_edges] = prob.edge_comm_us / scale
        om = np.zeros(N, np.float32)
        om[:n] = 1.0
        for a in (ei, em, ec, om):
            a.setflags(write=False)
        return _Static(problem=prob, lb0=lb0, priority=priority, preds=preds, succs=succs,
                       n_preds=np.array([len(p) for p in preds], np.int64), ops_static=ops,
                       edge_index=ei, edge_mask=em, edge_comm=ec, op_mask=om,
                       durations=dur.tolist(), tail=prob.tail_us.tolist(),
                       release=prob.release_us.tolist())

    # ---- gymnasium API ------------------------------------------------------------------------
    @property
    def problem(self) -> SchedulingInstance:
        """The instance of the current episode."""
        if self._static is None:
            raise InvalidActionError("call reset() before using the env")
        return self._static.problem

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode; ``options={"workload": W}`` plays workload ``W`` and
        ``options={"workload_index": k}`` the k-th workload (else one drawn at random)."""
        super().reset(seed=seed)
        if options and options.get("workload") is not None:
            k = self._workload_index(options["workload"])
        elif options and "workload_index" in options:
            k = int(options["workload_index"])
            if not 0 <= k < len(self.problems):
                raise WorkloadError(f"workload_index {k} is out of range; this env has "
                                    f"{len(self.problems)} workload(s)")
        elif len(self.problems) > 1:
            k = int(self.np_random.integers(len(self.problems)))
        else:
            k = 0
        st = self._statics.get(k)
        if st is None:
            st = self._statics[k] = self._build_static(k)
        self._static = st
        n, P = st.problem.n_ops, self.n_pes
        self._scale = st.lb0 if st.lb0 > 0 else 1.0
        self.reward_scale = self.fixed_reward_scale if self.fixed_reward_scale is not None \
            else 1.0 / self._scale
        self._assign = [-1] * n
        self._start = [0.0] * n
        self._finish = [0.0] * n
        self._remaining = st.n_preds.tolist()
        self._ready: list[tuple[tuple[float, float, int], int]] = sorted(
            (st.priority[i], i) for i in range(n) if self._remaining[i] == 0)
        self._intervals: list[list[tuple[float, float]]] = [[] for _ in range(P)]
        self._pe_free = [0.0] * P
        self._pe_busy = [0.0] * P
        self._pe_count = [0] * P
        self._order: list[int] = []
        self._lb = st.lb0
        self._makespan = 0.0
        self._ops = st.ops_static.copy()
        for _, i in self._ready:
            self._ops[i, 7] = 1.0
        self._done = False
        self._refresh_window()
        if self.render_mode == "human":
            self.render()
        return self._obs(), self._info()

    def _workload_index(self, workload: Workload) -> int:
        """Index of ``workload`` in the env's list (a name or problem already there), else
        resolved and appended (it must fit the observation's ``max_ops`` / ``max_edges``)."""
        for k, p in enumerate(self.problems):
            if workload is p or (isinstance(workload, str) and workload == p.name):
                return k
        prob = resolve_instance(workload, self.platform, self.op_time)
        if prob.n_ops > self.max_ops or prob.n_edges > self.max_edges:
            raise WorkloadError(f"workload {prob.name!r} has {prob.n_ops} ops / {prob.n_edges} "
                                f"edges, more than this env's max_ops={self.max_ops} / "
                                f"max_edges={self.max_edges}; build the env with larger ones")
        self.problems.append(prob)
        return len(self.problems) - 1

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._done or self._static is None:
            raise InvalidActionError("the episode has ended; call reset() before step()")
        if self._stale:
            self._refresh_window()
        P = self.n_pes
        a = check_discrete_action(action, self.window * P)  # outside the space: raises
        invalid = not self._mask[a]
        if invalid:
            if self.invalid_action == "raise":
                raise InvalidActionError(f"action {a} is not valid now; choose one where "
                                         "action_masks() is True")
            valid = np.flatnonzero(self._mask)
            same_pe = valid[valid % P == a % P]
            a = int(same_pe[0] if same_pe.size else valid[0])
        slot, p = divmod(a, P)
        i = self._window_ops[slot]
        t, f, reward = self._place(i, p)
        self._refresh_window()
        info = self._info()
        info.update(op=i, pe=p, start_us=t, finish_us=f, invalid_action=invalid)
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(reward), self._done, False, info

    def place(self, i: int, p: int) -> tuple[float, float, float]:
        """Place ready op ``i`` on PE ``p`` (must be valid: in the window and able to run it) and
        return (start, finish, reward): :meth:`step` without building the observation and info —
        the fast path for search."""
        st = self._static
        if self._done or st is None:
            raise InvalidActionError("the episode has ended; call reset() before place()")
        if i not in self._window_ops or not st.problem.capable[i, p]:
            raise InvalidActionError(f"op {i} is not in the window or cannot run on PE {p}")
        return self._place(i, p)

    def _place(self, i: int, p: int) -> tuple[float, float, float]:
        st = self._static
        assert st is not None
        P = self.n_pes
        d = st.durations[i][p]
        # data-ready time (not before the op's release), with transfers from producers on other PEs
        t = st.release[i]
        for s, c in st.preds[i]:
            r = self._finish[s] + (c if self._assign[s] != p else 0.0)
            t = max(t, r)
        # insertion: earliest gap on PE p at or after t that holds d
        t = earliest_start(self._intervals[p], t, d)
        if d > 0:
            bisect.insort(self._intervals[p], (t, t + d))
        f = t + d
        self._assign[i], self._start[i], self._finish[i] = p, t, f
        self._order.append(i)
        self._pe_free[p] = max(self._pe_free[p], f)
        self._pe_busy[p] += d
        self._pe_count[p] += 1
        self._makespan = max(self._makespan, f)
        new_lb = max(self._lb, f + st.tail[i])
        reward = -(new_lb - self._lb) * self.reward_scale
        self._lb = new_lb
        # ready list and op rows
        del self._ready[bisect.bisect_left(self._ready, (st.priority[i], i))]
        row = self._ops[i]
        row[6], row[7], row[8], row[9] = 1.0, 0.0, t / self._scale, f / self._scale
        row[N_OP_FEATURES_BASE + 2 * P + p] = 1.0
        for j in st.succs[i]:
            self._remaining[j] -= 1
            if self._remaining[j] == 0:
                bisect.insort(self._ready, (st.priority[j], j))
                self._ops[j, 7] = 1.0
        self._done = len(self._order) == st.problem.n_ops
        self._window_ops = [j for _, j in self._ready[:self.window]]
        self._stale = True  # mask and window array: rebuilt when asked for
        return t, f, reward

    def action_masks(self) -> np.ndarray:
        """(window * n_pes,) bool: the valid actions now (for sb3-contrib's MaskablePPO)."""
        if self._stale:
            self._refresh_window()
        return self._mask.copy()

    def render(self) -> Any:
        """ansi: each PE's ops in start order with their times; rgb_array: the Gantt chart
        (human: shown)."""
        if self._static is None:
            return None
        prob = self._static.problem
        if self.render_mode in ("rgb_array", "human"):
            from mlsysgym.envs.render import gantt_figure, output

            jobs = prob.job_of if prob.job_of is not None and np.max(prob.job_of) > 0 else None
            return output(self, gantt_figure(
                prob.pe_names, np.array(self._assign), np.array(self._start),
                np.array(self._finish), f"{prob.name} on {self.platform.name}", jobs))
        if self.render_mode != "ansi":
            return None
        head = (f"{prob.name} on {self.platform.name}: {len(self._order)}/{prob.n_ops} ops, "
                f"makespan so far {self._makespan:.1f} us, lower bound {self._lb:.1f} us")
        lines = [head]
        for p, name in enumerate(prob.pe_names):
            ops = sorted((self._start[i], i) for i in self._order if self._assign[i] == p)
            lines.append(f"{name}: " + ", ".join(
                f"{prob.op_names[i]}[{s:.0f}-{self._finish[i]:.0f}]" for s, i in ops))
        return "\n".join(lines)

    def close(self) -> None:
        from mlsysgym.envs.render import close_window

        close_window(self)
        super().close()

    # ---- results --------------------------------------------------------------------------------
    @property
    def makespan_us(self) -> float:
        """Makespan of the ops placed so far (the final makespan once the episode ends)."""
        return self._makespan

    @property
    def lower_bound_us(self) -> float:
        """The current makespan lower bound ``LB_t``."""
        return self._lb

    @property
    def initial_lower_bound_us(self) -> float:
        """``LB_0``: the constant of the return identity."""
        _ = self.problem  # raises before reset()
        return self._static.lb0  # type: ignore[union-attr]

    def schedule(self) -> Schedule:
        """The schedule built so far (all ops once the episode has ended), with its dispatch order."""
        if self._static is None:
            raise InvalidActionError("call reset() before asking for the schedule")
        if not self._done:
            raise InvalidActionError(f"the episode is not over ({len(self._order)}/"
                                     f"{self._static.problem.n_ops} ops placed)")
        return Schedule(assignment=np.array(self._assign), start_us=np.array(self._start),
                        order=np.array(self._order))

    def get_state(self) -> dict[str, Any]:
        """A snapshot of the episode (for tree search); :meth:`set_state` restores it. The
        snapshot owns copies of everything mutable, so it stays valid after further steps."""
        if self._static is None:
            raise InvalidActionError("call reset() before get_state()")
        return {"static": self._static, "scale": self._scale, "reward_scale": self.reward_scale,
                "assign": self._assign[:], "start": self._start[:], "finish": self._finish[:],
                "remaining": self._remaining[:], "ready": self._ready[:],
                "intervals": [iv[:] for iv in self._intervals], "pe_free": self._pe_free[:],
                "pe_busy": self._pe_busy[:], "pe_count": self._pe_count[:],
                "order": self._order[:], "lb": self._lb, "makespan": self._makespan,
                "ops": self._ops.copy(), "done": self._done}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot (the snapshot stays usable)."""
        self._static, self._scale = state["static"], state["scale"]
        self.reward_scale = state["reward_scale"]
        self._assign, self._start = state["assign"][:], state["start"][:]
        self._finish, self._remaining = state["finish"][:], state["remaining"][:]
        self._ready = state["ready"][:]
        self._intervals = [iv[:] for iv in state["intervals"]]
        self._pe_free, self._pe_busy = state["pe_free"][:], state["pe_busy"][:]
        self._pe_count, self._order = state["pe_count"][:], state["order"][:]
        self._lb, self._makespan, self._done = state["lb"], state["makespan"], state["done"]
        self._ops = state["ops"].copy()
        self._refresh_window()

    def window_ops(self) -> list[int]:
        """Op indices in the window slots now (no padding)."""
        return list(self._window_ops)

    # ---- internals --------------------------------------------------------------------------
    def _refresh_window(self) -> None:
        st = self._static
        assert st is not None
        W, P, N = self.window, self.n_pes, self.max_ops
        self._window_ops = [i for _, i in self._ready[:W]]
        mask = np.zeros((W, P), bool)
        if self._window_ops:
            mask[:len(self._window_ops)] = st.problem.capable[self._window_ops]
        self._mask = mask.reshape(-1)
        self._stale = False
        win = np.full(W, N, np.int64)
        win[:len(self._window_ops)] = self._window_ops
        self._window_arr = win

    def _obs(self) -> dict[str, np.ndarray]:
        st = self._static
        assert st is not None
        n = st.problem.n_ops
        pes = np.stack([np.array(self._pe_free) / self._scale, np.array(self._pe_busy) / self._scale,
                        np.array(self._pe_count) / n], axis=1).astype(np.float32)
        return {
            "ops": self._ops.copy(), "edge_index": st.edge_index.copy(),
            "edge_mask": st.edge_mask.copy(), "edge_comm": st.edge_comm.copy(),
            "op_mask": st.op_mask.copy(), "pes": pes, "window": self._window_arr.copy(),
            "progress": np.array([self._lb / self._scale, len(self._order) / n], np.float32),
        }

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self._mask.copy(), "makespan_us": self._makespan,
                "lower_bound_us": self._lb, "workload": self._static.problem.name}  # type: ignore[union-attr]
