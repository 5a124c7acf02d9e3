from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from quant_reference import nearest, quantize_act_uniform, unsigned_level_set
from torch import nn

from dmbq_worker.quant import LayerQuantConfig, QuantLinear, SchemeConfig, apply_scheme, convert_model

ACT_TABLES = {1: np.array([1.0]), 2: np.array([0.6, 0.4]), 3: np.array([0.5, 0.3, 0.2])}


def linear_layer(c_in: int, c_out: int = 3) -> tuple[QuantLinear, list]:
    model = nn.Sequential(nn.Linear(c_in, c_out))
    layers = convert_model(model)
    return layers[0].module, layers  # type: ignore[return-value]


def conv_layer(c_in: int) -> tuple[nn.Module, list]:
    model = nn.Sequential(nn.Conv2d(c_in, 2, 3))
    layers = convert_model(model)
    return layers[0].module, layers


def act_scheme(name: str, c_out: int, act_bits: list[int], mode: str = "uniform") -> SchemeConfig:
    return SchemeConfig(
        layers={name: LayerQuantConfig(np.full(c_out, 32, np.uint8), np.array(act_bits, np.uint8), mode)},  # type: ignore[arg-type]
        act_tables=dict(ACT_TABLES),
    )


@settings(max_examples=25, deadline=None)
@given(
    act_bits=st.lists(st.sampled_from([1, 2, 3, 4, 8, 32]), min_size=1, max_size=5),
    clip=st.floats(0.2, 4.0),
    seed=st.integers(0, 2**16),
)
def test_uniform_activations_take_the_uniform_levels_of_their_channel(act_bits: list[int], clip: float, seed: int) -> None:
    torch.manual_seed(seed)
    conv, layers = conv_layer(len(act_bits))
    apply_scheme(layers, act_scheme("0", 2, act_bits))
    conv.act_quant.set_clip_(clip)
    x = torch.randn(2, len(act_bits), 4, 4) * 2
    x_hat = conv.act_quant(x).detach().double().numpy()
    expected = quantize_act_uniform(x.double().numpy(), float(np.float32(clip)), np.array(act_bits), 1)
    np.testing.assert_allclose(x_hat, expected, rtol=1e-5, atol=1e-5)


def test_table_mode_uses_the_unsigned_table_times_the_clip() -> None:
    torch.manual_seed(5)
    lin, layers = linear_layer(3)
    apply_scheme(layers, act_scheme("0", 3, [1, 2, 3], mode="table"))
    lin.act_quant.set_clip_(2.0)
    x = torch.rand(64, 3) * 3.0
    x_hat = lin.act_quant(x).detach().double().numpy()
    for c, b in enumerate([1, 2, 3]):
        levels = unsigned_level_set(ACT_TABLES[b]) * 2.0
        np.testing.assert_allclose(x_hat[:, c], nearest(np.clip(x[:, c].double().numpy(), 0, 2.0), levels), atol=1e-6)


def test_activation_gradients_follow_the_clipped_ste_and_pact_clip_gradient() -> None:
    torch.manual_seed(6)
    lin, layers = linear_layer(4)
    apply_scheme(layers, act_scheme("0", 3, [2, 3, 1, 32]))
    lin.act_quant.set_clip_(1.0)
    x = (torch.randn(32, 4) * 1.5).requires_grad_(True)
    upstream = torch.randn(32, 4)
    lin.act_quant(x).backward(upstream)
    quantized = torch.tensor([True, True, True, False])
    inside = ((x.detach() >= 0) & (x.detach() <= 1.0)) | ~quantized
    above = (x.detach() > 1.0) & quantized
    assert x.grad is not None and lin.act_quant.clip.grad is not None
    torch.testing.assert_close(x.grad, upstream * inside.float(), rtol=0, atol=0)
    torch.testing.assert_close(lin.act_quant.clip.grad, (upstream * above.float()).sum().reshape(1))


def test_empty_act_bits_keep_activations_in_full_precision() -> None:
    lin, layers = linear_layer(4)
    scheme = SchemeConfig(layers={"0": LayerQuantConfig(np.full(3, 2, np.uint8), None, "uniform")}, weight_tables={2: np.array([1.0, 0.5])})
    apply_scheme(layers, scheme)
    x = torch.randn(5, 4)
    assert torch.equal(lin.act_quant(x), x)


def test_clip_from_the_first_batch() -> None:
    lin, layers = linear_layer(4)
    apply_scheme(layers, act_scheme("0", 3, [2, 2, 2, 2]))
    lin.act_quant.init_clip_from_next_batch()
    lin.train()
    x = torch.rand(256, 4) * 3.0
    lin(x)
    clip = float(lin.act_quant.clip.detach())
    assert 0 < clip <= float(x.max()) + 1e-6
    assert not lin.act_quant.init_clip_pending
    lin(x * 10)
    assert float(lin.act_quant.clip.detach()) == clip  # set once only


def test_channels_last_inputs_quantize_like_contiguous_ones() -> None:
    torch.manual_seed(7)
    for mode in ("uniform", "table"):
        conv, layers = conv_layer(3)
        apply_scheme(layers, act_scheme("0", 2, [1, 2, 3], mode=mode))
        conv.act_quant.set_clip_(1.0)
        x = torch.randn(2, 3, 5, 5)
        a = conv.act_quant(x)
        b = conv.act_quant(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(a, b, rtol=0, atol=0)
