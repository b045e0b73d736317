"""Does a tile choice measured on the plain kernel hold on the form IREE's dispatch gives the op?

Run: .venv/bin/python benchmarks/tiling_layout.py [--models opt_350m_d1024 gpt2] [--rounds 3]
Writes benchmarks/results/tiling_layout.md (+ .json, the ratio of every configuration on both
kernels).

For every (batch) matmul that IREE's dispatch creation holds with its right operand transposed
(a folded weight or K^T transpose; :func:`~mlsysgym.costmodels.tiling_ops.find_root_ops` with a
target), the same configurations are measured against IREE's default on the plain kernel (what
the tile pass measured before it read the dispatch form) and on the folded one, picked as the
calibration picks them for the plain kernel (the shipped model's best predicted, then sampled
near-default ones). Each is timed right after its kernel's default, single thread, median ratio over rounds
(:func:`~mlsysgym.costmodels.tiling_measure.measure_configs`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from bench_tiling_models import HELD_OUT_DIR
from mlsysgym.core.target import target_isa
from mlsysgym.costmodels.tiling_measure import measure_configs, pick_candidates
from mlsysgym.costmodels.tiling_model import MEASURED_MARGIN, TilingModel, load_tiling_model
from mlsysgym.costmodels.tiling_ops import find_root_ops
from mlsysgym.costmodels.tiling_space import TilingInstance, default_config
from mlsysgym.experiments.report import stamp_markdown, write_provenance
from mlsysgym.ir.mlir_import import import_model
from mlsysgym.simulators.iree_cpu import KernelCompiler

OUT = Path("benchmarks/results/tiling_layout.md")  # default --out, under the working directory
WIN = MEASURED_MARGIN  # a calibration's measured config replaces the default below this ratio


def folded_problems(model: str, target_cpu: str) -> list[TilingInstance]:
    """The distinct transposed-B problems of a zoo or held-out model, in IREE's form."""
    path = HELD_OUT_DIR / f"{model}.onnx"
    text = import_model(str(path) if path.is_file() else model).linalg_mlir
    probs = [r.problem for r in find_root_ops(text, target_cpu) if r.problem is not None]
    return [p for p in dict.fromkeys(probs) if p.transpose_b]


def compare(folded: TilingInstance, n: int, rounds: int, target_cpu: str, model: TilingModel,
            compiler: KernelCompiler) -> dict[str, Any]:
    """The same configurations on the plain kernel and on the folded one."""
    plain = replace(folded, transpose_b=False)
    cfgs = pick_candidates(plain, default_config(plain, target_cpu), n,
                           target_isa(target_cpu), model)  # as the calibration picks them
    on = {form: measure_configs(p, cfgs, rounds=rounds, compiler=compiler)
          for form, p in (("plain", plain), ("folded", folded))}
    pairs = [(a.ratio, b.ratio) for a, b in zip(on["plain"], on["folded"]) if a.ok and b.ok]
    rp, rf = np.array(pairs).T if pairs else (np.array([]), np.array([]))
    best = int(np.argmin(rp)) if len(rp) else -1
    return {"shape": folded.key, "configs": len(cfgs), "both_ran": len(pairs),
            **{f"default_us_{form}": next((m.default_us for m in ms if m.ok), float("nan"))
               for form, ms in on.items()},
            "best_plain": float(rp.min()) if len(rp) else float("nan"),
            "best_folded": float(rf.min()) if len(rf) else float("nan"),
            "plain_best_on_folded": float(rf[best]) if best >= 0 else float("nan"),
            "wins_plain_lose_folded": int(np.sum((rp < WIN) & (rf > 1.0))),
            "wins_plain": int(np.sum(rp < WIN)), "wins_folded": int(np.sum(rf < WIN)),
            "pairs": [[float(a), float(b)] for a, b in pairs]}


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["opt_350m_d1024", "gpt2"])
    ap.add_argument("--target-cpu", default="host")
    ap.add_argument("--per-shape", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    model = load_tiling_model(None, a.target_cpu)
    compiler = KernelCompiler.for_target(a.target_cpu)
    rows = []
    for name in a.models:
        for p in folded_problems(name, a.target_cpu):
            print(f"{name} {p.key} ...", file=sys.stderr, flush=True)
            rows.append({"model": name, **compare(p, a.per_shape, a.rounds, a.target_cpu, model,
                                                  compiler)})
    lines = ["# Tile choices on the plain kernel vs the form IREE's dispatch gives the op", "",
             (f"Command: `{' '.join(sys.argv)}`; {(time.perf_counter() - t0) / 60:.1f} min, "
              f"target `{a.target_cpu}`, single thread. Per (batch) matmul whose right operand "
              "IREE's dispatch holds transposed: the same configurations (the shipped model's "
              f"{a.per_shape // 2} best predicted for the plain kernel, then sampled near-default "
              "ones) timed against each kernel's own IREE default (ratio < 1: faster; median "
              f"of {a.rounds} rounds). 'win': ratio < {WIN}."), "",
             ("| model | shape (folded form) | default µs plain | default µs folded | configs | "
              "best plain × | best folded × | plain's best on folded × | wins plain | "
              "wins folded | win plain, slower folded |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['shape']} | {r['default_us_plain']:.0f} | "
                     f"{r['default_us_folded']:.0f} | {r['both_ran']} | {r['best_plain']:.3f} | "
                     f"{r['best_folded']:.3f} | {r['plain_best_on_folded']:.3f} | "
                     f"{r['wins_plain']} | {r['wins_folded']} | {r['wins_plain_lose_folded']} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(stamp_markdown("\n".join(lines) + "\n"))
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    write_provenance(a.out.with_suffix(".provenance.json"), bench="tiling_layout",
                     command=" ".join(sys.argv))
    print(a.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
