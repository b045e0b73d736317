"""Fidelity of the DRAM controller simulator against Ramulator 2.0 (cycle-level, not ours).

Ramulator (CMU-SAFARI/ramulator2, C++20) has no Python wheel, so it is never a dependency and
nothing of it is in this repository: it is built elsewhere, and this script only runs a binary
given with ``--ramulator``. That binary is Ramulator's library linked with a small trace driver
(``<binary> config.yaml trace.txt``) that offers the requests of one of our trace files at their
cycles, at most one per cycle, in order (a rejected request blocks the later ones and is offered
again the next cycle, as Ramulator's own trace frontends do), and prints Ramulator's statistics
followed by one line ``RESULT {json}`` with the command counts, the read latencies (data end
minus trace cycle) and the cycle the last request's data ended.

Grid: the traces of ``TRACES`` (ours, written to ``benchmarks/data/ramulator/traces/``) x the
controller settings of ``settings()`` that both simulators have (address mapping, page policy,
refresh, read/write queue sizes; the scheduler is FR-FCFS in both, Ramulator 2.0's generic
controller has no other), on the DDR4-2400 x8 device (Ramulator ``DDR4_8Gb_x8`` +
``DDR4_2400R`` = our MT40A1G8-083E; nRFC set to JEDEC's 350 ns for 8 Gb).

Writes (under the working directory; the committed data is what ``--report`` reads)

- ``benchmarks/data/ramulator/reference.csv`` (``--data``): Ramulator's numbers, one row per (trace, setting),
  with Ramulator's commit and every configuration value as plain columns;
- ``benchmarks/results/ramulator.md``: our simulator against them.

Usage::

    .venv/bin/python benchmarks/ramulator_validate.py --ramulator /path/to/ramulator2  # run, compare
    .venv/bin/python benchmarks/ramulator_validate.py --report     # compare the committed CSV only
    .venv/bin/python benchmarks/ramulator_validate.py --report --time-ramulator /path/to/ramulator2  # + speed
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

COMMITTED = Path(__file__).resolve().parent / "data" / "ramulator"  # read (tests read it too)
DATA = Path("benchmarks/data/ramulator")  # --data: regenerated data, under the working directory
MD_PATH = Path("benchmarks/results/ramulator.md")  # written, under the working directory

N_REQUESTS = 4000

# Ramulator's DDR4 "Default" current preset (mA) and voltages (V): both energy models get these
# same inputs, so the comparison checks the model (command counts, active time, formulas).
RAM_CURRENTS = {"VDD": 1.2, "VPP": 2.5, "IDD0": 60.0, "IDD2N": 50.0, "IDD3N": 55.0, "IDD4R": 145.0,
                "IDD4W": 145.0, "IDD5B": 362.0, "IPP0": 3.0, "IPP2N": 3.0, "IPP3N": 3.0, "IPP4R": 3.0,
                "IPP4W": 3.0, "IPP5B": 48.0}
DEVICES_PER_RANK = 8  # Ramulator's power model is per device; a 64-bit rank of x8 parts has 8
NRFC = 420  # JEDEC tRFC1 = 350 ns for 8 Gb at tCK 0.833 ns (Ramulator's table says 360 ns)
WR_LOW, WR_HIGH = 0.2, 0.8  # Ramulator 2.0's write watermarks (its defaults)
ACTIVE_BUFFER = 32  # Ramulator 2.0's active buffer (ReqBuffer's fixed max_size)
NREFI_OFF = 1_000_000_000  # "no refresh" in Ramulator 2.0: an interval longer than any run

# Ramulator's linear mappers as our bit-field orders (most significant field first).
MAPPINGS = {
    "RoBaRaCoCh": "row:bank:bankgroup:rank:column:channel",
    "ChRaBaRoCo": "channel:rank:bankgroup:bank:row:column",
}


def _traces() -> dict[str, Callable[[], object]]:
    from mlsysgym.simulators import dram_traces as dt

    n = N_REQUESTS
    out: dict[str, Callable[[], object]] = {
        "stream_sat": lambda: dt.stream_trace(n, interval_cycles=0, name="stream_sat"),
        "stream_timed": lambda: dt.stream_trace(n, interval_cycles=8, name="stream_timed"),
        "random_sat": lambda: dt.random_trace(n, interval_cycles=0, seed=1, name="random_sat"),
        "random_timed": lambda: dt.random_trace(n, interval_cycles=16, poisson=True, seed=2,
                                                name="random_timed"),
        "rw70_sat": lambda: dt.random_trace(n, write_fraction=0.3, interval_cycles=0, seed=3,
                                            name="rw70_sat"),
        "rw50_timed": lambda: dt.random_trace(n, write_fraction=0.5, interval_cycles=12, poisson=True,
                                              seed=4, name="rw50_timed"),
        "stride4k_sat": lambda: dt.strided_trace(n, stride=4096, interval_cycles=0, seed=5,
                                                 name="stride4k_sat"),
        "stride8k_timed": lambda: dt.strided_trace(n, stride=8192, interval_cycles=10, seed=6,
                                                   name="stride8k_timed"),
        "mixed_timed": lambda: dt.mixed_trace(n, stream_share=0.6, row_hit=0.6, write_fraction=0.3,
                                              interval_cycles=7, seed=7, name="mixed_timed"),
    }

    def accel(model: str) -> Callable[[], object]:
        def make():
            from mlsysgym.simulators.accel_traces import accel_trace
            return accel_trace(model, max_requests=n, name=f"accel_{model}")
        return make

    out["accel_resnet18"] = accel("resnet18")
    out["accel_gpt2"] = accel("gpt2")
    return out


TRACE_NAMES = ("stream_sat", "stream_timed", "random_sat", "random_timed", "rw70_sat", "rw50_timed",
               "stride4k_sat", "stride8k_timed", "mixed_timed", "accel_resnet18", "accel_gpt2")


@dataclass(frozen=True)
class Setting:
    """One controller configuration both simulators have."""

    mapping: str  # Ramulator mapper name (key of MAPPINGS)
    page: str  # "Open" | "Closed"
    refresh: str  # "AllBank" | "NoRefresh"
    queue: int  # read-queue and write-queue entries

    @property
    def name(self) -> str:
        return f"{self.mapping}/{self.page}/{self.refresh}/q{self.queue}"


def settings() -> list[Setting]:
    """Mapping x page policy x refresh x queue size (16 settings)."""
    return [Setting(m, p, r, q) for m in MAPPINGS for p in ("Open", "Closed")
            for r in ("AllBank", "NoRefresh") for q in (32, 8)]


def our_design(s: Setting) -> dict:
    """Our knobs for a setting: FR-FCFS, separate read and write queues of ``queue`` entries,
    in-order admission one request per cycle with one cycle of arbitration (Ramulator's
    controller sees a request the cycle after it is offered), responses as data completes."""
    return {"PagePolicy": s.page, "Scheduler": "FrFcfs", "SchedulerBuffer": "ReadWrite",
            "RequestBufferSize": s.queue, "RespQueue": "Fifo", "RefreshPolicy": s.refresh,
            "RefreshMaxPostponed": 1, "RefreshMaxPulledin": 1, "Arbiter": "Fifo",
            "MaxActiveTransactions": 128}


def our_codes(s: Setting) -> np.ndarray:
    """Knob codes of :func:`our_design` with RefreshMaxPostponed = RefreshMaxPulledin = 0:
    Ramulator 2.0 issues every refresh at its tREFI tick, never earlier or later. The design
    space starts these knobs at 1 (ArchGym's range); the kernel reads 0 as "never postpone,
    never pull in" (DRAMSys's default), so the codes are passed to ``simulate`` directly."""
    from mlsysgym.simulators.dram import knob_codes
    from mlsysgym.simulators.dram_kernel import K_MAXPOST, K_MAXPULL

    c = knob_codes(our_design(s))
    c[K_MAXPOST] = 0
    c[K_MAXPULL] = 0
    return c


def our_settings(s: Setting, ramulator_like: bool = True):
    """Our controller settings for a setting. Ramulator-like (the comparison's default): write
    draining between Ramulator's watermarks and read forwarding from the write queue. Ramulator
    compares its watermarks with ``max_size`` = queue - 1 (see :func:`ramulator_params`), ours with
    the queue's capacity, so the fractions are scaled by (queue - 1) / queue: the same whole
    numbers of writes switch the mode (queue 32: enter above 24, leave below 7). Without
    ``ramulator_like``: our defaults (no draining, no forwarding)."""
    from mlsysgym.simulators.dram import ControllerSettings

    if not ramulator_like:
        return ControllerSettings()
    f = (s.queue - 1) / s.queue
    return ControllerSettings(write_drain=True, write_high_watermark=WR_HIGH * f, write_low_watermark=WR_LOW * f,
                              read_forwarding=True, active_buffer=ACTIVE_BUFFER, ready_first=True)


def ramulator_params(s: Setting) -> dict:
    """The Ramulator configuration of a setting as plain parameters (what the CSV records)."""
    return {
        "org_preset": "DDR4_8Gb_x8", "timing_preset": "DDR4_2400R", "channels": 1, "ranks": 1,
        "nRFC": NRFC, "nREFI": 9360 if s.refresh == "AllBank" else NREFI_OFF,
        "controller": "Generic", "scheduler": "FRFCFS", "refresh_manager": "AllBank",
        "row_policy": "OpenRowPolicy" if s.page == "Open" else "ClosedRowPolicy",
        "closed_cap": "" if s.page == "Open" else 1,
        # Ramulator 2.0's ReqBuffer accepts while size <= max_size: max_size + 1 entries
        "read_buffer_max_size": s.queue - 1, "write_buffer_max_size": s.queue - 1,
        "wr_low_watermark": WR_LOW, "wr_high_watermark": WR_HIGH,
        "addr_mapper": s.mapping, "drampower_enable": "true", "current_preset": "Default",
        "voltage_preset": "Default", "memory_clock_ratio": 1,
    }


def _config_yaml(p: dict) -> str:
    rowpol = f"      impl: {p['row_policy']}\n"
    if p["closed_cap"] != "":
        rowpol += f"      cap: {p['closed_cap']}\n"
    return f"""Frontend:
  impl: GEM5
  clock_ratio: 1

MemorySystem:
  impl: GenericDRAM
  clock_ratio: {p['memory_clock_ratio']}
  DRAM:
    impl: DDR4
    drampower_enable: {p['drampower_enable']}
    voltage:
      preset: {p['voltage_preset']}
    current:
      preset: {p['current_preset']}
    org:
      preset: {p['org_preset']}
      channel: {p['channels']}
      rank: {p['ranks']}
    timing:
      preset: {p['timing_preset']}
      nRFC: {p['nRFC']}
      nREFI: {p['nREFI']}
  Controller:
    impl: {p['controller']}
    read_buffer_max_size: {p['read_buffer_max_size']}
    write_buffer_max_size: {p['write_buffer_max_size']}
    wr_low_watermark: {p['wr_low_watermark']}
    wr_high_watermark: {p['wr_high_watermark']}
    Scheduler:
      impl: {p['scheduler']}
    RefreshManager:
      impl: {p['refresh_manager']}
    RowPolicy:
{rowpol}    plugins:
      - ControllerPlugin:
          impl: XCheckCounter
  AddrMapper:
    impl: {p['addr_mapper']}
"""


# ----------------------------------------------------------------------------- traces

def trace_path(name: str, data: Path = COMMITTED) -> Path:
    return data / "traces" / f"{name}.trace"


def write_traces(data: Path) -> None:
    """Generate every trace of the grid (ours) into ``data/traces``."""
    from mlsysgym.simulators.dram_traces import write_trace

    (data / "traces").mkdir(parents=True, exist_ok=True)
    makers = _traces()
    for name in TRACE_NAMES:
        write_trace(makers[name](), trace_path(name, data))


def load_trace(name: str, data: Path = COMMITTED):
    from mlsysgym.simulators.dram_traces import read_trace

    return read_trace(trace_path(name, data), name=name)


# ----------------------------------------------------------------------------- Ramulator

_ENERGY = re.compile(r"^\s*total_energy:\s*([-0-9.eE+]+)\s*$", re.MULTILINE)
_STAT = re.compile(r"^\s*(row_hits_0|row_misses_0|row_conflicts_0):\s*([0-9]+)\s*$", re.MULTILINE)


def run_one(binary: Path, trace: str, s: Setting, work: Path, data: Path = COMMITTED) -> dict:
    """Run Ramulator on one trace x setting (the trace in ``data``); its numbers as a CSV row."""
    p = ramulator_params(s)
    cfg = work / f"{trace}_{s.name.replace('/', '_')}.yaml"
    cfg.write_text(_config_yaml(p))
    from mlsysgym.core.limits import run_limited

    t0 = time.perf_counter()
    res = run_limited([str(binary), str(cfg), str(trace_path(trace, data))], f"Ramulator on {trace}",
                      text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"Ramulator failed on {trace} {s.name}: {res.stderr[-2000:]}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    r = json.loads(line[len("RESULT "):])
    energy = _ENERGY.search(res.stdout)
    stats = dict(_STAT.findall(res.stdout))
    row = {"trace": trace, "setting": s.name, "mapping": s.mapping, "page_policy": s.page,
           "refresh": s.refresh, "queue": s.queue, **{f"cfg_{k}": v for k, v in p.items()},
           **{f"cur_{k}": v for k, v in RAM_CURRENTS.items()}}
    row.update({
        "ram_requests": r["n"], "ram_reads": r["reads"], "ram_end_cycle": r["end_cycle"],
        "ram_act": r["act"], "ram_pre": r["pre"], "ram_prea": r["prea"], "ram_rd": r["rd"],
        "ram_wr": r["wr"], "ram_ref": r["ref"],
        "ram_avg_read_latency_cycles": r["avg_read_latency_cycles"],
        "ram_p99_read_latency_cycles": r["p99_read_latency_cycles"],
        "ram_row_hits": stats.get("row_hits_0", ""), "ram_row_misses": stats.get("row_misses_0", ""),
        "ram_row_conflicts": stats.get("row_conflicts_0", ""),
        "ram_energy_nj_per_device": float(energy.group(1)) if energy else "",
        "ram_sim_wall_s": r["wall_s"], "ram_process_wall_s": round(wall, 4),
    })
    return row


def time_ramulator(binary: Path, rows: list[dict], data: Path = COMMITTED) -> np.ndarray:
    """Ramulator's simulation-loop seconds on every row of the committed reference, run now (for
    a speed comparison within one run); the CSV is not rewritten. Fails if a run's latency is not
    the CSV's (a different build)."""
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            new = run_one(binary, r["trace"], setting_of(r), Path(tmp), data)
            if abs(float(new["ram_avg_read_latency_cycles"]) - float(r["ram_avg_read_latency_cycles"])) > 1e-6:
                raise RuntimeError(f"{binary} does not reproduce the reference on {r['trace']} {r['setting']}")
            walls.append(float(new["ram_sim_wall_s"]))
    return np.array(walls)


def run_ramulator(binary: Path, commit: str, data: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for trace in TRACE_NAMES:
            for s in settings():
                row = run_one(binary, trace, s, Path(tmp), data)
                rows.append({"ramulator_commit": commit, **row})
                print(f"  {trace:16s} {s.name:34s} lat {row['ram_avg_read_latency_cycles']:8.1f}"
                      f"  end {row['ram_end_cycle']}", flush=True)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def load_reference(path: Path = COMMITTED / "reference.csv") -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- ours

def device():
    """Our MT40A1G8-083E with Ramulator's default currents (same energy inputs)."""
    from mlsysgym.simulators.dram_timing import MT40A1G8_083E, DramCurrents

    c = RAM_CURRENTS
    cur = DramCurrents(VDD=c["VDD"], VPP=c["VPP"], IDD0=c["IDD0"], IDD2N=c["IDD2N"], IDD3N=c["IDD3N"],
                       IDD4R=c["IDD4R"], IDD4W=c["IDD4W"], IDD5B=c["IDD5B"], IPP0=c["IPP0"],
                       IPP3N=c["IPP3N"], IPP5B=c["IPP5B"])
    return replace(MT40A1G8_083E, currents=cur)


def setting_of(row: dict) -> Setting:
    return Setting(row["mapping"], row["page_policy"], row["refresh"], int(row["queue"]))


def ours(rows: list[dict], ramulator_like: bool = True,
         data: Path = COMMITTED) -> dict[str, np.ndarray]:
    """Our simulator on every (trace, setting) of ``rows`` (the traces in ``data``): metrics in
    the CSV's units (``ramulator_like``: see :func:`our_settings`)."""
    from mlsysgym.simulators.dram import prepare_trace, simulate
    from mlsysgym.simulators.dram_timing import AddressMapping

    dev = device()
    tck = dev.timing.tck_ns
    traces = {name: load_trace(name, data) for name in {r["trace"] for r in rows}}
    warm = setting_of(rows[0])  # compile (or load) the kernel before timing
    simulate(traces[rows[0]["trace"]], our_codes(warm), dev, settings=our_settings(warm, ramulator_like))
    prepared: dict[tuple[str, str], object] = {}
    out: dict[str, list] = {k: [] for k in ("avg_lat", "p99_lat", "bw", "hit", "energy", "end",
                                            "act", "ref", "fwd", "wall_s")}
    for r in rows:
        s = setting_of(r)
        key = (r["trace"], s.mapping)
        if key not in prepared:
            prepared[key] = prepare_trace(traces[r["trace"]], dev, AddressMapping(MAPPINGS[s.mapping]))
        p = prepared[key]
        t0 = time.perf_counter()
        res = simulate(p, our_codes(s), dev, AddressMapping(MAPPINGS[s.mapping]), our_settings(s, ramulator_like))
        wall = time.perf_counter() - t0
        lat = res.latency_cycles[p.is_write == 0]
        n = lat.size + int(p.is_write.sum())
        end = res.total_time_ns / tck
        out["avg_lat"].append(float(lat.mean()) if lat.size else np.nan)
        out["p99_lat"].append(float(np.percentile(lat, 99)) if lat.size else np.nan)
        out["bw"].append(n * dev.burst_bytes / res.total_time_ns)
        out["hit"].append(1.0 - res.activate_count / n)
        out["energy"].append(res.energy_nj)
        out["end"].append(end)
        out["act"].append(res.activate_count)
        out["ref"].append(res.refresh_count)
        out["fwd"].append(res.forwarded_count)
        out["wall_s"].append(wall)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def theirs(rows: list[dict]) -> dict[str, np.ndarray]:
    """Ramulator's numbers of ``rows`` in the same units as :func:`ours`."""
    tck = device().timing.tck_ns
    n = np.array([int(r["ram_requests"]) for r in rows], dtype=np.float64)
    end = np.array([int(r["ram_end_cycle"]) for r in rows], dtype=np.float64)
    act = np.array([int(r["ram_act"]) for r in rows], dtype=np.float64)

    def f(k):
        return np.array([float(r[k]) if r[k] != "" else np.nan for r in rows])

    return {"avg_lat": f("ram_avg_read_latency_cycles"), "p99_lat": f("ram_p99_read_latency_cycles"),
            "bw": n * 64 / (end * tck), "hit": 1.0 - act / n,
            "energy": f("ram_energy_nj_per_device") * DEVICES_PER_RANK, "end": end, "act": act,
            "ref": f("ram_ref"), "wall_s": f("ram_sim_wall_s")}


# ----------------------------------------------------------------------------- agreement

METRICS = (("avg_lat", "avg read latency"), ("p99_lat", "p99 read latency"), ("bw", "bandwidth"),
           ("hit", "row-hit rate"), ("energy", "energy"))
GOALS = {"avg_lat": 5.0, "p99_lat": 5.0, "bw": 5.0, "energy": 10.0}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); nan when one side is constant."""
    import pandas as pd

    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if np.std(ra) == 0 or np.std(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def rel_err(o: np.ndarray, t: np.ndarray) -> np.ndarray:
    """|ours - theirs| / theirs in percent."""
    return np.abs(o - t) / np.abs(t) * 100.0


def err(k: str, o: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Relative error in percent; for the row-hit rate (often 0) the difference in points."""
    return np.abs(o - t) * 100.0 if k == "hit" else rel_err(o, t)


def subset(res: dict, rows: list[dict], keep: np.ndarray) -> dict:
    """:func:`agreement` restricted to the rows where ``keep`` is true (no re-simulation)."""
    sub = [r for r, k in zip(rows, keep) if k]
    cut = {k: v[keep] for k, v in res["ours"].items()}
    return agreement(sub, cut)


def agreement(rows: list[dict], o: dict | None = None, data: Path = COMMITTED) -> dict:
    """Median/worst errors per metric, and per-trace rank correlations of the settings."""
    o = ours(rows, data=data) if o is None else o
    t = theirs(rows)
    traces = np.array([r["trace"] for r in rows])
    out: dict = {"ours": o, "theirs": t, "errors": {}, "rho": {}}
    for k, _ in METRICS:
        e = err(k, o[k], t[k])
        out["errors"][k] = {"median": float(np.nanmedian(e)), "p90": float(np.nanpercentile(e, 90)),
                            "max": float(np.nanmax(e)), "per_row": e}
        per = {}
        for tr in dict.fromkeys(traces):
            m = traces == tr
            per[tr] = spearman(o[k][m], t[k][m])
        vals = np.array([v for v in per.values() if np.isfinite(v)])
        out["rho"][k] = {"per_trace": per, "median": float(np.median(vals)) if vals.size else np.nan,
                         "min": float(vals.min()) if vals.size else np.nan,
                         "pooled": spearman(o[k], t[k])}
    return out


# ----------------------------------------------------------------------------- report

def write_markdown(rows: list[dict], res: dict, path: Path = MD_PATH, notes: str = "",
                   plain: dict | None = None, ram_wall: np.ndarray | None = None) -> str:
    """The report: agreement tables (``plain``: the agreement with our default controller
    settings, a third table), speed (``ram_wall``: Ramulator's seconds per row measured in this
    run, else the CSV's), ``notes``, and every row."""
    from mlsysgym.experiments.report import stamp_markdown

    o, t = res["ours"], res["theirs"]
    commit = rows[0]["ramulator_commit"]
    lines = [
        "# DRAM simulator vs Ramulator 2.0",
        "",
        (f"Reference: Ramulator 2.0 (CMU-SAFARI/ramulator2, tag v2.0a, commit `{commit}`), built outside "
        "this repository, driven by our traces (`benchmarks/data/ramulator/traces/`, "
        f"{N_REQUESTS} requests each); its numbers are in `benchmarks/data/ramulator/reference.csv`. "
        "Device: DDR4-2400 x8 8 Gb, one channel, one rank (Ramulator `DDR4_8Gb_x8` + `DDR4_2400R` = "
        "our MT40A1G8-083E timings; nRFC 420 cycles = JEDEC 350 ns in both). Both energy models get "
        "Ramulator's default IDD currents; Ramulator's per-device energy is multiplied by the 8 "
        "devices of the rank. Latency is read latency in DRAM cycles (tCK 0.833 ns) from the trace "
        "cycle to the end of the data burst; bandwidth is bytes over the time to the last data; "
        "the row-hit rate is 1 - ACT/requests in both. Ours runs with the Ramulator-like controller "
        "settings (write draining, read forwarding, active buffer, ready-first FR-FCFS; see the "
        "notes) unless a table says otherwise."),
        "",
        "## Agreement",
        "",
        ("Errors are |ours - Ramulator| / Ramulator per (trace, setting), except the row-hit rate "
        "(difference in percentage points). Rank correlation: Spearman of the 16 settings' values "
        "within each trace (what design-space exploration sees), median and worst over the traces "
        "where both sides vary; pooled: over every (trace, setting)."),
        "",
    ]
    opened = np.array([r["page_policy"] == "Open" for r in rows])
    tables = [("All 16 settings", res), ("Open page only (8 settings; see the closed-page note)",
                                         subset(res, rows, opened))]
    if plain is not None:
        tables.append((("All 16 settings, our default controller settings (row-hit-first FR-FCFS, no write "
                       "draining, forwarding or active buffer)"), plain))
    for title, part in tables:
        lines += [f"### {title}", "",
                  "| metric | median error | p90 | worst | goal | rank corr. per trace (median / min) | pooled rank corr. |",
                  "|---|---|---|---|---|---|---|"]
        for k, label in METRICS:
            e, r = part["errors"][k], part["rho"][k]
            unit = " pt" if k == "hit" else " %"
            goal = f"≤ {GOALS[k]:.0f} %" if k in GOALS else "—"
            met = "" if k not in GOALS else (" ✓" if e["median"] <= GOALS[k] else " ✗")
            lines.append(f"| {label} | {e['median']:.2f}{unit}{met} | {e['p90']:.1f}{unit} | {e['max']:.1f}{unit} "
                         f"| {goal} | {r['median']:.3f} / {r['min']:.3f} | {r['pooled']:.3f} |")
        lines.append("")
    lines += ["Rank correlation goal (designs as DSE sees them): ≥ 0.95.", ""]
    o_rps = sum(int(r["ram_requests"]) for r in rows) / np.sum(o["wall_s"])
    t_rps = sum(int(r["ram_requests"]) for r in rows) / np.nansum(t["wall_s"] if ram_wall is None else ram_wall)
    when = "its run that made the CSV" if ram_wall is None else "this run, same binary"
    load = "" if ram_wall is None else (
        f"; the CSV's own Ramulator run took {np.nansum(t['wall_s']):.2f} s for what took "
        f"{np.nansum(ram_wall):.2f} s now: the machine's load varies, so only same-run ratios compare")
    p_rps = "" if plain is None else (
        f" (with our default settings {sum(int(r['ram_requests']) for r in rows) / np.sum(plain['ours']['wall_s']):,.0f})")
    lines += ["## Speed", "",
              (f"One run of the whole grid ({len(rows)} simulations, {sum(int(r['ram_requests']) for r in rows):,} "
               f"requests): ours {o_rps:,.0f} requests/s{p_rps} (numba kernel, compiled, single thread, "
               "this run), "
               f"Ramulator {t_rps:,.0f} requests/s (simulation loop only, -O3 build, single thread, "
               f"{when}, same machine): "
               f"{o_rps / t_rps:.1f}x{load}."), ""]
    if notes:
        lines += [notes.rstrip(), ""]
    lines += ["## Per trace and setting", "",
              "Ours / Ramulator. Latency in cycles, bandwidth in GB/s, energy in µJ.", "",
              "| trace | setting | avg lat | p99 lat | GB/s | row hits | energy µJ |",
              "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(
            f"| {r['trace']} | {r['setting']} | {o['avg_lat'][i]:.1f} / {t['avg_lat'][i]:.1f} "
            f"| {o['p99_lat'][i]:.0f} / {t['p99_lat'][i]:.0f} | {o['bw'][i]:.2f} / {t['bw'][i]:.2f} "
            f"| {o['hit'][i]:.3f} / {t['hit'][i]:.3f} | {o['energy'][i] / 1e3:.2f} / {t['energy'][i] / 1e3:.2f} |")
    text = stamp_markdown("\n".join(lines) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


NOTES = """## Where the two differ, and which is right

**Controller settings.** Our simulator runs with the Ramulator-like `ControllerSettings`
(`simulators/dram.py`; not part of the ten-knob design space the envs search, whose defaults are
DRAMSys's controller): `write_drain` at Ramulator's watermarks (0.8 / 0.2 of its write queue's
`max_size` = queue - 1, i.e. write mode above 24 and back below 7 queued writes for queue 32),
`read_forwarding` from queued writes, a 32-entry `active_buffer` (an activated request frees
its read/write queue entry) and `ready_first` FR-FCFS, plus RefreshMaxPostponed =
RefreshMaxPulledin = 0 (item 1). Each of these policies was read from Ramulator 2.0's source
(`generic_dram_controller.cpp`, `generic_scheduler.cpp`) and is checked against a hand-traced
example in `tests/test_dram.py`. The third table above runs our default settings instead.

**Where the policies coincide they agree to the cycle.** With open page, no refresh and 32-entry
queues, every read-only trace gives the same average and p99 latency, bandwidth and row hits to
the cycle or within 1 % (stream 10307.8 cycles, random 13030.0, stream at 8-cycle spacing 22.4,
Poisson random 62.34 vs 62.338, strided 52.9), and energy within 0.1 %. JEDEC arithmetic for the
last: each 8 KB-strided read is a row conflict, 1 (arbitration) + tRP 16 + tRCD 16 + CL 16 +
BL/2 4 = 53 cycles, our p99 is 53 and so is Ramulator's; with our closed page every such read
is 1 + tRCD + CL + BL/2 = 37 cycles (p99 37).

1. **Refresh.** Ramulator 2.0 queues an all-bank refresh exactly every tREFI and never postpones
   or pulls one in. Our DRAMSys-style knobs start at RefreshMaxPostponed = RefreshMaxPulledin = 1
   (ArchGym's range), which postpones a refresh while busy and pulls one in while idle (first run:
   one refresh more or less, +20 % latency on the 8-cycle stream). The comparison runs our kernel
   with both at 0 (DRAMSys's default, outside the design space's 1..8): refresh counts then agree
   within one and the stream latencies to the cycle.
2. **Closed page** (nearly all of the remaining large errors; compare the "open page only"
   table). Ramulator 2.0's ClosedRowPolicy (cap = 1) closes a row by putting a separate PRE in the
   controller's priority queue, and while that PRE waits for tRAS / tRTP (9) / CWL + BL/2 + tWR
   (34), the generic controller schedules nothing but already-activated requests
   (`schedule_request` returns when the priority queue's head is not ready). Saturating random
   reads take 13.5 cycles each (54172 cycles / 4000) instead of the ~6.5 the four-activate window
   allows (tFAW 26 / 4); ours closes with auto-precharge (RDA/WRA, JEDEC's closed-page command:
   the precharge starts inside the device tRTP / tWR after the access and takes no command slot)
   and sustains 6.6 cycles per request. Ours models the closed-page controller JEDEC provides
   for; Ramulator's numbers are an artifact of its implementation, so this difference is left
   as it is (no setting imitates it).
3. **Ready-first FR-FCFS** (`ready_first`). Ramulator 2.0's FRFCFS compares requests by "ready
   this cycle" first and arrival second, so a conflict whose PRE is ready beats a row hit still
   waiting for the bus; Rixner et al.'s FR-FCFS (DRAMSys's FrFcfs, our default) serves the oldest
   hit first. This was the 4 KB-stride row-hit difference the issue reported (0.50 ours vs 0.38
   with 32 entries): with `ready_first` ours gives 0.385 vs 0.384 (with 8 entries both 0.499).
   On the mixed trace (RoBaRaCoCh, open page, no refresh, queue 32; the other Ramulator-like
   settings on) row-hit first gives 0.810 row hits and 62.3 cycles of read latency against
   Ramulator's 0.791 and 72.7; ready-first gives 0.792 and 71.7.
4. **Write draining** (`write_drain`). Ramulator serves reads until its write queue passes 80 %
   (or no read is waiting), then drains writes down to 20 %; our default FrFcfs serves reads and
   writes by age, paying a bus turnaround (WR to RD in the same bank group: CWL + BL/2 + tWTR_L
   = 25 cycles) at every switch, and reads wait behind queued writes. On accel_resnet18 (open
   page, no refresh, queue 32) our default moves 7.61 GB/s with 6609 cycles of read latency
   against Ramulator's 8.67 GB/s and 34.0 cycles; with the Ramulator-like settings 8.67 GB/s and
   35.1 cycles.
5. **Queue accounting** (`active_buffer`). On an ACT, Ramulator moves the request from its read
   or write queue into a separate 32-entry "active" buffer, so an 8-entry read queue holds 8
   not-yet-activated requests plus the activated ones; our default queue counts a request until
   its column command (saturating random reads, 8 entries, no refresh: 10.24 GB/s with our
   default, 11.04 with the setting, Ramulator 11.02). Ramulator 2.0's queue also accepts one request more than its
   `max_size` (`size <= max_size`), so `max_size` = queue - 1 is configured.
6. **Energy.** Both use the current-subtraction model with Ramulator's default currents, and
   the formulas are equivalent: for a refresh Ramulator charges the full IDD5B / IPP5B over tRFC
   and no background, ours the increment over active standby plus active standby, the same
   sum. Ramulator's model is per device (times the rank's 8 devices here). So energy differs only
   where the command streams or run times differ (the closed-page rows carry nearly all of it).
7. **Forwarded reads** (`read_forwarding`). Ramulator answers a read whose address waits in its
   write queue from that queue, one cycle later, without a DRAM access. Only the
   accelerator-derived traces read back data they just wrote: Ramulator forwards 146 to 1140 of
   their 4000 requests, ours within a few per cent of that (the two controllers drain writes at
   slightly different moments, so a write is sometimes already gone).

What still differs on open page: 13 of the 88 open-page rows have a read-latency error above
5 %, all on write-carrying traces: the mixed trace with the ChRaBaRoCo mapping (196 vs 306
cycles with refresh, 113 vs 139 without, queue 32; bandwidth equal), otherwise 5-15 % on the
mixed and accelerator traces, mostly with 8-entry queues. These were not traced to one cause; the policy
details still modelled differently are when the write mode is re-evaluated (Ramulator every
cycle, ours at each admission, activation and column command) and the active buffer's priority
(Ramulator serves a ready activated request before any other; ours orders by issue time, then
age), both of which move queueing delays of hundreds to thousands of cycles.

Ramulator 2.0 was built with a two-line local change that exposes its fixed 32-entry read and
write queue sizes as parameters (`read_buffer_max_size`, `write_buffer_max_size`, default 32),
and a trace driver; the scheduler is FR-FCFS in every run (its generic controller has no
other), so the grid's scheduler axis is not varied.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ramulator", type=Path, help="the Ramulator 2.0 trace-driver binary")
    ap.add_argument("--commit", default="", help="Ramulator's commit id (recorded in the CSV)")
    ap.add_argument("--report", action="store_true", help="compare against the committed CSV only")
    ap.add_argument("--write-traces", action="store_true", help="regenerate the trace files")
    ap.add_argument("--data", type=Path, default=DATA,
                    help="where regenerated traces and the CSV go (and are then read from); "
                         "--report reads the committed CSV, and the committed traces unless "
                         "--write-traces")
    ap.add_argument("--time-ramulator", type=Path, help="with --report: time this Ramulator binary on the grid "
                    "now (the speed line), without rewriting the CSV")
    args = ap.parse_args(argv)
    if not args.report and args.ramulator is None:
        ap.error("give --ramulator PATH, or --report to use the committed CSV")
    # traces: the committed ones unless regenerated (always under --data, never next to this
    # file); the CSV: the committed one with --report, else the one this run writes
    data = args.data if args.write_traces or not args.report else COMMITTED
    if args.write_traces or not all(trace_path(n, data).exists() for n in TRACE_NAMES):
        data = args.data
        write_traces(data)
    csv_path = COMMITTED / "reference.csv" if args.report else args.data / "reference.csv"
    if not args.report:
        write_csv(run_ramulator(args.ramulator, args.commit, data), csv_path)
    rows = load_reference(csv_path)
    res = agreement(rows, data=data)
    plain = agreement(rows, ours(rows, ramulator_like=False, data=data))
    ram_wall = time_ramulator(args.time_ramulator, rows, data) if args.time_ramulator else None
    write_markdown(rows, res, notes=NOTES, plain=plain, ram_wall=ram_wall)
    for k, label in METRICS:
        e, r = res["errors"][k], res["rho"][k]
        print(f"{label:18s} median {e['median']:6.2f} %  worst {e['max']:7.1f} %  "
              f"rho median {r['median']:.3f} min {r['min']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
