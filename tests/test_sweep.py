"""Ray Tune sweeps: config validation (one-line errors), expansion into trials, Parquet results,
and resume after an interruption (a trial limit in-process; a killed subprocess) with no finished
trial lost, redone or duplicated."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlsysgym.agents.base import AGENTS, register_agent
from mlsysgym.experiments.sweep import (
    LedgerMismatchError,
    SweepConfigError,
    SweepError,
    TrialSpec,
    check_runnable,
    completed,
    expand,
    load_config,
    load_results,
    run_sweep,
    run_trial,
    trial_result,
)

from mlsysgym.cli import main as cli_main

try:  # Tune workers cannot import this module: ship its agent by value
    from ray import cloudpickle as _cp

    _cp.register_pickle_by_value(sys.modules[__name__])
except ImportError:  # pragma: no cover
    pass


if "sweep_random" not in AGENTS:
    @register_agent("sweep_random")
    def _sweep_random(problem, rng, batch_size: int = 2, scale: float = 1.0) -> None:
        """Uniform random sampling in batches (a stand-in for the real agents)."""
        while True:
            problem.evaluate(problem.space.sample(rng, n=batch_size))


def base_config(tmp_path: Path, **over) -> dict:
    cfg = {
        "name": "t", "output_dir": str(tmp_path / "out"), "problems": ["synthetic-discrete"],
        "budget": 6, "seeds": [0],
        "agents": [{"name": "sweep_random", "hyperparameters": {"batch_size": [1, 2, 3]}},
                   {"name": "sweep_random", "num_samples": 2,
                    "hyperparameters": {"batch_size": 2, "scale": {"uniform": [0.0, 1.0]}}}],
        "max_concurrent_trials": 2,
    }
    cfg.update(over)
    return cfg


# ---- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"agents": [{"name": "no_such_agent"}]}, "unknown agent 'no_such_agent'"),
    ({"problems": ["no-such-problem"]}, "unknown problem 'no-such-problem'"),
    ({"budget": None}, "budget must be an integer"),
    ({"colour": "red"}, "unknown config key(s) ['colour']"),
    ({"agents": [{"name": "sweep_random", "hyperparameters": {"b": {"uniform": [2, 1]}},
                  "num_samples": 2}]}, "uniform needs low < high"),
    ({"agents": [{"name": "sweep_random", "hyperparameters": {"b": {"int": [1, 9]}}}]},
     "set num_samples >= 1"),
    ({"agents": [{"name": "sweep_random", "hyperparams": {}}]}, "unknown key(s) ['hyperparams']"),
    ({"seeds": "many"}, "seeds must be an integer or a list"),
    ({"budget": {"minutes": 1}}, "unknown budget key(s) ['minutes']"),
    ({"budget": {"seconds": -1}}, "budget seconds must be positive"),
    ({"budget": 0}, "budget must be a positive number of evaluations"),
    ({"max_failures": -1}, "max_failures must be a non-negative integer"),
    ({"max_failures": "twice"}, "max_failures must be a non-negative integer"),
])
def test_bad_config_is_a_one_line_error(tmp_path, change, message):
    cfg = {**base_config(tmp_path), **change}
    with pytest.raises(SweepConfigError) as e:
        load_config(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_field_and_cli_exit_code(tmp_path, capsys):
    cfg = base_config(tmp_path)
    del cfg["agents"]
    with pytest.raises(SweepConfigError, match="missing the required field 'agents'"):
        load_config(cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nproblems: [synthetic-discrete]\nbudget: 5\n"
                   "agents: [{name: definitely_not_an_agent}]\n")
    assert cli_main(["sweep", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsysgym: error: unknown agent 'definitely_not_an_agent'")
    assert "\n" not in err
    assert cli_main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "no such sweep config file" in capsys.readouterr().err


def test_agent_without_an_implementation_for_the_problem_kind_is_refused(tmp_path):
    # random_episodes searches env episodes only; the synthetic problem is a design problem
    cfg = load_config(base_config(tmp_path, agents=["random_episodes"]))
    with pytest.raises(SweepConfigError) as e:
        check_runnable(cfg)
    msg = str(e.value)
    assert msg.startswith("agent 'random_episodes' cannot search the 'design' problem "
                          "'synthetic-discrete'; agents for it: ") and "\n" not in msg
    assert "random_episodes" not in msg.split("agents for it: ")[1].split(", ")


def test_example_config_parses():
    cfg = load_config(Path(__file__).parents[1] / "experiments/configs/synthetic.yaml",
                      check_names=False)
    trials, groups = expand(cfg)
    assert len(trials) == 2 * (2 + 2) * 3 and len(groups) == 2 * 3
    assert all(g.num_samples == 4 for g in groups)


def test_expand_grid_and_optuna_groups(tmp_path):
    cfg = load_config(base_config(tmp_path, budget=[4, 8], seeds=2))
    trials, groups = expand(cfg)
    assert len(trials) == 3 * 2 * 2  # batch sizes × budgets × seeds
    assert len({t.key for t in trials}) == len(trials)
    assert len(groups) == 2 * 2 and {g.seed for g in groups} == {0, 1}
    again, _ = expand(load_config(base_config(tmp_path, budget=[4, 8], seeds=2)))
    assert [t.key for t in again] == [t.key for t in trials]  # keys are stable across runs


def test_run_trial_writes_its_row_and_trajectory(tmp_path):
    spec = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 3}, 7, 1)
    row = run_trial(spec, tmp_path, sweep="s")
    assert row["n_evaluations"] == 7 and row["trial_key"] == spec.key
    assert row["hp.batch_size"] == 3 and row["best_reward"] <= 1.0
    trials, traj = load_results(tmp_path)
    assert list(trials["trial_key"]) == [spec.key] and len(traj) == 7
    assert traj["best_so_far"].iloc[-1] == row["best_reward"]
    assert set(completed(tmp_path)) == {spec.key}
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically, no leftovers


def test_trial_result_travels_in_the_tune_result_and_the_driver_writes_it(tmp_path):
    """The worker writes nothing: its row and trajectory ride in the Tune result; the driver's
    callback takes them out (Tune's loggers never see them) and writes the same Parquet as
    run_trial; a retried trial rewrites its own part (no duplicate)."""
    from mlsysgym.experiments.sweep.collect import PAYLOAD, pack, writer_callback

    spec = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 3}, 7, 1)
    row, traj = trial_result(spec, sweep="s")
    assert not list(tmp_path.iterdir())  # nothing written by the trial itself
    assert row["n_evaluations"] == 7 and len(traj) == 7
    writer = writer_callback(str(tmp_path / "driver"))
    for _ in range(2):  # the second time: a trial retried after its node died
        result = {"best_reward": row["best_reward"], PAYLOAD: pack(row, traj)}
        writer.on_trial_result(iteration=1, trials=[], trial=None, result=result)
        assert PAYLOAD not in result and result["best_reward"] == row["best_reward"]
    writer.on_trial_result(iteration=2, trials=[], trial=None, result={"best_reward": 0.5})
    trials, got = load_results(tmp_path / "driver")
    assert list(trials["trial_key"]) == [spec.key] and len(got) == 7
    assert got["best_so_far"].iloc[-1] == row["best_reward"]
    direct = run_trial(spec, tmp_path / "direct", sweep="s")
    same, _ = load_results(tmp_path / "direct")
    drop = ["finished_at", "wall_time_s"]
    assert trials.drop(columns=drop).equals(same.drop(columns=drop))
    assert direct["best_design"] == row["best_design"]


def test_max_failures_default_and_setting(tmp_path):
    assert load_config(base_config(tmp_path)).max_failures == 1
    assert load_config(base_config(tmp_path, max_failures=3)).max_failures == 3


def test_seconds_budget_in_config_and_trial(tmp_path):
    cfg = load_config(base_config(tmp_path, budget=[5, {"seconds": 0.3},
                                                    {"evaluations": 4, "seconds": 30}]))
    assert cfg.budgets == [(5, None), (None, 0.3), (4, 30.0)]
    trials, _ = expand(cfg)
    assert {(t.budget, t.budget_s) for t in trials} == set(cfg.budgets)
    spec = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 1}, None, 0,
                     budget_s=0.3)
    row = run_trial(spec, tmp_path)
    assert row["budget"] is None and row["budget_s"] == 0.3
    assert row["n_evaluations"] > 4 and row["wall_time_s"] < 0.3 + 2.0  # stops on time (not after 1000s of evaluations)
    with_eval = run_trial(TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 1},
                                    4, 0, budget_s=30.0), tmp_path)
    assert with_eval["n_evaluations"] == 4  # whichever runs out first


def test_ledger_row_records_where_it_was_made(tmp_path):
    import json

    from mlsysgym.agents.problems import make_problem
    from mlsysgym.core.target import fingerprint

    import mlsysgym

    spec = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 2}, 4, 0)
    row = run_trial(spec, tmp_path, sweep="s")
    evaluator = make_problem("synthetic-discrete").evaluator
    fp = fingerprint()
    assert row["evaluator_id"] == evaluator.id and row["evaluator_id"].startswith("synthetic@1#")
    assert row["evaluator_version"] == "1"
    assert row["target_id"] == fp["target_id"] and len(row["target_id"]) == 12
    assert row["mlsysgym_version"] == mlsysgym.__version__
    assert row["commit"] == (fp["software"]["commit"] or "")
    stored = load_results(tmp_path)[0].iloc[0]
    assert json.loads(stored["fingerprint"])["machine"] == json.loads(json.dumps(fp["machine"]))
    assert stored["target_id"] == fp["target_id"]


# ---- resume refuses to mix evaluator versions or targets -------------------------------------
def _finished_grid(tmp_path: Path, n_done: int = 3):
    """A grid-only sweep (3 trials) whose first ``n_done`` trials ran in-process (no Ray)."""
    cfg = load_config(base_config(tmp_path, agents=[
        {"name": "sweep_random", "hyperparameters": {"batch_size": [1, 2, 3]}}]))
    trials, _ = expand(cfg)
    for t in trials[:n_done]:
        run_trial(t, cfg.output_dir, sweep=cfg.name)
    return cfg, trials


def _set_ledger(out: Path, **columns) -> None:
    """Overwrite columns of every ledger row (None drops the column: a pre-fingerprint row)."""
    import pandas as pd

    for f in (out / "trials").glob("part-*.parquet"):
        frame = pd.read_parquet(f)
        for k, v in columns.items():
            frame = frame.drop(columns=[k]) if v is None else frame.assign(**{k: v})
        frame.to_parquet(f, index=False)


def test_resume_same_evaluator_and_target_is_allowed(tmp_path):
    cfg, _ = _finished_grid(tmp_path)
    summary = run_sweep(cfg, resume=True, progress=False)  # nothing left: Ray never starts
    assert (summary.total, summary.skipped, summary.ran, summary.remaining) == (3, 3, 0, 0)


def test_resume_refuses_another_evaluator_version(tmp_path, monkeypatch):
    from mlsysgym.agents.problems import SyntheticEvaluator, make_problem

    cfg, _ = _finished_grid(tmp_path)
    old_id = make_problem("synthetic-discrete").evaluator.id
    monkeypatch.setattr(SyntheticEvaluator, "version", "2")
    new_id = make_problem("synthetic-discrete").evaluator.id
    assert old_id != new_id and new_id.startswith("synthetic@2#")
    with pytest.raises(LedgerMismatchError) as e:
        run_sweep(cfg, resume=True, progress=False)
    msg = str(e.value)
    assert f"made by evaluator {old_id} but this run uses {new_id}" in msg
    assert "'synthetic-discrete'" in msg and "--allow-mixed" in msg and "\n" not in msg
    summary = run_sweep(cfg, resume=True, progress=False, allow_mixed=True)
    assert (summary.skipped, summary.ran, summary.remaining) == (3, 0, 0)


@pytest.mark.parametrize("recorded, shown", [("000000000000", "000000000000"),
                                             (None, "unrecorded")])
def test_resume_refuses_another_target(tmp_path, recorded, shown):
    from mlsysgym.core.target import fingerprint

    cfg, trials = _finished_grid(tmp_path, n_done=2)
    _set_ledger(cfg.output_dir, target_id=recorded)
    here = fingerprint()["target_id"]
    with pytest.raises(LedgerMismatchError) as e:
        run_sweep(cfg, resume=True, progress=False)
    assert f"made on target_id {shown} but this machine is target_id {here}" in str(e.value)
    assert "\n" not in str(e.value)
    # allowed: the 2 finished trials are kept, the third is left (max_trials=0: no Ray run)
    summary = run_sweep(cfg, resume=True, progress=False, allow_mixed=True, max_trials=0)
    assert (summary.total, summary.skipped, summary.ran, summary.remaining) == (3, 2, 0, 1)
    assert set(completed(cfg.output_dir)) == {t.key for t in trials[:2]}


def test_cli_resume_mixed_ledger_exit_codes(tmp_path, capsys):
    import yaml

    cfg, _ = _finished_grid(tmp_path)
    _set_ledger(cfg.output_dir, target_id="0123456789ab")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path, agents=[
        {"name": "sweep_random", "hyperparameters": {"batch_size": [1, 2, 3]}}])))
    assert cli_main(["sweep", str(path), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsysgym: error: cannot resume") and "0123456789ab" in err
    assert "\n" not in err
    assert cli_main(["sweep", str(path), "--resume", "--allow-mixed", "--no-progress"]) == 0
    assert "already done 3, remaining 0 of 3" in " ".join(capsys.readouterr().out.split())


# ---- running and resuming --------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_interrupted_by_trial_limit_then_resumed(ray_session, tmp_path):
    cfg = load_config(base_config(tmp_path))
    grid, groups = expand(cfg)
    first = run_sweep(cfg, max_trials=4, progress=False)  # 3 grid trials + 1 of 2 Optuna
    assert (first.ran, first.skipped, first.remaining, first.errors) == (4, 0, 1, [])
    before, _ = load_results(cfg.output_dir)
    assert {t.key for t in grid} <= set(before["trial_key"])
    assert (before["group"] == groups[0].key).sum() == 1

    with pytest.raises(SweepError, match="pass --resume"):
        run_sweep(cfg, progress=False)

    second = run_sweep(cfg, resume=True, progress=False)
    assert (second.ran, second.skipped, second.remaining, second.errors) == (1, 4, 0, [])
    after, traj = load_results(cfg.output_dir)
    assert len(after) == 5 and after["trial_key"].is_unique
    assert set(before["trial_key"]) < set(after["trial_key"])
    old = after.set_index("trial_key").loc[before["trial_key"], "finished_at"]
    assert list(old) == list(before["finished_at"])  # finished trials were not redone
    assert (after["group"] == groups[0].key).sum() == 2  # the Optuna search got its 2 samples
    assert (after["n_evaluations"] == 6).all() and after["best_reward"].le(1.0).all()
    assert len(traj) == 5 * 6 and set(traj["trial_key"]) == set(after["trial_key"])
    assert {"reward", "best_so_far", "dataflow", "pes", "tile"} <= set(traj.columns)
    assert list((cfg.output_dir / "tune").iterdir())  # Tune's own result directories
    logged = [f for f in (cfg.output_dir / "tune").rglob("*") if f.is_file()]
    assert logged and not any(b"mlsysgym_trial" in f.read_bytes() for f in logged)  # popped

    third = run_sweep(cfg, resume=True, progress=False)  # nothing left to do
    assert (third.ran, third.skipped, third.remaining) == (0, 5, 0)


PLUGIN = '''
import time
from mlsysgym.agents.base import register_agent


@register_agent("slow_random")
def slow_random(problem, rng, batch_size=1, sleep_s=0.0):
    while True:
        time.sleep(sleep_s)
        problem.evaluate(problem.space.sample(rng, n=batch_size))
'''


@pytest.mark.slow
def test_sweep_subprocess_killed_then_resumed(tmp_path):
    """Kill a running ``mlsysgym sweep`` (and the Ray it started) mid-way; ``--resume`` runs
    exactly the trials that had not finished."""
    (tmp_path / "sweep_plugin.py").write_text(PLUGIN)
    out = tmp_path / "out"
    config = tmp_path / "sweep.yaml"
    config.write_text(textwrap.dedent(f"""
        name: killed
        output_dir: {out}
        problems: [synthetic-discrete]
        budget: 4
        seeds: [0, 1, 2]
        imports: [sweep_plugin]
        max_concurrent_trials: 1
        agents:
          - name: slow_random
            hyperparameters: {{sleep_s: 0.5, batch_size: [1, 2]}}
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "mlsysgym.cli", "sweep", str(config),
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ledger = out / "trials"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger.is_dir() and len(list(ledger.glob("part-*.parquet"))) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Ray and its trial workers
        proc.wait()
    before, _ = load_results(out)
    expected = {t.key for t in expand(load_config(config, check_names=False))[0]}
    assert len(expected) == 6
    assert 2 <= len(before) < 6 and set(before["trial_key"]) < expected

    resumed = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert (f"ran {6 - len(before)}, already done {len(before)}, remaining 0 of 6"
            in " ".join(resumed.stdout.split()))
    after, traj = load_results(out)
    assert set(after["trial_key"]) == expected and after["trial_key"].is_unique
    old = after.set_index("trial_key").loc[before["trial_key"], "finished_at"]
    assert list(old) == list(before["finished_at"])  # not redone
    assert len(traj) == 6 * 4


@pytest.mark.parametrize("config", sorted(p.stem for p in (Path(__file__).resolve().parents[1]
                                                           / "experiments" / "configs").glob("*.yaml")))
def test_every_shipped_config_is_valid(config):
    """Each experiment config parses and names registered problems and agents (building every
    problem, as check_runnable does before Ray starts, is left to the tests that run a trial of
    each config)."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "experiments" / "configs"
                      / f"{config}.yaml")
    trials, groups = expand(cfg)
    assert trials or groups


# ---- one Tuner for the whole sweep; what a cluster gets --------------------------------------
def test_one_searcher_hands_out_grid_trials_then_groups_in_turn(tmp_path):
    """Grid trials first, then the Optuna groups' samples round-robin (so groups run at the same
    time), each group's results told only to its own OptunaSearch."""
    pytest.importorskip("ray.tune")
    from mlsysgym.experiments.sweep.search import sweep_searcher
    from ray.tune.search import Searcher

    cfg = load_config(base_config(tmp_path, seeds=[0, 1]))
    grid, groups = expand(cfg)
    assert len(grid) == 6 and len(groups) == 2
    searcher = sweep_searcher([t.to_dict() for t in grid[:2]],
                              [(groups[0], [], 2), (groups[1], [], 1)])
    got = [searcher.suggest(f"t{i}") for i in range(6)]
    assert [g["trial"] for g in got[:2]] == [t.to_dict() for t in grid[:2]]
    assert [g["group"] for g in got[2:5]] == [groups[0].key, groups[1].key, groups[0].key]
    assert all(0.0 <= g["sampled"]["scale"] <= 1.0 for g in got[2:5])
    assert got[5] == Searcher.FINISHED
    for i, reward in ((2, 0.25), (3, 0.5), (4, 0.75)):
        searcher.on_trial_complete(f"t{i}", {"best_reward": reward})
    told = {k: [t.value for t in s._ot_study.trials] for k, s in searcher.searchers.items()}
    assert told == {groups[0].key: [0.25, 0.75], groups[1].key: [0.5]}


def test_runtime_env_ships_mlsysgym_and_the_plugins(tmp_path, monkeypatch):
    from mlsysgym.experiments.sweep.cluster import runtime_env

    (tmp_path / "my_plugin.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    env = runtime_env(["my_plugin"], tmp_path / "stage")
    staged = tmp_path / "stage" / "mlsysgym"
    assert env == {"py_modules": [str(staged), str(tmp_path / "my_plugin.py")]}
    for f in ("__init__.py", "core/dataset.py", "agents/parallel.py",
              "experiments/sweep/cluster.py", "experiments/configs/synthetic.yaml"):
        assert (staged / f).is_file(), f
    assert not list(staged.rglob("__pycache__")) and not (staged / "experiments" / "results").exists()
    with pytest.raises(SweepConfigError, match="cannot import 'no_such_plugin_mod'"):
        runtime_env(["no_such_plugin_mod.sub"], tmp_path / "stage2")


def test_cli_verbose_reaches_run_sweep(tmp_path, monkeypatch, capsys):
    import mlsysgym.experiments.sweep as sweep_pkg
    import yaml

    seen = {}

    def fake_run_sweep(config, **kw):
        seen.update(kw)
        return sweep_pkg.SweepSummary(config.output_dir, 0, 0, 0, [], 0)

    monkeypatch.setattr(sweep_pkg, "run_sweep", fake_run_sweep)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base_config(tmp_path)))
    assert cli_main(["sweep", str(path), "--verbose", "--no-progress"]) == 0
    assert seen["verbose"] is True


# ---- early stopping --------------------------------------------------------------------------
def test_scheduler_config(tmp_path):
    cfg = load_config(base_config(tmp_path, budget=[20, 40], scheduler="asha"))
    assert cfg.scheduler == {"name": "asha", "grace_period": 1, "max_t": 40,
                             "reduction_factor": 4.0}
    assert cfg.report_every == 1  # the grace period, unless report_every is given
    cfg = load_config(base_config(tmp_path, scheduler={"name": "asha", "grace_period": 5,
                                                       "reduction_factor": 2},
                                  report_every=5))
    assert (cfg.scheduler["grace_period"], cfg.scheduler["max_t"], cfg.report_every) == (5, 6, 5)
    assert load_config(base_config(tmp_path)).scheduler is None
    assert load_config(base_config(tmp_path)).report_every == 0
    for bad, msg in [("pbt", "scheduler must be 'asha'"),
                     ({"name": "asha", "grace": 1}, "unknown key(s) ['grace']"),
                     ({"name": "asha", "reduction_factor": 1}, "reduction_factor must be"),
                     ({"name": "asha", "grace_period": 9}, "grace_period 9 exceeds max_t 6")]:
        with pytest.raises(SweepConfigError, match=re.escape(msg)):
            load_config(base_config(tmp_path, scheduler=bad))
    with pytest.raises(SweepConfigError, match="seconds only needs max_t"):
        load_config(base_config(tmp_path, budget={"seconds": 1}, scheduler="asha"))


def test_intermediate_reports_every_n_evaluations_and_the_same_search(tmp_path):
    spec = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 3}, 20, 4)
    seen = []
    row, traj = trial_result(spec, "s", report=lambda r, t: seen.append((r, t)),
                             report_every=5)
    # batches of 3: 3, 6, 9, 12, 15, 18, 20 evaluations; a report when 5, 10, 15 are passed,
    # none at 20 (the budget is spent: the final result follows)
    assert [r["n_evaluations"] for r, _ in seen] == [6, 12, 15]
    assert [len(t) for _, t in seen] == [6, 12, 15]
    assert all(r["stopped_early"] for r, _ in seen) and row["stopped_early"] is False
    assert seen[-1][1]["reward"].tolist() == traj["reward"].tolist()[:15]
    assert [r["best_reward"] for r, _ in seen] == \
        [traj["reward"].iloc[:n].max() for n in (6, 12, 15)]
    plain, plain_traj = trial_result(spec, "s")
    assert plain_traj["reward"].tolist() == traj["reward"].tolist()  # the same search
    assert plain["best_design"] == row["best_design"]


def test_a_stopped_trial_is_written_from_its_last_intermediate_result(tmp_path):
    from types import SimpleNamespace

    from mlsysgym.experiments.sweep.collect import PARTIAL, PAYLOAD, pack, writer_callback
    from mlsysgym.experiments.sweep.summary import summary_table

    spec = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 1}, 8, 0)
    other = TrialSpec("synthetic-discrete", "sweep_random", {"batch_size": 1}, 8, 1)
    seen = []
    row, traj = trial_result(spec, "s", report=lambda r, t: seen.append((r, t)),
                             report_every=4)
    assert row["n_evaluations"] == 8 and len(traj) == 8 and len(seen) == 1  # at 4, not at 8
    row2, traj2 = trial_result(other, "s")
    writer = writer_callback(str(tmp_path))
    a, b = SimpleNamespace(trial_id="a"), SimpleNamespace(trial_id="b")
    writer.on_trial_result(iteration=1, trials=[], trial=a, result={PARTIAL: pack(*seen[0])})
    writer.on_trial_result(iteration=1, trials=[], trial=b, result={PARTIAL: pack(row2, traj2)})
    writer.on_trial_result(iteration=2, trials=[], trial=b, result={PAYLOAD: pack(row2, traj2)})
    writer.on_trial_complete(iteration=2, trials=[], trial=b)
    assert completed(tmp_path).keys() == {other.key}
    writer.on_trial_complete(iteration=3, trials=[], trial=a)  # ASHA stopped it at 4
    trials, trajs = load_results(tmp_path)
    got = trials.set_index("trial_key")
    assert got.loc[spec.key, "stopped_early"] and got.loc[spec.key, "n_evaluations"] == 4
    assert not got.loc[other.key, "stopped_early"]
    assert (trajs["trial_key"] == spec.key).sum() == 4
    table = summary_table(tmp_path)
    assert table[["trials", "stopped"]].values.tolist() == [[2, 1]]
    assert table["evals"].tolist() == [6.0]  # (4 + 8) / 2


@pytest.mark.slow
def test_asha_sweep_stops_trials_early_and_keeps_them(ray_session, tmp_path):
    cfg = load_config(base_config(
        tmp_path, budget=40, seeds=list(range(8)), max_concurrent_trials=2,
        agents=[{"name": "sweep_random", "hyperparameters": {"batch_size": 1}}],
        scheduler={"name": "asha", "grace_period": 5, "reduction_factor": 2}))
    summary = run_sweep(cfg, progress=False)
    assert (summary.ran, summary.remaining, summary.errors) == (8, 0, [])
    trials, traj = load_results(cfg.output_dir)
    assert sorted(trials["trial_key"]) == sorted(t.key for t in expand(cfg)[0])
    stopped = trials[trials["stopped_early"]]
    assert len(stopped) >= 1  # random rewards: some trial is below a rung's median
    assert stopped["n_evaluations"].isin([5, 10, 15, 20, 25, 30, 35]).all()
    assert (trials.loc[~trials["stopped_early"], "n_evaluations"] == 40).all()
    per_trial = traj.groupby("trial_key").size()
    assert (per_trial[trials["trial_key"]].values == trials["n_evaluations"].values).all()
    again = run_sweep(cfg, resume=True, progress=False)  # a stopped trial is not redone
    assert (again.ran, again.skipped) == (0, 8)
