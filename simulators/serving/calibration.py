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

Other devices use the same fractions of their own datasheet peaks, corrected by
:func:`device_scales` where a measurement says how far that device's achieved throughput is
from its datasheet compared with the H200's (consumer and workstation parts run above their
datasheet boost clock; HBM parts below): the device's best square BF16 matmul and its copy
bandwidth (``Device.gemm_bf16_tflops``, ``Device.copy_gbps``; published runs, sources in
:mod:`.hardware`). The compute factor applies to every kernel class and dtype of the device
(the clock moves them together). A device without a measurement keeps the factor 1 (the
H200's fractions, an assumption).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CALIBRATION", "DEFAULT_DATA", "H200_GEMM_BF16_TFLOPS", "device_scales",
           "fit_calibration"]

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


def _roof(flops: np.ndarray, nbytes: np.ndarray, peak: np.ndarray, ec: float, em: float
          ) -> np.ndarray:
    return np.maximum(flops / (peak * ec), nbytes / (_BW * em))


def fit_calibration(df: Any) -> dict[str, dict[str, float]]:
    """The efficiencies and kernel floors of every class from a kernel table (pandas
    DataFrame with ``op``, ``dtype``, ``flops``, ``bytes``, ``runtime_us``, ``ok``)."""
    df = df[df["ok"].astype(int) == 1]
    t = df["runtime_us"].to_numpy(float) * 1e-6
    fl = df["flops"].to_numpy(float)
    by = df["bytes"].to_numpy(float)
    dt = df["dtype"].to_numpy(str)
    op = df["op"].to_numpy(str)
    peak = np.array([_PEAK.get(d, np.nan) for d in dt])
    inten = fl / np.maximum(by, 1.0)
    ridge = peak / _BW
    ach_c, ach_m = fl / t / peak, by / t / _BW

    def med(mask: np.ndarray) -> float:
        return float(np.median(ach_c[mask] if mask is not None else ach_c))

    half = np.isin(dt, ("bf16", "fp16"))
    gemm = np.isin(op, ("gemm", "bmm")) & half
    cb = (inten > 2 * ridge) & (t >= 50e-6)
    mb = (inten < ridge / 8) & (t >= 20e-6)
    out: dict[str, dict[str, float]] = {}
    ec = med(gemm & cb)
    em = float(np.median(ach_m[gemm & mb]))
    roof = _roof(fl, by, peak, ec, em)
    t0 = float(np.median((t - roof)[gemm & (roof < 5e-6)]))
    out["gemm"] = {"eff_compute": ec, "eff_memory": em, "t0_s": t0}
    fp8 = (op == "gemm") & (dt == "fp8")
    out["gemm_fp8"] = {"eff_compute": med(fp8 & cb), "eff_memory": em, "t0_s": t0}
    pre = (op == "attn_prefill") & half
    ec_a = med(pre & (t >= 50e-6))
    dec = (op == "attn_decode") & half
    em_a = float(np.median(ach_m[dec & (t >= 50e-6)]))
    roof_a = _roof(fl, by, peak, ec_a, em_a)
    t0_a = float(np.median((t - roof_a)[(pre | dec) & (roof_a < 5e-6)]))
    out["attn_prefill"] = {"eff_compute": ec_a, "eff_memory": em, "t0_s": t0_a}
    out["attn_decode"] = {"eff_compute": ec_a, "eff_memory": em_a, "t0_s": t0_a}
    cp = op == "copy"
    out["elementwise"] = {"eff_compute": ec,
                          "eff_memory": float(np.median(ach_m[cp & (t >= 20e-6)])),
                          "t0_s": float(np.min(t[cp]))}
    return {k: {m: float(f"{v:.4g}") for m, v in d.items()} for k, d in out.items()}


if __name__ == "__main__":  # pragma: no cover - regenerates CALIBRATION
    import pandas as pd

    print(fit_calibration(pd.read_parquet(DEFAULT_DATA)))
