"""benchmarks/serving_validate.py logic on hand-made inputs (the validation set itself is
never read by tests)."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_scripts import load_script
from mlsysgym.simulators.serving.models import load_model
from mlsysgym.simulators.serving.traces import Trace

sv = load_script("serving_validate.py")


def _res():
    # two requests: arrive 0 and 1 s, first tokens at 0.5 and 1.2 s, done at 2.5 and 1.2 s
    trace = Trace(np.array([0.0, 1.0]), np.array([10, 20]), np.array([5, 1]))
    return {"first_token_s": np.array([0.5, 1.2]), "finish_s": np.array([2.5, 1.2])}, trace


def test_metric_definitions_by_hand():
    res, tr = _res()
    assert sv.predict("TTFT_mean", "s", res, tr) == pytest.approx(0.35)
    assert sv.predict("TTFT_mean", "ms", res, tr) == pytest.approx(350.0)
    # APEX: sum of inter-token times (2.0 + 0) over all output tokens incl. first (6)
    assert sv.predict("TPOT_token_weighted", "s/token", res, tr) == pytest.approx(2.0 / 6)
    # per-request mean over requests with > 1 token: 2.0 / 4
    assert sv.predict("TPOT_mean", "ms", res, tr) == pytest.approx(500.0)
    assert sv.predict("E2E_latency_sum", "s (summed over requests)", res, tr) == \
        pytest.approx(2.5 + 0.2)
    assert sv.predict("throughput_tok_s", "tok/s", res, tr) == pytest.approx(6 / 2.5)


def _row(**kw):
    row = {"row_id": "x-ttft", "model": "Llama-3.1-70B", "gpu": "H100-SXM-80GB", "tp": "4",
           "pp": "1", "dp": "1", "ep": "", "pd_disaggregated": "no", "dtype": "bf16",
           "kv_cache_dtype": "auto", "engine": "vLLM v0.6.0 (docker)",
           "engine_flags": "--tensor-parallel-size 4 --gpu-memory-utilization 0.97"}
    row.update(kw)
    return row


def test_engine_settings_from_flags(tmp_path):
    s = sv.row_setup(_row(), tmp_path)
    # 128K-context model on v0.6.0: chunked prefill with 512 tokens; utilization from flags
    assert s["plan"]["chunked_prefill"] and s["plan"]["max_batched_tokens"] == 512
    assert s["plan"]["gpu_mem_util"] == 0.97 and s["gpu"] == "H100-SXM"
    s = sv.row_setup(_row(model="Mistral-Large-Instruct-2407", dtype="fp8 (pre-quantized)",
                          kv_cache_dtype="fp8",
                          engine_flags="--max-model-len 20560 --gpu-memory-utilization 0.85"),
                     tmp_path)
    assert not s["plan"]["chunked_prefill"] and s["plan"]["max_batched_tokens"] == 20560
    assert (s["plan"]["dtype"], s["plan"]["kv_dtype"]) == ("fp8", "fp8")
    s = sv.row_setup(_row(engine="vLLM 0.19.0", gpu="RTXPRO6000 (96 GB)", tp="1",
                          engine_flags="engine_kwargs: max_num_seqs=128, "
                                       "max_num_batched_tokens=2048"), tmp_path)
    assert (s["plan"]["max_num_seqs"], s["plan"]["max_batched_tokens"]) == (128, 2048)
    assert s["gpu"] == "RTX-PRO-6000"


def test_mla_kv_cache():
    k2 = load_model("Kimi-K2")
    assert k2.kv_bytes_per_token("bf16") == 61 * (512 + 64) * 2   # latent + rope key


def test_dynamic_fp8_scale_and_row_groups(tmp_path):
    fp8 = {"model": "Mistral-Large-Instruct-2407", "dtype": "fp8 weights",
           "kv_cache_dtype": "fp8"}
    s = sv.row_setup(_row(engine_flags="--quantization fp8 --tensor-parallel-size 8", **fp8),
                     tmp_path)
    assert s["dynamic"] and s["engine"] == "vllm-v0.6-server"
    assert not sv.row_setup(_row(engine_flags="--kv-cache-dtype fp8", **fp8), tmp_path)["dynamic"]
    assert not sv.row_setup(_row(engine_flags="--quantization fp8"), tmp_path)["dynamic"]  # bf16
    assert sv.row_group("apex-llama70b-tp8-lmsys_05-ttft") == "APEX v0.6 TP8"
    assert sv.row_group("apex-llama70b-tp4-lmsys_05-ttft") == "APEX v0.6 TP4/TP2/DP2"
    assert sv.row_group("lss2-fig8-SD-mean_ttft_ms").startswith("LLMServingSim Fig. 8")


def test_group_table_and_breakdown_lines():
    parts = {k: 1.0 for k in sv.PART_NAMES}
    rows = [{"row_id": "a-ttft", "row_group": "G", "family": "TTFT", "err_pct": -10.0,
             "measured": 8.0, "predicted": 7.2, "unit": "s", "ttft_parts": parts},
            {"row_id": "b-ttft", "row_group": "G", "family": "TTFT", "err_pct": 30.0,
             "measured": 1.0, "predicted": 1.3, "unit": "s", "ttft_parts": parts}]
    assert "| G | 20.0 % (2) | — |" in sv.group_table(rows, ["TTFT", "TPOT"])
    lines = sv.ttft_breakdown(rows)
    assert lines[-2].startswith("| a-ttft | 8 s | 7.2 | -10.0 % | 1 | 1 |")


def test_set_overrides_are_checked_before_any_run(tmp_path, capsys):
    (tmp_path / "reference.csv").write_text("row_id\n")
    for bad, msg in (("foo=1", "unknown engine overhead field"),
                     ("vllm-v0.6-server:eager_op_s=-1", ">= 0"),
                     ("sglang:step_s=0", "unknown engine preset")):
        assert sv.main(["--data", str(tmp_path), "--set", bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        sv.main(["--data", str(tmp_path), "--set", "eager_op_s"])


def test_sensitivity_report(tmp_path):
    ss = load_script("serving_sensitivity.py")
    rows = [{"value": v, "TTFT": t, "TPOT": 8.0, "throughput": 1.7, "E2E": 8.0, "all": 7.0}
            for v, t in ((30e-6, 12.1), (35e-6, 4.9))]
    args = ss.argparse.Namespace(field="eager_op_s", preset="vllm-v0.6-server",
                                 data=tmp_path / "serving-validation", out=tmp_path / "s")
    ss.write_report(rows, args)
    md = (tmp_path / "s.md").read_text()
    assert "| 3.5e-05 | 4.9 | 8.0 | 1.7 | 8.0 | 7.0 |" in md
    assert (tmp_path / "s.png").stat().st_size > 0
    # a bad field stops with the validation script's one-line error, exit 2
    (tmp_path / "serving-validation").mkdir()
    (tmp_path / "serving-validation" / "reference.csv").write_text("row_id\n")
    assert ss.main(["--data", str(tmp_path / "serving-validation"), "--field", "nope",
                    "--values", "1", "--out", str(tmp_path / "x")]) == 2
