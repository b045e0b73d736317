"""ONNX export of trained models, written for this project (no converter package needed).

- :func:`lightgbm_to_onnx`: LightGBM boosters (one per target, optionally several ensemble
  members) → one ``ai.onnx.ml.TreeEnsembleRegressor`` node reading the features as float64,
  so split thresholds compare exactly as LightGBM compares them (thresholds stored as a
  double tensor, ai.onnx.ml opset 3).
- :func:`torch_to_onnx`: a torch module through ``torch.onnx.export(dynamo=True)`` with a
  dynamic batch dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["ExportError", "lightgbm_to_onnx", "torch_to_onnx"]

IR_VERSION = 10      # ONNX Runtime 1.31 reads IR versions up to 13
ONNX_OPSET = 18
ML_OPSET = 3


class ExportError(MlsysgymError):
    """A trained model uses a feature this exporter does not translate to ONNX."""


def _walk(node: dict[str, Any], tree_id: int, target: int, out: dict[str, list[Any]]) -> int:
    """Append the nodes of one LightGBM tree (dump_model format) in pre-order; returns the id."""
    nid = len(out["_ids"][tree_id]) if tree_id in out["_ids"] else 0
    out["_ids"].setdefault(tree_id, []).append(nid)
    out["treeids"].append(tree_id)
    out["nodeids"].append(nid)
    pos = len(out["modes"])
    if "leaf_value" in node or "split_feature" not in node:
        out["featureids"].append(0)
        out["modes"].append("LEAF")
        out["values"].append(0.0)
        out["true"].append(0)
        out["false"].append(0)
        out["missing"].append(0)
        out["t_treeids"].append(tree_id)
        out["t_nodeids"].append(nid)
        out["t_ids"].append(target)
        out["t_weights"].append(float(node.get("leaf_value", 0.0)))
        return nid
    if node.get("decision_type", "<=") != "<=":
        raise ExportError(f"LightGBM split {node.get('decision_type')!r} (categorical) is not "
                          f"exported; one-hot categorical features instead")
    if node.get("missing_type", "None") == "Zero":
        raise ExportError("LightGBM zero_as_missing splits are not exported; train with "
                          "zero_as_missing=False")
    out["featureids"].append(int(node["split_feature"]))
    out["modes"].append("BRANCH_LEQ")
    out["values"].append(float(node["threshold"]))
    out["true"].append(-1)
    out["false"].append(-1)
    out["missing"].append(int(bool(node.get("default_left", True))
                              and node.get("missing_type") == "NaN"))
    left = _walk(node["left_child"], tree_id, target, out)
    right = _walk(node["right_child"], tree_id, target, out)
    out["true"][pos] = left
    out["false"][pos] = right
    return nid


def lightgbm_to_onnx(boosters: Sequence[Any], n_inputs: int, n_targets: int) -> bytes:
    """Serialized ONNX model ``X`` (n, n_inputs) float64 → ``Y`` (n, len(boosters)) float32.

    ``boosters[i]`` (a ``lightgbm.Booster`` or its ``dump_model()`` dict) predicts output column
    ``i``; ``n_targets`` is only checked against it (members × targets = len(boosters)).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out: dict[str, Any] = {k: [] for k in ("treeids", "nodeids", "featureids", "modes", "values",
                                           "true", "false", "missing", "t_treeids", "t_nodeids",
                                           "t_ids", "t_weights")}
    out["_ids"] = {}
    tree_id = 0
    for col, b in enumerate(boosters):
        dump = b if isinstance(b, dict) else b.dump_model()
        if dump.get("num_class", 1) != 1:
            raise ExportError("only single-output LightGBM regressors are exported")
        for tree in dump["tree_info"]:
            _walk(tree["tree_structure"], tree_id, col, out)
            tree_id += 1
    if len(boosters) % max(n_targets, 1):
        raise ExportError(f"{len(boosters)} boosters is not a multiple of {n_targets} targets")
    node = helper.make_node(
        "TreeEnsembleRegressor", ["X"], ["Y"], domain="ai.onnx.ml",
        n_targets=len(boosters), aggregate_function="SUM", post_transform="NONE",
        nodes_treeids=out["treeids"], nodes_nodeids=out["nodeids"],
        nodes_featureids=out["featureids"], nodes_modes=out["modes"],
        nodes_truenodeids=out["true"], nodes_falsenodeids=out["false"],
        nodes_missing_value_tracks_true=out["missing"],
        nodes_values_as_tensor=numpy_helper.from_array(np.asarray(out["values"], np.float64)),
        target_treeids=out["t_treeids"], target_nodeids=out["t_nodeids"], target_ids=out["t_ids"],
        target_weights_as_tensor=numpy_helper.from_array(np.asarray(out["t_weights"], np.float64)),
        base_values_as_tensor=numpy_helper.from_array(np.zeros(len(boosters), np.float64)))
    graph = helper.make_graph(
        [node], "lightgbm_cost_model",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, n_inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, len(boosters)])])
    model = helper.make_model(graph, ir_version=IR_VERSION, producer_name="mlsysgym",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                             helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def torch_to_onnx(module: Any, n_inputs: int) -> bytes:
    """Serialized ONNX model of ``module`` (float32 ``X`` (batch, n_inputs) → ``Y``), batch dynamic."""
    import contextlib
    import io
    import warnings

    import torch

    module = module.eval()
    example = (torch.zeros(2, n_inputs, dtype=torch.float32),)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True, input_names=["X"],
                                    output_names=["Y"], dynamic_shapes=({0: batch},),
                                    verbose=False)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, IR_VERSION)
    return proto.SerializeToString()
