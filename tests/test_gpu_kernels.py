"""GPU kernel measurement script (CPU path) and the GPU kernel cost models (issue #26)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from benchmark_scripts import load_script

torch = pytest.importorskip("torch")



@pytest.fixture(scope="module")
def mk():
    return load_script("gpu/measure_kernels.py")


def _quiet(*_a, **_k) -> None:
    pass


# ------------------------------------------------------------------ the measurement script

def test_tiny_cpu_run_rows_fingerprint_and_resume(mk, tmp_path):
    designs = mk.design_tiny()
    out = tmp_path / "k.parquet"
    s1 = mk.run(designs, out, "cpu", budget_s=60, energy_s=0.001, timing_s=0.001, log=_quiet)
    assert s1["measured"] == len(designs) and s1["failed"] == 0 and not s1["budget_hit"]
    df = pd.read_parquet(out)
    assert len(df) == len(designs) and df["key"].is_unique
    assert (df["fp_device_type"] == "cpu").all() and df["fp_torch"].str.len().gt(0).all()
    assert (df["runtime_us"] > 0).all() and df["runtime_cv"].notna().all()
    assert set(df["op"]) == {"gemm", "bmm", "attn_prefill", "attn_decode", "copy"}
    fp = out.with_suffix(".fingerprint.json").read_text()
    assert "hostname" not in fp and "cpu" in fp
    s2 = mk.run(designs, out, "cpu", budget_s=60, energy_s=0.001, timing_s=0.001, log=_quiet)
    assert s2["measured"] == 0 and s2["skipped"] == len(designs)
    assert len(pd.read_parquet(out)) == len(designs)


def test_budget_stops_and_resume_finishes(mk, tmp_path):
    designs = mk.design_tiny()
    out = tmp_path / "k.parquet"
    ticks = iter(range(10**6))
    s = mk.run(designs, out, "cpu", budget_s=8, energy_s=0.001, timing_s=0.001,
               clock=lambda: float(next(ticks)), log=_quiet)  # each clock read: one "second"
    assert s["budget_hit"] and 0 < s["measured"] < len(designs)
    s2 = mk.run(designs, out, "cpu", budget_s=60, energy_s=0.001, timing_s=0.001, log=_quiet)
    assert s2["skipped"] == s["measured"] and s2["measured"] == len(designs) - s["measured"]
    assert pd.read_parquet(out)["key"].is_unique


def test_csv_fallback_roundtrip(mk, tmp_path):
    designs = mk.design_tiny()[:2]
    out = tmp_path / "k.parquet"
    s = mk.run(designs, out, "cpu", budget_s=60, energy_s=0.001, timing_s=0.001, log=_quiet,
               use_parquet=False)
    assert s["path"].endswith(".csv")
    assert {r["key"] for r in mk.read_rows(out)} == {d.key for d in designs}


def test_gpu_design_is_bounded_and_covers_every_class(mk):
    d = mk.design_gpu(0)
    assert d == mk.design_gpu(0) and 1000 < len(d) < 2500
    ops = {x.op for x in d}
    assert ops == {"gemm", "bmm", "attn_prefill", "attn_decode", "triton_gemm", "copy"}
    assert {x.dtype for x in d if x.op == "gemm"} == {"bf16", "fp16", "fp32", "tf32", "fp8"}
    for x in d:
        assert mk._est_seconds(x) <= 0.02 and x.bytes() <= 8e9
        if x.dtype == "fp8":
            assert x.op == "gemm" and x.m % 16 == 0 and x.n % 16 == 0 and x.k % 16 == 0
    gqa = [x for x in d if x.op.startswith("attn") and x.kv_heads < x.heads]
    assert gqa
    # Triton configs of one shape stay adjacent after shuffling
    order = mk.order_designs(d, 0)
    groups = [x.group for x in order if x.group]
    runs = [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    assert len(runs) == len(set(groups))
    g = mk.Design("gemm", "x", "bf16", m=64, n=32, k=16)
    assert g.flops() == 2 * 64 * 32 * 16 and g.bytes() == (64 * 16 + 16 * 32 + 64 * 32) * 2


def test_energy_edge_window_on_a_fake_counter(mk):
    class Fake(mk.EnergyMeter):
        def __init__(self):
            super().__init__("cpu")
            self.method = "nvml_energy"
            self.t00 = time.perf_counter()

        def energy_mj(self):  # 100 W, counter updated every 20 ms
            t = time.perf_counter() - self.t00
            return 100.0 * math.floor(t / 0.02) * 0.02 * 1e3

    w = Fake().window_edges(lambda i, n: time.sleep(0.0005 * n), 2, 0.1)
    assert w["wall_s"] >= 0.1
    assert w["energy_j"] / w["wall_s"] == pytest.approx(100.0, rel=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_measures_a_gemm(mk, tmp_path):
    d = [mk.Design("gemm", "square", "bf16", m=1024, n=1024, k=1024)]
    s = mk.run(d, tmp_path / "g.parquet", "cuda", budget_s=60, log=_quiet)
    assert s["measured"] == 1
    assert pd.read_parquet(tmp_path / "g.parquet")["fp_gpu"].iloc[0]


# ------------------------------------------------------------------ the cost models

def _frame(n: int = 240, seed: int = 0, e_c: float = 0.7, e_m: float = 0.8,
           t0: float = 5e-6) -> pd.DataFrame:
    """GEMMs whose runtime is exactly a roofline with known efficiencies (H200 peaks)."""
    from mlsysgym.costmodels.gpu_kernels import PEAKS

    rng = np.random.default_rng(seed)
    pk = PEAKS["NVIDIA H200"]
    rows = []
    for i in range(n):
        m, nn, k = (int(2 ** rng.uniform(0, 13)) for _ in range(3))
        fam = ["llm", "cnn", "square"][i % 3]
        op = "triton_gemm" if i % 6 == 0 else "gemm"
        bm = [32, 64, 128][i % 3] if op == "triton_gemm" else 0
        flops, nbytes = 2.0 * m * nn * k, 2.0 * (m * k + k * nn + m * nn)
        t = t0 + max(flops / (e_c * pk["flops"]["bf16"]), nbytes / (e_m * pk["bw"]))
        rows.append({"op": op, "family": fam, "dtype": "bf16", "batch": 1, "m": m, "n": nn,
                     "k": k, "heads": 0, "kv_heads": 0, "seq_q": 0, "seq_k": 0, "head_dim": 0,
                     "causal": 0, "block_m": bm, "block_n": bm, "block_k": 32 if bm else 0,
                     "num_warps": 4 if bm else 0, "num_stages": 3 if bm else 0,
                     "flops": flops, "bytes": nbytes, "runtime_us": t * 1e6,
                     "power_w": 200 + 400 * min(1.0, flops / 1e11), "power_ok": 1,
                     "fp_gpu": "NVIDIA H200"})
    return pd.DataFrame(rows)


def test_roofline_recovers_efficiencies_and_hand_value():
    from mlsysgym.costmodels.gpu_kernels import Roofline

    rf = Roofline().fit(_frame())
    e_c, e_m, t0 = rf.params[("gemm", "bf16")]
    assert e_c == pytest.approx(0.7, rel=0.02) and e_m == pytest.approx(0.8, rel=0.02)
    assert t0 == pytest.approx(5e-6, rel=0.05)
    one = _frame(1).assign(op="gemm", m=4096, n=4096, k=4096, flops=2.0 * 4096**3,
                           bytes=2.0 * 3 * 4096**2)
    # by hand: 5 µs + 1.374e11 / (0.7 × 989e12) s = 5 + 198.5 µs (compute-bound)
    assert rf.predict_runtime_us(one)[0] == pytest.approx(5 + 2 * 4096**3 / (0.7 * 989e12) * 1e6,
                                                          rel=0.02)
    # an unseen (op, dtype) falls back to the dtype's fit
    assert np.isfinite(rf.predict_runtime_us(one.assign(op="bmm"))[0])


def test_features_and_learned_models_on_a_synthetic_frame():
    from mlsysgym.costmodels import gpu_kernels as G

    df = _frame()
    x = G.kernel_features(df)
    assert len(x) == len(df) and np.isfinite(x.to_numpy()).all()
    train, test = df.iloc[:180], df.iloc[180:]
    for model in (G.GBMKernelModel(n_estimators=60), G.MLPKernelModel(epochs=100, hidden=32)):
        model.fit(train)
        rt = model.predict_runtime_us(test)
        pw = model.predict_power_w(test)
        assert np.isfinite(rt).all() and (rt > 0).all() and np.isfinite(pw).all()
        r = G.score(test, rt, pw)
        assert r["rt_r2_log"] > 0.3 and {"pw_r2", "en_medape", "triton_tau"} <= set(r)


def test_splits_hold_out_whole_families():
    from mlsysgym.costmodels import gpu_kernels as G

    df = pd.concat([_frame(), _frame(30, seed=1).assign(op="attn_prefill", family="attn_a",
                                                          seq_k=1024, heads=8, kv_heads=8)],
                   ignore_index=True)
    df.loc[df.index[-10:], "family"] = "attn_b"
    sp = G.split_rows(df)
    assert {"random", "gemm_family", "attn_config", "gemm_M_mid"} <= set(sp)
    tests = [t for _, t in sp["gemm_family"]]
    assert len(tests) == 3 and not np.any(np.sum(tests, axis=0) > 1)
    for train, test in sp["gemm_family"] + sp["attn_config"]:
        assert not set(df.loc[train, "family"]) & set(df.loc[test, "family"])
        assert not np.any(train & test)


def test_triton_rank_scores_by_hand():
    from mlsysgym.costmodels.gpu_kernels import triton_rank_scores

    t = pd.DataFrame({"op": "triton_gemm", "m": 64, "n": 64, "k": 64,
                      "runtime_us": [10.0, 20.0, 30.0, 40.0]})
    good = triton_rank_scores(t, np.array([1.0, 2.0, 3.0, 4.0]))
    assert good["triton_tau"] == pytest.approx(1.0) and good["triton_top1"] == 1.0
    bad = triton_rank_scores(t, np.array([4.0, 3.0, 2.0, 1.0]))
    assert bad["triton_tau"] == pytest.approx(-1.0) and bad["triton_top1"] == pytest.approx(0.25)


def test_committed_dataset_loads_with_fingerprint():
    from mlsysgym.costmodels.gpu_kernels import DEFAULT_DATA, load_gpu_kernels

    if not DEFAULT_DATA.exists():
        pytest.skip("no committed GPU dataset")
    df = load_gpu_kernels()
    assert len(df) > 1000 and (df["fp_gpu"] == "NVIDIA H200").all()
    assert {"runtime_us", "power_w", "energy_per_call_uj", "power_ok", "key"} <= set(df.columns)
