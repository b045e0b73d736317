"""The workloads an SoC is judged on: a *set* of zoo graphs and DeepSoCS-style job streams.

Everything about a workload that does not depend on the platform is computed once here (the
dependency structure for HEFT, FLOPs and bytes per op, op types, data edges, the accelerator
model's lowering for NPU op times), so evaluating a design only computes op times and maps.

Named sets (:data:`WORKLOAD_SETS`):

- ``tiny``: alexnet and resnet18 (tests);
- ``mobile``: mobilenetv2, resnet18, whisper_tiny_encoder and a stream of 6 jobs
  (mobilenetv2 / resnet18) at load 0.7;
- ``mixed`` (the largest): mobilenetv2, efficientnet_b0, resnet50, distilbert_base,
  whisper_tiny_encoder and a stream of 8 jobs (mobilenetv2 / resnet18 / efficientnet_b0) at
  load 0.8.

A stream's arrivals are drawn once (:func:`~mlsysgym.simulators.streams.poisson_stream`, seed 0)
against the reference platform with roofline NPU times, then fixed: every design sees the same
jobs at the same times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from mlsysgym.ir.errors import WorkloadError
from mlsysgym.ir.graph import Graph
from mlsysgym.simulators.accelerator_layers import LayerSet
from mlsysgym.simulators.multicore.hardware import Interconnect, PEConfig, Platform
from mlsysgym.simulators.multicore.heft import Dag
from mlsysgym.simulators.multicore.instance import SchedulingInstance, build_instance

__all__ = ["WORKLOAD_SETS", "SocWorkload", "SocWorkloadError", "WorkloadSet", "graph_workload",
           "stream_workload", "workload_set"]


class SocWorkloadError(WorkloadError):
    """An SoC workload set that cannot be built (unknown set name, empty list, bad entry)."""


# one PE that runs anything: compiles a graph's structure without any platform's op times
_UNIVERSAL = Platform("universal", (PEConfig("any", "any", {"*": 1.0}, 1.0, 0.0, 0.0),),
                      Interconnect(1.0))


@dataclass(frozen=True, eq=False)
class SocWorkload:
    """One workload of a set: its structure, work per op and NPU lowering.

    ``npu_parts``: per distinct graph, its :class:`LayerSet` and the first op index of each of
    its copies in this workload (one copy for a graph, one per job for a stream).
    """

    name: str
    instance: SchedulingInstance
    dag: Dag
    npu_parts: tuple[tuple[LayerSet, np.ndarray], ...]
    stream: bool = False

    @property
    def n_ops(self) -> int:
        return self.instance.n_ops

    @property
    def n_jobs(self) -> int:
        return self.instance.n_jobs

    @cached_property
    def total_bytes(self) -> float:
        """Bytes read and written by all ops."""
        return float(self.instance.op_bytes.sum())


def graph_workload(graph: Graph | str) -> SocWorkload:
    """A single graph (a zoo name, ONNX path or Graph) run alone from time 0."""
    from mlsysgym.ir import zoo
    from mlsysgym.simulators.accelerator import layers_of

    g = zoo.resolve(graph)
    inst = build_instance(g, _UNIVERSAL)
    return SocWorkload(g.name, inst, Dag.of(inst), ((layers_of(g), np.zeros(1, np.int64)),))


def stream_workload(models: Sequence[str], n_jobs: int, load: float, seed: int = 0) -> SocWorkload:
    """A Poisson stream of ``n_jobs`` jobs drawn from ``models`` at ``load`` (see the module
    docstring for how the arrivals are fixed)."""
    from mlsysgym.ir import zoo
    from mlsysgym.simulators.accelerator import layers_of
    from mlsysgym.simulators.soc.platform import REFERENCE_DESIGN, soc_platform
    from mlsysgym.simulators.streams import build_stream_instance, poisson_stream

    ref = soc_platform(REFERENCE_DESIGN).platform
    jobs = poisson_stream(list(models), n_jobs, load, ref, seed=seed)
    name = f"stream{n_jobs}[{'+'.join(models)}]@{load:g}"
    inst = build_stream_instance(jobs, _UNIVERSAL, name=name)
    sizes = np.bincount(inst.job_of, minlength=len(jobs))
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    parts = []
    for m in dict.fromkeys(str(j.workload) for j in jobs):
        starts = np.array([first[k] for k, j in enumerate(jobs) if str(j.workload) == m], np.int64)
        parts.append((layers_of(zoo.resolve(m)), starts))
    return SocWorkload(name, inst, Dag.of(inst), tuple(parts), stream=True)


@dataclass(frozen=True, eq=False)
class WorkloadSet:
    """A named set of workloads; ``type_names`` is the union of their op types and
    ``type_idx[k]`` maps workload k's ops into it."""

    name: str
    workloads: tuple[SocWorkload, ...]
    type_names: tuple[str, ...]
    type_idx: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, name: str, workloads: Sequence[SocWorkload]) -> WorkloadSet:
        if not workloads:
            raise SocWorkloadError("a workload set needs at least one workload")
        names = tuple(sorted({t for w in workloads for t in w.instance.op_types}))
        index = {t: k for k, t in enumerate(names)}
        idx = tuple(np.fromiter((index[t] for t in w.instance.op_types), np.int64, w.n_ops)
                    for w in workloads)
        return cls(name, tuple(workloads), names, idx)

    @property
    def n_ops(self) -> int:
        return sum(w.n_ops for w in self.workloads)

    @property
    def n_jobs(self) -> int:
        return sum(w.n_jobs for w in self.workloads)


WORKLOAD_SETS: dict[str, dict[str, Any]] = {
    "tiny": {"graphs": ("alexnet", "resnet18")},
    "mobile": {"graphs": ("mobilenetv2", "resnet18", "whisper_tiny_encoder"),
               "stream": (("mobilenetv2", "resnet18"), 6, 0.7)},
    "mixed": {"graphs": ("mobilenetv2", "efficientnet_b0", "resnet50", "distilbert_base",
                         "whisper_tiny_encoder"),
              "stream": (("mobilenetv2", "resnet18", "efficientnet_b0"), 8, 0.8)},
}


@lru_cache(maxsize=8)
def _named_set(name: str) -> WorkloadSet:
    spec = WORKLOAD_SETS[name]
    ws = [graph_workload(g) for g in spec["graphs"]]
    if "stream" in spec:
        ws.append(stream_workload(*spec["stream"]))
    return WorkloadSet.of(name, ws)


def workload_set(spec: str | Sequence[str | Graph] | WorkloadSet) -> WorkloadSet:
    """A set by name (:data:`WORKLOAD_SETS`, built once per process), a list of graphs (zoo
    names, ONNX paths or Graphs), or a WorkloadSet as is."""
    if isinstance(spec, WorkloadSet):
        return spec
    if isinstance(spec, str):
        if spec in WORKLOAD_SETS:
            return _named_set(spec)
        spec = [spec]  # one zoo model
    if isinstance(spec, Graph):
        spec = [spec]
    if not isinstance(spec, Sequence) or not spec:
        raise SocWorkloadError(f"workloads must be a set name ({', '.join(WORKLOAD_SETS)}) or a "
                               f"non-empty list of zoo models, got {spec!r}")
    ws = [graph_workload(g) for g in spec]
    return WorkloadSet.of("+".join(w.name for w in ws), ws)
