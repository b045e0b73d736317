"""MallocGame-v0: place a model's buffers in fast or slow memory, one buffer per step.

The game of "Optimizing Memory Mapping Using Deep RL" (mallocGame), rebuilt on
:mod:`mlsysgym.simulators.memory`. Buffers come in XLA's memory-space-assignment order
(:func:`~mlsysgym.simulators.memory.xla_order`: most memory-bound first, then larger, then
longer-lived). At each step the agent decides the current buffer:

* action ``0``: leave it in slow memory;
* action ``1 + j`` (``j < n_offsets``): put it in fast memory for its whole live range at the
  j-th candidate offset;
* action ``1 + n_offsets + j`` (only when ``prefetch_window > 0``): prefetch it into fast memory
  at the j-th candidate offset of its (shorter) prefetch residency.

Candidate offsets are the low and high ends of the free address gaps over the buffer's
residency, smallest gap first (candidate 0 is XLA's best fit), so action 1 always means
"best fit". ``action_masks()`` (and ``info["action_mask"]``) marks the feasible actions; slow is
always feasible; a buffer larger than fast memory has every fast action masked.

Reward: the reduction of total execution time the decision brings, divided by
``reward_scale_us`` (default: the all-slow time), so the undiscounted return of an episode is
``(all_slow_time_us - final_time_us) / reward_scale_us`` — the fraction of execution time saved
(``info`` carries both times in µs). A prefetch can cost time (its copy competes for slow
bandwidth), giving a negative reward.

Invalid (masked or out-of-range) actions: with ``invalid_action="slow"`` (default) a masked
action leaves the buffer in slow memory and adds ``-invalid_penalty`` to the reward (so the
return is the saved fraction minus ``invalid_penalty × info["invalid_actions"]``); with
``invalid_action="raise"`` it raises :class:`InvalidActionError`. An action outside the action
space always raises.

``info`` (reset and every step): ``action_mask`` (the next buffer's feasible actions),
``time_us`` (total execution time of the placement so far, undecided buffers slow),
``all_slow_time_us``, ``invalid_actions`` (masked actions taken this episode), ``step``
(buffers decided), ``n_buffers``. ``reset(options={"workload": W})`` switches the model (a zoo
name, ONNX path, Graph — built with this env's capacity, weight, prefetch and machine
arguments — or a MemoryInstance with the same prefetch setting). Episodes last ``n_buffers``
steps (terminated). ``render_mode``: ``"ansi"`` (a line), ``"rgb_array"`` / ``"human"`` (the
memory map, :func:`mlsysgym.envs.render.memory_map_figure`).

Observation (a Dict, every entry in [-1, 1] or [0, 1]):

* ``buffer`` [15]: size / capacity, log-size, start, end, length (÷ ops), memory-boundedness,
  uses, is weight, is produced, prefetchable, gain of FAST now, gain of PREFETCH now,
  largest free gap over its live range and over its prefetch residency (÷ capacity), fits;
* ``interval`` [time_bins]: fraction of each time bin the buffer's live range covers;
* ``occupancy`` [time_bins · address_bins]: fraction of each (ops × addresses) cell in use,
  flattened time-major (reshape to ``(time_bins, address_bins)``);
* ``candidates`` [2 · (n_actions - 1)]: per fast action, its offset and its gap's length
  (÷ capacity), flattened ``[off_0, gap_0, off_1, gap_1, ...]``; zeros when masked;
* ``progress`` [2]: buffers decided / buffers, time saved so far / all-slow time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.actions import InvalidActionError, check_discrete_action
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.memory import (
    FAST,
    PREFETCH,
    SLOW,
    AllocationState,
    MemoryInstance,
    MemorySystem,
    Placement,
    build_instance,
    memory_boundedness,
    placement_to_actions,
    simulate,
    xla_order,
)

N_BUFFER_FEATURES = 15
def resolve_workload(workload: str | Path | Graph) -> Graph:
    """A Graph from an ir.Graph, a zoo name or an ONNX path (weights' data never loaded)."""
    from mlsysgym.ir import zoo

    return zoo.resolve(workload)


def _coverage(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Fraction of each bin ``[edges[i], edges[i+1])`` covered by ``[lo, hi)`` (rows per interval)."""
    lo, hi = np.atleast_1d(lo)[:, None], np.atleast_1d(hi)[:, None]
    ov = np.clip(np.minimum(hi, edges[None, 1:]) - np.maximum(lo, edges[None, :-1]), 0, None)
    return ov / np.diff(edges)[None, :]


class MallocGameEnv(gym.Env):
    """Place a workload's buffers in a fast memory of limited capacity, one per step.

    Args:
        workload: zoo name, ONNX path or ``ir.Graph``.
        capacity_bytes / capacity_fraction: fast-memory size in bytes, or as a fraction of
            the buffers' peak live memory (default 0.25 when neither is given).
        include_weights: weights are buffers too (as in XLA); otherwise they stay in slow memory.
        prefetch_window: k > 0 enables prefetch actions (copy during the k ops before first read).
        n_offsets: candidate offsets per fast mode (the action space is ``Discrete(1 + n_offsets)``,
            ``Discrete(1 + 2·n_offsets)`` with prefetch).
        time_bins, address_bins: resolution of the occupancy map.
        compute_tflops, fast_bandwidth_gbps, slow_bandwidth_gbps: the machine.
        reward_scale_us: divides the time saved (µs); default the all-slow time.
        invalid_action: ``"slow"`` (penalized, default) or ``"raise"``.
        invalid_penalty: subtracted from the reward of a masked action in ``"slow"`` mode.
        render_mode: None or ``"ansi"`` (a one-line summary).
        problem: a prebuilt :class:`MemoryInstance`; when given, the workload, capacity,
            weight, prefetch and machine arguments are ignored.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array", "human"],
                                          "render_fps": 4}

    def __init__(self, workload: str | Path | Graph = "resnet18", *,
                 capacity_bytes: int | None = None, capacity_fraction: float | None = None,
                 include_weights: bool = True, prefetch_window: int = 0, n_offsets: int = 16,
                 time_bins: int = 32, address_bins: int = 32, compute_tflops: float = 16.0,
                 fast_bandwidth_gbps: float = 2000.0, slow_bandwidth_gbps: float = 200.0,
                 reward_scale_us: float | None = None, invalid_action: str = "slow",
                 invalid_penalty: float = 0.01, render_mode: str | None = None,
                 problem: MemoryInstance | None = None) -> None:
        if invalid_action not in ("slow", "raise"):
            raise InvalidActionError(f"invalid_action must be 'slow' or 'raise'; got {invalid_action!r}")
        if n_offsets < 1 or time_bins < 1 or address_bins < 1:
            raise MlsysgymError("n_offsets, time_bins and address_bins must be >= 1")
        from mlsysgym.envs.render import check_render_mode

        check_render_mode(render_mode, self.metadata["render_modes"])
        if capacity_bytes is None and capacity_fraction is None:
            capacity_fraction = 0.25
        self._build_args = {
            "capacity_bytes": capacity_bytes, "capacity_fraction": capacity_fraction,
            "include_weights": include_weights, "prefetch_window": prefetch_window,
            "system": MemorySystem(compute_tflops, fast_bandwidth_gbps, slow_bandwidth_gbps)}
        self._given_scale = reward_scale_us
        if problem is None:
            problem = build_instance(resolve_workload(workload), **self._build_args)
        self.problem = problem
        self.order = xla_order(problem)
        self._order_list = [int(b) for b in self.order]
        self.n_buffers = problem.n_buffers
        self.n_offsets = int(n_offsets)
        self.prefetch = problem.prefetch_window > 0
        self.invalid_action = invalid_action
        self.invalid_penalty = float(invalid_penalty)
        self.render_mode = render_mode
        self.all_slow_time_us = problem.all_slow_time_us
        self.reward_scale_us = float(reward_scale_us or self.all_slow_time_us)
        if not self.reward_scale_us > 0:
            raise MlsysgymError(f"reward_scale_us must be > 0; got {reward_scale_us}")

        n_act = 1 + self.n_offsets * (2 if self.prefetch else 1)
        self.action_space = spaces.Discrete(n_act)
        self.observation_space = spaces.Dict({
            "buffer": spaces.Box(-1.0, 1.0, (N_BUFFER_FEATURES,), np.float32),
            "interval": spaces.Box(0.0, 1.0, (time_bins,), np.float32),
            "occupancy": spaces.Box(0.0, 1.0, (time_bins * address_bins,), np.float32),
            "candidates": spaces.Box(0.0, 1.0, (2 * (n_act - 1),), np.float32),
            "progress": spaces.Box(0.0, 1.0, (2,), np.float32),
        })
        self._precompute(time_bins, address_bins)
        self.state = AllocationState(problem)
        self._step = 0
        self._invalid = 0
        self._cand: list[np.ndarray] = []

    # ---- static features ------------------------------------------------------------
    def _precompute(self, time_bins: int, address_bins: int) -> None:
        p = self.problem
        n_ops, cap = p.n_ops, p.capacity_bytes
        self._t_edges = np.linspace(0.0, n_ops, time_bins + 1)
        self._a_edges = np.linspace(0.0, cap, address_bins + 1)
        self._cov_fast = _coverage(p.start, p.end + 1, self._t_edges).astype(np.float32)
        pf = np.where(p.pf_start >= 0, p.pf_start, p.start)
        self._cov_pf = _coverage(pf, p.end + 1, self._t_edges).astype(np.float32)
        self._cell_bytes = float(cap) / address_bins
        bnd = memory_boundedness(p)
        uses = np.diff(p.use_ptr)
        static = np.zeros((p.n_buffers, N_BUFFER_FEATURES), np.float32)
        static[:, 0] = np.minimum(p.size / cap, 1.0)
        static[:, 1] = np.log2(p.size) / max(np.log2(p.size.max()), 1.0)
        static[:, 2] = p.start / n_ops
        static[:, 3] = p.end / n_ops
        static[:, 4] = (p.end - p.start + 1) / n_ops
        static[:, 5] = bnd / max(np.abs(bnd).max(), 1e-30)
        static[:, 6] = uses / max(uses.max(), 1)
        static[:, 7] = p.is_weight
        static[:, 8] = p.produced
        static[:, 9] = p.prefetchable
        static[:, 14] = p.size <= cap
        self._static = static
        save = np.add.reduceat(p.use_save_us, p.use_ptr[:-1]) if p.use_save_us.size else np.zeros(1)
        self._gain_norm = float(max(save.max(initial=0.0), 1e-30))

    # ---- gym API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"workload": W}`` switches the model first."""
        super().reset(seed=seed)
        if options and options.get("workload") is not None:
            self._set_problem(options["workload"])
        self.state.reset()
        self._step = 0
        self._invalid = 0
        self._occ = np.zeros((len(self._t_edges) - 1, len(self._a_edges) - 1), np.float32)
        self._refresh()
        if self.render_mode == "human":
            self.render()
        return self._obs(), self._info()

    def _set_problem(self, workload: str | Path | Graph | MemoryInstance) -> None:
        """Play ``workload`` from now on (same spaces: offsets, bins and prefetch setting)."""
        p = workload if isinstance(workload, MemoryInstance) else \
            build_instance(resolve_workload(workload), **self._build_args)
        if (p.prefetch_window > 0) != self.prefetch:
            raise MlsysgymError(f"problem {p.name!r} has prefetch_window={p.prefetch_window}; "
                                f"this env's action space needs "
                                f"{'a prefetch window' if self.prefetch else 'none'}")
        self.problem, self.order = p, xla_order(p)
        self._order_list = [int(b) for b in self.order]
        self.n_buffers, self.all_slow_time_us = p.n_buffers, p.all_slow_time_us
        self.reward_scale_us = float(self._given_scale or self.all_slow_time_us)
        self._precompute(len(self._t_edges) - 1, len(self._a_edges) - 1)
        self.state = AllocationState(p)

    @property
    def current_buffer(self) -> int | None:
        """Problem index of the buffer to decide now (None once the episode is over)."""
        return self._order_list[self._step] if self._step < self.n_buffers else None

    def _refresh(self) -> None:
        """Candidates, largest free gaps and the gain of each fast mode for the current buffer."""
        b = self.current_buffer
        self._cand, self._cand_len, self._largest, self._gain = [], [], [0, 0], [0.0, 0.0]
        if b is None:
            return
        for i, m in enumerate((FAST, PREFETCH) if self.prefetch else (FAST,)):
            offs, lens, largest = self.state.candidates_and_gaps(b, m, self.n_offsets)
            self._cand.append(offs)
            self._cand_len.append(lens)
            self._largest[i] = largest
            if offs.size:
                self._gain[i] = -self.state.delta_time(b, m)

    def action_masks(self) -> np.ndarray:
        """Feasible actions for the current buffer (slow is always feasible)."""
        mask = np.zeros(self.action_space.n, bool)
        mask[0] = True
        for i, offs in enumerate(self._cand):
            mask[1 + i * self.n_offsets: 1 + i * self.n_offsets + offs.size] = True
        return mask

    def decode(self, action: int) -> tuple[int, int]:
        """(mode, offset) of ``action`` for the current buffer; offset -1 when infeasible/slow."""
        if action == 0:
            return SLOW, -1
        mode, j = divmod(action - 1, self.n_offsets)
        offs = self._cand[mode] if mode < len(self._cand) else np.zeros(0)
        return (FAST if mode == 0 else PREFETCH), (int(offs[j]) if j < offs.size else -1)

    def step(self, action: int):
        if self.current_buffer is None:
            raise InvalidActionError("episode is over; call reset()")
        a = check_discrete_action(action, int(self.action_space.n))
        b = self.current_buffer
        mode, offset = self.decode(a)
        reward = 0.0
        if mode != SLOW and offset < 0:
            if self.invalid_action == "raise":
                raise InvalidActionError(
                    f"action {a} is masked for buffer {self.problem.buffer_names[b]!r}; "
                    "use action_masks()")
            self._invalid += 1
            reward -= self.invalid_penalty
        elif mode != SLOW:
            delta = self.state.place(b, mode, offset)
            reward -= delta / self.reward_scale_us
            self._paint(b, mode, offset)
        self._step += 1
        self._refresh()
        terminated = self.current_buffer is None
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(reward), terminated, False, self._info()

    def _paint(self, b: int, mode: int, offset: int) -> None:
        size = float(self.problem.size[b])
        t = self._cov_pf[b] if mode == PREFETCH else self._cov_fast[b]
        e = self._a_edges
        a = np.minimum(offset + size, e[1:]) - np.maximum(offset, e[:-1])
        np.maximum(a, 0.0, out=a)
        a *= 1.0 / (e[1] - e[0])
        self._occ += t[:, None] * a[None, :].astype(np.float32)
        np.minimum(self._occ, 1.0, out=self._occ)

    def _obs(self) -> dict[str, np.ndarray]:
        cap = float(self.problem.capacity_bytes)
        cand = np.zeros((self.action_space.n - 1, 2), np.float32)
        b = self.current_buffer
        if b is None:
            feat = np.zeros(N_BUFFER_FEATURES, np.float32)
            interval = np.zeros(len(self._t_edges) - 1, np.float32)
        else:
            feat = self._static[b].copy()
            for i, (offs, lens) in enumerate(zip(self._cand, self._cand_len)):
                r = slice(i * self.n_offsets, i * self.n_offsets + offs.size)
                cand[r, 0] = offs / cap
                cand[r, 1] = lens / cap
            g = np.array(self._gain) / self._gain_norm
            feat[10:12] = np.minimum(np.maximum(g, -1.0), 1.0)
            feat[12:14] = np.minimum(np.array(self._largest) / cap, 1.0)
            interval = self._cov_fast[b].copy()
        saved = (self.all_slow_time_us - self.state.total_us) / self.all_slow_time_us
        progress = np.array([self._step / self.n_buffers, min(max(saved, 0.0), 1.0)], np.float32)
        return {"buffer": feat, "interval": interval, "occupancy": self._occ.flatten(),
                "candidates": np.minimum(cand, 1.0).ravel(), "progress": progress}

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self.action_masks(), "time_us": self.state.total_us,
                "all_slow_time_us": self.all_slow_time_us, "invalid_actions": self._invalid,
                "step": self._step, "n_buffers": self.n_buffers}

    def render(self) -> Any:
        """``ansi``: a one-line summary; ``rgb_array``: the memory map (``human``: shown)."""
        if self.render_mode in ("rgb_array", "human"):
            from mlsysgym.envs.render import memory_map_figure, output

            s = self.state
            return output(self, memory_map_figure(self.problem, s.mode, s.offset, self._step,
                                                  s.total_us, self.problem.name))
        if self.render_mode != "ansi":
            return None
        s = self.state
        return (f"{self.problem.name}: {self._step}/{self.n_buffers} buffers, "
                f"{int((s.mode == FAST).sum())} fast, {int((s.mode == PREFETCH).sum())} prefetched, "
                f"time {s.total_us:.3f} us (all-slow {self.all_slow_time_us:.3f} us)")

    def close(self) -> None:
        from mlsysgym.envs.render import close_window

        close_window(self)
        super().close()

    # ---- snapshots (tree search) ------------------------------------------------------------
    _STATE_ARRAYS: ClassVar[tuple[str, ...]] = ("mode", "offset", "mem_us", "time_us",
                                                "_rs", "_re", "_lo", "_hi")

    def get_state(self) -> dict[str, Any]:
        """A snapshot of the episode so far (copies; restore it with :meth:`set_state`)."""
        s = self.state
        snap: dict[str, Any] = {k: getattr(s, k).copy() for k in self._STATE_ARRAYS}
        snap.update(total_us=s.total_us, k=s._k, step=self._step, invalid=self._invalid,
                    occ=self._occ.copy())
        return snap

    def set_state(self, state: dict[str, Any]) -> None:
        """Return to a snapshot taken by :meth:`get_state` on this env (the snapshot is not consumed)."""
        s = self.state
        for k in self._STATE_ARRAYS:
            getattr(s, k)[...] = state[k]
        s.total_us, s._k = state["total_us"], state["k"]
        self._step, self._invalid = state["step"], state["invalid"]
        self._occ = state["occ"].copy()
        self._refresh()

    # ---- replay ---------------------------------------------------------------------------
    @property
    def placement(self) -> Placement:
        """The placement decided so far (undecided buffers slow)."""
        return self.state.placement

    def actions_for(self, placement: Placement) -> list[int]:
        """The action sequence that replays ``placement`` in this env (NotReplayableError if not)."""
        return placement_to_actions(self.problem, placement, self.order, self.n_offsets)

    def final_time_us(self) -> float:
        """Total time of the current placement, recomputed by the simulator from scratch."""
        return simulate(self.problem, self.placement, check=False).total_time_us
