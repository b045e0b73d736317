"""``mlsysgym list`` and ``mlsysgym search``: the registries from the command line, one search
run without a sweep config."""

from __future__ import annotations

import json

import pytest
from mlsysgym.core.dataset import read_dataset

from mlsysgym.cli import main


@pytest.mark.parametrize("what, expected", [
    ("envs", "mlsysgym/Accelerator-v0"), ("evaluators", "accelerator"),
    ("problems", "synthetic-discrete"), ("workloads", "resnet50"),
])
def test_list_names_what_is_registered(capsys, what, expected):
    assert main(["list", what, "--json"]) == 0
    assert expected in json.loads(capsys.readouterr().out)


def test_list_agents_says_which_problem_kinds_each_searches(capsys):
    assert main(["list", "agents"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "random (design)" in lines and "random_episodes (episode)" in lines


def test_search_one_run_with_hyperparameters_and_parquet_trajectory(capsys, tmp_path):
    assert main(["search", "random", "synthetic-discrete", "--budget", "12", "--seed", "3",
                 "--hp", "batch_size=4", "-o", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 12 and out["seed"] == 3 and out["best_reward"] <= 1.0
    frame = read_dataset(tmp_path)
    assert len(frame) == 12 and frame["best_so_far"].iloc[-1] == out["best_reward"]


def test_search_sequential_problem_from_a_json_spec(capsys):
    spec = json.dumps({"name": "malloc", "model": "alexnet", "capacity": 0.1})
    assert main(["search", "random_episodes", spec, "--budget", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 3 and len(out["best_design"]["actions"]) > 0


@pytest.mark.parametrize("argv, message", [
    (["search", "ga", '{"name": "malloc", "model": "alexnet", "capacity": 0.1}'],
     "cannot search a 'malloc' problem"),
    (["search", "random", "synthetic-discrete", "--hp", "nope=1"], "unexpected keyword"),
    (["search", "random", "synthetic-discrete", "--hp", "novalue"], "--hp takes KEY=VALUE"),
    (["search", "random", "{not json"], "not valid JSON"),
    (["search", "telepathy", "synthetic-discrete"], "unknown agent 'telepathy'"),
    (["search", "random", "no-such-problem"], "unknown problem 'no-such-problem'"),
])
def test_search_bad_input_is_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_experiment_scripts_are_reachable_from_the_cli(capsys):
    from mlsysgym.commands.experiment_cmds import EXPERIMENTS

    for name in EXPERIMENTS:
        with pytest.raises(SystemExit) as done:
            main(["experiment", name, "--help"])
        assert done.value.code == 0
        assert "usage:" in capsys.readouterr().out
