"""Local search over env decision sequences for kernel scheduling, and the search agents.

The trained MaskablePPO graph policy (:mod:`mlsysgym.agents.scheduling_agents`) builds
schedules one (op, PE) decision at a time. Sampling more rollouts from it improves slowly,
because a good schedule differs from the policy's in a few decisions spread along an episode of
``n_ops`` steps, and each rollout re-draws all of them. :func:`local_search` searches in the
space of decision sequences instead, starting from what the policy built (``policy_local_search``;
from HEFT's schedule it is ``local_search``, the control):

1. **Start**: the best of the given start schedules (each scored as one evaluation). Its
   decisions ``(op_t, pe_t)`` and the env snapshot before each decision form the incumbent.
2. **Move**: pick a decision step ``t`` — uniformly, or (a share ``critical_share`` of the
   moves) the step of an op on the incumbent's critical path — and an alternative legal action
   there: uniformly (``proposal="uniform"``, the default) or from the policy's masked softmax at
   ``temperature`` (``proposal="policy"``; a share ``epsilon`` of the mass spread uniformly).
   The incumbent's own action is excluded. The action is a *different op* (moved earlier in the
   dispatch order) or the *same op on another PE*.
3. **Repair**: play the rest of the incumbent's decisions in their order from there (an op
   keeps its PE; the first of them the env's window holds goes next), so a move changes one
   decision and keeps everything else the policy and the search already found.
4. **Accept** the best of a round of ``batch`` moves (one batched policy call; the round's
   complete episodes are scored as one batch of evaluations) when its makespan is shorter, or
   equal with a total op finish time no larger (plateau moves). On a job stream whose objective
   is the mean job completion time the cost is that instead, ties broken by the makespan.
5. After ``patience`` moves without a shorter makespan, **kick**: apply ``kick_moves`` random
   moves to the best schedule whatever they cost and go on from there (iterated local search).

Every candidate is an episode of the problem's env (insertion list scheduling; snapshots via
``get_state``/``set_state``, steps via the env's ``place`` fast path) and counts as one
evaluation of the budget, so the search stops exactly at it (evaluations: deterministic for a
seed; or seconds) and the trajectory holds every schedule it scored. Policy proposals cost a
forward pass per round; per move they were no better than uniform ones in our runs, so uniform
is the default and ``"policy"`` the ablation.

:func:`eft_action` (first window op on its earliest-finish PE) is a cheap rollout policy for
tree search on this env.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.scheduling_baselines import cpop, heft
from mlsysgym.agents.scheduling_problem import SchedulingEpisodes, scheduling_episodes
from mlsysgym.agents.sequential import episode_design
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
from mlsysgym.simulators.multicore import Schedule, earliest_start

__all__ = ["LOCAL_SEARCH_HYPERPARAMETERS", "critical_path", "eft_action", "local_search"]

LOCAL_SEARCH_HYPERPARAMETERS: dict[str, list[Any]] = {
    "patience": [100, 400, 1600], "kick_moves": [1, 3, 8], "critical_share": [0.0, 0.5, 0.9],
    "batch": [1, 8, 32]}


class _Trajectory:
    """A complete episode: its (op, pe) decisions, its env actions, the env snapshot before each
    decision, and its cost."""

    __slots__ = ("actions", "critical", "decisions", "key", "logits", "snaps")

    def __init__(self, decisions: list[tuple[int, int]], actions: list[int], snaps: list[Any],
                 key: tuple[float, float], critical: list[int]) -> None:
        self.decisions, self.actions, self.snaps, self.key = decisions, actions, snaps, key
        self.critical = critical  # decision steps of the ops on a critical path
        self.logits: dict[int, np.ndarray] = {}


def critical_path(env: KernelSchedulingEnv) -> list[int]:
    """Ops of one critical path of the env's finished schedule, last first: from the op that
    ends last, repeatedly the data predecessor (with its transfer) or the previous op on the same
    PE whose end is exactly the op's start; stops at time 0 or at an idle gap."""
    st = env._static
    assert st is not None
    start, finish, assign = env._start, env._finish, env._assign
    ends: dict[tuple[int, float], int] = {}
    for i, (p, f) in enumerate(zip(assign, finish)):
        ends[(p, round(f, 6))] = i
    cur = int(np.argmax(finish))
    path = [cur]
    seen = {cur}
    while start[cur] > 1e-9:
        s, p = start[cur], assign[cur]
        nxt = next((j for j, c in st.preds[cur]
                    if abs(finish[j] + (c if assign[j] != p else 0.0) - s) <= 1e-6 * max(1.0, s)), None)
        if nxt is None:
            nxt = ends.get((p, round(s, 6)))
        if nxt is None or nxt in seen:
            break
        cur = nxt
        path.append(cur)
        seen.add(cur)
    return path


class _LocalSearch:
    """The state of one :func:`local_search` run: env, proposal settings, counters."""

    def __init__(self, problem: BudgetedProblem, inner: SchedulingEpisodes,
                 rng: np.random.Generator, policy: Any, proposal: str, temperature: float,
                 epsilon: float, critical_share: float) -> None:
        self.problem, self.policy, self.rng = problem, policy, rng
        self.proposal, self.temperature, self.epsilon = proposal, temperature, epsilon
        self.critical_share = critical_share
        self.env = inner.make_env()
        self.instance = inner.instance
        self.jct = inner.stream and inner.objective == "jct"
        self.P = self.env.n_pes
        self.n = inner.instance.n_ops
        self.policy_calls = 0
        self.job_of = inner.instance.job_of
        self.arrival_sum = float(inner.instance.job_arrival_us.sum())

    # ---- episodes ------------------------------------------------------------------------
    def _key(self) -> tuple[float, float]:
        """(makespan, total op finish) — or (mean job completion time, makespan) on a stream."""
        if self.jct:
            fin = np.full(self.instance.n_jobs, -np.inf)
            np.maximum.at(fin, self.job_of, self.env._finish)
            return ((float(fin.sum()) - self.arrival_sum) / fin.size, self.env.makespan_us)
        return (self.env.makespan_us, float(sum(self.env._finish)))

    def follow(self, decisions: list[tuple[int, int]], snaps: list[Any] | None
               ) -> tuple[list[tuple[int, int]], list[int]]:
        """Play ``decisions`` from the env's current state in their order, each op on its PE;
        an op outside the window waits for the first one inside it. Appends the pre-decision
        snapshot of every step to ``snaps`` when given. Returns what was played and its actions."""
        env = self.env
        todo = list(decisions)
        played: list[tuple[int, int]] = []
        actions: list[int] = []
        while todo:
            win = env.window_ops()
            k = 0
            if todo[0][0] not in win:
                inwin = set(win)
                k = next(j for j, (o, _) in enumerate(todo) if o in inwin)
            op, pe = todo.pop(k)
            if snaps is not None:
                snaps.append(env.get_state())
            actions.append(win.index(op) * self.P + pe)
            env.place(op, pe)
            played.append((op, pe))
        return played, actions

    def trajectory(self, decisions: list[tuple[int, int]]) -> _Trajectory:
        """Replay ``decisions`` from reset, keeping the snapshots."""
        self.env.reset(seed=0)
        snaps: list[Any] = []
        played, actions = self.follow(decisions, snaps)
        return _Trajectory(played, actions, snaps, self._key(), self._critical_steps(played))

    def _critical_steps(self, decisions: list[tuple[int, int]]) -> list[int]:
        """Decision steps of the critical ops of the env's (finished) episode ``decisions``."""
        pos = {op: t for t, (op, _) in enumerate(decisions)}
        return sorted(pos[i] for i in critical_path(self.env))

    def _extend(self, traj: _Trajectory, t: int, tail: list[tuple[int, int]],
                key: tuple[float, float]) -> _Trajectory:
        """``traj``'s first ``t`` decisions then ``tail`` (replayed to record its snapshots)."""
        self.env.set_state(traj.snaps[t])
        snaps = traj.snaps[:t]
        played, actions = self.follow(tail, snaps)
        new = traj.decisions[:t] + played
        nt = _Trajectory(new, traj.actions[:t] + actions, snaps, key, self._critical_steps(new))
        nt.logits = {s: v for s, v in traj.logits.items() if s <= t}
        return nt

    # ---- proposals -----------------------------------------------------------------------
    def fill_logits(self, traj: _Trajectory, steps: list[int]) -> None:
        """The policy's action logits at the incumbent's states before decisions ``steps``
        (those not cached yet), in one batched forward pass."""
        todo = sorted({t for t in steps if t not in traj.logits})
        if not todo or self.proposal == "uniform":
            return
        import torch
        from mlsysgym.agents.scheduling_agents import _to_torch

        obs = []
        for t in todo:
            self.env.set_state(traj.snaps[t])
            obs.append(self.env._obs())
        with torch.no_grad():
            out = self.policy.features_extractor(_to_torch(obs))[:, :self.env.action_space.n]
        self.policy_calls += 1
        for t, lg in zip(todo, out.numpy().astype(np.float64)):
            traj.logits[t] = lg

    def propose(self, traj: _Trajectory, t: int) -> int | None:
        """An action at step ``t`` other than the incumbent's (the env is left at the state
        before decision ``t``), or None when there is none."""
        env = self.env
        env.set_state(traj.snaps[t])
        mask = env.action_masks()
        mask[traj.actions[t]] = False
        legal = np.flatnonzero(mask)
        if legal.size == 0:
            return None
        if self.proposal == "uniform":
            return int(self.rng.choice(legal))
        lg = traj.logits[t][legal] / self.temperature
        p = np.exp(lg - lg.max())
        p = (1 - self.epsilon) * p / p.sum() + self.epsilon / legal.size
        return int(legal[self.rng.choice(legal.size, p=p / p.sum())])

    def candidate(self, traj: _Trajectory, t: int
                  ) -> tuple[tuple[float, float], list[tuple[int, int]], list[int]] | None:
        """One move at step ``t``: (key, decisions from step t on, all actions) of the repaired
        episode."""
        a = self.propose(traj, t)
        if a is None:
            return None
        env = self.env  # at the state before decision t
        slot, pe = divmod(a, self.P)
        op = env.window_ops()[slot]
        env.place(op, pe)
        rest = [d for d in traj.decisions[t:] if d[0] != op]
        played, actions = self.follow(rest, None)
        return self._key(), [(op, pe)] + played, traj.actions[:t] + [a] + actions

    def kick(self, traj: _Trajectory, m: int) -> _Trajectory:
        """``traj`` after ``m`` random moves accepted whatever they cost (a perturbation)."""
        for _ in range(m):
            t = int(self.rng.integers(self.n))
            self.fill_logits(traj, [t])
            c = self.candidate(traj, t)
            if c is not None:
                traj = self._extend(traj, t, c[1], c[0])
        return traj

    def round(self, traj: _Trajectory, k: int) -> tuple[_Trajectory | None, int]:
        """``k`` moves from ``traj`` (one batched policy call), their episodes scored as one
        batch of evaluations (cut at the budget); the best candidate if it is accepted (shorter,
        or equal makespan and total finish time no larger), and the number of moves scored."""
        steps = self.rng.integers(self.n, size=k).tolist()
        if traj.critical and self.critical_share > 0:
            crit = self.rng.random(k) < self.critical_share
            pick = self.rng.choice(traj.critical, size=k).tolist()
            steps = [c if m else t for t, c, m in zip(steps, pick, crit.tolist())]
        self.fill_logits(traj, steps)
        cands = [(c, t) for t in steps if (c := self.candidate(traj, t)) is not None]
        if not cands:
            return None, k
        scored = len(self.problem.evaluate([episode_design(c[2]) for c, _ in cands]))
        best = min(cands[:scored], key=lambda ct: ct[0][0], default=None)
        if best is None:
            return None, scored
        (key, tail, _), t = best
        if key[0] < traj.key[0] - 1e-9 or (key[0] <= traj.key[0] + 1e-9 and
                                           key[1] <= traj.key[1] + 1e-9):
            return self._extend(traj, t, tail, key), scored
        return None, scored


def eft_action(env: KernelSchedulingEnv) -> int:
    """The list-scheduling rule as an env action: the first window op (highest upward-rank
    priority) on the PE where it would finish first (insertion; lowest PE index on ties).
    A cheap rollout policy for tree search."""
    st = env._static
    assert st is not None
    i = env.window_ops()[0]
    best, best_p = math.inf, -1
    for p in np.flatnonzero(st.problem.capable[i]).tolist():
        ready = max((env._finish[j] + (c if env._assign[j] != p else 0.0) for j, c in st.preds[i]),
                    default=0.0)
        ready = max(ready, st.release[i])
        d = st.durations[i][p]
        f = earliest_start(env._intervals[p], ready, d) + d
        if f < best:
            best, best_p = f, p
    return best_p  # window slot 0


def local_search(problem: BudgetedProblem, rng: np.random.Generator,
                 starts: Sequence[Schedule], *, score_starts: bool = True, policy: Any = None, proposal: str = "uniform",
                 temperature: float = 1.0, epsilon: float = 0.1, patience: int = 400,
                 kick_moves: int = 3, critical_share: float = 0.5, batch: int = 8) -> None:
    """Local search over env decision sequences (see the module docstring) from the best of
    ``starts`` (each scored as one evaluation unless ``score_starts`` is False: they were
    already) until the budget is spent (with a time budget: until less time is left than the
    longest round of moves took, so the search ends within it). ``proposal="policy"`` draws
    moves from a trained :class:`~mlsysgym.agents.scheduling_agents.GraphSchedulingPolicy`
    ``policy``. Its counters (moves, accepted, improvements, kicks, policy calls) go to
    ``problem.info``."""
    if proposal not in ("policy", "uniform"):
        raise AgentConfigError(f"proposal must be 'policy' or 'uniform', not {proposal!r}")
    if proposal == "policy" and policy is None:
        raise AgentConfigError("proposal='policy' needs a trained policy (policy_local_search)")
    if not (temperature > 0 and 0.0 <= epsilon <= 1.0 and 0.0 <= critical_share <= 1.0):
        raise AgentConfigError("temperature must be > 0; epsilon and critical_share in [0, 1]")
    if batch < 1 or patience < 1 or kick_moves < 0 or not starts:
        raise AgentConfigError("batch and patience must be ≥ 1, kick_moves ≥ 0, and a start given")
    inner = scheduling_episodes(problem)
    search = _LocalSearch(problem, inner, rng, policy, proposal, temperature, epsilon, critical_share)
    trajs = [search.trajectory([(int(i), int(s.assignment[i])) for i in s.dispatch_order(inner.instance)])
             for s in starts]
    if score_starts:
        problem.evaluate([episode_design(t.actions) for t in trajs])
    inc = best = min(trajs, key=lambda t: t.key)  # ties: the earlier one
    stats = problem.info.setdefault("local_search", {"moves": 0, "accepted": 0, "improvements": 0,
                                                     "kicks": 0, "policy_calls": 0})
    stale, round_s = 0, 0.0  # the longest round (moves + kick) so far
    while not problem.exhausted and problem.time_left_s > round_s:  # a round that fits in time
        t0 = time.perf_counter()
        new, k = search.round(inc, int(batch))
        stats["moves"] += k
        stats["policy_calls"] = search.policy_calls
        stale += k
        if new is not None:
            stats["accepted"] += 1
            if new.key[0] < inc.key[0] - 1e-9:
                stale = 0
            inc = new
            if inc.key < best.key:
                stats["improvements"] += inc.key[0] < best.key[0] - 1e-9
                best = inc
        if stale >= patience:  # iterated local search: kick the best and go on
            stats["kicks"] += 1
            stale = 0
            inc = search.kick(best, int(kick_moves))
        round_s = max(round_s, time.perf_counter() - t0)


_STARTS = {"heft": lambda p: heft(p), "heft_fifo": lambda p: heft(p, by_arrival=True),
           "cpop": lambda p: cpop(p)}


@register_agent("local_search", kinds=("scheduling",))
def local_search_agent(problem: BudgetedProblem, rng: np.random.Generator, start: str = "heft",
                       patience: int = 400, kick_moves: int = 3, critical_share: float = 0.5,
                       batch: int = 8) -> None:
    """Iterated local search with uniform moves from a list scheduler's schedule (``start``:
    ``heft``, ``heft_fifo`` or ``cpop``): the control for the learned agent with search."""
    if start not in _STARTS:
        raise AgentConfigError(f"start must be one of {', '.join(_STARTS)}, not {start!r}")
    sched = _STARTS[start](scheduling_episodes(problem).instance)
    local_search(problem, rng, [sched], patience=patience, kick_moves=kick_moves,
                 critical_share=critical_share, batch=batch)


# ---- learned agents (torch is imported when they run) ----------------------------------------

LEARNED_HYPERPARAMETERS: dict[str, list[Any]] = {
    "total_timesteps": [2048, 8192, 32768], "learning_rate": [1e-4, 3e-4, 1e-3],
    "ent_coef": [0.0, 0.01, 0.05], "hidden": [16, 32, 64], "samples": [0, 24, 96]}


def _trained(problem: BudgetedProblem, rng: np.random.Generator, train_graphs: Any,
             settings: dict[str, Any]) -> tuple[Any, SchedulingEpisodes]:
    """The policy trained for ``problem`` (training time in ``info["train_s"]``; training is
    not part of the instance's search budget, so the clock restarts after it)."""
    from mlsysgym.agents.scheduling_agents import train_policy

    inner = scheduling_episodes(problem)
    if train_graphs is not None and (isinstance(train_graphs, (str, dict))
                                     or not isinstance(train_graphs, Sequence)):
        raise AgentConfigError("train_graphs must be a list of graphs (zoo names or argument "
                               f"overrides of the problem), got {train_graphs!r}")
    graphs = inner.train_graphs if train_graphs is None else train_graphs
    policy, stats = train_policy(inner, graphs, int(rng.integers(2**31 - 1)), **settings)
    problem.info.update(train_s=stats.wall_s, train_timesteps=stats.timesteps,
                        train_graphs=list(stats.workloads), train_first_ratio=stats.first_ratio,
                        train_last_ratio=stats.last_ratio, train_cached=stats.cached)
    problem.restart_clock()  # the budget is the search on this instance
    return policy, inner


def _rollouts_scored(problem: BudgetedProblem, policy: Any, inner: SchedulingEpisodes,
                     rng: np.random.Generator, samples: int, temperatures: Any) -> Schedule:
    """Score the greedy and ``samples`` sampled rollouts (one batch of evaluations); the
    schedule of the best (ties: the earlier)."""
    from mlsysgym.agents.scheduling_agents import rollout_schedules

    runs = rollout_schedules(policy, inner, int(samples), temperatures, int(rng.integers(2**31 - 1)))
    rewards = problem.evaluate([episode_design(a) for _, a, _ in runs])
    return runs[int(np.argmax(rewards))][0]


@register_agent("maskable_ppo", kinds=("scheduling",))
def maskable_ppo_scheduling(problem: BudgetedProblem, rng: np.random.Generator,
                            train_graphs: Sequence[Any] | None = None, samples: int = 24,
                            temperatures: Sequence[float] = (1.0, 0.3, 0.1),
                            heft_guard: bool = False, **training: Any) -> None:
    """The graph policy trained with MaskablePPO (on ``train_graphs``, default the problem's
    ``train_graphs``, else the instance itself; ``training``: network/PPO settings of
    :func:`~mlsysgym.agents.scheduling_agents.train_policy`), then its greedy rollout and
    ``samples`` sampled rollouts, each one evaluation; ``heft_guard`` also scores HEFT's schedule."""
    policy, inner = _trained(problem, rng, train_graphs, training)
    _rollouts_scored(problem, policy, inner, rng, samples, temperatures)
    if heft_guard:
        from mlsysgym.agents.scheduling_problem import submit_schedule

        submit_schedule(problem, heft(inner.instance))


@register_agent("policy_local_search", kinds=("scheduling",))
def policy_local_search(problem: BudgetedProblem, rng: np.random.Generator,
                        train_graphs: Sequence[Any] | None = None, samples: int = 24,
                        temperatures: Sequence[float] = (1.0, 0.3, 0.1), proposal: str = "uniform",
                        temperature: float = 1.0, epsilon: float = 0.1, patience: int = 400,
                        kick_moves: int = 3, critical_share: float = 0.5, batch: int = 8,
                        **training: Any) -> None:
    """The learned agent with inference-time search: ``maskable_ppo``'s rollouts (the first
    ``1 + samples`` evaluations), then :func:`local_search` from their best for the rest of the
    budget (``proposal="policy"``: moves drawn from the policy, the ablation)."""
    policy, inner = _trained(problem, rng, train_graphs, training)
    start = _rollouts_scored(problem, policy, inner, rng, samples, temperatures)
    local_search(problem, rng, [start], score_starts=False, policy=policy, proposal=proposal,
                 temperature=temperature, epsilon=epsilon, patience=patience, kick_moves=kick_moves,
                 critical_share=critical_share, batch=batch)


@register_agent("mcts", kinds=("scheduling",))
def mcts_scheduling(problem: BudgetedProblem, rng: np.random.Generator, max_ops: int | None = None,
                    **hyperparameters: Any) -> None:
    """HEFT-seeded AlphaZero-style tree search (:func:`~mlsysgym.agents.mcts.mcts_episodes`),
    every leaf within ``rollout_depth`` (default: the whole episode) valued by an
    :func:`eft_action` rollout. Instances with more than ``max_ops`` ops are skipped (nothing
    evaluated; ``info["skipped"]``): the flattened observation grows with the graph."""
    from mlsysgym.agents.mcts import mcts_episodes
    from mlsysgym.agents.scheduling_baselines import ReplayError, schedule_to_actions

    inner = scheduling_episodes(problem)
    if max_ops is not None and inner.instance.n_ops > max_ops:
        problem.info["skipped"] = f"{inner.instance.n_ops} ops > max_ops={max_ops}"
        return
    try:
        start = schedule_to_actions(inner.make_env(), heft(inner.instance))
    except ReplayError:
        start = None
    hyperparameters.setdefault("rollout_depth", inner.instance.n_ops)
    mcts_episodes(problem, rng, start_from=start, rollout_policy=eft_action, **hyperparameters)
