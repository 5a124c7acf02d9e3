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
