"""Multi-objective results: hypervolume-vs-evaluations curves with seeds, Pareto-front pictures,
and ``mlsysgym report`` on a sweep whose problems list objectives.

Pictures (matplotlib, Agg):

- :func:`hv_curves_figure`: per agent, the mean normalized hypervolume after every evaluation
  over seeds with its 95 % t-interval (:func:`mean_interval`) as a band;
- :func:`fronts_figure`: each agent's front as 2-D projections, one panel per objective pair,
  the reference point dashed;
- :func:`parallel_figure`: with 3 or more objectives, the fronts as parallel coordinates (each
  objective scaled by its reference value, so the reference is 1 on every axis).

:func:`write_pareto_report` reads sweep directories (the per-evaluation trajectories hold every
objective and ``pareto_feasible``), recomputes each run's hypervolume curve against the
problem's reference point (stated in the config, else the problem's default, rebuilt once),
and writes ``pareto.md`` (hypervolume at every budget of the sweep, mean ± 95 % interval over
seeds, per problem and agent configuration) with the PNGs beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlsysgym.agents.pareto import hypervolume_curve, pareto_mask, to_minimization
from mlsysgym.experiments.report import ReportError, _slug, load_sweeps, trial_machines

__all__ = ["fronts_figure", "hv_curves_figure", "is_pareto_sweep", "mean_interval",
           "parallel_figure", "problem_label", "run_curves", "write_pareto_report"]


def mean_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the rows of ``values`` (seeds × points) and the half-width of its 95 %
    Student-t interval (0 with one row)."""
    from scipy import stats

    v = np.atleast_2d(np.asarray(values, dtype=float))
    n = v.shape[0]
    if n < 2:
        return v.mean(0), np.zeros(v.shape[1])
    return v.mean(0), stats.t.ppf(0.975, n - 1) * v.std(0, ddof=1) / np.sqrt(n)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def hv_curves_figure(curves: Mapping[str, Sequence[np.ndarray]], path: str | os.PathLike[str],
                     title: str) -> Path:
    """Normalized hypervolume against evaluations: per label, the mean over its runs (cut to
    the shortest) and the 95 % interval band; log x axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in curves.items():
        runs = [np.asarray(c, dtype=float) for c in runs if len(c)]
        if not runs:
            continue
        n = min(len(c) for c in runs)
        mean, half = mean_interval(np.stack([c[:n] for c in runs]))
        x = np.arange(1, n + 1)
        (line,) = ax.plot(x, mean, label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(x, np.maximum(mean - half, 0.0), mean + half, color=line.get_color(),
                        alpha=0.15)  # a hypervolume is never negative
    ax.set_xscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("normalized hypervolume")
    ax.set_title(f"{title}\nmean over seeds, band = 95 % t-interval", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _positive(values: np.ndarray) -> bool:
    return bool(len(values)) and bool(np.all(np.asarray(values) > 0))


def _axis(ax: Any, axis: str, values: np.ndarray, ref: float) -> None:
    """Scale (log where every value is positive and they span a decade) and limits of one axis around the fronts'
    ``values``; the reference drawn dashed where it falls inside them."""
    log = _positive(values) and ref > 0 and values.max() > 10 * values.min()  # a decade or more
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log" if log else "linear")
    if not len(values):
        return
    lo, hi = float(values.min()), float(values.max())
    if ref <= hi * (1.5 if log else 1.0) or not log:
        hi = max(hi, ref)
    pad = (hi / lo) ** 0.05 if log and lo > 0 else None
    limits = (lo / pad, hi * pad) if pad else (lo - 0.05 * (hi - lo or 1), hi + 0.05 * (hi - lo or 1))
    (ax.set_xlim if axis == "x" else ax.set_ylim)(*limits)
    if limits[0] <= ref <= limits[1]:
        (ax.axvline if axis == "x" else ax.axhline)(ref, color="k", lw=0.6, ls="--")


def fronts_figure(fronts: Mapping[str, np.ndarray], objectives: Sequence[str],
                  reference: Sequence[float], path: str | os.PathLike[str], title: str) -> Path:
    """Each label's front (rows: designs, columns: ``objectives`` in their own units) as 2-D
    projections, one panel per objective pair (axes as :func:`_axis` sets them)."""
    plt = _plt()
    k = len(objectives)
    pairs = list(combinations(range(k), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(max(6.5, 4.6 * len(pairs)), 4.4),
                             squeeze=False)
    points = np.vstack([np.asarray(f, dtype=float).reshape(-1, k) for f in fronts.values()]
                       + [np.zeros((0, k))])
    for ax, (i, j) in zip(axes[0], pairs):
        for label, f in fronts.items():
            f = np.asarray(f, dtype=float).reshape(-1, k)
            if len(f):
                ax.plot(f[:, i], f[:, j], "o", ms=3, alpha=0.7, label=label)
        for axis, c in (("x", i), ("y", j)):
            _axis(ax, axis, points[:, c], reference[c])
        ax.set_xlabel(objectives[i])
        ax.set_ylabel(objectives[j])
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{title} (dashed: reference point)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def parallel_figure(fronts: Mapping[str, np.ndarray], objectives: Sequence[str],
                    reference: Sequence[float], path: str | os.PathLike[str], title: str) -> Path:
    """The fronts as parallel coordinates: one polyline per design, each objective divided by
    its reference value (1 = the reference point)."""
    plt = _plt()
    k = len(objectives)
    ref = np.abs(np.asarray(reference, dtype=float))
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 * k), 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (label, f) in enumerate(fronts.items()):
        f = np.asarray(f, dtype=float).reshape(-1, k) / ref
        color = colors[c % len(colors)]
        for n, row in enumerate(f):
            ax.plot(range(k), row, color=color, alpha=0.35, lw=0.8,
                    label=label if n == 0 else None)
    ax.axhline(1.0, color="k", lw=0.6, ls="--")
    ax.set_xticks(range(k), list(objectives))
    ax.set_ylabel("value / reference")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title(f"{title}: parallel coordinates (dashed: reference)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# ---- sweeps ----------------------------------------------------------------------------------
def _spec(row: Any) -> dict[str, Any]:
    spec = json.loads(row) if isinstance(row, str) else row
    return spec if isinstance(spec, dict) else {"name": spec}


def is_pareto_sweep(trials: pd.DataFrame) -> bool:
    """True when the sweep's problems are multi-objective (``pareto`` problem specs)."""
    return "problem_spec" in trials and bool(len(trials)) and all(
        _spec(s).get("name") == "pareto" for s in trials["problem_spec"])


def problem_label(spec: Mapping[str, Any]) -> str:
    """A readable name of a pareto spec's inner problem: its name and keyword arguments."""
    of = spec.get("of")
    if not isinstance(of, Mapping):
        return str(of)
    args = ", ".join(f"{k}={v}" for k, v in of.items() if k != "name")
    return f"{of.get('name')}" + (f" ({args})" if args else "")


def _objectives(spec: Mapping[str, Any]) -> tuple[list[str], list[str], list[float]]:
    """Objectives, directions and reference point of a pareto spec (the reference rebuilt from
    the problem when the spec does not state it)."""
    objectives = list(spec["objectives"])
    directions = list(spec.get("directions") or ["minimize"] * len(objectives))
    ref = spec.get("reference")
    if isinstance(ref, Mapping):
        ref = [ref[o] for o in objectives]
    if ref is None:
        from mlsysgym.agents.problems import make_problem

        problem = make_problem(dict(spec))
        ref = problem.reference
        if hasattr(problem, "close"):
            problem.close()
    return objectives, directions, [float(r) for r in ref]


def run_curves(traj: pd.DataFrame, objectives: Sequence[str], directions: Sequence[str],
               reference: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """One run's normalized hypervolume after every evaluation and its final front (objective
    values, own units) from its trajectory rows."""
    traj = traj.sort_values("step")
    values = traj[list(objectives)].to_numpy(dtype=float)
    ok = traj["pareto_feasible"].fillna(0).to_numpy() == 1.0
    if "failed" in traj:
        ok &= ~traj["failed"].astype(bool).to_numpy()
    g = to_minimization(values, directions)
    ref = to_minimization(np.array([reference], dtype=float), directions)[0]
    curve = hypervolume_curve(g, ref, ok) / float(np.prod(np.abs(ref)))
    idx = np.flatnonzero(ok & np.all(np.isfinite(g), axis=1))
    front = values[idx[pareto_mask(g[idx])]] if idx.size else values[:0]
    return curve, front


def _arm(row: Any) -> str:
    hp = json.loads(row.hyperparameters) if isinstance(row.hyperparameters, str) else {}
    return row.agent + (f" {json.dumps(hp, sort_keys=True)}" if hp else "")


def _hv_cell(runs: Sequence[tuple[int, np.ndarray]], budget: int) -> str:
    """Hypervolume after ``budget`` evaluations over the runs made for that budget (else the
    longer ones, whose curves pass it): mean ± 95 % interval; a run that ended before the
    budget (a grid) counts with its last value and the evaluations it made."""
    pick = [c for b, c in runs if b == budget] or [c for b, c in runs if b > budget]
    if not pick:
        return "—"
    vals = np.array([c[min(budget, len(c)) - 1] for c in pick if len(c)])
    if not len(vals):
        return "—"
    mean, half = mean_interval(vals[:, None])
    short = [len(c) for c in pick if len(c) < budget]
    note = f", {np.mean(short):.0f} evals" if short else ""
    return f"{mean[0]:.4f} ± {half[0]:.4f} (n={len(vals)}{note})"


def _problem_section(trials: pd.DataFrame, trajs: pd.DataFrame, out: Path) -> list[str]:
    """The Markdown section and PNGs of one problem's trials."""
    spec = _spec(trials["problem_spec"].iloc[0])
    objectives, directions, reference = _objectives(spec)
    problem = problem_label(spec)
    slug = _slug(problem.replace("env:mlsysgym/", ""))
    budgets = sorted({int(b) for b in trials["budget"].dropna()})
    top = max(budgets, default=None)
    runs: dict[str, list[tuple[int, np.ndarray]]] = {}
    fronts: dict[str, np.ndarray] = {}
    for row in trials.sort_values(["agent", "seed"]).itertuples():
        curve, front = run_curves(trajs[trajs.trial_key == row.trial_key], objectives,
                                  directions, reference)
        arm = _arm(row)
        budget = int(row.budget) if row.budget == row.budget and row.budget is not None else 0
        runs.setdefault(arm, []).append((budget, curve))
        if budget == (top or 0) and arm not in fronts:
            fronts[arm] = front  # the first seed at the largest budget
    refs = ", ".join(f"{o} {'≤' if d == 'minimize' else '≥'} {r:.5g}"
                     for o, d, r in zip(objectives, directions, reference))
    lines = [f"## {problem}", "", f"Objectives and reference point: {refs}.", "",
             "| agent | runs | " + " | ".join(f"HV @ {b}" for b in budgets) + " | front size |",
             "|---" * (len(budgets) + 3) + "|"]
    for arm, arm_runs in runs.items():
        lines.append(f"| {arm} | {len(arm_runs)} | "
                     + " | ".join(_hv_cell(arm_runs, b) for b in budgets)
                     + f" | {len(fronts.get(arm, []))} |")
    curves = {arm: [c for b, c in r if b == (top or 0)] for arm, r in runs.items()}
    hv = hv_curves_figure(curves, out / f"{slug}_pareto_hv.png",
                          f"{problem}: runs at {top} evaluations")
    fr = fronts_figure(fronts, objectives, reference, out / f"{slug}_pareto_fronts.png", problem)
    lines += ["", f"![hypervolume]({hv.name})", f"![fronts]({fr.name})"]
    if len(objectives) >= 3:
        pc = parallel_figure(fronts, objectives, reference,
                             out / f"{slug}_pareto_parallel.png", problem)
        lines.append(f"![parallel coordinates]({pc.name})")
    return lines + [""]


def write_pareto_report(sweep_dirs: Sequence[str | os.PathLike[str]],
                        out_dir: str | os.PathLike[str] = "results/pareto") -> Path:
    """Write ``pareto.md`` and its PNGs for multi-objective sweeps; return the Markdown path."""
    trials, trajs = load_sweeps(sweep_dirs)
    if not is_pareto_sweep(trials):
        raise ReportError("these sweeps have no multi-objective problems (list objectives in "
                          "the sweep config)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Multi-objective sweep: hypervolume and Pareto fronts", "",
             (f"Sweeps: {', '.join(f'`{d}`' for d in sweep_dirs)}; {len(trials)} search runs, "
              f"{int(trials['n_evaluations'].sum()):,} evaluations."), "",
             *[f"Trials ran on — {line}" for line in trial_machines(trials)], "",
             ("Hypervolume normalized by the reference point (the fraction of the box between "
              "0 and the reference that the feasible designs found dominate, for positive "
              "minimized objectives); mean ± 95 % t-interval over the seeds' runs made for "
              "that budget (n), after that many evaluations (a run that ended sooner, a grid, "
              "with the evaluations it made). Single-objective agents search the weighted sum "
              "of the reference-normalized objectives. Fronts: the first seed's run at the "
              "largest budget."), ""]
    for _, group in trials.groupby("problem_spec", sort=True):
        lines += _problem_section(group, trajs, out)
    path = out / "pareto.md"
    path.write_text("\n".join(lines))
    return path
