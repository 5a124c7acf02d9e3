"""Level sets of multi-bit tables and their padded per-channel form (pure numpy, no torch).

A signed (weight) table of b bits holds alpha (b floats); its levels are every sum(alpha_i * b_i) with
b_i in {-1, +1}. An unsigned (activation) table uses b_i in {0, 1} and is normalised so the top level is 1.

Quantizers keep one row of levels per channel, padded to MAX_LEVELS so that every bit-width (and a mix of widths
inside one layer) shares one static shape: the padding repeats the top level and the padded thresholds are +inf,
so `searchsorted(thresholds_row, u)` never picks a padded slot. Row shapes never change, which lets a new scheme
be copied into the same buffers (torch.compile / CUDA graphs keep working).
"""

from __future__ import annotations

import numpy as np

MAX_BITS = 8
MAX_LEVELS = 1 << MAX_BITS
FP_BITS = 32  # "full precision" marker in the contract

# Per-channel clip (in units of the level scale) that disables the STE mask for full-precision channels and blocks
# every gradient for pruned ones.
FP_CLIP = float("inf")
PRUNED_CLIP = -1.0


def _sign_patterns(bits: int, values: tuple[float, float]) -> np.ndarray:
    """All 2^bits patterns of b_i in `values`, shape [2^bits, bits], float64."""
    codes = np.arange(1 << bits, dtype=np.int64)[:, None] >> np.arange(bits, dtype=np.int64)[None, :]
    on = (codes & 1).astype(bool)
    return np.where(on, values[1], values[0]).astype(np.float64)


def signed_levels(alpha: np.ndarray) -> np.ndarray:
    """Sorted levels sum(alpha_i * b_i), b_i in {-1,+1}: 2^len(alpha) values (duplicates kept), float64."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    return np.sort(_sign_patterns(a.size, (-1.0, 1.0)) @ a)


def unsigned_levels(alpha: np.ndarray) -> np.ndarray:
    """Sorted levels sum(alpha_i * b_i), b_i in {0,1}, divided by the top level so that it is exactly 1."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    levels = np.sort(_sign_patterns(a.size, (0.0, 1.0)) @ a)
    top = levels[-1]
    return levels / top if top > 0 else levels


def padded_row(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(levels padded to MAX_LEVELS with the top level, midpoints padded to MAX_LEVELS-1 with +inf), float32."""
    lv = np.asarray(levels, dtype=np.float64)
    if lv.size < 1 or lv.size > MAX_LEVELS:
        raise ValueError(f"a level set needs 1..{MAX_LEVELS} levels, got {lv.size}")
    row = np.full(MAX_LEVELS, lv[-1], dtype=np.float64)
    row[: lv.size] = lv
    thr = np.full(MAX_LEVELS - 1, np.inf, dtype=np.float64)
    thr[: lv.size - 1] = 0.5 * (lv[:-1] + lv[1:])
    return row.astype(np.float32), thr.astype(np.float32)


def zero_row() -> tuple[np.ndarray, np.ndarray]:
    """The level row of 0 bits: a single level 0 (everything maps to 0)."""
    return padded_row(np.zeros(1))


def uniform_unsigned_levels(bits: int) -> np.ndarray:
    """The 2^bits uniform levels on [0, 1] (what ACT_MODE_UNIFORM rounds to)."""
    if bits <= 0:
        return np.zeros(1)
    n = (1 << bits) - 1
    return np.arange(n + 1, dtype=np.float64) / n
