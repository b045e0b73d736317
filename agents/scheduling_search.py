"""Inference-time search for the learned kernel scheduler: local search over env decision sequences.

The trained MaskablePPO graph policy (:mod:`mlsysgym.agents.scheduling_agents`) builds
schedules one (op, PE) decision at a time. Sampling more rollouts from it improves slowly,
because a good schedule differs from the policy's in a few decisions spread along an episode of
``n_ops`` steps, and each rollout re-draws all of them. :func:`local_search` searches in the
space of decision sequences instead, starting from what the policy built (PPO+LS; from HEFT's
schedule it is the HEFT+LS control):

1. **Start**: the best of ``starts`` and, given a policy, its greedy rollout and ``samples``
   sampled rollouts (and HEFT's schedule when ``seed_with_heft`` is set). Its decisions
   ``(op_t, pe_t)`` and the env snapshot before each decision form the incumbent.
2. **Move**: pick a decision step ``t`` — uniformly, or (a share ``critical_share`` of the
   moves) the step of an op on the incumbent's critical path — and an alternative legal action
   there: uniformly (``proposal="uniform"``, the default) or from the policy's masked softmax at
   ``temperature`` (``proposal="policy"``; a share ``epsilon`` of the mass spread uniformly).
   The incumbent's own action is excluded. The action is a *different op* (moved earlier in the
   dispatch order) or the *same op on another PE*.
3. **Repair**: play the rest of the incumbent's decisions in their order from there (an op
   keeps its PE; the first of them the env's window holds goes next), so a move changes one
   decision and keeps everything else the policy and the search already found.
4. **Accept** the best of a round of ``batch`` moves (one batched policy call) when its
   makespan is shorter, or equal with a total op finish time no larger (plateau moves). With
   ``objective="jct"`` (job streams, :mod:`mlsysgym.simulators.streams`) the cost is the mean
   job completion time instead, ties broken by the makespan.
5. After ``patience`` moves without a shorter makespan, **kick**: apply ``kick_moves`` random
   moves to the best schedule whatever they cost and go on from there (iterated local search);
   the best schedule seen is returned.

Every candidate is an episode of :class:`~mlsysgym.envs.kernel_scheduling.KernelSchedulingEnv`
(insertion list scheduling; snapshots via ``get_state``/``set_state``, steps via the env's
``place`` fast path), so every result is a valid env trajectory and never worse than its start.
The search is budgeted by ``time_limit_s`` and/or ``max_moves`` (a move budget alone makes it
deterministic for a seed). Policy proposals cost a forward pass per round; per move they were
no better than uniform ones in our runs, so uniform is the default and ``"policy"`` the ablation
(``experiments/scheduling_experiment.py`` reports both).

:func:`eft_action` (first window op on its earliest-finish PE) is a cheap rollout policy for
:func:`mlsysgym.agents.mcts.mcts_search` on this env.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mlsysgym.agents.scheduling_baselines import heft
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
from mlsysgym.simulators.multicore import Platform, Schedule, SchedulingProblem, earliest_start

__all__ = [
    "SearchConfig",
    "SearchError",
    "SearchResult",
    "critical_path",
    "eft_action",
    "local_search",
    "policy_local_search",
]


class SearchError(MlsysgymError):
    """Bad search settings (no budget, bad temperature, unknown proposal, ...)."""


@dataclass(frozen=True)
class SearchConfig:
    """Budget and knobs of :func:`local_search`."""

    time_limit_s: float | None = 10.0   # wall-clock budget (checked between moves)
    max_moves: int | None = None        # move budget (deterministic for a seed when alone)
    samples: int = 16                   # sampled policy rollouts for the start (besides greedy)
    sample_temperature: float = 1.0
    temperature: float = 1.0            # proposal temperature over the policy's logits
    epsilon: float = 0.1                # uniform share of the proposal mass
    patience: int = 400                 # moves without a shorter makespan before a kick
    kick_moves: int = 3                 # random moves of a kick (applied to the best schedule)
    proposal: str = "uniform"           # "uniform" | "policy" (the policy's action distribution)
    seed_with_heft: bool = False        # also start from HEFT's schedule
    critical_share: float = 0.5         # share of moves at the steps of critical-path ops
    batch: int = 8                      # moves per round (one batched policy call; best one kept)
    seed: int = 0
    objective: str = "makespan"         # "makespan" | "jct" (mean job completion time, streams)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise SearchError(f"batch must be ≥ 1, got {self.batch}")
        if self.time_limit_s is None and self.max_moves is None:
            raise SearchError("give a budget: time_limit_s and/or max_moves")
        if self.temperature <= 0 or self.sample_temperature <= 0:
            raise SearchError("temperatures must be > 0")
        if not 0.0 <= self.epsilon <= 1.0:
            raise SearchError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.proposal not in ("policy", "uniform"):
            raise SearchError(f"proposal must be 'policy' or 'uniform', not {self.proposal!r}")
        if self.objective not in ("makespan", "jct"):
            raise SearchError(f"objective must be 'makespan' or 'jct', not {self.objective!r}")
        if self.samples < 0 or self.patience < 1:
            raise SearchError("samples must be ≥ 0 and patience ≥ 1")


@dataclass(frozen=True)
class SearchResult:
    """The best schedule found and how: ``start_source`` is where its start came from
    (``given``, ``greedy``, ``sample`` or ``heft``), ``improved`` whether moves shortened it,
    ``kicks`` how often the search perturbed its best schedule, ``policy_calls`` its batched
    forward passes (policy proposals only)."""

    schedule: Schedule
    makespan_us: float
    start_makespan_us: float
    start_source: str
    greedy_makespan_us: float
    moves: int
    accepted: int
    improvements: int
    kicks: int
    policy_calls: int
    wall_s: float
    history: list[tuple[float, float]] = field(default_factory=list)  # (seconds, best objective)
    objective: str = "makespan"
    mean_jct_us: float = math.nan        # mean job completion time (objective "jct")
    start_mean_jct_us: float = math.nan

    @property
    def improved(self) -> bool:
        if self.objective == "jct":
            return self.mean_jct_us < self.start_mean_jct_us * (1 - 1e-12)
        return self.makespan_us < self.start_makespan_us * (1 - 1e-12)


class _Trajectory:
    """A complete episode: its (op, pe) decisions, the env snapshot before each, and its cost."""

    __slots__ = ("critical", "decisions", "key", "logits", "snaps")

    def __init__(self, decisions: list[tuple[int, int]], snaps: list[Any],
                 key: tuple[float, float], critical: list[int]) -> None:
        self.decisions, self.snaps, self.key = decisions, snaps, key
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
    """The state of one :func:`local_search` run: env, incumbent moves, counters."""

    def __init__(self, policy: Any, problem: SchedulingProblem, platform: Platform, window: int,
                 cfg: SearchConfig) -> None:
        self.policy, self.problem, self.cfg = policy, problem, cfg
        self.env = KernelSchedulingEnv(problem, platform, window=window)
        self.P = self.env.n_pes
        self.n = problem.n_ops
        self.rng = np.random.default_rng(cfg.seed)
        self.policy_calls = 0
        self.job_of = problem.job_of
        self.arrival_sum = float(problem.job_arrival_us.sum())

    # ---- episodes ------------------------------------------------------------------------
    def _key(self) -> tuple[float, float]:
        """(makespan, total op finish) — or (mean job completion time, makespan) for "jct"."""
        if self.cfg.objective == "jct":
            fin = np.full(self.problem.n_jobs, -np.inf)
            np.maximum.at(fin, self.job_of, self.env._finish)
            return ((float(fin.sum()) - self.arrival_sum) / fin.size, self.env.makespan_us)
        return (self.env.makespan_us, float(sum(self.env._finish)))

    def follow(self, decisions: list[tuple[int, int]], snaps: list[Any] | None
               ) -> list[tuple[int, int]]:
        """Play ``decisions`` from the env's current state in their order,
        each op on its PE; an op outside the window waits for the first one inside it. Appends
        the pre-decision snapshot of every step to ``snaps`` when given. Returns what was played."""
        env = self.env
        todo = list(decisions)
        played: list[tuple[int, int]] = []
        while todo:
            win = env.window_ops()
            k = 0
            if todo[0][0] not in win:
                inwin = set(win)
                k = next(j for j, (o, _) in enumerate(todo) if o in inwin)
            op, pe = todo.pop(k)
            if snaps is not None:
                snaps.append(env.get_state())
            env.place(op, pe)
            played.append((op, pe))
        return played

    def trajectory(self, decisions: list[tuple[int, int]]) -> _Trajectory:
        """Replay ``decisions`` from reset, keeping the snapshots."""
        self.env.reset(seed=self.cfg.seed)
        snaps: list[Any] = []
        played = self.follow(decisions, snaps)
        return _Trajectory(played, snaps, self._key(), self._critical_steps(played))

    def _critical_steps(self, decisions: list[tuple[int, int]]) -> list[int]:
        """Decision steps of the critical ops of the env's (finished) episode ``decisions``."""
        pos = {op: t for t, (op, _) in enumerate(decisions)}
        return sorted(pos[i] for i in critical_path(self.env))

    # ---- proposals -----------------------------------------------------------------------
    def fill_logits(self, traj: _Trajectory, steps: list[int]) -> None:
        """The policy's action logits at the incumbent's states before decisions ``steps``
        (those not cached yet), in one batched forward pass."""
        todo = sorted({t for t in steps if t not in traj.logits})
        if not todo or self.cfg.proposal == "uniform":
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
        env, cfg = self.env, self.cfg
        env.set_state(traj.snaps[t])
        mask = env.action_masks()
        op, pe = traj.decisions[t]
        cur = env.window_ops().index(op) * self.P + pe
        mask[cur] = False
        legal = np.flatnonzero(mask)
        if legal.size == 0:
            return None
        if cfg.proposal == "uniform":
            return int(self.rng.choice(legal))
        lg = traj.logits[t][legal] / cfg.temperature
        p = np.exp(lg - lg.max())
        p = (1 - cfg.epsilon) * p / p.sum() + cfg.epsilon / legal.size
        return int(legal[self.rng.choice(legal.size, p=p / p.sum())])

    def candidate(self, traj: _Trajectory, t: int) -> tuple[tuple[float, float], list[tuple[int, int]]] | None:
        """One move at step ``t``: (key, decisions from step t on) of the repaired episode."""
        a = self.propose(traj, t)
        if a is None:
            return None
        env = self.env  # at the state before decision t
        slot, pe = divmod(a, self.P)
        op = env.window_ops()[slot]
        env.place(op, pe)
        rest = [d for d in traj.decisions[t:] if d[0] != op]
        played = self.follow(rest, None)
        return self._key(), [(op, pe)] + played

    def kick(self, traj: _Trajectory, m: int) -> _Trajectory:
        """``traj`` after ``m`` random moves accepted whatever they cost (a perturbation)."""
        for _ in range(m):
            t = int(self.rng.integers(self.n))
            self.fill_logits(traj, [t])
            c = self.candidate(traj, t)
            if c is None:
                continue
            key, tail = c
            self.env.set_state(traj.snaps[t])
            snaps = traj.snaps[:t]
            self.follow(tail, snaps)
            new = traj.decisions[:t] + tail
            old = traj
            traj = _Trajectory(new, snaps, key, self._critical_steps(new))
            traj.logits = {s: v for s, v in old.logits.items() if s <= t}
        return traj

    def round(self, traj: _Trajectory, k: int) -> tuple[_Trajectory | None, int]:
        """``k`` moves from ``traj`` (one batched policy call); the best candidate if it is
        accepted (shorter, or equal makespan and total finish time no larger), and the number
        of moves made."""
        steps = self.rng.integers(self.n, size=k).tolist()
        if traj.critical and self.cfg.critical_share > 0:
            crit = self.rng.random(k) < self.cfg.critical_share
            pick = self.rng.choice(traj.critical, size=k).tolist()
            steps = [c if m else t for t, c, m in zip(steps, pick, crit.tolist())]
        self.fill_logits(traj, steps)
        best: tuple[tuple[float, float], int, list[tuple[int, int]]] | None = None
        for t in steps:
            c = self.candidate(traj, t)
            if c is not None and (best is None or c[0] < best[0]):
                best = (c[0], t, c[1])
        if best is None:
            return None, k
        key, t, tail = best
        if key[0] < traj.key[0] - 1e-9 or (key[0] <= traj.key[0] + 1e-9 and
                                           key[1] <= traj.key[1] + 1e-9):
            self.env.set_state(traj.snaps[t])  # re-play the tail to record its snapshots
            snaps = traj.snaps[:t]
            self.follow(tail, snaps)
            new = traj.decisions[:t] + tail
            nt = _Trajectory(new, snaps, key, self._critical_steps(new))
            nt.logits = {s: v for s, v in traj.logits.items() if s <= t}
            return nt, k
        return None, k


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


def _rollouts(policy: Any, problem: SchedulingProblem, platform: Platform, window: int,
              n: int, greedy: bool, seed: int, temperature: float) -> list[Schedule]:
    from mlsysgym.agents.scheduling_agents import policy_rollouts

    out: list[Schedule] = []
    done = 0
    while done < n:
        k = min(16, n - done)
        out += policy_rollouts(policy, problem, platform, k, greedy, seed * 100_003 + done, window,
                               temperature)
        done += k
    return out


def local_search(problem: SchedulingProblem, platform: Platform, config: SearchConfig | None = None,
                 *, policy: Any = None, starts: Sequence[Schedule] = (),
                 window: int = 16) -> SearchResult:
    """Local search over env decision sequences (see the module docstring) from the best of
    ``starts`` and, with a trained :class:`~mlsysgym.agents.scheduling_agents.GraphSchedulingPolicy`
    ``policy``, its greedy rollout and ``config.samples`` sampled rollouts. Without a policy the
    proposal must be ``"uniform"`` (e.g. the HEFT + local search control)."""
    import torch

    cfg = config or SearchConfig()
    if policy is None and (cfg.proposal == "policy" or not (starts or cfg.seed_with_heft)):
        raise SearchError("without a policy, use proposal='uniform' and give starts or "
                          "seed_with_heft=True")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    deadline = None if cfg.time_limit_s is None else t0 + cfg.time_limit_s
    try:
        search = _LocalSearch(policy, problem, platform, window, cfg)
        cands: list[tuple[Schedule, str]] = [(s, "given") for s in starts]
        g_ms = math.nan
        if policy is not None:
            policy.set_training_mode(False)
            greedy = _rollouts(policy, problem, platform, window, 1, True, cfg.seed, 1.0)[0]
            g_ms = greedy.makespan_us(problem)
            cands.append((greedy, "greedy"))
            cands += [(s, "sample") for s in _rollouts(policy, problem, platform, window,
                                                       cfg.samples, False, cfg.seed,
                                                       cfg.sample_temperature)]
        if cfg.seed_with_heft:
            cands.append((heft(problem), "heft"))
        trajs = [(search.trajectory([(int(i), int(s.assignment[i]))
                                     for i in s.dispatch_order(problem)]), src)
                 for s, src in cands]
        inc, start_source = min(trajs, key=lambda ts: ts[0].key)  # ties: the earlier one
        start_key = inc.key
        best = inc
        history = [(time.perf_counter() - t0, best.key[0])]
        moves = accepted = improvements = kicks = stale = 0
        while (cfg.max_moves is None or moves < cfg.max_moves) and \
                (deadline is None or time.perf_counter() < deadline):
            new, k = search.round(inc, cfg.batch)
            moves += k
            stale += k
            if new is not None:
                accepted += 1
                if new.key[0] < inc.key[0] - 1e-9:
                    stale = 0
                inc = new
                if inc.key < best.key:
                    if inc.key[0] < best.key[0] - 1e-9:
                        improvements += 1
                        history.append((time.perf_counter() - t0, inc.key[0]))
                    best = inc
            if stale >= cfg.patience:  # iterated local search: kick the best and go on
                kicks += 1
                stale = 0
                inc = search.kick(best, cfg.kick_moves)
        env = search.env
        env.reset(seed=cfg.seed)
        search.follow(best.decisions, None)
        sched = env.schedule()
        jct = cfg.objective == "jct"
        return SearchResult(schedule=sched, makespan_us=float(env.makespan_us),
                            start_makespan_us=float(start_key[1] if jct else start_key[0]),
                            start_source=start_source,
                            greedy_makespan_us=float(g_ms), moves=moves, accepted=accepted,
                            improvements=improvements, kicks=kicks,
                            policy_calls=search.policy_calls, wall_s=time.perf_counter() - t0,
                            history=history, objective=cfg.objective,
                            mean_jct_us=float(search._key()[0]) if jct else math.nan,
                            start_mean_jct_us=float(start_key[0]) if jct else math.nan)
    finally:
        torch.set_num_threads(threads)


def policy_local_search(policy: Any, problem: SchedulingProblem, platform: Platform,
                        config: SearchConfig | None = None, window: int = 16,
                        starts: Sequence[Schedule] = ()) -> SearchResult:
    """:func:`local_search` from a trained policy's rollouts (and ``starts``): the learned
    agent with inference-time search."""
    return local_search(problem, platform, config, policy=policy, starts=starts, window=window)
