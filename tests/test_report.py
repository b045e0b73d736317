"""`mlsysgym report`: lottery table by hand on trials run without Ray, plots written."""

from __future__ import annotations

import mlsysgym.agents  # noqa: F401  (registers the agents)
import pytest
from mlsysgym.experiments.report import (
    ReportError,
    load_sweeps,
    lottery_table,
    machine_line,
    stamp_markdown,
    stamp_recorded,
    trial_machines,
    write_provenance,
    write_report,
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


@pytest.mark.parametrize("module, attr, default", [
    ("mlsysgym.experiments.malloc_experiment", "RESULTS", "results/malloc"),
    ("mlsysgym.experiments.malloc_mcts_variants", "RESULTS", "results/malloc_mcts_variants"),
    ("mlsysgym.experiments.scheduling_experiment", "RESULTS_DIR", "results/scheduling"),
    ("mlsysgym.experiments.scheduling_stream", "RESULTS_DIR", "results/scheduling_stream"),
])
def test_experiments_default_to_results_in_the_working_directory(module, attr, default):
    import importlib
    from pathlib import Path

    assert getattr(importlib.import_module(module), attr) == Path(default)  # never the package


def test_report_and_sweep_defaults_are_in_the_working_directory(tmp_path, monkeypatch):
    import inspect

    from mlsysgym.experiments.sweep import load_config

    assert inspect.signature(write_report).parameters["out_dir"].default == "results/agent_study"
    monkeypatch.chdir(tmp_path)
    cfg = load_config({"name": "s", "problems": ["synthetic-discrete"], "budget": 2,
                       "agents": ["random"]}, check_names=False)
    assert cfg.output_dir == tmp_path / "results" / "sweeps" / "s"
