"""Unmeasured kernels for self-supervised pretraining of the MLIR text model.

:func:`pretrain_frame` emits many more kernel texts than were measured, cheaply: it takes the
kernels of a training frame (``kind``, ``shape``, ``dtype``, ``op``, ``stride``, ``dilation``,
``reduce_dims`` columns, as written by ``experiments/mlir_measure.py``), scales each of their
non-window sizes by a random factor (log-uniform in [1/4, 4]; element-wise ops are sometimes
swapped for another), caps the work like the measured dataset, and emits the MLIR text with
:func:`mlsysgym.ir.mlir_emit.emit`. Each row is labelled with *analytic* quantities computed
from its shape (:func:`analytic_labels`: FLOPs, bytes read and written, MACs, iteration points,
each iteration-domain size and its power-of-two alignment) — never with a runtime. Only op kinds of
the given frame are generated, so a held-out kind stays unseen.

FLOPs follow the measured dataset's definition (the parsed linalg op's FLOPs,
``mlsysgym.ir.mlir_parse``): 2 per MAC for contractions and convolutions, and for element-wise
ops and reductions the parsed FLOPs per iteration point of the (kind, op) (read once from a
tiny emitted instance; they scale with the points) times the points.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
from mlsysgym.costmodels.mlir_text import AUX_TARGETS, alignment
from mlsysgym.ir.mlir_emit import ELEMENTWISE_OPS, KernelSpec, KernelSpecError, emit

__all__ = ["ALIGN_LABELS", "SIZE_LABELS", "analytic_labels", "label_frame", "pretrain_frame",
           "seed_frame", "spec_of_row"]

_WINDOW = {"conv_2d_nhwc_hwcf": (4, 5), "depthwise_conv_2d_nhwc_hwc": (4, 5)}
_CONTRACTIONS = ("matmul", "batch_matmul", "conv_2d_nhwc_hwcf", "depthwise_conv_2d_nhwc_hwc")
#: Iteration-domain sizes as labels: ``size<i>`` = the i-th size of the kernel's ``shape`` (0 if
#: the kernel has fewer dims).
SIZE_LABELS = tuple(c for c in AUX_TARGETS if c.startswith("size"))
#: ``align<i>`` = the power-of-two alignment of ``size<i>`` (trailing zero bits, ≤ 5; 0 if absent):
#: whether a loop splits evenly into vector lanes shows in measured runtimes.
ALIGN_LABELS = tuple(c for c in AUX_TARGETS if c.startswith("align"))


def _clean(v: Any, default: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return default
    return v


def spec_of_row(row: Any) -> KernelSpec:
    """The KernelSpec of one dataset row (a mapping with ``kind`` and ``shape``)."""
    return KernelSpec.from_design({
        "kind": row["kind"], "shape": row["shape"], "dtype": _clean(row.get("dtype"), "f32"),
        "op": _clean(row.get("op"), ""), "stride": int(_clean(row.get("stride"), 1)),
        "dilation": int(_clean(row.get("dilation"), 1)),
        "reduce_dims": str(_clean(row.get("reduce_dims"), ""))})


@cache
def _flops_per_point(kind: str, op: str, dtype: str, reduce_dims: tuple[int, ...],
                     rank: int) -> float:
    from mlsysgym.ir.mlir_parse import parse

    spec = KernelSpec(kind, (3,) * rank, dtype, op, reduce_dims=reduce_dims)
    g = parse(emit(spec).mlir).graph
    flops = sum(o.flops for o in g.ops if o.attributes.get("kind") and o.op_type != "linalg.fill")
    return flops / spec.points


def analytic_labels(spec: KernelSpec) -> dict[str, float]:
    """FLOPs, bytes read and written, MACs, iteration points, the iteration-domain sizes
    (:data:`SIZE_LABELS`) and their alignments (:data:`ALIGN_LABELS`) of a kernel, from its
    shape alone."""
    if spec.kind in _CONTRACTIONS:
        flops = 2.0 * spec.macs
    else:
        flops = spec.points * _flops_per_point(spec.kind, spec.op, spec.dtype, spec.reduce_dims,
                                               len(spec.shape))
    read, written = spec.bytes()
    dims = [*spec.shape, *[0] * (len(SIZE_LABELS) - len(spec.shape))]
    sizes = {k: float(d) for k, d in zip(SIZE_LABELS, dims)}
    aligns = {k: float(alignment(d)) for k, d in zip(ALIGN_LABELS, dims)}
    return {"flops": float(flops), "bytes_read": float(read), "bytes_written": float(written),
            "macs": float(spec.macs), "points": float(spec.points), **sizes, **aligns}


def label_frame(frame: Any) -> Any:
    """:func:`analytic_labels` of every row of a kernel frame (``kind``, ``shape``, ...
    columns), one column per label, same index."""
    import pandas as pd

    return pd.DataFrame([analytic_labels(spec_of_row(r)) for r in frame.to_dict("records")],
                        index=frame.index)


def _specs(frame: Any) -> list[tuple[dict[str, Any], KernelSpec]]:
    """(row, KernelSpec) of each row of a kernel frame that describes an emittable kernel."""
    out = []
    for row in frame.to_dict("records"):
        try:
            out.append((row, spec_of_row(row)))
        except (KernelSpecError, KeyError, ValueError):
            continue
    return out


def seed_frame(frame: Any, unlabeled: Any) -> Any:
    """The seeds of pretraining: ``frame``'s rows, then the emittable ``unlabeled`` kernels'
    (their design columns and ``mlir`` text, emitted when they have none)."""
    import pandas as pd

    rows = [{**spec.to_design(),
             "mlir": r["mlir"] if isinstance(r.get("mlir"), str) else emit(spec).mlir}
            for r, spec in _specs(unlabeled)]
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)


def _elements(spec: KernelSpec) -> int:
    return max(math.prod(s) for s in [*spec.input_shapes(), spec.output_shape()])


def _perturb(spec: KernelSpec, rng: np.random.Generator, max_macs: float,
             max_elements: float) -> KernelSpec:
    window = _WINDOW.get(spec.kind, ())
    shape = [d if (i in window or d == 1) else max(1, round(d * 2.0 ** rng.uniform(-2, 2)))
             for i, d in enumerate(spec.shape)]
    op = spec.op
    if spec.kind == "elementwise" and rng.random() < 0.3:
        op = str(rng.choice(list(ELEMENTWISE_OPS)))
    out = KernelSpec(spec.kind, tuple(shape), spec.dtype, op, spec.stride, spec.dilation,
                     spec.reduce_dims)
    for _ in range(64):  # halve the largest non-window size until under the caps
        if (out.macs or out.points) <= max_macs and _elements(out) <= max_elements:
            break
        idx = max((i for i in range(len(shape)) if i not in window), key=lambda i: shape[i])
        if shape[idx] <= 1:
            break
        shape[idx] = max(1, shape[idx] // 2)
        out = KernelSpec(spec.kind, tuple(shape), spec.dtype, op, spec.stride, spec.dilation,
                         spec.reduce_dims)
    return out


def pretrain_frame(frame: Any, n: int, seed: int = 0, max_macs: float = 2.5e8,
                   max_elements: float = 4e6) -> Any:
    """``n`` emitted kernels (columns ``mlir``, the kernel's design — ``kind``, ``shape``,
    ``dtype``, ``op``, ... — and its :func:`analytic_labels`): random perturbations of the
    frame's kernels, analytic labels only."""
    import pandas as pd

    specs = [spec for _, spec in _specs(frame)]
    if not specs:
        raise KernelSpecError("no row of the frame describes an emittable kernel (kind, shape)")
    rng = np.random.default_rng(seed)
    rows = []
    for i in rng.integers(len(specs), size=int(n)):
        s = _perturb(specs[int(i)], rng, max_macs, max_elements)
        rows.append({"mlir": emit(s).mlir, **s.to_design(), **analytic_labels(s)})
    return pd.DataFrame(rows)
