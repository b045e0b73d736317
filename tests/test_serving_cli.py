"""``mlsysgym sim serving``: metrics as JSON; bad input is one line and exit 2."""

from __future__ import annotations

import json

from mlsysgym.cli import main


def test_sim_serving_json(capsys):
    rc = main(["sim", "serving", "--model", "Llama-3.1-8B", "--gpu", "A100-80GB", "--tp", "2",
               "--rate", "5", "--input-len", "256", "--output-len", "32", "--requests", "20",
               "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["devices"] == 2 and doc["requests"] == 20
    m = doc["metrics"]
    assert m["infeasible"] == 0 and m["throughput_tok_s"] * m["makespan_s"] == 20 * 32


def test_sim_serving_text_and_errors(capsys, tmp_path):
    assert main(["sim", "serving", "--model", "Mistral-7B", "--requests", "10"]) == 0
    assert "TPOT mean" in capsys.readouterr().out
    assert main(["sim", "serving", "--model", "Llama-3.1-70B", "--tp", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not fit" in err and len(err.splitlines()) == 1
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("device: L40S\nnodes: 1\nper_node: 4\n")
    assert main(["sim", "serving", "--model", "Llama-3.1-8B", "--cluster", str(yaml_file),
                 "--tp", "2", "--dp", "2", "--requests", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "L40S"
    assert main(["sim", "serving", "--model", "Llama-3.1-8B", "--tp", "3"]) == 2
    assert "tp must divide" in capsys.readouterr().err


def test_sim_serving_engine_preset(capsys):
    """At 0.5 req/s nothing queues, so vLLM V1's client-side preset adds exactly its front end
    (5.7 ms) and tokenization (10 µs × 100 prompt tokens = 1.0 ms) to every TTFT."""
    ttft = {}
    for engine in ("none", "vllm-v1-client"):
        assert main(["sim", "serving", "Llama-3.1-8B", "--tp", "1", "--rate", "0.5",
                     "--input-len", "100", "--output-len", "10", "-n", "5", "--engine", engine,
                     "--json"]) == 0
        ttft[engine] = json.loads(capsys.readouterr().out)["metrics"]["ttft_mean_s"]
    assert abs(ttft["vllm-v1-client"] - ttft["none"] - 0.0067) < 1e-9
    assert main(["sim", "serving", "Llama-3.1-8B", "--engine", "vllm-x"]) == 2
    assert "unknown engine preset 'vllm-x'" in capsys.readouterr().err
