"""mlsysgym.ir.mlir: MLIR in mlsysgym — import ONNX/zoo models to linalg, parse MLIR into an
ir.Graph view, emit standalone kernels.

- ``import_model("resnet18")`` → :class:`ImportedModel` (torch-onnx MLIR and linalg-on-tensors
  MLIR, lowered by ``iree-compile --compile-to=input``);
- ``parse(text_or_module)`` → :class:`ParsedModule` (``.graph`` is an ``ir.Graph``,
  ``.linalg`` the loop structure of each linalg op); ``to_graph`` returns the Graph only;
- ``emit(KernelSpec(...))`` → :class:`EmittedKernel` (MLIR text, input shapes, NumPy reference);
- ``extract_kernels(parsed)`` → every linalg op of a module as a standalone function.
"""

from mlsysgym.ir.mlir_emit import EmittedKernel, KernelSpec, KernelSpecError, emit
from mlsysgym.ir.mlir_import import (
    ExtractedKernel,
    ImportedModel,
    MlirImportError,
    export_zoo_kernels,
    extract_kernels,
    import_model,
    lower_to_linalg,
    onnx_to_mlir,
)
from mlsysgym.ir.mlir_parse import (
    LinalgInfo,
    MlirParseError,
    ParsedModule,
    context,
    parse,
    to_graph,
)

__all__ = [
    "EmittedKernel", "ExtractedKernel", "ImportedModel", "KernelSpec", "KernelSpecError",
    "LinalgInfo", "MlirImportError", "MlirParseError", "ParsedModule", "context", "emit",
    "export_zoo_kernels", "extract_kernels", "import_model", "lower_to_linalg", "onnx_to_mlir",
    "parse", "to_graph",
]
