"""The residual MLIR text model: fitted roofline × exp(the text model's correction)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlsysgym.costmodels.metrics import kendall_tau
from mlsysgym.costmodels.mlir_text import (
    RATIO,
    MlirTextError,
    ResidualTextModel,
    RooflineModel,
    apply_correction,
    residual_ratio,
)
from mlsysgym.ir.mlir_emit import KernelSpec, emit

SMALL = {"d_model": 16, "heads": 2, "layers": 1, "ffn": 32, "epochs": 2, "patience": 2}


def _kernels(n: int, seed: int) -> pd.DataFrame:
    """Matmul kernels with a runtime the roofline cannot express: 2 µs + MACs / 500 +
    bytes / 2000 (a sum, not a max) times 1.5 when N is a multiple of 64."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        spec = KernelSpec("matmul", tuple(int(2 ** rng.integers(3, 9)) for _ in range(3)))
        read, written = spec.bytes()
        rt = (2.0 + spec.macs / 500.0 + (read + written) / 2000.0) \
            * (1.5 if spec.shape[1] % 64 == 0 else 1.0)
        rows.append({"mlir": emit(spec).mlir, "kind": "matmul", "op": "",
                     "shape": "x".join(map(str, spec.shape)), "macs": spec.macs,
                     "flops": 2 * spec.macs, "bytes_read": read, "bytes_written": written,
                     "runtime_us": rt})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted() -> tuple[ResidualTextModel, pd.DataFrame]:
    return ResidualTextModel(seed=0, **SMALL).fit(_kernels(60, 0)), _kernels(30, 1)


def test_ratio_and_inverse_by_hand() -> None:
    # roofline: t0 = 1 µs, peak 100 FLOP/µs, bandwidth 50 B/µs
    roof = RooflineModel(peak=100.0, bandwidth=50.0, t0=1.0)
    frame = pd.DataFrame({"flops": [1000.0, 200.0, 5000.0], "bytes_read": [60.0, 600.0, 300.0],
                          "bytes_written": [40.0, 400.0, 200.0], "runtime_us": [22.0, 21.0, 25.5]})
    est = roof.predict(frame).values["runtime_us"]
    # 1 + max(10, 2) = 11; 1 + max(2, 20) = 21; 1 + max(50, 10) = 51
    np.testing.assert_allclose(est, [11.0, 21.0, 51.0])
    ratio = residual_ratio(frame["runtime_us"], est)
    np.testing.assert_allclose(ratio, [2.0, 1.0, 0.5])
    np.testing.assert_allclose(np.log(ratio), [math.log(2.0), 0.0, -math.log(2.0)])
    np.testing.assert_allclose(apply_correction(est, np.log(ratio)), [22.0, 21.0, 25.5])
    with pytest.raises(MlirTextError, match="positive"):
        residual_ratio([1.0, -2.0], [1.0, 1.0])


def test_zero_output_reproduces_the_roofline_ranking(
        fitted: tuple[ResidualTextModel, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    model, test = fitted
    # a network that outputs 0 (the standardized log ratio) predicts the training rows' mean
    # log ratio for every kernel: the roofline times one constant
    monkeypatch.setattr(model.text, "_raw_predict",
                        lambda x: np.zeros((len(x.tokens), model.text.members)))
    roof = model.roofline.predict(test).values["runtime_us"]
    pred = model.predict(test).values["runtime_us"]
    np.testing.assert_allclose(pred, roof * math.exp(model.text.targets[0].mean), rtol=1e-12)
    y = test["runtime_us"].to_numpy()
    assert kendall_tau(y, pred) == kendall_tau(y, roof)
    assert (np.argsort(pred, kind="stable") == np.argsort(roof, kind="stable")).all()


def test_fit_trains_the_text_model_on_the_log_ratio(
        fitted: tuple[ResidualTextModel, pd.DataFrame]) -> None:
    model, _ = fitted
    train = _kernels(60, 0)
    roof = model.roofline.predict(train).values["runtime_us"]
    lr = np.log(train["runtime_us"].to_numpy() / roof)
    spec = model.text.targets[0]
    assert spec.name == RATIO and spec.transform == "log"
    assert spec.mean == pytest.approx(lr.mean()) and spec.std == pytest.approx(lr.std())


def test_save_load_round_trip(fitted: tuple[ResidualTextModel, pd.DataFrame],
                              tmp_path: Path) -> None:
    model, test = fitted
    model.save(tmp_path / "m")
    loaded = ResidualTextModel.load(tmp_path / "m")
    assert loaded.roofline == model.roofline
    np.testing.assert_allclose(loaded.predict(test).values["runtime_us"],
                               model.predict(test).values["runtime_us"], rtol=1e-4)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(MlirTextError, match="bytes_read"):
        ResidualTextModel(**SMALL).fit(_kernels(10, 0).drop(columns=["bytes_read"]))
    with pytest.raises(MlirTextError, match="one target"):
        ResidualTextModel(**SMALL).fit(_kernels(10, 0), targets=["runtime_us", "flops"])
    with pytest.raises(MlirTextError, match=r"roofline\.json"):
        ResidualTextModel.load(tmp_path)
