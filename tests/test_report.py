"""`mlsysgym report`: lottery table by hand on trials run without Ray, plots written; the
sequential-problem report by hand on a toy episode problem."""

from __future__ import annotations

import mlsysgym.agents  # noqa: F401  (registers the agents)
import pytest
from mlsysgym.experiments.report import (
    ReportError,
    family_bars,
    load_sweeps,
    lottery_table,
    machine_line,
    stamp_markdown,
    stamp_recorded,
    trial_machines,
    write_provenance,
    write_report,
    write_results,
)
from mlsysgym.experiments.sweep import TrialSpec, run_trial

from mlsysgym.cli import main


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    for batch in (1, 8):
        for seed in (0, 1):
            run_trial(TrialSpec("synthetic-discrete", "random", {"batch_size": batch}, 12, seed), out)
    run_trial(TrialSpec("synthetic-discrete", "ga", {"population": 4}, 12, 0), out)
    return out


def test_lottery_table_by_hand(sweep_dir):
    trials, trajs = load_sweeps([sweep_dir])
    assert len(trials) == 5 and len(trajs) == 5 * 12
    table = lottery_table(trials).set_index("agent")
    rand = trials[trials.agent == "random"]
    means = rand.groupby("hyperparameters")["best_reward"].mean()
    assert table.loc["random", "configs"] == 2 and table.loc["random", "seeds"] == 2
    assert table.loc["random", "best_config_mean"] == pytest.approx(means.max())
    assert table.loc["random", "spread"] == pytest.approx(means.max() - means.min())
    assert table.loc["ga", "spread"] == 0.0


def test_report_files_and_cli(sweep_dir, tmp_path, capsys):
    path = write_report([sweep_dir], tmp_path / "rep")
    text = path.read_text()
    assert "| 12 | random | 2 | 2 |" in text
    for name in ("synthetic_discrete_efficiency.png", "synthetic_discrete_lottery.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 1000
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no sweep directory" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no finished trials"):
        load_sweeps([tmp_path])


FP = {"target_id": "abcdef012345", "machine": {"model_name": "AMD EPYC 9654", "isa_level":
                                               "x86-64-v4", "cores": 2},
      "software": {"mlsysgym": "0.1.0", "commit": "17bb136c9ad6", "lock": "00ff00ff00ff00ff"}}


def test_machine_line_states_cpu_isa_cores_target_and_commit():
    assert machine_line(FP) == ("Machine: AMD EPYC 9654, x86-64-v4, 2 cores, target_id "
                                "`abcdef012345`; mlsysgym 0.1.0 at commit `17bb136c9ad6`, lock "
                                "`00ff00ff00ff00ff`.")
    no_git = {**FP, "software": {"mlsysgym": "0.1.0", "commit": None, "lock": None}}
    assert "commit `unknown`, lock `none`" in machine_line(no_git)
    with pytest.raises(ReportError, match="not a target fingerprint .missing 'machine'"):
        machine_line({"target_id": "x"})


def test_stamp_markdown_puts_the_machine_under_the_title_once():
    line = machine_line(FP)
    stamped = stamp_markdown("# Title\n\nbody\n", FP)
    assert stamped == f"# Title\n\n{line}\n\nbody\n"
    assert stamp_markdown(stamped, FP) == stamped  # restamping does not stack lines
    assert stamp_markdown("| a |\n", FP) == f"{line}\n\n| a |\n"
    # re-rendered from a saved record: its own machine, or none when it recorded none
    assert stamp_recorded("# T\n", {"provenance": {"fingerprint": FP}}) == f"# T\n\n{line}\n"
    assert stamp_recorded("# T\n", {"wall_s": 3.0}) == "# T\n"


def test_write_results_puts_the_four_files_side_by_side(tmp_path):
    import json

    md = write_results(tmp_path / "sub" / "r.md", {"x": 1}, "# R\n\nbody\n",
                       lambda png: family_bars({"a": {"f1": 1.0, "f2": 2.0},
                                                "b": {"f1": 0.5, "f2": 0.0}}, png,
                                               ylabel="y", title="t"), summary={"x": 1})
    assert md == tmp_path / "sub" / "r.md"
    assert md.read_text() == stamp_markdown("# R\n\nbody\n")
    assert json.loads(md.with_suffix(".json").read_text()) == {"x": 1}
    assert md.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    prov = json.loads(md.with_suffix(".provenance.json").read_text())
    assert prov["summary"] == {"x": 1} and "target_id" in prov["fingerprint"]
    assert not write_results(tmp_path / "s.md", {}, "x\n").with_suffix(".png").exists()


def test_report_states_the_trials_machines_and_provenance_json(sweep_dir, tmp_path):
    import json

    from mlsysgym.core.target import fingerprint

    here = fingerprint()
    text = write_report([sweep_dir], tmp_path / "rep").read_text()
    assert f"Trials ran on — {machine_line(here)}" in text
    trials, _ = load_sweeps([sweep_dir])
    assert trial_machines(trials.drop(columns=["fingerprint"])) == [
        "Machine: not recorded (trials written before fingerprints)."]
    path = write_provenance(tmp_path / "x" / "run.provenance.json", evaluator_id="toy@2", seed=3)
    saved = json.loads(path.read_text())
    assert saved["fingerprint"]["target_id"] == here["target_id"]
    assert (saved["evaluator_id"], saved["seed"]) == ("toy@2", 3)


def test_report_and_sweep_defaults_are_in_the_working_directory(tmp_path, monkeypatch):
    import inspect

    from mlsysgym.experiments.sweep import load_config

    assert inspect.signature(write_report).parameters["out_dir"].default == "results/agent_study"
    monkeypatch.chdir(tmp_path)
    cfg = load_config({"name": "s", "problems": ["synthetic-discrete"], "budget": 2,
                       "agents": ["random"]}, check_names=False)
    assert cfg.output_dir == tmp_path / "results" / "sweeps" / "s"


# ---- the sequential-problem report ---------------------------------------------------------------
class ToyEpisodes:
    """3 steps of 0/1: a 1 at step 0 pays 2 but masks every later 1 (each pays 1.5); the final
    info's ``cost`` is 10 − return. [1, 0, 0] returns 2 (cost 8), [0, 1, 1] returns 3 (cost 7)."""

    def __init__(self) -> None:
        import gymnasium as gym
        import numpy as np

        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.unwrapped = self

    def reset(self, seed=None, options=None):
        import numpy as np

        self.t, self.blocked, self.total = 0, False, 0.0
        return np.zeros(1, np.float32), {}

    def action_masks(self):
        import numpy as np

        return np.array([True, not self.blocked])

    def step(self, action):
        import numpy as np

        r = 0.0 if action == 0 else (2.0 if self.t == 0 else 1.5)
        self.blocked = self.blocked or (action == 1 and self.t == 0)
        self.t += 1
        self.total += r
        return np.zeros(1, np.float32), r, self.t == 3, False, {"cost": 10.0 - self.total}


def _toy_registry():
    from mlsysgym.agents.base import register_agent
    from mlsysgym.agents.problems import PROBLEMS, register_problem
    from mlsysgym.agents.sequential import EpisodeProblem, episode_design

    if "toy-episodes" in PROBLEMS:
        return

    @register_problem("toy-episodes")
    def toy(**kwargs):
        return EpisodeProblem("toy", "toy", ToyEpisodes)

    def plays(*episodes, proof=None):
        def agent(problem, rng):
            if proof:
                problem.prove(*proof)
            for e in episodes:
                problem.evaluate([episode_design(e)])
        return agent

    register_agent("toy_greedy", kinds=("toy",))(plays([1, 0, 0]))
    register_agent("toy_exact", kinds=("toy",))(plays([0, 1, 1], proof=("optimal", 3.0)))
    register_agent("toy_climb", kinds=("toy",))(plays([0, 0, 0], [1, 0, 0], [0, 1, 1]))
    register_agent("toy_idle", kinds=("toy",))(plays([0, 0, 0]))


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory):
    _toy_registry()
    out = tmp_path_factory.mktemp("toy")
    for agent in ("toy_greedy", "toy_exact", "toy_climb", "toy_idle"):
        run_trial(TrialSpec("toy-episodes", agent, {}, 10, 0), out, sweep="toy")
    return out


def test_problem_report_by_hand(toy_sweep, tmp_path):
    from mlsysgym.experiments.report import (
        ProblemReportSpec,
        is_sequential,
        problem_summary,
        problem_table,
    )

    trials, trajs = load_sweeps([toy_sweep])
    assert is_sequential(trajs)
    spec = ProblemReportSpec("cost", minimize=True, baseline="toy_greedy", exact="toy_exact")
    table = problem_table(trials, trajs, spec).set_index("arm")
    assert list(table.index) == ["toy_greedy", "toy_climb", "toy_idle", "toy_exact"]
    assert table.loc["toy_idle", "best"] == 10.0 and table.loc["toy_climb", "best"] == 7.0
    assert table.loc["toy_idle", "vs_baseline_pct"] == pytest.approx(-25.0)      # (8 − 10) / 8
    assert table.loc["toy_climb", "vs_baseline_pct"] == pytest.approx(12.5)      # (8 − 7) / 8
    assert table.loc["toy_idle", "gap_pct"] == pytest.approx(300 / 7)            # (10 − 7) / 7
    # 90 % of the 8 → 7 gap (cost 7.1) is first reached at the climber's third evaluation
    assert table.loc["toy_climb", "reach_evals"] == 3 and table.loc["toy_idle", "reached"] == 0
    assert table.loc["toy_exact", "reach_evals"] == 1
    status = "optimal" if "status" in trials.columns else "—"
    assert set(table["exact_status"]) == {status}
    summary = problem_summary(table.reset_index(), spec).set_index("arm")
    assert summary.loc["toy_climb", "improved"] == 1 and summary.loc["toy_idle", "improved"] == 0
    # head to head without the exact agent the climber is strictly best; with it, tied
    assert summary.loc["toy_climb", "best_of"] == 1 and summary.loc["toy_climb", "strictly_best"] == 1
    assert not summary.loc["toy_exact", "compared"]
    both = ProblemReportSpec("cost", True, "toy_greedy", "toy_exact", compare=("toy_climb", "toy_exact"))
    summary = problem_summary(table.reset_index(), both).set_index("arm")
    assert summary.loc["toy_climb", "best_of"] == 1 and summary.loc["toy_climb", "strictly_best"] == 0
    # the same report as maximizing the reward (the return): the same percentages' signs
    up = problem_table(trials, trajs, ProblemReportSpec("reward", baseline="toy_greedy",
                                                        exact="toy_exact")).set_index("arm")
    assert up.loc["toy_climb", "vs_baseline_pct"] == pytest.approx(50.0)         # (3 − 2) / 2
    assert up.loc["toy_idle", "gap_pct"] == pytest.approx(100.0)                 # (3 − 0) / 3


def test_problem_report_files_and_cli(toy_sweep, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(toy_sweep), "--out", str(out), "--metric", "cost", "--minimize",
                 "--baseline", "toy_greedy", "--exact", "toy_exact", "--title", "Toy"]) == 0
    text = (out / "toy.md").read_text()
    assert text.startswith("# Toy\n\nMachine: ") and "Trials ran on — Machine: " in text
    assert "| toy | toy_climb | 7 | +12.50% | +0.00% |" in text and "| 3 |" in text
    assert "- toy_climb: better than toy_greedy on 1/1 instances (mean +12.50%)" in text
    assert (out / "toy.png").stat().st_size > 1000
    assert main(["report", str(toy_sweep), "--out", str(out), "--metric", "nope"]) == 2
    assert "no metric 'nope'" in capsys.readouterr().err
    assert main(["report", str(toy_sweep), "--out", str(out), "--baseline", "heft"]) == 2
    assert "baseline agent 'heft' has no trials" in capsys.readouterr().err


def test_report_says_which_runs_a_scheduler_stopped_early(sweep_dir, tmp_path):
    """Ledger rows marked stopped_early (ASHA) are counted in the report, per agent."""
    import shutil

    import pandas as pd
    from mlsysgym.core.dataset import write_part

    d = tmp_path / "sweep"
    shutil.copytree(sweep_dir, d)
    part = min((d / "trials").glob("part-*.parquet"))
    row = pd.read_parquet(part)
    row["stopped_early"] = True
    write_part(part, row)
    text = write_report([d], tmp_path / "rep").read_text()
    agent = row["agent"].iloc[0]
    assert f"Stopped early by the sweep's scheduler: 1 of 5 runs ({agent} × 1)" in text
    assert "Stopped early" not in write_report([sweep_dir], tmp_path / "rep2").read_text()
