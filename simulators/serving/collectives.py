"""Tensor-parallel all-reduce time: the link α-β model, and vLLM's custom all-reduce launched
eagerly (outside a CUDA graph), from published H100 measurements.

Two regimes (:meth:`.costs.StepCost._layer` picks one per iteration):

* **CUDA graph** (vLLM decode iterations, vLLM V1 mixed batches): ``α + 2(p − 1)/p · S / B``
  with the link's per-message latency α and per-direction bandwidth ``B`` (:mod:`.hardware`).
* **eager** (vLLM v0.6 iterations with prefill tokens run without CUDA graphs): each call pays
  the Python dispatch and its input copy into the IPC buffer. Latencies of vLLM's custom
  all-reduce on H100 without CUDA graphs (SGLang PR #2904, "unit test performance in H100
  (without cuda graph)", table "vllm"), in µs, interpolated linearly in bytes. Its "data
  size" is a count of float32 elements (``sgl-kernel/tests/test_trt_reduce.py`` times 5,000
  back-to-back calls of vLLM's ``all_reduce`` on a float32 tensor of that many elements, an
  unregistered input, i.e. with its copy into the IPC buffer), so the bytes are 4× the listed
  sizes:

  ==========  ======  ======  ======
  bytes       tp 2    tp 4    tp 8
  ==========  ======  ======  ======
  2,048       9.5     9.1     10.1
  16,384      8.8     8.5     9.3
  131,072     8.7     9.2     11.8
  1,048,576   12.9    20.6    24.1
  2,097,152   17.7    26.9    30.4
  4,194,304   26.6    40.2    45.0
  ==========  ======  ======  ======

  Below 2 KiB the 2-KiB value holds. Beyond 4 MiB (prefill chunks of hundreds of tokens) the
  marginal cost is that of vLLM's two-stage custom all-reduce on H100 between 1 and 4 MB:
  TP4 ``ca_2stage`` 18 µs at "1.00 MB" → 42 µs at "4.00 MB" (vLLM PR #24532,
  ``benchmark_device_communicators.py``; its sizes are bf16 tensors of 64 and 256 × 8192
  elements, i.e. MiB) = **8.0 µs per MiB**. Other group sizes
  use the nearest measured one (tp 3 → 4, 5–8 → 8; tp > 8 → 8: an assumption).

The eager table is a measurement of vLLM's custom all-reduce; with ``--disable-custom-all-reduce``
vLLM calls NCCL instead, which this module does not model separately (PR #24532's H100 tables
show PyNccl no faster than the custom kernels at these sizes, so the table is a lower bound).
"""

from __future__ import annotations

import numpy as np

__all__ = ["EAGER_AR_BYTES", "EAGER_AR_US", "EAGER_AR_US_PER_MIB", "allreduce_eager_s",
           "allreduce_link_s"]

EAGER_AR_BYTES = 4.0 * np.array([512.0, 4096.0, 32768.0, 262144.0, 524288.0, 1048576.0])
EAGER_AR_US: dict[int, np.ndarray] = {
    2: np.array([9.5, 8.8, 8.7, 12.9, 17.7, 26.6]),
    4: np.array([9.1, 8.5, 9.2, 20.6, 26.9, 40.2]),
    8: np.array([10.1, 9.3, 11.8, 24.1, 30.4, 45.0]),
}
EAGER_AR_US_PER_MIB = 8.0  # beyond the table: (42 − 18) µs / (4 − 1) MiB, vLLM PR #24532


def allreduce_link_s(nbytes, ranks: int, bw: float, latency_s: float):
    """α-β all-reduce of ``nbytes`` over ``ranks`` devices: ``latency + 2(p − 1)/p · S / bw``
    (0 for one rank; array-friendly)."""
    if ranks <= 1:
        return np.zeros_like(np.asarray(nbytes, float))
    return latency_s + 2.0 * (ranks - 1) / ranks * np.asarray(nbytes, float) / bw


def allreduce_eager_s(nbytes, ranks: int):
    """Eager (no CUDA graph) custom all-reduce of ``nbytes`` over ``ranks`` devices, from the
    published H100 table in the module docstring (0 for one rank; array-friendly)."""
    s = np.asarray(nbytes, float)
    if ranks <= 1:
        return np.zeros_like(s)
    key = 2 if ranks == 2 else 4 if ranks <= 4 else 8
    us = EAGER_AR_US[key]
    t = np.interp(s, EAGER_AR_BYTES, us)
    t = t + np.maximum(s - EAGER_AR_BYTES[-1], 0.0) / 1048576.0 * EAGER_AR_US_PER_MIB
    return t * 1e-6
