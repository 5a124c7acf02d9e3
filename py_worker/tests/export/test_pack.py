"""Bit-plane packing: exact round trip, the size the issue asks for, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmbq_worker.export.pack import pack_planes, packed_size, pattern_values, unpack_planes


@st.composite
def layers(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    c = draw(st.integers(1, 12))
    k = draw(st.integers(1, 40))
    bits = np.array(draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 32]), min_size=c, max_size=c)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    width = np.where((bits >= 1) & (bits <= 8), bits, 0)
    codes = (rng.integers(0, 1 << 8, (c, k)) % (1 << width)[:, None]).astype(np.int64)
    return codes, bits


@given(layers())
@settings(max_examples=200, deadline=None)
def test_round_trip_is_exact(layer: tuple[np.ndarray, np.ndarray]) -> None:
    codes, bits = layer
    k = codes.shape[1]
    packed = pack_planes(codes, bits)
    assert packed.dtype == np.uint8
    # one bit per weight per plane; 0-bit and full-precision channels store nothing
    planes = sum(int(b) for b in bits if 1 <= b <= 8)
    assert packed.size == (planes * k + 7) // 8 == packed_size(bits, k)
    np.testing.assert_array_equal(unpack_planes(packed, bits, k), codes)


def test_layout_channel_then_plane_then_weight() -> None:
    # channel 0: 2 bits, codes [1, 2, 3] -> plane 0 = [1, 0, 1], plane 1 = [0, 1, 1]; channel 1: 1 bit, [1, 0, 0]
    packed = pack_planes(np.array([[1, 2, 3], [1, 0, 0]]), np.array([2, 1]))
    stream = np.unpackbits(packed, bitorder="little")[:9]
    np.testing.assert_array_equal(stream, [1, 0, 1, 0, 1, 1, 1, 0, 0])


def test_refuses_codes_out_of_range_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="2-bit channel holds a code outside 0..3"):
        pack_planes(np.array([[4]]), np.array([2]))
    with pytest.raises(ValueError, match="bits has 2 entries for 1 channels"):
        pack_planes(np.array([[1]]), np.array([2, 2]))
    with pytest.raises(ValueError, match="packed planes hold 2 bytes, the bit-widths need 1"):
        unpack_planes(np.zeros(2, np.uint8), np.array([2]), 3)


@given(st.lists(st.floats(0.01, 4.0), min_size=1, max_size=8))
@settings(max_examples=50, deadline=None)
def test_pattern_values_are_the_signed_levels(alpha: list[float]) -> None:
    from dmbq_worker.quant.levels import signed_levels

    a = np.asarray(alpha, dtype=np.float32)
    np.testing.assert_array_equal(np.sort(pattern_values(a)).astype(np.float32), signed_levels(a).astype(np.float32))
