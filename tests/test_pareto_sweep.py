"""Multi-objective search beyond the agents' own tests: hand-computed hypervolumes, the grid
baseline, the Pareto summary for any agent, DRAM-v0's latency/energy trade-off, sweep configs
with objectives and the multi-objective sweep report."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.agents import search
from mlsysgym.agents.base import Outcome
from mlsysgym.agents.multiobjective import grid_levels, multiobjective
from mlsysgym.agents.pareto import hypervolume, pareto_mask, to_minimization
from mlsysgym.agents.problems import make_problem
from mlsysgym.core.params import Integer
from mlsysgym.core.space import DesignSpace
from mlsysgym.experiments.sweep import SweepConfigError, expand, load_config, run_trial


class TwoObjective:
    """x, y in 0..9: f1 = x, f2 = 9 - x + y (the front is y = 0); x + y > 12 is flagged
    ``infeasible``."""

    name = "two-objective"
    space = DesignSpace([Integer("x", 0, 9), Integer("y", 0, 9)])

    def evaluate(self, designs):
        metrics = [{"f1": float(d["x"]), "f2": float(9 - d["x"] + d["y"]),
                    "infeasible": float(d["x"] + d["y"] > 12)} for d in designs]
        return Outcome(np.zeros(len(designs)), metrics, np.zeros(len(designs), dtype=bool))


# ---- hypervolume by hand --------------------------------------------------------------------
def test_hypervolume_2d_with_a_maximized_objective():
    # latency (min) and bandwidth (max): (2 ms, 8 GB/s), (4, 10), (3, 6) against (5, 4).
    # minimization form: (2,-8), (4,-10), (3,-6) vs (5,-4); (3,-6) is dominated by (2,-8).
    # boxes: [2,5]x[-8,-4] = 12 and [4,5]x[-10,-4] = 6, overlap [4,5]x[-8,-4] = 4 → 14
    g = to_minimization([[2, 8], [4, 10], [3, 6]], ["minimize", "maximize"])
    ref = to_minimization([[5, 4]], ["minimize", "maximize"])[0]
    assert hypervolume(g, ref) == pytest.approx(14.0)


def test_hypervolume_3d_two_boxes_and_a_dominated_point():
    # [(1,1,2), (3,3,3)] is 2*2*1 = 4, [(2,2,1), (3,3,3)] is 1*1*2 = 2, overlap [2,3]^3 = 1;
    # (2,2,2) lies inside both boxes and adds nothing: 4 + 2 - 1 = 5
    assert hypervolume([[1, 1, 2], [2, 2, 1], [2, 2, 2]], [3, 3, 3]) == pytest.approx(5.0)


# ---- the grid baseline and the summary for any agent ----------------------------------------
def test_grid_levels_fit_the_budget():
    space = TwoObjective.space  # 10 x 10 levels
    # one level added at a time to the coarser parameter: 6 x 6 = 36 <= 40 < 7 x 6 = 42
    assert grid_levels(space, 40).tolist() == [6, 6]
    assert grid_levels(space, 1000).tolist() == [10, 10]  # the whole space
    assert grid_levels(space, 1).tolist() == [1, 1]


def test_grid_search_front_and_hypervolume_by_hand():
    problem = multiobjective(TwoObjective(), ["f1", "f2"], reference=[10.0, 19.0])
    r = search("grid", problem, 40, seed=3)
    # a 6 x 6 grid: x and y at rint(linspace(0, 9, 6)) = 0, 2, 4, 5, 7, 9; f1 = x, f2 = 9 - x + y
    assert r.n_evaluations == 36
    assert sorted({d["x"] for d in r.designs}) == [0, 2, 4, 5, 7, 9]
    # front: y = 0, points (0,9), (2,7), (4,5), (5,4), (7,2), (9,0) against (10, 19):
    # 2*10 + 2*12 + 1*14 + 2*15 + 2*17 + 1*19 = 141
    front = sorted((f["f1"], f["f2"]) for f in r.info["pareto_front"])
    assert front == [(0, 9), (2, 7), (4, 5), (5, 4), (7, 2), (9, 0)]
    assert r.info["hypervolume"] == pytest.approx(141.0)
    assert r.info["hypervolume_normalized"] == pytest.approx(141.0 / 190.0)


@pytest.mark.parametrize("agent", ["random", "ga", "grid"])
def test_plain_search_on_a_multiobjective_problem_reports_the_front(agent):
    """search() without objectives= on an already wrapped problem (the weighted-sum reward for
    a single-objective agent) still puts the front and the hypervolume curve in info."""
    problem = multiobjective(TwoObjective(), ["f1", "f2"], reference=[10.0, 19.0])
    r = search(agent, problem, 30, seed=0)
    front = np.array([[f["f1"], f["f2"]] for f in r.info["pareto_front"]])
    assert len(front) >= 2 and pareto_mask(front).all()
    assert len(r.info["hypervolume_curve"]) == r.n_evaluations
    assert r.info["hypervolume_curve"][-1] == pytest.approx(r.info["hypervolume_normalized"])


# ---- DRAM-v0 with a list of objectives ------------------------------------------------------
def test_dram_sparse_local_page_policy_trades_latency_for_energy():
    """On the sparse-local trace (first 1,000 requests) an open page keeps the row hits (62 %)
    and is faster, a closed-adaptive page precharges (10 % hits) and spends less energy: rows
    left open keep the rank in active standby (IDD3N) through the long idle gaps."""
    p = make_problem({"name": "env:mlsysgym/DRAM-v0", "workload": "sparse-local",
                      "max_requests": 1000})
    base = {"Scheduler": "FrFcfs", "SchedulerBuffer": "Bankwise", "RequestBufferSize": 8,
            "RespQueue": "Fifo", "RefreshPolicy": "AllBank", "RefreshMaxPostponed": 1,
            "RefreshMaxPulledin": 1, "Arbiter": "Simple", "MaxActiveTransactions": 128}
    out = p.evaluate([{**base, "PagePolicy": "Open"}, {**base, "PagePolicy": "ClosedAdaptive"}])
    opened, closed = out.metrics
    assert opened["row_hit_rate"] == pytest.approx(0.62)
    assert closed["row_hit_rate"] == pytest.approx(0.102)
    assert opened["avg_latency_ns"] < closed["avg_latency_ns"]
    assert opened["energy_nj"] > closed["energy_nj"]


def test_dram_multiobjective_search_has_both_objectives_per_design():
    objectives = ["avg_latency_ns", "energy_nj"]
    r = search("random", make_problem({"name": "env:mlsysgym/DRAM-v0", "workload": "sparse-local",
                                       "max_requests": 500}), 24, seed=0, objectives=objectives)
    assert r.n_evaluations == 24
    assert all(np.isfinite(m[o]) and m[o] > 0 for m in r.metrics for o in objectives)
    assert r.info["objectives"] == objectives and len(r.info["pareto_front"]) >= 2
    assert r.info["hypervolume"] > 0


# ---- sweep configs with objectives ----------------------------------------------------------
def _config(**extra):
    return {"name": "mo", "problems": ["synthetic-discrete"], "agents": ["random"], "budget": 12,
            "seeds": 2, **extra}


def test_sweep_config_with_objectives_wraps_every_problem(tmp_path):
    cfg = load_config(_config(objectives=["distance", "bonus"],
                              directions=["minimize", "maximize"],
                              reference={"bonus": -1.0, "distance": 3.0}), tmp_path)
    assert cfg.problems == [{"name": "pareto", "of": "synthetic-discrete",
                             "objectives": ["distance", "bonus"],
                             "directions": ["minimize", "maximize"], "reference": [3.0, -1.0]}]
    plain = load_config(_config(), tmp_path)
    assert plain.problems == ["synthetic-discrete"]


@pytest.mark.parametrize("extra, words", [
    ({"objectives": []}, "non-empty list"),
    ({"objectives": ["distance", "distance"]}, "distinct"),
    ({"objectives": ["distance"], "directions": ["down"]}, "directions"),
    ({"objectives": ["distance", "bonus"], "reference": [1.0]}, "reference"),
    ({"objectives": ["distance"], "reference": {"bonus": 1.0}}, "exactly the objectives"),
    ({"objectives": ["distance"], "reference": [0.0]}, "non-zero"),
    ({"directions": ["minimize"]}, "need objectives"),
])
def test_bad_objectives_give_a_one_line_error(tmp_path, extra, words):
    with pytest.raises(SweepConfigError) as e:
        load_config(_config(**extra), tmp_path)
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["pareto_accelerator", "pareto_soc"])
def test_the_published_pareto_configs_validate(name):
    cfg = load_config(f"experiments/configs/{name}.yaml")
    assert all(p["name"] == "pareto" and len(p["reference"]) == 3 for p in cfg.problems)


def test_pareto_sweep_report_matches_the_search(tmp_path):
    """A two-trial sweep run without Ray, then its report: the hypervolume in pareto.md is the
    one search() reports for the same problem, agent and seed."""
    from mlsysgym.experiments.pareto_report import is_pareto_sweep, write_pareto_report
    from mlsysgym.experiments.report import load_sweeps

    cfg = load_config(_config(objectives=["distance", "bonus"],
                              directions=["minimize", "maximize"],
                              reference=[3.0, -1.0]), tmp_path / "sweep")
    trials, _ = expand(cfg)
    for t in trials:
        run_trial(t, cfg.output_dir, cfg.name)
    assert is_pareto_sweep(load_sweeps([cfg.output_dir])[0])
    path = write_pareto_report([cfg.output_dir], tmp_path / "report")
    text = path.read_text()
    hvs = [search("random", make_problem(cfg.problems[0]), 12, seed=s).info[
        "hypervolume_normalized"] for s in (0, 1)]
    mean = np.mean(hvs)
    assert f"{mean:.4f} ±" in text and "(n=2)" in text
    assert (tmp_path / "report" / "synthetic_discrete_pareto_hv.png").stat().st_size > 0
    assert (tmp_path / "report" / "synthetic_discrete_pareto_fronts.png").stat().st_size > 0
    # `mlsysgym report` on the sweep writes the same report (it detects the objectives)
    from mlsysgym import cli

    assert cli.main(["report", str(cfg.output_dir), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "pareto.md").read_text().split("## ")[1:] == text.split("## ")[1:]
