"""Cost models: metrics, fit → save → load (ONNX Runtime), OOD guard, schema errors, surrogate."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.costmodels import metrics as M
from mlsysgym.costmodels.base import CostModel, ModelFileError, NotFittedError
from mlsysgym.costmodels.features import SchemaMismatchError

ENV_TARGETS = ["latency_ms", "energy_uj", "area_mm2", "power_mw", "utilization"]


# ---- metrics --------------------------------------------------------------------------------
def test_metrics_hand_computed():
    y = np.array([1.0, 2.0, 4.0])
    p = np.array([1.0, 3.0, 3.0])
    assert M.rmse(y, p) == pytest.approx(math.sqrt(2 / 3))
    assert M.nrmse_pct(y, p) == pytest.approx(100 * math.sqrt(2 / 3) / (7 / 3))
    assert M.rms_rel_pct(y, p) == pytest.approx(100 * math.sqrt((0 + 0.25 + 1 / 16) / 3))
    assert M.mape_pct(y, p) == pytest.approx(100 * (0 + 0.5 + 0.25) / 3)
    # SS_tot = (1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2 = 14/3; SS_res = 2
    assert M.r2(y, p) == pytest.approx(1 - 2 / (14 / 3))
    # pairs (y order / p order): (1,2): + / + ; (1,4): + / + ; (2,4): + / tie -> 2.5 of 3
    assert M.pairwise_accuracy(y, p) == pytest.approx(2.5 / 3)
    # tau-b: concordant 2, discordant 0, ties in p 1 -> 2 / sqrt(3 * 2)
    assert M.kendall_tau(y, p) == pytest.approx(2 / math.sqrt(6))
    # top-1: model picks index 0 (p = 1) whose true value 1 is the best
    assert M.top_k_score(y, p, 1) == 1.0
    y2, p2 = np.array([1.0, 2.0, 4.0]), np.array([5.0, 1.0, 2.0])
    assert M.top_k_score(y2, p2, 1) == pytest.approx(0.5)    # picks y=2, best is 1
    assert M.top_k_ratio(y2, p2, 1) == pytest.approx(2.0)
    assert M.top_k_score(y2, p2, 3) == 1.0
    assert M.by_group(y, p, ["a", "a", "b"], "mape_pct") == pytest.approx({"a": 25.0, "b": 25.0})


def test_tau_difference_paired_bootstrap():
    y = np.arange(1.0, 41.0)
    perfect, reversed_ = y.copy(), -y
    d = M.tau_difference(y, perfect, reversed_, n_boot=50)
    assert d["diff"] == pytest.approx(2.0)                # τ = 1 vs τ = −1
    assert d["lo"] == pytest.approx(2.0) and d["share_a_better"] == 1.0
    same = M.tau_difference(y, perfect, perfect, n_boot=50)
    assert same["diff"] == same["lo"] == same["hi"] == 0.0 and same["share_a_better"] == 0.0


def test_metrics_reject_bad_input():
    with pytest.raises(M.MetricInputError):
        M.rmse([1.0, 2.0], [1.0])
    with pytest.raises(M.MetricInputError):
        M.mape_pct([], [])


# ---- a small accelerator dataset and model ---------------------------------------------------
@pytest.fixture(scope="module")
def accel_frame() -> pd.DataFrame:
    from mlsysgym.envs.accelerator_env import accelerator_space
    from mlsysgym.simulators.accelerator import AcceleratorSimulator

    space = accelerator_space()
    designs = space.sample(0, 400)
    m = AcceleratorSimulator().evaluate(designs, "resnet18", cache=False)
    frame = pd.DataFrame(designs)
    for k, v in m.items():
        frame[k] = v
    frame["workload_id"] = "resnet18"
    frame.attrs["design_columns"] = space.names
    return frame


@pytest.fixture(scope="module")
def lgbm_dir(accel_frame, tmp_path_factory):
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    model = LightGBMCostModel(members=2, n_estimators=60, num_leaves=15)
    model.fit(accel_frame.iloc[:320], accel_frame.attrs["design_columns"], ENV_TARGETS)
    d = tmp_path_factory.mktemp("lgbm")
    model.save(d)
    return model, d


def _check_roundtrip(model, directory, frame):
    loaded = CostModel.load(directory)
    a, b = model.predict(frame), loaded.predict(frame)
    for t in a.values:
        np.testing.assert_allclose(b.values[t], a.values[t], rtol=1e-5)
        if a.std is not None:
            # the spread is a small difference of members: compare it on the value's scale
            assert np.all(np.abs(b.std[t] - a.std[t]) <= 1e-5 * np.abs(a.values[t]))
    np.testing.assert_array_equal(a.ood, b.ood)
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["training"]["data_hash"] and meta["validation"]
    assert {t["name"] for t in meta["targets"]} == set(a.values)
    from mlsysgym.core.target import fingerprint

    fp = fingerprint()  # where it was saved: this machine, this checkout
    assert meta["provenance"]["fingerprint"]["target_id"] == fp["target_id"]
    assert meta["provenance"]["fingerprint"]["software"]["commit"] == fp["software"]["commit"]
    assert meta["provenance"]["evaluator_id"] == model.id
    return loaded


def test_lightgbm_fit_save_load_matches(lgbm_dir, accel_frame):
    model, d = lgbm_dir
    loaded = _check_roundtrip(model, d, accel_frame.iloc[320:])
    meta = loaded.meta
    assert meta["kind"] == "lightgbm" and meta["members"] == 2
    assert meta["targets"][0]["transform"] == "log"
    assert meta["targets"][0]["unit"] == "ms"
    assert all("low" in f and "high" in f for f in meta["schema"]["features"])
    pred = loaded.predict(accel_frame.iloc[320:])
    assert set(pred.std) == set(ENV_TARGETS) and (pred.std["latency_ms"] >= 0).all()
    assert M.r2(np.log(accel_frame["latency_ms"].iloc[320:]), np.log(pred.values["latency_ms"])) > 0.5


@pytest.mark.slow
def test_mlp_fit_save_load_matches(accel_frame, tmp_path):
    import torch
    from mlsysgym.costmodels.tabular import MLPCostModel

    torch.set_num_threads(1)
    model = MLPCostModel(members=2, epochs=3, hidden=16, layers=2)
    model.fit(accel_frame.iloc[:320], accel_frame.attrs["design_columns"], ["latency_ms", "energy_uj"])
    model.save(tmp_path)
    _check_roundtrip(model, tmp_path, accel_frame.iloc[320:])


def test_inference_imports_neither_torch_nor_lightgbm(lgbm_dir):
    _, d = lgbm_dir
    code = f"""
import sys
from mlsysgym.costmodels.base import CostModel
m = CostModel.load({str(d)!r})
p = m.predict([{{"rows": 16, "cols": 32, "dataflow": "ws", "ifmap_kb": 64, "filter_kb": 64,
                "ofmap_kb": 64, "bandwidth": 8, "word_bytes": 1}}])
assert p.values["latency_ms"][0] > 0
bad = [m for m in ("torch", "lightgbm") if m in sys.modules]
print("LOADED:" + ",".join(bad))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "LOADED:\n" in out.stdout or out.stdout.strip().endswith("LOADED:"), out.stdout


def test_ood_flag(lgbm_dir):
    _, d = lgbm_dir
    m = CostModel.load(d)
    base = {"rows": 16, "cols": 32, "dataflow": "ws", "ifmap_kb": 64, "filter_kb": 64,
            "ofmap_kb": 64, "bandwidth": 8, "word_bytes": 1}
    designs = [base, {**base, "rows": 4096}, {**base, "bandwidth": 0.01},
               {**base, "dataflow": "rs"}, {**base, "word_bytes": 4}]
    pred = m.predict(designs)
    assert pred.ood.tolist() == [False, True, True, True, True]
    assert pred.to_frame()["ood"].tolist() == [False, True, True, True, True]
    # an unseen workload is out of distribution for a model trained on one workload
    assert m.evaluate([base], "alexnet")["ood"][0] == 1.0
    assert m.evaluate([base], "resnet18")["ood"][0] == 0.0


def test_schema_mismatch_is_one_line_typed_error(lgbm_dir):
    _, d = lgbm_dir
    m = CostModel.load(d)
    with pytest.raises(SchemaMismatchError, match="lack feature") as e:
        m.predict([{"rows": 16, "cols": 32}])
    assert isinstance(e.value, MlsysgymError) and "\n" not in str(e.value)
    full = {"rows": 16, "cols": 32, "dataflow": "ws", "ifmap_kb": 64, "filter_kb": 64,
            "ofmap_kb": 64, "bandwidth": 8, "word_bytes": 1}
    with pytest.raises(SchemaMismatchError, match="not trained on"):
        m.predict([{**full, "clock_ghz": 1.0}], strict=True)
    with pytest.raises(SchemaMismatchError, match="must be numeric"):
        m.predict([{**full, "rows": "many"}])
    with pytest.raises(ModelFileError):
        CostModel.load(d / "nope")


def test_unfitted_model_errors():
    from mlsysgym.costmodels.tabular import LightGBMCostModel

    with pytest.raises(NotFittedError):
        LightGBMCostModel().predict([{"rows": 1}])
    with pytest.raises(MlsysgymError, match="unknown LightGBM"):
        LightGBMCostModel(depth=3)


def test_surrogate_plugs_into_accelerator_env(lgbm_dir):
    from mlsysgym.costmodels import CostModel
    from mlsysgym.costmodels.surrogate import UnknownEvaluatorError, resolve_evaluator
    from mlsysgym.envs.accelerator_env import AcceleratorEnv

    model, d = lgbm_dir
    ev = resolve_evaluator(f"surrogate:{d}")
    assert isinstance(ev, CostModel)  # the loaded model is the Evaluator: one cache, no wrapper
    assert ev.id == f"{model.name}@{model.version}" and len(model.version) == 12
    env = AcceleratorEnv("resnet18", evaluator=ev)
    obs, _ = env.reset(seed=0)
    obs, reward, _terminated, _truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert info["evaluator_id"] == ev.id and info["metrics"]["latency_ms"] > 0
    assert "ood" in info["metrics"]
    assert resolve_evaluator(None) is None and resolve_evaluator(ev) is ev
    with pytest.raises(UnknownEvaluatorError):
        resolve_evaluator("surrogate:/no/such/dir")
    with pytest.raises(UnknownEvaluatorError):
        resolve_evaluator("spice")


def test_lightgbm_onnx_export_of_hand_built_tree():
    import onnxruntime as ort
    from mlsysgym.costmodels.onnx_export import lightgbm_to_onnx

    tree = {"tree_structure": {"split_feature": 1, "threshold": 0.5, "decision_type": "<=",
                               "default_left": True, "missing_type": "None",
                               "left_child": {"leaf_value": -1.0},
                               "right_child": {"split_feature": 0, "threshold": 2.0,
                                               "decision_type": "<=", "missing_type": "None",
                                               "left_child": {"leaf_value": 2.0},
                                               "right_child": {"leaf_value": 3.0}}}}
    dump = {"num_class": 1, "tree_info": [tree, {"tree_structure": {"leaf_value": 0.25}}]}
    sess = ort.InferenceSession(lightgbm_to_onnx([dump], 2, 1))
    x = np.array([[0.0, 0.0], [2.0, 0.5000001], [2.5, 1.0]])
    np.testing.assert_allclose(sess.run(None, {"X": x})[0][:, 0], [-0.75, 2.25, 3.25], rtol=1e-6)


def _cli(argv):
    import argparse

    from mlsysgym.commands import costmodel_cmds

    parser = argparse.ArgumentParser()
    top = parser.add_subparsers(dest="command")
    groups = {}

    def group(name):
        if name not in groups:
            groups[name] = top.add_parser(name).add_subparsers(dest="sub", required=True)
        return groups[name]

    costmodel_cmds.register(group)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_costmodel_cli(accel_frame, tmp_path, capsys):
    from mlsysgym.core.dataset import ParquetAppender

    data = tmp_path / "data"
    with ParquetAppender(data, flush_every=10_000, part_rows=10_000) as w:
        w.append(accel_frame.to_dict("records"), accel_frame.attrs["design_columns"], ENV_TARGETS)
    out = tmp_path / "model"
    assert _cli(["costmodel", "train", "--data", str(data), "--out", str(out), "--targets",
                 "latency_ms,energy_uj", "--report", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "pred_vs_true_latency_ms.png").is_file()
    assert (tmp_path / "rep" / "error_by_workload_id_latency_ms.png").is_file()
    capsys.readouterr()
    design = json.dumps({"rows": 16, "cols": 32, "dataflow": "ws", "ifmap_kb": 64, "filter_kb": 64,
                         "ofmap_kb": 64, "bandwidth": 8, "word_bytes": 1})
    assert _cli(["costmodel", "predict", "--model", str(out), "--design", design]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["latency_ms"] > 0 and row["ood"] is False


def test_report_metrics_record_provenance(lgbm_dir, accel_frame, tmp_path):
    from mlsysgym.core.target import fingerprint
    from mlsysgym.costmodels.report import write_report

    model, _ = lgbm_dir
    write_report(model, accel_frame.iloc[320:360], tmp_path, title="t")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["provenance"]["fingerprint"]["target_id"] == fingerprint()["target_id"]
    assert saved["provenance"]["evaluator_id"] == model.id and saved["rows"] == 40


def test_graph_cost_model_is_an_evaluator_for_its_one_design():
    from mlsysgym.core.evaluator import EvaluationError, Evaluator
    from mlsysgym.costmodels.graph_model import GraphCostModel, build_graph_dataset
    from mlsysgym.ir import zoo

    data = build_graph_dataset(["alexnet"], windows_per_model=6, seed=0)
    model = GraphCostModel(hidden=16, rounds=1, epochs=5).fit(data.graphs, vocab=data.vocab,
                                                               design=data.design)
    assert isinstance(model, Evaluator) and model.id == "graph-costmodel@h16r1e5s0"
    graph = zoo.load("alexnet")
    out = model.evaluate([data.design, data.design], graph)
    expected = model.predict([g for g in data.graphs if g.name == "alexnet"])[0]
    assert out["latency_ms"] == pytest.approx([expected, expected], rel=1e-5)
    with pytest.raises(EvaluationError, match="one design only"):
        model.evaluate([{**data.design, "rows": 7}], graph)
