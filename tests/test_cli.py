"""The ``mlsysgym`` CLI: JSON output and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from onnx_builders import conv_relu, matmul_chain

from mlsysgym.cli import main


@pytest.fixture
def conv_file(tmp_path):
    p = tmp_path / "conv.onnx"
    p.write_bytes(conv_relu().SerializeToString())
    return p


def test_inspect_json(conv_file, capsys):
    assert main(["ir", "inspect", str(conv_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["macs"] == 3888
    assert [op["op_type"] for op in doc["ops"]] == ["Conv", "Relu"]
    assert doc["ops"][0]["loop_nest"]["kind"] == "conv"
    assert doc["ops"][0]["outputs"] == [[1, 4, 6, 6]]


def test_inspect_table(tmp_path, capsys):
    p = tmp_path / "chain.onnx"
    p.write_bytes(matmul_chain().SerializeToString())
    assert main(["ir", "inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert "mm_big" in out and "peak live memory 4.04kB" in out


@pytest.mark.parametrize("content, message", [
    (None, "no such ONNX file"),
    (b"garbage bytes, not protobuf", "not"),
    ("truncated", "truncated or corrupt"),
])
def test_bad_files_one_line_error(tmp_path, capsys, content, message):
    p = tmp_path / "bad.onnx"
    if content == "truncated":
        data = conv_relu().SerializeToString()
        p.write_bytes(data[: len(data) // 2])
    elif content is not None:
        p.write_bytes(content)
    assert main(["ir", "inspect", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mlsysgym: error:") and message in err


def test_bad_dim_argument(conv_file, capsys):
    assert main(["ir", "inspect", str(conv_file), "--dim", "batch"]) == 2
    assert "NAME=SIZE" in capsys.readouterr().err


def test_real_process_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mlsysgym.cli", "ir", "inspect",
                           str(tmp_path / "nope.onnx")], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"mlsysgym: error: no such ONNX file: {tmp_path / 'nope.onnx'}")


def test_demo_small_search(tmp_path, capsys):
    from mlsysgym.core.dataset import read_dataset

    out = tmp_path / "demo"
    assert main(["demo", "--model", "resnet18", "--budget", "20", "--agents", "random,ga",
                 "--out", str(out)]) == 0
    frame = read_dataset(out / "demo_trajectories")
    assert len(frame) == 40 and set(frame["agent"]) == {"random", "ga"}
    assert (out / "demo_best_so_far.png").stat().st_size > 1000
    assert "best design per agent" in capsys.readouterr().out


def test_demo_unknown_agent(capsys):
    assert main(["demo", "--agents", "random,telepathy"]) == 2
    assert "telepathy" in capsys.readouterr().err
