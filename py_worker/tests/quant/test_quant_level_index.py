"""The compile-time nearest-level search (binary halving) must give searchsorted's indices exactly."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmbq_worker.quant.functions import binary_search_index, level_index
from dmbq_worker.quant.levels import MAX_LEVELS


def padded_rows(rng: np.random.Generator, channels: int, widths: list[int]) -> torch.Tensor:
    """Ascending thresholds, the first 2^b - 1 of each row finite and the rest +inf (as the quantizers pad)."""
    rows = np.full((channels, MAX_LEVELS - 1), np.inf, dtype=np.float32)
    for c, bits in enumerate(widths):
        n = (1 << bits) - 1
        rows[c, :n] = np.sort(rng.normal(size=n)).astype(np.float32)
    return torch.from_numpy(rows)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), channels=st.integers(1, 6), k=st.integers(1, 40))
def test_binary_search_equals_searchsorted_on_padded_rows(seed: int, channels: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    thresholds = padded_rows(rng, channels, [int(b) for b in rng.integers(1, 9, size=channels)])
    u = torch.from_numpy(rng.normal(scale=1.5, size=(channels, k)).astype(np.float32))
    # exact ties: some values equal to a finite threshold of their row (searchsorted's left side puts them below)
    finite = torch.isfinite(thresholds)
    for c in range(channels):
        row = thresholds[c][finite[c]]
        u[c, : min(k, 3)] = row[torch.randint(len(row), (min(k, 3),))]
    assert torch.equal(binary_search_index(u, thresholds), torch.searchsorted(thresholds, u))


def test_compiled_level_index_agrees_with_searchsorted() -> None:
    rng = np.random.default_rng(7)
    thresholds = padded_rows(rng, 4, [1, 2, 4, 8])
    u = torch.from_numpy(rng.normal(size=(4, 300)).astype(np.float32))
    compiled = torch.compile(level_index, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(u, thresholds), torch.searchsorted(thresholds, u))


def test_rows_of_other_widths_are_refused() -> None:
    try:
        binary_search_index(torch.zeros(1, 2), torch.zeros(1, 4))
    except ValueError as exc:
        assert "2^k - 1" in str(exc)
    else:
        raise AssertionError("a row of 4 thresholds was accepted")
