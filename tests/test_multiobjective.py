"""Pareto utilities (hand-computed hypervolumes, non-dominated sorting) and multi-objective search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from mlsysgym.agents import AGENTS, search
from mlsysgym.agents.base import Outcome
from mlsysgym.agents.multiobjective import (
    INFEASIBLE_PENALTY,
    MultiObjectiveProblem,
    multiobjective,
    pareto_search,
    pareto_summary,
)
from mlsysgym.agents.pareto import (
    ParetoError,
    hypervolume,
    hypervolume_curve,
    non_dominated_sort,
    normalize,
    pareto_mask,
    to_minimization,
)
from mlsysgym.agents.problems import make_problem
from mlsysgym.core.params import Integer
from mlsysgym.core.space import DesignSpace


# ---- hypervolume, by hand -------------------------------------------------------------------
def test_hypervolume_2d_staircase():
    # boxes [1,4]x[3,4], [2,4]x[2,4], [3,4]x[1,4]: 3 + 4 + 3 minus overlaps = 1*1 + 2*1 + 3*1 = 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    # a dominated point and a point outside the reference change nothing
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[1, 1]], [3, 2]) == pytest.approx(2.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def test_hypervolume_3d_by_inclusion_exclusion():
    # three boxes of volume 2x1x1... each [p, (3,3,3)]: (1,2,2) → 2*1*1 = 2, likewise the others;
    # each pair overlaps in [2,3]^3 (volume 1), and so do all three: 3*2 - 3*1 + 1 = 4
    pts = [[1, 2, 2], [2, 1, 2], [2, 2, 1]]
    assert hypervolume(pts, [3, 3, 3]) == pytest.approx(4.0)
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == pytest.approx(6.0)


def test_hypervolume_3d_matches_cell_count():
    # integer points: the hypervolume is the number of unit cells dominated by some point
    rng = np.random.default_rng(0)
    for _ in range(5):
        pts = rng.integers(0, 6, size=(12, 3))
        ref = np.array([6, 6, 6])
        cells = np.array(list(itertools.product(range(6), repeat=3)))  # lower corners
        covered = (pts[None, :, :] <= cells[:, None, :]).all(-1).any(1)
        assert hypervolume(pts, ref) == pytest.approx(float(covered.sum()))


def test_hypervolume_curve_and_normalization():
    pts = np.array([[3, 1], [5, 5], [1, 3], [2, 2], [2, 2]], dtype=float)
    curve = hypervolume_curve(pts, [4, 4], feasible=[True, True, True, False, True])
    # (3,1): 1*3 = 3; (5,5) outside; (1,3): + 2*1 = 5; (2,2) infeasible; (2,2): + 1*1 = 6
    assert curve.tolist() == pytest.approx([3, 3, 5, 5, 6])
    assert hypervolume(normalize(pts[[0, 2, 3]], [4, 4]), [1, 1]) == pytest.approx(6 / 16)


def test_to_minimization_and_errors():
    assert to_minimization([[1.0, 2.0]], ["minimize", "maximize"]).tolist() == [[1.0, -2.0]]
    with pytest.raises(ParetoError):
        to_minimization([[1.0, 2.0]], ["minimize", "up"])
    with pytest.raises(ParetoError):
        hypervolume([[1, 1, 1, 1]], [2, 2, 2, 2])


# ---- non-dominated sorting ------------------------------------------------------------------
def test_non_dominated_sort_ranks():
    pts = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [2, 2], [5, 5], [4, 4]])
    # front 0: (1,4), (2,2) twice (equal points do not dominate each other), (4,1);
    # front 1: (3,3); front 2: (4,4); front 3: (5,5)
    assert non_dominated_sort(pts).tolist() == [0, 0, 0, 1, 0, 3, 2]
    assert pareto_mask(pts).tolist() == [True, True, True, False, True, False, False]


def test_non_dominated_sort_agrees_with_pairwise_definition():
    pts = np.random.default_rng(1).integers(0, 5, size=(40, 3))
    ranks = non_dominated_sort(pts)
    for i, j in itertools.product(range(40), repeat=2):
        if np.all(pts[i] <= pts[j]) and np.any(pts[i] < pts[j]):
            assert ranks[i] < ranks[j]


# ---- the problem wrapper and searches -------------------------------------------------------
class TwoObjective:
    """x in 0..9, y in 0..9: f1 = x, f2 = 9 - x + y (front: y = 0); x + y > 12 fails the budget
    flag ``infeasible``."""

    name = "two-objective"
    space = DesignSpace([Integer("x", 0, 9), Integer("y", 0, 9)])

    def evaluate(self, designs):
        metrics = [{"f1": float(d["x"]), "f2": float(9 - d["x"] + d["y"]),
                    "infeasible": float(d["x"] + d["y"] > 12)} for d in designs]
        return Outcome(np.zeros(len(designs)), metrics, np.zeros(len(designs), dtype=bool))


def _toy(reference=(10.0, 19.0)) -> MultiObjectiveProblem:
    return multiobjective(TwoObjective(), ["f1", "f2"], reference=list(reference))


def test_wrapper_rewards_and_feasibility():
    p = _toy()
    out = p.evaluate([{"x": 1, "y": 0}, {"x": 9, "y": 9}])
    # weighted sum of normalized objectives: -(0.5 * 1/10 + 0.5 * 8/19)
    assert out.rewards[0] == pytest.approx(-(0.05 + 4 / 19))
    assert out.rewards[1] == pytest.approx(-(0.45 + 0.5 * 9 / 19) - INFEASIBLE_PENALTY)
    assert [m["pareto_feasible"] for m in out.metrics] == [1.0, 0.0]


def test_summary_front_is_non_dominated_and_feasible_only():
    p = _toy()
    designs = [{"x": 9, "y": 0}, {"x": 9, "y": 9}, {"x": 2, "y": 3}, {"x": 2, "y": 0},
               {"x": 5, "y": 0}]
    out = p.evaluate(designs)
    s = pareto_summary(p, designs, out.metrics, out.failed)
    # (9,9) gives (9, 9) but is infeasible; (2,3) → (2,10) is dominated by (2,0) → (2,7)
    assert s["pareto_indices"] == [0, 3, 4]
    # front (2,7), (5,4), (9,0) against (10,19): 3*12 + 4*15 + 1*19 = 115
    assert s["hypervolume"] == pytest.approx(115.0)
    assert s["hypervolume_normalized"] == pytest.approx(115 / 190)
    assert s["hypervolume_curve"][-1] == pytest.approx(115 / 190)


@pytest.mark.parametrize("agent", ["nsga2", "random", "ga"])
def test_tiny_search_returns_a_feasible_non_dominated_front(agent):
    result = pareto_search(agent, _toy(), 40, seed=0)
    info = result.info
    front = np.array([[f["f1"], f["f2"]] for f in info["pareto_front"]])
    assert len(front) >= 2
    assert pareto_mask(front).all()  # mutually non-dominated
    for i in info["pareto_indices"]:
        d = result.designs[i]
        assert d["x"] + d["y"] <= 12 and result.metrics[i]["pareto_feasible"] == 1.0
    curve = np.array(info["hypervolume_curve"])
    assert len(curve) == 40 and np.all(np.diff(curve) >= 0)
    assert curve[-1] == pytest.approx(info["hypervolume_normalized"])


def test_nsga2_reports_its_front_through_plain_search():
    result = search("nsga2", _toy(), 30, seed=1, population_size=10)
    assert result.n_evaluations == 30 and result.info["hypervolume"] > 0
    assert {"nsga2", "qnehvi", "qparego"} <= set(AGENTS)


def test_env_budget_makes_designs_infeasible():
    p = multiobjective({"name": "env:mlsysgym/Accelerator-v0", "model": "resnet18",
                        "area_budget_mm2": 5.0}, ["latency_ms", "area_mm2"])
    designs = p.space.sample(np.random.default_rng(0), 60)
    out = p.evaluate(designs)
    area = np.array([m["area_mm2"] for m in out.metrics])
    feasible = np.array([m["pareto_feasible"] for m in out.metrics]) == 1.0
    assert (area > 5.0).any() and (area <= 5.0).any()
    assert np.array_equal(feasible, area <= 5.0)
    s = pareto_summary(p, designs, out.metrics, out.failed)
    assert all(f["area_mm2"] <= 5.0 for f in s["pareto_front"])


def test_pareto_problem_spec_and_errors():
    p = make_problem({"name": "pareto", "of": "synthetic-discrete",
                      "objectives": ["distance", "bonus"], "directions": ["minimize", "maximize"],
                      "reference": {"distance": 3.0, "bonus": -1.0}})
    assert isinstance(p, MultiObjectiveProblem) and p.ref_min.tolist() == [3.0, 1.0]
    with pytest.raises(ParetoError):
        multiobjective(TwoObjective(), ["f1", "nope"])  # unknown metric for the default reference
    with pytest.raises(ParetoError):
        multiobjective(TwoObjective(), ["f1", "f2"], ["minimize"], reference=[1, 1])


@pytest.mark.parametrize("agent", ["qnehvi", "qparego"])
def test_botorch_agents_return_a_front(agent):
    result = search(agent, _toy(), 14, seed=0, n_init=6, q=4, mc_samples=16)
    front = np.array([[f["f1"], f["f2"]] for f in result.info["pareto_front"]])
    assert result.n_evaluations == 14 and len(front) >= 2 and pareto_mask(front).all()
    assert len({tuple(d.values()) for d in result.designs}) == 14  # no design evaluated twice


def test_search_with_objectives_returns_the_front_for_any_agent():
    """``search(..., objectives=[...])`` is the multi-objective search of the one API: the
    result's info holds a mutually non-dominated, feasible front and its hypervolume."""
    from mlsysgym.agents import search
    from mlsysgym.agents.problems import make_problem

    problem = make_problem({"name": "env:mlsysgym/Accelerator-v0", "model": "alexnet"})
    r = search("random", problem, 30, seed=0, objectives=["latency_ms", "energy_uj"])
    front = np.array([[r.metrics[i]["latency_ms"], r.metrics[i]["energy_uj"]]
                      for i in r.info["pareto_indices"]])
    assert r.n_evaluations == 30 and len(front) >= 1 and r.info["hypervolume"] > 0
    for a in front:  # no front point dominates another
        assert not any(np.all(b <= a) and np.any(b < a) for b in front)
