"""A corpus of bad (and a few good) input files for the fuzz suite (issue #25): ONNX models that
are truncated, binary, cyclic, mismatched, dynamic or huge; broken MLIR; damaged cost-model
folders; malformed DRAM trace lines.

Each entry is ``name -> Case(data, expect)``: ``expect`` is ``"error"`` (the CLI must refuse it
with one line) or the exact MACs the file holds (computed by hand) when it is valid. Run as a
script to write the corpus to a folder::

    python tests/bad_inputs.py OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnx import helper
from onnx_builders import model, value, weight

ERROR = "error"


@dataclass(frozen=True)
class Case:
    """A file's bytes and what reading it must give: ERROR or its MACs (an int)."""

    data: bytes
    expect: str | int


def _matmul(x_shape: list, w_shape: list, y_shape: list, **kw) -> bytes:
    node = helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm0")
    return model([node], [value("X", x_shape)], [value("Y", y_shape)],
                 [weight("W", w_shape)], **kw).SerializeToString()


def onnx_corpus() -> dict[str, Case]:
    """ONNX files: one valid MatMul and its broken variants."""
    good = _matmul([4, 64], [64, 16], [4, 16])
    rng = np.random.default_rng(0)
    cyclic = model([helper.make_node("Add", ["X", "B"], ["A"], name="add"),
                    helper.make_node("Relu", ["A"], ["B"], name="relu")],
                   [value("X", [4, 4])], [value("A", [4, 4])]).SerializeToString()
    undefined = model([helper.make_node("Relu", ["nowhere"], ["Y"], name="relu")],
                      [value("X", [4, 4])], [value("Y", [4, 4])]).SerializeToString()
    conv1d = model([helper.make_node("Conv", ["X", "W"], ["Y"], name="conv")],
                   [value("X", [3])], [value("Y", [3])],
                   [weight("W", [4, 3, 1])]).SerializeToString()  # rank-1 input: no N, C
    duplicate = model([helper.make_node("Relu", ["X"], ["Y"], name="r1"),
                       helper.make_node("Relu", ["X"], ["Y"], name="r2")],
                      [value("X", [4, 4])], [value("Y", [4, 4])]).SerializeToString()
    return {
        "good_matmul.onnx": Case(good, 4 * 64 * 16),
        "huge_dim.onnx": Case(_matmul([2**40, 64], [64, 16], [2**40, 16]), 2**40 * 64 * 16),
        "truncated_half.onnx": Case(good[: len(good) // 2], ERROR),
        "truncated_tail.onnx": Case(good[:-3], ERROR),
        "binary.onnx": Case(rng.integers(0, 256, 512, dtype=np.uint8).tobytes(), ERROR),
        "empty.onnx": Case(b"", ERROR),
        "text.onnx": Case(b"this is not an ONNX model\n", ERROR),
        "cyclic.onnx": Case(cyclic, ERROR),
        "mismatched_k.onnx": Case(_matmul([4, 64], [32, 16], [4, 16]), ERROR),
        "dynamic.onnx": Case(_matmul(["batch", 64], [64, 16], ["batch", 16]), ERROR),
        "negative_dim.onnx": Case(_matmul([-5, 64], [64, 16], [-5, 16]), ERROR),
        "zero_dim.onnx": Case(_matmul([0, 64], [64, 16], [0, 16]), ERROR),
        "undefined_input.onnx": Case(undefined, ERROR),
        "rank1_conv.onnx": Case(conv1d, ERROR),
        "duplicate_output.onnx": Case(duplicate, ERROR),
        "future_opset.onnx": Case(_matmul([4, 64], [64, 16], [4, 16], opset=999), 4 * 64 * 16),
    }


_GOOD_MLIR = """func.func @mm(%a: tensor<8x8xf32>, %b: tensor<8x8xf32>) -> tensor<8x8xf32> {
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x8xf32>
  %f = linalg.fill ins(%cst : f32) outs(%e : tensor<8x8xf32>) -> tensor<8x8xf32>
  %r = linalg.matmul ins(%a, %b : tensor<8x8xf32>, tensor<8x8xf32>)
                     outs(%f : tensor<8x8xf32>) -> tensor<8x8xf32>
  return %r : tensor<8x8xf32>
}
"""


def mlir_corpus() -> dict[str, Case]:
    """MLIR files: one valid matmul and broken variants (expect: MACs of the good ones)."""
    big = _GOOD_MLIR.replace("8x8", "100000x100000")
    return {
        "good.mlir": Case(_GOOD_MLIR.encode(), 8 * 8 * 8),
        "huge_dims.mlir": Case(big.encode(), 100000**3),
        "empty.mlir": Case(b"", ERROR),
        "blank.mlir": Case(b"  \n\n", ERROR),
        "binary.mlir": Case(bytes(range(128, 256)), ERROR),
        "bytecode.mlir": Case(b"ML\xefR\x00\x01\x02", ERROR),
        "truncated.mlir": Case(_GOOD_MLIR[: len(_GOOD_MLIR) // 2].encode(), ERROR),
        "syntax.mlir": Case(_GOOD_MLIR.replace("linalg.matmul ins", "linalg.matmul ins((").encode(),
                            ERROR),
        "outside_function.mlir": Case(b"%0 = arith.constant 1 : i32\n", ERROR),
        "empty_module.mlir": Case(b"module {\n}\n", ERROR),
        "latin1.mlir": Case(("// caf\xe9\n" + _GOOD_MLIR).encode("latin-1"), ERROR),
        "type_mismatch.mlir": Case(_GOOD_MLIR.replace("-> tensor<8x8xf32>\n  return",
                                                      "-> tensor<8x9xf32>\n  return").encode(),
                                   ERROR),
    }


def damage_model(saved: Path, out: Path) -> dict[str, Path]:
    """Damaged copies of the cost-model folder ``saved`` under ``out`` (each must be refused)."""
    meta = json.loads((saved / "metadata.json").read_text())
    onnx_bytes = (saved / "model.onnx").read_bytes()

    def variant(name: str, meta_text: str | bytes | None = None,
                onnx_data: bytes | None = None) -> Path:
        d = out / name
        shutil.copytree(saved, d)
        if meta_text is not None:
            raw = meta_text.encode() if isinstance(meta_text, str) else meta_text
            (d / "metadata.json").write_bytes(raw)
        if onnx_data is not None:
            (d / "model.onnx").write_bytes(onnx_data)
        return d

    def edited(**changes) -> str:
        return json.dumps({**meta, **changes})

    norm = meta["schema"]["normalization"]
    return {
        "meta_truncated": variant("meta_truncated", json.dumps(meta)[:200]),
        "meta_binary": variant("meta_binary", bytes(range(256))),
        "meta_null": variant("meta_null", "null"),
        "meta_empty": variant("meta_empty", ""),
        "members_zero": variant("members_zero", edited(members=0)),
        "members_huge": variant("members_huge", edited(members=10**9)),
        "nan_normalization": variant("nan_normalization", edited(schema={
            **meta["schema"], "normalization": {**norm, "std": [float("nan")] * len(norm["std"])}})),
        "future_format": variant("future_format", edited(format_version=99)),
        "onnx_garbage": variant("onnx_garbage", onnx_data=b"\x00garbage" * 50),
        "onnx_truncated": variant("onnx_truncated", onnx_data=onnx_bytes[: len(onnx_bytes) // 3]),
        "onnx_empty": variant("onnx_empty", onnx_data=b""),
    }


def trace_corpus() -> dict[str, Case]:
    """DRAM trace files (expect: the number of requests of the valid ones)."""
    good = "".join(f"{4 * i}: {'write' if i % 3 == 0 else 'read'} {i * 64:#x}\n"
                   for i in range(20))
    return {
        "good.trace": Case(("# header\n" + good).encode(), 20),
        "empty.trace": Case(b"", ERROR),
        "comments_only.trace": Case(b"# nothing\n# here\n", ERROR),
        "binary.trace": Case(bytes(range(256)), ERROR),
        "no_colon.trace": Case(good.replace("8: ", "8 ", 1).encode(), ERROR),
        "bad_command.trace": Case(good.replace("read", "raed", 1).encode(), ERROR),
        "no_address.trace": Case((good + "90: read\n").encode(), ERROR),
        "bad_hex.trace": Case((good + "90: read 0xZZ\n").encode(), ERROR),
        "trailing_text.trace": Case((good + "90: read 0x40 extra\n").encode(), ERROR),
        "negative_cycle.trace": Case(("-4: read 0x0\n" + good).encode(), ERROR),
        "decreasing.trace": Case((good + "3: read 0x40\n").encode(), ERROR),
        "huge_cycle.trace": Case((good + f"{10**30}: read 0x40\n").encode(), ERROR),
        "huge_address.trace": Case((good + f"90: read {2**70:#x}\n").encode(), ERROR),
        "beyond_capacity.trace": Case((good + f"90: read {2**40:#x}\n").encode(), ERROR),
    }


def write_corpus(out: Path) -> dict[str, tuple[Path, Case]]:
    """Write every ONNX, MLIR and trace case under ``out``; ``file name -> (path, case)``."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, Case]] = {}
    for corpus in (onnx_corpus(), mlir_corpus(), trace_corpus()):
        for name, case in corpus.items():
            (out / name).write_bytes(case.data)
            files[name] = (out / name, case)
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs")
    written = write_corpus(target)
    print(f"wrote {len(written)} files to {target}")
