"""DRAM request traces derived from the accelerator model's DRAM traffic for a zoo model.

For one accelerator design and one workload, :func:`accel_trace` turns the DRAM traffic the
analytical PE-array model (:mod:`mlsysgym.simulators.accelerator`) counts for every work item
into a time-ordered request trace for the DRAM simulator:

- **Streams.** Each item moves data in up to four streams, with the word counts the model
  computes: ifmap reads, filter reads, partial-sum read-backs (ws/is spills) and ofmap writes
  (outputs plus spills) for a GEMM item; a read stream per input tensor and a write stream per
  output tensor for a vector item. Re-streamed operands (an ifmap read once per column fold,
  ...) read their tensor again from its start.
- **Bursts.** A stream of ``w`` words moves ``ceil(w * word_bytes / 64)`` 64-byte bursts, so an
  uncapped trace holds the model's DRAM bytes rounded up to a burst per stream.
- **Addresses.** Every graph tensor gets one region (its elements × ``word_bytes``), allocated
  in order of first use, each region starting on a DRAM row boundary (8 KiB for the default
  DDR4 rank); an activation written by one op is read back from the same region by the next.
  Operands without a graph tensor (the scores between the two GEMMs of an attention op) get
  a region of their own. A stream reads its region sequentially, wrapping to the start when
  it re-streams. Regions past the device capacity wrap around it (addresses stay valid).
- **Time.** Items run back to back, each for the ``cycles`` (compute + stalls) the model gives
  it; accelerator cycles become DRAM cycles through the two clocks (``clock_mhz`` and the
  device's tCK). A stream's bursts are spread evenly over its item's time (double buffering
  overlaps transfers with compute), and the streams of an item are merged by time, so the
  operands interleave; ties keep the order ifmap, filter, partial sums, ofmap.
- **Cap.** ``max_requests`` bounds the trace so simulation stays fast. ``cap="scale"`` (the
  default) keeps every item but shrinks each stream to its first ``f`` share of bursts
  (``f = max_requests / total``; largest-remainder rounding, so exactly ``max_requests``
  requests) and each item's time by the same ``f``: the request rate and access pattern of
  every layer are kept, the volume is not. ``cap="window"`` keeps a contiguous window of
  ``max_requests`` requests of the full trace, starting at ``window`` (0 = the first request,
  1 = the last window). ``max_requests=None`` keeps everything (up to :data:`HARD_LIMIT`).

Everything is deterministic: the same model, design, device and options give the same trace.

Named traces ``accel:<zoo model>`` (e.g. ``accel:resnet18``: the default accelerator design,
20,000 requests, ``cap="scale"``) are added to :data:`mlsysgym.simulators.dram_traces.TRACES`
when this module is imported, so :class:`~mlsysgym.simulators.dram.DramSimulator` and the DRAM
envs accept them wherever a trace name is accepted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.accelerator import (
    default_design,
    designs_to_arrays,
    layers_of,
    resolve,
    simulate_items,
)
from mlsysgym.simulators.accelerator_layers import KIND_GEMM, KIND_VECTOR, LayerSet
from mlsysgym.simulators.dram_timing import MT40A1G8_083E, DramDevice
from mlsysgym.simulators.dram_traces import TRACES, DramTrace, TraceError

__all__ = [
    "ACCEL_PREFIX",
    "DEFAULT_MAX_REQUESTS",
    "HARD_LIMIT",
    "AccelTraceError",
    "Stream",
    "accel_streams",
    "accel_trace",
    "register_accel_traces",
]

ACCEL_PREFIX = "accel:"
DEFAULT_MAX_REQUESTS = 20_000
HARD_LIMIT = 20_000_000
"""Most requests an uncapped trace may hold (about 350 MB of arrays)."""

CAPS = ("scale", "window")
_ROLE_ORDER = {"ifmap": 0, "filter": 1, "psum": 2, "input": 0, "ofmap": 3, "output": 3}


class AccelTraceError(TraceError):
    """An accelerator-derived trace cannot be built (bad cap, window, or too many requests)."""


@dataclass(frozen=True)
class Stream:
    """One sequential DRAM stream of a work item: ``bursts`` 64-B requests over a region."""

    item: int  # index of the work item (LayerSet row)
    role: str  # ifmap | filter | psum | ofmap (GEMM items), input | output (vector items)
    tensor: str  # graph tensor (or private scratch name) the region belongs to
    is_write: bool
    words: float  # words moved, as the accelerator model counts them
    bursts: int  # ceil(words * word_bytes / burst_bytes)
    base: int  # byte address of the region
    region_bursts: int  # region size in bursts (the stream wraps to its start)


@dataclass(frozen=True)
class _Plan:
    """Every stream of a workload for one design, with item timing in DRAM cycles."""

    streams: list[Stream]
    item_start: np.ndarray  # DRAM cycles (float), one per item
    item_dur: np.ndarray  # DRAM cycles (float), one per item
    bytes_read: float
    bytes_written: float
    footprint: int  # bytes allocated


# ----------------------------------------------------------------------------- traffic split

def _operand_split(d: Any, ls: LayerSet) -> dict[str, np.ndarray]:
    """Per-item DRAM words of each operand, from the accelerator model itself.

    The model's reads are ``ifmap·a + filter·b + psum`` where the reuse factors ``a``, ``b`` and
    the spill term do not depend on the operand sizes, so re-running it with the filter (then
    the ifmap) sized zero isolates each operand's share; partial-sum read-backs are the writes
    beyond one ofmap.
    """
    full = simulate_items(d, ls)
    zero = np.zeros_like(ls.filter_words)
    no_f = simulate_items(d, dataclasses.replace(ls, filter_words=zero))
    reads, writes = full["dram_reads"][0], full["dram_writes"][0]
    gemm = ls.kind == KIND_GEMM
    psum = np.where(gemm, np.maximum(writes - ls.ofmap_words, 0.0), 0.0)
    ifm = np.where(gemm, np.maximum(no_f["dram_reads"][0] - psum, 0.0), 0.0)
    flt = np.where(gemm, np.maximum(reads - ifm - psum, 0.0), 0.0)
    return {"reads": reads, "writes": writes, "ifmap": ifm, "filter": flt, "psum": psum,
            "cycles": full["cycles"][0]}


def _tensor_words(graph: Graph | None, name: str) -> int:
    if graph is None or not name:
        return 0
    t = graph.tensors.get(name)
    if t is None or t.shape is None:
        return 0
    return int(t.numel)


def _item_operands(graph: Graph | None, ls: LayerSet, i: int, j: int, gemm_k: int
                   ) -> list[tuple[str, str, bool, float]]:
    """(role, tensor, is_write, region words) of the streams of item ``i`` (the ``j``-th item
    of its op, the ``gemm_k``-th GEMM item of its op); word counts come later."""
    op = graph.ops[int(ls.op_index[i])] if graph is not None else None
    opname = ls.op_names[int(ls.op_index[i])]
    ins = [t for t in op.inputs if t] if op is not None else []
    outs = [t for t in op.outputs if t] if op is not None else []
    n_items = int(np.sum(ls.op_index == ls.op_index[i]))
    scratch = f"{opname}#{j}"
    if ls.kind[i] == KIND_GEMM:
        ifm = ins[0] if (j == 0 and ins) else f"{opname}#{j - 1}.ofmap"
        flt = ins[gemm_k + 1] if len(ins) > gemm_k + 1 else f"{scratch}.filter"
        ofm = outs[0] if (j == n_items - 1 and outs) else f"{scratch}.ofmap"
        return [("ifmap", ifm, False, ls.ifmap_words[i]), ("filter", flt, False, ls.filter_words[i]),
                ("psum", ofm, False, ls.ofmap_words[i]), ("ofmap", ofm, True, ls.ofmap_words[i])]
    out = [("input", t, False, float(_tensor_words(graph, t))) for t in ins if _tensor_words(graph, t)]
    out += [("output", t, True, float(_tensor_words(graph, t))) for t in outs if _tensor_words(graph, t)]
    if graph is None or not out:  # a LayerSet without its graph: one stream each way
        out = [("input", f"{scratch}.in", False, ls.vec_in_words[i]),
               ("output", f"{scratch}.out", True, ls.vec_out_words[i])]
    return out


def _plan(workload: Any, design: Mapping[str, Any] | None, device: DramDevice) -> _Plan:
    """Streams, addresses and item timing of a workload for one accelerator design."""
    w = resolve(workload)
    graph = w if isinstance(w, Graph) else None
    ls = layers_of(w)
    full_design = {**default_design(), **dict(design or {})}
    d = designs_to_arrays([full_design])
    wb = float(d.word_bytes[0])
    bb = device.burst_bytes
    row_bytes = device.org.bursts_per_row(device.timing.BL) * bb
    split = _operand_split(d, ls)

    regions: dict[str, tuple[int, int]] = {}  # tensor -> (base, bursts)
    top = 0
    streams: list[Stream] = []
    for i in range(len(ls)):
        if ls.kind[i] not in (KIND_GEMM, KIND_VECTOR):
            continue
        first = int(np.flatnonzero(ls.op_index == ls.op_index[i])[0])
        j = i - first
        gemm_k = int(np.sum(ls.kind[first:i] == KIND_GEMM))
        ops = _item_operands(graph, ls, i, j, gemm_k)
        if ls.kind[i] == KIND_GEMM:
            words = {"ifmap": split["ifmap"][i], "filter": split["filter"][i],
                     "psum": split["psum"][i], "ofmap": split["writes"][i]}
            amounts = [words[role] for role, *_ in ops]
        else:
            # the model reads vec_in_words and writes vec_out_words; share them by tensor size
            amounts = []
            for role, _t, is_w, size in ops:
                tot = sum(s for r, _, wr, s in ops if wr == is_w)
                want = ls.vec_out_words[i] if is_w else ls.vec_in_words[i]
                amounts.append(want * size / tot if tot > 0 else 0.0)
        for (role, tensor, is_w, size), amount in zip(ops, amounts):
            if amount <= 0:
                continue
            if tensor not in regions:
                nb = max(math.ceil((size if size > 0 else amount) * wb / bb), 1)
                regions[tensor] = (top, nb)
                top += -(-nb * bb // row_bytes) * row_bytes
            base, nb = regions[tensor]
            streams.append(Stream(i, role, tensor, is_w, float(amount),
                                  math.ceil(amount * wb / bb - 1e-9), base, nb))

    dram_per_acc = (1000.0 / float(d.clock_mhz[0])) / device.timing.tck_ns
    dur = split["cycles"] * dram_per_acc
    start = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    return _Plan(streams, start, dur, float(split["reads"].sum() * wb),
                 float(split["writes"].sum() * wb), top)


# ----------------------------------------------------------------------------- materialize

def _emit(plan: _Plan, counts: np.ndarray, time_scale: float, device: DramDevice
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests of the streams (first ``counts[s]`` bursts of stream ``s``), time-ordered."""
    keep = np.flatnonzero(counts > 0)
    if keep.size == 0:
        return (np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64))
    cnt = counts[keep].astype(np.int64)
    total = int(cnt.sum())
    sid = np.repeat(keep, cnt)
    offs = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    j = np.arange(total, dtype=np.int64) - np.repeat(offs, cnt)  # burst index within the stream
    st = plan.streams
    item = np.array([s.item for s in st], dtype=np.int64)[sid]
    base = np.array([s.base for s in st], dtype=np.int64)[sid]
    region = np.array([s.region_bursts for s in st], dtype=np.int64)[sid]
    is_w = np.array([s.is_write for s in st], dtype=bool)[sid]
    role = np.array([_ROLE_ORDER[s.role] for s in st], dtype=np.int64)[sid]
    n_s = np.repeat(cnt, cnt).astype(np.float64)
    # items back to back, each shrunk by time_scale
    dur = plan.item_dur * time_scale
    start = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    t = np.floor(start[item] + j * dur[item] / n_s).astype(np.int64)
    cap = device.capacity_bytes
    addr = (base + (j % region) * device.burst_bytes) % cap
    order = np.lexsort((j, sid, role, item, t))  # by time, item, role, stream, burst
    return t[order], is_w[order], addr[order]


def _largest_remainder(sizes: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``sizes`` that sum to ``total`` (largest-remainder rounding)."""
    exact = sizes * (total / sizes.sum())
    base = np.floor(exact).astype(np.int64)
    short = total - int(base.sum())
    if short > 0:
        frac = exact - base
        base[np.argsort(-frac, kind="stable")[:short]] += 1
    return base


def _model_name(model: Any) -> str:
    if isinstance(model, Graph):
        return model.name
    if isinstance(model, LayerSet):
        return str(model.meta.get("graph", "layers"))
    return str(model)


def accel_streams(model: str | Graph | LayerSet, design: Mapping[str, Any] | None = None,
                  device: DramDevice = MT40A1G8_083E) -> list[Stream]:
    """The DRAM streams of every work item (what :func:`accel_trace` lays out in time)."""
    return _plan(model, design, device).streams


def accel_trace(model: str | Graph | LayerSet, design: Mapping[str, Any] | None = None, *,
                max_requests: int | None = DEFAULT_MAX_REQUESTS, cap: str = "scale",
                window: float = 0.0, device: DramDevice = MT40A1G8_083E,
                name: str | None = None) -> DramTrace:
    """The DRAM request trace of ``model`` (zoo name, ONNX path, ir.Graph or LayerSet) run on
    accelerator ``design`` (missing knobs take the accelerator's defaults); see the module
    docstring for the layout, timing and capping rules. ``meta`` records the totals."""
    if cap not in CAPS:
        raise AccelTraceError(f"cap={cap!r} is not one of {', '.join(CAPS)}")
    if not 0.0 <= window <= 1.0:
        raise AccelTraceError(f"window={window} must be within [0, 1] (the window's start as a share of the trace)")
    if max_requests is not None and max_requests < 1:
        raise AccelTraceError(f"max_requests={max_requests} must be >= 1 (or None for no cap)")
    plan = _plan(model, design, device)
    sizes = np.array([s.bursts for s in plan.streams], dtype=np.int64)
    total = int(sizes.sum())
    label = name or f"{ACCEL_PREFIX}{_model_name(model)}"
    if total == 0:
        raise AccelTraceError(f"{label}: the accelerator model moves no DRAM data for this workload")
    meta: dict[str, Any] = {"kind": "accel", "design": {**default_design(), **dict(design or {})},
                            "total_requests": total, "bytes_read": plan.bytes_read,
                            "bytes_written": plan.bytes_written, "footprint_bytes": plan.footprint,
                            "cap": cap, "max_requests": max_requests}
    if max_requests is None or total <= max_requests:
        if total > HARD_LIMIT:
            raise AccelTraceError(f"{label} has {total:,} requests (over {HARD_LIMIT:,}); pass max_requests")
        cyc, wr, addr = _emit(plan, sizes, 1.0, device)
        meta["scale"] = 1.0
    elif cap == "scale":
        counts = _largest_remainder(sizes.astype(np.float64), max_requests)
        f = max_requests / total
        cyc, wr, addr = _emit(plan, counts, f, device)
        meta["scale"] = f
    else:
        first = round(window * (total - max_requests))
        cyc, wr, addr = _window(plan, sizes, first, max_requests, device)
        meta.update(scale=1.0, window_first=first)
    return DramTrace(cyc, wr, addr, label, meta)


def _window(plan: _Plan, sizes: np.ndarray, first: int, n: int, device: DramDevice
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests ``first .. first + n`` of the full time-ordered trace, built from only the
    items that hold them (items are disjoint in time, so a request's rank is its item's
    offset plus its rank within the item)."""
    items = np.array([s.item for s in plan.streams], dtype=np.int64)
    per_item = np.bincount(items, weights=sizes, minlength=len(plan.item_dur)).astype(np.int64)
    # zero-duration items keep their requests at one cycle; order by start time is item order
    cum = np.concatenate([[0], np.cumsum(per_item)])
    lo = int(np.searchsorted(cum, first, side="right")) - 1
    hi = int(np.searchsorted(cum, first + n, side="left"))
    sel = (items >= lo) & (items < hi)
    cyc, wr, addr = _emit(plan, np.where(sel, sizes, 0), 1.0, device)
    k = first - int(cum[lo])
    return cyc[k:k + n], wr[k:k + n], addr[k:k + n]


# ----------------------------------------------------------------------------- named traces

@lru_cache(maxsize=16)
def _named(model: str) -> DramTrace:
    return accel_trace(model, name=f"{ACCEL_PREFIX}{model}")


def register_accel_traces() -> list[str]:
    """Add ``accel:<model>`` for every zoo model to the built-in trace names (idempotent);
    returns the names."""
    from mlsysgym.ir import zoo

    names = []
    for model in zoo.names():
        key = f"{ACCEL_PREFIX}{model}"
        TRACES.setdefault(key, lambda m=model: _named(m))
        names.append(key)
    return names


register_accel_traces()
