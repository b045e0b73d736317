"""Sweep configuration: the YAML/mapping format, its validation (:func:`load_config`) and the
check that every agent and problem it names is registered (:func:`check_names_exist`)."""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsysgym.experiments.sweep.errors import SweepConfigError

DISTRIBUTIONS = ("uniform", "loguniform", "int", "logint", "choice")
TOP_KEYS = {"name", "description", "output_dir", "problem", "problems", "agents", "budget",
            "budgets", "seeds", "imports", "max_concurrent_trials", "cpus_per_trial",
            "max_failures", "scheduler", "report_every", "objectives", "directions",
            "reference"}
SCHEDULER_KEYS = {"name", "grace_period", "reduction_factor", "max_t"}
AGENT_KEYS = {"name", "hyperparameters", "num_samples"}


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
    budgets: list[tuple[int | None, float | None]]  # (evaluations, seconds); either may be None
    seeds: list[int]
    imports: list[str] = field(default_factory=list)
    max_concurrent_trials: int | None = None
    cpus_per_trial: float = 1.0
    max_failures: int = 1  # retries of a trial whose worker or node died (or that raised)
    scheduler: dict[str, Any] | None = None  # {"name": "asha", grace_period, reduction_factor,
    #                                           max_t} (evaluations), or None: no early stopping
    report_every: int = 0  # evaluations between intermediate results (0: only the final one)


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


def _budgets(v: Any) -> list[tuple[int | None, float | None]]:
    """``budget``: evaluations (an int), ``{seconds: S}``, ``{evaluations: N, seconds: S}``, or a
    list of these (a grid) → (evaluations, seconds) pairs."""
    from mlsysgym.agents.base import Budget
    from mlsysgym.core.errors import MlsysgymError

    out = []
    for b in v if isinstance(v, list) else [v]:
        if isinstance(b, bool) or not isinstance(b, (int, dict)):
            _fail(f"budget must be an integer, {{seconds: S}} or {{evaluations: N, seconds: S}}, "
                  f"or a list of these; got {b!r}")
        try:
            budget = Budget.of(b)
        except MlsysgymError as e:
            _fail(str(e))
        out.append((budget.evaluations, budget.seconds))
    if not out:
        _fail("budget is an empty list")
    return out


def _positive_int(key: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        _fail(f"{key} must be a positive integer, got {v!r}")
    return v


def _scheduler(v: Any, budgets: list[tuple[int | None, float | None]]
               ) -> dict[str, Any] | None:
    """``scheduler``: None, ``asha`` or ``{name: asha, grace_period: G, reduction_factor: R,
    max_t: T}`` (in evaluations; T defaults to the largest evaluation budget)."""
    if v is None:
        return None
    spec = {"name": v} if isinstance(v, str) else v
    if not isinstance(spec, Mapping) or spec.get("name") != "asha":
        _fail(f"scheduler must be 'asha' or a mapping with name: asha, got {v!r}")
    unknown = sorted(set(spec) - SCHEDULER_KEYS)
    if unknown:
        _fail(f"scheduler: unknown key(s) {unknown}; allowed: {sorted(SCHEDULER_KEYS)}")
    evaluations = [b for b, _ in budgets if b is not None]
    if "max_t" not in spec and len(evaluations) < len(budgets):
        _fail("scheduler: a budget in seconds only needs max_t (evaluations)")
    out = {"name": "asha",
           "grace_period": _positive_int("scheduler grace_period", spec.get("grace_period", 1)),
           "max_t": _positive_int("scheduler max_t", spec.get("max_t", max(evaluations or [1])))}
    rf = spec.get("reduction_factor", 4)
    if isinstance(rf, bool) or not isinstance(rf, (int, float)) or rf <= 1:
        _fail(f"scheduler reduction_factor must be a number > 1, got {rf!r}")
    out["reduction_factor"] = float(rf)
    if out["grace_period"] > out["max_t"]:
        _fail(f"scheduler grace_period {out['grace_period']} exceeds max_t {out['max_t']}")
    return out


def _pareto_problems(raw: Mapping[str, Any], problems: list[Any]) -> list[Any]:
    """With ``objectives`` (metric names; ``directions``: minimize/maximize each, default all
    minimize; ``reference``: a list or {metric: value}, default the problem's), every problem
    becomes the multi-objective ``{name: pareto, of: <problem>, objectives, ...}``."""
    objectives = raw.get("objectives")
    if objectives is None:
        extra = [k for k in ("directions", "reference") if k in raw]
        if extra:
            _fail(f"{' and '.join(extra)} need objectives (a list of metric names)")
        return problems
    if (not isinstance(objectives, list) or not objectives
            or not all(isinstance(o, str) and o for o in objectives)
            or len(set(objectives)) != len(objectives)):
        _fail(f"objectives must be a non-empty list of distinct metric names, got {objectives!r}")
    k = len(objectives)
    directions = raw.get("directions", ["minimize"] * k)
    if (not isinstance(directions, list) or len(directions) != k
            or not all(d in ("minimize", "maximize") for d in directions)):
        _fail(f"directions must list minimize or maximize for each of the {k} objectives, "
              f"got {directions!r}")
    ref = raw.get("reference")
    if isinstance(ref, Mapping):
        if sorted(ref) != sorted(objectives):
            _fail(f"reference must give a value for exactly the objectives {objectives}, "
                  f"got {sorted(ref)}")
        ref = [ref[o] for o in objectives]
    if ref is not None and (not isinstance(ref, list) or len(ref) != k or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and r != 0
            and math.isfinite(r) for r in ref)):
        _fail(f"reference must be {k} finite non-zero numbers (one per objective), got {ref!r}")
    wrapped = []
    for p in problems:
        if isinstance(p, Mapping) and p.get("name") == "pareto":
            _fail("a problem of a sweep with objectives is a plain problem (got a pareto spec); "
                  "list objectives once, at the top")
        wrapped.append({"name": "pareto", "of": p, "objectives": list(objectives),
                        "directions": list(directions),
                        **({"reference": [float(r) for r in ref]} if ref is not None else {})})
    return wrapped


def _read_raw(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, str]:
    """The config mapping as written (from a mapping or a YAML file) and its default name."""
    if isinstance(source, Mapping):
        return dict(source), "sweep"
    import yaml

    path = Path(source)
    if not path.is_file():
        _fail(f"no such sweep config file: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        _fail(f"{path} is not valid YAML: {str(e).splitlines()[0]}")
    return raw, path.stem


def _check_top_keys(raw: Any) -> None:
    """A mapping of known keys with the required ones present."""
    if not isinstance(raw, Mapping):
        _fail("a sweep config must be a mapping of keys (name, problems, agents, budget, ...)")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        _fail(f"unknown config key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
    if "agents" not in raw:
        _fail("config is missing the required field 'agents'")
    if "problem" not in raw and "problems" not in raw:
        _fail("config is missing the required field 'problems' (or 'problem')")
    if "budget" not in raw and "budgets" not in raw:
        _fail("config is missing the required field 'budget'")


def _run_settings(raw: Mapping[str, Any]) -> tuple[list[str], int | None, float, int]:
    """``imports``, ``max_concurrent_trials``, ``cpus_per_trial`` and ``max_failures``."""
    imports = raw.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        _fail(f"imports must be a list of module names, got {imports!r}")
    mct = raw.get("max_concurrent_trials")
    if mct is not None and (not isinstance(mct, int) or mct < 1):
        _fail(f"max_concurrent_trials must be a positive integer, got {mct!r}")
    cpt = raw.get("cpus_per_trial", 1.0)
    if not isinstance(cpt, (int, float)) or cpt <= 0:
        _fail(f"cpus_per_trial must be a positive number, got {cpt!r}")
    mf = raw.get("max_failures", 1)
    if isinstance(mf, bool) or not isinstance(mf, int) or mf < 0:
        _fail(f"max_failures must be a non-negative integer, got {mf!r}")
    return list(imports), mct, float(cpt), mf


def load_config(source: str | os.PathLike[str] | Mapping[str, Any],
                output_dir: str | os.PathLike[str] | None = None,
                check_names: bool = True) -> SweepConfig:
    """A validated SweepConfig from a YAML file or a mapping (SweepConfigError on bad input).

    ``check_names`` imports ``imports`` and the agent registry and checks every agent and
    problem name exists.
    """
    raw, default_name = _read_raw(source)
    _check_top_keys(raw)
    problems = raw.get("problems", raw.get("problem"))
    problems = problems if isinstance(problems, list) else [problems]
    if not problems:
        _fail("'problems' is empty")
    problems = _pareto_problems(raw, problems)
    agents_raw = raw["agents"]
    if not isinstance(agents_raw, list) or not agents_raw:
        _fail("'agents' must be a non-empty list")
    agents = [_agent_spec(a) for a in agents_raw]
    budgets = _budgets(raw.get("budgets", raw.get("budget")))
    seeds = _int_list("seeds", raw.get("seeds", 1), allow_count=True)
    imports, mct, cpt, mf = _run_settings(raw)
    scheduler = _scheduler(raw.get("scheduler"), budgets)
    every = raw.get("report_every")
    every = _positive_int("report_every", every) if every is not None else \
        (scheduler["grace_period"] if scheduler else 0)
    out = Path(output_dir or raw.get("output_dir") or Path("results/sweeps")
               / str(raw.get("name", default_name))).resolve()
    config = SweepConfig(str(raw.get("name", default_name)), out, problems, agents, budgets,
                         seeds, imports, mct, cpt, mf, scheduler, every)
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
