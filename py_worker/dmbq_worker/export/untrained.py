"""Export a zoo model with untrained weights at a fixed scheme: the file size of a format needs no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dmbq_worker.export.writer import ExportSummary, build_quantized, export_model
from dmbq_worker.quant import LayerQuantConfig, SchemeConfig, apply_scheme

# The DMBQ 2-bit Laplace table (docs/RESULTS.md, level optimizer) and, for the 8-bit first and last layers, a
# binary-weighted table (256 evenly spaced levels). Sizes do not depend on the alpha values.
LAPLACE_2BIT = np.asarray([1.5936, 1.0], dtype=np.float32)


def _table(bits: int) -> np.ndarray:
    if bits == 2:
        return LAPLACE_2BIT
    return np.asarray([1.6 * 2.0 ** (-i) for i in range(bits)], dtype=np.float32)


def export_untrained(
    model_name: str, out_path: str | Path, *, weight_bits: int, act_bits: int, num_classes: int,
    input_shape: list[int], dataset: str,
) -> ExportSummary:
    """Body layers at `weight_bits`/`act_bits`, the first and last layers at 8 bits (the first's input stays FP)."""
    if not 1 <= weight_bits <= 8:
        raise ValueError(f"weight_bits must be 1..8, got {weight_bits}")
    if not (1 <= act_bits <= 8 or act_bits == 32):
        raise ValueError(f"act_bits must be 1..8 or 32, got {act_bits}")
    model, refs, num_classes = build_quantized(model_name, "", num_classes, 1, input_shape, None)
    layers: dict[str, LayerQuantConfig] = {}
    for ref in refs:
        edge = ref.role in ("first", "last")
        wb, ab = (8, 8) if edge else (weight_bits, act_bits)
        c_out, c_in = ref.module.weight_quant.out_channels, ref.module.act_quant.in_channels
        layers[ref.name] = LayerQuantConfig(
            np.full(c_out, wb, np.uint8), None if ref.role == "first" else np.full(c_in, ab, np.uint8), "uniform"
        )
    scheme = SchemeConfig(layers=layers, weight_tables={b: _table(b) for b in sorted({weight_bits, 8})})
    apply_scheme(refs, scheme)
    spec = {"name": model_name, "factory": "", "num_classes": num_classes, "width": 1, "input_shape": input_shape}
    run = {"name": f"{model_name}-untrained-w{weight_bits}a{act_bits}", "checkpoint": "", "epoch": 0, "top1": None}
    return export_model(model, refs, scheme, out_path, model_spec=spec, dataset={"name": dataset, "path": "",
                                                                                 "test_limit": 0}, run=run)
