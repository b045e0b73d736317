"""Our DRAM simulator against the committed Ramulator 2.0 reference numbers (no Ramulator
needed: benchmarks/ramulator_validate.py generated benchmarks/data/ramulator/reference.csv from
the traces in benchmarks/data/ramulator/traces/)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "benchmarks" / "data" / "ramulator" / "reference.csv"


@pytest.fixture(scope="module")
def validate():
    return load_script("ramulator_validate.py")


@pytest.fixture(scope="module")
def rows(validate):
    return validate.load_reference(CSV)


@pytest.fixture(scope="module")
def result(validate, rows):
    return validate.agreement(rows)


def test_reference_covers_the_grid(validate, rows):
    got = {(r["trace"], r["setting"]) for r in rows}
    want = {(t, s.name) for t in validate.TRACE_NAMES for s in validate.settings()}
    assert got == want
    assert all(re.fullmatch(r"[0-9a-f]{40}", r["ramulator_commit"]) for r in rows)


def test_committed_traces_are_what_ramulator_ran(validate, rows):
    for name in validate.TRACE_NAMES:
        t = validate.load_trace(name)
        mine = [r for r in rows if r["trace"] == name]
        assert all(int(r["ram_requests"]) == len(t) for r in mine)
        assert all(int(r["ram_reads"]) == int((~t.is_write).sum()) for r in mine)
        assert all(int(r["ram_rd"]) + int(r["ram_wr"]) <= len(t) for r in mine)


def test_same_column_commands_and_refreshes(result, rows):
    """Every request is one column command in both, except reads Ramulator forwards from its
    write queue (only the accelerator traces read back what they just wrote); both refresh once
    per tREFI of their own run time (within one)."""
    o, t = result["ours"], result["theirs"]
    n = np.array([int(r["ram_requests"]) for r in rows])
    fwd = n - np.array([int(r["ram_rd"]) + int(r["ram_wr"]) for r in rows])
    accel = np.array([r["trace"].startswith("accel_") for r in rows])
    assert np.all(fwd[~accel] == 0)
    assert np.all(fwd[accel] > 0)
    refresh = np.array([r["refresh"] == "AllBank" for r in rows])
    trefi = 9360
    for side in (o, t):
        due = np.floor(side["end"] / trefi)
        assert np.all(np.abs(side["ref"][refresh] - due[refresh]) <= 1)
        assert np.all(side["ref"][~refresh] == 0)


def test_cycle_exact_where_policies_coincide(validate, rows, result):
    """Read-only traces, open page, no refresh, 32 entries: the same latency and bandwidth
    (to 0.1 %; all but one are identical to the cycle)."""
    o, t = result["ours"], result["theirs"]
    for i, r in enumerate(rows):
        if (r["trace"] in ("stream_sat", "stream_timed", "random_sat", "random_timed", "stride8k_timed")
                and r["setting"].endswith("/Open/NoRefresh/q32")):
            assert o["avg_lat"][i] == pytest.approx(t["avg_lat"][i], rel=1e-3), r["trace"]
            assert o["p99_lat"][i] == pytest.approx(t["p99_lat"][i], rel=1e-3), r["trace"]
            assert o["bw"][i] == pytest.approx(t["bw"][i], rel=1e-3), r["trace"]
            assert o["energy"][i] == pytest.approx(t["energy"][i], rel=1e-3), r["trace"]


def test_goals_on_all_settings(result):
    """Bandwidth and energy meet the goals over the whole grid; latency misses its 5 % goal
    (closed page, write draining: see benchmarks/results/ramulator.md) and is guarded at the
    level measured."""
    e = result["errors"]
    assert e["bw"]["median"] <= 5.0
    assert e["energy"]["median"] <= 10.0
    assert e["avg_lat"]["median"] <= 8.5
    assert result["rho"]["avg_lat"]["median"] >= 0.95
    assert result["rho"]["energy"]["median"] >= 0.95


def test_goals_on_open_page(validate, rows, result):
    opened = np.array([r["page_policy"] == "Open" for r in rows])
    part = validate.subset(result, rows, opened)
    e, rho = part["errors"], part["rho"]
    for k in ("avg_lat", "p99_lat", "bw"):
        assert e[k]["median"] <= 5.0, k
        assert rho[k]["median"] >= 0.95, k
    assert e["energy"]["median"] <= 10.0
