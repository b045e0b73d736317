"""Learned kernel schedulers: MaskablePPO with a graph-aware policy over KernelSchedulingEnv.

- :class:`GraphSchedulingExtractor` — an SB3 ``BaseFeaturesExtractor`` over the env's padded
  observation. One structural message pass computes, for every op and PE, the time its inputs
  are there (producer finish + transfer unless the producer ran on that PE) and from it the
  earliest start/finish the op would get on that PE; ``rounds`` learned message-passing rounds
  (mean over predecessors and over successors, separate weights) embed every op. Each
  (window slot, PE) action is scored by a small MLP over the op's embedding, the PE's
  availability embedding and the action's timing features, plus a learned prior that starts
  as "first window op on its earliest-finish PE" (the list-scheduling rule of HEFT). The
  output is ``[action logits (W·P), value features]``; :class:`GraphSchedulingPolicy` reads the
  logits as they are and the value from the rest. Padded ops and edges do not change it.
- :func:`train_policy` — MaskablePPO with that policy on one or several instances of a
  scheduling problem's family (its ``train_graphs``; one drawn per episode), in the problem's
  own env (makespan reward, or the mean-JCT reward on job streams). A trained policy is kept
  in memory per (platform, instances, settings, seed), so agents searching several instances
  of a platform in one process train once.
- :func:`policy_rollouts` — episodes of a policy stepped in lockstep, one batched forward per
  step: greedy or sampled at a temperature.

The agents built on them (``maskable_ppo``, ``policy_local_search``) are registered in
:mod:`mlsysgym.agents.scheduling_search` (so that importing the registry needs no torch).
Determinism: a seed fixes training (``torch.set_num_threads(1)`` while running) and sampling.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from mlsysgym.agents.base import AgentConfigError
from mlsysgym.agents.rl import quiet_logger
from mlsysgym.agents.scheduling_problem import SchedulingEpisodes
from mlsysgym.envs.kernel_scheduling import N_OP_FEATURES_BASE
from mlsysgym.simulators.multicore import Schedule

try:  # torch and SB3 are core dependencies, but keep `import mlsysgym.agents...` light on failure
    import torch
    from gymnasium import spaces
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn
except ImportError as _e:  # pragma: no cover
    raise ImportError(f"scheduling agents need torch, stable-baselines3 and sb3-contrib ({_e})") from None

__all__ = ["GraphSchedulingExtractor", "GraphSchedulingPolicy", "TrainStats", "policy_rollouts",
           "train_policy"]


# ---- network ----------------------------------------------------------------------------------


class GraphSchedulingExtractor(BaseFeaturesExtractor):
    """Message passing over the padded op graph → per-action logits and value features.

    Op features are propagated ``rounds`` hops along the data edges, separately towards
    consumers (mean over predecessors) and towards producers (mean over successors), without
    weights; a learned layer then embeds the concatenation ``[x, A_pred x, A_succ x, A_pred² x,
    ...]`` of the ops it needs — the window ops for the logits (a SIGN-style graph network, which
    costs one small matmul per window op instead of one per op and round). Works for any number
    of (padded) ops and edges; only the window size W and the PE count P are fixed by
    ``observation_space``. Output: (B, W·P + ``value_dim``).
    """

    n_action_features = 9

    def __init__(self, observation_space: spaces.Dict, hidden: int = 32, rounds: int = 2,
                 value_dim: int = 32, prior_pe_scale: float = 3.0,
                 prior_slot_scale: float = 1.0) -> None:
        self.window = int(observation_space["window"].shape[0])
        self.n_pes = int(observation_space["pes"].shape[0])
        self.value_dim = int(value_dim)
        self.n_rounds = int(rounds)
        super().__init__(observation_space, features_dim=self.window * self.n_pes + self.value_dim)
        F = int(observation_space["ops"].shape[1])
        H, P = int(hidden), self.n_pes
        self.d_op = F
        d_in = F + (N_OP_FEATURES_BASE + 2 * P) * 2 * self.n_rounds
        self.embed = nn.Sequential(nn.Linear(d_in, H), nn.ReLU())
        self.pe_embed = nn.Sequential(nn.Linear(3, H), nn.ReLU())
        self.score = nn.Sequential(nn.Linear(2 * H + self.n_action_features, H), nn.ReLU(),
                                   nn.Linear(H, 1))
        nn.init.zeros_(self.score[2].weight)
        nn.init.zeros_(self.score[2].bias)
        self.prior_pe = nn.Parameter(torch.tensor(float(prior_pe_scale)))
        self.prior_slot = nn.Parameter(torch.tensor(float(prior_slot_scale)))
        self.value = nn.Sequential(nn.Linear(2 * self.d_op + P * H + 2, self.value_dim), nn.ReLU())

    @staticmethod
    def _gather_nodes(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """x (B, N, D), idx (B, K) → (B, K, D)."""
        return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def timing(self, obs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per (op, PE): data-ready time, earliest start and finish (no insertion), in LB_0 units."""
        ops, P = obs["ops"], self.n_pes
        b = N_OP_FEATURES_BASE
        dur, can, asg = ops[..., b:b + P], ops[..., b + P:b + 2 * P], ops[..., b + 2 * P:b + 3 * P]
        ei = obs["edge_index"].long()
        em, ec = obs["edge_mask"], obs["edge_comm"]
        src, dst = ei[:, 0], ei[:, 1]
        fin_src = torch.gather(ops[..., 9], 1, src)
        asg_src = self._gather_nodes(asg, src)
        contrib = (fin_src.unsqueeze(-1) + ec.unsqueeze(-1) * (1.0 - asg_src)) * em.unsqueeze(-1)
        ready = torch.zeros_like(dur).scatter_reduce(1, dst.unsqueeze(-1).expand(-1, -1, P), contrib,
                                                     reduce="amax", include_self=True)
        free = obs["pes"][..., 0].unsqueeze(1)
        est = torch.maximum(ready, free)
        eft = torch.where(can > 0, est + dur, torch.full_like(est, 1e3))
        return {"ready": ready, "est": est, "eft": eft, "dur": dur, "can": can}

    def propagate(self, obs: Mapping[str, torch.Tensor], tm: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, N, F + 2·rounds·D): op features, and the means over predecessors / successors 1..rounds
        hops away of D per-op features (the 10 base features, ready time and earliest finish per
        PE); padded ops and edges contribute nothing."""
        ops, om = obs["ops"], obs["op_mask"].unsqueeze(-1)
        eft = torch.clamp(tm["eft"], max=10.0) * tm["can"]
        x = torch.cat([ops[..., :N_OP_FEATURES_BASE], tm["ready"], eft], -1) * om
        B, N, D = x.shape
        ei = obs["edge_index"].long()
        offs = (torch.arange(B, device=x.device) * N).unsqueeze(-1)
        src = (ei[:, 0] + offs).reshape(-1)
        dst = (ei[:, 1] + offs).reshape(-1)
        w = obs["edge_mask"].reshape(-1, 1)
        deg_in = torch.zeros(B * N, 1, dtype=x.dtype).index_add_(0, dst, w).clamp(min=1.0)
        deg_out = torch.zeros(B * N, 1, dtype=x.dtype).index_add_(0, src, w).clamp(min=1.0)
        out = [x]
        fwd = bwd = x.reshape(B * N, D)
        for _ in range(self.n_rounds):
            fwd = torch.zeros_like(fwd).index_add_(0, dst, fwd[src] * w) / deg_in
            bwd = torch.zeros_like(bwd).index_add_(0, src, bwd[dst] * w) / deg_out
            out += [fwd.reshape(B, N, D), bwd.reshape(B, N, D)]
        return torch.cat([ops * om] + out[1:], -1)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        tm = self.timing(obs)
        z = self.propagate(obs, tm)
        B, N, _ = z.shape
        W, P = self.window, self.n_pes
        win = obs["window"].long()
        filled = (win < N).to(z.dtype)
        slot = win.clamp(max=N - 1)
        hw = self.embed(self._gather_nodes(z, slot))  # (B, W, H)
        eft = self._gather_nodes(tm["eft"], slot)  # (B, W, P)
        can = self._gather_nodes(tm["can"], slot)
        est = self._gather_nodes(tm["est"], slot)
        ready = self._gather_nodes(tm["ready"], slot)
        dur = self._gather_nodes(tm["dur"], slot)
        tail = self._gather_nodes(obs["ops"][..., 2:3], slot)
        lb = obs["progress"][:, 0].view(B, 1, 1)
        best = eft.min(-1, keepdim=True).values
        om = obs["op_mask"].unsqueeze(-1)
        unit = ((obs["ops"][..., 0:1] * om).sum(1) / om.sum(1).clamp(min=1.0)).clamp(min=1e-6)
        rel = torch.clamp((eft - best) / unit.unsqueeze(-1), max=100.0) * can  # in mean op times
        free = obs["pes"][..., 0].unsqueeze(1).expand(-1, W, -1)
        slot_pos = (torch.arange(W, dtype=z.dtype) / W).view(1, W, 1).expand(B, W, P)
        feats = torch.stack([
            torch.clamp(eft, max=10.0) * can, est * can, dur, ready, free, rel,
            torch.relu(eft + tail - lb) * can, can, slot_pos], -1)  # (B, W, P, 9)
        pe = self.pe_embed(obs["pes"])  # (B, P, H)
        x = torch.cat([hw.unsqueeze(2).expand(-1, -1, P, -1), pe.unsqueeze(1).expand(-1, W, -1, -1),
                       feats], -1)
        prior = -self.prior_pe * rel - self.prior_slot * (slot_pos * W)
        logits = (self.score(x).squeeze(-1) + prior) * filled.unsqueeze(-1)
        x0 = z[..., :self.d_op]  # pooled: the ops' own features (mean, and max of ≥ 0 features)
        mean = (x0 * om).sum(1) / om.sum(1).clamp(min=1.0)
        mx = (x0 * om).max(1).values
        v = self.value(torch.cat([mean, mx, pe.reshape(B, P * pe.shape[-1]), obs["progress"]], -1))
        return torch.cat([logits.reshape(B, W * P), v], -1)


class _Slice(nn.Module):
    """The columns ``[start, stop)`` of the last axis."""

    def __init__(self, start: int, stop: int | None) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.start:self.stop]


class GraphSchedulingPolicy(MaskableActorCriticPolicy):
    """MaskableActorCriticPolicy whose logits are the extractor's per-action scores and whose
    value is a linear read-out of its value features (``net_arch=[]``, no orthogonal init)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("features_extractor_class", GraphSchedulingExtractor)
        kwargs["net_arch"] = []
        kwargs["ortho_init"] = False
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        n = int(self.action_space.n)
        self.action_net = _Slice(0, n)
        self.value_net = nn.Sequential(_Slice(n, None),
                                       nn.Linear(self.features_extractor.value_dim, 1))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)


# ---- rollouts ---------------------------------------------------------------------------------


def _to_torch(obs: Sequence[Mapping[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.stack([o[k] for o in obs]), dtype=torch.float32) for k in obs[0]}


def policy_rollouts(policy: GraphSchedulingPolicy, problem: SchedulingEpisodes, n: int,
                    greedy: bool, seed: int = 0, temperature: float = 1.0
                    ) -> list[tuple[Schedule, list[int]]]:
    """``n`` episodes of ``policy`` in ``problem``'s env stepped in lockstep with one batched
    forward per step: greedy (argmax of the masked logits) or sampled. Returns each episode's
    schedule and actions."""
    envs = [problem.make_env() for _ in range(n)]
    obs = [e.reset(seed=seed)[0] for e in envs]
    actions: list[list[int]] = [[] for _ in range(n)]
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _ in range(problem.instance.n_ops):
            logits = policy.features_extractor(_to_torch(obs))[:, :policy.action_space.n]
            mask = torch.as_tensor(np.stack([e.action_masks() for e in envs]))
            logits = torch.where(mask, logits / temperature, torch.full_like(logits, -1e9))
            if greedy:
                acts = logits.argmax(-1)
            else:
                acts = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
            for k, a in enumerate(acts.tolist()):
                actions[k].append(int(a))
            obs = [e.step(int(a))[0] for e, a in zip(envs, acts.tolist())]
    return [(e.schedule(), acts) for e, acts in zip(envs, actions)]


# ---- training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """Network and MaskablePPO settings (small by default: 2 shared cores)."""

    hidden: int = 32
    rounds: int = 2
    total_timesteps: int = 8192
    n_envs: int = 4
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    ent_coef: float = 0.01
    gamma: float = 1.0
    gae_lambda: float = 0.95

    def __post_init__(self) -> None:
        if min(self.hidden, self.n_envs, self.n_steps, self.batch_size, self.n_epochs) < 1:
            raise AgentConfigError("hidden, n_envs, n_steps, batch_size and n_epochs must all be ≥ 1")
        if self.total_timesteps < 0:
            raise AgentConfigError(f"total_timesteps must be ≥ 0, got {self.total_timesteps}")


TRAINING_HYPERPARAMETERS = tuple(_Settings.__dataclass_fields__)


@dataclass(frozen=True)
class TrainStats:
    """What training did: timesteps, wall time, mean episode objective / its bound early and
    late (makespan / LB_0, or mean JCT / its bound on streams), the training instances."""

    timesteps: int
    wall_s: float
    workloads: tuple[str, ...]
    first_ratio: float = float("nan")
    last_ratio: float = float("nan")
    cached: bool = False  # this process had trained the same policy already


_TRAINED: dict[tuple, tuple[Any, TrainStats]] = {}  # the last few trained policies
_KEEP = 4


def train_policy(problem: SchedulingEpisodes, train_graphs: Sequence[Any] | None = None,
                 seed: int = 0, **settings: Any) -> tuple[GraphSchedulingPolicy, TrainStats]:
    """A :class:`GraphSchedulingPolicy` trained with MaskablePPO in ``problem``'s env on
    ``train_graphs`` (variants of the problem, see
    :meth:`~mlsysgym.agents.scheduling_problem.SchedulingEpisodes.variant`; default: the
    problem's own instance), with the network/PPO ``settings`` (``hidden``, ``rounds``,
    ``total_timesteps``, ``n_envs``, ``n_steps``, ``batch_size``, ``n_epochs``,
    ``learning_rate``, ``ent_coef``, ``gamma``, ``gae_lambda``)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    unknown = set(settings) - set(TRAINING_HYPERPARAMETERS)
    if unknown:
        raise AgentConfigError(f"unknown training setting(s) {sorted(unknown)}; use "
                               f"{', '.join(TRAINING_HYPERPARAMETERS)}")
    c = _Settings(**settings)
    instances = [problem.instance] if not train_graphs else [problem.variant(g) for g in train_graphs]
    key = (problem.platform.name, problem.window, problem.objective, problem.stream,
           tuple(p.name for p in instances), tuple(sorted(asdict(c).items())), int(seed))
    if key in _TRAINED:
        policy, stats = _TRAINED[key]
        return policy, replace(stats, cached=True)
    max_ops = max(p.n_ops for p in instances)
    max_edges = max(1, max(p.n_edges for p in instances))

    def make(rank: int) -> Any:
        env = problem.training_env(instances, max_ops, max_edges)
        env.reset(seed=seed + 1000 * rank)
        return Monitor(env)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        vec = DummyVecEnv([(lambda r=r: make(r)) for r in range(c.n_envs)])
        model = MaskablePPO(
            GraphSchedulingPolicy, vec, learning_rate=c.learning_rate, n_steps=c.n_steps,
            batch_size=c.batch_size, n_epochs=c.n_epochs, gamma=c.gamma, gae_lambda=c.gae_lambda,
            ent_coef=c.ent_coef, seed=seed, verbose=0, device="cpu",
            policy_kwargs={"features_extractor_kwargs": {"hidden": c.hidden, "rounds": c.rounds}})
        quiet_logger(model)
        if c.total_timesteps > 0:
            model.learn(total_timesteps=c.total_timesteps)
        returns = [float(r) for m in vec.envs for r in m.get_episode_rewards()]  # type: ignore[attr-defined]
    finally:
        torch.set_num_threads(threads)
    # episode return = 1 − objective / its bound, so objective / bound = 1 − return
    k = max(1, len(returns) // 4)
    ratio = [1.0 - r for r in returns]
    stats = TrainStats(
        timesteps=int(model.num_timesteps), wall_s=time.perf_counter() - t0,
        workloads=tuple(p.name for p in instances),
        first_ratio=float(np.mean(ratio[:k])) if ratio else float("nan"),
        last_ratio=float(np.mean(ratio[-k:])) if ratio else float("nan"))
    while len(_TRAINED) >= _KEEP:
        _TRAINED.pop(next(iter(_TRAINED)))
    _TRAINED[key] = (model.policy, stats)
    return model.policy, stats


def rollout_schedules(policy: GraphSchedulingPolicy, problem: SchedulingEpisodes, samples: int,
                      temperatures: float | Sequence[float], seed: int, batch: int = 16
                      ) -> list[tuple[Schedule, list[int], str]]:
    """The greedy rollout then ``samples`` sampled ones (split evenly over ``temperatures``, in
    order), each with its actions and source (``greedy`` / ``sample``)."""
    temps = [float(temperatures)] if isinstance(temperatures, (int, float)) else \
        [float(t) for t in temperatures]
    if samples < 0 or batch < 1 or not temps or min(temps) <= 0:
        raise AgentConfigError("samples must be ≥ 0, batch ≥ 1 and temperatures > 0")
    per_t = [samples // len(temps) + (k < samples % len(temps)) for k in range(len(temps))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy.set_training_mode(False)
        out = [(*policy_rollouts(policy, problem, 1, True, seed)[0], "greedy")]
        done = 0
        for temp, n_t in zip(temps, per_t):
            end = done + n_t
            while done < end:
                k = min(batch, end - done)
                out += [(s, a, "sample") for s, a in policy_rollouts(
                    policy, problem, k, False, seed * 100_003 + done, temp)]
                done += k
    finally:
        torch.set_num_threads(threads)
    return out
