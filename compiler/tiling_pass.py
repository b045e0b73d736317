"""A compiler pass that picks per-op tile sizes for IREE's llvm-cpu backend with a learned cost model.

``tune_module(mlir_text_or_module, mode, model=..., target_cpu="host")`` parses the module with
the upstream MLIR Python bindings (``iree.compiler.ir``), finds the root ops that have a tiling
rule (:mod:`mlsysgym.costmodels.tiling_space`) in the form IREE's dispatches give them (a
folded weight transpose makes a matmul with a transposed right operand, a different kernel),
reads IREE's default configuration of each on the codegen target, and for each one

- ``costmodel``: builds the op's candidate configurations (IREE's default among them), scores
  all of them with **one** batched cost-model call (ONNX Runtime; the model predicts runtime
  relative to IREE's default) and keeps the best predicted that passes the :class:`Guards`
  (in the data's range and support, members agreeing, the multi-threaded driver's
  parallelism kept, a margin over the default). On a target the model has no data for it
  keeps every default unless a calibration is attached
  (:mod:`mlsysgym.costmodels.tiling_model`); shapes the calibration measured take their
  measured best;
- ``costmodel+verify-top-k``: measures the ``k`` best predicted (plus the default) on a
  standalone kernel of the op's shape, interleaved with the default, and keeps the fastest;
- ``measure``: measures a sampled set of candidates (the expensive reference search).

The winner is written as a ``compilation_info`` attribute on the op (left off when it is the
default). ``compile_and_check`` compiles the tuned module and the untuned one with IREE and
compares their outputs on random inputs; :mod:`mlsysgym.compiler.tiling_verify` times them
and reverts ops that make the module slower. Ops without a rule (batch-1 or 1×1 convs, other
kinds) are left untouched and listed in the report; a candidate that fails to compile is
skipped, never fatal.

The pass sits above the cost models (it uses them; they never use it): root ops and their
annotation are :mod:`mlsysgym.costmodels.tiling_ops`, the scoring of candidates
:mod:`mlsysgym.costmodels.tiling_score`, and measurement against IREE's default (single-threaded
``local-sync`` runs, each candidate timed right after the default)
:mod:`mlsysgym.costmodels.tiling_measure`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.target import target_isa
from mlsysgym.costmodels.tiling_measure import measure_configs
from mlsysgym.costmodels.tiling_ops import _context as _mlir_context
from mlsysgym.costmodels.tiling_ops import annotate, find_root_ops, parse_module
from mlsysgym.costmodels.tiling_score import Scored, score_candidates
from mlsysgym.costmodels.tiling_space import (
    TileConfig,
    TilingInstance,
    default_config,
    sample_candidates,
)
from mlsysgym.simulators.iree_cpu import Runner

if TYPE_CHECKING:
    from mlsysgym.costmodels.tiling_model import TilingModel

__all__ = ["MODES", "CompileCheck", "Guards", "OpDecision", "TuningError", "TuningReport",
           "compile_and_check", "tune_module"]

MODES = ("costmodel", "costmodel+verify-top-k", "measure")
class TuningError(MlsysgymError):
    """The pass cannot run as asked (bad mode, missing cost model, unparsable module)."""


# ---- finding and annotating root ops -----------------------------------------------------
@dataclass(frozen=True)
class Guards:
    """When the pass keeps IREE's default for an op in ``costmodel`` mode.

    - the op is out of the training data's range (``ood``: its default configuration's
      features, or its size beyond the largest training shape of its kind);
    - a candidate is dropped when it is out of range, when its predicted ratio is below what
      the data supports for the op kind (the model's ``floor``), or when the ensemble members
      disagree on it (spread of the log ratio above ``max_spread``);
    - a candidate with fewer workgroups than the default (below ``workgroups_per_core`` ×
      cores) is dropped: single-thread timings do not see the multi-threaded driver's loss;
    - the pick (predicted log ratio + ``caution`` × spread) must beat the default by
      ``margin``."""

    max_spread: float = 0.25
    caution: float = 1.0
    margin: float = 0.95
    use_floor: bool = True
    use_ood: bool = True
    workgroups_per_core: int = 4


def _guarded_pick(sc: Scored, model: TilingModel, g: Guards) -> tuple[int, str]:
    """Index of the chosen candidate (0: keep the default) and why the default was kept."""
    if sc.problem.transpose_b:
        return 0, ("right operand transposed (IREE folds the weight transpose): the model knows "
                   "plain kernels only (calibrate to measure it); default kept")
    if g.use_ood and (sc.ood[0] or not model.in_data(sc.problem)):
        return 0, "op outside the model's training data (calibrate to measure it); default kept"
    keep = np.ones(len(sc), dtype=bool)
    keep[0] = False
    if g.use_ood:
        keep &= ~sc.ood
    if g.use_floor:
        keep &= sc.predicted >= model.floor(sc.problem.kind)
    keep &= sc.spread <= g.max_spread
    if not keep.any():
        return 0, "no candidate inside the data's support with agreeing members; default kept"
    safe = np.where(keep, np.log(np.maximum(sc.predicted, 1e-9)) + g.caution * sc.spread, np.inf)
    best = int(np.argmin(safe))
    if safe[best] >= math.log(g.margin):
        return 0, f"no predicted gain beyond {1 - g.margin:.0%}; default kept"
    return best, ""


# ---- the pass ------------------------------------------------------------------------------
@dataclass
class OpDecision:
    """What the pass did with one root op."""

    index: int
    name: str
    problem_key: str
    tuned: bool
    reason: str = ""
    chosen: TileConfig | None = None
    default: TileConfig | None = None
    is_default: bool = True
    predicted_ratio: float = float("nan")
    measured_ratio: float = float("nan")
    candidates: int = 0
    skipped_invalid: int = 0
    measured: int = 0
    model_ms: float = 0.0
    features_ms: float = 0.0
    pass_ms: float = 0.0       # the op's whole decision, reading IREE's default included
    default_ms: float = 0.0    # reading IREE's default (one iree-compile per new shape; cached)
    model_calls: int = 0
    reused_from: int | None = None  # index of an earlier op of the same shape whose decision this is


@dataclass
class TuningReport:
    """Result of :func:`tune_module`: tuned MLIR text, one decision per root op, timings."""

    mode: str
    mlir: str
    ops: list[OpDecision] = field(default_factory=list)
    pass_s: float = 0.0
    model_load_s: float = 0.0
    check: CompileCheck | None = None
    target_cpu: str = "host"

    @property
    def tuned(self) -> list[OpDecision]:
        return [o for o in self.ops if o.tuned]

    @property
    def untouched(self) -> list[OpDecision]:
        return [o for o in self.ops if not o.tuned]

    def summary(self) -> str:
        """A short human-readable table."""
        lines = [(f"mode {self.mode}: {len(self.tuned)} op(s) tuned, {len(self.untouched)} "
                 f"untouched, pass {self.pass_s * 1e3:.0f} ms")]
        for o in self.ops:
            if o.tuned:
                cfg = o.chosen
                what = "default kept" if o.is_default else (
                    f"dist={list(cfg.distribution)} vec={list(cfg.vector_common_parallel)} "
                    f"red={list(cfg.vector_reduction)}" if cfg else "")
                pr = f" pred×{o.predicted_ratio:.2f}" if math.isfinite(o.predicted_ratio) else ""
                mr = f" meas×{o.measured_ratio:.2f}" if math.isfinite(o.measured_ratio) else ""
                if o.reused_from is not None:
                    lines.append(f"  #{o.index} {o.problem_key}: {what} (same shape as #{o.reused_from})")
                    continue
                lines.append(f"  #{o.index} {o.problem_key}: {what}{pr}{mr} "
                             f"({o.candidates} candidates, model {o.model_ms:.2f} ms"
                             + (f", {o.skipped_invalid} invalid skipped" if o.skipped_invalid else "")
                             + ")")
            else:
                lines.append(f"  #{o.index} {o.name}: untouched ({o.reason})")
        if self.check is not None:
            lines.append(f"  numerics vs untuned compile: {'ok' if self.check.ok else 'MISMATCH'}"
                         f" (max rel err {self.check.max_rel_err:.1e})")
        return "\n".join(lines)


def tune_module(mlir_text_or_module: str | Any, mode: str = "costmodel",
                model_path: str | Path | None = None, k: int = 5, *,
                model: TilingModel | None = None, target_cpu: str = "host", measure_n: int = 24,
                rounds: int = 3, timing: Mapping[str, Any] | None = None, compiler: Any = None,
                max_candidates: int | None = None,
                defaults: Mapping[str, TileConfig] | None = None,
                guards: Guards = Guards()) -> TuningReport:
    """Tune every root op of a module for codegen target ``target_cpu``; returns the annotated
    MLIR and what was decided per op.

    The cost-model modes need ``model`` (a loaded
    :class:`~mlsysgym.costmodels.tiling_model.TilingModel`) or ``model_path`` (None: the
    package's default model). On a target the model has neither training rows nor a
    calibration of, ``costmodel`` mode keeps IREE's default on every op (calibrate first:
    :func:`~mlsysgym.costmodels.tiling_model.calibrate`). Shapes measured by the calibration
    take their measured best configuration; the others the guarded pick (:class:`Guards`).
    ``measure_n`` is the sampled candidate count of ``measure`` mode; ``defaults`` may give
    IREE's default config per problem key (else read with ``iree-compile``)."""
    from mlsysgym.costmodels.tiling_model import load_tiling_model
    from mlsysgym.simulators.iree_cpu import KernelCompiler

    if mode not in MODES:
        raise TuningError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if not 1 <= int(k) <= 64:
        raise TuningError(f"k must be between 1 and 64, got {k}")
    t_start = time.perf_counter()
    load_s = 0.0
    if mode != "measure" and model is None:
        t0 = time.perf_counter()
        model = load_tiling_model(model_path, target_cpu)
        load_s = time.perf_counter() - t0
    compiler = compiler or KernelCompiler.for_target(target_cpu)
    blind = mode == "costmodel" and model is not None and not model.knows_target
    measured_best = model.calibration.best if model is not None and model.calibration else {}
    text = mlir_text_or_module if isinstance(mlir_text_or_module, str) else str(mlir_text_or_module)
    roots = find_root_ops(text, target_cpu)
    decisions: list[OpDecision] = []
    chosen: dict[int, TileConfig] = {}
    seen: dict[str, OpDecision] = {}
    for r in roots:
        t_op = time.perf_counter()
        if r.problem is None:
            decisions.append(OpDecision(r.index, r.name, "", False, r.reason))
            continue
        p = r.problem
        try:
            default = (defaults or {}).get(p.key) or default_config(p, target_cpu)
        except MlsysgymError as e:
            decisions.append(OpDecision(r.index, r.name, p.key, False, str(e)))
            continue
        t_default = time.perf_counter() - t_op
        if p.key in seen:  # same shape as an earlier op: same decision, no new query/measurement
            d = replace(seen[p.key], index=r.index, name=r.name, model_calls=0, model_ms=0.0,
                        features_ms=0.0, measured=0, reused_from=seen[p.key].index)
            _record(d, chosen, decisions, t_op)
            continue
        d = OpDecision(r.index, r.name, p.key, True, chosen=default, default=default)
        if mode == "costmodel" and p.key in measured_best:
            d.chosen, d.measured_ratio = measured_best[p.key]
            d.reason = "measured during calibration"
        elif blind:
            d.reason = (f"the model has no data for target {model.target_id} "
                        f"({model.isa.level}); default kept — calibrate first")
        elif mode == "measure":
            _measure_search(d, p, default, measure_n, target_cpu, rounds, timing, compiler)
        else:
            sc = score_candidates(model, p, default, max_n=max_candidates,
                                  per_core=guards.workgroups_per_core)
            d.candidates, d.model_calls = len(sc), sc.calls
            d.model_ms, d.features_ms = sc.model_s * 1e3, sc.features_s * 1e3
            if mode == "costmodel":
                best, d.reason = _guarded_pick(sc, model, guards)
                d.chosen = sc.config(best)
                d.predicted_ratio = float(sc.predicted[best])
            else:
                _verify_top_k(d, sc, k, rounds, timing, compiler)
        d.is_default = d.chosen == default
        d.default_ms = t_default * 1e3
        _record(d, chosen, decisions, t_op)
        seen[p.key] = d
    tuned_text = annotate(text, chosen) if chosen else text
    return TuningReport(mode, tuned_text, decisions, time.perf_counter() - t_start, load_s,
                        target_cpu=target_cpu)


def _record(d: OpDecision, chosen: dict[int, TileConfig], decisions: list[OpDecision],
            t_op: float) -> None:
    """Append a tuned op's decision (its pass time counted from ``t_op``) and its config if
    not the default."""
    if not d.is_default and d.chosen is not None:
        chosen[d.index] = d.chosen
    d.pass_ms = (time.perf_counter() - t_op) * 1e3
    decisions.append(d)


def _measure_search(d: OpDecision, p: TilingInstance, default: TileConfig, measure_n: int,
                    target_cpu: str, rounds: int, timing: Mapping[str, Any] | None,
                    compiler: Any) -> None:
    """``measure`` mode: time a sampled candidate set; the fastest is chosen if it beats the
    default."""
    cfgs = sample_candidates(p, default, measure_n, seed=1234, isa=target_isa(target_cpu))
    ms = measure_configs(p, cfgs, rounds=rounds, timing=timing, compiler=compiler)
    d.candidates, d.measured = len(cfgs) + 1, len(ms)
    d.skipped_invalid = sum(not m.ok for m in ms)
    best = min((m for m in ms if m.ok), key=lambda m: m.ratio, default=None)
    if best is not None and best.ratio < 1.0:
        d.chosen, d.measured_ratio = best.config, best.ratio


def _verify_top_k(d: OpDecision, sc: Scored, k: int, rounds: int,
                  timing: Mapping[str, Any] | None, compiler: Any) -> None:
    """``costmodel+verify-top-k``: time the ``k`` best predicted candidates; the fastest is
    chosen if it beats the default."""
    order = np.argsort(sc.predicted, kind="stable")
    top = [int(i) for i in order if int(i) != 0][:k]
    ms = measure_configs(sc.problem, [sc.config(i) for i in top], rounds=rounds,
                         timing=timing, compiler=compiler)
    d.measured = len(ms)
    d.skipped_invalid = sum(not m.ok for m in ms)
    okm = [(m, i) for m, i in zip(ms, top) if m.ok]
    if okm:
        m, i = min(okm, key=lambda t: t[0].ratio)
        if m.ratio < 1.0:
            d.chosen, d.measured_ratio = m.config, m.ratio
            d.predicted_ratio = float(sc.predicted[i])


# ---- compile and check ---------------------------------------------------------------------
@dataclass(frozen=True)
class CompileCheck:
    """Tuned vs untuned compile of a whole module: outputs compared on random inputs."""

    ok: bool
    max_rel_err: float
    vmfb: str
    compile_s: float
    fallback_ops: tuple[int, ...] = ()
    error: str = ""


def _imports(op: Any) -> dict[int, Any]:
    """Argument index → tensor type of a function's ``hal.tensor.import`` ops."""
    block = op.regions[0].blocks[0]
    out: dict[int, Any] = {}
    for inner in block.operations:
        inner = inner.operation
        if inner.name == "hal.tensor.import":
            for j, a in enumerate(block.arguments):
                if inner.operands[0] == a:
                    out[j] = inner.results[0].type
    return out


def _entry(text: str) -> tuple[str, list[tuple[tuple[int, ...], str]]]:
    """Name and argument (shape, element type) list of the module's public entry function;
    ABI-wrapped functions (``!hal.buffer_view`` arguments) take the types of the
    ``hal.tensor.import`` ops of their ``$async`` twin."""
    from iree.compiler import ir

    ctx = _mlir_context()
    with ctx:
        mod = parse_module(text, ctx)
        funcs: dict[str, Any] = {}
        order: list[str] = []
        for op in mod.body.operations:
            op = op.operation
            if op.name in ("func.func", "util.func") and "sym_name" in op.attributes:
                vis = str(op.attributes["sym_visibility"]).strip('"') \
                    if "sym_visibility" in op.attributes else "public"
                name = str(op.attributes["sym_name"]).strip('"')
                funcs[name] = op
                if vis == "public" and "$async" not in name:
                    order.append(name)
        for name in order:
            op = funcs[name]
            imported = _imports(op)
            if f"{name}$async" in funcs:
                imported = {**_imports(funcs[f"{name}$async"]), **imported}
            args = []
            for j, a in enumerate(op.regions[0].blocks[0].arguments):
                t = imported.get(j, a.type)
                if not isinstance(t, ir.RankedTensorType) or not t.has_static_shape:
                    raise TuningError(f"entry function @{name} has an argument of type {t}; "
                                      "the numerics check needs static tensors")
                args.append((tuple(int(x) for x in t.shape), str(t.element_type)))
            return name, args
    raise TuningError("module has no public func.func / util.func to run")


def _random_input(rng: np.random.Generator, shape: tuple[int, ...], elem: str) -> np.ndarray:
    """Random values of an element type: floats in [-1, 1), integers in {0, 1}, random i1."""
    if elem == "i1":
        return rng.random(shape) < 0.5
    ints = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64}
    if elem in ints:
        return rng.integers(0, 2, size=shape).astype(ints[elem])
    floats = {"f32": np.float32, "f64": np.float64, "f16": np.float16}
    return rng.uniform(-1, 1, size=shape).astype(floats.get(elem, np.float32))


def compile_and_check(report: TuningReport, untuned: str, out: str | Path | None = None,
                      compiler: Any = None, seed: int = 0, tol: float = 1e-3) -> CompileCheck:
    """Compile the tuned module (dropping, one at a time, configs IREE rejects) and the
    untuned one, run both on the same random inputs and compare; writes ``out`` if given."""
    import shutil

    from mlsysgym.simulators.iree_cpu import KernelCompiler

    compiler = compiler or KernelCompiler.for_target(report.target_cpu, timeout_s=600.0)
    t0 = time.perf_counter()
    chosen = {o.index: o.chosen for o in report.ops if o.tuned and not o.is_default and o.chosen}
    fallback: list[int] = []
    res = compiler.compile(report.mlir)
    while not res.ok and chosen:
        # drop the config IREE rejects (the op index is not in the message: drop one by one)
        bad = next(iter(chosen))
        fallback.append(bad)
        chosen.pop(bad)
        report.mlir = annotate(untuned, chosen) if chosen else untuned
        res = compiler.compile(report.mlir)
    for o in report.ops:
        if o.index in fallback:
            o.chosen, o.is_default = o.default, True
            o.reason = "chosen config rejected by iree-compile; default kept"
    base = compiler.compile(untuned)
    if not res.ok or not base.ok:
        return CompileCheck(False, float("nan"), "", time.perf_counter() - t0, tuple(fallback),
                            (res.error or base.error)[:300])
    func, args = _entry(untuned)
    rng = np.random.default_rng(seed)
    inputs = [_random_input(rng, shape, t) for shape, t in args]
    gots = Runner(res.vmfb, res.func if res.func != "kernel" else func).run_all(inputs)
    wants = Runner(base.vmfb, base.func if base.func != "kernel" else func).run_all(inputs)
    err = 0.0 if len(gots) == len(wants) else math.inf
    for got, want in zip(gots, wants):
        want64, got64 = want.astype(np.float64), got.astype(np.float64)
        if got64.shape != want64.shape:
            err = math.inf
            continue
        scale = max(float(np.max(np.abs(want64))) if want64.size else 0.0, 1e-6)
        err = max(err, float(np.max(np.abs(got64 - want64)) / scale) if want64.size else 0.0)
    if out is not None:
        shutil.copyfile(res.vmfb, out)  # type: ignore[arg-type]
    return CompileCheck(bool(err <= tol), err, str(out or res.vmfb), time.perf_counter() - t0,
                        tuple(fallback))



