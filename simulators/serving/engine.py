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
prompt already in the KV cache and emit their first token at their first decode step (the
decode instance generates all ``n_out`` tokens, as behind vLLM's disaggregation proxy).

With ``track_parts=True`` every request also accumulates, over the iterations that computed
its prompt (up to the one that emitted its first token), each iteration's time split into
:data:`.costs.COMPONENTS` (``InstanceResult.ttft_parts``, one row per request): the TTFT
breakdown. The rest of its time to first token is queueing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mlsysgym.simulators.serving.costs import COMPONENTS, StepCost
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
    ttft_parts: np.ndarray | None = None  # (requests, len(COMPONENTS)) with track_parts


def _blocks(tokens: int) -> int:
    """KV blocks that hold ``tokens`` tokens."""
    return -(-tokens // BLOCK_TOKENS)


def simulate_instance(cost: StepCost, arrival: np.ndarray, n_in: np.ndarray, n_out: np.ndarray,
                      kv_tokens: int, prefilled: np.ndarray | None = None,
                      max_iterations: int = 50_000_000,
                      track_parts: bool = False) -> InstanceResult:
    """Simulate one instance serving requests (arrival times, prompt and output lengths);
    ``track_parts`` also returns each request's TTFT breakdown (module docstring)."""
    inst = _Instance(cost, arrival, n_in, n_out, kv_tokens, prefilled)
    if track_parts:
        inst.parts = np.zeros((len(inst.arrival), len(COMPONENTS)))
    return inst.run(max_iterations)


class _Instance:
    """The scheduler's state while one instance serves its requests."""

    def __init__(self, cost: StepCost, arrival: np.ndarray, n_in: np.ndarray,
                 n_out: np.ndarray, kv_tokens: int, prefilled: np.ndarray | None) -> None:
        plan = cost.plan
        n = len(arrival)
        self.cost = cost
        self.n = n
        self.arrival = np.asarray(arrival, float)
        self.n_in = np.asarray(n_in, np.int64)
        self.n_out = np.asarray(n_out, np.int64)
        self.pre = np.zeros(n, bool) if prefilled is None else np.asarray(prefilled, bool)
        self.order = np.argsort(self.arrival, kind="stable")
        total_blocks = kv_tokens // BLOCK_TOKENS
        self.free = total_blocks
        self.max_seqs = plan.max_num_seqs
        self.budget_tokens = plan.max_batched_tokens
        self.chunked = plan.chunked_prefill
        self.watermark = int(0.01 * total_blocks) if not self.chunked else 0
        self.first = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.ctx = np.zeros(n, np.int64)        # tokens in the KV cache
        self.todo = np.zeros(n, np.int64)       # prompt tokens still to compute
        self.gen = np.zeros(n, np.int64)        # output tokens generated
        self.held = np.zeros(n, np.int64)       # KV blocks held
        self.waiting: list[int] = []
        self.running: list[int] = []            # admission order (last = first to preempt)
        self.nxt = 0
        self.now = 0.0
        self.busy = self.active = 0.0
        self.iters = self.preempt = 0
        self.parts: np.ndarray | None = None
        self.pending: list[int] = []            # first tokens awaiting output processing
        self.pending_seqs = 0                   # sequences of the iteration that made them
        self.done_s = 0.0                       # end of the iteration that made them

    def run(self, max_iterations: int) -> InstanceResult:
        """Iterate the scheduler until every request is served (or nothing more can run)."""
        while self.iters < max_iterations:
            self.admit_arrivals(self.now)
            if not self.running and not self.waiting:
                self.stamp_pending(self.now)
                if self.nxt >= self.n:
                    break
                self.now = max(self.now, self.next_arrival())
                continue
            prefill_ids, chunks, dec_ids = self.schedule()
            if not prefill_ids and not dec_ids:
                self.stamp_pending(self.now)
                if self.nxt < self.n:
                    self.now = max(self.now, self.next_arrival())
                    continue
                break  # nothing can run: the KV cache cannot hold a waiting prompt
            if prefill_ids:
                self.step_mixed(prefill_ids, chunks, dec_ids)
            else:
                self.step_decodes(dec_ids)
        self.stamp_pending(self.now)
        return InstanceResult(self.first, self.finish, self.now, self.busy, self.active,
                              self.iters, self.preempt, self.parts)

    def add_parts(self, ids: np.ndarray, args: tuple, seqs: int | None = None) -> None:
        """Add one iteration's time split (:meth:`StepCost.parts` of ``args``) to the TTFT
        breakdown of requests ``ids`` (only when tracking)."""
        if self.parts is None or not len(ids):
            return
        p = self.cost.parts(*args, seqs=seqs)
        self.parts[ids] += np.array([float(p[c]) for c in COMPONENTS])

    def first_tokens(self, ids: list[int], seqs: int) -> None:
        """Requests ``ids`` got their first token in the iteration of ``seqs`` sequences that
        ends now: stamp it now, or with an async output processor (``EngineOverheads.
        async_output``, vLLM V0) when the next iteration has processed that iteration's
        outputs (:meth:`stamp_pending`)."""
        if not self.cost.overheads.async_output:
            self.first[ids] = self.now
            return
        if self.pending:  # an iteration without a successor ended before this one
            self.stamp_pending(self.now)
        self.pending, self.pending_seqs = list(ids), seqs

    def stamp_pending(self, callback_s: float) -> None:
        """Stamp the pending first tokens: the output processing of their iteration runs at
        ``callback_s`` (the next iteration's start + CPU time, or its end when the engine
        goes idle) and takes ``output_s + output_per_seq_s · sequences``; the delay past the
        iteration's end counts as engine CPU in the TTFT breakdown."""
        if not self.pending:
            return
        o = self.cost.overheads
        ids = np.array(self.pending, np.int64)
        t = callback_s + o.output_s + o.output_per_seq_s * self.pending_seqs
        self.first[ids] = t
        fin = self.finish[ids]  # a request that also finished is processed (stamped) then too
        self.finish[ids] = np.where(np.isnan(fin), fin, np.maximum(fin, t))
        if self.parts is not None:
            self.parts[ids, COMPONENTS.index("cpu")] += t - self.done_s
        self.pending = []

    def start_step(self, seqs: int, has_pre: bool) -> None:
        """An iteration of ``seqs`` sequences starts now: it processes the previous one's
        outputs after its CPU work and, if it runs eagerly, after launching its kernels."""
        if self.pending:
            cpu = self.cost.cpu_s(seqs) + self.cost.dispatch_s(has_pre)
            self.stamp_pending(self.now + float(cpu))

    def next_arrival(self) -> float:
        """Arrival time of the next request not yet admitted."""
        return float(self.arrival[self.order[self.nxt]])

    def admit_arrivals(self, t: float) -> None:
        """Queue every request that has arrived by ``t``."""
        arrival, order, n = self.arrival, self.order, self.n
        while self.nxt < n and arrival[order[self.nxt]] <= t:
            i = int(order[self.nxt])
            self.todo[i] = 0 if self.pre[i] else self.n_in[i]
            self.waiting.append(i)
            self.nxt += 1

    def need_blocks(self, i: int, extra: int) -> int:
        """KV blocks sequence ``i`` lacks to hold ``extra`` more tokens."""
        return _blocks(int(self.ctx[i]) + extra) - int(self.held[i])

    def take(self, i: int, need: int) -> None:
        """Give sequence ``i`` ``need`` free KV blocks."""
        self.free -= need
        self.held[i] += need

    def release(self, i: int) -> None:
        """Sequence ``i`` finishes now and frees its KV blocks."""
        self.finish[i] = self.now
        self.free += int(self.held[i])
        self.held[i] = 0
        self.running.remove(i)

    def preempt_last(self, protect: int, scheduled: set[int] = frozenset()) -> bool:
        """Preempt (recompute) the most recently admitted running sequence other than
        ``protect`` and those already ``scheduled`` in this iteration's batch."""
        running = self.running
        for j in range(len(running) - 1, -1, -1):
            v = running[j]
            if v == protect or v in scheduled:
                continue
            running.pop(j)
            self.free += int(self.held[v])
            self.held[v] = 0
            self.todo[v] = self.n_in[v] + self.gen[v]
            self.ctx[v] = 0
            self.waiting.insert(0, v)
            self.preempt += 1
            return True
        return False

    def admit_prefilled(self, i: int, dec_ids: list[int]) -> bool:
        """A prefilled request (decode instance) takes blocks for its prompt and next token."""
        need = self.need_blocks(i, int(self.n_in[i]) + 1)
        if need > self.free:
            return False
        self.take(i, need)
        self.ctx[i] = self.n_in[i]
        self.waiting.pop(0)
        self.running.append(i)
        dec_ids.append(i)
        return True

    def schedule(self) -> tuple[list[int], list[int], list[int]]:
        """This iteration's batch: prefilled sequences, their chunk sizes, decoding sequences."""
        prefill_ids: list[int] = []
        chunks: list[int] = []
        dec_ids: list[int] = []
        if not self.chunked:
            self.schedule_prefill_only(prefill_ids, chunks)
        if not prefill_ids:
            tokens_left = self.schedule_decodes(dec_ids)
            if self.chunked:
                tokens_left = self.continue_prompts(tokens_left, prefill_ids, chunks)
            self.admit_waiting(tokens_left, prefill_ids, chunks, dec_ids)
        return prefill_ids, chunks, dec_ids

    def schedule_prefill_only(self, prefill_ids: list[int], chunks: list[int]) -> None:
        """V0: a prefill-only iteration when the head of the queue fits."""
        waiting, running, todo = self.waiting, self.running, self.todo
        tok_sum = 0
        while waiting and len(running) < self.max_seqs and todo[waiting[0]] > 0:
            i = waiting[0]
            tok = int(todo[i])
            need = self.need_blocks(i, tok)
            if (prefill_ids and tok_sum + tok > self.budget_tokens) \
                    or need + self.watermark > self.free:
                break
            self.take(i, need)
            waiting.pop(0)
            running.append(i)
            prefill_ids.append(i)
            chunks.append(tok)
            tok_sum += tok

    def schedule_decodes(self, dec_ids: list[int]) -> int:
        """Running sequences decode one token each first (preempting for KV blocks); the
        batch's token budget left."""
        tokens_left = self.budget_tokens
        running, todo = self.running, self.todo
        scheduled: set[int] = set()
        for i in [r for r in running if todo[r] == 0]:
            if i not in running:
                continue
            need = self.need_blocks(i, 1)
            while need > self.free and self.preempt_last(i, scheduled):
                pass
            if need > self.free:
                continue
            self.take(i, need)
            dec_ids.append(i)
            scheduled.add(i)
            tokens_left -= 1
        return tokens_left

    def continue_prompts(self, tokens_left: int, prefill_ids: list[int],
                         chunks: list[int]) -> int:
        """Unfinished prompts continue with chunks; the batch's token budget left."""
        todo = self.todo
        for i in self.running:
            if todo[i] > 0 and tokens_left > 0:
                c = min(int(todo[i]), tokens_left)
                need = self.need_blocks(i, c)
                if need > self.free:
                    continue
                self.take(i, need)
                prefill_ids.append(i)
                chunks.append(c)
                tokens_left -= c
        return tokens_left

    def admit_waiting(self, tokens_left: int, prefill_ids: list[int], chunks: list[int],
                      dec_ids: list[int]) -> None:
        """Admit waiting requests first come, first served while the batch has room."""
        waiting, running, todo = self.waiting, self.running, self.todo
        while waiting and tokens_left > 0 and len(running) < self.max_seqs:
            i = waiting[0]
            if todo[i] == 0:
                if not self.admit_prefilled(i, dec_ids):
                    break
                tokens_left -= 1
                continue
            if not self.chunked:
                break
            c = min(int(todo[i]), tokens_left)
            need = self.need_blocks(i, c)
            if need > self.free:
                break
            self.take(i, need)
            waiting.pop(0)
            running.append(i)
            prefill_ids.append(i)
            chunks.append(c)
            tokens_left -= c

    def decode_run_length(self, c0: np.ndarray, idx: np.ndarray) -> int:
        """How many decode-only iterations can run before a finish or a KV block shortage."""
        K = int(min((self.n_out[idx] - self.gen[idx]).min(), _MAX_SKIP))
        if K > 1:  # the first step's blocks are held; step j needs blocks(c0 + 1 + j)
            extra = (_blocks_arr(c0[:, None] + 1 + np.arange(1, K)[None, :])
                     - _blocks_arr(c0 + 1)[:, None]).sum(axis=0)
            ok = extra <= self.free
            if not ok.all():
                K = 1 + int(np.argmin(ok))
        return K

    def decode_stretch(self, dec_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(time, active time) of each of the decode-only iterations that can run before a
        finish or a block shortage (:meth:`decode_run_length`), not yet cut at an arrival."""
        idx = np.array(dec_ids, np.int64)
        c0 = self.ctx[idx]
        K = self.decode_run_length(c0, idx)
        B = len(dec_ids)
        dt, act = self.cost.step(B, B, 0.0, 0.0, B, float(c0.sum() + B) + B * np.arange(K))
        return np.broadcast_to(dt, (K,)), np.broadcast_to(act, (K,))

    def run_length_before(self, dt: np.ndarray, t: float) -> int:
        """Iterations of times ``dt`` to run from now: all, or up to the first one that starts
        after ``t`` (an arrival)."""
        return min(len(dt), 1 + int(np.count_nonzero(np.cumsum(dt)[:-1] < t - self.now)))

    def step_decodes(self, dec_ids: list[int],
                     stretch: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Decode-only: advance K iterations at once (up to a finish, a block shortage or the
        next arrival); ``stretch``: the K iterations' (times, active times) when set from
        outside (data-parallel ranks stepping together), else this instance's own."""
        idx = np.array(dec_ids, np.int64)
        c0 = self.ctx[idx]
        B = len(dec_ids)
        if stretch is None:
            dt, act = self.decode_stretch(dec_ids)
            if self.nxt < self.n:
                dt = dt[:self.run_length_before(dt, self.next_arrival())]
        else:
            dt, act = stretch
        K = len(dt)
        kv_read = float(c0.sum() + B)
        if K > 1:
            newb = _blocks_arr(c0 + K) - _blocks_arr(c0 + 1)
            self.held[idx] += newb
            self.free -= int(newb.sum())
        fresh = idx[np.isnan(self.first[idx])]  # prefilled sequences' first decode step
        fresh = fresh[~np.isin(fresh, self.pending)]
        self.start_step(B, False)
        self.add_parts(fresh, (B, B, 0.0, 0.0, B, kv_read))
        if len(fresh):
            t_end, self.now = self.now, self.now + float(dt[0])
            self.done_s = self.now
            self.first_tokens(fresh.tolist(), B)
            self.now = t_end
        span = float(np.sum(dt))
        self.now += span
        self.busy += span
        self.active += float(np.sum(act[:K]))
        self.iters += K
        self.ctx[idx] += K
        self.gen[idx] += K
        for i in idx[self.gen[idx] >= self.n_out[idx]].tolist():
            self.release(i)

    def mixed_cost(self, prefill_ids: list[int], chunks: list[int],
                   dec_ids: list[int]) -> tuple[tuple, list[int], float, float]:
        """An iteration with these prompt chunks and decodes: its :meth:`StepCost.step`
        arguments, the prompts it finishes, its time and its active time."""
        ctx, todo = self.ctx, self.todo
        ch = np.array(chunks, np.int64)
        past = ctx[np.array(prefill_ids, np.int64)]
        pairs = float(np.sum(ch * past + ch * (ch + 1) / 2))
        pre_kv = float(np.sum(past + ch))
        B = len(dec_ids)
        dec_kv = float(ctx[np.array(dec_ids, np.int64)].sum() + B) if B else 0.0
        done_pre = [i for i, c in zip(prefill_ids, chunks) if c >= todo[i]]
        args = (int(ch.sum()) + B, len(done_pre) + B, pairs, pre_kv, B, dec_kv)
        dt, act = self.cost.step(*args, seqs=len(prefill_ids) + B)
        return args, done_pre, float(dt), float(act)

    def step_mixed(self, prefill_ids: list[int], chunks: list[int], dec_ids: list[int],
                   cost: tuple[tuple, list[int], float, float] | None = None,
                   dt: float | None = None) -> None:
        """One prefill or mixed iteration; ``cost``: its :meth:`mixed_cost` if already known,
        ``dt``: its time when set from outside (the slowest of data-parallel ranks stepping
        together)."""
        ctx, todo, gen = self.ctx, self.todo, self.gen
        B = len(dec_ids)
        args, done_pre, own, act = cost or self.mixed_cost(prefill_ids, chunks, dec_ids)
        dt = own if dt is None else dt
        self.start_step(len(prefill_ids) + B, bool(prefill_ids))
        if self.parts is not None:
            ids = np.array(prefill_ids + dec_ids, np.int64)
            self.add_parts(ids[np.isnan(self.first[ids])], args, len(prefill_ids) + B)
        self.now += float(dt)
        self.done_s = self.now
        self.busy += float(dt)
        self.active += float(act)
        self.iters += 1
        for i, c in zip(prefill_ids, chunks):
            ctx[i] += c
            todo[i] -= c
        for i in dec_ids:
            ctx[i] += 1
            gen[i] += 1
        self.first_tokens([i for i in done_pre + dec_ids if np.isnan(self.first[i])],
                          len(prefill_ids) + B)
        for i in done_pre:
            gen[i] += 1
        for i in done_pre + dec_ids:
            if gen[i] >= self.n_out[i] and i in self.running:
                self.release(i)


def _blocks_arr(tokens: np.ndarray) -> np.ndarray:
    """KV blocks that hold each of ``tokens`` tokens."""
    return -(-tokens // BLOCK_TOKENS)
