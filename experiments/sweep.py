"""Ray Tune sweeps: problem × agent × hyperparameters × budget × seed; a trial is one search run.

A sweep is described by a YAML file (see ``experiments/configs/synthetic.yaml``)::

    name: synthetic
    output_dir: results/sweeps/synthetic   # relative to the working directory (the default)
    problems: [synthetic-discrete, {name: synthetic-mixed}]
    budget: 50                        # or a list: a grid over budgets
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

Trials without distributions run as one Tune grid; each combination with distributions is
searched by Tune's OptunaSearch (TPE, seeded from the combination) for ``num_samples`` trials.

Results: each finished trial writes one row to ``<output_dir>/trials/`` and its per-evaluation
trajectory to ``<output_dir>/trajectories/`` (Parquet, one file per trial named by the trial's
config hash, written atomically); :func:`load_results` reads them as two DataFrames. Tune's own
result directory is ``<output_dir>/tune/``.

Provenance: every ledger row records where it was made: ``evaluator_id`` and
``evaluator_version`` of the trial's problem, ``target_id`` and the full target ``fingerprint``
(JSON; :func:`mlsysgym.core.target.fingerprint`), ``mlsysgym_version``, ``commit`` and ``lock``.

Resume: the ``trials/`` files are the ledger. ``resume=True`` runs only the grid trials whose
config hash has no row yet, and warm-starts each Optuna search with its completed trials (their
rewards are told to the searcher; they are not run again) and runs the remaining samples. A
trial interrupted mid-run left no row, so it runs again from scratch; a finished one is never
redone, and a row is keyed by its hash, so none is lost or duplicated. Resuming refuses
(:class:`LedgerMismatchError`) when the ledger's rows were made by another evaluator version or on
another target (``target_id``; rows from before fingerprints count as ``unrecorded``) than this
run would use, unless ``allow_mixed=True`` (``mlsysgym sweep --resume --allow-mixed``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError
from mlsysgym.core.evaluator import content_hash

__all__ = ["AgentSpec", "LedgerMismatchError", "OptunaGroup", "SweepConfig", "SweepConfigError",
           "SweepError", "SweepSummary", "TrialSpec", "check_ledger", "check_runnable", "expand", "load_config",
           "load_results", "run_sweep", "run_trial"]

DISTRIBUTIONS = ("uniform", "loguniform", "int", "logint", "choice")
TOP_KEYS = {"name", "description", "output_dir", "problem", "problems", "agents", "budget",
            "budgets", "seeds", "imports", "max_concurrent_trials", "cpus_per_trial"}
AGENT_KEYS = {"name", "hyperparameters", "num_samples"}


class SweepConfigError(MlsysgymError):
    """A sweep configuration that is malformed (missing field, unknown agent or problem, ...)."""


class SweepError(MlsysgymError):
    """A sweep could not run (output directory in use, Ray Tune failure)."""


class LedgerMismatchError(SweepError):
    """Resuming would mix ledger rows of different evaluator versions or targets."""


# ---- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentSpec:
    """One agent entry: fixed values, grids (lists) and distributions of its hyperparameters."""

    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    num_samples: int = 0


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration."""

    name: str
    output_dir: Path
    problems: list[Any]
    agents: list[AgentSpec]
    budgets: list[int]
    seeds: list[int]
    imports: list[str] = field(default_factory=list)
    max_concurrent_trials: int | None = None
    cpus_per_trial: float = 1.0


def _fail(msg: str) -> None:
    raise SweepConfigError(msg)


def _is_distribution(v: Any) -> bool:
    return isinstance(v, Mapping) and len(v) == 1 and next(iter(v)) in DISTRIBUTIONS


def _check_distribution(agent: str, hp: str, dist: Mapping[str, Any]) -> None:
    (kind, args), = dist.items()
    where = f"agent {agent!r} hyperparameter {hp!r}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            _fail(f"{where}: choice needs a non-empty list of values")
        return
    if not (isinstance(args, list) and len(args) == 2
            and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)):
        _fail(f"{where}: {kind} needs [low, high], got {args!r}")
    lo, hi = args
    if lo >= hi:
        _fail(f"{where}: {kind} needs low < high, got {args!r}")
    if kind in ("int", "logint") and not all(isinstance(a, int) for a in args):
        _fail(f"{where}: {kind} needs integer bounds, got {args!r}")
    if kind.startswith("log") and lo <= 0:
        _fail(f"{where}: {kind} needs low > 0, got {args!r}")


def _agent_spec(entry: Any) -> AgentSpec:
    if isinstance(entry, str):
        return AgentSpec(entry)
    if not isinstance(entry, Mapping) or "name" not in entry:
        _fail(f"each agent is a name or a mapping with a 'name' key, got {entry!r}")
    unknown = sorted(set(entry) - AGENT_KEYS)
    if unknown:
        _fail(f"agent {entry['name']!r}: unknown key(s) {unknown}; allowed: {sorted(AGENT_KEYS)}")
    name = str(entry["name"])
    hps = entry.get("hyperparameters") or {}
    if not isinstance(hps, Mapping):
        _fail(f"agent {name!r}: hyperparameters must be a mapping, got {hps!r}")
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    dists: dict[str, dict[str, Any]] = {}
    for k, v in hps.items():
        if _is_distribution(v):
            _check_distribution(name, k, v)
            dists[k] = dict(v)
        elif isinstance(v, list):
            if not v:
                _fail(f"agent {name!r} hyperparameter {k!r}: an empty grid")
            grid[k] = list(v)
        elif isinstance(v, Mapping) and set(v) == {"value"}:
            fixed[k] = v["value"]
        else:
            fixed[k] = v
    num_samples = entry.get("num_samples", 0)
    if not isinstance(num_samples, int) or num_samples < 0:
        _fail(f"agent {name!r}: num_samples must be a non-negative integer, got {num_samples!r}")
    if dists and num_samples < 1:
        _fail(f"agent {name!r} has distributions {sorted(dists)}; set num_samples >= 1")
    if num_samples and not dists:
        _fail(f"agent {name!r} sets num_samples but has no distributions to sample")
    return AgentSpec(name, fixed, grid, dists, num_samples)


def _int_list(key: str, v: Any, allow_count: bool) -> list[int]:
    if allow_count and isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            _fail(f"{key} must be >= 1, got {v}")
        return list(range(v))
    vals = v if isinstance(v, list) else [v]
    if not vals or not all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
        _fail(f"{key} must be an integer or a list of integers, got {v!r}")
    return list(vals)


def load_config(source: str | os.PathLike[str] | Mapping[str, Any],
                output_dir: str | os.PathLike[str] | None = None,
                check_names: bool = True) -> SweepConfig:
    """A validated SweepConfig from a YAML file or a mapping (SweepConfigError on bad input).

    ``check_names`` imports ``imports`` and the agent registry and checks every agent and
    problem name exists.
    """
    if isinstance(source, Mapping):
        raw: Any = dict(source)
        default_name = "sweep"
    else:
        import yaml

        path = Path(source)
        if not path.is_file():
            _fail(f"no such sweep config file: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            _fail(f"{path} is not valid YAML: {str(e).splitlines()[0]}")
        default_name = path.stem
    if not isinstance(raw, Mapping):
        _fail("a sweep config must be a mapping of keys (name, problems, agents, budget, ...)")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        _fail(f"unknown config key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
    for k in ("agents",):
        if k not in raw:
            _fail(f"config is missing the required field {k!r}")
    if "problem" not in raw and "problems" not in raw:
        _fail("config is missing the required field 'problems' (or 'problem')")
    if "budget" not in raw and "budgets" not in raw:
        _fail("config is missing the required field 'budget'")
    problems = raw.get("problems", raw.get("problem"))
    problems = problems if isinstance(problems, list) else [problems]
    if not problems:
        _fail("'problems' is empty")
    agents_raw = raw["agents"]
    if not isinstance(agents_raw, list) or not agents_raw:
        _fail("'agents' must be a non-empty list")
    agents = [_agent_spec(a) for a in agents_raw]
    budgets = _int_list("budget", raw.get("budgets", raw.get("budget")), allow_count=False)
    if any(b < 1 for b in budgets):
        _fail(f"budget must be positive, got {budgets}")
    seeds = _int_list("seeds", raw.get("seeds", 1), allow_count=True)
    imports = raw.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        _fail(f"imports must be a list of module names, got {imports!r}")
    mct = raw.get("max_concurrent_trials")
    if mct is not None and (not isinstance(mct, int) or mct < 1):
        _fail(f"max_concurrent_trials must be a positive integer, got {mct!r}")
    cpt = raw.get("cpus_per_trial", 1.0)
    if not isinstance(cpt, (int, float)) or cpt <= 0:
        _fail(f"cpus_per_trial must be a positive number, got {cpt!r}")
    out = Path(output_dir or raw.get("output_dir") or Path("results/sweeps")
               / str(raw.get("name", default_name))).resolve()
    config = SweepConfig(str(raw.get("name", default_name)), out, problems, agents, budgets,
                         seeds, list(imports), mct, float(cpt))
    if check_names:
        check_names_exist(config)
    return config


def import_plugins(modules: Iterable[str]) -> None:
    """Import the agent registry and ``modules`` (which register extra agents or problems)."""
    for m in ["mlsysgym.agents", "mlsysgym.agents.problems", *modules]:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise SweepConfigError(f"cannot import {m!r} listed in imports: {e}") from None


def check_names_exist(config: SweepConfig) -> None:
    """SweepConfigError unless every agent and problem of ``config`` is registered."""
    from mlsysgym.agents.base import AGENTS
    from mlsysgym.agents.problems import UnknownProblemError, check_spec

    import_plugins(config.imports)
    for a in config.agents:
        if a.name not in AGENTS:
            _fail(f"unknown agent {a.name!r}; registered agents: "
                  f"{', '.join(sorted(AGENTS)) or '(none)'}")
    for p in config.problems:
        try:
            check_spec(p)
        except UnknownProblemError as e:
            _fail(str(e))


# ---- expansion into trials -------------------------------------------------------------------
def _problem_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec.get("name"))


@dataclass(frozen=True)
class TrialSpec:
    """One search run: problem spec, agent, hyperparameters, budget and seed."""

    problem: Any
    agent: str
    hyperparameters: dict[str, Any]
    budget: int
    seed: int
    group: str = "grid"  # "grid", or the key of the Optuna group it was sampled in
    instance: str = ""   # for Optuna-sampled trials: the Tune trial (two samples may coincide)

    @property
    def key(self) -> str:
        """The hash that identifies this trial across runs: its config (plus, for a sampled
        trial, the Tune trial that sampled it)."""
        parts = [self.problem, self.agent, self.hyperparameters, self.budget, self.seed]
        return content_hash(parts + [self.instance] if self.instance else parts)[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OptunaGroup:
    """``num_samples`` trials whose ``distributions`` Optuna samples; the rest is fixed."""

    problem: Any
    agent: str
    fixed: dict[str, Any]
    distributions: dict[str, dict[str, Any]]
    budget: int
    seed: int
    num_samples: int

    @property
    def key(self) -> str:
        return "optuna-" + content_hash([self.problem, self.agent, self.fixed,
                                         self.distributions, self.budget, self.seed])[:12]

    @property
    def sampler_seed(self) -> int:
        """The TPE sampler's seed: from the group's hash, so that groups differing only in
        their problem do not start from the same random proposals."""
        return int(self.key[-8:], 16)

    def trial(self, sampled: Mapping[str, Any]) -> TrialSpec:
        return TrialSpec(self.problem, self.agent, {**self.fixed, **dict(sampled)},
                         self.budget, self.seed, self.key)

    def optuna_space(self) -> dict[str, Any]:
        """Optuna distributions of the sampled hyperparameters."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out: dict[str, Any] = {}
        for k, d in self.distributions.items():
            (kind, args), = d.items()
            if kind == "choice":
                out[k] = CategoricalDistribution(list(args))
            elif kind in ("int", "logint"):
                out[k] = IntDistribution(int(args[0]), int(args[1]), log=kind == "logint")
            else:
                out[k] = FloatDistribution(float(args[0]), float(args[1]),
                                           log=kind == "loguniform")
        return out


def expand(config: SweepConfig) -> tuple[list[TrialSpec], list[OptunaGroup]]:
    """The grid trials and the Optuna groups of a sweep, in a deterministic order."""
    trials: list[TrialSpec] = []
    groups: list[OptunaGroup] = []
    for problem, agent, budget in product(config.problems, config.agents, config.budgets):
        names = list(agent.grid)
        for values in product(*(agent.grid[n] for n in names)):
            hp = {**agent.fixed, **dict(zip(names, values))}
            for seed in config.seeds:
                if agent.distributions:
                    groups.append(OptunaGroup(problem, agent.name, hp, agent.distributions,
                                              budget, seed, agent.num_samples))
                else:
                    trials.append(TrialSpec(problem, agent.name, hp, budget, seed))
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        _fail("the config lists the same trial twice (duplicate agents or grid values)")
    return trials, groups


# ---- checks on the driver, before Ray starts --------------------------------------------------
def _candidate_values(spec: AgentSpec) -> dict[str, list[Any]]:
    """Every value a sweep may give each hyperparameter of ``spec``: fixed values, grid values,
    and the ends (or choices) of distributions."""
    out: dict[str, list[Any]] = {k: [v] for k, v in spec.fixed.items()}
    out.update({k: list(v) for k, v in spec.grid.items()})
    for k, d in spec.distributions.items():
        (_kind, args), = d.items()
        out[k] = list(args)
    return out


def _signature_names(fn: Callable[..., Any]) -> set[str] | None:
    """Keyword hyperparameters an agent function accepts (after problem and rng); None when it
    takes ``**kwargs``."""
    import inspect

    params = list(inspect.signature(fn).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def check_runnable(config: SweepConfig) -> None:
    """SweepConfigError (one line) unless every problem of ``config`` can be built here
    (zoo models, env ids and env keyword arguments resolve) and every agent accepts each of its
    hyperparameter values: names against the agent's signature, values by a dry run that stops
    at the agent's first evaluation. Run on the driver before Ray starts."""
    import warnings

    import numpy as np
    from mlsysgym.agents.base import AGENTS, BudgetedProblem, BudgetExhausted
    from mlsysgym.agents.problems import make_problem

    class _DryRun(BudgetedProblem):
        def evaluate(self, designs: Any) -> Any:
            raise BudgetExhausted("dry run")

    import_plugins(config.imports)
    built = []
    try:
        for spec in config.problems:
            try:
                built.append(make_problem(spec))
            except MlsysgymError as e:
                _fail(f"problem {_problem_name(spec)!r} cannot be built: {e}")
        for a in config.agents:
            fn = AGENTS[a.name]
            values = _candidate_values(a)
            accepted = _signature_names(fn)
            unknown = sorted(set(values) - accepted) if accepted is not None else []
            if unknown:
                _fail(f"agent {a.name!r} has no hyperparameter(s) {unknown}; it takes "
                      f"{sorted(accepted or ())}")
            base = {k: v[0] for k, v in values.items()}
            tried = [base] + [{**base, k: x} for k, vs in values.items() for x in vs[1:]]
            for hp in tried:
                try:
                    with warnings.catch_warnings():  # the trials report their own warnings
                        warnings.simplefilter("ignore")
                        fn(_DryRun(built[0], 1), np.random.default_rng(0), **hp)
                except BudgetExhausted:
                    pass
                except (MlsysgymError, TypeError, ValueError) as e:
                    _fail(f"agent {a.name!r} with {hp}: {str(e).splitlines()[0]}")
    finally:
        for problem in built:
            close = getattr(problem, "close", None)
            if callable(close):
                close()


# ---- running one trial -----------------------------------------------------------------------
def _atomic_parquet(frame: Any, path: Path) -> None:
    """Write a DataFrame to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _jsonable(o: Any) -> Any:
    return json.loads(json.dumps(o, default=lambda x: x.item() if hasattr(x, "item") else str(x)))


UNRECORDED = "unrecorded"  # a ledger value written before rows recorded their provenance


def _evaluator_of(problem: Any) -> tuple[str, str]:
    """(evaluator id, version) of a problem; ``UNRECORDED`` for a problem without an evaluator."""
    ev = getattr(problem, "evaluator", None)
    if ev is None:
        return UNRECORDED, UNRECORDED
    return str(ev.id), str(ev.version)


def _provenance_columns(problem: Any) -> dict[str, Any]:
    """The ledger columns saying where a trial ran: evaluator, target fingerprint, versions."""
    from mlsysgym.core.target import fingerprint

    fp = fingerprint()
    soft = fp["software"]
    eid, version = _evaluator_of(problem)
    return {"evaluator_id": eid, "evaluator_version": version, "target_id": fp["target_id"],
            "mlsysgym_version": soft["mlsysgym"], "commit": soft["commit"] or "",
            "lock": soft["lock"] or "", "fingerprint": json.dumps(fp, sort_keys=True)}


def run_trial(spec: TrialSpec | Mapping[str, Any], output_dir: str | os.PathLike[str],
              sweep: str = "sweep", tune_trial_id: str = "") -> dict[str, Any]:
    """Run one search and write its row and trajectory under ``output_dir``; return the row."""
    import pandas as pd
    from mlsysgym.agents.base import search
    from mlsysgym.agents.problems import make_problem

    if isinstance(spec, Mapping):
        spec = TrialSpec(**spec)
    out = Path(output_dir)
    problem = make_problem(spec.problem)
    made = _provenance_columns(problem)
    try:
        result = search(spec.agent, problem, spec.budget, spec.seed, **spec.hyperparameters)
    finally:
        close = getattr(problem, "close", None)
        if callable(close):
            close()
    best = result.best_reward if result.n_evaluations else math.nan
    row: dict[str, Any] = {
        "sweep": sweep, "trial_key": spec.key, "group": spec.group,
        "problem": _problem_name(spec.problem), "problem_spec": json.dumps(_jsonable(spec.problem),
                                                                           sort_keys=True),
        "agent": spec.agent, "seed": spec.seed, "budget": spec.budget,
        "hyperparameters": json.dumps(_jsonable(spec.hyperparameters), sort_keys=True),
        "best_reward": float(best), "n_evaluations": result.n_evaluations,
        "n_failed": int(result.failed.sum()), "wall_time_s": result.wall_time_s,
        "best_design": json.dumps(_jsonable(result.best_design) if result.n_evaluations else None),
        "tune_trial_id": tune_trial_id, "host": socket.gethostname(),
        "finished_at": pd.Timestamp.now(tz="UTC").isoformat(), **made,
    }
    for k, v in spec.hyperparameters.items():
        row[f"hp.{k}"] = json.dumps(_jsonable(v)) if isinstance(v, (list, dict)) else v
    traj = result.to_frame()
    traj.insert(0, "trial_key", spec.key)
    traj["budget"] = spec.budget
    _atomic_parquet(traj, out / "trajectories" / f"part-{spec.key}.parquet")
    _atomic_parquet(pd.DataFrame([row]), out / "trials" / f"part-{spec.key}.parquet")  # ledger
    return row


def _tune_trainable(config: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Tune function trainable: one search run, one reported result."""
    from mlsysgym.agents.base import AGENTS
    from ray import tune

    import_plugins(fixed["imports"])
    for name, fn in fixed["agents"].items():  # agents registered in the driver only
        AGENTS.setdefault(name, fn)
    if "trial" in config:
        spec = dict(config["trial"])
    else:
        spec = dict(fixed["trial"])
        spec["hyperparameters"] = {**spec["hyperparameters"], **config}
    ctx = tune.get_context()
    if spec.get("group", "grid") != "grid":
        spec["instance"] = f"{ctx.get_experiment_name()}/{ctx.get_trial_id()}"
    row = run_trial(spec, fixed["output_dir"], fixed["sweep"], ctx.get_trial_id())
    tune.report({k: row[k] for k in ("best_reward", "n_evaluations", "n_failed", "wall_time_s",
                                     "trial_key", "agent")})


# ---- results ---------------------------------------------------------------------------------
def _read_dir(path: Path) -> Any:
    import pandas as pd

    files = sorted(path.glob("part-*.parquet"))
    if not files:
        return pd.DataFrame()
    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise SweepError(f"{f} is not a readable Parquet part ({str(e).splitlines()[0][:120]}); "
                             f"delete it and rerun the sweep with --resume") from None
    return pd.concat(frames, ignore_index=True)


def load_results(output_dir: str | os.PathLike[str]) -> tuple[Any, Any]:
    """(trials, trajectories) DataFrames of every finished trial under ``output_dir``."""
    out = Path(output_dir)
    return _read_dir(out / "trials"), _read_dir(out / "trajectories")


def completed(output_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{trial_key: row}`` of the finished trials (the ledger)."""
    trials, _ = load_results(output_dir)
    if trials.empty:
        return {}
    return {r["trial_key"]: r for r in trials.to_dict("records")}


def _without_parallel(spec: Any) -> Any:
    """A problem spec without its Ray ``parallel`` setting (to read its evaluator cheaply)."""
    if not isinstance(spec, Mapping):
        return spec
    out = {k: v for k, v in spec.items() if k != "parallel"}
    if isinstance(out.get("kwargs"), Mapping):
        out["kwargs"] = {k: v for k, v in out["kwargs"].items() if k != "parallel"}
    return out


def _current_evaluators(config: SweepConfig) -> dict[str, str]:
    """``{problem_spec JSON: evaluator id}`` this sweep's trials would record."""
    from mlsysgym.agents.problems import make_problem

    out: dict[str, str] = {}
    for spec in config.problems:
        problem = make_problem(_without_parallel(spec))
        try:
            out[json.dumps(_jsonable(spec), sort_keys=True)] = _evaluator_of(problem)[0]
        finally:
            close = getattr(problem, "close", None)
            if callable(close):
                close()
    return out


def _recorded(row: Mapping[str, Any], column: str) -> str:
    v = row.get(column)
    return UNRECORDED if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" \
        else str(v)


def check_ledger(config: SweepConfig, done: Mapping[str, Mapping[str, Any]],
                 allow_mixed: bool = False, target_id: str | None = None,
                 evaluators: Mapping[str, str] | None = None) -> None:
    """Raise :class:`LedgerMismatchError` unless every ledger row in ``done`` was made on this
    target (``target_id``, default: this machine's) by the evaluator this run would use for its
    problem (``evaluators``: ``{problem_spec JSON: evaluator id}``, default: made from
    ``config``'s problems). ``allow_mixed`` skips the check."""
    if allow_mixed or not done:
        return
    if target_id is None:
        from mlsysgym.core.target import fingerprint

        target_id = str(fingerprint()["target_id"])
    hint = "pass --allow-mixed (allow_mixed=True) to mix them, or choose another output_dir"
    where = config.output_dir
    seen = sorted({_recorded(r, "target_id") for r in done.values()})
    if seen != [target_id]:
        raise LedgerMismatchError(
            f"cannot resume {where}: its ledger rows were made on target_id "
            f"{', '.join(seen)} but this machine is target_id {target_id}; {hint}")
    current = dict(_current_evaluators(config) if evaluators is None else evaluators)
    by_problem: dict[str, set[str]] = {}
    for r in done.values():
        by_problem.setdefault(str(r.get("problem_spec")), set()).add(_recorded(r, "evaluator_id"))
    for spec, ids in sorted(by_problem.items()):
        now = current.get(spec)
        if now is None:
            continue  # a problem this config no longer runs: nothing new is mixed in
        if ids != {now}:
            try:
                name = _problem_name(json.loads(spec))
            except ValueError:
                name = spec
            raise LedgerMismatchError(
                f"cannot resume {where}: its ledger rows of problem {name!r} were made by "
                f"evaluator {', '.join(sorted(ids))} but this run uses {now}; {hint}")


# ---- the sweep -------------------------------------------------------------------------------
@dataclass
class SweepSummary:
    """What a ``run_sweep`` call did."""

    output_dir: Path
    total: int            # trials the config asks for
    skipped: int          # already finished before this call (resume)
    ran: int              # finished in this call
    errors: list[str]     # one line per trial that raised
    remaining: int        # trials still to run (after max_trials or errors)

    @property
    def complete(self) -> bool:
        return self.remaining == 0 and not self.errors


_LIVE_PROGRESS: dict[str, Any] = {}
_CALLBACK_CLASS: list[type] = []


def _progress_callback_class() -> type:
    """A Tune Callback class (built once, after Ray is imported) that advances a progress bar
    found by token, so that pickling the callback does not pickle the bar."""
    if not _CALLBACK_CLASS:
        from ray.tune import Callback

        class ProgressCallback(Callback):
            def __init__(self, token: str) -> None:
                self.token = token

            def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                                  **info: Any) -> None:
                bar = _LIVE_PROGRESS.get(self.token)
                if bar is not None:
                    bar.advance(trial.last_result or {})

            def on_trial_error(self, iteration: int, trials: list, trial: Any,
                               **info: Any) -> None:
                bar = _LIVE_PROGRESS.get(self.token)
                if bar is not None:
                    bar.advance({}, error=True)

        ProgressCallback.__module__ = __name__
        ProgressCallback.__qualname__ = "ProgressCallback"
        globals()["ProgressCallback"] = ProgressCallback
        _CALLBACK_CLASS.append(ProgressCallback)
    return _CALLBACK_CLASS[0]


class _Progress:
    """A rich progress bar over finished trials (a Tune callback feeds it)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.best: dict[str, float] = {}
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.description}"))
            self.task = self.bar.add_task("", total=total)
            self.bar.start()

    def callback(self) -> Any:
        """A Tune callback advancing this bar (it holds only a token: Tune pickles callbacks)."""
        token = f"{os.getpid()}-{id(self)}"
        _LIVE_PROGRESS[token] = self
        return _progress_callback_class()(token)

    def advance(self, result: Mapping[str, Any], error: bool = False) -> None:
        if not self.enabled:
            return
        agent = result.get("agent", "")
        r = result.get("best_reward")
        if r is not None and agent:
            self.best[agent] = max(self.best.get(agent, -math.inf), float(r))
        desc = "  ".join(f"{a} {b:.4g}" for a, b in sorted(self.best.items()))
        self.bar.update(self.task, advance=1, description=("[red]error[/] " if error else "")
                        + (f"best: {desc}" if desc else ""))

    def stop(self) -> None:
        for k in [k for k, v in _LIVE_PROGRESS.items() if v is self]:
            del _LIVE_PROGRESS[k]
        if self.enabled:
            self.bar.stop()


def _experiment_name(label: str) -> str:
    return f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def run_sweep(config: SweepConfig | str | os.PathLike[str] | Mapping[str, Any],
              resume: bool = False, address: str | None = None, max_trials: int | None = None,
              progress: bool = True, agents: Mapping[str, Callable[..., None]] | None = None,
              allow_mixed: bool = False) -> SweepSummary:
    """Run (or with ``resume``, continue) a sweep through Ray Tune; see the module docstring.

    ``max_trials`` caps how many trials this call runs (the rest stay for a ``resume``).
    Agents registered in this process (or given in ``agents``) are shipped to the trials.
    Without ``resume``, an output directory that already holds finished trials is an error;
    with it, a ledger made by another evaluator version or on another target is
    (:func:`check_ledger`) unless ``allow_mixed``.
    An interrupted Tune run (Ctrl-C) raises KeyboardInterrupt after Tune has stopped; the
    trials finished so far are kept. On a multi-node cluster ``output_dir`` must be storage
    that every node can write (the trials write their rows there).
    """
    if not isinstance(config, SweepConfig):
        config = load_config(config)
    check_names_exist(config)
    from mlsysgym.agents.base import AGENTS

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
    shipped = {n: fn for n, fn in {**AGENTS, **(agents or {})}.items() if n in used}
    fixed_base = {"imports": config.imports, "agents": shipped, "output_dir": str(out),
                  "sweep": config.name}
    errors: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    if n_planned:
        from mlsysgym.agents.parallel import init_ray, shutdown_ray

        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        started = init_ray(address)
        bar = _Progress(n_planned, progress)
        try:
            if todo:
                errors += _fit(config, "grid", {"trial": _grid([t.to_dict() for t in todo])},
                               fixed_base, None, len(todo), bar)
            for g, n in planned:
                errors += _fit_optuna(config, g, group_done[g.key], n, fixed_base, bar)
        finally:
            bar.stop()
            if started:
                shutdown_ray()
    ran = len(completed(out)) - len(done)
    return SweepSummary(out, total, skipped, ran, errors, max(0, total - skipped - ran))


def _grid(values: list[Any]) -> Any:
    from ray import tune

    return tune.grid_search(values)


def _fit(config: SweepConfig, label: str, param_space: dict[str, Any], fixed: dict[str, Any],
         search_alg: Any, num_samples: int, bar: _Progress) -> list[str]:
    """Run one Tuner; return one line per errored trial."""
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(_tune_trainable, fixed=fixed),
                                    {"cpu": config.cpus_per_trial})
    tune_config = tune.TuneConfig(
        search_alg=search_alg, num_samples=1 if search_alg is None else num_samples,
        reuse_actors=True,
        max_concurrent_trials=config.max_concurrent_trials,
        trial_dirname_creator=lambda t: t.trial_id, trial_name_creator=lambda t: t.trial_id)
    run_config = tune.RunConfig(
        name=_experiment_name(label), storage_path=str(config.output_dir / "tune"), verbose=0,
        callbacks=[bar.callback()], failure_config=tune.FailureConfig(max_failures=0))
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
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
            cfg = r.config.get("trial") or {**fixed.get("trial", {}), "sampled": r.config}
            msg = str(r.error).strip().splitlines()
            lines.append(f"{cfg.get('agent')} on {_problem_name(cfg.get('problem'))} seed "
                         f"{cfg.get('seed')}: {msg[-1] if msg else type(r.error).__name__}")
    return lines


def _fit_optuna(config: SweepConfig, group: OptunaGroup, done: list[dict[str, Any]], n: int,
                fixed_base: dict[str, Any], bar: _Progress) -> list[str]:
    """Run ``n`` more Optuna-sampled trials of ``group``, warm-started with ``done``."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = sorted(group.distributions)
    points, rewards = [], []
    for row in sorted(done, key=lambda r: r["finished_at"]):
        hp = json.loads(row["hyperparameters"])
        points.append({k: hp[k] for k in names})
        rewards.append(float(row["best_reward"]))
    searcher = OptunaSearch(space=group.optuna_space(), metric="best_reward", mode="max",
                            sampler=optuna.samplers.TPESampler(seed=group.sampler_seed),
                            points_to_evaluate=points or None,
                            evaluated_rewards=rewards or None)
    template = group.trial({}).to_dict()
    fixed = {**fixed_base, "trial": template}
    return _fit(config, group.key, {}, fixed, searcher, n, bar)


def summary_table(output_dir: str | os.PathLike[str]) -> Any:
    """Per (problem, agent, budget): trials, mean/std/max of the best reward, mean wall time."""
    trials, _ = load_results(output_dir)
    if trials.empty:
        return trials
    g = trials.groupby(["problem", "agent", "budget"])
    return g.agg(trials=("trial_key", "count"), best_mean=("best_reward", "mean"),
                 best_std=("best_reward", "std"), best_max=("best_reward", "max"),
                 wall_s=("wall_time_s", "mean")).reset_index()


def print_summary(summary: SweepSummary) -> None:
    """The per-agent results table and what this run did."""
    from mlsysgym.experiments.console import make_console
    from rich.table import Table

    con = make_console()
    frame = summary_table(summary.output_dir)
    if not frame.empty:
        table = Table(title=f"{len(completed(summary.output_dir))} finished trials")
        for c in frame.columns:
            table.add_column(str(c), justify="left" if frame[c].dtype == object else "right")
        for row in frame.itertuples(index=False):
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        con.print(table)
    con.print(f"ran {summary.ran}, already done {summary.skipped}, remaining "
              f"{summary.remaining} of {summary.total} trials; results in {summary.output_dir}")
    for line in summary.errors:
        con.print(f"[red]trial failed:[/] {line}")
