"""Bit-planes of multi-bit weights: one bit per weight per plane, packed eight to a byte (numpy.packbits).

A channel of M bits holds, for each weight, the code of its level: bit i of the code is b_i of
sum_i alpha_i * b_i (set <=> b_i = +1). The planes of a layer are one bit stream, channel after channel, and
within a channel plane 0 (alpha_0, the largest) first; each plane holds the channel's K weights in order.
0-bit channels add nothing, full-precision ones (32) are stored elsewhere. The stream is packed little-endian
(element 8*j + t is bit t of byte j) and padded with zeros to a whole byte at its end only.
"""

from __future__ import annotations

import numpy as np

MAX_PLANE_BITS = 8
FP_BITS = 32


def plane_counts(bits: np.ndarray) -> np.ndarray:
    """Planes stored per channel: its bits for 1..8, none for 0 (pruned) or 32 (full precision)."""
    b = np.asarray(bits, dtype=np.int64).reshape(-1)
    return np.where((b >= 1) & (b <= MAX_PLANE_BITS), b, 0)


def packed_size(bits: np.ndarray, weights_per_channel: int) -> int:
    """Bytes of the packed planes of a layer."""
    return (int(plane_counts(bits).sum()) * int(weights_per_channel) + 7) // 8


def _positions(planes: np.ndarray, k: int, channels: np.ndarray, m: int) -> np.ndarray:
    """Bit positions [n, m, k] in the stream of the planes of `channels` (all of width m)."""
    starts = (np.cumsum(planes) - planes) * k  # first bit of each channel
    return (
        starts[channels][:, None, None]
        + (np.arange(m, dtype=np.int64) * k)[None, :, None]
        + np.arange(k, dtype=np.int64)[None, None, :]
    )


def pack_planes(codes: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Pack per-weight level codes [C, K] (channel c uses its low bits[c] bits) into bit-planes (uint8 [bytes])."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be [channels, weights], got shape {codes.shape}")
    c, k = codes.shape
    planes = plane_counts(bits)
    if planes.size != c:
        raise ValueError(f"bits has {planes.size} entries for {c} channels")
    stream = np.zeros(int(planes.sum()) * k, dtype=np.uint8)
    codes64 = codes.astype(np.int64)
    for m in np.unique(planes):
        if m == 0:
            continue
        chans = np.flatnonzero(planes == m)
        sub = codes64[chans]
        if sub.size and (sub.min() < 0 or sub.max() >= (1 << int(m))):
            raise ValueError(f"a {int(m)}-bit channel holds a code outside 0..{(1 << int(m)) - 1}")
        bit_values = (sub[:, None, :] >> np.arange(m, dtype=np.int64)[None, :, None]) & 1
        stream[_positions(planes, k, chans, int(m))] = bit_values.astype(np.uint8)
    return np.packbits(stream, bitorder="little")


def unpack_planes(packed: np.ndarray, bits: np.ndarray, weights_per_channel: int) -> np.ndarray:
    """The inverse of pack_planes: codes [C, K] (int64; 0 for channels that store no planes)."""
    planes = plane_counts(bits)
    k = int(weights_per_channel)
    total = int(planes.sum()) * k
    data = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if data.size != (total + 7) // 8:
        raise ValueError(f"packed planes hold {data.size} bytes, the bit-widths need {(total + 7) // 8}")
    stream = np.unpackbits(data, count=total, bitorder="little").astype(np.int64)
    codes = np.zeros((planes.size, k), dtype=np.int64)
    for m in np.unique(planes):
        if m == 0:
            continue
        chans = np.flatnonzero(planes == m)
        bit_values = stream[_positions(planes, k, chans, int(m))]
        codes[chans] = (bit_values << np.arange(m, dtype=np.int64)[None, :, None]).sum(axis=1)
    return codes


def pattern_values(alpha: np.ndarray) -> np.ndarray:
    """Level of every code 0..2^M-1: sum_i alpha_i * (+1 if bit i of the code is set else -1), float64.

    Built like quant.levels.signed_levels (before its sort), so the float32 rounding of each level is the one the
    quantizer used."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    codes = np.arange(1 << a.size, dtype=np.int64)[:, None] >> np.arange(a.size, dtype=np.int64)[None, :]
    signs = np.where((codes & 1).astype(bool), 1.0, -1.0).astype(np.float64)
    return signs @ a
