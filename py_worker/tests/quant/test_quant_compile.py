from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dmbq_worker.quant import LayerQuantConfig, SchemeConfig, SensitivityCollector, apply_scheme, convert_model


def quantized_pair() -> tuple[nn.Module, list]:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 3))
    layers = convert_model(model)
    scheme = SchemeConfig(
        layers={
            "0": LayerQuantConfig(np.array([1, 2, 0, 32], np.uint8), np.array([2, 3, 32], np.uint8), "uniform"),
            "3": LayerQuantConfig(np.full(3, 2, np.uint8), np.full(64, 2, np.uint8), "table"),
        },
        weight_tables={1: np.array([1.0], np.float32), 2: np.array([1.1, 0.45], np.float32)},
        act_tables={1: np.array([1.0], np.float32), 2: np.array([0.65, 0.35], np.float32)},
    )
    apply_scheme(layers, scheme)
    return model, layers


def test_torch_compile_runs_forward_and_backward_with_and_without_collection() -> None:
    torch.manual_seed(30)
    eager, eager_layers = quantized_pair()
    model, layers = quantized_pair()
    model.load_state_dict(eager.state_dict())
    eager.eval()
    model.eval()  # no EMA updates: the two copies stay comparable
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(compiled(x), eager(x))
    compiled(x).sum().backward()
    eager(x).sum().backward()
    for p, q in zip(model.parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    # compiled quantizers give the probes signed per-step sums: the collector folds |.| after each backward
    collector = SensitivityCollector(layers, lookahead=True, fold_each_step=True)
    collector.enable()
    compiled(x).sum().backward()
    collector.fold_()
    compiled(x).sum().backward()
    collector.fold_()
    stats = collector.read()
    assert np.all(np.isfinite(stats["0"].weight_sensitivity)) and stats["0"].weight_sensitivity[0] > 0
    assert stats["3"].act_sensitivity_lower is not None and stats["3"].act_sensitivity_lower.sum() > 0
    collector.disable()
    # the same two steps eager (the Function takes |.| itself; folding it again changes nothing)
    reference = SensitivityCollector(eager_layers, lookahead=True)
    reference.enable()
    eager(x).sum().backward()
    eager(x).sum().backward()
    expected = reference.read()
    reference.disable()
    for name in ("0", "3"):
        for key in ("weight_sensitivity", "act_sensitivity", "weight_sensitivity_lower", "act_sensitivity_lower"):
            np.testing.assert_allclose(getattr(stats[name], key), getattr(expected[name], key), rtol=1e-5, atol=1e-8)
    with_hist = SensitivityCollector(layers, histogram_bins=8)
    with_hist.enable()
    model.train()  # histograms and the EMA run in training mode only
    compiled(x).sum().backward()
    hist = with_hist.read()["0"]
    assert hist.act_hist is not None and hist.act_hist[2].sum() == x.numel()
    assert hist.weight_hist is not None and hist.weight_hist[2].sum() == model[0].weight.numel()


def test_inductor_compiles_a_small_quantized_layer() -> None:
    torch.manual_seed(31)
    model, _ = quantized_pair()
    layer = model[0]
    layer.train()
    compiled = torch.compile(layer)
    x = torch.randn(2, 3, 4, 4)
    y = compiled(x)
    y.sum().backward()
    assert y.shape == (2, 4, 4, 4) and layer.weight.grad is not None
    assert torch.all(y.detach()[:, 2] == layer.bias.detach()[2])  # the pruned channel leaves only its bias
