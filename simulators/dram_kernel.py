"""The compiled DRAM controller loop of :mod:`mlsysgym.simulators.dram`, split by function.

:func:`controller` runs one design over one decoded trace. It is event driven: each turn of its
loop asks three small helpers when the next event of each kind can happen and then performs the
earliest one:

- :func:`next_refresh` (refresh manager): a refresh to issue now, or the next tREFI boundary;
- :func:`next_admission` (arbiter and scheduler buffer): when the next trace request can enter;
- :func:`next_command` (scheduler and command multiplexer): each bank's next request
  (:func:`choose_request`) and command, the earliest issuable one over all banks;
- then :func:`do_refresh`, :func:`admit` or :func:`issue` (bank machines, page policy in
  :func:`auto_precharge`, write draining in :func:`update_write_mode`, responses in
  :func:`respond`).

State lives in a few int64 arrays whose rows are named by constants: banks (``B_*``), ranks
(``R_*``), bank groups (``G_*``), channels (``H_*``), requests (``Q_*``), the scalar counters
(``C_*``), and the ACT and REF logs. :func:`make_state` allocates them with NumPy; :func:`run`
allocates nothing (see the note at ``_helper``) and :func:`controller` wraps the two; it
runs :func:`run_plain`, where the default controller settings are compile-time constants, unless
a setting is on.
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

# Indices of the timing vector the kernel reads.
(T_CL, T_CWL, T_BURST, T_RCD, T_RP, T_RAS, T_RC, T_CCD_S, T_CCD_L, T_RRD_S, T_RRD_L, T_FAW, T_WR,
 T_WTR_S, T_WTR_L, T_RTP, T_REFI, T_RFC, T_RFCPB, T_RTRS, T_RTW) = range(21)
# Indices of the knob vector (the order of dram.DESIGN_SPACE).
(K_PAGE, K_SCHED, K_BUF, K_BUFSIZE, K_RESP, K_REF, K_MAXPOST, K_MAXPULL, K_ARB, K_MAXACT) = range(10)
# Indices of the controller-settings vector (dram.ControllerSettings).
(S_DRAIN, S_WR_HIGH, S_WR_LOW, S_FORWARD, S_ACTIVE, S_READY_FIRST) = range(6)
# Indices of the scalar counters.
(C_ACT, C_PRE, C_RD, C_WR, C_REF_ALL, C_REF_PB, C_NREF, C_BUF, C_BUF_RD, C_BUF_WR, C_NEXT, C_LAST_ADM,
 C_ISSUED, C_HEAP, C_ACTIVE, C_RET_PTR, C_PREV_RET, C_WMODE, C_NOW, C_FWD, C_ACTBUF, N_COUNTERS) = range(22)
# What run() returns.
DONE, STALLED, LOG_FULL = range(3)

NONE, ACT, PRE, RD, WR = 0, 1, 2, 3, 4
INF = np.int64(1) << np.int64(62)
NEVER = -(np.int64(1) << np.int64(40))

Config = namedtuple("Config", [
    "n_ch", "rpc", "n_bg", "bpg", "n_rank", "bpr", "n_bank", "page", "sched", "bufk", "bsize", "refp",
    "maxpost", "maxpull", "in_order", "limit", "maxact", "fwd", "ref_interval", "drain", "wr_high", "wr_low",
    "forward", "active_cap", "ready_first"])
# Rows of the state arrays: banks, ranks (R_HIST..R_HIST+3: the last four ACT cycles, a ring),
# bank groups of every rank (earliest ACT / RD / WR the rank-level constraints allow), channels,
# requests. Per bank: the open row (-1: closed), when the next ACT / column command / PRE may go,
# the open row's ACT in the log (B_CUR_ACT) and the request it was opened for (B_ACT_FOR), the
# queue length, the chosen request (its queue index, command, earliest cycle, age) with the flags
# that force re-choosing it (B_DIRTY) or re-timing it (B_STALE), and how many of its queued
# requests sit in the active buffer (B_NREL).
(B_OPEN, B_ACT_READY, B_COL_READY, B_PRE_READY, B_CUR_ACT, B_ACT_FOR, B_QLEN, B_CAND_IDX, B_CAND_CMD, B_DIRTY,
 B_STALE, B_TIME, B_AGE, B_NREL, N_BANK_FIELDS) = range(15)
(R_ACT_PTR, R_STALE, R_PENDING, R_OWED, R_FORCED, R_RR_BANK, R_NEXT_BOUND, R_HIST) = range(8)
N_RANK_FIELDS = R_HIST + 4
(G_LAST_ACT, G_LAST_COL, G_WR_END, G_ACT, G_RD, G_WR, N_GROUP_FIELDS) = range(7)
(H_CMD_FREE, H_BUS_FREE, H_BUS_RANK, H_LAST_RD, H_LAST_DIR, N_CHANNEL_FIELDS) = range(6)
(Q_ADM, Q_DONE, Q_RET, Q_REL) = range(4)  # Q_REL: 1 once moved to the active buffer

# The kernel allocates nothing: state arrays come from make_state (NumPy), and run() returns
# LOG_FULL when a command log needs more room (controller() grows it and calls run() again, which
# continues where it stopped). So run() and its helpers are compiled without numba's reference
# counting, and the helpers are inlined into run() at numba-IR level: a call then costs nothing.
# (With reference counting, every array argument of an inlined or called helper pays two atomic
# counter updates per call: 20x slower on a micro loop, 2x on this kernel; a plain call instead
# passes every array's shape and strides, ~80 arguments per helper.)
_helper = numba.njit(cache=True, inline="always", _nrt=False)


# ----------------------------------------------------------------------------- utilities

def grow(a: np.ndarray) -> np.ndarray:
    """A copy of a 2-D log with twice the columns."""
    b = np.empty((a.shape[0], a.shape[1] * 2), dtype=a.dtype)
    b[:, : a.shape[1]] = a
    return b


@_helper
def heap_push(h: np.ndarray, n: int, v: int) -> int:
    """Push ``v`` on the min-heap ``h[:n]``; the new size."""
    i = n
    h[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if h[p] <= h[i]:
            break
        h[p], h[i] = h[i], h[p]
        i = p
    return n + 1


@_helper
def heap_pop(h: np.ndarray, n: int) -> int:
    """Drop the minimum of the min-heap ``h[:n]``; the new size."""
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


# ----------------------------------------------------------------------------- set-up

@_helper
def make_config(geo, tm, kn, st, plain):
    """The design's knobs, the controller settings and the organisation as named integers
    (``plain``: the default settings, as constants the compiler folds away)."""
    n_ch, rpc, n_bg, bpg = geo[0], geo[1], geo[2], geo[3]
    bpr = n_bg * bpg
    refp = kn[K_REF]
    in_order = kn[K_RESP] == 1 or kn[K_ARB] == 2
    fwd = 0 if kn[K_ARB] == 0 else 1
    ref_interval = tm[T_REFI] if refp == 1 else max(tm[T_REFI] // bpr, 1)
    ready_first = False if plain else st[S_READY_FIRST] != 0 and kn[K_SCHED] == 1
    drain = False if plain else st[S_DRAIN] != 0
    forward = False if plain else st[S_FORWARD] != 0
    active_cap = 0 if plain else st[S_ACTIVE]
    return Config(
        n_ch=n_ch, rpc=rpc, n_bg=n_bg, bpg=bpg, n_rank=n_ch * rpc, bpr=bpr, n_bank=n_ch * rpc * bpr,
        page=kn[K_PAGE], sched=kn[K_SCHED], bufk=kn[K_BUF], bsize=kn[K_BUFSIZE], refp=refp,
        maxpost=kn[K_MAXPOST], maxpull=kn[K_MAXPULL], in_order=in_order,
        limit=kn[K_ARB] != 0, maxact=kn[K_MAXACT], fwd=fwd, ref_interval=ref_interval,
        drain=drain, wr_high=st[S_WR_HIGH], wr_low=st[S_WR_LOW], forward=forward, active_cap=active_cap,
        ready_first=ready_first)


def make_state(geo: np.ndarray, tm: np.ndarray, kn: np.ndarray, st: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Fresh state: banks (``B_*`` x banks), their queues, ranks (``R_*`` x ranks), bank groups
    (``G_*`` x ranks * groups), channels (``H_*`` x channels), requests (``Q_*`` x requests), the
    heap of response cycles that free arbiter slots, the counters (``C_*``) and the ACT and REF
    logs."""
    n_ch, rpc, n_bg, bpg = (int(x) for x in geo)
    nr = n_ch * rpc
    nb = nr * n_bg * bpg
    bsize = int(kn[K_BUFSIZE])
    qcap = (2 * bsize if kn[K_BUF] == 1 else bsize) + int(st[S_ACTIVE])  # active-buffer entries stay queued
    refi = int(tm[T_REFI]) if kn[K_REF] == 1 else max(int(tm[T_REFI]) // (n_bg * bpg), 1)
    bk = np.zeros((N_BANK_FIELDS, nb), np.int64)
    bk[[B_OPEN, B_CUR_ACT, B_ACT_FOR]] = -1
    bk[[B_DIRTY, B_STALE]] = 1  # every bank's candidate must be chosen and timed
    bk[B_TIME] = INF
    q = np.zeros((nb, qcap), np.int64)
    rk = np.zeros((N_RANK_FIELDS, nr), np.int64)
    rk[R_HIST:R_HIST + 4] = NEVER
    rk[R_STALE] = 1
    r = np.arange(nr)
    rk[R_NEXT_BOUND] = refi + (r % rpc) * refi // rpc  # ranks of a channel refresh staggered
    grp = np.zeros((N_GROUP_FIELDS, nr * n_bg), np.int64)
    grp[[G_LAST_ACT, G_LAST_COL, G_WR_END]] = NEVER
    ch = np.zeros((N_CHANNEL_FIELDS, n_ch), np.int64)
    ch[[H_BUS_FREE, H_LAST_RD]] = NEVER
    ch[H_BUS_RANK] = -1
    rq = np.full((4, n), -1, np.int64)
    rq[Q_REL] = 0
    heap = np.zeros(max(int(kn[K_MAXACT]), 1) + 2, np.int64)
    cnt = np.zeros(N_COUNTERS, np.int64)
    cnt[C_LAST_ADM] = NEVER
    act_log = np.zeros((3, n + 16), np.int64)  # cycle of the ACT, of its PRE (-1: open), bank
    ref_log = np.zeros((3, 64), np.int64)  # cycle of the REF, its duration, rank
    return bk, q, rk, grp, ch, rq, heap, cnt, act_log, ref_log


# ----------------------------------------------------------------------------- refresh manager

@_helper
def next_refresh(cf, rk, bk, now):
    """The earliest refresh event: (time, rank, refresh now?, may yield to an admission?).

    A rank owing more than ``maxpost`` refreshes is forced; one owing any refreshes issues them
    while idle; an idle rank pulls up to ``maxpull`` in ahead of time. Otherwise its next event
    is the next tREFI (or tREFI / banks) boundary, where one more becomes due."""
    t_ref = INF
    ref_rank = -1
    ref_do = False
    ref_opt = False  # an idle-time refresh yields to a request arriving the same cycle
    if cf.refp == 0:
        return t_ref, ref_rank, ref_do, ref_opt
    for r in range(cf.n_rank):
        if cf.refp == 1:
            idle = rk[R_PENDING, r] == 0
        else:
            idle = bk[B_QLEN, r * cf.bpr + rk[R_RR_BANK, r]] == 0
        do = False
        if rk[R_OWED, r] > 0:
            if rk[R_OWED, r] > cf.maxpost:
                rk[R_FORCED, r] = 1
            do = rk[R_FORCED, r] != 0 or idle
        elif idle and -rk[R_OWED, r] < cf.maxpull:
            do = True
        te = now if do else rk[R_NEXT_BOUND, r]
        if te < t_ref:
            t_ref = te
            ref_rank = r
            ref_do = do
            ref_opt = do and rk[R_FORCED, r] == 0
    return t_ref, ref_rank, ref_do, ref_opt


@_helper
def do_refresh(cf, tm, bk, rk, ch, cnt, ref_log, act_log, r, now):
    """Refresh rank ``r`` (AllBank) or its next bank (PerBank): precharge what is open (one
    PREA once the banks allow it), then REF once tRP and tRC allow, blocking tRFC (tRFCpb).
    The refresh log must have room for one more."""
    c = r // cf.rpc
    if cf.refp == 1:
        b0, b1 = r * cf.bpr, (r + 1) * cf.bpr
    else:
        b0 = r * cf.bpr + rk[R_RR_BANK, r]
        b1 = b0 + 1
        rk[R_RR_BANK, r] = (rk[R_RR_BANK, r] + 1) % cf.bpr
    tp = now
    any_open = False
    for b in range(b0, b1):
        if bk[B_OPEN, b] >= 0:
            tp = max(tp, bk[B_PRE_READY, b])
            any_open = True
    tr = now
    if any_open:
        tp = max(tp, ch[H_CMD_FREE, c])
        for b in range(b0, b1):
            if bk[B_OPEN, b] >= 0:
                close_row(tm, bk, cnt, act_log, b, tp)
        tr = tp + tm[T_RP]
    for b in range(b0, b1):
        tr = max(tr, bk[B_ACT_READY, b])
    dur = tm[T_RFC] if cf.refp == 1 else tm[T_RFCPB]
    for b in range(b0, b1):
        bk[B_ACT_READY, b] = tr + dur
        bk[B_DIRTY, b] = 1
        bk[B_STALE, b] = 1
    k = cnt[C_NREF]
    ref_log[0, k] = tr
    ref_log[1, k] = dur
    ref_log[2, k] = r
    cnt[C_NREF] = k + 1
    cnt[C_REF_ALL if cf.refp == 1 else C_REF_PB] += 1
    rk[R_OWED, r] -= 1
    if rk[R_OWED, r] <= 0:
        rk[R_FORCED, r] = 0


# ----------------------------------------------------------------------------- arbiter, buffer

@_helper
def next_admission(cf, bk, heap, cnt, arrival, is_wr, bank, now):
    """When the next trace request can enter the scheduler buffer (INF: no room, or none left)."""
    i = cnt[C_NEXT]
    if i >= arrival.shape[0]:
        return INF
    if cf.bufk == 0:
        room = bk[B_QLEN, bank[i]] - bk[B_NREL, bank[i]] < cf.bsize
    elif cf.bufk == 1:
        room = cnt[C_BUF_WR if is_wr[i] else C_BUF_RD] < cf.bsize
    else:
        room = cnt[C_BUF] < cf.bsize
    if not room:
        return INF
    t_adm = max(arrival[i] + cf.fwd, cnt[C_LAST_ADM] + 1, now)
    if cf.limit and cnt[C_ACTIVE] >= cf.maxact:
        t_adm = max(t_adm, heap[0]) if cnt[C_HEAP] > 0 else INF
    return t_adm


@_helper
def queued_write(bk, q, rq, is_wr, row, col, b, i):
    """Does a write to request ``i``'s address (bank ``b``, same row and column) wait in the
    write buffer (not yet activated into the active buffer)?"""
    for j in range(bk[B_QLEN, b]):
        x = q[b, j]
        if is_wr[x] != 0 and rq[Q_REL, x] == 0 and row[x] == row[i] and col[x] == col[i]:
            return True
    return False


@_helper
def admit(cf, bk, q, rk, rq, heap, cnt, is_wr, bank, row, col, now):
    """Put the next trace request into its bank's queue, or answer a read from a queued write
    to its address (read forwarding: the response is the admission cycle, no DRAM access)."""
    i = cnt[C_NEXT]
    cnt[C_NEXT] = i + 1
    b = bank[i]
    rq[Q_ADM, i] = now
    cnt[C_LAST_ADM] = now
    if cf.limit:
        if cnt[C_ACTIVE] < cf.maxact:
            cnt[C_ACTIVE] += 1
        else:
            cnt[C_HEAP] = heap_pop(heap, cnt[C_HEAP])
    if cf.forward and is_wr[i] == 0 and queued_write(bk, q, rq, is_wr, row, col, b, i):
        cnt[C_ISSUED] += 1
        cnt[C_FWD] += 1
        rq[Q_DONE, i] = now
        respond(cf, rq, heap, cnt, i, now)
        return
    q[b, bk[B_QLEN, b]] = i
    bk[B_QLEN, b] += 1
    bk[B_DIRTY, b] = 1
    bk[B_STALE, b] = 1
    rk[R_PENDING, b // cf.bpr] += 1
    cnt[C_BUF] += 1
    cnt[C_BUF_WR if is_wr[i] else C_BUF_RD] += 1
    if cf.drain:
        update_write_mode(cf, bk, cnt)


@_helper
def update_write_mode(cf, bk, cnt):
    """Write draining: enter write mode when more than ``wr_high`` writes wait (or no read
    does), leave it when fewer than ``wr_low`` wait and a read does; a switch re-chooses every
    bank's request."""
    wm = cnt[C_WMODE] != 0
    if not wm:
        new = cnt[C_BUF_WR] > cf.wr_high or cnt[C_BUF_RD] == 0
    else:
        new = not (cnt[C_BUF_WR] < cf.wr_low and cnt[C_BUF_RD] != 0)
    if new != wm:
        cnt[C_WMODE] = 1 if new else 0
        for b in range(cf.n_bank):
            bk[B_DIRTY, b] = 1
            bk[B_STALE, b] = 1


# ----------------------------------------------------------------------------- scheduler

@_helper
def update_rank_windows(cf, tm, rk, grp, ch):
    """Per rank and bank group, the earliest ACT / RD / WR the rank-level constraints allow
    (tFAW, tRRD_S/L, tCCD_S/L, tWTR_S/L, read-to-write and rank-to-rank turnaround)."""
    CL, CWL = tm[T_CL], tm[T_CWL]
    for r in range(cf.n_rank):
        if rk[R_STALE, r] == 0:
            continue
        c = r // cf.rpc
        faw = rk[R_HIST + rk[R_ACT_PTR, r], r] + tm[T_FAW]
        gap = tm[T_RTRS] if (ch[H_BUS_RANK, c] != r and ch[H_BUS_RANK, c] >= 0) else 0
        gb = r * cf.n_bg
        for g in range(cf.n_bg):
            ta = faw
            tc = NEVER
            tw = NEVER
            for g2 in range(cf.n_bg):
                same = g2 == g
                ta = max(ta, grp[G_LAST_ACT, gb + g2] + (tm[T_RRD_L] if same else tm[T_RRD_S]))
                tc = max(tc, grp[G_LAST_COL, gb + g2] + (tm[T_CCD_L] if same else tm[T_CCD_S]))
                tw = max(tw, grp[G_WR_END, gb + g2] + (tm[T_WTR_L] if same else tm[T_WTR_S]))
            grp[G_ACT, gb + g] = ta
            grp[G_RD, gb + g] = max(tc, tw, ch[H_BUS_FREE, c] + gap - CL)
            grp[G_WR, gb + g] = max(tc, ch[H_LAST_RD, c] + tm[T_RTW], ch[H_BUS_FREE, c] + gap - CWL)
        rk[R_STALE, r] = 0


@_helper
def eligible(cf, bk, rq, cnt, is_wr, b, x):
    """May request ``x`` of bank ``b`` be scheduled now? Always, unless writes are drained in
    batches: then only requests of the current mode, the one the open row was opened for, and
    those in the active buffer."""
    if not cf.drain:
        return True
    return (is_wr[x] != 0) == (cnt[C_WMODE] != 0) or bk[B_ACT_FOR, b] == x or rq[Q_REL, x] != 0


@_helper
def choose_request(cf, bk, q, ch, rq, cnt, row, is_wr, b, c):
    """The scheduler: bank ``b``'s next request (``Fifo``: oldest; ``FrFcfs``: oldest row hit,
    else oldest; ``FrFcfsGrp``: prefer a hit in the direction of channel ``c``'s last column
    command) and the command it needs next. False when no queued request is eligible."""
    L = bk[B_QLEN, b]
    o = bk[B_OPEN, b]
    first = 0 if L > 0 and not cf.drain else -1
    if cf.drain:
        for j in range(L):
            if eligible(cf, bk, rq, cnt, is_wr, b, q[b, j]):
                first = j
                break
    if first < 0:
        bk[B_CAND_CMD, b] = NONE
        return False
    idx = first
    if cf.sched != 0 and o >= 0:
        hit = -1
        if cf.sched == 2:
            d = ch[H_LAST_DIR, c]
            for j in range(first, L):
                x = q[b, j]
                if row[x] == o and is_wr[x] == d and eligible(cf, bk, rq, cnt, is_wr, b, x):
                    hit = j
                    break
        if hit < 0:
            for j in range(first, L):
                x = q[b, j]
                if row[x] == o and eligible(cf, bk, rq, cnt, is_wr, b, x):
                    hit = j
                    break
        if hit >= 0:
            idx = hit
    x = q[b, idx]
    bk[B_CAND_IDX, b] = idx
    bk[B_AGE, b] = x
    if o == row[x]:
        bk[B_CAND_CMD, b] = WR if is_wr[x] else RD
    elif o >= 0:
        bk[B_CAND_CMD, b] = PRE
    else:
        bk[B_CAND_CMD, b] = ACT
    return True


@_helper
def choose_ready(cf, bk, q, grp, ch, rq, cnt, row, is_wr, b, c, now):
    """FR-FCFS read as "ready first, then first come" (Ramulator 2.0's FRFCFS): bank ``b``'s
    request whose next command (RD / WR for a hit, PRE for a conflict, ACT when closed) can
    issue earliest, ties to the oldest. A ready conflict thus beats a hit that must still wait.
    False when no queued request is eligible."""
    o = bk[B_OPEN, b]
    best_t = INF
    best_j = -1
    best_cmd = NONE
    for j in range(bk[B_QLEN, b]):
        x = q[b, j]
        if not eligible(cf, bk, rq, cnt, is_wr, b, x):
            continue
        if o < 0:
            cmd = ACT
        elif row[x] == o:
            cmd = WR if is_wr[x] else RD
        else:
            cmd = PRE
        t = command_time(cf, bk, grp, ch, b, c, cmd, now)
        if best_j < 0 or t < best_t:
            best_t = t
            best_j = j
            best_cmd = cmd
        if o < 0:
            break  # all need the ACT: the oldest
    bk[B_CAND_CMD, b] = best_cmd
    if best_j < 0:
        return False
    bk[B_CAND_IDX, b] = best_j
    bk[B_AGE, b] = q[b, best_j]
    return True


@_helper
def command_time(cf, bk, grp, ch, b, c, cmd, now):
    """The earliest cycle command ``cmd`` can issue to bank ``b`` (bank and rank timing, the
    channel's command bus)."""
    gi = (b // cf.bpr) * cf.n_bg + (b // cf.bpg) % cf.n_bg
    t = max(now, ch[H_CMD_FREE, c])
    if cmd == NONE:
        return INF
    if cmd == ACT:
        return max(t, bk[B_ACT_READY, b], grp[G_ACT, gi])
    if cmd == PRE:
        return max(t, bk[B_PRE_READY, b])
    if cmd == RD:
        return max(t, bk[B_COL_READY, b], grp[G_RD, gi])
    return max(t, bk[B_COL_READY, b], grp[G_WR, gi])


@_helper
def next_command(cf, tm, bk, q, rk, grp, ch, rq, cnt, row, is_wr, now):
    """The command multiplexer: the bank whose next command can go earliest (ties: oldest
    request) and that cycle; per-bank choices are cached and re-made only when the bank's
    queue or mode changed (ready-first: whenever its timing did)."""
    update_rank_windows(cf, tm, rk, grp, ch)
    t_cmd = INF
    c_bank = -1
    c_age = INF
    for b in range(cf.n_bank):
        if bk[B_STALE, b] != 0:
            bk[B_STALE, b] = 0
            if bk[B_QLEN, b] == 0:
                bk[B_TIME, b] = INF
                continue
            c = b // cf.bpr // cf.rpc
            if cf.ready_first:
                bk[B_DIRTY, b] = 0
                choose_ready(cf, bk, q, grp, ch, rq, cnt, row, is_wr, b, c, now)
            elif bk[B_DIRTY, b] != 0:
                bk[B_DIRTY, b] = 0
                choose_request(cf, bk, q, ch, rq, cnt, row, is_wr, b, c)
            bk[B_TIME, b] = command_time(cf, bk, grp, ch, b, c, bk[B_CAND_CMD, b], now)
        t = bk[B_TIME, b]
        if t < t_cmd or (t == t_cmd and t < INF and bk[B_AGE, b] < c_age):
            t_cmd = t
            c_bank = b
            c_age = bk[B_AGE, b]
    return t_cmd, c_bank


# ----------------------------------------------------------------------------- bank machines

@_helper
def close_row(tm, bk, cnt, act_log, b, tp):
    """Precharge bank ``b`` at cycle ``tp`` (explicit, auto or refresh PRE)."""
    act_log[1, bk[B_CUR_ACT, b]] = tp
    bk[B_OPEN, b] = -1
    bk[B_ACT_FOR, b] = -1
    bk[B_ACT_READY, b] = max(bk[B_ACT_READY, b], tp + tm[T_RP])
    cnt[C_PRE] += 1


@_helper
def auto_precharge(cf, bk, q, row, b):
    """Page policy after a column command: close the row with it? (``Closed``: always;
    ``OpenAdaptive``: no pending hit but a pending miss; ``ClosedAdaptive``: no pending hit.)"""
    if cf.page == 0:
        return False
    if cf.page == 2:
        return True
    o = bk[B_OPEN, b]
    has_hit = False
    has_miss = False
    for k in range(bk[B_QLEN, b]):
        if row[q[b, k]] == o:
            has_hit = True
        else:
            has_miss = True
    return (not has_hit) and has_miss if cf.page == 1 else not has_hit


@_helper
def respond(cf, rq, heap, cnt, x, end):
    """Responses: as data completes, or in request order (then everything done up to the
    first unfinished request returns); each frees an arbiter slot."""
    if cf.in_order:
        while cnt[C_RET_PTR] < cnt[C_NEXT] and rq[Q_DONE, cnt[C_RET_PTR]] >= 0:
            p = cnt[C_RET_PTR]
            cnt[C_PREV_RET] = max(cnt[C_PREV_RET], rq[Q_DONE, p])
            rq[Q_RET, p] = cnt[C_PREV_RET]
            if cf.limit:
                cnt[C_HEAP] = heap_push(heap, cnt[C_HEAP], cnt[C_PREV_RET])
            cnt[C_RET_PTR] = p + 1
    else:
        rq[Q_RET, x] = end
        if cf.limit:
            cnt[C_HEAP] = heap_push(heap, cnt[C_HEAP], end)


@_helper
def to_active_buffer(cf, bk, rq, cnt, is_wr, b, x):
    """Move request ``x``, just activated, from the read or write buffer to the active buffer
    (it frees its buffer entry and stays schedulable in either write-drain mode)."""
    rq[Q_REL, x] = 1
    cnt[C_ACTBUF] += 1
    bk[B_NREL, b] += 1
    cnt[C_BUF] -= 1
    cnt[C_BUF_WR if is_wr[x] else C_BUF_RD] -= 1
    if cf.drain:
        update_write_mode(cf, bk, cnt)


@_helper
def issue(cf, tm, bk, q, rk, grp, ch, rq, heap, cnt, act_log, row, is_wr, b, now):
    """Issue bank ``b``'s next command at ``now`` and update bank, rank and channel timing.
    The ACT log must have room for one more."""
    r = b // cf.bpr
    c = r // cf.rpc
    g = (b // cf.bpg) % cf.n_bg
    cmd = bk[B_CAND_CMD, b]
    ch[H_CMD_FREE, c] = now + 1
    bk[B_DIRTY, b] = 1
    for b2 in range(c * cf.rpc * cf.bpr, (c + 1) * cf.rpc * cf.bpr):
        bk[B_STALE, b2] = 1
    for r2 in range(c * cf.rpc, (c + 1) * cf.rpc):
        rk[R_STALE, r2] = 1
    if cmd == ACT:
        x = q[b, bk[B_CAND_IDX, b]]
        bk[B_OPEN, b] = row[x]
        bk[B_ACT_FOR, b] = x
        bk[B_ACT_READY, b] = now + tm[T_RC]
        bk[B_COL_READY, b] = now + tm[T_RCD]
        bk[B_PRE_READY, b] = now + tm[T_RAS]
        rk[R_HIST + rk[R_ACT_PTR, r], r] = now
        rk[R_ACT_PTR, r] = (rk[R_ACT_PTR, r] + 1) & 3
        grp[G_LAST_ACT, r * cf.n_bg + g] = now
        k = cnt[C_ACT]
        act_log[0, k] = now
        act_log[1, k] = -1
        act_log[2, k] = b
        bk[B_CUR_ACT, b] = k
        cnt[C_ACT] = k + 1
        if cf.active_cap > 0 and rq[Q_REL, x] == 0 and cnt[C_ACTBUF] < cf.active_cap:
            to_active_buffer(cf, bk, rq, cnt, is_wr, b, x)
        return
    if cmd == PRE:
        close_row(tm, bk, cnt, act_log, b, now)
        return
    # column command: serve the chosen request and take it out of the buffer
    j = bk[B_CAND_IDX, b]
    x = q[b, j]
    L = bk[B_QLEN, b]
    for k in range(j, L - 1):
        q[b, k] = q[b, k + 1]
    bk[B_QLEN, b] = L - 1
    if bk[B_ACT_FOR, b] == x:
        bk[B_ACT_FOR, b] = -1
    rk[R_PENDING, r] -= 1
    if cf.active_cap > 0 and rq[Q_REL, x] != 0:
        cnt[C_ACTBUF] -= 1
        bk[B_NREL, b] -= 1
    else:
        cnt[C_BUF] -= 1
        cnt[C_BUF_WR if is_wr[x] else C_BUF_RD] -= 1
    cnt[C_ISSUED] += 1
    if cmd == RD:
        end = now + tm[T_CL] + tm[T_BURST]
        bk[B_PRE_READY, b] = max(bk[B_PRE_READY, b], now + tm[T_RTP])
        ch[H_LAST_RD, c] = now
        cnt[C_RD] += 1
        d = 0
    else:
        end = now + tm[T_CWL] + tm[T_BURST]
        bk[B_PRE_READY, b] = max(bk[B_PRE_READY, b], end + tm[T_WR])
        grp[G_WR_END, r * cf.n_bg + g] = end
        cnt[C_WR] += 1
        d = 1
    ch[H_BUS_FREE, c] = end
    ch[H_BUS_RANK, c] = r
    grp[G_LAST_COL, r * cf.n_bg + g] = now
    if cf.sched == 2 and ch[H_LAST_DIR, c] != d:
        for b2 in range(c * cf.rpc * cf.bpr, (c + 1) * cf.rpc * cf.bpr):
            bk[B_DIRTY, b2] = 1
    ch[H_LAST_DIR, c] = d
    rq[Q_DONE, x] = end
    if auto_precharge(cf, bk, q, row, b):
        close_row(tm, bk, cnt, act_log, b, bk[B_PRE_READY, b])
    respond(cf, rq, heap, cnt, x, end)
    if cf.drain:
        update_write_mode(cf, bk, cnt)


# ----------------------------------------------------------------------------- the loop

@_helper
def event_loop(cf, arrival, is_wr, bank, row, col, tm, bk, q, rk, grp, ch, rq, heap, cnt, act_log, ref_log):
    """The event loop, from the state it is given until every request is served (DONE), a log
    is full (LOG_FULL: grow it and call again) or nothing can happen (STALLED)."""
    n = arrival.shape[0]
    if cf.drain:
        update_write_mode(cf, bk, cnt)
    while cnt[C_ISSUED] < n:
        if cnt[C_ACT] == act_log.shape[1] or cnt[C_NREF] == ref_log.shape[1]:
            return LOG_FULL
        now = cnt[C_NOW]
        t_ref, ref_rank, ref_do, ref_opt = next_refresh(cf, rk, bk, now)
        t_adm = next_admission(cf, bk, heap, cnt, arrival, is_wr, bank, now)
        t_cmd, c_bank = next_command(cf, tm, bk, q, rk, grp, ch, rq, cnt, row, is_wr, now)
        if t_adm == INF and t_cmd == INF:
            return STALLED  # no request can move (refresh alone cannot change that): never spin forever
        if t_ref <= t_cmd and (t_ref < t_adm or (t_ref == t_adm and not ref_opt)):
            cnt[C_NOW] = t_ref
            if ref_do:
                do_refresh(cf, tm, bk, rk, ch, cnt, ref_log, act_log, ref_rank, t_ref)
            else:  # a tREFI boundary: one more refresh is due
                rk[R_OWED, ref_rank] += 1
                rk[R_NEXT_BOUND, ref_rank] += cf.ref_interval
        elif t_adm <= t_cmd:
            cnt[C_NOW] = t_adm
            admit(cf, bk, q, rk, rq, heap, cnt, is_wr, bank, row, col, t_adm)
        else:
            cnt[C_NOW] = t_cmd
            issue(cf, tm, bk, q, rk, grp, ch, rq, heap, cnt, act_log, row, is_wr, c_bank, t_cmd)
    return DONE


@numba.njit(cache=True, _nrt=False)
def run(arrival, is_wr, bank, row, col, geo, tm, kn, st, bk, q, rk, grp, ch, rq, heap, cnt, act_log, ref_log):
    """:func:`event_loop` with the controller settings ``st``."""
    cf = make_config(geo, tm, kn, st, False)
    return event_loop(cf, arrival, is_wr, bank, row, col, tm, bk, q, rk, grp, ch, rq, heap, cnt, act_log, ref_log)


@numba.njit(cache=True, _nrt=False)
def run_plain(arrival, is_wr, bank, row, col, geo, tm, kn, st, bk, q, rk, grp, ch, rq, heap, cnt, act_log,
              ref_log):
    """:func:`event_loop` with the default controller settings compiled in, so the code of the
    others (write draining, forwarding, active buffer, ready-first) costs nothing when unused."""
    cf = make_config(geo, tm, kn, st, True)
    return event_loop(cf, arrival, is_wr, bank, row, col, tm, bk, q, rk, grp, ch, rq, heap, cnt, act_log, ref_log)


def controller(arrival: np.ndarray, is_wr: np.ndarray, bank: np.ndarray, row: np.ndarray, col: np.ndarray,
               geo: np.ndarray, tm: np.ndarray, kn: np.ndarray, st: np.ndarray) -> tuple[np.ndarray, ...]:
    """Run one design over one trace; returns per-request admission and response cycles (-1:
    never), the counts (ACT, PRE, RD, WR, all-bank REF, per-bank REF, end cycle, forwarded reads) and the
    command logs (ACT cycles, their PRE cycles (-1: still open), their banks; REF cycles,
    durations, ranks).

    ``geo`` = (channels, ranks per channel, bank groups, banks per group); bank ids are global:
    ((channel * ranks + rank) * bank_groups + group) * banks_per_group + bank. ``tm`` holds the
    timings (``T_*``), ``kn`` the knob codes (``K_*``), ``st`` the controller settings (``S_*``).
    """
    bk, q, rk, grp, ch, rq, heap, cnt, act_log, ref_log = make_state(geo, tm, kn, st, arrival.shape[0])
    loop = run_plain if not (st[S_DRAIN] or st[S_FORWARD] or st[S_ACTIVE] or st[S_READY_FIRST]) else run
    while True:
        status = loop(arrival, is_wr, bank, row, col, geo, tm, kn, st, bk, q, rk, grp, ch, rq, heap, cnt,
                     act_log, ref_log)
        if status != LOG_FULL:
            break
        if cnt[C_ACT] == act_log.shape[1]:
            act_log = grow(act_log)
        if cnt[C_NREF] == ref_log.shape[1]:
            ref_log = grow(ref_log)
    ret = rq[Q_RET]
    end_t = max(int(ret.max()), 0) if ret.size else 0
    counts = np.array([cnt[C_ACT], cnt[C_PRE], cnt[C_RD], cnt[C_WR], cnt[C_REF_ALL], cnt[C_REF_PB], end_t,
                       cnt[C_FWD]], dtype=np.int64)
    na, nr = cnt[C_ACT], cnt[C_NREF]
    return (rq[Q_ADM], ret, counts, act_log[0, :na], act_log[1, :na], act_log[2, :na],
            ref_log[0, :nr], ref_log[1, :nr], ref_log[2, :nr])
