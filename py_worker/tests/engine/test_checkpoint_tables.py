"""The quantizers' padded tables in a state dict: compact (distinct rows cut after their padding), lossless, and
state dicts of the old form (the full [C, 256] tables) still load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dmbq_worker.engine.models import build_model
from dmbq_worker.quant import LayerQuantConfig, SchemeConfig, apply_scheme, convert_model
from dmbq_worker.quant.levels import MAX_LEVELS, padded_row, signed_levels, unsigned_levels, zero_row
from dmbq_worker.quant.table_state import (
    ROW_OF_SUFFIX,
    ROWS_SUFFIX,
    CompactTablesState,
    pack_table_rows,
    unpack_table_rows,
)


def as_bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def assert_round_trip(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, row_of = pack_table_rows(table)
    back = unpack_table_rows(rows, row_of, *table.shape)
    assert torch.equal(as_bits(back), as_bits(table))  # bit for bit: -0.0 and NaN payloads too
    k = rows.shape[1]
    if k > 1:  # cut as short as possible: some row still changes in its last kept column
        assert bool((as_bits(table)[:, k - 1] != as_bits(table)[:, k - 2]).any())
    assert rows.shape[0] == torch.unique(as_bits(table), dim=0).shape[0]
    return rows, row_of


alphas = st.lists(st.floats(0.0625, 4.0, width=32), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(widths=st.lists(alphas, min_size=1, max_size=4), signed=st.booleans(),
       channels=st.lists(st.integers(0, 4), min_size=1, max_size=40))
def test_level_tables_round_trip_and_shrink_to_their_widths(
    widths: list[list[float]], signed: bool, channels: list[int]
) -> None:
    """Real tables: each channel holds the row of one width (index len(widths): the 0-bit/FP zero row)."""
    rows = [padded_row(signed_levels(np.array(a)) if signed else unsigned_levels(np.array(a))) for a in widths]
    rows.append(zero_row())
    pick = [min(c, len(rows) - 1) for c in channels]
    levels = torch.from_numpy(np.stack([rows[i][0] for i in pick]))
    thresholds = torch.from_numpy(np.stack([rows[i][1] for i in pick]))
    lv_rows, _ = assert_round_trip(levels)
    th_rows, _ = assert_round_trip(thresholds)
    longest = max(2 ** len(widths[i]) for i in pick if i < len(widths)) if any(i < len(widths) for i in pick) else 1
    assert lv_rows.shape[1] <= longest and th_rows.shape[1] <= longest
    assert lv_rows.shape[0] <= len(set(pick)) and th_rows.shape[0] <= len(set(pick))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12).flatmap(lambda w: st.lists(
    st.lists(st.sampled_from([0.0, -0.0, 1.5, -2.0, float("inf"), float("nan")]), min_size=w, max_size=w),
    min_size=1, max_size=12)))
def test_any_table_round_trips_bit_for_bit(values: list[list[float]]) -> None:
    assert_round_trip(torch.tensor(values, dtype=torch.float32))


def test_unpack_names_what_does_not_fit() -> None:
    rows, row_of = pack_table_rows(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="row_of must be 4"):
        unpack_table_rows(rows, row_of, 4, 8)
    with pytest.raises(ValueError, match="outside 0..0"):
        unpack_table_rows(rows, torch.tensor([0, 1, 0], dtype=torch.uint8), 3, 8)
    with pytest.raises(ValueError, match="rows must be"):
        unpack_table_rows(torch.zeros(1, 9), row_of, 3, 8)


# ---------------------------------------------------------------- whole models


def mixed_model() -> tuple[nn.Module, list]:
    """A conv with 1/2/3/0/FP weight channels and table-mode activations of 1..3 bits, then a linear layer."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16, 5))
    layers = convert_model(model, example_input=torch.zeros(1, 3, 4, 4))
    apply_scheme(layers, SchemeConfig(
        layers={
            "2": LayerQuantConfig(np.array([1, 2, 3, 0], np.uint8), np.array([1, 2, 3, 3, 32, 2], np.uint8), "table"),
            "5": LayerQuantConfig(np.full(5, 8, np.uint8), np.full(16, 2, np.uint8), "uniform"),
        },
        weight_tables={b: np.array([0.9 ** i for i in range(b)], np.float32) for b in (1, 2, 3, 7, 8)},
        act_tables={b: np.array([0.5 ** i for i in range(b)], np.float32) for b in (1, 2, 3)},
    ))
    return model, layers


def quantizer_tables(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.{t}": getattr(m, t).clone() for name, m in model.named_modules()
            if isinstance(m, CompactTablesState) for t in m.compact_tables}


def old_form(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as it was before the compact form: every padded table in full under its buffer name."""
    out = {k: v for k, v in state.items() if not k.endswith((ROWS_SUFFIX, ROW_OF_SUFFIX))}
    out.update(quantizer_tables(model))
    return out


def test_a_state_dict_alone_restores_every_table_and_mode() -> None:
    src, src_layers = mixed_model()
    dst = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
    dst_layers = convert_model(dst, example_input=torch.zeros(1, 3, 4, 4))
    state = src.state_dict()
    assert not any(k.endswith(("levels", "thresholds")) for k in state)  # none of the [C, 256] tables in full
    dst.load_state_dict(state)
    expected, got = quantizer_tables(src), quantizer_tables(dst)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(as_bits(expected[key]), as_bits(got[key])), key
    aq = dst_layers[1].module.act_quant
    assert aq.mode == "table" and not aq.all_full_precision and aq.any_full_precision
    assert dst_layers[1].module.weight_quant.lower_available == src_layers[1].module.weight_quant.lower_available
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(dst.eval()(x), src.eval()(x))


def test_old_form_state_dicts_load_and_bad_ones_are_named() -> None:
    src, _ = mixed_model()
    legacy = old_form(src.state_dict(), src)
    assert legacy["2.weight_quant.levels"].shape == (4, MAX_LEVELS)
    dst, _ = mixed_model()
    for t in quantizer_tables(dst):
        dst.get_buffer(t).fill_(7.0)  # nothing left over from the scheme: the tables must come from the file
    dst.load_state_dict(legacy, strict=True)
    for key, value in quantizer_tables(src).items():
        assert torch.equal(as_bits(dst.get_buffer(key)), as_bits(value)), key

    bad = dict(src.state_dict())
    bad["2.act_quant.levels" + ROW_OF_SUFFIX] = torch.full((6,), 9, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match=r"2\.act_quant\.levels_rows / 2\.act_quant\.levels_row_of: .*outside"):
        dst.load_state_dict(bad)
    missing = {k: v for k, v in src.state_dict().items() if not k.startswith("5.weight_quant.thresholds")}
    with pytest.raises(RuntimeError, match=r"5\.weight_quant\.thresholds_rows"):
        dst.load_state_dict(missing)
    wrong = old_form(src.state_dict(), src)
    wrong["5.act_quant.levels"] = torch.zeros(3, MAX_LEVELS)
    with pytest.raises(RuntimeError, match=r"size mismatch for 5\.act_quant\.levels"):
        dst.load_state_dict(wrong)


def test_resnet20_quantizer_state_is_small_next_to_its_weights() -> None:
    model = build_model("resnet20", 10)
    layers = convert_model(model, example_input=torch.zeros(1, 3, 32, 32))
    apply_scheme(layers, SchemeConfig(
        layers={r.name: LayerQuantConfig(np.full(r.module.weight.shape[0], 2, np.uint8),
                                         np.full(r.module.act_quant.in_channels, 2, np.uint8))
                for r in layers},
        weight_tables={1: np.array([1.0], np.float32), 2: np.array([1.594, 1.0], np.float32)},
    ))
    state = model.state_dict()
    quant = sum(v.numel() * v.element_size() for k, v in state.items() if "_quant." in k)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    # the full tables were 5.3x the weights here; bits, scales, clips and the compact tables are a few percent
    assert quant < 0.05 * weights, (quant, weights)
