"""ZigZag backend: the slow, high-fidelity accelerator evaluator over ``zigzag-dse``.

ZigZag (KU Leuven, ``pip install zigzag-dse six``) searches spatial and temporal mappings of
every Conv/Gemm/MatMul layer of an ONNX workload onto a hardware description (YAML) and costs
the best one with its analytical cost model. This module drives ZigZag's own stages through its
Python API with these differences from ``zigzag.api.get_hardware_performance_zigzag``:

- no visualization stage (it crashes on layers that fit entirely in the MAC array), no JSON or
  pickle dumps, logging and prints silenced, YAML rewrites in a temporary directory;
- layers with the same shape are searched once per design (ZigZag searches them again);
- a layer ZigZag cannot parse or search is reported with ``supported=False`` instead of failing
  the whole model;
- whole results are cached by the content hash of (hardware YAML, mapping YAML, ONNX graph,
  search settings).

What ZigZag costs: ``Conv``, ``QLinearConv``, ``Gemm`` and ``MatMul`` nodes (MatMul through its
Gemm parser; a MatMul of two activations is costed with both operands streamed). Every other
node (Add, Relu, pooling, BatchNormalization, Softmax, Reshape, ...) is a zero-cost ``DummyNode``
and is listed in :attr:`ModelResult.ignored_ops`. Default precision is 8-bit activations and
weights with 16-bit partial sums. Energies are in pJ (ZigZag's unit), latencies in cycles
(``latency_total2``: including on-loading/off-loading and stalls).

Design (one dict per design; every key optional):

- ``hardware``: a shipped hardware description, see :data:`HARDWARE` (default ``tpu_like``);
  each is paired with the shipped mapping file ZigZag's examples use for it.
- ``d1`` .. ``d4``: sizes of the operational array dimensions D1..D4 (only the dimensions
  the hardware has). Spatial unrollings of the shipped mapping that filled a dimension are
  rewritten to fill the new size (ZigZag reduces them to what a layer allows).
- ``mem_bytes.<memory>``: capacity in bytes of an on-chip memory of the hardware, by its YAML
  name (e.g. ``mem_bytes.sram_2MB``); :func:`hardware_knobs` lists them per hardware.
- ``dram_bw_bits``: DRAM port bandwidth in bits per cycle (``bandwidth_max``; ``bandwidth_min``
  is lowered to it when larger).
- ``act_bits`` / ``weight_bits``: operand precision in bits (ZigZag's ``act_size`` /
  ``weight_size`` node attributes); partial sums are twice ``act_bits``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from mlsysgym.core.evaluator import Design, EvaluationError, Evaluator, Metrics, content_hash
from mlsysgym.ir.errors import WorkloadError, WorkloadNotFoundError
from mlsysgym.ir.onnx_import import load_model, prepare_model, unique_op_names
from onnx import helper

__all__ = [
    "COSTED_OP_TYPES",
    "HARDWARE",
    "SHIPPED_WORKLOADS",
    "LayerResult",
    "ModelResult",
    "ParsedLayer",
    "UnknownHardwareError",
    "ZigZagDesignError",
    "ZigZagError",
    "ZigZagEvaluator",
    "ZigZagRunError",
    "hardware_knobs",
    "parsed_layers",
    "resolve_workload",
    "shipped_workload_path",
]

#: ONNX op types ZigZag turns into costed layers; everything else becomes a zero-cost DummyNode.
COSTED_OP_TYPES: frozenset[str] = frozenset({"Conv", "QLinearConv", "Gemm", "MatMul"})

#: Shipped hardware description -> the shipped mapping file ZigZag's examples pair with it.
#: Verified to run a Conv and a Gemm layer (see tests/test_zigzag.py and benchmarks/results/zigzag.md).
#: ``eyeriss_like`` (a 14 x 12 array) uses ZigZag's ``default`` mapping (K 32 on D1, C 32 on D2), which
#: ZigZag reduces to the array. Not listed: ``aimc``/``dimc`` (in-memory compute; needs ZigZag's IMC
#: flow), ``generic_array_cacti`` (calls the CACTI binary) and ``gemm_l1``/``gemm_l1_l3`` (their mappings
#: name the loop dimensions D0..D2 of ZigZag's YAML GEMM workloads, so an ONNX layer is not unrolled
#: spatially at all and costs about one cycle per MAC).
HARDWARE: dict[str, str] = {
    "tpu_like": "tpu_like",
    "edge_tpu_like": "edge_tpu_like",
    "ascend_like": "ascend_like",
    "tesla_npu_like": "tesla_npu_like",
    "meta_prototype": "meta_prototype_like",
    "eyeriss_like": "default",
}

#: ONNX workloads shipped inside the zigzag-dse package (graph only; weights are external and absent).
SHIPPED_WORKLOADS: tuple[str, ...] = ("resnet18", "mobilenetv2", "alexnet")

_OPT_STAGES = {
    "latency": "MinimalLatencyStage",
    "energy": "MinimalEnergyStage",
    "EDP": "MinimalEDPStage",
}
_ARRAY_KNOBS = ("d1", "d2", "d3", "d4")
_SCALAR_KNOBS = ("hardware", "dram_bw_bits", "act_bits", "weight_bits", *_ARRAY_KNOBS)
_MEM_PREFIX = "mem_bytes."
_REVISION = "1"  # bump when this backend changes what it reports


# ---- errors ------------------------------------------------------------------------------------
class ZigZagError(EvaluationError):
    """Base class of the ZigZag backend's errors."""


class UnknownHardwareError(ZigZagError):
    """A hardware name that is not one of the shipped descriptions in :data:`HARDWARE`."""


class ZigZagDesignError(ZigZagError):
    """A design knob that does not exist for the hardware or has an invalid value."""


class ZigZagRunError(ZigZagError):
    """ZigZag itself failed (parsing the hardware, the mapping or the workload)."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else ""
    return f"{type(e).__name__}: {msg[:240]}" if msg else type(e).__name__


# ---- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerResult:
    """ZigZag's best mapping of one ONNX node: its costs and how long the search took.

    ``name`` is the ONNX node name, equal to the ir.Graph op name (unnamed nodes get
    ``f"{op_type}_{index}"`` as in ``mlsysgym.ir``). ``wall_s`` is the wall time of ZigZag's
    mapping search for this layer and ``cpu_s`` the CPU time of this process during it (robust
    to other jobs on a shared machine); both are 0.0 when ``reused`` (an identical layer was
    searched before for the same hardware). Unsupported layers have ``supported=False``, NaN
    costs and a ``note``.
    """

    name: str
    op_type: str
    macs: int
    cycles: float
    ideal_cycles: float
    energy_pj: float
    mac_energy_pj: float
    mem_energy_pj: float
    utilization: float
    spatial_utilization: float
    wall_s: float
    cpu_s: float = 0.0
    reused: bool = False
    supported: bool = True
    note: str = ""

    @property
    def energy_uj(self) -> float:
        return self.energy_pj * 1e-6


@dataclass(frozen=True)
class ModelResult:
    """ZigZag's per-layer results for one (design, workload) and their totals.

    ``ignored_ops`` counts the ONNX op types ZigZag does not cost (zero cost). ``wall_s`` is
    the wall time of the whole evaluation (parsing plus searches) when it was computed;
    ``from_cache`` is True when this object came from the whole-result cache.
    """

    workload: str
    hardware: str
    design: dict[str, Any]
    layers: tuple[LayerResult, ...]
    ignored_ops: dict[str, int]
    num_pes: int
    wall_s: float
    from_cache: bool = False

    @property
    def costed(self) -> list[LayerResult]:
        return [layer for layer in self.layers if layer.supported]

    @property
    def skipped(self) -> list[LayerResult]:
        return [layer for layer in self.layers if not layer.supported]

    def metrics(self) -> dict[str, float]:
        """Model totals with units: sums over costed layers (skipped layers count as zero)."""
        cycles = sum(layer.cycles for layer in self.costed)
        energy = sum(layer.energy_pj for layer in self.costed)
        macs = sum(layer.macs for layer in self.costed)
        return {
            "cycles": float(cycles),
            "ideal_cycles": float(sum(layer.ideal_cycles for layer in self.costed)),
            "energy_pj": float(energy),
            "energy_uj": float(energy) * 1e-6,
            "macs": float(macs),
            "utilization": float(macs / (cycles * self.num_pes))
            if cycles and self.num_pes
            else 0.0,
            "layers_costed": float(len(self.costed)),
            "layers_skipped": float(len(self.skipped)),
        }

    def search_cpu_s(self) -> float:
        """CPU time of this process spent in ZigZag's mapping searches."""
        return float(sum(layer.cpu_s for layer in self.layers))

    def search_wall_s(self) -> float:
        """Wall time spent in ZigZag's mapping searches (sum over searched layers)."""
        return float(sum(layer.wall_s for layer in self.layers))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per layer (for pandas.DataFrame or JSON)."""
        return [{**asdict(layer), "energy_uj": layer.energy_uj} for layer in self.layers]


# ---- hardware descriptions ---------------------------------------------------------------------
def _zigzag_inputs() -> Path:
    try:
        import zigzag
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ZigZagError(
            f"zigzag-dse is not importable ({_one_line(e)}); pip install zigzag-dse six"
        ) from None
    return Path(zigzag.__file__).parent / "inputs"


def _hardware_files(hardware: str) -> tuple[Path, Path]:
    if hardware not in HARDWARE:
        raise UnknownHardwareError(
            f"unknown ZigZag hardware {hardware!r}; choose one of {', '.join(sorted(HARDWARE))}"
        )
    root = _zigzag_inputs()
    return root / "hardware" / f"{hardware}.yaml", root / "mapping" / f"{HARDWARE[hardware]}.yaml"


@cache
def _load_yaml_text(path: str) -> str:
    return Path(path).read_text()


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def hardware_knobs(hardware: str) -> dict[str, int]:
    """The numeric knobs a shipped hardware description accepts, with their shipped values."""
    hw_path, _ = _hardware_files(hardware)
    data = _yaml_load(_load_yaml_text(str(hw_path)))
    oa = data["operational_array"]
    knobs = {d.lower(): int(s) for d, s in zip(oa["dimensions"], oa["sizes"])}
    for name, mem in data["memories"].items():
        if not _is_offchip(name, mem):
            knobs[f"{_MEM_PREFIX}{name}"] = int(mem["size"]) // 8
    dram = _dram(data)
    if dram is not None:
        knobs["dram_bw_bits"] = int(max(p["bandwidth_max"] for p in dram[1]["ports"]))
    knobs["act_bits"] = 8
    knobs["weight_bits"] = 8
    return knobs


def _is_offchip(name: str, mem: Mapping[str, Any]) -> bool:
    return name.lower() in {"dram", "l3"} or int(mem["size"]) >= 10**9


def _dram(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for name, mem in data["memories"].items():
        if _is_offchip(name, mem):
            return name, mem
    return None


def _positive_int(design: Mapping[str, Any], key: str) -> int:
    """``design[key]`` as an int >= 1 (integral floats such as 16.0, as agents decode, are accepted)."""
    value = design[key]
    ok = isinstance(value, int | np.integer | float | np.floating) and not isinstance(value, bool)
    if not ok or not float(value).is_integer() or value < 1:
        raise ZigZagDesignError(f"design[{key!r}] = {value!r} must be a positive integer")
    return int(value)


def _rewrite(hardware: str, design: Mapping[str, Any]) -> tuple[str, str]:
    """The hardware and mapping YAML texts with the design's knobs applied."""
    import yaml

    hw_path, map_path = _hardware_files(hardware)
    hw_text, map_text = _load_yaml_text(str(hw_path)), _load_yaml_text(str(map_path))
    knobs = {k: v for k, v in design.items() if k not in ("hardware", "act_bits", "weight_bits")}
    if not knobs:
        return hw_text, map_text
    allowed = hardware_knobs(hardware)
    for key in knobs:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise ZigZagDesignError(
                f"design knob {key!r} does not exist for {hardware!r}; knobs: {hint}"
            )
    hw = _yaml_load(hw_text)
    mapping = _yaml_load(map_text)
    oa = hw["operational_array"]
    for i, dim in enumerate(oa["dimensions"]):
        key = dim.lower()
        if key not in knobs:
            continue
        old, new = int(oa["sizes"][i]), _positive_int(knobs, key)
        oa["sizes"][i] = new
        for entry in mapping:
            unrolls = (entry.get("spatial_mapping") or {}).get(dim)
            if not unrolls:
                continue
            for j, item in enumerate(unrolls):
                layer_dim, factor = (s.strip() for s in str(item).split(","))
                if int(factor) >= old:  # the shipped mapping filled this dimension: keep filling it
                    unrolls[j] = f"{layer_dim}, {new}"
    for name, mem in hw["memories"].items():
        key = f"{_MEM_PREFIX}{name}"
        if key in knobs:
            mem["size"] = 8 * _positive_int(knobs, key)
    if "dram_bw_bits" in knobs:
        bw = _positive_int(knobs, "dram_bw_bits")
        dram = _dram(hw)
        assert dram is not None  # hardware_knobs lists dram_bw_bits only when there is one
        for port in dram[1]["ports"]:
            port["bandwidth_max"] = bw
            port["bandwidth_min"] = min(int(port["bandwidth_min"]), bw)
    return yaml.safe_dump(hw, sort_keys=False), yaml.safe_dump(mapping, sort_keys=False)


# ---- workloads ---------------------------------------------------------------------------------
def shipped_workload_path(name: str) -> Path:
    """Path of an ONNX workload shipped with zigzag-dse (``resnet18``, ``mobilenetv2``, ``alexnet``)."""
    path = _zigzag_inputs() / "workload" / f"{name}.onnx"
    if name not in SHIPPED_WORKLOADS or not path.is_file():
        raise WorkloadNotFoundError(
            f"no ONNX workload {name!r} ships with zigzag-dse; choose one of "
            f"{', '.join(SHIPPED_WORKLOADS)}"
        )
    return path


def _zoo() -> Any | None:
    try:
        from mlsysgym.ir import zoo  # written alongside this module; optional
    except ImportError:
        return None
    return zoo


def resolve_workload(workload: Any) -> tuple[str, onnx.ModelProto]:
    """A label and the ONNX model (graph only) of a zoo name, ONNX path, ModelProto, bytes or ir.Graph.

    Names are looked up as an existing file first, then in ``mlsysgym.ir.zoo``, then among the
    workloads shipped with zigzag-dse (``zigzag:resnet18`` always means ZigZag's own file). An
    ir.Graph is resolved through a path in its metadata (``onnx_path``, ``path``, ``source``,
    ``file``), its ``zoo`` metadata (set by ``mlsysgym.ir.zoo.load``) or its name as a zoo/shipped
    name.
    """
    if isinstance(workload, onnx.ModelProto):
        return workload.graph.name or "model", workload
    if isinstance(workload, bytes | bytearray):
        return "model", load_model(bytes(workload))[0]
    if hasattr(workload, "ops") and hasattr(workload, "metadata"):  # an ir.Graph
        for key in ("onnx_path", "path", "source", "file"):
            value = workload.metadata.get(key)
            if (
                isinstance(value, str | os.PathLike)
                and Path(value).suffix == ".onnx"
                and Path(value).is_file()
            ):
                return workload.name, _read(Path(value))
        zoo_name = workload.metadata.get("zoo")
        if isinstance(zoo_name, str) and zoo_name:
            return resolve_workload(zoo_name)
        try:
            return resolve_workload(str(workload.name))
        except WorkloadNotFoundError:
            raise WorkloadNotFoundError(
                f"ir.Graph {workload.name!r} names no ONNX file; pass its ONNX path or zoo name instead"
            ) from None
    if isinstance(workload, str | os.PathLike):
        path = Path(workload)
        if path.is_file():
            return path.stem, _read(path)
        name = str(workload)
        if name.startswith("zigzag:"):
            return name, _read(shipped_workload_path(name.removeprefix("zigzag:")))
        zoo = _zoo()
        if zoo is not None:
            with contextlib.suppress(WorkloadNotFoundError):
                return name, _read(Path(zoo.path(name)))
        if name in SHIPPED_WORKLOADS:
            return name, _read(shipped_workload_path(name))
        known = [
            *(zoo.names() if zoo is not None else []),
            *(f"zigzag:{n}" for n in SHIPPED_WORKLOADS),
        ]
        raise WorkloadNotFoundError(
            f"no ONNX file or zoo model named {name!r}; known names: "
            f"{', '.join(sorted(set(map(str, known))))}"
        )
    raise WorkloadError(
        f"cannot use a {type(workload).__name__} as a ZigZag workload; "
        f"pass a zoo name, an ONNX path, an onnx.ModelProto or an ir.Graph"
    )


def _read(path: Path) -> onnx.ModelProto:
    return load_model(path)[0]


def _prepare(
    model: onnx.ModelProto, dims: Mapping[str, int], act_bits: int, weight_bits: int
) -> onnx.ModelProto:
    """A copy with fixed input dimensions, inferred shapes, unique node names (as ir.Graph names
    ops) and ZigZag's precision attributes on costed nodes."""
    out, _ = prepare_model(model, dims)
    for node, name in zip(out.graph.node, unique_op_names(out.graph.node)):
        node.name = name
        if node.op_type in COSTED_OP_TYPES:
            present = {a.name for a in node.attribute}
            if "act_size" not in present:
                node.attribute.append(helper.make_attribute("act_size", int(act_bits)))
            if "weight_size" not in present:
                node.attribute.append(helper.make_attribute("weight_size", int(weight_bits)))
    return out


# ---- running ZigZag ----------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ZigZag's loggers (all under ``zigzag.``), prints and progress bars for the duration."""
    zz = logging.getLogger("zigzag")
    old_level = zz.level
    zz.setLevel(logging.CRITICAL + 1)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        zz.setLevel(old_level)


def _layer_key(layer: Any) -> str:
    """What determines ZigZag's search of a layer: its shape, precision and mapping (not its name)."""
    parts = [
        layer.type,
        layer.equation,
        layer.layer_dim_sizes,
        layer.operand_precision,
        layer.dimension_relations,
        layer.padding,
        layer.constant_operands,
        layer.spatial_mapping,
        layer.spatial_mapping_hint,
        layer.temporal_ordering,
        layer.memory_operand_links,
        getattr(layer, "pr_layer_dim_sizes", None),
    ]
    return hashlib.sha256(repr([str(p) for p in parts]).encode()).hexdigest()


def _stage_classes(opt: str) -> tuple[Any, ...]:
    from zigzag.stages.evaluation.cost_model_evaluation import CostModelStage
    from zigzag.stages.mapping.spatial_mapping_generation import SpatialMappingGeneratorStage
    from zigzag.stages.mapping.temporal_mapping_generator_stage import TemporalMappingGeneratorStage
    from zigzag.stages.results import reduce_stages

    reduce = getattr(reduce_stages, _OPT_STAGES[opt])
    return (
        reduce,
        SpatialMappingGeneratorStage,
        reduce,
        TemporalMappingGeneratorStage,
        CostModelStage,
    )


def _tolerant_parser(mapping_path: str, model: onnx.ModelProto, skipped: dict[str, str]) -> Any:
    """ZigZag's ONNX parser, except that a node its layer parser rejects becomes a DummyNode
    (recorded in ``skipped``) instead of failing the whole workload."""
    from zigzag.parser.onnx.default_node_parser import DefaultNodeParser
    from zigzag.parser.onnx.onnx_model_parser import ONNXModelParser

    class TolerantParser(ONNXModelParser):
        def get_parser_class(self, node: onnx.NodeProto) -> Any:
            real = super().get_parser_class(node)
            if real is DefaultNodeParser:
                return real

            class Guarded:
                """Runs ZigZag's parser for the node; falls back to a DummyNode when it fails."""

                def __init__(self, **kwargs: Any) -> None:
                    self.kwargs = kwargs

                def run(self) -> Any:
                    try:
                        return real(**self.kwargs).run()
                    except Exception as e:  # noqa: BLE001 - any parser failure: skip the node
                        skipped[node.name] = (
                            f"ZigZag cannot parse this {node.op_type}: {_one_line(e)}"
                        )
                        return DefaultNodeParser(**self.kwargs).run()

            return Guarded

    return TolerantParser(model, mapping_path)


# ---- the evaluator -----------------------------------------------------------------------------
class ZigZagEvaluator(Evaluator):
    """ZigZag as an Evaluator: designs are shipped hardware descriptions plus numeric knobs.

    ``opt`` is ZigZag's search objective (``latency``, ``energy`` or ``EDP``); ``lpf_limit`` and
    ``spatial_mappings`` bound its temporal (LOMA) and spatial mapping searches (ZigZag's API
    defaults: 6 and 3). ``dims`` sizes symbolic ONNX input dimensions. A layer ZigZag cannot parse
    or map is reported with ``supported=False`` and counted in ``layers_skipped`` (its cost is
    left out of the totals, so compare designs only when ``layers_skipped`` agrees); with
    ``skip_unsupported=False`` it raises :class:`ZigZagRunError` instead. Metrics (one value per
    design): ``cycles``, ``ideal_cycles``, ``energy_pj``, ``energy_uj``, ``macs``,
    ``utilization`` (MACs / (cycles x PEs)), ``layers_costed``, ``layers_skipped``.
    Per-layer results and wall times: :meth:`layers`.
    """

    name = "zigzag"
    metric_names = (
        "cycles",
        "ideal_cycles",
        "energy_pj",
        "energy_uj",
        "macs",
        "utilization",
        "layers_costed",
        "layers_skipped",
    )

    def __init__(
        self,
        default_hardware: str = "tpu_like",
        *,
        opt: str = "latency",
        lpf_limit: int = 6,
        spatial_mappings: int = 3,
        dims: Mapping[str, int] | None = None,
        skip_unsupported: bool = True,
        result_cache_size: int = 256,
        cache_size: int = 100_000,
        seed: int = 0,
    ) -> None:
        super().__init__(cache_size=cache_size, seed=seed)
        if opt not in _OPT_STAGES:
            raise ZigZagDesignError(
                f"opt={opt!r} is not a ZigZag objective; choose one of {', '.join(_OPT_STAGES)}"
            )
        if lpf_limit < 1 or spatial_mappings < 1:
            raise ZigZagDesignError("lpf_limit and spatial_mappings must be positive integers")
        _hardware_files(default_hardware)
        self.default_hardware = default_hardware
        self.opt, self.lpf_limit, self.spatial_mappings = opt, int(lpf_limit), int(spatial_mappings)
        self.dims = dict(dims or {})
        self.skip_unsupported = bool(skip_unsupported)
        try:
            zz_version = metadata.version("zigzag-dse")
        except metadata.PackageNotFoundError:  # pragma: no cover
            zz_version = "unknown"
        settings = (
            ""
            if (opt, lpf_limit, spatial_mappings) == ("latency", 6, 3)
            else f"+{opt}.lpf{lpf_limit}.sm{spatial_mappings}"
        )
        self.version = f"{zz_version}-{_REVISION}{settings}"
        self._results: OrderedDict[str, ModelResult] = OrderedDict()
        self._result_cache_size = result_cache_size
        self._layer_cache: dict[str, tuple[float, ...]] = {}

    # -- identity --
    def workload_id(self, workload: Any) -> str:
        """Label plus a content hash of the ONNX graph (so an edited file is a new workload)."""
        label, model = resolve_workload(workload)
        digest = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()[:16]
        return f"{label}:{digest}"

    # -- evaluation --
    def _evaluate(self, designs: Sequence[Design], workload: Any) -> Metrics:
        label, model = resolve_workload(workload)
        rows = [self._run(dict(d), label, model).metrics() for d in designs]
        return {m: np.array([r[m] for r in rows], dtype=float) for m in self.metric_names}

    def layers(self, design: Design, workload: Any) -> ModelResult:
        """Per-layer results (name, op type, cycles, energy, search wall time) of one design."""
        label, model = resolve_workload(workload)
        return self._run(dict(design), label, model)

    def clear_caches(self) -> None:
        """Forget whole results, searched layers and cached metrics (e.g. before timing)."""
        self._results.clear()
        self._layer_cache.clear()
        self._cache.clear()

    def _normalize(self, design: dict[str, Any]) -> tuple[str, dict[str, Any], int, int]:
        hardware = design.get("hardware", self.default_hardware)
        if not isinstance(hardware, str):
            raise UnknownHardwareError(
                f"design['hardware'] = {hardware!r} must be a hardware name string"
            )
        _hardware_files(hardware)
        for key in design:
            if key not in _SCALAR_KNOBS and not key.startswith(_MEM_PREFIX):
                raise ZigZagDesignError(
                    f"unknown design knob {key!r}; knobs: hardware, d1..d4, mem_bytes.<memory>, dram_bw_bits, "
                    f"act_bits, weight_bits (see hardware_knobs({hardware!r}))"
                )
        act = _positive_int(design, "act_bits") if "act_bits" in design else 8
        weight = _positive_int(design, "weight_bits") if "weight_bits" in design else 8
        return hardware, design, act, weight

    def _run(self, design: dict[str, Any], label: str, model: onnx.ModelProto) -> ModelResult:
        hardware, design, act_bits, weight_bits = self._normalize(design)
        hw_text, map_text = _rewrite(hardware, design)
        prepared = _prepare(model, self.dims, act_bits, weight_bits)
        key = content_hash(
            [
                self.version,
                self.opt,
                self.lpf_limit,
                self.spatial_mappings,
                hw_text,
                map_text,
                hashlib.sha256(prepared.SerializeToString(deterministic=True)).hexdigest(),
            ]
        )
        hit = self._results.get(key)
        if hit is not None:
            self._results.move_to_end(key)
            return ModelResult(
                label,
                hardware,
                design,
                hit.layers,
                hit.ignored_ops,
                hit.num_pes,
                hit.wall_s,
                from_cache=True,
            )
        start = time.perf_counter()
        layers, num_pes = self._search(hw_text, map_text, prepared)
        ignored = Counter(
            n.op_type for n in prepared.graph.node if n.op_type not in COSTED_OP_TYPES
        )
        result = ModelResult(
            label,
            hardware,
            design,
            tuple(layers),
            dict(sorted(ignored.items())),
            num_pes,
            time.perf_counter() - start,
        )
        self._results[key] = result
        while len(self._results) > self._result_cache_size:
            self._results.popitem(last=False)
        return result

    def _search(
        self, hw_text: str, map_text: str, model: onnx.ModelProto
    ) -> tuple[list[LayerResult], int]:
        from zigzag.mapping.temporal_mapping import TemporalMappingType

        op_types = {n.name: n.op_type for n in model.graph.node}
        hw_hash = hashlib.sha256(hw_text.encode()).hexdigest()
        accelerator, layer_nodes, skipped = _parse(hw_text, map_text, model)
        num_pes = int(math.prod(accelerator.operational_array.dimension_sizes.values()))
        stages = list(_stage_classes(self.opt))
        kwargs: dict[str, Any] = {
            "loma_lpf_limit": self.lpf_limit,
            "loma_show_progress_bar": False,
            "nb_mappings_generated": self.spatial_mappings,
            "enable_mix_spatial_mapping_generation": False,
            "access_same_data_considered_as_no_access": True,
            "temporal_mapping_type": TemporalMappingType("uneven"),
        }
        results: list[LayerResult] = []
        for layer in layer_nodes:
            name = str(layer.name)
            op_type = op_types.get(name, str(layer.type))
            macs = int(layer.total_mac_count)
            lkey = content_hash(
                [hw_hash, self.opt, self.lpf_limit, self.spatial_mappings, _layer_key(layer)]
            )
            cached = self._layer_cache.get(lkey)
            reused = cached is not None
            t0, c0 = time.perf_counter(), time.process_time()
            if cached is None:
                try:
                    with _quiet():
                        root = stages[0](stages[1:], accelerator=accelerator, layer=layer, **kwargs)
                        cmes = [cme for cme, _ in root.run()]
                    if not cmes:
                        raise ZigZagRunError("no valid mapping found")
                    cme = cmes[0]
                    cached = (
                        float(cme.latency_total2),
                        float(cme.ideal_cycle),
                        float(cme.energy_total),
                        float(cme.mac_energy),
                        float(cme.mem_energy),
                        float(cme.mac_utilization2),
                        float(cme.mac_spatial_utilization),
                    )
                except Exception as e:  # noqa: BLE001 - any search failure: flag the layer
                    results.append(
                        _unsupported(
                            name,
                            op_type,
                            macs,
                            time.perf_counter() - t0,
                            f"ZigZag search failed: {_one_line(e)}",
                        )
                    )
                    continue
                self._layer_cache[lkey] = cached
            wall = 0.0 if reused else time.perf_counter() - t0
            cpu = 0.0 if reused else time.process_time() - c0
            results.append(
                LayerResult(name, op_type, macs, *cached, wall_s=wall, cpu_s=cpu, reused=reused)
            )
        for name, note in skipped.items():
            results.append(_unsupported(name, op_types.get(name, "?"), 0, 0.0, note))
        bad = next((r for r in results if not r.supported), None)
        if bad is not None and not self.skip_unsupported:
            raise ZigZagRunError(f"layer {bad.name!r} ({bad.op_type}): {bad.note}")
        return results, num_pes


def _parse(
    hw_text: str, map_text: str, model: onnx.ModelProto
) -> tuple[Any, list[Any], dict[str, str]]:
    """ZigZag's Accelerator, its costed LayerNodes in topological order, and the nodes it
    could not parse (name -> reason), from YAML texts and a prepared ONNX model."""
    from zigzag.stages.parser.accelerator_parser import AcceleratorParserStage
    from zigzag.workload.layer_node import LayerNode

    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mlsysgym-zigzag-") as tmp, _quiet():
        hw_path, map_path = Path(tmp) / "hardware.yaml", Path(tmp) / "mapping.yaml"
        hw_path.write_text(hw_text)
        map_path.write_text(map_text)
        try:
            accelerator = AcceleratorParserStage.parse_accelerator(str(hw_path))
        except Exception as e:  # noqa: BLE001 - ZigZag raises anything; one typed line
            raise ZigZagRunError(
                f"ZigZag rejected the hardware description: {_one_line(e)}"
            ) from None
        try:
            workload = _tolerant_parser(str(map_path), model, skipped).run()
            layers = [n for n in workload.topological_sort() if isinstance(n, LayerNode)]
        except Exception as e:  # noqa: BLE001 - ZigZag raises anything; one typed line
            raise ZigZagRunError(f"ZigZag could not parse the workload: {_one_line(e)}") from None
    return accelerator, layers, skipped


@dataclass(frozen=True)
class ParsedLayer:
    """A layer as ZigZag parsed it (no mapping search): ONNX node name, op type, MACs."""

    name: str
    op_type: str
    macs: int
    supported: bool = True
    note: str = ""


def parsed_layers(
    workload: Any, hardware: str = "tpu_like", dims: Mapping[str, int] | None = None
) -> list[ParsedLayer]:
    """The layers ZigZag would cost for ``workload`` (fast: parsing only, no search).

    Names are ir.Graph op names, so ``graph.op(layer.name).macs`` compares MAC counts.
    """
    _, model = resolve_workload(workload)
    prepared = _prepare(model, dims or {}, 8, 8)
    hw_text, map_text = _rewrite(hardware, {})
    _, layers, skipped = _parse(hw_text, map_text, prepared)
    op_types = {n.name: n.op_type for n in prepared.graph.node}
    out = [
        ParsedLayer(str(n.name), op_types.get(str(n.name), str(n.type)), int(n.total_mac_count))
        for n in layers
    ]
    out += [
        ParsedLayer(name, op_types.get(name, "?"), 0, False, note) for name, note in skipped.items()
    ]
    return out


def _unsupported(name: str, op_type: str, macs: int, wall: float, note: str) -> LayerResult:
    nan = float("nan")
    return LayerResult(
        name,
        op_type,
        macs,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
        nan,
        wall_s=wall,
        supported=False,
        note=note,
    )
