"""The typed errors of a sweep: a bad configuration, a sweep that cannot run, a mixed ledger."""

from __future__ import annotations

from mlsysgym.core.errors import MlsysgymError


class SweepConfigError(MlsysgymError):
    """A sweep configuration that is malformed (missing field, unknown agent or problem, ...)."""


class SweepError(MlsysgymError):
    """A sweep could not run (output directory in use, Ray Tune failure)."""


class LedgerMismatchError(SweepError):
    """Resuming would mix ledger rows of different evaluator versions or targets."""
