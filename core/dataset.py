"""Every evaluation is data: log evaluations as rows of a Parquet dataset directory.

- ``DatasetLogger(evaluator, path)`` is itself an Evaluator: it evaluates through the wrapped
  one and appends one row per freshly evaluated design (its own cache answers repeats
  without re-logging them).
- ``LogEvaluations(env, path)`` is a Gymnasium wrapper that logs a row per step whose
  ``info`` holds ``design`` and ``metrics`` (plus ``workload_id``, ``evaluator_id`` if given).
- ``read_dataset(path)`` returns every logged row as a pandas DataFrame.
- ``write_part(path, rows)`` writes results produced at once (a sweep trial's row and
  trajectory) as one complete part file, with the same provenance and atomicity.

A row holds the design's parameters as columns, every metric as a column, and ``workload_id``,
``evaluator`` (name), ``evaluator_version``, ``evaluator_id``, ``seed``, ``wall_time_s`` (the
batch's wall time divided by its size), ``batch_size``, ``timestamp`` (UTC), ``run_id`` and a
unique ``row_id``. ``df.attrs["design_columns"]`` / ``["metric_columns"]`` say which columns
are which.

Provenance: every part file's Parquet metadata records where its rows were made —
:func:`mlsysgym.core.target.provenance` of the writing process (target fingerprint: CPU, ISA,
``target_id``, mlsysgym version and commit, lock hash, library versions) plus the evaluator's
name, version and id where there is one. ``df.attrs["provenance"]`` lists the distinct records
of a dataset's parts.

Crash safety: rows go to part files ``part-*.parquet``. A flush writes the current part (at
most ``part_rows`` rows) to a hidden temporary file, renames it to the part's next version
(``os.replace``, atomic) and then deletes the previous version, so a visible part file is
always complete — a crash (even SIGKILL) loses at most the rows not yet flushed (none with
the default ``flush_every=1``) and never leaves a half-written part that readers would see.
A normal interpreter exit flushes the rows of appenders the program never closed.
Readers ignore hidden files and drop duplicate ``row_id``s (a crash between the rename and
the delete leaves two versions of a part). Renaming to a fresh name rather than over the old
version matters on ext4, which forces a synchronous write-back when a rename replaces a file
(~4 ms instead of ~0.1 ms per flush).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import Design, Evaluator, Metrics

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESERVED_COLUMNS", "DatasetError", "DatasetLogger", "LogEvaluations",  # noqa: F822
           "ParquetAppender", "read_dataset", "write_part"]

RESERVED_COLUMNS = ("row_id", "run_id", "timestamp", "workload_id", "evaluator",
                    "evaluator_version", "evaluator_id", "seed", "wall_time_s", "batch_size",
                    "episode", "step", "reward")
_META_KEY = b"mlsysgym"


class DatasetError(MlsysgymError):
    """A dataset directory cannot be written or read, or a row has clashing column names."""


def _scalar(v: Any) -> Any:
    """A NumPy scalar or one-element array as a Python value."""
    if isinstance(v, np.ndarray) and v.size == 1:
        return v.reshape(-1)[0].item()
    if isinstance(v, np.generic):
        return v.item()
    return v


class ParquetAppender:
    """Appends rows (dicts) to a Parquet dataset directory, crash-safely (see module doc).

    ``flush_every``: rows buffered before a flush (1 = every append is durable against a
    process crash). ``part_rows``: rows per part file before a new part is started (each flush
    rewrites the current part, so smaller parts mean cheaper flushes, more files). ``fsync``:
    also survive power loss (slower). ``provenance_extra``: fields recorded in each part's
    metadata beside the writing process's :func:`~mlsysgym.core.target.provenance` (evaluator
    ids, seed, ...). Cost: a flush takes ~2–4 ms (Parquet write of the current
    part), so for fast env steps pass e.g. ``flush_every=100`` (~0.2 ms per row; a crash then
    loses at most the 99 unflushed rows).
    """

    def __init__(self, path: str | os.PathLike[str], run_id: str | None = None,
                 flush_every: int = 1, part_rows: int = 128, fsync: bool = False,
                 provenance_extra: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatasetError(f"cannot create dataset directory {self.path}: {e}") from None
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.flush_every = max(int(flush_every), 1)
        self.part_rows = max(int(part_rows), 1)
        self.fsync = fsync
        self.provenance_extra = dict(provenance_extra or {})
        self._provenance: dict[str, Any] | None = None  # computed at the first flush
        self.design_columns: list[str] = []
        self.metric_columns: list[str] = []
        self._part: list[dict[str, Any]] = []  # rows of the current part not yet flushed
        self._part_table: Any = None  # Arrow table of the current part's flushed rows
        self._part_len = 0  # rows in the current part (flushed or not)
        self._pending = 0
        self._part_base = self._new_part_base()
        self._part_version = 0
        self._part_file: Path | None = None  # the current part's latest version on disk
        self.rows_written = 0
        _OPEN_APPENDERS.add(self)  # flushed at interpreter exit if never closed

    def __getstate__(self) -> dict[str, Any]:
        """A pickled copy (e.g. sent to a Ray worker) starts its own part file and carries no
        rows, so copies in several processes never write to, or duplicate, one another's parts."""
        state = self.__dict__.copy()
        state.update(_part=[], _part_table=None, _part_len=0, _pending=0, _part_version=0,
                     _part_file=None, _part_base=None, rows_written=0,
                     _provenance=None)  # the copy records the machine it runs on
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._part_base = self._new_part_base()
        _OPEN_APPENDERS.add(self)

    @property
    def provenance(self) -> dict[str, Any]:
        """What each part's metadata records about where its rows were made (this process's
        target fingerprint, versions and ``provenance_extra``)."""
        if self._provenance is None:
            from mlsysgym.core.target import provenance

            self._provenance = json.loads(json.dumps(provenance(**self.provenance_extra),
                                                     default=str))
        return self._provenance

    def _new_part_base(self) -> str:
        return f"part-{time.time_ns():020d}-{self.run_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def append(self, rows: Sequence[Mapping[str, Any]], design_columns: Sequence[str] = (),
               metric_columns: Sequence[str] = ()) -> None:
        """Add rows; flushes when ``flush_every`` rows are pending."""
        for c in design_columns:
            if c not in self.design_columns:
                self.design_columns.append(c)
        for c in metric_columns:
            if c not in self.metric_columns:
                self.metric_columns.append(c)
        for r in rows:
            self._part.append(dict(r))
            self._pending += 1
            self._part_len += 1
            if self._part_len >= self.part_rows:
                self.flush()
        if self._pending >= self.flush_every:
            self.flush()
        elif self._pending:
            _import_writers()

    def flush(self) -> None:
        """Write the current part atomically (temp file + ``os.replace``)."""
        if not self._pending:
            return
        import pyarrow as pa

        table = _to_table(self._part, pa)
        if self._part_table is not None:
            try:
                table = pa.concat_tables([self._part_table, table],
                                         promote_options="permissive").combine_chunks()
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # column types changed: rebuild
                table = _to_table(self._part_table.to_pylist() + self._part, pa)
        self._part_table = table
        self._part = []
        meta = dict(table.schema.metadata or {})
        meta[_META_KEY] = json.dumps({"design_columns": self.design_columns,
                                      "metric_columns": self.metric_columns,
                                      "provenance": self.provenance}).encode()
        table = table.replace_schema_metadata(meta)
        target = self.path / f"{self._part_base}-v{self._part_version + 1:06d}.parquet"
        _write_atomically(table, target, self.fsync)
        self._part_version += 1
        if self._part_file is not None:
            self._part_file.unlink(missing_ok=True)
        self._part_file = target
        self.rows_written += self._pending
        self._pending = 0
        if self._part_len >= self.part_rows:
            self._part_table = None
            self._part_len = 0
            self._part_base = self._new_part_base()
            self._part_version = 0
            self._part_file = None

    def close(self) -> None:
        """Flush what is pending."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_OPEN_APPENDERS: weakref.WeakSet[ParquetAppender] = weakref.WeakSet()


def _import_writers() -> None:
    """Import what a flush needs while rows are buffered: at interpreter exit, importing
    pandas (pyarrow loads it lazily) fails because it starts a thread pool module."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401


@atexit.register
def _flush_at_exit() -> None:
    """Write the rows of appenders the program never closed (``flush_every`` > 1 buffers them)
    when the interpreter exits normally; a failure is one warning line, not a traceback."""
    for appender in list(_OPEN_APPENDERS):
        try:
            appender.flush()
        except Exception as e:  # noqa: BLE001 - exiting: report, never raise
            print(f"mlsysgym: warning: {appender._pending} unflushed rows of {appender.path} "
                  f"were lost at exit: {e}", file=sys.stderr)


def _write_atomically(table: Any, target: Path, fsync: bool = False) -> None:
    """Write an Arrow table to ``target`` so that ``target`` is always complete: a hidden
    temporary file in the same directory, renamed over (``os.replace``); with ``fsync`` the file
    and the directory entry are also synced (survives power loss)."""
    import pyarrow.parquet as pq

    tmp = target.with_name(f".tmp-{uuid.uuid4().hex}.parquet")
    try:
        pq.write_table(table, tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if fsync:
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"cannot write to dataset {target.parent}: {e}") from None


def write_part(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
               **provenance_extra: Any) -> Path:
    """Write ``rows`` (dicts or a DataFrame) as one complete part file ``path`` (named
    ``part-*.parquet`` so :func:`read_dataset` reads it) atomically, its metadata recording
    where the rows were made (:func:`~mlsysgym.core.target.provenance` plus
    ``provenance_extra``). For results written once (a sweep trial's row and trajectory);
    :class:`ParquetAppender` is for rows that arrive one by one."""
    import pyarrow as pa
    from mlsysgym.core.target import provenance

    target = Path(path)
    if not target.name.startswith("part-") or target.suffix != ".parquet":
        raise DatasetError(f"a dataset part is named part-*.parquet, got {target.name!r}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create dataset directory {target.parent}: {e}") from None
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else [dict(r) for r in rows]
    table = _to_table(records, pa)
    meta = {_META_KEY: json.dumps({"provenance": provenance(**provenance_extra)},
                                  default=str).encode()}
    _write_atomically(table.replace_schema_metadata(meta), target)
    return target


def _to_table(rows: list[dict[str, Any]], pa: Any) -> Any:
    """A pyarrow Table of rows; columns Arrow cannot type (mixed str/int) become strings."""
    cols: dict[str, list[Any]] = {}
    for i, r in enumerate(rows):
        for k in r:
            if k not in cols:
                cols[k] = [None] * i
        for k, lst in cols.items():
            lst.append(r.get(k))
    arrays = {}
    for k, vals in cols.items():
        try:
            arrays[k] = pa.array(vals)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[k] = pa.array([None if v is None else str(v) for v in vals])
    return pa.table(arrays)


def read_dataset(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Every row of a dataset directory (parts in write order, duplicates by ``row_id``
    dropped). ``attrs["design_columns"]`` and ``attrs["metric_columns"]`` name the columns;
    ``attrs["provenance"]`` lists the distinct provenance records of the parts (empty for parts
    written before datasets recorded it)."""
    import pandas as pd
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_dir():
        raise DatasetError(f"no dataset directory at {p}; log evaluations there first")
    for _attempt in range(5):  # a writer may supersede a part version while we list
        tables = []
        try:
            for f in sorted(p.glob("part-*.parquet")):
                try:
                    tables.append(pq.read_table(f))
                except FileNotFoundError:
                    raise
                except Exception as e:  # noqa: BLE001 - a foreign, corrupt file: say which
                    raise DatasetError(f"cannot read dataset part {f.name}: {e}") from None
            break
        except FileNotFoundError:
            continue
    frames = []
    design: list[str] = []
    metric: list[str] = []
    provenance: list[dict[str, Any]] = []
    for table in tables:
        meta = (table.schema.metadata or {}).get(_META_KEY)
        if meta:
            m = json.loads(meta)
            design += [c for c in m.get("design_columns", []) if c not in design]
            metric += [c for c in m.get("metric_columns", []) if c not in metric]
            if m.get("provenance") and m["provenance"] not in provenance:
                provenance.append(m["provenance"])
        frames.append(table.to_pandas())
    if not frames:
        df = pd.DataFrame()
    else:
        df = pd.concat(frames, ignore_index=True, sort=False)
        if "row_id" in df:
            df = df.drop_duplicates("row_id", keep="last").reset_index(drop=True)
    df.attrs["design_columns"] = design
    df.attrs["metric_columns"] = metric
    df.attrs["provenance"] = provenance
    return df


def _rows(designs: Sequence[Design], metrics: Mapping[str, Any], common: Mapping[str, Any]
          ) -> list[dict[str, Any]]:
    """One row per design: design columns, metric columns, then ``common`` columns."""
    names = list(metrics)
    lists = [np.asarray(metrics[m]).tolist() for m in names]
    out = []
    for i, d in enumerate(designs):
        row = {k: _scalar(v) for k, v in d.items()}
        for m, lst in zip(names, lists):
            row[m] = lst[i]
        row.update(common)
        row["row_id"] = uuid.uuid4().hex
        out.append(row)
    return out


def _check_names(design_cols: Sequence[str], metric_cols: Sequence[str]) -> None:
    clash = (set(design_cols) & set(metric_cols)) | \
        ((set(design_cols) | set(metric_cols)) & set(RESERVED_COLUMNS))
    if clash:
        raise DatasetError(f"column name(s) {sorted(clash)} used twice (design parameter, "
                           f"metric or reserved {list(RESERVED_COLUMNS)}); rename them")


class DatasetLogger(Evaluator):
    """An Evaluator that evaluates through ``evaluator`` and logs one row per fresh evaluation.

    Name, version, id, seed, metric names and workload ids are the wrapped evaluator's, so a
    logged evaluator can be passed anywhere the evaluator was. Repeats answered by this
    logger's cache are not logged again (``cache=False`` calls log every design).
    """

    def __init__(self, evaluator: Evaluator, path: str | os.PathLike[str],
                 run_id: str | None = None, flush_every: int = 1, part_rows: int = 128,
                 fsync: bool = False, cache_size: int = 100_000) -> None:
        super().__init__(cache_size=cache_size, seed=evaluator.seed)
        self.evaluator = evaluator
        self.name = evaluator.name
        self.version = evaluator.version
        self.metric_names = evaluator.metric_names
        self.writer = ParquetAppender(
            path, run_id, flush_every, part_rows, fsync,
            provenance_extra={"evaluator": evaluator.name, "evaluator_version": evaluator.version,
                              "evaluator_id": evaluator.id, "seed": evaluator.seed})

    @property
    def run_id(self) -> str:
        return self.writer.run_id

    @property
    def path(self) -> Path:
        return self.writer.path

    def workload_id(self, workload: Any) -> str:
        return self.evaluator.workload_id(workload)

    def workload_key(self, workload: Any) -> str:
        return self.evaluator.workload_key(workload)

    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        t0 = time.perf_counter()
        metrics = self.evaluator.evaluate(designs, workload, cache=False)
        wall = time.perf_counter() - t0
        n = len(designs)
        design_cols = list(dict.fromkeys(k for d in designs for k in d))
        _check_names(design_cols, list(metrics))
        common = {"workload_id": self.evaluator.workload_id(workload),
                  "evaluator": self.evaluator.name, "evaluator_version": self.evaluator.version,
                  "evaluator_id": self.evaluator.id, "seed": self.evaluator.seed,
                  "wall_time_s": wall / n, "batch_size": n,
                  "timestamp": datetime.now(UTC), "run_id": self.writer.run_id}
        self.writer.append(_rows(designs, metrics, common), design_cols, list(metrics))
        return metrics

    def flush(self) -> None:
        """Write pending rows (only needed with ``flush_every`` > 1)."""
        self.writer.flush()

    def close(self) -> None:
        """Flush pending rows."""
        self.writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_LOG_WRAPPER: type | None = None


def _log_evaluations_class() -> type:
    """Build ``LogEvaluations`` on first use so importing this module does not import gymnasium."""
    global _LOG_WRAPPER
    if _LOG_WRAPPER is not None:
        return _LOG_WRAPPER
    import gymnasium as gym

    class LogEvaluations(gym.Wrapper):
        """Logs a row per step whose ``info`` has ``design`` (dict) and ``metrics`` (dict of
        scalars); ``workload_id``, ``evaluator_id`` and ``seed`` are taken from ``info`` when
        present. Adds ``reward``, ``episode``, ``step`` and the step's ``wall_time_s``."""

        def __init__(self, env: gym.Env, path: str | os.PathLike[str], run_id: str | None = None,
                     flush_every: int = 1, part_rows: int = 128, fsync: bool = False) -> None:
            super().__init__(env)
            self.writer = ParquetAppender(path, run_id, flush_every, part_rows, fsync)
            self.episode = -1
            self.step_index = 0
            self._seed: int | None = None

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
                  ) -> tuple[Any, dict[str, Any]]:
            self.episode += 1
            self.step_index = 0
            if seed is not None:
                self._seed = seed
            return self.env.reset(seed=seed, options=options)

        def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
            t0 = time.perf_counter()
            obs, reward, terminated, truncated, info = self.env.step(action)
            wall = time.perf_counter() - t0
            design, metrics = info.get("design"), info.get("metrics")
            if isinstance(design, Mapping) and isinstance(metrics, Mapping):
                metrics = {k: _scalar(v) for k, v in metrics.items()}
                _check_names(list(design), list(metrics))
                eid = str(info.get("evaluator_id", ""))
                common = {"workload_id": info.get("workload_id"), "evaluator_id": eid,
                          "evaluator": eid.split("@")[0],
                          "evaluator_version": eid.split("@")[1] if "@" in eid else "",
                          "seed": info.get("seed", self._seed), "wall_time_s": wall,
                          "batch_size": 1, "timestamp": datetime.now(UTC),
                          "run_id": self.writer.run_id, "episode": self.episode,
                          "step": self.step_index, "reward": float(reward)}
                self.writer.append(_rows([design], {k: [v] for k, v in metrics.items()},
                                         common), list(design), list(metrics))
            self.step_index += 1
            return obs, reward, terminated, truncated, info

        def close(self) -> None:
            self.writer.close()
            super().close()

    _LOG_WRAPPER = LogEvaluations
    return LogEvaluations


def __getattr__(name: str) -> Any:
    if name == "LogEvaluations":
        return _log_evaluations_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
