"""Training data for cost models: sample a DesignSpace, evaluate, log rows with DatasetLogger.

Every dataset is a Parquet directory written by :class:`mlsysgym.core.dataset.DatasetLogger`
(one row per evaluated design), read back with :func:`mlsysgym.core.dataset.read_dataset`.
Three sources:

- the analytical accelerator model (fast: tens of thousands of rows in seconds);
- the DRAM controller simulator (one run per design over a trace; thousands of rows);
- the ZigZag backend (seconds per design: a few hundred rows at most; ``slow``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Design, Evaluator
from mlsysgym.core.params import PowerOfTwo
from mlsysgym.core.space import DesignSpace
from mlsysgym.costmodels.features import DerivedFeature

__all__ = ["ACCEL_DERIVED", "DatasetSpecError", "generate", "split_frame",
           "tiny_conv_model", "zigzag_space"]


class DatasetSpecError(MlsysgymError):
    """A dataset request that cannot be satisfied (unknown source, no rows)."""


#: Products/ratios of accelerator knobs (sums in log2 space) that make the analytical model's
#: thresholds axis-aligned for trees: PEs, aspect ratio, buffer words, bytes per cycle.
ACCEL_DERIVED: tuple[DerivedFeature, ...] = (
    DerivedFeature("log2_pes", (("rows", 1.0), ("cols", 1.0))),
    DerivedFeature("log2_aspect", (("rows", 1.0), ("cols", -1.0))),
    DerivedFeature("log2_ifmap_words", (("ifmap_kb", 1.0), ("word_bytes", -1.0))),
    DerivedFeature("log2_filter_words", (("filter_kb", 1.0), ("word_bytes", -1.0))),
    DerivedFeature("log2_ofmap_words", (("ofmap_kb", 1.0), ("word_bytes", -1.0))),
    DerivedFeature("log2_bw_per_pe", (("bandwidth", 1.0), ("rows", -1.0), ("cols", -1.0))),
)


def zigzag_space(hardware: str = "tpu_like") -> DesignSpace:
    """Array size, on-chip memory sizes and DRAM bandwidth of a shipped ZigZag hardware
    description, each a power of two from a quarter to four times the shipped value (two
    array dimensions at most)."""
    from mlsysgym.simulators.zigzag_backend import hardware_knobs

    knobs = hardware_knobs(hardware)
    params: list[Any] = []
    for name, v in knobs.items():
        if name in ("act_bits", "weight_bits", "d3", "d4"):
            continue
        p2 = 1 << round(float(np.log2(max(v, 1))))
        lo, hi = max(p2 // 4, 1), p2 * 4
        if name.startswith("mem_bytes.") and p2 < 64:  # register files: keep them tiny
            lo, hi = max(p2 // 2, 1), p2 * 2
        params.append(PowerOfTwo(name, lo, hi))
    return DesignSpace(params)


def tiny_conv_model(channels: int = 64, size: int = 28, name: str = "conv3x3") -> Any:
    """A one-layer ONNX model (3×3 conv, stride 2, ``channels`` → 2·``channels``) for quick
    ZigZag datasets."""
    import onnx
    from onnx import TensorProto, helper

    c, s = channels, size
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, s, s])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2 * c, s // 2, s // 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2 * c, c, 3, 3],
                           np.zeros(2 * c * c * 9, np.float32).tobytes(), raw=True)
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 1, 1, 1])
    model = helper.make_model(helper.make_graph([node], name, [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def _design_batches(designs: Sequence[Design], size: int) -> list[list[Design]]:
    return [list(designs[i:i + size]) for i in range(0, len(designs), size)]


def generate(evaluator: Evaluator, space: DesignSpace, workload: Any, n: int,
             path: str | os.PathLike[str], seed: int = 0, batch_size: int = 1024,
             designs: Sequence[Design] | None = None, skip_failures: bool = True) -> Any:
    """Evaluate ``n`` uniform random feasible designs of ``space`` (or ``designs``) on
    ``workload`` through a DatasetLogger writing to ``path``; returns the dataset as a
    DataFrame (every row of ``path``, including earlier runs). Designs the evaluator rejects
    are skipped (``skip_failures``) after a batch fails, by evaluating that batch one by one."""
    from mlsysgym.core.dataset import DatasetLogger, read_dataset
    from mlsysgym.core.evaluator import EvaluationError

    if designs is None:
        designs = space.sample(np.random.default_rng(seed), n)
    designs = [dict(d) for d in designs]
    Path(path).mkdir(parents=True, exist_ok=True)
    logger = DatasetLogger(evaluator, path, flush_every=max(batch_size, 1),
                           part_rows=max(batch_size * 8, 128), cache_size=1)
    with logger:
        for batch in _design_batches(designs, batch_size):
            try:
                logger.evaluate(batch, workload, cache=False)
            except EvaluationError:
                if not skip_failures:
                    raise
                for d in batch:
                    try:
                        logger.evaluate([d], workload, cache=False)
                    except EvaluationError:
                        continue
    frame = read_dataset(path)
    if len(frame) == 0:
        raise DatasetSpecError(f"no rows were logged to {path}; every design failed")
    return frame


def split_frame(frame: Any, test_fraction: float = 0.2, seed: int = 0,
                group: str | None = None, holdout: Sequence[Any] = ()) -> tuple[Any, Any]:
    """(train, test): a random split, or with ``group``/``holdout`` every row whose ``group``
    value is in ``holdout`` goes to test (held out by workload, op kind, ...)."""
    if group is not None and holdout:
        mask = frame[group].isin(list(holdout)).to_numpy()
    else:
        rng = np.random.default_rng(seed)
        mask = np.zeros(len(frame), dtype=bool)
        mask[rng.permutation(len(frame))[: round(len(frame) * test_fraction)]] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
