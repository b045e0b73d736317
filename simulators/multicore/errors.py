"""The typed errors of the multi-core model: bad platforms, unsupported ops, empty graphs, invalid schedules."""

from __future__ import annotations

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.errors import WorkloadError


class PlatformError(MlsysgymError):
    """A platform description is malformed (unknown preset, bad field, no PEs, ...)."""


class UnsupportedOpError(PlatformError):
    """Some op of the graph can run on no processing element of the platform."""


class EmptyGraphError(WorkloadError):
    """The workload has no ops to schedule."""


class InvalidScheduleError(MlsysgymError):
    """A schedule breaks a dependency, overlaps two ops on one PE, or places an op where it cannot run."""
