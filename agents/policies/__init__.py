"""Trained policies shipped with mlsysgym: ONNX files, each with a JSON card (training data,
seeds, CPU time, the target fingerprint it was trained on). ``malloc_gnn.onnx``,
``malloc_lns_gnn.onnx`` and ``malloc_jump_gnn.onnx``: the mallocGame graph-network policies of
:mod:`mlsysgym.agents.learned_malloc` (local-search moves; LNS neighbourhood centres; the
buffers a jump re-decides);
``schedule_gnn.onnx``: the list scheduler of :mod:`mlsysgym.agents.learned_schedule`.

:func:`check_card` is the one check every policy passes before use."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlsysgym.core.errors import MlsysgymError

__all__ = ["PolicyCardError", "PolicyTargetWarning", "check_card", "file_sha256"]


class PolicyCardError(MlsysgymError):
    """The policy file or its card is missing, corrupt or made for other features."""


class PolicyTargetWarning(UserWarning):
    """The policy was trained on another target (its card's ``target_id`` differs)."""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (a card's ``onnx_sha256``)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_card(card: Mapping[str, Any], onnx_path: Path, features: Mapping[str, Sequence[str]],
               retrain: str, *, strict: bool = False) -> None:
    """Check a policy card against its ONNX file and this code: :class:`PolicyCardError` when
    the file's hash differs or a feature list (card key → the names this code computes)
    differs; a ``target_id`` other than this machine's gives a :class:`PolicyTargetWarning`
    (PolicyCardError with ``strict``): the simulators are analytic, so the decisions do not
    depend on the machine, but the policy's time budget was set there. ``retrain`` says how
    to retrain it."""
    from mlsysgym.core.target import target_id

    name = Path(onnx_path).name
    if card.get("onnx_sha256") != file_sha256(onnx_path):
        raise PolicyCardError(f"{name} does not match its card (sha256 differs); "
                              "retrain or restore both files together")
    for key, names in features.items():
        if tuple(card.get(key, ())) != tuple(names):
            raise PolicyCardError(f"{name} was trained on other {key} than this version "
                                  f"computes; retrain it with {retrain}")
    trained, here = card.get("fingerprint", {}).get("target_id"), target_id()
    if trained != here:
        msg = (f"policy {name} was trained on target {trained}, this machine is {here}: its "
               "decisions do not depend on the CPU, its time budget was set there")
        if strict:
            raise PolicyCardError(msg)
        warnings.warn(msg, PolicyTargetWarning, stacklevel=3)
