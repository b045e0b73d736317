"""Memory execution model: a graph's buffers placed in a small fast memory or a large slow one.

The machine has a compute throughput (``compute_tflops``), a fast scratchpad of
``capacity_bytes`` (bandwidth ``fast_bandwidth_gbps``) and a slow HBM (``slow_bandwidth_gbps``).
The graph's ops run one after another in their fixed (topological) order. Op ``i`` takes

    time_i = max(compute_i, memory_i),   compute_i = flops_i / throughput,
    memory_i = Σ over operand occurrences (inputs + outputs) of bytes / bandwidth(where it lives)

Buffers
    Every tensor with a live range and a size: graph inputs, activations, graph outputs and —
    when ``include_weights`` (the default, as in XLA's memory-space assignment, which places
    parameters too) — the float weights. Excluded weights always live in slow memory (a
    constant memory term); integer shape constants are ignored (the host reads them).
    A buffer is live from the op that writes it to its last reader (inclusive); inputs and
    weights from op 0, graph outputs to the last op (``ir.Graph.live_ranges``).

Placement (per buffer, a *mode* and an *offset*)
    * ``SLOW``: in slow memory for its whole life.
    * ``FAST``: at ``[offset, offset + size)`` of fast memory for its whole live range, so every
      use is at fast bandwidth. A buffer nobody produces (input, weight) placed ``FAST`` is
      assumed preloaded before the run (e.g. weights pinned in the scratchpad across runs).
    * ``PREFETCH`` (only when ``prefetch_window`` k > 0): the buffer starts in slow memory and
      is copied asynchronously into fast memory during the k ops before its first read
      (``window = [max(lo, u - k), u - 1]``, ``u`` = first read, ``lo`` = 0 for unproduced
      buffers and producer + 1 otherwise; no window → not prefetchable). It occupies fast memory
      from the window's first op to the end of its live range; its producer writes it at slow
      bandwidth, its reads from ``u`` on are at fast bandwidth. The copy's cost is modelled
      simply: its bytes are spread evenly over the window ops, each of which pays
      ``(size / |window|) / slow_bandwidth`` more memory time (the copy runs beside the ops
      but competes for slow-memory bandwidth).
    No two fast buffers whose residencies overlap in time may overlap in address, and every
    fast buffer must lie within ``[0, capacity_bytes)``.

Times are in microseconds (``*_us``), sizes in bytes. Everything per-op is NumPy arrays;
:class:`AllocationState` updates the total incrementally, touching only the ops a buffer uses.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.graph import Graph, Role

SLOW, FAST, PREFETCH = 0, 1, 2
MODE_NAMES = ("slow", "fast", "prefetch")
_INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8", "bool")


# ---- errors -----------------------------------------------------------------------------
class MemoryModelError(MlsysgymError):
    """Bad input to the memory execution model."""


class CapacityError(MemoryModelError):
    """A fast-memory capacity that is missing, non-positive or given twice."""


class NoBuffersError(MemoryModelError):
    """A graph with no buffer that could be placed in fast memory."""


class PlacementError(MemoryModelError):
    """A placement that is malformed, overlaps, or does not fit in fast memory."""


class NotReplayableError(PlacementError):
    """A placement whose offsets are not among the env's candidate offsets in its buffer order."""


# ---- the machine and the problem ---------------------------------------------------------
@dataclass(frozen=True)
class MemorySystem:
    """The accelerator: compute throughput and the two memories' bandwidths.

    Defaults: a 16 TFLOP/s core, a 2 TB/s scratchpad and 200 GB/s HBM, so that elementwise ops
    are memory-bound everywhere and convolutions are compute-bound once their operands are fast.
    """

    compute_tflops: float = 16.0
    fast_bandwidth_gbps: float = 2000.0
    slow_bandwidth_gbps: float = 200.0

    def __post_init__(self) -> None:
        for name in ("compute_tflops", "fast_bandwidth_gbps", "slow_bandwidth_gbps"):
            if not getattr(self, name) > 0:
                raise MemoryModelError(f"{name} must be > 0; got {getattr(self, name)}")

    def compute_us(self, flops: np.ndarray) -> np.ndarray:
        """Compute time of ``flops`` in µs."""
        return np.asarray(flops, np.float64) / (self.compute_tflops * 1e6)

    def slow_us(self, nbytes: np.ndarray | float) -> np.ndarray:
        """Time to move ``nbytes`` to or from slow memory, in µs."""
        return np.asarray(nbytes, np.float64) / (self.slow_bandwidth_gbps * 1e3)

    def fast_us(self, nbytes: np.ndarray | float) -> np.ndarray:
        """Time to move ``nbytes`` to or from fast memory, in µs."""
        return np.asarray(nbytes, np.float64) / (self.fast_bandwidth_gbps * 1e3)


@dataclass(frozen=True, eq=False)
class MemoryInstance:
    """A graph turned into arrays: buffers, their uses per op, compute and all-slow memory times.

    Buffer ``b`` is used at ops ``use_op[use_ptr[b]:use_ptr[b+1]]``; moving it to fast memory
    saves ``use_save_us`` there (``pf_save_us`` when prefetched). Its prefetch copy costs
    ``win_cost_us`` at ops ``win_op[win_ptr[b]:win_ptr[b+1]]``.
    """

    name: str
    system: MemorySystem
    capacity_bytes: int
    prefetch_window: int
    include_weights: bool
    op_names: tuple[str, ...]
    compute_us: np.ndarray        # [n_ops]
    mem_slow_us: np.ndarray       # [n_ops] memory time with every buffer in slow memory
    buffer_names: tuple[str, ...]
    size: np.ndarray              # [n] bytes
    start: np.ndarray             # [n] live-range start (op index)
    end: np.ndarray               # [n] live-range end, inclusive
    is_weight: np.ndarray         # [n] bool
    produced: np.ndarray          # [n] bool: written by an op of the graph
    first_read: np.ndarray        # [n] first op reading it, -1 if never read
    pf_start: np.ndarray          # [n] first op of the prefetch window (= fast residency start), -1: none
    use_ptr: np.ndarray           # [n+1]
    use_op: np.ndarray            # [n_uses]
    use_save_us: np.ndarray       # [n_uses] time saved at that op when the buffer is FAST
    pf_save_us: np.ndarray        # [n_uses] time saved at that op when the buffer is PREFETCHed
    win_ptr: np.ndarray           # [n+1]
    win_op: np.ndarray            # [n_win]
    win_cost_us: np.ndarray       # [n_win] copy cost added at that op when PREFETCHed
    peak_live_bytes: int          # max bytes of buffers live at once
    extra: dict = field(default_factory=dict)

    @property
    def n_ops(self) -> int:
        return len(self.op_names)

    @property
    def n_buffers(self) -> int:
        return len(self.buffer_names)

    @property
    def prefetchable(self) -> np.ndarray:
        """Which buffers may be placed with ``PREFETCH``."""
        return self.pf_start >= 0

    def residency(self, mode: int | np.ndarray) -> np.ndarray:
        """First op of fast residency per buffer under ``mode`` (scalar or per buffer)."""
        mode = np.broadcast_to(np.asarray(mode), self.start.shape)
        return np.where(mode == PREFETCH, self.pf_start, self.start)

    def index(self, buffer: str) -> int:
        """Index of the buffer called ``buffer``."""
        idx = self.extra.setdefault("_index", {n: i for i, n in enumerate(self.buffer_names)})
        try:
            return idx[buffer]
        except KeyError:
            raise PlacementError(f"no buffer named {buffer!r} in problem {self.name!r}") from None

    @property
    def all_slow_time_us(self) -> float:
        """Total execution time with every buffer in slow memory."""
        return float(np.maximum(self.compute_us, self.mem_slow_us).sum())


def _resolve_capacity(peak: int, capacity_bytes: int | None, capacity_fraction: float | None) -> int:
    if capacity_bytes is not None and capacity_fraction is not None:
        raise CapacityError("give capacity_bytes or capacity_fraction, not both")
    if capacity_bytes is None and capacity_fraction is None:
        raise CapacityError("give a fast-memory capacity: capacity_bytes=... or capacity_fraction=...")
    if capacity_fraction is not None:
        if not capacity_fraction > 0:
            raise CapacityError(f"capacity_fraction must be > 0 (of peak live memory); got {capacity_fraction}")
        capacity_bytes = int(capacity_fraction * peak)
    if int(capacity_bytes) <= 0:
        raise CapacityError(f"fast-memory capacity must be > 0 bytes; got {capacity_bytes}")
    return int(capacity_bytes)


def build_instance(graph: Graph, *, capacity_bytes: int | None = None,
                  capacity_fraction: float | None = None, system: MemorySystem | None = None,
                  include_weights: bool = True, prefetch_window: int = 0) -> MemoryInstance:
    """The placement problem of ``graph`` on ``system`` with a fast memory of the given capacity.

    ``capacity_fraction`` is relative to the peak live memory of the buffers (weights included
    when ``include_weights``). ``prefetch_window`` k > 0 enables ``PREFETCH`` k ops ahead.
    """
    system = system or MemorySystem()
    if prefetch_window < 0:
        raise MemoryModelError(f"prefetch_window must be >= 0 ops; got {prefetch_window}")
    n_ops = len(graph.ops)
    if n_ops == 0:
        raise NoBuffersError(f"graph {graph.name!r} has no ops, so nothing to place")

    def is_param_const(name: str) -> bool:
        t = graph.tensors.get(name)
        return t is not None and t.role is Role.WEIGHT and t.dtype in _INT_DTYPES

    ranges = [r for r in graph.live_ranges(include_weights=include_weights)
              if r.nbytes > 0 and not is_param_const(r.tensor)]
    if not ranges:
        raise NoBuffersError(
            f"graph {graph.name!r} has no buffer of known non-zero size to place; "
            "check its shapes (or set include_weights=True)")
    names = tuple(r.tensor for r in ranges)
    index = {n: i for i, n in enumerate(names)}
    size = np.array([r.nbytes for r in ranges], np.int64)
    start = np.array([r.start for r in ranges], np.int64)
    end = np.array([r.end for r in ranges], np.int64)
    n = len(names)

    flops = np.array([op.flops for op in graph.ops], np.float64)
    const_bytes = np.zeros(n_ops, np.float64)     # operands that are not buffers: always slow
    use_bytes: dict[tuple[int, int], int] = defaultdict(int)
    produced = np.zeros(n, bool)
    first_read = np.full(n, -1, np.int64)
    for i, op in enumerate(graph.ops):
        for t, is_out in [(t, False) for t in op.inputs] + [(t, True) for t in op.outputs]:
            if not t:
                continue
            b = index.get(t)
            if b is None:
                tensor = graph.tensors.get(t)
                if tensor is not None and not is_param_const(t):
                    const_bytes[i] += tensor.nbytes
                continue
            use_bytes[(b, i)] += int(size[b])
            if is_out:
                produced[b] = True
            elif first_read[b] < 0:
                first_read[b] = i

    keys = sorted(use_bytes)
    use_buf = np.array([k[0] for k in keys], np.int64)
    use_op = np.array([k[1] for k in keys], np.int64)
    nbytes = np.array([use_bytes[k] for k in keys], np.float64)
    use_ptr = np.searchsorted(use_buf, np.arange(n + 1)).astype(np.int64)
    save = system.slow_us(nbytes) - system.fast_us(nbytes)

    # prefetch windows
    k = int(prefetch_window)
    lo = np.where(produced, start + 1, 0)
    pf_start = np.maximum(lo, first_read - k)
    ok = (k > 0) & (first_read >= 0) & (pf_start <= first_read - 1)
    pf_start = np.where(ok, pf_start, -1)
    pf_save = np.where(use_op >= np.repeat(np.where(ok, first_read, np.iinfo(np.int64).max),
                                           np.diff(use_ptr)), save, 0.0)
    win_len = np.where(ok, first_read - pf_start, 0)
    win_ptr = np.concatenate([[0], np.cumsum(win_len)]).astype(np.int64)
    win_buf = np.repeat(np.arange(n), win_len)
    win_op = (np.arange(win_ptr[-1]) - win_ptr[win_buf] + pf_start[win_buf]).astype(np.int64)
    win_cost = system.slow_us(size[win_buf] / np.maximum(win_len[win_buf], 1))

    mem_slow = system.slow_us(const_bytes) + np.bincount(
        use_op, weights=system.slow_us(nbytes), minlength=n_ops)
    diff = np.zeros(n_ops + 1, np.int64)
    np.add.at(diff, start, size)
    np.add.at(diff, end + 1, -size)
    peak = int(np.cumsum(diff)[:-1].max())
    cap = _resolve_capacity(peak, capacity_bytes, capacity_fraction)

    is_weight = np.array([graph.tensors[nm].role is Role.WEIGHT for nm in names], bool)
    return MemoryInstance(
        name=graph.name, system=system, capacity_bytes=cap, prefetch_window=k,
        include_weights=include_weights, op_names=tuple(op.name for op in graph.ops),
        compute_us=system.compute_us(flops), mem_slow_us=mem_slow, buffer_names=names,
        size=size, start=start, end=end, is_weight=is_weight, produced=produced,
        first_read=first_read, pf_start=pf_start.astype(np.int64), use_ptr=use_ptr,
        use_op=use_op, use_save_us=save, pf_save_us=pf_save, win_ptr=win_ptr, win_op=win_op,
        win_cost_us=win_cost, peak_live_bytes=peak)


def with_capacity(problem: MemoryInstance, capacity_bytes: int) -> MemoryInstance:
    """The same problem with another fast-memory capacity."""
    from dataclasses import replace

    return replace(problem, capacity_bytes=_resolve_capacity(problem.peak_live_bytes,
                                                             capacity_bytes, None), extra={})


# ---- placements and their simulation ------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Placement:
    """Per buffer (problem order): ``mode`` SLOW/FAST/PREFETCH and fast-memory ``offset`` (-1 if slow)."""

    mode: np.ndarray    # [n] int8
    offset: np.ndarray  # [n] int64

    @classmethod
    def all_slow(cls, problem: MemoryInstance) -> Placement:
        n = problem.n_buffers
        return cls(np.zeros(n, np.int8), np.full(n, -1, np.int64))

    @classmethod
    def from_dict(cls, problem: MemoryInstance, fast: dict[str, int | tuple[str, int]]) -> Placement:
        """From ``{buffer: offset}`` (FAST) or ``{buffer: ("prefetch", offset)}``; others SLOW."""
        p = cls.all_slow(problem)
        for name, v in fast.items():
            b = problem.index(name)
            mode, off = (v if isinstance(v, tuple) else ("fast", v))
            if mode not in MODE_NAMES[1:]:
                raise PlacementError(f"mode of {name!r} must be 'fast' or 'prefetch'; got {mode!r}")
            p.mode[b] = MODE_NAMES.index(mode)
            p.offset[b] = int(off)
        return p

    def to_dict(self, problem: MemoryInstance) -> dict[str, tuple[str, int]]:
        """``{buffer: (mode, offset)}`` for the buffers in fast memory."""
        return {problem.buffer_names[b]: (MODE_NAMES[int(self.mode[b])], int(self.offset[b]))
                for b in np.flatnonzero(self.mode != SLOW)}

    def same_as(self, other: Placement) -> bool:
        return bool(np.array_equal(self.mode, other.mode) and np.array_equal(
            np.where(self.mode != SLOW, self.offset, -1), np.where(other.mode != SLOW, other.offset, -1)))


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Execution of a placement: total and per-op time, fast-memory peaks, and violations found."""

    total_time_us: float
    op_time_us: np.ndarray
    op_memory_us: np.ndarray
    compute_us: np.ndarray
    fast_peak_bytes: int          # highest fast-memory address in use at any op
    fast_live_peak_bytes: int     # most bytes resident in fast memory at any op
    n_fast: int
    n_prefetch: int
    violations: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.violations


def memory_time(problem: MemoryInstance, mode: np.ndarray) -> np.ndarray:
    """Per-op memory time (µs) for per-buffer ``mode``: all-slow time minus savings plus copies."""
    mode = np.asarray(mode)
    counts = np.diff(problem.use_ptr)
    umode = np.repeat(mode, counts)
    saved = np.where(umode == FAST, problem.use_save_us,
                     np.where(umode == PREFETCH, problem.pf_save_us, 0.0))
    wmode = np.repeat(mode, np.diff(problem.win_ptr))
    copies = np.where(wmode == PREFETCH, problem.win_cost_us, 0.0)
    return (problem.mem_slow_us - np.bincount(problem.use_op, saved, problem.n_ops)
            + np.bincount(problem.win_op, copies, problem.n_ops))


def violations(problem: MemoryInstance, placement: Placement, limit: int = 20) -> list[str]:
    """What is wrong with ``placement`` (at most ``limit`` messages; empty when valid)."""
    n = problem.n_buffers
    mode, off = np.asarray(placement.mode), np.asarray(placement.offset)
    if mode.shape != (n,) or off.shape != (n,):
        return [(f"placement must have {n} entries (one per buffer); got mode {mode.shape}, "
                f"offset {off.shape}")]
    out: list[str] = []
    names = problem.buffer_names
    bad_mode = np.flatnonzero((mode < SLOW) | (mode > PREFETCH))
    out += [f"buffer {names[b]!r} has unknown mode {mode[b]}" for b in bad_mode[:limit]]
    bad_pf = np.flatnonzero((mode == PREFETCH) & ~problem.prefetchable)
    out += [f"buffer {names[b]!r} cannot be prefetched (prefetch_window="
            f"{problem.prefetch_window}, no op between its producer and first read)"
            for b in bad_pf[:limit]]
    fast = np.flatnonzero((mode == FAST) | ((mode == PREFETCH) & problem.prefetchable))
    lo, hi = off[fast], off[fast] + problem.size[fast]
    cap = problem.capacity_bytes
    for j in np.flatnonzero((lo < 0) | (hi > cap))[:limit]:
        b = fast[j]
        out.append(f"buffer {names[b]!r} at [{lo[j]}, {hi[j]}) lies outside fast memory "
                   f"[0, {cap})")
    rs = problem.residency(mode)[fast]
    re = problem.end[fast]
    for c0 in range(0, len(fast), 1024):   # pairwise, chunked: i < j overlap in time and address
        sl = slice(c0, c0 + 1024)
        t_ov = (rs[sl, None] <= re[None, :]) & (rs[None, :] <= re[sl, None])
        a_ov = (lo[sl, None] < hi[None, :]) & (lo[None, :] < hi[sl, None])
        ii, jj = np.nonzero(np.triu(t_ov & a_ov, k=c0 + 1))
        for i, j in zip(ii + c0, jj):
            if len(out) >= limit:
                return out
            a, b = fast[i], fast[j]
            out.append(f"buffers {names[a]!r} [{lo[i]}, {hi[i]}) and {names[b]!r} "
                       f"[{lo[j]}, {hi[j]}) overlap in fast memory during ops "
                       f"{max(rs[i], rs[j])}..{min(re[i], re[j])}")
    return out[:limit]


def validate(problem: MemoryInstance, placement: Placement) -> None:
    """Raise :class:`PlacementError` (first violation and the count) if ``placement`` is invalid."""
    v = violations(problem, placement, limit=1000)
    if v:
        more = f" (and {len(v) - 1} more violations)" if len(v) > 1 else ""
        raise PlacementError(v[0] + more)


def simulate(problem: MemoryInstance, placement: Placement, check: bool = True) -> SimulationResult:
    """Execute the graph under ``placement``; ``check`` lists violations (never raises for them)."""
    v = tuple(violations(problem, placement)) if check else ()
    if v and v[0].startswith("placement must have"):
        raise PlacementError(v[0])
    mode = np.asarray(placement.mode)
    mem = memory_time(problem, mode)
    t = np.maximum(problem.compute_us, mem)
    fast = np.flatnonzero(mode != SLOW)
    rs, re = problem.residency(mode)[fast], problem.end[fast]
    rs = np.where(rs < 0, problem.start[fast], rs)  # an (invalid) prefetch of an unprefetchable buffer
    sizes = problem.size[fast]
    top = np.zeros(problem.n_ops, np.int64)
    for s, e, h in zip(rs, re, np.asarray(placement.offset)[fast] + sizes):
        np.maximum(top[s:e + 1], h, out=top[s:e + 1])
    diff = np.zeros(problem.n_ops + 1, np.int64)
    np.add.at(diff, rs, sizes)
    np.add.at(diff, re + 1, -sizes)
    live = np.cumsum(diff)[:-1]
    return SimulationResult(
        total_time_us=float(t.sum()), op_time_us=t, op_memory_us=mem,
        compute_us=problem.compute_us, fast_peak_bytes=int(top.max(initial=0)),
        fast_live_peak_bytes=int(live.max(initial=0)), n_fast=int((mode == FAST).sum()),
        n_prefetch=int((mode == PREFETCH).sum()), violations=v)


# ---- XLA-style ordering -----------------------------------------------------------------
def memory_boundedness(problem: MemoryInstance) -> np.ndarray:
    """Per buffer: Σ over its uses of the time saved at that op by moving it alone to fast memory
    (capped at the op's memory-over-compute slack, so negative when the op is compute-bound),
    divided by √size — XLA's memory-boundedness with the all-slow state as reference."""
    slack = problem.mem_slow_us - problem.compute_us
    per_use = np.minimum(problem.use_save_us, slack[problem.use_op])
    total = np.add.reduceat(per_use, problem.use_ptr[:-1]) if per_use.size else np.zeros(0)
    total = np.where(np.diff(problem.use_ptr) > 0, total, 0.0)
    return total / np.sqrt(problem.size)


def xla_order(problem: MemoryInstance) -> np.ndarray:
    """Buffer indices sorted like XLA's memory-space assignment: most memory-bound first, then
    larger, then longer-lived, then earlier last use, earlier start, lower index."""
    benefit = memory_boundedness(problem)
    length = problem.end - problem.start
    idx = np.arange(problem.n_buffers)
    return np.lexsort((idx, problem.start, problem.end, -length, -problem.size, -benefit))


# ---- incremental allocation state (shared by the env and the heuristics) --------------------
def free_gaps(lo: np.ndarray, hi: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Free address intervals ``[gap_lo, gap_hi)`` of ``[0, capacity)`` not covered by ``[lo, hi)``."""
    if lo.size == 0:
        return np.array([0], np.int64), np.array([capacity], np.int64)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    g_lo = np.concatenate([[0], reach])
    g_hi = np.concatenate([lo, [capacity]])
    keep = g_hi > g_lo
    return g_lo[keep], g_hi[keep]


def candidate_offsets(gap_lo: np.ndarray, gap_hi: np.ndarray, size: int,
                      n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` feasible offsets for a buffer of ``size`` bytes, best fit first.

    Every free gap that fits offers its low end and (if different) its high end ``gap_hi - size``;
    gaps are ranked by length (smallest first, i.e. best fit), then by address. Returns the
    offsets and the length of the gap each comes from.
    """
    length = gap_hi - gap_lo
    fit = np.flatnonzero(length >= size)
    if fit.size == 0 or n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if fit.size > 1:
        fit = fit[np.lexsort((gap_lo[fit], length[fit]))][:n]
    offs = np.empty(2 * fit.size, np.int64)
    offs[0::2] = gap_lo[fit]
    offs[1::2] = gap_hi[fit] - size
    lens = np.repeat(length[fit], 2)
    keep = np.ones(offs.size, bool)
    keep[1::2] = offs[1::2] != offs[0::2]
    return offs[keep][:n], lens[keep][:n]


class AllocationState:
    """A placement under construction: buffers decided one at a time, time kept incrementally.

    ``place(b, mode, offset)`` updates only the ops buffer ``b`` uses (and its prefetch window).
    """

    def __init__(self, problem: MemoryInstance) -> None:
        self.problem = problem
        self.reset()

    def reset(self) -> None:
        p = self.problem
        n = p.n_buffers
        self.mode = np.zeros(n, np.int8)
        self.offset = np.full(n, -1, np.int64)
        self.mem_us = p.mem_slow_us.copy()
        self.time_us = np.maximum(p.compute_us, self.mem_us)
        self.total_us = float(self.time_us.sum())
        self._rs = np.empty(n, np.int64)   # residencies of placed fast buffers
        self._re = np.empty(n, np.int64)
        self._lo = np.empty(n, np.int64)
        self._hi = np.empty(n, np.int64)
        self._k = 0

    @property
    def placement(self) -> Placement:
        return Placement(self.mode.copy(), self.offset.copy())

    def interval(self, b: int, mode: int) -> tuple[int, int]:
        """Ops ``[first, last]`` during which buffer ``b`` occupies fast memory under ``mode``."""
        p = self.problem
        return int(p.pf_start[b] if mode == PREFETCH else p.start[b]), int(p.end[b])

    def gaps(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Free fast-memory address intervals throughout ops ``[first, last]``."""
        k = self._k
        hit = (self._rs[:k] <= last) & (self._re[:k] >= first)
        return free_gaps(self._lo[:k][hit], self._hi[:k][hit], self.problem.capacity_bytes)

    def can_use(self, b: int, mode: int) -> bool:
        p = self.problem
        if mode == PREFETCH:
            return bool(p.pf_start[b] >= 0) and p.size[b] <= p.capacity_bytes
        return mode == SLOW or p.size[b] <= p.capacity_bytes

    def candidates(self, b: int, mode: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` feasible offsets (best fit first) for buffer ``b`` under FAST/PREFETCH."""
        return self.candidates_and_gaps(b, mode, n)[:2]

    def candidates_and_gaps(self, b: int, mode: int,
                            n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """:meth:`candidates` and the largest free gap (bytes) over the buffer's residency."""
        empty = np.zeros(0, np.int64)
        if mode == PREFETCH and self.problem.pf_start[b] < 0:
            return empty, empty, 0
        g_lo, g_hi = self.gaps(*self.interval(b, mode))
        largest = int((g_hi - g_lo).max(initial=0))
        if not self.can_use(b, mode):
            return empty, empty, largest
        return (*candidate_offsets(g_lo, g_hi, int(self.problem.size[b]), n), largest)

    def _ops_delta(self, b: int, mode: int) -> tuple[np.ndarray, np.ndarray]:
        p = self.problem
        u0, u1 = p.use_ptr[b], p.use_ptr[b + 1]
        if mode == FAST:
            return p.use_op[u0:u1], -p.use_save_us[u0:u1]
        w0, w1 = p.win_ptr[b], p.win_ptr[b + 1]
        return (np.concatenate([p.use_op[u0:u1], p.win_op[w0:w1]]),
                np.concatenate([-p.pf_save_us[u0:u1], p.win_cost_us[w0:w1]]))

    def delta_time(self, b: int, mode: int) -> float:
        """Change of total time (µs) if the still-slow buffer ``b`` took ``mode``."""
        if mode == SLOW:
            return 0.0
        u, new = self._new_times(b, mode)
        return float((new - self.time_us[u]).sum())

    def _new_times(self, b: int, mode: int) -> tuple[np.ndarray, np.ndarray]:
        """The ops ``b`` touches and their time if it took ``mode``."""
        ops, dmem = self._ops_delta(b, mode)
        u, inv = np.unique(ops, return_inverse=True)
        mem = self.mem_us[u] + np.bincount(inv, dmem, u.size)
        return u, np.maximum(self.problem.compute_us[u], mem)

    def place(self, b: int, mode: int, offset: int = -1) -> float:
        """Decide buffer ``b``; returns the change of total time (µs, negative = faster)."""
        p = self.problem
        if self.mode[b] != SLOW:
            raise PlacementError(f"buffer {p.buffer_names[b]!r} is already placed")
        if mode == SLOW:
            return 0.0
        if mode not in (FAST, PREFETCH) or not self.can_use(b, mode):
            raise PlacementError(f"buffer {p.buffer_names[b]!r} cannot take mode {mode!r}")
        first, last = self.interval(b, mode)
        size = int(p.size[b])
        g_lo, g_hi = self.gaps(first, last)
        if not np.any((g_lo <= offset) & (offset + size <= g_hi)):
            raise PlacementError(
                f"buffer {p.buffer_names[b]!r} does not fit at [{offset}, {offset + size}) "
                f"during ops {first}..{last}; choose an offset from candidates()")
        ops, dmem = self._ops_delta(b, mode)
        np.add.at(self.mem_us, ops, dmem)
        u = np.unique(ops)
        new = np.maximum(p.compute_us[u], self.mem_us[u])
        delta = float((new - self.time_us[u]).sum())
        self.time_us[u] = new
        self.total_us += delta
        self.mode[b], self.offset[b] = mode, offset
        k = self._k
        self._rs[k], self._re[k], self._lo[k], self._hi[k] = first, last, offset, offset + size
        self._k = k + 1
        return delta


def placement_to_actions(problem: MemoryInstance, placement: Placement, order: np.ndarray,
                         n_offsets: int) -> list[int]:
    """The env's action sequence (buffers in ``order``) that reproduces ``placement`` exactly.

    Action 0 = slow, ``1 + j`` = FAST at the j-th candidate offset, ``1 + n_offsets + j`` =
    PREFETCH at the j-th candidate. Raises :class:`NotReplayableError` if an offset is not a
    candidate when its buffer's turn comes (see :func:`repack_for_replay`).
    """
    validate(problem, placement)
    state = AllocationState(problem)
    actions = []
    for b in order:
        m, off = int(placement.mode[b]), int(placement.offset[b])
        if m == SLOW:
            actions.append(0)
            continue
        offs, _ = state.candidates(b, m, n_offsets)
        j = np.flatnonzero(offs == off)
        if j.size == 0:
            raise NotReplayableError(
                f"offset {off} of buffer {problem.buffer_names[b]!r} is not among the env's "
                f"{n_offsets} candidate offsets at its turn; repack_for_replay() first")
        actions.append(1 + int(j[0]) + (n_offsets if m == PREFETCH else 0))
        state.place(b, m, off)
    return actions


def _pack(problem: MemoryInstance, placement: Placement, order: np.ndarray, n_offsets: int,
          pick: Callable[[np.ndarray, int], int], demote: bool) -> Placement | None:
    """``placement``'s modes, buffers placed in ``order`` each at the candidate offset ``pick``
    chooses (from the offsets and the buffer's own); a buffer with no candidate stays slow with
    ``demote``, else None."""
    state = AllocationState(problem)
    for b in order:
        m = int(placement.mode[b])
        if m == SLOW:
            continue
        offs, _ = state.candidates(b, m, n_offsets)
        if offs.size == 0:
            if demote:
                continue
            return None
        state.place(b, m, int(pick(offs, int(placement.offset[b]))))
    return state.placement


def _nearest(offs: np.ndarray, want: int) -> int:
    return offs[np.argmin(np.abs(offs - want))]


# repack_for_replay's tries: the nearest candidate (the offset itself if it is one), best fit,
# lowest address, highest address
_PICKS = (_nearest, lambda offs, want: offs[0], lambda offs, want: offs.min(),
          lambda offs, want: offs.max())


def repack_for_replay(problem: MemoryInstance, placement: Placement, order: np.ndarray,
                      n_offsets: int) -> Placement | None:
    """The same modes with every offset among the env's candidates at its buffer's turn, or None.

    Tries, in turn: keep the offset if it is a candidate else take the nearest candidate; best
    fit; lowest address; highest address. Modes are unchanged, so the time is unchanged.
    """
    return _first_pack(problem, placement, order, n_offsets, _PICKS)


def _first_pack(problem: MemoryInstance, placement: Placement, order: np.ndarray,
                n_offsets: int, picks: tuple) -> Placement | None:
    """The first of ``picks`` with which every buffer keeps its mode (:func:`_pack`), or None."""
    for pick in picks:
        packed = _pack(problem, placement, order, n_offsets, pick, demote=False)
        if packed is not None:
            return packed
    return None


def demote_for_replay(problem: MemoryInstance, placement: Placement, order: np.ndarray,
                      n_offsets: int, base: Placement | None = None) -> Placement:
    """A placement the env can replay (``order``, ``n_offsets``) made from ``placement``: each
    buffer in its mode at the candidate offset nearest its own, slow where none has room (so
    never faster than ``placement``; as fast where :func:`repack_for_replay`'s first try
    succeeds). ``base``: a placement the env replays exactly (any result of this function),
    from which only what can differ is placed again (:func:`_pack_from`; the same result)."""
    if base is not None:
        return _pack_from(problem, placement, order, n_offsets, base)
    packed = _pack(problem, placement, order, n_offsets, _nearest, demote=True)
    assert packed is not None  # with demote every buffer has a place
    return packed


def _pack_from(problem: MemoryInstance, placement: Placement, order: np.ndarray, n_offsets: int,
               base: Placement) -> Placement:
    """``_pack(problem, placement, order, n_offsets, _nearest, demote=True)`` from ``base``, a
    placement the env replays exactly (so that pass leaves it as it is). A buffer's candidate
    offsets depend only on the fast buffers placed before it whose residencies overlap its own,
    so only the buffers ``placement`` decides differently from ``base``, and those after one
    whose result differs with an overlapping residency, are placed again (in ``order``); the
    others keep base's offsets (after one LNS repair 0.3-4.1 ms against the full pass's
    7.4-17.3 ms on graphs of 574-1,156 buffers; BENCHMARKS.md)."""
    p = problem
    pos = np.empty(p.n_buffers, np.int64)
    pos[order] = np.arange(p.n_buffers)
    fast = placement.mode != SLOW
    changed = np.flatnonzero((placement.mode != base.mode) | (fast & (placement.offset != base.offset)))
    mode, offset = base.mode.copy(), base.offset.copy()
    first, first_wanted = p.residency(mode), p.residency(placement.mode)
    usable = (p.size <= p.capacity_bytes) & ((placement.mode != PREFETCH) | (p.pf_start >= 0))
    todo = [int(i) for i in pos[changed]]
    heapq.heapify(todo)
    queued = np.zeros(p.n_buffers, bool)
    queued[changed] = True
    spread = queued.copy()  # buffers whose overlapping successors are queued

    def requeue_after(b: int, lo: int) -> None:  # the fast buffers after b that overlap [lo, end[b]]
        hit = fast & ~queued & (pos > pos[b]) & (first_wanted <= p.end[b]) & (p.end >= lo)
        queued[hit] = True
        for i in pos[hit]:
            heapq.heappush(todo, int(i))

    for b in changed:  # every residency either decision gives it
        requeue_after(int(b), int(min(first[b] if mode[b] != SLOW else p.end[b],
                                      first_wanted[b] if fast[b] else p.end[b])))
    while todo:
        b = int(order[heapq.heappop(todo)])
        m, off = SLOW, -1
        if fast[b] and usable[b]:
            live = (mode != SLOW) & (pos < pos[b]) & (first <= p.end[b]) & (p.end >= first_wanted[b])
            offs, _ = candidate_offsets(*free_gaps(offset[live], offset[live] + p.size[live],
                                                   p.capacity_bytes), int(p.size[b]), n_offsets)
            if offs.size:
                m, off = int(placement.mode[b]), int(_nearest(offs, int(placement.offset[b])))
        if (m, off) != (mode[b], offset[b]) and not spread[b]:
            spread[b] = True
            requeue_after(b, int(first[b]))
        mode[b], offset[b] = m, off
        if m != SLOW:
            first[b] = first_wanted[b]
    return Placement(mode, offset)


def replay_placement(problem: MemoryInstance, placement: Placement, order: np.ndarray,
                     n_offsets: int, base: Placement | None = None) -> Placement:
    """``placement`` as the env (``order``, ``n_offsets``) can replay it: with its modes where
    one of :func:`repack_for_replay`'s tries fits every buffer (so its time), else
    :func:`demote_for_replay`'s (its first try, with the buffers that find no room slow);
    ``base``: as :func:`demote_for_replay`'s."""
    demoted = demote_for_replay(problem, placement, order, n_offsets, base)
    if np.array_equal(demoted.mode, placement.mode):
        return demoted
    return _first_pack(problem, placement, order, n_offsets, _PICKS[1:]) or demoted


__all__ = [
    "FAST",
    "PREFETCH",
    "SLOW",
    "AllocationState",
    "CapacityError",
    "MemoryInstance",
    "MemoryModelError",
    "MemorySystem",
    "NoBuffersError",
    "NotReplayableError",
    "Placement",
    "PlacementError",
    "SimulationResult",
    "build_instance",
    "candidate_offsets",
    "demote_for_replay",
    "free_gaps",
    "memory_boundedness",
    "memory_time",
    "placement_to_actions",
    "repack_for_replay",
    "replay_placement",
    "simulate",
    "validate",
    "violations",
    "with_capacity",
    "xla_order",
]
