"""Cost models of GPU kernels (GEMM, batched GEMM, attention, Triton matmul tiles) measured on a GPU.

Data: ``benchmarks/data/gpu/h200_kernels.parquet`` (``benchmarks/gpu/measure_kernels.py``; one
row per kernel, shape, dtype and tile config with ``runtime_us``, ``power_w``,
``energy_per_call_uj`` and the device fingerprint in ``fp_*`` columns), read with
:func:`load_gpu_kernels`.

Three models, each predicting runtime and power (energy per call = power × runtime):

- :class:`Roofline` (non-learned control): ``t = t0 + max(flops / (e_c · P_dtype),
  bytes / (e_m · B))`` with the datasheet peaks ``P`` (per dtype) and ``B`` of the device and
  three constants ``(e_c, e_m, t0)`` fitted per (op class, dtype) by least squares on log time
  (groups unseen in training fall back to the dtype's, then to all rows). Power: the median
  training power (``power_ok`` rows) of the (op class, dtype) group.
- :class:`GBMKernelModel`: LightGBM on :func:`kernel_features`, predicting log runtime as a
  residual over the datasheet roofline time (so trees need not extrapolate absolute scale) and
  power in watts.
- :class:`MLPKernelModel`: a small torch MLP (2 × 128, SiLU) on the same standardized
  features, same targets.

:func:`evaluate` trains on one set of rows and scores another with ``costmodels.metrics``;
:func:`split_rows` makes the held-out-by-shape-family splits used by
``benchmarks/bench_gpu_costmodel.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlsysgym.costmodels import metrics as M
from mlsysgym.ir.errors import MlsysgymError

__all__ = ["DEFAULT_DATA", "PEAKS", "GBMKernelModel", "GpuDataError", "MLPKernelModel",
           "Roofline", "evaluate", "kernel_features", "load_gpu_kernels", "peaks_for",
           "roofline_time_s", "split_rows", "triton_rank_scores"]

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "benchmarks/data/gpu/h200_kernels.parquet"

#: Datasheet dense peaks (FLOP/s per dtype, memory B/s) of SXM parts; leads, not measurements.
PEAKS: dict[str, dict[str, Any]] = {
    "NVIDIA H200": {"flops": {"bf16": 989e12, "fp16": 989e12, "fp8": 1979e12, "tf32": 494.7e12,
                              "fp32": 66.9e12}, "bw": 4.8e12, "sm_count": 132},
    "NVIDIA H100 80GB HBM3": {"flops": {"bf16": 989e12, "fp16": 989e12, "fp8": 1979e12,
                                        "tf32": 494.7e12, "fp32": 66.9e12}, "bw": 3.35e12,
                              "sm_count": 132},
}
_GENERIC = {"flops": {"bf16": 1e14, "fp16": 1e14, "fp8": 2e14, "tf32": 5e13, "fp32": 1e13},
            "bw": 1e12, "sm_count": 64}

GEMM_OPS = ("gemm", "bmm", "triton_gemm")
DTYPES = ("bf16", "fp16", "fp32", "tf32", "fp8")
OPS = ("gemm", "bmm", "triton_gemm", "attn_prefill", "attn_decode", "copy")


class GpuDataError(MlsysgymError):
    """The GPU kernel dataset is missing, empty or lacks a needed column."""


def load_gpu_kernels(path: str | Path | None = None, ok_only: bool = True) -> pd.DataFrame:
    """The measured GPU kernel rows (``DEFAULT_DATA`` unless ``path``), failed rows dropped."""
    p = Path(path) if path is not None else DEFAULT_DATA
    if not p.exists():
        raise GpuDataError(f"no GPU kernel data at {p}; run benchmarks/gpu/measure_kernels.py")
    df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    if ok_only and "ok" in df:
        df = df[df["ok"].astype(int) == 1]
    if df.empty:
        raise GpuDataError(f"{p} has no measured rows")
    return df.reset_index(drop=True)


def peaks_for(gpu: str) -> dict[str, Any]:
    """Datasheet peaks of ``gpu`` (by name), or generic ones (fitted efficiencies absorb scale)."""
    return PEAKS.get(gpu, _GENERIC)


def _gpu_name(df: pd.DataFrame) -> str:
    if "fp_gpu" in df and len(df):
        return str(df["fp_gpu"].iloc[0])
    return ""


def roofline_time_s(df: pd.DataFrame, peaks: dict[str, Any]) -> np.ndarray:
    """Datasheet roofline time max(flops / P_dtype, bytes / B) per row, in seconds."""
    p = df["dtype"].map(peaks["flops"]).astype(float).to_numpy()
    return np.maximum(df["flops"].to_numpy(float) / p, df["bytes"].to_numpy(float) / peaks["bw"])


def _log2p(x: pd.Series) -> np.ndarray:
    return np.log2(np.maximum(x.to_numpy(float), 0) + 1.0)


def kernel_features(df: pd.DataFrame, peaks: dict[str, Any] | None = None) -> pd.DataFrame:
    """Numeric features of each row: log dims, log FLOPs / bytes / arithmetic intensity, the
    datasheet roofline time, op class and dtype one-hots, Triton tile config (0 for library
    kernels), GQA ratio, alignment and wave quantization (tiles per SM count) of GEMMs."""
    peaks = peaks or peaks_for(_gpu_name(df))
    f = pd.DataFrame(index=df.index)
    for c in ("batch", "m", "n", "k", "heads", "kv_heads", "seq_q", "seq_k", "head_dim"):
        f[f"log2_{c}"] = _log2p(df[c])
    flops = df["flops"].to_numpy(float)
    nbytes = df["bytes"].to_numpy(float)
    f["log10_flops"] = np.log10(flops + 1.0)
    f["log10_bytes"] = np.log10(nbytes + 1.0)
    f["log10_intensity"] = np.log10((flops + 1.0) / (nbytes + 1.0))
    f["log10_roofline_s"] = np.log10(roofline_time_s(df, peaks))
    for op in OPS:
        f[f"op_{op}"] = (df["op"] == op).astype(float).to_numpy()
    for dt in DTYPES:
        f[f"dt_{dt}"] = (df["dtype"] == dt).astype(float).to_numpy()
    for c in ("block_m", "block_n", "block_k"):
        f[f"log2_{c}"] = _log2p(df[c])
    f["num_warps"] = df["num_warps"].to_numpy(float)
    f["num_stages"] = df["num_stages"].to_numpy(float)
    f["causal"] = df["causal"].to_numpy(float)
    f["gqa_ratio"] = np.where(df["kv_heads"] > 0, df["heads"] / df["kv_heads"].clip(lower=1), 0.0)
    gemm = df["op"].isin(GEMM_OPS).to_numpy()
    for c in ("m", "n", "k"):
        f[f"align16_{c}"] = np.where(gemm, (df[c] % 16 == 0).astype(float), 0.0)
    bm = np.where(df["block_m"] > 0, df["block_m"], 128).astype(float)
    bn = np.where(df["block_n"] > 0, df["block_n"], 128).astype(float)
    tiles = df["batch"].to_numpy(float) * np.ceil(df["m"] / bm) * np.ceil(df["n"] / bn)
    sms = float(peaks.get("sm_count", 132))
    waves = tiles / sms
    f["log2_waves"] = np.where(gemm, np.log2(waves + 1e-3), 0.0)
    f["wave_eff"] = np.where(gemm, waves / np.maximum(np.ceil(waves), 1.0), 0.0)
    # Triton tiles: K iterations, padding waste of the last tile, shared memory of the pipeline
    tri = (df["block_m"] > 0).to_numpy()
    bk = np.where(df["block_k"] > 0, df["block_k"], 32).astype(float)
    f["log2_k_iters"] = np.where(tri, np.log2(np.ceil(df["k"] / bk) + 1.0), 0.0)
    f["pad_m"] = np.where(tri, np.ceil(df["m"] / bm) * bm / df["m"].clip(lower=1), 0.0)
    f["pad_n"] = np.where(tri, np.ceil(df["n"] / bn) * bn / df["n"].clip(lower=1), 0.0)
    f["log2_smem"] = np.where(tri, np.log2((bm * bk + bk * bn) * 2 * df["num_stages"] + 1.0), 0.0)
    # attention: work per (batch × head) program and number of programs
    attn = df["op"].str.startswith("attn").to_numpy()
    f["log2_attn_programs"] = np.where(attn, _log2p(df["batch"] * df["heads"]), 0.0)
    return f


# ------------------------------------------------------------------------------------------
# Roofline with fitted efficiencies
# ------------------------------------------------------------------------------------------

@dataclass
class Roofline:
    """Roofline with (e_c, e_m, t0) fitted per (op class, dtype); power = group median."""

    peaks: dict[str, Any] | None = None
    params: dict[tuple[str, str], tuple[float, float, float]] = field(default_factory=dict)
    power: dict[tuple[str, str], float] = field(default_factory=dict)
    name: str = "roofline"

    @staticmethod
    def time_s(flops: np.ndarray, nbytes: np.ndarray, peak_flops: np.ndarray, bw: float,
               e_c: float, e_m: float, t0: float) -> np.ndarray:
        """t0 + max(flops / (e_c · P), bytes / (e_m · B)) in seconds."""
        return t0 + np.maximum(flops / (e_c * peak_flops), nbytes / (e_m * bw))

    def _fit_group(self, g: pd.DataFrame) -> tuple[float, float, float]:
        from scipy.optimize import least_squares

        pk = self.peaks or _GENERIC
        flops = g["flops"].to_numpy(float)
        nbytes = g["bytes"].to_numpy(float)
        pf = g["dtype"].map(pk["flops"]).astype(float).to_numpy()
        y = np.log(g["runtime_us"].to_numpy(float) * 1e-6)
        has_f = flops > 0

        def resid(th: np.ndarray) -> np.ndarray:
            e_c, e_m, t0 = np.exp(th)
            return np.log(self.time_s(flops, nbytes, pf, pk["bw"], e_c, e_m, t0)) - y

        t = np.exp(y)
        e_c0 = float(np.clip(np.quantile(flops[has_f] / pf[has_f] / t[has_f], 0.9), 1e-3, 1.0)) \
            if has_f.any() else 0.5
        e_m0 = float(np.clip(np.quantile(nbytes / pk["bw"] / t, 0.9), 1e-3, 1.0))
        t00 = float(max(np.min(t) * 0.5, 1e-7))
        best = None
        for th0 in ([e_c0, e_m0, t00], [0.5, 0.5, 5e-6]):
            r = least_squares(resid, np.log(th0), method="trf")
            if best is None or r.cost < best.cost:
                best = r
        e_c, e_m, t0 = np.exp(best.x)
        return float(e_c), float(e_m), float(t0)

    def fit(self, df: pd.DataFrame) -> Roofline:
        if self.peaks is None:
            self.peaks = peaks_for(_gpu_name(df))
        self.params, self.power = {}, {}
        pw_ok = df["power_w"].notna() if "power_w" in df else pd.Series(False, index=df.index)
        if "power_ok" in df:
            pw_ok &= df["power_ok"] == 1
        for (op, dt), g in df.groupby(["op", "dtype"]):
            if len(g) >= 3:
                self.params[(op, dt)] = self._fit_group(g)
            if pw_ok[g.index].any():
                self.power[(op, dt)] = float(g.loc[pw_ok[g.index], "power_w"].median())
        for dt, g in df.groupby("dtype"):
            self.params.setdefault(("*", dt), self._fit_group(g))
        self.params[("*", "*")] = self._fit_group(df)
        if pw_ok.any():
            self.power[("*", "*")] = float(df.loc[pw_ok, "power_w"].median())
        return self

    def _lookup(self, table: dict, op: str, dt: str) -> Any:
        for key in ((op, dt), ("*", dt), ("*", "*")):
            if key in table:
                return table[key]
        raise GpuDataError("roofline not fitted; call fit() first")

    def predict_runtime_us(self, df: pd.DataFrame) -> np.ndarray:
        pk = self.peaks or _GENERIC
        out = np.empty(len(df))
        for i, (op, dt, fl, by) in enumerate(zip(df["op"], df["dtype"], df["flops"],
                                                 df["bytes"], strict=True)):
            e_c, e_m, t0 = self._lookup(self.params, op, dt)
            out[i] = self.time_s(np.float64(fl), np.float64(by), pk["flops"][dt], pk["bw"],
                                 e_c, e_m, t0) * 1e6
        return out

    def predict_power_w(self, df: pd.DataFrame) -> np.ndarray:
        power = self.power or {("*", "*"): float("nan")}
        return np.array([self._lookup(power, op, dt) for op, dt in zip(df["op"], df["dtype"],
                                                                        strict=True)])


# ------------------------------------------------------------------------------------------
# Learned models
# ------------------------------------------------------------------------------------------

def _residual_target(df: pd.DataFrame, peaks: dict[str, Any]) -> np.ndarray:
    return np.log(df["runtime_us"].to_numpy(float) * 1e-6) - np.log(roofline_time_s(df, peaks))


@dataclass
class GBMKernelModel:
    """LightGBM on kernel features: log runtime over the datasheet roofline, and power (W)."""

    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 31
    seed: int = 0
    n_jobs: int = 1
    name: str = "lightgbm"

    def _make(self) -> Any:
        import lightgbm as lgb

        return lgb.LGBMRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                 num_leaves=self.num_leaves, min_child_samples=5,
                                 subsample=0.9, subsample_freq=1, colsample_bytree=0.9,
                                 random_state=self.seed, n_jobs=self.n_jobs, verbose=-1)

    def fit(self, df: pd.DataFrame) -> GBMKernelModel:
        self.peaks = peaks_for(_gpu_name(df))
        x = kernel_features(df, self.peaks)
        self.rt = self._make().fit(x, _residual_target(df, self.peaks))
        pw = df["power_w"].notna() & (df.get("power_ok", 1) == 1)
        self.pw = self._make().fit(x[pw], df.loc[pw, "power_w"]) if pw.sum() >= 10 else None
        return self

    def predict_runtime_us(self, df: pd.DataFrame) -> np.ndarray:
        x = kernel_features(df, self.peaks)
        return np.exp(self.rt.predict(x)) * roofline_time_s(df, self.peaks) * 1e6

    def predict_power_w(self, df: pd.DataFrame) -> np.ndarray:
        if self.pw is None:
            return np.full(len(df), np.nan)
        return self.pw.predict(kernel_features(df, self.peaks))


@dataclass
class MLPKernelModel:
    """A small MLP (torch, CPU) on standardized kernel features; same targets as the GBM."""

    hidden: int = 128
    epochs: int = 150
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    name: str = "mlp"

    def _net(self, d_in: int) -> Any:
        import torch

        torch.manual_seed(self.seed)
        return torch.nn.Sequential(torch.nn.Linear(d_in, self.hidden), torch.nn.SiLU(),
                                   torch.nn.Linear(self.hidden, self.hidden), torch.nn.SiLU(),
                                   torch.nn.Linear(self.hidden, 1))

    def _train(self, x: np.ndarray, y: np.ndarray) -> Any:
        import torch

        net = self._net(x.shape[1])
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.epochs)
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        gen = torch.Generator().manual_seed(self.seed)
        bs = 128
        for _ in range(self.epochs):
            perm = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), bs):
                idx = perm[i:i + bs]
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(net(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            sched.step()
        return net.eval()

    def _x(self, df: pd.DataFrame) -> np.ndarray:
        x = kernel_features(df, self.peaks).to_numpy(float)
        return (x - self.mu) / self.sd

    def fit(self, df: pd.DataFrame) -> MLPKernelModel:
        import torch

        torch.set_num_threads(1)
        self.peaks = peaks_for(_gpu_name(df))
        x = kernel_features(df, self.peaks).to_numpy(float)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mu) / self.sd
        y = _residual_target(df, self.peaks)
        self.ymu, self.ysd = float(y.mean()), float(y.std() + 1e-9)
        # an MLP extrapolates without bound off the training shapes: clip to the seen range
        self.ylo, self.yhi = float(y.min()) - 0.5, float(y.max()) + 0.5
        self.rt = self._train(xs, (y - self.ymu) / self.ysd)
        pw = (df["power_w"].notna() & (df.get("power_ok", 1) == 1)).to_numpy()
        self.pw = None
        if pw.sum() >= 10:
            p = df["power_w"].to_numpy(float)[pw]
            self.pmu, self.psd = float(p.mean()), float(p.std() + 1e-9)
            self.plo, self.phi = 0.8 * float(p.min()), 1.2 * float(p.max())
            self.pw = self._train(xs[pw], (p - self.pmu) / self.psd)
        return self

    def _run(self, net: Any, df: pd.DataFrame) -> np.ndarray:
        import torch

        with torch.no_grad():
            return net(torch.as_tensor(self._x(df), dtype=torch.float32)).numpy().reshape(-1)

    def predict_runtime_us(self, df: pd.DataFrame) -> np.ndarray:
        y = np.clip(self._run(self.rt, df) * self.ysd + self.ymu, self.ylo, self.yhi)
        return np.exp(y) * roofline_time_s(df, self.peaks) * 1e6

    def predict_power_w(self, df: pd.DataFrame) -> np.ndarray:
        if self.pw is None:
            return np.full(len(df), np.nan)
        return np.clip(self._run(self.pw, df) * self.psd + self.pmu, self.plo, self.phi)


# ------------------------------------------------------------------------------------------
# Splits and evaluation
# ------------------------------------------------------------------------------------------

def split_rows(df: pd.DataFrame, seed: int = 0) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Named splits, each a list of (train mask, test mask) folds whose test sets are disjoint:

    - ``random``: 20 % of rows at random (reference, like GPPerf's);
    - ``gemm_family``: leave one GEMM shape family out (llm, cnn, square, bmm, random); the test
      rows are that family's gemm / bmm / Triton rows, training is every other row;
    - ``gemm_M_mid``: GEMM rows with 256 < M ≤ 2048 held out (an unseen M range, inside);
    - ``gemm_M_large``: GEMM rows with M ≥ 4096 held out (an unseen M range, beyond);
    - ``attn_config``: leave one LLM's attention head configuration (heads, KV heads, head dim)
      out;
    - ``attn_long``: attention with context ≥ 16384 held out (unseen lengths, beyond).
    """
    n = len(df)
    rng = np.random.default_rng(seed)
    test = np.zeros(n, bool)
    test[rng.permutation(n)[: n // 5]] = True
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"random": [(~test, test)]}
    gemm = df["op"].isin(GEMM_OPS).to_numpy()
    attn = df["op"].str.startswith("attn").to_numpy()
    fam = df["family"].to_numpy()
    out["gemm_family"] = [(~t, t) for f in sorted(set(fam[gemm]))
                          if (t := gemm & (fam == f)).any()]
    m = df["m"].to_numpy()
    for name, t in (("gemm_M_mid", gemm & (m > 256) & (m <= 2048)),
                    ("gemm_M_large", gemm & (m >= 4096))):
        if t.any():
            out[name] = [(~t, t)]
    out["attn_config"] = [(~t, t) for f in sorted(set(fam[attn])) if (t := attn & (fam == f)).any()]
    t = attn & (df["seq_k"].to_numpy() >= 16384)
    if t.any():
        out["attn_long"] = [(~t, t)]
    return {k: v for k, v in out.items() if v}


def triton_rank_scores(test: pd.DataFrame, pred_us: np.ndarray,
                       min_configs: int = 3) -> dict[str, float]:
    """Per Triton shape (m, n, k) with ≥ ``min_configs`` configs: Kendall τ between measured and
    predicted runtime over the tile configs, and the top-1 score (best measured ÷ measured time
    of the config the model ranks first); means over shapes."""
    t = test.assign(_p=pred_us)
    t = t[t["op"] == "triton_gemm"]
    taus, top1 = [], []
    for _, g in t.groupby(["m", "n", "k"]):
        if len(g) < min_configs:
            continue
        tau = M.kendall_tau(g["runtime_us"], g["_p"])
        if not math.isnan(tau):
            taus.append(tau)
        top1.append(M.top_k_score(g["runtime_us"], g["_p"], 1))
    return {"triton_shapes": float(len(top1)),
            "triton_tau": float(np.mean(taus)) if taus else float("nan"),
            "triton_top1": float(np.mean(top1)) if top1 else float("nan")}


def _med_ape(y: np.ndarray, p: np.ndarray) -> float:
    return float(100 * np.median(np.abs(p - y) / np.abs(y)))


def score(test: pd.DataFrame, rt_us: np.ndarray, pw_w: np.ndarray) -> dict[str, float]:
    """Held-out metrics: runtime R² (linear and log), MAPE (all rows and rows ≥ 30 µs), median
    APE; power R² and median
    APE; energy (power × runtime) R² on log and median APE — power/energy on ``power_ok``
    rows only — plus the Triton tile ranking scores."""
    y = test["runtime_us"].to_numpy(float)
    out = {"n": float(len(test)), "rt_r2": M.r2(y, rt_us), "rt_r2_log": M.r2(np.log(y),
                                                                             np.log(rt_us)),
           "rt_mape": M.mape_pct(y, rt_us), "rt_medape": _med_ape(y, rt_us)}
    big = y >= 30.0  # kernels of ≥ 30 µs: past the launch-bound, noisiest range
    if big.sum() >= 3:
        out.update({"n_ge30us": float(big.sum()), "rt_mape_ge30us": M.mape_pct(y[big],
                                                                                 rt_us[big])})
    ok = (test["power_w"].notna() & (test.get("power_ok", 1) == 1)).to_numpy() & np.isfinite(pw_w)
    if ok.sum() >= 3:
        p = test["power_w"].to_numpy(float)[ok]
        e = p * y[ok]
        ep = pw_w[ok] * rt_us[ok]
        out.update({"n_power": float(ok.sum()), "pw_r2": M.r2(p, pw_w[ok]),
                    "pw_medape": _med_ape(p, pw_w[ok]), "en_r2_log": M.r2(np.log(e), np.log(ep)),
                    "en_medape": _med_ape(e, ep)})
    out.update(triton_rank_scores(test, rt_us))
    return out


def evaluate(df: pd.DataFrame, folds: Sequence[tuple[np.ndarray, np.ndarray]],
             make_model: Any) -> tuple[dict[str, float], pd.DataFrame]:
    """Train ``make_model()`` on each fold's training rows, predict its test rows; score the
    pooled test predictions (each row predicted by a model that never saw its fold)."""
    parts = []
    for train, test in folds:
        model = make_model().fit(df[train])
        t = df[test].copy()
        t["pred_runtime_us"] = model.predict_runtime_us(t)
        t["pred_power_w"] = model.predict_power_w(t)
        parts.append(t)
    pooled = pd.concat(parts)
    return score(pooled, pooled["pred_runtime_us"].to_numpy(),
                 pooled["pred_power_w"].to_numpy()), pooled
