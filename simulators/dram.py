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
tREFI/tRFC. The controller loop is event driven: it jumps from one command, admission or
refresh event to the next instead of ticking every cycle, and runs compiled with numba.

Metrics: latency is from a request's trace cycle to its response (end of its data burst, or
later with in-order responses), so it includes queueing and back-pressure; bandwidth is bytes
moved over the time to the last response; the row-hit rate is 1 - ACTs / requests.

Simplifications versus DRAMSys: every request is one burst (64 B; DDR4 has no per-bank
refresh, so PerBank uses an assumed tRFCpb); no power-down or self-refresh; PREA and REF take no
command-bus slot; no front-end/back-end pipeline delays beyond the arbiter's one cycle; no
separate write-data buffer or write draining watermarks; refresh precharges its banks as one
atomic step; the trace player is a single blocking initiator (so the two Reorder options both
mean in-order responses to it); arbitration delays are one cycle, not configurable.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numba
import numpy as np
from mlsysgym.core.evaluator import Design, EvaluationError, Evaluator, Metrics
from mlsysgym.core.params import Categorical, Integer, PowerOfTwo
from mlsysgym.core.space import DesignSpace
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

# Indices of the timing vector the kernel reads.
(T_CL, T_CWL, T_BURST, T_RCD, T_RP, T_RAS, T_RC, T_CCD_S, T_CCD_L, T_RRD_S, T_RRD_L, T_FAW, T_WR,
 T_WTR_S, T_WTR_L, T_RTP, T_REFI, T_RFC, T_RFCPB, T_RTRS, T_RTW) = range(21)
# Indices of the knob vector (the order of DESIGN_SPACE).
(K_PAGE, K_SCHED, K_BUF, K_BUFSIZE, K_RESP, K_REF, K_MAXPOST, K_MAXPULL, K_ARB, K_MAXACT) = range(10)

_NONE, _ACT, _PRE, _RD, _WR = 0, 1, 2, 3, 4
_INF = np.int64(1) << np.int64(62)
_NEVER = -(np.int64(1) << np.int64(40))


def _timing_vector(device: DramDevice) -> np.ndarray:
    t = device.timing
    return np.array([t.CL, t.CWL, t.burst_cycles, t.tRCD, t.tRP, t.tRAS, t.tRC, t.tCCD_S, t.tCCD_L,
                     t.tRRD_S, t.tRRD_L, t.tFAW, t.tWR, t.tWTR_S, t.tWTR_L, t.tRTP, t.tREFI, t.tRFC,
                     t.tRFCpb, t.tRTRS, t.tRTW], dtype=np.int64)


@numba.njit(cache=True)
def _grow(a: np.ndarray) -> np.ndarray:
    b = np.empty(a.shape[0] * 2, dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@numba.njit(cache=True)
def _heap_push(h: np.ndarray, n: int, v: int) -> int:
    i = n
    h[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if h[p] <= h[i]:
            break
        h[p], h[i] = h[i], h[p]
        i = p
    return n + 1


@numba.njit(cache=True)
def _heap_pop(h: np.ndarray, n: int) -> int:
    n -= 1
    h[0] = h[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and h[c + 1] < h[c]:
            c += 1
        if h[i] <= h[c]:
            break
        h[c], h[i] = h[i], h[c]
        i = c
    return n


@numba.njit(cache=True)
def _controller(arrival, is_wr, bank, row, geo, tm, kn):
    """Run one design over one trace; returns per-request times, counts and command logs.

    ``geo`` = (channels, ranks per channel, bank groups, banks per group); bank ids are global:
    ((channel * ranks + rank) * bank_groups + group) * banks_per_group + bank.
    """
    n = arrival.shape[0]
    n_ch, rpc, n_bg, bpg = geo[0], geo[1], geo[2], geo[3]
    n_rank = n_ch * rpc
    bpr = n_bg * bpg
    n_bank = n_rank * bpr
    CL, CWL, BUR = tm[T_CL], tm[T_CWL], tm[T_BURST]
    page, sched, bufk, bsize = kn[K_PAGE], kn[K_SCHED], kn[K_BUF], kn[K_BUFSIZE]
    refp, maxpost, maxpull = kn[K_REF], kn[K_MAXPOST], kn[K_MAXPULL]
    in_order = kn[K_RESP] == 1 or kn[K_ARB] == 2
    limit = kn[K_ARB] != 0
    maxact = kn[K_MAXACT]
    fwd = 0 if kn[K_ARB] == 0 else 1
    qcap = 2 * bsize if bufk == 1 else bsize

    # bank state
    open_row = np.full(n_bank, -1, np.int64)
    act_ready = np.zeros(n_bank, np.int64)
    col_ready = np.zeros(n_bank, np.int64)
    pre_ready = np.zeros(n_bank, np.int64)
    cur_act = np.full(n_bank, -1, np.int64)
    q = np.empty((n_bank, qcap), np.int64)
    qlen = np.zeros(n_bank, np.int64)
    cand_idx = np.zeros(n_bank, np.int64)
    cand_cmd = np.zeros(n_bank, np.int64)
    dirty = np.ones(n_bank, np.bool_)  # candidate request must be re-chosen
    stale = np.ones(n_bank, np.bool_)  # candidate time must be recomputed
    bank_t = np.full(n_bank, _INF, np.int64)
    bank_age = np.zeros(n_bank, np.int64)
    # rank and bank-group state
    act_hist = np.full((n_rank, 4), _NEVER, np.int64)
    act_ptr = np.zeros(n_rank, np.int64)
    last_act_bg = np.full(n_rank * n_bg, _NEVER, np.int64)
    last_col_bg = np.full(n_rank * n_bg, _NEVER, np.int64)
    wr_end_bg = np.full(n_rank * n_bg, _NEVER, np.int64)
    sh_act = np.zeros(n_rank * n_bg, np.int64)  # rank-level earliest ACT / RD / WR per bank group
    sh_rd = np.zeros(n_rank * n_bg, np.int64)
    sh_wr = np.zeros(n_rank * n_bg, np.int64)
    rank_stale = np.ones(n_rank, np.bool_)
    pending = np.zeros(n_rank, np.int64)
    owed = np.zeros(n_rank, np.int64)
    forced = np.zeros(n_rank, np.bool_)
    rr_bank = np.zeros(n_rank, np.int64)
    ref_interval = tm[T_REFI] if refp == 1 else max(tm[T_REFI] // bpr, 1)
    next_bound = np.empty(n_rank, np.int64)
    for r in range(n_rank):
        next_bound[r] = ref_interval + (r % rpc) * ref_interval // rpc
    # channel state
    cmd_free = np.zeros(n_ch, np.int64)
    bus_free = np.full(n_ch, _NEVER, np.int64)
    bus_rank = np.full(n_ch, -1, np.int64)
    last_rd = np.full(n_ch, _NEVER, np.int64)
    last_dir = np.zeros(n_ch, np.int64)
    # requests
    adm = np.full(n, -1, np.int64)
    done = np.full(n, -1, np.int64)
    ret = np.full(n, -1, np.int64)
    heap = np.empty(max(maxact, 1) + 2, np.int64)
    heap_n = 0
    active = 0
    ret_ptr = 0
    prev_ret = np.int64(0)
    # command logs (grown on demand)
    act_t = np.empty(n + 16, np.int64)
    act_c = np.empty(n + 16, np.int64)
    act_b = np.empty(n + 16, np.int64)
    n_act = 0
    ref_t = np.empty(64, np.int64)
    ref_d = np.empty(64, np.int64)
    ref_r = np.empty(64, np.int64)
    n_ref = 0
    n_pre = 0
    n_rd = 0
    n_wr = 0
    n_ref_all = 0
    n_ref_pb = 0

    buf_total = 0
    buf_rw = np.zeros(2, np.int64)
    nxt = 0
    last_adm = _NEVER
    issued = 0
    now = np.int64(0)

    while issued < n:
        # ---- refresh: an action now, or the next tREFI boundary
        t_ref = _INF
        ref_rank = -1
        ref_do = False
        ref_opt = False  # an idle-time refresh yields to a request arriving the same cycle
        if refp != 0:
            for r in range(n_rank):
                if refp == 1:
                    idle = pending[r] == 0
                else:
                    idle = qlen[r * bpr + rr_bank[r]] == 0
                do = False
                if owed[r] > 0:
                    if owed[r] > maxpost:
                        forced[r] = True
                    do = forced[r] or idle
                elif idle and -owed[r] < maxpull:
                    do = True
                te = now if do else next_bound[r]
                if te < t_ref:
                    t_ref = te
                    ref_rank = r
                    ref_do = do
                    ref_opt = do and not forced[r]
        # ---- admission of the next trace request
        t_adm = _INF
        if nxt < n:
            b = bank[nxt]
            if bufk == 0:
                room = qlen[b] < bsize
            elif bufk == 1:
                room = buf_rw[is_wr[nxt]] < bsize
            else:
                room = buf_total < bsize
            if room:
                t_adm = max(arrival[nxt] + fwd, last_adm + 1, now)
                if limit and active >= maxact:
                    t_adm = max(t_adm, heap[0]) if heap_n > 0 else _INF
        # ---- the earliest issuable bank command (cached per bank, recomputed when stale)
        for r in range(n_rank):
            if rank_stale[r]:
                ch = r // rpc
                faw = act_hist[r, act_ptr[r]] + tm[T_FAW]
                gap = tm[T_RTRS] if (bus_rank[ch] != r and bus_rank[ch] >= 0) else 0
                gb = r * n_bg
                for g in range(n_bg):
                    ta = faw
                    tc = _NEVER
                    tw = _NEVER
                    for g2 in range(n_bg):
                        same = g2 == g
                        ta = max(ta, last_act_bg[gb + g2] + (tm[T_RRD_L] if same else tm[T_RRD_S]))
                        tc = max(tc, last_col_bg[gb + g2] + (tm[T_CCD_L] if same else tm[T_CCD_S]))
                        tw = max(tw, wr_end_bg[gb + g2] + (tm[T_WTR_L] if same else tm[T_WTR_S]))
                    sh_act[gb + g] = ta
                    sh_rd[gb + g] = max(tc, tw, bus_free[ch] + gap - CL)
                    sh_wr[gb + g] = max(tc, last_rd[ch] + tm[T_RTW], bus_free[ch] + gap - CWL)
                rank_stale[r] = False
        t_cmd = _INF
        c_bank = -1
        c_age = _INF
        for b in range(n_bank):
            if stale[b]:
                stale[b] = False
                L = qlen[b]
                if L == 0:
                    bank_t[b] = _INF
                    continue
                rk = b // bpr
                ch = rk // rpc
                if dirty[b]:
                    o = open_row[b]
                    idx = 0
                    if sched != 0 and o >= 0:
                        hit = -1
                        if sched == 2:
                            d = last_dir[ch]
                            for j in range(L):
                                rq = q[b, j]
                                if row[rq] == o and is_wr[rq] == d:
                                    hit = j
                                    break
                        if hit < 0:
                            for j in range(L):
                                if row[q[b, j]] == o:
                                    hit = j
                                    break
                        if hit >= 0:
                            idx = hit
                    rq = q[b, idx]
                    cand_idx[b] = idx
                    bank_age[b] = rq
                    if o == row[rq]:
                        cand_cmd[b] = _WR if is_wr[rq] else _RD
                    elif o >= 0:
                        cand_cmd[b] = _PRE
                    else:
                        cand_cmd[b] = _ACT
                    dirty[b] = False
                cmd = cand_cmd[b]
                gi = rk * n_bg + (b // bpg) % n_bg
                t = max(now, cmd_free[ch])
                if cmd == _ACT:
                    t = max(t, act_ready[b], sh_act[gi])
                elif cmd == _PRE:
                    t = max(t, pre_ready[b])
                elif cmd == _RD:
                    t = max(t, col_ready[b], sh_rd[gi])
                else:
                    t = max(t, col_ready[b], sh_wr[gi])
                bank_t[b] = t
            t = bank_t[b]
            if t < t_cmd or (t == t_cmd and t < _INF and bank_age[b] < c_age):
                t_cmd = t
                c_bank = b
                c_age = bank_age[b]

        # ---- process the earliest event
        if t_ref == _INF and t_adm == _INF and t_cmd == _INF:
            break  # cannot happen with valid inputs; never spin forever
        if t_ref <= t_cmd and (t_ref < t_adm or (t_ref == t_adm and not ref_opt)):
            r = ref_rank
            now = t_ref
            if not ref_do:  # a tREFI boundary: one more refresh is due
                owed[r] += 1
                next_bound[r] += ref_interval
                continue
            ch = r // rpc
            if refp == 1:
                b0, b1 = r * bpr, (r + 1) * bpr
            else:
                b0 = r * bpr + rr_bank[r]
                b1 = b0 + 1
                rr_bank[r] = (rr_bank[r] + 1) % bpr
            tp = now
            any_open = False
            for b in range(b0, b1):
                if open_row[b] >= 0:
                    tp = max(tp, pre_ready[b])
                    any_open = True
            tr = now
            if any_open:
                tp = max(tp, cmd_free[ch])
                for b in range(b0, b1):
                    if open_row[b] >= 0:
                        act_c[cur_act[b]] = tp
                        open_row[b] = -1
                        act_ready[b] = max(act_ready[b], tp + tm[T_RP])
                        n_pre += 1
                tr = tp + tm[T_RP]
            for b in range(b0, b1):
                tr = max(tr, act_ready[b])
            dur = tm[T_RFC] if refp == 1 else tm[T_RFCPB]
            for b in range(b0, b1):
                act_ready[b] = tr + dur
                dirty[b] = True
                stale[b] = True
            if n_ref == ref_t.shape[0]:
                ref_t = _grow(ref_t)
                ref_d = _grow(ref_d)
                ref_r = _grow(ref_r)
            ref_t[n_ref] = tr
            ref_d[n_ref] = dur
            ref_r[n_ref] = r
            n_ref += 1
            if refp == 1:
                n_ref_all += 1
            else:
                n_ref_pb += 1
            owed[r] -= 1
            if owed[r] <= 0:
                forced[r] = False
            continue

        if t_adm <= t_cmd:
            now = t_adm
            i = nxt
            nxt += 1
            b = bank[i]
            q[b, qlen[b]] = i
            qlen[b] += 1
            dirty[b] = True
            stale[b] = True
            pending[b // bpr] += 1
            buf_total += 1
            buf_rw[is_wr[i]] += 1
            adm[i] = now
            last_adm = now
            if limit:
                if active < maxact:
                    active += 1
                else:
                    heap_n = _heap_pop(heap, heap_n)
            continue

        # ---- issue a command
        now = t_cmd
        b = c_bank
        rk = b // bpr
        ch = rk // rpc
        g = (b // bpg) % n_bg
        cmd = cand_cmd[b]
        cmd_free[ch] = now + 1
        dirty[b] = True
        for b2 in range(ch * rpc * bpr, (ch + 1) * rpc * bpr):
            stale[b2] = True
        for r2 in range(ch * rpc, (ch + 1) * rpc):
            rank_stale[r2] = True
        if cmd == _ACT:
            rq = q[b, cand_idx[b]]
            open_row[b] = row[rq]
            act_ready[b] = now + tm[T_RC]
            col_ready[b] = now + tm[T_RCD]
            pre_ready[b] = now + tm[T_RAS]
            act_hist[rk, act_ptr[rk]] = now
            act_ptr[rk] = (act_ptr[rk] + 1) & 3
            last_act_bg[rk * n_bg + g] = now
            if n_act == act_t.shape[0]:
                act_t = _grow(act_t)
                act_c = _grow(act_c)
                act_b = _grow(act_b)
            act_t[n_act] = now
            act_c[n_act] = -1
            act_b[n_act] = b
            cur_act[b] = n_act
            n_act += 1
            continue
        if cmd == _PRE:
            act_c[cur_act[b]] = now
            open_row[b] = -1
            act_ready[b] = max(act_ready[b], now + tm[T_RP])
            n_pre += 1
            continue
        # column command: serve the chosen request and take it out of the buffer
        j = cand_idx[b]
        rq = q[b, j]
        L = qlen[b]
        for k in range(j, L - 1):
            q[b, k] = q[b, k + 1]
        qlen[b] = L - 1
        pending[rk] -= 1
        buf_total -= 1
        buf_rw[is_wr[rq]] -= 1
        issued += 1
        gap = tm[T_RTRS] if (bus_rank[ch] != rk and bus_rank[ch] >= 0) else 0
        if cmd == _RD:
            end = now + CL + BUR
            pre_ready[b] = max(pre_ready[b], now + tm[T_RTP])
            last_rd[ch] = now
            n_rd += 1
            d = 0
        else:
            end = now + CWL + BUR
            pre_ready[b] = max(pre_ready[b], end + tm[T_WR])
            wr_end_bg[rk * n_bg + g] = end
            n_wr += 1
            d = 1
        bus_free[ch] = end
        bus_rank[ch] = rk
        last_col_bg[rk * n_bg + g] = now
        if sched == 2 and last_dir[ch] != d:
            last_dir[ch] = d
            for b2 in range(ch * rpc * bpr, (ch + 1) * rpc * bpr):
                dirty[b2] = True
        last_dir[ch] = d
        done[rq] = end
        # page policy: auto-precharge?
        ap = page == 2
        if page == 1 or page == 3:
            o = open_row[b]
            has_hit = False
            has_miss = False
            for k in range(qlen[b]):
                if row[q[b, k]] == o:
                    has_hit = True
                else:
                    has_miss = True
            ap = (not has_hit) and has_miss if page == 1 else not has_hit
        if ap:
            tp = pre_ready[b]
            act_c[cur_act[b]] = tp
            open_row[b] = -1
            act_ready[b] = max(act_ready[b], tp + tm[T_RP])
            n_pre += 1
        # responses
        if in_order:
            while ret_ptr < nxt and done[ret_ptr] >= 0:
                prev_ret = max(prev_ret, done[ret_ptr])
                ret[ret_ptr] = prev_ret
                if limit:
                    heap_n = _heap_push(heap, heap_n, prev_ret)
                ret_ptr += 1
        else:
            ret[rq] = end
            if limit:
                heap_n = _heap_push(heap, heap_n, end)

    end_t = np.int64(0)
    for i in range(n):
        end_t = max(end_t, ret[i])
    counts = np.array([n_act, n_pre, n_rd, n_wr, n_ref_all, n_ref_pb, end_t], dtype=np.int64)
    return (adm, ret, counts, act_t[:n_act], act_c[:n_act], act_b[:n_act],
            ref_t[:n_ref], ref_d[:n_ref], ref_r[:n_ref])


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
                         bank=gbank.astype(np.int64), row=f["row"].astype(np.int64))


def simulate(trace: DramTrace | PreparedTrace, design: Mapping[str, Any] | np.ndarray | None = None,
             device: DramDevice = MT40A1G8_083E, mapping: AddressMapping = DEFAULT_MAPPING) -> DramResult:
    """Simulate one controller design (a dict, missing knobs default, or its ``knob_codes``) on
    one trace."""
    codes = design if isinstance(design, np.ndarray) else knob_codes(design or {})
    p = trace if isinstance(trace, PreparedTrace) else prepare_trace(trace, device, mapping)
    o = device.org
    geo = np.array([o.channels, o.ranks, o.bank_groups, o.banks_per_group], dtype=np.int64)
    _adm, ret, counts, act_t, act_c, act_b, ref_t, ref_d, ref_r = _controller(
        p.arrival, p.is_write, p.bank, p.row, geo, _timing_vector(device), codes)
    if ret.size and ret.min() < 0:
        raise EvaluationError(f"DRAM controller stalled with {int((ret < 0).sum())} requests unserved (knob codes {codes.tolist()})")
    n_act, n_pre, n_rd, n_wr, n_ref, n_refpb, end_t = (int(x) for x in counts)
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
    ``DramTrace``. Each design is one run of the compiled event-driven controller.
    """

    name = "dram"
    version = "1"
    metric_names = METRIC_NAMES

    def __init__(self, device: DramDevice = MT40A1G8_083E, mapping: AddressMapping = DEFAULT_MAPPING,
                 cache_size: int = 100_000, seed: int = 0) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        self.device = device
        self.mapping = mapping
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
        rows = [simulate(p, k, self.device, self.mapping).metrics() for k in knobs]
        return {m: np.array([r[m] for r in rows], dtype=np.float64) for m in self.metric_names}

    def timing_table(self) -> dict[str, float | int]:
        """The device's timing parameters in cycles (for reports and the CLI)."""
        return asdict(self.device.timing)
