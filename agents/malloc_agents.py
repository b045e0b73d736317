"""Learning and search agents for mallocGame (problem kind ``"malloc"``), each able to start
from the XLA-style heuristic. All are agents of the one API: ``search(name, problem, budget,
seed, **hp)`` on ``make_problem({"name": "malloc", ...})``.

* ``mcts`` — the AlphaZero-style tree search of :mod:`mlsysgym.agents.mcts` on the env, with
  the heuristic's episode as ``start_from`` and :func:`greedy_policy` as rollout.
* ``maskable_ppo`` — sb3-contrib's MaskablePPO trained on the env; it submits the heuristic's
  episode (optionally), the best episode it played while training and its greedy policy's.
* ``pilot`` — rollouts only (no tree, no network): the control of MCTS's ablation.
* ``local_search`` — not learning: the heuristic's episode improved by changing one decision
  at a time (extended into ejection chains) and completing the rest with :func:`greedy_policy`
  (first improvement, a few passes). A reference for what plain search buys over the heuristic.

Each submits its start (the heuristic's episode, with ``start_from_heuristic=True``) first and
then every improvement of its best episode, so it is never worse than ``xla_greedy`` and the
trajectory with its ``times_s`` is its best-so-far trace. All stop when the budget (evaluations
or seconds) is spent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.malloc_baselines import heuristic_actions
from mlsysgym.agents.malloc_problem import malloc_of
from mlsysgym.agents.mcts import MCTS_HYPERPARAMETERS, mcts_episodes
from mlsysgym.agents.rl import quiet_logger
from mlsysgym.agents.sequential import episode_design
from mlsysgym.envs.malloc_game import MallocGameEnv
from mlsysgym.simulators.memory import FAST, PREFETCH

__all__ = ["LOCAL_SEARCH_HYPERPARAMETERS", "MCTS_MALLOC_HYPERPARAMETERS", "PILOT_HYPERPARAMETERS",
           "PPO_MALLOC_HYPERPARAMETERS", "behaviour_clone", "episode_demo", "greedy_policy",
           "heuristic_demo", "local_search_malloc", "mcts_malloc", "pilot_malloc", "ppo_malloc"]

MCTS_MALLOC_HYPERPARAMETERS: dict[str, list[Any]] = {
    **MCTS_HYPERPARAMETERS, "start_from_heuristic": [True, False], "rollouts": [True, False]}
PILOT_HYPERPARAMETERS: dict[str, list[Any]] = {"start_from_heuristic": [True, False]}
LOCAL_SEARCH_HYPERPARAMETERS: dict[str, list[Any]] = {
    "max_passes": [1, 2, 4], "max_alternatives": [1, 2, 4], "chain_depth": [0, 1, 3]}
PPO_MALLOC_HYPERPARAMETERS: dict[str, list[Any]] = {
    "total_timesteps": [1024, 4096, 8192], "bc_epochs": [0, 200], "learning_rate": [3e-4, 1e-3]}


def _deadline(problem: BudgetedProblem) -> float | None:
    """perf_counter() time at which the budget's seconds run out (None without)."""
    left = problem.time_left_s
    return None if not np.isfinite(left) else time.perf_counter() + left


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def _submit(problem: BudgetedProblem, actions: Sequence[int]) -> float:
    """Score one complete episode through the budget; its reward (= return)."""
    return problem.evaluate_one(episode_design(actions))


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


@register_agent("mcts", kinds=("malloc",))
def mcts_malloc(problem: BudgetedProblem, rng: np.random.Generator, *,
                start_from_heuristic: bool = True, rollouts: bool = True,
                **hyperparameters: Any) -> None:
    """AlphaZero-style search (:func:`~mlsysgym.agents.mcts.mcts_episodes`) from the
    heuristic's episode, with :func:`greedy_policy` rollouts; other hyperparameters:
    :data:`~mlsysgym.agents.mcts.MCTS_DEFAULTS`."""
    env = malloc_of(problem).make_env()
    start = heuristic_actions(env) if start_from_heuristic else None
    mcts_episodes(problem, rng, start_from=start,
                  rollout_policy=greedy_policy if rollouts else None, **hyperparameters)


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
    return episode_demo(env, heuristic_actions(env))


def episode_demo(env: MallocGameEnv, acts: Sequence[int]
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The episode ``acts`` as (stacked observations, actions, action masks)."""
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


def _stop_at(deadline: float | None) -> Any:
    """An SB3 callback that ends training once ``deadline`` (perf_counter) has passed."""
    from stable_baselines3.common.callbacks import BaseCallback

    class StopAtDeadline(BaseCallback):
        def _on_step(self) -> bool:
            return not _past(deadline)

    return StopAtDeadline()


@register_agent("maskable_ppo", kinds=("malloc",))
def ppo_malloc(problem: BudgetedProblem, rng: np.random.Generator, *,
               total_timesteps: int = 2048, start_from_heuristic: bool = True,
               n_steps: int = 256, batch_size: int = 64, n_epochs: int = 4,
               learning_rate: float = 3e-4, hidden: int = 64, bc_epochs: int = 0) -> None:
    """MaskablePPO trained for ``total_timesteps`` env steps (or until shortly before the
    budget's seconds run out: 2 s + 5 % are kept to score its episodes) on the problem's env.

    With ``bc_epochs > 0`` the policy is first behaviour-cloned on the heuristic's episode
    (:func:`behaviour_clone`), so PPO's sampled episodes start as perturbations of it.
    Submits, in this order: the heuristic's episode (with ``start_from_heuristic``, before
    training), the best episode seen during training, and the trained policy played greedily
    (with masks); on a tie the earlier one is the result. ``info``: episodes played, the
    behaviour-cloning loss.
    """
    import torch
    from sb3_contrib import MaskablePPO

    if total_timesteps < 1 or n_steps < 2 or batch_size < 1 or n_epochs < 1 or hidden < 1:
        raise AgentConfigError("maskable_ppo: total_timesteps, batch_size, n_epochs and hidden "
                               "must be >= 1, n_steps >= 2")
    env = malloc_of(problem).make_env()
    seed = int(rng.integers(2**31))
    deadline = _deadline(problem)
    if deadline is not None:  # stop training early enough to score its episodes
        deadline -= 2.0 + 0.05 * problem.time_left_s
    if start_from_heuristic:
        _submit(problem, heuristic_actions(env))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tracked = _BestEpisode(env)
        model = MaskablePPO("MultiInputPolicy", tracked, n_steps=n_steps, batch_size=batch_size,
                            n_epochs=n_epochs, learning_rate=learning_rate, seed=seed,
                            device="cpu", verbose=0,
                            policy_kwargs={"net_arch": [hidden, hidden]})
        quiet_logger(model)
        bc_loss = None
        if bc_epochs > 0:
            bc_loss = behaviour_clone(model, *heuristic_demo(env), epochs=bc_epochs)
        model.learn(total_timesteps=total_timesteps, callback=_stop_at(deadline))
        obs, _ = env.reset(seed=seed)
        acts, done = [], False
        while not done:
            a, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
            obs, _, term, trunc, _ = env.step(int(a))
            acts.append(int(a))
            done = term or trunc
    finally:
        torch.set_num_threads(threads)
    problem.info.update(episodes=tracked.episodes, bc_loss=bc_loss)
    if tracked.best_actions:
        _submit(problem, tracked.best_actions)
    _submit(problem, acts)


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


@register_agent("pilot", kinds=("malloc",))
def pilot_malloc(problem: BudgetedProblem, rng: np.random.Generator, *,
                 start_from_heuristic: bool = True) -> None:
    """Rollouts only — no tree, no network (the "pilot method"): at each step play every
    legal action followed by a :func:`greedy_policy` completion, keep the best complete
    episode seen (each improvement submitted), and commit the action whose completion was best
    (ties: lowest action). ``info["rollouts"]`` counts them; ``info["trace"]`` holds
    (seconds, rollouts, env steps, return) at each improvement.

    The control for ``mcts``'s ablation: what greedy rollouts alone buy. Costs one rollout per
    legal action per step; stops between steps when the budget's seconds run out (each rollout
    finishes the episode, so the best so far is complete). Deterministic (``rng`` unused).
    """
    env = malloc_of(problem).make_env()
    t0, deadline = time.perf_counter(), _deadline(problem)
    best_ret = -np.inf
    if start_from_heuristic:
        best_ret = _submit(problem, heuristic_actions(env))
    env.reset()
    prefix: list[int] = []
    prefix_ret, rollouts, steps = 0.0, 0, 0
    trace: list[tuple[float, int, int, float]] = []
    problem.info.update(rollouts=0, trace=trace)
    while env.current_buffer is not None and not _past(deadline):
        snap = env.get_state()
        scored = []
        for a in np.flatnonzero(env.action_masks()):
            env.set_state(snap)
            _, r, _, _, _ = env.step(int(a))
            tail, tail_ret = _greedy_tail(env)
            rollouts, steps = rollouts + 1, steps + 1 + len(tail)
            problem.info["rollouts"] = rollouts
            ret = prefix_ret + r + tail_ret
            scored.append((ret, int(a)))
            if ret > best_ret + 1e-12:
                best_ret = ret
                trace.append((time.perf_counter() - t0, rollouts, steps, float(ret)))
                _submit(problem, prefix + [int(a)] + tail)
        ret, a = max(scored, key=lambda x: (x[0], -x[1]))
        env.set_state(snap)
        _, r, _, _, _ = env.step(a)
        prefix.append(a)
        prefix_ret += r


@register_agent("local_search", kinds=("malloc",))
def local_search_malloc(problem: BudgetedProblem, rng: np.random.Generator, *,
                        start: Sequence[int] | None = None, max_passes: int = 2,
                        max_alternatives: int = 2, chain_depth: int = 3) -> None:
    """One-decision changes to ``start`` (default the heuristic's episode), rest by
    :func:`greedy_policy`, extended by ejection chains.

    Walks the episode; at each step tries up to ``max_alternatives`` other legal actions (in
    action order: slow, best fit, ...), completes each greedily, and adopts (submits) the first
    that beats the best so far. A change that does not beat it is extended into an *ejection
    chain* (up to ``chain_depth`` more changes): the greedy completion usually hands the space
    a change frees to the next buffer in line — e.g. leaving one of several interchangeable
    large weights slow just lets the next one take its place, a plateau no single change can
    leave — so the first buffer the completion newly puts in fast memory is forced slow too,
    and the rest completed again. Repeats up to ``max_passes`` passes or until a pass finds
    nothing; ``info["passes"]`` logs each. Deterministic (``rng`` unused); stops between steps
    when the budget's seconds run out. ``chain_depth=0`` is the plain one-change neighbourhood.
    """
    if max_passes < 1 or max_alternatives < 1 or chain_depth < 0:
        raise AgentConfigError("local_search: max_passes and max_alternatives must be >= 1, "
                               "chain_depth >= 0")
    env = malloc_of(problem).make_env()
    deadline = _deadline(problem)
    best = list(start) if start is not None else heuristic_actions(env)
    best_ret = _submit(problem, best)
    if problem.failed[-1]:
        raise AgentConfigError("local_search: start is not a complete, legal episode")
    log: list[dict[str, Any]] = []
    problem.info["passes"] = log
    for p in range(max_passes):
        improved = ejections = 0
        env.reset()
        prefix_ret = 0.0
        for i in range(len(best)):
            if _past(deadline):
                break
            snap = env.get_state()
            alts = [a for a in np.flatnonzero(env.action_masks()) if a != best[i]][:max_alternatives]
            for a in alts:
                cand, ret, k = _ejection_chain(env, snap, best, best_ret, i, int(a), prefix_ret,
                                               chain_depth)
                if ret > best_ret + 1e-12:
                    best, best_ret = cand, ret
                    improved, ejections = improved + 1, ejections + k
                    _submit(problem, best)
            env.set_state(snap)
            _, r, _, _, _ = env.step(best[i])
            prefix_ret += r
        log.append({"pass": p, "improvements": improved, "ejections": ejections,
                    "best_return": best_ret})
        if not improved or _past(deadline):
            break
