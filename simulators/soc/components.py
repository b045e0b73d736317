"""Per-component models of a mobile SoC at a 7 nm-class node: area, power, throughput.

Each row of :data:`COMPONENTS` is one kind of block with the figures the SoC model uses and
where they come from. "pub." marks a published figure (vendor, paper or datasheet, as cited);
"est." marks our estimate from public die-shot analyses or from scaling a published figure;
treat both as ±30 % numbers, good enough to rank platforms, not to sign off a chip.

================  ==========  ==========  =========  =========================================
block             area mm²    active W    at GHz     basis
================  ==========  ==========  =========  =========================================
big CPU core      1.40        0.75        2.6        Cortex-A76 + 256 KB L2, 7 nm. Area est.
                                                     from Kirin 980 / Snapdragon 855 die-shot
                                                     analyses (≈1.2–1.5 mm²); power: Arm's
                                                     A76 launch figure of ≤ 750 mW per core
                                                     (pub., 2018). Peak 16 FP32 FLOP/cycle
                                                     (2 × 128-bit NEON FMA pipes, pub.).
little CPU core   0.45        0.12        1.8        Cortex-A55 + 128 KB L2, 7 nm (area est.
                                                     from the same die shots); ≈0.12 W at
                                                     1.8 GHz (est. from AnandTech's per-core
                                                     SPEC power of A55 clusters). Peak 8 FP32
                                                     FLOP/cycle (one 128-bit FMA pipe, pub.).
GPU shader core   1.50        0.25        0.8        Mali-G76-class core: 3 engines × 8 lanes
                                                     FMA = 48 FLOP/cycle (pub., Arm); area and
                                                     power per core est. from Kirin 980's
                                                     G76 MP10 (≈15 mm², ≈2.5 W). A GPU of n
                                                     cores is one PE n times as wide (every
                                                     op split over its cores), 40 µs launch
                                                     overhead, 4 GB/s of port per core (est.).
DSP               3.00        0.60        1.0        Hexagon 690-class, 4 × 1024-bit HVX
                                                     (pub., Qualcomm); 256 FLOP-equivalent
                                                     per cycle; area and power est.
NPU per MAC       0.0032      0.5 pJ/MAC  (any)      Samsung Exynos 9820 NPU (Song et al.,
                                                     ISSCC 2019): 1,024 MACs in 5.5 mm² at
                                                     8 nm (pub.); we count 60 % of it as the
                                                     MAC array (the rest: its SRAM, modelled
                                                     apart); 0.5 pJ per MAC ≈ 4 TOPS/W, the
                                                     system-level efficiency of mobile NPUs
                                                     (est.; the paper's 11.5 TOPS/W is peak).
                                                     Op times: the PE-array model of
                                                     :mod:`mlsysgym.simulators.accelerator`.
SRAM (per MB)     0.45        0.010 leak  —          TSMC N7 high-density 6T cell 0.027 µm²
                                                     (pub., TSMC ISSCC 2017) at 50 % array
                                                     efficiency; 0.5 pJ/byte per access (est.).
LPDDR4X channel   1.25        0.34 peak   —          x16 at 4,266 MT/s = 8.53 GB/s (pub.,
                                                     JEDEC LPDDR4X); ≈40 pJ/byte ≈ 5 pJ/bit
                                                     incl. I/O (est. from Micron LPDDR4 IDD
                                                     currents); 20 mW background per channel
                                                     (est.); PHY + controller area est.
NoC router        0.004 bus   5 mW leak   —          Intel 80-tile TeraFLOPS router, 0.34 mm²
                  0.015 ring                         at 65 nm (pub., Vangal et al., JSSC
                  0.030 mesh                         2008), scaled by (7/65)² and ×3 (ring)
                                                     or ×6 (mesh) for 128-bit-plus links;
                                                     a bus port ≈ ×1 (est.); 0.8 pJ/byte per
                                                     hop (est.).
================  ==========  ==========  =========  =========================================

Clock scaling (ours): throughput ∝ f; active power ∝ f³ (dynamic power f·V² with V roughly ∝ f
over the DVFS range); idle (leakage) power does not scale.

Memory (ours): the system-level SRAM serves a fraction ``1 − miss`` of every op's bytes, with
``miss = min(1, sqrt(0.25 MB / size))`` (the "√2 rule" of cache miss rates, Hartstein et al.,
CF 2006: miss rate ∝ size^-1/2); the rest comes from DRAM. An op sees the bandwidth
``1 / (miss / dram + (1 − miss) / sram)`` capped by its PE's port bandwidth. Contention is not
modelled (the classic HEFT model): every op gets that bandwidth.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BIG", "COMPONENTS", "DRAM_CHANNEL", "DSP", "GPU_CORE", "LITTLE", "NOC", "NPU",
           "SRAM", "CoreModel", "dram_miss_rate"]


@dataclass(frozen=True)
class CoreModel:
    """A programmable PE kind: area, power at a reference clock, peak FLOP per cycle and the
    fraction of it each op class reaches (a class absent from ``efficiency`` cannot run)."""

    kind: str
    area_mm2: float
    active_w: float
    idle_w: float
    ref_ghz: float
    flop_per_cycle: float
    efficiency: dict[str, float]
    port_gbps: float
    overhead_us: float
    basis: str

    def throughput_gflops(self, ghz: float) -> dict[str, float]:
        """GFLOP/s per op class at ``ghz`` (a PEConfig throughput table)."""
        return {c: self.flop_per_cycle * ghz * e for c, e in self.efficiency.items()}

    def active_power_w(self, ghz: float) -> float:
        """Active power at ``ghz`` (∝ f³ from the reference clock)."""
        return self.active_w * (ghz / self.ref_ghz) ** 3


_CPU_EFF = {"conv": 0.55, "matmul": 0.6, "attention": 0.45, "elementwise": 0.12,
            "normalization": 0.08, "pool": 0.1, "reduction": 0.1, "data_movement": 0.12, "*": 0.06}

BIG = CoreModel("cpu_big", 1.40, 0.75, 0.03, 2.6, 16.0, _CPU_EFF, 25.0, 2.0,
                "Cortex-A76 + 256 KB L2 (7 nm)")
LITTLE = CoreModel("cpu_little", 0.45, 0.12, 0.005, 1.8, 8.0, _CPU_EFF, 10.0, 3.0,
                   "Cortex-A55 + 128 KB L2 (7 nm)")
GPU_CORE = CoreModel("gpu", 1.50, 0.25, 0.01, 0.8, 48.0,
                     {"conv": 0.5, "matmul": 0.55, "attention": 0.4, "elementwise": 0.3,
                      "normalization": 0.2, "pool": 0.3, "reduction": 0.2},
                     4.0, 40.0, "Mali-G76-class shader core (a GPU of n cores is one PE)")
DSP = CoreModel("dsp", 3.00, 0.60, 0.03, 1.0, 256.0,
                {"conv": 0.5, "matmul": 0.5, "attention": 0.3, "elementwise": 0.3,
                 "normalization": 0.25, "pool": 0.4, "reduction": 0.3},
                25.0, 20.0, "Hexagon 690-class DSP, 4 × 1024-bit HVX")


@dataclass(frozen=True)
class NpuModel:
    """The NPU: a PE array of the accelerator model; area and energy per MAC."""

    area_mm2_per_mac: float = 5.5 * 0.6 / 1024
    pj_per_mac: float = 0.5
    idle_w: float = 0.02
    port_gbps: float = 32.0
    overhead_us: float = 30.0
    classes: tuple[str, ...] = ("conv", "matmul", "pool", "elementwise")
    basis: str = "Exynos 9820 NPU, 1,024 MACs in 5.5 mm² (8 nm)"

    def active_power_w(self, macs: int, ghz: float) -> float:
        """Power with every MAC busy."""
        return macs * ghz * self.pj_per_mac * 1e-3


@dataclass(frozen=True)
class SramModel:
    """System-level SRAM (last-level cache / shared scratchpad)."""

    mm2_per_mb: float = 8 * 1024 * 1024 * 0.027e-6 / 0.5  # 0.453 mm² per MB
    leak_w_per_mb: float = 0.010
    pj_per_byte: float = 0.5
    gbps: float = 128.0
    full_miss_mb: float = 0.25  # at or below this size every byte misses


@dataclass(frozen=True)
class DramChannelModel:
    """One LPDDR4X-4266 x16 channel."""

    gbps: float = 4266e6 * 2 / 1e9
    pj_per_byte: float = 40.0
    background_w: float = 0.020
    area_mm2: float = 1.25

    @property
    def peak_w(self) -> float:
        return self.gbps * self.pj_per_byte * 1e-3


@dataclass(frozen=True)
class NocModel:
    """Bus, ring or mesh: router area/leakage per endpoint, per-hop energy, sync latency."""

    router_mm2: tuple[tuple[str, float], ...] = (("bus", 0.004), ("ring", 0.015), ("mesh", 0.030))
    router_leak_w: float = 0.005
    pj_per_byte_hop: float = 0.8
    sync_us: float = 2.0
    hop_ns: float = 3.0

    def router_area(self, topology: str) -> float:
        return dict(self.router_mm2)[topology]


NPU = NpuModel()
SRAM = SramModel()
DRAM_CHANNEL = DramChannelModel()
NOC = NocModel()

COMPONENTS: dict[str, object] = {"cpu_big": BIG, "cpu_little": LITTLE, "gpu": GPU_CORE,
                                 "dsp": DSP, "npu": NPU, "sram": SRAM, "dram": DRAM_CHANNEL,
                                 "noc": NOC}
"""Every block model by name (the table of the module docstring)."""


def dram_miss_rate(sram_mb: float) -> float:
    """Fraction of bytes that miss a system SRAM of ``sram_mb`` MB (1 with no SRAM)."""
    if sram_mb <= 0:
        return 1.0
    return min(1.0, (SRAM.full_miss_mb / sram_mb) ** 0.5)
