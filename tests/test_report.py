"""`mlsysgym report`: lottery table by hand on trials run without Ray, plots written."""

from __future__ import annotations

import mlsysgym.agents  # noqa: F401  (registers the agents)
import pytest
from mlsysgym.experiments.report import ReportError, load_sweeps, lottery_table, write_report
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
