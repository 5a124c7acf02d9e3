"""Export of a quantized model: one .dmbq file (safetensors: bit-planes, tables, scales, FP tensors and a JSON
header), the reference loader that rebuilds it in PyTorch, and ONNX export of the dequantized model."""

from __future__ import annotations

from dmbq_worker.export.container import FORMAT_NAME, FORMAT_VERSION, DmbqFile, DmbqFileError, read_dmbq
from dmbq_worker.export.loader import LoadedModel, load_dmbq, load_dmbq_file
from dmbq_worker.export.pack import pack_planes, unpack_planes
from dmbq_worker.export.writer import ExportSummary, export_model, export_run

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DmbqFile",
    "DmbqFileError",
    "ExportSummary",
    "LoadedModel",
    "export_model",
    "export_run",
    "load_dmbq",
    "load_dmbq_file",
    "pack_planes",
    "read_dmbq",
    "unpack_planes",
]
