"""Sweep storage: one trial's run and its rows (:func:`trial_result`), the Parquet ledger
(``trials/``) and trajectories (``trajectories/``) written atomically by the driver through the
one dataset layer (:func:`write_trial`, :func:`mlsysgym.core.dataset.write_part`, with
provenance; :func:`run_trial` runs and writes), reading them back (:func:`load_results`,
:func:`completed`), and the provenance check before a resume (:func:`check_ledger`)."""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlsysgym.core.dataset import DatasetError, read_dataset, write_part
from mlsysgym.experiments.sweep.config import SweepConfig
from mlsysgym.experiments.sweep.errors import LedgerMismatchError, SweepError
from mlsysgym.experiments.sweep.trials import TrialSpec, _close, _problem_name


def _jsonable(o: Any) -> Any:
    return json.loads(json.dumps(o, default=lambda x: x.item() if hasattr(x, "item") else str(x)))


UNRECORDED = "unrecorded"  # a ledger value written before rows recorded their provenance


def _evaluator_of(problem: Any) -> tuple[str, str]:
    """(evaluator id, version) of a problem; ``UNRECORDED`` for a problem without an evaluator."""
    ev = getattr(problem, "evaluator", None)
    if ev is None:
        return UNRECORDED, UNRECORDED
    return str(ev.id), str(ev.version)


def _provenance_columns(problem: Any) -> dict[str, Any]:
    """The ledger columns saying where a trial ran: evaluator, target fingerprint, versions."""
    from mlsysgym.core.target import fingerprint

    fp = fingerprint()
    soft = fp["software"]
    eid, version = _evaluator_of(problem)
    return {"evaluator_id": eid, "evaluator_version": version, "target_id": fp["target_id"],
            "mlsysgym_version": soft["mlsysgym"], "commit": soft["commit"] or "",
            "lock": soft["lock"] or "", "fingerprint": json.dumps(fp, sort_keys=True)}


def _row(spec: TrialSpec, result: Any, made: Mapping[str, Any], sweep: str,
         tune_trial_id: str, stopped_early: bool = False) -> dict[str, Any]:
    """The ledger row of ``spec``'s search ``result`` (a SearchResult, final or so far)."""
    import pandas as pd

    best = result.best_reward if result.n_evaluations else math.nan
    row: dict[str, Any] = {
        "sweep": sweep, "trial_key": spec.key, "group": spec.group,
        "problem": _problem_name(spec.problem), "problem_spec": json.dumps(_jsonable(spec.problem),
                                                                           sort_keys=True),
        "agent": spec.agent, "seed": spec.seed, "budget": spec.budget,
        "budget_s": spec.budget_s, "status": result.status, "bound": result.bound,
        "hyperparameters": json.dumps(_jsonable(spec.hyperparameters), sort_keys=True),
        "best_reward": float(best), "n_evaluations": result.n_evaluations,
        "n_failed": int(result.failed.sum()), "wall_time_s": result.wall_time_s,
        "best_design": json.dumps(_jsonable(result.best_design) if result.n_evaluations else None),
        "tune_trial_id": tune_trial_id, "host": socket.gethostname(),
        "finished_at": pd.Timestamp.now(tz="UTC").isoformat(), "stopped_early": stopped_early,
        **made,
    }
    for k, v in spec.hyperparameters.items():
        row[f"hp.{k}"] = json.dumps(_jsonable(v)) if isinstance(v, (list, dict)) else v
    return row


def _frame(spec: TrialSpec, result: Any) -> Any:
    """The trajectory of ``spec``'s search ``result``: one row per evaluation."""
    traj = result.to_frame()
    traj.insert(0, "trial_key", spec.key)
    traj["budget"], traj["budget_s"] = spec.budget, spec.budget_s
    return traj


def _search_reporting(spec: TrialSpec, problem: Any, budget: Mapping[str, Any],
                      report: Callable[[Any], None], every: int) -> Any:
    """:func:`mlsysgym.agents.base.search` (same agent call, same random stream) whose problem
    calls ``report(SearchResult so far)`` each time another ``every`` evaluations are done."""
    import time

    import numpy as np
    from mlsysgym.agents.base import BudgetedProblem, BudgetExhausted, agent_function, problem_kind

    class Reporting(BudgetedProblem):
        next_at = every

        def evaluate(self, designs: Any) -> Any:
            rewards = super().evaluate(designs)
            n = len(self.designs)
            if n >= self.next_at and not self.exhausted:  # the final result follows anyway
                self.next_at = (n // every + 1) * every
                report(self.result(spec.agent, spec.seed, time.perf_counter() - start,
                                   spec.hyperparameters))
            return rewards

    fn = agent_function(spec.agent, problem_kind(problem))
    if fn is None:
        raise SweepError(f"agent {spec.agent!r} cannot search {_problem_name(spec.problem)!r}")
    budgeted = Reporting(problem, budget)
    rng = np.random.default_rng(spec.seed)
    start = time.perf_counter()
    try:
        fn(budgeted, rng, **spec.hyperparameters)
    except BudgetExhausted:
        pass
    return budgeted.result(spec.agent, spec.seed, time.perf_counter() - start,
                           spec.hyperparameters)


def trial_result(spec: TrialSpec | Mapping[str, Any], sweep: str = "sweep",
                 tune_trial_id: str = "",
                 report: Callable[[dict[str, Any], Any], None] | None = None,
                 report_every: int = 0) -> tuple[dict[str, Any], Any]:
    """Run one search; return its ledger row and its trajectory (a DataFrame), written nowhere
    (a Ray trial returns them to the driver, which writes them with :func:`write_trial`).

    With ``report`` and ``report_every`` > 0, ``report(row, trajectory)`` is called with the
    search so far each time another ``report_every`` evaluations are done (the intermediate
    results a Tune scheduler such as ASHA stops trials on); the search is the same.
    """
    from mlsysgym.agents.base import search
    from mlsysgym.agents.problems import make_problem

    if isinstance(spec, Mapping):
        spec = TrialSpec(**spec)
    problem = make_problem(spec.problem)
    made = _provenance_columns(problem)
    budget = {k: v for k, v in {"evaluations": spec.budget, "seconds": spec.budget_s}.items()
              if v is not None}
    try:
        if report is not None and report_every > 0:
            def so_far(result: Any) -> None:
                report(_row(spec, result, made, sweep, tune_trial_id, stopped_early=True),
                       _frame(spec, result))

            result = _search_reporting(spec, problem, budget, so_far, report_every)
        else:
            result = search(spec.agent, problem, budget, spec.seed, **spec.hyperparameters)
    finally:
        _close(problem)
    return _row(spec, result, made, sweep, tune_trial_id), _frame(spec, result)


def write_trial(output_dir: str | os.PathLike[str], row: Mapping[str, Any], traj: Any) -> None:
    """Write one finished trial under ``output_dir``: its trajectory, then its ledger row (the
    row last, so that a row always has its trajectory), each atomically and keyed by the
    trial's hash (writing the same trial again replaces it: never a duplicate)."""
    out = Path(output_dir)
    key = row["trial_key"]
    write_part(out / "trajectories" / f"part-{key}.parquet", traj)
    write_part(out / "trials" / f"part-{key}.parquet", [dict(row)])  # the ledger


def run_trial(spec: TrialSpec | Mapping[str, Any], output_dir: str | os.PathLike[str],
              sweep: str = "sweep", tune_trial_id: str = "") -> dict[str, Any]:
    """Run one search and write its row and trajectory under ``output_dir``; return the row."""
    row, traj = trial_result(spec, sweep, tune_trial_id)
    write_trial(output_dir, row, traj)
    return row


def _read_dir(path: Path) -> Any:
    """The rows of a sweep's part files (none yet: an empty frame)."""
    import pandas as pd

    if not path.is_dir():
        return pd.DataFrame()
    try:
        return read_dataset(path)
    except DatasetError as e:
        raise SweepError(f"{path}: {e}; delete that part and rerun the sweep with --resume"
                         ) from None


def load_results(output_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    """(trials, trajectories) DataFrames of every finished trial under ``output_dir``."""
    out = Path(output_dir)
    return _read_dir(out / "trials"), _read_dir(out / "trajectories")


def completed(output_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{trial_key: row}`` of the finished trials (the ledger)."""
    trials, _ = load_results(output_dir)
    if trials.empty:
        return {}
    return {r["trial_key"]: r for r in trials.to_dict("records")}


def _without_parallel(spec: Any) -> Any:
    """A problem spec without its Ray ``parallel`` setting (to read its evaluator cheaply)."""
    if not isinstance(spec, Mapping):
        return spec
    out = {k: v for k, v in spec.items() if k != "parallel"}
    if isinstance(out.get("kwargs"), Mapping):
        out["kwargs"] = {k: v for k, v in out["kwargs"].items() if k != "parallel"}
    return out


def _current_evaluators(config: SweepConfig) -> dict[str, str]:
    """``{problem_spec JSON: evaluator id}`` this sweep's trials would record."""
    from mlsysgym.agents.problems import make_problem

    out: dict[str, str] = {}
    for spec in config.problems:
        problem = make_problem(_without_parallel(spec))
        try:
            out[json.dumps(_jsonable(spec), sort_keys=True)] = _evaluator_of(problem)[0]
        finally:
            _close(problem)
    return out


def _recorded(row: Mapping[str, Any], column: str) -> str:
    v = row.get(column)
    return UNRECORDED if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" \
        else str(v)


def check_ledger(config: SweepConfig, done: Mapping[str, Mapping[str, Any]],
                 allow_mixed: bool = False, target_id: str | None = None,
                 evaluators: Mapping[str, str] | None = None) -> None:
    """Raise :class:`LedgerMismatchError` unless every ledger row in ``done`` was made on this
    target (``target_id``, default: this machine's) by the evaluator this run would use for its
    problem (``evaluators``: ``{problem_spec JSON: evaluator id}``, default: made from
    ``config``'s problems). ``allow_mixed`` skips the check."""
    if allow_mixed or not done:
        return
    if target_id is None:
        from mlsysgym.core.target import fingerprint

        target_id = str(fingerprint()["target_id"])
    hint = "pass --allow-mixed (allow_mixed=True) to mix them, or choose another output_dir"
    where = config.output_dir
    seen = sorted({_recorded(r, "target_id") for r in done.values()})
    if seen != [target_id]:
        raise LedgerMismatchError(
            f"cannot resume {where}: its ledger rows were made on target_id "
            f"{', '.join(seen)} but this machine is target_id {target_id}; {hint}")
    current = dict(_current_evaluators(config) if evaluators is None else evaluators)
    by_problem: dict[str, set[str]] = {}
    for r in done.values():
        by_problem.setdefault(str(r.get("problem_spec")), set()).add(_recorded(r, "evaluator_id"))
    for spec, ids in sorted(by_problem.items()):
        now = current.get(spec)
        if now is None:
            continue  # a problem this config no longer runs: nothing new is mixed in
        if ids != {now}:
            try:
                name = _problem_name(json.loads(spec))
            except ValueError:
                name = spec
            raise LedgerMismatchError(
                f"cannot resume {where}: its ledger rows of problem {name!r} were made by "
                f"evaluator {', '.join(sorted(ids))} but this run uses {now}; {hint}")
