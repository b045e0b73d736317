"""mlsysgym.ir: workloads as typed graphs (ONNX import, costs, live ranges, zoo)."""

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.costs import AttentionNest, ConvNest, LoopNest, MatmulNest
from mlsysgym.ir.errors import (
    DynamicDimensionError,
    GraphCycleError,
    InvalidDimensionError,
    OnnxDecodeError,
    OpOrderError,
    WorkloadError,
    WorkloadNotFoundError,
)
from mlsysgym.ir.graph import Graph, LiveRange, Op, Role, Tensor, Totals, nest_dict

__all__ = [
    "AttentionNest", "ConvNest", "DynamicDimensionError", "Graph", "GraphCycleError",
    "InvalidDimensionError", "LiveRange", "LoopNest", "MatmulNest", "MlsysgymError",
    "OnnxDecodeError", "Op", "OpOrderError", "Role", "Tensor", "Totals", "WorkloadError", "WorkloadNotFoundError", "nest_dict",
]
