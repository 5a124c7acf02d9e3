"""The activation quantizer of an exported layer, as plain tensor ops that also export to standard ONNX.

It computes, operation for operation, what quant.functions.ActQuantSTE computes in its forward, so a reloaded
model's outputs equal the trained model's bit for bit on the same device:
  uniform: round(clamp(x, 0, c) * (n / c)) * (c / max(n, 1))  with n = 2^b - 1 per input channel
  table:   the nearest level of the channel's unsigned table (levels in [0, 1]) times c; the level index is the
           number of midpoints below x / c, which is what searchsorted returns on the padded rows
Full-precision channels (32 bits) pass x through.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

EPS = 1e-8  # as quant.functions.EPS: guards a clip that collapsed to 0
FP_BITS = 32


def _unsigned_levels(alpha: np.ndarray) -> np.ndarray:
    """As quant.levels.unsigned_levels: sorted sum(alpha_i * b_i), b_i in {0, 1}, divided by the top level."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    codes = np.arange(1 << a.size, dtype=np.int64)[:, None] >> np.arange(a.size, dtype=np.int64)[None, :]
    levels = np.sort(np.where((codes & 1).astype(bool), 1.0, 0.0) @ a)
    top = levels[-1]
    return levels / top if top > 0 else levels


def table_rows(bits: np.ndarray, tables: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel levels [C, L] and midpoints [C, L-1] (float32) of the unsigned tables, L = the widest used.

    Shorter rows are padded like quant.levels.padded_row: levels with the top level, midpoints with +inf."""
    widths = [int(b) for b in bits if int(b) != FP_BITS]
    n_levels = 1 << max(widths, default=0)
    levels = np.zeros((bits.size, n_levels), dtype=np.float32)
    mids = np.full((bits.size, max(n_levels - 1, 0)), np.inf, dtype=np.float32)
    for i, b in enumerate(int(v) for v in bits):
        if b == FP_BITS:
            continue
        lv = _unsigned_levels(tables[b])
        row = np.full(n_levels, lv[-1], dtype=np.float64)
        row[: lv.size] = lv
        levels[i] = row.astype(np.float32)
        mids[i, : lv.size - 1] = (0.5 * (lv[:-1] + lv[1:])).astype(np.float32)
    return levels, mids


class InputQuantizer(nn.Module):
    """Quantizes a layer's input per input channel with fixed (exported) clip and bit-widths."""

    clip: Tensor
    n_steps: Tensor
    fp_mask: Tensor
    levels: Tensor
    midpoints: Tensor

    def __init__(
        self,
        clip: float,
        bits: np.ndarray,
        *,
        channel_dim_from_end: int,
        mode: str = "uniform",
        tables: dict[int, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("uniform", "table"):
            raise ValueError(f"act mode must be 'uniform' or 'table', got {mode!r}")
        b = np.asarray(bits, dtype=np.int64).reshape(-1)
        quantized = b != FP_BITS
        self.mode = mode
        self.channel_dim_from_end = channel_dim_from_end
        self.any_fp = bool((~quantized).any())
        self.register_buffer("clip", torch.tensor([clip], dtype=torch.float32))
        n = np.where(quantized, (1 << np.minimum(b, 8)) - 1, 1).astype(np.float32)
        self.register_buffer("n_steps", torch.from_numpy(n))
        self.register_buffer("fp_mask", torch.from_numpy(~quantized))
        if mode == "table":
            if tables is None:
                raise ValueError("act mode 'table' needs the activation tables")
            levels, mids = table_rows(b, tables)
        else:
            levels, mids = np.zeros((b.size, 1), np.float32), np.zeros((b.size, 0), np.float32)
        self.register_buffer("levels", torch.from_numpy(levels))
        self.register_buffer("midpoints", torch.from_numpy(mids))

    def _per_channel(self, t: Tensor, ndim: int) -> Tensor:
        shape = [1] * ndim
        shape[ndim + self.channel_dim_from_end] = t.shape[0]
        return t.reshape(shape)

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        c = self.clip.clamp_min(EPS)
        clipped = torch.clamp(xf, torch.zeros_like(c), c)
        nd = xf.dim()
        if self.mode == "uniform":
            n = self._per_channel(self.n_steps, nd)
            q = torch.round(clipped * (n / c)) * (c / n.clamp_min(1.0))
        else:
            u = clipped / c
            cdim = nd + self.channel_dim_from_end
            # Explicit non-negative permutations: the ONNX exporter writes movedim's -1 into Transpose as is.
            to_last = [d for d in range(nd) if d != cdim] + [cdim]
            back = sorted(range(nd), key=lambda d: to_last[d])
            moved = u.permute(to_last).unsqueeze(nd)  # [..., C, 1]
            idx = (self.midpoints < moved).sum(dim=nd, keepdim=True)  # [..., C, 1]: midpoints below u
            rows = self.levels.expand(*moved.shape[:-1], self.levels.shape[1])
            q = torch.gather(rows, nd, idx).squeeze(nd).permute(back) * c
        if self.any_fp:
            q = torch.where(self._per_channel(self.fp_mask, nd), xf, q)
        return q.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, channels={self.n_steps.shape[0]}"


class QuantizedInput(nn.Module):
    """A layer whose input passes through an InputQuantizer first (what QuantConv2d / QuantLinear do)."""

    def __init__(self, act: InputQuantizer, layer: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.act(x))
