"""Quantized weights <-> bit-planes: level codes from a trained layer, dequantized weights from stored planes."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dmbq_worker.export.pack import FP_BITS, MAX_PLANE_BITS, pattern_values, unpack_planes

EPS = 1e-8  # as quant.functions.EPS: the quantizer divides by max(s_c, EPS)


def level_codes(
    weight: Tensor, scale: Tensor, thresholds: Tensor, bits: np.ndarray, tables: dict[int, np.ndarray]
) -> np.ndarray:
    """Per-weight code [C, K] of the level the quantizer picks (0 for channels that store no planes).

    The sorted level index comes from the quantizer's own midpoints (searchsorted, as quantize_units does); the
    code is the b-pattern at that rank of the channel's table."""
    c = weight.shape[0]
    w2 = weight.detach().reshape(c, -1).float().cpu()
    s = scale.detach().float().cpu().clamp_min(EPS).unsqueeze(1)
    rank = torch.searchsorted(thresholds.detach().float().cpu().contiguous(), (w2 / s).contiguous()).numpy()
    codes = np.zeros(rank.shape, dtype=np.int64)
    for b in np.unique(bits):
        m = int(b)
        if not 1 <= m <= MAX_PLANE_BITS:
            continue
        chans = np.flatnonzero(bits == b)
        order = np.argsort(pattern_values(tables[m]), kind="stable")  # rank -> code
        if rank[chans].max(initial=0) >= order.size:
            raise ValueError(f"a {m}-bit channel's level index exceeds its {order.size} levels")
        codes[chans] = order[rank[chans]]
    return codes


def dequantize(
    planes: np.ndarray,
    bits: np.ndarray,
    scales: np.ndarray,
    fp_rows: np.ndarray | None,
    tables: dict[int, np.ndarray],
    weights_per_channel: int,
) -> np.ndarray:
    """Weights [C, K] float32: s_c * sum_i alpha_i b_i for 1..8-bit channels, 0 for 0-bit ones, the stored row
    for full-precision (32) ones. `scales` lists the 1..8-bit channels only, in channel order."""
    b = np.asarray(bits).astype(np.int64)
    k = int(weights_per_channel)
    codes = unpack_planes(planes, b, k)
    out = np.zeros((b.size, k), dtype=np.float32)
    quantized = (b >= 1) & (b <= MAX_PLANE_BITS)
    scale_full = np.zeros(b.size, dtype=np.float32)
    scale_full[quantized] = np.asarray(scales, dtype=np.float32)
    for m in np.unique(b[quantized]):
        chans = np.flatnonzero(b == m)
        values = pattern_values(tables[int(m)]).astype(np.float32)
        out[chans] = values[codes[chans]] * scale_full[chans][:, None]
    fp = b == FP_BITS
    if fp.any():
        assert fp_rows is not None
        out[fp] = fp_rows
    return out
