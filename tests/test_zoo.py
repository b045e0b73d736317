"""The model zoo: every model loads, is graph-only, fully costed, and matches published MACs."""

from __future__ import annotations

import math
import time
from functools import cache

import onnx
import pytest
from mlsysgym.ir import ConvNest, Graph, MatmulNest, WorkloadNotFoundError, zoo

NAMES = zoo.names()

# Published MAC counts (one MAC = one multiply-add), tolerance 5%.
PUBLISHED_MACS = {
    "resnet50": 4.1e9,  # ResNet-50 at 224x224 (torchvision v1.5: 4.09 G)
    "resnet18": 1.8e9,  # ResNet-18 at 224x224 (torchvision: 1.81 G)
    "mobilenetv2": 0.30e9,  # MobileNetV2 1.0 at 224 (paper: 300 M multiply-adds)
    "vit_b16": 17.6e9,  # ViT-B/16 at 224 (DeiT-B: 17.6 G)
    "bert_base": 11.2e9,  # BERT-base, sequence 128
    "convnext_tiny": 4.5e9,  # ConvNeXt-T at 224 (paper: 4.5 G)
    "swin_tiny": 4.5e9,  # Swin-T at 224 (paper: 4.5 G)
    "efficientnet_b0": 0.39e9,  # EfficientNet-B0 at 224 (paper: 0.39 G)
}


@cache
def graph(name: str) -> Graph:
    return zoo.load(name)


def test_zoo_has_at_least_ten_models() -> None:
    assert len(NAMES) >= 10
    for expected in ("resnet18", "mobilenetv2", "alexnet", "resnet50", "vit_b16", "bert_base",
                     "gpt2", "tinyllama_1b", "t5_small_encoder", "whisper_tiny_encoder"):
        assert expected in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_model_loads_fully_costed(name: str) -> None:
    g = graph(name)
    assert g.name == name and g.ops
    assert g.estimated_ops == [], sorted({op.op_type for op in g.estimated_ops})
    assert all(t.shape is not None for t in g.tensors.values())
    totals = g.totals()
    assert totals.macs > 0 and totals.params > 0 and totals.estimated_ops == 0


@pytest.mark.parametrize("name", NAMES)
def test_file_is_graph_only_and_small(name: str) -> None:
    p = zoo.path(name)
    assert p.stat().st_size < 2 * 1024 * 1024
    model = onnx.load(str(p), load_external_data=False)
    for init in model.graph.initializer:
        if math.prod(init.dims) > 4096:
            assert init.data_location == onnx.TensorProto.EXTERNAL and not init.raw_data, init.name


@pytest.mark.parametrize("name", NAMES)
def test_provenance(name: str) -> None:
    prov = zoo.provenance(name)
    assert prov["name"] == name
    assert prov["source"]["package"] in ("zigzag-dse", "transformers")
    assert prov["source"]["package_version"]
    assert prov["inputs"] and all(i["shape"] for i in prov["inputs"])
    assert prov["environment"]["onnx"]
    g = graph(name)
    assert prov["totals"]["macs"] == g.totals().macs  # the file and its record agree
    assert [i["name"] for i in prov["inputs"]] == list(g.inputs)
    if prov["source"]["package"] == "transformers":
        assert prov["source"]["model_class"].startswith("transformers.")
        assert prov["source"]["config"] and prov["environment"]["torch"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_macs_match_published(name: str) -> None:
    if name not in NAMES:
        pytest.skip(f"{name} not in the zoo")
    macs = graph(name).totals().macs
    assert macs == pytest.approx(PUBLISHED_MACS[name], rel=0.05)


def test_alexnet_is_caffe_variant_at_224() -> None:
    """ZigZag's AlexNet is the grouped Caffe network at 224x224: 0.655 G, not the quoted 0.72 G."""
    def conv(k: int, c: int, groups: int, out: int, kernel: int) -> int:
        return k * (c // groups) * kernel * kernel * out * out

    by_hand = (conv(96, 3, 1, 54, 11) + conv(256, 96, 2, 26, 5) + conv(384, 256, 1, 12, 3)
               + conv(384, 384, 2, 12, 3) + conv(256, 384, 2, 12, 3)
               + 9216 * 4096 + 4096 * 4096 + 4096 * 1000)
    g = graph("alexnet")
    assert g.totals().macs == by_hand == 654_560_384
    first = next(op.loop_nest for op in g.ops if op.op_type == "Conv")
    assert first == ConvNest(n=1, k=96, c=3, p=54, q=54, r=11, s=11, stride_h=4, stride_w=4)
    assert "227" in zoo.provenance("alexnet")["notes"]


def test_loop_nests_look_right() -> None:
    stem = next(op.loop_nest for op in graph("resnet50").ops if op.op_type == "Conv")
    assert stem == ConvNest(n=1, k=64, c=3, p=112, q=112, r=7, s=7, stride_h=2, stride_w=2)
    depthwise = [op.loop_nest for op in graph("mobilenetv2").ops
                 if isinstance(op.loop_nest, ConvNest) and op.loop_nest.is_depthwise]
    assert len(depthwise) == 17
    nests = {op.loop_nest for op in graph("bert_base").ops if isinstance(op.loop_nest, MatmulNest)}
    assert MatmulNest(batch=1, m=128, n=3072, k=768) in {
        MatmulNest(1, n.batch * n.m, n.n, n.k) for n in nests}  # FFN up-projection
    assert any(n.m == 128 and n.n == 128 and n.k == 64 and n.batch == 12 for n in nests)  # Q Kᵀ


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(WorkloadNotFoundError, match="resnet50") as info:
        zoo.load("resnet5")
    assert "\n" not in str(info.value)
    with pytest.raises(WorkloadNotFoundError):
        zoo.provenance("no_such_model")


def test_resolve_name_and_path(tmp_path) -> None:
    assert zoo.resolve("ResNet18").totals().macs == graph("resnet18").totals().macs
    assert zoo.resolve(zoo.path("alexnet")).totals().macs == 654_560_384
    assert zoo.resolve(str(zoo.path("alexnet"))).name == "alexnet"
    with pytest.raises(WorkloadNotFoundError):
        zoo.resolve(tmp_path / "missing.onnx")
    with pytest.raises(WorkloadNotFoundError):
        zoo.resolve("resnet_fifty")


def test_resnet50_load_and_analysis_is_fast() -> None:
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        g = zoo.load("resnet50")
        g.totals()
        g.live_ranges()
        best = min(best, time.perf_counter() - start)
    assert best < 0.5
