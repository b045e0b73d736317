"""Training data for the tile-size cost model: zoo shapes, the held-out split, the CLI.

Shapes come from the zoo's models (:func:`mlsysgym.experiments.mlir_measure.zoo_kernel_specs`):
every matmul, batch matmul and conv with a window larger than 1×1 (convs at batch 2, since
batch-1 convs cannot take a per-op config), shrunk to at most ``max_macs`` so one kernel runs
in about a millisecond, plus perturbations of them (sizes scaled by 0.5–2×). A fixed set of
zoo shapes is held out (:func:`split_shapes`) — neither they nor perturbations of their zoo
origin are measured for training; the report evaluates on them. Measuring is
:func:`mlsysgym.costmodels.tiling_measure.collect` (one row per shape and configuration, with
the target fingerprint); training is :func:`mlsysgym.costmodels.tiling_model.train_tiling_model`.

Run (one dataset may hold several targets; this CPU must run each)::

    python -m mlsysgym.experiments.tiling_data --minutes 12 --target-cpu host --out DIR
    python -m mlsysgym.experiments.tiling_data --minutes 12 --target-cpu x86-64-v3 --out DIR
    python -m mlsysgym.experiments.tiling_data --out DIR --train MODEL_DIR
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from mlsysgym.costmodels.tiling_measure import (
    MAX_MACS,
    ShapeSample,
    collect,
    perturbed,
    shrink,
)
from mlsysgym.costmodels.tiling_space import TilingInstance, instance_for

__all__ = ["held_out_shapes", "split_shapes", "train", "training_shapes"]

N_HELD_OUT = 12


def _zoo_problems(max_macs: float) -> list[tuple[str, TilingInstance]]:
    from mlsysgym.experiments.mlir_measure import zoo_kernel_specs

    out: list[tuple[str, TilingInstance]] = []
    seen: set[str] = set()
    for model, spec in zoo_kernel_specs():
        dims = list(spec.shape)
        if spec.kind == "conv_2d_nhwc_hwcf":
            dims[0] = 2
        dims = shrink(spec.kind, dims, max_macs)
        p = instance_for(spec.kind, dims, spec.stride, spec.dilation)
        if p is not None and p.key not in seen:
            seen.add(p.key)
            out.append((model, p))
    return out


def split_shapes(max_macs: float = MAX_MACS, n_held_out: int = N_HELD_OUT, seed: int = 0
                 ) -> tuple[list[tuple[str, TilingInstance]], list[tuple[str, TilingInstance]]]:
    """(training base shapes, held-out shapes) of the zoo, deterministic; the held-out set has
    a few of each kind."""
    probs = _zoo_problems(max_macs)
    rng = np.random.default_rng(seed)
    held: list[tuple[str, TilingInstance]] = []
    by_kind: dict[str, list[int]] = {}
    for i, (_, p) in enumerate(probs):
        by_kind.setdefault(p.kind, []).append(i)
    share = {"matmul": 3, "batch_matmul": 5, "conv_2d_nhwc_hwcf": 4}
    for kind, idx in sorted(by_kind.items()):
        take = min(share.get(kind, 2), max(len(idx) // 3, 1))
        used: set[str] = set()
        picked: list[int] = []
        for i in rng.permutation(idx):  # spread over models first
            if len(picked) < take and probs[int(i)][0] not in used:
                picked.append(int(i))
                used.add(probs[int(i)][0])
        for i in rng.permutation(idx):
            if len(picked) < take and int(i) not in picked:
                picked.append(int(i))
        held += [probs[i] for i in picked]
    held = held[:n_held_out]
    keys = {p.key for _, p in held}
    return [(m, p) for m, p in probs if p.key not in keys], held


def held_out_shapes(**kw: Any) -> list[tuple[str, TilingInstance]]:
    """The zoo shapes the report evaluates on (never measured for training)."""
    return split_shapes(**kw)[1]


def training_shapes(n: int, seed: int = 0, max_macs: float = MAX_MACS) -> list[ShapeSample]:
    """``n`` training shapes: the training zoo shapes and perturbations of them, interleaved
    so a short run covers both; no held-out shape (nor a perturbation of one) is among them."""
    train, held = split_shapes(max_macs)
    rng = np.random.default_rng(seed)
    zoo = [ShapeSample(p, f"zoo:{m}", p.key) for m, p in
           (train[int(i)] for i in rng.permutation(len(train)))]
    pert = perturbed(train, n - len(zoo), seed, exclude={p.key for _, p in held}, max_macs=max_macs)
    mixed: list[ShapeSample] = []
    for i in range(max(len(zoo), len(pert))):
        mixed += ([zoo[i]] if i < len(zoo) else []) + ([pert[i]] if i < len(pert) else [])
    return mixed[:n]


def train(data: str | os.PathLike[str], out: str | os.PathLike[str], seed: int = 0,
          members: int = 3, exclude_targets: Sequence[str] = ()) -> Any:
    """Fit the tile-size cost model on the dataset at ``data`` (rows of targets in
    ``exclude_targets`` left out) and save it to ``out``; returns the fitted model."""
    from mlsysgym.core.dataset import read_dataset
    from mlsysgym.costmodels.tiling_model import features_frame, train_tiling_model

    rows = read_dataset(data)
    if "target_id" in rows and exclude_targets:
        rows = rows[~rows["target_id"].isin(list(exclude_targets))]
    return train_tiling_model(features_frame(rows), out, members=members, seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: collect training data."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/tiling/data")
    ap.add_argument("--target-cpu", default="host",
                    help="codegen target: host, x86-64-v3, x86-64-v2 (this CPU must run it)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--shapes", type=int, default=400)
    ap.add_argument("--per-shape", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--train", metavar="MODEL_DIR", help="fit the cost model on --out instead")
    ap.add_argument("--exclude-target", action="append", default=[], metavar="TARGET_ID",
                    help="with --train: leave this target's rows out (repeatable)")
    a = ap.parse_args(argv)
    if a.train:
        m = train(a.out, a.train, exclude_targets=a.exclude_target)
        print(json.dumps({"rows": m.info.rows, "validation": m.info.validation,
                          "targets": m.hyperparameters["tiling"]["targets"]}, default=str))
        return 0
    s = collect(a.out, a.minutes, a.per_shape, a.rounds, resume=not a.no_resume,
                target_cpu=a.target_cpu, shapes=training_shapes(a.shapes))
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
