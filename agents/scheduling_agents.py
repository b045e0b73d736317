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
- :class:`SchedulingAgent` — trains one policy per platform on one or several workloads
  (``train``) and schedules a workload of that platform (``schedule``): a greedy masked
  rollout, optionally the best of ``samples`` rollouts sampled from the policy (batched), and
  with ``never_worse_than_heft=True`` HEFT's schedule when that is better. The result says
  which of them won, so a reported makespan is never credited to the policy when HEFT gave it.
  ``search`` adds inference-time local search from the policy's best rollout
  (:mod:`mlsysgym.agents.scheduling_search`).

Determinism: a seed fixes training (``torch.set_num_threads(1)`` while running) and sampling.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from mlsysgym.agents.scheduling_baselines import heft
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.envs.kernel_scheduling import N_OP_FEATURES_BASE, KernelSchedulingEnv, Workload
from mlsysgym.simulators.multicore import Platform, Schedule, SchedulingProblem, load_platform

try:  # torch and SB3 are core dependencies, but keep `import mlsysgym.agents...` light on failure
    import torch
    from gymnasium import spaces
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn
except ImportError as _e:  # pragma: no cover
    raise ImportError(f"scheduling agents need torch, stable-baselines3 and sb3-contrib ({_e})") from None

__all__ = ["AgentConfig", "AgentResult", "GraphSchedulingExtractor", "GraphSchedulingPolicy",
           "SchedulingAgent", "SchedulingAgentError", "TrainStats", "generic_platform",
           "policy_rollouts"]


class SchedulingAgentError(MlsysgymError):
    """A scheduling agent was used wrongly (not trained, other platform, bad setting)."""


def generic_platform(n_pes: int, name: str = "generic") -> Platform:
    """A placeholder platform of ``n_pes`` PEs, for envs over prebuilt SchedulingProblems
    (e.g. :func:`~mlsysgym.simulators.multicore.random_problem`) whose times are given."""
    if n_pes < 1:
        raise SchedulingAgentError(f"a platform needs at least one PE, got n_pes={n_pes}")
    return Platform.from_dict({"name": name, "pes": [{
        "name": "pe", "count": n_pes, "kind": "pe", "throughput_gflops": {"*": 1.0},
        "bandwidth_gbps": 1.0, "active_power_w": 1.0, "idle_power_w": 0.1}] if n_pes > 1 else [{
        "name": "pe0", "kind": "pe", "throughput_gflops": {"*": 1.0}, "bandwidth_gbps": 1.0,
        "active_power_w": 1.0, "idle_power_w": 0.1}]})


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


def policy_rollouts(policy: GraphSchedulingPolicy, problem: SchedulingProblem, platform: Platform,
                    n: int, greedy: bool, seed: int = 0, window: int = 16,
                    temperature: float = 1.0) -> list[Schedule]:
    """``n`` episodes of ``policy`` on ``problem`` stepped in lockstep with one batched forward per
    step: greedy (argmax of the masked logits) or sampled. Returns the env's schedules."""
    envs = [KernelSchedulingEnv(problem, platform, window=window) for _ in range(n)]
    obs = [e.reset(seed=seed)[0] for e in envs]
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _ in range(problem.n_ops):
            logits = policy.features_extractor(_to_torch(obs))[:, :policy.action_space.n]
            mask = torch.as_tensor(np.stack([e.action_masks() for e in envs]))
            logits = torch.where(mask, logits / temperature, torch.full_like(logits, -1e9))
            if greedy:
                acts = logits.argmax(-1)
            else:
                acts = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
            obs = [e.step(int(a))[0] for e, a in zip(envs, acts.tolist())]
    return [e.schedule() for e in envs]


# ---- agent ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentConfig:
    """Network and MaskablePPO settings (small by default: 2 shared cores)."""

    hidden: int = 32
    rounds: int = 2
    window: int = 16
    total_timesteps: int = 8192
    n_envs: int = 4
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    ent_coef: float = 0.01
    gamma: float = 1.0
    gae_lambda: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.hidden, self.window, self.n_envs, self.n_steps, self.batch_size, self.n_epochs) < 1:
            raise SchedulingAgentError("hidden, window, n_envs, n_steps, batch_size and n_epochs "
                                       "must all be ≥ 1")
        if self.total_timesteps < 0:
            raise SchedulingAgentError(f"total_timesteps must be ≥ 0, got {self.total_timesteps}")


@dataclass(frozen=True)
class TrainStats:
    """What training did: timesteps, wall time, mean episode makespan / LB_0 early and late."""

    timesteps: int
    wall_s: float
    workloads: tuple[str, ...]
    first_ratio: float = float("nan")
    last_ratio: float = float("nan")


@dataclass(frozen=True)
class AgentResult:
    """A schedule from the agent. ``source`` says who produced it: ``greedy`` (the greedy
    policy rollout), ``sample`` (one of the sampled rollouts) or ``heft`` (HEFT was better and
    ``never_worse_than_heft`` was set)."""

    schedule: Schedule
    makespan_us: float
    source: str
    greedy_makespan_us: float
    best_sample_makespan_us: float
    heft_makespan_us: float
    rollouts: int
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


class SchedulingAgent:
    """MaskablePPO + :class:`GraphSchedulingPolicy` for one platform: ``train`` then ``schedule``."""

    def __init__(self, platform: str | Path | Mapping[str, Any] | Platform = "soc_npu",
                 config: AgentConfig | None = None) -> None:
        self.platform = load_platform(platform)
        self.config = config or AgentConfig()
        self.model: Any = None
        self.stats: TrainStats | None = None

    def _env(self, workloads: Sequence[Workload], max_ops: int, max_edges: int,
             rank: int) -> KernelSchedulingEnv:
        env = KernelSchedulingEnv(list(workloads), self.platform, window=self.config.window,
                                  max_ops=max_ops, max_edges=max_edges)
        env.reset(seed=self.config.seed + 1000 * rank)
        return env

    def train(self, workloads: Workload | Sequence[Workload]) -> TrainStats:
        """Train on one workload or several (one drawn per episode) with MaskablePPO."""
        from sb3_contrib import MaskablePPO
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv

        items = [workloads] if isinstance(workloads, (str, Path, SchedulingProblem)) or \
            not isinstance(workloads, Sequence) else list(workloads)
        c = self.config
        probe = KernelSchedulingEnv(items, self.platform, window=c.window)
        names = tuple(p.name for p in probe.problems)
        problems = probe.problems
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        try:
            vec = DummyVecEnv([(lambda r=r: Monitor(self._env(problems, probe.max_ops,
                                                              probe.max_edges, r)))
                               for r in range(c.n_envs)])
            self.model = MaskablePPO(
                GraphSchedulingPolicy, vec, learning_rate=c.learning_rate, n_steps=c.n_steps,
                batch_size=c.batch_size, n_epochs=c.n_epochs, gamma=c.gamma, gae_lambda=c.gae_lambda,
                ent_coef=c.ent_coef, seed=c.seed, verbose=0, device="cpu",
                policy_kwargs={"features_extractor_kwargs": {"hidden": c.hidden, "rounds": c.rounds}})
            if c.total_timesteps > 0:
                self.model.learn(total_timesteps=c.total_timesteps)
            returns = [float(r) for m in vec.envs for r in m.get_episode_rewards()]  # type: ignore[attr-defined]
        finally:
            torch.set_num_threads(threads)
        # episode return = 1 − makespan / LB_0, so makespan / LB_0 = 1 − return
        k = max(1, len(returns) // 4)
        ratio = [1.0 - r for r in returns]
        self.stats = TrainStats(
            timesteps=int(self.model.num_timesteps), wall_s=time.perf_counter() - t0, workloads=names,
            first_ratio=float(np.mean(ratio[:k])) if ratio else float("nan"),
            last_ratio=float(np.mean(ratio[-k:])) if ratio else float("nan"))
        return self.stats

    @property
    def policy(self) -> GraphSchedulingPolicy:
        if self.model is None:
            raise SchedulingAgentError("the agent is not trained; call train(workloads) first")
        return self.model.policy

    def problem(self, workload: Workload) -> SchedulingProblem:
        """The SchedulingProblem of a workload on this agent's platform."""
        return KernelSchedulingEnv(workload, self.platform, window=self.config.window).problems[0]

    def schedule(self, workload: Workload, samples: int = 0, never_worse_than_heft: bool = False,
                 seed: int = 0, temperature: float | Sequence[float] = 1.0,
                 batch: int = 16) -> AgentResult:
        """Schedule ``workload``: the greedy policy rollout, the best of it and ``samples``
        sampled rollouts (ties keep the earlier), and HEFT's schedule if ``never_worse_than_heft``
        and HEFT is strictly better. Several temperatures split the samples evenly (in order)."""
        temps = [float(temperature)] if isinstance(temperature, (int, float)) else \
            [float(t) for t in temperature]
        if samples < 0 or batch < 1 or not temps or min(temps) <= 0:
            raise SchedulingAgentError("samples must be ≥ 0, batch ≥ 1 and temperatures > 0")
        per_t = [samples // len(temps) + (k < samples % len(temps)) for k in range(len(temps))]
        policy = self.policy
        problem = self.problem(workload)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        try:
            policy.set_training_mode(False)
            greedy = policy_rollouts(policy, problem, self.platform, 1, True, seed, self.config.window)[0]
            best, source = greedy, "greedy"
            g_ms = best_ms = greedy.makespan_us(problem)
            s_best = float("inf")
            done = 0
            for temp, n_t in zip(temps, per_t):
                end = done + n_t
                while done < end:
                    k = min(batch, end - done)
                    for s in policy_rollouts(policy, problem, self.platform, k, False,
                                             seed * 100_003 + done, self.config.window, temp):
                        ms = s.makespan_us(problem)
                        s_best = min(s_best, ms)
                        if ms < best_ms:
                            best, best_ms, source = s, ms, "sample"
                    done += k
        finally:
            torch.set_num_threads(threads)
        h = heft(problem)
        h_ms = h.makespan_us(problem)
        if never_worse_than_heft and h_ms < best_ms:
            best, best_ms, source = h, h_ms, "heft"
        return AgentResult(schedule=best, makespan_us=float(best_ms), source=source,
                           greedy_makespan_us=float(g_ms), best_sample_makespan_us=float(s_best),
                           heft_makespan_us=float(h_ms), rollouts=1 + samples,
                           wall_s=time.perf_counter() - t0)

    def search(self, workload: Workload, config: Any = None, samples: int = 24, seed: int = 0,
               temperature: float | Sequence[float] = (1.0, 0.3, 0.1)) -> Any:
        """The learned agent with inference-time search: the best of the greedy rollout and
        ``samples`` sampled ones (:meth:`schedule`, no HEFT guard), improved by
        :func:`~mlsysgym.agents.scheduling_search.local_search` within ``config``'s budget
        (a :class:`~mlsysgym.agents.scheduling_search.SearchConfig`; default 10 s). Returns its
        :class:`~mlsysgym.agents.scheduling_search.SearchResult` (``wall_s`` excludes the
        rollouts; ``start_makespan_us`` is the rollouts' best)."""
        from mlsysgym.agents.scheduling_search import SearchConfig, local_search

        cfg = config or SearchConfig(seed=seed)
        first = self.schedule(workload, samples=samples, seed=seed, temperature=temperature)
        return local_search(self.problem(workload), self.platform, replace(cfg, samples=0),
                            policy=self.policy, starts=[first.schedule], window=self.config.window)
