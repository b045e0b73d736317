"""The Ray Tune driver: :func:`run_sweep` runs (or resumes) a sweep as one Tuner whose searcher
(:mod:`.search`) hands out the grid trials and every Optuna group's samples, so that groups run
concurrently (bounded by the cluster's CPUs); :func:`_tune_trainable` is one trial."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlsysgym.experiments.sweep.checks import check_runnable
from mlsysgym.experiments.sweep.collect import PARTIAL, PAYLOAD, pack, writer_callback
from mlsysgym.experiments.sweep.config import (
    SweepConfig,
    check_names_exist,
    import_plugins,
    load_config,
)
from mlsysgym.experiments.sweep.errors import SweepError
from mlsysgym.experiments.sweep.progress import _Progress
from mlsysgym.experiments.sweep.storage import check_ledger, completed, trial_result
from mlsysgym.experiments.sweep.summary import SweepSummary
from mlsysgym.experiments.sweep.trials import OptunaGroup, _problem_name, expand


def _tune_trainable(config: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Tune function trainable: one search run, one reported result that carries the trial's
    row and trajectory to the driver (the worker writes nothing). Intermediate results (every
    ``report_every`` evaluations) carry an RL agent's learning curve so far too
    (``rl_timesteps``, ``rl_episodes``, ``rl_episode_reward_mean``; see
    :func:`mlsysgym.agents.rl.training_progress`)."""
    from mlsysgym.agents.base import agent_function, register_agent
    from mlsysgym.agents.rl import training_progress
    from ray import tune

    import_plugins(fixed["imports"])
    for name, kinds in fixed["agents"].items():  # agents registered in the driver only
        for kind, fn in kinds.items():
            if agent_function(name, kind) is None:
                register_agent(name, (kind,))(fn)
    spec = _spec_of(config, fixed)
    ctx = tune.get_context()
    if spec.get("group", "grid") != "grid":
        spec["instance"] = f"{ctx.get_experiment_name()}/{ctx.get_trial_id()}"

    def summary(row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in ("best_reward", "n_evaluations", "n_failed", "wall_time_s",
                                    "trial_key", "agent")}

    with training_progress() as curve:
        def so_far(row: dict[str, Any], traj: Any) -> None:  # a scheduler may stop it here
            tune.report({**summary(row), **curve, PARTIAL: pack(row, traj)})

        row, traj = trial_result(spec, fixed["sweep"], ctx.get_trial_id(), report=so_far,
                                 report_every=fixed.get("report_every", 0))
    # the final result, written by the driver (collect.py)
    tune.report({**summary(row), **curve, PAYLOAD: pack(row, traj)})


def _spec_of(config: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """The trial spec (dict) of a Tune config: a grid trial's own, or its Optuna group's
    template with the sampled hyperparameters."""
    if "trial" in config:
        return dict(config["trial"])
    spec = dict(fixed["templates"][config["group"]])
    spec["hyperparameters"] = {**spec["hyperparameters"], **config["sampled"]}
    return spec


def _implementations(name: str, given: Callable[..., None] | None) -> dict[str, Any]:
    """``{problem kind: function}`` of agent ``name`` as registered here (``given``, a function
    passed to :func:`run_sweep`, serves design problems), shipped to the trial workers."""
    from mlsysgym.agents.base import AGENT_KINDS, agent_function

    out = {kind: agent_function(name, kind) for kind in AGENT_KINDS.get(name, ())}
    if given is not None:
        out["design"] = given
    return {k: fn for k, fn in out.items() if fn is not None}


def _experiment_name(label: str) -> str:
    return f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def run_sweep(config: SweepConfig | str | os.PathLike[str] | Mapping[str, Any],
              resume: bool = False, address: str | None = None, max_trials: int | None = None,
              progress: bool = True, agents: Mapping[str, Callable[..., None]] | None = None,
              allow_mixed: bool = False, verbose: bool = False) -> SweepSummary:
    """Run (or with ``resume``, continue) a sweep through Ray Tune; see the module docstring.

    ``max_trials`` caps how many trials this call runs (the rest stay for a ``resume``).
    Agents registered in this process (or given in ``agents``) are shipped to the trials.
    Without ``resume``, an output directory that already holds finished trials is an error;
    with it, a ledger made by another evaluator version or on another target is
    (:func:`check_ledger`) unless ``allow_mixed``.
    An interrupted Tune run (Ctrl-C) raises KeyboardInterrupt after Tune has stopped; the
    trials finished so far are kept. ``output_dir`` is the driver's: trials return their rows
    through Ray and the driver writes them (no shared storage is needed on a cluster).
    Connecting to a cluster (``address`` or ``RAY_ADDRESS``) ships mlsysgym and the config's
    ``imports:`` modules to the workers (:func:`.cluster.runtime_env`). ``verbose`` forwards
    the workers' output (prints, warnings, logs) to this terminal.
    """
    if not isinstance(config, SweepConfig):
        config = load_config(config)
    check_names_exist(config)
    trials, groups = expand(config)
    check_runnable(config)
    out = config.output_dir
    done = completed(out)
    if done and not resume:
        raise SweepError(f"{out} already holds {len(done)} finished trials; pass --resume to "
                         f"continue that sweep or choose another output_dir")
    check_ledger(config, done, allow_mixed)
    todo = [t for t in trials if t.key not in done]
    group_done = {g.key: [r for r in done.values() if r["group"] == g.key] for g in groups}
    group_left = {g.key: max(0, g.num_samples - len(group_done[g.key])) for g in groups}
    total = len(trials) + sum(g.num_samples for g in groups)
    skipped = (len(trials) - len(todo)) + sum(min(len(v), g.num_samples)
                                              for g, v in zip(groups, group_done.values()))
    budget_left = math.inf if max_trials is None else max(0, int(max_trials))
    todo = todo[: int(min(len(todo), budget_left))]
    budget_left -= len(todo)
    planned: list[tuple[OptunaGroup, int]] = []
    for g in groups:
        n = int(min(group_left[g.key], budget_left))
        if n:
            planned.append((g, n))
            budget_left -= n
    n_planned = len(todo) + sum(n for _, n in planned)

    used = {a.name for a in config.agents}
    shipped = {n: _implementations(n, (agents or {}).get(n)) for n in used}
    fixed = {"imports": config.imports, "agents": shipped, "sweep": config.name,
             "report_every": config.report_every,
             "templates": {g.key: g.trial({}).to_dict() for g, _ in planned}}
    errors: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    if n_planned:
        from mlsysgym.agents.parallel import init_ray, shutdown_ray
        from mlsysgym.experiments.sweep.search import sweep_searcher

        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        opts: dict[str, Any] = {"log_to_driver": verbose}
        staging = None
        if address or os.environ.get("RAY_ADDRESS"):
            from mlsysgym.experiments.sweep.cluster import runtime_env

            staging = tempfile.mkdtemp(prefix="mlsysgym-ship-")
            opts["runtime_env"] = runtime_env(config.imports, staging)
        try:
            started = init_ray(address, **opts)  # uploads the runtime_env's py_modules
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        bar = _Progress(n_planned, progress)
        try:
            searcher = sweep_searcher([t.to_dict() for t in todo],
                                      [(g, group_done[g.key], n) for g, n in planned])
            errors += _fit(config, searcher, fixed, n_planned, bar)
        finally:
            bar.stop()
            if started:
                shutdown_ray()
    ran = len(completed(out)) - len(done)
    return SweepSummary(out, total, skipped, ran, errors, max(0, total - skipped - ran))


def _scheduler(config: SweepConfig) -> Any:
    """Tune's trial scheduler of ``config`` (None: every trial runs to its budget)."""
    if config.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    sched = config.scheduler
    return ASHAScheduler(time_attr="n_evaluations", metric="best_reward", mode="max",
                         max_t=sched["max_t"], grace_period=sched["grace_period"],
                         reduction_factor=sched["reduction_factor"])


def _fit(config: SweepConfig, searcher: Any, fixed: dict[str, Any], num_samples: int,
         bar: _Progress) -> list[str]:
    """Run one Tuner; return one line per errored trial."""
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(_tune_trainable, fixed=fixed),
                                    {"cpu": config.cpus_per_trial})
    tune_config = tune.TuneConfig(
        search_alg=searcher, num_samples=num_samples, scheduler=_scheduler(config),
        reuse_actors=True,
        max_concurrent_trials=config.max_concurrent_trials,
        trial_dirname_creator=lambda t: t.trial_id, trial_name_creator=lambda t: t.trial_id)
    run_config = tune.RunConfig(
        name=_experiment_name(config.name), storage_path=str(config.output_dir / "tune"), verbose=0,
        callbacks=[writer_callback(str(config.output_dir)), bar.callback()],
        failure_config=tune.FailureConfig(max_failures=config.max_failures))
    tuner = tune.Tuner(trainable, param_space={}, tune_config=tune_config,
                       run_config=run_config)
    try:
        grid = tuner.fit()
    except Exception as e:  # noqa: BLE001 - Tune's own failure, not a trial's
        raise SweepError(f"Ray Tune failed: {type(e).__name__}: {str(e).splitlines()[0]}") \
            from None
    lines = []
    if any(r.error is None and not r.metrics for r in grid):  # Tune stopped early (Ctrl-C)
        raise KeyboardInterrupt
    for r in grid:
        if r.error is not None:
            cfg = _spec_of(r.config, fixed)
            msg = str(r.error).strip().splitlines()
            lines.append(f"{cfg.get('agent')} on {_problem_name(cfg.get('problem'))} seed "
                         f"{cfg.get('seed')}: {msg[-1] if msg else type(r.error).__name__}")
    return lines
