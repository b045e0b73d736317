"""A scheduling instance: a (graph, platform) pair compiled into op × PE times and data edges.

:func:`build_instance` compiles (graph, platform) into a :class:`SchedulingInstance`: the op × PE
time matrix as one NumPy array (``inf`` where a PE cannot run an op), the data edges with their
bytes and their cross-PE transfer time ``latency_us + bytes / bandwidth``. A tensor moving between
ops on the same PE costs nothing; graph inputs and weights are resident everywhere at time 0;
transfers do not contend for the interconnect (the classic HEFT communication model). Any PE's
roofline time can be replaced by a pluggable :data:`OpTimeFn` (e.g. :func:`accelerator_op_times`).

Streams of jobs (DeepSoCS-style, :mod:`mlsysgym.simulators.streams`): an instance may carry a
per-op ``release_us`` (an op cannot start before its job arrives) and ``job_of`` (the job of
each op); both default to one job released at time 0, which is the single-graph case.
Also here: :func:`critical_path_lb` (a makespan lower bound) and :func:`random_instance`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.ir.errors import GraphCycleError, WorkloadError
from mlsysgym.ir.graph import Graph, Role, kahn_order
from mlsysgym.simulators.multicore.errors import (
    EmptyGraphError,
    PlatformError,
    UnsupportedOpError,
)
from mlsysgym.simulators.multicore.hardware import (
    PEConfig,
    Platform,
    load_platform,
    roofline_times,
)

OpTimeFn = Callable[[Graph, PEConfig], np.ndarray]
"""Times of every op of a graph on one PE, (n_ops,) in µs (``inf`` = cannot run); replaces the
roofline for that PE. See :func:`accelerator_op_times` for one backed by the accelerator model."""


def _op_work(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """(FLOPs, bytes read + written) of every op of ``graph``, as float64 arrays."""
    n = len(graph.ops)
    return (np.fromiter((op.flops for op in graph.ops), np.float64, n),
            np.fromiter((op.bytes_read + op.bytes_written for op in graph.ops), np.float64, n))


def accelerator_op_times(design: Mapping[str, Any] | None = None) -> OpTimeFn:
    """An :data:`OpTimeFn` from :mod:`mlsysgym.simulators.accelerator` (PE-array model) for
    ``design`` (default: its default design), plus the PE's ``overhead_us``; ops it does not
    list keep the roofline time."""

    def times(graph: Graph, pe: PEConfig) -> np.ndarray:
        from mlsysgym.simulators.accelerator import default_design, layer_table

        table = layer_table({**default_design(), **dict(design or {})}, graph)
        lat = dict(zip(table["name"], np.asarray(table["latency_ms"], dtype=np.float64) * 1e3))
        fallback = roofline_times(*_op_work(graph), [op.op_type for op in graph.ops], [pe])[:, 0]
        return np.array([pe.overhead_us + lat[op.name] if op.name in lat else fallback[i]
                         for i, op in enumerate(graph.ops)])

    return times


@dataclass(frozen=True, eq=False)
class SchedulingInstance:
    """A compiled instance: op × PE times, data edges and their cross-PE transfer times.

    ``durations_us[i, p]`` is op i's time on PE p (``inf``: cannot run there). Edge e carries
    ``edge_bytes[e]`` from op ``edge_src[e]`` to op ``edge_dst[e]`` and costs ``edge_comm_us[e]``
    when the two ops run on different PEs (0 on the same PE).
    """

    name: str
    op_names: tuple[str, ...]
    op_types: tuple[str, ...]
    pe_names: tuple[str, ...]
    durations_us: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_bytes: np.ndarray
    edge_comm_us: np.ndarray
    active_power_w: np.ndarray
    idle_power_w: np.ndarray
    transfer_energy_pj_per_byte: float = 0.0
    op_flops: np.ndarray | None = None
    op_bytes: np.ndarray | None = None
    release_us: np.ndarray | None = None
    job_of: np.ndarray | None = None

    def __post_init__(self) -> None:
        d = np.asarray(self.durations_us, dtype=np.float64)
        if d.ndim != 2 or d.shape[0] == 0:
            raise EmptyGraphError(f"workload {self.name!r} has no ops to schedule")
        n, p = d.shape
        if p == 0:
            raise PlatformError("a platform needs at least one processing element")
        if np.any(np.isnan(d)) or np.any(d < 0):
            raise PlatformError(f"{self.name!r}: op times must be ≥ 0 (inf = unsupported), not NaN/negative")
        cap = np.isfinite(d)
        bad = np.flatnonzero(~cap.any(axis=1))
        if bad.size:
            i = int(bad[0])
            raise UnsupportedOpError(
                f"no PE of {list(self.pe_names)} can run op {self.op_names[i]!r} of type "
                f"{self.op_types[i]!r} ({bad.size} such ops); add a PE or a throughput entry for it")
        src = np.asarray(self.edge_src, dtype=np.int64).reshape(-1)
        dst = np.asarray(self.edge_dst, dtype=np.int64).reshape(-1)
        if src.shape != dst.shape or (src.size and (min(src.min(), dst.min()) < 0
                                                    or max(src.max(), dst.max()) >= n)):
            raise WorkloadError(f"{self.name!r}: edge endpoints must be op indices in [0, {n})")
        def arr(x: Any, k: int) -> np.ndarray:
            return np.broadcast_to(np.asarray(x, dtype=np.float64), (k,)).copy()
        for name, v in (("durations_us", d), ("edge_src", src), ("edge_dst", dst),
                        ("edge_bytes", arr(self.edge_bytes, src.size)),
                        ("edge_comm_us", arr(self.edge_comm_us, src.size)),
                        ("active_power_w", arr(self.active_power_w, p)),
                        ("idle_power_w", arr(self.idle_power_w, p)),
                        ("op_flops", arr(0.0 if self.op_flops is None else self.op_flops, n)),
                        ("op_bytes", arr(0.0 if self.op_bytes is None else self.op_bytes, n)),
                        ("release_us", arr(0.0 if self.release_us is None else self.release_us, n))):
            v.setflags(write=False)
            object.__setattr__(self, name, v)
        rel = self.release_us
        if not np.all(np.isfinite(rel)) or np.any(rel < 0):
            raise WorkloadError(f"{self.name!r}: release_us must be finite times ≥ 0")
        job = np.zeros(n, np.int64) if self.job_of is None else \
            np.broadcast_to(np.asarray(self.job_of, dtype=np.int64), (n,)).copy()
        if job.min() < 0:
            raise WorkloadError(f"{self.name!r}: job_of must hold job indices ≥ 0")
        job.setflags(write=False)
        object.__setattr__(self, "job_of", job)
        if len(self.op_names) != n or len(self.op_types) != n or len(self.pe_names) != p:
            raise WorkloadError(f"{self.name!r}: op_names/op_types/pe_names do not match durations {d.shape}")
        _ = self.topo_order  # raises GraphCycleError on a cycle

    # ---- sizes and derived structure -------------------------------------------------------
    @property
    def n_ops(self) -> int:
        return int(self.durations_us.shape[0])

    @property
    def n_pes(self) -> int:
        return int(self.durations_us.shape[1])

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.size)

    @property
    def n_jobs(self) -> int:
        """Number of jobs (1 for a single graph)."""
        return int(self.job_of.max()) + 1

    @property
    def has_releases(self) -> bool:
        """Whether some op has a release time after 0 (a stream with later arrivals)."""
        return bool(np.any(self.release_us > 0))

    @cached_property
    def job_arrival_us(self) -> np.ndarray:
        """(n_jobs,) arrival of each job: the earliest release of its ops (inf for an empty job)."""
        arr = np.full(self.n_jobs, np.inf)
        np.minimum.at(arr, self.job_of, self.release_us)
        return arr

    @cached_property
    def capable(self) -> np.ndarray:
        """(n_ops, n_pes) bool: which PE can run which op."""
        return np.isfinite(self.durations_us)

    @cached_property
    def min_durations_us(self) -> np.ndarray:
        """(n_ops,) fastest time of each op over the PEs that can run it."""
        return self.durations_us.min(axis=1)

    @cached_property
    def in_edges(self) -> tuple[np.ndarray, ...]:
        """Per op, the indices of edges entering it."""
        order = np.argsort(self.edge_dst, kind="stable")
        bounds = np.searchsorted(self.edge_dst[order], np.arange(self.n_ops + 1))
        return tuple(order[bounds[i]:bounds[i + 1]] for i in range(self.n_ops))

    @cached_property
    def out_edges(self) -> tuple[np.ndarray, ...]:
        """Per op, the indices of edges leaving it."""
        order = np.argsort(self.edge_src, kind="stable")
        bounds = np.searchsorted(self.edge_src[order], np.arange(self.n_ops + 1))
        return tuple(order[bounds[i]:bounds[i + 1]] for i in range(self.n_ops))

    @cached_property
    def topo_order(self) -> np.ndarray:
        """A topological order of the ops (Kahn, smallest index first); GraphCycleError on a cycle."""
        out = kahn_order([self.edge_dst[e].tolist() for e in self.out_edges])
        if len(out) != self.n_ops:
            stuck = min(set(range(self.n_ops)) - set(out))
            raise GraphCycleError(f"the dependencies of {self.name!r} contain a cycle through op "
                                  f"{self.op_names[stuck]!r}; a schedule needs an acyclic graph")
        return np.asarray(out, dtype=np.int64)

    @cached_property
    def tail_us(self) -> np.ndarray:
        """(n_ops,) longest path of fastest op times strictly after each op (0 for sinks)."""
        tail = np.zeros(self.n_ops)
        dmin = self.min_durations_us
        for i in self.topo_order[::-1]:
            e = self.out_edges[i]
            if e.size:
                j = self.edge_dst[e]
                tail[i] = np.max(dmin[j] + tail[j])
        return tail

    @cached_property
    def head_us(self) -> np.ndarray:
        """(n_ops,) earliest possible start of each op: the longest path of fastest op times
        before it, from the release times (0 for sources released at 0)."""
        head = np.array(self.release_us, dtype=np.float64)
        dmin = self.min_durations_us
        for j in self.topo_order:
            e = self.in_edges[j]
            if e.size:
                i = self.edge_src[e]
                head[j] = max(head[j], float(np.max(head[i] + dmin[i])))
        return head


def critical_path_lb(problem: SchedulingInstance) -> float:
    """A makespan lower bound: the longest path with every op on its fastest PE and free transfers
    (from the release times), and the earliest release plus the total fastest work divided by
    the number of PEs."""
    cp = float(np.max(problem.head_us + problem.min_durations_us + problem.tail_us))
    work = float(problem.release_us.min()) + float(problem.min_durations_us.sum()) / problem.n_pes
    return max(cp, work)


def build_instance(graph: Graph, platform: str | Path | Mapping[str, Any] | Platform,
                  op_time: Mapping[str, OpTimeFn] | None = None) -> SchedulingInstance:
    """Compile a graph and a platform into a :class:`SchedulingInstance`.

    ``op_time`` maps a PE name or kind to an :data:`OpTimeFn` that replaces the roofline time on
    that PE (which ops the PE can run still comes from its throughput table).
    """
    plat = load_platform(platform)
    ops = graph.ops
    if not ops:
        raise EmptyGraphError(f"graph {graph.name!r} has no ops to schedule; give a non-empty model")
    n = len(ops)
    flops, nbytes = _op_work(graph)
    types = [op.op_type for op in ops]
    dur = roofline_times(flops, nbytes, types, plat.pes)
    for p, pe in enumerate(plat.pes):
        fn = (op_time or {}).get(pe.name) or (op_time or {}).get(pe.kind)
        if fn is not None:
            col = np.asarray(fn(graph, pe), dtype=np.float64).reshape(-1)
            if col.shape != (n,):
                raise PlatformError(f"op_time for PE {pe.name!r} returned {col.shape} times for {n} ops")
            dur[:, p] = np.where(np.isfinite(dur[:, p]), col, np.inf)
    producer: dict[str, int] = {}
    for i, op in enumerate(ops):
        for t in op.outputs:
            if t:
                producer[t] = i
    edges: dict[tuple[int, int], float] = {}
    for j, op in enumerate(ops):
        for t in dict.fromkeys(op.inputs):
            i = producer.get(t)
            if i is None or not t:
                continue
            tensor = graph.tensors.get(t)
            if tensor is not None and tensor.role is Role.WEIGHT:
                continue
            edges[(i, j)] = edges.get((i, j), 0.0) + float(tensor.nbytes if tensor else 0)
    src = np.array([e[0] for e in edges], dtype=np.int64)
    dst = np.array([e[1] for e in edges], dtype=np.int64)
    eb = np.array(list(edges.values()), dtype=np.float64)
    return SchedulingInstance(
        name=graph.name, op_names=tuple(op.name for op in ops), op_types=tuple(types),
        pe_names=plat.pe_names, durations_us=dur, edge_src=src, edge_dst=dst, edge_bytes=eb,
        edge_comm_us=plat.interconnect.transfer_us(eb),
        active_power_w=np.array([pe.active_power_w for pe in plat.pes]),
        idle_power_w=np.array([pe.idle_power_w for pe in plat.pes]),
        transfer_energy_pj_per_byte=plat.interconnect.energy_pj_per_byte,
        op_flops=flops, op_bytes=nbytes)


def random_instance(n_ops: int, n_pes: int, seed: int = 0, edge_prob: float = 0.3,
                   max_duration: int = 20, max_comm: int = 10, unsupported_prob: float = 0.1,
                   name: str | None = None) -> SchedulingInstance:
    """A random layered DAG with integer op times and transfer costs (a test/benchmark instance).

    Each op depends on each earlier op with probability ``edge_prob`` (limited to the previous
    ten ops); each (op, PE) pair but one per op is unsupported with probability ``unsupported_prob``.
    """
    rng = np.random.default_rng(seed)
    dur = rng.integers(1, max_duration + 1, size=(n_ops, n_pes)).astype(np.float64)
    mask = rng.random((n_ops, n_pes)) < unsupported_prob
    mask[np.arange(n_ops), rng.integers(0, n_pes, n_ops)] = False
    dur[mask] = np.inf
    src, dst = [], []
    for j in range(1, n_ops):
        for i in range(max(0, j - 10), j):
            if rng.random() < edge_prob:
                src.append(i)
                dst.append(j)
    comm = rng.integers(0, max_comm + 1, size=len(src)).astype(np.float64)
    return SchedulingInstance(
        name=name or f"random{n_ops}x{n_pes}s{seed}", op_names=tuple(f"op{i}" for i in range(n_ops)),
        op_types=("Op",) * n_ops, pe_names=tuple(f"pe{p}" for p in range(n_pes)), durations_us=dur,
        edge_src=np.array(src, np.int64), edge_dst=np.array(dst, np.int64),
        edge_bytes=comm * 1e3, edge_comm_us=comm, active_power_w=np.ones(n_pes),
        idle_power_w=np.full(n_pes, 0.1))
