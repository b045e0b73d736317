"""AlphaZero-style tree search for deterministic, masked, finite-horizon Gymnasium envs.

Monte Carlo tree search with PUCT selection, guided by a small torch policy/value network
(an MLP on the flattened observation, a masked-softmax policy head and a value head) trained
by self-play. The env itself is the model: the search restores env snapshots and steps them
(no learned dynamics). What the env must offer:

* ``action_space`` ``Discrete(n)`` and ``action_masks() -> bool[n]`` (all actions legal if absent);
* ``get_state()`` / ``set_state(state)`` snapshots (otherwise the env's attributes are
  deep-copied, sharing its spaces and the attributes named in ``shared_attrs``);
* determinism: the same state and action give the same reward and next state.

It is one agent of the one agent API: :func:`mcts_episodes` searches a sequential problem
(:class:`~mlsysgym.agents.sequential.EpisodeProblem`) under a budget, and every time its best
complete episode improves it submits that episode as an evaluation, so the trajectory (and its
``times_s``) is the best-so-far trace. Registered as ``mcts`` for any sequential problem
(``kinds=("episode",)``, no start and no rollouts); a problem family registers its own ``mcts``
with a heuristic's episode as ``start_from`` and a cheap ``rollout_policy`` (e.g. mallocGame).

Values are undiscounted returns-to-go; Q-values are min-max normalized over the tree (rewards
may be on any scale). Every complete episode the search sees (self-play episodes, terminal
states reached inside the tree, rollouts) is a candidate: with ``start_from`` (e.g. a
heuristic's action sequence) that sequence is the first candidate, and it also pre-trains the
network by imitation, so the result is never worse than it. An optional ``rollout_policy``
(env → action) values the leaves near the root by playing it to the end (AlphaGo-style);
deeper leaves use the value head.

Hyperparameters (:data:`MCTS_DEFAULTS`): search and training budget, and the ablations:
``network="untrained"`` keeps a randomly initialized network that is never fitted,
``network="none"`` replaces it by a uniform prior over the legal actions and a zero value;
``rollout_min_prior`` lets the prior decide which leaves get a rollout; ``value_baseline``
trains the value head on returns relative to ``start_from``'s. The result's ``info`` holds the
per-iteration log (``mcts_log``: losses, returns), ``simulations``, ``env_steps``, ``source``
(which episode won) and ``trace`` ((seconds, simulations, env steps, return) at each
improvement).

The search runs on ``env.unwrapped``; it is deterministic for a seed (``torch.manual_seed``,
one torch thread, a seeded NumPy generator) unless the budget's seconds cut it short.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from mlsysgym.agents.base import AgentConfigError, BudgetedProblem, register_agent
from mlsysgym.agents.sequential import episode_design, sequential_problem
from mlsysgym.core.errors import MlsysgymError

__all__ = ["MCTS_DEFAULTS", "MCTS_HYPERPARAMETERS", "IterationLog", "MCTSError",
           "PolicyValueNet", "Snapshotter", "mcts_episodes"]

RolloutPolicy = Callable[[gym.Env], int]
Featurize = Callable[[Any], np.ndarray]


class MCTSError(MlsysgymError):
    """Bad input to the tree search (unsupported env or action sequence)."""


@dataclass(frozen=True)
class _Params:
    """The search's hyperparameters (small defaults for 2 CPU cores); see :data:`MCTS_DEFAULTS`."""

    n_simulations: int = 16          # simulations per move
    iterations: int = 2              # self-play iterations (episodes, then training)
    episodes_per_iteration: int = 1
    final_episode: bool = True       # one noise-free search episode with the trained network
    c_puct: float = 1.25
    dirichlet_alpha: float = 0.3     # root noise in self-play episodes
    noise_fraction: float = 0.25
    hidden: int = 64
    lr: float = 3e-3
    train_epochs: int = 10           # passes over the replay data per iteration
    batch_size: int = 64
    imitation_epochs: int = 20       # pre-training passes on the start_from episode
    imitation_smoothing: float = 0.5  # start_from targets: (1 - s)·one-hot + s·uniform over legal
    root_expand_all: bool = True     # try every legal root action once before going deeper
    rollout_depth: int = 1           # leaves this deep below the root use rollout_policy
    network: str = "trained"         # "trained"; "untrained" (random init, never fitted);
    #                                  "none" (uniform prior over legal actions, zero value)
    value_baseline: bool = False     # value targets relative to start_from's return-to-go at
    #                                  the same step, in % of its return (needs start_from)
    rollout_min_prior: float = 0.0   # leaves whose prior is below this skip the rollout and
    #                                  use the value head (the network prunes rollouts)
    seed: int = 0                    # set from the agent's generator

    def __post_init__(self) -> None:
        if self.n_simulations < 1 or self.iterations < 0 or self.episodes_per_iteration < 1:
            raise AgentConfigError("mcts: n_simulations and episodes_per_iteration must be >= 1, "
                                   "iterations >= 0")
        if self.hidden < 1 or self.batch_size < 1 or self.lr <= 0 or self.c_puct <= 0:
            raise AgentConfigError("mcts: hidden, batch_size, lr and c_puct must be positive")
        if self.network not in ("trained", "untrained", "none"):
            raise AgentConfigError(f"mcts: network must be 'trained', 'untrained' or 'none'; "
                                   f"got {self.network!r}")

    @classmethod
    def of(cls, hyperparameters: Mapping[str, Any], seed: int) -> _Params:
        """Checked parameters from an agent's keyword arguments (AgentConfigError if unknown)."""
        known = {f.name for f in fields(cls)} - {"seed"}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise AgentConfigError(f"mcts: unknown hyperparameter(s) {unknown}; "
                                   f"known: {sorted(known)}")
        return cls(**hyperparameters, seed=seed)


MCTS_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(_Params) if f.name != "seed"}
MCTS_HYPERPARAMETERS: dict[str, list[Any]] = {
    "n_simulations": [8, 16, 32], "iterations": [1, 3], "rollout_depth": [1, 3],
    "network": ["trained", "none"], "value_baseline": [False, True],
}


@dataclass(frozen=True)
class IterationLog:
    """One self-play iteration (``iteration`` -1: imitation of start_from; the last may be "final")."""

    iteration: int
    episode_returns: tuple[float, ...]
    best_return: float
    policy_loss: float
    value_loss: float
    n_samples: int
    wall_s: float


# ---- env snapshots ------------------------------------------------------------------------
class Snapshotter:
    """``get``/``set`` of an env's state: its own ``get_state``/``set_state`` or a deep copy."""

    _SHARED = ("observation_space", "action_space", "spec", "metadata", "problem", "problems",
               "platform", "_statics", "_static", "_np_random")

    def __init__(self, env: gym.Env, shared_attrs: Sequence[str] = ()) -> None:
        self.env = env
        self.native = callable(getattr(env, "get_state", None)) and callable(
            getattr(env, "set_state", None))
        self._names = set(self._SHARED) | set(shared_attrs)

    def _memo(self) -> dict[int, Any]:
        """Deep-copy memo that makes the shared attributes copy to themselves."""
        return {id(v): v for k, v in vars(self.env).items() if k in self._names}

    def get(self) -> Any:
        """A snapshot of the env now."""
        if self.native:
            return self.env.get_state()
        return copy.deepcopy(vars(self.env), self._memo())

    def set(self, state: Any) -> None:
        """Restore a snapshot (which stays usable)."""
        if self.native:
            self.env.set_state(state)
        else:
            vars(self.env).update(copy.deepcopy(state, self._memo()))


def _mask(env: gym.Env, n: int) -> np.ndarray:
    fn = getattr(env, "action_masks", None)
    return np.asarray(fn(), bool) if callable(fn) else np.ones(n, bool)


# ---- the network --------------------------------------------------------------------------
def _torch():
    import torch

    return torch


class PolicyValueNet:
    """MLP trunk → masked-softmax policy logits and a scalar value (torch, CPU)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int, lr: float) -> None:
        torch = _torch()
        nn = torch.nn
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(),
                                   nn.Linear(hidden, hidden), nn.Tanh())
        self.policy = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)
        params = [*self.trunk.parameters(), *self.policy.parameters(), *self.value.parameters()]
        self.opt = torch.optim.Adam(params, lr=lr)

    def predict(self, obs: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
        """Masked action probabilities and the value of one observation."""
        torch = _torch()
        with torch.inference_mode():
            h = self.trunk(torch.as_tensor(obs[None]))
            logits = self.policy(h)[0].numpy().astype(np.float64)
            v = float(self.value(h)[0, 0])
        logits = np.where(mask, logits, -np.inf)
        p = np.exp(logits - logits[mask].max())
        return p / p.sum(), v

    def fit(self, obs: np.ndarray, masks: np.ndarray, pis: np.ndarray, values: np.ndarray,
            epochs: int, batch_size: int, rng: np.random.Generator) -> tuple[float, float]:
        """Cross-entropy to the target distributions + MSE to the returns; mean losses of the last epoch."""
        torch = _torch()
        o, m = torch.as_tensor(obs), torch.as_tensor(masks)
        pi, v = torch.as_tensor(pis), torch.as_tensor(values)
        lp = lv = 0.0
        for _ in range(epochs):
            perm = rng.permutation(len(o))
            tot_p = tot_v = 0.0
            for s in range(0, len(o), batch_size):
                idx = torch.as_tensor(perm[s:s + batch_size])
                h = self.trunk(o[idx])
                logits = self.policy(h).masked_fill(~m[idx], -1e9)
                loss_p = -(pi[idx] * torch.log_softmax(logits, -1)).sum(-1).mean()
                loss_v = ((self.value(h)[:, 0] - v[idx]) ** 2).mean()
                self.opt.zero_grad()
                (loss_p + loss_v).backward()
                self.opt.step()
                tot_p += loss_p.item() * len(idx)
                tot_v += loss_v.item() * len(idx)
            lp, lv = tot_p / len(o), tot_v / len(o)
        return lp, lv


# ---- the tree -----------------------------------------------------------------------------
class _Node:
    """A state in the tree: its snapshot, legal actions, priors and per-action statistics."""

    __slots__ = (
        "children",
        "mask",
        "obs",
        "prior",
        "reward",
        "state",
        "terminal",
        "value",
        "value_sum",
        "visits",
    )

    def __init__(self, reward: float, terminal: bool) -> None:
        self.reward, self.terminal = reward, terminal
        self.state: Any = None
        self.obs: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.prior: np.ndarray | None = None
        self.value = 0.0
        self.visits: np.ndarray | None = None
        self.value_sum: np.ndarray | None = None
        self.children: dict[int, _Node] = {}


class _MinMax:
    """Running bounds of the Q-values seen, to normalize them to [0, 1]."""

    def __init__(self) -> None:
        self.lo, self.hi = math.inf, -math.inf

    def update(self, q: float) -> None:
        self.lo, self.hi = min(self.lo, q), max(self.hi, q)

    def norm(self, q: np.ndarray) -> np.ndarray:
        if self.hi > self.lo:
            return (q - self.lo) / (self.hi - self.lo)
        return np.zeros_like(q)


@dataclass
class _Best:
    actions: list[int]
    ret: float
    source: str


class _Search:
    """One run of :func:`mcts_episodes`: env, network, best episode and counters."""

    def __init__(self, env: gym.Env, cfg: _Params, rollout_policy: RolloutPolicy | None,
                 featurize: Featurize, shared_attrs: Sequence[str],
                 submit: Callable[[list[int]], Any] | None = None) -> None:
        self.env, self.cfg, self.rollout_policy = env, cfg, rollout_policy
        self.featurize = featurize
        self.snap = Snapshotter(env, shared_attrs)
        self.n_actions = int(env.action_space.n)
        self.rng = np.random.default_rng(cfg.seed)
        self.best = _Best([], -math.inf, "")
        self.steps = 0
        self.sims = 0
        self.t0 = time.perf_counter()
        self.trace: list[tuple[float, int, int, float]] = []
        self.net: PolicyValueNet | None = None
        self.baseline: np.ndarray | None = None   # start_from's return-to-go per step
        self.value_unit = 1.0
        self.submit = submit  # called with each new best episode (scores it through the budget)

    def to_target(self, rtg: float, t: int) -> float:
        """Value-head target for return-to-go ``rtg`` at step ``t``."""
        if self.baseline is None:
            return rtg
        return (rtg - self._base(t)) / self.value_unit

    def _base(self, t: int) -> float:
        return float(self.baseline[t]) if t < len(self.baseline) else 0.0

    def evaluate(self, obs: np.ndarray, mask: np.ndarray, t: int) -> tuple[np.ndarray, float]:
        """Prior and value (a return-to-go) of a state at step ``t`` from reset."""
        if self.cfg.network == "none":
            return mask / mask.sum(), 0.0
        p, v = self.net.predict(obs, mask)
        if self.baseline is not None:
            v = self._base(t) + v * self.value_unit
        return p, v

    def offer(self, actions: list[int], ret: float, source: str) -> None:
        """A complete episode: keep it if it is the best so far (ties keep the earlier one)."""
        if ret > self.best.ret + 1e-12:
            self.best = _Best(list(actions), ret, source)
            self.trace.append((time.perf_counter() - self.t0, self.sims, self.steps, float(ret)))
            if self.submit is not None:
                self.submit(self.best.actions)

    def step(self, a: int) -> tuple[Any, float, bool]:
        obs, r, term, trunc, _ = self.env.step(a)
        self.steps += 1
        return obs, float(r), bool(term or trunc)

    def new_node(self, obs: Any, reward: float, terminal: bool, t: int = 0) -> _Node:
        """A node for the env's current state (the env must be at it), ``t`` steps from reset."""
        node = _Node(reward, terminal)
        if not terminal:
            node.state = self.snap.get()
            node.obs = self.featurize(obs)
            node.mask = _mask(self.env, self.n_actions)
            if not node.mask.any():
                raise MCTSError("action_masks() has no legal action in a non-terminal state")
            node.prior, node.value = self.evaluate(node.obs, node.mask, t)
            node.visits = np.zeros(self.n_actions)
            node.value_sum = np.zeros(self.n_actions)
        return node

    def rollout(self) -> tuple[list[int], float]:
        """Play rollout_policy from the env's current state to the end."""
        acts, total, done = [], 0.0, False
        while not done:
            a = int(self.rollout_policy(self.env))
            _, r, done = self.step(a)
            acts.append(a)
            total += r
        return acts, total

    def simulate(self, root: _Node, prefix: list[int], prefix_ret: float, mm: _MinMax) -> None:
        """One simulation: select by PUCT down to a new leaf, evaluate it, back up the return."""
        c = self.cfg
        node, path = root, []
        self.sims += 1
        while True:
            n_tot = node.visits.sum()
            q = np.where(node.visits > 0, node.value_sum / np.maximum(node.visits, 1),
                         node.value if n_tot == 0 else node.value_sum.sum() / n_tot)
            score = mm.norm(q) + c.c_puct * node.prior * math.sqrt(n_tot + 1) / (1 + node.visits)
            if node is root and c.root_expand_all:
                score = score + 1e6 * (node.visits == 0)   # untried first, by score
            a = int(np.argmax(np.where(node.mask, score, -np.inf)))
            path.append((node, a))
            child = node.children.get(a)
            if child is None:
                self.snap.set(node.state)
                obs, r, done = self.step(a)
                child = node.children[a] = self.new_node(obs, r, done, len(prefix) + len(path))
                acts = prefix + [a_ for _, a_ in path]
                ret = prefix_ret + sum(n_.children[a_].reward for n_, a_ in path)
                if done:
                    self.offer(acts, ret, "tree")
                    value = 0.0
                elif (self.rollout_policy is not None and len(path) <= c.rollout_depth
                      and node.prior[a] >= c.rollout_min_prior):
                    tail, value = self.rollout()
                    self.offer(acts + tail, ret + value, "rollout")
                else:
                    value = child.value
                break
            node = child
            if node.terminal:
                value = 0.0
                break
        g = value
        for n_, a_ in reversed(path):
            g += n_.children[a_].reward
            n_.visits[a_] += 1
            n_.value_sum[a_] += g
            mm.update(g)

    def episode(self, noise: bool,
                deadline: float | None) -> tuple[list[tuple], list[int], float, bool]:
        """One search episode from reset: its samples (obs, mask, pi, return-to-go), actions,
        return, and whether the deadline stopped it (then nothing else is meaningful)."""
        c = self.cfg
        obs, _ = self.env.reset(seed=c.seed)
        root = self.new_node(obs, 0.0, False)
        prefix, rewards, samples = [], [], []
        mm = _MinMax()
        while True:
            if deadline is not None and time.perf_counter() > deadline:
                return [], [], 0.0, True
            legal = np.flatnonzero(root.mask)
            if legal.size > 1:
                if noise:
                    eta = self.rng.dirichlet([c.dirichlet_alpha] * legal.size)
                    root.prior = root.prior.copy()
                    root.prior[legal] = (1 - c.noise_fraction) * root.prior[legal] + c.noise_fraction * eta
                for _ in range(max(0, c.n_simulations - int(root.visits.sum()))):
                    self.simulate(root, prefix, sum(rewards), mm)
                pi = root.visits / root.visits.sum()
                a = int(np.argmax(root.visits))
            else:
                a = int(legal[0])
                pi = np.zeros(self.n_actions)
                pi[a] = 1.0
            samples.append((root.obs, root.mask, pi))
            child = root.children.get(a)
            if child is None:   # forced move never expanded
                self.snap.set(root.state)
                obs, r, done = self.step(a)
                child = self.new_node(obs, r, done, len(prefix) + 1)
            prefix.append(a)
            rewards.append(child.reward)
            if child.terminal:
                break
            root = child
        ret = float(sum(rewards))
        rtg = np.cumsum(rewards[::-1])[::-1]
        return [(o, m, p, self.to_target(float(v), t)) for t, ((o, m, p), v)
                in enumerate(zip(samples, rtg))], prefix, ret, False


def _flat_featurizer(space: spaces.Space) -> Featurize:
    def featurize(obs: Any) -> np.ndarray:
        return np.asarray(spaces.flatten(space, obs), np.float32)
    return featurize


def mcts_episodes(problem: BudgetedProblem, rng: np.random.Generator, *,
                  start_from: Sequence[int] | None = None,
                  rollout_policy: RolloutPolicy | None = None,
                  featurize: Featurize | None = None, shared_attrs: Sequence[str] = (),
                  **hyperparameters: Any) -> None:
    """Self-play AlphaZero-style search on a sequential problem's env, within its budget.

    Each improvement of the best complete episode is submitted through ``problem.evaluate``
    (so the trajectory is the best-so-far trace); the search stops between moves when the
    budget's seconds are spent. The run's log goes to ``problem.info`` (module docstring).

    Args:
        problem: the budgeted sequential problem (its ``make_env()`` gives the env to search).
        rng: the agent's generator (seeds torch, the env's reset and the root noise).
        start_from: an action sequence to improve on (e.g. a heuristic's): the first candidate,
            and the network imitates it before self-play. Must be a complete, legal episode.
        rollout_policy: ``env -> action`` played to the end from leaves within
            ``rollout_depth`` of the root (their value is its return).
        featurize: observation → float32 vector (default: ``gymnasium.spaces.flatten``).
        shared_attrs: env attributes the deep-copy fallback snapshot may share (read-only ones).
        hyperparameters: see :data:`MCTS_DEFAULTS`.
    """
    cfg = _Params.of(hyperparameters, seed=int(rng.integers(2**31)))
    env = sequential_problem(problem).make_env().unwrapped
    if not isinstance(env.action_space, spaces.Discrete):
        raise MCTSError(f"mcts needs a Discrete action space; got {env.action_space}")
    submit = lambda acts: problem.evaluate([episode_design(acts)])
    if start_from is not None:  # scored first, before torch's import and the network's set-up
        submit(list(start_from))
    torch = _torch()
    t0 = time.perf_counter()
    left = problem.time_left_s
    deadline = None if not np.isfinite(left) else t0 + left
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    search = _Search(env, cfg, rollout_policy, featurize or _flat_featurizer(env.observation_space),
                     shared_attrs)
    search.t0 = t0
    log: list[IterationLog] = []
    stopped = False
    try:
        torch.manual_seed(cfg.seed)
        obs, _ = env.reset(seed=cfg.seed)
        search.net = PolicyValueNet(len(search.featurize(obs)), search.n_actions, cfg.hidden, cfg.lr)
        data: list[tuple] = []
        fit = cfg.network == "trained"
        if start_from is not None:
            data += _imitation_data(search, list(start_from))  # (offers it: scored above)
            t = time.perf_counter()
            lp = lv = float("nan")
            if fit:
                lp, lv = _fit(search, data, cfg.imitation_epochs)
            log.append(IterationLog(-1, (search.best.ret,), search.best.ret, lp, lv, len(data),
                                    time.perf_counter() - t))
        search.submit = submit
        plan = [(i, True) for i in range(cfg.iterations)] + ([(cfg.iterations, False)]
                                                             if cfg.final_episode else [])
        for it, noise in plan:
            t = time.perf_counter()
            rets = []
            for _ in range(cfg.episodes_per_iteration if noise else 1):
                samples, actions, ret, stopped = search.episode(noise, deadline)
                if stopped:
                    break
                search.offer(actions, ret, "self-play" if noise else "final")
                data += samples
                rets.append(ret)
            lp = lv = float("nan")
            if fit and noise and rets and not stopped:
                lp, lv = _fit(search, data, cfg.train_epochs)
            log.append(IterationLog(it, tuple(rets), search.best.ret, lp, lv, len(data),
                                    time.perf_counter() - t))
            if stopped:
                break
    finally:
        torch.set_num_threads(threads)
        problem.info.update(mcts_log=[asdict(lg) for lg in log], simulations=search.sims,
                            env_steps=search.steps, source=search.best.source,
                            stopped_early=stopped, trace=list(search.trace))


@register_agent("mcts", kinds=("episode",))
def mcts_agent(problem: BudgetedProblem, rng: np.random.Generator, **hyperparameters: Any) -> None:
    """AlphaZero-style search on any sequential problem (no start episode, no rollouts: the
    value head values the leaves); hyperparameters: :data:`MCTS_DEFAULTS`."""
    mcts_episodes(problem, rng, **hyperparameters)


def _imitation_data(search: _Search, actions: list[int]) -> list[tuple]:
    """Play ``actions`` from reset: one-hot policy targets and returns-to-go; offers the episode."""
    env, n = search.env, search.n_actions
    obs, _ = env.reset(seed=search.cfg.seed)
    rows, rewards, done = [], [], False
    for a in actions:
        if done:
            raise MCTSError(f"start_from has {len(actions)} actions but the episode ends sooner")
        mask = _mask(env, n)
        if not 0 <= a < n or not mask[a]:
            raise MCTSError(f"start_from action {a} at step {len(rows)} is not legal there")
        pi = (1 - search.cfg.imitation_smoothing) * np.eye(n)[a] + search.cfg.imitation_smoothing * mask / mask.sum()
        rows.append((search.featurize(obs), mask, pi))
        obs, r, done = search.step(int(a))
        rewards.append(r)
    if not done:
        raise MCTSError(f"start_from has {len(actions)} actions, fewer than the episode needs")
    rtg = np.cumsum(rewards[::-1])[::-1]
    search.offer(actions, float(sum(rewards)), "start_from")
    if search.cfg.value_baseline:
        search.baseline = np.append(rtg, 0.0)
        search.value_unit = max(abs(float(rtg[0])), 1e-12) / 100.0
    return [(o, m, p, search.to_target(float(v), t)) for t, ((o, m, p), v) in enumerate(zip(rows, rtg))]


def _fit(search: _Search, data: list[tuple], epochs: int) -> tuple[float, float]:
    obs = np.stack([d[0] for d in data]).astype(np.float32)
    masks = np.stack([d[1] for d in data]).astype(bool)
    pis = np.stack([d[2] for d in data]).astype(np.float32)
    vals = np.array([d[3] for d in data], np.float32)
    return search.net.fit(obs, masks, pis, vals, epochs, search.cfg.batch_size, search.rng)
