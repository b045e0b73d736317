"""Headroom of per-op tile sizes on the root-op kinds the tile pass does not cover yet.

Run: .venv/bin/python benchmarks/tiling_headroom.py [--target-cpu host] [--rounds 3]
Writes benchmarks/results/tiling_headroom.md.

For each kind (batch-1 and 1×1 convs, depthwise convs at batch 1 and 2, row reductions as
``linalg.generic``, shapes from the zoo's CNNs and transformers), the kernel's IREE default
configuration is read through the MLIR bindings (its root op's ``lowering_config`` levels and
its function's ``translation_info`` attribute, both as IREE printed them:
:func:`~mlsysgym.costmodels.tiling_space.configured_ops`). Variants halve or
double one tile size of one level at a time; each is written as a ``compilation_info`` on the
kernel's root op, compiled, checked against the default's output and timed right after the
default (median ratio over rounds, single thread). The table says per kind whether IREE keeps
a per-op configuration at all and how much a better tile buys: the case for extending the pass.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.costmodels.tiling_ops import annotate, find_root_ops
from mlsysgym.costmodels.tiling_space import (
    ConfigReadError,
    configured_ops,
    executable_configurations,
)
from mlsysgym.experiments.report import stamp_markdown
from mlsysgym.ir.mlir_emit import emit
from mlsysgym.simulators.iree_cpu import KernelCompiler, Runner, time_calls

OUT = Path("benchmarks/results/tiling_headroom.md")  # default --out, under the working directory
KERNELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("conv 3x3, batch 1 (ResNet)", {"kind": "conv_2d_nhwc_hwcf", "shape": "1x28x28x128x3x3x128"}),
    ("conv 1x1, batch 1 (ResNet)", {"kind": "conv_2d_nhwc_hwcf", "shape": "1x28x28x256x1x1x128"}),
    ("conv 1x1, batch 2", {"kind": "conv_2d_nhwc_hwcf", "shape": "2x28x28x256x1x1x128"}),
    ("depthwise 3x3, batch 1 (MobileNet)", {"kind": "depthwise_conv_2d_nhwc_hwc",
                                            "shape": "1x56x56x128x3x3"}),
    ("depthwise 3x3, batch 2", {"kind": "depthwise_conv_2d_nhwc_hwc", "shape": "2x56x56x128x3x3"}),
    ("row sum 128x768 (LayerNorm-like)", {"kind": "reduction", "shape": "128x768"}),
    ("row max 12x128x128 (softmax-like)", {"kind": "reduction", "shape": "12x128x128", "op": "max"}),
)
MAIN_LEVELS = ("distribution", "vector_common_parallel", "vector_reduction")


@dataclass(frozen=True)
class RawInfo:
    """A ``compilation_info`` made of lowering-config levels and IREE's own translation_info."""

    levels: tuple[tuple[str, tuple[int, ...]], ...]
    translation: str

    def to_attr(self) -> str:
        body = ", ".join(f"{k} = [{', '.join(map(str, v))}]" for k, v in self.levels)
        return (f"#iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
                f"{body}>, translation_info = {self.translation}>")


def default_info(text: str, target_cpu: str) -> RawInfo | None:
    """IREE's configuration of the kernel's root op (the last op with a ``distribution``
    level) and its function's translation_info; None when IREE keeps no such configuration."""
    try:
        ops = configured_ops(executable_configurations(text, target_cpu, 120.0))
    except ConfigReadError:
        return None
    roots = [o for o in ops if "distribution" in o.levels and o.translation]
    if not roots:
        return None
    return RawInfo(tuple(sorted(roots[-1].levels.items())), roots[-1].translation)


def variants(d: RawInfo, limit: int) -> list[RawInfo]:
    """One tile size of one main level halved or doubled, at most ``limit`` of them."""
    out = []
    for li, (name, sizes) in enumerate(d.levels):
        if name not in MAIN_LEVELS:
            continue
        for j, v in enumerate(sizes):
            if v <= 0:
                continue
            for new in (v // 2, v * 2):
                if new >= 1 and new != v:
                    sz = tuple(new if k == j else x for k, x in enumerate(sizes))
                    lv = tuple((n, sz) if i == li else (n, s) for i, (n, s) in enumerate(d.levels))
                    out.append(RawInfo(lv, d.translation))
    rng = np.random.default_rng(0)
    return [out[int(i)] for i in sorted(rng.permutation(len(out))[:limit])]


def probe(label: str, design: dict[str, Any], target_cpu: str, rounds: int,
          limit: int) -> dict[str, Any]:
    """Measure the variants of one kernel against IREE's default."""
    kernel = emit(design)
    d = default_info(kernel.mlir, target_cpu)
    row: dict[str, Any] = {"kernel": label, "default": "none kept" if d is None else
                           " ".join(f"{k}={list(v)}" for k, v in d.levels)}
    if d is None:
        return row
    roots = find_root_ops(kernel.mlir)
    if len(roots) != 1:
        row["default"] += f" ({len(roots)} root ops found; skipped)"
        return row
    idx = roots[0].index
    cands = variants(d, limit)
    compiler = KernelCompiler.for_target(target_cpu, timeout_s=120.0)
    texts = [kernel.mlir] + [annotate(kernel.mlir, {idx: c}) for c in cands]
    res = compiler.compile_many(texts)
    inputs = kernel.random_inputs(0)
    base = Runner(res[0].vmfb, res[0].func)
    want = base.run(inputs).astype(np.float64)
    scale = max(float(np.max(np.abs(want))), 1e-6)
    base_bytes = Path(res[0].vmfb).read_bytes()
    calls, bad = {}, 0
    for i, r in enumerate(res[1:]):
        if not r.ok or Path(r.vmfb).read_bytes() == base_bytes:
            continue  # not compiled, or IREE dropped the per-op config (same module)
        run = Runner(r.vmfb, r.func)
        got = run.run(inputs).astype(np.float64)
        if got.shape != want.shape or float(np.max(np.abs(got - want))) / scale > 1e-3:
            bad += 1
            continue
        calls[i] = run.prepare(inputs)
    base_call = base.prepare(inputs)
    ratios: dict[int, list[float]] = {i: [] for i in calls}
    timing = {"warmup_s": 0.004, "min_reps": 3, "max_reps": 12, "max_time_s": 0.05}
    for _ in range(rounds):
        for i, call in calls.items():
            td = time_calls(base_call, **timing).median_us
            ratios[i].append(time_calls(call, **timing).median_us / td)
    med = {i: float(np.exp(np.median(np.log(r)))) for i, r in ratios.items()}
    best = min(med, key=med.get) if med else None
    applied = sum(r.ok and Path(r.vmfb).read_bytes() != base_bytes for r in res[1:])
    row.update({"variants": len(cands), "compiled": sum(r.ok for r in res[1:]), "applied": applied,
                "numerics_bad": bad, "best_speedup": 1 / med[best] if best is not None else math.nan,
                "median_speedup": float(1 / np.median(list(med.values()))) if med else math.nan,
                "best": "" if best is None else " ".join(
                    f"{k}={list(v)}" for k, v in cands[best].levels if k in MAIN_LEVELS)})
    return row


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-cpu", default="host")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", type=int, default=16)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    for label, design in KERNELS:
        print(f"{label} ...", file=sys.stderr, flush=True)
        rows.append(probe(label, design, a.target_cpu, a.rounds, a.variants))
    lines = ["# Tile-size headroom on root-op kinds the pass does not cover", "",
             (f"Command: `{' '.join(sys.argv)}`; {(time.perf_counter() - t0) / 60:.1f} min, target "
             f"`{a.target_cpu}`, single thread, each variant timed right after IREE's default "
             f"(median ratio of {a.rounds} rounds). Variants: one tile size of one level halved "
             "or doubled. Speedup > 1: the variant is faster than IREE's default."), "",
             ("| kernel | IREE's default config | variants | compiled | applied | numerics bad | "
             "best speedup | median speedup | best variant |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "variants" not in r:
            lines.append(f"| {r['kernel']} | {r['default']} | — | — | — | — | — | — | — |")
            continue
        lines.append(f"| {r['kernel']} | {r['default']} | {r['variants']} | {r['compiled']} | "
                     f"{r['applied']} | "
                     f"{r['numerics_bad']} | {r['best_speedup']:.3f} | {r['median_speedup']:.3f} | "
                     f"{r['best']} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(stamp_markdown("\n".join(lines) + "\n"))
    print(a.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
