"""A small graph neural network (policy + value) in plain torch, exported to ONNX.

:class:`GraphNet` maps a graph — node features ``x`` (N, F), directed edges ``edge_index``
(2, E; row 0 source, row 1 destination, int64) and edge features ``edge_attr`` (E, D) — to
per-node logits (N, A) and one value (1,). Each of ``rounds`` message-passing rounds sends
``relu(W [h_src, edge_attr])`` along every edge, averages the messages arriving at each node
(``index_add`` by destination, divided by the in-degree) and adds ``relu(U [h, mean message])``
to the node state (a residual update). The value head reads the mean and max of the final node
states. No torch-geometric: gathers and ``index_add`` only, so N and E are free.

:func:`export_onnx` writes it with dynamic node and edge counts (inputs ``x``, ``edge_index``,
``edge_attr``; outputs ``logits``, ``value``); :class:`OnnxGraphNet` runs such a file with ONNX
Runtime (torch is not imported). Torch is imported only by :func:`build_graph_net` and
:func:`export_onnx`, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["GnnError", "OnnxGraphNet", "build_graph_net", "export_onnx"]

ONNX_IR_VERSION = 10


class GnnError(MlsysgymError):
    """A graph network's inputs, export or ONNX file is not usable."""


def build_graph_net(n_features: int, n_edge_features: int, *, hidden: int = 64, rounds: int = 3,
                    n_actions: int = 1, seed: int = 0) -> Any:
    """A fresh :class:`GraphNet` (a ``torch.nn.Module``) with seeded initial weights."""
    import torch
    from torch import nn

    if min(n_features, n_edge_features, hidden, rounds, n_actions) < 1:
        raise GnnError("n_features, n_edge_features, hidden, rounds and n_actions must be >= 1")

    class GraphNet(nn.Module):
        """Message passing over an edge list; per-node logits and a graph value."""

        def __init__(self) -> None:
            super().__init__()
            self.encode = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(),
                                        nn.Linear(hidden, hidden))
            self.message = nn.ModuleList(nn.Linear(hidden + n_edge_features, hidden)
                                         for _ in range(rounds))
            self.update = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(rounds))
            self.norm = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(rounds))
            self.policy = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                        nn.Linear(hidden, n_actions))
            self.value = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(),
                                       nn.Linear(hidden, 1))

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                    edge_attr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.encode(x)
            src, dst = edge_index[0], edge_index[1]
            ones = torch.ones_like(edge_attr[:, :1])
            deg = torch.zeros_like(h[:, :1]).index_add(0, dst, ones).clamp(min=1.0)
            for msg, upd, norm in zip(self.message, self.update, self.norm):
                m = torch.relu(msg(torch.cat([h[src], edge_attr], dim=1)))
                agg = torch.zeros_like(h).index_add(0, dst, m) / deg
                h = norm(h + torch.relu(upd(torch.cat([h, agg], dim=1))))
            pooled = torch.cat([h.mean(dim=0), h.max(dim=0).values])
            return self.policy(h), self.value(pooled)

    torch.manual_seed(seed)
    return GraphNet()


def export_onnx(net: Any, path: str | os.PathLike[str], n_features: int,
                n_edge_features: int) -> None:
    """Write ``net`` to ``path`` as ONNX with dynamic node and edge counts."""
    import torch

    net = net.eval()
    example = (torch.zeros(5, n_features), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]),
               torch.zeros(4, n_edge_features))
    nodes = torch.export.Dim("nodes", min=2)
    edges = torch.export.Dim("edges", min=2)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, example, dynamo=True,
                                    input_names=["x", "edge_index", "edge_attr"],
                                    output_names=["logits", "value"],
                                    dynamic_shapes=({0: nodes}, {1: edges}, {0: edges}),
                                    verbose=False)
    if program is None:
        raise GnnError("torch.onnx.export returned no program for the graph network")
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, ONNX_IR_VERSION)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


class OnnxGraphNet:
    """An exported :class:`GraphNet` run by ONNX Runtime on one CPU thread (no torch)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 (ORT raises its own classes; one line for the user)
            raise GnnError(f"cannot load graph network {path}: {str(e).splitlines()[0]}") from None
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        if set(shapes) != {"x", "edge_index", "edge_attr"}:
            raise GnnError(f"{path} is not a graph network (inputs {sorted(shapes)})")
        self.n_features = int(shapes["x"][1])
        self.n_edge_features = int(shapes["edge_attr"][1])

    def __call__(self, x: np.ndarray, edge_index: np.ndarray,
                 edge_attr: np.ndarray) -> tuple[np.ndarray, float]:
        """(per-node logits (N, A), value) of one graph."""
        x = np.ascontiguousarray(x, np.float32)
        edge_index = np.ascontiguousarray(edge_index, np.int64)
        edge_attr = np.ascontiguousarray(edge_attr, np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features or x.shape[0] < 1:
            raise GnnError(f"node features must be (N, {self.n_features}); got {x.shape}")
        if edge_index.shape != (2, edge_attr.shape[0]) or edge_attr.shape[1:] != (self.n_edge_features,):
            raise GnnError(f"edges must be (2, E) with features (E, {self.n_edge_features}); got "
                           f"{edge_index.shape} and {edge_attr.shape}")
        if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= x.shape[0]):
            raise GnnError("edge_index refers to a node outside [0, N)")
        logits, value = self.session.run(None, {"x": x, "edge_index": edge_index,
                                                "edge_attr": edge_attr})
        return logits, float(value.reshape(-1)[0])
