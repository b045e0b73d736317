"""Ray Tune sweeps: problem × agent × hyperparameters × budget × seed; a trial is one search run.

A sweep is described by a YAML file (see ``experiments/configs/synthetic.yaml``)::

    name: synthetic
    output_dir: results/sweeps/synthetic   # relative to the working directory (the default)
    problems: [synthetic-discrete, {name: synthetic-mixed}]
    budget: 50                        # evaluations, {seconds: S}, {evaluations: N, seconds: S}, or a list (a grid)
    seeds: 3                          # 0, 1, 2 (or an explicit list)
    agents:
      - name: random
        hyperparameters:
          batch_size: [1, 8]          # a list is a grid
          restarts: 2                 # a scalar is fixed ({value: [..]} for a literal list)
      - name: ga
        num_samples: 8                # Optuna samples per (problem, grid point, budget, seed)
        hyperparameters:
          population: {int: [4, 64]}  # distributions: uniform, loguniform, int, logint, choice
          mutation: {loguniform: [0.01, 0.5]}
    imports: [my_package.my_agents]   # optional: modules that register agents/problems
    max_concurrent_trials: 2          # optional
    cpus_per_trial: 1                 # optional
    max_failures: 1                   # optional: retries of a trial whose worker or node died
    scheduler: {name: asha, grace_period: 10, reduction_factor: 2}   # optional early stopping
    report_every: 10                  # optional: evaluations between intermediate results
    objectives: [latency_ms, area_mm2]   # optional: multi-objective, every problem becomes
    directions: [minimize, minimize]     #   {name: pareto, of: <problem>, objectives, ...};
    reference: [20.0, 10.0]              #   `mlsysgym report` then plots fronts and hypervolume

Trials without distributions run as one Tune grid; each combination with distributions is
searched by Tune's OptunaSearch (TPE, seeded from the combination) for ``num_samples`` trials.

Results: each finished trial returns its row and per-evaluation trajectory to the driver inside
its Tune result (:mod:`.collect`); the driver writes the row to ``<output_dir>/trials/`` and the
trajectory to ``<output_dir>/trajectories/`` (Parquet, one file per trial named by the trial's
config hash, written atomically); :func:`load_results` reads them as two DataFrames. The workers
never write there, so a cluster needs no shared filesystem. Tune's own result directory is
``<output_dir>/tune/`` (on the driver).

Provenance: every ledger row records where it was made: ``evaluator_id`` and
``evaluator_version`` of the trial's problem, ``target_id`` and the full target ``fingerprint``
(JSON; :func:`mlsysgym.core.target.fingerprint`), ``mlsysgym_version``, ``commit`` and ``lock``.

Resume: the ``trials/`` files are the ledger. ``resume=True`` runs only the grid trials whose
config hash has no row yet, and warm-starts each Optuna search with its completed trials (their
rewards are told to the searcher; they are not run again) and runs the remaining samples. A
trial interrupted mid-run left no row, so it runs again from scratch; a finished one (or one
that the scheduler stopped early: its row says ``stopped_early``) is never redone, and a row is keyed by its hash, so none is lost or duplicated. Resuming refuses
(:class:`LedgerMismatchError`) when the ledger's rows were made by another evaluator version or on
another target (``target_id``; rows from before fingerprints count as ``unrecorded``) than this
run would use, unless ``allow_mixed=True`` (``mlsysgym sweep --resume --allow-mixed``).

Modules: :mod:`.config` (the format and its validation), :mod:`.trials` (expansion into grid
trials and Optuna groups), :mod:`.checks` (dry runs on the driver before Ray starts),
:mod:`.storage` (one trial's rows, the Parquet ledger and trajectories, the resume check),
:mod:`.tune_driver` (:func:`run_sweep` through Ray Tune), :mod:`.collect` (trial results
back to the driver), :mod:`.progress` (the live bar),
:mod:`.summary` (what a run did, the results table), :mod:`.errors`.
"""

from mlsysgym.experiments.sweep.checks import check_runnable
from mlsysgym.experiments.sweep.config import (
    AGENT_KEYS,
    DISTRIBUTIONS,
    TOP_KEYS,
    AgentSpec,
    SweepConfig,
    check_names_exist,
    import_plugins,
    load_config,
)
from mlsysgym.experiments.sweep.errors import LedgerMismatchError, SweepConfigError, SweepError
from mlsysgym.experiments.sweep.storage import (
    UNRECORDED,
    check_ledger,
    completed,
    load_results,
    run_trial,
    trial_result,
    write_trial,
)
from mlsysgym.experiments.sweep.summary import SweepSummary, print_summary, summary_table
from mlsysgym.experiments.sweep.trials import OptunaGroup, TrialSpec, expand
from mlsysgym.experiments.sweep.tune_driver import run_sweep

__all__ = ["AGENT_KEYS", "DISTRIBUTIONS", "TOP_KEYS", "UNRECORDED", "AgentSpec",
           "LedgerMismatchError", "OptunaGroup", "SweepConfig", "SweepConfigError", "SweepError",
           "SweepSummary", "TrialSpec", "check_ledger", "check_names_exist", "check_runnable",
           "completed", "expand", "import_plugins", "load_config", "load_results",
           "print_summary", "run_sweep", "run_trial", "summary_table", "trial_result",
           "write_trial"]
