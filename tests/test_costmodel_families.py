"""Family-held-out splits of kernel frames and the bootstrap helpers of costmodels.metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from benchmark_scripts import load_script
from mlsysgym.costmodels.families import (
    FAMILIES,
    FamilyError,
    family_column,
    family_of,
    family_splits,
)
from mlsysgym.costmodels.metrics import MetricInputError, mean_interval, tau_interval

DESIGN = ("kind", "shape")


def _frame() -> pd.DataFrame:
    # resnet18 and vit_b16 share the matmul 8x8x8 (a shape two families measure)
    return pd.DataFrame({
        "workload_id": ["resnet18", "resnet18", "vit_b16", "vit_b16", "gpt2", "whisper_tiny_encoder"],
        "kind": ["conv", "matmul", "matmul", "batch_matmul", "matmul", "reduction"],
        "shape": ["1x8x8x8", "8x8x8", "8x8x8", "12x8x8x8", "4x4x4", "8x8"]})


def test_every_zoo_model_has_exactly_one_family() -> None:
    from mlsysgym.ir import zoo

    listed = [m for models in FAMILIES.values() for m in models]
    assert len(listed) == len(set(listed))
    assert {family_of(m) for m in zoo.names()} <= set(FAMILIES)
    assert family_of("perturbed:swin_tiny") == family_of("zoo:vit_b16") == "vision_transformer"


def test_unknown_model_is_a_one_line_error() -> None:
    with pytest.raises(FamilyError, match="'lenet' has no family"):
        family_of("zoo:lenet")
    with pytest.raises(FamilyError, match="no 'workload_id' column"):
        family_column(pd.DataFrame({"kind": ["matmul"]}))


def test_no_family_is_in_both_train_and_test() -> None:
    f = _frame()
    fam = family_column(f)
    splits = list(family_splits(f, DESIGN))
    assert [s.family for s in splits] == ["cnn", "vision_transformer", "decoder", "audio"]
    for s in splits:
        assert set(fam[s.test]) == {s.family}
        assert s.family not in set(fam[s.train])
        assert set(s.train) | set(s.test) | _dropped(f, s) == set(range(len(f)))
    cnn, vit = splits[0], splits[1]
    # holding out the CNNs drops vit_b16's 8x8x8 matmul from training (same design as row 1)
    assert cnn.test.tolist() == [0, 1] and cnn.train.tolist() == [3, 4, 5]
    assert cnn.dropped_duplicates == 1
    assert vit.test.tolist() == [2, 3] and vit.train.tolist() == [0, 4, 5]
    assert vit.dropped_duplicates == 1


def _dropped(f: pd.DataFrame, s) -> set[int]:
    keys = f["kind"] + "|" + f["shape"]
    return {i for i in range(len(f)) if i not in set(s.test) and keys[i] in set(keys[s.test])}


def test_unknown_or_empty_family_is_refused() -> None:
    with pytest.raises(FamilyError, match="unknown family"):
        list(family_splits(_frame(), DESIGN, ["rnn"]))
    with pytest.raises(FamilyError, match="no rows of family 'text_encoder'"):
        list(family_splits(_frame(), DESIGN, ["text_encoder"]))
    with pytest.raises(FamilyError, match="design column"):
        list(family_splits(_frame(), ("kind", "dtype")))


def test_tau_interval_hand_case() -> None:
    # one discordant pair (3, 4) of six: τ = (5 - 1) / 6
    r = tau_interval([1, 2, 3, 4], [1, 2, 4, 3], n_boot=300)
    assert r["tau"] == pytest.approx(4 / 6)
    assert -1.0 <= r["lo"] <= r["tau"] <= r["hi"] <= 1.0
    # a monotone prediction ranks every resample perfectly (single-value resamples are NaN, skipped)
    r = tau_interval([1.0, 5.0, 2.0, 9.0, 3.0], [10, 50, 20, 90, 30], n_boot=200)
    assert [r["tau"], r["lo"], r["hi"]] == pytest.approx([1.0, 1.0, 1.0])


def test_mean_interval_hand_case() -> None:
    # two units 0 and 1: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5th and 97.5th percentiles are 0 and 1
    r = mean_interval([0.0, 1.0, np.nan], n_boot=4000, seed=1)
    assert (r["mean"], r["lo"], r["hi"], r["n"]) == (0.5, 0.0, 1.0, 2.0)
    r = mean_interval([0.3, 0.3, 0.3])
    assert r["lo"] == pytest.approx(0.3) and r["hi"] == pytest.approx(0.3)
    with pytest.raises(MetricInputError, match="no finite values"):
        mean_interval([np.nan])


def test_tile_terms_and_per_shape_tau_on_a_hand_case() -> None:
    b = load_script("bench_costmodel_families.py")
    one = np.ones(2)
    # m = n = k = 10, 16 lanes, 32 registers: v_m = 4 pads M to 12 (x1.2), v_n = 8 pads N to 16
    # (x1.6) and uses half of the 16 lanes, r_k = 5 divides K; d_m = d_n = 5 gives 2 x 2 tiles
    t = b._terms(10 * one, 10 * one, 10 * one, 1000 * one, 16 * one, 32 * one,
                 {"v_m": 4 * one, "v_n": 8 * one, "r_k": 5 * one, "d_m": 5 * one, "d_n": 5 * one})
    assert t["padded"] == pytest.approx(1000 * 1.2 * 1.6 * one)
    assert t["compute"] == pytest.approx(1000 * 1.2 * 1.6 * 2 * one)
    assert t["traffic"] == pytest.approx(1000 * (1 / 5 + 1 / 5) * one)
    assert t["tiles"] == pytest.approx(4 * one)
    assert t["spill"] == pytest.approx(0 * one)  # 4 x 1 accumulators of 32 registers
    rows = pd.DataFrame({"target_id": "t", "problem_key": ["a"] * 4 + ["b"] * 2, "family": "cnn",
                         "runtime_ratio": [1.0, 0.5, 2.0, 1.5, 1.0, 0.9],
                         "pred_m": [1.0, 0.6, 1.8, 2.0, 1.0, 0.8]})
    shapes = b.per_shape(rows, ("m",))
    assert len(shapes) == 1  # shape b has only two candidates
    # predicted order 0.6 < 1.0 < 1.8 < 2.0 vs measured 0.5 < 1.0 < 2.0 > 1.5: one discordant pair
    assert shapes["m"].iloc[0] == pytest.approx(4 / 6)
    assert shapes["top1_m"].iloc[0] == 1.0


def test_remeasured_scores_the_same_predictions_against_another_machines_runtimes() -> None:
    b = load_script("bench_costmodel_families.py")
    pred = pd.DataFrame({"part": ["mlir"] * 3 + ["tiling"], "key": ["k1", "k2", "k3", None],
                         "runtime_us": [1.0, 2.0, 3.0, np.nan], "pred_m": [5.0, 6.0, 7.0, 0.7]})
    elsewhere = pd.DataFrame({"key": ["k2", "k1", "k9"], "runtime_us": [20.0, 10.0, 90.0]})
    got = b.remeasured(pred, elsewhere)
    # k3 was not measured elsewhere and the tiling row was not measured there: both dropped
    assert got["key"].tolist() == ["k1", "k2"]
    assert got["runtime_us"].tolist() == [10.0, 20.0]
    assert got["pred_m"].tolist() == [5.0, 6.0]  # predictions untouched
    assert got["pred_measured_there"].tolist() == [1.0, 2.0]  # the old runtimes
    with pytest.raises(SystemExit, match="no kernel"):
        b.remeasured(pred, elsewhere.assign(key=["x", "y", "z"]))


def test_merge_predictions_keeps_every_runs_models() -> None:
    b = load_script("bench_costmodel_families.py")
    # run 1 (older): plain text model + baselines; run 2 (newer): residual + recomputed baselines
    old = pd.DataFrame({"part": "mlir", "key": ["k1", "k2", "k3"], "family": "cnn",
                        "fold": ["cnn", "cnn", "random"], "runtime_us": [1.0, 2.0, 3.0],
                        "pred_mlir_text": [1.1, 2.1, 3.1], "pred_roofline": [9.0, 9.0, 9.0]})
    new = pd.DataFrame({"part": "mlir", "key": ["k2", "k1"], "family": "cnn", "fold": "cnn",
                        "runtime_us": [2.0, 1.0], "pred_mlir_text_residual": [2.2, 1.2],
                        "pred_roofline": [2.5, 1.5]})
    tiles = pd.DataFrame({"part": "tiling", "problem_key": ["p"], "pred_tile_lightgbm": [0.7]})
    m = b.merge_predictions([old, tiles, new])
    mlir = m[m["part"] == "mlir"].set_index(["key", "fold"])
    assert len(mlir) == 3 and (m["part"] == "tiling").sum() == 1
    assert mlir.loc[("k1", "cnn"), ["pred_mlir_text", "pred_mlir_text_residual",
                                    "pred_roofline"]].tolist() == [1.1, 1.2, 1.5]
    assert mlir.loc[("k2", "cnn"), "pred_roofline"] == 2.5  # the later run's baseline
    # k3 in the random fold was predicted by the older run only
    assert mlir.loc[("k3", "random"), "pred_roofline"] == 9.0
    assert np.isnan(mlir.loc[("k3", "random"), "pred_mlir_text_residual"])
