#!/usr/bin/env python3
"""Turn LLMServingSim's published kernel profiles into the serving calibration's kernel table.

    .venv/bin/python benchmarks/gpu/prepare_lss_profiles.py LLMSERVINGSIM_CHECKOUT \
        benchmarks/data/gpu/lss_kernels.parquet

LLMServingSim (casys-kaist/LLMServingSim, MIT licence) publishes per-layer kernel times that its
profiler measured with vLLM 0.19 on an RTX 4090 (Llama-3.1-8B) and an RTX PRO 6000 Blackwell
Server Edition (Llama-3.1-8B, Qwen3-32B, Qwen3-30B-A3B at TP1 and TP2 shard shapes):
``profiler/perf/<hardware>/<model>/bf16/tp<k>/{dense,attention,moe}.csv``. Kernel
measurements only — not end-to-end serving numbers. Each row becomes one kernel with its FLOPs
and bytes, computed from the model's ``config.json`` in the same repository
(``configs/model/<model>.json``):

* ``gemm``: ``qkv_proj``, ``o_proj``, ``gate_up_proj``, ``down_proj`` over ``tokens`` rows
  (column-parallel outputs and row-parallel inputs divided by the TP degree); bytes = weights
  + activations in and out, bf16;
* ``attn_prefill``: attention rows with a prefill chunk and no decodes (causal pairs of the
  chunk plus the chunk × its cached prefix; bytes of Q, K, V read and O written);
* ``attn_decode``: rows with decodes only (each of ``n_decode`` sequences reads ``kv_decode``
  tokens of K and V);
* ``attn_decode_mixed``: the decodes of rows that also hold a prefill chunk (vLLM V1 runs one
  varlen attention kernel over the mixed batch): the row's time minus that of the same chunk
  alone, with the decodes' FLOPs and bytes;
* ``copy``: ``act_fn`` (SiLU-and-mul: reads the gate-up output, writes half of it);
* ``moe``: the fused MoE layer (``moe.csv``: ``tokens``, ``activated_experts``): bytes of the
  activated experts' weights, FLOPs of the routed tokens.

The table is read by :func:`mlsysgym.simulators.serving.calibration.fit_device`; the source
commit and the profile's ``meta.yaml`` (GPU name, vLLM and CUDA versions, date) are stored in
every row. The checkout is read with ``git show`` (a bare mirror works).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

DEVICES = {"RTX4090": "RTX-4090", "RTXPRO6000": "RTX-PRO-6000"}  # their name → ours
MODELS = ("meta-llama/Llama-3.1-8B", "Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B-Instruct-2507")
GEMMS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


def _show(repo: Path, rev: str, path: str) -> str | None:
    out = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{path}"],
                         capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else None


def _csv(repo: Path, rev: str, path: str) -> pd.DataFrame | None:
    text = _show(repo, rev, path)
    return None if text is None else pd.read_csv(io.StringIO(text))


def kernels(dense: pd.DataFrame | None, attention: pd.DataFrame | None,
            moe: pd.DataFrame | None, spec, tp: int) -> pd.DataFrame:
    """One profile directory (one model at one TP degree) as kernel rows (see the module
    docstring); ``spec``: the model's :class:`~mlsysgym.simulators.serving.ModelSpec`."""
    h, hd = spec.hidden, spec.head_dim
    heads, kvh = spec.n_heads / tp, max(spec.n_kv_heads / tp, 1.0)
    ffn = spec.ffn / tp
    shapes = {"qkv_proj": (h, (heads + 2 * kvh) * hd), "o_proj": (heads * hd, h),
              "gate_up_proj": (h, 2 * ffn), "down_proj": (ffn, h)}
    rows = []
    for r in ([] if dense is None else dense.itertuples()):
        t = float(r.tokens)
        if r.layer in GEMMS:
            k, n = shapes[r.layer]
            rows.append(("gemm", 2 * t * k * n, 2 * (k * n + t * k + t * n), r.time_us, 0.0))
        elif r.layer == "act_fn":
            rows.append(("copy", 0.0, 2 * t * 3 * ffn, r.time_us, 0.0))
    pair = spec.attn_flops_per_pair / tp  # FLOPs of one query-key pair on a shard
    kv_tok = 2.0 * spec.kv_elems_per_token * kvh / spec.n_kv_heads  # KV bytes/token/layer, bf16
    prefill_us = {} if attention is None else {
        (r.prefill_chunk, r.kv_prefill): r.time_us for r in attention.itertuples()
        if r.n_decode == 0 and r.prefill_chunk > 0}
    for r in ([] if attention is None else attention.itertuples()):
        ctx = float(r.n_decode) * float(r.kv_decode)
        if r.n_decode == 0 and r.prefill_chunk > 0:
            t, c = float(r.prefill_chunk), float(r.kv_prefill)
            pairs = t * c + t * (t + 1) / 2
            rows.append(("attn_prefill", pairs * pair, 2 * 2 * t * heads * hd + (t + c) * kv_tok,
                         r.time_us, 0.0))
            continue
        op, t_us = "attn_decode", r.time_us
        if r.prefill_chunk > 0:  # decodes beside a prefill chunk: the row minus the chunk alone
            op, t_us = "attn_decode_mixed", r.time_us - prefill_us.get(
                (r.prefill_chunk, r.kv_prefill), r.time_us)
        if r.n_decode > 0 and t_us > 0:  # (<= 0: within noise of the chunk alone, or no chunk)
            rows.append((op, ctx * pair, ctx * kv_tok, t_us, 0.0))
    expert = spec.expert_params / tp  # gate, up and down of one expert (parameters)
    for r in ([] if moe is None else moe.itertuples()):
        rows.append(("moe", 2 * r.tokens * spec.experts_per_token * expert,
                     2 * r.activated_experts * expert, r.time_us, float(r.activated_experts)))
    return pd.DataFrame(rows, columns=["op", "flops", "bytes", "runtime_us", "experts"])


def prepare(repo: Path, rev: str = "HEAD") -> pd.DataFrame:
    """Every profiled (device, model, TP degree) of the checkout as one kernel table."""
    from mlsysgym.simulators.serving import load_model

    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", rev], capture_output=True,
                            text=True, check=True).stdout.strip()
    frames = []
    for theirs, ours in DEVICES.items():
        for model in MODELS:
            config = _show(repo, rev, f"configs/model/{model}.json")
            if config is None:
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                f.write(config)
                f.flush()
                spec = load_model(f.name)
            for tp in (1, 2):
                base = f"profiler/perf/{theirs}/{model}/bf16/tp{tp}"
                parts = [_csv(repo, rev, f"{base}/{x}.csv") for x in ("dense", "attention", "moe")]
                if all(p is None for p in parts):
                    continue
                df = kernels(*parts, spec, tp)
                df["device"], df["model"], df["tp"] = ours, model, tp
                df["gqa"] = spec.n_heads // spec.n_kv_heads  # query heads per KV head
                df["source"] = f"casys-kaist/LLMServingSim@{commit[:12]}:{base}"
                meta = yaml.safe_load(_show(repo, rev, f"profiler/perf/{theirs}/{model}/bf16/"
                                                       "meta.yaml") or "{}") or {}
                for key in ("gpu", "vllm_version", "cuda_version", "profiled_at"):
                    df[key] = str(meta.get(key, ""))
                frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["dtype"], out["ok"] = "bf16", 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="an LLMServingSim git checkout or mirror")
    parser.add_argument("out", help="the Parquet to write")
    parser.add_argument("--rev", default="HEAD", help="the commit to read (default HEAD)")
    args = parser.parse_args(argv)
    out = prepare(args.checkout, args.rev)
    out.to_parquet(args.out, compression="zstd", index=False)
    print(len(out), "rows ->", args.out)
    print(out.groupby(["device", "op"]).size().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
