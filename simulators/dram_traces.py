"""DRAM request traces: seeded generators, a text format with reader and writer, built-in names.

Text format, one request a line (blank lines and lines starting with ``#`` are ignored)::

    <cycle>: <read|write> <hex address>
    0: read 0x1f40
    4: write 0x2000

Cycles are DRAM clock cycles (tCK of the simulated device, 0.833 ns for DDR4-2400) and must not
decrease; addresses are byte addresses (``0x`` optional), one 64-byte burst per request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.simulators.dram_timing import (
    DEFAULT_MAPPING,
    MT40A1G8_083E,
    AddressMapping,
    DramDevice,
)

__all__ = [
    "MAX_TRACE_REQUESTS",
    "TRACES",
    "DramTrace",
    "TraceError",
    "TraceFormatError",
    "locality_trace",
    "mixed_trace",
    "named_trace",
    "random_trace",
    "read_trace",
    "resolve_trace",
    "stream_trace",
    "strided_trace",
    "write_trace",
]


class TraceError(MlsysgymError):
    """A trace cannot be used: unknown name, missing file, address beyond capacity, unsorted."""


class TraceFormatError(TraceError):
    """A line of a trace file is not ``<cycle>: <read|write> <hex address>``."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}; expected '<cycle>: <read|write> <hex address>'")
        self.path = path
        self.line = line


@dataclass(frozen=True)
class DramTrace:
    """Requests in arrival order: cycle, direction and byte address of each."""

    cycles: np.ndarray  # int64, non-decreasing
    is_write: np.ndarray  # bool
    addresses: np.ndarray  # int64 byte addresses
    name: str = "trace"
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        c = np.asarray(self.cycles, dtype=np.int64)
        w = np.asarray(self.is_write, dtype=bool)
        a = np.asarray(self.addresses, dtype=np.int64)
        if not (c.shape == w.shape == a.shape) or c.ndim != 1:
            raise TraceError(f"trace {self.name!r}: cycles, is_write and addresses must be 1-D arrays of one length")
        object.__setattr__(self, "cycles", c)
        object.__setattr__(self, "is_write", w)
        object.__setattr__(self, "addresses", a)

    def __len__(self) -> int:
        return int(self.cycles.shape[0])

    @property
    def write_fraction(self) -> float:
        """Share of requests that are writes."""
        return float(self.is_write.mean()) if len(self) else 0.0


# ----------------------------------------------------------------------------- generators

MAX_TRACE_REQUESTS = 10_000_000
"""The most requests a generated trace may have (about 1 GB of memory while it is written)."""


def _generator(n: int, seed: int) -> np.random.Generator:
    """The random generator of a trace of ``n`` requests: TraceError unless ``n`` is in
    [1, MAX_TRACE_REQUESTS] and ``seed`` is a non-negative integer."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_TRACE_REQUESTS:
        raise TraceError(f"a trace needs 1 to {MAX_TRACE_REQUESTS:,} requests, got {n!r}; "
                         f"split a longer run into several traces")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise TraceError(f"seed={seed!r} must be a non-negative integer")
    return np.random.default_rng(seed)


def _arrivals(n: int, interval_cycles: float, poisson: bool, rng: np.random.Generator) -> np.ndarray:
    """Arrival cycles with a mean spacing of ``interval_cycles`` (fixed or exponential gaps)."""
    if not (math.isfinite(interval_cycles) and interval_cycles >= 0):
        raise TraceError(f"interval_cycles={interval_cycles} must be a finite number >= 0")
    if poisson and interval_cycles > 0:
        t = np.cumsum(rng.exponential(interval_cycles, n))
        return np.floor(t - t[0]).astype(np.int64)
    return np.floor(np.arange(n) * float(interval_cycles)).astype(np.int64)


def _interval(interval_cycles: float | None, rate_per_ns: float | None, device: DramDevice) -> float:
    """Mean inter-arrival cycles from either an interval or a rate in requests per ns."""
    if rate_per_ns is not None:
        if not (math.isfinite(rate_per_ns) and rate_per_ns > 0):
            raise TraceError(f"rate_per_ns={rate_per_ns} must be a finite number > 0")
        return 1.0 / (rate_per_ns * device.timing.tck_ns)
    return 4.0 if interval_cycles is None else float(interval_cycles)


def _writes(n: int, write_fraction: float, rng: np.random.Generator) -> np.ndarray:
    if not 0.0 <= write_fraction <= 1.0:
        raise TraceError(f"write_fraction={write_fraction} must be within [0, 1]")
    return rng.random(n) < write_fraction


def stream_trace(n: int, *, start: int = 0, write_fraction: float = 0.0, interval_cycles: float | None = None,
                 rate_per_ns: float | None = None, poisson: bool = False, seed: int = 0,
                 device: DramDevice = MT40A1G8_083E, name: str = "stream") -> DramTrace:
    """Consecutive bursts from ``start`` (wrapping at the capacity)."""
    return strided_trace(n, stride=device.burst_bytes, start=start, write_fraction=write_fraction,
                         interval_cycles=interval_cycles, rate_per_ns=rate_per_ns, poisson=poisson,
                         seed=seed, device=device, name=name)


def strided_trace(n: int, *, stride: int = 4096, start: int = 0, write_fraction: float = 0.0,
                  interval_cycles: float | None = None, rate_per_ns: float | None = None,
                  poisson: bool = False, seed: int = 0, device: DramDevice = MT40A1G8_083E,
                  name: str = "strided") -> DramTrace:
    """Addresses ``start + i * stride`` (bytes, wrapping at the capacity, burst aligned)."""
    rng = _generator(n, seed)
    if int(stride) < 1:
        raise TraceError(f"stride={stride} must be a positive number of bytes")
    cap = device.capacity_bytes
    bb = device.burst_bytes
    addr = (start + np.arange(n, dtype=np.int64) * int(stride)) % cap // bb * bb
    cyc = _arrivals(n, _interval(interval_cycles, rate_per_ns, device), poisson, rng)
    return DramTrace(cyc, _writes(n, write_fraction, rng), addr, name,
                     {"kind": "strided", "stride": stride, "seed": seed})


def random_trace(n: int, *, footprint: int | None = None, write_fraction: float = 0.0,
                 interval_cycles: float | None = None, rate_per_ns: float | None = None,
                 poisson: bool = False, seed: int = 0, device: DramDevice = MT40A1G8_083E,
                 name: str = "random") -> DramTrace:
    """Uniformly random bursts within ``footprint`` bytes (default: the whole device)."""
    rng = _generator(n, seed)
    bb = device.burst_bytes
    span = min(footprint or device.capacity_bytes, device.capacity_bytes) // bb
    addr = rng.integers(0, max(span, 1), n, dtype=np.int64) * bb
    cyc = _arrivals(n, _interval(interval_cycles, rate_per_ns, device), poisson, rng)
    return DramTrace(cyc, _writes(n, write_fraction, rng), addr, name, {"kind": "random", "seed": seed})


def locality_trace(n: int, *, row_hit: float = 0.5, write_fraction: float = 0.0,
                   interval_cycles: float | None = None, rate_per_ns: float | None = None,
                   poisson: bool = False, seed: int = 0, device: DramDevice = MT40A1G8_083E,
                   mapping: AddressMapping = DEFAULT_MAPPING, name: str = "locality") -> DramTrace:
    """Controllable row locality: with probability ``row_hit`` a request goes to the row (and bank)
    of the previous one, at its next column; otherwise to a random bank, row and column.
    """
    if not 0.0 <= row_hit <= 1.0:
        raise TraceError(f"row_hit={row_hit} must be within [0, 1]")
    rng = _generator(n, seed)
    o = device.org
    bpr = o.bursts_per_row(device.timing.BL)
    fresh = rng.random(n) >= row_hit
    fresh[0] = True
    k = np.cumsum(fresh) - 1  # index of the run each request belongs to
    runs = int(k[-1]) + 1
    run_start = np.flatnonzero(fresh)
    pos = np.arange(n) - run_start[k]  # position within the run
    fields = {
        "channel": rng.integers(0, o.channels, runs)[k],
        "rank": rng.integers(0, o.ranks, runs)[k],
        "bankgroup": rng.integers(0, o.bank_groups, runs)[k],
        "bank": rng.integers(0, o.banks_per_group, runs)[k],
        "row": rng.integers(0, o.rows, runs)[k],
        "column": (rng.integers(0, bpr, runs)[k] + pos) % bpr,
    }
    addr = mapping.encode(fields, o, device.timing.BL)
    cyc = _arrivals(n, _interval(interval_cycles, rate_per_ns, device), poisson, rng)
    return DramTrace(cyc, _writes(n, write_fraction, rng), addr, name,
                     {"kind": "locality", "row_hit": row_hit, "seed": seed})


def mixed_trace(n: int, *, stream_share: float = 0.5, row_hit: float = 0.5, write_fraction: float = 0.3,
                interval_cycles: float | None = None, rate_per_ns: float | None = None,
                poisson: bool = True, seed: int = 0, device: DramDevice = MT40A1G8_083E,
                mapping: AddressMapping = DEFAULT_MAPPING, name: str = "mixed") -> DramTrace:
    """Interleaved streaming and row-local random traffic (``stream_share`` of it streaming),
    reads and writes mixed at ``write_fraction``: a cloud-server-like access pattern.
    """
    if not 0.0 <= stream_share <= 1.0:
        raise TraceError(f"stream_share={stream_share} must be within [0, 1]")
    rng = _generator(n, seed)
    is_stream = rng.random(n) < stream_share
    ns = int(is_stream.sum())
    addr = np.empty(n, dtype=np.int64)
    start = int(rng.integers(0, device.capacity_bytes // 2)) // device.burst_bytes * device.burst_bytes
    if ns:
        addr[is_stream] = stream_trace(ns, start=start, device=device).addresses
    if n - ns:
        addr[~is_stream] = locality_trace(n - ns, row_hit=row_hit, seed=seed + 1, device=device,
                                          mapping=mapping).addresses
    cyc = _arrivals(n, _interval(interval_cycles, rate_per_ns, device), poisson, rng)
    return DramTrace(cyc, _writes(n, write_fraction, rng), addr, name,
                     {"kind": "mixed", "stream_share": stream_share, "row_hit": row_hit, "seed": seed})


# ----------------------------------------------------------------------------- built-in traces

TRACES: dict[str, Callable[[], DramTrace]] = {
    "stream": lambda: stream_trace(20_000, interval_cycles=5, name="stream"),
    "stream-write": lambda: stream_trace(20_000, interval_cycles=5, write_fraction=1.0, name="stream-write"),
    "random": lambda: random_trace(20_000, interval_cycles=10, seed=1, name="random"),
    "strided": lambda: strided_trace(20_000, stride=8192, interval_cycles=8, seed=2, name="strided"),
    "cloud-1": lambda: mixed_trace(20_000, stream_share=0.6, row_hit=0.6, write_fraction=0.3,
                                   interval_cycles=7, seed=3, name="cloud-1"),
    "cloud-2": lambda: mixed_trace(20_000, stream_share=0.3, row_hit=0.3, write_fraction=0.5,
                                   interval_cycles=9, seed=4, name="cloud-2"),
    "sparse-local": lambda: locality_trace(20_000, row_hit=0.6, write_fraction=0.3, interval_cycles=160,
                                           poisson=True, seed=5, name="sparse-local"),
}
"""Built-in traces by name (20,000 requests each, fixed seeds): ArchGym DRAMGym's stream, random,
cloud-1 and cloud-2 workloads, plus stream-write and strided, and sparse-local (light traffic,
one request per ~133 ns, 60 % row locality, 30 % writes: the page and refresh policies trade
latency against energy on it, see BENCHMARKS.md "Multi-objective search")."""


def named_trace(name: str) -> DramTrace:
    """A built-in trace by name."""
    if name not in TRACES:
        raise TraceError(f"unknown trace {name!r}; built-in traces are {', '.join(TRACES)} (or give a file path)")
    return TRACES[name]()


def resolve_trace(workload: Any, capacity_bytes: int | None = None) -> DramTrace:
    """A DramTrace from a trace, a built-in name or a trace file path."""
    if isinstance(workload, DramTrace):
        return workload
    if isinstance(workload, (str, os.PathLike)):
        s = os.fspath(workload)
        if s.startswith("accel:"):  # accelerator-derived traces register themselves on import
            import mlsysgym.simulators.accel_traces  # noqa: F401
        if s in TRACES:
            return named_trace(s)
        if os.path.exists(s):
            return read_trace(s, capacity_bytes=capacity_bytes)
        raise TraceError(f"no built-in trace or file {s!r}; built-in traces are {', '.join(TRACES)}")
    raise TraceError(f"cannot use a {type(workload).__name__} as a DRAM trace; give a name, a path or a DramTrace")


# ----------------------------------------------------------------------------- text format

def write_trace(trace: DramTrace, path: str | os.PathLike) -> Path:
    """Write a trace in the text format (with a one-line ``#`` header); returns the path."""
    p = Path(path)
    ops = np.where(trace.is_write, "write", "read").tolist()
    body = "".join(f"{c}: {o} {a:#x}\n" for c, o, a in zip(trace.cycles.tolist(), ops, trace.addresses.tolist()))
    p.write_text(f"# mlsysgym DRAM trace {trace.name}: {len(trace)} requests, <cycle>: <read|write> <hex address>\n" + body)
    return p


_PARSE_ERRORS = (
    "",
    "expected a decimal cycle number followed by ':'",
    "expected 'read' or 'write' after the cycle",
    "expected a hex address after the command",
    "unexpected text after the address",
    "number too large",
)


@numba.njit(cache=True)
def _skip_blanks(buf: np.ndarray, p: int, end: int) -> int:
    """Index of the first byte at or after ``p`` (before ``end``) that is not a space or tab."""
    while p < end and (buf[p] == 32 or buf[p] == 9):
        p += 1
    return p


@numba.njit(cache=True)
def _scan_cycle(buf: np.ndarray, p: int, end: int, limit: int):
    """A decimal cycle and its ':' at ``p``; returns (cycle, index after the ':', error code)."""
    v = np.int64(0)
    d0 = p
    while p < end and 48 <= buf[p] <= 57:
        v = v * 10 + (buf[p] - 48)
        if v > limit:
            return v, p, 5
        p += 1
    if p == d0 or p >= end or buf[p] != 58:
        return v, p, 1
    return v, p + 1, 0


@numba.njit(cache=True)
def _scan_command(buf: np.ndarray, p: int, end: int):
    """'read' or 'write' and the blanks after it at ``p``; returns (is write, next index,
    error code)."""
    if end - p >= 4 and buf[p] == 114 and buf[p + 1] == 101 and buf[p + 2] == 97 and buf[p + 3] == 100:
        w = False
        p += 4
    elif (end - p >= 5 and buf[p] == 119 and buf[p + 1] == 114 and buf[p + 2] == 105
          and buf[p + 3] == 116 and buf[p + 4] == 101):
        w = True
        p += 5
    else:
        return False, p, 2
    if p >= end or not (buf[p] == 32 or buf[p] == 9):
        return w, p, 2 if p < end else 3
    return w, _skip_blanks(buf, p, end), 0


@numba.njit(cache=True)
def _hex_digit(c: int) -> int:
    """The value of an ASCII hex digit, -1 for any other byte."""
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@numba.njit(cache=True)
def _scan_address(buf: np.ndarray, p: int, end: int, limit: int):
    """A hex address (``0x`` optional) at ``p`` that ends the line; returns (address, error
    code)."""
    if end - p >= 2 and buf[p] == 48 and (buf[p + 1] == 120 or buf[p + 1] == 88):
        p += 2
    a = np.int64(0)
    d0 = p
    while p < end:
        h = _hex_digit(buf[p])
        if h < 0:
            break
        if a >= limit:
            return a, 5
        a = a * 16 + h
        p += 1
    if p == d0:
        return a, 3
    if _skip_blanks(buf, p, end) != end:
        return a, 4
    return a, 0


@numba.njit(cache=True)
def _scan_request(buf: np.ndarray, p: int, end: int, limit: int):
    """One request line from ``p`` (its first non-blank byte) to ``end``; returns (cycle,
    is write, address, error code)."""
    v, p, err = _scan_cycle(buf, p, end, limit)
    if err:
        return v, False, np.int64(0), err
    w, p, err = _scan_command(buf, _skip_blanks(buf, p, end), end)
    if err:
        return v, w, np.int64(0), err
    a, err = _scan_address(buf, p, end, limit)
    return v, w, a, err


@numba.njit(cache=True)
def _parse(buf: np.ndarray):
    """Scan the bytes of a trace file; returns (cycles, is_write, addresses, error line, error code)."""
    N = buf.shape[0]
    cap = 1
    for i in range(N):
        if buf[i] == 10:
            cap += 1
    cyc = np.empty(cap, np.int64)
    wr = np.empty(cap, np.bool_)
    addr = np.empty(cap, np.int64)
    k = 0
    line = 0
    i = 0
    limit = np.int64(1) << np.int64(59)
    while i < N:
        line += 1
        j = i
        while j < N and buf[j] != 10:
            j += 1
        end = j
        if end > i and buf[end - 1] == 13:
            end -= 1
        p = _skip_blanks(buf, i, end)
        i = j + 1
        if p == end or buf[p] == 35:  # blank or '#'
            continue
        v, w, a, err = _scan_request(buf, p, end, limit)
        if err:
            return cyc[:k], wr[:k], addr[:k], line, err
        cyc[k] = v
        wr[k] = w
        addr[k] = a
        k += 1
    return cyc[:k], wr[:k], addr[:k], 0, 0


def read_trace(path: str | os.PathLike, capacity_bytes: int | None = None, name: str | None = None) -> DramTrace:
    """Read a text trace; raises TraceFormatError (with the line number) on a malformed line and
    TraceError on a decreasing cycle or an address at or beyond ``capacity_bytes``.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise TraceError(f"cannot read trace file {str(p)!r}: {e.strerror or e}") from None
    cyc, wr, addr, bad_line, code = _parse(np.frombuffer(raw, dtype=np.uint8))
    if code:
        raise TraceFormatError(str(p), int(bad_line), _PARSE_ERRORS[code])
    if cyc.size == 0:
        raise TraceError(f"trace file {str(p)!r} holds no requests")
    line_of = None  # line numbers are only computed on error

    def _line(idx: int) -> int:
        nonlocal line_of
        if line_of is None:
            lines = raw.split(b"\n")
            line_of = [n + 1 for n, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith(b"#")]
        return line_of[idx]

    dec = np.flatnonzero(np.diff(cyc) < 0)
    if dec.size:
        i = int(dec[0]) + 1
        raise TraceError(f"{p}:{_line(i)}: cycle {int(cyc[i])} is before the previous request's {int(cyc[i - 1])}; "
                         "sort the trace by cycle")
    if capacity_bytes is not None:
        over = np.flatnonzero(addr >= capacity_bytes)
        if over.size:
            i = int(over[0])
            raise TraceError(f"{p}:{_line(i)}: address {int(addr[i]):#x} is beyond the device capacity "
                             f"{capacity_bytes:#x} bytes; use addresses below it or a larger device")
    return DramTrace(cyc, wr, addr, name or p.stem, {"kind": "file", "path": str(p)})
