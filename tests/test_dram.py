"""The DDR4 simulator against timing arithmetic, its knobs, its Evaluator and its CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from mlsysgym.core.errors import DesignError, MlsysgymError
from mlsysgym.simulators.dram import (
    DESIGN_SPACE,
    ControllerSettings,
    DramSimulator,
    encode_addresses,
    knob_codes,
    simulate,
)
from mlsysgym.simulators.dram_timing import MT40A1G8_083E
from mlsysgym.simulators.dram_traces import (
    DramTrace,
    TraceError,
    mixed_trace,
    random_trace,
    stream_trace,
    strided_trace,
    write_trace,
)

T = MT40A1G8_083E.timing
NOREF = {"RefreshPolicy": "NoRefresh"}


def _trace(cycles, fields, writes=None) -> DramTrace:
    n = len(cycles)
    w = np.zeros(n, bool) if writes is None else np.asarray(writes, bool)
    return DramTrace(np.asarray(cycles, np.int64), w, encode_addresses(fields))


def _hit_stream(n: int) -> DramTrace:
    """Reads all arriving at cycle 0 that cycle through one open row in each of the 4 bank groups."""
    i = np.arange(n)
    return _trace(np.zeros(n), {"bankgroup": i % 4, "column": (i // 4) % 128})


def test_datasheet_timing_in_cycles():
    assert T.tck_ns == pytest.approx(0.8333, abs=1e-4)
    assert (T.CL, T.tRCD, T.tRP, T.tRAS, T.tRC) == (16, 16, 16, 39, 55)
    assert (T.tCCD_S, T.tCCD_L, T.tRRD_S, T.tRRD_L, T.tFAW) == (4, 6, 4, 6, 26)
    assert (T.tWR, T.tWTR_S, T.tWTR_L, T.tRTP, T.tREFI, T.tRFC) == (18, 3, 9, 9, 9360, 420)
    assert MT40A1G8_083E.capacity_bytes == 8 << 30
    assert MT40A1G8_083E.peak_bandwidth_gbps == pytest.approx(19.2)


def test_isolated_read_to_closed_bank_costs_trcd_cl_burst():
    n = 16  # one read to each bank, far apart: every bank is closed when its read arrives
    i = np.arange(n)
    tr = _trace(i * 10_000, {"bankgroup": i % 4, "bank": i // 4, "row": i})
    for page in ("Open", "Closed"):
        r = simulate(tr, {**NOREF, "PagePolicy": page})
        assert np.all(r.latency_cycles == T.tRCD + T.CL + T.BL // 2)  # 16 + 16 + 4 = 36 cycles
        assert r.avg_latency_ns == pytest.approx(36 * T.tck_ns)
    # with refresh on, an idle-time (pulled-in) refresh yields to a request arriving that cycle
    assert simulate(tr, {"PagePolicy": "Open"}).latency_cycles[0] == 36


def test_more_channels_and_ranks_scale_bandwidth():
    dev = MT40A1G8_083E.with_org(channels=2, ranks=2)
    assert dev.capacity_bytes == 4 * MT40A1G8_083E.capacity_bytes
    tr = stream_trace(20_000, interval_cycles=0, device=dev)
    r = simulate(tr, {**NOREF, "RequestBufferSize": 32}, device=dev)
    assert r.bandwidth_gbps >= 0.9 * dev.peak_bandwidth_gbps == pytest.approx(0.9 * 38.4)
    one = simulate(random_trace(5_000, interval_cycles=0, seed=1), {"RequestBufferSize": 32})
    four = simulate(random_trace(5_000, interval_cycles=0, seed=1, device=dev), {"RequestBufferSize": 32}, device=dev)
    assert four.bandwidth_gbps > 2 * one.bandwidth_gbps


def test_row_hit_and_row_conflict_latency_open_page():
    # read row 1, then (far later) the same row again, then another row of the same bank
    tr = _trace([0, 10_000, 20_000], {"row": np.array([1, 1, 2]), "column": np.array([0, 1, 2])})
    r = simulate(tr, {**NOREF, "PagePolicy": "Open"})
    assert r.latency_cycles.tolist() == [T.tRCD + T.CL + 4, T.CL + 4, T.tRP + T.tRCD + T.CL + 4]
    assert r.row_hit_rate == pytest.approx(1 / 3)


def test_write_to_read_turnaround_same_bank_group():
    # a write then a read to the same open row: the read waits tWTR_L after the write data
    tr = _trace([0, 0], {"column": np.array([0, 1])}, writes=[True, False])
    r = simulate(tr, NOREF)
    wr_issue = T.tRCD
    rd_issue = wr_issue + T.CWL + T.BL // 2 + T.tWTR_L
    assert r.latency_cycles.tolist() == [wr_issue + T.CWL + 4, rd_issue + T.CL + 4]


def test_row_hit_stream_reaches_peak_bandwidth():
    r = simulate(_hit_stream(20_000), NOREF)
    assert r.row_hit_rate > 0.999
    assert r.bandwidth_gbps >= 0.9 * MT40A1G8_083E.peak_bandwidth_gbps  # measured: 99.98 %


def test_refresh_overhead_is_trfc_over_trefi():
    tr = _hit_stream(50_000)  # ~200k cycles, ~21 tREFI, the rank never idles
    base = simulate(tr, NOREF)
    ref = simulate(tr, {"RefreshPolicy": "AllBank", "RefreshMaxPostponed": 1, "RefreshMaxPulledin": 1})
    overhead = 1 - base.total_time_ns / ref.total_time_ns
    expected = T.tRFC / T.tREFI  # 4.49 %
    assert 0.8 * expected < overhead < 1.3 * expected  # measured: 4.44 %
    periods = ref.total_time_ns / (T.tREFI * T.tck_ns)
    assert abs(ref.refresh_count - periods) <= 2
    # refreshes are tREFI apart on average and never closer than tRFC
    assert np.all(np.diff(ref.refresh_cycles) >= T.tRFC)


def test_per_bank_refresh_count():
    tr = _hit_stream(20_000)
    r = simulate(tr, {"RefreshPolicy": "PerBank"})
    per_bank_periods = r.total_time_ns / (T.tREFI / 16 * T.tck_ns)
    assert abs(r.refresh_count - per_bank_periods) <= 3
    assert r.bandwidth_gbps < simulate(tr, NOREF).bandwidth_gbps


def test_frfcfs_at_least_fifo_bandwidth_on_mixed_locality():
    tr = mixed_trace(8_000, stream_share=0.5, row_hit=0.5, write_fraction=0.2, interval_cycles=2, seed=5)
    bw = {s: simulate(tr, {"Scheduler": s, "RequestBufferSize": 32, "SchedulerBuffer": "Shared"}).bandwidth_gbps
          for s in ("Fifo", "FrFcfs", "FrFcfsGrp")}
    assert bw["FrFcfs"] >= bw["Fifo"]
    assert bw["FrFcfsGrp"] >= bw["Fifo"]


def test_closed_page_wins_on_random_loses_on_stream():
    rnd = random_trace(5_000, interval_cycles=12, seed=3)
    assert simulate(rnd, {"PagePolicy": "Closed"}).avg_latency_ns < simulate(rnd, {"PagePolicy": "Open"}).avg_latency_ns
    st = stream_trace(5_000, interval_cycles=8)
    assert simulate(st, {"PagePolicy": "Closed"}).avg_latency_ns > simulate(st, {"PagePolicy": "Open"}).avg_latency_ns


def test_tfaw_and_trrd_limit_activation_rate():
    tr = random_trace(5_000, interval_cycles=0, seed=3)  # every request a new row, all at once
    r = simulate(tr, {**NOREF, "PagePolicy": "Closed", "RequestBufferSize": 32})
    a = r.act_cycles
    assert len(a) == 5_000 and np.all(np.diff(a) >= 0)
    gaps = np.diff(a)
    assert gaps.min() == T.tRRD_S  # back-to-back ACTs to different bank groups
    bg = (r.act_banks // 4) % 4
    same = bg[1:] == bg[:-1]
    assert gaps[same].min() >= T.tRRD_L
    window4 = a[4:] - a[:-4]
    assert window4.min() == T.tFAW  # a fifth ACT never within tFAW of the first: the limit binds
    # count ACTs in every tFAW window: never more than four
    assert (np.searchsorted(a, a + T.tFAW, side="left") - np.arange(len(a))).max() <= 4
    # so the activation-bound bandwidth is 4 bursts per tFAW
    assert r.bandwidth_gbps <= 4 * 64 / (T.tFAW * T.tck_ns) + 1e-9


def test_closed_page_random_uses_one_act_per_request_and_energy_counts_it():
    tr = random_trace(2_000, interval_cycles=20, seed=1)
    op = simulate(tr, {**NOREF, "PagePolicy": "Open"})
    cl = simulate(tr, {**NOREF, "PagePolicy": "Closed"})
    assert cl.activate_count == 2_000
    assert cl.energy.act_nj > 0 and cl.energy.read_nj > 0 and cl.energy.refresh_nj == 0
    e = cl.energy
    assert e.total_nj == pytest.approx(e.act_nj + e.pre_nj + e.read_nj + e.write_nj + e.refresh_nj + e.background_nj)
    assert cl.power_mw == pytest.approx(cl.energy_nj / cl.total_time_ns * 1e3)
    st = stream_trace(2_000, interval_cycles=20)
    assert simulate(st, {**NOREF, "PagePolicy": "Closed"}).energy_nj > simulate(st, NOREF).energy_nj
    assert op.energy_nj > 0


def test_active_transaction_limit_and_reorder():
    tr = random_trace(3_000, interval_cycles=1, seed=2)
    wide = simulate(tr, {"Arbiter": "Fifo", "MaxActiveTransactions": 128, "RequestBufferSize": 32})
    narrow = simulate(tr, {"Arbiter": "Fifo", "MaxActiveTransactions": 1, "RequestBufferSize": 32})
    assert narrow.bandwidth_gbps < wide.bandwidth_gbps
    # one transaction at a time: each costs at least a closed-bank read
    assert narrow.total_time_ns >= 3_000 * (T.tRCD + T.CL + 4) * T.tck_ns
    # in-order responses: response cycles never decrease
    r = simulate(tr, {"RespQueue": "Reorder", "RequestBufferSize": 32})
    resp = r.latency_cycles + tr.cycles
    assert np.all(np.diff(resp) >= 0)


def test_buffer_size_one_serialises_per_bank():
    tr = mixed_trace(3_000, interval_cycles=1, seed=9)
    small = simulate(tr, {"RequestBufferSize": 1, "SchedulerBuffer": "Shared"})
    big = simulate(tr, {"RequestBufferSize": 64, "SchedulerBuffer": "Shared"})
    assert small.bandwidth_gbps < big.bandwidth_gbps


@pytest.mark.parametrize("design", [
    {"PagePolicy": p, "Scheduler": s, "SchedulerBuffer": b, "Arbiter": a, "RefreshPolicy": rf}
    for p, s, b, a, rf in [
        ("Open", "Fifo", "Bankwise", "Simple", "AllBank"), ("OpenAdaptive", "FrFcfs", "ReadWrite", "Fifo", "PerBank"),
        ("Closed", "FrFcfsGrp", "Shared", "Reorder", "NoRefresh"), ("ClosedAdaptive", "FrFcfs", "ReadWrite", "Reorder", "AllBank"),
    ]
])
def test_every_knob_value_runs_and_serves_every_request(design):
    tr = mixed_trace(2_000, interval_cycles=3, write_fraction=0.4, seed=7)
    r = simulate(tr, {**design, "RequestBufferSize": 4, "MaxActiveTransactions": 8, "RespQueue": "Reorder"})
    assert r.latency_cycles.min() >= T.CL + 4 - 1 or r.latency_cycles.min() >= T.CWL + 4
    assert np.isfinite(list(r.metrics().values())).all()
    assert 0 <= r.row_hit_rate <= 1


def test_knob_validation_errors():
    assert issubclass(DesignError, MlsysgymError)
    with pytest.raises(DesignError, match="PagePolicy='Sometimes' is not one of \\['Open'"):
        knob_codes({"PagePolicy": "Sometimes"})
    with pytest.raises(DesignError, match="RequestBufferSize=3"):
        knob_codes({"RequestBufferSize": 3})
    with pytest.raises(DesignError, match="RefreshMaxPostponed=9"):
        knob_codes({"RefreshMaxPostponed": 9})
    with pytest.raises(DesignError, match="unknown parameter 'Pagepolicy'; did you mean 'PagePolicy'"):
        knob_codes({"Pagepolicy": "Open"})
    assert DESIGN_SPACE.complete({"RequestBufferSize": np.int64(16)})["RequestBufferSize"] == 16
    assert len(DESIGN_SPACE) == 10 and set(DESIGN_SPACE.default) == set(DESIGN_SPACE.names)
    assert knob_codes({}).tolist() == [0, 1, 0, 8, 0, 1, 1, 1, 0, 128]
    try:
        knob_codes({"Arbiter": "Lottery"})
    except DesignError as e:
        assert "\n" not in str(e)


def test_address_beyond_capacity_is_a_clear_error():
    tr = DramTrace(np.array([0, 1]), np.array([False, False]), np.array([0, MT40A1G8_083E.capacity_bytes]))
    with pytest.raises(TraceError, match="request 1: address 0x200000000 is beyond the device capacity"):
        simulate(tr)


def test_evaluator_batches_caches_and_accepts_names_files_and_traces(tmp_path):
    sim = DramSimulator()
    designs = [{"PagePolicy": "Open"}, {"PagePolicy": "Closed"}, {"PagePolicy": "Open", "Scheduler": "Fifo"}]
    tr = mixed_trace(2_000, interval_cycles=4, seed=1, name="small")
    m = sim.evaluate(designs, tr)
    assert set(m) == set(sim.metric_names) and all(v.shape == (3,) for v in m.values())
    assert m["row_hit_rate"][1] == 0.0 and m["row_hit_rate"][0] > 0.3
    sim.evaluate(designs, tr)
    assert sim.cache_hits == 3
    path = write_trace(tr, tmp_path / "small.trace")
    from_file = sim.evaluate(designs[:1], str(path))
    assert from_file["avg_latency_ns"][0] == pytest.approx(m["avg_latency_ns"][0])
    named = sim.evaluate([{}], "stream")
    assert named["bandwidth_gbps"][0] > 10
    with pytest.raises(DesignError):
        sim.evaluate([{"Scheduler": "Random"}], tr)
    with pytest.raises(TraceError, match="unknown|no built-in trace"):
        sim.evaluate([{}], "no-such-trace")


def _cli(argv: list[str]) -> argparse.Namespace:
    from mlsysgym.commands import dram_cmds

    parser = argparse.ArgumentParser()
    top = parser.add_subparsers(dest="command")
    groups: dict = {}

    def group(name):
        if name not in groups:
            groups[name] = top.add_parser(name).add_subparsers(dest="sub", required=True)
        return groups[name]

    dram_cmds.register(group)
    return parser.parse_args(argv)


def test_cli_sim_dram_json_and_trace_gen(tmp_path, capsys):
    out = tmp_path / "r.trace"
    args = _cli(["trace", "gen", "--kind", "random", "-n", "500", "--interval-cycles", "10", "-o", str(out)])
    assert args.func(args) == 0
    assert "wrote 500 random requests" in capsys.readouterr().out
    args = _cli(["sim", "dram", "--trace", str(out), "--page-policy", "Closed", "--request-buffer-size", "16",
                 "--refresh-policy", "NoRefresh", "--json"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    for k in ("avg_latency_ns", "p99_latency_ns", "bandwidth_gbps", "row_hit_rate", "energy_nj", "power_mw"):
        assert k in doc["metrics"]
    assert doc["design"]["PagePolicy"] == "Closed" and doc["timing_cycles"]["tRCD"] == 16
    args = _cli(["sim", "dram", "--trace", "stream"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "bandwidth_gbps" in text and "tRFC=420" in text
    args = _cli(["sim", "dram", "--trace", "stream", "--request-buffer-size", "3"])
    with pytest.raises(DesignError):
        args.func(args)


def test_cli_main_one_line_error_and_exit_code(monkeypatch, capsys):
    from mlsysgym import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("mlsysgym.commands.dram_cmds",))
    assert cli.main(["sim", "dram", "--trace", "random", "--max-active-transactions", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mlsysgym: error: MaxActiveTransactions=100 is not a power of two") and "\n" not in err
    assert cli.main(["sim", "dram", "--trace", "nope.trace"]) == 2
    assert "no built-in trace or file 'nope.trace'" in capsys.readouterr().err
    assert cli.main(["sim", "dram", "--trace", "cloud-2", "--scheduler", "FrFcfsGrp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["row_hit_rate"] > 0


def test_random_designs_serve_every_request_within_timing_bounds():
    rng = np.random.default_rng(0)
    tr = mixed_trace(600, interval_cycles=2, write_fraction=0.4, seed=3)
    for _ in range(40):
        design = DESIGN_SPACE.sample(rng)
        r = simulate(tr, design)
        assert r.latency_cycles.min() >= min(T.CL, T.CWL) + T.BL // 2
        assert r.total_time_ns >= len(tr) * T.BL // 2 * T.tck_ns  # the data bus moves one burst per BL/2
        assert np.isfinite(r.energy_nj) and r.energy_nj > 0


# Exact results of the single-body controller loop (commit cbae866), recomputed after it was split
# into helpers: (latency sum, max latency, ACTs, refreshes, end cycle, sum of ACT cycles, sum of
# REF cycles, energy nJ). Any change to the kernel's behaviour moves at least one of them.
_PINNED = [
    ("mixed", {}, (5395265, 5566, 543, 0, 11372, 3084678, 0, 11837.472)),
    ("mixed", {"PagePolicy": "Closed", "Scheduler": "Fifo", "SchedulerBuffer": "Shared", "RequestBufferSize": 32},
     (13475831, 14717, 2002, 2, 20707, 19456220, 37968, 22172.646)),
    ("mixed", {"PagePolicy": "OpenAdaptive", "Scheduler": "FrFcfsGrp", "SchedulerBuffer": "ReadWrite",
               "RequestBufferSize": 4, "RefreshPolicy": "PerBank", "Arbiter": "Reorder", "MaxActiveTransactions": 16},
     (10107281, 10092, 605, 28, 16072, 4810167, 222179, 15420.506)),
    ("mixed", {"PagePolicy": "ClosedAdaptive", "SchedulerBuffer": "ReadWrite", "RespQueue": "Reorder",
               "Arbiter": "Fifo", "MaxActiveTransactions": 8, "RefreshMaxPostponed": 4, "RefreshMaxPulledin": 3},
     (17584455, 16614, 1416, 5, 22600, 16533658, 30931, 23552.816)),
    ("random", {"RequestBufferSize": 32, "RefreshPolicy": "NoRefresh"},
     (13255864, 13298, 1999, 0, 13298, 13145784, 0, 17551.708)),
    ("stream", {"RefreshMaxPostponed": 8, "RefreshMaxPulledin": 8}, (9105000, 6034, 24, 0, 12032, 120852, 0, 13624.384)),
    ("stride", {"PagePolicy": "OpenAdaptive", "SchedulerBuffer": "Shared", "RequestBufferSize": 16},
     (10067000, 10031, 250, 0, 12030, 1478304, 0, 11458.652)),
    ("stream0", "never-postpone", (2622038, 967, 56, 2, 24963, 672668, 28125, 29397.126)),
    ("multi", {}, (8578767, 5503, 824, 4, 8441, 3558202, 134, 27904.576)),
    ("multi", {"RefreshPolicy": "PerBank", "Scheduler": "FrFcfsGrp", "SchedulerBuffer": "ReadWrite"},
     (10280648, 7077, 857, 70, 10044, 4237930, 349068, 30878.149)),
]


def _pinned_trace(name: str):
    multi = MT40A1G8_083E.with_org(channels=2, ranks=2)
    return {
        "mixed": lambda: mixed_trace(2000, interval_cycles=3, write_fraction=0.4, seed=7),
        "random": lambda: random_trace(2000, interval_cycles=0, seed=3, write_fraction=0.3),
        "stream": lambda: stream_trace(3000, interval_cycles=2),
        "stride": lambda: strided_trace(2000, stride=4096, interval_cycles=1, seed=5),
        "stream0": lambda: stream_trace(6000, interval_cycles=4),
        "multi": lambda: mixed_trace(3000, interval_cycles=1, write_fraction=0.3, seed=11, device=multi),
    }[name](), (multi if name == "multi" else MT40A1G8_083E)


@pytest.mark.parametrize("name,design,want", _PINNED)
def test_results_identical_to_the_single_loop_kernel(name, design, want):
    tr, dev = _pinned_trace(name)
    if design == "never-postpone":  # the Ramulator comparison's refresh: knob codes 0 for postpone / pull-in
        design = knob_codes({"SchedulerBuffer": "ReadWrite", "RequestBufferSize": 32, "Arbiter": "Fifo"})
        design[6] = design[7] = 0
    r = simulate(tr, design, device=dev)
    got = (int(r.latency_cycles.sum()), int(r.latency_cycles.max()), r.activate_count, r.refresh_count,
           round(r.total_time_ns / dev.timing.tck_ns), int(r.act_cycles.sum()), int(r.refresh_cycles.sum()))
    assert got == want[:7]
    assert r.energy_nj == pytest.approx(want[7], rel=1e-12)


def _alternating_reads_writes() -> DramTrace:
    """R0 W0 R1 W1 R2 W2 R3 W3, all at cycle 0, one open row of one bank, distinct columns."""
    return _trace(np.zeros(8), {"column": np.arange(8)}, writes=np.arange(8) % 2 == 1)


DRAIN = ControllerSettings(write_drain=True, write_high_watermark=0.5, write_low_watermark=0.25)
RW4 = {**NOREF, "SchedulerBuffer": "ReadWrite", "RequestBufferSize": 4}


def test_write_drain_serves_writes_in_a_batch_between_watermarks():
    """Four write slots: write mode above 0.5 x 4 = 2 queued writes, read mode again below
    0.25 x 4 = 1. Admitted one per cycle (0..7), W2 at cycle 5 makes three writes: write mode.
    The first command (cycle 0) was R0's ACT, so R0 (whose row is open for it) goes first at
    tRCD; then W0..W3 back to back (tCCD_L), then R1..R3 after the write-to-read turnaround."""
    tr = _alternating_reads_writes()
    r = simulate(tr, RW4, settings=DRAIN)
    rd0 = T.tRCD
    w0 = rd0 + T.tRTW  # 16 + 10 = 26: read-to-write turnaround
    w = [w0 + k * T.tCCD_L for k in range(4)]  # 26 32 38 44
    r1 = w[3] + T.CWL + T.BL // 2 + T.tWTR_L  # 44 + 12 + 4 + 9 = 69
    rd = [rd0, r1, r1 + T.tCCD_L, r1 + 2 * T.tCCD_L]
    want = np.empty(8, np.int64)
    want[0::2] = [t + T.CL + T.BL // 2 for t in rd]  # 36 89 95 101
    want[1::2] = [t + T.CWL + T.BL // 2 for t in w]  # 42 48 54 60
    assert r.latency_cycles.tolist() == want.tolist()
    # without draining, FR-FCFS serves the (all row-hit) requests oldest first: R0 W0 R1 W1 ...,
    # paying a turnaround at every switch; the last read then ends later than with draining
    plain = simulate(tr, RW4)
    assert np.argsort(plain.latency_cycles).tolist() == list(range(8))
    assert plain.latency_cycles[6] > r.latency_cycles[6]
    assert plain.total_time_ns > r.total_time_ns


def test_write_drain_defaults_are_ramulators_and_change_nothing_for_reads_only():
    d = ControllerSettings()
    assert (d.write_drain, d.write_high_watermark, d.write_low_watermark, d.read_forwarding, d.active_buffer) == (
        False, 0.8, 0.2, False, 0)
    # thresholds in whole requests: enter above floor(0.8 x 32) = 25, leave below ceil(0.2 x 32) = 7
    on = ControllerSettings(write_drain=True)
    assert on.vector(knob_codes({"SchedulerBuffer": "ReadWrite", "RequestBufferSize": 32}), 16).tolist() == [1, 25, 7, 0, 0, 0]
    assert on.vector(knob_codes({"SchedulerBuffer": "Bankwise", "RequestBufferSize": 8}), 16).tolist() == [1, 102, 26, 0, 0, 0]
    tr = random_trace(2_000, interval_cycles=4, seed=2)
    a, b = simulate(tr, {}), simulate(tr, {}, settings=on)
    assert a.latency_cycles.tolist() == b.latency_cycles.tolist()
    with pytest.raises(DesignError, match="0 < low <= high <= 1"):
        ControllerSettings(write_drain=True, write_high_watermark=0.2, write_low_watermark=0.5)
    with pytest.raises(DesignError, match="write mode never ends"):
        ControllerSettings(write_drain=True, write_low_watermark=0.0)


def test_read_forwarding_answers_from_the_queued_write():
    """W then R to the same address, arriving together: with forwarding, R is answered from the
    write queue at its admission (the Fifo arbiter's one cycle after its arrival) with no RD."""
    tr = _trace([0, 0, 0], {"column": np.array([5, 5, 6])}, writes=[True, False, False])
    design = {**NOREF, "Arbiter": "Fifo"}
    r = simulate(tr, design, settings=ControllerSettings(read_forwarding=True))
    assert r.forwarded_count == 1
    assert r.latency_cycles[1] == 2  # admitted at cycle 2 (one per cycle after the write's 1)
    assert r.energy.read_nj == pytest.approx(simulate(_trace([0], {"column": np.array([6])}), design).energy.read_nj)
    plain = simulate(tr, design)
    assert plain.forwarded_count == 0 and plain.latency_cycles[1] > T.tRCD + T.CWL
    sim = DramSimulator(settings=ControllerSettings(write_drain=True, read_forwarding=True))
    assert sim.version == "1+drain0.8-0.2+fwd" and DramSimulator().version == "1"
    assert sim.evaluate([{}], tr)["avg_latency_ns"][0] < DramSimulator().evaluate([{}], tr)["avg_latency_ns"][0]


def test_active_buffer_frees_the_entry_at_activate():
    """A one-entry read buffer, reads to two bank groups at cycle 0. Holding the entry until
    the column command, R1 enters at R0's RD (tRCD = 16), its ACT waits for the command bus (17),
    RD at 17 + tRCD = 33, data ends 33 + CL + BL/2 = 53. With an active buffer R0 leaves the
    buffer at its ACT (cycle 0): R1 enters at 1, ACT at tRRD_S = 4, RD at 20, data ends 40."""
    tr = _trace([0, 0], {"bankgroup": np.array([0, 1])})
    d = {**NOREF, "SchedulerBuffer": "ReadWrite", "RequestBufferSize": 1}
    hold = T.tRCD + 1 + T.tRCD + T.CL + T.BL // 2
    assert simulate(tr, d).latency_cycles.tolist() == [36, hold] == [36, 53]
    act = T.tRRD_S + T.tRCD + T.CL + T.BL // 2
    assert simulate(tr, d, settings=ControllerSettings(active_buffer=32)).latency_cycles.tolist() == [36, act] == [36, 40]
    with pytest.raises(DesignError, match="active_buffer"):
        ControllerSettings(active_buffer=-1)


def test_ready_first_frfcfs_closes_a_row_a_waiting_hit_needs():
    """Rows open in bank groups 0-2 (ACTs at 0, 4, 8). At 200: eight hits to groups 1/2 (admitted
    200..207, RDs every tCCD_S from 200: data to 248), then H (hit, group 0) at 208 and C
    (another row of group 0) at 209. Row-hit first: H's RD follows the older hits (232, data
    252); C's PRE waits tRTP after it (241), ACT 257, RD 273, data 293. Ready first (Ramulator's
    FRFCFS): C's PRE is ready at 209 while H waits for the bus, so PRE 209; then both need an
    ACT and the older, H, gets it: ACT 225, RD 241 (data 261); C is now a conflict again: PRE at
    ACT + tRAS = 264, ACT 280, RD 296, data 316. One ACT more for the same requests."""
    bg = np.array([0, 1, 2] + [1, 2] * 4 + [0, 0])
    row = np.array([1] * 12 + [2])
    col = np.array([0, 0, 0] + list(range(1, 9)) + [1, 0])
    cyc = np.array([0, 0, 0] + [200] * 10)
    tr = _trace(cyc, {"bankgroup": bg, "row": row, "column": col})
    d = {**NOREF, "RequestBufferSize": 16}
    hit_first = simulate(tr, d)
    rd_h = 200 + 8 * T.tCCD_S  # 232
    pre_c = rd_h + T.tRTP  # 241
    assert (hit_first.latency_cycles + cyc)[-2:].tolist() == [rd_h + T.CL + 4, pre_c + T.tRP + T.tRCD + T.CL + 4]
    assert hit_first.act_cycles.tolist() == [0, 4, 8, pre_c + T.tRP]
    ready = simulate(tr, d, settings=ControllerSettings(ready_first=True))
    act_h = 209 + T.tRP  # 225
    act_c = act_h + T.tRAS + T.tRP  # 280
    assert (ready.latency_cycles + cyc)[-2:].tolist() == [act_h + T.tRCD + T.CL + 4, act_c + T.tRCD + T.CL + 4]
    assert ready.act_cycles.tolist() == [0, 4, 8, act_h, act_c]
    # only FrFcfs reads the setting
    fifo = {**d, "Scheduler": "Fifo"}
    assert simulate(tr, fifo).latency_cycles.tolist() == simulate(
        tr, fifo, settings=ControllerSettings(ready_first=True)).latency_cycles.tolist()


def test_random_designs_with_every_controller_setting_serve_every_request():
    """Write draining, forwarding, the active buffer and ready-first, alone and together, on
    random designs and two organisations: every request served, none faster than its burst."""
    rng = np.random.default_rng(1)
    all_on = ControllerSettings(write_drain=True, read_forwarding=True, active_buffer=8, ready_first=True)
    options = [all_on, ControllerSettings(write_drain=True, write_high_watermark=1.0, write_low_watermark=0.01),
               ControllerSettings(active_buffer=2), ControllerSettings(ready_first=True),
               ControllerSettings(read_forwarding=True)]
    for dev in (MT40A1G8_083E, MT40A1G8_083E.with_org(channels=2, ranks=2)):
        tr = mixed_trace(600, interval_cycles=2, write_fraction=0.5, seed=4, device=dev)
        for k in range(20):
            r = simulate(tr, DESIGN_SPACE.sample(rng), device=dev, settings=options[k % len(options)])
            assert r.latency_cycles.min() >= 0
            served = r.latency_cycles.size - r.forwarded_count
            assert served >= 1 and r.total_time_ns >= served * T.BL // 2 * T.tck_ns / dev.org.channels
            assert np.isfinite(r.energy_nj) and r.energy_nj > 0
