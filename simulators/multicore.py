"""Heterogeneous multi-core / SoC execution model: run an ir.Graph on processing elements under a schedule.

A :class:`Platform` is a set of processing elements (:class:`PEConfig`: big and little CPU cores,
a DNN accelerator, a vector/DSP unit, ...) and an :class:`Interconnect`. Each PE has a throughput
per *op class* (``conv``, ``matmul``, ``elementwise``, ... see :data:`OP_CLASSES`) or per ONNX op
type, in GFLOP/s (1 MAC = 2 FLOPs); an op class or type it has no entry for (or an entry ≤ 0) is
one it cannot run. Its per-op time is a roofline by default::

    time_us = overhead_us + max(flops / throughput, (bytes_read + bytes_written) / bandwidth)

and any PE's time can be replaced by a pluggable :data:`OpTimeFn` (e.g. an accelerator simulator).

:func:`build_problem` compiles (graph, platform) into a :class:`SchedulingProblem`: the op × PE
time matrix as one NumPy array (``inf`` where a PE cannot run an op), the data edges with their
bytes and their cross-PE transfer time ``latency_us + bytes / bandwidth``. A tensor moving between
ops on the same PE costs nothing; graph inputs and weights are resident everywhere at time 0;
transfers do not contend for the interconnect (the classic HEFT communication model).

Streams of jobs (DeepSoCS-style, :mod:`mlsysgym.simulators.streams`): a problem may carry a
per-op ``release_us`` (an op cannot start before its job arrives) and ``job_of`` (the job of
each op); both default to one job released at time 0, which is the single-graph case.

A :class:`Schedule` is an op → PE assignment plus start times (build one from an assignment and
a dispatch order with :func:`schedule_from_order`). :func:`validate` reports every violated
dependency (incl. transfer delays), overlap of two ops on one PE, and unsupported placement;
:func:`simulate` returns makespan, per-PE utilization, energy and that report.

Units: times in microseconds (``_us``), energy in microjoules (``_uj``; W × µs = µJ), power in W.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.costs import DATA_MOVEMENT, ELEMENTWISE_FLOPS, REDUCTION_FLOPS
from mlsysgym.ir.errors import GraphCycleError, WorkloadError
from mlsysgym.ir.graph import Graph, Role, kahn_order

__all__ = [
    "OP_CLASSES",
    "PRESETS",
    "EmptyGraphError",
    "ExecutionResult",
    "Interconnect",
    "InvalidScheduleError",
    "MulticoreEvaluator",
    "OpTimeFn",
    "PEConfig",
    "Platform",
    "PlatformError",
    "Schedule",
    "SchedulingProblem",
    "UnsupportedOpError",
    "ValidityReport",
    "accelerator_op_times",
    "build_problem",
    "critical_path_lb",
    "earliest_start",
    "load_platform",
    "op_class",
    "random_problem",
    "roofline_times",
    "schedule_from_order",
    "simulate",
    "validate",
]

# ---- errors ---------------------------------------------------------------------------------


class PlatformError(MlsysgymError):
    """A platform description is malformed (unknown preset, bad field, no PEs, ...)."""


class UnsupportedOpError(PlatformError):
    """Some op of the graph can run on no processing element of the platform."""


class EmptyGraphError(WorkloadError):
    """The workload has no ops to schedule."""


class InvalidScheduleError(MlsysgymError):
    """A schedule breaks a dependency, overlaps two ops on one PE, or places an op where it cannot run."""


# ---- op classes -----------------------------------------------------------------------------

OP_CLASSES: tuple[str, ...] = ("conv", "matmul", "attention", "elementwise", "normalization",
                               "pool", "reduction", "data_movement", "other")

_CONV = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"})
_MATMUL = frozenset({"MatMul", "Gemm", "MatMulInteger", "QLinearMatMul", "Einsum", "FusedMatMul"})
_ATTENTION = frozenset({"Attention", "MultiHeadAttention", "GroupQueryAttention"})
_NORMALIZATION = frozenset({
    "BatchNormalization", "LayerNormalization", "SimplifiedLayerNormalization", "RMSNormalization",
    "SkipLayerNormalization", "InstanceNormalization", "GroupNormalization", "Softmax", "LogSoftmax",
    "LRN"})
_POOL = frozenset({"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
                   "GlobalLpPool"})


@lru_cache(maxsize=1024)
def op_class(op_type: str) -> str:
    """The op class of an ONNX op type: one of :data:`OP_CLASSES`."""
    if op_type in _CONV:
        return "conv"
    if op_type in _MATMUL:
        return "matmul"
    if op_type in _ATTENTION:
        return "attention"
    if op_type in _NORMALIZATION:
        return "normalization"
    if op_type in _POOL:
        return "pool"
    if op_type in REDUCTION_FLOPS:
        return "reduction"
    if op_type in ELEMENTWISE_FLOPS:
        return "elementwise"
    if op_type in DATA_MOVEMENT:
        return "data_movement"
    return "other"


# ---- platform config ------------------------------------------------------------------------


@dataclass(frozen=True)
class PEConfig:
    """One processing element.

    ``throughput_gflops`` maps an op type (e.g. ``"Softmax"``), an op class (e.g. ``"conv"``)
    or ``"*"`` (anything else) to GFLOP/s; the most specific key wins. A missing key or a value
    ≤ 0 means the PE cannot run that op. ``bandwidth_gbps`` is the PE's memory bandwidth (GB/s)
    for the roofline; ``overhead_us`` a fixed cost per op (launch, synchronization).
    """

    name: str
    kind: str
    throughput_gflops: Mapping[str, float]
    bandwidth_gbps: float
    active_power_w: float
    idle_power_w: float
    overhead_us: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise PlatformError("a PE needs a non-empty name")
        if self.bandwidth_gbps <= 0:
            raise PlatformError(f"PE {self.name!r}: bandwidth_gbps must be > 0, got {self.bandwidth_gbps}")
        if self.active_power_w < 0 or self.idle_power_w < 0 or self.overhead_us < 0:
            raise PlatformError(f"PE {self.name!r}: power and overhead must be ≥ 0")
        if not self.throughput_gflops:
            raise PlatformError(f"PE {self.name!r}: throughput_gflops is empty, so it can run nothing")
        object.__setattr__(self, "throughput_gflops",
                           {str(k): float(v) for k, v in self.throughput_gflops.items()})

    def throughput(self, op_type: str) -> float:
        """GFLOP/s for ``op_type`` (0.0 when this PE cannot run it)."""
        t = self.throughput_gflops
        v = t.get(op_type, t.get(op_class(op_type), t.get("*", 0.0)))
        return max(float(v), 0.0)

    def can_run(self, op_type: str) -> bool:
        return self.throughput(op_type) > 0


@dataclass(frozen=True)
class Interconnect:
    """Links between PEs: a tensor crossing PEs costs ``latency_us + nbytes / bandwidth``."""

    bandwidth_gbps: float
    latency_us: float = 0.0
    energy_pj_per_byte: float = 0.0

    def __post_init__(self) -> None:
        if self.bandwidth_gbps <= 0 or self.latency_us < 0 or self.energy_pj_per_byte < 0:
            raise PlatformError("interconnect needs bandwidth_gbps > 0, latency_us ≥ 0, "
                                "energy_pj_per_byte ≥ 0")

    def transfer_us(self, nbytes: np.ndarray | float) -> np.ndarray:
        """Cross-PE transfer time of ``nbytes`` (vectorized)."""
        return self.latency_us + np.asarray(nbytes, dtype=np.float64) / (self.bandwidth_gbps * 1e3)


@dataclass(frozen=True)
class Platform:
    """Processing elements plus the interconnect between them."""

    name: str
    pes: tuple[PEConfig, ...]
    interconnect: Interconnect

    def __post_init__(self) -> None:
        if not self.pes:
            raise PlatformError(f"platform {self.name!r} has no processing elements")
        names = [p.name for p in self.pes]
        if len(set(names)) != len(names):
            raise PlatformError(f"platform {self.name!r} has duplicate PE names {names}")

    @property
    def pe_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.pes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        """From ``{"name", "pes": [{...PEConfig fields, optional "count"}], "interconnect": {...}}``.

        A PE entry with ``count: k`` expands into k PEs named ``name0 .. name{k-1}``.
        """
        try:
            pes: list[PEConfig] = []
            allowed = {f.name for f in fields(PEConfig)}
            for entry in d["pes"]:
                entry = dict(entry)
                count = int(entry.pop("count", 1))
                unknown = set(entry) - allowed
                if unknown:
                    raise PlatformError(f"unknown PE field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
                entry.setdefault("kind", entry.get("name", "pe"))
                if count == 1:
                    pes.append(PEConfig(**entry))
                else:
                    pes.extend(PEConfig(**{**entry, "name": f"{entry['name']}{i}"}) for i in range(count))
            ic = Interconnect(**d.get("interconnect", {"bandwidth_gbps": 10.0}))
            return cls(name=str(d.get("name", "custom")), pes=tuple(pes), interconnect=ic)
        except (KeyError, TypeError) as e:
            raise PlatformError(f"bad platform description ({type(e).__name__}: {e}); "
                                "expected keys name, pes, interconnect") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-able dict that :meth:`from_dict` reads back."""
        return {"name": self.name, "pes": [dict(asdict(p), throughput_gflops=dict(p.throughput_gflops))
                                           for p in self.pes],
                "interconnect": asdict(self.interconnect)}

    @classmethod
    def from_file(cls, path: str | Path) -> Platform:
        """From a ``.json``, ``.yaml`` or ``.yml`` file."""
        p = Path(path)
        if not p.is_file():
            raise PlatformError(f"platform file {str(p)!r} does not exist")
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise PlatformError(f"platform file {str(p)!r} does not hold a mapping")
        return cls.from_dict(data)


_BIG = {"name": "big", "kind": "cpu_big", "bandwidth_gbps": 20.0, "active_power_w": 2.5,
        "idle_power_w": 0.15, "overhead_us": 2.0,
        "throughput_gflops": {"conv": 40.0, "matmul": 45.0, "attention": 30.0, "elementwise": 10.0,
                              "normalization": 6.0, "pool": 8.0, "reduction": 8.0,
                              "data_movement": 10.0, "*": 5.0}}
_LITTLE = {"name": "little", "kind": "cpu_little", "bandwidth_gbps": 6.0, "active_power_w": 0.4,
           "idle_power_w": 0.03, "overhead_us": 3.0,
           "throughput_gflops": {"conv": 6.0, "matmul": 7.0, "attention": 5.0, "elementwise": 2.5,
                                 "normalization": 1.5, "pool": 2.0, "reduction": 2.0,
                                 "data_movement": 3.0, "*": 1.0}}
_NPU = {"name": "npu", "kind": "npu", "bandwidth_gbps": 40.0, "active_power_w": 3.0,
        "idle_power_w": 0.2, "overhead_us": 30.0,
        "throughput_gflops": {"conv": 500.0, "matmul": 400.0, "attention": 200.0, "elementwise": 60.0,
                              "pool": 60.0}}
_DSP = {"name": "dsp", "kind": "dsp", "bandwidth_gbps": 25.0, "active_power_w": 1.0,
        "idle_power_w": 0.05, "overhead_us": 10.0,
        "throughput_gflops": {"conv": 80.0, "matmul": 100.0, "attention": 60.0, "elementwise": 60.0,
                              "normalization": 40.0, "pool": 50.0, "reduction": 50.0}}

PRESETS: dict[str, dict[str, Any]] = {
    # 4 identical cores on a shared cache (homogeneous reference).
    "quad_core": {"name": "quad_core", "pes": [{**_BIG, "name": "core", "count": 4}],
                  "interconnect": {"bandwidth_gbps": 30.0, "latency_us": 2.0, "energy_pj_per_byte": 5.0}},
    # Arm big.LITTLE-style CPU cluster: 2 big + 4 little cores.
    "big_little": {"name": "big_little", "pes": [{**_BIG, "count": 2}, {**_LITTLE, "count": 4}],
                   "interconnect": {"bandwidth_gbps": 30.0, "latency_us": 2.0, "energy_pj_per_byte": 5.0}},
    # Mobile SoC: 2 big + 4 little + NPU (no data movement / normalization) + DSP (no data movement).
    "soc_npu": {"name": "soc_npu",
                "pes": [{**_BIG, "count": 2}, {**_LITTLE, "count": 4}, _NPU, _DSP],
                "interconnect": {"bandwidth_gbps": 12.0, "latency_us": 8.0, "energy_pj_per_byte": 15.0}},
}


def load_platform(spec: str | Path | Mapping[str, Any] | Platform) -> Platform:
    """A platform from a preset name (see :data:`PRESETS`), a JSON/YAML path, a dict, or as is."""
    if isinstance(spec, Platform):
        return spec
    if isinstance(spec, Mapping):
        return Platform.from_dict(spec)
    s = str(spec)
    if s in PRESETS:
        return Platform.from_dict(PRESETS[s])
    if Path(s).suffix in (".json", ".yaml", ".yml"):
        return Platform.from_file(s)
    raise PlatformError(f"unknown platform {s!r}; use one of {sorted(PRESETS)} or a .json/.yaml file")


# ---- scheduling problem ---------------------------------------------------------------------

OpTimeFn = Callable[[Graph, PEConfig], np.ndarray]
"""Times of every op of a graph on one PE, (n_ops,) in µs (``inf`` = cannot run); replaces the
roofline for that PE. See :func:`accelerator_op_times` for one backed by the accelerator model."""


def accelerator_op_times(design: Mapping[str, Any] | None = None) -> OpTimeFn:
    """An :data:`OpTimeFn` from :mod:`mlsysgym.simulators.accelerator` (PE-array model) for
    ``design`` (default: its default design), plus the PE's ``overhead_us``; ops it does not
    list keep the roofline time."""

    def times(graph: Graph, pe: PEConfig) -> np.ndarray:
        from mlsysgym.simulators.accelerator import default_design, layer_table

        table = layer_table({**default_design(), **dict(design or {})}, graph)
        lat = dict(zip(table["name"], np.asarray(table["latency_ms"], dtype=np.float64) * 1e3))
        fallback = roofline_times(
            np.fromiter((op.flops for op in graph.ops), np.float64, len(graph.ops)),
            np.fromiter((op.bytes_read + op.bytes_written for op in graph.ops), np.float64,
                        len(graph.ops)), [op.op_type for op in graph.ops], [pe])[:, 0]
        return np.array([pe.overhead_us + lat[op.name] if op.name in lat else fallback[i]
                         for i, op in enumerate(graph.ops)])

    return times


@dataclass(frozen=True, eq=False)
class SchedulingProblem:
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


def critical_path_lb(problem: SchedulingProblem) -> float:
    """A makespan lower bound: the longest path with every op on its fastest PE and free transfers
    (from the release times), and the earliest release plus the total fastest work divided by
    the number of PEs."""
    cp = float(np.max(problem.head_us + problem.min_durations_us + problem.tail_us))
    work = float(problem.release_us.min()) + float(problem.min_durations_us.sum()) / problem.n_pes
    return max(cp, work)


def roofline_times(flops: np.ndarray, nbytes: np.ndarray, op_types: Sequence[str],
                   pes: Sequence[PEConfig]) -> np.ndarray:
    """(n_ops, n_pes) roofline times in µs (``inf`` where a PE cannot run the op type), vectorized."""
    types = sorted(set(op_types))
    type_idx = np.fromiter((types.index(t) for t in op_types), np.int64, len(op_types)) \
        if len(types) < 64 else np.asarray([{t: k for k, t in enumerate(types)}[t] for t in op_types])
    thr = np.array([[pe.throughput(t) for pe in pes] for t in types], dtype=np.float64)  # (T, P)
    bw = np.array([pe.bandwidth_gbps for pe in pes]) * 1e3  # bytes per µs
    ovh = np.array([pe.overhead_us for pe in pes])
    thr_op = thr[type_idx] * 1e3  # FLOP per µs, (n, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        compute = np.where(thr_op > 0, np.asarray(flops, np.float64)[:, None] / thr_op, np.inf)
    memory = np.asarray(nbytes, np.float64)[:, None] / bw[None, :]
    return ovh[None, :] + np.maximum(compute, memory)


def build_problem(graph: Graph, platform: str | Path | Mapping[str, Any] | Platform,
                  op_time: Mapping[str, OpTimeFn] | None = None) -> SchedulingProblem:
    """Compile a graph and a platform into a :class:`SchedulingProblem`.

    ``op_time`` maps a PE name or kind to an :data:`OpTimeFn` that replaces the roofline time on
    that PE (which ops the PE can run still comes from its throughput table).
    """
    plat = load_platform(platform)
    ops = graph.ops
    if not ops:
        raise EmptyGraphError(f"graph {graph.name!r} has no ops to schedule; give a non-empty model")
    n = len(ops)
    flops = np.fromiter((op.flops for op in ops), np.float64, n)
    nbytes = np.fromiter((op.bytes_read + op.bytes_written for op in ops), np.float64, n)
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
    return SchedulingProblem(
        name=graph.name, op_names=tuple(op.name for op in ops), op_types=tuple(types),
        pe_names=plat.pe_names, durations_us=dur, edge_src=src, edge_dst=dst, edge_bytes=eb,
        edge_comm_us=plat.interconnect.transfer_us(eb),
        active_power_w=np.array([pe.active_power_w for pe in plat.pes]),
        idle_power_w=np.array([pe.idle_power_w for pe in plat.pes]),
        transfer_energy_pj_per_byte=plat.interconnect.energy_pj_per_byte,
        op_flops=flops, op_bytes=nbytes)


def random_problem(n_ops: int, n_pes: int, seed: int = 0, edge_prob: float = 0.3,
                   max_duration: int = 20, max_comm: int = 10, unsupported_prob: float = 0.1,
                   name: str | None = None) -> SchedulingProblem:
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
    return SchedulingProblem(
        name=name or f"random{n_ops}x{n_pes}s{seed}", op_names=tuple(f"op{i}" for i in range(n_ops)),
        op_types=("Op",) * n_ops, pe_names=tuple(f"pe{p}" for p in range(n_pes)), durations_us=dur,
        edge_src=np.array(src, np.int64), edge_dst=np.array(dst, np.int64),
        edge_bytes=comm * 1e3, edge_comm_us=comm, active_power_w=np.ones(n_pes),
        idle_power_w=np.full(n_pes, 0.1))


# ---- schedules ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Schedule:
    """An op → PE assignment with start times (µs). ``order`` is the dispatch order that built it
    (op indices), which replays in the scheduling env use; None means "by start time"."""

    assignment: np.ndarray
    start_us: np.ndarray
    order: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "assignment", np.asarray(self.assignment, dtype=np.int64).reshape(-1))
        object.__setattr__(self, "start_us", np.asarray(self.start_us, dtype=np.float64).reshape(-1))
        if self.order is not None:
            object.__setattr__(self, "order", np.asarray(self.order, dtype=np.int64).reshape(-1))

    def finish_us(self, problem: SchedulingProblem) -> np.ndarray:
        """Finish time of every op under ``problem``'s op times."""
        a = np.clip(self.assignment, 0, problem.n_pes - 1)
        return self.start_us + problem.durations_us[np.arange(problem.n_ops), a]

    def makespan_us(self, problem: SchedulingProblem) -> float:
        return float(np.max(self.finish_us(problem)))

    def dispatch_order(self, problem: SchedulingProblem) -> np.ndarray:
        """``order`` if set, else ops by (start time, topological position)."""
        if self.order is not None:
            return self.order
        pos = np.empty(problem.n_ops, np.int64)
        pos[problem.topo_order] = np.arange(problem.n_ops)
        return np.lexsort((pos, self.start_us))

    def to_dict(self, problem: SchedulingProblem) -> dict[str, Any]:
        """Op name → {pe, start_us, finish_us}."""
        fin = self.finish_us(problem)
        return {problem.op_names[i]: {"pe": problem.pe_names[int(self.assignment[i])],
                                      "start_us": float(self.start_us[i]), "finish_us": float(fin[i])}
                for i in range(problem.n_ops)}


def schedule_from_order(problem: SchedulingProblem, assignment: Sequence[int] | np.ndarray,
                        order: Sequence[int] | np.ndarray | None = None) -> Schedule:
    """Start every op as early as its release, its inputs (incl. transfers) and the previous op on
    its PE allow.

    The sequence of ops on each PE is their sequence in ``order`` (default: topological order;
    zero-length ops take no PE time and are left out of the sequence);
    raises InvalidScheduleError when that sequence contradicts the dependencies (a deadlock).
    """
    n, P = problem.n_ops, problem.n_pes
    a = np.asarray(assignment, dtype=np.int64).reshape(-1)
    if a.shape != (n,) or a.min() < 0 or a.max() >= P:
        raise InvalidScheduleError(f"assignment must give one PE index in [0, {P}) for each of {n} ops")
    if not problem.capable[np.arange(n), a].all():
        i = int(np.flatnonzero(~problem.capable[np.arange(n), a])[0])
        raise InvalidScheduleError(f"op {problem.op_names[i]!r} ({problem.op_types[i]}) cannot run on "
                                   f"PE {problem.pe_names[a[i]]!r}")
    seq = problem.topo_order if order is None else np.asarray(order, dtype=np.int64).reshape(-1)
    if sorted(seq.tolist()) != list(range(n)):
        raise InvalidScheduleError(f"order must list each of the {n} op indices exactly once")
    # chain edges: consecutive ops of positive length on one PE (a zero-length op occupies nothing)
    dur = problem.durations_us[np.arange(n), a]
    prev_on_pe = np.full(n, -1, np.int64)
    last = np.full(P, -1, np.int64)
    for i in seq.tolist():
        if dur[i] > 0:
            prev_on_pe[i] = last[a[i]]
            last[a[i]] = i
    src, dst, comm = problem.edge_src.tolist(), problem.edge_dst.tolist(), problem.edge_comm_us.tolist()
    preds: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for s, d, c in zip(src, dst, comm):
        preds[d].append((s, c if a[s] != a[d] else 0.0))
        succs[s].append(d)
    for i in range(n):
        if prev_on_pe[i] >= 0:
            preds[i].append((int(prev_on_pe[i]), 0.0))
            succs[int(prev_on_pe[i])].append(i)
    indeg = [len(p) for p in preds]
    stack = [i for i in range(n) if indeg[i] == 0]
    start = np.zeros(n)
    finish = np.zeros(n)
    release = problem.release_us.tolist()
    done = 0
    while stack:
        i = stack.pop()
        done += 1
        start[i] = max((finish[s] + c for s, c in preds[i]), default=0.0)
        start[i] = max(start[i], release[i])
        finish[i] = start[i] + dur[i]
        for j in succs[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                stack.append(j)
    if done != n:
        raise InvalidScheduleError("the per-PE op order contradicts the dependencies (deadlock); "
                                   "order must be consistent with a topological order")
    return Schedule(assignment=a, start_us=start, order=seq)


def earliest_start(intervals: Sequence[tuple[float, float]], ready_us: float, duration_us: float) -> float:
    """Insertion policy: the earliest time ≥ ``ready_us`` at which a PE whose busy ``intervals``
    (sorted, disjoint (start, finish) pairs) has an idle gap of ``duration_us``. A zero-length op
    fits anywhere."""
    t = ready_us
    if duration_us <= 0:
        return t
    # intervals before the last one starting at or before t end by t: skip them (bisect)
    for k in range(max(bisect.bisect_right(intervals, (t, math.inf)) - 1, 0), len(intervals)):
        s0, f0 = intervals[k]
        if f0 <= t:
            continue
        if s0 >= t + duration_us:
            break
        t = f0
    return t


# ---- validation and simulation --------------------------------------------------------------


@dataclass(frozen=True)
class ValidityReport:
    """Whether a schedule is executable, and one line per violation (first 20 kept)."""

    valid: bool
    violations: tuple[str, ...] = ()
    n_dependency: int = 0
    n_overlap: int = 0
    n_placement: int = 0
    n_release: int = 0

    def raise_if_invalid(self) -> None:
        if not self.valid:
            total = self.n_dependency + self.n_overlap + self.n_placement + self.n_release
            more = f" (+{total - 1} more)" if total > 1 else ""
            raise InvalidScheduleError(self.violations[0] + more)


def _tol(x: np.ndarray | float) -> np.ndarray | float:
    return 1e-6 + 1e-9 * np.abs(x)


def validate(problem: SchedulingProblem, schedule: Schedule) -> ValidityReport:
    """Check placement (valid PE that can run the op), release times (no op starts before its job
    arrives), dependencies incl. transfer delays, and that no two ops of positive length overlap
    on one PE. Vectorized over ops and edges."""
    n, P = problem.n_ops, problem.n_pes
    a, s = schedule.assignment, schedule.start_us
    msgs: list[str] = []
    if a.shape != (n,) or s.shape != (n,):
        msg = (f"schedule has {a.size} assignments and {s.size} start times for {n} ops; "
               "give one of each per op")
        return ValidityReport(False, (msg,), n_placement=1)
    bad_pe = (a < 0) | (a >= P)
    if bad_pe.any():
        i = int(np.flatnonzero(bad_pe)[0])
        msg = f"op {problem.op_names[i]!r} is assigned to PE index {a[i]}, outside [0, {P})"
        return ValidityReport(False, (msg,), n_placement=int(bad_pe.sum()))
    idx = np.arange(n)
    cannot = ~problem.capable[idx, a]
    bad_start = ~np.isfinite(s) | (s < -_tol(0.0))
    for i in np.flatnonzero(cannot)[:20]:
        msgs.append(f"op {problem.op_names[i]!r} ({problem.op_types[i]}) cannot run on PE "
                    f"{problem.pe_names[a[i]]!r}")
    for i in np.flatnonzero(bad_start)[:20]:
        msgs.append(f"op {problem.op_names[i]!r} has start time {s[i]}, which is not a finite time ≥ 0")
    n_place = int(cannot.sum() + bad_start.sum())
    rel = problem.release_us
    early = np.isfinite(s) & (s < rel - _tol(rel))
    for i in np.flatnonzero(early)[:20]:
        msgs.append(f"op {problem.op_names[i]!r} starts at {s[i]:.6g} us, before its release at "
                    f"{rel[i]:.6g} us (its job has not arrived)")
    n_release = int(early.sum())
    dur = np.where(cannot, 0.0, problem.durations_us[idx, a])
    fin = s + dur
    # dependencies: consumer starts after producer finishes plus the transfer when PEs differ
    es, ed = problem.edge_src, problem.edge_dst
    ready = fin[es] + np.where(a[es] != a[ed], problem.edge_comm_us, 0.0)
    dep_bad = s[ed] < ready - _tol(ready)
    for e in np.flatnonzero(dep_bad)[:20]:
        i, j = int(es[e]), int(ed[e])
        msgs.append(f"op {problem.op_names[j]!r} starts at {s[j]:.6g} us before its input from "
                    f"{problem.op_names[i]!r} is available at {ready[e]:.6g} us")
    # overlap: per PE, positive-length ops by start; each must start after all earlier ones end
    n_overlap = 0
    pos = np.flatnonzero(dur > 0)
    for p in np.unique(a[pos]):
        on = pos[a[pos] == p]
        on = on[np.argsort(s[on], kind="stable")]
        prev_end = np.r_[-np.inf, np.maximum.accumulate(fin[on])[:-1]]
        ov = s[on] < prev_end - _tol(prev_end)
        n_overlap += int(ov.sum())
        for k in np.flatnonzero(ov)[:20]:
            other = on[:k][np.argmax(fin[on[:k]])]
            msgs.append(f"ops {problem.op_names[other]!r} and {problem.op_names[on[k]]!r} overlap "
                        f"on PE {problem.pe_names[p]!r} at {s[on[k]]:.6g} us")
    n_dep = int(dep_bad.sum())
    return ValidityReport(valid=not (n_place or n_dep or n_overlap or n_release),
                          violations=tuple(msgs[:20]), n_dependency=n_dep, n_overlap=n_overlap,
                          n_placement=n_place, n_release=n_release)


@dataclass(frozen=True)
class ExecutionResult:
    """What running a schedule gives: makespan, per-PE busy time and utilization, energy, validity."""

    makespan_us: float
    finish_us: np.ndarray
    busy_us: np.ndarray
    utilization: np.ndarray
    energy_uj: float
    compute_energy_uj: float
    idle_energy_uj: float
    transfer_energy_uj: float
    transferred_bytes: float
    report: ValidityReport = field(default_factory=lambda: ValidityReport(True))

    @property
    def valid(self) -> bool:
        return self.report.valid

    def metrics(self) -> dict[str, float]:
        """Scalar metrics with units in their names."""
        return {"makespan_us": self.makespan_us, "energy_uj": self.energy_uj,
                "utilization_mean": float(self.utilization.mean()),
                "transferred_bytes": self.transferred_bytes, "valid": float(self.valid)}


def simulate(problem: SchedulingProblem, schedule: Schedule, strict: bool = True) -> ExecutionResult:
    """Execute ``schedule``: makespan, per-PE utilization and energy, with a validity report.

    ``strict`` raises InvalidScheduleError on an invalid schedule; otherwise the report says why
    and the metrics describe the (infeasible) timing as given.
    """
    report = validate(problem, schedule)
    if strict:
        report.raise_if_invalid()
    n, P = problem.n_ops, problem.n_pes
    a = np.clip(schedule.assignment, 0, P - 1)
    dur = problem.durations_us[np.arange(n), a]
    dur = np.where(np.isfinite(dur), dur, 0.0)
    fin = schedule.start_us + dur
    makespan = float(fin.max())
    busy = np.bincount(a, weights=dur, minlength=P)
    util = busy / makespan if makespan > 0 else np.zeros(P)
    compute = float(busy @ problem.active_power_w)
    idle = float((makespan - busy) @ problem.idle_power_w)
    cross = a[problem.edge_src] != a[problem.edge_dst]
    moved = float(problem.edge_bytes[cross].sum())
    transfer = moved * problem.transfer_energy_pj_per_byte * 1e-6
    return ExecutionResult(makespan_us=makespan, finish_us=fin, busy_us=busy, utilization=util,
                           energy_uj=compute + idle + transfer, compute_energy_uj=compute,
                           idle_energy_uj=idle, transfer_energy_uj=transfer, transferred_bytes=moved,
                           report=report)


# ---- Evaluator ------------------------------------------------------------------------------

from mlsysgym.core.evaluator import Evaluator, Metrics


class MulticoreEvaluator(Evaluator):
    """Evaluator over schedules of one platform: a design is ``{"assignment": [pe index per op],
    "order": [op indices] (optional)}``; ops start as early as that order allows.

    Metrics: ``makespan_us``, ``energy_uj``, ``utilization_mean``, ``valid`` (1.0/0.0; an invalid
    design gets makespan and energy ``inf``). The workload is an ir.Graph or a SchedulingProblem.
    """

    name = "multicore"
    version = "1"
    metric_names = ("makespan_us", "energy_uj", "utilization_mean", "valid")

    def __init__(self, platform: str | Path | Mapping[str, Any] | Platform = "soc_npu",
                 op_time: Mapping[str, OpTimeFn] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.platform = load_platform(platform)
        self.op_time = op_time
        self._problems: dict[int, tuple[Any, SchedulingProblem]] = {}

    def problem(self, workload: Graph | SchedulingProblem) -> SchedulingProblem:
        """The compiled problem of a workload (memoized per workload object)."""
        if isinstance(workload, SchedulingProblem):
            return workload
        hit = self._problems.get(id(workload))
        if hit is None or hit[0] is not workload:
            hit = (workload, build_problem(workload, self.platform, self.op_time))
            self._problems[id(workload)] = hit
        return hit[1]

    def _evaluate(self, designs: Sequence[Mapping[str, Any]], workload: Any) -> Metrics:
        prob = self.problem(workload)
        rows = []
        for d in designs:
            try:
                sched = schedule_from_order(prob, d["assignment"], d.get("order"))
                r = simulate(prob, sched)
                rows.append((r.makespan_us, r.energy_uj, float(r.utilization.mean()), 1.0))
            except InvalidScheduleError:
                rows.append((np.inf, np.inf, 0.0, 0.0))
        cols = np.array(rows, dtype=np.float64).reshape(len(designs), 4)
        return {m: cols[:, k] for k, m in enumerate(self.metric_names)}

