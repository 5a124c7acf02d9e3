from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from quant_reference import nearest, signed_level_set
from torch import nn

from dmbq_worker.quant import LayerQuantConfig, QuantConv2d, SchemeConfig, apply_scheme, convert_model

TABLES = {
    1: np.array([1.0]),
    2: np.array([1.1, 0.45]),
    3: np.array([1.2, 0.6, 0.3]),
    4: np.array([1.3, 0.65, 0.33, 0.17]),
    5: np.array([1.3, 0.65, 0.33, 0.17, 0.08]),
    6: np.array([1.3, 0.65, 0.33, 0.17, 0.08, 0.04]),
    7: np.array([1.3, 0.65, 0.33, 0.17, 0.08, 0.04, 0.02]),
    8: np.array([1.3, 0.65, 0.33, 0.17, 0.08, 0.04, 0.02, 0.01]),
}


def one_conv(c_in: int, c_out: int, k: int = 3) -> tuple[nn.Sequential, QuantConv2d, list]:
    model = nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=1))
    layers = convert_model(model)
    return model, layers[0].module, layers  # type: ignore[return-value]


def scheme_for(name: str, bits: np.ndarray, act_bits: np.ndarray | None = None) -> SchemeConfig:
    return SchemeConfig(
        layers={name: LayerQuantConfig(bits.astype(np.uint8), act_bits, "uniform")},
        weight_tables={b: t for b, t in TABLES.items()},
    )


bits_values = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 32])


@settings(max_examples=25, deadline=None)
@given(
    bits=st.lists(bits_values, min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
    spread=st.floats(0.05, 5.0),
)
def test_weights_take_only_the_levels_of_their_channel_times_scale(bits: list[int], seed: int, spread: float) -> None:
    torch.manual_seed(seed)
    _, conv, layers = one_conv(2, len(bits))
    with torch.no_grad():
        conv.weight.mul_(spread)
    conv.eval()
    conv.weight_quant.reset_scale_(conv.weight)
    b = np.array(bits)
    apply_scheme(layers, scheme_for("0", b))
    w_hat = conv.weight_quant(conv.weight).detach().double().reshape(len(bits), -1).numpy()
    w = conv.weight.detach().double().reshape(len(bits), -1).numpy()
    s = conv.weight_quant.scale.double().numpy()
    for c, bc in enumerate(bits):
        if bc == 32:
            np.testing.assert_array_equal(w_hat[c], w[c])
        elif bc == 0:
            assert np.all(w_hat[c] == 0.0)
        else:
            levels = signed_level_set(TABLES[bc])
            u_hat = w_hat[c] / s[c]
            # every value is one of the channel's levels ...
            assert np.abs(u_hat[:, None] - levels[None, :]).min(axis=1).max() < 1e-5
            # ... and the nearest one to w / s (float32 rounding at a midpoint allowed)
            u = w[c] / s[c]
            best = np.abs(u - nearest(u, levels))
            assert np.all(np.abs(u - u_hat) <= best + 1e-5)


def test_pruned_channels_are_exactly_zero_with_zero_gradient() -> None:
    torch.manual_seed(1)
    _, conv, layers = one_conv(3, 4)
    apply_scheme(layers, scheme_for("0", np.array([0, 2, 0, 32])))
    w_hat = conv.weight_quant(conv.weight)
    assert torch.all(w_hat[0] == 0) and torch.all(w_hat[2] == 0)
    assert torch.count_nonzero(w_hat[1]) > 0
    w_hat.backward(torch.randn_like(w_hat))
    assert conv.weight.grad is not None
    assert torch.all(conv.weight.grad[0] == 0) and torch.all(conv.weight.grad[2] == 0)


def test_weight_gradient_follows_the_clipped_ste() -> None:
    torch.manual_seed(2)
    _, conv, layers = one_conv(4, 3)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 10.0  # far beyond the 2-bit clip of channel 0
        conv.weight[1, 0, 0, 0] = -10.0  # and of channel 1 (1 bit)
    conv.weight_quant.reset_scale_(conv.weight)
    apply_scheme(layers, scheme_for("0", np.array([2, 1, 32])))
    upstream = torch.randn_like(conv.weight)
    conv.weight_quant(conv.weight).backward(upstream)
    s = conv.weight_quant.scale.double()
    top = torch.tensor([sum(TABLES[2]), sum(TABLES[1]), float("inf")], dtype=torch.float64)
    inside = conv.weight.detach().double().abs() <= (s * top).reshape(-1, 1, 1, 1)
    assert not inside[0, 0, 0, 0] and not inside[1, 0, 0, 0]
    assert inside[2].all()
    assert conv.weight.grad is not None
    torch.testing.assert_close(conv.weight.grad, upstream * inside.float(), rtol=0, atol=0)


def test_scale_is_an_ema_of_mean_abs_weight_in_training_only() -> None:
    torch.manual_seed(3)
    _, conv, layers = one_conv(2, 3)
    apply_scheme(layers, scheme_for("0", np.array([2, 2, 2])))
    s0 = conv.weight_quant.scale.clone()
    with torch.no_grad():
        conv.weight.mul_(3.0)
    conv.eval()
    conv(torch.randn(1, 2, 5, 5))
    torch.testing.assert_close(conv.weight_quant.scale, s0)  # eval: unchanged
    conv.train()
    conv(torch.randn(1, 2, 5, 5))
    mean_abs = conv.weight.detach().abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(conv.weight_quant.scale, 0.99 * s0 + 0.01 * mean_abs)
    assert not conv.weight_quant.scale.requires_grad


def test_scale_starts_at_mean_abs_weight_when_first_quantized() -> None:
    torch.manual_seed(4)
    _, conv, layers = one_conv(2, 3)
    with torch.no_grad():
        conv.weight.mul_(7.0)  # trained since conversion, scale stale
    apply_scheme(layers, scheme_for("0", np.array([2, 3, 4])))
    torch.testing.assert_close(conv.weight_quant.scale, conv.weight.detach().abs().mean(dim=(1, 2, 3)))


# min-max tables (levels.json's "uniformMax"): alpha_i = 2^(M-1-i) / (2^M - 1), uniform levels whose top one is 1
MIN_MAX_TABLES = {b: np.array([2.0 ** (b - 1 - i) / (2.0**b - 1) for i in range(b)]) for b in range(1, 9)}


def max_abs_conv(c_in: int, c_out: int) -> tuple[QuantConv2d, list]:
    layers = convert_model(nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1)), scale_statistic="max_abs")
    return layers[0].module, layers  # type: ignore[return-value]


def test_max_abs_scale_starts_at_the_channel_max_and_its_ema_steps_towards_it() -> None:
    torch.manual_seed(5)
    conv, layers = max_abs_conv(2, 3)
    max_abs = conv.weight.detach().abs().amax(dim=(1, 2, 3))
    torch.testing.assert_close(conv.weight_quant.scale, max_abs, rtol=0, atol=0)  # at conversion
    with torch.no_grad():
        conv.weight.mul_(7.0)  # trained since conversion, scale stale
    apply_scheme(layers, SchemeConfig(layers={"0": LayerQuantConfig(np.full(3, 2, np.uint8), None)},
                                      weight_tables=dict(MIN_MAX_TABLES)))
    torch.testing.assert_close(conv.weight_quant.scale, 7.0 * max_abs)  # first quantized: the max again
    s0 = conv.weight_quant.scale.clone()
    with torch.no_grad():
        conv.weight.mul_(0.5)
    conv.train()
    conv(torch.randn(1, 2, 5, 5))
    step = conv.weight.detach().abs().amax(dim=(1, 2, 3))
    torch.testing.assert_close(conv.weight_quant.scale, 0.99 * s0 + 0.01 * step)
    assert not torch.allclose(step, conv.weight.detach().abs().mean(dim=(1, 2, 3)))  # max and mean tell apart


def test_max_abs_scale_with_the_min_max_table_puts_the_top_level_on_each_channels_max() -> None:
    torch.manual_seed(6)
    conv, layers = max_abs_conv(3, 5)
    apply_scheme(layers, SchemeConfig(layers={"0": LayerQuantConfig(np.array([1, 2, 2, 3, 4], np.uint8), None)},
                                      weight_tables=dict(MIN_MAX_TABLES)))
    conv.eval()
    w = conv.weight.detach()
    w_hat = conv.weight_quant(conv.weight).detach()
    top = MIN_MAX_TABLES[2].sum()
    assert top == 1.0
    # the largest quantized magnitude of a channel is its scale x the top level, which is max|w_c| at reset
    torch.testing.assert_close(w_hat.abs().amax(dim=(1, 2, 3)), conv.weight_quant.scale * float(top), rtol=0, atol=0)
    torch.testing.assert_close(w_hat.abs().amax(dim=(1, 2, 3)), w.abs().amax(dim=(1, 2, 3)), rtol=0, atol=0)
    # 2 bits: {-1, -1/3, +1/3, +1} x max|w_c|
    s = conv.weight_quant.scale.double()
    u = (w_hat[1:3].double() / s[1:3].reshape(-1, 1, 1, 1)).flatten()
    assert set(np.round(u.numpy(), 6)) <= {-1.0, round(-1 / 3, 6), round(1 / 3, 6), 1.0}


def test_the_default_scale_statistic_is_mean_abs() -> None:
    _, conv, _ = one_conv(2, 3)
    assert conv.weight_quant.statistic == "mean_abs"
    torch.testing.assert_close(conv.weight_quant.scale, conv.weight.detach().abs().mean(dim=(1, 2, 3)), rtol=0,
                               atol=0)
