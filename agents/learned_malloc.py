"""A learned mallocGame policy that carries over to graphs it was not trained on.

The policy is a :mod:`~mlsysgym.agents.gnn` graph network over one instance: a node per buffer
(:data:`NODE_FEATURES`, all read from the instance and the XLA-style heuristic's placement), an
edge from each buffer to its ``k`` most memory-bound rivals for the same addresses (live ranges
that overlap) and between the inputs and outputs of every op (producer / consumer links). Its
per-node logit scores a step of the search at that buffer: how likely it is to lower the time.
It is computed once per instance (one ONNX Runtime call, no torch).

Agents (problem kind ``"malloc"``), default time limit 10 s, each in two phases:

1. :func:`guided_search` for at most a fifth of the time (1 − ``lns_share``): the heuristic's
   episode, then first-improvement local search — change one buffer's decision (slow ↔ best
   fit, or the second candidate offset), complete the buffers after it greedily (best fit
   whenever it fits and lowers the time), eject newcomers (as ``local_search``'s ejection
   chains) while no better — with the moves in XLA order (most memory-bound first; equal
   priorities in a seeded random order);
2. :func:`lns_phase` until the end: CP-SAT re-decides every buffer of one size at once, class
   by class (0.5 s each, then ``sweep_s`` seconds for those that needed more), then
   ``jumps`` (3) jumps of 1 s — CP-SAT re-decides 100 buffers anywhere in the graph at once
   (their 3 s kept from the sweep; a jump that finds nothing in all its second is the last)
   — then large-neighbourhood search (:mod:`~mlsysgym.agents.malloc_lns`) re-decides the few
   dozen buffers around a centre buffer at a time; if it runs out of centres, CP-SAT
   re-decides every buffer at once in the time left (it often proves the placement optimal
   there).

* ``learned`` — the LNS centres are drawn by the LNS policy's scores
  (``agents/policies/malloc_lns_gnn.onnx``: the same network trained on the time one repair
  around each centre saves, :func:`~mlsysgym.agents.malloc_lns.repair_gain`) or uniformly
  (each the best of four draws by :func:`~mlsysgym.agents.malloc_lns.potential_rank`, the
  time its neighbourhood's slow buffers could save at most), half the time each at first,
  then each way in proportion to the time its repairs have saved per second on this
  instance, as shares of the LNS's seconds, not of its draws;
  each jump's 100 buffers are drawn by the jump policy's scores of the placement at hand
  (``agents/policies/malloc_jump_gnn.onnx``: the same network trained on which buffers
  CP-SAT's better placement re-decides where the ablation's LNS starts,
  ``train_malloc_policy --moves differ``);
* ``learned_no_network`` — the moves in XLA order, all centres uniformly (the best of four
  by the same rule) and the jump buffers uniformly: the ablation "same search without the
  network".

With ``lns_share=0``, ``learned`` is the earlier local search alone, its moves ordered by
the move policy (``agents/policies/malloc_gnn.onnx``, trained on :func:`move_gains`): XLA
order with the moves the network gives less than even odds deferred (``prune``), or all by
its score. Each policy has its card beside it (training split, instances, seeds, CPU time,
the target fingerprint it was trained on); see :func:`load_policy` for the checks made
before use. Why each step is there, and the designs measured and rejected on the way,
numbered as BENCHMARKS.md numbers them: its section on the learned mallocGame policy.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents import policies
from mlsysgym.agents.base import AgentConfigError, Budget, BudgetedProblem, Problem, register_agent
from mlsysgym.agents.malloc_baselines import (
    actions_for,
    xla_greedy,
)
from mlsysgym.agents.malloc_lns import (
    JUMP_S,
    SWEEP_S,
    Replay,
    auto_size,
    class_sweep,
    lns,
    potential_rank,
    total_time,
    whole,
)
from mlsysgym.agents.malloc_lns import jumps as lns_jumps
from mlsysgym.agents.malloc_problem import malloc_of
from mlsysgym.agents.policies import PolicyCardError, PolicyTargetWarning
from mlsysgym.agents.sequential import episode_design
from mlsysgym.simulators.memory import (
    FAST,
    SLOW,
    AllocationState,
    MemoryInstance,
    Placement,
    xla_order,
)

__all__ = ["EDGE_FEATURES", "JUMP_POLICY_PATH", "LNS_POLICY_PATH", "NODE_FEATURES", "POLICY_PATH", "PolicyCardError",
           "PolicyTargetWarning", "decode", "heuristic_fast", "improved_episode", "instance_graph", "learned_malloc", "lns_start", "load_policy",
           "move_gains", "network_scores", "no_network_malloc"]

NODE_FEATURES = ("size_cap", "log_size_cap", "start", "end", "length", "boundedness",
                 "xla_rank", "saving", "uses", "is_weight", "produced", "heuristic_fast",
                 "pressure", "memory_bound_uses", "fits", "capacity_peak", "log_buffers")
EDGE_FEATURES = ("rival", "dataflow", "overlap", "size_cap")
RIVALS = 8
POLICY_PATH = Path(__file__).resolve().parent / "policies" / "malloc_gnn.onnx"
LNS_POLICY_PATH = POLICY_PATH.with_name("malloc_lns_gnn.onnx")
JUMP_POLICY_PATH = POLICY_PATH.with_name("malloc_jump_gnn.onnx")
DEFAULT_SECONDS = 10.0


# ---- the instance as a graph ---------------------------------------------------------------
def _pressure(p: MemoryInstance) -> np.ndarray:
    """Per buffer: the peak bytes live during its live range ÷ capacity."""
    diff = np.zeros(p.n_ops + 1, np.int64)
    np.add.at(diff, p.start, p.size)
    np.add.at(diff, p.end + 1, -p.size)
    live = np.cumsum(diff)[:-1].astype(np.float64)
    return _range_max(live, p.start, p.end) / p.capacity_bytes


def _range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """max(values[lo_i:hi_i + 1]) per i, by a sparse table (vectorized)."""
    table = [values]
    while (1 << len(table)) <= len(values):
        prev, step = table[-1], 1 << (len(table) - 1)
        table.append(np.maximum(prev[:-step], prev[step:]))
    k = np.floor(np.log2(hi - lo + 1)).astype(int)
    out = np.empty(len(lo))
    for j in np.unique(k):
        sel = k == j
        out[sel] = np.maximum(table[j][lo[sel]], table[j][hi[sel] - (1 << j) + 1])
    return out


def _node_features(p: MemoryInstance, order: np.ndarray, heuristic_fast: np.ndarray) -> np.ndarray:
    n, n_ops, cap = p.n_buffers, p.n_ops, float(p.capacity_bytes)
    slack = p.mem_slow_us - p.compute_us
    per_use = np.minimum(p.use_save_us, slack[p.use_op])
    uses = np.diff(p.use_ptr)
    nz = uses > 0
    saving = np.zeros(n)
    saving[nz] = np.add.reduceat(per_use, p.use_ptr[:-1][nz])
    mem_uses = np.zeros(n)
    mem_uses[nz] = np.add.reduceat((slack[p.use_op] > 0).astype(float), p.use_ptr[:-1][nz])
    bnd = saving / np.sqrt(p.size)
    rank = np.empty(n)
    rank[order] = np.arange(n) / max(n - 1, 1)
    ratio = p.size / cap
    x = np.column_stack([
        np.minimum(ratio, 4.0) / 4.0, np.clip(np.log2(ratio), -20.0, 4.0) / 20.0,
        p.start / n_ops, p.end / n_ops, (p.end - p.start + 1) / n_ops,
        bnd / max(np.abs(bnd).max(), 1e-30), rank, saving / max(np.abs(saving).max(), 1e-30),
        uses / max(uses.max(), 1), p.is_weight, p.produced, heuristic_fast,
        np.log2(1.0 + _pressure(p)) / 5.0, mem_uses / np.maximum(uses, 1), ratio <= 1.0,
        np.full(n, min(cap / p.peak_live_bytes, 1.0)), np.full(n, np.log10(n) / 4.0)])
    return x.astype(np.float32)


def _rival_edges(p: MemoryInstance, bnd: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rival, buffer) pairs: each buffer's ``k`` most memory-bound overlapping buffers."""
    n = p.n_buffers
    src, dst = [], []
    for lo in range(0, n, 256):
        rows = np.arange(lo, min(lo + 256, n))
        ov = (p.start[rows, None] <= p.end[None, :]) & (p.start[None, :] <= p.end[rows, None])
        ov[np.arange(len(rows)), rows] = False
        score = np.where(ov, bnd[None, :], -np.inf)
        kk = min(k, n - 1)
        if kk < 1:
            break
        top = np.argpartition(-score, kk - 1, axis=1)[:, :kk]
        keep = np.isfinite(np.take_along_axis(score, top, axis=1))
        src.append(top[keep])
        dst.append(np.repeat(rows, kk).reshape(len(rows), kk)[keep])
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)


def _dataflow_edges(p: MemoryInstance) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of buffers used by the same op where one of them is that op's first use of a
    produced buffer (its output) and the other is read there (both directions)."""
    buf = np.repeat(np.arange(p.n_buffers), np.diff(p.use_ptr))
    is_out = p.produced[buf] & (p.use_op == p.start[buf])
    outs = {}
    for b, op in zip(buf[is_out], p.use_op[is_out]):
        outs.setdefault(int(op), []).append(int(b))
    src, dst = [], []
    for b, op in zip(buf[~is_out], p.use_op[~is_out]):
        for o in outs.get(int(op), ()):
            src += [b, o]
            dst += [o, b]
    return np.asarray(src, np.int64), np.asarray(dst, np.int64)


def heuristic_fast(p: MemoryInstance, order: np.ndarray) -> np.ndarray:
    """Per buffer: does the XLA-style heuristic (buffers in ``order``) put it in fast memory."""
    return xla_greedy(p, order).placement.mode == FAST


def instance_graph(p: MemoryInstance, order: np.ndarray | None = None, rivals: int = RIVALS,
                   heur: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The instance as the network's input: node features (n, len(NODE_FEATURES)),
    ``edge_index`` (2, E) and edge features (E, len(EDGE_FEATURES)); ``heur``: the
    :func:`heuristic_fast` of ``order`` if already known."""
    order = xla_order(p) if order is None else order
    heur = heuristic_fast(p, order) if heur is None else heur
    x = _node_features(p, order, heur)
    rs, rd = _rival_edges(p, x[:, NODE_FEATURES.index("boundedness")], rivals)
    fs, fd = _dataflow_edges(p)
    n = p.n_buffers
    rival, flow = rs * n + rd, fs * n + fd
    key = np.unique(np.concatenate([rival, flow]))
    src, dst = key // n, key % n
    length = (p.end - p.start + 1).astype(np.float64)
    overlap = (np.minimum(p.end[src], p.end[dst]) - np.maximum(p.start[src], p.start[dst]) + 1)
    attr = np.column_stack([np.isin(key, rival), np.isin(key, flow),
                            np.clip(overlap / length[dst], 0.0, 1.0),
                            np.minimum(p.size[src] / p.capacity_bytes, 4.0) / 4.0])
    return x, np.stack([src, dst]), attr.astype(np.float32)


# ---- the shipped policy -------------------------------------------------------------------
def check_card(card: dict[str, Any], onnx_path: Path, *, strict: bool = False) -> None:
    """:func:`mlsysgym.agents.policies.check_card` for the malloc policy's features."""
    policies.check_card(card, onnx_path, {"node_features": NODE_FEATURES,
                                          "edge_features": EDGE_FEATURES},
                        "`mlsysgym experiment train-malloc-policy`", strict=strict)


@functools.cache
def _load(path: str, strict: bool) -> tuple[Any, dict[str, Any]]:
    from mlsysgym.agents.gnn import OnnxGraphNet

    onnx_path = Path(path)
    card_path = onnx_path.with_suffix(".json")
    if not onnx_path.is_file() or not card_path.is_file():
        raise PolicyCardError(f"no malloc policy at {onnx_path} (with its card {card_path.name}); "
                              "train one with `python -m mlsysgym.experiments.train_malloc_policy`")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as e:
        raise PolicyCardError(f"cannot read policy card {card_path}: {e}") from None
    check_card(card, onnx_path, strict=strict)
    return OnnxGraphNet(onnx_path), card


def load_policy(path: str | os.PathLike[str] | None = None,
                strict: bool = False) -> tuple[Any, dict[str, Any]]:
    """The policy network (an :class:`~mlsysgym.agents.gnn.OnnxGraphNet`) and its card,
    checked by :func:`check_card` (once per process and path)."""
    return _load(str(Path(path or POLICY_PATH).resolve()), bool(strict))


def network_scores(p: MemoryInstance, order: np.ndarray,
                   policy: str | os.PathLike[str] | None = None,
                   heur: np.ndarray | None = None) -> np.ndarray:
    """Per buffer the policy's logit that changing its decision in the heuristic's episode
    (completed greedily) lowers the time: the higher, the earlier the move is tried."""
    net, _ = load_policy(policy)
    logits, _ = net(*instance_graph(p, order, heur=heur))
    return logits[:, 0].astype(np.float64)


# ---- episodes: construction and completion -------------------------------------------------
class _Builder:
    """Episodes built on an AllocationState; snapshots of a base episode every ``stride`` steps.

    Every other run keeps its own snapshots past its ``prefix`` (``_pending``): where the
    base episode is replaced by that run's episode, :meth:`adopt` makes them the base's
    without running the episode again."""

    _ARRAYS = ("mode", "offset", "mem_us", "time_us", "_rs", "_re", "_lo", "_hi")

    def __init__(self, p: MemoryInstance, order: np.ndarray, prior: np.ndarray) -> None:
        self.p, self.order, self.prior = p, [int(b) for b in order], prior
        self.state = AllocationState(p)
        self.stride = max(16, int(np.sqrt(p.n_buffers)))
        self.snaps: list[dict[str, Any]] = []
        self._pending: dict[int, dict[str, Any]] = {}

    def _snap(self) -> dict[str, Any]:
        s = self.state
        d = {k: getattr(s, k).copy() for k in self._ARRAYS}
        d.update(total_us=s.total_us, k=s._k)
        return d

    def _restore(self, d: dict[str, Any]) -> None:
        s = self.state
        for k in self._ARRAYS:
            getattr(s, k)[...] = d[k]
        s.total_us, s._k = d["total_us"], d["k"]

    def adopt(self) -> None:
        """The last run's episode becomes the recorded one: its snapshots replace the base's
        past its prefix (those before are the same states); as ``run(prefix=episode,
        record=True)`` would leave them, without the run."""
        for j, snap in self._pending.items():
            self.snaps[j] = snap
        self._pending = {}

    def _step(self, b: int, action: int, need_gain: bool) -> int:
        """Play ``action`` (0 slow, a >= 1 the a-th candidate offset) for buffer ``b`` if it
        fits (and, with ``need_gain``, lowers the time); else slow. Returns the action played."""
        s = self.state
        if action == 0 or (need_gain and s.delta_time(b, FAST) >= 0):
            return 0  # (the gain is checked first: cheaper than the free gaps)
        offs, _ = s.candidates(b, FAST, action)
        if offs.size >= action:
            s.place(b, FAST, int(offs[action - 1]))
            return action
        return 0

    def run(self, tau: float, prefix: list[int] | None = None, forced: dict[int, int] | None = None,
            record: bool = False) -> tuple[list[int], float]:
        """Actions (0 slow, a >= 1 the a-th candidate offset, best fit first) and total time:
        ``prefix`` replayed (from the nearest snapshot of the recorded episode, which ``prefix``
        must start like), positions in ``forced`` set, the rest by the rule "best fit if
        prior > tau, it fits and it lowers the time" (a replayed or forced action needs only
        to fit; a forced action that does not fit ends the episode there, time ``inf``)."""
        prefix, forced = prefix or [], forced or {}
        start = 0
        if self.snaps and not record:
            j = min(len(prefix) // self.stride, len(self.snaps) - 1)
            self._restore(self.snaps[j])
            start = j * self.stride
        else:
            self.state.reset()
        acts = list(prefix[:start])
        if record:
            self.snaps = []
        self._pending = {}
        for i in range(start, len(self.order)):
            if i % self.stride == 0:
                if record:
                    self.snaps.append(self._snap())
                elif i > len(prefix):
                    self._pending[i // self.stride] = self._snap()
            b = self.order[i]
            if i < len(prefix):
                acts.append(self._step(b, int(prefix[i]), False))
            elif i in forced:
                acts.append(self._step(b, int(forced[i]), False))
                if acts[-1] != forced[i]:  # the forced action does not fit: no episode
                    return acts, np.inf
            else:
                acts.append(self._step(b, int(self.prior[b] > tau), True))
        return acts, self.state.total_us


def decode(p: MemoryInstance, order: np.ndarray, prior: np.ndarray,
           tau: float = 0.5) -> tuple[list[int], float]:
    """Greedy decode of ``prior``: the episode's actions (0 slow, 1 best-fit fast) in ``order``
    and its total time (µs)."""
    return _Builder(p, order, prior).run(tau)


# ---- local search over one-decision changes ----------------------------------------------
GREEDY = -1.0  # completion threshold: every buffer that fits and lowers the time goes fast


def _move_order(n: int, scores_in_order: np.ndarray | None, rng: np.random.Generator,
                defer_in_order: np.ndarray | None = None) -> np.ndarray:
    """Positions to change, most promising first: by ``scores_in_order`` (highest first), or
    without them in XLA order, neighbours shuffled a little, the positions in
    ``defer_in_order`` (a mask) after all others; moves with equal priority in a seeded random
    order."""
    if scores_in_order is None:
        key = -0.25 * np.arange(n) / max(n, 1) + 0.05 * rng.random(n)
        if defer_in_order is not None:
            key = key - 2.0 * defer_in_order
        return np.argsort(-key, kind="stable")
    return np.lexsort((rng.random(n), -scores_in_order))


def _try_move(builder: _Builder, best: list[int], best_t: float, i: int, action: int,
              chain_depth: int) -> tuple[list[int], float]:
    """Play ``action`` at position ``i`` of ``best`` and complete greedily; while no better,
    force the first buffer the completion newly put in fast memory slow (up to
    ``chain_depth`` times). Time ``inf`` when that offset does not fit."""
    forced = {i: action}
    cand, t = builder.run(GREEDY, prefix=best[:i], forced=forced)
    if cand[i] != action:
        return cand, np.inf
    for _ in range(chain_depth):
        if t < best_t - 1e-9:
            break
        newcomers = [j for j in range(i + 1, len(cand)) if cand[j] and not best[j]
                     and j not in forced]
        if not newcomers:
            break
        forced[newcomers[0]] = 0
        cand, t = builder.run(GREEDY, prefix=best[:i], forced=forced)
    return cand, t


def _alternatives(current: int, n_offsets: int) -> list[int]:
    """The other actions tried at a position: slow ↔ best fit first, then the 2nd offset."""
    alt = (1, 2) if current == 0 else (0, 2) if current == 1 else (0, 1)
    return [a for a in alt if a <= n_offsets]


def start_episode(inst: MemoryInstance, order: np.ndarray, heur: np.ndarray | None = None,
                  ) -> tuple[_Builder, list[int], float]:
    """A builder (greedy completions) and the heuristic's episode in ``order`` with its time
    (``heur``: its :func:`heuristic_fast` if already known)."""
    builder = _Builder(inst, order, np.ones(inst.n_buffers))
    heur = heuristic_fast(inst, order) if heur is None else heur
    best, best_t = builder.run(GREEDY, prefix=[int(v) for v in heur[order]])
    return builder, best, best_t


def improved_episode(builder: _Builder, best: list[int], best_t: float, n_offsets: int,
                     improvements: int, max_moves: int, chain_depth: int = 2,
                     ) -> tuple[list[int], float]:
    """``best`` after up to ``improvements`` first improvements of the search's moves in plain
    XLA order (at most ``max_moves`` moves tried; deterministic, no clock): an episode like
    those a later pass of :func:`guided_search` starts from."""
    found = tried = 0
    builder.run(GREEDY, prefix=best, record=True)
    for i in range(len(best)):
        for a in _alternatives(best[i], n_offsets):
            if found >= improvements or tried >= max_moves:
                return best, best_t
            cand, t = _try_move(builder, best, best_t, i, a, chain_depth)
            tried += 1
            if t < best_t - 1e-9:
                best, best_t, found = cand, t, found + 1
                builder.run(GREEDY, prefix=best, record=True)
                break
    return best, best_t


def move_gains(inst: MemoryInstance, positions: np.ndarray, *, n_offsets: int = 4,
               chain_depth: int = 2, after: int = 0,
               max_moves: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The training labels: per position (in XLA order) of an episode — the heuristic's, or
    with ``after`` > 0 that of :func:`improved_episode` (``after`` improvements, at most
    ``max_moves`` moves) — the largest fraction of its time saved by one move of
    :func:`guided_search` there (the alternative actions of :func:`_alternatives`, greedy
    completion, ejections); ``nan`` where no alternative fits. Also the episode's fast-memory
    mask per buffer (the network's ``heuristic_fast`` input for it)."""
    order = xla_order(inst)
    builder, best, best_t = start_episode(inst, order)
    if after > 0:
        best, best_t = improved_episode(builder, best, best_t, n_offsets, after, max_moves,
                                        chain_depth)
    builder.run(GREEDY, prefix=best, record=True)
    out = np.full(len(positions), np.nan)
    for k, i in enumerate(positions):
        for a in _alternatives(best[int(i)], n_offsets):
            _, t = _try_move(builder, best, best_t, int(i), a, chain_depth)
            if np.isfinite(t):
                out[k] = np.fmax(out[k], (best_t - t) / best_t)
    return out, _fast_mask(order, best)


def _fast_mask(order: np.ndarray, episode: list[int]) -> np.ndarray:
    """Per buffer (problem order): does ``episode`` (actions in ``order``) put it in fast
    memory — the network's feature ``heuristic_fast`` for that episode."""
    fast = np.zeros(len(order), bool)
    fast[order] = np.asarray(episode) > 0
    return fast


def guided_search(problem: BudgetedProblem, rng: np.random.Generator, scores: np.ndarray | None,
                  *, seconds: float = DEFAULT_SECONDS, chain_depth: int = 2,
                  max_passes: int = 8, heur: np.ndarray | None = None,
                  rescore: Callable[[np.ndarray], np.ndarray] | None = None,
                  adopt: bool = True, defer: np.ndarray | None = None,
                  ) -> tuple[_Builder, list[int]]:
    """The heuristic's episode, then first-improvement local search over one-decision changes
    (the positions in :func:`_move_order` by ``scores``, per buffer in problem order, or XLA
    order without, the buffers of the mask ``defer`` last; the alternatives of
    :func:`_alternatives`, completed greedily and extended by :func:`_try_move`'s ejections)
    until a pass finds nothing, ``max_passes`` passes or ``seconds`` (or the budget's seconds)
    run out.

    Submits the heuristic's episode first (an answer at once), then the best episode found,
    keeping back 5 % of ``seconds`` and twice the time the first submission took so the whole
    search, its final scoring included, stays within ``seconds``; no move starts that would
    end past that by the longest move so far. ``heur``: the heuristic's :func:`heuristic_fast`
    if already known. ``rescore``: new scores (or, with ``defer``, a new mask) from the best
    episode's fast-memory mask (per buffer), asked before every pass after the first.
    ``adopt``: after an accepted move take that move's snapshots (:meth:`_Builder.adopt`; off:
    run the new episode again to record them — the same search, slower). ``info``: moves
    tried, improvements, passes. Returns the builder and the best episode."""
    t_start = time.perf_counter()
    limit = min(problem.time_left_s, max(seconds, 0.0))
    mp = malloc_of(problem)
    inst, n_offsets = mp.instance, mp.n_offsets
    order = xla_order(inst)
    t0 = time.perf_counter()
    builder, best, best_t = start_episode(inst, order, heur)
    slowest = time.perf_counter() - t0  # the longest step so far: none starts past the deadline
    t0 = time.perf_counter()
    problem.evaluate_one(episode_design(best))
    problem.info["submit_s"] = time.perf_counter() - t0
    deadline = t_start + 0.95 * limit - 2.0 * problem.info["submit_s"]
    start_t = best_t
    sc = None if scores is None else np.asarray(scores, np.float64)[order]
    dm = None if defer is None else np.asarray(defer, bool)[order]
    tried = improvements = passes = 0

    def late() -> bool:
        return time.perf_counter() + slowest > deadline

    while passes < max_passes and not late():
        passes += 1
        if rescore is not None and passes > 1:
            new = np.asarray(rescore(_fast_mask(order, best)))[order]
            if dm is None:
                sc = new.astype(np.float64)
            else:
                dm = new.astype(bool)
        builder.run(GREEDY, prefix=best, record=True)
        improved = False
        for i in _move_order(len(best), sc, rng, dm):
            for a in _alternatives(best[i], n_offsets):
                if late():
                    break
                t0 = time.perf_counter()
                cand, t = _try_move(builder, best, best_t, int(i), a, chain_depth)
                slowest = max(slowest, time.perf_counter() - t0)
                tried += 1
                if t < best_t - 1e-9:
                    best, best_t, improved = cand, t, True
                    improvements += 1
                    if adopt:  # cand's run recorded its snapshots: no replay
                        builder.adopt()
                    else:
                        builder.run(GREEDY, prefix=best, record=True)
                    break
            if late():
                break
        if not improved:
            break
    problem.info.update(moves=tried, improvements=improvements, passes=passes)
    if best_t < start_t - 1e-9:
        problem.evaluate_one(episode_design(best))
    return builder, best


REPLAY_SHARE = 0.03  # lns_phase: share of the time left kept to replay the LNS's placement
WHOLE = True  # lns_phase: the time the LNS leaves (no centre left) to CP-SAT on every buffer
WHOLE_MIN_S = 0.5  # ... if at least this many seconds are left
JUMP_STOP = True  # lns_phase: a fruitless jump that used all its time ends the jumps
TIME_SHARE = True  # lns_phase: the centre sources' shares are of the LNS's time, not its draws
RANK_POTENTIAL = True  # lns_phase: uniform centres the best of four by their potential
LNS_SIZE = 0  # lns_phase: buffers per neighbourhood; 0: malloc_lns.auto_size (20 or 40)
REPLAYABLE_ONLY = True  # lns_phase: keep only placements the env can replay (Replay.only)


def lns_phase(problem: BudgetedProblem, rng: np.random.Generator, builder: _Builder,
              best: list[int], *, deadline: float, scores: np.ndarray | None = None,
              mix: float = 0.5, adapt: bool = True, sweep_s: float = SWEEP_S,
              replay_share: float = REPLAY_SHARE, jump_tries: int = 0,
              jump_score: Callable[[Placement], np.ndarray] | None = None,
              whole_last: bool = WHOLE, jump_stop: bool = JUMP_STOP,
              time_share: bool = TIME_SHARE, oracle: int = 0,
              rank_potential: bool = RANK_POTENTIAL, size: int = LNS_SIZE,
              replayable_only: bool = REPLAYABLE_ONLY) -> None:
    """:func:`~mlsysgym.agents.malloc_lns.lns` from the episode ``best`` (``builder``'s) until
    ``deadline`` (perf_counter) less the time kept to replay its placement in the env and
    submit it — ``replay_share`` of the time left, at least four times what submitting an
    episode took (``info["submit_s"]``, set by :func:`guided_search`); then the fastest
    placement the env can replay among those it kept
    (:meth:`~mlsysgym.agents.malloc_lns.Replay.best`, searched until two submissions' time
    before ``deadline``; with ``replayable_only`` it keeps only such placements) is submitted
    when faster. ``scores``, ``mix``, ``adapt``: how neighbourhood centres are drawn (None:
    uniformly), as there, and ``time_share`` (their shares of the time, not of the draws),
    ``oracle`` (a diagnostic ceiling: the time the LNS's oracle is not
    charged moves ``deadline`` too), ``rank_potential`` (each uniformly drawn centre the best
    of four draws by :func:`~mlsysgym.agents.malloc_lns.potential_rank`) and ``size``
    (buffers per neighbourhood; 0: :func:`~mlsysgym.agents.malloc_lns.auto_size`'s). With
    ``sweep_s`` > 0 the LNS starts after a :func:`~mlsysgym.agents.malloc_lns.class_sweep`
    (each size class re-decided at once; ``sweep_s`` seconds for the classes that need more
    than the first pass's 0.5 s). Then up to ``jump_tries``
    :func:`~mlsysgym.agents.malloc_lns.jumps` (``jump_score``: how their buffers are drawn;
    None: uniformly), their seconds kept from the sweep (with ``jump_stop``, a jump that
    finds nothing faster in all its second is the last). With ``whole_last``, the time the
    LNS leaves when no centre is left (at least :data:`WHOLE_MIN_S`) goes to CP-SAT on every
    buffer at once, hinted with its placement (:func:`~mlsysgym.agents.malloc_lns.whole`).
    ``info``: repairs, improvements, network_repairs, class_improvements, jump_improvements,
    whole ("improved", "optimal" — proved — or "none"; absent if not run). A proved placement
    that the env replays with its modes makes the result's status "optimal" (up to CP-SAT's
    time rounding, as the ``cpsat`` agent's)."""
    mp = malloc_of(problem)
    replay = Replay(mp.env.order, mp.n_offsets, only=replayable_only)
    start_t, placed, found, keep = _swept(problem, rng, builder, best, deadline, sweep_s,
                                          replay_share, jump_tries * JUMP_S, replay)
    submit_s, end = problem.info.get("submit_s", 0.0), deadline - keep
    placed, jumped = lns_jumps(mp.instance, placed, rng, deadline=end, tries=jump_tries,
                               score=jump_score, stop_stuck=jump_stop, replay=replay)
    placed, info = lns(mp.instance, placed, rng, deadline=end, scores=scores, mix=mix,
                       adapt=adapt, time_share=time_share, oracle=oracle,
                       size=size or auto_size(mp.instance),
                       ranker=potential_rank if rank_potential else None, replay=replay)
    end, deadline = end + info["oracle_s"], deadline + info["oracle_s"]
    left, proved = end - time.perf_counter(), False
    if whole_last and left >= WHOLE_MIN_S:
        lns_placed = placed
        placed, proved = whole(mp.instance, placed, seconds=0.8 * left,
                               seed=int(rng.integers(2**31)))  # the same object unless faster
        problem.info["whole"] = ("optimal" if proved else "improved" if placed is not lns_placed
                                 else "none")
        if placed is not lns_placed:
            replay.kept.append(placed)
    problem.info.update(repairs=info["repairs"], repair_improvements=info["improvements"],
                        network_repairs=info["network_repairs"], class_improvements=found,
                        jump_improvements=jumped)
    replayed = replay.best(mp.instance, start_t, deadline=deadline - 2 * submit_s)
    if replayed is not None:
        problem.evaluate_one(episode_design(actions_for(mp.env, replayed)))
    t = total_time(mp.instance, placed.mode)
    if proved and (t >= start_t - 1e-9 * start_t if replayed is None  # the start: submitted
                   else np.array_equal(replayed.mode, placed.mode)):
        problem.prove("optimal", bound=(mp.env.all_slow_time_us - t) / mp.env.reward_scale_us,
                      bound_us=t)


def _swept(problem: BudgetedProblem, rng: np.random.Generator, builder: _Builder,
           best: list[int], deadline: float, sweep_s: float,
           replay_share: float, reserve_s: float = 0.0,
           replay: Replay | None = None) -> tuple[float, Placement, int, float]:
    """:func:`lns_phase`'s first step: the episode ``best`` as a placement, then the class
    sweep (``replay``: as :func:`~mlsysgym.agents.malloc_lns.class_sweep`'s), ending
    ``reserve_s`` seconds (at most half the time left) before the time kept back for the
    replay (for the jumps that follow). Returns the episode's time, the swept placement, the
    classes it improved and the seconds kept back for the replay."""
    builder.run(GREEDY, prefix=best)
    start, start_t = builder.state.placement, builder.state.total_us
    if replay is not None:
        replay.last = start  # an episode: the env replays it
    keep = max(replay_share * (deadline - time.perf_counter()),
               4.0 * problem.info.get("submit_s", 0.0))
    reserve_s = min(reserve_s, 0.5 * (deadline - keep - time.perf_counter()))
    placed, found = (class_sweep(malloc_of(problem).instance, start,
                                 deadline=deadline - keep - reserve_s,
                                 repair_s=sweep_s, seed=int(rng.integers(2**31)),
                                 replay=replay)
                     if sweep_s > 0 else (start, 0))
    return start_t, placed, found, keep


def lns_start(problem: Problem, seed: int = 0, *, time_limit_s: float = DEFAULT_SECONDS,
              sweep_s: float = SWEEP_S) -> Placement:
    """The placement from which the ablation's LNS starts in a ``time_limit_s`` run with this
    ``seed`` and no jumps (as :func:`no_network_malloc` with ``jumps=0``: its local search, then
    the class sweep given its whole time): the state on which ``learned`` draws its centres
    and the jump policy's labels were made. For diagnostics
    (benchmarks/learned_malloc_ranking.py) and ``train_malloc_policy --moves differ``."""
    bp = BudgetedProblem(problem, Budget(seconds=time_limit_s + 30.0))
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + 0.95 * time_limit_s
    builder, best = guided_search(bp, rng, None, seconds=(1 - LNS_SHARE) * time_limit_s)
    return _swept(bp, rng, builder, best, deadline, sweep_s, REPLAY_SHARE)[1]


def _check_limit(seconds: float) -> None:
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise AgentConfigError(f"time_limit_s must be a number > 0; got {seconds!r}")


LNS_SHARE = 0.8
JUMPS = 3  # jumps per run, their seconds kept from the class sweep


@register_agent("learned", kinds=("malloc",), whole_run=True)
def learned_malloc(problem: BudgetedProblem, rng: np.random.Generator, *,
                   time_limit_s: float = DEFAULT_SECONDS, policy: str | None = None,
                   chain_depth: int = 2, lns_share: float = LNS_SHARE, lns_mix: float = 0.5,
                   lns_adapt: bool = True, rescore: bool = False, adopt: bool = True,
                   prune: bool = True, sweep_s: float = SWEEP_S, jumps: int = JUMPS,
                   jump_policy: str | None = None, whole_last: bool = WHOLE,
                   jump_stop: bool = JUMP_STOP, time_share: bool = TIME_SHARE,
                   jump_network: bool = True, oracle: int = 0,
                   rank_potential: bool = RANK_POTENTIAL, lns_size: int = LNS_SIZE,
                   replayable_only: bool = REPLAYABLE_ONLY) -> None:
    """At most ``time_limit_s`` seconds (network inference included) of :func:`guided_search`
    and :func:`lns_phase`, guided by a graph-network policy (``policy``; default the shipped
    LNS policy :data:`LNS_POLICY_PATH`, or with ``lns_share`` 0 the move policy
    :data:`POLICY_PATH`).

    With ``lns_share`` > 0 (default 0.8): :func:`guided_search` for at most 1 − ``lns_share``
    of the time, its moves in XLA order as the ablation's, then large-neighbourhood search
    until the end whose neighbourhood centres are drawn by the network's scores or uniformly
    (each uniform draw the best of four by ``malloc_lns.potential_rank`` with
    ``rank_potential``, the default, as the ablation's), a share ``lns_mix`` of the time
    uniformly — with ``lns_adapt`` (default) only at first: then each way in proportion to
    the time its repairs saved per second (``malloc_lns.lns``). The scores are those of the
    heuristic's episode, or with ``rescore`` those of the local search's best (its fast
    buffers as the feature ``heuristic_fast``). With ``lns_share`` 0,
    the earlier versions (local search only): with ``prune`` the moves in XLA order, those the
    network gives less than even odds of lowering the time (logit < 0) last; without, all
    moves by the network's score; with ``rescore`` every pass after the first rescored on the
    best episode. ``adopt``: as :func:`guided_search`'s; ``sweep_s``: as :func:`lns_phase`'s.
    ``jumps`` (default :data:`JUMPS`): :func:`lns_phase`'s jumps before the LNS, each of the
    100 buffers the jump policy (``jump_policy``, default :data:`JUMP_POLICY_PATH`), scoring
    the placement at hand, expects a better placement to re-decide (``whole_last``,
    ``jump_stop``, ``time_share``, ``rank_potential``, ``replayable_only``: as
    :func:`lns_phase`'s, ``lns_size`` as its ``size``; without ``jump_network`` the jumps'
    buffers are drawn uniformly, as the ablation's: the network then picks LNS centres only).
    ``oracle`` = k > 1 is a diagnostic, not an agent: the network picks no centres, and each
    LNS step keeps the best of k uniformly drawn centres' repairs, charged the time of that
    one (``malloc_lns.lns``'s ``oracle``): the ceiling of a perfect ranker of k draws."""
    _check_limit(time_limit_s)
    _check_count("oracle", oracle)
    _check_count("lns_size", lns_size)
    _check_fraction("lns_share", lns_share)
    _check_fraction("lns_mix", lns_mix)
    _check_sweep(sweep_s)
    _check_count("jumps", jumps)
    inst = malloc_of(problem).instance
    t0 = time.perf_counter()
    deadline = t0 + 0.95 * min(time_limit_s, problem.time_left_s)
    order = xla_order(inst)
    heur = heuristic_fast(inst, order)  # computed once: the network's input and the start
    t1 = time.perf_counter()
    net, _ = load_policy(policy or (LNS_POLICY_PATH if lns_share > 0 else POLICY_PATH))
    x, edges, attr = instance_graph(inst, order, heur=heur)
    col = NODE_FEATURES.index("heuristic_fast")

    def score(fast: np.ndarray, by: Any = net) -> np.ndarray:
        x[:, col] = fast
        return by(x, edges, attr)[0][:, 0].astype(np.float64)

    if lns_share > 0:
        problem.info["inference_s"] = time.perf_counter() - t1
        builder, best = guided_search(problem, rng, None, seconds=(1 - lns_share) * time_limit_s
                                      - (time.perf_counter() - t0), chain_depth=chain_depth,
                                      heur=heur, adopt=adopt)
        t2 = time.perf_counter()
        scores = None if oracle > 1 else score(_fast_mask(order, best) if rescore else heur)
        jump_net = (load_policy(jump_policy or JUMP_POLICY_PATH)[0]
                    if jumps and jump_network else None)
        problem.info["inference_s"] += time.perf_counter() - t2

        def jump_score(placement: Placement) -> np.ndarray:
            t = time.perf_counter()
            z = score(placement.mode != SLOW, jump_net)
            problem.info["inference_s"] += time.perf_counter() - t
            return z

        lns_phase(problem, rng, builder, best, deadline=deadline, scores=scores, mix=lns_mix,
                  adapt=lns_adapt, sweep_s=sweep_s, jump_tries=jumps,
                  jump_score=jump_score if jump_net is not None else None,
                  whole_last=whole_last, jump_stop=jump_stop, time_share=time_share,
                  oracle=oracle, rank_potential=rank_potential, size=lns_size,
                  replayable_only=replayable_only)
        return
    scores = score(heur)
    problem.info["inference_s"] = time.perf_counter() - t1
    guided_search(problem, rng, None if prune else scores,
                  seconds=time_limit_s - (time.perf_counter() - t0), chain_depth=chain_depth,
                  heur=heur, rescore=(lambda f: score(f) < 0 if prune else score(f))
                  if rescore else None, adopt=adopt, defer=scores < 0 if prune else None)


@register_agent("learned_no_network", kinds=("malloc",), whole_run=True)
def no_network_malloc(problem: BudgetedProblem, rng: np.random.Generator, *,
                      time_limit_s: float = DEFAULT_SECONDS, chain_depth: int = 2,
                      lns_share: float = LNS_SHARE, adopt: bool = True,
                      sweep_s: float = SWEEP_S, jumps: int = JUMPS,
                      whole_last: bool = WHOLE, jump_stop: bool = JUMP_STOP,
                      rank_potential: bool = RANK_POTENTIAL, lns_size: int = LNS_SIZE,
                      replayable_only: bool = REPLAYABLE_ONLY) -> None:
    """The ablation of ``learned``: the same search without the network — :func:`guided_search`
    with the moves in XLA order (most memory-bound first), then, with ``lns_share`` > 0,
    :func:`lns_phase` with uniformly drawn neighbourhood centres and ``jumps`` jumps of
    uniformly drawn buffers (``adopt``, ``sweep_s``, ``whole_last``, ``jump_stop``,
    ``rank_potential``, ``lns_size``, ``replayable_only`` as there)."""
    _check_limit(time_limit_s)
    _check_fraction("lns_share", lns_share)
    _check_sweep(sweep_s)
    _check_count("jumps", jumps)
    _check_count("lns_size", lns_size)
    deadline = time.perf_counter() + 0.95 * min(time_limit_s, problem.time_left_s)
    builder, best = guided_search(problem, rng, None, seconds=(1 - lns_share) * time_limit_s,
                                  chain_depth=chain_depth, adopt=adopt)
    if lns_share > 0:
        lns_phase(problem, rng, builder, best, deadline=deadline, sweep_s=sweep_s,
                  jump_tries=jumps, whole_last=whole_last, jump_stop=jump_stop,
                  rank_potential=rank_potential, size=lns_size,
                  replayable_only=replayable_only)


def _check_sweep(seconds: float) -> None:
    if not (isinstance(seconds, (int, float)) and seconds >= 0):
        raise AgentConfigError(f"sweep_s must be a number >= 0; got {seconds!r}")


def _check_count(name: str, value: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise AgentConfigError(f"{name} must be an integer >= 0; got {value!r}")


def _check_fraction(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise AgentConfigError(f"{name} must be a number in [0, 1]; got {value!r}")
