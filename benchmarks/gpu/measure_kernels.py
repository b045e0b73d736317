#!/usr/bin/env python3
"""Measure GEMM, attention and Triton-matmul kernels on one GPU: runtime, power and energy.

Self-contained (torch + numpy; pynvml, triton and pyarrow used when importable) so that it runs
on a bare GPU machine without installing mlsysgym::

    python3 benchmarks/gpu/measure_kernels.py --out OUT/gpu_kernels.parquet --budget-s 390
    python3 benchmarks/gpu/measure_kernels.py --device cpu --tiny --out /tmp/k.parquet   # tests

What is measured (a designed sample, shuffled with ``--seed`` so that a run stopped by its
budget keeps every class and family represented; Triton configs of one shape stay together):

- ``gemm`` / ``bmm``: ``torch.matmul`` / ``torch.bmm`` over five shape families: ``llm``
  (token count M × the projection weights of nine open LLM configs), ``cnn`` (im2col GEMMs of
  ResNet-50 / VGG-16 layers at batch 1–128), ``square``, ``bmm`` (batched attention-like
  products) and ``random`` (log-uniform, unaligned M, N, K). dtypes bf16, fp16, fp32 (TF32
  off), tf32 (``allow_tf32``) and fp8 e4m3 through ``torch._scaled_mm`` (bf16 out; dims
  multiple of 16; where the GPU supports it — a failure is recorded as a row with ``ok=0``).
- ``attn_prefill`` / ``attn_decode``: ``F.scaled_dot_product_attention`` (causal prefill,
  one-token decode against a KV context) over the head configurations (query heads, KV heads
  for GQA, head dim) of the same LLMs, batch and sequence/context lengths; bf16 and fp16.
- ``triton_gemm``: the Triton tutorial matmul (fp16 in, fp32 accumulate) under ten tile
  configurations (BLOCK_M/N/K, num_warps, num_stages) on 30 shapes, so tile choice is a feature.
- ``copy``: device-to-device copies (the memory-bandwidth ceiling for rooflines).

Runtime: CUDA events. After 3 warm-up calls the kernel is timed in samples of k back-to-back
calls (k so that a sample lasts ≥ 100 µs, ≤ 100), at least 10 samples and ~30 ms in all; the
row keeps the median per-call time, mean, min and the coefficient of variation (std/mean) over
samples. Inputs rotate over up to 64 copies so that the data touched per sample is ≥ 4× the L2
(capped at 1 GiB), which keeps small weight matrices from being served from L2. Kernels shorter
than a launch (~5–8 µs of host time per torch call) are timed launch-bound: their runtime is
the launch rate, which is also what a serving loop without CUDA graphs sees.

Power and energy (board power, idle ~120 W included; ``fp_idle_power_w`` is recorded for
subtracting it): after timing, the kernel runs back-to-back and ``power_w`` = ΔE / Δt,
``energy_per_call_uj`` = ``power_w`` × median runtime. ΔE comes from NVML's total-energy
counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ). On the H200 measured here that counter
updates only every ~100 ms (measured at start: ``fp_energy_update_ms``), so reading it at the
two ends of an arbitrary window is off by up to one update period (±100 ms / window of the
energy). Hence ``energy_method = nvml_energy_edges_threaded``: a thread polls the counter and
timestamps each change while the main thread keeps ≤ 8 chunks of ~2 ms of calls queued (the GPU
never waits on NVML reads); ΔE and Δt are taken between two counter changes ≥ ``--energy-ms``
(default 200 ms) apart, after 20 ms of warm queue. Error: the poll latency (≤ ~0.5 ms, switch
interval lowered during the window) and the queue's ramp over Δt ≈ 200–300 ms, recorded as
``energy_err_pct`` (≈ 2 %), plus whatever averaging the driver does inside an update period.
The committed H200 data was made with two earlier methods (see benchmarks/data/gpu/README.md):
plain windows read at both ends (±50 % per row at 143 ms) and edge windows polled from the
launching thread (GPU busy ~40 % of the window). Without the energy counter, a thread samples
``nvmlDeviceGetPowerUsage`` every 2 ms (``nvml_power_samples``; that reading is itself a
moving average on recent GPUs: expect tens of percent per row). A 1.5 s large-GEMM warm-up
before the first row ramps the clocks; ``sm_clock_mhz`` and ``temp_c`` are read after each
energy window.

Output: one row per (kernel, shape, dtype, tile config) with a stable ``key``; the device
fingerprint (GPU name, capability, SM count, memory, driver, max clocks, power limit, torch /
CUDA / cuDNN / Triton versions; no host name) is repeated in ``fp_*`` columns and written to
``<out>.fingerprint.json``. Parquet through pyarrow, else CSV beside it (same stem). Rows are
flushed every 15 s and on SIGTERM/SIGINT; ``--budget-s`` stops before the next kernel would
overrun it. Re-running with the same ``--out`` skips keys already present (resume).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # optional on the GPU machine, absent on CPU-only installs
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - any import failure means "no Triton"
    triton = None
    tl = None

try:
    import pynvml
except Exception:  # noqa: BLE001
    pynvml = None

SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------------------------
# The design: shapes of real models
# ---------------------------------------------------------------------------------------------

#: name: (hidden, query heads, KV heads, head dim, FFN width)
LLMS: dict[str, tuple[int, int, int, int, int]] = {
    "gpt2": (768, 12, 12, 64, 3072),
    "llama2_7b": (4096, 32, 32, 128, 11008),
    "llama3_8b": (4096, 32, 8, 128, 14336),
    "llama2_13b": (5120, 40, 40, 128, 13824),
    "llama3_70b": (8192, 64, 8, 128, 28672),
    "gemma_7b": (3072, 16, 16, 256, 24576),
    "qwen2_7b": (3584, 28, 4, 128, 18944),
    "phi3_mini": (3072, 32, 32, 96, 8192),
    "mistral_nemo": (5120, 32, 8, 128, 14336),
}

#: im2col GEMM (output pixels per image, output channels, Cin·kh·kw) of ResNet-50 and VGG-16
CNN_LAYERS: list[tuple[str, int, int, int]] = [
    ("r50_conv1", 12544, 64, 147), ("r50_c2_1x1", 3136, 64, 64), ("r50_c2_3x3", 3136, 64, 576),
    ("r50_c2_exp", 3136, 256, 64), ("r50_c3_3x3", 784, 128, 1152), ("r50_c3_exp", 784, 512, 128),
    ("r50_c4_3x3", 196, 256, 2304), ("r50_c4_exp", 196, 1024, 256), ("r50_c5_3x3", 49, 512, 4608),
    ("r50_c5_exp", 49, 2048, 512), ("r50_fc", 1, 1000, 2048), ("vgg_c1", 50176, 64, 27),
    ("vgg_c1b", 50176, 64, 576), ("vgg_c2", 12544, 128, 1152), ("vgg_c3", 3136, 256, 2304),
    ("vgg_c4", 784, 512, 4608), ("vgg_c5", 196, 512, 4608),
]

#: Triton tile configurations (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)
TRITON_CONFIGS: list[tuple[int, int, int, int, int]] = [
    (128, 256, 64, 8, 3), (64, 256, 32, 4, 4), (128, 128, 32, 4, 4), (128, 64, 32, 4, 4),
    (64, 128, 32, 4, 4), (128, 32, 32, 4, 4), (64, 32, 32, 2, 5), (32, 64, 32, 2, 5),
    (128, 128, 64, 8, 3), (64, 64, 64, 4, 3),
]

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "tf32": 4, "fp8": 1}
# Rough rates (FLOP/s, B/s) used only to keep each design under a per-call time cap.
_EST_RATE = {"bf16": 7e14, "fp16": 7e14, "fp32": 5e13, "tf32": 3.5e14, "fp8": 1.2e15}
_EST_BW = 3.5e12


@dataclass
class Design:
    """One kernel to measure. Unused dims are 0; ``group`` keeps Triton configs of one shape
    together when shuffling."""

    op: str
    family: str
    dtype: str
    batch: int = 1
    m: int = 0
    n: int = 0
    k: int = 0
    heads: int = 0
    kv_heads: int = 0
    seq_q: int = 0
    seq_k: int = 0
    head_dim: int = 0
    causal: int = 0
    block_m: int = 0
    block_n: int = 0
    block_k: int = 0
    num_warps: int = 0
    num_stages: int = 0
    source: str = ""
    group: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        d = asdict(self)
        parts = [f"{k}={d[k]}" for k in ("op", "dtype", "batch", "m", "n", "k", "heads",
                                           "kv_heads", "seq_q", "seq_k", "head_dim", "causal",
                                           "block_m", "block_n", "block_k", "num_warps",
                                           "num_stages")]
        return "|".join(parts)

    def flops(self) -> float:
        if self.op in ("gemm", "bmm", "triton_gemm"):
            return 2.0 * self.batch * self.m * self.n * self.k
        if self.op.startswith("attn"):
            f = 4.0 * self.batch * self.heads * self.seq_q * self.seq_k * self.head_dim
            if self.causal:  # useful work of a causal square mask
                f *= (self.seq_k + 1) / (2.0 * self.seq_k)
            return f
        return 0.0

    def bytes(self) -> float:
        """Fewest bytes moved through device memory: each input read once, output written once."""
        e = DTYPE_BYTES[self.dtype]
        if self.op in ("gemm", "bmm", "triton_gemm"):
            out_e = 2 if self.dtype == "fp8" else e
            return float(self.batch * ((self.m * self.k + self.k * self.n) * e
                                       + self.m * self.n * out_e))
        if self.op.startswith("attn"):
            q = self.batch * self.heads * self.seq_q * self.head_dim
            kv = 2 * self.batch * self.kv_heads * self.seq_k * self.head_dim
            return float((2 * q + kv) * e)
        if self.op == "copy":
            return float(2 * self.m * e)
        return 0.0


def _est_seconds(d: Design) -> float:
    return d.flops() / _EST_RATE[d.dtype] + d.bytes() / _EST_BW


def _gemm_dtypes(rng: random.Random, m: int, n: int, k: int, fp8: bool = True) -> list[str]:
    out = ["bf16"]
    if rng.random() < 0.4:
        out.append("fp16")
    if rng.random() < 0.25:
        out.append("fp32")
    if rng.random() < 0.25:
        out.append("tf32")
    if m % 16 == 0 and n % 16 == 0 and k % 16 == 0 and rng.random() < 0.35 and fp8:
        out.append("fp8")
    return out


def design_gpu(seed: int = 0, max_call_s: float = 0.02, max_bytes: float = 8e9) -> list[Design]:
    """The full GPU design (about 2,000 kernels before the budget decides)."""
    rng = random.Random(seed)
    families = (_llm_gemms, _cnn_gemms, _square_gemms, _attention_like_bmms, _random_gemms,
                _attention, _triton_gemms, _copies)
    out: list[Design] = []
    for family in families:  # in this order: each draws from the one rng
        out += [d for d in family(rng) if _est_seconds(d) <= max_call_s and d.bytes() <= max_bytes]
    return out


def _llm_gemms(rng: random.Random) -> list[Design]:
    """GEMM: the projections of the LLMs, at fixed and one random token count."""
    out: list[Design] = []
    tokens = [1, 8, 32, 128, 512, 2048, 8192]
    for name, (h, hq, hkv, hd, ffn) in LLMS.items():
        weights = {"qkv": ((hq + 2 * hkv) * hd, h), "o": (h, hq * hd), "up": (2 * ffn, h),
                   "down": (h, ffn)}
        for wname, (n, k) in weights.items():
            ms = tokens + [round(2 ** rng.uniform(0, 14))]
            for m in ms:
                for dt in _gemm_dtypes(rng, m, n, k):
                    out.append(Design("gemm", "llm", dt, m=m, n=n, k=k, source=f"{name}.{wname}"))
    return out


def _cnn_gemms(rng: random.Random) -> list[Design]:
    """GEMM: CNN convolutions as im2col products."""
    out: list[Design] = []
    for name, hw, cout, ckk in CNN_LAYERS:
        for b in (1, 8, 32, 128):
            m = hw * b
            for dt in _gemm_dtypes(rng, m, cout, ckk):
                out.append(Design("gemm", "cnn", dt, m=m, n=cout, k=ckk, source=f"{name}.b{b}"))
    return out


def _square_gemms(rng: random.Random) -> list[Design]:
    """GEMM: square products in every dtype (draws nothing from ``rng``)."""
    return [Design("gemm", "square", dt, m=s, n=s, k=s, source=f"sq{s}")
            for s in (128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288,
                      16384)
            for dt in ["bf16", "fp16", "fp32", "tf32", "fp8"]]


def _attention_like_bmms(rng: random.Random) -> list[Design]:
    """Batched products shaped like attention's."""
    out: list[Design] = []
    for _ in range(60):
        b = rng.choice([8, 32, 96, 256])
        s = rng.choice([128, 256, 512, 1024, 2048])
        hd = rng.choice([64, 128])
        m, n, k = (s, s, hd) if rng.random() < 0.5 else (s, hd, s)
        for dt in _gemm_dtypes(rng, m, n, k, fp8=False):
            out.append(Design("bmm", "bmm", dt, batch=b, m=m, n=n, k=k, source="attn_like"))
    return out


def _random_gemms(rng: random.Random) -> list[Design]:
    """GEMM: random, unaligned shapes."""
    out: list[Design] = []
    for _ in range(90):
        m = round(2 ** rng.uniform(0, 14))
        n = round(2 ** rng.uniform(6, 14))
        k = round(2 ** rng.uniform(6, 14))
        for dt in _gemm_dtypes(rng, m, n, k):
            out.append(Design("gemm", "random", dt, m=m, n=n, k=k, source="random"))
    return out


def _attention(rng: random.Random) -> list[Design]:
    """Attention of each LLM: sampled prefill and decode sizes."""
    out: list[Design] = []
    for name, (_h, hq, hkv, hd, _f) in LLMS.items():
        pre = [(b, s) for b in (1, 2, 4, 8, 16) for s in (128, 256, 512, 1024, 2048, 4096, 8192,
                                                          16384)]
        for b, s in rng.sample(pre, 14):
            for dt in (["bf16", "fp16"] if rng.random() < 0.35 else ["bf16"]):
                out.append(Design("attn_prefill", f"attn_{name}", dt, batch=b, heads=hq,
                                  kv_heads=hkv, seq_q=s, seq_k=s, head_dim=hd, causal=1,
                                  source=name))
        dec = [(b, c) for b in (1, 4, 16, 64, 256) for c in (256, 1024, 4096, 16384, 65536)]
        for b, c in rng.sample(dec, 14):
            for dt in (["bf16", "fp16"] if rng.random() < 0.35 else ["bf16"]):
                out.append(Design("attn_decode", f"attn_{name}", dt, batch=b, heads=hq,
                                  kv_heads=hkv, seq_q=1, seq_k=c, head_dim=hd, causal=0,
                                  source=name))
    return out


def _triton_gemms(rng: random.Random) -> list[Design]:
    """Every Triton tile config on 30 GEMM shapes (LLM, CNN, square, random)."""
    tshapes: list[tuple[str, int, int, int, str]] = []
    for m in (16, 128, 1024, 4096):
        for name in ("llama3_8b", "qwen2_7b"):
            h, hq, hkv, hd, ffn = LLMS[name]
            tshapes.append(("llm", m, (hq + 2 * hkv) * hd, h, f"{name}.qkv"))
            tshapes.append(("llm", m, h, ffn, f"{name}.down"))
    for name, hw, cout, ckk in rng.sample(CNN_LAYERS, 5):
        tshapes.append(("cnn", hw * 8, cout, ckk, f"{name}.b8"))
    for s in (512, 1024, 2048, 4096):
        tshapes.append(("square", s, s, s, f"sq{s}"))
    for _ in range(5):
        tshapes.append(("random", round(2 ** rng.uniform(4, 13)),
                        round(2 ** rng.uniform(7, 13)), round(2 ** rng.uniform(7, 13)),
                        "random"))
    return [Design("triton_gemm", fam, "fp16", m=m, n=n, k=k, block_m=bm, block_n=bn,
                   block_k=bk, num_warps=w, num_stages=st, source=src, group=f"triton|{m}|{n}|{k}")
            for fam, m, n, k, src in tshapes for bm, bn, bk, w, st in TRITON_CONFIGS]


def _copies(rng: random.Random) -> list[Design]:
    """Device memory copies of 1 MiB to 4 GiB (draws nothing from ``rng``)."""
    return [Design("copy", "copy", "bf16", m=mb * (1 << 20) // 2, source=f"{mb}MiB")
            for mb in (1, 4, 16, 64, 256, 1024, 4096)]


def design_tiny() -> list[Design]:
    """A handful of tiny kernels of every class (CPU tests)."""
    out = [Design("gemm", "llm", "fp32", m=m, n=32, k=16, source="tiny") for m in (1, 8, 24)]
    out.append(Design("gemm", "square", "bf16", m=32, n=32, k=32, source="tiny"))
    out.append(Design("gemm", "random", "tf32", m=5, n=17, k=33, source="tiny"))
    out.append(Design("bmm", "bmm", "fp32", batch=4, m=16, n=16, k=8, source="tiny"))
    out.append(Design("attn_prefill", "attn_tiny", "fp32", batch=1, heads=4, kv_heads=2, seq_q=16,
                      seq_k=16, head_dim=8, causal=1, source="tiny"))
    out.append(Design("attn_decode", "attn_tiny", "fp32", batch=2, heads=4, kv_heads=4, seq_q=1,
                      seq_k=32, head_dim=8, source="tiny"))
    out.append(Design("copy", "copy", "fp32", m=4096, source="tiny"))
    return out


def order_designs(designs: list[Design], seed: int) -> list[Design]:
    """Shuffle, keeping designs that share a ``group`` (Triton configs of one shape) adjacent."""
    groups: dict[str, list[Design]] = {}
    for i, d in enumerate(designs):
        groups.setdefault(d.group or f"#{i}", []).append(d)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    return [d for k in keys for d in groups[k]]


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

if triton is not None:
    @triton.jit
    def _matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                       stride_cm, stride_cn, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
        pid = tl.program_id(axis=0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        num_pid_in_group = GROUP_M * num_pid_n
        group_id = pid // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
        pid_n = (pid % num_pid_in_group) // group_size_m
        offs_am = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
        offs_bn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
        offs_k = tl.arange(0, BLOCK_K)
        a_ptrs = a_ptr + (offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak)
        b_ptrs = b_ptr + (offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kk in range(0, tl.cdiv(K, BLOCK_K)):  # noqa: PIE808 - as in the Triton tutorial
            a = tl.load(a_ptrs, mask=offs_k[None, :] < K - kk * BLOCK_K, other=0.0)
            b = tl.load(b_ptrs, mask=offs_k[:, None] < K - kk * BLOCK_K, other=0.0)
            acc = tl.dot(a, b, acc)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
        c = acc.to(tl.float16)
        offs_cm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_cn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        c_ptrs = c_ptr + stride_cm * offs_cm[:, None] + stride_cn * offs_cn[None, :]
        tl.store(c_ptrs, c, mask=(offs_cm[:, None] < M) & (offs_cn[None, :] < N))


def _torch_dtype(name: str) -> torch.dtype:
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32,
            "tf32": torch.float32, "fp8": torch.float32}[name]


class KernelUnsupported(RuntimeError):
    """This kernel cannot run on this device (recorded as a row with ok=0)."""


def build_kernel(d: Design, device: str, l2_bytes: int) -> tuple[Callable[[int], Any], int]:
    """Allocate inputs (rotated copies on CUDA, see the module doc) and return (fn(i), n_sets)."""
    dt = _torch_dtype(d.dtype)
    in_bytes = max(1.0, d.bytes())
    n_sets = 1
    if device == "cuda":
        n_sets = int(max(1, min(64, math.ceil(4 * l2_bytes / in_bytes),
                                (1 << 30) // int(in_bytes))))

    def rnd(*shape: int, dtype: torch.dtype = dt) -> torch.Tensor:
        return torch.randn(*shape, device=device, dtype=torch.float32).to(dtype)

    _set_tf32(d.dtype == "tf32", device)
    if d.op == "gemm" and d.dtype == "fp8":
        return _fp8_gemm_kernel(d, device, rnd, n_sets), n_sets
    if d.op == "gemm":
        sets = [(rnd(d.m, d.k), rnd(d.k, d.n)) for _ in range(n_sets)]
        return (lambda i: torch.matmul(*sets[i % n_sets])), n_sets
    if d.op == "bmm":
        sets = [(rnd(d.batch, d.m, d.k), rnd(d.batch, d.k, d.n)) for _ in range(n_sets)]
        return (lambda i: torch.bmm(*sets[i % n_sets])), n_sets
    if d.op.startswith("attn"):
        return _attention_kernel(d, rnd, n_sets), n_sets
    if d.op == "copy":
        sets = [(rnd(d.m), torch.empty(d.m, device=device, dtype=dt)) for _ in range(n_sets)]

        def fn(i: int) -> Any:
            src, dst = sets[i % n_sets]
            return dst.copy_(src)
        return fn, n_sets
    if d.op == "triton_gemm":
        return _triton_kernel(d, device, dt, rnd, n_sets), n_sets
    raise KernelUnsupported(f"unknown op {d.op!r}")


def _set_tf32(tf32: bool, device: str) -> None:
    """Let float32 matmuls use TF32 (or not) on this device."""
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    else:
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


def _fp8_gemm_kernel(d: Design, device: str, rnd: Callable[..., torch.Tensor],
                     n_sets: int) -> Callable[[int], Any]:
    """An FP8 (e4m3) GEMM with bf16 output through ``torch._scaled_mm`` (CUDA only)."""
    if device != "cuda" or not hasattr(torch, "_scaled_mm") or not hasattr(torch,
                                                                             "float8_e4m3fn"):
        raise KernelUnsupported("fp8 needs CUDA and torch._scaled_mm")
    sets = [(rnd(d.m, d.k).to(torch.float8_e4m3fn),
             rnd(d.n, d.k).to(torch.float8_e4m3fn).t()) for _ in range(n_sets)]
    one = torch.ones((), device=device, dtype=torch.float32)

    def fn(i: int) -> Any:
        a, b = sets[i % n_sets]
        return torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    return fn


def _attention_kernel(d: Design, rnd: Callable[..., torch.Tensor],
                      n_sets: int) -> Callable[[int], Any]:
    """Scaled dot-product attention (grouped-query when the KV heads are fewer)."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    sets = [(rnd(d.batch, d.heads, d.seq_q, d.head_dim),
             rnd(d.batch, d.kv_heads, d.seq_k, d.head_dim),
             rnd(d.batch, d.kv_heads, d.seq_k, d.head_dim)) for _ in range(n_sets)]
    gqa = d.kv_heads != d.heads

    def fn(i: int) -> Any:
        q, k, v = sets[i % n_sets]
        if gqa:
            return sdpa(q, k, v, is_causal=bool(d.causal), enable_gqa=True)
        return sdpa(q, k, v, is_causal=bool(d.causal))
    return fn


def _triton_kernel(d: Design, device: str, dt: torch.dtype, rnd: Callable[..., torch.Tensor],
                   n_sets: int) -> Callable[[int], Any]:
    """The Triton tutorial matmul with the design's tile config (CUDA only)."""
    if triton is None or device != "cuda":
        raise KernelUnsupported("Triton matmul needs triton and a CUDA device")
    sets = [(rnd(d.m, d.k), rnd(d.k, d.n), torch.empty(d.m, d.n, device=device, dtype=dt))
            for _ in range(n_sets)]
    grid = (triton.cdiv(d.m, d.block_m) * triton.cdiv(d.n, d.block_n),)

    def fn(i: int) -> Any:
        a, b, c = sets[i % n_sets]
        _matmul_kernel[grid](a, b, c, d.m, d.n, d.k, a.stride(0), a.stride(1), b.stride(0),
                             b.stride(1), c.stride(0), c.stride(1), BLOCK_M=d.block_m,
                             BLOCK_N=d.block_n, BLOCK_K=d.block_k, GROUP_M=8,
                             num_warps=d.num_warps, num_stages=d.num_stages)
        return c
    return fn


# ---------------------------------------------------------------------------------------------
# Timing and energy
# ---------------------------------------------------------------------------------------------

class Timer:
    """Per-sample timing: CUDA events on a GPU, perf_counter (after the call) on the CPU."""

    def __init__(self, device: str) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def time_samples(self, fn: Callable[[int], Any], calls: int, samples: int) -> list[float]:
        """Seconds per call for each of ``samples`` samples of ``calls`` back-to-back calls."""
        out: list[float] = []
        i = 0
        if self.device == "cuda":
            evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                   for _ in range(samples)]
            for s, e in evs:
                s.record()
                for _ in range(calls):
                    fn(i)
                    i += 1
                e.record()
            torch.cuda.synchronize()
            return [s.elapsed_time(e) / 1e3 / calls for s, e in evs]
        for _ in range(samples):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(i)
                i += 1
            out.append((time.perf_counter() - t0) / calls)
        return out


class EnergyMeter:
    """Board energy over a window: NVML's energy counter, else a power-sampling thread."""

    def __init__(self, device: str) -> None:
        self.handle = None
        self.method = "none"
        self.update_ms = float("nan")
        if device != "cuda" or pynvml is None:
            return
        try:
            pynvml.nvmlInit()
            idx = torch.cuda.current_device()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(idx)
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
                self.method = "nvml_energy"
            except Exception:  # noqa: BLE001
                pynvml.nvmlDeviceGetPowerUsage(self.handle)
                self.method = "nvml_power_samples"
        except Exception:  # noqa: BLE001
            self.handle = None
            self.method = "none"

    def energy_mj(self) -> float:
        return float(pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def power_w(self) -> float:
        return pynvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def measure_update_period(self, busy: Callable[[], Any], seconds: float = 1.5) -> float:
        """Run ``busy`` for ``seconds`` while polling the counter; ms between distinct readings."""
        t_end = time.perf_counter() + seconds
        changes: list[float] = []
        last = None
        while time.perf_counter() < t_end:
            busy()  # queues a few ms of work, then we poll while it runs
            t_poll = time.perf_counter() + 0.004
            while self.method == "nvml_energy" and time.perf_counter() < t_poll:
                v = self.energy_mj()
                if last is not None and v != last:
                    changes.append(time.perf_counter())
                last = v
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        if len(changes) >= 3:
            self.update_ms = float(np.median(np.diff(changes)) * 1e3)
        return self.update_ms

    def window(self, run: Callable[[], int], sync: Callable[[], None]) -> dict[str, float]:
        """Call ``run`` (which returns the number of kernel calls it made) inside a window."""
        if self.method == "none":
            t0 = time.perf_counter()
            calls = run()
            sync()
            return {"calls": calls, "wall_s": time.perf_counter() - t0, "energy_j": float("nan")}
        sync()
        if self.method == "nvml_energy":
            e0, t0 = self.energy_mj(), time.perf_counter()
            calls = run()
            sync()
            e1, t1 = self.energy_mj(), time.perf_counter()
            return {"calls": calls, "wall_s": t1 - t0, "energy_j": (e1 - e0) / 1e3}
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                samples.append((time.perf_counter(), self.power_w()))
                time.sleep(0.002)
        th = threading.Thread(target=sampler, daemon=True)
        t0 = time.perf_counter()
        th.start()
        calls = run()
        sync()
        t1 = time.perf_counter()
        stop.set()
        th.join()
        p = [w for t, w in samples if t0 <= t <= t1] or [w for _, w in samples]
        return {"calls": calls, "wall_s": t1 - t0,
                "energy_j": float(np.mean(p)) * (t1 - t0) if p else float("nan")}

    def window_edges(self, launch: Callable[[int, int], None], chunk: int, min_s: float,
                     max_s: float = 2.0, depth: int = 8) -> dict[str, float]:
        """Board power while ``launch(i, n)`` keeps the GPU busy, between two updates of the
        energy counter. A thread polls the counter and timestamps each change; the main thread
        keeps up to ``depth`` chunks of ``chunk`` calls queued (so the GPU never waits on the
        host's NVML reads), and stops once two changes ≥ ``min_s`` apart were seen after 20 ms
        of warm queue; power = ΔE / Δt between those two changes. ``busy_s`` is the wall time
        from the first launch to the final synchronization (duty cycle = calls × runtime /
        busy_s)."""
        from collections import deque

        is_cuda = torch.cuda.is_available()
        edges: list[tuple[float, float]] = []
        stop = threading.Event()

        def poll() -> None:
            last = self.energy_mj()
            while not stop.is_set():
                e = self.energy_mj()
                if e != last:
                    edges.append((time.perf_counter(), e))
                    last = e
                time.sleep(0.0002)
        old_switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)  # let the poller run promptly between launches
        th = threading.Thread(target=poll, daemon=True)
        if is_cuda:
            torch.cuda.synchronize()
        th.start()
        t_start = time.perf_counter()
        calls, inflight = 0, deque()
        good: list[tuple[float, float]] = []
        try:
            while True:
                launch(calls, chunk)
                calls += chunk
                if is_cuda:
                    ev = torch.cuda.Event()
                    ev.record()
                    inflight.append(ev)
                    if len(inflight) > depth:
                        inflight.popleft().synchronize()
                now = time.perf_counter()
                good = [ed for ed in list(edges) if ed[0] >= t_start + 0.02]
                if len(good) >= 2 and good[-1][0] - good[0][0] >= min_s:
                    break
                if now > t_start + max_s:
                    break
        finally:
            stop.set()
            th.join()
            sys.setswitchinterval(old_switch)
        if is_cuda:
            torch.cuda.synchronize()
        busy = time.perf_counter() - t_start
        if len(good) < 2:
            return {"calls": calls, "wall_s": float("nan"), "energy_j": float("nan"),
                    "err_pct": float("nan"), "busy_s": busy}
        (t0, e0), (t1, e1) = good[0], good[-1]
        return {"calls": calls, "wall_s": t1 - t0, "energy_j": (e1 - e0) / 1e3,
                "err_pct": 100.0 * 2 * 0.0005 / (t1 - t0) + 100.0 * 2 * 0.002 / (t1 - t0),
                "busy_s": busy}

    def clocks(self) -> dict[str, float]:
        if self.handle is None:
            return {"sm_clock_mhz": float("nan"), "temp_c": float("nan")}
        try:
            return {"sm_clock_mhz": float(pynvml.nvmlDeviceGetClockInfo(self.handle,
                                                                         pynvml.NVML_CLOCK_SM)),
                    "temp_c": float(pynvml.nvmlDeviceGetTemperature(
                        self.handle, pynvml.NVML_TEMPERATURE_GPU))}
        except Exception:  # noqa: BLE001
            return {"sm_clock_mhz": float("nan"), "temp_c": float("nan")}


def measure(d: Design, device: str, timer: Timer, meter: EnergyMeter, l2_bytes: int,
            timing_s: float = 0.03, energy_s: float = 0.1) -> dict[str, Any]:
    """Measure one design; returns the metric columns of its row."""
    fn, n_sets = build_kernel(d, device, l2_bytes)
    for i in range(3):  # warm-up (compilation, cuBLAS heuristics, handles)
        fn(i)
    timer.sync()
    est = float(np.median(timer.time_samples(fn, 1, 3)))
    calls = int(min(100, max(1, math.ceil(100e-6 / max(est, 1e-9)))))
    samples = int(min(200, max(10, math.ceil(timing_s / max(est * calls, 1e-9)))))
    per_call = np.asarray(timer.time_samples(fn, calls, samples))
    med = float(np.median(per_call))
    row: dict[str, Any] = {
        "runtime_us": med * 1e6, "runtime_mean_us": float(per_call.mean()) * 1e6,
        "runtime_min_us": float(per_call.min()) * 1e6,
        "runtime_cv": float(per_call.std() / per_call.mean()) if per_call.mean() > 0 else 0.0,
        "n_samples": samples, "calls_per_sample": calls, "input_sets": n_sets,
    }
    n_energy = int(max(1, math.ceil(energy_s / max(med, 1e-9))))

    def run() -> int:
        t_end = time.perf_counter() + energy_s
        done = 0
        while done < n_energy or time.perf_counter() < t_end:
            for _ in range(min(64, max(1, n_energy - done))):
                fn(done)
                done += 1
            if done >= 20 * n_energy:
                break
        return done
    if meter.method == "nvml_energy":
        chunk = int(min(1000, max(1, math.ceil(2e-3 / max(med, 1e-9)))))

        def launch(i0: int, n: int) -> None:
            for j in range(n):
                fn(i0 + j)
        w = meter.window_edges(launch, chunk, energy_s)
        method, err = "nvml_energy_edges_threaded", w["err_pct"]
    else:
        w = meter.window(run, timer.sync)
        method, err = meter.method, float("nan")
    power = w["energy_j"] / w["wall_s"] if w["wall_s"] > 0 else float("nan")
    row.update({"energy_calls": int(w["calls"]), "energy_window_ms": w["wall_s"] * 1e3,
                "power_w": power, "energy_per_call_uj": power * med * 1e6,
                "window_runtime_us": w.get("busy_s", w["wall_s"]) / w["calls"] * 1e6,
                "energy_err_pct": err, "energy_method": method})
    row.update(meter.clocks())
    return row


# ---------------------------------------------------------------------------------------------
# Fingerprint, storage, driver
# ---------------------------------------------------------------------------------------------

def fingerprint(device: str, meter: EnergyMeter) -> dict[str, Any]:
    """The device and software the rows were measured on (no host name)."""
    fp: dict[str, Any] = {"schema": SCHEMA_VERSION, "device_type": device,
                          "torch": torch.__version__, "python": platform.python_version(),
                          "numpy": np.__version__,
                          "triton": getattr(triton, "__version__", "") if triton else "",
                          "energy_method": meter.method}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        fp.update({"gpu": p.name, "capability": f"{p.major}.{p.minor}",
                   "sm_count": p.multi_processor_count,
                   "mem_gib": round(p.total_memory / 2**30, 1),
                   "l2_mib": round(getattr(p, "L2_cache_size", 0) / 2**20, 1),
                   "cuda": torch.version.cuda or "",
                   "cudnn": str(torch.backends.cudnn.version() or "")})
        if meter.handle is not None:
            h = meter.handle

            def q(f: Callable[[], Any]) -> Any:
                try:
                    v = f()
                    return v.decode() if isinstance(v, bytes) else v
                except Exception:  # noqa: BLE001
                    return None
            fp.update({
                "driver": q(pynvml.nvmlSystemGetDriverVersion),
                "max_sm_clock_mhz": q(lambda: pynvml.nvmlDeviceGetMaxClockInfo(
                    h, pynvml.NVML_CLOCK_SM)),
                "max_mem_clock_mhz": q(lambda: pynvml.nvmlDeviceGetMaxClockInfo(
                    h, pynvml.NVML_CLOCK_MEM)),
                "power_limit_w": q(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
            })
    else:
        model = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        fp.update({"gpu": "", "cpu": model, "cpu_count": os.cpu_count() or 0})
    return fp


def _have_pyarrow() -> bool:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
        return True
    except Exception:  # noqa: BLE001
        return False


def storage_path(out: Path, use_parquet: bool | None = None) -> Path:
    """Where rows go: ``out`` as Parquet when pyarrow imports, else the same stem as CSV."""
    if use_parquet is None:
        use_parquet = _have_pyarrow()
    return out.with_suffix(".parquet" if use_parquet else ".csv")


def read_rows(out: Path) -> list[dict[str, Any]]:
    """Rows already stored for ``out`` (Parquet or CSV, whichever exists)."""
    rows: list[dict[str, Any]] = []
    pq_path, csv_path = out.with_suffix(".parquet"), out.with_suffix(".csv")
    if pq_path.exists() and _have_pyarrow():
        import pyarrow.parquet as pq
        rows.extend(pq.read_table(pq_path).to_pylist())
    elif csv_path.exists():
        with open(csv_path, newline="") as f:
            rows.extend(csv.DictReader(f))
    return rows


def write_rows(out: Path, rows: list[dict[str, Any]], use_parquet: bool | None = None) -> Path:
    """Write all rows atomically (tmp file + rename)."""
    path = storage_path(out, use_parquet)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    cols: list[str] = []
    for r in rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        data = {c: [r.get(c) for r in rows] for c in cols}
        table = pa.table({c: pa.array(v) if not all(x is None for x in v)
                          else pa.array(v, type=pa.string()) for c, v in data.items()})
        pq.write_table(table, tmp, compression="zstd")
    else:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)
    return path


def _normalize(row: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    return {c: row.get(c) for c in columns}


def run(designs: list[Design], out: Path, device: str, budget_s: float, seed: int = 0,
        energy_s: float = 0.1, timing_s: float = 0.03, flush_s: float = 15.0,
        clock: Callable[[], float] = time.perf_counter, log: Callable[[str], None] = print,
        use_parquet: bool | None = None) -> dict[str, Any]:
    """Measure ``designs`` (skipping keys already in ``out``) until done or out of budget.

    Returns a summary: counts of measured / skipped / failed rows, whether the budget stopped
    the run, the wall time and the output path."""
    start = clock()
    existing = read_rows(out)
    done = {str(r["key"]) for r in existing}
    rows = list(existing)
    todo = [d for d in order_designs(designs, seed) if d.key not in done]
    timer = Timer(device)
    meter = EnergyMeter(device)
    l2 = 0
    idle_w = float("nan")
    if device == "cuda":
        l2 = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20))
        if meter.method != "none":
            time.sleep(0.3)
            w = meter.window(lambda: (time.sleep(0.3), 1)[1], timer.sync)
            idle_w = w["energy_j"] / w["wall_s"]
        if todo:  # ramp clocks and read the energy counter's update period
            a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
            meter.measure_update_period(lambda: [torch.matmul(a, a) for _ in range(4)],
                                        seconds=1.5)
            timer.sync()
            del a
    fp = fingerprint(device, meter)
    fp.update({"energy_update_ms": meter.update_ms, "idle_power_w": idle_w})
    fp_cols = {f"fp_{k}": v for k, v in fp.items()}
    fp_path = storage_path(out, use_parquet).with_suffix(".fingerprint.json")
    fp_path.parent.mkdir(parents=True, exist_ok=True)
    fp_path.write_text(json.dumps(fp, indent=1, default=str) + "\n")

    stop = {"signal": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = True
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    measured = failed = 0
    budget_hit = False
    last_flush = clock()
    durations: dict[str, list[float]] = {}
    op_ok: dict[str, int] = {}
    op_fail: dict[str, int] = {}
    try:
        for d in todo:
            cls = f"{d.op}/{d.dtype}"
            if op_fail.get(cls, 0) >= 5 and not op_ok.get(cls):
                continue  # this op class does not run here (e.g. no fp8, Triton broken): skip
            now = clock()
            typical = float(np.median(durations.get(d.op, [0.0]))) if durations.get(d.op) else 0.0
            if stop["signal"] or now - start + typical > budget_s:
                budget_hit = not stop["signal"]
                break
            t0 = clock()
            base = {"key": d.key, **{k: v for k, v in asdict(d).items() if k != "group"},
                    "flops": d.flops(), "bytes": d.bytes(), "measured_at_s": round(now - start, 3)}
            try:
                metrics = measure(d, device, timer, meter, l2, timing_s, energy_s)
                row = {**base, "ok": 1, "error": "", **metrics}
                measured += 1
                op_ok[cls] = op_ok.get(cls, 0) + 1
            except Exception as e:  # noqa: BLE001 - a kernel that fails is data, not a crash
                msg = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                row = {**base, "ok": 0, "error": msg}
                failed += 1
                op_fail[cls] = op_fail.get(cls, 0) + 1
                log(f"failed {d.key}: {msg}")
                if device == "cuda" and "out of memory" in msg.lower():
                    torch.cuda.empty_cache()
            row.update(fp_cols)
            rows.append(row)
            durations.setdefault(d.op, []).append(clock() - t0)
            if clock() - last_flush > flush_s:
                write_rows(out, _stable(rows), use_parquet)
                last_flush = clock()
                log(f"[{clock() - start:7.1f}s] {len(rows)} rows ({measured} new, {failed} failed)")
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        path = write_rows(out, _stable(rows), use_parquet) if rows else storage_path(out,
                                                                                     use_parquet)
    return {"measured": measured, "failed": failed, "skipped": len(designs) - len(todo),
            "remaining": len(todo) - measured - failed, "budget_hit": budget_hit,
            "wall_s": clock() - start, "path": str(path), "rows": len(rows),
            "fingerprint": fp}


_METRIC_COLS = ["runtime_us", "runtime_mean_us", "runtime_min_us", "runtime_cv", "n_samples",
                "calls_per_sample", "input_sets", "energy_calls", "energy_window_ms", "power_w",
                "energy_per_call_uj", "window_runtime_us", "energy_err_pct", "sm_clock_mhz",
                "temp_c", "energy_method"]


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Same columns in every row (failed rows get NaN metrics) so Parquet types stay fixed."""
    cols: list[str] = []
    for r in rows:
        for c in r:
            if c not in cols:
                cols.append(c)
    for c in _METRIC_COLS:
        if c not in cols:
            cols.append(c)
    out = []
    for r in rows:
        r2 = _normalize(r, cols)
        for c in _METRIC_COLS:
            if r2[c] is None or r2[c] == "":
                r2[c] = "" if c == "energy_method" else float("nan")
        out.append(r2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output .parquet (CSV if no pyarrow)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (CPU tests)")
    ap.add_argument("--budget-s", type=float, default=390.0, help="stop before exceeding this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--energy-ms", type=float, default=200.0)
    ap.add_argument("--timing-ms", type=float, default=30.0)
    ap.add_argument("--ops", default="", help="comma-separated op classes to keep (default all)")
    ap.add_argument("--limit", type=int, default=0, help="keep the first N designs (after order)")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: pass --device cpu (with --tiny for a quick check)")
    designs = design_tiny() if a.tiny else design_gpu(a.seed)
    if a.ops:
        keep = set(a.ops.split(","))
        designs = [d for d in designs if d.op in keep]
    if a.limit:
        designs = order_designs(designs, a.seed)[: a.limit]
    print(f"{len(designs)} designs; device {a.device}; budget {a.budget_s:.0f}s", flush=True)
    summary = run(designs, a.out, a.device, a.budget_s, a.seed, a.energy_ms / 1e3,
                  a.timing_ms / 1e3)
    print(json.dumps({k: v for k, v in summary.items() if k != "fingerprint"}), flush=True)
    print(json.dumps(summary["fingerprint"], default=str), flush=True)
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
