"""Kernel efficiencies of the serving simulator's roofline, fitted on measured H200 kernels.

Data: ``benchmarks/data/gpu/h200_kernels.parquet`` (issue #26: GEMMs, attention prefill and
decode, copies measured on one H200 with torch/cuDNN/FlashAttention kernels; not the serving
validation set). For each kernel class the fit takes, with the H200 datasheet peaks
(989 TFLOPS BF16, 1,979 FP8, 4.8 TB/s):

* ``eff_compute``: the median of achieved FLOP/s ÷ peak over compute-bound kernels
  (arithmetic intensity above twice the ridge point) that run ≥ 50 µs;
* ``eff_memory``: the median of achieved bytes/s ÷ peak bandwidth over memory-bound kernels
  (intensity below an eighth of the ridge) that run ≥ 20 µs;
* ``t0_s``: the median of (runtime − roofline time) over kernels whose roofline time is
  under 5 µs — the fixed cost of one kernel (launch and ramp).

The fitted numbers are kept in :data:`CALIBRATION` so the simulator runs without the data
file; ``tests/test_serving.py`` re-fits them from the parquet and checks they agree.
Regenerate with ``python -m mlsysgym.simulators.serving.calibration``.

Other devices (:func:`device_calibration`):

* with published kernel profiles (:data:`PROFILES`: LLMServingSim's per-layer kernel times
  measured with vLLM 0.19 on an RTX 4090 and an RTX PRO 6000 Blackwell; kernel measurements,
  not end-to-end serving numbers) the same rules are fitted against that device's datasheet
  peak and bandwidth (:func:`fit_device`; memory-bound kernels only where they move more than
  twice the device's L2, since a profiler calling one layer again and again keeps smaller
  working sets in the cache) — the GEMM efficiencies, attention prefill's compute and
  decode's memory efficiency and the fused MoE's (RTX PRO 6000: Qwen3-30B-A3B's expert
  layer); kernel floors, FP8 GEMMs and elementwise kernels as on the H200. Stored in
  :data:`DEVICE_CALIBRATION`; ``tests/test_serving.py`` re-fits them;
* otherwise the H200's fractions of the device's own datasheet peaks, times
  :func:`device_scales` where a measurement says how far that device's achieved throughput
  is from its datasheet compared with the H200's (consumer and workstation parts run above
  their datasheet boost clock; HBM parts below): its best square BF16 matmul and its copy
  bandwidth (``Device.gemm_bf16_tflops``, ``Device.copy_gbps``; published runs, sources in
  :mod:`.hardware`). The compute factor applies to every kernel class and dtype of the device
  (the clock moves them together); a device without a measurement keeps the factor 1 (the
  H200's fractions, an assumption).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.simulators.serving.moe_kernels import FUSED_MOE, fit_additive

__all__ = ["CALIBRATION", "DEFAULT_DATA", "DEVICE_CALIBRATION", "H200_GEMM_BF16_TFLOPS",
           "PROFILES", "PROFILE_MIN_BYTES", "device_calibration", "device_scales",
           "fit_calibration", "fit_device", "mixed_decode_eff"]

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "benchmarks/data/gpu/h200_kernels.parquet"
_PEAK = {"bf16": 989e12, "fp16": 989e12, "fp8": 1979e12}
_BW = 4.8e12

#: fitted by fit_calibration() on benchmarks/data/gpu/h200_kernels.parquet (1,693 rows)
CALIBRATION: dict[str, dict[str, float]] = {
    "gemm": {"eff_compute": 0.7583, "eff_memory": 0.7232, "t0_s": 1.123e-05},
    "gemm_fp8": {"eff_compute": 0.6815, "eff_memory": 0.7232, "t0_s": 1.123e-05},
    "attn_prefill": {"eff_compute": 0.4793, "eff_memory": 0.7232, "t0_s": 1.463e-05},
    "attn_decode": {"eff_compute": 0.4793, "eff_memory": 0.8775, "t0_s": 1.463e-05},
    "elementwise": {"eff_compute": 0.7583, "eff_memory": 0.862, "t0_s": 4.867e-06},
}


#: published kernel profiles of other devices (LLMServingSim's, see
#: ``benchmarks/gpu/prepare_lss_profiles.py``) and the bytes a memory-bound kernel must move to
#: count (twice the L2: RTX 4090 72 MiB, Ada whitepaper; RTX PRO 6000 GB202 128 MiB, RTX
#: Blackwell whitepaper)
PROFILES = DEFAULT_DATA.parent / "lss_kernels.parquet"
PROFILE_MIN_BYTES = {"RTX-4090": 2 * 72 * 2.0**20, "RTX-PRO-6000": 2 * 128 * 2.0**20}

#: fitted by fit_device() on PROFILES (the classes of CALIBRATION plus ``attn_decode_mixed``
#: and ``fused_moe``)
DEVICE_CALIBRATION: dict[str, dict[str, dict[str, float]]] = {
    "RTX-PRO-6000": {
        "gemm": {"eff_compute": 0.6963, "eff_memory": 0.8081, "t0_s": 1.123e-05},
        "gemm_fp8": {"eff_compute": 0.6257, "eff_memory": 0.8081, "t0_s": 1.123e-05},
        "attn_prefill": {"eff_compute": 0.3147, "eff_memory": 0.8081, "t0_s": 1.463e-05},
        "attn_decode": {"eff_compute": 0.3147, "eff_memory": 0.7963, "t0_s": 1.463e-05},
        "attn_decode_mixed": {"eff_compute": 0.3147, "eff_memory": 0.2751, "t0_s": 1.463e-05,
                              "gqa4": 0.4286, "gqa8": 0.2439},
        "elementwise": {"eff_compute": 0.6963, "eff_memory": 0.862, "t0_s": 4.867e-06},
        "fused_moe": {"eff_memory": 0.858, "eff_compute": 1.061},
    },
    "RTX-4090": {
        "gemm": {"eff_compute": 0.945, "eff_memory": 0.9277, "t0_s": 1.123e-05},
        "gemm_fp8": {"eff_compute": 0.8493, "eff_memory": 0.9277, "t0_s": 1.123e-05},
        "attn_prefill": {"eff_compute": 0.6036, "eff_memory": 0.9277, "t0_s": 1.463e-05},
        "attn_decode": {"eff_compute": 0.6036, "eff_memory": 0.9016, "t0_s": 1.463e-05},
        "attn_decode_mixed": {"eff_compute": 0.6036, "eff_memory": 0.4244, "t0_s": 1.463e-05,
                              "gqa4": 0.4244},
        "elementwise": {"eff_compute": 0.945, "eff_memory": 0.9096, "t0_s": 4.867e-06},
        "fused_moe": {"eff_memory": 1.039, "eff_compute": 1.105},
    },
}


#: the H200's best square BF16 matmul (TFLOP/s, the reference of :func:`device_scales`)
H200_GEMM_BF16_TFLOPS = 790.29


def device_scales(device: Any) -> tuple[float, float]:
    """(compute, memory) factors on the H200-fitted efficiencies for a
    :class:`~.hardware.Device`: its measured best BF16 matmul ÷ its BF16 peak, over the H200's
    (790.29 of 989 TFLOP/s), and its measured copy bandwidth ÷ its datasheet bandwidth, over the
    H200 copy efficiency; 1 where the device has no measurement."""
    ref = H200_GEMM_BF16_TFLOPS * 1e12 / _PEAK["bf16"]
    compute = (device.gemm_bf16_tflops * 1e12 / device.peak("bf16") / ref
               if device.gemm_bf16_tflops > 0 else 1.0)
    memory = (device.copy_gbps * 1e9 / device.mem_bw / CALIBRATION["elementwise"]["eff_memory"]
              if device.copy_gbps > 0 else 1.0)
    return compute, memory


def _fit(df: Any, peak_of: dict[str, float], bw: float, min_bytes: float = 0.0
         ) -> dict[str, dict[str, float]]:
    """The fit rules of the module docstring with peaks ``peak_of`` (per dtype) and bandwidth
    ``bw``; memory-bound selections only over kernels moving more than ``min_bytes`` (to leave
    out working sets a profiler's repeated calls keep in the L2 cache). ``nan`` where a class
    has no kernel to fit."""
    df = df[df["ok"].astype(int) == 1]
    t = df["runtime_us"].to_numpy(float) * 1e-6
    fl = df["flops"].to_numpy(float)
    by = df["bytes"].to_numpy(float)
    dt = df["dtype"].to_numpy(str)
    op = df["op"].to_numpy(str)
    peak = np.array([peak_of.get(d, np.nan) for d in dt])
    inten = fl / np.maximum(by, 1.0)
    ridge = peak / bw
    ach_c, ach_m = fl / t / peak, by / t / bw
    big = by > min_bytes

    def med(x: np.ndarray, mask: np.ndarray) -> float:
        return float(np.median(x[mask])) if mask.any() else float("nan")

    def roof(ec: float, em: float) -> np.ndarray:
        return np.maximum(fl / (peak * ec), by / (bw * em))

    half = np.isin(dt, ("bf16", "fp16"))
    gemm = np.isin(op, ("gemm", "bmm")) & half
    cb = (inten > 2 * ridge) & (t >= 50e-6)
    mb = (inten < ridge / 8) & (t >= 20e-6) & big
    ec, em = med(ach_c, gemm & cb), med(ach_m, gemm & mb)
    r = roof(ec, em)
    t0 = med(t - r, gemm & (r < 5e-6))
    fp8 = (op == "gemm") & (dt == "fp8")
    pre = (op == "attn_prefill") & half
    dec = (op == "attn_decode") & half
    ec_a, em_a = med(ach_c, pre & (t >= 50e-6)), med(ach_m, dec & (t >= 50e-6) & big)
    r = roof(ec_a, em_a)
    t0_a = med(t - r, (pre | dec) & (r < 5e-6))
    cp = op == "copy"
    return {"gemm": {"eff_compute": ec, "eff_memory": em, "t0_s": t0},
            "gemm_fp8": {"eff_compute": med(ach_c, fp8 & cb), "eff_memory": em, "t0_s": t0},
            "attn_prefill": {"eff_compute": ec_a, "eff_memory": em, "t0_s": t0_a},
            "attn_decode": {"eff_compute": ec_a, "eff_memory": em_a, "t0_s": t0_a},
            "elementwise": {"eff_compute": ec, "eff_memory": med(ach_m, cp & (t >= 20e-6) & big),
                            "t0_s": float(np.min(t[cp])) if cp.any() else float("nan")}}


def _rounded(cal: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {k: {m: float(f"{v:.4g}") for m, v in d.items()} for k, d in cal.items()}


def fit_calibration(df: Any) -> dict[str, dict[str, float]]:
    """The efficiencies and kernel floors of every class from a kernel table of the H200
    (pandas DataFrame with ``op``, ``dtype``, ``flops``, ``bytes``, ``runtime_us``, ``ok``)."""
    return _rounded(_fit(df, _PEAK, _BW))


def fit_device(df: Any, device: Any, min_bytes: float) -> dict[str, dict[str, float]]:
    """The calibration of ``device`` (a :class:`~.hardware.Device`) from its rows of a kernel
    table (``device`` column; :data:`PROFILES`): the GEMM efficiencies, attention prefill's
    compute and decode's memory efficiency and the fused MoE's (``op == "moe"``, with
    :func:`.moe_kernels.fit_additive`) fitted against its datasheet peak and bandwidth; the
    kernel floors, FP8 GEMMs (the H200's FP8 ÷ BF16 ratio) and elementwise kernels (the H200's
    times :func:`device_scales`' memory factor) as on the H200."""
    df = df[df["device"] == device.name]
    peak, bw = device.peak("bf16"), device.mem_bw
    fit = _fit(df, {"bf16": peak, "fp16": peak}, bw, min_bytes)
    h = CALIBRATION
    g, a = fit["gemm"], fit["attn_decode"]
    ratio_c = g["eff_compute"] / h["gemm"]["eff_compute"]
    out = {"gemm": {**h["gemm"], "eff_compute": g["eff_compute"], "eff_memory": g["eff_memory"]},
           "gemm_fp8": {**h["gemm_fp8"], "eff_compute": h["gemm_fp8"]["eff_compute"] * ratio_c,
                        "eff_memory": g["eff_memory"]},
           "attn_prefill": {**h["attn_prefill"], "eff_compute": a["eff_compute"],
                            "eff_memory": g["eff_memory"]},
           "attn_decode": {**h["attn_decode"], "eff_compute": a["eff_compute"],
                           "eff_memory": a["eff_memory"]},
           "attn_decode_mixed": {**h["attn_decode"], "eff_compute": a["eff_compute"],
                                 **_mixed_decode(df, bw, min_bytes)},
           "elementwise": {**h["elementwise"], "eff_compute": g["eff_compute"],
                           "eff_memory": h["elementwise"]["eff_memory"] * device_scales(device)[1]}}
    moe = df[(df["op"] == "moe") & (df["bytes"] > min_bytes)]
    out["fused_moe"] = (fit_additive(moe["bytes"], moe["flops"], moe["runtime_us"] * 1e-6, bw, peak)
                        if len(moe) else _scaled(device)["fused_moe"])
    return _rounded(out)


def _mixed_decode(df: Any, bw: float, min_bytes: float) -> dict[str, float]:
    """Median memory efficiency of the decodes of mixed batches (``attn_decode_mixed`` rows:
    the decode part of a varlen attention kernel that also holds a prefill chunk), over all
    (``eff_memory``) and per query heads per KV head (``gqa<g>``: it falls as ``g`` grows)."""
    x = df[(df["op"] == "attn_decode_mixed") & (df["runtime_us"] >= 50) & (df["bytes"] > min_bytes)]
    eff = x["bytes"] / (x["runtime_us"] * 1e-6) / bw
    return {"eff_memory": float(np.median(eff)),
            **{f"gqa{g}": float(np.median(e)) for g, e in eff.groupby(x["gqa"])}}


def mixed_decode_eff(cls: dict[str, float], gqa: float) -> float:
    """The ``attn_decode_mixed`` memory efficiency for a model with ``gqa`` query heads per KV
    head: that of the nearest measured group (log scale), else the pooled one."""
    groups = {int(k[3:]): v for k, v in cls.items() if k.startswith("gqa")}
    if not groups:
        return cls["eff_memory"]
    return groups[min(groups, key=lambda g: abs(np.log2(g) - np.log2(max(gqa, 1.0))))]


def _scaled(device: Any) -> dict[str, dict[str, float]]:
    """The H200's calibration (and the H100-fitted fused MoE) times :func:`device_scales`."""
    cs, ms = device_scales(device)
    out = {k: {**v, "eff_compute": v["eff_compute"] * cs, "eff_memory": v["eff_memory"] * ms}
           for k, v in CALIBRATION.items()}
    out["attn_decode_mixed"] = out["attn_decode"]
    out["fused_moe"] = {"eff_memory": FUSED_MOE["eff_memory"] * ms,
                        "eff_compute": FUSED_MOE["eff_compute"] * cs}
    return out


def device_calibration(device: Any) -> dict[str, dict[str, float]]:
    """The kernel efficiencies and floors the step cost uses on ``device`` (the classes of
    :data:`CALIBRATION` plus ``attn_decode_mixed``, decodes in a batch with prefill tokens,
    and ``fused_moe``): fitted on its published kernel profiles where
    :data:`DEVICE_CALIBRATION` has them, else the H200's times :func:`device_scales` (mixed
    decodes as decodes alone: the H200 data has no mixed kernel)."""
    return DEVICE_CALIBRATION.get(device.name) or _scaled(device)


if __name__ == "__main__":  # pragma: no cover - regenerates the stored calibrations
    import pandas as pd
    from mlsysgym.simulators.serving.hardware import load_device

    print(fit_calibration(pd.read_parquet(DEFAULT_DATA)))
    profiles = pd.read_parquet(PROFILES)
    for name, min_bytes in PROFILE_MIN_BYTES.items():
        print(name, fit_device(profiles, load_device(name), min_bytes))
