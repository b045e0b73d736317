"""A compiler pass that picks per-op tile sizes for IREE's llvm-cpu backend with a learned cost model.

``tune_module(mlir_text_or_module, mode, model=..., target_cpu="host")`` parses the module with
the upstream MLIR Python bindings (``iree.compiler.ir``), finds the root ops that have a tiling
rule (:mod:`mlsysgym.costmodels.tiling_space`), reads IREE's default configuration of each on
the codegen target, and for each one

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
compares their outputs on random inputs; :mod:`mlsysgym.costmodels.tiling_verify` times them
and reverts ops that make the module slower. Ops without a rule (batch-1 or 1×1 convs, other
kinds) are left untouched and listed in the report; a candidate that fails to compile is
skipped, never fatal.

Measurement helpers here (:func:`measure_configs`) are also what the data collector
(:mod:`mlsysgym.costmodels.tiling_measure`) and the report use: single-threaded
(``local-sync``) runs, each candidate timed right after the default, ratios to it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.target import target_isa
from mlsysgym.costmodels.tiling_space import (
    KNOBS,
    RULE_KINDS,
    TileConfig,
    TilingError,
    TilingInstance,
    _reason_no_rule,
    candidate_columns,
    config_features,
    config_from_knobs,
    default_config,
    instance_for,
    knobs_from_config,
    sample_candidates,
    workgroups,
)
from mlsysgym.simulators.iree_cpu import Runner

if TYPE_CHECKING:
    from mlsysgym.costmodels.tiling_model import TilingModel

__all__ = ["MODES", "CompileCheck", "MeasuredConfig", "OpDecision", "TuningError", "TuningReport",
           "annotate", "compile_and_check", "find_root_ops", "measure_configs", "score_candidates",
           "tune_module"]

MODES = ("costmodel", "costmodel+verify-top-k", "measure")
_OP_KINDS = {"linalg.matmul": "matmul", "linalg.batch_matmul": "batch_matmul",
             "linalg.conv_2d_nhwc_hwcf": "conv_2d_nhwc_hwcf"}
_CANDIDATE_OPS = ("linalg.matmul", "linalg.batch_matmul", "linalg.conv_2d_nhwc_hwcf",
                  "linalg.conv_2d_nchw_fchw", "linalg.conv_2d", "linalg.depthwise_conv_2d_nhwc_hwc",
                  "linalg.depthwise_conv_2d_nchw_chw", "linalg.matvec", "linalg.vecmat",
                  "linalg.batch_matvec", "linalg.generic", "linalg.conv_2d_nhwc_fhwc",
                  "linalg.matmul_transpose_b", "linalg.batch_matmul_transpose_b")


class TuningError(MlsysgymError):
    """The pass cannot run as asked (bad mode, missing cost model, unparsable module)."""


# ---- finding and annotating root ops -----------------------------------------------------
@dataclass(frozen=True)
class RootOp:
    """A candidate root op of a module: index in walk order, op name, problem (None: no rule)."""

    index: int
    name: str
    problem: TilingInstance | None
    reason: str = ""
    location: str = ""


def _context() -> Any:
    from mlsysgym.ir.mlir_parse import context

    return context()


def _parse(source: str | Any, ctx: Any | None = None) -> Any:
    """An ``ir.Module`` (a fresh parse of the text, or of a given module's printed form)."""
    from mlsysgym.ir.mlir_parse import _parse_text

    text = source if isinstance(source, str) else str(source)
    return _parse_text(text, ctx or _context())


def _walk(op: Any, out: list[Any]) -> None:
    for region in op.regions:
        for block in region.blocks:
            for child in block.operations:
                child = child.operation
                if child.name.startswith("linalg."):
                    out.append(child)
                if child.regions and not child.name.startswith("linalg."):
                    _walk(child, out)


def _linalg_ops(module: Any) -> list[Any]:
    out: list[Any] = []
    _walk(module.operation, out)
    return out


def _shape(value: Any) -> tuple[tuple[int, ...], str] | None:
    from iree.compiler import ir

    t = value.type
    if not isinstance(t, ir.RankedTensorType) or not t.has_static_shape:
        return None
    return tuple(int(d) for d in t.shape), str(t.element_type)


def _int_attr(op: Any, name: str) -> int:
    if name not in op.attributes:
        return 1
    vals = [int(x) for x in str(op.attributes[name]).replace("dense<", "").split(">")[0]
            .replace("[", "").replace("]", "").split(",") if x.strip().lstrip("-").isdigit()]
    if not vals or len(set(vals)) != 1:
        return -1  # anisotropic: no rule
    return vals[0]


def _root_op(index: int, op: Any) -> RootOp | None:
    name = op.name
    if name not in _CANDIDATE_OPS:
        return None
    loc = str(op.location)
    if name == "linalg.generic":
        iters = str(op.attributes["iterator_types"]) if "iterator_types" in op.attributes else ""
        if "reduction" not in iters:
            return None  # element-wise: not a root op of interest
        return RootOp(index, name, None, "no tiling rule for linalg.generic", loc)
    kind = _OP_KINDS.get(name)
    if kind is None:
        return RootOp(index, name, None, f"no tiling rule for {name}", loc)
    if "indexing_maps" in str(op).split(" ins(")[0]:  # printed only when not the default maps
        return RootOp(index, name, None, f"no tiling rule for {name} with custom indexing maps", loc)
    shapes = [_shape(v) for v in op.operands]
    if len(shapes) < 3 or any(s is None for s in shapes[:3]):
        return RootOp(index, name, None, "dynamic or non-tensor operands", loc)
    (a, ta), (b, tb), (c, tc) = shapes[0], shapes[1], shapes[2]  # type: ignore[misc]
    dtype = "f32" if ta == tb == tc == "f32" else ta
    if kind == "matmul":
        dims: tuple[int, ...] = (a[0], b[1], a[1])
    elif kind == "batch_matmul":
        dims = (a[0], a[1], b[2], a[2])
    else:
        dims = (c[0], c[1], c[2], c[3], b[0], b[1], b[2])
    stride, dil = _int_attr(op, "strides"), _int_attr(op, "dilations")
    if stride < 1 or dil < 1:
        return RootOp(index, name, None, "anisotropic strides or dilations", loc)
    problem = instance_for(kind, dims, stride, dil, dtype)
    if problem is not None and problem.mnkh[0] == 1:
        return RootOp(index, name, None, "M = 1 (a matrix-vector product): IREE folds the unit "
                      "dim in context, which a standalone kernel does not show; default kept",
                      loc)
    if problem is None:
        reason = _reason_no_rule(kind, dims) if dtype == "f32" else f"element type {dtype} (rules are f32)"
        return RootOp(index, name, None, reason, loc)
    return RootOp(index, name, problem, "", loc)


def find_root_ops(module: str | Any) -> list[RootOp]:
    """Contraction / convolution / reduction linalg ops of a module (MLIR text or
    ``ir.Module``), each with its TilingInstance or the reason it has no rule."""
    ctx = _context()
    with ctx:
        mod = _parse(module, ctx)
        return [r for i, op in enumerate(_linalg_ops(mod)) if (r := _root_op(i, op)) is not None]


def annotate(module: str | Any, configs: Mapping[int, TileConfig]) -> str:
    """MLIR text of ``module`` with ``compilation_info`` set on the linalg ops whose walk index
    (``RootOp.index``) is a key of ``configs``."""
    from iree.compiler import ir

    ctx = _context()
    with ctx:
        mod = _parse(module, ctx)
        ops = _linalg_ops(mod)
        for i, cfg in configs.items():
            try:
                attr = ir.Attribute.parse(cfg.to_attr())
            except ir.MLIRError as e:
                raise TilingError(f"configuration does not parse as compilation_info: {e}") from None
            ops[i].attributes["compilation_info"] = attr
        return str(mod)


def annotate_kernel(text: str, cfg: TileConfig | None) -> str:
    """A one-root-op kernel's text with ``cfg`` on its root op (unchanged when None)."""
    if cfg is None:
        return text
    roots = [r for r in find_root_ops(text) if r.problem is not None]
    if len(roots) != 1:
        raise TilingError("kernel text must hold exactly one root op with a tiling rule")
    return annotate(text, {roots[0].index: cfg})


# ---- measurement --------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasuredConfig:
    """A configuration measured against the default: runtime ratio (< 1 is faster), times."""

    config: TileConfig
    ok: bool
    ratio: float
    runtime_us: float
    default_us: float
    ratios: tuple[float, ...] = ()
    max_rel_err: float = float("nan")
    error: str = ""
    compile_s: float = float("nan")


FAST_TIMING: dict[str, Any] = {"warmup_s": 0.004, "min_reps": 3, "max_reps": 12,
                               "max_time_s": 0.03, "min_sample_s": 2e-4, "target_rse": 0.02}


def measure_configs(problem: TilingInstance, configs: Sequence[TileConfig], rounds: int = 3,
                    timing: Mapping[str, Any] | None = None, compiler: Any = None, seed: int = 0,
                    compiled: Sequence[Any] | None = None) -> list[MeasuredConfig]:
    """Measure each configuration on a standalone kernel of ``problem``'s shape against IREE's
    default (the unannotated kernel): numerics checked against the default's output (and the
    default against NumPy); then ``rounds`` rounds in which every candidate is timed right
    after a timing of the default; ratio = median over rounds of candidate / adjacent default.
    A candidate that fails to compile or run is returned with ``ok=False``."""
    from mlsysgym.ir.mlir_emit import emit
    from mlsysgym.simulators.iree_cpu import KernelCompiler, time_calls

    compiler = compiler or KernelCompiler()
    kernel = emit(problem.to_spec_design())
    texts = [kernel.mlir] + [annotate_kernel(kernel.mlir, c) for c in configs]
    results = list(compiled) if compiled is not None else compiler.compile_many(texts)
    nan = float("nan")
    if not results[0].ok:
        raise TuningError(f"the untuned kernel {problem.key} does not compile: {results[0].error}")
    inputs = kernel.random_inputs(seed)
    base = Runner(results[0].vmfb, results[0].func)
    want = base.run(inputs).astype(np.float64)
    ref = kernel.reference(inputs).astype(np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-6)
    if float(np.max(np.abs(want - ref))) / scale > 1e-3:
        raise TuningError(f"the untuned kernel {problem.key} disagrees with NumPy")
    calls: dict[int, Callable[[], Any]] = {}
    out: dict[int, MeasuredConfig] = {}
    for i, (cfg, res) in enumerate(zip(configs, results[1:])):
        if not res.ok:
            out[i] = MeasuredConfig(cfg, False, nan, nan, nan, error=res.error[:300],
                                    compile_s=res.compile_s)
            continue
        try:
            r = Runner(res.vmfb, res.func)
            got = r.run(inputs).astype(np.float64)
            err = float(np.max(np.abs(got - want))) / scale if got.shape == want.shape else math.inf
            if not err <= 1e-3:
                out[i] = MeasuredConfig(cfg, False, nan, nan, nan, max_rel_err=err,
                                        error=f"numerics: max relative error {err:.2e}")
                continue
            calls[i] = r.prepare(inputs)
            out[i] = MeasuredConfig(cfg, True, nan, nan, nan, max_rel_err=err,
                                    compile_s=res.compile_s)
        except Exception as e:  # noqa: BLE001 - a candidate that cannot run is skipped
            out[i] = MeasuredConfig(cfg, False, nan, nan, nan, error=f"run failed: {e}"[:300])
    tm = {**FAST_TIMING, **(timing or {})}
    base_call = base.prepare(inputs)
    ratios: dict[int, list[float]] = {i: [] for i in calls}
    times: dict[int, list[float]] = {i: [] for i in calls}
    dtimes: list[float] = []
    rng = np.random.default_rng(seed)
    for _ in range(max(rounds, 1)):
        for i in rng.permutation(sorted(calls)):
            td = time_calls(base_call, **tm).median_us
            tc = time_calls(calls[int(i)], **tm).median_us
            dtimes.append(td)
            ratios[int(i)].append(tc / td)
            times[int(i)].append(tc)
    d_us = float(np.median(dtimes)) if dtimes else nan
    for i in calls:
        rs = np.asarray(ratios[i])
        old = out[i]
        out[i] = MeasuredConfig(old.config, True, float(np.exp(np.median(np.log(rs)))),
                                float(np.median(times[i])), d_us, tuple(float(x) for x in rs),
                                old.max_rel_err, "", old.compile_s)
    return [out[i] for i in range(len(configs))]


# ---- cost-model scoring --------------------------------------------------------------------
@dataclass(frozen=True)
class Scored:
    """Candidates of one op (knob columns, default first) with their predicted runtime ratios
    from one batched cost-model call."""

    problem: TilingInstance
    default: TileConfig
    columns: dict[str, np.ndarray]
    predicted: np.ndarray
    spread: np.ndarray       # ensemble members' std of the log ratio (0 for one member)
    ood: np.ndarray          # candidate's features outside the training data
    model_s: float
    features_s: float
    calls: int

    def __len__(self) -> int:
        return len(self.predicted)

    def config(self, i: int) -> TileConfig:
        """The TileConfig of candidate ``i`` (0 is IREE's default, as read)."""
        if i == 0:
            return self.default
        return config_from_knobs(self.problem, {k: int(self.columns[k][i]) for k in KNOBS},
                                 self.default)

    @property
    def configs(self) -> list[TileConfig]:
        """Every candidate as a TileConfig (slow for big spaces; for tests and reports)."""
        return [self.config(i) for i in range(len(self))]


def _default_knobs(problem: TilingInstance, default: TileConfig) -> dict[str, int]:
    dk = knobs_from_config(problem, default)
    if dk is None:
        raise TilingError(f"IREE's default config of {problem.key} is not expressible by the knobs")
    return dk


def parallel_ok(problem: TilingInstance, knobs: Mapping[str, np.ndarray], default: Mapping[str, int],
                per_core: int = 4, cores: int | None = None) -> np.ndarray:
    """Which knob assignments keep enough workgroups for the multi-threaded driver: at least
    as many as IREE's default has, or ``per_core`` × cores when the default has more."""
    from mlsysgym.core.target import cpu_info

    need = min(float(workgroups(problem, {k: [v] for k, v in default.items()})[0]),
               float(per_core * (cores or cpu_info().cores)))
    return workgroups(problem, knobs) >= need


def score_candidates(model: TilingModel, problem: TilingInstance, default: TileConfig,
                     max_n: int | None = None, per_core: int = 4) -> Scored:
    """Score every candidate of ``problem`` on the model's target with one batched model call
    (:meth:`~mlsysgym.costmodels.tiling_model.TilingModel.predict`); candidates that keep
    fewer workgroups than :func:`parallel_ok` allows (``per_core``; 0: keep all) are left out."""
    t0 = time.perf_counter()
    cols = candidate_columns(problem, default, max_n=max_n, isa=model.isa)
    dk = _default_knobs(problem, default)
    if per_core:  # drop candidates the multi-threaded driver would lose on before scoring
        keep = parallel_ok(problem, cols, dk, per_core)
        keep[0] = True
        cols = {k: v[keep] for k, v in cols.items()}
    feats = config_features(problem, cols, dk, model.isa)
    t1 = time.perf_counter()
    pred, spread, ood = model.predict(feats)
    t2 = time.perf_counter()
    return Scored(problem, default, cols, pred, spread, ood, t2 - t1, t1 - t0, 1)


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
    roots = find_root_ops(text)
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

    ctx = _context()
    with ctx:
        mod = _parse(text, ctx)
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


__all__ += ["RULE_KINDS", "Guards", "RootOp", "Scored", "annotate_kernel"]
