"""Report of the tile-size pass on held-out zoo kernels → ``benchmarks/results/tiling.md``.

For every held-out kernel (zoo shapes never measured for training, see
:func:`mlsysgym.experiments.tiling_data.split_shapes`), in one run:

1. ``costmodel`` mode: the pass's pick (best predicted over all candidates, one batched
   ONNX Runtime call), with the time of the scoring and of the whole pass on the kernel;
2. selection measurements (interleaved with the default): the ``k`` best predicted
   (``costmodel+verify-top-k`` keeps the fastest of them, or the default when none beats it)
   and a sampled candidate set of ``n_exhaustive`` configurations (``measure`` mode keeps the
   fastest — the ceiling of what search over the space finds);
3. a confirmation run measuring the three picks again (``confirm_rounds`` rounds, interleaved
   with the default) so the reported speedups are not inflated by picking the luckiest
   timing of step 2 (winner's curse).

Speedup = default time / pick time (1.0 when a mode keeps the default). Numerics of every
measured configuration are checked against the untuned compile.

Whole models end to end are measured by ``benchmarks/bench_tiling_models.py``.

Run: ``python -m mlsysgym.experiments.tiling_report --out benchmarks/results/tiling.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KernelResult", "evaluate", "main", "render"]

OUT_MD = Path("results") / "tiling.md"


@dataclass
class KernelResult:
    """Everything measured for one held-out kernel."""

    kernel: str
    model: str
    default_us: float
    candidates: int
    cm_speedup: float
    topk_speedup: float
    exh_speedup: float
    cm_is_default: bool
    cm_predicted: float
    score_ms: float
    features_ms: float
    pass_ms: float
    n_exhaustive: int
    invalid: int
    numerics_mismatch: int
    topk_selected_ratio: float
    exh_selected_ratio: float
    seconds: float


def _geo(xs: Sequence[float]) -> float:
    a = np.asarray([x for x in xs if math.isfinite(x) and x > 0])
    return float(np.exp(np.log(a).mean())) if len(a) else float("nan")


def _best_of(ms: dict[Any, Any], cfgs: Sequence[Any], default: Any) -> tuple[Any, float]:
    """The fastest measured of ``cfgs`` (and its selection ratio), or the default if none
    beats it."""
    okm = [ms[c] for c in cfgs if ms[c].ok]
    b = min(okm, key=lambda m: m.ratio, default=None)
    return (b.config, b.ratio) if b is not None and b.ratio < 1.0 else (default, 1.0)


def evaluate(model_dir: str | Path | None = None, k: int = 5, n_exhaustive: int = 64,
             select_rounds: int = 3, confirm_rounds: int = 5, limit: int | None = None,
             log: Any = print, target_cpu: str = "host") -> list[KernelResult]:
    """Run the three modes on every held-out kernel (see module doc) for codegen target
    ``target_cpu``; ``model_dir`` None is the package's default model."""
    from mlsysgym.compiler.tiling_pass import tune_module
    from mlsysgym.costmodels.tiling_measure import measure_configs
    from mlsysgym.costmodels.tiling_model import load_tiling_model
    from mlsysgym.costmodels.tiling_score import score_candidates
    from mlsysgym.costmodels.tiling_space import default_config, sample_candidates
    from mlsysgym.experiments.tiling_data import held_out_shapes
    from mlsysgym.ir.mlir_emit import emit
    from mlsysgym.simulators.iree_cpu import KernelCompiler

    model = load_tiling_model(model_dir, target_cpu)
    compiler = KernelCompiler.for_target(target_cpu, timeout_s=120.0)
    out: list[KernelResult] = []
    shapes = held_out_shapes()[:limit] if limit else held_out_shapes()
    for zoo_model, p in shapes:
        t0 = time.perf_counter()
        d = default_config(p, target_cpu)
        # 1. the pass in costmodel mode on the standalone kernel (pass time, scoring time)
        rep = tune_module(emit(p.to_spec_design()).mlir, "costmodel", model=model,
                          target_cpu=target_cpu, compiler=compiler)
        (op,) = rep.tuned
        sc = score_candidates(model, p, d)  # again, for the ranking (same single batched call)
        score_ms = min(op.model_ms, sc.model_s * 1e3)
        order = [int(i) for i in np.argsort(sc.predicted, kind="stable")]
        cm_pick = op.chosen if op.chosen is not None else d  # the pass's own (conservative) pick
        topk = [sc.config(i) for i in order if i != 0][:k]
        sampled = sample_candidates(p, d, n_exhaustive, seed=1234, isa=model.isa)
        pool = list(dict.fromkeys([*topk, *sampled]))
        # 2. selection measurements
        ms = {m.config: m for m in measure_configs(p, pool, rounds=select_rounds,
                                                   compiler=compiler)}
        invalid = sum(not m.ok for m in ms.values())
        mismatch = sum("numerics" in m.error for m in ms.values())
        topk_pick, topk_sel = _best_of(ms, topk, d)
        exh_pick, exh_sel = _best_of(ms, sampled, d)
        # 3. confirmation run of the picks
        picks = [c for c in dict.fromkeys([cm_pick, topk_pick, exh_pick]) if c != d]
        conf = {m.config: m for m in measure_configs(p, picks, rounds=confirm_rounds,
                                                     compiler=compiler, seed=1)} if picks else {}
        mismatch += sum("numerics" in m.error for m in conf.values())
        def speedup(c: Any, d: Any = d, conf: dict[Any, Any] = conf) -> float:
            return 1.0 if c == d else (1.0 / conf[c].ratio if conf[c].ok else float("nan"))
        default_us = float(np.median([m.default_us for m in conf.values()])) if conf else \
            float(np.median([m.default_us for m in ms.values() if m.ok]))
        r = KernelResult(p.key, zoo_model, default_us, len(sc), speedup(cm_pick),
                         speedup(topk_pick), speedup(exh_pick), cm_pick == d,
                         op.predicted_ratio, score_ms, op.features_ms, op.pass_ms,
                         len(sampled), invalid, mismatch, topk_sel, exh_sel,
                         time.perf_counter() - t0)
        log(f"{r.kernel}: cm ×{r.cm_speedup:.2f} top{k} ×{r.topk_speedup:.2f} "
            f"exh ×{r.exh_speedup:.2f} score {r.score_ms:.2f} ms ({r.seconds:.0f} s)")
        out.append(r)
    return out


def _zoo_pass_timing(model_dir: str | Path | None, names: Sequence[str],
                     target_cpu: str = "host") -> list[dict[str, Any]]:
    """The pass (costmodel mode, no compile) on whole imported zoo modules."""
    from mlsysgym.compiler.tiling_pass import tune_module
    from mlsysgym.costmodels.tiling_model import load_tiling_model
    from mlsysgym.ir.mlir_import import import_model

    rows = []
    for name in names:
        try:
            text = import_model(name).linalg_mlir
        except Exception as e:  # noqa: BLE001 - report what could not be imported
            rows.append({"model": name, "error": str(e)[:120]})
            continue
        rep = tune_module(text, "costmodel", model=load_tiling_model(model_dir, target_cpu),
                          target_cpu=target_cpu)
        tuned = rep.tuned
        scored = [o for o in tuned if o.reused_from is None]
        rows.append({"model": name, "root_ops": len(rep.ops), "tuned": len(tuned),
                     "changed": sum(not o.is_default for o in tuned),
                     "untouched": len(rep.untouched), "pass_s": rep.pass_s,
                     "distinct": len(scored),
                     "model_ms_per_op": float(np.mean([o.model_ms for o in scored])) if scored else 0.0,
                     "median_model_ms": float(np.median([o.model_ms for o in scored])) if scored else 0.0,
                     "max_model_ms": max((o.model_ms for o in scored), default=0.0),
                     "reasons": sorted({o.reason.split(":")[0] for o in rep.untouched})})
    return rows


def render(results: Sequence[KernelResult], meta: dict[str, Any], zoo: Sequence[dict[str, Any]],
           k: int) -> str:
    """The Markdown report."""
    g_cm = _geo([r.cm_speedup for r in results])
    g_tk = _geo([r.topk_speedup for r in results])
    g_ex = _geo([r.exh_speedup for r in results])
    best = [max(r.cm_speedup, r.topk_speedup, r.exh_speedup) for r in results]
    g_best = _geo(best)
    drop = int(np.argmax(best)) if results else -1
    rest = [r for i, r in enumerate(results) if i != drop]
    frac = (g_tk - 1) / (g_ex - 1) if g_ex > 1 else float("nan")
    mism = sum(r.numerics_mismatch for r in results)
    score = [r.score_ms for r in results]
    L = ["# Tile-size selection pass (IREE llvm-cpu) — learned cost model vs IREE's default", "",
         (f"Generated by `python -m mlsysgym.experiments.tiling_report` on {meta['date']}. "
         f"Machine: {meta['cpu']}, {meta['cores']} cores shared with other jobs; load average "
         f"(1 min) {meta['load_before']:.1f} before and {meta['load_after']:.1f} after the run. "
         f"IREE {meta['compiler']}, single-threaded (local-sync)."), "",
         (f"Cost model: LightGBM ({meta['members']} members) exported to ONNX, trained on "
         f"{meta['train_rows'] - meta['train_shapes']} measured (shape, configuration) pairs "
         f"plus IREE's default of each shape (ratio 1 by definition) from {meta['train_shapes']} "
         f"shapes (zoo shapes and perturbations; held-out shapes and perturbations of them "
         f"excluded); validation Kendall τ {meta.get('tau', float('nan')):.2f}."), "",
         ("Speedup = IREE default time / time with the mode's configuration, both measured in "
         f"the same process, each timing of a configuration next to one of the default "
         f"(median ratio of {meta['confirm_rounds']} rounds, confirmation run separate from "
         "the selection run). 1.00 = the mode kept IREE's default."), "",
         (f"| kernel (held out) | from | default µs | candidates | costmodel | verify-top-{k} | "
         f"measure ({results[0].n_exhaustive if results else 0} sampled, exhaustive) | "
         "best found by any mode | scoring ms | pass ms |"),
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        L.append(f"| `{r.kernel}` | {r.model} | {r.default_us:.0f} | {r.candidates} | "
                 f"{r.cm_speedup:.2f}× | {r.topk_speedup:.2f}× | {r.exh_speedup:.2f}× | "
                 f"{max(r.cm_speedup, r.topk_speedup, r.exh_speedup):.2f}× | "
                 f"{r.score_ms:.2f} | {r.pass_ms:.0f} |")
    L.append(f"| **geometric mean** | | | | **{g_cm:.3f}×** | **{g_tk:.3f}×** | **{g_ex:.3f}×** | "
             f"**{g_best:.3f}×** | "
             f"{np.median(score):.2f} (median) | {np.median([r.pass_ms for r in results]):.0f} (median) |")
    L += ["", "## Targets", "",
          f"- `costmodel` geomean ≥ 1.10×: **{g_cm:.3f}×** — "
          + ("met." if g_cm >= 1.10 else f"missed by {1.10 - g_cm:.3f}."),
          (f"- numerics mismatches (every measured configuration checked against the untuned "
          f"compile): **{mism}**."),
          f"- `costmodel+verify-top-{k}` ≥ 90% of the exhaustive search's speedup: "
          f"{g_tk:.3f}× vs {g_ex:.3f}× → **{100 * g_tk / g_ex:.1f}%** of its speedup "
          f"({100 * frac:.0f}% of its gain over the default) — "
          + ("met." if g_tk / g_ex >= 0.9 else f"missed by {100 * (0.9 - g_tk / g_ex):.1f} points."),
          (f"- against the best configuration found by any mode (the ceiling as measured): "
          f"costmodel {100 * g_cm / g_best:.1f}%, verify-top-{k} {100 * g_tk / g_best:.1f}%, "
          f"measure {100 * g_ex / g_best:.1f}% of its speedup."),
          (f"- robustness: without the kernel with the largest speedup "
          f"(`{results[drop].kernel if results else ''}`) the geomeans are costmodel "
          f"{_geo([r.cm_speedup for r in rest]):.3f}×, verify-top-{k} "
          f"{_geo([r.topk_speedup for r in rest]):.3f}×, measure "
          f"{_geo([r.exh_speedup for r in rest]):.3f}×."),
          f"- cost-model scoring ≤ 10 ms per op (all candidates, one batched ONNX Runtime call): "
          f"median **{np.median(score):.2f} ms**, max {np.max(score):.2f} ms over "
          f"{int(np.median([r.candidates for r in results]))} (median) candidates — "
          + ("met." if np.max(score) <= 10 else "missed."), ""]
    L += ["## Pass time on whole zoo modules (costmodel mode, no compile)", "",
          ("| model | root ops | tuned (distinct shapes scored) | changed | untouched | pass s | "
           "model ms per scored op (median, mean, max) | untouched because |"),
          "|---|---:|---:|---:|---:|---:|---:|---|"]
    for z in zoo:
        if "error" in z:
            L.append(f"| {z['model']} | import failed: {z['error']} | | | | | | |")
        else:
            L.append(f"| {z['model']} | {z['root_ops']} | {z['tuned']} ({z.get('distinct', '?')}) | "
                     f"{z['changed']} | "
                     f"{z['untouched']} | {z['pass_s']:.1f} | {z.get('median_model_ms', float('nan')):.2f}, "
                     f"{z['model_ms_per_op']:.2f}, "
                     f"{z['max_model_ms']:.2f} | {'; '.join(z['reasons'])} |")
    L += ["", ("Pass time per op is dominated by reading IREE's default configuration "
          "(one `iree-compile --compile-to=executable-configurations` run per distinct shape, "
          "~0.3 s the first time, then cached on disk) and by enumerating the candidate space; "
          "the cost-model query itself is the scoring column. Ops of a shape already decided "
          "reuse that decision. Maxima of several ms are the process being descheduled on the "
          "shared 2-core machine (re-running the same op gives 1-6 ms)."), ""]
    L += [
          "## Notes", "",
          ("- Selection vs confirmation: the speedup a mode *selected* on (step 2) is noisier "
          "than the confirmation; geomean of the selected ratios: verify-top-k "
          f"{1 / _geo([r.topk_selected_ratio for r in results]):.3f}×, exhaustive "
          f"{1 / _geo([r.exh_selected_ratio for r in results]):.3f}×."),
          (f"- Invalid candidates met (compile failures, skipped): "
          f"{sum(r.invalid for r in results)} of "
          f"{sum(r.n_exhaustive + k for r in results)} measured."),
          f"- Time of the whole report run: {meta['seconds'] / 60:.1f} min.", ""]
    return "\n".join(L)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run the evaluation and write the Markdown report."""
    from mlsysgym.core.target import fingerprint
    from mlsysgym.experiments.report import stamp_markdown, stamp_recorded
    from mlsysgym.ir.mlir_import import compiler_version
    from mlsysgym.simulators.iree_cpu import machine_description

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model dir (default: the package's model)")
    ap.add_argument("--target-cpu", default="host")
    ap.add_argument("--out", default=str(OUT_MD))
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--exhaustive", type=int, default=64)
    ap.add_argument("--confirm-rounds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--zoo", nargs="*", default=["bert_base", "gpt2", "resnet18"])
    ap.add_argument("--render-only", action="store_true",
                    help="re-render the Markdown from the saved report.json (no measurement)")
    a = ap.parse_args(argv)
    raw = Path(a.out).with_suffix(".json")
    if a.render_only:
        saved = json.loads(raw.read_text())
        md = render([KernelResult(**r) for r in saved["kernels"]], saved["meta"], saved["zoo"], a.k)
        md = stamp_recorded(md, {"provenance": {"fingerprint": saved["meta"].get("fingerprint")}}
                            if saved["meta"].get("fingerprint") else {})
        Path(a.out).write_text(md)
        print(md)
        return 0
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    res = evaluate(a.model, a.k, a.exhaustive, confirm_rounds=a.confirm_rounds, limit=a.limit,
                   target_cpu=a.target_cpu)
    zoo = _zoo_pass_timing(a.model, a.zoo, a.target_cpu)
    from mlsysgym.costmodels.tiling_model import DEFAULT_MODEL_DIR

    meta_json = json.loads((Path(a.model or DEFAULT_MODEL_DIR) / "metadata.json").read_text())
    mach = machine_description()
    val = meta_json.get("validation", {}).get("runtime_ratio", {})
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": mach["cpu"],
            "cores": mach["cores"], "load_before": load0, "load_after": os.getloadavg()[0],
            "compiler": compiler_version(), "members": meta_json.get("members"),
            "train_rows": meta_json["training"]["rows"] + meta_json["training"]["valid_rows"],
            "train_shapes": meta_json.get("hyperparameters", {}).get("shapes", "?"),
            "tau": val.get("kendall_tau", float("nan")), "confirm_rounds": a.confirm_rounds,
            "seconds": time.perf_counter() - t0, "fingerprint": fingerprint(a.target_cpu)}
    md = stamp_markdown(render(res, meta, zoo, a.k), meta["fingerprint"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(md)
    raw.write_text(json.dumps({"meta": meta, "kernels": [asdict(r) for r in res], "zoo": zoo},
                              indent=1, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
