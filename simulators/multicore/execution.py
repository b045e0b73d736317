"""Checking and running a schedule: :func:`validate` reports every violated dependency (incl.
transfer delays), overlap of two ops on one PE, unsupported placement and early start;
:func:`simulate` returns makespan, per-PE utilization, energy and that report.

Energy: busy time × each PE's active power + idle time × its idle power + bytes moved across
PEs × the interconnect's energy per byte (W × µs = µJ).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from mlsysgym.simulators.multicore.errors import InvalidScheduleError
from mlsysgym.simulators.multicore.instance import SchedulingInstance
from mlsysgym.simulators.multicore.schedule import Schedule


@dataclass(frozen=True)
class ValidityReport:
    """Whether a schedule is executable, and one line per violation (first 20 kept)."""

    valid: bool
    violations: tuple[str, ...] = ()
    n_dependency: int = 0
    n_overlap: int = 0
    n_placement: int = 0
    n_release: int = 0

    def raise_if_invalid(self) -> None:
        if not self.valid:
            total = self.n_dependency + self.n_overlap + self.n_placement + self.n_release
            more = f" (+{total - 1} more)" if total > 1 else ""
            raise InvalidScheduleError(self.violations[0] + more)


def _tol(x: np.ndarray | float) -> np.ndarray | float:
    return 1e-6 + 1e-9 * np.abs(x)


def validate(problem: SchedulingInstance, schedule: Schedule) -> ValidityReport:
    """Check placement (valid PE that can run the op), release times (no op starts before its job
    arrives), dependencies incl. transfer delays, and that no two ops of positive length overlap
    on one PE. Vectorized over ops and edges."""
    n, P = problem.n_ops, problem.n_pes
    a, s = schedule.assignment, schedule.start_us
    msgs: list[str] = []
    if a.shape != (n,) or s.shape != (n,):
        msg = (f"schedule has {a.size} assignments and {s.size} start times for {n} ops; "
               "give one of each per op")
        return ValidityReport(False, (msg,), n_placement=1)
    bad_pe = (a < 0) | (a >= P)
    if bad_pe.any():
        i = int(np.flatnonzero(bad_pe)[0])
        msg = f"op {problem.op_names[i]!r} is assigned to PE index {a[i]}, outside [0, {P})"
        return ValidityReport(False, (msg,), n_placement=int(bad_pe.sum()))
    idx = np.arange(n)
    cannot = ~problem.capable[idx, a]
    bad_start = ~np.isfinite(s) | (s < -_tol(0.0))
    for i in np.flatnonzero(cannot)[:20]:
        msgs.append(f"op {problem.op_names[i]!r} ({problem.op_types[i]}) cannot run on PE "
                    f"{problem.pe_names[a[i]]!r}")
    for i in np.flatnonzero(bad_start)[:20]:
        msgs.append(f"op {problem.op_names[i]!r} has start time {s[i]}, which is not a finite time ≥ 0")
    n_place = int(cannot.sum() + bad_start.sum())
    rel = problem.release_us
    early = np.isfinite(s) & (s < rel - _tol(rel))
    for i in np.flatnonzero(early)[:20]:
        msgs.append(f"op {problem.op_names[i]!r} starts at {s[i]:.6g} us, before its release at "
                    f"{rel[i]:.6g} us (its job has not arrived)")
    n_release = int(early.sum())
    dur = np.where(cannot, 0.0, problem.durations_us[idx, a])
    fin = s + dur
    # dependencies: consumer starts after producer finishes plus the transfer when PEs differ
    es, ed = problem.edge_src, problem.edge_dst
    ready = fin[es] + np.where(a[es] != a[ed], problem.edge_comm_us, 0.0)
    dep_bad = s[ed] < ready - _tol(ready)
    for e in np.flatnonzero(dep_bad)[:20]:
        i, j = int(es[e]), int(ed[e])
        msgs.append(f"op {problem.op_names[j]!r} starts at {s[j]:.6g} us before its input from "
                    f"{problem.op_names[i]!r} is available at {ready[e]:.6g} us")
    # overlap: per PE, positive-length ops by start; each must start after all earlier ones end
    n_overlap = 0
    pos = np.flatnonzero(dur > 0)
    for p in np.unique(a[pos]):
        on = pos[a[pos] == p]
        on = on[np.argsort(s[on], kind="stable")]
        prev_end = np.r_[-np.inf, np.maximum.accumulate(fin[on])[:-1]]
        ov = s[on] < prev_end - _tol(prev_end)
        n_overlap += int(ov.sum())
        for k in np.flatnonzero(ov)[:20]:
            other = on[:k][np.argmax(fin[on[:k]])]
            msgs.append(f"ops {problem.op_names[other]!r} and {problem.op_names[on[k]]!r} overlap "
                        f"on PE {problem.pe_names[p]!r} at {s[on[k]]:.6g} us")
    n_dep = int(dep_bad.sum())
    return ValidityReport(valid=not (n_place or n_dep or n_overlap or n_release),
                          violations=tuple(msgs[:20]), n_dependency=n_dep, n_overlap=n_overlap,
                          n_placement=n_place, n_release=n_release)


@dataclass(frozen=True)
class ExecutionResult:
    """What running a schedule gives: makespan, per-PE busy time and utilization, energy, validity."""

    makespan_us: float
    finish_us: np.ndarray
    busy_us: np.ndarray
    utilization: np.ndarray
    energy_uj: float
    compute_energy_uj: float
    idle_energy_uj: float
    transfer_energy_uj: float
    transferred_bytes: float
    report: ValidityReport = field(default_factory=lambda: ValidityReport(True))

    @property
    def valid(self) -> bool:
        return self.report.valid

    def metrics(self) -> dict[str, float]:
        """Scalar metrics with units in their names."""
        return {"makespan_us": self.makespan_us, "energy_uj": self.energy_uj,
                "utilization_mean": float(self.utilization.mean()),
                "transferred_bytes": self.transferred_bytes, "valid": float(self.valid)}


def simulate(problem: SchedulingInstance, schedule: Schedule, strict: bool = True) -> ExecutionResult:
    """Execute ``schedule``: makespan, per-PE utilization and energy, with a validity report.

    ``strict`` raises InvalidScheduleError on an invalid schedule; otherwise the report says why
    and the metrics describe the (infeasible) timing as given.
    """
    report = validate(problem, schedule)
    if strict:
        report.raise_if_invalid()
    n, P = problem.n_ops, problem.n_pes
    a = np.clip(schedule.assignment, 0, P - 1)
    dur = problem.durations_us[np.arange(n), a]
    dur = np.where(np.isfinite(dur), dur, 0.0)
    fin = schedule.start_us + dur
    makespan = float(fin.max())
    busy = np.bincount(a, weights=dur, minlength=P)
    util = busy / makespan if makespan > 0 else np.zeros(P)
    compute = float(busy @ problem.active_power_w)
    idle = float((makespan - busy) @ problem.idle_power_w)
    cross = a[problem.edge_src] != a[problem.edge_dst]
    moved = float(problem.edge_bytes[cross].sum())
    transfer = moved * problem.transfer_energy_pj_per_byte * 1e-6
    return ExecutionResult(makespan_us=makespan, finish_us=fin, busy_us=busy, utilization=util,
                           energy_uj=compute + idle + transfer, compute_energy_uj=compute,
                           idle_energy_uj=idle, transfer_energy_uj=transfer, transferred_bytes=moved,
                           report=report)
