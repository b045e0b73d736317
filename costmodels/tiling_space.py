"""Candidate lowering configurations (tile sizes) of one linalg root op for IREE's llvm-cpu backend.

A :class:`TilingInstance` is a root op that has a tiling rule: ``matmul`` (M, N, K),
``batch_matmul`` (B, M, N, K) or ``conv_2d_nhwc_hwcf`` (N, OH, OW, F, KH, KW, C) with batch
N ≥ 2 and a kernel window larger than 1×1 (IREE folds unit batch dims and rewrites 1×1 convs
to matmuls, which drops a per-op configuration — see ``shared/notes/iree-tiling.md``).
:func:`instance_for` returns None for every other op (the pass reports those as untouched).

A :class:`TileConfig` is one ``#iree_cpu.lowering_config`` (``distribution``,
``vector_common_parallel``, ``vector_reduction`` and every other level IREE uses on the target,
e.g. ``cache_parallel`` on AVX2, kept in ``extra``) plus its pipeline; ``to_attr()`` gives the
``compilation_info`` attribute text the pass writes on the op. IREE's own configuration is
read from ``iree-compile --compile-to=executable-configurations`` through the MLIR bindings
(:func:`read_root_config`, :func:`default_config`), per codegen target.

:func:`tiling_space` is the op's :class:`~mlsysgym.envs.space.DesignSpace` over six knobs
(``d_m``, ``d_n``, ``d_h`` distribution tiles; ``v_m``, ``v_n`` register tiles; ``r_k`` the
reduction unroll), each bounded by the loop it tiles, with the known validity rules as
constraints: a tile never exceeds its loop bound, a register tile divides its distribution
tile, the vector working set ``v_m·v_n·r_k`` stays below IREE's 32 KB large-vector limit,
register tiles come in multiples of the target's vector lanes and the accumulator fits its
register file (:func:`lanes_and_registers`: AVX-512, AVX2, SSE). :func:`candidates`
enumerates (or samples) the feasible configurations, IREE's default first; the default's
other levels are carried into every candidate, adapted to its tiles.

Knob ↔ loop mapping (m, n: the vectorized parallel loops; k: the vectorized reduction):

================ ======== ======== ====== ==========
kind             m        n        k      h
================ ======== ======== ====== ==========
matmul           M        N        K      —
batch_matmul     M        N        K      B (tile 1)
conv_2d_nhwc_hwcf OW      F        C      OH
================ ======== ======== ====== ==========
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.core.constraints import Constraint
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.limits import ResourceLimitError, run_limited
from mlsysgym.core.params import Categorical
from mlsysgym.core.space import DesignSpace
from mlsysgym.core.target import TargetIsa

__all__ = [
    "KNOBS",
    "RULE_KINDS",
    "ConfigReadError",
    "ConfiguredOp",
    "TileConfig",
    "TilingError",
    "TilingInstance",
    "candidate_columns",
    "candidates",
    "config_features",
    "configured_ops",
    "default_config",
    "executable_configurations",
    "instance_for",
    "instance_from_spec",
    "lanes_and_registers",
    "lowering_levels",
    "read_root_config",
    "sample_candidates",
    "tiling_space",
    "workgroups",
]

RULE_KINDS = ("matmul", "batch_matmul", "conv_2d_nhwc_hwcf")
KNOBS = ("d_m", "d_n", "d_h", "v_m", "v_n", "r_k")
MAX_VECTOR_ELEMS = 4096      # v_m * v_n * r_k * 4 B < 32 KB (IREE rejects >= 32768 B vectors)
_PIPELINE = {"matmul": "DoubleTilingExpert", "batch_matmul": "DoubleTilingExpert",
             "conv_2d_nhwc_hwcf": "ConvTileAndDecomposeExpert"}


class TilingError(MlsysgymError):
    """A tiling problem or configuration that cannot be built as asked."""


class ConfigReadError(TilingError):
    """IREE's default configuration of an op could not be read from ``iree-compile``."""


@dataclass(frozen=True)
class TilingInstance:
    """A root op with a tiling rule: kind, loop bounds (the op's loop order), stride, dilation,
    and the operand layout IREE's dispatch holds it in (``transpose_b``: a (batch) matmul whose
    right operand is stored transposed, ``[.., N, K]``, as IREE folds a weight transpose)."""

    kind: str
    dims: tuple[int, ...]
    stride: int = 1
    dilation: int = 1
    dtype: str = "f32"
    transpose_b: bool = False

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise TilingError(f"no tiling rule for {self.kind!r}; rules exist for "
                              f"{', '.join(RULE_KINDS)}")
        want = {"matmul": 3, "batch_matmul": 4, "conv_2d_nhwc_hwcf": 7}[self.kind]
        if len(self.dims) != want or any(int(d) < 1 for d in self.dims):
            raise TilingError(f"{self.kind} needs {want} positive loop bounds, got {self.dims}")
        if self.transpose_b and self.kind == "conv_2d_nhwc_hwcf":
            raise TilingError("transpose_b applies to matmul and batch_matmul only")
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))

    @property
    def mnkh(self) -> tuple[int, int, int, int]:
        """Bounds of the (m, n, k, h) loops of the knob mapping (h = 1 for matmul)."""
        d = self.dims
        if self.kind == "matmul":
            return d[0], d[1], d[2], 1
        if self.kind == "batch_matmul":
            return d[1], d[2], d[3], d[0]
        return d[2], d[3], d[6], d[1]

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the op."""
        return int(np.prod(self.dims, dtype=np.int64))

    @property
    def key(self) -> str:
        """A short stable identifier (kind and dims), e.g. ``matmul:128x256x64``
        (``matmul:128x256x64:tB`` with the right operand transposed)."""
        s = f"{self.kind}:{'x'.join(map(str, self.dims))}"
        return s + (f":s{self.stride}" if self.stride != 1 else "") + \
            (f":d{self.dilation}" if self.dilation != 1 else "") + \
            (":tB" if self.transpose_b else "")

    def to_spec_design(self) -> dict[str, Any]:
        """The ``KernelSpec`` design dict of a standalone kernel with this op's shape."""
        d: dict[str, Any] = {"kind": self.kind, "shape": "x".join(map(str, self.dims)),
                             "dtype": self.dtype}
        if self.stride != 1:
            d["stride"] = self.stride
        if self.dilation != 1:
            d["dilation"] = self.dilation
        if self.transpose_b:
            d["transpose_b"] = True
        return d


@dataclass(frozen=True)
class TileConfig:
    """One ``#iree_cpu.lowering_config`` (tile sizes per loop, per level) and its pipeline.

    The three levels the knobs set are fields; every other level IREE uses on the target
    (``cache_parallel``, ``cache_reduction``, ``vector_inner_parallel``, levels this code does
    not know yet) is kept in ``extra`` as ``(name, sizes)`` pairs, so none is ever dropped."""

    distribution: tuple[int, ...]
    vector_common_parallel: tuple[int, ...]
    vector_reduction: tuple[int, ...]
    pipeline: str = "DoubleTilingExpert"
    extra: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def levels(self) -> dict[str, tuple[int, ...]]:
        """Every tiling level by name (IREE's order: alphabetical, as a dictionary attribute)."""
        out = {"distribution": self.distribution,
               "vector_common_parallel": self.vector_common_parallel,
               "vector_reduction": self.vector_reduction, **dict(self.extra)}
        return {k: tuple(v) for k, v in sorted(out.items()) if v}

    def to_attr(self) -> str:
        """The ``#iree_codegen.compilation_info<...>`` attribute text."""
        body = ", ".join(f"{name} = [{', '.join(map(str, v))}]" for name, v in self.levels.items())
        return ("#iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
                f"{body}>, translation_info = #iree_codegen.translation_info<pipeline = "
                f"#iree_cpu.pipeline<{self.pipeline}>>>")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: ``levels`` by name and ``pipeline``."""
        return {"levels": {k: list(v) for k, v in self.levels.items()}, "pipeline": self.pipeline}

    @classmethod
    def from_levels(cls, levels: Mapping[str, Sequence[int]], pipeline: str) -> TileConfig:
        """A TileConfig from a level-name → sizes mapping (any order, unknown levels kept)."""
        main = ("distribution", "vector_common_parallel", "vector_reduction")
        extra = tuple(sorted((k, tuple(int(x) for x in v)) for k, v in levels.items()
                             if k not in main))
        return cls(*(tuple(int(x) for x in levels.get(k, ())) for k in main), pipeline, extra)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TileConfig:
        """Inverse of :meth:`to_dict`."""
        return cls.from_levels(d["levels"], str(d["pipeline"]))

    @property
    def key(self) -> str:
        """Short content hash."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def instance_from_spec(design: Mapping[str, Any]) -> TilingInstance | None:
    """The TilingInstance of a ``KernelSpec`` design dict, or None if it has no tiling rule."""
    kind = str(design.get("kind", ""))
    shape = design.get("shape", ())
    dims = tuple(int(x) for x in (shape.split("x") if isinstance(shape, str) else shape))
    return instance_for(kind, dims, int(design.get("stride", 1) or 1),
                       int(design.get("dilation", 1) or 1), str(design.get("dtype", "f32")),
                       bool(design.get("transpose_b", False)))


def instance_for(kind: str, dims: Sequence[int], stride: int = 1, dilation: int = 1,
                dtype: str = "f32", transpose_b: bool = False) -> TilingInstance | None:
    """A TilingInstance, or None when no rule applies (other kinds, non-f32, batch-1 or 1×1
    convs)."""
    if kind not in RULE_KINDS or dtype != "f32" or any(d is None for d in dims):
        return None
    if kind == "conv_2d_nhwc_hwcf" and (dims[0] < 2 or dims[4] * dims[5] == 1):
        return None
    return TilingInstance(kind, tuple(int(d) for d in dims), stride, dilation, dtype, transpose_b)


def _reason_no_rule(kind: str, dims: Sequence[int | None]) -> str:
    if kind == "conv_2d_nhwc_hwcf" and dims and dims[0] == 1:
        return "batch-1 conv: IREE folds the unit batch dim and drops per-op configs"
    if kind == "conv_2d_nhwc_hwcf" and len(dims) == 7 and dims[4] == dims[5] == 1:
        return "1x1 conv: IREE rewrites it to a matmul and drops per-op configs"
    return f"no tiling rule for {kind}"


# ---- knobs <-> TileConfig ----------------------------------------------------------------
def _derive_extra(default: TileConfig, dist: tuple[int, ...], vec: tuple[int, ...]
                  ) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The default's other levels, adapted to a new distribution/vector tile: a
    ``cache_parallel`` entry that equals the default's distribution follows the new one, any
    other is capped by it and kept a multiple of the register tile; other levels are kept."""
    out = []
    for name, sizes in default.extra:
        if name == "cache_parallel" and len(sizes) == len(dist):
            new = []
            for c, d0, d, v in zip(sizes, default.distribution, dist, vec):
                if c == 0 or d == 0:
                    new.append(c if d != 0 else 0)
                elif c == d0:
                    new.append(d)
                else:
                    c = min(c, d)
                    new.append(max(v, c - c % v) if v > 0 else c)
            out.append((name, tuple(new)))
        else:
            out.append((name, sizes))
    return tuple(out)


def config_from_knobs(problem: TilingInstance, k: Mapping[str, int],
                      default: TileConfig | None = None) -> TileConfig:
    """The TileConfig of one knob assignment (``d_m, d_n, d_h, v_m, v_n, r_k``); the
    ``default``'s other levels (e.g. ``cache_parallel``) are carried over, adapted."""
    dm, dn, dh, vm, vn, rk = (int(k[n]) for n in KNOBS)
    pipe = _PIPELINE[problem.kind]
    if problem.kind == "matmul":
        levels = ((dm, dn, 0), (vm, vn, 0), (0, 0, rk))
    elif problem.kind == "batch_matmul":
        levels = ((1, dm, dn, 0), (1, vm, vn, 0), (0, 0, 0, rk))
    else:
        levels = ((1, dh, dm, dn, 0, 0, 0), (1, 1, vm, vn, 0, 0, 0), (0, 0, 0, 0, 1, 1, rk))
    extra = _derive_extra(default, levels[0], levels[1]) if default is not None else ()
    return TileConfig(*levels, pipe, extra)


def knobs_from_config(problem: TilingInstance, c: TileConfig) -> dict[str, int] | None:
    """Inverse of :func:`config_from_knobs`; None if ``c`` is not expressible by the knobs."""
    d, v, r = c.distribution, c.vector_common_parallel, c.vector_reduction
    try:
        if problem.kind == "matmul":
            out = {"d_m": d[0], "d_n": d[1], "d_h": 1, "v_m": v[0], "v_n": v[1], "r_k": r[2]}
        elif problem.kind == "batch_matmul":
            out = {"d_m": d[1], "d_n": d[2], "d_h": 1, "v_m": v[1], "v_n": v[2], "r_k": r[3]}
        else:
            out = {"d_m": d[2], "d_n": d[3], "d_h": d[1], "v_m": v[2], "v_n": v[3], "r_k": r[6]}
    except IndexError:
        return None
    m, n, k, h = problem.mnkh
    bound = {"d_m": m, "d_n": n, "d_h": h, "v_m": m, "v_n": n, "r_k": k}
    return {name: int(x) if int(x) > 0 else bound[name] for name, x in out.items()}  # 0: untiled


# ---- IREE's default ---------------------------------------------------------------------
_DIALECT_WRAPPER = "#iree_cpu.lowering_config<"


def _int_list(attr: Any) -> list[int]:
    """Integers of an ArrayAttr / DenseI64ArrayAttr (nested arrays, e.g. scalable sizes,
    flattened to their first element)."""
    from iree.compiler import ir

    if isinstance(attr, ir.DenseI64ArrayAttr):
        return [int(x) for x in attr]
    if not isinstance(attr, ir.ArrayAttr):
        raise TypeError(f"not a list of tile sizes: {attr}")
    out: list[int] = []
    for x in attr:
        if isinstance(x, ir.IntegerAttr):
            out.append(int(x.value))
        elif isinstance(x, ir.ArrayAttr) and len(x):
            out.append(_int_list(x)[0])
        else:
            raise TypeError(f"not a tile size: {x}")
    return out


def lowering_levels(attr: Any) -> dict[str, tuple[int, ...]]:
    """Tiling levels of an ``#iree_cpu.lowering_config`` attribute (an ``ir.Attribute``), in
    any order, unknown levels included. The attribute has no Python class in IREE's bindings;
    its body is an MLIR dictionary, so the body is re-parsed by MLIR as a ``DictionaryAttr``
    and read entry by entry."""
    from iree.compiler import ir

    text = str(attr)
    if not text.startswith(_DIALECT_WRAPPER) or not text.endswith(">"):
        raise ConfigReadError(f"not an #iree_cpu.lowering_config: {text[:80]}")
    try:
        body = ir.DictAttr(ir.Attribute.parse("{" + text[len(_DIALECT_WRAPPER):-1] + "}",
                                              attr.context))
    except (ir.MLIRError, ValueError) as e:
        raise ConfigReadError(f"lowering_config body does not parse: {e}") from None
    out: dict[str, tuple[int, ...]] = {}
    for i in range(len(body)):
        named = body[i]
        try:
            out[named.name] = tuple(_int_list(named.attr))
        except TypeError:
            continue  # a non-tile entry (e.g. a flag): not a tiling level
    return out


_ROOT_OPS = {"matmul": "linalg.matmul", "batch_matmul": "linalg.batch_matmul",
             "conv_2d_nhwc_hwcf": "linalg.conv_2d_nhwc_hwcf"}


@dataclass(frozen=True)
class ConfiguredOp:
    """An op of IREE's configuration output that carries a ``lowering_config``: its name, its
    tiling levels and its function's ``translation_info`` attribute as IREE printed it."""

    name: str
    levels: dict[str, tuple[int, ...]]
    translation: str


def configured_ops(text: str) -> list[ConfiguredOp]:
    """Every op with a ``lowering_config`` in the output of ``iree-compile
    --compile-to=executable-configurations``, read through the MLIR bindings
    (``iree.compiler.ir``), in walk order."""
    from mlsysgym.ir.mlir_parse import _parse_text, context

    ctx = context()
    with ctx:
        try:
            module = _parse_text(text, ctx)
        except MlsysgymError as e:
            raise ConfigReadError(f"IREE's configuration output does not parse: {e}") from None
        found: list[ConfiguredOp] = []

        def walk(op: Any, translation: str) -> None:
            for region in op.regions:
                for block in region.blocks:
                    for child in block.operations:
                        child = child.operation
                        tr = str(child.attributes["translation_info"]) \
                            if "translation_info" in child.attributes else translation
                        if "lowering_config" in child.attributes:
                            found.append(ConfiguredOp(
                                child.name, lowering_levels(child.attributes["lowering_config"]),
                                tr))
                        walk(child, tr)
        walk(module.operation, "")
    return found


def read_root_config(text: str, kind: str) -> TileConfig:
    """IREE's ``lowering_config`` of the root op of kind ``kind`` in the output of
    ``iree-compile --compile-to=executable-configurations`` (:func:`configured_ops`): the op
    of that kind, else the last op whose config has a ``distribution`` level."""
    found = configured_ops(text)
    named = [o.levels for o in found if o.name == _ROOT_OPS.get(kind)]
    dist = [o.levels for o in found if "distribution" in o.levels]
    levels = (named or dist or [{}])[-1]
    if "distribution" not in levels or "vector_reduction" not in levels:
        raise ConfigReadError(f"no root-op lowering_config with distribution and "
                              f"vector_reduction levels for {kind} (found "
                              f"{[o.name for o in found] or 'none'})")
    return TileConfig.from_levels(levels, _PIPELINE[kind])


def executable_configurations(mlir: str, target_cpu: str = "host", timeout_s: float = 60.0,
                              what: str = "the kernel",
                              phase: str = "executable-configurations") -> str:
    """The text of ``iree-compile --compile-to=<phase>`` (default: executable-configurations)
    for codegen target ``target_cpu``; ConfigReadError (one line) when it fails or times out."""
    from mlsysgym.core.target import target_flags
    from mlsysgym.ir.mlir_import import iree_compile_path

    try:
        proc = run_limited([iree_compile_path(), "-", f"--compile-to={phase}",
                            *target_flags(target_cpu)], "iree-compile", input=mlir.encode(),
                           timeout_s=timeout_s)
    except ResourceLimitError as e:
        raise ConfigReadError(f"reading IREE's default config of {what}: {e}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigReadError(f"iree-compile failed on {what} (exit {proc.returncode}): "
                              f"{err[0][:200] if err else ''}")
    return proc.stdout.decode(errors="replace")


_DEFAULT_CACHE: dict[str, TileConfig] = {}


def default_config(problem: TilingInstance, target_cpu: str = "host",
                   timeout_s: float = 60.0) -> TileConfig:
    """IREE's own configuration of the op for codegen target ``target_cpu``
    (``--compile-to=executable-configurations`` of a one-op kernel, read by
    :func:`read_root_config`); cached in memory and on disk per target fingerprint."""
    from mlsysgym.core.target import target_id
    from mlsysgym.ir.mlir_emit import emit
    from mlsysgym.ir.mlir_import import cache_dir

    key = hashlib.sha256(json.dumps([problem.key, target_id(target_cpu)]).encode()).hexdigest()[:24]
    if key in _DEFAULT_CACHE:
        return _DEFAULT_CACHE[key]
    path = cache_dir("tiling-defaults") / f"{key}.json"
    cfg = None
    if path.is_file():
        try:
            cfg = TileConfig.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            cfg = None  # a damaged cache entry is re-read from IREE
    if cfg is None:
        text = executable_configurations(emit(problem.to_spec_design()).mlir, target_cpu,
                                         timeout_s, problem.key)
        try:
            cfg = read_root_config(text, problem.kind)
        except ConfigReadError as e:
            raise ConfigReadError(f"{problem.key}: {e}") from None
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cfg.to_dict()))
        tmp.replace(path)
    _DEFAULT_CACHE[key] = cfg
    return cfg


# ---- the space ----------------------------------------------------------------------------
def _levels_upto(bound: int, base: Sequence[int], extra: Sequence[int] = ()) -> tuple[int, ...]:
    vals = {v for v in base if v <= bound} | {v for v in extra if 1 <= v <= bound}
    return tuple(sorted(vals)) or (1,)


def lanes_and_registers(isa: TargetIsa | None) -> tuple[int, int]:
    """f32 lanes per vector register and vector registers of a target (host when None):
    AVX-512 16 × 32, AVX2 8 × 16, SSE 4 × 16."""
    from mlsysgym.core.target import target_isa

    isa = isa or target_isa("host")
    return max(isa.vector_bits // 32, 1), 32 if isa.vector_bits >= 512 else 16


def tiling_space(problem: TilingInstance, default: TileConfig | None = None,
                 isa: TargetIsa | None = None) -> DesignSpace:
    """The DesignSpace of the op's configurations on target ``isa`` (host when None; see the
    module doc); register tiles are sized in the target's vector lanes and the accumulator
    fits its register file; ``default``'s knob values are always among the levels so the
    default is a point of the space."""
    lanes, regs = lanes_and_registers(isa)
    m, n, k, h = problem.mnkh
    dk = knobs_from_config(problem, default) if default is not None else None
    dv = dk or {}

    def with_default(name: str, vals: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(vals) | ({dv[name]} if name in dv else set())))

    d_m = with_default("d_m", _levels_upto(m, (8, 16, 32, 64, 128), [m] if m <= 128 else []))
    d_n = with_default("d_n", _levels_upto(n, (16, 32, 64, 128, 256), [n] if n <= 256 else []))
    v_m = with_default("v_m", _levels_upto(m, (1, 2, 4, 8, 16), [7] if m % 7 == 0 else []))
    v_n = with_default("v_n", _levels_upto(n, (lanes // 2, lanes, 2 * lanes, 4 * lanes),
                                           [1, 2, 4] if n < lanes else []))
    r_k = with_default("r_k", _levels_upto(k, (1, 2, 4, 8, 16, 32), [k] if k <= 32 else []))
    if problem.kind == "conv_2d_nhwc_hwcf":
        d_h = with_default("d_h", _levels_upto(h, (1, 2, 4, 8, 16), [h, max(h // 2, 1)]))
    else:
        d_h = (1,)
    params = [Categorical("d_m", d_m), Categorical("d_n", d_n), Categorical("d_h", d_h),
              Categorical("v_m", v_m), Categorical("v_n", v_n), Categorical("r_k", r_k)]
    cons = [
        Constraint(f"d_m <= {m} and d_n <= {n} and d_h <= {h} and r_k <= {k}",
                   "a tile never exceeds its loop bound"),
        Constraint("v_m <= d_m and v_n <= d_n", "register tile within the distribution tile"),
        Constraint("d_m % v_m == 0 and d_n % v_n == 0",
                   "register tile divides the distribution tile"),
        Constraint(f"v_m * v_n * r_k <= {MAX_VECTOR_ELEMS}",
                   "vector working set below IREE's 32 KB large-vector limit"),
        Constraint(f"v_m * v_n <= {regs * lanes}", "accumulator tile fits the register file"),
    ]
    if problem.kind == "conv_2d_nhwc_hwcf":
        # conv remainders are scalarized (measured: 10-150x slower): tiles divide the loops
        cons.append(Constraint(f"{m} % d_m == 0 and {n} % d_n == 0 and {h} % d_h == 0 and "
                               f"{m} % v_m == 0 and {n} % v_n == 0 and {k} % r_k == 0",
                               "conv tiles divide their loop bounds"))
    if dk is not None:
        # keep the default feasible even where it breaks a soft rule
        dflt = dict(dk)

        def _or_default(rule: Constraint) -> Constraint:
            def holds(cols: Mapping[str, Any]) -> Any:
                is_default = np.ones(len(np.asarray(cols["d_m"])), dtype=bool)
                for name, val in dflt.items():
                    is_default &= np.asarray(cols[name]) == val
                return rule.holds({c: np.asarray(v) for c, v in cols.items()}) | is_default
            holds.__name__ = rule.description
            return Constraint(holds, rule.description)
        cons = [_or_default(c) for c in cons]
    return DesignSpace(params, cons)


def sample_candidates(problem: TilingInstance, default: TileConfig, n: int, seed: int = 0,
                      near_fraction: float = 0.6, isa: TargetIsa | None = None
                      ) -> list[TileConfig]:
    """``n`` feasible configurations other than the default (deterministic for ``seed``): about
    ``near_fraction`` of them one or two knobs away from the default, the rest uniform."""
    space = tiling_space(problem, default, isa)
    designs = space.enumerate(feasible_only=True)
    dk = knobs_from_config(problem, default) or {}
    dist = np.array([sum(d[k] != dk.get(k) for k in KNOBS) for d in designs])
    rng = np.random.default_rng(seed)
    near = [i for i in range(len(designs)) if 1 <= dist[i] <= 2]
    far = [i for i in range(len(designs)) if dist[i] >= 1]
    n_near = min(len(near), round(n * near_fraction))
    pick = list(rng.choice(near, size=n_near, replace=False)) if n_near else []
    rest = [i for i in far if i not in set(pick)]
    n_far = min(len(rest), n - len(pick))
    pick += list(rng.choice(rest, size=n_far, replace=False)) if n_far > 0 else []
    return [config_from_knobs(problem, designs[int(i)], default) for i in pick]


def candidate_columns(problem: TilingInstance, default: TileConfig | None = None,
                      max_n: int | None = None, seed: int = 0, isa: TargetIsa | None = None
                      ) -> dict[str, np.ndarray]:
    """Knob columns of the feasible configurations (vectorized enumeration of the space), the
    default's row first when given; at most ``max_n`` rows (a deterministic sample) if set."""
    space = tiling_space(problem, default, isa)
    cols = space.columns_from_indices(space.all_indices())
    keep = space.feasible(cols)
    cols = {k: np.asarray(cols[k], dtype=np.int64)[keep] for k in KNOBS}
    n = len(cols["d_m"])
    first = np.zeros(0, dtype=np.int64)
    if default is not None:
        dk = knobs_from_config(problem, default)
        if dk is not None:
            is_def = np.ones(n, dtype=bool)
            for k in KNOBS:
                is_def &= cols[k] == dk[k]
            rest = np.flatnonzero(~is_def)
            cols = {k: np.concatenate([[dk[k]], v[rest]]) for k, v in cols.items()}
            first = np.zeros(1, dtype=np.int64)
    if max_n is not None and len(cols["d_m"]) > max_n:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(np.arange(len(first), len(cols["d_m"])),
                                  size=max(max_n - len(first), 0), replace=False))
        idx = np.concatenate([first, pick])
        cols = {k: v[idx] for k, v in cols.items()}
    return cols


def candidates(problem: TilingInstance, default: TileConfig | None = None, max_n: int | None = None,
               seed: int = 0, isa: TargetIsa | None = None) -> list[TileConfig]:
    """Feasible configurations of the op's space, IREE's default first (as read, if given);
    at most ``max_n`` (a deterministic random sample of the rest) when set."""
    cols = candidate_columns(problem, default, max_n, seed, isa)
    out = [config_from_knobs(problem, {k: int(cols[k][i]) for k in KNOBS}, default)
           for i in range(len(cols["d_m"]))]
    if default is not None and knobs_from_config(problem, default) is not None:
        out[0] = default
    return out


def workgroups(problem: TilingInstance, knobs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Workgroups (distribution tiles) of each knob assignment: the parallelism the
    multi-threaded driver gets (batch matmuls also split the batch)."""
    m, n, _, h = problem.mnkh
    cols = {k: np.asarray(knobs[k], dtype=np.float64) for k in ("d_m", "d_n", "d_h")}
    batch = problem.dims[0] if problem.kind == "batch_matmul" else 1
    return (np.ceil(m / cols["d_m"]) * np.ceil(n / cols["d_n"]) * np.ceil(h / cols["d_h"])
            * batch)


# ---- features -----------------------------------------------------------------------------
FEATURE_NAMES = ("kind_conv", "kind_bmm", "lm", "ln", "lk", "lh", "window", "conv_stride",
                 "ld_m", "ld_n", "ld_h", "lv_m", "lv_n", "lr_k",
                 "rd_m", "rd_n", "rd_h", "rv_m", "rv_n", "rr_k",
                 "acc", "vec", "tiles", "waste_m", "waste_n", "waste_vm", "waste_vn", "waste_k",
                 "is_default", "lanes", "vn_lanes", "acc_regs", "l2")


def config_features(problem: TilingInstance, knobs: Mapping[str, np.ndarray] | Sequence[Mapping[str, int]],
                    default: Mapping[str, int], isa: TargetIsa | None = None,
                    l2_kib: float | None = None) -> dict[str, np.ndarray]:
    """Feature columns of a batch of knob assignments (columns or dicts), vectorized: op shape
    and configuration (log2 scale, also relative to IREE's default) and the target (f32 lanes
    per vector, register tile in vector lanes, accumulator registers used as a fraction of
    the register file, L2 size); ``isa`` and ``l2_kib`` default to this machine's."""
    from mlsysgym.core.target import cpu_info

    lanes, regs = lanes_and_registers(isa)
    l2 = float(l2_kib if l2_kib is not None else (cpu_info().l2_kib or 512))
    if not isinstance(knobs, Mapping):
        knobs = {k: np.array([d[k] for d in knobs]) for k in KNOBS}
    cols = {k: np.asarray(knobs[k], dtype=np.float64) for k in KNOBS}
    nrow = len(cols["d_m"])
    m, n, k, h = (float(x) for x in problem.mnkh)
    window = float(problem.dims[4] * problem.dims[5]) if problem.kind == "conv_2d_nhwc_hwcf" else 1.0
    one = np.ones(nrow)
    lg = np.log2
    out: dict[str, np.ndarray] = {
        "kind_conv": one * (problem.kind == "conv_2d_nhwc_hwcf"),
        "kind_bmm": one * (problem.kind == "batch_matmul"),
        "lm": one * lg(m), "ln": one * lg(n), "lk": one * lg(k), "lh": one * lg(h),
        "window": one * lg(window), "conv_stride": one * problem.stride,
    }
    for kn in KNOBS:  # absolute (log2) and relative to IREE's default: rd_m, ..., rr_k
        out["l" + kn] = lg(cols[kn])
        out["r" + kn] = lg(cols[kn]) - lg(float(default[kn]))
    out["acc"] = lg(cols["v_m"] * cols["v_n"])
    out["vec"] = lg(cols["v_m"] * cols["v_n"] * cols["r_k"])
    out["tiles"] = lg(np.ceil(m / cols["d_m"]) * np.ceil(n / cols["d_n"]) * np.ceil(h / cols["d_h"]))

    def waste(bound: float, t: np.ndarray) -> np.ndarray:
        return np.ceil(bound / t) * t / bound - 1.0
    out["waste_m"] = waste(m, cols["d_m"])
    out["waste_n"] = waste(n, cols["d_n"])
    out["waste_vm"] = waste(m, cols["v_m"])
    out["waste_vn"] = waste(n, cols["v_n"])
    out["waste_k"] = waste(k, cols["r_k"])
    is_def = np.ones(nrow, dtype=bool)
    for kn in KNOBS:
        is_def &= cols[kn] == float(default[kn])
    out["is_default"] = is_def.astype(np.float64)
    out["lanes"] = one * np.log2(lanes)
    out["vn_lanes"] = lg(cols["v_n"] / lanes)
    out["acc_regs"] = cols["v_m"] * np.ceil(cols["v_n"] / lanes) / regs
    out["l2"] = one * np.log2(max(l2, 1.0))
    return {f: out[f] for f in FEATURE_NAMES}
