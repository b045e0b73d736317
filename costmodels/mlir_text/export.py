"""ONNX export of the trained MLIR text network: the member networks' target outputs as one
module (:func:`_members_output`) exported with ``torch.onnx.export(dynamo=True)``
(:func:`_export`): inputs ``tokens`` int64, ``numbers`` float32 and ``slots`` int64, all
(batch, length), dynamic in both; output ``Y`` (batch, members)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlsysgym.costmodels.mlir_text.tokens import MlirTextError


def _members_output(modules: Sequence[Any]) -> Any:
    """A module returning output 0 (the target) of each member network: (n, members) — what is
    exported (auxiliary outputs are dropped)."""
    import torch
    from torch import nn

    class Members(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.nets = nn.ModuleList(modules)

        def forward(self, tokens: Any, numbers: Any, slots: Any) -> Any:
            return torch.cat([net(tokens, numbers, slots)[:, :1] for net in self.nets], dim=1)

    return Members().eval()


def _export(module: Any, max_len: int) -> bytes:
    """Serialized ONNX graph of the network: ``tokens``, ``numbers`` (batch, length) → ``Y``."""
    import contextlib
    import io
    import warnings

    import torch

    module = module.eval()
    example = (torch.ones(2, 8, dtype=torch.int64), torch.zeros(2, 8, dtype=torch.float32),
               torch.ones(2, 8, dtype=torch.int64))
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=max_len)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True,
                                    input_names=["tokens", "numbers", "slots"],
                                    output_names=["Y"],
                                    dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length},
                                                    {0: batch, 1: length}),
                                    verbose=False)
    if program is None:
        raise MlirTextError("torch.onnx.export returned no program for the MLIR text model")
    proto = program.model_proto
    proto.ir_version = min(proto.ir_version, 10)
    return proto.SerializeToString()
