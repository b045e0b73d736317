"""Fused-MoE kernel efficiency, fitted on published H100 measurements of vLLM's Triton
``fused_moe`` (not on the validation set).

A dense GEMM overlaps its weight reads with its math (time = the larger of the two, at the
calibrated dense efficiencies of :mod:`.calibration`). vLLM's fused MoE kernel does not in
practice: over the grouped experts it behaves like ``t0 + W / (η_m · B) + F / (η_c · P)`` —
the weight-streaming time **plus** the math time — where ``W`` is the bytes of the experts the
batch activates, ``F`` the FLOPs of its routed tokens, ``B``/``P`` the datasheet bandwidth and
peak, and ``t0`` the floors of its 3 kernels (:mod:`.calibration`'s GEMM floor).

Source: vLLM PR #24700 (mgoin, "Benchmarks on H100", Mixtral BF16,
``benchmarks/kernels/benchmark_moe.py --model=mistralai/Mixtral-8x7B-Instruct-v0.1 -tp=2``,
tuned config ``E=8,N=7168,device_name=NVIDIA_H100_80GB_HBM3.json``): kernel time of the whole
fused MoE (both expert GEMMs and the activation) per batch size, :data:`H100_MIXTRAL_TP2_US`.
With ``E = 8`` experts, top-2 routing, hidden 4096 and FFN 14336 split over TP2, an expert
holds ``(14336·4096 + 4096·7168) · 2`` bytes; a batch of ``b`` tokens activates
``E(1 − (1 − 2/E)^b)`` experts (uniform routing, as :mod:`.costs`) and does ``2 · 2b`` FLOPs
per expert weight. Least squares of the 15 points (H100-SXM: 3.35 TB/s, 989 TFLOPS bf16):
η_m = 0.985, η_c = 0.876; largest error 6.8 % (batch 4), median 2.8 %. The same fractions
are used on other devices (an assumption, as for the dense efficiencies).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FUSED_MOE", "H100_MIXTRAL_TP2_US", "fit_additive", "fit_fused_moe"]

#: vLLM PR #24700, H100, Mixtral-8x7B bf16 TP2: batch size → fused-MoE kernel time (µs)
H100_MIXTRAL_TP2_US: dict[int, float] = {
    1: 144.03, 2: 229.28, 4: 351.10, 8: 434.98, 16: 471.49, 24: 478.27, 32: 487.35,
    48: 487.85, 64: 483.14, 96: 494.42, 128: 491.39, 256: 536.77, 512: 662.33, 1024: 833.72,
    1536: 1122.93}

#: fitted additive-roofline efficiencies of the fused MoE kernel (see the module docstring)
FUSED_MOE = {"eff_memory": 0.985, "eff_compute": 0.876}

_H100_BW, _H100_BF16 = 3.35e12, 989e12
_GEMM_FLOOR_S = 1.123e-05  # calibration.CALIBRATION["gemm"]["t0_s"] (3 kernels per MoE)


def fit_additive(nbytes: np.ndarray, flops: np.ndarray, times_s: np.ndarray, bw: float,
                 peak: float) -> dict[str, float]:
    """Least-squares ``eff_memory``, ``eff_compute`` of ``t = 3·t0 + W/(η_m·B) + F/(η_c·P)``
    from kernels of ``nbytes`` expert weights, ``flops`` and measured ``times_s``."""
    a = np.c_[np.asarray(nbytes, float) / bw, np.asarray(flops, float) / peak]
    inv, *_ = np.linalg.lstsq(a, np.asarray(times_s, float) - 3 * _GEMM_FLOOR_S, rcond=None)
    return {"eff_memory": float(1 / inv[0]), "eff_compute": float(1 / inv[1])}


def fit_fused_moe(times_us: dict[int, float] | None = None) -> dict[str, float]:
    """Least-squares ``eff_memory``, ``eff_compute`` of the additive model above from
    batch → kernel-time points of Mixtral-8x7B TP2 on H100 (default: the published table)."""
    pts = H100_MIXTRAL_TP2_US if times_us is None else times_us
    b = np.array(sorted(pts), float)
    t = np.array([pts[int(x)] for x in b]) * 1e-6
    per_expert = (14336 * 4096 + 4096 * 7168) * 2.0
    active = 8 * (1.0 - (1.0 - 2 / 8) ** b)
    return fit_additive(active * per_expert, 2 * 2 * b * per_expert / 2, t, _H100_BW, _H100_BF16)
