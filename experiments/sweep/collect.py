"""Trial results travel through Ray, not a shared filesystem: a trial packs its ledger row and
trajectory into its final Tune result (:func:`pack`), and a Tune callback on the driver
(:func:`writer_callback`) takes them out of the result before Tune logs or keeps it and writes
them under the driver's ``output_dir`` through :func:`~.storage.write_trial`. The workers never
see ``output_dir``: a cluster without shared storage produces the same Parquet as one machine.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

from mlsysgym.experiments.sweep.storage import write_trial

PAYLOAD = "mlsysgym_trial"  # the result key carrying a finished trial's (row, trajectory)
PARTIAL = "mlsysgym_so_far"  # an intermediate result's (row, trajectory) of the search so far
_CALLBACK_CLASS: list[type] = []


def pack(row: Mapping[str, Any], traj: Any) -> bytes:
    """A finished trial's row and trajectory as one opaque result value."""
    return pickle.dumps((dict(row), traj), protocol=pickle.HIGHEST_PROTOCOL)


def unpack(blob: bytes) -> tuple[dict[str, Any], Any]:
    """(row, trajectory) of :func:`pack`'s value (made by this sweep's own trial workers)."""
    row, traj = pickle.loads(blob)  # produced by this sweep's own workers
    return row, traj


def _writer_class() -> type:
    """The Tune Callback class (built once, after Ray is imported)."""
    if not _CALLBACK_CLASS:
        from ray.tune import Callback

        class TrialWriter(Callback):
            """Writes each trial's payload on the driver and removes it from the result (Tune
            lets callbacks edit a result in place; its loggers run after user callbacks). The
            latest intermediate payload of a running trial is kept: a trial that a scheduler
            stops (it never sends its final payload) is written from it when it completes, its
            row marked ``stopped_early``."""

            def __init__(self, output_dir: str) -> None:
                self.output_dir = output_dir
                self.written: list[str] = []
                self.pending: dict[str, bytes] = {}

            def _write(self, blob: bytes) -> None:
                row, traj = unpack(blob)
                write_trial(self.output_dir, row, traj)
                self.written.append(row["trial_key"])

            def on_trial_result(self, iteration: int, trials: list, trial: Any,
                                result: dict, **info: Any) -> None:
                so_far = result.pop(PARTIAL, None)
                blob = result.pop(PAYLOAD, None)
                tid = getattr(trial, "trial_id", None)
                if so_far is not None:
                    self.pending[tid] = so_far
                if blob is not None:
                    self.pending.pop(tid, None)
                    self._write(blob)

            def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                                  **info: Any) -> None:
                blob = self.pending.pop(getattr(trial, "trial_id", None), None)
                if blob is not None:  # stopped by the scheduler before its final result
                    self._write(blob)

            def on_trial_error(self, iteration: int, trials: list, trial: Any,
                               **info: Any) -> None:
                self.pending.pop(getattr(trial, "trial_id", None), None)

            def on_trial_recover(self, iteration: int, trials: list, trial: Any,
                                 **info: Any) -> None:  # retried from scratch
                self.pending.pop(getattr(trial, "trial_id", None), None)

        TrialWriter.__module__ = __name__
        TrialWriter.__qualname__ = "TrialWriter"
        globals()["TrialWriter"] = TrialWriter
        _CALLBACK_CLASS.append(TrialWriter)
    return _CALLBACK_CLASS[0]


def writer_callback(output_dir: str) -> Any:
    """A Tune callback writing every finished trial's rows under ``output_dir`` (the driver's)."""
    return _writer_class()(str(output_dir))
