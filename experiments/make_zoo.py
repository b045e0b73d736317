"""Regenerate the model zoo: graph-only ONNX files of real architectures plus their provenance.

Run as ``python -m mlsysgym.experiments.make_zoo [NAME ...] --out ir/zoo_models`` (default out:
``./results/zoo_models``, never the installed package). Every model comes from a
definition this project did not write:

- the ONNX workloads the ``zigzag-dse`` package ships (copied, already weight-free);
- ``transformers`` model classes built from a config with random weights (no download),
  exported with ``torch.onnx.export(..., dynamo=True, optimize=True)``, static shapes, batch 1.

Each model is written to ``<out>/<name>.onnx`` *graph-only*: every initializer
except small ones (shape constants, scalars) keeps its dims and data type but its data is
replaced by a reference to an external file that does not exist. The script checks that
``Graph.from_onnx`` gives the same shapes, MACs and FLOPs on the graph-only file as on the
full model, that every tensor shape resolves, and that shapes agree with the exporter's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from mlsysgym.core.errors import MlsysgymError
from mlsysgym.ir.graph import Graph, Role

DEFAULT_OUT = Path("results") / "zoo_models"  # the repository's own runs pass --out ir/zoo_models
WEIGHTS_LOCATION = "weights-removed.bin"  # deliberately never written: graph-only files
INLINE_MAX_ELEMENTS = 16  # any initializer this small stays inline (scalars, epsilons)
INLINE_MAX_INT_ELEMENTS = 4096  # integer tensors up to this size stay inline (shapes, indices)
MAX_FILE_BYTES = 2 * 1024 * 1024
FULL_CHECK_MAX_PARAM_BYTES = 1_500_000_000  # beyond this a full ModelProto hits protobuf's 2 GB limit
SEED = 0
KEEP_NODE_METADATA = frozenset({"namespace"})  # the exporter's module path of each node

_INTEGER_TYPES = frozenset({
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32,
    onnx.TensorProto.UINT64, onnx.TensorProto.BOOL,
})


class ZooBuildError(MlsysgymError):
    """A zoo model could not be built, or its graph-only file does not match the full model."""


# ---- what to build ------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """A published MAC count to compare against, and where it comes from."""

    macs: float
    source: str


@dataclass(frozen=True)
class ZigzagSpec:
    """A model copied from the ONNX workloads shipped by zigzag-dse."""

    name: str
    filename: str
    description: str
    reference: Reference | None = None
    notes: str = ""


@dataclass(frozen=True)
class HfSpec:
    """A transformers model class built from a config (random weights) and exported to ONNX."""

    name: str
    model_class: str  # attribute of ``transformers`` or a dotted path inside it
    config_class: str
    config: dict[str, Any]  # overrides of the config class defaults
    inputs: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, "image" | "ids" | "audio")
    description: str
    reference: Reference | None = None
    notes: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)


Spec = ZigzagSpec | HfSpec

IMAGE_224 = {"pixel_values": ((1, 3, 224, 224), "image")}
IDS_128 = {"input_ids": ((1, 128), "ids")}

SPECS: tuple[Spec, ...] = (
    ZigzagSpec("resnet18", "resnet18.onnx", "ResNet-18, ImageNet classifier, 224x224",
               Reference(1.82e9, "He et al. 2016; torchvision resnet18: 1.81 GFLOPS (MACs)")),
    ZigzagSpec("mobilenetv2", "mobilenetv2.onnx", "MobileNetV2 1.0, ImageNet classifier, 224x224",
               Reference(0.300e9, "Sandler et al. 2018, Table 4: 300M multiply-adds")),
    ZigzagSpec(
        "alexnet", "alexnet.onnx",
        "AlexNet, original grouped (2-GPU) Caffe variant (BVLC bvlc_alexnet via onnx-caffe2), "
        "fed 224x224",
        Reference(654_560_384, "hand-computed from this file's layer shapes (see notes)"),
        notes=(
            "This is the BVLC/Caffe AlexNet (conv 96-256-384-384-256, conv2/4/5 with group=2, LRN) "
            "run on a 224x224 input, not Caffe's 227x227. With 224 the 11x11/4 conv1 gives 54x54 "
            "(not 55x55), so every later feature map shrinks (26/12 instead of 27/13): 0.655 GMACs "
            "instead of the 0.724 GMACs of the same network at 227. torchvision's AlexNet "
            "(ungrouped 64-192-384-256-256, 224x224) is 0.714 GMACs. The often-quoted 0.72 G "
            "therefore does not apply to this file; it is tested against the MACs of its own "
            "layers: conv 101.6M + 207.7M + 127.4M + 95.6M + 63.7M, fc 37.7M + 16.8M + 4.1M."),
    ),
    HfSpec("resnet50", "ResNetForImageClassification", "ResNetConfig", {"num_labels": 1000},
           IMAGE_224, "ResNet-50 (v1.5), ImageNet classifier, 224x224",
           Reference(4.1e9, "He et al. 2016: 3.8 GFLOPs (v1); torchvision resnet50 v1.5: 4.09 GMACs")),
    HfSpec("convnext_tiny", "ConvNextForImageClassification", "ConvNextConfig", {"num_labels": 1000},
           IMAGE_224, "ConvNeXt-T, ImageNet classifier, 224x224",
           Reference(4.5e9, "Liu et al. 2022, Table 1: ConvNeXt-T 4.5 GFLOPs (MACs)")),
    HfSpec("vit_b16", "ViTForImageClassification", "ViTConfig", {"num_labels": 1000},
           IMAGE_224, "ViT-B/16, ImageNet classifier, 224x224",
           Reference(17.6e9, "Dosovitskiy et al. 2021 / DeiT-B: 17.6 GFLOPs (MACs) at 224")),
    HfSpec("swin_tiny", "SwinForImageClassification", "SwinConfig", {"num_labels": 1000},
           IMAGE_224, "Swin-T (window 7), ImageNet classifier, 224x224",
           Reference(4.5e9, "Liu et al. 2021, Table 1: Swin-T 4.5 GFLOPs (MACs)")),
    HfSpec("efficientnet_b0", "EfficientNetForImageClassification", "EfficientNetConfig",
           {"num_labels": 1000, "width_coefficient": 1.0, "depth_coefficient": 1.0,
            "image_size": 224, "dropout_rate": 0.2, "hidden_dim": 1280},
           IMAGE_224, "EfficientNet-B0, ImageNet classifier, 224x224",
           Reference(0.39e9, "Tan & Le 2019, Table 2: EfficientNet-B0 0.39B FLOPs (MACs)")),
    HfSpec("bert_base", "BertModel", "BertConfig", {}, IDS_128,
           "BERT-base (uncased geometry) encoder with pooler, sequence 128",
           Reference(11.2e9, "12 layers x 128 tokens x (4*768^2 + 2*768*3072) + attention")),
    HfSpec("distilbert_base", "DistilBertModel", "DistilBertConfig", {}, IDS_128,
           "DistilBERT-base encoder, sequence 128"),
    HfSpec("gpt2", "GPT2Model", "GPT2Config", {"use_cache": False}, IDS_128,
           "GPT-2 small (124M) decoder stack without LM head, sequence 128"),
    HfSpec("tinyllama_1b", "LlamaModel", "LlamaConfig",
           {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
            "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
            "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "use_cache": False},
           IDS_128,
           "Llama-style decoder with the TinyLlama-1.1B configuration (22 layers, d=2048, GQA "
           "32 query / 4 KV heads, SwiGLU 5632), without LM head, sequence 128",
           notes="Random weights; the architecture is transformers' LlamaModel with TinyLlama's "
                 "published configuration."),
    HfSpec("t5_small_encoder", "T5EncoderModel", "T5Config", {}, IDS_128,
           "T5-small encoder only (6 layers, d=512, relative position bias), sequence 128"),
    HfSpec("whisper_tiny_encoder", "models.whisper.modeling_whisper.WhisperEncoder", "WhisperConfig",
           {}, {"input_features": ((1, 80, 3000), "audio")},
           "Whisper-tiny audio encoder only (4 layers, d=384), 80 mel bins x 3000 frames (30 s)"),
)


# ---- graph-only stripping -----------------------------------------------------------------
def keep_inline(data_type: int, numel: int) -> bool:
    """Whether an initializer stays inline: scalars and small integer tensors (shapes, axes)."""
    if numel <= INLINE_MAX_ELEMENTS:
        return True
    return data_type in _INTEGER_TYPES and numel <= INLINE_MAX_INT_ELEMENTS


def weightless_tensor(name: str, dims: Sequence[int], data_type: int) -> onnx.TensorProto:
    """A TensorProto with dims and data type whose data lives in a file that does not exist."""
    t = onnx.TensorProto(name=name, dims=list(dims), data_type=data_type)
    t.data_location = onnx.TensorProto.EXTERNAL
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize if data_type else 4
    for key, value in (("location", WEIGHTS_LOCATION), ("offset", "0"),
                       ("length", str(math.prod(dims) * itemsize))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


@dataclass
class StripStats:
    """What stripping did to a model."""

    removed: int = 0
    kept_inline: int = 0
    constants_moved: int = 0


def _has_data(t: onnx.TensorProto) -> bool:
    return t.data_location != onnx.TensorProto.EXTERNAL


def _drop_debug_metadata(g: onnx.GraphProto) -> None:
    """Keep only each node's ``namespace`` (its module path); drop stack traces and FX dumps."""
    for node in g.node:
        keep = [(p.key, p.value) for p in node.metadata_props if p.key in KEEP_NODE_METADATA]
        del node.metadata_props[:]
        for key, value in keep:
            node.metadata_props.add(key=key, value=value)
    for vi in g.value_info:
        del vi.metadata_props[:]


def strip_proto(model: onnx.ModelProto) -> tuple[onnx.ModelProto, StripStats]:
    """A graph-only copy of ``model``: large initializers (and large Constant nodes) lose their data."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    stats = StripStats()
    g = out.graph
    kept_nodes = []
    for node in g.node:  # large Constant nodes become (weightless) initializers
        value = next((a.t for a in node.attribute if a.name == "value" and a.type == a.TENSOR), None)
        if node.op_type == "Constant" and not node.domain and value is not None and \
                not keep_inline(value.data_type, math.prod(value.dims)):
            t = onnx.TensorProto()
            t.CopyFrom(value)
            t.name = node.output[0]
            g.initializer.append(t)
            stats.constants_moved += 1
        else:
            kept_nodes.append(node)
    if stats.constants_moved:
        del g.node[:]
        g.node.extend(kept_nodes)
    _drop_debug_metadata(g)
    for i, init in enumerate(g.initializer):
        n = math.prod(init.dims)
        if keep_inline(init.data_type, n) and _has_data(init):
            stats.kept_inline += 1
        else:
            g.initializer[i].CopyFrom(weightless_tensor(init.name, init.dims, init.data_type))
            stats.removed += 1
    return out, stats


def strip_ir(model: Any) -> None:
    """Strip an ``onnx_ir.Model`` in place (before serializing, so huge models never hit 2 GB)."""
    import onnx_ir as ir

    for name, value in model.graph.initializers.items():
        tensor = value.const_value
        if tensor is None or keep_inline(int(tensor.dtype), tensor.size):
            continue
        value.const_value = ir.ExternalTensor(WEIGHTS_LOCATION, 0, tensor.nbytes, tensor.dtype,
                                              shape=tensor.shape, name=name)


# ---- checks -------------------------------------------------------------------------------
def check_same(full: Graph, stripped: Graph) -> None:
    """Raise unless both graphs have the same ops, costs and tensor shapes."""
    if len(full.ops) != len(stripped.ops):
        raise ZooBuildError(f"{stripped.name}: {len(stripped.ops)} ops graph-only vs {len(full.ops)} full")
    for a, b in zip(full.ops, stripped.ops):
        if (a.op_type, a.macs, a.flops, a.loop_nest) != (b.op_type, b.macs, b.flops, b.loop_nest):
            raise ZooBuildError(f"{stripped.name}: op {b.name} costs differ after stripping weights")
    for name, t in full.tensors.items():
        if name in stripped.tensors and stripped.tensors[name].shape != t.shape:
            raise ZooBuildError(f"{stripped.name}: tensor {name} changed shape after stripping")


def check_resolved(graph: Graph) -> None:
    """Raise unless every tensor has a known shape and every op a cost rule."""
    unknown = [t.name for t in graph.tensors.values() if t.shape is None]
    if unknown:
        raise ZooBuildError(f"{graph.name}: {len(unknown)} tensors without a shape, e.g. {unknown[0]}")
    estimated = sorted({op.op_type for op in graph.estimated_ops})
    if estimated:
        raise ZooBuildError(f"{graph.name}: op types without a cost rule: {', '.join(estimated)}")


def check_exporter_shapes(model: Any, graph: Graph) -> int:
    """Compare our shapes with those torch's exporter recorded; return how many were compared."""
    compared = 0
    for node in model.graph:
        for v in node.outputs:
            shape = v.shape
            if shape is None or v.name not in graph.tensors or not shape.is_static():
                continue
            ours = graph.tensors[v.name].shape
            if ours != tuple(int(d) for d in shape):
                raise ZooBuildError(f"{graph.name}: tensor {v.name} is {ours} here but "
                                    f"{tuple(shape)} in the exporter")
            compared += 1
    return compared


# ---- builders -----------------------------------------------------------------------------
@dataclass
class Built:
    """A graph-only model plus what the provenance needs to say about how it was made."""

    model: onnx.ModelProto
    source: dict[str, Any]
    checks: list[str]


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in packages:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def build_zigzag(spec: ZigzagSpec) -> Built:
    """Copy one of zigzag-dse's shipped ONNX workloads, stripped, and check it."""
    import zigzag

    src = Path(zigzag.__file__).parent / "inputs" / "workload" / spec.filename
    if not src.is_file():
        raise ZooBuildError(f"zigzag-dse does not ship {spec.filename} (looked in {src.parent})")
    original = onnx.load(str(src), load_external_data=False)
    stripped, stats = strip_proto(original)
    check_same(Graph.from_onnx(original, name=spec.name), Graph.from_onnx(stripped, name=spec.name))
    source = {
        "package": "zigzag-dse", "package_version": _versions("zigzag-dse")["zigzag-dse"],
        "file": f"zigzag/inputs/workload/{spec.filename}",
        "original_producer": f"{original.producer_name} {original.producer_version}".strip(),
        "how": "copied from the package; initializers already weight-free (external data that "
               "does not exist) were normalized to this zoo's graph-only form",
        "initializers_weightless": stats.removed, "initializers_inline": stats.kept_inline,
    }
    return Built(stripped, source, ["graph-only vs shipped file: same ops, MACs, FLOPs, shapes"])


def _resolve_class(dotted: str) -> Any:
    import transformers

    if "." not in dotted:
        return getattr(transformers, dotted)
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(f"transformers.{module}"), attr)


def _example_inputs(spec: HfSpec, config: Any) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(SEED)
    out = {}
    for name, (shape, kind) in spec.inputs.items():
        if kind == "ids":
            high = min(int(getattr(config, "vocab_size", 1000)), 1000)
            out[name] = torch.randint(0, high, shape, generator=gen)
        else:
            out[name] = torch.randn(shape, generator=gen)
    return out


def _config_record(config: Any) -> dict[str, Any]:
    diff = config.to_diff_dict()
    for key in ("id2label", "label2id"):
        diff.pop(key, None)
    if hasattr(config, "num_labels"):
        diff["num_labels"] = config.num_labels
    return json.loads(json.dumps(diff, default=str))


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's prints, warnings and log lines (the progress display stays clean)."""
    sink = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "onnxscript", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _distinct_random_weights(model: Any) -> None:
    """Draw every parameter at random.

    Fresh models initialize biases to 0 and norm scales to 1; the exporter's optimizer would
    then merge those identical initializers into one and the graph would under-count weights.
    """
    import torch

    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.02)


def build_hf(spec: HfSpec) -> Built:
    """Build a transformers model from its config, export it with dynamo, strip and check it."""
    import onnx_ir as ir
    import torch
    import transformers

    torch.manual_seed(SEED)
    config = getattr(transformers, spec.config_class)(**spec.config)
    model = _resolve_class(spec.model_class)(config, **spec.model_args).eval()
    _distinct_random_weights(model)
    inputs = _example_inputs(spec, config)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    torch_params = sum(p.numel() for p in model.parameters())
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(model, (), kwargs=inputs, dynamo=True, optimize=True,
                                    verbose=False)
    exported = program.model
    opset = exported.opset_imports.get("", None)
    checks = []
    full_graph = None
    if param_bytes <= FULL_CHECK_MAX_PARAM_BYTES:
        full_graph = Graph.from_onnx(ir.to_proto(exported), name=spec.name)
    strip_ir(exported)
    stripped, stats = strip_proto(ir.to_proto(exported))
    stripped.graph.name = spec.name
    graph = Graph.from_onnx(stripped, name=spec.name)
    if full_graph is not None:
        check_same(full_graph, graph)
        checks.append("graph-only vs full exported model: same ops, MACs, FLOPs, shapes")
    else:
        checks.append(f"full model ({param_bytes / 1e9:.1f} GB of weights) exceeds protobuf's "
                      "2 GB limit: not re-analysed with weights; checked against exporter shapes")
    compared = check_exporter_shapes(exported, graph)
    checks.append(f"{compared} tensor shapes agree with the shapes torch's exporter recorded")
    del program, model
    cls = _resolve_class(spec.model_class)
    source = {
        "package": "transformers", "package_version": transformers.__version__,
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        "config_class": f"transformers.{spec.config_class}",
        "config_overrides": spec.config,
        "config": _config_record(config),
        "weights": f"random (built from the config, every parameter drawn from N(0, 0.02^2) "
                   f"with seed {SEED}); removed",
        "torch_parameters": torch_params,
        "how": "torch.onnx.export(model, (), kwargs=inputs, dynamo=True, optimize=True), "
               "static shapes, batch 1, eval mode",
        "opset": opset,
        "initializers_weightless": stats.removed, "initializers_inline": stats.kept_inline,
        "constants_made_weightless": stats.constants_moved,
    }
    return Built(stripped, source, checks)


# ---- provenance and writing ---------------------------------------------------------------
def provenance_record(spec: Spec, built: Built, graph: Graph, file_bytes: int) -> dict[str, Any]:
    """The JSON provenance of one zoo model."""
    totals = graph.totals()
    tensors = graph.tensors
    record: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "source": built.source,
        "inputs": [{"name": n, "shape": list(tensors[n].shape or ()), "dtype": tensors[n].dtype}
                   for n in graph.inputs],
        "outputs": [{"name": n, "shape": list(tensors[n].shape or ()), "dtype": tensors[n].dtype}
                    for n in graph.outputs],
        "totals": {"ops": totals.ops, "macs": totals.macs, "flops": totals.flops,
                   "params": totals.params, "param_bytes": totals.param_bytes,
                   "peak_live_bytes": totals.peak_live_bytes},
        "op_types": sorted(graph.op_types),
        "reference": None if spec.reference is None else {
            "macs": spec.reference.macs, "source": spec.reference.source,
            "ratio_measured_to_reference": round(totals.macs / spec.reference.macs, 4)},
        "graph_only": {"file_bytes": file_bytes, "weights_location": WEIGHTS_LOCATION,
                       "note": "weights removed, shapes kept; the external data file does not exist"},
        "checks": built.checks,
        "notes": spec.notes,
        "generated_by": "python -m mlsysgym.experiments.make_zoo",
        "environment": {"python": platform.python_version(),
                        **_versions("torch", "onnx", "onnxscript", "onnx-ir")},
        "measured_by": "mlsysgym.ir.Graph.from_onnx(...).totals()",
    }
    return record


def build(spec: Spec, out_dir: Path) -> dict[str, Any]:
    """Build one zoo model, check it and write ``<name>.onnx`` and ``<name>.json``."""
    built = build_zigzag(spec) if isinstance(spec, ZigzagSpec) else build_hf(spec)
    built.model.graph.name = spec.name
    data = built.model.SerializeToString()
    if len(data) >= MAX_FILE_BYTES:
        raise ZooBuildError(f"{spec.name}: graph-only file is {len(data) / 1e6:.1f} MB, over 2 MB")
    graph = Graph.from_onnx(data, name=spec.name)
    check_resolved(graph)
    weights = [t for t in graph.tensors.values() if t.role is Role.WEIGHT]
    if not weights:
        raise ZooBuildError(f"{spec.name}: no weights found; the graph looks wrong")
    record = provenance_record(spec, built, graph, len(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{spec.name}.onnx").write_bytes(data)
    (out_dir / f"{spec.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def select(names: Sequence[str]) -> list[Spec]:
    """The specs called ``names`` (all when empty)."""
    if not names:
        return list(SPECS)
    by_name = {s.name: s for s in SPECS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ZooBuildError(f"unknown zoo model(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def _progress_run(specs: list[Spec], out_dir: Path,
                  report: Callable[[str, dict[str, Any] | None, float, str], None]) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    failures = 0
    columns = (TextColumn("[bold]{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("model zoo", total=len(specs))
        for spec in specs:
            progress.update(task, description=f"building {spec.name}")
            start = time.perf_counter()
            try:
                record = build(spec, out_dir)
                report(spec.name, record, time.perf_counter() - start, "")
            except Exception as e:  # noqa: BLE001 - exporters raise anything; report, go on
                failures += 1
                first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
                report(spec.name, None, time.perf_counter() - start, f"{type(e).__name__}: {first}")
            progress.advance(task)
        progress.update(task, description="model zoo done")
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(prog="python -m mlsysgym.experiments.make_zoo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to rebuild (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default %(default)s; the repository's zoo is "
                        "ir/zoo_models)")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args(argv)
    console = Console()
    if args.list:
        for s in SPECS:
            console.print(f"{s.name:<22} {s.description}")
        return 0
    try:
        specs = select(args.names)
    except ZooBuildError as e:
        console.print(f"error: {e}")
        return 2
    table = Table("model", "GMACs", "ref GMACs", "params (M)", "file (KB)", "time (s)", "status")

    def report(name: str, record: dict[str, Any] | None, seconds: float, error: str) -> None:
        if record is None:
            table.add_row(name, "", "", "", "", f"{seconds:.1f}", f"[red]{error}")
            return
        ref = record["reference"]
        table.add_row(name, f"{record['totals']['macs'] / 1e9:.3f}",
                      f"{ref['macs'] / 1e9:.3f}" if ref else "-",
                      f"{record['totals']['params'] / 1e6:.2f}",
                      f"{record['graph_only']['file_bytes'] / 1024:.0f}", f"{seconds:.1f}",
                      "[green]ok")

    failures = _progress_run(specs, args.out, report)
    console.print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
