"""DatasetLogger / LogEvaluations / read_dataset: rows, columns, caching, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from mlsysgym.core.dataset import DatasetError, DatasetLogger, read_dataset
from mlsysgym.core.evaluator import Evaluator


class Toy(Evaluator):
    name = "toy"
    version = "2"
    metric_names = ("cycles", "energy_uj")

    def _evaluate(self, designs, workload):
        r = np.array([d["rows"] for d in designs])
        return {"cycles": r * 10, "energy_uj": r * 0.5}


def designs(n, start=0):
    return [{"rows": i, "dataflow": "ws" if i % 2 else "os"} for i in range(start, start + n)]


def test_rows_columns_and_values(tmp_path):
    log = DatasetLogger(Toy(seed=7), tmp_path / "ds", run_id="run1")
    out = log.evaluate(designs(3), "resnet50")
    np.testing.assert_array_equal(out["cycles"], [0, 10, 20])
    log.evaluate(designs(2, start=3), "resnet50")
    df = read_dataset(tmp_path / "ds")
    assert len(df) == 5
    assert df["rows"].tolist() == [0, 1, 2, 3, 4]
    assert df["dataflow"].tolist() == ["os", "ws", "os", "ws", "os"]
    assert df["cycles"].tolist() == [0, 10, 20, 30, 40]
    assert df["energy_uj"].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert set(df["workload_id"]) == {"resnet50"}
    assert set(df["evaluator"]) == {"toy"} and set(df["evaluator_version"]) == {"2"}
    assert set(df["evaluator_id"]) == {"toy@2"} and set(df["seed"]) == {7}
    assert set(df["run_id"]) == {"run1"} and df["row_id"].is_unique
    assert df["batch_size"].tolist() == [3, 3, 3, 2, 2]
    assert (df["wall_time_s"] >= 0).all()
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert df.attrs["design_columns"] == ["rows", "dataflow"]
    assert df.attrs["metric_columns"] == ["cycles", "energy_uj"]
    # the logger is an Evaluator with the wrapped one's identity
    assert log.id == "toy@2" and log.metric_names == ("cycles", "energy_uj")


def test_cache_hits_are_not_logged_twice(tmp_path):
    log = DatasetLogger(Toy(), tmp_path)
    log.evaluate(designs(4), "w")
    log.evaluate(designs(4) + designs(4), "w")
    assert log.cache_hits == 8
    assert len(read_dataset(tmp_path)) == 4
    log.evaluate(designs(2), "w", cache=False)  # the uncached path logs what it evaluates
    assert len(read_dataset(tmp_path)) == 6


def test_rolling_parts_and_buffering(tmp_path):
    log = DatasetLogger(Toy(), tmp_path / "a", part_rows=3)
    for i in range(10):
        log.evaluate(designs(1, start=i), "w")
    parts = sorted((tmp_path / "a").glob("part-*.parquet"))
    assert len(parts) == 4  # 3 + 3 + 3 + 1
    assert read_dataset(tmp_path / "a")["rows"].tolist() == list(range(10))
    assert not list((tmp_path / "a").glob(".tmp-*"))

    buf = DatasetLogger(Toy(), tmp_path / "b", flush_every=5)
    buf.evaluate(designs(3), "w")
    assert len(read_dataset(tmp_path / "b")) == 0  # buffered
    buf.close()
    assert len(read_dataset(tmp_path / "b")) == 3


def test_two_writers_one_directory(tmp_path):
    a = DatasetLogger(Toy(), tmp_path, run_id="a")
    b = DatasetLogger(Toy(seed=1), tmp_path, run_id="b")
    a.evaluate(designs(2), "w")
    b.evaluate(designs(3), "w")
    df = read_dataset(tmp_path)
    assert sorted(df["run_id"].value_counts().items()) == [("a", 2), ("b", 3)]


def test_exception_mid_loop_keeps_completed_rows(tmp_path):
    class Flaky(Toy):
        def _evaluate(self, ds, w):
            if any(d["rows"] >= 12 for d in ds):
                raise RuntimeError("simulator crashed")
            return super()._evaluate(ds, w)

    log = DatasetLogger(Flaky(), tmp_path)
    with pytest.raises(RuntimeError):
        for i in range(0, 20, 4):
            log.evaluate(designs(4, start=i), "w")
    assert read_dataset(tmp_path)["rows"].tolist() == list(range(12))


def test_killed_process_loses_no_completed_row(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from mlsysgym.core.dataset import DatasetLogger
        from mlsysgym.core.evaluator import Evaluator

        class Toy(Evaluator):
            name, version, metric_names = "toy", "1", ("cycles",)
            def _evaluate(self, ds, w):
                return {{"cycles": np.array([d["rows"] for d in ds]) * 10}}

        log = DatasetLogger(Toy(), {str(tmp_path)!r}, part_rows=8)
        for b in range(1000):
            log.evaluate([{{"rows": b * 3 + i}} for i in range(3)], "w")
            print(b, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    done = -1
    for line in proc.stdout:  # kill it mid-run, after batch 30 is reported complete
        done = int(line)
        if done == 30:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    df = read_dataset(tmp_path)
    n = len(df)
    assert n >= 31 * 3  # every batch reported complete is there
    assert n % 3 == 0  # never a partial batch (each batch is one flush)
    assert sorted(df["rows"].tolist()) == list(range(n))  # no duplicates, no gaps
    # a half-written temporary file (as a crash inside pq.write_table leaves) is ignored
    (Path(tmp_path) / ".tmp-deadbeef.parquet").write_bytes(b"PAR1 truncated")
    assert len(read_dataset(tmp_path)) == n


def test_name_clashes_and_missing_directory(tmp_path):
    class Clash(Toy):
        def _evaluate(self, ds, w):
            return {"rows": np.zeros(len(ds))}

    with pytest.raises(DatasetError, match="rows"):
        DatasetLogger(Clash(), tmp_path).evaluate(designs(1), "w")
    with pytest.raises(DatasetError, match="no dataset directory"):
        read_dataset(tmp_path / "nope")


def test_log_evaluations_wrapper(tmp_path):
    import gymnasium as gym
    from gymnasium import spaces
    from mlsysgym.core.dataset import LogEvaluations

    class OneShot(gym.Env):
        observation_space = spaces.Box(0, 1, (1,), np.float32)
        action_space = spaces.Discrete(4)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(1, np.float32), {}

        def step(self, action):
            d = {"rows": 2 ** int(action)}
            m = {"cycles": np.int64(100 // d["rows"]), "area_mm2": 0.1 * d["rows"]}
            info = {"design": d, "metrics": m, "workload_id": "gemm",
                    "evaluator_id": "toy@3"}
            return np.zeros(1, np.float32), -float(m["cycles"]), True, False, info

    env = LogEvaluations(OneShot(), tmp_path / "env", run_id="rl")
    for ep, a in enumerate([0, 3, 1]):
        env.reset(seed=ep)
        env.step(a)
    env.close()
    df = read_dataset(tmp_path / "env")
    assert df["rows"].tolist() == [1, 8, 2]
    assert df["cycles"].tolist() == [100, 12, 50]
    assert df["reward"].tolist() == [-100.0, -12.0, -50.0]
    assert df["episode"].tolist() == [0, 1, 2] and df["seed"].tolist() == [0, 1, 2]
    assert set(df["evaluator"]) == {"toy"} and set(df["evaluator_version"]) == {"3"}
    assert set(df["workload_id"]) == {"gemm"}
    assert df.attrs["metric_columns"] == ["cycles", "area_mm2"]


def test_two_versions_of_a_part_after_a_crash_are_deduplicated(tmp_path):
    # a crash between renaming a part's new version and deleting the old one leaves both
    log = DatasetLogger(Toy(), tmp_path)
    log.evaluate(designs(2), "w")
    (old,) = list(tmp_path.glob("part-*.parquet"))
    keep = old.read_bytes()
    log.evaluate(designs(2, start=2), "w")
    (tmp_path / old.name).write_bytes(keep)  # the superseded version is back
    assert len(list(tmp_path.glob("part-*.parquet"))) == 2
    assert read_dataset(tmp_path)["rows"].tolist() == [0, 1, 2, 3]


def test_pickled_logger_writes_its_own_parts(tmp_path):
    import pickle

    log = DatasetLogger(Toy(), tmp_path, run_id="r")
    log.evaluate(designs(2), "w")
    clone = pickle.loads(pickle.dumps(log))  # as a Ray worker would get it
    clone.evaluate(designs(3, start=10), "w")
    log.evaluate(designs(1, start=20), "w")
    assert sorted(read_dataset(tmp_path)["rows"].tolist()) == [0, 1, 10, 11, 12, 20]


def test_parts_record_where_their_rows_were_made(tmp_path, monkeypatch):
    import pickle

    from mlsysgym.core import target
    from mlsysgym.core.target import fingerprint

    log = DatasetLogger(Toy(seed=3), tmp_path, run_id="r")
    log.evaluate(designs(2), "w")
    (prov,) = read_dataset(tmp_path).attrs["provenance"]
    fp = fingerprint()
    assert prov["fingerprint"]["target_id"] == fp["target_id"]
    assert prov["fingerprint"]["software"]["mlsysgym"] == fp["software"]["mlsysgym"]
    assert prov["fingerprint"]["software"]["commit"] == fp["software"]["commit"]
    assert (prov["evaluator_id"], prov["evaluator_version"], prov["seed"]) == ("toy@2", "2", 3)
    # a pickled copy (a Ray worker) records the machine it runs on, not the sender's
    real = target.fingerprint
    monkeypatch.setattr(target, "fingerprint", lambda *a, **k: {**real(), "target_id": "elsewhere"})
    clone = pickle.loads(pickle.dumps(log))
    clone.evaluate(designs(1, start=10), "w")
    log.evaluate(designs(1, start=20), "w")  # the original keeps its own record
    provs = read_dataset(tmp_path).attrs["provenance"]
    assert sorted(p["fingerprint"]["target_id"] for p in provs) == sorted([fp["target_id"],
                                                                           "elsewhere"])
    assert all(p["evaluator_id"] == "toy@2" for p in provs)
