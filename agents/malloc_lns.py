"""Large-neighbourhood search for mallocGame placements: CP-SAT re-decides a few dozen buffers
at a time, the rest fixed.

A step picks a centre buffer (at random, by per-buffer weights: uniform, or a network's; a
uniform draw may be the best of four by a ranker, :func:`potential_rank`), frees
the buffers whose live ranges overlap the centre's (up to ``size``, nearest in time first) and
lets CP-SAT choose for each of them slow or fast at any offset (:func:`repair`: each may only
take the address gaps that the fixed fast buffers alive with it leave, the domain of its
offset; a 2-D no-overlap keeps the freed buffers apart; the objective is the time of the ops
they use). It reaches placements that changing one decision at a time cannot:
several buffers swapped at once, at offsets no greedy fit would pick. A centre whose repair
finds nothing is not drawn again until a repair elsewhere changes a buffer that overlaps its
neighbourhood in time (its sub-problem is otherwise the same). Time depends only on the modes,
so the agents (:func:`~mlsysgym.agents.learned_malloc.lns_phase`) replay the final placement in
the env with its modes at the env's candidate offsets. Before the LNS they run
:func:`class_sweep`: one repair per class of equal-size buffers (:func:`size_classes`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from mlsysgym.simulators.memory import (
    FAST,
    PREFETCH,
    SLOW,
    MemoryInstance,
    Placement,
    free_gaps,
    memory_boundedness,
    memory_time,
    replay_placement,
)

__all__ = ["CENTRE_FEATURES", "REPAIR_S", "SIZE", "SMALL_BELOW", "SMALL_SIZE", "SWEEP_S", "Replay",
           "auto_size", "candidates", "centre_features", "centre_state", "class_sweep",
           "jump_buffers", "jumps", "lns", "neighbourhood", "next_source", "potential_rank",
           "repair", "repair_gain", "size_classes", "total_time", "uniform_share", "whole"]

RESOLUTION = 1e8  # times in units of all-slow time / RESOLUTION (as cpsat_optimum's)
SIZE = 40  # lns: buffers re-decided per neighbourhood ...
REPAIR_S = 0.3  # ... in at most this many seconds
SMALL_SIZE = 20  # auto_size: this size where the fast memory is at most ...
SMALL_BELOW = 0.020423  # ... this share of the peak live bytes (chosen on the training split)
SWEEP_S = 3.0  # class_sweep: seconds for a class whose first, short repair ran out of time
JUMP_SIZE = 100  # jumps: buffers re-decided at once ...
JUMP_S = 1.0  # ... in this many seconds per jump
PRIOR_S = 1.0  # lns(adapt=True): each centre source's prior time (s) ...
PRIOR_GAIN = 1e-3  # ... and prior saving (fraction of the start time), shared by its mix


def total_time(p: MemoryInstance, mode: np.ndarray) -> float:
    """Total time (µs) of a placement with per-buffer ``mode``."""
    return float(np.maximum(p.compute_us, memory_time(p, mode)).sum())


def repair(p: MemoryInstance, placement: Placement, free: np.ndarray, *, seconds: float,
           seed: int = 0) -> Placement | None:
    """``placement`` with the buffers ``free`` (FAST or SLOW there) re-decided by CP-SAT, each
    slow or fast at any offset, in at most ``seconds`` (1 worker), the rest as they are; the
    solver's best (hinted with the current decisions, so never worse), or None if it found
    none. Buffers that fit in no gap the others leave stay slow. (The fixed buffers enter as
    offset domains, not as fixed rectangles of the no-overlap: CP-SAT's presolve of a few
    hundred fixed rectangles can take seconds past its time limit.)"""
    from ortools.sat.python import cp_model

    free = np.asarray(free, np.int64)
    free = free[(p.size[free] <= p.capacity_bytes) & (placement.mode[free] != PREFETCH)]
    base = placement.mode.copy()
    base[free] = SLOW
    fixed = np.flatnonzero(base != SLOW)
    rs, re = p.residency(base)[fixed], p.end[fixed]
    f_lo, f_hi = placement.offset[fixed], placement.offset[fixed] + p.size[fixed]
    gaps = {}  # per free buffer: the offsets the fixed buffers alive with it leave free
    for b in free:
        alive = (rs <= p.end[b]) & (re >= p.start[b])
        g_lo, g_hi = free_gaps(f_lo[alive], f_hi[alive], int(p.capacity_bytes))
        fit = g_hi - g_lo >= p.size[b]
        if fit.any():
            gaps[int(b)] = [[int(a), int(z - p.size[b])] for a, z in zip(g_lo[fit], g_hi[fit])]
    free = np.array(sorted(gaps), np.int64)
    if free.size == 0:
        return None
    scale = RESOLUTION / p.all_slow_time_us
    m = cp_model.CpModel()
    x = {b: m.new_bool_var(f"x{b}") for b in gaps}
    off = {b: m.new_int_var_from_domain(cp_model.Domain.from_intervals(g), f"o{b}")
           for b, g in gaps.items()}
    t_rects = [m.new_optional_fixed_size_interval_var(int(p.start[b]), int(p.end[b] - p.start[b] + 1),
                                                      x[b], f"t{b}") for b in x]
    a_rects = [m.new_optional_fixed_size_interval_var(off[b], int(p.size[b]), x[b], f"a{b}")
               for b in x]
    m.add_no_overlap_2d(t_rects, a_rects)
    uses = np.concatenate([np.arange(p.use_ptr[b], p.use_ptr[b + 1]) for b in free])
    owner = np.repeat(free, np.diff(p.use_ptr)[free])
    ops = p.use_op[uses]
    by_op = np.argsort(ops, kind="stable")
    ops, owner = ops[by_op], owner[by_op]
    save = np.rint(p.use_save_us[uses[by_op]] * scale).astype(np.int64)
    mem = np.rint(memory_time(p, base) * scale).astype(np.int64)
    comp = np.rint(p.compute_us * scale).astype(np.int64)
    times = []
    first = np.flatnonzero(np.r_[True, ops[1:] != ops[:-1]])
    for lo, hi in zip(first, np.r_[first[1:], len(ops)]):
        i = int(ops[lo])
        t = m.new_int_var(int(min(comp[i], mem[i])), int(max(comp[i], mem[i])), f"time{i}")
        m.add(t >= int(comp[i]))
        m.add(t >= int(mem[i]) - sum(int(s) * x[int(b)]
                                     for s, b in zip(save[lo:hi], owner[lo:hi])))
        times.append(t)
    m.minimize(sum(times))
    for b, lit in x.items():
        m.add_hint(lit, int(placement.mode[b] == FAST))
        m.add_hint(off[b], int(placement.offset[b]) if placement.mode[b] == FAST
                   else gaps[b][0][0])
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(seconds)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = int(seed)
    if solver.solve(m) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    mode, offset = base, placement.offset.copy()
    for b, lit in x.items():
        fast = bool(solver.value(lit))
        mode[b], offset[b] = (FAST, solver.value(off[b])) if fast else (SLOW, -1)
    return Placement(mode, offset)


def neighbourhood(p: MemoryInstance, centre: int, size: int, candidates: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """The ``centre`` and up to ``size`` − 1 of the ``candidates`` (a mask) whose live ranges
    overlap its own, those whose midpoints are nearest its midpoint first (ties at random)."""
    s, e = p.start[centre], p.end[centre]
    idx = np.flatnonzero((p.start <= e) & (p.end >= s) & candidates)
    idx = idx[idx != centre]
    if idx.size > size - 1:
        dist = np.abs((p.start[idx] + p.end[idx]) - (s + e)) + rng.random(idx.size)
        idx = idx[np.argsort(dist)[:size - 1]]
    return np.concatenate([[centre], idx])


def auto_size(p: MemoryInstance) -> int:
    """A neighbourhood size for ``p`` by a rule without learning: :data:`SMALL_SIZE` where its
    fast capacity is at most :data:`SMALL_BELOW` of its peak live bytes (weights included),
    else :data:`SIZE`. The threshold is the one-feature rule that gained most on the training
    split's size rows (``benchmarks/results/learned_malloc_size_features.md``)."""
    return SMALL_SIZE if p.capacity_bytes <= SMALL_BELOW * p.peak_live_bytes else SIZE


def candidates(p: MemoryInstance, placement: Placement) -> np.ndarray:
    """The buffers a neighbourhood may free (a mask): those that fit and are memory-bound or
    fast."""
    return (p.size <= p.capacity_bytes) & ((memory_boundedness(p) > 0) | (placement.mode != SLOW))


@dataclass
class Replay:
    """How an env replays placements — buffers in ``order``, each fast one at one of
    ``n_offsets`` candidate offsets at its turn — and the placements a search kept (``kept``,
    in order, so the fastest last). With ``only``, the search keeps only placements the env
    can replay: a faster repair is taken as the env replays it (:meth:`replayed`)."""

    order: np.ndarray
    n_offsets: int
    only: bool = False
    kept: list[Placement] = field(default_factory=list)
    last: Placement | None = None  # the last placement replayed: the next replay starts from it

    def replayed(self, p: MemoryInstance, placement: Placement) -> Placement:
        """``placement`` as the env can replay it
        (:func:`~mlsysgym.simulators.memory.replay_placement`: with its modes, so its time,
        else demoted where no candidate offset has room), placing again only what can differ
        from the last one replayed."""
        self.last = replay_placement(p, placement, self.order, self.n_offsets, self.last)
        return self.last

    def best(self, p: MemoryInstance, start_t: float, *, deadline: float) -> Placement | None:
        """The fastest placement the env can replay made from :attr:`kept` (the last first):
        the first that replays with its modes (so its time), or failing that the fastest
        demoted one of those tried by ``deadline`` (perf_counter; the last is always tried);
        None if none is faster than ``start_t`` µs. (A search's offsets need not be among the
        env's: one buffer moved can leave the last placement unreplayable, and its demoted
        replay slower than an earlier one.)"""
        best, best_t = None, start_t - 1e-9 * start_t
        for i, placed in enumerate(reversed(self.kept)):
            if total_time(p, placed.mode) >= best_t or (i and time.perf_counter() > deadline):
                break
            replayed = self.replayed(p, placed)
            if np.array_equal(replayed.mode, placed.mode):
                return replayed
            t = total_time(p, replayed.mode)
            if t < best_t:
                best, best_t = replayed, t
        return best


def _scored(p: MemoryInstance, new: Placement | None, best_t: float,
            replay: Replay | None) -> tuple[Placement | None, float]:
    """A repair's result and its time (inf for None); with ``replay.only`` and faster than
    ``best_t``, as the env replays it."""
    if new is None:
        return None, np.inf
    t = total_time(p, new.mode)
    if replay is not None and replay.only and t < best_t:
        new = replay.replayed(p, new)
        t = total_time(p, new.mode)
    return new, t


def _keep(replay: Replay | None, placement: Placement) -> None:
    if replay is not None:
        replay.kept.append(placement)


def repair_gain(p: MemoryInstance, placement: Placement, centre: int, rng: np.random.Generator,
                *, size: int = SIZE, repair_s: float = REPAIR_S) -> float:
    """The fraction of ``placement``'s time that one :func:`repair` of the
    :func:`neighbourhood` of ``centre`` saves (0 if none): the label a centre selector learns."""
    t = total_time(p, placement.mode)
    new = repair(p, placement, neighbourhood(p, centre, size, candidates(p, placement), rng),
                 seconds=repair_s, seed=int(rng.integers(2**31)))
    return 0.0 if new is None else max(t - total_time(p, new.mode), 0.0) / t


def size_classes(p: MemoryInstance, placement: Placement) -> list[np.ndarray]:
    """The :func:`candidates` grouped by size (classes of two or more buffers), the class whose
    buffers could save the most time alone first (Σ of their memory-boundedness × √size)."""
    cand = np.flatnonzero(candidates(p, placement))
    sizes, inverse, counts = np.unique(p.size[cand], return_inverse=True, return_counts=True)
    gain = np.bincount(inverse, np.maximum(memory_boundedness(p)[cand], 0.0)
                       * np.sqrt(p.size[cand]), len(sizes))
    return [cand[inverse == k] for k in np.argsort(-gain, kind="stable") if counts[k] > 1]


def class_sweep(p: MemoryInstance, placement: Placement, *, deadline: float,
                repair_s: float = SWEEP_S, first_s: float = 0.5, seed: int = 0,
                replay: Replay | None = None) -> tuple[Placement, int]:
    """A :func:`repair` of each of the :func:`size_classes` in turn until ``deadline``
    (perf_counter), keeping each result that is faster: first ``first_s`` seconds each, then
    ``repair_s`` each for the classes whose first repair ran out of time (less wherever
    ``deadline`` is nearer). Buffers of one size can trade places at the same addresses, so
    CP-SAT re-decides a whole class at once where neighbourhoods in time would need many
    steps; the short first pass keeps a hard class from using the time of easy ones. Returns
    the best placement and the number of improving repairs (``replay``: each result kept is
    recorded there and, with ``replay.only``, taken as the env replays it)."""
    best, best_t, found = placement, total_time(p, placement.mode), 0
    pending, seconds = size_classes(p, placement), min(first_s, repair_s)
    for _ in range(2 if seconds < repair_s else 1):
        late = []
        for cls in pending:
            left = deadline - time.perf_counter()
            if left < 0.05:
                return best, found
            t0 = time.perf_counter()
            new = repair(p, best, cls, seconds=min(seconds, left), seed=seed)
            if time.perf_counter() - t0 >= 0.9 * seconds:
                late.append(cls)
            new, t = _scored(p, new, best_t, replay)
            if t < best_t - 1e-9 * best_t:
                best, best_t, found = new, t, found + 1
                _keep(replay, new)
        pending, seconds = late, repair_s
    return best, found


def jumps(p: MemoryInstance, placement: Placement, rng: np.random.Generator, *,
          deadline: float, tries: int, score: Callable[[Placement], np.ndarray] | None = None,
          size: int = JUMP_SIZE, repair_s: float = JUMP_S, stop_stuck: bool = False,
          replay: Replay | None = None) -> tuple[Placement, int]:
    """Up to ``tries`` repairs (:func:`repair`, ``repair_s`` each, none starting later than that
    before ``deadline``) of ``size`` :func:`candidates` at once, anywhere in the graph: drawn
    without replacement by the softmax of ``score(placement)`` (per buffer, e.g. a network's
    guess of which buffers a better placement re-decides; Gumbel top-k), or uniformly without
    ``score``; each faster result kept and the next jump drawn from it (``score`` is asked
    again only then). With ``stop_stuck``, a jump that finds nothing faster in all its time
    is the last (the next would likely be as slow, and as fruitless). Returns the best
    placement and the number of improving jumps (``replay``: as :func:`class_sweep`'s)."""
    best, best_t, found = placement, total_time(p, placement.mode), 0
    scored = None  # score(best), while best is unchanged
    for _ in range(tries):
        if deadline - time.perf_counter() < repair_s:
            break
        if score is not None and scored is None:
            scored = np.asarray(score(best), np.float64)
        t0 = time.perf_counter()
        new = repair(p, best, jump_buffers(p, best, rng, scored, size), seconds=repair_s,
                     seed=int(rng.integers(2**31)))
        new, t = _scored(p, new, best_t, replay)
        if t < best_t - 1e-9 * best_t:
            best, best_t, found, scored = new, t, found + 1, None
            _keep(replay, new)
        elif stop_stuck and time.perf_counter() - t0 >= 0.9 * repair_s:
            break
    return best, found


def whole(p: MemoryInstance, placement: Placement, *, seconds: float,
          seed: int = 0) -> tuple[Placement, bool]:
    """CP-SAT on every buffer at once (the exact model of
    :func:`~mlsysgym.agents.malloc_baselines.cpsat_optimum`, one worker), hinted with
    ``placement``, for at most ``seconds``: its placement if faster, else ``placement`` itself,
    and whether the solver proved the one returned optimal."""
    from mlsysgym.agents.malloc_baselines import cpsat_optimum

    sol = cpsat_optimum(p, time_limit_s=seconds, num_workers=1, hint=placement, seed=seed)
    better = total_time(p, sol.placement.mode) < total_time(p, placement.mode)
    return (sol.placement if better else placement), sol.status == "OPTIMAL"


def jump_buffers(p: MemoryInstance, placement: Placement, rng: np.random.Generator,
                 scored: np.ndarray | None, size: int = JUMP_SIZE) -> np.ndarray:
    """``size`` :func:`candidates` of ``placement`` drawn without replacement by the softmax of
    ``scored`` (per buffer; Gumbel top-k), or uniformly if None: a jump's buffers."""
    cand = np.flatnonzero(candidates(p, placement))
    z = rng.gumbel(size=cand.size)
    if scored is not None:
        z += scored[cand]
    return cand[np.argsort(-z)[:size]]


def uniform_share(saved: np.ndarray, spent: np.ndarray) -> float:
    """The share of centres drawn uniformly when the uniform and the network's source have
    ``saved`` (fractions of the time, priors included) in ``spent`` seconds: in proportion to
    their savings per second, kept within [0.1, 0.9]."""
    rate = np.asarray(saved, np.float64) / np.asarray(spent, np.float64)
    return float(np.clip(rate[0] / rate.sum(), 0.1, 0.9))


def next_source(saved: np.ndarray, spent: np.ndarray, rng: np.random.Generator, *,
                mix: float = 0.5, adapt: bool = True, time_share: bool = False) -> int:
    """Which source the next LNS centre comes from (0 uniform, 1 the network's), given what
    each has ``saved`` in ``spent`` seconds (priors included): the uniform one with probability
    ``mix``, or with ``adapt`` its :func:`uniform_share`; with ``adapt`` and ``time_share``
    (no draw) the uniform one while its share of the seconds spent is below that share."""
    share = uniform_share(saved, spent) if adapt else mix
    if adapt and time_share:
        return int(spent[0] / np.sum(spent) >= share)
    return int(rng.random() >= share)


def lns(p: MemoryInstance, placement: Placement, rng: np.random.Generator, *, deadline: float,
        scores: np.ndarray | None = None, mix: float = 0.5, adapt: bool = True,
        size: int = SIZE, repair_s: float = REPAIR_S, time_share: bool = False,
        oracle: int = 0, record: list | None = None,
        ranker: Callable[[np.ndarray], np.ndarray] | None = None, rank_k: int = 4,
        replay: Replay | None = None) -> tuple[Placement, dict[str, float]]:
    """Large-neighbourhood search from ``placement`` until ``deadline`` (perf_counter) or until
    no centre is left: repeat :func:`repair` (``repair_s`` each) on the :func:`neighbourhood`
    of a centre drawn from the candidates (:func:`candidates` of ``placement``); keep the result
    when it is faster. Centres are drawn uniformly, or with ``scores`` (per buffer, e.g. a
    network's logits) from one of two sources: uniformly, or by the scores' softmax over the
    candidates. The uniform source's share is ``mix``; with ``adapt`` it is only the prior:
    each source is then chosen in proportion to the time its repairs have saved per second
    spent (:data:`PRIOR_S` seconds of prior each, the shares kept in [0.1, 0.9]), so a source
    whose repairs are slow or fruitless on this instance is drawn less. With ``time_share``
    (and ``adapt``) those shares are of the time, not of the draws: the next centre comes from
    the uniform source while its share of the seconds spent is below its share, else from the
    network's (drawn by count, a source whose repairs take ten times as long gets ten times
    the time per draw). A centre whose repair finds nothing is set aside until an accepted
    repair changes a buffer whose live range meets its neighbourhood's time span (so a
    concentrated softmax does not repeat the same repair). With ``oracle`` = k > 1 (a ceiling
    of centre selection, for diagnostics; uniform centres only): each step repairs k centres
    drawn from the same placement, keeps the fastest result and is charged the time of the
    repair it keeps, as if a perfect ranker of k draws had drawn that centre alone (the
    deadline moves later by the others' time); ``record``: as :func:`_best_of`'s. With
    ``ranker`` (rows of :func:`centre_features` → a score per row), each uniformly drawn
    centre is the best-scored of ``rank_k`` distinct draws, only its neighbourhood repaired
    (the ranker's time is charged). ``replay``: as :func:`class_sweep`'s.
    Returns the best placement and ``{"repairs", "improvements", "network_repairs",
    "oracle_s"}`` (oracle_s: the seconds the deadline moved)."""
    cand = candidates(p, placement)
    if not cand.any():
        return placement, {"repairs": 0, "improvements": 0, "network_repairs": 0,
                           "oracle_s": 0.0}
    sources = [cand / cand.sum()]
    if scores is not None:
        z = np.where(cand, np.asarray(scores, np.float64), -np.inf)
        z = np.exp(z - z.max())
        sources.append(z / z.sum())
    saved = PRIOR_GAIN * np.array([mix, 1.0 - mix])[:len(sources)]
    spent = np.full(len(sources), PRIOR_S)
    on = cand.copy()  # not set aside
    span = np.zeros((p.n_buffers, 2), np.int64)  # a set-aside centre's neighbourhood's ops
    best, best_t = placement, total_time(p, placement.mode)
    start_t = best_t
    repairs = improvements = network = 0
    slowest = free_s = 0.0
    state = recent = None  # centre_state(p, best) once needed; the last accepted repair's span
    while on.any() and time.perf_counter() + max(slowest, repair_s) < deadline:
        t0 = time.perf_counter()
        k = 0 if len(sources) == 1 else next_source(saved, spent, rng, mix=mix, adapt=adapt,
                                                    time_share=time_share)
        w = sources[k] * on
        if not w.sum() > 0:  # the softmax's remaining weight underflowed
            k, w = 0, sources[0] * on
        if oracle > 1:
            c, free, new, extra = _best_of(p, best, best_t, rng, w, oracle, size, cand,
                                           repair_s, on, span, record, recent)
            deadline, free_s, t0 = deadline + extra, free_s + extra, t0 + extra
        elif ranker is not None and k == 0:
            centres, frees = _draw(p, rng, w, rank_k, size, cand)
            state = centre_state(p, best) if state is None else state
            i = int(np.argmax(ranker(centre_features(p, best, centres, frees, state, recent))))
            c, free = int(centres[i]), frees[i]
            new = repair(p, best, free, seconds=repair_s, seed=int(rng.integers(2**31)))
        else:
            c = int(rng.choice(p.n_buffers, p=w / w.sum()))
            free = neighbourhood(p, c, size, cand, rng)
            new = repair(p, best, free, seconds=repair_s, seed=int(rng.integers(2**31)))
        repairs, network = repairs + 1, network + k
        new, t = _scored(p, new, best_t, replay)
        if t < best_t - 1e-9 * best_t:
            changed = np.flatnonzero((new.mode != best.mode) | (new.offset != best.offset))
            aside = np.flatnonzero(cand & ~on)
            lo, hi = p.start[changed], p.end[changed]
            on[aside[((span[aside, 0, None] <= hi) & (span[aside, 1, None] >= lo)).any(1)]] = True
            state, recent = None, (int(lo.min()), int(hi.max()))
            saved[k] += (best_t - t) / start_t
            improvements += 1
            best, best_t = new, t
            _keep(replay, new)
        else:
            on[c] = False
            span[c] = p.start[free].min(), p.end[free].max()
        took = time.perf_counter() - t0
        spent[k] += took
        slowest = max(slowest, took)
    return best, {"repairs": repairs, "improvements": improvements, "network_repairs": network,
                  "oracle_s": free_s}


CENTRE_FEATURES = ("excess", "slow_potential", "fast_saving", "fast_bytes", "headroom",
                   "centre_fast", "centre_potential", "span", "freed", "recent", "capacity_peak")


def centre_state(p: MemoryInstance, placement: Placement) -> dict[str, np.ndarray | float]:
    """What :func:`centre_features` reads of ``placement``, computed once per placement: its
    total time, each op's memory time above its compute time (``excess``), the fast bytes
    resident at each op, and per buffer the time its uses would save at most if it alone
    turned fast (``potential``, capped by the excess; 0 for fast buffers) and saves being fast
    (``saving``)."""
    mem = memory_time(p, placement.mode)
    excess = np.maximum(mem - p.compute_us, 0.0)
    fast = placement.mode != SLOW
    occ = np.zeros(p.n_ops + 1)
    np.add.at(occ, p.residency(placement.mode)[fast], p.size[fast])
    np.add.at(occ, p.end[fast] + 1, -p.size[fast])
    owner = np.repeat(np.arange(p.n_buffers), np.diff(p.use_ptr))
    cap = np.minimum(p.use_save_us, excess[p.use_op])
    return {"total": float(np.maximum(p.compute_us, mem).sum()), "excess": excess,
            "occupied": np.cumsum(occ)[:-1],
            "potential": np.bincount(owner, cap, p.n_buffers) * ~fast,
            "saving": np.bincount(owner, p.use_save_us, p.n_buffers) * fast}


def centre_features(p: MemoryInstance, placement: Placement, centres: np.ndarray,
                    frees: list[np.ndarray], state: dict, recent: tuple[int, int] | None,
                    ) -> np.ndarray:
    """Per LNS centre (rows; :data:`CENTRE_FEATURES`), what a ranker of centres sees in
    ``placement`` (``state``: its :func:`centre_state`): over its neighbourhood ``frees[i]``'s
    time span, the memory time above compute (% of the total time), its slow buffers' potential
    and its fast buffers' saving (%), the fast share of its bytes, the capacity left at the
    fullest op (share), whether the centre is fast and its own potential (%), the span's and
    the neighbourhood's lengths (shares of the ops and of the buffers), whether the span
    meets the last accepted repair's (``recent``) and the capacity over the peak working
    set."""
    total, out = state["total"], np.zeros((len(centres), len(CENTRE_FEATURES)), np.float32)
    for i, (c, free) in enumerate(zip(centres, frees)):
        lo, hi = int(p.start[free].min()), int(p.end[free].max())
        fast = placement.mode[free] != SLOW
        out[i] = (100 * state["excess"][lo:hi + 1].sum() / total,
                  100 * state["potential"][free].sum() / total,
                  100 * state["saving"][free].sum() / total,
                  p.size[free][fast].sum() / max(p.size[free].sum(), 1),
                  1 - state["occupied"][lo:hi + 1].max() / p.capacity_bytes,
                  float(placement.mode[c] != SLOW), 100 * state["potential"][c] / total,
                  (hi - lo + 1) / p.n_ops, free.size / p.n_buffers,
                  float(recent is not None and lo <= recent[1] and hi >= recent[0]),
                  p.capacity_bytes / max(p.peak_live_bytes, 1))
    return out


def potential_rank(features: np.ndarray) -> np.ndarray:
    """A ranker of LNS centres without learning: the potential of their neighbourhoods' slow
    buffers (the ``slow_potential`` column of :func:`centre_features`)."""
    return features[:, CENTRE_FEATURES.index("slow_potential")]


def _draw(p: MemoryInstance, rng: np.random.Generator, w: np.ndarray, k: int, size: int,
          cand: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Up to ``k`` distinct centres drawn by the weights ``w`` and their neighbourhoods."""
    centres = rng.choice(p.n_buffers, size=min(k, int(np.count_nonzero(w))), replace=False,
                         p=w / w.sum())
    return centres, [neighbourhood(p, int(c), size, cand, rng) for c in centres]


def _best_of(p: MemoryInstance, best: Placement, t_best: float, rng: np.random.Generator,
             w: np.ndarray, k: int, size: int, cand: np.ndarray, repair_s: float, on: np.ndarray,
             span: np.ndarray, record: list | None, recent: tuple[int, int] | None,
             ) -> tuple[int, np.ndarray, Placement | None, float]:
    """:func:`lns`'s oracle step: :func:`repair` of the neighbourhoods of up to ``k`` distinct
    centres drawn by ``w`` from ``best`` (whose time is ``t_best``); the fastest (centre,
    freed buffers, result) and the seconds the others took. The others' centres that found
    nothing are set aside as :func:`lns` sets aside a fruitless one (``on``, ``span``). With
    ``record`` (a list), the step's (centres, :func:`centre_features`, savings as fractions of
    the time, seconds) is appended: a ranker's training data."""
    centres, frees = _draw(p, rng, w, k, size, cand)
    tried = []
    for c, free in zip(centres, frees):
        t0 = time.perf_counter()
        new = repair(p, best, free, seconds=repair_s, seed=int(rng.integers(2**31)))
        t = np.inf if new is None else total_time(p, new.mode)
        tried.append((t if t < t_best - 1e-9 * t_best else np.inf, int(c), free, new,
                      time.perf_counter() - t0))
    if record is not None:
        record.append((centres, centre_features(p, best, centres, frees, centre_state(p, best),
                                                recent),
                       np.array([(t_best - x[0]) / t_best if x[0] < np.inf else 0.0
                                 for x in tried]), np.array([x[4] for x in tried])))
    kept = min(range(len(tried)), key=lambda i: tried[i][0])
    for i, (t, c, free, _, _) in enumerate(tried):
        if i != kept and t == np.inf:
            on[c], span[c] = False, (p.start[free].min(), p.end[free].max())
    _, c, free, new, _ = tried[kept]
    return c, free, new, sum(x[4] for j, x in enumerate(tried) if j != kept)
