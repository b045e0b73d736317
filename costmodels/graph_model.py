"""Graph-level cost model: whole-model latency on the accelerator simulator from the ir.Graph.

Each op is a node with features: op-type one-hot (the most common types + ``other``),
log1p of MACs, FLOPs, bytes read and bytes written, and the log1p of the output's largest
dimension. Edges follow tensors from producer to consumer (both directions are used).
A hand-written message-passing network (``rounds`` rounds of
``h ← h + SiLU(W_self h + W_in mean(h of producers) + W_out mean(h of consumers))``), a
sum+mean readout concatenated with three whole-graph features (log1p of total MACs, bytes
moved and op count) and an MLP head predict ``ln latency_ms`` for one fixed accelerator design.

Training graphs: the zoo models and contiguous op windows of them (subgraphs: a window of a
real model is itself a plausible workload), labelled by :class:`AcceleratorSimulator`.
:func:`evaluate_graph_model` reports held-out error on windows of models never seen in
training (held out by source model), the honest test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Design, EvaluationError, Evaluator, Metrics

__all__ = ["GraphCostModel", "GraphDataset", "GraphModelError", "build_graph_dataset",
           "encode_graph", "evaluate_graph_model"]


class GraphModelError(MlsysgymError):
    """A graph dataset or graph model used wrongly (no graphs, unfitted model)."""


@dataclass
class EncodedGraph:
    """Node features (n, f), edges (2, e) producer → consumer, target and source labels."""

    x: np.ndarray
    edges: np.ndarray
    y: float
    name: str
    source: str
    glob: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))


def _op_types_vocab(graphs: Sequence[Any], size: int = 24) -> list[str]:
    counts: dict[str, int] = {}
    for g in graphs:
        for op in g.ops:
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def encode_graph(graph: Any, vocab: Sequence[str], y: float = float("nan"),
                 source: str = "") -> EncodedGraph:
    """Node features and edges of an ir.Graph (see the module docstring)."""
    index = {t: i for i, t in enumerate(vocab)}
    nv = len(vocab) + 1
    rows = []
    producer: dict[str, int] = {}
    src, dst = [], []
    for i, op in enumerate(graph.ops):
        onehot = np.zeros(nv)
        onehot[index.get(op.op_type, nv - 1)] = 1.0
        out = graph.tensors.get(op.outputs[0]) if op.outputs else None
        big = max(out.shape) if out is not None and out.shape else 0
        rows.append(np.concatenate([onehot, [math.log1p(op.macs), math.log1p(op.flops),
                                             math.log1p(op.bytes_read),
                                             math.log1p(op.bytes_written), math.log1p(big)]]))
        for t in op.inputs:
            if t in producer:
                src.append(producer[t])
                dst.append(i)
        for t in op.outputs:
            producer[t] = i
    x = np.array(rows, dtype=np.float32) if rows else np.zeros((0, nv + 5), np.float32)
    macs = sum(op.macs for op in graph.ops)
    moved = sum(op.bytes_read + op.bytes_written for op in graph.ops)
    glob = np.array([math.log1p(macs), math.log1p(moved), math.log1p(len(graph.ops))], np.float32)
    return EncodedGraph(x, np.array([src, dst], dtype=np.int64).reshape(2, -1), float(y),
                        graph.name, source or graph.name, glob)


@dataclass
class GraphDataset:
    """Encoded graphs plus the op-type vocabulary they were encoded with."""

    graphs: list[EncodedGraph]
    vocab: list[str]
    design: dict[str, Any] = field(default_factory=dict)


def build_graph_dataset(models: Sequence[str], design: Mapping[str, Any] | None = None,
                        windows_per_model: int = 24, min_ops: int = 6, max_ops: int = 80,
                        seed: int = 0) -> GraphDataset:
    """Zoo models and random contiguous op windows of them, labelled with the accelerator
    simulator's ``latency_ms`` on ``design`` (the simulator's default design if None)."""
    from mlsysgym.ir import zoo
    from mlsysgym.simulators.accelerator import AcceleratorSimulator, default_design

    rng = np.random.default_rng(seed)
    sim = AcceleratorSimulator()
    design = dict(design or default_design())
    full = [zoo.load(m) for m in models]
    vocab = _op_types_vocab(full)
    out: list[EncodedGraph] = []
    for name, g in zip(models, full):
        variants = [g]
        n = len(g.ops)
        for w in range(windows_per_model):
            k = int(rng.integers(min_ops, max(min_ops + 1, min(max_ops, n) + 1)))
            start = int(rng.integers(0, max(n - k, 0) + 1))
            variants.append(replace(g, name=f"{name}[{start}:{start + k}]",
                                    ops=tuple(g.ops[start:start + k])))
        for v in variants:
            lat = float(sim.evaluate([design], v, cache=False)["latency_ms"][0])
            if lat > 0:
                out.append(encode_graph(v, vocab, math.log(lat), source=name))
    if not out:
        raise GraphModelError("no graph with positive latency; pass zoo model names")
    return GraphDataset(out, vocab, design)


class GraphCostModel(Evaluator):
    """Message-passing network over op graphs → ln latency (torch; see the module docstring).

    As an Evaluator its workload is an ir.Graph and its one metric ``latency_ms``; it predicts
    for the one accelerator design it was trained on (``design``), so any other design is an
    EvaluationError rather than a silent answer for the wrong design."""

    name, version, metric_names = "graph-costmodel", "unfitted", ("latency_ms",)

    def __init__(self, hidden: int = 64, rounds: int = 3, epochs: int = 150,
                 learning_rate: float = 3e-3, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.hidden, self.rounds, self.epochs = hidden, rounds, epochs
        self.learning_rate = learning_rate
        self.vocab: list[str] = []
        self.design: dict[str, Any] = {}
        self.net: Any = None
        self.x_mean: np.ndarray | None = None
        self.x_std: np.ndarray | None = None

    def _module(self, n_in: int) -> Any:
        import torch
        from torch import nn

        hidden, rounds = self.hidden, self.rounds

        class MPNN(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inp = nn.Linear(n_in, hidden)
                self.self_w = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(rounds))
                self.in_w = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(rounds))
                self.out_w = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(rounds))
                self.head = nn.Sequential(nn.Linear(2 * hidden + 3, hidden), nn.SiLU(),
                                          nn.Linear(hidden, 1))

            def forward(self, x: torch.Tensor, edges: torch.Tensor, batch: torch.Tensor,
                        n_graphs: int, glob: torch.Tensor) -> torch.Tensor:
                h = torch.nn.functional.silu(self.inp(x))
                src, dst = edges[0], edges[1]
                n = x.shape[0]
                deg_in = torch.zeros(n).index_add_(0, dst, torch.ones(dst.shape[0])).clamp(min=1)
                deg_out = torch.zeros(n).index_add_(0, src, torch.ones(src.shape[0])).clamp(min=1)
                for r in range(rounds):
                    m_in = torch.zeros_like(h).index_add_(0, dst, h[src]) / deg_in[:, None]
                    m_out = torch.zeros_like(h).index_add_(0, src, h[dst]) / deg_out[:, None]
                    h = torch.nn.functional.silu(self.self_w[r](h) + self.in_w[r](m_in)
                                                 + self.out_w[r](m_out)) + h
                s = torch.zeros(n_graphs, hidden).index_add_(0, batch, h)
                cnt = torch.zeros(n_graphs).index_add_(0, batch, torch.ones(n)).clamp(min=1)
                return self.head(torch.cat([s / 30.0, s / cnt[:, None], glob], dim=1)).squeeze(1)

        return MPNN()

    def _batch(self, graphs: Sequence[EncodedGraph]) -> tuple[Any, Any, Any, int, Any]:
        import torch

        xs, es, bs = [], [], []
        off = 0
        for i, g in enumerate(graphs):
            xs.append((g.x - self.x_mean) / self.x_std)
            es.append(g.edges + off)
            bs.append(np.full(len(g.x), i))
            off += len(g.x)
        return (torch.tensor(np.concatenate(xs), dtype=torch.float32),
                torch.tensor(np.concatenate(es, axis=1), dtype=torch.int64),
                torch.tensor(np.concatenate(bs), dtype=torch.int64), len(graphs),
                torch.tensor((np.stack([g.glob for g in graphs]) - self.g_mean) / self.g_std,
                             dtype=torch.float32))

    def fit(self, graphs: Sequence[EncodedGraph], batch_size: int = 16,
            vocab: Sequence[str] = (), design: Mapping[str, Any] | None = None) -> GraphCostModel:
        """Train on encoded graphs (MSE on ln latency); ``vocab`` and ``design`` are those of
        their :class:`GraphDataset` (what :meth:`evaluate` needs to encode a new graph)."""
        import torch

        if not graphs:
            raise GraphModelError("no training graphs")
        self.vocab, self.design = list(vocab), dict(design or {})
        self.version = f"h{self.hidden}r{self.rounds}e{self.epochs}s{self.seed}"
        torch.manual_seed(self.seed)
        allx = np.concatenate([g.x for g in graphs])
        self.x_mean = allx.mean(0)
        self.x_std = np.where(allx.std(0) > 1e-6, allx.std(0), 1.0).astype(np.float32)
        allg = np.stack([g.glob for g in graphs])
        self.g_mean = allg.mean(0)
        self.g_std = np.where(allg.std(0) > 1e-6, allg.std(0), 1.0).astype(np.float32)
        self.net = self._module(allx.shape[1])
        ys = np.array([g.y for g in graphs], dtype=np.float32)
        self.y_mean, self.y_std = float(ys.mean()), float(ys.std() or 1.0)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.learning_rate, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        rng = np.random.default_rng(self.seed)
        batches = [self._batch([graphs[j] for j in idx]) + (idx,)
                   for idx in np.array_split(np.arange(len(graphs)), max(len(graphs) // batch_size, 1))]
        for _ in range(self.epochs):
            for b in rng.permutation(len(batches)):
                x, e, bt, n, gl, idx = batches[b]
                target = torch.tensor((ys[idx] - self.y_mean) / self.y_std)
                loss = ((self.net(x, e, bt, n, gl) - target) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        return self

    def predict(self, graphs: Sequence[EncodedGraph]) -> np.ndarray:
        """Predicted latency_ms of each graph."""
        import torch

        if self.net is None:
            raise GraphModelError("GraphCostModel is not fitted; call fit()")
        with torch.no_grad():
            z = self.net(*self._batch(graphs)).numpy()
        return np.exp(z * self.y_std + self.y_mean)

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        """The predicted latency of ``workload`` (an ir.Graph) on the trained-for design."""
        if any(dict(d) != self.design for d in designs):
            raise EvaluationError(f"this graph cost model predicts for one design only, "
                                  f"{self.design}; it was asked for another")
        if not hasattr(workload, "ops"):
            raise EvaluationError(f"the workload of a graph cost model is an ir.Graph, got "
                                  f"{type(workload).__name__}")
        latency = self.predict([encode_graph(workload, self.vocab)])[0]
        return {"latency_ms": np.full(len(designs), latency)}


def evaluate_graph_model(data: GraphDataset, holdout: Sequence[str] = (),
                         test_fraction: float = 0.25, seed: int = 0, **kwargs: Any
                         ) -> dict[str, Any]:
    """Train on graphs whose source model is not in ``holdout`` and score the held-out ones
    (with no ``holdout``: a random ``test_fraction`` of graphs), plus the same metrics of a
    baseline predicting latency ∝ total MACs (scale fitted on the training graphs)."""
    from mlsysgym.costmodels.metrics import regression_report

    if holdout:
        train = [g for g in data.graphs if g.source not in holdout]
        test = [g for g in data.graphs if g.source in holdout]
    else:
        perm = np.random.default_rng(seed).permutation(len(data.graphs))
        k = round(len(perm) * test_fraction)
        test = [data.graphs[i] for i in perm[:k]]
        train = [data.graphs[i] for i in perm[k:]]
    if not train or not test:
        raise GraphModelError(f"holdout {list(holdout)} leaves no train or no test graphs")
    model = GraphCostModel(**kwargs).fit(train, vocab=data.vocab, design=data.design)
    y = np.exp([g.y for g in test])
    pred = model.predict(test)
    macs_tr = np.array([np.expm1(g.x[:, -5]).sum() for g in train])
    macs_te = np.array([np.expm1(g.x[:, -5]).sum() for g in test])
    scale = float(np.exp(np.median(np.array([g.y for g in train]) - np.log(macs_tr + 1.0))))
    base = scale * (macs_te + 1.0)
    return {"train_graphs": len(train), "test_graphs": len(test), "holdout": list(holdout),
            "model": regression_report(y, pred), "macs_baseline": regression_report(y, base),
            "y": y, "pred": pred, "sources": [g.source for g in test]}
