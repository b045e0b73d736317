"""MLIR text cost model: tokenizer properties, learning on a synthetic formula, ONNX round trip,
no torch at inference, and the two baselines (roofline, hand features)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlsysgym.costmodels.base import ModelFileError
from mlsysgym.costmodels.metrics import kendall_tau
from mlsysgym.costmodels.mlir_text import (
    HAND_FEATURES,
    NUMEL_SLOT,
    SLOT_STRIDE,
    UNK,
    MlirTextCostModel,
    MlirTextError,
    MlirTokenizer,
    RooflineModel,
    hand_features,
    tokenize,
    tokenize_slots,
)
from mlsysgym.ir.mlir_emit import KernelSpec, emit


def _synthetic(n: int, seed: int) -> pd.DataFrame:
    """Matmul and element-wise kernels with a known runtime: 2 µs + MACs / 500 + bytes / 2000."""
    rng = np.random.default_rng(seed)
    rows = []
    sizes = [2 ** k for k in range(3, 10)]
    for i in range(n):
        if i % 3:
            spec = KernelSpec("matmul", tuple(int(rng.choice(sizes)) for _ in range(3)))
        else:
            spec = KernelSpec("elementwise", (int(rng.choice(sizes)), int(rng.choice(sizes))),
                              op=str(rng.choice(["add", "mul", "relu"])))
        read, written = spec.bytes()
        flops = 2 * spec.macs if spec.macs else spec.points
        rows.append({"mlir": emit(spec).mlir, "kind": spec.kind, "op": spec.op,
                     "shape": "x".join(map(str, spec.shape)), "stride": np.nan, "rank": len(spec.shape),
                     "macs": spec.macs, "flops": flops, "bytes_read": read, "bytes_written": written,
                     "runtime_us": 2.0 + spec.macs / 500.0 + (read + written) / 2000.0})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _synthetic(160, 0), _synthetic(60, 1)


@pytest.fixture(scope="module")
def trained(data: tuple[pd.DataFrame, pd.DataFrame]) -> MlirTextCostModel:
    train, _ = data
    return MlirTextCostModel(seed=0, d_model=32, heads=2, layers=1, ffn=64, epochs=25,
                             patience=25, batch_size=32, learning_rate=5e-3).fit(train)


# ---- tokenizer ------------------------------------------------------------------------------------
def test_dims_and_element_type_are_tokens() -> None:
    toks = tokenize("%a: tensor<64x128xf32>")
    assert [s for s, _ in toks] == ["tensor", "<dim:7>", "<dim:8>", "f32", "<numel:14>"]
    assert toks[1][1] == pytest.approx(math.log2(65) / 16)
    assert toks[2][1] == pytest.approx(math.log2(129) / 16)
    assert toks[4][1] == pytest.approx(math.log2(1 + 64 * 128) / 16)
    full = [s for s, _ in tokenize("%a: tensor<64x128xf32>", compact=False)]
    assert full == ["%a", ":", "tensor", "<", "<dim:7>", "<dim:8>", "f32", "<numel:14>", ">"]


def test_slots_mark_dim_position_numel_and_alignment() -> None:
    toks = tokenize_slots("tensor<1x24x129xf32> dense<1> : tensor<f32>")
    slots = [k for _, _, k in toks]
    # dims count from the innermost (1); alignment = trailing zero bits, in units of SLOT_STRIDE
    assert slots[1:4] == [3, 2 + SLOT_STRIDE * 3, 1]
    assert slots[4] == 0 and slots[5] == NUMEL_SLOT          # f32, then the element count
    assert toks[5][0] == f"<numel:{(24 * 129).bit_length()}>"
    assert [s for s, _, _ in toks[6:]] == ["dense", "<int:1>", "tensor", "f32", "<numel:1>"]
    assert slots[6:] == [0, 0, 0, 0, NUMEL_SLOT]
    dyn = tokenize_slots("tensor<?x8xf32>")
    assert [s for s, _, _ in dyn] == ["tensor", "<dim:?>", "<dim:4>", "f32", "<numel:?>"]


def test_op_names_split_and_ssa_suffixes_dropped() -> None:
    text = "%x1 = linalg.depthwise_conv_2d_nhwc_hwc ins(%x0 : tensor<3xf16>)"
    assert [s for s, _ in tokenize(text, compact=False)][:8] == [
        "%x", "=", "linalg", "depthwise", "conv", "2d", "nhwc", "hwc"]
    assert [s for s, _ in tokenize("arith.constant 0.5 : f32 0xFF800000")] == [
        "arith", "constant", "<float>", "f32", "<hex>"]


def test_tokenizer_is_deterministic(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    texts = data[0]["mlir"].tolist()
    a, b = MlirTokenizer.fit(texts), MlirTokenizer.fit(list(reversed(texts)))
    assert a.vocab == b.vocab
    ea, eb = a.encode(texts[:5]), a.encode(texts[:5])
    assert np.array_equal(ea.tokens, eb.tokens) and np.array_equal(ea.numbers, eb.numbers)
    assert tokenize(texts[0]) == tokenize(texts[0])
    assert MlirTokenizer.from_json(json.loads(json.dumps(a.to_json()))).vocab == a.vocab


def test_unseen_tokens_are_unk_and_flagged(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tok = MlirTokenizer.fit(data[0]["mlir"].tolist())
    seen = tok.encode(data[0]["mlir"].tolist()[:3])
    assert not seen.ood.any() and not seen.unk_counts.any()
    bmm = emit(KernelSpec("batch_matmul", (2, 16, 16, 16))).mlir
    enc = tok.encode([bmm])
    assert enc.unk_counts[0] >= 1 and enc.ood[0]
    assert tok.vocab[UNK] in enc.tokens[0]
    # an unseen size is a magnitude bucket (never UNK) but outside the training range → OOD
    huge = tok.encode(["tensor<1048576xf32>"])
    assert huge.unk_counts[0] == 0 and huge.ood[0]


def test_truncation_flags_ood() -> None:
    tok = MlirTokenizer.fit(["tensor<4x4xf32>"], max_len=3)
    enc = tok.encode(["tensor<4x4x4x4xf32>"])
    assert enc.tokens.shape == (1, 3) and enc.ood[0]


def test_errors() -> None:
    with pytest.raises(MlirTextError):
        MlirTextCostModel(hidden=3)
    with pytest.raises(MlirTextError):
        MlirTextCostModel().fit(pd.DataFrame({"text": ["a"] * 10, "runtime_us": [1.0] * 10}))
    with pytest.raises(MlirTextError):
        MlirTokenizer.fit([])


def test_load_missing_dir_is_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        MlirTextCostModel.load(tmp_path / "nothing")


# ---- model ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_learns_monotone_relation(trained: MlirTextCostModel,
                                  data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, test = data
    p = trained.predict(test).values["runtime_us"]
    y = test["runtime_us"].to_numpy()
    tau = kendall_tau(y, p)
    # a constant predictor has no rank information (τ undefined / 0)
    assert tau > 0.6, tau
    assert trained.info.rows > 0 and "runtime_us" in trained.info.validation


@pytest.mark.slow
def test_onnx_round_trip_without_torch(trained: MlirTextCostModel, tmp_path: Path,
                                       data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, test = data
    d = trained.save(tmp_path / "m")
    assert (d / "model.onnx").is_file() and (d / "metadata.json").is_file()
    ref = trained.predict(test).values["runtime_us"]
    loaded = MlirTextCostModel.load(d)
    got = loaded.predict(test).values["runtime_us"]
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    # evaluator interface: designs are {"mlir": text} dicts
    ev = loaded.evaluate([{"mlir": t} for t in test["mlir"].tolist()[:4]], "kernels")
    np.testing.assert_allclose(ev["runtime_us"], ref[:4], rtol=1e-4)

    texts = test["mlir"].tolist()[:8]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    code = (
        "import json, sys\n"
        "from mlsysgym.costmodels.mlir_text import MlirTextCostModel\n"
        f"m = MlirTextCostModel.load({str(d)!r})\n"
        f"texts = json.load(open({str(tmp_path / 'texts.json')!r}))\n"
        "p = m.predict(texts).values['runtime_us'].tolist()\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'lightgbm': 'lightgbm' in sys.modules,"
        " 'p': p}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["torch"] is False and res["lightgbm"] is False
    np.testing.assert_allclose(res["p"], ref[:8], rtol=1e-4)


@pytest.mark.slow
def test_ensemble_members_validate_on_disjoint_folds(data: tuple[pd.DataFrame, pd.DataFrame],
                                                     tmp_path: Path) -> None:
    train, test = data
    m = MlirTextCostModel(members=2, seed=1, d_model=16, heads=2, layers=1, ffn=32, epochs=2,
                          patience=2, batch_size=64).fit(train)
    # out-of-fold validation: each member's 10% fold, disjoint → 2 × 10% of the rows
    assert m.info.rows == len(train) and m.info.valid_rows == 2 * round(0.1 * len(train))
    pred = m.predict(test)
    assert pred.std is not None and pred.std["runtime_us"].shape == (len(test),)
    loaded = MlirTextCostModel.load(m.save(tmp_path / "ens"))
    np.testing.assert_allclose(loaded.predict(test).values["runtime_us"],
                               pred.values["runtime_us"], rtol=1e-4)


# ---- baselines ------------------------------------------------------------------------------------
def test_roofline_recovers_parameters() -> None:
    rng = np.random.default_rng(0)
    flops = 10 ** rng.uniform(3, 9, 200)
    byts = 10 ** rng.uniform(3, 8, 200)
    rt = 1.5 + np.maximum(flops / 5e4, byts / 2e4)
    frame = pd.DataFrame({"flops": flops, "bytes_read": byts, "bytes_written": 0.0,
                          "runtime_us": rt})
    m = RooflineModel().fit(frame)
    assert m.peak == pytest.approx(5e4, rel=0.02)
    assert m.bandwidth == pytest.approx(2e4, rel=0.02)
    np.testing.assert_allclose(m.predict(frame).values["runtime_us"], rt, rtol=0.02)


def test_hand_features(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f = hand_features(data[0])
    assert set(HAND_FEATURES) <= set(f.columns)
    row = f.iloc[1]  # a matmul
    assert row["log2_points"] == pytest.approx(sum(math.log2(int(s)) for s in row["shape"].split("x")))
    dims = [int(s) for s in row["shape"].split("x")]
    assert [row[f"align_d{i}"] for i in range(len(dims))] == [
        min((d & -d).bit_length() - 1, 5) for d in dims]  # 2^k | d, k ≤ 5
    assert np.isfinite(f[[c for c in HAND_FEATURES if c not in ("kind", "op")]].to_numpy(float)).all()


def test_costmodel_load_dispatches_to_the_text_model(tmp_path: Path,
                                                     data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """CostModel.load opens a saved MLIR text model (a tiny one trained here) as the ONNX text
    model, which predicts what the trained model did."""
    from mlsysgym.costmodels.base import CostModel

    train, test = data
    m = MlirTextCostModel(seed=0, d_model=8, heads=2, layers=1, ffn=16, epochs=1, patience=1,
                          batch_size=64).fit(train.head(40))
    model = CostModel.load(m.save(tmp_path / "tiny"))
    assert type(model).__name__ == "OnnxMlirTextModel"
    np.testing.assert_allclose(model.predict(test.head(8)).values["runtime_us"],
                               m.predict(test.head(8)).values["runtime_us"], rtol=1e-4)


# ---- pretraining data (unmeasured emitted kernels, analytic labels) --------------------------------
def test_pretrain_labels_match_a_hand_computed_matmul() -> None:
    from mlsysgym.costmodels.mlir_pretrain import analytic_labels, spec_of_row

    spec = spec_of_row({"kind": "matmul", "shape": "4x8x16", "op": np.nan, "stride": np.nan})
    labels = analytic_labels(spec)
    assert labels["flops"] == 2 * 4 * 8 * 16              # 2 FLOPs per MAC of (M, N, K)
    assert labels["bytes_read"] == (4 * 16 + 16 * 8) * 4  # A (M×K) and B (K×N), f32
    assert labels["bytes_written"] == 4 * 8 * 4
    assert labels["macs"] == labels["points"] == 4 * 8 * 16
    assert [labels[f"size{i}"] for i in range(4)] == [4, 8, 16, 0]  # (M, N, K), 0 if absent
    assert [labels[f"align{i}"] for i in range(4)] == [2, 3, 4, 0]  # 4 = 2^2, 8 = 2^3, 16 = 2^4
    # element-wise FLOPs per point come from the parsed text, like the measured dataset's
    add = analytic_labels(KernelSpec("elementwise", (6, 5), op="add"))
    assert add["flops"] == 30 and add["bytes_read"] == 2 * 30 * 4


def test_pretrain_frame_is_deterministic_and_keeps_kinds(data: tuple[pd.DataFrame, pd.DataFrame]
                                                         ) -> None:
    from mlsysgym.costmodels.mlir_pretrain import analytic_labels, pretrain_frame, spec_of_row

    train = data[0]
    a, b = pretrain_frame(train, 40, seed=3), pretrain_frame(train, 40, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 40 and set(a["kind"]) <= set(train["kind"])
    assert "runtime_us" not in a.columns
    for row in a.head(5).to_dict("records"):  # the labels are the emitted text's kernel's
        spec = spec_of_row(row)
        assert emit(spec).mlir == row["mlir"]
        assert analytic_labels(spec)["flops"] == row["flops"]


def test_aux_labels_come_from_columns_or_from_the_shape(
        data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from mlsysgym.costmodels.mlir_text import _aux_labels

    train = data[0].head(20)
    labels = _aux_labels(train.drop(columns=["macs"]), ("flops", "macs", "size0", "nonsense"))
    assert list(labels.columns) == ["flops", "macs", "size0"]
    np.testing.assert_array_equal(labels["flops"], train["flops"])   # the measured column
    np.testing.assert_array_equal(labels["macs"], train["macs"])     # computed from the shape
    assert (labels["size0"] == [float(s.split("x")[0]) for s in train["shape"]]).all()
    assert list(_aux_labels(train.drop(columns=["shape"]), ("flops", "size0")).columns) == ["flops"]


def test_fit_with_pretraining(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = data
    m = MlirTextCostModel(seed=0, d_model=16, heads=2, layers=1, ffn=32, epochs=2, patience=2,
                          pretrain=64, pretrain_epochs=2).fit(train)
    assert [h["epoch"] for h in m.pretrain_history] == [1, 2]
    assert np.isfinite(m.predict(test).values["runtime_us"]).all()
    with pytest.raises(MlirTextError, match="kind/shape"):
        MlirTextCostModel(epochs=1, pretrain=8).fit(train.drop(columns=["shape"]))


def test_unmeasured_tokens_get_ids_but_still_flag_ood() -> None:
    mm = emit(KernelSpec("matmul", (4, 8, 16))).mlir
    dw = emit(KernelSpec("depthwise_conv_2d_nhwc_hwc", (1, 6, 6, 8, 3, 3))).mlir
    tok = MlirTokenizer.fit([mm], unmeasured=[dw])
    assert "depthwise" in tok.vocab and tok.known is not None
    assert tok.vocab["depthwise"] >= tok.known > tok.vocab["matmul"]
    enc = tok.encode([mm, dw])
    assert enc.unk_counts.tolist() == [0, 0]         # every token has its own id ...
    assert enc.ood.tolist() == [False, True]         # ... but unmeasured-only ones are OOD
    back = MlirTokenizer.from_json(json.loads(json.dumps(tok.to_json())))
    assert back.encode([mm, dw]).ood.tolist() == [False, True]


def test_unlabeled_kernels_seed_pretraining(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from mlsysgym.costmodels.mlir_pretrain import pretrain_frame, seed_frame

    train, test = data
    extra = pd.DataFrame([{"kind": "depthwise_conv_2d_nhwc_hwc", "shape": "1x6x6x8x3x3"},
                          {"kind": "nonsense", "shape": "2x2"}])   # not emittable: dropped
    seeds = seed_frame(train, extra)
    assert len(seeds) == len(train) + 1 and "depthwise" in seeds["mlir"].iloc[-1]
    kinds = set(pretrain_frame(seeds, 400, seed=0)["kind"])
    assert "depthwise_conv_2d_nhwc_hwc" in kinds and kinds <= set(train["kind"]) | {
        "depthwise_conv_2d_nhwc_hwc"}
    m = MlirTextCostModel(seed=0, d_model=16, heads=2, layers=1, ffn=32, epochs=2, patience=2,
                          pretrain=64, pretrain_epochs=1).fit(train, unlabeled=extra)
    assert "depthwise" in m.tokenizer.vocab
    assert not m.predict(test).ood.any()
    dw = emit(KernelSpec("depthwise_conv_2d_nhwc_hwc", (1, 5, 7, 8, 3, 3))).mlir
    assert m.predict([dw]).ood.tolist() == [True]
