"""ONNX export of a reloaded (dequantized) model: standard operators only (Conv, Gemm, Clip, Round, ...), checked
with onnxruntime against the reference loader's predictions."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dmbq_worker.export.evaluate import Predictions, predict, test_batches

ONNX_OPSET = 17


def export_onnx(model: nn.Module, input_shape: list[int], out_path: str | Path) -> int:
    """Write `model` (on CPU, eval mode) as ONNX with a dynamic batch axis; returns the file size in bytes."""
    model = model.cpu().eval()
    example = torch.zeros(2, *input_shape)
    # The TorchScript exporter: it needs no onnxscript and gives plain opset-17 graphs of standard operators.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(out_path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    import onnx

    onnx.checker.check_model(str(out_path))
    return Path(out_path).stat().st_size


def onnx_predictions(onnx_path: str | Path, dataset: dict[str, Any], *, data_path: str | None = None) -> Predictions:
    """Predictions of the ONNX file under onnxruntime (CPU) on the test split."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        (logits,) = session.run(["logits"], {"input": np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)})
        return torch.from_numpy(logits)

    return predict(run, test_batches(dataset, device=torch.device("cpu"), data_path=data_path))


def onnx_operators(onnx_path: str | Path) -> list[str]:
    import onnx

    return sorted({node.op_type for node in onnx.load(str(onnx_path)).graph.node})
