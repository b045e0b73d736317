"""A cycle-level DDR4 memory-controller simulator with ArchGym DRAMGym's ten knobs.

One memory system (channels x ranks x bank groups x banks) is driven by a request trace. The
controller follows DRAMSys's structure (which ArchGym's DRAMGym wraps), rebuilt from its
documented semantics:

- **Arbiter** forwards the trace's requests in order, at most one per cycle. ``Simple`` adds no
  delay and no limit; ``Fifo`` and ``Reorder`` add one cycle and cap the transactions in flight
  (admitted, response not yet returned) at ``MaxActiveTransactions``; ``Reorder`` also returns
  responses in request order. A request that cannot be admitted stalls every later one
  (the trace player is blocking), and the wait counts in its latency.
- **SchedulerBuffer** holds admitted requests: ``Bankwise`` (``RequestBufferSize`` per bank),
  ``ReadWrite`` (that many reads plus that many writes) or ``Shared`` (that many in all).
- **Scheduler** picks each bank's next request: ``Fifo`` its oldest, ``FrFcfs`` its oldest row
  hit else its oldest, ``FrFcfsGrp`` like FrFcfs but preferring hits in the direction (read or
  write) of the channel's last column command, to group reads and writes.
- **Bank machines** turn the chosen request into ACT / PRE / RD / WR; a command multiplexer
  issues, one per cycle per channel, the command that can go earliest (ties: oldest request).
- **PagePolicy**: ``Open`` keeps rows open; ``Closed`` auto-precharges after every access;
  ``OpenAdaptive`` auto-precharges when the bank has no pending hit but a pending miss;
  ``ClosedAdaptive`` auto-precharges unless the bank has a pending hit.
- **RefreshPolicy**: ``AllBank`` (PREA then REF per rank every tREFI, blocking tRFC),
  ``PerBank`` (one bank at a time, round robin, every tREFI/banks, blocking tRFCpb) or
  ``NoRefresh``. Refreshes are postponed while the rank (bank) is busy, up to
  ``RefreshMaxPostponed``, then caught up back to back; while it is idle (no pending request
  for the rank, or for the target bank with PerBank), due refreshes are issued at once and up
  to ``RefreshMaxPulledin`` more ahead of time (an idle-time refresh yields to a request arriving
  in the same cycle). The number of refreshes is one per interval either way; pull-in moves
  them to idle moments, where they can still delay a request that arrives just after.
- **RespQueue**: ``Fifo`` returns responses as data completes, ``Reorder`` in request order.

Timing enforced: tRCD, tRP, tRAS, tRC, tRRD_S/L, tFAW, tCCD_S/L, tWTR_S/L, tRTP, tWR, CL/CWL,
burst length, read-to-write turnaround, rank-to-rank turnaround, one command per cycle,
tREFI/tRFC. The controller loop (``dram_kernel``) is event driven: it jumps from one command,
admission or refresh event to the next instead of ticking every cycle, and runs compiled with
numba.

**Controller settings** outside the ten knobs (``ControllerSettings``, fixed per simulator, not
searched): write draining between high/low watermarks, read forwarding from queued writes, an
active buffer that frees a request's queue entry at its ACT, and ready-first FR-FCFS. They are
off by default (DRAMSys's controller as the knobs describe it); together they bring it close
to Ramulator 2.0's generic controller (open page: median read-latency error 0.2 %; closed page
still differs, see ``benchmarks/results/ramulator.md``).

Metrics: latency is from a request's trace cycle to its response (end of its data burst, or
later with in-order responses), so it includes queueing and back-pressure; bandwidth is bytes
moved over the time to the last response; the row-hit rate is 1 - ACTs / requests.

Simplifications versus DRAMSys: every request is one burst (64 B; DDR4 has no per-bank
refresh, so PerBank uses an assumed tRFCpb); no power-down or self-refresh; PREA and REF take no
command-bus slot; no front-end/back-end pipeline delays beyond the arbiter's one cycle; no
write draining, forwarding or active buffer unless ``ControllerSettings`` asks for them;
refresh precharges its banks as one atomic step; the trace player is a single blocking initiator (so the two Reorder options both
mean in-order responses to it); arbitration delays are one cycle, not configurable.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numba
import numpy as np
from mlsysgym.core.errors import DesignError
from mlsysgym.core.evaluator import Design, EvaluationError, Evaluator, Metrics
from mlsysgym.core.params import Categorical, Integer, PowerOfTwo
from mlsysgym.core.space import DesignSpace
from mlsysgym.simulators.dram_kernel import K_BUF, K_BUFSIZE, controller
from mlsysgym.simulators.dram_power import CommandCounts, EnergyBreakdown, dram_energy
from mlsysgym.simulators.dram_timing import (
    DEFAULT_MAPPING,
    MT40A1G8_083E,
    AddressMapping,
    DramDevice,
)
from mlsysgym.simulators.dram_traces import TRACES, DramTrace, TraceError, resolve_trace

__all__ = [
    "DESIGN_SPACE",
    "AddressMapping",
    "ControllerSettings",
    "DramResult",
    "DramSimulator",
    "decode_addresses",
    "encode_addresses",
    "knob_codes",
    "simulate",
]


# ----------------------------------------------------------------------------- knobs

DESIGN_SPACE = DesignSpace([
    Categorical("PagePolicy", ("Open", "OpenAdaptive", "Closed", "ClosedAdaptive")),
    Categorical("Scheduler", ("Fifo", "FrFcfs", "FrFcfsGrp")),
    Categorical("SchedulerBuffer", ("Bankwise", "ReadWrite", "Shared")),
    PowerOfTwo("RequestBufferSize", 1, 128),
    Categorical("RespQueue", ("Fifo", "Reorder")),
    Categorical("RefreshPolicy", ("NoRefresh", "AllBank", "PerBank")),
    Integer("RefreshMaxPostponed", 1, 8),
    Integer("RefreshMaxPulledin", 1, 8),
    Categorical("Arbiter", ("Simple", "Fifo", "Reorder")),
    PowerOfTwo("MaxActiveTransactions", 1, 128),
], default={
    "PagePolicy": "Open", "Scheduler": "FrFcfs", "SchedulerBuffer": "Bankwise",
    "RequestBufferSize": 8, "RespQueue": "Fifo", "RefreshPolicy": "AllBank",
    "RefreshMaxPostponed": 1, "RefreshMaxPulledin": 1, "Arbiter": "Simple",
    "MaxActiveTransactions": 128,
})
"""ArchGym DRAMGym's ten controller knobs (names as in ArchGym / DRAMSys; categorical values in
the kernel's code order); ``DESIGN_SPACE.default`` is the design for knobs a design leaves out
and the DRAM env's reference."""

_CATEGORICAL = tuple(p.choices if isinstance(p, Categorical) else None for p in DESIGN_SPACE)


def knob_codes(design: Mapping[str, Any]) -> np.ndarray:
    """A design (missing knobs take the default) as the integer vector the kernel reads: the
    index of each categorical value, the value of each numeric knob; a DesignError if invalid."""
    full = DESIGN_SPACE.complete(design)
    return np.array([v if ch is None else ch.index(v)
                     for v, ch in zip(full.values(), _CATEGORICAL)], dtype=np.int64)


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class ControllerSettings:
    """Controller behaviour outside ArchGym's ten knobs (fixed for a simulator, not searched).

    The defaults are DRAMSys's FR-FCFS controller as the knobs describe it: reads and writes
    served by the scheduler alone, no write draining, no forwarding. With ``write_drain`` the
    controller works in read or write mode, as Ramulator 2.0's generic controller does: it serves
    only reads (and a request whose row it already opened) until more than
    ``write_high_watermark`` x the write capacity of the buffer waits (or no read does), then only
    writes until fewer than ``write_low_watermark`` x that capacity wait and a read does
    (Ramulator's defaults 0.8 and 0.2). The write capacity is ``RequestBufferSize`` for the
    ``ReadWrite`` and ``Shared`` buffers, times the banks for ``Bankwise``. With
    ``read_forwarding`` a read to an address a queued write will write is answered from that
    write at admission, without a DRAM access (Ramulator forwards from its write queue). With
    ``active_buffer`` = N > 0 a request leaves the read or write buffer when its row is
    activated, for an active buffer of N entries (while it has room), as in Ramulator 2.0 (N =
    32): its buffer entry takes the next request, and it stays schedulable in either mode; with 0
    (default) a request holds its entry until its column command. With ``ready_first`` the
    ``FrFcfs`` scheduler picks, per bank, the request whose next command can issue earliest
    (ties: the oldest), as Ramulator 2.0's FRFCFS does ("ready first, then first come"), instead
    of the oldest row hit (Rixner et al.'s FR-FCFS, DRAMSys's default): a conflict whose PRE is
    ready beats a hit that must still wait for the bus."""

    write_drain: bool = False
    write_high_watermark: float = 0.8
    write_low_watermark: float = 0.2
    read_forwarding: bool = False
    active_buffer: int = 0
    ready_first: bool = False

    def __post_init__(self) -> None:
        lo, hi = self.write_low_watermark, self.write_high_watermark
        if not 0.0 < lo <= hi <= 1.0:
            raise DesignError(f"write watermarks must satisfy 0 < low <= high <= 1 (with low 0 write mode never "
                              f"ends); got low={lo}, high={hi}")
        if not 0 <= self.active_buffer <= 1024:
            raise DesignError(f"active_buffer must be 0..1024 entries; got {self.active_buffer}")

    def vector(self, codes: np.ndarray, banks: int) -> np.ndarray:
        """The kernel's settings vector for knob ``codes`` on ``banks`` banks: drain on/off,
        write-mode thresholds in requests (enter when more than the first wait, leave when fewer
        than the second), forwarding on/off, active-buffer entries, ready-first on/off."""
        cap = int(codes[K_BUFSIZE]) * (banks if codes[K_BUF] == 0 else 1)
        return np.array([self.write_drain, math.floor(self.write_high_watermark * cap),
                         math.ceil(self.write_low_watermark * cap), self.read_forwarding, self.active_buffer,
                         self.ready_first],
                        dtype=np.int64)


DEFAULT_SETTINGS = ControllerSettings()


# ----------------------------------------------------------------------------- addresses

def decode_addresses(addresses: np.ndarray, device: DramDevice = MT40A1G8_083E,
                     mapping: AddressMapping = DEFAULT_MAPPING) -> dict[str, np.ndarray]:
    """Split byte addresses into channel, rank, bankgroup, bank, row and column arrays."""
    return mapping.decode(addresses, device.org, device.timing.BL)


def encode_addresses(fields: Mapping[str, np.ndarray], device: DramDevice = MT40A1G8_083E,
                     mapping: AddressMapping = DEFAULT_MAPPING) -> np.ndarray:
    """Burst-aligned byte addresses from field arrays; missing fields are 0."""
    return mapping.encode(fields, device.org, device.timing.BL)


# ----------------------------------------------------------------------------- kernel

def _timing_vector(device: DramDevice) -> np.ndarray:
    t = device.timing
    return np.array([t.CL, t.CWL, t.burst_cycles, t.tRCD, t.tRP, t.tRAS, t.tRC, t.tCCD_S, t.tCCD_L,
                     t.tRRD_S, t.tRRD_L, t.tFAW, t.tWR, t.tWTR_S, t.tWTR_L, t.tRTP, t.tREFI, t.tRFC,
                     t.tRFCpb, t.tRTRS, t.tRTW], dtype=np.int64)


@numba.njit(cache=True)
def _active_cycles(starts, ends, ranks, n_rank, end_t):
    """Sum over ranks of the length of the union of [start, end) intervals (clipped to end_t)."""
    total = 0
    order = np.argsort(starts, kind="mergesort")
    cur_s = np.full(n_rank, -1, np.int64)
    cur_e = np.full(n_rank, -1, np.int64)
    for k in order:
        r = ranks[k]
        s = min(starts[k], end_t)
        e = min(ends[k], end_t)
        if e <= s:
            continue
        if cur_e[r] < s:  # disjoint: close the previous run
            if cur_e[r] > cur_s[r]:
                total += cur_e[r] - cur_s[r]
            cur_s[r] = s
            cur_e[r] = e
        elif e > cur_e[r]:
            cur_e[r] = e
    for r in range(n_rank):
        if cur_e[r] > cur_s[r]:
            total += cur_e[r] - cur_s[r]
    return total


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True)
class DramResult:
    """Metrics of one simulated design, with per-request times and the command log (cycles)."""

    avg_latency_ns: float
    p99_latency_ns: float
    bandwidth_gbps: float
    row_hit_rate: float
    energy_nj: float
    power_mw: float
    total_time_ns: float
    activate_count: int
    refresh_count: int
    forwarded_count: int  # reads answered from the write queue (ControllerSettings.read_forwarding)
    energy: EnergyBreakdown
    latency_cycles: np.ndarray  # response cycle - trace cycle, per request
    act_cycles: np.ndarray  # cycle of every ACT
    act_banks: np.ndarray  # global bank id of every ACT
    refresh_cycles: np.ndarray  # cycle of every REF (all-bank or per-bank)

    def metrics(self) -> dict[str, float]:
        """The scalar metrics (units in their names)."""
        return {k: float(getattr(self, k)) for k in METRIC_NAMES}


METRIC_NAMES: tuple[str, ...] = (
    "avg_latency_ns", "p99_latency_ns", "bandwidth_gbps", "row_hit_rate", "energy_nj", "power_mw",
    "total_time_ns", "activate_count", "refresh_count",
)


@dataclass(frozen=True)
class PreparedTrace:
    """A trace decoded for one device and mapping: what the kernel reads."""

    arrival: np.ndarray  # cycles, starting at 0
    is_write: np.ndarray  # uint8
    bank: np.ndarray  # global bank id
    row: np.ndarray
    column: np.ndarray


def prepare_trace(trace: DramTrace, device: DramDevice = MT40A1G8_083E,
                  mapping: AddressMapping = DEFAULT_MAPPING) -> PreparedTrace:
    """Check a trace against the device (capacity, order) and decode its addresses."""
    if len(trace) == 0:
        raise TraceError(f"trace {trace.name!r} is empty")
    cap = device.capacity_bytes
    addr = np.asarray(trace.addresses, dtype=np.int64)
    bad = np.flatnonzero((addr < 0) | (addr >= cap))
    if bad.size:
        i = int(bad[0])
        raise TraceError(f"trace {trace.name!r} request {i}: address {int(addr[i]):#x} is beyond the "
                         f"device capacity {cap:#x} ({cap >> 30} GiB); use a smaller address or a larger device")
    cyc = np.asarray(trace.cycles, dtype=np.int64)
    if cyc.size > 1 and np.any(np.diff(cyc) < 0):
        i = int(np.flatnonzero(np.diff(cyc) < 0)[0]) + 1
        raise TraceError(f"trace {trace.name!r} request {i}: cycle {int(cyc[i])} is before the previous one; sort the trace")
    f = decode_addresses(addr, device, mapping)
    o = device.org
    gbank = ((f["channel"] * o.ranks + f["rank"]) * o.bank_groups + f["bankgroup"]) * o.banks_per_group + f["bank"]
    return PreparedTrace(arrival=cyc - cyc[0], is_write=np.asarray(trace.is_write, dtype=np.uint8),
                         bank=gbank.astype(np.int64), row=f["row"].astype(np.int64),
                         column=f["column"].astype(np.int64))


def simulate(trace: DramTrace | PreparedTrace, design: Mapping[str, Any] | np.ndarray | None = None,
             device: DramDevice = MT40A1G8_083E, mapping: AddressMapping = DEFAULT_MAPPING,
             settings: ControllerSettings = DEFAULT_SETTINGS) -> DramResult:
    """Simulate one controller design (a dict, missing knobs default, or its ``knob_codes``) on
    one trace, with the controller ``settings`` outside the design space."""
    codes = design if isinstance(design, np.ndarray) else knob_codes(design or {})
    p = trace if isinstance(trace, PreparedTrace) else prepare_trace(trace, device, mapping)
    o = device.org
    geo = np.array([o.channels, o.ranks, o.bank_groups, o.banks_per_group], dtype=np.int64)
    _adm, ret, counts, act_t, act_c, act_b, ref_t, ref_d, ref_r = controller(
        p.arrival, p.is_write, p.bank, p.row, p.column, geo, _timing_vector(device), codes,
        settings.vector(codes, o.total_banks))
    if ret.size and ret.min() < 0:
        raise EvaluationError(f"DRAM controller stalled with {int((ret < 0).sum())} requests unserved (knob codes {codes.tolist()})")
    n_act, n_pre, n_rd, n_wr, n_ref, n_refpb, end_t, n_fwd = (int(x) for x in counts)
    end_t = max(end_t, 1)
    bpr = o.banks_per_rank
    starts = np.concatenate([act_t, ref_t])
    ends = np.concatenate([np.where(act_c < 0, end_t, act_c), ref_t + ref_d])
    ranks = np.concatenate([act_b // bpr, ref_r])
    active = int(_active_cycles(starts, ends, ranks, o.channels * o.ranks, end_t)) if starts.size else 0
    energy = dram_energy(CommandCounts(n_act, n_pre, n_rd, n_wr, n_ref, n_refpb, end_t, active), device)
    lat = ret - p.arrival
    tck = device.timing.tck_ns
    n = lat.size
    total_ns = end_t * tck
    return DramResult(
        avg_latency_ns=float(lat.mean() * tck),
        p99_latency_ns=float(np.percentile(lat, 99) * tck),
        bandwidth_gbps=n * device.burst_bytes / total_ns,
        row_hit_rate=max(0.0, 1.0 - n_act / n),
        energy_nj=energy.total_nj,
        power_mw=energy.power_mw,
        total_time_ns=total_ns,
        activate_count=n_act,
        refresh_count=n_ref + n_refpb,
        forwarded_count=n_fwd,
        energy=energy,
        latency_cycles=lat,
        act_cycles=act_t,
        act_banks=act_b,
        refresh_cycles=ref_t,
    )


# ----------------------------------------------------------------------------- evaluator

class DramSimulator(Evaluator):
    """Evaluator: DRAM controller designs (ArchGym DRAMGym knobs) x a trace -> latency, bandwidth, energy.

    ``workload`` is a built-in trace name (see ``dram_traces.TRACES``), a trace file path, or a
    ``DramTrace``. Each design is one run of the compiled event-driven controller, with the
    ``settings`` outside the design space (non-default settings show in :attr:`version`, so
    logged rows say which controller made them).
    """

    name = "dram"
    version = "1"
    metric_names = METRIC_NAMES

    def __init__(self, device: DramDevice = MT40A1G8_083E, mapping: AddressMapping = DEFAULT_MAPPING,
                 cache_size: int = 100_000, seed: int = 0, settings: ControllerSettings = DEFAULT_SETTINGS) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        self.device = device
        self.mapping = mapping
        self.settings = settings
        if settings != DEFAULT_SETTINGS:
            s = settings
            self.version = ((f"{type(self).version}+drain{s.write_high_watermark:g}-{s.write_low_watermark:g}"
                             if s.write_drain else type(self).version) + ("+fwd" if s.read_forwarding else "")
                            + (f"+act{s.active_buffer}" if s.active_buffer else "")
                            + ("+readyfirst" if s.ready_first else ""))
        self._prepared: tuple[str, PreparedTrace] | None = None

    def workload_id(self, workload: Any) -> str:
        """Trace name for built-ins, content hash for files and in-memory traces."""
        if isinstance(workload, DramTrace):
            h = hashlib.sha256()
            for a in (workload.cycles, workload.is_write, workload.addresses):
                h.update(np.ascontiguousarray(a).tobytes())
            return f"trace:{workload.name}:{h.hexdigest()[:16]}"
        if isinstance(workload, str) and workload in TRACES:
            return workload
        if isinstance(workload, (str, os.PathLike)) and os.path.isfile(workload):
            with open(workload, "rb") as fh:
                return f"file:{hashlib.sha256(fh.read()).hexdigest()[:16]}"
        return str(workload)

    def prepare(self, workload: Any) -> PreparedTrace:
        """The decoded trace of a workload (the last one is kept)."""
        wid = self.workload_id(workload)
        if self._prepared is None or self._prepared[0] != wid:
            trace = resolve_trace(workload, capacity_bytes=self.device.capacity_bytes)
            self._prepared = (wid, prepare_trace(trace, self.device, self.mapping))
        return self._prepared[1]

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        knobs = [knob_codes(d) for d in designs]  # validate all before running any
        p = self.prepare(workload)
        rows = [simulate(p, k, self.device, self.mapping, self.settings).metrics() for k in knobs]
        return {m: np.array([r[m] for r in rows], dtype=np.float64) for m in self.metric_names}

    def timing_table(self) -> dict[str, float | int]:
        """The device's timing parameters in cycles (for reports and the CLI)."""
        return asdict(self.device.timing)
