"""Devices and clusters for the serving simulator, from public datasheets.

Every :class:`Device` carries dense (no sparsity) peak FLOP/s per dtype, memory capacity and
bandwidth, board power (TDP) and an idle power, and its links: the intra-node link (NVLink or
PCIe, per-direction GB/s and a per-message latency) and the inter-node network (per device).

Sources (dense tensor peaks; "sparse ÷ 2" where a datasheet lists only sparse figures):

=================  ===================================================================
A100-40GB/80GB     NVIDIA A100 Tensor Core GPU datasheet (SXM4): BF16 312 TFLOPS, INT8
                   624 TOPS, 1,555 / 2,039 GB/s HBM2(e), 400 W, NVLink 3: 600 GB/s total
                   (300 GB/s per direction)
H100-SXM / -PCIe   NVIDIA H100 Tensor Core GPU datasheet: SXM BF16 989 TFLOPS, FP8 1,979,
                   80 GB HBM3 3.35 TB/s, 700 W, NVLink 4 900 GB/s total; PCIe BF16 756,
                   FP8 1,513, HBM2e 2.0 TB/s, 350 W, PCIe Gen5 128 GB/s total
H200               NVIDIA H200 datasheet: BF16 989 / FP8 1,979 TFLOPS, 141 GB HBM3e
                   4.8 TB/s, 700 W, NVLink 900 GB/s total
L40S               NVIDIA L40S datasheet: BF16 362 / FP8 733 TFLOPS dense, 48 GB GDDR6
                   864 GB/s, 350 W, PCIe Gen4 x16 64 GB/s total
RTX 4090           NVIDIA Ada GPU architecture whitepaper, Appendix A: FP16/BF16 tensor with
                   FP32 accumulate 165.2 TFLOPS dense, FP8 330.3; 24 GB GDDR6X 1,008 GB/s;
                   450 W; PCIe Gen4 x16
RTX PRO 6000       NVIDIA RTX PRO 6000 Blackwell Workstation Edition datasheet: 96 GB GDDR7
                   1,792 GB/s, 600 W, PCIe Gen5 x16; FP4 4 PFLOPS sparse → BF16 ≈ 504,
                   FP8 ≈ 1,008 TFLOPS dense (FP4 ÷ 8, ÷ 4); the Server Edition (its kernel
                   profiles, :mod:`.calibration`) has the same chip, memory and 600 W
TPU-v5p            Google Cloud TPU v5p documentation: 459 TFLOPS BF16, 918 TOPS INT8, 95 GB
                   HBM2e 2,765 GB/s, ICI 4,800 Gbps per chip; power not published (the 450 W
                   here is an assumption, marked as such)
CPU-EPYC-9654      AMD EPYC 9654 (Genoa) datasheet: 96 cores, 2.4 GHz base, 360 W, 12 ×
                   DDR5-4800 channels = 460.8 GB/s; BF16 peak 96 · 2.4 GHz · 64 FLOP/cycle
                   (AVX-512 BF16 dot products on Zen 4's two 256-bit pipes) = 14.7 TFLOPS
=================  ===================================================================

Measured throughput (``gemm_bf16_tflops``, ``copy_gbps``; median over published runs, which
:func:`.calibration.device_scales` turns into factors on the H200-fitted kernel efficiencies):

=================  ===================================================================
best square BF16   community table ``zzc0721/torch-performance-test-data`` (``database.md``
``torch.matmul``   at commit 0785868; issues #44, #160, #161, #162), TFLOP/s per run:
(TFLOP/s)          H200 790.29; A100 SXM4 80GB 264.53; L40S 269.15; RTX 4090 (24 GB
                   boards) 170.06, 173.31, 162.39, 163.09 → 166.575; RTX PRO 6000 (Workstation
                   and Server) 417.98, 409.42, 368.43, 417.34 → 413.38. H100-SXM: 789.24 and
                   783.66 (within 0.5 % of the H200's fraction of peak, the same GH100 die):
                   not set, so it keeps the H200's efficiencies as before
device copy GB/s   ``xytpai/nvbench`` ``global_memory_bandwidth.cu`` (best vector width):
(read + write)     RTX 4090 921.85, A100-40GB 1,379.71; ``chsasank/device-benchmarks``
                   README: RTX 4090 912 → 916.925
=================  ===================================================================

A user calibrates a device of their own the same way: measure both and set them in a cluster
file (``overrides: {gemm_bf16_tflops: ..., copy_gbps: ...}``). (Devices with published kernel
profiles, the RTX 4090 and RTX PRO 6000, are calibrated on those instead:
:func:`.calibration.device_calibration`.)

Memory capacities are taken as GiB (an "80 GB" H100 shows 79.6 GiB to CUDA).
Idle power: 120 W for the H200 (measured, ``fp_idle_power_w`` in
``benchmarks/data/gpu/h200_kernels.parquet``); other devices take the same fraction of TDP
(17 %) — an assumption. Link latencies (per collective step): NVLink 5 µs, PCIe 10 µs,
inter-node InfiniBand NDR 400 Gb/s per GPU with 10 µs — order-of-magnitude figures from the
NCCL small-message regime, stated as assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError

__all__ = ["DEVICES", "Cluster", "Device", "UnknownDeviceError", "device_names", "load_cluster",
           "load_device"]


class UnknownDeviceError(MlsysgymError):
    """A device name that is not known, or a cluster file that cannot be read."""


@dataclass(frozen=True)
class Device:
    """One accelerator: peaks, memory, power and links (bandwidths in bytes/s, per direction)."""

    name: str
    flops: dict[str, float]       # dense peak FLOP/s per dtype
    mem_bytes: float
    mem_bw: float
    tdp_w: float
    link_bw: float                # intra-node, per direction
    link_latency_s: float
    net_bw: float                 # inter-node, per device, per direction
    net_latency_s: float = 10e-6
    idle_fraction: float = 120.0 / 700.0
    gemm_bf16_tflops: float = 0.0  # measured best square BF16 matmul (0: none published)
    copy_gbps: float = 0.0         # measured device copy bandwidth, read + write (0: none)
    source: str = ""

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for compute in ``dtype`` (int4 weights compute in the activation
        dtype, so they take the bf16 peak; a dtype the device lacks falls back to bf16)."""
        if dtype == "int4":
            dtype = "bf16"
        return self.flops.get(dtype, self.flops["bf16"])

    @property
    def idle_w(self) -> float:
        """Power when idle."""
        return self.idle_fraction * self.tdp_w


_T = 1e12
_G = 1e9
_GIB = float(1 << 30)  # memory capacities: a "80 GB" HBM part holds 80 GiB
_NVL3, _NVL4 = 300 * _G, 450 * _G
_IB_NDR = 50 * _G  # 400 Gb/s per GPU
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("A100-40GB", {"bf16": 312 * _T, "fp16": 312 * _T, "int8": 624 * _T}, 40 * _GIB,
           1555 * _G, 400, _NVL3, 5e-6, 25 * _G, copy_gbps=1379.71,
           source="A100 datasheet (SXM4 40GB)"),
    Device("A100-80GB", {"bf16": 312 * _T, "fp16": 312 * _T, "int8": 624 * _T}, 80 * _GIB,
           2039 * _G, 400, _NVL3, 5e-6, 25 * _G, gemm_bf16_tflops=264.53,
           source="A100 datasheet (SXM4 80GB)"),
    Device("H100-SXM", {"bf16": 989 * _T, "fp16": 989 * _T, "fp8": 1979 * _T, "int8": 1979 * _T},
           80 * _GIB, 3350 * _G, 700, _NVL4, 5e-6, _IB_NDR, source="H100 datasheet (SXM5)"),
    Device("H100-PCIe", {"bf16": 756 * _T, "fp16": 756 * _T, "fp8": 1513 * _T, "int8": 1513 * _T},
           80 * _GIB, 2000 * _G, 350, 64 * _G, 10e-6, _IB_NDR, source="H100 datasheet (PCIe)"),
    Device("H200", {"bf16": 989 * _T, "fp16": 989 * _T, "fp8": 1979 * _T, "int8": 1979 * _T},
           141 * _GIB, 4800 * _G, 700, _NVL4, 5e-6, _IB_NDR, gemm_bf16_tflops=790.29,
           source="H200 datasheet (SXM)"),
    Device("L40S", {"bf16": 362 * _T, "fp16": 362 * _T, "fp8": 733 * _T, "int8": 733 * _T},
           48 * _GIB, 864 * _G, 350, 32 * _G, 10e-6, 25 * _G, gemm_bf16_tflops=269.15,
           source="L40S datasheet"),
    Device("RTX-4090", {"bf16": 165.2 * _T, "fp16": 165.2 * _T, "fp8": 330.3 * _T,
                        "int8": 330.3 * _T}, 24 * _GIB, 1008 * _G, 450, 32 * _G, 10e-6, 12.5 * _G,
           gemm_bf16_tflops=166.575, copy_gbps=916.925,
           source="Ada architecture whitepaper, RTX 4090"),
    Device("RTX-PRO-6000", {"bf16": 504 * _T, "fp16": 504 * _T, "fp8": 1008 * _T,
                            "int8": 1008 * _T}, 96 * _GIB, 1792 * _G, 600, 64 * _G, 10e-6, 50 * _G,
           gemm_bf16_tflops=413.38,
           source="RTX PRO 6000 Blackwell Workstation Edition datasheet"),
    Device("TPU-v5p", {"bf16": 459 * _T, "int8": 918 * _T}, 95 * _GIB, 2765 * _G, 450,
           300 * _G, 5e-6, 75 * _G, source="Cloud TPU v5p docs (power assumed)"),
    Device("CPU-EPYC-9654", {"bf16": 14.7 * _T, "fp32": 7.4 * _T}, 768 * _GIB, 460.8 * _G, 360,
           64 * _G, 10e-6, 25 * _G, source="AMD EPYC 9654 datasheet (12 x 64 GB DDR5)"),
)}
_ALIASES = {"h100": "H100-SXM", "h100-sxm-80gb": "H100-SXM", "h100-sxm5": "H100-SXM",
            "a100": "A100-80GB", "rtx4090": "RTX-4090", "4090": "RTX-4090",
            "rtxpro6000": "RTX-PRO-6000", "rtx-pro-6000": "RTX-PRO-6000", "h200-sxm": "H200",
            "tpu": "TPU-v5p", "cpu": "CPU-EPYC-9654"}


def device_names() -> list[str]:
    """The known device names."""
    return list(DEVICES)


def load_device(name: str | Device) -> Device:
    """A Device by name (case-insensitive, a few aliases: ``h100``, ``rtx4090``, ``tpu``, ``cpu``)."""
    if isinstance(name, Device):
        return name
    lower = {k.lower(): k for k in DEVICES}
    key = lower.get(str(name).lower()) or _ALIASES.get(str(name).lower().replace(" ", ""))
    if key is None:
        raise UnknownDeviceError(f"unknown device {name!r}; use one of {', '.join(DEVICES)}")
    return DEVICES[key]


@dataclass(frozen=True)
class Cluster:
    """``nodes`` nodes of ``per_node`` identical devices."""

    device: Device
    nodes: int = 1
    per_node: int = 8

    @property
    def n_devices(self) -> int:
        """Devices in the cluster."""
        return self.nodes * self.per_node

    def group_link(self, size: int) -> tuple[float, float]:
        """(bandwidth per direction, latency) of a collective over ``size`` consecutive
        devices: the intra-node link if they fit in one node, else the inter-node network."""
        if size <= self.per_node:
            return self.device.link_bw, self.device.link_latency_s
        return self.device.net_bw, self.device.net_latency_s


def load_cluster(spec: str | Path | dict[str, Any] | Cluster, nodes: int | None = None,
                 per_node: int | None = None) -> Cluster:
    """A Cluster from a YAML file or dict (``device: H100-SXM``, ``nodes: 2``, ``per_node: 8``,
    optional ``overrides: {mem_bw: ..., tdp_w: ...}`` of the device's fields), or from a device
    name plus ``nodes`` and ``per_node``."""
    if isinstance(spec, Cluster):
        return spec
    if isinstance(spec, (str, Path)) and str(spec).endswith((".yaml", ".yml")):
        import yaml

        try:
            data = yaml.safe_load(Path(spec).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise UnknownDeviceError(f"cannot read cluster file {spec}: {e}") from None
        if not isinstance(data, dict) or "device" not in data:
            raise UnknownDeviceError(f"cluster file {spec} needs a mapping with a 'device' key")
        spec = data
    if isinstance(spec, dict):
        dev = load_device(spec["device"])
        over = dict(spec.get("overrides") or {})
        bad = sorted(set(over) - set(Device.__dataclass_fields__))
        if bad:
            raise UnknownDeviceError(f"unknown device fields {bad} in cluster overrides")
        if over:
            dev = replace(dev, **over)
        return Cluster(dev, int(spec.get("nodes", nodes or 1)),
                       int(spec.get("per_node", per_node or 8)))
    dev = load_device(str(spec))
    return Cluster(dev, int(nodes or 1), int(per_node or 8))
