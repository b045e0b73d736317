"""Analytical model of a spatial PE array (systolic array) with on-chip SRAM and off-chip DRAM.

The array has ``rows × cols`` MAC PEs and runs a weight- (``ws``), output- (``os``) or
input-stationary (``is``) dataflow with SCALE-Sim's semantics (Samajdar et al., "A Systematic
Methodology for Characterizing Scalability of DNN Accelerators using SCALE-Sim", ISPASS 2020).
Every layer is lowered to GEMMs ``out[M, N] += a[M, K] · b[K, N]`` (see
:mod:`mlsysgym.simulators.accelerator_layers`; conv via im2col: M = ofmap pixels, K = conv
window, N = filters).

**Compute (stall-free) cycles**, per dataflow, as SCALE-Sim defines them:

====  ========  ========  ========  ==============================
flow  Sr        Sc        T         cycles per fold
====  ========  ========  ========  ==============================
os    M         N         K         T + rows + cols − 2
ws    K         N         M         2·rows + cols + T − 2
is    K         M         N         2·rows + cols + T − 2
====  ========  ========  ========  ==============================

Sr is mapped on the array's rows and Sc on its columns: ``folds = ceil(Sr/rows)·ceil(Sc/cols)``
and ``compute_cycles = folds · cycles_per_fold − 1`` (each fold fills and drains the pipeline;
ws/is first load the stationary tile, ``rows`` cycles). Folds run column-fold outer, row-fold
inner. A grouped conv is ``groups`` GEMMs; when one group's tile is smaller than the array,
``min(rows // Sr, cols // Sc)`` groups share a fold on the array's block diagonal.

**Memory (our model of the physics).** Three double-buffered SRAMs (ifmap, filter, ofmap): half
of each is the working (active) half while the other half is filled from or drained to DRAM.

* DRAM traffic. Each operand is read from DRAM once if the data it reuses across the fold
  loop fits in the active half of its buffer, else it is re-streamed on every reuse pass
  (a cyclic scan larger than a FIFO/LRU buffer misses on every access):

  - os: the ifmap is re-read once per column fold unless the whole ifmap fits; the filter tile
    (K × cols) is re-read once per row fold unless it fits;
  - ws: weights are read once; the ifmap is re-read per column fold unless it fits; the partial
    sums of a column fold (M × cols) spill to DRAM between row folds unless they fit in the
    ofmap buffer (then each spill writes, and each later row fold reads them back);
  - is: the ifmap is read once; the filter is re-read per column fold unless it fits; partial
    sums (N × cols) spill as for ws.

  Operand sizes are unique elements (a conv's ifmap is its input tensor, not the im2col
  matrix). Outputs are written to DRAM once, inputs of every layer come from DRAM.
* Stalls. DRAM transfers overlap compute (double buffering), at ``bandwidth`` words/cycle
  shared by the three streams: ``stall = max(0, dram_words / bandwidth − compute)`` plus the
  exposed start-up: the first stationary tile (ws: filter, is: ifmap, ``rows·cols`` words at
  most) must arrive before the first MAC.
* SRAM accesses: the array's operand reads and output writes per fold as SCALE-Sim counts them
  (stationary operands once, streamed operands once per fold that uses them), plus the partial
  sums read back for accumulation, DRAM fills (writes) and write-backs (reads).

**Vector work**: ops that are not GEMMs run on a vector unit of ``cols`` lanes (one FLOP per
lane per cycle), inputs read from and outputs written to DRAM once, with the same overlap rule.

**Energy** = MACs, vector FLOPs, SRAM word accesses (energy depends on each buffer's size) and
DRAM words, each times its per-access energy from Horowitz, ISSCC 2014 (45 nm); no leakage.
**Area** = PEs (multiplier + adder + 3 word registers) + vector unit + SRAM (6T cells); see
:mod:`mlsysgym.simulators.accelerator_energy` for the tables and their sources.

Everything is vectorized over designs × items with NumPy broadcasting: designs are columns
of shape (D, 1), items rows of shape (1, L).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from mlsysgym.core.errors import OutOfRangeError, ParameterTypeError, UnknownParameterError
from mlsysgym.core.evaluator import Design, Evaluator, Metrics
from mlsysgym.core.params import Categorical, Float, Integer, Parameter, PowerOfTwo
from mlsysgym.core.space import DesignSpace
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators import accelerator_energy as en
from mlsysgym.simulators.accelerator_layers import KIND_GEMM, KIND_VECTOR, LayerSet, lower

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DATAFLOWS",
    "DESIGN_SPACE",
    "AcceleratorSimulator",
    "DesignArrays",
    "accelerator_space",
    "default_design",
    "designs_to_arrays",
    "layer_table",
    "resolve",
    "simulate_items",
    "simulate_totals",
]

DATAFLOWS: tuple[str, ...] = ("os", "ws", "is")
OS, WS, IS = 0, 1, 2


# ---- designs -----------------------------------------------------------------------------------
DESIGN_SPACE = DesignSpace([
    Integer("rows", 1, 4096),                           # PE array rows
    Integer("cols", 1, 4096),                           # PE array columns (also vector lanes)
    Categorical("dataflow", DATAFLOWS),                 # weight / output / input stationary
    Float("ifmap_kb", 0.125, 1 << 20, log=True),        # ifmap SRAM, KB
    Float("filter_kb", 0.125, 1 << 20, log=True),       # filter SRAM, KB
    Float("ofmap_kb", 0.125, 1 << 20, log=True),        # ofmap SRAM, KB
    Float("bandwidth", 0.01, 1 << 16, log=True),        # off-chip DRAM bandwidth, words/cycle
    Categorical("word_bytes", en.WORD_BYTES),           # 1 (int8), 2 (fp16), 4 (fp32)
    Float("clock_mhz", 1.0, 10_000.0, log=True),        # clock, MHz
], default={"rows": 32, "cols": 32, "dataflow": "ws", "ifmap_kb": 256.0, "filter_kb": 256.0,
            "ofmap_kb": 128.0, "bandwidth": 10.0, "word_bytes": 1, "clock_mhz": 1000.0})
"""Every design the model accepts (its validity bounds) and the default design. Search spaces
are grids inside it, e.g. :func:`accelerator_space`."""

_DEFAULT = DESIGN_SPACE.default
_NAME_SET = frozenset(DESIGN_SPACE.names)


def accelerator_space(max_pes: int = 65536) -> DesignSpace:
    """The search grid of ``Accelerator-v0`` inside :data:`DESIGN_SPACE`: array shape, dataflow,
    three SRAM sizes, DRAM bandwidth, word size (the clock stays at its default).

    7 × 7 × 3 × 9 × 9 × 9 × 7 × 2 ≈ 4.5 M designs (minus those over ``max_pes`` PEs).
    """
    return DesignSpace([
        PowerOfTwo("rows", 4, 256),
        PowerOfTwo("cols", 4, 256),
        Categorical("dataflow", ("ws", "os", "is")),
        PowerOfTwo("ifmap_kb", 8, 2048),
        PowerOfTwo("filter_kb", 8, 2048),
        PowerOfTwo("ofmap_kb", 8, 2048),
        PowerOfTwo("bandwidth", 1, 64),
        Categorical("word_bytes", (1, 2)),
    ], constraints=[f"rows * cols <= {max_pes}"])


def default_design() -> dict[str, Any]:
    """Every parameter at its default."""
    return DESIGN_SPACE.default


@dataclass
class DesignArrays:
    """A batch of D designs, one float64 array of shape (D,) per parameter (dataflow as 0/1/2
    for os/ws/is). Build with :func:`designs_to_arrays` or :meth:`from_columns` (validated)."""

    rows: np.ndarray
    cols: np.ndarray
    dataflow: np.ndarray
    ifmap_kb: np.ndarray
    filter_kb: np.ndarray
    ofmap_kb: np.ndarray
    bandwidth: np.ndarray
    word_bytes: np.ndarray
    clock_mhz: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @classmethod
    def from_columns(cls, n: int | None = None, **columns: Any) -> DesignArrays:
        """Validated arrays from columns (scalars broadcast; missing parameters take defaults;
        ``dataflow`` as strings or codes 0/1/2 = os/ws/is)."""
        for name in columns:
            if name not in DESIGN_SPACE:
                raise UnknownParameterError(_unknown_msg(name))
        sizes = [np.size(v) for v in columns.values() if np.ndim(v) > 0]
        n = n if n is not None else (max(sizes) if sizes else 1)
        out: dict[str, np.ndarray] = {}
        for spec in DESIGN_SPACE:
            name = spec.name
            v = columns.get(name, _DEFAULT[name])
            if name == "dataflow":
                arr = np.asarray(v)
                if arr.dtype.kind in "UO":
                    codes = np.full(arr.shape, -1, dtype=np.int64)
                    for i, df in enumerate(DATAFLOWS):
                        codes[arr == df] = i
                    if (codes < 0).any():
                        bad = np.ravel(arr)[np.argmax(np.ravel(codes) < 0)]
                        raise OutOfRangeError(
                            f"unknown dataflow {bad!r}; use one of {', '.join(DATAFLOWS)}")
                    arr = codes
                elif arr.dtype.kind not in "iuf" or ((arr < 0) | (arr > 2) | (arr % 1 != 0)).any():
                    raise OutOfRangeError(
                        "dataflow codes must be 0 (os), 1 (ws) or 2 (is)")
                out[name] = np.broadcast_to(arr.astype(np.float64), (n,)).copy()
                continue
            arr = np.asarray(v)
            if arr.dtype.kind not in "iuf":
                raise ParameterTypeError(f"{name} must be numeric, got dtype {arr.dtype}")
            arr = np.broadcast_to(arr.astype(np.float64), (n,)).copy()
            _check_numeric_array(spec, arr)
            out[name] = arr
        return cls(**out)


def _unknown_msg(name: str) -> str:
    return f"unknown accelerator parameter {name!r}; valid: {', '.join(DESIGN_SPACE.names)}"


def _check_numeric_array(spec: Parameter, arr: np.ndarray) -> None:
    if isinstance(spec, Categorical):
        bad = ~np.isin(arr, spec.choices)
        if bad.any():
            v = arr[np.argmax(bad)]
            raise OutOfRangeError(
                f"{spec.name}={_fmt(v)} is not allowed; use one of "
                f"{', '.join(str(c) for c in spec.choices)}")
        return
    if isinstance(spec, Integer):
        frac = arr % 1 != 0
        if frac.any():
            raise ParameterTypeError(
                f"{spec.name} must be an integer, got {_fmt(arr[np.argmax(frac)])}")
    bad = ~((arr >= spec.low) & (arr <= spec.high))  # also catches NaN
    if bad.any():
        raise OutOfRangeError(
            f"{spec.name}={_fmt(arr[np.argmax(bad)])} is out of range; "
            f"allowed {_fmt(spec.low)}..{_fmt(spec.high)}")


def _fmt(v: Any) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:g}"


def _check_value(spec: Parameter, value: Any) -> float:
    """One design value as a float, or a typed DesignError."""
    if spec.name == "dataflow":
        if not isinstance(value, str):
            raise ParameterTypeError(
                f"dataflow must be a string (one of {', '.join(DATAFLOWS)}), "
                f"got {type(value).__name__}")
        if value not in DATAFLOWS:
            raise OutOfRangeError(
                f"unknown dataflow {value!r}; use one of {', '.join(DATAFLOWS)}")
        return float(DATAFLOWS.index(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(
            f"{spec.name} must be a number, got {type(value).__name__} {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond a float's range
        raise OutOfRangeError(f"{spec.name} is an integer of {len(str(abs(value)))} digits, out "
                              f"of range; allowed {_fmt(spec.low)}..{_fmt(spec.high)}") from None
    if isinstance(spec, Categorical):
        if v not in spec.choices:
            raise OutOfRangeError(
                f"{spec.name}={_fmt(v) if math.isfinite(v) else v} is not allowed; use one of "
                f"{', '.join(str(c) for c in spec.choices)}")
        return v
    if isinstance(spec, Integer) and math.isfinite(v) and not v.is_integer():
        raise ParameterTypeError(f"{spec.name} must be an integer, got {value!r}")
    if not (spec.low <= v <= spec.high):
        raise OutOfRangeError(
            f"{spec.name}={value!r} is out of range; allowed {_fmt(spec.low)}..{_fmt(spec.high)}")
    return v


def designs_to_arrays(designs: Sequence[Design]) -> DesignArrays:
    """Validate design dicts (missing keys take defaults) and stack them column-wise.

    Checked a column at a time (one array check per parameter); a batch that fails any check
    is checked again value by value for the first bad value's error message."""
    try:
        table = _columns_fast(designs)
    except (TypeError, ValueError, OverflowError):
        table = None
    if table is None:
        table = _columns_checked(designs)
    return DesignArrays(**{n: table[:, j].copy() for j, n in enumerate(DESIGN_SPACE.names)})


_NUMBER_TYPES = frozenset((int, float, np.int64, np.int32, np.float64, np.float32))
_FLOW_CODES = {name: float(i) for i, name in enumerate(DATAFLOWS)}
_GET_ALL = operator.itemgetter(*DESIGN_SPACE.names)
_FLOW_J = DESIGN_SPACE.names.index("dataflow")
_WORD_J = DESIGN_SPACE.names.index("word_bytes")
_WORD_CHOICES = np.array(en.WORD_BYTES, dtype=np.float64)
_LOW, _HIGH = np.array([[min(p.choices), max(p.choices)] if p.name == "word_bytes"
                        else [0.0, 2.0] if p.name == "dataflow"  # its codes
                        else [p.low, p.high] for p in DESIGN_SPACE.params]).T[:, :, None]
_INTEGRAL = [j for j, p in enumerate(DESIGN_SPACE.params) if isinstance(p, Integer)]


def _columns_fast(designs: Sequence[Design]) -> np.ndarray | None:
    """The (D, P) table of valid plain designs (dicts of ints/floats, dataflow names), checked
    as arrays; None when any design needs the value-by-value check (or is invalid)."""
    if not designs or any(type(d) is not dict for d in designs) \
            or not set().union(*designs) <= _NAME_SET:
        return None
    rows = [_GET_ALL({**_DEFAULT, **d}) for d in designs]  # missing keys: the defaults
    cols = list(zip(*rows))
    flows = cols[_FLOW_J]
    cols[_FLOW_J] = [_FLOW_CODES.get(v, -1.0) for v in flows]  # (a str: checked below)
    if not set(map(type, flows)) <= {str} or \
            not set(map(type, itertools.chain.from_iterable(cols))) <= _NUMBER_TYPES:
        return None
    table = np.array(cols, dtype=np.float64)  # (P, D)
    words = table[_WORD_J]
    ok = (((table >= _LOW) & (table <= _HIGH)).all() and (table[_INTEGRAL] % 1 == 0).all()
          and (words[:, None] == _WORD_CHOICES).any(axis=1).all())
    return table.T if ok else None


def _columns_checked(designs: Sequence[Design]) -> np.ndarray:
    """The (D, P) table, each value checked on its own (a typed DesignError for the first bad
    one)."""
    params = DESIGN_SPACE.params
    table = np.empty((len(designs), len(params)), dtype=np.float64)
    defaults = [_check_value(p, _DEFAULT[p.name]) for p in params]
    for i, d in enumerate(designs):
        if not isinstance(d, Mapping):
            raise ParameterTypeError(f"a design must be a dict, got {type(d).__name__}")
        for key in d:
            if key not in DESIGN_SPACE:
                raise UnknownParameterError(_unknown_msg(key))
        table[i] = [_check_value(p, d[p.name]) if p.name in d else defaults[j]
                    for j, p in enumerate(params)]
    return table


# ---- workloads ---------------------------------------------------------------------------------
def resolve(workload: Any) -> Graph | LayerSet:
    """An ir.Graph or LayerSet as is; a str/Path: an ONNX file, else a zoo model name."""
    if isinstance(workload, LayerSet):
        return workload
    from mlsysgym.ir import zoo

    return zoo.resolve(workload)


_LOWERED: dict[int, tuple[Graph, LayerSet]] = {}


def layers_of(workload: Any) -> LayerSet:
    """The work items of a workload (lowered once per Graph object)."""
    w = resolve(workload)
    if isinstance(w, LayerSet):
        return w
    hit = _LOWERED.get(id(w))
    if hit is not None and hit[0] is w:
        return hit[1]
    ls = lower(w)
    if len(_LOWERED) > 64:
        _LOWERED.clear()
    _LOWERED[id(w)] = (w, ls)
    return ls


# ---- the model ---------------------------------------------------------------------------------
ITEM_METRICS: tuple[str, ...] = (
    "compute_cycles", "stall_cycles", "cycles", "sram_reads", "sram_writes", "dram_reads",
    "dram_writes", "energy_pj")


@dataclass(frozen=True)
class _Items:
    """A LayerSet's GEMM and vector items as (1, n) rows: the per-workload arrays every
    simulator call needs, sliced once per LayerSet (see :func:`_items_of`)."""

    gemm: np.ndarray
    vec: np.ndarray
    g: dict[str, np.ndarray]
    v: dict[str, np.ndarray]


_ITEMS: dict[int, tuple[LayerSet, _Items]] = {}
_GEMM_FIELDS = ("m", "k", "n", "groups", "ifmap_words", "filter_words", "ofmap_words", "macs")
_VEC_FIELDS = ("vec_flops", "vec_in_words", "vec_out_words")


def _items_of(ls: LayerSet) -> _Items:
    """The GEMM/vector item rows of ``ls`` (memoized per LayerSet object: a LayerSet's arrays
    are not changed after lowering)."""
    hit = _ITEMS.get(id(ls))
    if hit is not None and hit[0] is ls:
        return hit[1]
    gemm = np.flatnonzero(ls.kind == KIND_GEMM)
    vec = np.flatnonzero(ls.kind == KIND_VECTOR)
    m, k, n, g = (getattr(ls, f)[gemm][None] for f in ("m", "k", "n", "groups"))
    rows = {f: getattr(ls, f)[gemm][None] for f in _GEMM_FIELDS}
    rows.update(MK=g * m * k, KN=g * k * n, MN=g * m * n)
    items = _Items(gemm, vec, rows, {f: getattr(ls, f)[vec][None] for f in _VEC_FIELDS})
    if len(_ITEMS) > 64:
        _ITEMS.clear()
    _ITEMS[id(ls)] = (ls, items)
    return items


def _energies(d: DesignArrays) -> dict[str, np.ndarray]:
    """Per-design energy per access (pJ), each of shape (D, 1): SRAM words of the three
    buffers (one vectorized table lookup for all three), MAC, vector op and DRAM word."""
    sram = en.sram_energy_pj_per_word(np.stack([d.ifmap_kb, d.filter_kb, d.ofmap_kb]),
                                      d.word_bytes[None])
    return {"i": sram[0][:, None], "f": sram[1][:, None], "o": sram[2][:, None],
            "mac": en.mac_energy_pj(d.word_bytes)[:, None],
            "vec": en.vector_op_energy_pj(d.word_bytes)[:, None],
            "dram": en.dram_energy_pj_per_word(d.word_bytes)[:, None]}


def _gemm_part(d: DesignArrays, it: _Items, e: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Item metrics (D, n) of the GEMM items, every dataflow in one pass (each design's own
    dataflow's formulas, selected per design)."""
    g = it.g
    R, C = d.rows[:, None], d.cols[:, None]
    M, K, N, G = g["m"], g["k"], g["n"], g["groups"]
    I, F, O = g["ifmap_words"], g["filter_words"], g["ofmap_words"]
    MK, KN, MN = g["MK"], g["KN"], g["MN"]
    flow = d.dataflow[:, None]
    os_, ws = flow == OS, flow == WS
    is_ = ~(os_ | ws)

    # -- compute: SCALE-Sim's folds (Sr on rows, Sc on columns, T cycles of streaming)
    Sr = np.where(os_, M, K)
    Sc = np.where(is_, M, N)
    T = np.where(os_, K, np.where(ws, M, N))
    # groups side by side on the diagonal: min(rows // Sr, cols // Sc) clipped to 1..G
    gpack = np.minimum(np.maximum(np.minimum(R // Sr, C // Sc), 1.0), G)
    passes = np.ceil(G / gpack)
    rf = np.ceil(Sr * gpack / R)
    cf = np.ceil(Sc * gpack / C)
    fold_len = np.where(os_, T + (R + C - 2.0), T + (2.0 * R + C - 2.0))
    compute = rf * cf * passes * fold_len - 1.0

    # -- active half of each buffer, in words
    wb = d.word_bytes[:, None]
    act_i = d.ifmap_kb[:, None] * 512.0 / wb
    act_f = d.filter_kb[:, None] * 512.0 / wb
    act_o = d.ofmap_kb[:, None] * 512.0 / wb
    used_c = np.minimum(Sc * gpack, C)

    # -- SRAM traffic of the array and DRAM traffic (re-stream what does not fit)
    if_rd = np.where(is_, MK, MK * cf)
    fl_rd = np.where(os_, KN * rf, np.where(ws, KN, KN * cf))
    of_wr = np.where(os_, MN, MN * rf)
    if_restream = I * np.where(I / passes <= act_i, 1.0, cf)
    if_dram = np.where(is_, I, if_restream)
    fl_dram = np.where(os_, F * np.where(K * used_c <= act_f, 1.0, rf),
                       np.where(ws, F, F * np.where(F / passes <= act_f, 1.0, cf)))
    first = np.where(os_, 0.0, np.minimum(R * C, np.where(ws, F, MK) / G))
    spill = (rf > 1.0) & (T * used_c > act_o)
    of_dram_w = np.where(os_, O, O * np.where(spill, rf, 1.0))
    psum_rd = of_wr - MN
    of_dram_r = of_dram_w - O
    dram_r = if_dram + fl_dram + of_dram_r
    dram_w = of_dram_w + np.zeros_like(compute)

    # -- stalls: DRAM time not hidden behind compute, plus the first stationary tile
    bw = d.bandwidth[:, None]
    stall = np.maximum((dram_r + dram_w) / bw - compute, 0.0) + first / bw

    # -- energy (pJ)
    energy = (g["macs"] * e["mac"] + (if_rd + if_dram) * e["i"] + (fl_rd + fl_dram) * e["f"]
              + (of_wr + psum_rd + of_dram_w + of_dram_r) * e["o"] + (dram_r + dram_w) * e["dram"])
    return {
        "compute_cycles": compute, "stall_cycles": stall, "cycles": compute + stall,
        "sram_reads": if_rd + fl_rd + psum_rd + of_dram_w,
        "sram_writes": if_dram + fl_dram + of_wr + of_dram_r,
        "dram_reads": dram_r, "dram_writes": dram_w, "energy_pj": energy,
    }


def _vector_part(d: DesignArrays, it: _Items, e: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Item metrics (D, n) of the vector items."""
    C = d.cols[:, None]
    flops, vin, vout = it.v["vec_flops"], it.v["vec_in_words"], it.v["vec_out_words"]
    compute = np.ceil(flops / C)
    stall = np.maximum((vin + vout) / d.bandwidth[:, None] - compute, 0.0)
    energy = (flops * e["vec"] + 2.0 * (vin * e["i"] + vout * e["o"]) + (vin + vout) * e["dram"])
    zeros = np.zeros_like(compute)
    return {
        "compute_cycles": compute, "stall_cycles": stall, "cycles": compute + stall,
        "sram_reads": vin + vout + zeros, "sram_writes": vin + vout + zeros,
        "dram_reads": vin + zeros, "dram_writes": vout + zeros, "energy_pj": energy,
    }


def _parts(d: DesignArrays, ls: LayerSet) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    out = []
    it = _items_of(ls)
    e = _energies(d)
    if it.gemm.size:
        out.append((it.gemm, _gemm_part(d, it, e)))
    if it.vec.size:
        out.append((it.vec, _vector_part(d, it, e)))
    return out


def simulate_items(d: DesignArrays, ls: LayerSet) -> dict[str, np.ndarray]:
    """Per-item metrics, each of shape (D, L); free items are zero."""
    out = {m: np.zeros((len(d), len(ls))) for m in ITEM_METRICS}
    for idx, part in _parts(d, ls):
        for m in ITEM_METRICS:
            out[m][:, idx] = part[m]
    return out


def _finish(d: DesignArrays, sums: dict[str, np.ndarray], macs: np.ndarray | float
            ) -> dict[str, np.ndarray]:
    """Model-level metrics from summed item metrics (arrays of shape (D,) or (D, k))."""
    shape = sums["cycles"].shape
    rows = d.rows.reshape((-1,) + (1,) * (len(shape) - 1))
    cols = d.cols.reshape(rows.shape)
    clock = d.clock_mhz.reshape(rows.shape)
    cycles = sums["cycles"]
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(cycles > 0, macs / (rows * cols * np.maximum(cycles, 1.0)), 0.0)
        latency_ms = cycles / (clock * 1e3)
        energy_uj = sums["energy_pj"] * 1e-6
        power = np.where(latency_ms > 0, energy_uj / np.maximum(latency_ms, 1e-30), 0.0)
    return {
        "cycles": cycles, "compute_cycles": sums["compute_cycles"],
        "stall_cycles": sums["stall_cycles"], "utilization": util,
        "sram_reads": sums["sram_reads"], "sram_writes": sums["sram_writes"],
        "dram_reads": sums["dram_reads"], "dram_writes": sums["dram_writes"],
        "energy_uj": energy_uj, "latency_ms": latency_ms, "power_mw": power,
    }


def area_mm2(d: DesignArrays) -> np.ndarray:
    """Chip area (D,): PE array + vector unit + the three SRAMs."""
    pe = d.rows * d.cols * en.pe_area_um2(d.word_bytes) * 1e-6
    vec = en.vector_unit_area_um2(d.cols, d.word_bytes) * 1e-6
    return pe + vec + en.sram_area_mm2(d.ifmap_kb + d.filter_kb + d.ofmap_kb)


def simulate_totals(d: DesignArrays, ls: LayerSet) -> dict[str, np.ndarray]:
    """Whole-workload metrics, each of shape (D,) (the Evaluator's metric set)."""
    sums = {m: np.zeros(len(d)) for m in ITEM_METRICS}
    for _, part in _parts(d, ls):
        for m in ITEM_METRICS:
            sums[m] += np.add.reduce(part[m], axis=1)  # ndarray.sum without its wrapper
    out = _finish(d, sums, float(ls.macs.sum()))
    out["area_mm2"] = area_mm2(d)
    return out


METRICS: tuple[str, ...] = (
    "cycles", "compute_cycles", "stall_cycles", "utilization", "sram_reads", "sram_writes",
    "dram_reads", "dram_writes", "energy_uj", "latency_ms", "power_mw", "area_mm2")


class AcceleratorSimulator(Evaluator):
    """The analytical PE-array model as an Evaluator.

    Designs are dicts with keys ``rows``, ``cols``, ``dataflow`` ("ws" | "os" | "is"),
    ``ifmap_kb``, ``filter_kb``, ``ofmap_kb``, ``bandwidth`` (words/cycle), ``word_bytes``,
    ``clock_mhz`` (missing keys take :data:`DESIGN_SPACE` defaults). The workload is an ir.Graph,
    an ONNX path, a zoo model name or a LayerSet.
    """

    name = "accelerator"
    version = "1"
    metric_names = METRICS

    def workload_id(self, workload: Any) -> str:
        if isinstance(workload, LayerSet):
            return workload_fingerprint(workload)
        return super().workload_id(workload)

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        return simulate_totals(designs_to_arrays(designs), layers_of(workload))

    def evaluate_arrays(self, designs: DesignArrays, workload: Any) -> Metrics:
        """The fast path: columnar designs, no cache, no per-design Python work."""
        return simulate_totals(designs, layers_of(workload))


def workload_fingerprint(ls: LayerSet) -> str:
    """A content hash of a LayerSet's arrays."""
    h = hashlib.sha256()
    for a in (ls.kind, ls.m, ls.k, ls.n, ls.groups, ls.ifmap_words, ls.filter_words,
              ls.ofmap_words, ls.vec_flops, ls.vec_in_words, ls.vec_out_words):
        h.update(np.ascontiguousarray(a).tobytes())
    return f"layers#{h.hexdigest()[:16]}"


def layer_table(design: Design, workload: Any) -> pd.DataFrame:
    """One row per op of ``workload`` for one design: name, op_type, macs, compute_cycles,
    stall_cycles, cycles, utilization, SRAM/DRAM accesses (words), energy_uj, latency_ms."""
    import pandas as pd

    d = designs_to_arrays([design])
    ls = layers_of(workload)
    items = simulate_items(d, ls)
    n_ops = ls.num_ops
    sums = {m: np.zeros((1, n_ops)) for m in ITEM_METRICS}
    for m in ITEM_METRICS:
        np.add.at(sums[m][0], ls.op_index, items[m][0])
    macs = np.zeros(n_ops)
    np.add.at(macs, ls.op_index, ls.macs)
    fin = _finish(d, sums, macs[None])
    frame = pd.DataFrame({"name": ls.op_names, "op_type": ls.op_types, "macs": macs})
    for m in ("compute_cycles", "stall_cycles", "cycles", "utilization", "sram_reads",
              "sram_writes", "dram_reads", "dram_writes", "energy_uj", "latency_ms"):
        frame[m] = fin[m][0]
    return frame
