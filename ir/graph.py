"""ir.Graph: a workload as typed ops and tensors in topological order, with costs and live ranges."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from mlsysgym.ir.costs import LoopNest, numel
from mlsysgym.ir.errors import OpOrderError

if TYPE_CHECKING:
    import onnx
    import pandas as pd


def kahn_order(successors: Sequence[Sequence[int]]) -> list[int]:
    """Kahn's topological order of nodes ``0..n-1`` (smallest ready index first, so stable in
    input order). On a cycle the order is shorter than n; the caller names the culprit."""
    indegree = [0] * len(successors)
    for succ in successors:
        for j in succ:
            indegree[j] += 1
    ready = [i for i, d in enumerate(indegree) if d == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in successors[i]:
            indegree[j] -= 1
            if indegree[j] == 0:
                heapq.heappush(ready, j)
    return order


class Role(str, Enum):
    """What a tensor is to the graph."""

    INPUT = "input"
    WEIGHT = "weight"
    ACTIVATION = "activation"
    OUTPUT = "output"


@dataclass(frozen=True)
class Tensor:
    """A value of the graph. ``shape`` is None when shape inference could not resolve it."""

    name: str
    shape: tuple[int, ...] | None
    dtype: str
    itemsize: int
    role: Role

    @property
    def numel(self) -> int:
        return numel(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


@dataclass(frozen=True)
class Op:
    """One operator with its costs. ``estimated`` flags an op type without a cost rule."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: Mapping[str, Any]
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int
    loop_nest: LoopNest | None = None
    estimated: bool = False
    domain: str = ""

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved (read + written)."""
        moved = self.bytes_read + self.bytes_written
        return self.flops / moved if moved else 0.0


@dataclass(frozen=True)
class LiveRange:
    """A buffer is live from the op that writes it (``start``) to its last reader (``end``), inclusive."""

    tensor: str
    start: int
    end: int
    nbytes: int


@dataclass(frozen=True)
class Totals:
    """Whole-graph sums."""

    ops: int
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int
    params: int
    param_bytes: int
    peak_live_bytes: int
    estimated_ops: int


@dataclass
class Graph:
    """A workload: ops in topological order and every tensor they touch."""

    name: str
    ops: tuple[Op, ...]
    tensors: dict[str, Tensor]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_onnx(cls, source: str | Path | bytes | onnx.ModelProto, name: str | None = None,
                  dims: Mapping[str, int] | None = None) -> Graph:
        """Build from an ONNX file path, serialized bytes or a ModelProto.

        ``dims`` gives sizes to symbolic input dimensions (e.g. ``{"batch": 1}``).
        """
        from mlsysgym.ir.onnx_import import graph_from_onnx

        return graph_from_onnx(source, name=name, dims=dims)

    @classmethod
    def from_torch(cls, module: Any, example_inputs: Sequence[Any], name: str | None = None) -> Graph:
        """Export a ``torch.nn.Module`` with ``torch.onnx.export(..., dynamo=True)`` and build from it."""
        from mlsysgym.ir.onnx_import import graph_from_torch

        return graph_from_torch(module, example_inputs, name=name)

    # ---- lookups ------------------------------------------------------------------
    def op(self, name: str) -> Op:
        """The op called ``name``."""
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(f"no op named {name!r} in graph {self.name!r}")

    @property
    def op_types(self) -> set[str]:
        return {op.op_type for op in self.ops}

    @property
    def estimated_ops(self) -> list[Op]:
        """Ops whose type has no cost rule (costed by an estimate from their shapes)."""
        return [op for op in self.ops if op.estimated]

    def weights(self) -> list[Tensor]:
        """Parameters: weight tensors, without integer shape/index constants."""
        return [t for t in self.tensors.values()
                if t.role is Role.WEIGHT and t.dtype not in ("int64", "int32", "bool")]

    # ---- live ranges --------------------------------------------------------------
    def _order_indices(self, order: Sequence[str] | Sequence[int] | None) -> list[int]:
        n = len(self.ops)
        if order is None:
            return list(range(n))
        index = {op.name: i for i, op in enumerate(self.ops)}
        try:
            idx = [index[o] if isinstance(o, str) else int(o) for o in order]
        except KeyError as e:
            raise OpOrderError(f"op order names unknown op {e.args[0]!r}") from None
        if sorted(idx) != list(range(n)):
            raise OpOrderError(f"op order must list each of the {n} ops exactly once")
        position = {op_i: step for step, op_i in enumerate(idx)}
        for op_i in idx:  # each input must be produced before it is read
            for t in self.ops[op_i].inputs:
                p = self._producer().get(t)
                if p is not None and position[p] > position[op_i]:
                    raise OpOrderError(
                        f"op order runs {self.ops[op_i].name!r} before {self.ops[p].name!r}, "
                        f"which produces its input {t!r}")
        return idx

    def _producer(self) -> dict[str, int]:
        cache = self.__dict__.get("_producer_cache")
        if cache is None:
            cache = {t: i for i, op in enumerate(self.ops) for t in op.outputs}
            self.__dict__["_producer_cache"] = cache
        return cache

    def live_ranges(self, order: Sequence[str] | Sequence[int] | None = None,
                    include_weights: bool = False) -> list[LiveRange]:
        """Buffer live ranges, in steps of ``order`` (default: the topological order).

        Graph inputs are live from step 0, graph outputs until the last step. Weights are
        excluded unless ``include_weights`` (then live from step 0 to their last use).
        """
        idx = self._order_indices(order)
        step_of = {op_i: step for step, op_i in enumerate(idx)}
        last = len(idx) - 1
        start: dict[str, int] = {}
        end: dict[str, int] = {}
        for op_i, op in enumerate(self.ops):
            s = step_of[op_i]
            for t in op.outputs:
                if t:
                    start[t] = s
                    end[t] = max(end.get(t, s), s)
            for t in op.inputs:
                if t:
                    end[t] = max(end.get(t, s), s)
        ranges = []
        for name, t in self.tensors.items():
            if t.role is Role.WEIGHT and not include_weights:
                continue
            if name not in end and name not in start:
                continue  # unused
            st = start.get(name, 0)  # inputs and weights: from the beginning
            en = last if t.role is Role.OUTPUT else end.get(name, st)
            ranges.append(LiveRange(name, st, en, t.nbytes))
        return ranges

    def live_bytes(self, order: Sequence[str] | Sequence[int] | None = None,
                   include_weights: bool = False) -> np.ndarray:
        """Bytes live at each step of ``order`` (inputs and outputs of that step's op included)."""
        ranges = self.live_ranges(order, include_weights)
        diff = np.zeros(len(self.ops) + 1, dtype=np.int64)
        if ranges:
            starts = np.fromiter((r.start for r in ranges), np.int64, len(ranges))
            ends = np.fromiter((r.end for r in ranges), np.int64, len(ranges))
            sizes = np.fromiter((r.nbytes for r in ranges), np.int64, len(ranges))
            np.add.at(diff, starts, sizes)
            np.add.at(diff, ends + 1, -sizes)
        return np.cumsum(diff[:-1])

    def peak_live_memory(self, order: Sequence[str] | Sequence[int] | None = None,
                         include_weights: bool = False) -> int:
        """The largest number of bytes live at once under ``order``."""
        live = self.live_bytes(order, include_weights)
        return int(live.max()) if live.size else 0

    # ---- summaries ----------------------------------------------------------------
    def totals(self) -> Totals:
        weights = self.weights()
        return Totals(
            ops=len(self.ops),
            macs=sum(op.macs for op in self.ops),
            flops=sum(op.flops for op in self.ops),
            bytes_read=sum(op.bytes_read for op in self.ops),
            bytes_written=sum(op.bytes_written for op in self.ops),
            params=sum(t.numel for t in weights),
            param_bytes=sum(t.nbytes for t in weights),
            peak_live_bytes=self.peak_live_memory(),
            estimated_ops=len(self.estimated_ops),
        )

    def op_rows(self) -> list[dict[str, Any]]:
        """One JSON-able dict per op: name, op_type, MACs, FLOPs, bytes, intensity, estimated,
        output shapes, loop nest."""
        return [{
            "name": op.name, "op_type": op.op_type, "macs": op.macs, "flops": op.flops,
            "bytes_read": op.bytes_read, "bytes_written": op.bytes_written,
            "arithmetic_intensity": op.arithmetic_intensity, "estimated": op.estimated,
            "outputs": [list(self.tensors[t].shape or []) for t in op.outputs],
            "loop_nest": nest_dict(op.loop_nest),
        } for op in self.ops]

    def to_frame(self) -> pd.DataFrame:
        """:meth:`op_rows` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.op_rows())


def nest_dict(nest: LoopNest | None) -> dict[str, Any] | None:
    """A loop nest as a plain dict with a ``kind`` key (conv / matmul / attention), or None."""
    if nest is None:
        return None
    return {"kind": type(nest).__name__.removesuffix("Nest").lower(), **asdict(nest)}
