"""Model families of measured kernels, and the family-held-out split of a kernel frame.

A cost model that ranks kernels of the models it was trained on may still fail on a new kind
of model. :data:`FAMILIES` groups the zoo's models (and the held-out models of
``benchmarks/data/tiling_models``) by architecture; :func:`family_of` names a model's family
and :func:`family_splits` builds leave-one-family-out splits of a kernel frame whose rows name
their source model (``workload_id``): the test rows are every kernel of one family, the
training rows are the kernels of the other families *minus any kernel whose design equals a
test kernel's* (zoo models share shapes — BERT's and ViT-B's 768×3072 matmuls — and a shape
measured for one model would otherwise leak the held-out family's answer into training).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from mlsysgym.core.errors import MlsysgymError

__all__ = ["FAMILIES", "FamilyError", "FamilySplit", "design_keys", "family_column",
           "family_of", "family_splits"]

#: Family → its models. CNNs, vision transformers, text encoders, decoder-only LMs, audio.
FAMILIES: dict[str, tuple[str, ...]] = {
    "cnn": ("resnet18", "resnet50", "mobilenetv2", "efficientnet_b0", "convnext_tiny",
            "alexnet", "resnet34", "mobilenet_v1"),
    "vision_transformer": ("vit_b16", "swin_tiny", "vit_s16"),
    "text_encoder": ("bert_base", "distilbert_base", "t5_small_encoder", "bart_small"),
    "decoder": ("gpt2", "tinyllama_1b", "llama_decoder_d1024", "opt_350m_d1024"),
    "audio": ("whisper_tiny_encoder",),
}
_FAMILY_OF = {m: f for f, models in FAMILIES.items() for m in models}


class FamilyError(MlsysgymError):
    """A model with no known family, a frame without the model column, or an unknown family."""


def family_of(model: str) -> str:
    """The family of a model name (``zoo:<m>`` / ``perturbed:<m>`` sources accepted)."""
    name = str(model).split(":", 1)[-1]
    if name not in _FAMILY_OF:
        raise FamilyError(f"model {name!r} has no family; known models: {', '.join(sorted(_FAMILY_OF))}")
    return _FAMILY_OF[name]


def family_column(frame: Any, column: str = "workload_id") -> np.ndarray:
    """The family of each row of ``frame`` (from its source-model column)."""
    if column not in frame:
        raise FamilyError(f"the frame has no {column!r} column naming each kernel's source model")
    names = frame[column].astype(str).to_numpy()
    lookup = {n: family_of(n) for n in set(names.tolist())}
    return np.array([lookup[n] for n in names], dtype=object)


def design_keys(frame: Any, design: Sequence[str]) -> np.ndarray:
    """One string per row identifying its kernel: the ``design`` columns' values joined."""
    return np.array(["|".join(map(str, t)) for t in zip(*(frame[c].tolist() for c in design))],
                    dtype=object)


@dataclass(frozen=True)
class FamilySplit:
    """One held-out family: row positions of the training and test kernels, and how many
    training-family rows were dropped because their design equals a test kernel's."""

    family: str
    train: np.ndarray
    test: np.ndarray
    dropped_duplicates: int


def family_splits(frame: Any, design: Sequence[str], families: Sequence[str] | None = None,
                  column: str = "workload_id") -> Iterator[FamilySplit]:
    """Leave-one-family-out splits of ``frame`` (positions, not labels), one per family in
    ``families`` (default: every family with rows), in that order. ``design`` names the
    columns that identify a kernel (e.g. kind, shape, dtype, op); a training row with the
    design of a test row is dropped."""
    fam = family_column(frame, column)
    present = [f for f in FAMILIES if (fam == f).any()]
    chosen = list(families) if families is not None else present
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise FamilyError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                          f"choose from {', '.join(FAMILIES)}")
    missing = [c for c in design if c not in frame]
    if missing:
        raise FamilyError(f"the frame lacks the design column(s) {missing}")
    keys = design_keys(frame, design)
    for f in chosen:
        test = np.flatnonzero(fam == f)
        if test.size == 0:
            raise FamilyError(f"no rows of family {f!r}; families with rows: {', '.join(present)}")
        other = np.flatnonzero(fam != f)
        clash = np.isin(keys[other], keys[test])
        yield FamilySplit(f, other[~clash], test, int(clash.sum()))
