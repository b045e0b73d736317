"""Typed exceptions of the IR layer; each message is one line saying what is wrong and how to fix it."""

from __future__ import annotations

from mlsysgym.core.errors import MlsysgymError

__all__ = ["DynamicDimensionError", "GraphCycleError", "InvalidDimensionError", "MlsysgymError",
           "OnnxDecodeError", "OpOrderError", "WorkloadError", "WorkloadNotFoundError"]


class WorkloadError(MlsysgymError):
    """A workload (ONNX file, bytes, model, zoo name) cannot be turned into a Graph."""


class WorkloadNotFoundError(WorkloadError):
    """A path or zoo name that does not exist."""


class OnnxDecodeError(WorkloadError):
    """Bytes that are not a (complete) ONNX model."""


class GraphCycleError(WorkloadError):
    """The graph's data dependencies contain a cycle, so it has no topological order."""


class DynamicDimensionError(WorkloadError):
    """A graph input has a symbolic dimension and no size was given for it."""


class InvalidDimensionError(WorkloadError):
    """A size given for a symbolic dimension that is not a positive integer in range."""


class OpOrderError(MlsysgymError):
    """An op order for live-range analysis is not a permutation of the graph's ops."""
