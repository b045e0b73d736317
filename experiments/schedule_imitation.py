"""Labelled training of the learned list scheduler (``train_schedule_policy.py --method
imitation`` or ``--method rollout``), the alternatives to evolution strategies.

The policy makes two decisions per decode step: which ready op goes next (highest priority)
and on which PE (least finish time + PE bias). Both methods label such decisions with a cost
per candidate and train on them:

- **imitation** (behaviour cloning of searched schedules): on each training instance the
  untrained network (HEFT's order, PEFT's lookahead) with the agent's sampling and local
  search runs for some seconds (:func:`expert_schedules`); the best schedule is the expert.
  Its ops are list-scheduled in its dispatch order on its PEs (:func:`forcing_data`: teacher
  forcing; the replay is the expert's schedule) and each decision costs 0 for the expert's
  choice, 1 for the others.
- **rollout** (one step of policy iteration, :func:`rollout_data`): along the current
  network's greedy decode, at sampled steps, each candidate is placed and the rest decoded
  greedily; its cost is that makespan relative to the greedy one. Steps whose candidates all
  cost the same are left out.

The loss (:func:`imitation_loss`) is the expected regret (cost above the least) under the
softmax of the decoder's own scores at small fixed temperatures, so it is near the regret of
the greedy decision and a near-tie weighs little. Model selection is as for ES: the greedy
decode on the validation split, the best mean kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents import Budget, search
from mlsysgym.agents.learned_schedule import FEATURES, ListDecoder
from mlsysgym.agents.scheduling_problem import SchedulingEpisodes
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.simulators.multicore import SchedulingInstance


@dataclass
class Labels:
    """Labelled decisions of one instance, as torch tensors: ``ready`` (T, R) the ready ops of
    each order decision (−1 pads) and ``order_cost`` (T, R) the cost of choosing each (inf:
    not a candidate); ``pe_op`` (S,) the op of each PE decision, ``finish`` (S, n_pes) its
    finish time on each PE in critical-path units (inf where it cannot run) and ``pe_cost``
    (S, n_pes) the cost of each PE (inf: not a candidate). The targets are the least-cost
    candidates."""

    ready: Any
    order_cost: Any
    pe_op: Any
    finish: Any
    pe_cost: Any
    makespan_us: float


def _finish_row(dec: ListDecoder, i: int, n_pes: int, scale: float) -> np.ndarray:
    f = np.full(n_pes, np.inf)
    for p, _, fin in dec.options(i):
        f[p] = fin / scale
    return f


def _tensors(rows: list[list[int]], order_cost: list[list[float]], pe_op: list[int],
             finish: list[np.ndarray], pe_cost: list[np.ndarray], n_pes: int,
             makespan_us: float) -> Labels:
    import torch

    width = max((len(r) for r in rows), default=1)
    pad = np.full((len(rows), width), -1, np.int64)
    cost = np.full((len(rows), width), np.inf, np.float32)
    for k, (r, c) in enumerate(zip(rows, order_cost)):
        pad[k, :len(r)], cost[k, :len(c)] = r, c
    return Labels(torch.from_numpy(pad), torch.from_numpy(cost),
                   torch.tensor(pe_op, dtype=torch.int64),
                   torch.from_numpy(np.array(finish, np.float32).reshape(-1, n_pes)),
                   torch.from_numpy(np.array(pe_cost, np.float32).reshape(-1, n_pes)), makespan_us)


def _expert(args: tuple[SchedulingInstance, Any, float, str, int, int]) -> dict[str, Any]:
    inst, platform, seconds, prior, window, seed = args
    problem = SchedulingEpisodes.of(inst, platform, window=window)
    res = search("learned", problem, Budget(seconds=seconds), seed=seed, policy_path=prior)
    ok = [k for k in range(len(res.designs)) if not res.failed[k]]
    best = min(ok, key=lambda k: res.metrics[k]["makespan_us"])
    env = problem.make_env()
    env.reset(seed=0)
    assign, order = [0] * inst.n_ops, []
    for a in res.designs[best]["actions"]:
        slot, p = divmod(int(a), env.n_pes)
        op = env.window_ops()[slot]
        env.place(op, p)
        assign[op] = p
        order.append(op)
    return {"order": order, "assign": assign, "makespan_us": float(env.makespan_us),
            "evaluations": len(res.designs), "seconds": seconds, "seed": seed}


def expert_schedules(cases: Sequence[tuple[str, SchedulingInstance, Any, int]], seconds: float,
                     prior: str, workers: int = 1, seed: int = 0,
                     log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """The expert schedule of each ``(name, instance, platform, window)``: the best of
    ``seconds`` of the ``learned`` agent with the untrained network at ``prior`` (ONNX),
    ``workers`` instances at a time. Name → dispatch order, assignment, makespan."""
    jobs = [(inst, plat, seconds, prior, window, seed) for _, inst, plat, window in cases]
    out: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max(1, workers)) as pool:
        for (name, *_), rec in zip(cases, pool.map(_expert, jobs)):
            out[name] = rec
            log(f"expert {len(out)}/{len(cases)} {name}: {rec['makespan_us']:.1f} µs "
                f"({rec['evaluations']} evaluations)")
    return out


def load_experts(path: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Experts written by :func:`save_experts`, one for each of ``names`` (MlsysgymError if the
    file is unreadable or lacks one)."""
    try:
        experts = json.loads(path.read_text())["experts"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MlsysgymError(f"cannot read expert schedules from {path}: {e}") from None
    missing = [n for n in names if n not in experts]
    if missing:
        raise MlsysgymError(f"{path} has no expert schedule for {missing[0]} (and "
                            f"{len(missing) - 1} more); write new ones without this file")
    return experts


def save_experts(path: Path, experts: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write ``experts`` with ``meta`` (where and how they were made) as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "experts": experts}) + "\n")


def forcing_data(inst: SchedulingInstance, expert: dict[str, Any], scale: float) -> Labels:
    """Teacher-forced decisions of ``expert`` on ``inst`` (see the module docstring): cost 0
    for the expert's choice, 1 for the others."""
    assign = [int(a) for a in expert["assign"]]
    dec = ListDecoder(inst)
    waiting = [len(p) for p in dec.preds]
    ready = {i for i in range(inst.n_ops) if waiting[i] == 0}
    rows, order_cost, pe_op, finish, pe_cost = [], [], [], [], []
    for i in expert["order"]:
        if i not in ready:
            raise ValueError(f"expert op {i} of {inst.name} is not ready at its turn")
        if len(ready) > 1:
            rows.append(sorted(ready))
            order_cost.append([float(j != i) for j in rows[-1]])
        f = _finish_row(dec, i, inst.n_pes, scale)
        if np.isfinite(f).sum() > 1:
            pe_op.append(i)
            finish.append(f)
            pe_cost.append(np.where(np.isfinite(f), (np.arange(inst.n_pes) != assign[i]) * 1.0, np.inf))
        dec.place(i, assign[i])
        ready.remove(i)
        for j in dec.succs[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.add(j)
    return _tensors(rows, order_cost, pe_op, finish, pe_cost, inst.n_pes, max(dec.finish))


def rollout_data(inst: SchedulingInstance, priority: np.ndarray, bias_us: np.ndarray,
                 scale: float, steps: int, candidates: int, rng: np.random.Generator) -> Labels:
    """Rollout labels (one step of policy iteration) at ``steps`` decision steps of the greedy
    decode of (``priority``, ``bias_us``), drawn uniformly: the cost of each candidate (each
    capable PE for the step's op; the ``candidates`` ready ops of highest priority for the
    order) is the makespan of placing it and decoding the rest greedily, relative to the
    greedy makespan. Only steps whose candidates differ in cost are kept."""
    n = inst.n_ops
    base = ListDecoder(inst, bias_us)
    base.run(range(n), priority)
    order, assign, m0 = list(base.order), list(base.assign), max(base.finish)

    def state(t: int) -> ListDecoder:
        dec = ListDecoder(inst, bias_us)
        for i in order[:t]:
            dec.place(i, assign[i])
        return dec

    def finish_after(dec: ListDecoder, i: int, pe: int | None) -> float:
        dec.place(i, pe)
        dec.run([j for j in range(n) if dec.assign[j] < 0], priority)
        return max(dec.finish) / m0 - 1.0

    rows, order_cost, pe_op, finish, pe_cost = [], [], [], [], []
    for t in np.sort(rng.choice(n, size=min(steps, n), replace=False)).tolist():
        i = order[t]
        dec = state(t)
        f = _finish_row(dec, i, inst.n_pes, scale)
        if np.isfinite(f).sum() > 1:
            c = np.full(inst.n_pes, np.inf)
            for p in np.flatnonzero(np.isfinite(f)).tolist():
                c[p] = finish_after(state(t), i, p)
            if np.ptp(c[np.isfinite(c)]) > 1e-9:
                pe_op.append(i)
                finish.append(f)
                pe_cost.append(c)
        placed = set(order[:t])
        ready = sorted(j for j in range(n) if j not in placed
                       and all(s in placed for s, _ in dec.preds[j]))
        if len(ready) > 1:
            top = sorted(ready, key=lambda j: -priority[j])[:candidates]
            c = [finish_after(state(t), j, None) if j in top else np.inf for j in ready]
            if np.ptp([v for v in c if np.isfinite(v)]) > 1e-9:
                rows.append(ready)
                order_cost.append(c)
    return _tensors(rows, order_cost, pe_op, finish, pe_cost, inst.n_pes, m0)


def imitation_loss(net: Any, tensors: tuple[Any, Any, Any, Any], data: Labels,
                   log_tau: Any) -> tuple[Any, Any]:
    """(order loss, PE loss): the mean expected regret of the labelled decisions under ``net``
    (softmax temperatures ``exp(log_tau[0])`` for priorities, ``exp(log_tau[1])`` op times for
    PE costs)."""

    prio, bias = net(*tensors)
    zero = prio.sum() * 0.0
    order_loss = pe_loss = zero
    if data.ready.numel():
        logits = prio[data.ready.clamp(min=0)] / log_tau[0].exp()
        order_loss = _expected_regret(logits, data.order_cost)
    if data.pe_op.numel():
        x = tensors[0]
        unit = x[data.pe_op, FEATURES.index("min_time")].clamp(min=1e-6)[:, None]
        cost = (data.finish.nan_to_num(posinf=0.0) + bias[data.pe_op]) / (unit * log_tau[1].exp())
        pe_loss = _expected_regret(-cost, data.pe_cost)
    return order_loss, pe_loss


def _expected_regret(logits: Any, cost: Any) -> Any:
    """Mean over rows of the expected cost above the least, under the softmax of ``logits``
    over the candidates (finite ``cost``): decisions whose candidates cost nearly the same
    weigh little."""
    import torch

    can = torch.isfinite(cost)
    p = torch.softmax(logits.masked_fill(~can, -torch.inf), dim=1)
    c = cost.nan_to_num(posinf=0.0)
    regret = c - cost.masked_fill(~can, torch.inf).min(1, keepdim=True).values
    return (p * regret.masked_fill(~can, 0.0)).sum(1).mean()


def train_imitation(net: Any, train: Sequence[tuple[Any, Labels]], evaluate: Callable[[], np.ndarray],
                    epochs: int, lr: float, eval_every: int, train_priority: bool = True,
                    tau: tuple[float, float] = (1e-3, 0.05),
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Adam on the summed losses over ``train`` ((network inputs, labels) pairs, one full pass
    per epoch); ``evaluate()`` gives the validation ratios (greedy makespan / HEFT) of the
    current weights. ``tau``: the softmax temperatures of the order (critical-path units) and
    of the PE choice (op times), fixed; small, so the softmax is near the greedy decision the
    decoder makes. Keeps the weights of the best validation mean (the start included).
    Returns the record (curve, best epoch, validation ratios at the start and at the end)."""
    import torch

    params = [p for name, p in net.named_parameters() if train_priority or not name.startswith("priority.")]
    log_tau = torch.tensor(np.log(tau), dtype=torch.float32)
    opt = torch.optim.Adam(params, lr=lr)
    val0 = evaluate()
    best = {"epoch": 0, "val_mean": float(val0.mean()),
            "state": {k: v.clone() for k, v in net.state_dict().items()}}
    curve: list[dict[str, Any]] = [{"epoch": 0, "val_mean_ratio": best["val_mean"]}]
    log(f"epoch 0: val ratio {best['val_mean']:.5f}")
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        losses = [imitation_loss(net, tensors, data, log_tau) for tensors, data in train]
        order = torch.stack([a for a, _ in losses]).mean()
        pe = torch.stack([b for _, b in losses]).mean()
        (order + pe).backward()
        opt.step()
        rec: dict[str, Any] = {"epoch": epoch, "order_loss": order.item(), "pe_loss": pe.item()}
        if epoch % eval_every == 0 or epoch == epochs:
            rec["val_mean_ratio"] = float(evaluate().mean())
            if rec["val_mean_ratio"] < best["val_mean"]:
                best = {"epoch": epoch, "val_mean": rec["val_mean_ratio"],
                        "state": {k: v.clone() for k, v in net.state_dict().items()}}
            log(f"epoch {epoch}: order loss {rec['order_loss']:.5f}, PE loss "
                f"{rec['pe_loss']:.5f}, val ratio {rec['val_mean_ratio']:.5f} (best "
                f"{best['val_mean']:.5f} @ {best['epoch']}), {time.perf_counter() - t0:.0f} s")
        curve.append(rec)
    net.load_state_dict(best["state"])
    return {"curve": curve, "best_epoch": best["epoch"], "val_ratios_init": val0.tolist(),
            "val_ratios": evaluate().tolist()}
