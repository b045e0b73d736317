"""What a sweep did (:class:`SweepSummary`) and the per-agent table of its results."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsysgym.experiments.sweep.storage import completed, load_results


@dataclass
class SweepSummary:
    """What a ``run_sweep`` call did."""

    output_dir: Path
    total: int            # trials the config asks for
    skipped: int          # already finished before this call (resume)
    ran: int              # finished in this call
    errors: list[str]     # one line per trial that raised
    remaining: int        # trials still to run (after max_trials or errors)

    @property
    def complete(self) -> bool:
        return self.remaining == 0 and not self.errors


def summary_table(output_dir: str | os.PathLike[str]) -> Any:
    """Per (problem, agent, budget): trials, how many a scheduler stopped early, mean/std/max
    of the best reward, mean evaluations and wall time."""
    trials, _ = load_results(output_dir)
    if trials.empty:
        return trials
    stopped = trials.get("stopped_early", False)
    trials = trials.assign(stopped=stopped).fillna({"stopped": False})
    trials["stopped"] = trials["stopped"].astype(bool)
    g = trials.groupby(["problem", "agent", "budget"], dropna=False)
    return g.agg(trials=("trial_key", "count"), stopped=("stopped", "sum"),
                 best_mean=("best_reward", "mean"), best_std=("best_reward", "std"),
                 best_max=("best_reward", "max"), evals=("n_evaluations", "mean"),
                 wall_s=("wall_time_s", "mean")).reset_index()


def print_summary(summary: SweepSummary) -> None:
    """The per-agent results table and what this run did."""
    from mlsysgym.experiments.console import make_console
    from rich.table import Table

    con = make_console()
    frame = summary_table(summary.output_dir)
    if not frame.empty:
        table = Table(title=f"{len(completed(summary.output_dir))} finished trials")
        for c in frame.columns:
            table.add_column(str(c), justify="left" if frame[c].dtype == object else "right")
        for row in frame.itertuples(index=False):
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        con.print(table)
    con.print(f"ran {summary.ran}, already done {summary.skipped}, remaining "
              f"{summary.remaining} of {summary.total} trials; results in {summary.output_dir}")
    for line in summary.errors:
        con.print(f"[red]trial failed:[/] {line}")
