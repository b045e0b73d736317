"""``mlsysgym report``: the ArchGym-style agent study from one or more sweep directories.

For every problem it writes, under the output folder:

- a Markdown summary: per agent and budget, the best reward of its best and worst
  hyperparameter configuration (each averaged over seeds) and their spread — the
  "hyperparameter lottery" — plus the median over seeds of the best configuration;
- ``<problem>_efficiency.png``: sample-efficiency curves (best reward so far against
  evaluations; median over seeds of each agent's best configuration, interquartile band);
- ``<problem>_lottery.png``: per agent, the spread of the best reward across its
  hyperparameter configurations at the largest budget.

The default output folder is ``./results/agent_study`` (``--out``); the repository's published
study lives in ``experiments/results/agent_study/`` and is written with
``--out experiments/results/agent_study``.

It also holds the one place results files state where they were made: :func:`machine_line`
(the Markdown header line every results Markdown file starts with; :func:`stamp_markdown`
puts it under the title) and
:func:`write_provenance` (the full fingerprint as JSON, beside CSV/PNG outputs), both from
:func:`mlsysgym.core.target.fingerprint`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.experiments.sweep import load_results


class ReportError(MlsysgymError):
    """Nothing to report (no finished trials), an unreadable sweep directory, or a malformed
    fingerprint."""


def machine_line(fp: Mapping[str, Any] | None = None) -> str:
    """One Markdown line saying where a result was made: CPU model, ISA level, cores,
    ``target_id``, mlsysgym version, commit and lock hash of ``fp`` (default: this machine's
    :func:`~mlsysgym.core.target.fingerprint`)."""
    if fp is None:
        from mlsysgym.core.target import fingerprint

        fp = fingerprint()
    try:
        m, soft = fp["machine"], fp["software"]
        return (f"Machine: {m['model_name']}, {m['isa_level']}, {m['cores']} cores, target_id "
                f"`{fp['target_id']}`; mlsysgym {soft['mlsysgym']} at commit "
                f"`{soft.get('commit') or 'unknown'}`, lock `{soft.get('lock') or 'none'}`.")
    except (KeyError, TypeError) as e:
        raise ReportError(f"not a target fingerprint (missing {e}); pass "
                          f"mlsysgym.core.target.fingerprint()") from None


def stamp_markdown(text: str, fp: Mapping[str, Any] | None = None) -> str:
    """``text`` (a Markdown results file) with :func:`machine_line` as its header line: after
    the first line when that is a ``#`` title, else first. A text already stamped is re-stamped
    (its old machine line replaced), so rewriting a results file never stacks two lines."""
    stamp = machine_line(fp)
    lines = text.split("\n")
    lines = [ln for i, ln in enumerate(lines) if not (i <= 2 and ln.startswith("Machine: ")
                                                      and "target_id `" in ln)]
    if lines and lines[0].startswith("#"):
        rest = lines[1:]
        while rest and rest[0] == "":
            rest = rest[1:]
        return "\n".join([lines[0], "", stamp, "", *rest])
    return "\n".join([stamp, "", *lines])


def stamp_recorded(text: str, record: Mapping[str, Any]) -> str:
    """``text`` re-rendered from a saved results record (a JSON dict holding ``provenance`` as
    :func:`~mlsysgym.core.target.provenance` wrote it), stamped with the machine *that record*
    was made on; unchanged when the record holds none (written before fingerprints) — never
    stamped with this machine."""
    fp = (record.get("provenance") or {}).get("fingerprint")
    return stamp_markdown(text, fp) if fp else text


def write_provenance(path: str | os.PathLike[str], **extra: Any) -> Path:
    """Write :func:`~mlsysgym.core.target.provenance` (the full fingerprint plus ``extra``:
    evaluator ids, seed, command ...) as JSON to ``path``; return the path."""
    from mlsysgym.core.target import provenance

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(provenance(**extra), indent=1, sort_keys=True, default=str) + "\n")
    return p


def load_sweeps(dirs: Sequence[str | os.PathLike[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials and trajectories of every finished trial in ``dirs``."""
    trials, trajs = [], []
    for d in dirs:
        if not Path(d).is_dir():
            raise ReportError(f"no sweep directory {d}")
        t, j = load_results(d)
        trials.append(t)
        trajs.append(j)
    trials_df = pd.concat(trials, ignore_index=True) if trials else pd.DataFrame()
    if trials_df.empty:
        raise ReportError(f"no finished trials in {', '.join(map(str, dirs))}; run `mlsysgym sweep` first")
    return trials_df, pd.concat(trajs, ignore_index=True)


def lottery_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (problem, agent, budget): best/worst configuration (mean over seeds) and spread."""
    per_config = (trials.groupby(["problem", "agent", "budget", "hyperparameters"])["best_reward"]
                  .agg(["mean", "count"]).reset_index())
    rows = []
    for (problem, agent, budget), g in per_config.groupby(["problem", "agent", "budget"]):
        best_cfg = g.loc[g["mean"].idxmax(), "hyperparameters"]
        best_runs = trials[(trials.problem == problem) & (trials.agent == agent)
                           & (trials.budget == budget) & (trials.hyperparameters == best_cfg)]
        rows.append({
            "problem": problem, "agent": agent, "budget": int(budget), "configs": len(g),
            "seeds": int(g["count"].max()), "best_config_mean": g["mean"].max(),
            "best_config_median": best_runs["best_reward"].median(),
            "worst_config_mean": g["mean"].min(), "spread": g["mean"].max() - g["mean"].min(),
            "best_config": best_cfg,
        })
    return pd.DataFrame(rows).sort_values(["problem", "budget", "best_config_mean"],
                                          ascending=[True, True, False])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _efficiency_plot(trials: pd.DataFrame, trajs: pd.DataFrame, table: pd.DataFrame,
                     problem: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for agent, g in table[table.problem == problem].groupby("agent"):
        top = g.sort_values("budget").iloc[-1]  # the largest budget's best configuration
        keys = trials[(trials.problem == problem) & (trials.agent == agent)
                      & (trials.budget == top.budget)
                      & (trials.hyperparameters == top.best_config)]["trial_key"]
        curves = [trajs[trajs.trial_key == k].sort_values("step")["best_so_far"].to_numpy()
                  for k in keys]
        curves = [c for c in curves if len(c)]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        stack = np.stack([c[:n] for c in curves])
        x = np.arange(1, n + 1)
        line = ax.plot(x, np.median(stack, axis=0), label=agent)[0]
        ax.fill_between(x, np.percentile(stack, 25, axis=0), np.percentile(stack, 75, axis=0),
                        color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best reward so far (median over seeds)")
    ax.set_title(f"sample efficiency: {problem}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _lottery_plot(trials: pd.DataFrame, problem: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = trials[trials.problem == problem]
    budget = sub["budget"].max()
    sub = sub[sub.budget == budget]
    agents = sorted(sub["agent"].unique())
    data = [sub[sub.agent == a].groupby("hyperparameters")["best_reward"].mean().to_numpy()
            for a in agents]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(agents) + 1), agents, rotation=30)
    ax.set_ylabel("best reward (mean over seeds), one point per configuration")
    ax.set_title(f"hyperparameter lottery at {budget} evaluations: {problem}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def trial_machines(trials: pd.DataFrame) -> list[str]:
    """The machine lines of the distinct targets a sweep's trials ran on (from their ledger
    ``fingerprint``); one "not recorded" line for rows written before fingerprints."""
    lines: list[str] = []
    col = trials["fingerprint"] if "fingerprint" in trials else pd.Series([None] * len(trials))
    for raw in col.drop_duplicates():
        if isinstance(raw, str) and raw:
            lines.append(machine_line(json.loads(raw)))
        else:
            lines.append("Machine: not recorded (trials written before fingerprints).")
    return sorted(set(lines))


def write_report(sweep_dirs: Sequence[str | os.PathLike[str]],
                 out_dir: str | os.PathLike[str] = "results/agent_study") -> Path:
    """Write the Markdown summary and PNG plots; return the Markdown file's path. The summary
    states the machines the trials ran on (their ledger fingerprints)."""
    trials, trajs = load_sweeps(sweep_dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = lottery_table(trials)
    lines = ["# Agent study", "",
             (f"Sweeps: {', '.join(f'`{d}`' for d in sweep_dirs)}; {len(trials)} search runs, "
             f"{int(trials['n_evaluations'].sum()):,} evaluations."), "",
             *[f"Trials ran on — {line}" for line in trial_machines(trials)], "",
             ("Per agent and budget: the best reward of the best and the worst hyperparameter "
             "configuration (mean over seeds), their spread (the hyperparameter lottery), and the "
             "median over seeds of the best configuration."), ""]
    for problem in sorted(table["problem"].unique()):
        slug = _slug(problem)
        _efficiency_plot(trials, trajs, table, problem, out / f"{slug}_efficiency.png")
        _lottery_plot(trials, problem, out / f"{slug}_lottery.png")
        lines += [f"## {problem}", "",
                  ("| budget | agent | configs | seeds | best config (mean) | best config (median) "
                  "| worst config (mean) | spread |"), "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in table[table.problem == problem].itertuples():
            lines.append(f"| {r.budget} | {r.agent} | {r.configs} | {r.seeds} | "
                         f"{r.best_config_mean:.4g} | {r.best_config_median:.4g} | "
                         f"{r.worst_config_mean:.4g} | {r.spread:.3g} |")
        lines += ["", f"![sample efficiency]({slug}_efficiency.png)",
                  f"![hyperparameter lottery]({slug}_lottery.png)", ""]
    path = out / "agent_study.md"
    path.write_text("\n".join(lines))
    table.to_csv(out / "agent_study.csv", index=False)
    return path
