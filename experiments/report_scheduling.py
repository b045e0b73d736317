"""The kernel scheduling experiments' own tables, from their sweeps (``mlsysgym report
--scheduling``), beside the generic per-instance report of :mod:`mlsysgym.experiments.report`.

What the generic report cannot say, because it needs to know the agents:

- the learned agent's rollouts alone: a ``policy_local_search`` run's first ``1 + samples``
  evaluations are the policy's greedy rollout (*PPO greedy*, evaluation 0) and its sampled
  rollouts (*PPO best* = the best of them), before the local search (*PPO+LS*);
- CP-SAT's proof per instance (the ledger's ``status`` and ``bound``, a reward, turned back
  into µs: bound = 1 − LB / LB_0), hence the gaps to proven optima and the 3% target;
- averages per group (zoo × platform grid, random DAGs, each platform) and the verdict on the
  targets; for job streams, mean JCT and makespan per stream relative to HEFT per load.

:func:`write_scheduling_report` writes ``<name>_details.md`` and ``<name>_details.png`` (the
makespan experiment, ``scheduling`` problems) or the stream tables (``scheduling-stream``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlsysgym.experiments.report import ReportError, load_sweeps, stamp_markdown, trial_machines

__all__ = ["method_of", "trial_table", "write_scheduling_report"]


def method_of(agent: str, hp: dict[str, Any]) -> str:
    """The table column of a trial: the agent, named by the experiment's convention."""
    if agent == "heft":
        return "HEFT-FIFO" if hp.get("by_arrival") else "HEFT"
    if agent == "local_search":
        return {"heft": "HEFT+LS", "heft_fifo": "FIFO+LS", "cpop": "CPOP+LS"}.get(
            hp.get("start", "heft"), "LS")
    if agent == "policy_local_search":
        return "LS-pp" if hp.get("proposal") == "policy" else "PPO+LS"
    return {"cpop": "CPOP", "cpsat": "CP-SAT", "maskable_ppo": "PPO (rollouts)",
            "mcts": "MCTS"}.get(agent, agent)


def _instance_info(spec: dict[str, Any]) -> dict[str, Any]:
    """Group, platform label, PE count and (streams) jobs of a problem spec."""
    from mlsysgym.agents.scheduling_problem import _platform

    if spec["name"] == "scheduling-stream":
        from mlsysgym.simulators.streams import poisson_stream

        plat = _platform(spec.get("platform", "soc_npu"))
        jobs = poisson_stream(list(spec["models"]), spec["n_jobs"], spec["load"], plat, spec["seed"])
        return {"group": "stream" if spec["n_jobs"] > 2 else "short stream",
                "platform": plat.name, "n_pes": len(plat.pes), "load": float(spec["load"]),
                "stream_seed": int(spec["seed"]), "jobs": "+".join(str(j.workload) for j in jobs)}
    if spec.get("model") is not None:
        plat = _platform(spec.get("platform", "soc_npu"))
        return {"group": "zoo", "platform": plat.name, "n_pes": len(plat.pes)}
    return {"group": "random", "platform": f"random{spec['n_pes']}pe", "n_pes": int(spec["n_pes"])}


def trial_table(trials: pd.DataFrame, trajs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: instance, method, the best objective (makespan, or the mean JCT on a
    stream whose objective is it) with that schedule's makespan and mean JCT, CP-SAT's proof,
    the learned agent's rollout results, seconds and evaluations."""
    rows = []
    specs: dict[str, dict[str, Any]] = {}
    for t in trials.itertuples():
        g = trajs[trajs.trial_key == t.trial_key].sort_values("step")
        spec = json.loads(t.problem_spec)
        if t.problem_spec not in specs:
            specs[t.problem_spec] = _instance_info(spec)
        hp = json.loads(t.hyperparameters)
        stream = spec["name"] == "scheduling-stream" and spec.get("objective", "jct") == "jct"
        key = "mean_jct_us" if stream else "makespan_us"
        ok = g[~g["failed"].astype(bool)] if len(g) else g
        row: dict[str, Any] = {
            "trial_key": t.trial_key, "spec": t.problem_spec, **specs[t.problem_spec],
            "instance": str(g["problem"].iloc[0]) if len(g) else spec.get("model", ""),
            "n_ops": len(g["actions"].iloc[0]) if len(g) else 0,
            "method": method_of(t.agent, hp), "agent": t.agent, "objective": key,
            "wall_s": float(t.wall_time_s), "evaluations": int(t.n_evaluations),
            "search_s": float(g["time_s"].max()) if len(g) else math.nan}
        if len(ok):
            best = ok.loc[ok[key].idxmin()]
            row.update(value=float(best[key]), makespan_us=float(best["makespan_us"]),
                       mean_jct_us=float(best.get("mean_jct_us", math.nan)))
        bound = getattr(t, "bound", None)
        if t.agent == "cpsat" and len(ok) and bound is not None and np.isfinite(bound):
            lb0 = float(ok["jct_lower_bound_us" if stream else "lower_bound_us"].iloc[0])
            row.update(proven=getattr(t, "status", None) == "optimal", lb_us=lb0 * (1.0 - bound))
        if t.agent == "policy_local_search" and len(g):
            n = 1 + int(hp.get("samples", 24))
            head = g.iloc[:n]
            row.update(ppo_greedy=float(head[key].iloc[0]), ppo_best=float(head[key].min()),
                       ppo_best_makespan=float(head.loc[head[key].idxmin(), "makespan_us"]),
                       ppo_s=float(head["time_s"].max()),
                       train_s=float(t.wall_time_s) - float(g["time_s"].max()))
        rows.append(row)
    return pd.DataFrame(rows)


# ---- formatting ------------------------------------------------------------------------------


def _f(x: float, nd: int = 1) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:,.{nd}f}"


def _p(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:+.2f}%"


def _impr(ref: float, x: float) -> float:
    """% shorter than ``ref`` (positive = better)."""
    return 100.0 * (ref - x) / ref if np.isfinite(x) and np.isfinite(ref) and ref > 0 else math.nan


def _gap(x: float, ref: float) -> float:
    """% above ``ref``."""
    return 100.0 * (x - ref) / ref if np.isfinite(x) and np.isfinite(ref) and ref > 0 else math.nan


def _mean(xs: Sequence[float]) -> float:
    a = np.array([x for x in xs if np.isfinite(x)], dtype=float)
    return float(a.mean()) if a.size else math.nan


def _wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per instance: each method's best value, CP-SAT's proof, PPO's rollouts, times."""
    out = []
    for spec, g in table.groupby("spec", sort=False):
        first = g.sort_values("n_ops", ascending=False).iloc[0]  # a run that evaluated something
        r: dict[str, Any] = {c: first[c] for c in ("instance", "group", "platform", "n_pes")
                             if c in g}
        r.update({c: first[c] for c in ("load", "stream_seed", "jobs") if c in g})
        r["n_ops"] = int(g["n_ops"].max())
        for m in g.itertuples():
            r[m.method] = getattr(m, "value", math.nan)
            r[f"{m.method} makespan"] = getattr(m, "makespan_us", math.nan)
            r[f"{m.method} s"] = m.wall_s
            r[f"{m.method} evaluations"] = m.evaluations
            if m.method == "CP-SAT":
                r.update(proven=bool(getattr(m, "proven", False)), lb=getattr(m, "lb_us", math.nan))
            if m.method == "PPO+LS":
                r.update({"PPO greedy": m.ppo_greedy, "PPO best": m.ppo_best,
                          "PPO best makespan": m.ppo_best_makespan, "train s": m.train_s,
                          "PPO s": m.ppo_s, "PPO+LS search s": m.search_s})
        out.append(r)
    wide = pd.DataFrame(out)
    rank = {"zoo": 0, "random": 1, "stream": 2, "short stream": 3}
    key = wide.assign(g=wide["group"].map(rank), p=wide["platform"] != "soc_npu",
                      s=wide.get("stream_seed", 0), ld=wide.get("load", 0))
    order = key.sort_values(["g", "p", "platform", "ld", "s", "n_pes", "n_ops", "instance"]).index
    return wide.loc[order].reset_index(drop=True)


# ---- the makespan experiment -----------------------------------------------------------------

_MAKESPAN_COLS = ("HEFT", "CPOP", "PPO greedy", "PPO best", "MCTS", "HEFT+LS", "PPO+LS", "LS-pp",
                  "CP-SAT")


def _proven(w: pd.DataFrame) -> pd.DataFrame:
    """The instances where CP-SAT proved its schedule optimal."""
    return w[w["proven"].fillna(False).astype(bool)] if "proven" in w else w.iloc[:0]


def _summary(w: pd.DataFrame) -> dict[str, float]:
    proven = _proven(w)
    s = {f"{c} Δ": _mean([_impr(h, x) for h, x in zip(w["HEFT"], w[c])])
         for c in _MAKESPAN_COLS if c in w and c != "HEFT"}
    s["n"], s["proven"] = len(w), len(proven)
    for c in ("HEFT", "PPO best", "HEFT+LS", "PPO+LS"):
        if c in w:
            gaps = [_gap(x, o) for x, o in zip(proven[c], proven["CP-SAT"])]
            s[f"{c} gap mean"] = _mean(gaps)
            s[f"{c} gap max"] = max([g for g in gaps if np.isfinite(g)], default=math.nan)
            s[f"{c} within 3"] = sum(g <= 3.0 + 1e-9 for g in gaps if np.isfinite(g))
    return s


def _verdict(w: pd.DataFrame) -> list[str]:
    zoo = w[w.group == "zoo"]
    out = []
    for label, col in (("PPO+LS", "PPO+LS"), ("PPO best (rollouts only)", "PPO best")):
        if len(zoo) and col in zoo:
            imp = [_impr(h, x) for h, x in zip(zoo["HEFT"], zoo[col])]
            wins = sum(i > 1e-7 for i in imp)
            ties = sum(abs(i) <= 1e-7 for i in imp)
            mean = _mean(imp)
            out.append(f"- Beats HEFT on average across the zoo × platform grid ({label}, no "
                       f"guard): **{'yes' if mean > 0 else 'no'}** — mean Δ {_p(mean)}; shorter "
                       f"than HEFT on {wins}/{len(zoo)} cells, equal on {ties}, longer on "
                       f"{len(zoo) - wins - ties}.")
    proven = _proven(w)
    if not len(proven):
        return out + ["- CP-SAT proved no optimum in this run, so the 3% target is not testable."]
    for label, col in (("PPO+LS", "PPO+LS"), ("PPO best (rollouts only)", "PPO best")):
        if col not in proven:
            continue
        gaps = [_gap(x, o) for x, o in zip(proven[col], proven["CP-SAT"])]
        within = sum(g <= 3.0 + 1e-9 for g in gaps)
        out.append(f"- Within 3% of the optimum where CP-SAT proves one ({label}; {len(proven)} "
                   f"instances: {int((proven.group == 'zoo').sum())} zoo, "
                   f"{int((proven.group == 'random').sum())} random): "
                   f"**{'yes' if within == len(proven) else 'no'}** — {within}/{len(proven)} within "
                   f"3%, mean {_p(_mean(gaps))}, max {_p(max(gaps))}.")
    return out


def _makespan_markdown(w: pd.DataFrame, trials: pd.DataFrame) -> str:
    cols = [c for c in _MAKESPAN_COLS if c in w]
    delta = [c for c in ("PPO best", "MCTS", "HEFT+LS", "PPO+LS", "CP-SAT") if c in w]
    lines = [
        "# Kernel scheduling: HEFT, CPOP, learned agent (+ search), CP-SAT — details", "",
        (f"Sweep(s) {', '.join(sorted(set(trials['sweep'])))}: {len(trials)} runs, budget "
         f"{', '.join(sorted({str(b) for b in trials['budget']}))} evaluations per run. "
         "Makespans in µs. *PPO greedy* / *PPO best* = the learned agent's first evaluation "
         "(greedy rollout) / the best of its greedy and sampled rollouts (the first 1 + samples "
         "evaluations of its PPO+LS run); **PPO+LS** = that run's best (local search from PPO "
         "best for the rest of the budget); HEFT+LS = the same search from HEFT's schedule; "
         "LS-pp = PPO+LS with policy move proposals. CP-SAT: status *optimal (proven)* when its "
         "bound meets its schedule (on an exact time grid), else *feasible*; LB gap = 1 − LB / "
         "CP-SAT. "
         "Δ = % shorter than HEFT; vs CP-SAT = % above CP-SAT's makespan."), "",
        *[f"Trials ran on — {line}" for line in trial_machines(trials)], "",
        ("| instance | platform | ops | PEs | " + " | ".join(cols) + " | status | LB gap | "
         + " | ".join(f"Δ {c}" for c in delta) + " | PPO best vs CP-SAT | PPO+LS vs CP-SAT |"),
        "|---|---|---:|---:|" + "---:|" * len(cols) + "---|---:|" + "---:|" * (len(delta) + 2)]
    for r in w.itertuples(index=False):
        d = dict(zip(w.columns, r))
        status = "optimal (proven)" if d.get("proven") == True else "feasible"
        lbgap = 100.0 * (1 - d.get("lb", math.nan) / d["CP-SAT"]) if "CP-SAT" in d else math.nan
        lines.append(
            f"| {d['instance']} | {d['platform']} | {d['n_ops']} | {d['n_pes']} | "
            + " | ".join(_f(d.get(c, math.nan)) for c in cols) + f" | {status} | {_f(lbgap, 2)}% | "
            + " | ".join(_p(_impr(d["HEFT"], d.get(c, math.nan))) for c in delta)
            + f" | {_p(_gap(d.get('PPO best', math.nan), d.get('CP-SAT', math.nan)))} | "
            f"{_p(_gap(d.get('PPO+LS', math.nan), d.get('CP-SAT', math.nan)))} |")
    timed = [c for c in ("HEFT+LS", "PPO+LS", "LS-pp", "MCTS", "CP-SAT") if c in w]
    lines += ["", ("### Seconds per instance (wall time of each run; the learned agent's training "
                   "is outside its budget; train s 0: a policy trained for an earlier run of "
                   "the same worker process, same graphs and settings, was reused)"), "",
              "| instance | platform | PPO train s | PPO rollouts s | "
              + " | ".join(f"{c} s" for c in timed) + " |",
              "|---|---|---:|---:|" + "---:|" * len(timed)]
    for r in w.itertuples(index=False):
        d = dict(zip(w.columns, r))
        lines.append(f"| {d['instance']} | {d['platform']} | {_f(d.get('train s', math.nan))} | "
                     f"{_f(d.get('PPO s', math.nan))} | "
                     + " | ".join(_f(d.get(f"{c} s", math.nan)) for c in timed) + " |")
    sets = [("zoo × platform grid", w[w.group == "zoo"]), ("random DAGs", w[w.group == "random"]),
            ("all", w)] + [(f"zoo @ {p}", w[(w.group == "zoo") & (w.platform == p)])
                           for p in sorted(set(w.loc[w.group == "zoo", "platform"]))]
    dcols = [c for c in _MAKESPAN_COLS if c in w and c != "HEFT"]
    lines += ["", "## Averages", "",
              "| set | instances | " + " | ".join(f"{c} Δ" for c in dcols)
              + " | CP-SAT proven | HEFT above opt | PPO best above opt (mean / max) | "
              "HEFT+LS above opt | **PPO+LS above opt (mean / max)** | PPO+LS within 3% |",
              "|---|---:|" + "---:|" * (len(dcols) + 6)]
    for name, sub in sets:
        if not len(sub):
            continue
        s = _summary(sub)
        lines.append(
            f"| {name} | {s['n']} | " + " | ".join(_p(s[f'{c} Δ']) for c in dcols)
            + f" | {s['proven']} | {_p(s.get('HEFT gap mean', math.nan))} | "
            f"{_p(s.get('PPO best gap mean', math.nan))} / {_p(s.get('PPO best gap max', math.nan))} | "
            f"{_p(s.get('HEFT+LS gap mean', math.nan))} | **{_p(s.get('PPO+LS gap mean', math.nan))} "
            f"/ {_p(s.get('PPO+LS gap max', math.nan))}** | "
            + (f"{s.get('PPO+LS within 3', 0)}/{s['proven']}" if s["proven"] else "—") + " |")
    lines += ["", "## Targets", "", *_verdict(w)]
    return "\n".join(lines) + "\n"


def _makespan_plot(w: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [c for c in _MAKESPAN_COLS if c in w and c != "HEFT"]
    x = np.arange(len(w))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(w) + 2), 4.5))
    for k, c in enumerate(series):
        imp = [_impr(h, v) for h, v in zip(w["HEFT"], w[c])]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, np.nan_to_num(imp, nan=0.0), width, label=c)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{i}\n@{p}" for i, p in zip(w["instance"], w["platform"])], rotation=60,
                  ha="right", fontsize=7)
    ax.set_ylabel("makespan improvement over HEFT (%)")
    ax.set_title("Kernel scheduling: improvement over HEFT (higher is better)")
    ax.legend(fontsize=7, ncol=len(series))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- the stream experiment -------------------------------------------------------------------

_STREAM_COLS = ("HEFT", "HEFT-FIFO", "CPOP", "PPO best", "PPO+LS", "FIFO+LS", "CP-SAT")


def _bold_min(d: dict[str, Any], cols: Sequence[str], suffix: str = "") -> list[str]:
    vals = [d.get(f"{c}{suffix}", math.nan) for c in cols]
    best = np.nanmin(vals)
    return [f"**{_f(v, 0)}**" if v <= best + 1e-6 else _f(v, 0) for v in vals]


def _stream_markdown(w: pd.DataFrame, trials: pd.DataFrame) -> str:
    cols = [c for c in _STREAM_COLS if c in w]
    names = ["PPO" if c == "PPO best" else c for c in cols]
    long = w[w.group == "stream"].sort_values(["load", "stream_seed"])
    short = w[w.group == "short stream"].sort_values(["load", "stream_seed"])
    lines = [
        "# Streaming kernel scheduling (DeepSoCS setting) — details", "",
        (f"Sweep(s) {', '.join(sorted(set(trials['sweep'])))}: {len(trials)} runs, budget "
         f"{', '.join(sorted({str(b) for b in trials['budget']}))} evaluations per run. JCT = job "
         "finish − arrival, times in µs, lower is better, best in bold. PPO = the best by mean "
         "JCT of the learned agent's greedy and sampled rollouts (the first evaluations of its "
         "PPO+LS run; trained on other streams); PPO+LS / FIFO+LS: local search on mean JCT from "
         "PPO / from HEFT-FIFO. *JCT LB* = CP-SAT's lower bound on the mean JCT (never below the "
         "per-job critical-path bound), *gap* = 1 − LB / best found."), "",
        *[f"Trials ran on — {line}" for line in trial_machines(trials)], "",
        "## Mean job completion time (µs)", "",
        "| load | seed | jobs | ops | " + " | ".join(names) + " | JCT LB | gap | CP-SAT |",
        "|---|---|---|---|" + "---|" * (len(cols) + 3)]

    def status(d: dict[str, Any]) -> str:
        return "proven optimal" if d.get("proven") == True else "feasible"

    for rows, title in ((long, None), (short, "## CP-SAT on short streams (mean JCT, µs)")):
        if title is not None and len(rows):
            lines += ["", title, "",
                      "| load | seed | jobs | ops | " + " | ".join(names) + " | JCT LB | gap | CP-SAT |",
                      "|---|---|---|---|" + "---|" * (len(cols) + 3)]
        for r in rows.itertuples(index=False):
            d = dict(zip(w.columns, r))
            best = np.nanmin([d.get(c, math.nan) for c in cols])
            lines.append(f"| {d['load']:g} | {d['stream_seed']} | {d['jobs']} | {d['n_ops']} | "
                         + " | ".join(_bold_min(d, cols)) + f" | {_f(d.get('lb', math.nan), 0)} | "
                         f"{_f(100 * (1 - d.get('lb', math.nan) / best), 1)}% | {status(d)} |")
        if title is None and len(rows):
            lines += ["", "## Makespan (µs)", "", "| load | seed | " + " | ".join(names) + " |",
                      "|---|---|" + "---|" * len(cols)]
            for r in rows.itertuples(index=False):
                d = dict(zip(w.columns, r))
                lines.append(f"| {d['load']:g} | {d['stream_seed']} | "
                             + " | ".join(_bold_min(d, cols, " makespan")) + " |")
            lines += ["", "## Mean over streams, relative to HEFT (< 1 is better)", "",
                      "| load | metric | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(cols)]
            for load, sub in rows.groupby("load"):
                for label, suffix in (("mean JCT", ""), ("makespan", " makespan")):
                    ratios = [_mean(list(sub[f"{c}{suffix}"] / sub[f"HEFT{suffix}"])) for c in cols]
                    lines.append(f"| {load:g} | {label} | " + " | ".join(f"{x:.3f}" for x in ratios)
                                 + " |")
            secs = [c for c in cols if f"{c} s" in rows]
            lines += ["", "Mean wall time per stream (s): " + ", ".join(
                f"{n} {_mean(list(rows[f'{c} s'])):.2f}" for c, n in zip(cols, names)
                if c in secs) + (f"; PPO training {_mean(list(rows['train s'])):.0f} s per run "
                                 "(outside the budget)." if "train s" in rows else ".")]
    return "\n".join(lines) + "\n"


def _stream_plot(w: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = w[w.group == "stream"].sort_values(["load", "stream_seed"])
    cols = [c for c in _STREAM_COLS if c in rows and c != "HEFT"]
    x = np.arange(len(rows))
    width = 0.8 / max(len(cols), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(rows) + 2), 4.5))
    for k, c in enumerate(cols):
        ax.bar(x + (k - (len(cols) - 1) / 2) * width, rows[c] / rows["HEFT"], width,
               label="PPO" if c == "PPO best" else c)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"ρ={ld:g}\nseed {s}" for ld, s in zip(rows["load"], rows["stream_seed"])],
                  fontsize=8)
    ax.set_ylabel("mean JCT / HEFT's (lower is better)")
    ax.set_title("Streaming kernel scheduling: mean job completion time relative to HEFT")
    ax.legend(fontsize=7, ncol=len(cols))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_scheduling_report(sweep_dirs: Sequence[str | os.PathLike[str]],
                            out_dir: str | os.PathLike[str], name: str | None = None) -> Path:
    """Write ``<name>_details.md`` and ``<name>_details.png`` (``name``: the sweep's) for sweeps
    of ``scheduling`` or ``scheduling-stream`` problems; return the Markdown path."""
    trials, trajs = load_sweeps(sweep_dirs)
    kinds = {json.loads(s)["name"] for s in trials["problem_spec"]}
    if not kinds <= {"scheduling", "scheduling-stream"}:
        raise ReportError(f"not a kernel scheduling sweep (problems {sorted(kinds)})")
    if "HEFT" not in {method_of(a, json.loads(h)) for a, h in zip(trials.agent, trials.hyperparameters)}:
        raise ReportError("the scheduling report needs the heft agent's trials (its baseline)")
    w = _wide(trial_table(trials, trajs))
    name = name or str(trials["sweep"].iloc[0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = "scheduling-stream" in kinds
    text = _stream_markdown(w, trials) if stream else _makespan_markdown(w, trials)
    (_stream_plot if stream else _makespan_plot)(w, out / f"{name}_details.png")
    path = out / f"{name}_details.md"
    path.write_text(stamp_markdown(text + f"\n![details]({name}_details.png)\n"))
    return path
