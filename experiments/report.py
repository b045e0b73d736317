"""``mlsysgym report``: the ArchGym-style agent study, or the sequential-problem report, from
one or more sweep directories.

For every problem it writes, under the output folder:

- a Markdown summary: per agent and budget, the best reward of its best and worst
  hyperparameter configuration (each averaged over seeds) and their spread — the
  "hyperparameter lottery" — plus the median over seeds of the best configuration;
- ``<problem>_efficiency.png``: sample-efficiency curves (best reward so far against
  evaluations; median over seeds of each agent's best configuration, interquartile band);
- ``<problem>_lottery.png``: per agent, the spread of the best reward across its
  hyperparameter configurations at the largest budget.

For sweeps over sequential problems (designs are episodes: mallocGame, scheduling, ...)
:func:`write_problem_report` writes instead, per instance × arm (an agent with the
hyperparameters that vary in the sweep): the best value of a metric (direction configurable),
% better than a named baseline agent, the gap to a named exact agent's result and its proof
status, wall time, evaluations, and the seconds / evaluations to close a fraction of the
baseline→exact gap; a summary per arm; a bar chart (:class:`ProblemReportSpec` says what).

The default output folder is ``./results/agent_study`` (``--out``); the repository's published
study lives in ``experiments/results/agent_study/`` and is written with
``--out experiments/results/agent_study``.

It also holds the one place results files state where they were made: :func:`machine_line`
(the Markdown header line every results Markdown file starts with; :func:`stamp_markdown`
puts it under the title) and
:func:`write_provenance` (the full fingerprint as JSON, beside CSV/PNG outputs), both from
:func:`mlsysgym.core.target.fingerprint`; :func:`write_results` writes a benchmark's Markdown,
JSON, PNG and provenance side by side, and :func:`family_bars` draws a bar per arm and family.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def write_results(md_path: str | os.PathLike[str], data: Mapping[str, Any], markdown: str,
                  plot: Callable[[Path], None] | None = None, **extra: Any) -> Path:
    """One benchmark's outputs side by side: ``markdown`` stamped with this machine
    (:func:`stamp_markdown`) at ``md_path``, ``data`` at its ``.json``, ``plot(path)`` at its
    ``.png`` and :func:`write_provenance` (with ``extra``) at its ``.provenance.json``;
    returns ``md_path``."""
    md = Path(md_path)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    md.write_text(stamp_markdown(markdown))
    if plot is not None:
        plot(md.with_suffix(".png"))
    write_provenance(md.with_suffix(".provenance.json"), **extra)
    return md


def family_bars(values: Mapping[str, Mapping[str, float]], path: str | os.PathLike[str], *,
                ylabel: str, title: str) -> None:
    """A grouped bar chart at ``path`` (PNG): per family on the x axis one bar per arm, of
    ``values[arm][family]`` (every arm names the same families)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(next(iter(values.values())))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(values)
    for i, (arm, v) in enumerate(values.items()):
        ax.bar(np.arange(len(fams)) + i * width, [v[f] for f in fams], width, label=arm)
    ax.set_xticks(np.arange(len(fams)) + 0.4 - width / 2, fams)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
             *_stopped_lines(trials),
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
    return path


def _stopped_lines(trials: pd.DataFrame) -> list[str]:
    """A note on the runs a scheduler (ASHA) stopped early, if any: their rows hold the best
    reward when they were stopped."""
    if "stopped_early" not in trials or not trials["stopped_early"].fillna(False).any():
        return []
    stopped = trials[trials["stopped_early"].fillna(False).astype(bool)]
    arms = ", ".join(f"{a} × {n}" for a, n in stopped.groupby("agent").size().items())
    return [(f"Stopped early by the sweep's scheduler: {len(stopped)} of {len(trials)} runs "
            f"({arms}); their rows hold the best reward reached when they were stopped."), ""]


# ---- sweeps over sequential problems: per instance × agent against a baseline and an exact agent
@dataclass(frozen=True)
class ProblemReportSpec:
    """What a sequential-problem report compares: ``metric`` (a metric column of the
    trajectories, e.g. a time; ``"reward"`` always exists) and whether lower is better; the
    ``baseline`` agent (e.g. a heuristic) that "% better" is relative to; the ``exact`` agent
    (e.g. CP-SAT) whose result the gap is to and whose proof ``status`` is shown; ``reach``,
    the fraction of the baseline→exact gap whose closing time and evaluations are reported;
    ``compare``: the arms of the head-to-head count (default: every arm but the exact one)."""

    metric: str = "reward"
    minimize: bool = False
    baseline: str | None = None
    exact: str | None = None
    reach: float = 0.9
    within_pct: float = 2.0
    compare: tuple[str, ...] = ()
    title: str = "Sequential problems: agents against a baseline and an exact solver"

    def __post_init__(self) -> None:
        if not 0 < self.reach <= 1:
            raise ReportError(f"reach must be in (0, 1], got {self.reach}")


def is_sequential(trajs: pd.DataFrame) -> bool:
    """Whether a sweep's designs are episodes (``{"actions": [...]}``) of sequential problems."""
    return "actions" in trajs.columns


def _arm_labels(trials: pd.DataFrame) -> pd.Series:
    """Per trial: its agent, plus the hyperparameters that vary among that agent's trials
    (``mcts (network=none)``), so two configurations of one agent are two arms."""
    hps = trials["hyperparameters"].map(json.loads)
    labels = trials["agent"].astype(str).copy()
    for agent, idx in trials.groupby("agent").groups.items():
        dicts = [hps[i] for i in idx]
        keys = sorted({k for d in dicts for k in d})
        varying = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in dicts}) > 1]
        for i, d in zip(idx, dicts):
            if varying:
                labels[i] = f"{agent} ({', '.join(f'{k}={d.get(k)}' for k in varying)})"
    return labels


def _running_best(values: np.ndarray, minimize: bool) -> np.ndarray:
    return np.minimum.accumulate(values) if minimize else np.maximum.accumulate(values)


def _trial_curves(trials: pd.DataFrame, trajs: pd.DataFrame, metric: str, minimize: bool
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per trial key: (best-so-far metric, seconds) at each evaluation (failed ones skipped)."""
    if metric not in trajs.columns:
        raise ReportError(f"no metric {metric!r} in the trajectories; they have "
                          f"{', '.join(sorted(c for c in trajs.columns if c not in ('actions',)))}")
    worst = np.inf if minimize else -np.inf
    out = {}
    for key, g in trajs.groupby("trial_key"):
        g = g.sort_values("step")
        vals = g[metric].to_numpy(dtype=float)
        ok = ~g["failed"].to_numpy(dtype=bool) & np.isfinite(vals)
        vals = np.where(ok, vals, worst)
        out[key] = (_running_best(vals, minimize), g["time_s"].to_numpy(dtype=float))
    return out


def _reach(curve: tuple[np.ndarray, np.ndarray], target: float, minimize: bool
           ) -> tuple[float, float]:
    """(seconds, evaluations) at which a best-so-far curve first got to ``target`` (nan: never)."""
    best, times = curve
    hit = np.flatnonzero(best <= target + 1e-9 if minimize else best >= target - 1e-9)
    return (float(times[hit[0]]), float(hit[0] + 1)) if hit.size else (np.nan, np.nan)


def problem_table(trials: pd.DataFrame, trajs: pd.DataFrame,
                  spec: ProblemReportSpec) -> pd.DataFrame:
    """One row per (instance, arm): the best metric (mean over seeds), % better than the
    baseline, % gap to the exact agent and its status, wall seconds, evaluations, and the
    seconds / evaluations to close ``spec.reach`` of the baseline→exact gap (median over the
    seeds that closed it; ``reached`` counts them)."""
    trials = trials.assign(arm=_arm_labels(trials))
    curves = _trial_curves(trials, trajs, spec.metric, spec.minimize)
    names = trajs.groupby("trial_key")["problem"].first()
    trials = trials.assign(instance=trials["trial_key"].map(names).fillna(trials["problem"]),
                           best=[curves[k][0][-1] if k in curves and len(curves[k][0]) else np.nan
                                 for k in trials["trial_key"]])
    sign = 1.0 if spec.minimize else -1.0   # sign * (x - y) > 0: x is worse than y
    rows = []
    for spec_json, inst in trials.groupby("problem_spec", sort=True):
        per_arm = inst.groupby("arm", sort=False)
        mean_best = per_arm["best"].mean()
        agent_of = per_arm["agent"].first()
        base = _agent_value(mean_best, agent_of, spec.baseline)
        exact = _agent_value(mean_best, agent_of, spec.exact)
        status = "—"
        if spec.exact is not None and "status" in inst.columns:
            st = inst.loc[inst.agent == spec.exact, "status"].dropna()
            status = str(st.iloc[0]) if len(st) else "—"
        target = np.nan
        if np.isfinite(base) and np.isfinite(exact):
            target = base - sign * spec.reach * max(sign * (base - exact), 0.0)
        order = sorted(per_arm.groups, key=lambda a: (agent_of[a] == spec.exact,
                                                      agent_of[a] != spec.baseline, a))
        for arm in order:
            g = per_arm.get_group(arm)
            reach = [_reach(curves[k], target, spec.minimize) for k in g["trial_key"] if k in curves]
            hit = [r for r in reach if np.isfinite(r[0])] if np.isfinite(target) else []
            rows.append({
                "instance": str(g["instance"].iloc[0]), "problem_spec": spec_json, "arm": arm,
                "agent": str(g["agent"].iloc[0]), "seeds": len(g), "best": mean_best[arm],
                "baseline": base, "exact": exact, "exact_status": status,
                "vs_baseline_pct": _pct(base - mean_best[arm], base, sign),
                "gap_pct": _pct(mean_best[arm] - exact, exact, sign),
                "wall_s": float(g["wall_time_s"].mean()),
                "evaluations": float(g["n_evaluations"].mean()),
                "reached": len(hit), "reach_s": float(np.median([h[0] for h in hit])) if hit else np.nan,
                "reach_evals": float(np.median([h[1] for h in hit])) if hit else np.nan,
            })
    return pd.DataFrame(rows)


def _pct(diff: float, ref: float, sign: float) -> float:
    """``sign`` · 100 · diff / |ref| (nan without a reference; float noise below 1e-9 is 0)."""
    if not np.isfinite(ref) or ref == 0:
        return np.nan
    return 0.0 if abs(diff) <= 1e-9 * abs(ref) else sign * 100.0 * diff / abs(ref)


def _agent_value(mean_best: pd.Series, agent_of: pd.Series, agent: str | None) -> float:
    """The named agent's result on one instance (its first arm's, if it has several)."""
    if agent is None:
        return np.nan
    vals = mean_best[agent_of[agent_of == agent].index]
    return float(vals.iloc[0]) if len(vals) else np.nan


def problem_summary(table: pd.DataFrame, spec: ProblemReportSpec) -> pd.DataFrame:
    """Per arm: instances better than the baseline and the mean %; instances within
    ``spec.within_pct`` of a proved-optimal exact result and the largest gap there; how often it
    is the best of the compared arms (ties count) and strictly best; how often it closed the
    reach fraction, with the median seconds and evaluations where it did."""
    compare = list(spec.compare) or [a for a in table["arm"].unique()
                                     if table.loc[table.arm == a, "agent"].iloc[0] != spec.exact]
    sign = 1.0 if spec.minimize else -1.0
    head = table[table.arm.isin(compare)]
    rows = []
    for arm, g in table.groupby("arm", sort=False):
        proved = g[g.exact_status == "optimal"]
        best = strict = 0
        for inst, h in head.groupby("instance"):
            if arm not in set(h.arm):
                continue
            mine = sign * h.loc[h.arm == arm, "best"].iloc[0]
            others = sign * h.loc[h.arm != arm, "best"]
            best += bool((mine <= others.min() + 1e-9) if len(others) else True)
            strict += bool((mine < others.min() - 1e-9) if len(others) else False)
        reached = g[g.reached > 0]
        rows.append({
            "arm": arm, "instances": len(g), "improved": int((g.vs_baseline_pct > 1e-6).sum()),
            "mean_vs_baseline_pct": g.vs_baseline_pct.mean(),
            "proved": len(proved), "within": int((proved.gap_pct <= spec.within_pct + 1e-9).sum()),
            "max_gap_pct": proved.gap_pct.max() if len(proved) else np.nan,
            "compared": arm in compare, "best_of": best, "strictly_best": strict,
            "reached": len(reached), "median_reach_s": reached.reach_s.median(),
            "median_reach_evals": reached.reach_evals.median(),
        })
    return pd.DataFrame(rows)


def _budget_text(row: Mapping[str, Any]) -> str:
    """A ledger row's budget: "200 evaluations", "30 s" or both."""
    def given(v: Any) -> bool:
        return v is not None and not (isinstance(v, float) and np.isnan(v))

    n, s = row.get("budget"), row.get("budget_s")
    parts = ([f"{int(n)} evaluations"] if given(n) else []) + ([f"{s:g} s"] if given(s) else [])
    return " / ".join(parts) or "—"


def _fmt(x: float, fmt: str, none: str = "—") -> str:
    return none if x is None or not np.isfinite(x) else format(x, fmt)


def _problem_plot(table: pd.DataFrame, spec: ProblemReportSpec, path: Path) -> None:
    """Grouped bars: % better than the baseline per instance and arm; the baseline and the arms
    worse than it on every instance (e.g. a do-nothing reference) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a, g in table.groupby("arm", sort=False)
            if g["agent"].iloc[0] != spec.baseline and not (g["vs_baseline_pct"] < 0).all()]
    instances = list(table["instance"].unique())
    x = np.arange(len(instances))
    w = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(instances) + 2), 4.5))
    for k, arm in enumerate(arms):
        sub = table[table.arm == arm].set_index("instance")["vs_baseline_pct"]
        ax.bar(x + (k - (len(arms) - 1) / 2) * w, [sub.get(i, np.nan) for i in instances], w,
               label=arm)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [i.replace(":", "\n") for i in instances], fontsize=7)
    ax.set_ylabel(f"{spec.metric}: % better than {spec.baseline or 'baseline'}")
    ax.set_title(spec.title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def problem_markdown(trials: pd.DataFrame, table: pd.DataFrame, summary: pd.DataFrame,
                     spec: ProblemReportSpec, sweeps: Sequence[str], png: str | None) -> str:
    """The report's Markdown: sources and machines, the per-instance table, the summary."""
    better = "lower" if spec.minimize else "higher"
    pct = f"{spec.reach:.0%}"
    budgets = sorted({_budget_text(r) for r in trials.to_dict("records")})
    lines = [
        f"# {spec.title}", "",
        (f"Sweeps: {', '.join(f'`{d}`' for d in sweeps)}; {len(trials)} search runs, "
         f"{int(trials['n_evaluations'].sum()):,} evaluations; budget per run: "
         f"{', '.join(budgets)}; seeds per arm: {int(table['seeds'].max())}."), "",
        *[f"Trials ran on — {line}" for line in trial_machines(trials)], "",
        (f"`{spec.metric}` ({better} is better): the best over each run's evaluations, mean over "
         f"seeds. `vs {spec.baseline}` = % better than the baseline agent `{spec.baseline}`; "
         f"`gap` = % worse than the exact agent `{spec.exact}` (negative: better than its result; "
         "its `status`: optimal = proved, feasible = best found within the budget). `reach` = "
         f"seconds / evaluations until the run's best first closed {pct} of the gap between "
         f"`{spec.baseline}` and `{spec.exact}` (median over the seeds that did; `never` = "
         "none did). An arm is an agent with the hyperparameters that vary in the sweep."), "",
        (f"| instance | arm | {spec.metric} | vs {spec.baseline} | gap | {spec.exact or 'exact'} status "
         "| wall s | evaluations | reach |"),
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in table.itertuples():
        reach = (f"{r.reach_s:.1f} s / {r.reach_evals:.0f}" if r.reached
                 else ("never" if np.isfinite(r.baseline) and np.isfinite(r.exact) else "—"))
        lines.append(f"| {r.instance} | {r.arm} | {r.best:.6g} | {_fmt(r.vs_baseline_pct, '+.2f')}% "
                     f"| {_fmt(r.gap_pct, '+.2f')}% | {r.exact_status} | {r.wall_s:.1f} "
                     f"| {r.evaluations:.0f} | {reach} |")
    lines += ["", "Summary:", ""]
    for r in summary.itertuples():
        agent = table.loc[table.arm == r.arm, "agent"].iloc[0]
        if agent in (spec.baseline, spec.exact):
            continue
        text = (f"- {r.arm}: better than {spec.baseline} on {r.improved}/{r.instances} instances "
                f"(mean {_fmt(r.mean_vs_baseline_pct, '+.2f')}%)")
        if r.proved:
            text += (f"; within {spec.within_pct:g}% of the proved optimum on {r.within}/{r.proved} "
                     f"(max gap {_fmt(r.max_gap_pct, '+.2f')}%)")
        if spec.exact is not None:
            text += (f"; closed {pct} of the "
                     f"{spec.baseline}→{spec.exact} gap on {r.reached}/{r.instances} (median "
                     f"{_fmt(r.median_reach_s, '.1f')} s, {_fmt(r.median_reach_evals, '.0f')} "
                     "evaluations where reached)")
        if r.compared:
            text += (f"; best of the compared arms on {r.best_of}/{r.instances} (ties count), "
                     f"strictly on {r.strictly_best}")
        lines.append(text + ".")
    arms = trials.assign(arm=_arm_labels(trials)).groupby("arm")["hyperparameters"].first()
    lines += ["", "Hyperparameters of each arm:", "",
              *[f"- {arm}: `{hp}`" for arm, hp in arms.items()]]
    if png:
        lines += ["", f"![{spec.metric} vs {spec.baseline}]({png})", "",
                  (f"(The figure leaves out `{spec.baseline}` and the arms worse than it on every "
                   "instance.)")]
    return "\n".join(lines) + "\n"


def write_problem_report(sweep_dirs: Sequence[str | os.PathLike[str]],
                         out_dir: str | os.PathLike[str], spec: ProblemReportSpec,
                         name: str | None = None) -> Path:
    """Write ``<name>.md`` (stamped with this machine under the title; the trials' machines
    listed) and ``<name>.png`` for sweeps over sequential problems;
    return the Markdown path. ``name`` defaults to the sweep's name."""
    trials, trajs = load_sweeps(sweep_dirs)
    if not is_sequential(trajs):
        raise ReportError("these sweeps are not over sequential problems (no 'actions' designs)")
    for role, agent in (("baseline", spec.baseline), ("exact", spec.exact)):
        if agent is not None and agent not in set(trials["agent"]):
            raise ReportError(f"the {role} agent {agent!r} has no trials; agents: "
                              f"{', '.join(sorted(set(trials['agent'])))}")
    name = name or _slug(str(trials["sweep"].iloc[0]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = problem_table(trials, trajs, spec)
    summary = problem_summary(table, spec)
    _problem_plot(table, spec, out / f"{name}.png")
    text = problem_markdown(trials, table, summary, spec, [str(d) for d in sweep_dirs],
                            f"{name}.png")
    path = out / f"{name}.md"
    path.write_text(stamp_markdown(text))
    return path
