"""Float64 references written independently of the implementation (explicit level enumeration, argmin)."""

from __future__ import annotations

import itertools

import numpy as np


def signed_level_set(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64)
    return np.array(sorted(sum(s * x for s, x in zip(signs, a)) for signs in itertools.product((-1, 1), repeat=a.size)))


def unsigned_level_set(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64)
    lv = np.array(sorted(sum(s * x for s, x in zip(bits, a)) for bits in itertools.product((0, 1), repeat=a.size)))
    return lv / lv[-1]


def nearest(u: np.ndarray, levels: np.ndarray) -> np.ndarray:
    return levels[np.argmin(np.abs(u[..., None] - levels), axis=-1)]


def quantize_weight_rows(
    w: np.ndarray, scale: np.ndarray, bits: np.ndarray, tables: dict[int, np.ndarray], *, lower: bool = False
) -> np.ndarray:
    """w [C, K] float64 -> w_hat with each row on its own table (bits - 1 when `lower`)."""
    out = np.empty_like(w)
    for c in range(w.shape[0]):
        b = int(bits[c])
        if b == 32:
            out[c] = w[c]
            continue
        width = b - 1 if lower else b
        if width <= 0:
            out[c] = 0.0
            continue
        out[c] = scale[c] * nearest(w[c] / scale[c], signed_level_set(tables[width]))
    return out


def quantize_act_uniform(x: np.ndarray, clip: float, bits: np.ndarray, channel_axis: int, *, lower: bool = False) -> np.ndarray:
    """x float64, per channel uniform 2^b levels on [0, clip] (bits - 1 when `lower`; 0 bits -> 0)."""
    out = np.empty_like(x)
    for c in range(x.shape[channel_axis]):
        sl = [slice(None)] * x.ndim
        sl[channel_axis] = c
        b = int(bits[c])
        xc = x[tuple(sl)]
        if b == 32:
            out[tuple(sl)] = xc
            continue
        width = b - 1 if lower else b
        if width <= 0:
            out[tuple(sl)] = 0.0
            continue
        n = 2**width - 1
        levels = np.arange(n + 1) / n * clip
        out[tuple(sl)] = nearest(np.clip(xc, 0, clip), levels)
    return out
