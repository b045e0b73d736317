"""The model zoo: graph-only ONNX files of real architectures, addressed by name.

Each model ``<name>`` is ``zoo_models/<name>.onnx`` (weights removed, shapes kept) with its
provenance in ``zoo_models/<name>.json``. Regenerate them with
``python -m mlsysgym.experiments.make_zoo``.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from mlsysgym.ir.errors import WorkloadError, WorkloadNotFoundError
from mlsysgym.ir.graph import Graph

ZOO_DIR = Path(__file__).resolve().parent / "zoo_models"


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in ZOO_DIR.glob("*.onnx") if p.with_suffix(".json").is_file()))


def names() -> list[str]:
    """Names of every model in the zoo, sorted."""
    return list(_names())


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _not_found(name: str) -> WorkloadNotFoundError:
    close = difflib.get_close_matches(_normalize(name), _names(), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(_names())}"
    return WorkloadNotFoundError(
        f"no zoo model named {name!r}; {hint} (list them with `mlsysgym zoo list`)")


def path(name: str) -> Path:
    """The graph-only ONNX file of zoo model ``name``."""
    key = _normalize(name)
    if key not in _names():
        raise _not_found(name)
    return ZOO_DIR / f"{key}.onnx"


@cache
def _provenance(key: str) -> dict[str, Any]:
    return json.loads((ZOO_DIR / f"{key}.json").read_text())


def provenance(name: str) -> dict[str, Any]:
    """Where zoo model ``name`` comes from: package, version, config, inputs, MACs, checks."""
    return copy.deepcopy(_provenance(path(name).stem))


def load(name: str) -> Graph:
    """Zoo model ``name`` as an analysed ir.Graph (costs, loop nests; live ranges on demand)."""
    p = path(name)
    graph = Graph.from_onnx(p, name=p.stem)
    graph.metadata["zoo"] = p.stem
    return graph


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".onnx") or os.sep in text or "/" in text


def resolve(name_or_path: str | os.PathLike[str] | Graph,
            dims: Mapping[str, int] | None = None) -> Graph:
    """A Graph from a zoo name (e.g. ``"resnet50"``), the path of an ONNX file, or a Graph (as is).

    An existing file wins over a zoo name; ``dims`` sizes symbolic input dimensions of files.
    """
    if isinstance(name_or_path, Graph):
        return name_or_path
    if not isinstance(name_or_path, str | os.PathLike):
        raise WorkloadError(f"cannot use a {type(name_or_path).__name__} as a workload; give a zoo "
                            "model name, an ONNX file path or an ir.Graph")
    text = os.fspath(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return Graph.from_onnx(candidate, dims=dims)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        raise WorkloadNotFoundError(f"no such ONNX file: {text} (or give a zoo model name, "
                                    "see `mlsysgym zoo list`)")
    if not text.strip():
        raise WorkloadError("empty workload name; give a zoo model name or an ONNX file path")
    return load(text)
