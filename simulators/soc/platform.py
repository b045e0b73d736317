"""The SoC design space and what a design builds: a multi-core :class:`Platform` plus the
uncore (system SRAM, NoC, DRAM channels), with area and peak power from
:mod:`mlsysgym.simulators.soc.components`.

A design picks how many big / little CPU cores (one PE each) and their clocks, GPU shader cores
(one GPU PE, its cores splitting every op), DSPs, an NPU
(a square PE array of the accelerator model, its SRAM and clock; ``npu_array=0``: none), the
system SRAM size, the NoC topology (bus / ring / mesh) and link bandwidth, and the LPDDR4X
channels. At least one big core is always there, so every op has a PE that can run it.

NoC (ours): with N endpoints (the PEs and the memory system), a transfer crosses
``hops`` routers (bus 1, ring N/4, mesh 2/3·√N, at least 1) and sees the link bandwidth times
the bisection links (bus 1, ring 2, mesh √N); its latency is a 2 µs synchronization (a
producer/consumer hand-off between PEs) plus 3 ns per hop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from mlsysgym.core.params import Categorical, Integer
from mlsysgym.core.space import DesignSpace
from mlsysgym.simulators.multicore.hardware import Interconnect, PEConfig, Platform
from mlsysgym.simulators.soc.components import (
    BIG,
    DRAM_CHANNEL,
    DSP,
    GPU_CORE,
    LITTLE,
    NOC,
    NPU,
    SRAM,
    CoreModel,
    dram_miss_rate,
)

__all__ = ["REFERENCE_DESIGN", "SOC_SPACE", "SocPlatform", "soc_platform", "soc_space"]

REFERENCE_DESIGN: dict[str, Any] = {
    "big_cores": 4, "big_ghz": 2.4, "little_cores": 4, "little_ghz": 1.8, "gpu_cores": 8,
    "dsps": 1, "npu_array": 32, "npu_sram_kb": 1024, "npu_ghz": 1.0, "sram_mb": 4,
    "noc": "ring", "noc_gbps": 64, "dram_channels": 4}
"""A hand-designed, Snapdragon 855-class phone SoC: 4 Cortex-A76-class cores at 2.4 GHz (the
855 has 1 at 2.84 + 3 at 2.42 GHz) + 4 Cortex-A55-class at 1.8 GHz, a GPU of 8 shader cores
(≈300 GFLOP/s in this model; Adreno 640 is faster), one Hexagon-class DSP, a 1,024-MAC NPU
(the 855's tensor accelerator class), 4 MB of system SRAM (its 2 MB L3 + 3 MB system cache),
a ring (Arm's DynamIQ cluster / CCI class) and 4 LPDDR4X-4266 x16 channels (the 855's)."""


def soc_space() -> DesignSpace:
    """The SoC-v0 search grid; its default is :data:`REFERENCE_DESIGN`.

    4 × 3 × 4 × 2 × 5 × 3 × 4 × 3 × 2 × 6 × 3 × 4 × 3 ≈ 30 M designs.
    """
    return DesignSpace([
        Integer("big_cores", 1, 4),
        Categorical("big_ghz", (1.8, 2.4, 2.8)),
        Categorical("little_cores", (0, 2, 4, 6)),
        Categorical("little_ghz", (1.2, 1.8)),
        Categorical("gpu_cores", (0, 2, 4, 6, 8)),
        Integer("dsps", 0, 2),
        Categorical("npu_array", (0, 16, 32, 64)),
        Categorical("npu_sram_kb", (256, 1024, 4096)),
        Categorical("npu_ghz", (0.5, 1.0)),
        Categorical("sram_mb", (0, 1, 2, 4, 8, 16)),
        Categorical("noc", ("bus", "ring", "mesh")),
        Categorical("noc_gbps", (16, 32, 64, 128)),
        Categorical("dram_channels", (1, 2, 4)),
    ], default=REFERENCE_DESIGN)


SOC_SPACE = soc_space()


@dataclass(frozen=True)
class SocPlatform:
    """What a design builds. ``platform`` holds the PEs and the NoC as a multi-core
    :class:`Platform` (NPU ops are timed by the accelerator model, ``npu_design``; the GPU is
    one PE whose shader cores split every op); ``pe_keys`` names each PE's (kind, clock,
    width), which fixes its throughput table; the uncore
    figures are per platform: ``miss`` (fraction of bytes from DRAM), ``byte_pj`` (energy per
    op byte: DRAM misses and SRAM hits), ``static_w`` (SRAM leakage, routers, DRAM background),
    ``area`` (mm² by block) and ``peak_power_w`` (every PE busy, DRAM at full bandwidth)."""

    design: dict[str, Any]
    platform: Platform
    kinds: tuple[str, ...]
    pe_keys: tuple[tuple[str, float, int], ...]
    npu_index: int
    npu_design: dict[str, Any] | None
    miss: float
    mem_gbps: float
    byte_pj: float
    static_w: float
    area: dict[str, float] = field(default_factory=dict)
    peak_power_w: float = 0.0

    @property
    def area_mm2(self) -> float:
        return float(sum(self.area.values()))

    @cached_property
    def active_power_w(self) -> np.ndarray:
        return np.array([pe.active_power_w for pe in self.platform.pes])

    @cached_property
    def idle_power_w(self) -> np.ndarray:
        return np.array([pe.idle_power_w for pe in self.platform.pes])


_MODELS = {m.kind: m for m in (BIG, LITTLE, GPU_CORE, DSP)}


@lru_cache(maxsize=4096)
def _cores(kind: str, prefix: str, count: int, ghz: float, mem_gbps: float,
           width: int = 1) -> tuple[PEConfig, ...]:
    """``count`` PEs of one kind, each ``width`` cores wide (a GPU: its shader cores split
    every op), memoized: designs share them, and so do the throughput tables computed from
    them."""
    model: CoreModel = _MODELS[kind]
    thr = {c: width * v for c, v in model.throughput_gflops(ghz).items()}
    return tuple(PEConfig(name=f"{prefix}{i}", kind=model.kind, throughput_gflops=thr,
                          bandwidth_gbps=min(width * model.port_gbps, mem_gbps),
                          active_power_w=width * model.active_power_w(ghz),
                          idle_power_w=width * model.idle_w, overhead_us=model.overhead_us)
                 for i in range(count))


def _noc(topology: str, link_gbps: float, endpoints: int) -> tuple[Interconnect, float]:
    """The interconnect a transfer sees and the mean hop count."""
    root = math.sqrt(endpoints)
    hops = {"bus": 1.0, "ring": endpoints / 4, "mesh": 2 * root / 3}[topology]
    hops = max(hops, 1.0)
    links = {"bus": 1.0, "ring": 2.0, "mesh": root}[topology]
    return Interconnect(bandwidth_gbps=link_gbps * links,
                        latency_us=NOC.sync_us + hops * NOC.hop_ns * 1e-3,
                        energy_pj_per_byte=hops * NOC.pj_per_byte_hop), hops


def soc_platform(design: Mapping[str, Any]) -> SocPlatform:
    """Build the platform of a (validated) SoC design."""
    d = dict(design)
    miss = dram_miss_rate(float(d["sram_mb"]))
    dram_gbps = int(d["dram_channels"]) * DRAM_CHANNEL.gbps
    mem_gbps = 1.0 / (miss / dram_gbps + (1.0 - miss) / SRAM.gbps)
    gpu = int(d["gpu_cores"])
    groups = (("big", BIG, int(d["big_cores"]), float(d["big_ghz"]), 1),
              ("little", LITTLE, int(d["little_cores"]), float(d["little_ghz"]), 1),
              ("gpu", GPU_CORE, 1 if gpu else 0, GPU_CORE.ref_ghz, gpu),
              ("dsp", DSP, int(d["dsps"]), DSP.ref_ghz, 1))
    pes = [pe for prefix, m, count, ghz, width in groups
           for pe in _cores(m.kind, prefix, count, ghz, mem_gbps, width)]
    keys = [(m.kind, ghz, width) for _, m, count, ghz, width in groups for _ in range(count)]
    area = {"cpu_big": BIG.area_mm2 * int(d["big_cores"]),
            "cpu_little": LITTLE.area_mm2 * int(d["little_cores"]),
            "gpu": GPU_CORE.area_mm2 * int(d["gpu_cores"]), "dsp": DSP.area_mm2 * int(d["dsps"])}
    npu_design, npu_index = None, -1
    side = int(d["npu_array"])
    if side > 0:
        macs, ghz, sram_kb = side * side, float(d["npu_ghz"]), float(d["npu_sram_kb"])
        port = min(NPU.port_gbps, mem_gbps)
        npu_design = {"rows": side, "cols": side, "dataflow": "ws", "ifmap_kb": sram_kb * 3 / 8,
                      "filter_kb": sram_kb * 3 / 8, "ofmap_kb": sram_kb / 4,
                      "bandwidth": port / ghz, "word_bytes": 1, "clock_mhz": ghz * 1e3}
        npu_index = len(pes)
        keys.append(("npu", ghz, macs))
        pes.append(PEConfig(name="npu", kind="npu",
                            throughput_gflops={c: 2.0 * macs * ghz for c in NPU.classes},
                            bandwidth_gbps=port, active_power_w=NPU.active_power_w(macs, ghz),
                            idle_power_w=NPU.idle_w, overhead_us=NPU.overhead_us))
        area["npu"] = NPU.area_mm2_per_mac * macs + SRAM.mm2_per_mb * sram_kb / 1024
    endpoints = len(pes) + 1
    ic, _ = _noc(str(d["noc"]), float(d["noc_gbps"]), endpoints)
    area["sram"] = SRAM.mm2_per_mb * float(d["sram_mb"])
    area["noc"] = NOC.router_area(str(d["noc"])) * endpoints
    area["dram_phy"] = DRAM_CHANNEL.area_mm2 * int(d["dram_channels"])
    static_w = (SRAM.leak_w_per_mb * float(d["sram_mb"]) + NOC.router_leak_w * endpoints
                + DRAM_CHANNEL.background_w * int(d["dram_channels"]))
    plat = Platform(name="soc", pes=tuple(pes), interconnect=ic)
    peak = float(sum(pe.active_power_w for pe in pes)) + static_w \
        + DRAM_CHANNEL.peak_w * int(d["dram_channels"])
    return SocPlatform(design=d, platform=plat, kinds=tuple(pe.kind for pe in pes),
                       pe_keys=tuple(keys),
                       npu_index=npu_index, npu_design=npu_design, miss=miss,
                       mem_gbps=mem_gbps,
                       byte_pj=miss * DRAM_CHANNEL.pj_per_byte + (1 - miss) * SRAM.pj_per_byte,
                       static_w=static_w, area=area, peak_power_w=peak)
