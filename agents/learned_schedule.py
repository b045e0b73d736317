"""A learned list scheduler for kernel scheduling, trained across graphs: agent ``learned``.

The policy is a small linear message-passing graph network over the op DAG (see
:func:`build_network`). It reads per-op features
(:func:`op_features`: HEFT's upward rank, the downward rank, the fastest/mean op times, the
longest fastest paths before and after the op, how much faster its best PE is, its degree,
transfer volume, FLOPs and bytes, its release time; times divided by the instance's mean-time
critical path, so graphs of any size and platform share one scale) and gives one priority per
op, and per-(op, PE) features (PEFT's optimistic cost table: the least time the rest of the
graph needs after the op ends on that PE; the op's time there) and gives a bias per (op, PE).
Its priority is HEFT's upward rank plus a learned term, its bias PEFT's lookahead plus a
learned term, so zero weights reproduce HEFT's order with PEFT's PE choice.

:func:`decode` turns priorities into a schedule the way HEFT does: repeatedly the ready op of
highest priority (all predecessors placed), on the PE where it finishes first (insertion into
idle gaps, transfers between PEs, release times) plus the op's bias there. So every decoded
schedule is valid; the policy learns the order and how far to look ahead when placing.

Shipped as package data: ``agents/policies/schedule_gnn.onnx`` (inputs ``x`` (n, F) float32,
``edge_src`` / ``edge_dst`` (E,) int64; output ``priority`` (n,)) with ``schedule_gnn.json``,
its card (training split, platforms, seeds, CPU hours, the machine's fingerprint). Inference is
ONNX Runtime; torch is needed only to train (``experiments/train_schedule_policy.py``).

Measured zero-shot on the test split (``benchmarks/results/learned_schedule.md``): the
trained weights do not beat their untrained start (HEFT's order with PEFT's lookahead); the
gain over HEFT and over HEFT + the same search comes from that lookahead. Imitation of
searched schedules, rollout labels and MaskablePPO across graphs did no better on validation
(``benchmarks/results/schedule_training.md``).

Agent ``learned`` (scheduling kind): the policy's greedy decode, then ``samples`` decodes of the
priorities with Gumbel noise (the policy as the prior of a sampling search), then
:func:`~mlsysgym.agents.scheduling_search.local_search` from the best of them for the rest of
the budget. ``network=False`` is the same search with HEFT's upward rank in place of the
network's output (the ablation, "HEFT + the same search").

:func:`online_schedule` schedules a job stream online (jobs not known before they arrive): at
each arrival the arrived jobs' ops are decoded into the schedule committed so far, using
priorities computed on those jobs alone.
"""

from __future__ import annotations

import bisect
import heapq
import json
import time
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.policies import PolicyCardError, check_card
from mlsysgym.agents.scheduling_baselines import downward_rank, upward_rank
from mlsysgym.agents.scheduling_problem import (
    SchedulingEpisodes,
    SchedulingProblemError,
    scheduling_episodes,
)
from mlsysgym.agents.scheduling_search import local_search
from mlsysgym.agents.sequential import episode_design
from mlsysgym.simulators.multicore import Schedule, SchedulingInstance, earliest_start, validate
from mlsysgym.simulators.streams import arrival_groups

__all__ = ["FEATURES", "LEARNED_HYPERPARAMETERS", "PE_FEATURES", "ListDecoder", "PolicyError",
           "SchedulePolicy", "build_network", "decode", "default_policy", "edge_lists",
           "export_onnx", "heft_scores", "instance_scale", "online_schedule", "op_features",
           "optimistic_cost", "policy_scores", "sample_scores", "torch_scores"]

FEATURES: tuple[str, ...] = (
    "rank_u", "rank_d", "rank_sum", "mean_time", "min_time", "tail", "head", "best_speedup",
    "second_ratio", "capable_share", "log_in_degree", "log_out_degree", "log_comm_ratio",
    "log_flops", "log_bytes", "release")
"""The per-op input features of the policy, in column order (see :func:`op_features`)."""

PE_FEATURES: tuple[str, ...] = ("optimistic_cost", "time", "speed", "capable", "pe_speed")
"""The per-(op, PE) input features: PEFT's optimistic cost table, the op's time there, fastest
time / time there, can run, and the PE's mean speed over the ops it runs."""

LEARNED_HYPERPARAMETERS: dict[str, list[Any]] = {
    "samples": [0, 8, 32], "noise": [0.05, 0.1, 0.3], "network": [True, False]}

POLICY_FILE = "schedule_gnn.onnx"


class PolicyError(PolicyCardError):
    """The scheduling policy is missing, unreadable, or its input is invalid (a card that does
    not match raises the base :class:`~mlsysgym.agents.policies.PolicyCardError`)."""


# ---- features ------------------------------------------------------------------------------


def optimistic_cost(problem: SchedulingInstance) -> np.ndarray:
    """(n_ops, n_pes) PEFT's optimistic cost table: OCT(i, p) = max over successors j of
    min over PEs q of (OCT(j, q) + time of j on q + the transfer of edge (i, j) if q ≠ p); 0 for
    sinks. A lookahead: the least time the rest of the graph needs after op i ends on PE p."""
    d = np.where(problem.capable, problem.durations_us, np.inf)
    oct_ = np.zeros(d.shape)
    for i in problem.topo_order[::-1].tolist():
        e = problem.out_edges[i]
        if e.size:
            j = problem.edge_dst[e]
            v = oct_[j] + d[j]
            cross = v.min(1) + problem.edge_comm_us[e]
            oct_[i] = np.max(np.minimum(v, cross[:, None]), axis=0)
    return oct_


def instance_scale(problem: SchedulingInstance) -> float:
    """The time unit of the features: the largest upward rank (µs; 1 if it is 0)."""
    top = float(upward_rank(problem).max())
    return top if top > 0 else 1.0


def op_features(problem: SchedulingInstance) -> tuple[np.ndarray, np.ndarray]:
    """Per-op features (n_ops, len(FEATURES)) and per-(op, PE) features (n_ops, n_pes,
    len(PE_FEATURES)), float32 (see the module docstring). Times are in units of
    :func:`instance_scale`, so HEFT's priority ``rank_u`` is in (0, 1]."""
    up, down = upward_rank(problem), downward_rank(problem)
    scale = instance_scale(problem)
    cap = problem.capable
    d = problem.durations_us
    mean = np.where(cap, d, 0.0).sum(1) / cap.sum(1)
    srt = np.sort(d, axis=1)
    best = srt[:, 0]
    second = srt[:, 1] if d.shape[1] > 1 else best
    second = np.where(np.isfinite(second), second, best)
    n = problem.n_ops
    indeg = np.bincount(problem.edge_dst, minlength=n)
    outdeg = np.bincount(problem.edge_src, minlength=n)
    comm = np.bincount(problem.edge_src, weights=problem.edge_comm_us, minlength=n)
    r0 = float(problem.release_us.min())
    eps = 1e-12
    cols = [up / scale, down / scale, (up + down) / scale, mean / scale, best / scale,
            problem.tail_us / scale, (problem.head_us - r0) / scale,
            np.log1p(mean / (best + eps)), best / (second + eps), cap.mean(1),
            np.log1p(indeg) / 3.0, np.log1p(outdeg) / 3.0, np.log1p(comm / (mean + eps)) / 3.0,
            np.log1p(problem.op_flops) / 30.0, np.log1p(problem.op_bytes) / 30.0,
            (problem.release_us - r0) / scale]
    x = np.stack(cols, axis=1)
    dcap = np.where(cap, d, 0.0)
    speed = np.where(cap, best[:, None] / np.where(cap, d, 1.0), 0.0)  # 1 on the fastest PE
    pe_speed = np.broadcast_to(speed.sum(0) / np.maximum(cap.sum(0), 1), d.shape)
    pe = np.stack([optimistic_cost(problem) / scale, dcap / scale, speed, cap.astype(np.float64),
                   pe_speed], axis=2)
    return x.astype(np.float32), np.where(cap[:, :, None], pe, 0.0).astype(np.float32)


# ---- decoding ------------------------------------------------------------------------------


class ListDecoder:
    """Ready-list scheduling state of one instance: placed ops, PE busy intervals, the PE rule."""

    def __init__(self, problem: SchedulingInstance, pe_bias_us: np.ndarray | None = None) -> None:
        self.p = problem
        self.dur = problem.durations_us.tolist()
        self.capable = [np.flatnonzero(row).tolist() for row in problem.capable]
        self.release = problem.release_us.tolist()
        n = problem.n_ops
        self.bias = (np.zeros(problem.durations_us.shape) if pe_bias_us is None
                     else np.asarray(pe_bias_us, dtype=np.float64)).tolist()
        self.preds: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        self.succs: list[list[int]] = [[] for _ in range(n)]
        for s, t, c in zip(problem.edge_src.tolist(), problem.edge_dst.tolist(),
                           problem.edge_comm_us.tolist()):
            self.preds[t].append((s, c))
            self.succs[s].append(t)
        self.assign = [-1] * n
        self.start = [0.0] * n
        self.finish = [0.0] * n
        self.intervals: list[list[tuple[float, float]]] = [[] for _ in range(problem.n_pes)]
        self.order: list[int] = []

    def options(self, i: int) -> list[tuple[int, float, float]]:
        """(PE, earliest start, finish) of op ``i`` on each capable PE, given what is placed
        (its predecessors must be; insertion into idle gaps, transfers between PEs)."""
        out = []
        for p in self.capable[i]:
            ready = self.release[i]
            for s, c in self.preds[i]:
                ready = max(ready, self.finish[s] + (c if self.assign[s] != p else 0.0))
            d = self.dur[i][p]
            t = earliest_start(self.intervals[p], ready, d)
            out.append((p, t, t + d))
        return out

    def place(self, i: int, pe: int | None = None) -> None:
        """Put op ``i`` on PE ``pe``, or (None) on the capable PE of least finish time + bias
        (lowest index on ties), at its earliest start there (insertion)."""
        bias = self.bias[i]
        opts = self.options(i)
        if pe is None:
            best_p, best_s, best_f = min(opts, key=lambda o: o[2] + bias[o[0]])
        else:
            best_p, best_s, best_f = next(o for o in opts if o[0] == pe)
        self.assign[i], self.start[i], self.finish[i] = best_p, best_s, best_f
        if best_f > best_s:
            bisect.insort(self.intervals[best_p], (best_s, best_f))
        self.order.append(i)

    def run(self, ops: Sequence[int], priority: np.ndarray) -> None:
        """Place ``ops`` (their predecessors outside ``ops`` already placed) by the ready list:
        highest priority first, ties by op index."""
        inside = set(ops)
        remaining = {i: sum(1 for s, _ in self.preds[i] if s in inside) for i in ops}
        pr = priority.tolist()
        heap = [(-pr[i], i) for i in ops if remaining[i] == 0]
        heapq.heapify(heap)
        while heap:
            _, i = heapq.heappop(heap)
            self.place(i)
            for j in self.succs[i]:
                if j in remaining:
                    remaining[j] -= 1
                    if remaining[j] == 0:
                        heapq.heappush(heap, (-pr[j], j))

    def schedule(self) -> Schedule:
        sched = Schedule(np.array(self.assign), np.array(self.start), np.array(self.order))
        validate(self.p, sched).raise_if_invalid()
        return sched


def decode(problem: SchedulingInstance, priority: np.ndarray,
           pe_bias_us: np.ndarray | None = None) -> Schedule:
    """The list schedule of ``priority`` (n_ops,): the ready op of highest priority next, on the
    capable PE of least finish time + ``pe_bias_us[op, pe]`` (default 0: earliest finish, as in
    HEFT), with insertion. Valid for any scores (checked by the simulator's validator);
    ``order`` of the result is the dispatch list."""
    pr = np.asarray(priority, dtype=np.float64).reshape(-1)
    if pr.shape != (problem.n_ops,) or not np.all(np.isfinite(pr)):
        raise AgentConfigError(f"priority must be {problem.n_ops} finite numbers, one per op")
    if pe_bias_us is not None:
        b = np.asarray(pe_bias_us, dtype=np.float64)
        if b.shape != problem.durations_us.shape or not np.all(np.isfinite(b[problem.capable])):
            raise AgentConfigError(f"pe_bias_us must be finite, shape {problem.durations_us.shape}")
        pe_bias_us = np.where(problem.capable, b, 0.0)
    dec = ListDecoder(problem, pe_bias_us)
    dec.run(range(problem.n_ops), pr)
    return dec.schedule()


def sample_scores(priority: np.ndarray, pe_bias: np.ndarray, unit: np.ndarray, noise: float,
                  k: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` perturbed (priority, PE bias) pairs: Gumbel noise of scale ``noise · unit`` on both
    (``unit``: each op's fastest time, in the scores' units — so ``noise`` 1 perturbs a decision
    by about one op time; Gumbel-max sampling around the greedy decisions)."""
    u = np.asarray(unit, dtype=np.float64)
    return [(priority + noise * u * rng.gumbel(size=priority.shape),
             pe_bias + noise * u[:, None] * rng.gumbel(size=pe_bias.shape)) for _ in range(k)]


# ---- the network (torch, for training and export) -------------------------------------------


def build_network(rounds: int = 2, seed: int = 0) -> Any:
    """The torch policy network, a linear graph network (SGC-style): the op features averaged
    over predecessors and over successors, ``rounds`` times (so each op sees its
    ``rounds``-hop neighbourhood both ways), concatenated to ``z`` (n, F·(1 + 2·rounds)); then
    linear heads: priority = ``rank_u`` + t·(w·z), and per (op, PE) bias = optimistic cost ·
    (1 + a·z) + time there · (b·z) + t·(c·PE features), with t the op's fastest time (learned
    terms move a decision by multiples of the op's own time, on any graph size). Every head
    starts at zero: the untrained network is HEFT's order with PEFT's lookahead PE choice."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    nz = len(FEATURES) * (1 + 2 * rounds)

    class ScheduleGNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rounds = rounds
            self.priority = nn.Linear(nz, 1)
            self.oct_gain = nn.Linear(nz, 1)
            self.time_gain = nn.Linear(nz, 1)
            self.pe = nn.Linear(len(PE_FEATURES), 1, bias=False)
            for p in self.parameters():
                nn.init.zeros_(p)

        def forward(self, x: torch.Tensor, pe_x: torch.Tensor, edge_src: torch.Tensor,
                    edge_dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = x.shape[0]
            ones = torch.ones_like(edge_src, dtype=x.dtype)
            indeg = torch.zeros(n, dtype=x.dtype).index_add(0, edge_dst, ones).clamp(min=1.0)
            outdeg = torch.zeros(n, dtype=x.dtype).index_add(0, edge_src, ones).clamp(min=1.0)
            zs, up, down = [x], x, x
            for _ in range(self.rounds):
                up = torch.zeros_like(x).index_add(0, edge_dst, up[edge_src]) / indeg[:, None]
                down = torch.zeros_like(x).index_add(0, edge_src, down[edge_dst]) / outdeg[:, None]
                zs += [up, down]
            z = torch.cat(zs, dim=1)
            unit = x[:, 4:5]  # the op's fastest time: learned terms move decisions by op times
            prio = x[:, 0] + unit[:, 0] * self.priority(z)[:, 0]
            bias = (pe_x[:, :, 0] * (1.0 + self.oct_gain(z)) + pe_x[:, :, 1] * self.time_gain(z)
                    + unit * self.pe(pe_x)[:, :, 0])
            return prio, bias

    return ScheduleGNN()


def torch_scores(network: Any, problem: SchedulingInstance) -> tuple[np.ndarray, np.ndarray]:
    """(priority, PE bias) of ``network`` (torch) on ``problem``, in critical-path units."""
    import torch

    x, pe = op_features(problem)
    src, dst = edge_lists(problem)
    with torch.no_grad():
        pr, b = network(torch.from_numpy(x), torch.from_numpy(pe), torch.from_numpy(src),
                        torch.from_numpy(dst))
    return pr.numpy().astype(np.float64), b.numpy().astype(np.float64)


def edge_lists(problem: SchedulingInstance) -> tuple[np.ndarray, np.ndarray]:
    """The edge lists as int64; a graph without edges gets one self-loop on op 0 (the export
    needs at least one edge; a self-loop only adds op 0's own state to its mean messages)."""
    if problem.n_edges == 0:
        return np.zeros(1, np.int64), np.zeros(1, np.int64)
    return problem.edge_src.astype(np.int64), problem.edge_dst.astype(np.int64)


def export_onnx(network: Any, path: str | Path) -> Path:
    """Write ``network`` as ONNX (inputs ``x``, ``pe_x``, ``edge_src``, ``edge_dst``; outputs
    ``priority``, ``pe_bias``; op, PE and edge counts dynamic)."""
    import contextlib
    import io
    import logging
    import warnings

    import torch

    network = network.eval()
    ex = (torch.zeros(5, len(FEATURES)), torch.zeros(5, 3, len(PE_FEATURES)),
          torch.tensor([0, 1, 1, 2]), torch.tensor([1, 2, 3, 4]))
    n_dim, p_dim = torch.export.Dim("n_ops", min=2), torch.export.Dim("n_pes", min=1)
    e_dim = torch.export.Dim("n_edges", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(network, ex, dynamo=True,
                                    input_names=["x", "pe_x", "edge_src", "edge_dst"],
                                    output_names=["priority", "pe_bias"],
                                    dynamic_shapes=({0: n_dim}, {0: n_dim, 1: p_dim}, {0: e_dim},
                                                    {0: e_dim}), verbose=False)
    if program is None:
        raise PolicyError("torch.onnx.export returned no program for the scheduling policy")
    out = Path(path)
    out.write_bytes(program.model_proto.SerializeToString())
    return out


# ---- the shipped policy (ONNX Runtime) ------------------------------------------------------


class SchedulePolicy:
    """The exported policy run by ONNX Runtime, with its card (``card``: a dict)."""

    def __init__(self, onnx_path: str | Path, card: dict[str, Any] | None = None) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise PolicyError(f"no scheduling policy at {path}; train one with "
                              "experiments/train_schedule_policy.py")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  (onnxruntime raises its own exception types)
            raise PolicyError(f"cannot load scheduling policy {path}: {str(e).splitlines()[0]}") from None
        self.card = dict(card or {})
        if card is not None:  # an untrained network (benchmarks' prior arm) has no card
            check_card(self.card, path, {"features": FEATURES, "pe_features": PE_FEATURES},
                       "`mlsysgym experiment train-schedule-policy`")

    @classmethod
    def load(cls, onnx_path: str | Path) -> SchedulePolicy:
        """The policy at ``onnx_path`` and its card (the ``.json`` beside it, if present)."""
        card_path = Path(onnx_path).with_suffix(".json")
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
        return cls(onnx_path, card)

    def scores(self, problem: SchedulingInstance) -> tuple[np.ndarray, np.ndarray]:
        """(priority (n_ops,), PE bias (n_ops, n_pes)) of the policy on ``problem``, in units of
        :func:`instance_scale` (multiply the bias by it for :func:`decode`)."""
        x, pe = op_features(problem)
        src, dst = edge_lists(problem)
        n = problem.n_ops
        if n == 1:  # the export wants ≥ 2 ops: run a copy beside it
            x, pe = np.concatenate([x, x]), np.concatenate([pe, pe])
        pr, b = self.session.run(None, {"x": x, "pe_x": pe, "edge_src": src, "edge_dst": dst})
        return np.asarray(pr, np.float64)[:n], np.asarray(b, np.float64)[:n]

    def schedule(self, problem: SchedulingInstance) -> Schedule:
        """The policy's greedy schedule of ``problem``."""
        pr, b = self.scores(problem)
        return decode(problem, pr, b * instance_scale(problem))


@cache
def default_policy() -> SchedulePolicy:
    """The policy shipped with mlsysgym (``mlsysgym.agents.policies/schedule_gnn.onnx``)."""
    try:
        ref = resources.files("mlsysgym.agents.policies") / POLICY_FILE
    except ModuleNotFoundError:
        raise PolicyError("the package mlsysgym.agents.policies is missing; reinstall mlsysgym") from None
    with resources.as_file(ref) as path:
        return SchedulePolicy.load(path)


# ---- online streams -------------------------------------------------------------------------

Scorer = Callable[[SchedulingInstance], tuple[np.ndarray, np.ndarray]]
"""A function of an instance giving (priority (n_ops,), PE bias in µs (n_ops, n_pes))."""


def heft_scores(problem: SchedulingInstance) -> tuple[np.ndarray, np.ndarray]:
    """HEFT's decisions as scores: the upward rank in critical-path units and no PE bias."""
    return upward_rank(problem) / instance_scale(problem), np.zeros(problem.durations_us.shape)


def policy_scores(policy: SchedulePolicy) -> Scorer:
    """The policy's scores with the PE bias in µs (ready for :func:`decode`)."""
    def scores(problem: SchedulingInstance) -> tuple[np.ndarray, np.ndarray]:
        pr, b = policy.scores(problem)
        return pr, b * instance_scale(problem)

    return scores


def online_schedule(problem: SchedulingInstance, scores_of: Scorer) -> Schedule:
    """Schedule a job stream online: at each arrival time (in order) the jobs arriving then are
    revealed, their ops scored by ``scores_of`` applied to those jobs alone, and list-scheduled
    (:func:`decode`'s rule) into what is already committed; nothing placed earlier moves and no
    op starts before its job arrives. Only arrived jobs are ever seen, so this is a schedule an
    online scheduler can make (its order passes
    :func:`~mlsysgym.simulators.streams.is_online_order`)."""
    dec = ListDecoder(problem)
    pr = np.zeros(problem.n_ops)
    for _, ops in arrival_groups(problem):
        part = _sub_instance(problem, ops)
        p_part, b_part = scores_of(part)
        pr[ops] = p_part
        for k, i in enumerate(ops.tolist()):
            dec.bias[i] = np.where(part.capable[k], b_part[k], 0.0).tolist()
        dec.run(ops.tolist(), pr)
    return dec.schedule()


def _sub_instance(problem: SchedulingInstance, ops: np.ndarray) -> SchedulingInstance:
    """The instance made of ``ops`` (sorted op indices; edges between them kept)."""
    idx = np.full(problem.n_ops, -1, np.int64)
    idx[ops] = np.arange(ops.size)
    keep = (idx[problem.edge_src] >= 0) & (idx[problem.edge_dst] >= 0)
    return SchedulingInstance(
        name=f"{problem.name}[{ops.size} ops]", op_names=tuple(problem.op_names[i] for i in ops),
        op_types=tuple(problem.op_types[i] for i in ops), pe_names=problem.pe_names,
        durations_us=problem.durations_us[ops], edge_src=idx[problem.edge_src[keep]],
        edge_dst=idx[problem.edge_dst[keep]], edge_bytes=problem.edge_bytes[keep],
        edge_comm_us=problem.edge_comm_us[keep], active_power_w=problem.active_power_w,
        idle_power_w=problem.idle_power_w, op_flops=problem.op_flops[ops],
        op_bytes=problem.op_bytes[ops], release_us=problem.release_us[ops],
        job_of=np.unique(problem.job_of[ops], return_inverse=True)[1])


# ---- the agent ------------------------------------------------------------------------------


def _episodes(inner: SchedulingEpisodes, cands: list[Schedule]) -> tuple[list[Schedule], list[Any]]:
    """The candidates the env can replay and their designs: a noisy decode may dispatch an op
    the env's ready window does not hold yet; those are left out (the error of the first
    candidate is raised if none replays)."""
    kept, designs = [], []
    first: SchedulingProblemError | None = None
    for s in cands:
        try:
            designs.append(episode_design(inner.actions_of(s)))
            kept.append(s)
        except SchedulingProblemError as e:
            first = first or e
    if not kept and first is not None:
        raise first
    return kept, designs


@register_agent("learned", kinds=("scheduling",))
def learned_scheduling(problem: BudgetedProblem, rng: np.random.Generator, network: bool = True,
                       samples: int = 8, noise: float = 0.1, search: bool = True,
                       policy_path: str | None = None, patience: int = 400, kick_moves: int = 3,
                       critical_share: float = 0.5, batch: int = 8) -> None:
    """The shipped policy's greedy schedule and ``samples`` decodes of its scores with Gumbel
    noise of ``noise`` op times (:func:`sample_scores`; one batch of evaluations), then local search
    (:func:`~mlsysgym.agents.scheduling_search.local_search`) from the best for the rest of the
    budget (``search=False``: stop there). ``network=False`` is the ablation: HEFT's scores
    (:func:`heft_scores`) in place of the policy's, same steps. ``info``: ``inference_s``
    (features + network), ``greedy_makespan_us``."""
    if samples < 0 or not noise >= 0:
        raise AgentConfigError("samples must be ≥ 0 and noise ≥ 0")
    inner = scheduling_episodes(problem)
    inst = inner.instance
    t0 = time.perf_counter()
    if network:
        pol = default_policy() if policy_path is None else SchedulePolicy.load(policy_path)
        pr, bias = pol.scores(inst)
    else:
        pr, bias = heft_scores(inst)
    problem.info.update(inference_s=time.perf_counter() - t0, network=bool(network))
    scale = instance_scale(inst)
    unit = op_features(inst)[0][:, FEATURES.index("min_time")]
    pairs = [(pr, bias)] + sample_scores(pr, bias, unit, float(noise), int(samples), rng)
    cands = [decode(inst, p, b * scale) for p, b in pairs]
    problem.info["greedy_makespan_us"] = cands[0].makespan_us(inst)
    cands, designs = _episodes(inner, cands)
    rewards = problem.evaluate(designs)
    if not search or problem.exhausted or len(rewards) < len(cands):
        return
    local_search(problem, rng, [cands[int(np.argmax(rewards))]], score_starts=False,
                 patience=patience, kick_moves=kick_moves, critical_share=critical_share,
                 batch=batch)
