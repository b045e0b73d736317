"""Learning and search agents for MallocGame-v0, each able to start from the XLA-style heuristic.

* :func:`mcts_malloc` — the AlphaZero-style tree search of :mod:`mlsysgym.agents.mcts` on the
  env, with the heuristic's episode as ``start_from`` and :func:`greedy_policy` as rollout.
* :func:`ppo_malloc` — sb3-contrib's MaskablePPO trained on the env; the result is the best of
  its greedy policy, the best episode it played while training and (optionally) the heuristic.
* :func:`pilot_malloc` — rollouts only (no tree, no network): the control of MCTS's ablation.
* :func:`local_search_malloc` — not learning: the heuristic's episode improved by changing one
  decision at a time (extended into ejection chains) and completing the rest with
  :func:`greedy_policy` (first improvement, a few passes). A reference for what plain search
  buys over the heuristic.

With ``start_from_heuristic=True`` each returns the heuristic's own episode when it finds
nothing better, so it is never worse than :func:`~mlsysgym.agents.malloc_baselines.xla_greedy`.
Results are measured by replaying the actions in the env (``time_us`` is the simulator's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
from mlsysgym.agents.malloc_baselines import actions_for, xla_greedy
from mlsysgym.agents.mcts import MCTSConfig, MCTSError, mcts_search, play_actions
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.simulators.memory import FAST, PREFETCH

__all__ = ["MallocAgentResult", "behaviour_clone", "evaluate_actions", "greedy_policy", "heuristic_actions", "heuristic_demo",
           "local_search_malloc", "mcts_malloc", "pilot_malloc", "ppo_malloc"]


@dataclass(frozen=True)
class MallocAgentResult:
    """An agent's best episode on a :class:`MallocGameEnv` and its simulated execution time."""

    agent: str
    actions: list[int]
    time_us: float
    all_slow_time_us: float
    source: str            # which episode won: "start_from" (the heuristic), "self-play", ...
    search_s: float
    log: list[Any] = field(default_factory=list)
    # MCTS and pilot: (seconds, simulations or rollouts, env steps, best time µs) at each
    # improvement of the best episode
    trace: list[tuple[float, int, int, float]] = field(default_factory=list)

    @property
    def improvement(self) -> float:
        """Fraction of the all-slow time saved (= the episode's return)."""
        return (self.all_slow_time_us - self.time_us) / self.all_slow_time_us


def evaluate_actions(env: MallocGameEnv, actions: Sequence[int]) -> float:
    """Final execution time (µs) of playing ``actions`` from reset; MCTSError if incomplete."""
    _, done = play_actions(env, actions)
    if not done:
        raise MCTSError(f"{len(actions)} actions do not finish the episode of {env.n_buffers} buffers")
    return float(env.state.total_us)


def heuristic_actions(env: MallocGameEnv) -> list[int]:
    """The XLA-style greedy's placement as the env's action sequence."""
    return actions_for(env, xla_greedy(env.problem).placement)


def greedy_policy(env: gym.Env) -> int:
    """Best fit in fast memory if that lowers the time now, else a best-fit prefetch if that
    does, else slow — the greedy as a policy on the env's current state (used as rollout)."""
    env = env.unwrapped
    b = env.current_buffer
    mask = env.action_masks()
    if mask[1] and env.state.delta_time(b, FAST) < 0:
        return 1
    pf = 1 + env.n_offsets
    if env.prefetch and mask[pf] and env.state.delta_time(b, PREFETCH) < 0:
        return pf
    return 0


def _result(env: MallocGameEnv, agent: str, actions: list[int], source: str, t0: float,
            log: list[Any]) -> MallocAgentResult:
    return MallocAgentResult(agent, list(actions), evaluate_actions(env, actions),
                             env.all_slow_time_us, source, time.perf_counter() - t0, log)


def mcts_malloc(env: MallocGameEnv, config: MCTSConfig | None = None, *,
                start_from_heuristic: bool = True, rollouts: bool = True) -> MallocAgentResult:
    """AlphaZero-style search (:func:`mcts_search`) from the heuristic, with greedy rollouts."""
    t0 = time.perf_counter()
    start = heuristic_actions(env) if start_from_heuristic else None
    res = mcts_search(env, config, start_from=start,
                      rollout_policy=greedy_policy if rollouts else None)
    out = _result(env, "mcts", res.actions, res.source, t0, res.log)
    scale = env.reward_scale_us
    trace = [(t, n, k, env.all_slow_time_us - ret * scale) for t, n, k, ret in res.trace]
    return replace(out, trace=trace)


class _BestEpisode(gym.Wrapper):
    """Records each episode's actions and return; keeps the best complete one."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.best_actions: list[int] = []
        self.best_return = -np.inf
        self.episodes = 0
        self._acts: list[int] = []
        self._ret = 0.0

    def reset(self, **kwargs):
        self._acts, self._ret = [], 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self._acts.append(int(action))
        self._ret += float(r)
        if term or trunc:
            self.episodes += 1
            if self._ret > self.best_return + 1e-12 and info.get("invalid_actions", 0) == 0:
                self.best_actions, self.best_return = list(self._acts), self._ret
        return obs, r, term, trunc, info

    def action_masks(self) -> np.ndarray:
        return self.env.unwrapped.action_masks()


def heuristic_demo(env: MallocGameEnv) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The heuristic's episode as (stacked observations, actions, action masks)."""
    acts = heuristic_actions(env)
    obs, _ = env.reset()
    rows, masks = [], []
    for a in acts:
        rows.append(obs)
        masks.append(env.action_masks())
        obs, _, _, _, _ = env.step(a)
    stacked = {k: np.stack([o[k] for o in rows]) for k in rows[0]}
    return stacked, np.asarray(acts), np.stack(masks)


def behaviour_clone(model: Any, obs: dict[str, np.ndarray], actions: np.ndarray,
                    masks: np.ndarray, epochs: int) -> float:
    """Fit a MaskablePPO policy's action head to ``actions`` (full-batch cross-entropy with the
    masks, ``epochs`` Adam steps on the policy's own optimizer); returns the final loss."""
    import torch

    policy = model.policy
    obs_t, _ = policy.obs_to_tensor(obs)
    act_t = torch.as_tensor(actions, device=policy.device)
    mask_t = torch.as_tensor(masks, device=policy.device)
    loss = torch.zeros(())
    policy.set_training_mode(True)
    for _ in range(epochs):
        _, log_prob, _ = policy.evaluate_actions(obs_t, act_t, action_masks=mask_t)
        loss = -log_prob.mean()
        policy.optimizer.zero_grad()
        loss.backward()
        policy.optimizer.step()
    policy.set_training_mode(False)
    return float(loss.detach())


def ppo_malloc(env: MallocGameEnv, *, total_timesteps: int = 2048, seed: int = 0,
               start_from_heuristic: bool = True, n_steps: int = 256, batch_size: int = 64,
               n_epochs: int = 4, learning_rate: float = 3e-4, hidden: int = 64,
               bc_epochs: int = 0) -> MallocAgentResult:
    """MaskablePPO trained for ``total_timesteps`` env steps on ``env``.

    With ``bc_epochs > 0`` the policy is first behaviour-cloned on the heuristic's episode
    (:func:`behaviour_clone`), so PPO's sampled episodes start as perturbations of it.
    Returns the best of: the trained policy played greedily (with masks), the best episode seen
    during training, and — with ``start_from_heuristic`` — the heuristic's episode.
    """
    import torch
    from sb3_contrib import MaskablePPO

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tracked = _BestEpisode(env)
        model = MaskablePPO("MultiInputPolicy", tracked, n_steps=n_steps, batch_size=batch_size,
                            n_epochs=n_epochs, learning_rate=learning_rate, seed=seed,
                            device="cpu", verbose=0,
                            policy_kwargs={"net_arch": [hidden, hidden]})
        bc_loss = None
        if bc_epochs > 0:
            bc_loss = behaviour_clone(model, *heuristic_demo(env), epochs=bc_epochs)
        model.learn(total_timesteps=total_timesteps)
        obs, _ = env.reset(seed=seed)
        acts, done = [], False
        while not done:
            a, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
            obs, _, term, trunc, _ = env.step(int(a))
            acts.append(int(a))
            done = term or trunc
    finally:
        torch.set_num_threads(threads)
    cands = [(evaluate_actions(env, acts), 0, "policy", acts)]
    if tracked.best_actions:
        cands.append((evaluate_actions(env, tracked.best_actions), 1, "training",
                      tracked.best_actions))
    if start_from_heuristic:
        h = heuristic_actions(env)
        cands.append((evaluate_actions(env, h), 2, "start_from", h))
    _, _, source, best = min(cands, key=lambda c: (c[0], -c[1]))
    log = [{"episodes": tracked.episodes, "policy_time_us": cands[0][0], "bc_loss": bc_loss,
            "best_training_time_us": cands[1][0] if tracked.best_actions else None}]
    return _result(env, "ppo", best, source, t0, log)


def _greedy_tail(env: MallocGameEnv) -> tuple[list[int], float]:
    """Play :func:`greedy_policy` from the env's current state to the end: (actions, return)."""
    tail, ret, done = [], 0.0, env.current_buffer is None
    while not done:
        a = greedy_policy(env)
        _, r, done, _, _ = env.step(a)
        tail.append(a)
        ret += r
    return tail, ret


def _ejection_chain(env: MallocGameEnv, snap: dict[str, Any], best: list[int], best_ret: float,
                    i: int, action: int, prefix_ret: float,
                    depth: int) -> tuple[list[int], float, int]:
    """Move ``best[i] -> action`` (from snapshot ``snap`` = the state before step ``i``) and
    complete greedily; while the result is no better than ``best_ret`` and ``depth`` allows,
    eject the first later buffer that the completion put in fast memory although ``best``
    left it slow (force it slow) and complete again. Returns (episode, return, ejections)."""
    env.set_state(snap)
    _, r, _, _, _ = env.step(action)
    tail, tail_ret = _greedy_tail(env)
    cand, ret = best[:i] + [action] + tail, prefix_ret + r + tail_ret
    ejected = 0
    while ret <= best_ret + 1e-12 and ejected < depth:
        newcomers = [j for j in range(i + 1, len(cand)) if cand[j] != 0 and best[j] == 0]
        if not newcomers:
            break
        j = newcomers[0]
        env.set_state(snap)
        ret = prefix_ret
        for a in cand[i:j] + [0]:
            _, r, _, _, _ = env.step(a)
            ret += r
        tail, tail_ret = _greedy_tail(env)
        cand, ret = cand[:j] + [0] + tail, ret + tail_ret
        ejected += 1
    return cand, ret, ejected


def pilot_malloc(env: MallocGameEnv, *, start_from_heuristic: bool = True,
                 time_limit_s: float | None = None) -> MallocAgentResult:
    """Rollouts only — no tree, no network (the "pilot method"): at each step play every
    legal action followed by a :func:`greedy_policy` completion, keep the best complete
    episode seen, and commit the action whose completion was best (ties: lowest action).
    Its ``trace`` counts rollouts where MCTS counts simulations.

    The control for :func:`mcts_malloc`'s ablation: what greedy rollouts alone buy. Costs one
    rollout per legal action per step; ``time_limit_s`` stops it between steps (the best
    episode so far is returned, which is complete: each rollout finishes the episode).
    """
    t0 = time.perf_counter()
    deadline = None if time_limit_s is None else t0 + time_limit_s
    best: list[int] = heuristic_actions(env) if start_from_heuristic else []
    best_ret, source = -np.inf, "start_from"
    if best:
        best_ret, _ = play_actions(env, best)
    env.reset()
    prefix: list[int] = []
    prefix_ret, rollouts, steps = 0.0, 0, 0
    trace: list[tuple[float, int, int, float]] = []
    while env.current_buffer is not None:
        if deadline is not None and time.perf_counter() > deadline:
            break
        snap = env.get_state()
        scored = []
        for a in np.flatnonzero(env.action_masks()):
            env.set_state(snap)
            _, r, _, _, _ = env.step(int(a))
            tail, tail_ret = _greedy_tail(env)
            rollouts, steps = rollouts + 1, steps + 1 + len(tail)
            ret = prefix_ret + r + tail_ret
            scored.append((ret, int(a)))
            if ret > best_ret + 1e-12:
                best, best_ret, source = prefix + [int(a)] + tail, ret, "rollout"
                trace.append((time.perf_counter() - t0, rollouts, steps,
                              env.all_slow_time_us - ret * env.reward_scale_us))
        ret, a = max(scored, key=lambda x: (x[0], -x[1]))
        env.set_state(snap)
        _, r, _, _, _ = env.step(a)
        prefix.append(a)
        prefix_ret += r
    out = _result(env, "pilot", best, source, t0, [{"rollouts": rollouts}])
    return replace(out, trace=trace)


def local_search_malloc(env: MallocGameEnv, *, start: Sequence[int] | None = None,
                        max_passes: int = 2, max_alternatives: int = 2, chain_depth: int = 3,
                        time_limit_s: float | None = None) -> MallocAgentResult:
    """One-decision changes to ``start`` (default the heuristic's episode), rest by
    :func:`greedy_policy`, extended by ejection chains.

    Walks the episode; at each step tries up to ``max_alternatives`` other legal actions (in
    action order: slow, best fit, ...), completes each greedily, and adopts the first that
    beats the best so far. A change that does not beat it is extended into an *ejection
    chain* (up to ``chain_depth`` more changes): the greedy completion usually hands the space
    a change frees to the next buffer in line — e.g. leaving one of several interchangeable
    large weights slow just lets the next one take its place, a plateau no single change can
    leave — so the first buffer the completion newly puts in fast memory is forced slow too,
    and the rest completed again. Repeats up to ``max_passes`` passes or until a pass finds
    nothing. Deterministic; ``time_limit_s`` stops it between steps (returning the best so
    far). ``chain_depth=0`` is the plain one-change neighbourhood.
    """
    t0 = time.perf_counter()
    deadline = None if time_limit_s is None else t0 + time_limit_s
    best = list(start) if start is not None else heuristic_actions(env)
    best_ret, done = play_actions(env, best)
    if not done:
        raise MCTSError("start does not finish the episode")
    source, log = "start_from", []
    for p in range(max_passes):
        improved = ejections = 0
        env.reset()
        prefix_ret = 0.0
        for i in range(len(best)):
            if deadline is not None and time.perf_counter() > deadline:
                break
            snap = env.get_state()
            alts = [a for a in np.flatnonzero(env.action_masks()) if a != best[i]][:max_alternatives]
            for a in alts:
                cand, ret, k = _ejection_chain(env, snap, best, best_ret, i, int(a), prefix_ret,
                                               chain_depth)
                if ret > best_ret + 1e-12:
                    best, best_ret, source = cand, ret, "local_search"
                    improved, ejections = improved + 1, ejections + k
            env.set_state(snap)
            _, r, _, _, _ = env.step(best[i])
            prefix_ret += r
        log.append({"pass": p, "improvements": improved, "ejections": ejections,
                    "best_return": best_ret})
        if not improved or (deadline is not None and time.perf_counter() > deadline):
            break
    return _result(env, "local_search", best, source, t0, log)
