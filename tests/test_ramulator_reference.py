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


def test_same_column_commands_forwards_and_refreshes(result, rows):
    """Every request is one column command in both, except reads answered from the write queue
    (only the accelerator traces read back what they just wrote): ours forwards within 25 % as
    many as Ramulator (measured 0.80-1.06x); both refresh once per tREFI of their own run time
    (within one)."""
    o, t = result["ours"], result["theirs"]
    n = np.array([int(r["ram_requests"]) for r in rows])
    fwd = n - np.array([int(r["ram_rd"]) + int(r["ram_wr"]) for r in rows])
    accel = np.array([r["trace"].startswith("accel_") for r in rows])
    assert np.all(fwd[~accel] == 0) and np.all(o["fwd"][~accel] == 0)
    assert np.all(fwd[accel] > 0)
    assert np.all(np.abs(o["fwd"][accel] / fwd[accel] - 1) <= 0.25)
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
    """With the Ramulator-like controller settings every goal is met over the whole grid
    (median errors measured: latency 0.84 % avg / 0.93 % p99, bandwidth 0.17 %, energy 0.15 %;
    per-trace rank correlations 0.994 / 0.995 / 0.994 / 0.999); guarded near those levels. The
    closed-page rows keep large errors (see benchmarks/results/ramulator.md)."""
    e, rho = result["errors"], result["rho"]
    assert e["avg_lat"]["median"] <= 1.5
    assert e["p99_lat"]["median"] <= 1.5
    assert e["bw"]["median"] <= 0.5
    assert e["energy"]["median"] <= 0.5
    for k in ("avg_lat", "p99_lat", "bw", "energy"):
        assert rho[k]["median"] >= 0.98, k
    assert rho["avg_lat"]["pooled"] >= 0.95


def test_goals_on_open_page(validate, rows, result):
    """Open page (8 settings): measured median errors 0.23 % / 0.44 % / 0.003 % / 0.05 %
    (avg latency, p99, bandwidth, energy), row hits 0.05 points; rank correlations at least
    0.97 on every trace for latency and bandwidth."""
    opened = np.array([r["page_policy"] == "Open" for r in rows])
    part = validate.subset(result, rows, opened)
    e, rho = part["errors"], part["rho"]
    assert e["avg_lat"]["median"] <= 0.5
    assert e["p99_lat"]["median"] <= 1.0
    assert e["bw"]["median"] <= 0.1
    assert e["energy"]["median"] <= 0.2
    assert e["hit"]["median"] <= 0.2
    for k in ("avg_lat", "p99_lat", "bw"):
        assert rho[k]["min"] >= 0.95, k


def test_ramulator_policies_are_what_closes_the_gap(validate, rows, result):
    """Our default controller (row-hit-first FR-FCFS, no write draining, forwarding or active
    buffer) on the 4 KB stride and the resnet18 trace, open page: the stride's row-hit rate is
    0.50 where Ramulator's is 0.38 (ready-first closes rows a waiting hit needs), and resnet18's
    read latency is far above Ramulator's (no write draining); the Ramulator-like settings give
    0.386 and within 15 %."""
    keep = np.array([r["trace"] in ("stride4k_sat", "accel_resnet18") and r["page_policy"] == "Open" for r in rows])
    sub = [r for r, k in zip(rows, keep) if k]
    plain = validate.ours(sub, ramulator_like=False)
    like = {k: v[keep] for k, v in result["ours"].items()}
    theirs = {k: v[keep] for k, v in result["theirs"].items()}
    stride = np.array([r["trace"] == "stride4k_sat" and r["setting"].startswith("RoBaRaCoCh") and r["queue"] == "32"
                       for r in sub])
    assert np.all(np.abs(plain["hit"][stride] - 0.50) < 0.01)
    assert np.all(np.abs(theirs["hit"][stride] - 0.385) < 0.01)
    assert np.all(np.abs(like["hit"][stride] - theirs["hit"][stride]) < 0.01)
    accel = np.array([r["trace"] == "accel_resnet18" for r in sub])
    assert np.all(plain["avg_lat"][accel] > 2 * theirs["avg_lat"][accel])
    assert np.all(np.abs(like["avg_lat"][accel] / theirs["avg_lat"][accel] - 1) < 0.15)
