"""DRAM trace generators, the text format's reader and writer, and built-in traces."""

from __future__ import annotations

import numpy as np
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.simulators.dram import decode_addresses
from mlsysgym.simulators.dram_timing import MT40A1G8_083E
from mlsysgym.simulators.dram_traces import (
    TRACES,
    DramTrace,
    TraceError,
    TraceFormatError,
    locality_trace,
    mixed_trace,
    named_trace,
    random_trace,
    read_trace,
    resolve_trace,
    stream_trace,
    strided_trace,
    write_trace,
)


def test_generators_are_seeded_and_shaped():
    for gen in (random_trace, locality_trace, mixed_trace):
        a, b, c = gen(1_000, seed=1), gen(1_000, seed=1), gen(1_000, seed=2)
        assert np.array_equal(a.addresses, b.addresses) and np.array_equal(a.cycles, b.cycles)
        assert not np.array_equal(a.addresses, c.addresses)
        assert len(a) == 1_000 and np.all(np.diff(a.cycles) >= 0)
        assert np.all((a.addresses >= 0) & (a.addresses < MT40A1G8_083E.capacity_bytes))
        assert np.all(a.addresses % 64 == 0)


def test_stream_strided_rate_and_write_fraction():
    s = stream_trace(100, start=128, interval_cycles=3)
    assert s.addresses.tolist()[:3] == [128, 192, 256] and s.cycles.tolist()[:3] == [0, 3, 6]
    st = strided_trace(10, stride=8192)
    assert np.all(np.diff(st.addresses) == 8192)
    r = random_trace(20_000, rate_per_ns=0.1, write_fraction=0.25, poisson=True)
    mean_gap_ns = np.diff(r.cycles).mean() * MT40A1G8_083E.timing.tck_ns
    assert mean_gap_ns == pytest.approx(10.0, rel=0.05)
    assert r.write_fraction == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9, 1.0])
def test_row_locality_is_controllable(p):
    t = locality_trace(20_000, row_hit=p, seed=3)
    f = decode_addresses(t.addresses)
    same = (f["row"][1:] == f["row"][:-1]) & (f["bank"][1:] == f["bank"][:-1]) & \
           (f["bankgroup"][1:] == f["bankgroup"][:-1])
    assert same.mean() == pytest.approx(p, abs=0.02)


def test_round_trip(tmp_path):
    t = mixed_trace(3_000, write_fraction=0.4, seed=4, name="rt")
    path = write_trace(t, tmp_path / "rt.trace")
    back = read_trace(path)
    assert np.array_equal(back.cycles, t.cycles)
    assert np.array_equal(back.is_write, t.is_write)
    assert np.array_equal(back.addresses, t.addresses)
    assert back.name == "rt"


def test_reader_accepts_blank_comments_crlf_and_plain_hex(tmp_path):
    p = tmp_path / "ok.trace"
    p.write_bytes(b"# header\n\n0: read 0x40\r\n  5:write   80  \n7: read 0XFF00\n")
    t = read_trace(p)
    assert t.cycles.tolist() == [0, 5, 7] and t.is_write.tolist() == [False, True, False]
    assert t.addresses.tolist() == [0x40, 0x80, 0xFF00]


@pytest.mark.parametrize("bad, reason", [
    ("12 read 0x40", "cycle"), ("12: fetch 0x40", "read' or 'write"), ("12: read", "hex address"),
    ("12: read zz", "hex address"), ("12: read 0x40 extra", "after the address"), ("x: read 0x40", "cycle"),
    ("12: reading 0x40", "read' or 'write"),
])
def test_malformed_line_error_has_its_line_number(tmp_path, bad, reason):
    p = tmp_path / "bad.trace"
    p.write_text(f"# header\n0: read 0x0\n{bad}\n20: write 0x80\n")
    with pytest.raises(TraceFormatError, match=reason) as e:
        read_trace(p)
    assert e.value.line == 3
    assert "bad.trace:3:" in str(e.value)
    assert isinstance(e.value, MlsysgymError) and "\n" not in str(e.value)


def test_unsorted_and_beyond_capacity_errors(tmp_path):
    p = tmp_path / "u.trace"
    p.write_text("0: read 0x0\n\n10: read 0x40\n5: read 0x80\n")
    with pytest.raises(TraceError, match=r"u.trace:4: cycle 5 is before"):
        read_trace(p)
    p.write_text("0: read 0x0\n1: write 0x200000000\n")
    with pytest.raises(TraceError, match=r"u.trace:2: address 0x200000000 is beyond the device capacity"):
        read_trace(p, capacity_bytes=MT40A1G8_083E.capacity_bytes)
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "missing.trace")


def test_named_traces_resolve():
    for name in ("stream", "random", "cloud-1", "cloud-2"):
        assert name in TRACES
    t = named_trace("cloud-1")
    assert len(t) == 20_000 and 0.2 < t.write_fraction < 0.4
    assert resolve_trace("stream").name == "stream"
    assert resolve_trace(t) is t
    with pytest.raises(TraceError, match="built-in traces are stream"):
        resolve_trace("nope")
    with pytest.raises(TraceError):
        DramTrace(np.zeros(3), np.zeros(2, bool), np.zeros(3))
