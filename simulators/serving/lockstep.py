"""Data-parallel ranks of an expert-parallel MoE model stepping together, as vLLM V1 runs them.

With ``--data-parallel-size N --enable-expert-parallel`` every MoE layer exchanges tokens
between the N ranks (:mod:`.costs`: all-gather and reduce-scatter), so every rank must run
every forward pass: vLLM's ``DPEngineCoreProc`` keeps the ranks in one loop, a rank with no
request scheduled runs a dummy batch (``execute_dummy_batch``) while any rank still has work
(``_has_global_unfinished_reqs``), and the collectives make each iteration end when the
slowest rank's does. :func:`simulate_lockstep` runs the ranks' schedulers
(:class:`.engine._Instance`, each its own requests, KV cache and batch) one iteration at a
time on a shared clock: each iteration lasts the longest of the ranks' step times
(:meth:`.costs.StepCost.step`), and an idle rank waits for the next arrival only when every
rank is idle. The time a rank waits for a slower one counts as queueing in its TTFT
breakdown. Iterations where every busy rank only decodes are advanced many at once, as in
:mod:`.engine` (each rank's step times as one vector; their maximum; up to any rank's finish,
block shortage or next arrival). Not modelled: the per-step data-parallel all-reduce of batch sizes (padding to a
common CUDA-graph size).
"""

from __future__ import annotations

import numpy as np
from mlsysgym.simulators.serving.costs import COMPONENTS, StepCost
from mlsysgym.simulators.serving.engine import InstanceResult, _Instance

__all__ = ["simulate_lockstep"]


def simulate_lockstep(cost: StepCost, ranks: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      kv_tokens: int, track_parts: bool = False,
                      max_iterations: int = 50_000_000) -> list[InstanceResult]:
    """Simulate data-parallel ranks in lockstep; ``ranks`` holds each rank's (arrival times,
    prompt lengths, output lengths); one :class:`.engine.InstanceResult` per rank."""
    insts = [_Instance(cost, a, i, o, kv_tokens, None) for a, i, o in ranks]
    if track_parts:
        for inst in insts:
            inst.parts = np.zeros((len(inst.arrival), len(COMPONENTS)))
    now, iters = 0.0, 0
    while iters < max_iterations:
        batches = []
        for inst in insts:
            inst.now = now
            inst.admit_arrivals(now)
            has_work = inst.running or inst.waiting
            batches.append(inst.schedule() if has_work else ([], [], []))
        work = [bool(b[0] or b[2]) for b in batches]
        for inst, w in zip(insts, work):
            if not w:  # an idle rank's outputs are processed at once
                inst.stamp_pending(now)
        if not any(work):
            later = [inst.next_arrival() for inst in insts if inst.nxt < inst.n]
            if not later:
                break  # done, or a prompt no rank's KV cache can hold
            now = max(now, min(later))
            continue
        busy = [(inst, b) for inst, b, w in zip(insts, batches, work) if w]
        if not any(b[0] for _, b in busy):  # decode-only everywhere: many iterations at once
            now += _decode_stretch(insts, busy)
            iters += 1
            continue
        costs = [inst.mixed_cost(*b) for inst, b in busy]
        dt = max(c[2] for c in costs)
        for (inst, b), c in zip(busy, costs):
            inst.step_mixed(*b, cost=c, dt=dt)
        now += dt
        iters += 1
    out = []
    for inst in insts:
        inst.now = max(inst.now, now)
        inst.stamp_pending(inst.now)
        out.append(InstanceResult(inst.first, inst.finish, inst.now, inst.busy, inst.active,
                                  inst.iters, inst.preempt, inst.parts))
    return out


def _decode_stretch(insts: list[_Instance], busy: list[tuple[_Instance, tuple]]) -> float:
    """Advance the ranks with decode-only batches (``busy``) together by as many iterations
    as all of them can run (up to any rank's finish or block shortage, and to the first
    iteration that starts after any rank's next arrival), each as long as the slowest rank's;
    return the time that took."""
    stretches = [inst.decode_stretch(b[2]) for inst, b in busy]
    K = min(len(dt) for dt, _ in stretches)
    dt = np.max([d[:K] for d, _ in stretches], axis=0)
    later = [inst.next_arrival() for inst in insts if inst.nxt < inst.n]
    if later:
        dt = dt[:busy[0][0].run_length_before(dt, min(later))]
    for (inst, b), (_, act) in zip(busy, stretches):
        inst.step_decodes(b[2], (dt, act[:len(dt)]))
    return float(np.sum(dt))
