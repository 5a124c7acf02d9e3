"""Compiled (inductor) training steps of quantized layers give the eager gradients; the scale EMA as a step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmbq_worker.quant import (
    LayerQuantConfig,
    QuantLayerRef,
    ScaleUpdater,
    SchemeConfig,
    apply_scheme,
    convert_model,
)
from dmbq_worker.quant.compile_check import compare_compiled_training

TABLES = {bits: np.asarray([1.6 * 2.0 ** (-i) for i in range(bits)], np.float32) for bits in range(1, 9)}


def conv_bn_avgpool() -> tuple[nn.Module, list[QuantLayerRef], torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 16, 10),
    )
    x = torch.randn(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    return model, convert_model(model, example_input=x), x, y


def scheme(body_bits: int, mixed: bool = False) -> SchemeConfig:
    rng = np.random.default_rng(1)
    body = rng.integers(1, 5, 16).astype(np.uint8) if mixed else np.full(16, body_bits, np.uint8)
    acts = rng.integers(1, 5, 8).astype(np.uint8) if mixed else np.full(8, body_bits, np.uint8)
    return SchemeConfig(
        layers={
            "0": LayerQuantConfig(np.full(8, 8, np.uint8), None),
            "3": LayerQuantConfig(body, acts, "uniform"),
            "8": LayerQuantConfig(np.full(10, 8, np.uint8), np.full(256, 8, np.uint8), "uniform"),
        },
        weight_tables=TABLES,
    )


@pytest.mark.parametrize(
    ("name", "cfg", "collect"),
    [("W2/A2 mixed 1-4 + sensitivities + look-ahead", scheme(2, mixed=True), True), ("W4/A4", scheme(4), False)],
)
def test_inductor_training_steps_give_the_eager_gradients(name: str, cfg: SchemeConfig, collect: bool) -> None:
    model, layers, x, y = conv_bn_avgpool()
    apply_scheme(layers, cfg)
    torch._dynamo.reset()
    result = compare_compiled_training(model, layers, x, y, steps=2, backend="inductor", sensitivity=collect,
                                       lookahead=collect)
    assert max([result.output, result.scales, *result.grads.values()]) <= 1e-5, (name, result)
    # a sensitivity is |sum of (x - x_hat) * g|: a float32 sum with cancellation, so a reduction in another order
    # moves it by more than a gradient (seen: 3e-5 of the largest channel's value)
    assert max(result.sensitivities.values(), default=0.0) <= 1e-4, (name, result)
    assert not collect or len(result.sensitivities) == 4 * len(layers)


def test_scale_updater_step_equals_the_in_forward_ema_and_takes_it_out_of_forward() -> None:
    model, layers, x, _ = conv_bn_avgpool()
    apply_scheme(layers, scheme(2))
    wq = layers[1].module.weight_quant
    with torch.no_grad():
        layers[1].module.weight.mul_(2.0)  # weights moved since the scale was set
    s0 = wq.scale.clone()
    model.train()
    model(x)  # standalone mode: the forward folds in one EMA step
    in_forward = wq.scale.clone()
    wq.scale.copy_(s0)
    updater = ScaleUpdater(layers)
    model(x)
    torch.testing.assert_close(wq.scale, s0, rtol=0, atol=0)  # the forward leaves it alone now
    updater.step()
    torch.testing.assert_close(wq.scale, in_forward)
    assert not torch.equal(in_forward, s0)
    updater.release()
    model(x)
    assert not torch.equal(wq.scale, in_forward)


def test_lattice_ties_see_the_same_scale_compiled_and_eager() -> None:
    """The root-cause case: no BN between a bias-free quantized conv and the next quantizer, so many conv outputs
    are sums that are exactly 0 in real arithmetic and the STE mask (x >= 0) sits right on them. With the scale
    EMA inside the forward, inductor's rounding of the update moved s_c by an ulp and flipped those masks (9% of
    the largest weight gradient); with ScaleUpdater both paths quantize with the same s_c."""
    torch.manual_seed(0)
    x = torch.randn(16, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(512, 10))
    layers = convert_model(model, example_input=x)
    laplace = {2: np.asarray([1.594, 1.0], np.float32), 8: TABLES[8]}
    apply_scheme(layers, SchemeConfig(
        layers={
            "0": LayerQuantConfig(np.full(8, 8, np.uint8), None),
            "2": LayerQuantConfig(np.full(8, 2, np.uint8), np.full(8, 2, np.uint8), "uniform"),
            "4": LayerQuantConfig(np.full(10, 8, np.uint8), np.full(512, 8, np.uint8), "uniform"),
        },
        weight_tables=laplace,
    ))
    torch._dynamo.reset()
    result = compare_compiled_training(model, layers, x, y, steps=2, backend="inductor")
    assert max(result.grads.values()) <= 1e-5, result
