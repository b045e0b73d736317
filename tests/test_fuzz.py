"""Fuzz suite (issue #25): every input tried ends in success with the right answer or in one
typed error line — no traceback, no exit 0 with a wrong number.

Seeded NumPy random generators (Hypothesis is not a dependency of the project) draw CLI argument
lists, DRAM trace lines, cost-model designs and env actions, each with an oracle written
independently of the code under test that says whether the input is valid and, where it is,
what the answer must be. ``tests/bad_inputs.py`` builds the corpus of bad files (truncated,
binary, cyclic, mismatched, dynamic, huge-dim ONNX; broken MLIR; damaged cost-model folders;
malformed traces). The CLI runs in-process (``mlsysgym.cli.main``), so a traceback shows up as
an exception escaping ``main``.

Outcomes: ``ok`` (exit 0, output checked), ``clean`` (exit 2, one ``mlsysgym: error:`` line),
and the failures: ``traceback``, ``silent`` (exit 0 on an invalid input, or a wrong or
non-finite answer), ``messy`` (an error that is not one line), ``noisy`` (warnings on stderr
with exit 0), ``refused`` (a valid input refused). Set ``MLSYSGYM_FUZZ_REPORT=FILE`` to write
the counts as JSON.
"""

from __future__ import annotations

import json
import math
import os
import resource
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bad_inputs import ERROR, damage_model, write_corpus

from mlsysgym.cli import main

FAILURES = ("traceback", "silent", "messy", "noisy", "refused")
TALLY: dict[str, Counter] = defaultdict(Counter)
EXAMPLES: dict[str, list[str]] = defaultdict(list)
DESIGN = {"rows": 16, "cols": 32, "dataflow": "ws", "ifmap_kb": 64, "filter_kb": 64,
          "ofmap_kb": 64, "bandwidth": 8, "word_bytes": 1}
DRAM_CAPACITY = 2**33  # bytes of the default DDR4 device (8 Gb x8, 8 devices)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    path = os.environ.get("MLSYSGYM_FUZZ_REPORT")
    if path:
        total = sum(TALLY.values(), Counter())
        peak = {who: resource.getrusage(getattr(resource, f"RUSAGE_{who.upper()}")).ru_maxrss
                for who in ("self", "children")}
        Path(path).write_text(json.dumps({"families": TALLY, "total": total,
                                          "examples": EXAMPLES, "peak_rss_kib": peak},
                                         indent=1, default=dict))


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSYSGYM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Any]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


# ---- running and judging one case -------------------------------------------------------------
@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    exc: str | None = None


def run_cli(capsys, argv: list[str]) -> Outcome:
    """``main(argv)`` in-process; an exception escaping it is what a user sees as a traceback."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001 - exactly what the suite looks for
        out, err = capsys.readouterr()
        return Outcome(-1, out, err, f"{type(e).__name__}: {str(e)[:200]}")
    out, err = capsys.readouterr()
    return Outcome(rc, out, err)


def without_notices(err: str) -> str:
    """stderr without the progress notices a step prints when it runs longer than
    ``SLOW_STEP_S`` (``mlsysgym: <what>...``): they depend on the machine's speed, not on the
    input, and are not part of an error."""
    return "".join(line for line in err.splitlines(keepends=True)
                   if line.startswith("mlsysgym: error: ")
                   or not (line.startswith("mlsysgym: ") and line.rstrip("\n").endswith("...")))


def judge(family: str, case: str, o: Outcome, valid: bool | None,
          check: Callable[[Outcome], bool] | None = None) -> str:
    """Classify and count an outcome; ``valid`` None when the oracle does not know, ``check``
    tests the output of a success."""
    err = without_notices(o.err)
    if o.exc or "Traceback" in o.err:
        kind = "traceback"
    elif o.rc == 0:
        right = check is None or _safe(check, o)
        kind = "silent" if valid is False or not right else ("noisy" if err.strip() else "ok")
    else:
        one_line = err.count("\n") == 1 and err.startswith("mlsysgym: error: ")
        kind = "messy" if not one_line else ("refused" if valid is True else "clean")
    TALLY[family][kind] += 1
    TALLY[family]["tried"] += 1
    if kind in FAILURES and len(EXAMPLES[family]) < 20:
        EXAMPLES[family].append(f"{kind}: {case} -> rc {o.rc} {o.exc or o.err.strip()[:200]}")
    return kind


def _safe(check: Callable[[Outcome], bool], o: Outcome) -> bool:
    try:
        return bool(check(o))
    except Exception:  # noqa: BLE001 - an unreadable output is a wrong output
        return False


def strict_json(text: str) -> Any:
    """JSON without NaN/Infinity tokens (what other tools accept)."""
    def refuse(token: str) -> Any:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def assert_no_failures(family: str) -> None:
    bad = {k: TALLY[family][k] for k in FAILURES if TALLY[family][k]}
    assert not bad, f"{family}: {bad}\n" + "\n".join(EXAMPLES[family])
    assert TALLY[family]["tried"] > 0


# ---- the corpus of bad files ------------------------------------------------------------------
def _macs_are(expect: int, key: str = "totals") -> Callable[[Outcome], bool]:
    return lambda o: strict_json(o.out)[key]["macs"] == expect


def _accelerator_ok(o: Outcome) -> bool:
    totals = strict_json(o.out)["totals"]
    return totals["latency_ms"] > 0 and all(v >= 0 for v in totals.values())


def test_onnx_corpus(capsys, corpus):
    for name, (path, case) in corpus.items():
        if not name.endswith(".onnx"):
            continue
        valid = case.expect != ERROR
        o = run_cli(capsys, ["ir", "inspect", str(path), "--json"])
        judge("onnx corpus", f"ir inspect {name}", o, valid,
              _macs_are(case.expect) if valid else None)
        o = run_cli(capsys, ["sim", "accelerator", "--model", str(path), "--json"])
        judge("onnx corpus", f"sim accelerator {name}", o, valid, _accelerator_ok)
    assert TALLY["onnx corpus"]["ok"] == 6  # good_matmul, huge_dim, future_opset, x2 commands
    assert_no_failures("onnx corpus")


MLIR_IMPORT_VALID = {"good_matmul.onnx", "huge_dim.onnx", "future_opset.onnx",
                     "dynamic.onnx", "zero_dim.onnx"}  # MLIR keeps dynamic and empty dims


@pytest.mark.slow
def test_onnx_corpus_through_mlir_import(capsys, corpus, monkeypatch):
    pytest.importorskip("iree.compiler")
    monkeypatch.setenv("MLSYSGYM_SUBPROCESS_MEM_GB", "1")  # the rank-1 Conv drove 22 GB once
    monkeypatch.setenv("MLSYSGYM_SUBPROCESS_TIMEOUT_S", "120")
    for name, (path, _) in corpus.items():
        if name.endswith(".onnx"):
            Path("out.mlir").unlink(missing_ok=True)
            o = run_cli(capsys, ["mlir", "import", str(path), "-o", "out.mlir"])
            wrote = without_notices(o.err).startswith("wrote out.mlir")
            o.err = "" if o.rc == 0 and wrote else o.err
            judge("onnx corpus (mlir import)", name, o, name in MLIR_IMPORT_VALID,
                  lambda o: "linalg.matmul" in Path("out.mlir").read_text())
    assert TALLY["onnx corpus (mlir import)"]["ok"] == len(MLIR_IMPORT_VALID)
    assert_no_failures("onnx corpus (mlir import)")


def test_mlir_corpus(capsys, corpus):
    pytest.importorskip("iree.compiler")
    for name, (path, case) in corpus.items():
        if name.endswith(".mlir"):
            valid = case.expect != ERROR
            o = run_cli(capsys, ["mlir", "inspect", str(path), "--json"])
            judge("mlir corpus", f"mlir inspect {name}", o, valid,
                  _macs_are(case.expect) if valid else None)
    assert TALLY["mlir corpus"]["ok"] == 2
    assert_no_failures("mlir corpus")


def _dram_ok(requests: int) -> Callable[[Outcome], bool]:
    def check(o: Outcome) -> bool:
        doc = strict_json(o.out)
        return doc["requests"] == requests and all(
            math.isfinite(v) and v >= 0 for v in doc["metrics"].values())
    return check


def test_trace_corpus(capsys, corpus):
    for name, (path, case) in corpus.items():
        if name.endswith(".trace"):
            o = run_cli(capsys, ["sim", "dram", "--trace", str(path), "--json"])
            judge("trace corpus", f"sim dram {name}", o, case.expect != ERROR,
                  _dram_ok(case.expect) if case.expect != ERROR else None)
    assert TALLY["trace corpus"]["ok"] == 1
    assert_no_failures("trace corpus")


def test_damaged_cost_models(capsys, saved_model, tmp_path):
    design = json.dumps(DESIGN)
    o = run_cli(capsys, ["costmodel", "predict", "--model", str(saved_model), "--design", design])
    judge("model corpus", "undamaged", o, True, lambda o: strict_json(o.out)["latency_ms"] > 0)
    for name, d in damage_model(saved_model, tmp_path / "damaged").items():
        o = run_cli(capsys, ["costmodel", "predict", "--model", str(d), "--design", design])
        judge("model corpus", name, o, False)
    assert TALLY["model corpus"]["ok"] == 1
    assert_no_failures("model corpus")


# ---- trace lines ------------------------------------------------------------------------------
BAD_LINES: tuple[Callable[[int, int], str], ...] = (
    lambda c, a: f"{c} {'read'} {a:#x}",            # no colon
    lambda c, a: f"{c}: raed {a:#x}",               # unknown command
    lambda c, a: f"{c}: READ {a:#x}",               # commands are lower case
    lambda c, a: f"{c}: read",                      # no address
    lambda c, a: f"{c}: write 0xZZ",                # not hex
    lambda c, a: f"{c}: read {a:#x} extra",         # trailing text
    lambda c, a: f"-{c + 1}: read {a:#x}",          # negative cycle
    lambda c, a: f"{10**25}: read {a:#x}",          # cycle too large
    lambda c, a: f"{c}: read {2**80:#x}",           # address too large
    lambda c, a: f"{c}: read {DRAM_CAPACITY + a:#x}",  # beyond the device
    lambda c, a: f"{c}.5: read {a:#x}",             # not an integer cycle
    lambda c, a: f"nan: read {a:#x}",
    lambda c, a: "\x00\xff\x13",                     # binary
)


def _trace_file(rng: np.random.Generator) -> tuple[str, int, bool]:
    """A trace's text, its number of requests and whether it is valid."""
    n = int(rng.integers(1, 30))
    cycles = np.cumsum(rng.integers(0, 50, n))
    addrs = rng.integers(0, DRAM_CAPACITY // 64, n) * 64
    lines = [f"{c}: {'write' if w else 'read'} {a:#x}"
             for c, w, a in zip(cycles.tolist(), rng.random(n) < 0.3, addrs.tolist())]
    for _ in range(int(rng.integers(0, 3))):  # harmless: comments, blanks, spacing
        i = int(rng.integers(0, len(lines) + 1))
        lines.insert(i, str(rng.choice(["# a comment", "", "   ", "\t# x"])))
    valid = True
    if rng.random() < 0.6:
        valid = False
        mutation = rng.integers(0, len(BAD_LINES) + 1)
        i = int(rng.integers(0, len(lines)))
        if mutation == len(BAD_LINES) and n > 1:  # out of order: a cycle below its predecessor
            lines.append(f"{int(cycles[-1]) - 1 if cycles[-1] > 0 else 0}: read 0x0")
            valid = cycles[-1] == 0
            n += int(valid)
        else:
            lines.insert(i, BAD_LINES[min(mutation, len(BAD_LINES) - 1)](int(cycles[0]),
                                                                           int(addrs[0])))
    sep = "\r\n" if rng.random() < 0.2 else "\n"
    return sep.join(lines) + sep, n, valid


def test_fuzz_trace_lines(capsys):
    rng = np.random.default_rng(25)
    for k in range(60):
        text, n, valid = _trace_file(rng)
        Path(f"t{k}.trace").write_bytes(text.encode("utf-8", "surrogateescape"))
        o = run_cli(capsys, ["sim", "dram", "--trace", f"t{k}.trace", "--json"])
        judge("trace lines", repr(text[:120]), o, valid, _dram_ok(n) if valid else None)
    assert_no_failures("trace lines")


# ---- designs for costmodel predict ------------------------------------------------------------
JUNK: tuple[Any, ...] = (float("nan"), float("inf"), -float("inf"), 0, -8, 1e308, -1e-300,
                         True, False, None, "16", "ws", [16], {"v": 1}, 3.5, 2**70, 10**400)


def _finite(v: Any) -> bool:
    """An int or float (not a bool) that a float holds as a finite number."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _design_case(rng: np.random.Generator, schema) -> tuple[dict[str, Any], bool, bool]:
    """A design dict, whether it is valid and whether it is outside the training data only."""
    d: dict[str, Any] = {}
    valid, ood = True, False
    for f in schema.features:
        if rng.random() < 0.75:  # a value from the training data
            d[f.name] = (str(rng.choice(f.categories)) if f.kind == "categorical" else float(
                np.clip(2 ** rng.uniform(np.log2(f.low), np.log2(f.high)), f.low, f.high)))
            continue
        v = JUNK[int(rng.integers(0, len(JUNK)))] if rng.random() < 0.7 else (
            "xx" if f.kind == "categorical" else float(f.high * 4))
        d[f.name] = v
        if f.kind == "categorical":
            if v in f.categories and not isinstance(v, bool):
                pass
            elif isinstance(v, str) or _finite(v):
                ood = True
            else:
                valid = False
        elif not _finite(v) or (f.transform == "log2" and v <= 0):
            valid = False
        elif not f.low <= v <= f.high:
            ood = True
    if rng.random() < 0.05:
        d.pop(schema.features[0].name)
        valid = False
    elif rng.random() < 0.05:
        d["unknown_knob"] = 1
        valid = False
    return d, valid, ood


def test_fuzz_designs(capsys, saved_model):
    from mlsysgym.costmodels.base import CostModel

    schema = CostModel.load(saved_model).schema
    rng = np.random.default_rng(2025)
    for _ in range(80):
        design, valid, ood = _design_case(rng, schema)
        allow = bool(rng.random() < 0.5)
        argv = ["costmodel", "predict", "--model", str(saved_model),
                "--design", json.dumps(design)] + (["--allow-ood"] if allow else [])
        accepted = valid and (allow or not ood)

        def check(o: Outcome, ood=ood) -> bool:
            row = strict_json(o.out)
            v = row["latency_ms"]
            return row["ood"] is ood and (v is None and ood or v > 0)

        judge("designs", json.dumps(design)[:150] + f" allow_ood={allow}",
              run_cli(capsys, argv), accepted, check)
    assert_no_failures("designs")


# ---- CLI arguments ----------------------------------------------------------------------------
INTS = ("0", "1", "2", "3", "-1", "-3", "7", "16", "64", "4096", "2147483648", "1" + "0" * 21,
        "1" + "0" * 400,
        "x", "", "1e3", "nan", "0x10", " 5", "2.5")
FLOATS = ("0", "1", "0.5", "-1", "nan", "inf", "-inf", "1e308", "1e-300", "abc", "", "4",
          "64", "1e9", "1e-6")
MODELS = ("resnet18", "alexnet", "nosuchmodel", "", "good_matmul.onnx", "dynamic.onnx",
          "mismatched_k.onnx", "missing.onnx", "binary.onnx", ".")


def _pick(rng: np.random.Generator, values: tuple[str, ...]) -> str:
    return str(values[int(rng.integers(0, len(values)))])


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _opt(rng: np.random.Generator, p: float = 0.4) -> bool:
    """Whether to add an optional argument (probability ``p``)."""
    return rng.random() < p


def _cli_case(rng: np.random.Generator) -> tuple[list[str], bool | None, Callable | None]:
    """An argument list, whether it is valid (None: the oracle does not know) and a check of
    the output of a success."""
    cmd = int(rng.integers(0, 5))
    return (_ir_inspect_case, _trace_gen_case, _sim_accelerator_case, _sim_dram_case,
            _mlir_inspect_case)[cmd](rng)


def _ir_inspect_case(rng: np.random.Generator) -> tuple[list[str], bool | None, Callable]:
    """An ``ir inspect`` case (see :func:`_cli_case`)."""
    model = _pick(rng, MODELS)
    argv = ["ir", "inspect", model, "--json"]
    valid: bool | None = None
    if _opt(rng):
        top = _pick(rng, INTS)
        argv += [f"--top={top}"]
        if (_as_int(top) or 0) < 1:
            valid = False
    if _opt(rng, 0.3):
        argv += [f"--dim=batch={_pick(rng, INTS)}"]
    if model in ("nosuchmodel", "", "missing.onnx", "binary.onnx", ".", "mismatched_k.onnx"):
        valid = False
    return argv, valid, lambda o: strict_json(o.out)["totals"]["macs"] > 0


def _trace_gen_case(rng: np.random.Generator) -> tuple[list[str], bool, Callable]:
    """A ``trace gen`` case (see :func:`_cli_case`)."""
    n = _pick(rng, INTS)
    argv = ["trace", "gen", "--kind", _pick(rng, ("stream", "random", "strided", "locality",
                                                  "mixed")), f"--requests={n}", "-o", "out.trace"]
    ni = _as_int(n)
    valid = ni is not None and 1 <= ni <= 10**7
    kind = argv[3]
    used = {"--write-fraction": True, "--row-hit": kind in ("locality", "mixed"),
            "--stream-share": kind == "mixed", "--stride": kind == "strided"}
    for flag in ("--write-fraction", "--row-hit", "--stream-share"):
        if _opt(rng, 0.25):
            v = _pick(rng, FLOATS)
            argv += [f"{flag}={v}"]
            fv = _as_float(v)
            if used[flag] or fv is None:  # a flag the kind ignores needs only parse
                valid = valid and fv is not None and 0 <= fv <= 1
    if _opt(rng, 0.3):
        v = _pick(rng, INTS)
        argv += [f"--seed={v}"]
        valid = valid and (_as_int(v) is not None and 0 <= _as_int(v) < 2**63)
    if _opt(rng, 0.3):
        v = _pick(rng, INTS)
        argv += [f"--stride={v}"]
        if used["--stride"] or _as_int(v) is None or abs(_as_int(v)) >= 2**63:
            valid = valid and (_as_int(v) is not None and 1 <= _as_int(v) < 2**63)
    if _opt(rng, 0.3):
        v = _pick(rng, FLOATS)
        flag = "--rate-per-ns" if rng.random() < 0.5 else "--interval-cycles"
        argv += [f"{flag}={v}"]
        fv = _as_float(v)
        span = (ni or 1) / fv if flag == "--rate-per-ns" and fv else (ni or 1) * (fv or 0)
        valid = valid and fv is not None and math.isfinite(fv) and (
            fv > 0 if flag == "--rate-per-ns" else fv >= 0) and span <= 1e15

    def check(o: Outcome, ni=ni) -> bool:
        lines = [ln for ln in Path("out.trace").read_text().splitlines()
                 if ln and not ln.startswith("#")]
        cycles = [int(ln.split(":")[0]) for ln in lines]
        return len(lines) == ni and all(b >= a >= 0 for a, b in pairwise(cycles))
    return argv, valid, check


def _sim_accelerator_case(rng: np.random.Generator) -> tuple[list[str], None, Callable]:
    """A ``sim accelerator`` case (see :func:`_cli_case`); the oracle does not know validity."""
    argv = ["sim", "accelerator", "--model", _pick(rng, ("resnet18", "alexnet",
                                                         "good_matmul.onnx")), "--json"]
    for flag in ("--rows", "--cols", "--word-bytes"):
        if _opt(rng, 0.3):
            argv += [f"{flag}={_pick(rng, INTS)}"]
    for flag in ("--ifmap-kb", "--bandwidth", "--clock-mhz"):
        if _opt(rng, 0.3):
            argv += [f"{flag}={_pick(rng, FLOATS)}"]
    if _opt(rng, 0.2):
        argv += ["--dataflow=" + _pick(rng, ("ws", "os", "is", "xx"))]
    return argv, None, _accelerator_ok


def _sim_dram_case(rng: np.random.Generator) -> tuple[list[str], bool, Callable]:
    """A ``sim dram`` case with controller knobs (see :func:`_cli_case`)."""
    argv = ["sim", "dram", "--trace", _pick(rng, ("stream", "random", "nosuch", "good.trace")),
            "--json"]
    valid = "nosuch" not in argv
    for flag, ok in (("--request-buffer-size", {1, 2, 4, 8, 16, 32, 64, 128}),
                     ("--refresh-max-postponed", set(range(1, 9))),
                     ("--max-active-transactions", {1, 2, 4, 8, 16, 32, 64, 128})):
        if _opt(rng, 0.3):
            v = _pick(rng, INTS)
            argv += [f"{flag}={v}"]
            valid = valid and _as_int(v) in ok
    return argv, valid, lambda o: all(math.isfinite(v)
                                      for v in strict_json(o.out)["metrics"].values())


def _mlir_inspect_case(rng: np.random.Generator) -> tuple[list[str], bool, Callable]:
    """An ``mlir inspect`` case (see :func:`_cli_case`)."""
    argv = ["mlir", "inspect", _pick(rng, ("good.mlir", "empty.mlir", "binary.mlir",
                                           "missing.mlir", "good_matmul.onnx")), "--json"]
    valid = argv[2] == "good.mlir"
    if _opt(rng):
        top = _pick(rng, INTS)
        argv += [f"--top={top}"]
        valid = valid and (_as_int(top) or 0) >= 1
    return argv, valid, lambda o: strict_json(o.out)["totals"]["macs"] == 512


def _fuzz_cli(capsys, corpus, seed: int, cases: int, family: str) -> None:
    for name, (path, _) in corpus.items():  # the corpus files, by name, in the working folder
        Path(name).write_bytes(path.read_bytes())
    rng = np.random.default_rng(seed)
    for _ in range(cases):
        argv, valid, check = _cli_case(rng)
        if argv[0] == "mlir" and not _have_iree():
            continue
        Path("out.trace").unlink(missing_ok=True)
        judge(family, " ".join(argv), run_cli(capsys, argv), valid, check)
    assert_no_failures(family)


def _have_iree() -> bool:
    try:
        import iree.compiler  # noqa: F401
    except ImportError:
        return False
    return True


def test_fuzz_cli_arguments(capsys, corpus):
    _fuzz_cli(capsys, corpus, seed=7, cases=120, family="cli arguments")


@pytest.mark.slow
def test_fuzz_cli_arguments_long(capsys, corpus):
    _fuzz_cli(capsys, corpus, seed=8, cases=600, family="cli arguments (long)")


# ---- env actions ------------------------------------------------------------------------------
def _envs() -> dict[str, Any]:
    import gymnasium as gym
    import mlsysgym.envs  # noqa: F401 - registers the envs
    from mlsysgym.envs.kernel_scheduling import KernelSchedulingEnv
    from mlsysgym.envs.kernel_scheduling_stream import KernelSchedulingStreamEnv
    from mlsysgym.envs.malloc_game import MallocGameEnv

    return {
        "Accelerator-v0": gym.make("mlsysgym/Accelerator-v0", disable_env_checker=True).unwrapped,
        "DRAM-v0": gym.make("mlsysgym/DRAM-v0", disable_env_checker=True).unwrapped,
        "KernelScheduling": KernelSchedulingEnv("resnet18", window=4),
        "KernelSchedulingStream": KernelSchedulingStreamEnv(n_streams=1, n_jobs=2, window=4),
        "MallocGame": MallocGameEnv("resnet18", capacity_fraction=0.5),
    }


def _action(rng: np.random.Generator, space) -> tuple[Any, bool]:
    """An action and whether it lies in ``space`` (Discrete or MultiDiscrete), by construction."""
    nvec = np.atleast_1d(np.asarray(getattr(space, "nvec", getattr(space, "n", 0))))
    scalar = not hasattr(space, "nvec")
    good = np.array([rng.integers(0, v) for v in nvec])
    kind = int(rng.integers(0, 12))
    if kind <= 2:  # valid, as ints, numpy ints or integral floats
        a = good.astype([np.int64, np.int32, np.float64][kind])
        return (a.reshape(()) if scalar else a), True
    if kind == 3:  # one entry out of range (below 0 or at its bound)
        a = good.copy()
        j = int(rng.integers(0, a.size))
        a[j] = -1 if rng.random() < 0.5 else nvec[j]
        return (a.reshape(()) if scalar else a), False
    if kind == 4:
        return np.where(np.arange(good.size) == 0, np.nan, good).reshape(
            () if scalar else good.shape), False
    if kind == 5:
        return (good + 0.5).reshape(() if scalar else good.shape), False
    if kind == 6:  # wrong shape
        return np.zeros(good.size + 1 + int(rng.integers(0, 3)), np.int64), False
    if kind == 7:
        return str(good.tolist()), False
    if kind == 8:
        return None, False
    if kind == 9:
        return (True if scalar else [[0] * good.size]), False
    if kind == 10:
        return (10**30 if scalar else np.full(good.size, 2**40)), False
    return (float("inf") if scalar else np.full(good.size, np.inf)), False


def test_fuzz_env_actions():
    from mlsysgym.envs.design_env import InvalidActionError

    rng = np.random.default_rng(11)
    for name, env in _envs().items():
        env.reset(seed=0)
        family = "env actions"
        for _ in range(50):
            action, valid = _action(rng, env.action_space)
            case = f"{name} {action!r:.80}"
            try:
                _, reward, done, truncated, _ = env.step(action)
            except InvalidActionError as e:
                o = Outcome(2, "", f"mlsysgym: error: {e}\n")
            except Exception as e:  # noqa: BLE001 - what the suite looks for
                o = Outcome(-1, "", "", f"{type(e).__name__}: {e}")
            else:
                o = Outcome(0, str(reward), "")
                if done or truncated:
                    env.reset(seed=0)
            judge(family, case, o, valid, lambda o: math.isfinite(float(o.out)))
    assert_no_failures("env actions")


# ---- simulator designs (API) ------------------------------------------------------------------
def _in_param(p: Any, v: Any) -> bool | None:
    """Does ``v`` lie in parameter ``p`` (by its declaration)? None where the oracle cannot
    tell (e.g. 2.0 for an integer parameter)."""
    from mlsysgym.core.params import Categorical, Float, Integer, PowerOfTwo

    if isinstance(p, Categorical):
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            return False
        return True if v in p.choices and type(v) in {type(c) for c in p.choices} else (
            None if v in p.choices else False)
    if isinstance(v, bool) or not isinstance(v, int | float) or not _finite(v):
        return False
    if not p.low <= v <= p.high:
        return False
    if isinstance(p, PowerOfTwo | Integer):
        if not float(v).is_integer():
            return False
        if isinstance(v, float):
            return None
        return not isinstance(p, PowerOfTwo) or (v & (v - 1)) == 0
    return True if isinstance(p, Float) else None


def test_fuzz_simulator_designs():
    from mlsysgym.core.errors import MlsysgymError
    from mlsysgym.simulators.accelerator import DESIGN_SPACE as ACCEL
    from mlsysgym.simulators.accelerator import AcceleratorSimulator
    from mlsysgym.simulators.dram import DESIGN_SPACE as DRAM
    from mlsysgym.simulators.dram import DramSimulator

    rng = np.random.default_rng(99)
    junk = (*JUNK, -1, 3, 0.125, 1e6, 128, 256, "Open", "os", 2.0)
    for space, sim, workload, n in ((ACCEL, AcceleratorSimulator(), "resnet18", 120),
                                    (DRAM, DramSimulator(), "stream", 40)):
        params = {p.name: p for p in space.params}
        samples = space.sample(1, n)
        for design in samples:
            design = dict(design)
            for name in design:
                if rng.random() < 0.15:
                    design[name] = junk[int(rng.integers(0, len(junk)))]
            verdicts = [_in_param(params[k], v) for k, v in design.items()]
            valid = False if False in verdicts else (None if None in verdicts else True)
            try:
                metrics = sim.evaluate([design], workload, cache=False)
            except MlsysgymError as e:
                o = Outcome(2, "", f"mlsysgym: error: {e}\n")
            except Exception as e:  # noqa: BLE001 - what the suite looks for
                o = Outcome(-1, "", "", f"{type(e).__name__}: {e}")
            else:
                o = Outcome(0, json.dumps({k: float(v[0]) for k, v in metrics.items()}), "")
            judge("simulator designs", f"{type(sim).__name__} {design}", o, valid,
                  lambda o: all(math.isfinite(v) and v >= 0 for v in json.loads(o.out).values()))
    assert_no_failures("simulator designs")
