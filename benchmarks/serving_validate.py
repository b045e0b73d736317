"""Fidelity of the LLM-serving simulator against measured vLLM runs (issue #22).

Reads the validation set (``reference.csv``, its traces and model configs; default
``../shared/data/serving-validation`` from the repository root, never copied into the
repository), simulates every row's run with its trace and plan, computes each row's metric
the way its source defined it (``metric_definition``), and writes
``benchmarks/results/serving_validation.md`` (+ ``.png``, ``.json``, ``.provenance.json``).

Nothing here is fitted to the set: the simulator's constants come from datasheets, the H200
kernel measurements, LLMServingSim's published kernel profiles of the RTX 4090 and RTX PRO 6000
(kernel-level, not end-to-end) and published per-device matmul and copy throughput
(:mod:`mlsysgym.simulators.serving.calibration`); the per-row engine
settings below are read from each row's stated flags or, where a row states none, vLLM's
documented defaults for its version:

* vLLM v0.6.0 (APEX rows): chunked prefill is on by default for models whose context is
  > 32K tokens (vLLM PR #6666) with ``max_num_batched_tokens`` 512, else off with
  ``max_num_batched_tokens`` = max model length; ``max_num_seqs`` 256;
  ``--gpu-memory-utilization`` and ``--max-model-len`` from the row's flags.
* vLLM 0.19 (LLMServingSim bench rows): chunked prefill (V1), ``max_num_seqs`` and
  ``max_num_batched_tokens`` from the row's engine_kwargs, memory utilization 0.9.
* LLMServingSim Figure 8 rows (vLLM flags not stored): V1-style chunked prefill with the
  simulator side's 2048 batched tokens, 256 sequences, utilization 0.9 (assumptions).

Engine overheads (:mod:`mlsysgym.simulators.serving.overheads`, published figures) follow
each row's engine and where its TTFT clock starts: v0.6.0 rows measure TTFT with the
server's Prometheus histogram (clock starts at the engine: ``vllm-v0.6-server``); the 0.19
bench rows measure from the client's send time (``vllm-v1-client``); Figure 8 rows report
``mean_ttft_ms``, the column name of vLLM's client benchmark (``vllm-v1-client``, assumed: the
artifact does not store the version). ``--engine none`` gives the GPU roofline alone;
``--set [PRESET:]FIELD=VALUE`` overrides one engine-overhead field for every row (or for the
rows of one preset: sensitivity and ablation runs, e.g. ``--set
vllm-v0.6-server:eager_op_s=30e-6`` or ``--set eager_allreduce=false``). Rows
served with ``--quantization fp8`` on a bf16 checkpoint quantize activations with a dynamic
scale (``act_scale_dynamic``); pre-quantized FP8 checkpoints carry static scales.

For every TTFT row the report also breaks the simulated TTFT (mean over the run's requests)
into front end, queueing, compute, kernel floors, communication, engine CPU and KV transfer
(``simulate(..., details=True)["ttft_parts"]``), and gives the median error per row group.

Usage::

    .venv/bin/python benchmarks/serving_validate.py [--data DIR] [--set [PRESET:]FIELD=VALUE ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "serving-validation"
OUT = Path("benchmarks/results/serving_validation")  # default --out, under the working directory

GPUS = {"H100": "H100-SXM", "RTX 4090": "RTX-4090", "RTXPRO6000": "RTX-PRO-6000"}
MODELS = {"Llama-3.1-70B": "Llama-3.1-70B", "Llama-3.1-8B": "Llama-3.1-8B",
          "Mixtral-8x7B-v0.1": "Mixtral-8x7B", "Qwen3-32B": "Qwen3-32B",
          "Qwen3-30B-A3B-Instruct-2507": "Qwen3-30B-A3B",
          "Mistral-Large-Instruct-2407": "Mistral-Large-2407"}
FAMILY = {"TTFT_mean": "TTFT", "mean_ttft_ms": "TTFT", "TPOT_token_weighted": "TPOT",
          "TPOT_mean": "TPOT", "mean_tpot_ms": "TPOT", "throughput_tok_s": "throughput",
          "E2E_latency_sum": "E2E", "E2E_latency_mean": "E2E"}


def _flag(flags: str, name: str) -> str | None:
    m = re.search(rf"--{name}[ =]([^\s;,]+)", flags)
    return m.group(1) if m else None


def _kwarg(flags: str, name: str) -> str | None:
    m = re.search(rf"{name}=([^\s;,]+)", flags)
    return m.group(1) if m else None


def row_setup(row: dict[str, str], data: Path) -> dict[str, Any]:
    """Model, device, plan (with engine settings) and trace file of one reference row."""
    from mlsysgym.simulators.serving.models import load_model

    name = MODELS[row["model"]]
    builtin = load_model(name)
    cfg_path = data / "models" / f"{row['model']}.json"
    model = load_model(cfg_path) if cfg_path.exists() else builtin
    if model.params() != builtin.params():
        raise SystemExit(f"{row['row_id']}: config {cfg_path.name} differs from the built-in")
    model = builtin  # same shapes; the built-in also knows the maximum context
    gpu = next(v for k, v in GPUS.items() if k in row["gpu"])
    flags, engine = row["engine_flags"], row["engine"]
    tp, dp = int(row["tp"]), int(row["dp"] or 1)
    ep = int(row["ep"] or 1)
    pd = row["pd_disaggregated"].startswith("yes")
    fp8 = row["dtype"].startswith("fp8")
    util = float(_flag(flags, "gpu-memory-utilization") or 0.9)
    if "v0.6.0" in engine:
        max_len = int(_flag(flags, "max-model-len") or model.max_context)
        chunked = max_len > 32768
        mbt = 512 if chunked else max(max_len, 2048)
        seqs = 256
    elif "0.19" in engine:
        chunked, mbt = True, int(_kwarg(flags, "max_num_batched_tokens") or 2048)
        seqs = int(_kwarg(flags, "max_num_seqs") or 256)
    else:  # LLMServingSim Figure 8: flags not stored
        chunked, mbt, seqs = True, 2048, 256
    if "replica" in row["row_id"]:  # one replica of a DP2 pair, measured alone on its half
        dp = 1
    plan = {"tp": tp, "pp": int(row["pp"] or 1), "dp": dp, "ep": ep, "pd_disagg": int(pd),
            "dtype": "fp8" if fp8 else "bf16",
            "kv_dtype": "fp8" if row["kv_cache_dtype"].startswith("fp8") else "bf16",
            "max_num_seqs": seqs, "max_batched_tokens": mbt, "chunked_prefill": chunked,
            "gpu_mem_util": util}
    if "v0.6.0" in engine:
        preset = "vllm-v0.6-server"
    else:
        preset = "vllm-v1-client"
    dynamic = fp8 and "--quantization fp8" in flags  # bf16 checkpoint quantized at load
    return {"model": model, "gpu": gpu, "plan": plan, "engine": preset, "dynamic": dynamic}


def row_group(row_id: str) -> str:
    """The row group a row is reported in (by source and setting)."""
    if row_id.startswith("apex-"):
        return "APEX v0.6 TP8" if "-tp8-" in row_id else "APEX v0.6 TP4/TP2/DP2"
    if row_id.startswith("lss2-fig8"):
        return "LLMServingSim Fig. 8 (H100 TP4)"
    return "LLMServingSim bench (RTX)"


def trace_for(group: str, data: Path) -> Path:
    manifest = json.loads((data / "traces" / "MANIFEST.json").read_text())["traces"]
    for fname, info in manifest.items():
        if group in info.get("groups", ()):
            return data / "traces" / fname
    raise SystemExit(f"no trace for group {group!r} in MANIFEST.json")


def predict(metric: str, unit: str, res: dict[str, Any], trace: Any) -> float:
    """The row's metric from simulated per-request times, as its source defines it, in the
    row's unit (times in ``s`` or ``ms``)."""
    first, finish = res["first_token_s"], res["finish_s"]
    arr, out = trace.arrival_s, trace.output_tokens
    scale = 1e3 if unit.startswith("ms") else 1.0
    multi = out > 1
    if metric in ("TTFT_mean", "mean_ttft_ms"):
        return scale * float(np.mean(first - arr))
    if metric == "TPOT_token_weighted":  # histogram sum of inter-token times / tokens incl. first
        return scale * float(np.sum(finish - first) / np.sum(out))
    if metric in ("TPOT_mean", "mean_tpot_ms"):  # per request (last − first)/(n − 1), mean
        return scale * float(np.mean((finish - first)[multi] / (out[multi] - 1)))
    if metric == "E2E_latency_sum":
        return scale * float(np.sum(finish - arr))
    if metric == "E2E_latency_mean":
        return scale * float(np.mean(finish - arr))
    if metric == "throughput_tok_s":  # output tokens / (last finish − first arrival)
        return float(np.sum(out) / (finish.max() - arr.min()))
    raise SystemExit(f"unknown metric {metric!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--engine", default=None,
                    help="one engine-overhead preset for every row (default: per row, see above)")
    ap.add_argument("--set", action="append", default=[], metavar="[PRESET:]FIELD=VALUE",
                    help="override one engine-overhead field for every row, or for the rows "
                         "of one preset (repeatable)")
    args = ap.parse_args(argv)
    if any("=" not in kv for kv in args.set):
        ap.error("--set takes [PRESET:]FIELD=VALUE")
    overrides: dict[str, dict[str, str]] = {}  # preset ("" = every row) -> field -> value
    for kv in args.set:
        key, value = kv.split("=", 1)
        preset, _, fld = key.rpartition(":")
        overrides.setdefault(preset, {})[fld] = value
    if not (args.data / "reference.csv").exists():
        print(f"no validation set at {args.data}", file=sys.stderr)
        return 2
    from mlsysgym.core.errors import MlsysgymError
    from mlsysgym.simulators.serving.evaluator import ServingWorkload, simulate
    from mlsysgym.simulators.serving.hardware import load_cluster
    from mlsysgym.simulators.serving.overheads import load_engine
    try:
        for preset, fields in overrides.items():
            load_engine({"preset": preset or "none", **fields})
    except MlsysgymError as e:
        print(f"error: --set: {e}", file=sys.stderr)
        return 2
    from mlsysgym.simulators.serving.traces import read_trace

    rows = list(csv.DictReader((args.data / "reference.csv").open()))
    cache: dict[str, tuple[dict[str, Any], Any, float]] = {}
    table = []
    for row in rows:
        manifest_groups = json.loads((args.data / "traces" / "MANIFEST.json").read_text())
        groups = {g for t in manifest_groups["traces"].values() for g in t.get("groups", ())}
        grp = next(g for g in sorted(groups, key=len, reverse=True)
                   if row["row_id"].startswith(g + "-"))
        setup = row_setup(row, args.data)
        preset = args.engine or setup["engine"]
        fields = {**overrides.get("", {}), **overrides.get(preset, {})}
        if grp not in cache:
            trace = read_trace(trace_for(grp, args.data))
            p = setup["plan"]
            n = p["tp"] * p["pp"] * p["dp"] * (1 + p["pd_disagg"])
            eng = {"preset": preset, "act_scale_dynamic": setup["dynamic"],
                   "name": preset + ("+dynamic-fp8" if setup["dynamic"] else ""), **fields}
            w = ServingWorkload(setup["model"], load_cluster(setup["gpu"], 1, n), trace,
                                engine=load_engine(eng))
            t0 = time.process_time()
            res = simulate(w, p, details=True)
            cache[grp] = (res, trace, time.process_time() - t0)
        res, trace, _cpu = cache[grp]
        pred = predict(row["metric"], row["unit"], res, trace)
        meas = float(row["measured_value"])
        scale = 1e3 if row["unit"].startswith("ms") else 1.0
        parts = {k: scale * float(np.mean(v)) for k, v in res["ttft_parts"].items()}
        table.append({"row_id": row["row_id"], "group": grp, "metric": row["metric"],
                      "row_group": row_group(row["row_id"]), "ttft_parts": parts,
                      "family": FAMILY[row["metric"]], "unit": row["unit"], "measured": meas,
                      "predicted": pred, "err_pct": 100.0 * (pred - meas) / meas,
                      "plan": setup["plan"], "gpu": setup["gpu"],
                      "engine": preset + (" +dynamic-fp8" if setup["dynamic"] else "")
                      + "".join(f" {k}={v}" for k, v in fields.items()),
                      "model": setup["model"].name})
    sims = {g: (len(t), c) for g, (_, t, c) in cache.items()}
    write_report(table, sims, args.out, args.data)
    return 0


def group_table(table: list[dict[str, Any]], fams: list[str]) -> list[str]:
    """Markdown lines: median absolute error per row group and metric family."""
    groups = list(dict.fromkeys(r["row_group"] for r in table))
    lines = ["Median absolute error per row group (rows in brackets):", "",
             "| row group | " + " | ".join(fams) + " |", "|---|" + "---:|" * len(fams)]
    for g in groups:
        cells = []
        for f in fams:
            errs = [abs(r["err_pct"]) for r in table if r["row_group"] == g and r["family"] == f]
            cells.append(f"{np.median(errs):.1f} % ({len(errs)})" if errs else "—")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


PART_NAMES = ("frontend", "queue", "compute", "floors", "comm", "cpu", "kv_transfer")


def ttft_breakdown(table: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: each TTFT row's simulated mean TTFT split into its components (the
    row's unit), next to the measured and simulated values."""
    lines = [("Simulated TTFT per row, split into components (mean over the run's requests, in "
             "the row's unit): front end (HTTP + tokenization), queueing, compute (roofline "
             "work of the iterations that computed the prompt), kernel floors, communication "
             "(all-reduces, gathers, all-to-alls), engine CPU (scheduling, eager dispatch), KV "
             "transfer (P/D)."), "",
             "| row | measured | simulated | error | " + " | ".join(PART_NAMES) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(PART_NAMES)]
    for r in table:
        if r["family"] != "TTFT":
            continue
        p = r["ttft_parts"]
        lines.append(f"| {r['row_id']} | {r['measured']:.4g} {r['unit']} | {r['predicted']:.4g} "
                     f"| {r['err_pct']:+.1f} % | "
                     + " | ".join(f"{p[k]:.3g}" for k in PART_NAMES) + " |")
    return lines


def write_report(table: list[dict[str, Any]], sims: dict[str, tuple[int, float]], out: Path,
                 data: Path) -> None:
    from mlsysgym.experiments.report import stamp_markdown, write_provenance

    fams = ["TTFT", "TPOT", "throughput", "E2E"]
    med = {f: float(np.median([abs(r["err_pct"]) for r in table if r["family"] == f]))
           for f in fams if any(r["family"] == f for r in table)}
    n_req = sum(n for n, _ in sims.values())
    cpu = sum(c for _, c in sims.values())
    lines = ["# LLM serving simulator vs measured vLLM runs", "",
             (f"Validation set: `{data.name}/reference.csv` ({len(table)} measured numbers, "
             f"{len(sims)} runs), read from shared/ and not copied; nothing fitted to it "
             "(calibration: H200 kernel measurements, published kernel profiles of the RTX 4090 "
             "and RTX PRO 6000 (LLMServingSim's, kernel-level), datasheets and published "
             "matmul/copy throughput; engine overheads: "
             "published vLLM figures, `simulators/serving/overheads.py`). Script: "
             "`benchmarks/serving_validate.py`."), "",
             "| metric family | rows | median abs. error |", "|---|---:|---:|"]
    for f, v in med.items():
        lines.append(f"| {f} | {sum(r['family'] == f for r in table)} | {v:.1f} % |")
    allv = float(np.median([abs(r["err_pct"]) for r in table]))
    lines += [f"| all | {len(table)} | {allv:.1f} % |", "",
              (f"Simulation speed: {n_req} requests in {cpu:.2f} CPU-s "
              f"({n_req / max(cpu, 1e-9):.0f} requests per CPU-second, one core)."), "",
              "| row | model | device | plan | metric | measured | predicted | error |",
              "|---|---|---|---|---|---:|---:|---:|"]
    for r in table:
        p = r["plan"]
        plan = f"dp{p['dp']}·tp{p['tp']}" + (f"·ep{p['ep']}" if p["ep"] > 1 else "") + \
            (" P/D" if p["pd_disagg"] else "") + f" {p['dtype']}" + \
            (f", chunked {p['max_batched_tokens']}" if p["chunked_prefill"] else ", no chunking") \
            + f"; {r['engine']}"
        lines.append(f"| {r['row_id']} | {r['model']} | {r['gpu']} | {plan} | {r['metric']} | "
                     f"{r['measured']:.4g} {r['unit']} | {r['predicted']:.4g} | "
                     f"{r['err_pct']:+.1f} % |")
    lines += [""] + group_table(table, fams) + [""] + ttft_breakdown(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(stamp_markdown("\n".join(lines) + "\n"))
    slim = [{k: v for k, v in r.items() if k != "measured"} for r in table]  # data stays in shared/
    out.with_suffix(".json").write_text(json.dumps({"median_abs_err_pct": med, "all": allv,
                                                    "rows": slim}, indent=1, default=str))
    write_provenance(out.with_suffix(".provenance.json"), script="benchmarks/serving_validate.py",
                     evaluator="serving@1", data=str(data))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, f in zip(axes, fams):
        rs = [r for r in table if r["family"] == f]
        if not rs:
            continue
        m = np.array([r["measured"] for r in rs])
        pr = np.array([r["predicted"] for r in rs])
        ax.loglog(m, pr, "o")
        lo, hi = min(m.min(), pr.min()) * 0.8, max(m.max(), pr.max()) * 1.25
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(f"{f} (median |err| {med[f]:.1f} %)")
        ax.set_xlabel("measured (row's unit)")
        ax.set_ylabel("simulated")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    for r in table:
        print(f"{r['row_id']:62s} {r['measured']:12.5g} {r['predicted']:12.5g} "
              f"{r['err_pct']:+7.1f}%")
    print("median abs error:", {k: round(v, 1) for k, v in med.items()}, "all", round(allv, 1))


if __name__ == "__main__":
    sys.exit(main())
