"""The platform description: op classes, processing elements, the interconnect, presets, and the
roofline op time of an op on a PE.

A :class:`Platform` is a set of processing elements (:class:`PEConfig`: big and little CPU cores,
a DNN accelerator, a vector/DSP unit, ...) and an :class:`Interconnect`. Each PE has a throughput
per *op class* (``conv``, ``matmul``, ``elementwise``, ... see :data:`OP_CLASSES`) or per ONNX op
type, in GFLOP/s (1 MAC = 2 FLOPs); an op class or type it has no entry for (or an entry ≤ 0) is
one it cannot run. Its per-op time is a roofline (:func:`roofline_times`)::

    time_us = overhead_us + max(flops / throughput, (bytes_read + bytes_written) / bandwidth)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.ir.costs import DATA_MOVEMENT, ELEMENTWISE_FLOPS, REDUCTION_FLOPS
from mlsysgym.simulators.multicore.errors import PlatformError

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
