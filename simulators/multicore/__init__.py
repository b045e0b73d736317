"""Heterogeneous multi-core / SoC execution model: run an ir.Graph on processing elements under a schedule.

The pieces, in the order data flows through them:

- :mod:`.hardware` — a :class:`Platform`: processing elements (:class:`PEConfig`, a throughput
  per op class or ONNX op type, a roofline time per op) and an :class:`Interconnect`;
  :data:`PRESETS` and :func:`load_platform`;
- :mod:`.instance` — :func:`build_instance` compiles (graph, platform) into a
  :class:`SchedulingInstance` (op × PE times, data edges, cross-PE transfer times, per-op
  release times for streams of jobs); :func:`critical_path_lb`, :func:`random_instance`;
- :mod:`.schedule` — a :class:`Schedule` (op → PE assignment plus start times), built from a
  dispatch order by :func:`schedule_from_order`; :func:`earliest_start` (insertion policy);
- :mod:`.execution` — :func:`validate` (dependencies incl. transfer delays, overlap, placement,
  release times) and :func:`simulate` (makespan, per-PE utilization, energy, that report);
- :mod:`.evaluator` — :class:`MulticoreEvaluator`, the Evaluator over assignments;
- :mod:`.errors` — the typed errors.

Units: times in microseconds (``_us``), energy in microjoules (``_uj``; W × µs = µJ), power in W.
"""

from mlsysgym.simulators.multicore.errors import (
    EmptyGraphError,
    InvalidScheduleError,
    PlatformError,
    UnsupportedOpError,
)
from mlsysgym.simulators.multicore.evaluator import MulticoreEvaluator
from mlsysgym.simulators.multicore.execution import (
    ExecutionResult,
    ValidityReport,
    simulate,
    validate,
)
from mlsysgym.simulators.multicore.hardware import (
    OP_CLASSES,
    PRESETS,
    Interconnect,
    PEConfig,
    Platform,
    load_platform,
    op_class,
    roofline_times,
)
from mlsysgym.simulators.multicore.instance import (
    OpTimeFn,
    SchedulingInstance,
    accelerator_op_times,
    build_instance,
    critical_path_lb,
    random_instance,
)
from mlsysgym.simulators.multicore.schedule import Schedule, earliest_start, schedule_from_order

__all__ = [
    "OP_CLASSES",
    "PRESETS",
    "EmptyGraphError",
    "ExecutionResult",
    "Interconnect",
    "InvalidScheduleError",
    "MulticoreEvaluator",
    "OpTimeFn",
    "PEConfig",
    "Platform",
    "PlatformError",
    "Schedule",
    "SchedulingInstance",
    "UnsupportedOpError",
    "ValidityReport",
    "accelerator_op_times",
    "build_instance",
    "critical_path_lb",
    "earliest_start",
    "load_platform",
    "op_class",
    "random_instance",
    "roofline_times",
    "schedule_from_order",
    "simulate",
    "validate",
]
