"""Iteration-level (continuous-batching) simulation of one model instance, as vLLM schedules.

Every iteration the scheduler builds one batch, the cost model (:class:`.costs.StepCost`)
gives its time, and the clock advances:

* ``chunked_prefill=True`` (vLLM V1, and V0 with chunked prefill): running sequences decode
  one token each first; then unfinished prompts continue and waiting requests are admitted
  (first come, first served) with prompt chunks while the batch has fewer than
  ``max_batched_tokens`` tokens and ``max_num_seqs`` sequences and the KV cache has blocks
  for the chunk.
* ``chunked_prefill=False`` (vLLM V0 default): if waiting prompts fit (whole prompts within
  ``max_batched_tokens``, ``max_num_seqs`` and free KV blocks), the iteration prefills them
  alone; otherwise every running sequence decodes.

KV memory is counted in 16-token blocks; a decoding sequence that needs a block when none is
free preempts the most recently admitted sequence, which frees its blocks and later recomputes
its prompt and the tokens it had generated (vLLM's recompute preemption).

Decode-only stretches (nothing can be admitted) are advanced many iterations at once: the
step times of the next iterations are computed as one NumPy vector (the KV each sequence reads
grows by one token per step) up to the next arrival, the next finish or the next block
shortage, so a run costs O(requests) Python iterations, not O(tokens).

A request's first token is emitted by the iteration that finishes its prompt; prefilled
requests (``prefilled=True``, the decode side of a prefill/decode split) arrive with their
prompt and first token already in the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mlsysgym.simulators.serving.costs import StepCost
from mlsysgym.simulators.serving.plans import BLOCK_TOKENS

__all__ = ["InstanceResult", "simulate_instance"]

_MAX_SKIP = 4096


@dataclass
class InstanceResult:
    """Per-request times (s) and the instance's totals."""

    first_token_s: np.ndarray
    finish_s: np.ndarray
    end_s: float
    busy_s: float
    active_s: float
    iterations: int
    preemptions: int


def _blocks(tokens: int) -> int:
    return -(-tokens // BLOCK_TOKENS)


def simulate_instance(cost: StepCost, arrival: np.ndarray, n_in: np.ndarray, n_out: np.ndarray,
                      kv_tokens: int, prefilled: np.ndarray | None = None,
                      max_iterations: int = 50_000_000) -> InstanceResult:
    """Simulate one instance serving requests (arrival times, prompt and output lengths)."""
    plan = cost.plan
    n = len(arrival)
    arrival = np.asarray(arrival, float)
    n_in = np.asarray(n_in, np.int64)
    n_out = np.asarray(n_out, np.int64)
    pre = np.zeros(n, bool) if prefilled is None else np.asarray(prefilled, bool)
    order = np.argsort(arrival, kind="stable")
    total_blocks = kv_tokens // BLOCK_TOKENS
    free = total_blocks
    max_seqs, budget_tokens, chunked = plan.max_num_seqs, plan.max_batched_tokens, \
        plan.chunked_prefill

    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    ctx = np.zeros(n, np.int64)        # tokens in the KV cache
    todo = np.zeros(n, np.int64)       # prompt tokens still to compute
    gen = np.zeros(n, np.int64)        # output tokens generated
    held = np.zeros(n, np.int64)       # KV blocks held
    for i in np.flatnonzero(pre):
        gen[i] = 1
        first[i] = arrival[i]
    waiting: list[int] = []
    running: list[int] = []            # admission order (last = first to preempt)
    nxt = 0
    now = 0.0
    busy = active = 0.0
    iters = preempt = 0

    def admit_arrivals(t: float) -> None:
        nonlocal nxt
        while nxt < n and arrival[order[nxt]] <= t:
            i = int(order[nxt])
            todo[i] = 0 if pre[i] else n_in[i]
            waiting.append(i)
            nxt += 1

    def need_blocks(i: int, extra: int) -> int:
        return _blocks(int(ctx[i]) + extra) - int(held[i])

    def take(i: int, need: int) -> None:
        nonlocal free
        free -= need
        held[i] += need

    def preempt_last(protect: int) -> bool:
        """Preempt (recompute) the most recently admitted running sequence but ``protect``."""
        nonlocal free, preempt
        for j in range(len(running) - 1, -1, -1):
            v = running[j]
            if v == protect:
                continue
            running.pop(j)
            free += int(held[v])
            held[v] = 0
            todo[v] = n_in[v] + gen[v]
            ctx[v] = 0
            waiting.insert(0, v)
            preempt += 1
            return True
        return False

    def admit_prefilled(i: int) -> bool:
        """A prefilled request (decode instance) takes blocks for its prompt and next token."""
        need = need_blocks(i, int(n_in[i]) + 1)
        if need > free:
            return False
        take(i, need)
        ctx[i] = n_in[i]
        waiting.pop(0)
        running.append(i)
        dec_ids.append(i)
        return True

    watermark = int(0.01 * total_blocks) if not chunked else 0
    while iters < max_iterations:
        admit_arrivals(now)
        if not running and not waiting:
            if nxt >= n:
                break
            now = max(now, float(arrival[order[nxt]]))
            continue
        prefill_ids: list[int] = []
        chunks: list[int] = []
        dec_ids: list[int] = []
        if not chunked:
            # V0: a prefill-only iteration when the head of the queue fits
            tok_sum = 0
            while waiting and len(running) < max_seqs and todo[waiting[0]] > 0:
                i = waiting[0]
                tok = int(todo[i])
                need = need_blocks(i, tok)
                if (prefill_ids and tok_sum + tok > budget_tokens) or need + watermark > free:
                    break
                take(i, need)
                waiting.pop(0)
                running.append(i)
                prefill_ids.append(i)
                chunks.append(tok)
                tok_sum += tok
        if not prefill_ids:
            tokens_left = budget_tokens
            for i in [r for r in running if todo[r] == 0]:  # decodes first
                if i not in running:
                    continue
                need = need_blocks(i, 1)
                while need > free and preempt_last(i):
                    pass
                if need > free:
                    continue
                take(i, need)
                dec_ids.append(i)
                tokens_left -= 1
            if chunked:
                for i in running:  # unfinished prompts continue
                    if todo[i] > 0 and tokens_left > 0:
                        c = min(int(todo[i]), tokens_left)
                        need = need_blocks(i, c)
                        if need > free:
                            continue
                        take(i, need)
                        prefill_ids.append(i)
                        chunks.append(c)
                        tokens_left -= c
            while waiting and tokens_left > 0 and len(running) < max_seqs:
                i = waiting[0]
                if todo[i] == 0:
                    if not admit_prefilled(i):
                        break
                    tokens_left -= 1
                    continue
                if not chunked:
                    break
                c = min(int(todo[i]), tokens_left)
                need = need_blocks(i, c)
                if need > free:
                    break
                take(i, need)
                waiting.pop(0)
                running.append(i)
                prefill_ids.append(i)
                chunks.append(c)
                tokens_left -= c
        if not prefill_ids and not dec_ids:
            if nxt < n:
                now = max(now, float(arrival[order[nxt]]))
                continue
            break  # nothing can run: the KV cache cannot hold a waiting prompt
        if not prefill_ids:
            # ---- decode-only: advance K iterations at once ---------------------------------
            idx = np.array(dec_ids, np.int64)
            c0 = ctx[idx]
            K = int(min((n_out[idx] - gen[idx]).min(), _MAX_SKIP))
            if K > 1:  # the first step's blocks are held; step j needs blocks(c0 + 1 + j)
                extra = (_blocks_arr(c0[:, None] + 1 + np.arange(1, K)[None, :])
                         - _blocks_arr(c0 + 1)[:, None]).sum(axis=0)
                ok = extra <= free
                if not ok.all():
                    K = 1 + int(np.argmin(ok))
            B = len(dec_ids)
            kv_read = float(c0.sum() + B) + B * np.arange(K)
            dt, act = cost.step(B, B, 0.0, 0.0, B, kv_read)
            dt = np.broadcast_to(dt, (K,))
            act = np.broadcast_to(act, (K,))
            if nxt < n and K > 1:  # stop at the first step that starts after an arrival
                limit = float(arrival[order[nxt]]) - now
                K = min(K, 1 + int(np.count_nonzero(np.cumsum(dt)[:-1] < limit)))
            if K > 1:
                newb = _blocks_arr(c0 + K) - _blocks_arr(c0 + 1)
                held[idx] += newb
                free -= int(newb.sum())
            span = float(np.sum(dt[:K]))
            now += span
            busy += span
            active += float(np.sum(act[:K]))
            iters += K
            ctx[idx] += K
            gen[idx] += K
            for i in idx[gen[idx] >= n_out[idx]].tolist():
                finish[i] = now
                free += int(held[i])
                held[i] = 0
                running.remove(i)
            continue
        # ---- one prefill or mixed iteration --------------------------------------------------
        ch = np.array(chunks, np.int64)
        past = ctx[np.array(prefill_ids, np.int64)]
        pairs = float(np.sum(ch * past + ch * (ch + 1) / 2))
        pre_kv = float(np.sum(past + ch))
        B = len(dec_ids)
        dec_kv = float(ctx[np.array(dec_ids, np.int64)].sum() + B) if B else 0.0
        done_pre = [i for i, c in zip(prefill_ids, chunks) if c >= todo[i]]
        dt, act = cost.step(int(ch.sum()) + B, len(done_pre) + B, pairs, pre_kv, B, dec_kv)
        now += float(dt)
        busy += float(dt)
        active += float(act)
        iters += 1
        for i, c in zip(prefill_ids, chunks):
            ctx[i] += c
            todo[i] -= c
        for i in dec_ids:
            ctx[i] += 1
            gen[i] += 1
        for i in done_pre:
            gen[i] += 1
            if np.isnan(first[i]):
                first[i] = now
        for i in done_pre + dec_ids:
            if gen[i] >= n_out[i] and i in running:
                finish[i] = now
                free += int(held[i])
                held[i] = 0
                running.remove(i)
    return InstanceResult(first, finish, now, busy, active, iters, preempt)


def _blocks_arr(tokens: np.ndarray) -> np.ndarray:
    return -(-tokens // BLOCK_TOKENS)
