from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from quant_reference import quantize_act_uniform, quantize_weight_rows
from torch import nn

from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant import (
    LayerQuantConfig,
    SchemeConfig,
    SensitivityCollector,
    apply_scheme,
    convert_model,
    stats_to_proto,
)

W_TABLES = {1: np.array([1.0]), 2: np.array([1.1, 0.45]), 3: np.array([1.2, 0.6, 0.3])}


def scheme(name: str, wbits: list[int], abits: list[int] | None) -> SchemeConfig:
    return SchemeConfig(
        layers={
            name: LayerQuantConfig(
                np.array(wbits, np.uint8), None if abits is None else np.array(abits, np.uint8), "uniform"
            )
        },
        weight_tables=dict(W_TABLES),
    )


def test_linear_sensitivities_equal_a_float64_reference_by_hand() -> None:
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(4, 3))
    layers = convert_model(model)
    lin = layers[0].module
    wbits, abits = np.array([1, 2, 3]), np.array([1, 2, 3, 32])
    apply_scheme(layers, scheme("0", wbits.tolist(), abits.tolist()))
    lin.act_quant.set_clip_(1.0)
    collector = SensitivityCollector(layers, lookahead=True)
    collector.enable()
    model.train()

    w = lin.weight.detach().double().numpy()
    b = lin.bias.detach().double().numpy()
    expected = {k: 0.0 for k in ("w", "a", "wl", "al")}
    for step in range(3):
        x = torch.randn(8, 4) * 1.2
        r = torch.randn(8, 3)
        y = model(x)
        (y * r).sum().backward()
        s = lin.weight_quant.scale.double().numpy()  # the scale this forward used (after its EMA update)
        xd, rd = x.double().numpy(), r.double().numpy()
        w_hat = quantize_weight_rows(w, s, wbits, W_TABLES)
        x_hat = quantize_act_uniform(xd, 1.0, abits, 1)
        np.testing.assert_allclose(y.detach().double().numpy(), x_hat @ w_hat.T + b, rtol=1e-5, atol=1e-5)
        g_w = rd.T @ x_hat  # dL/dw_hat
        g_x = rd @ w_hat  # dL/dx_hat
        expected["w"] += np.abs(((w - w_hat) * g_w).sum(axis=1)) / 4
        expected["a"] += np.abs(((xd - x_hat) * g_x).sum(axis=0)) / 8
        w_low = quantize_weight_rows(w, s, wbits, W_TABLES, lower=True)
        x_low = quantize_act_uniform(xd, 1.0, abits, 1, lower=True)
        expected["wl"] += np.abs(((w - w_low) * g_w).sum(axis=1)) / 4
        expected["al"] += np.abs(((xd - x_low) * g_x).sum(axis=0)) / 8

    got = collector.read()["0"]
    np.testing.assert_allclose(got.weight_sensitivity, expected["w"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.act_sensitivity, expected["a"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.weight_sensitivity_lower, expected["wl"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.act_sensitivity_lower, expected["al"], rtol=1e-4, atol=1e-7)
    assert got.act_sensitivity[3] == 0.0  # an FP channel costs nothing
    assert np.all(got.weight_sensitivity_lower[0] > 0)  # 1 -> 0 bits: the whole channel is the error


def test_conv_sensitivities_equal_a_float64_reference() -> None:
    torch.manual_seed(11)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    layers = convert_model(model)
    conv = layers[0].module
    wbits, abits = np.array([2, 0, 3, 32]), np.array([2, 1, 3])
    apply_scheme(layers, scheme("0", wbits.tolist(), abits.tolist()))
    conv.act_quant.set_clip_(0.8)
    collector = SensitivityCollector(layers, lookahead=True)
    collector.enable()
    model.train()
    w = conv.weight.detach().double().numpy()
    w_flat = w.reshape(4, -1)
    exp_w = np.zeros(4)
    exp_a = np.zeros(3)
    exp_wl = np.zeros(4)
    exp_al = np.zeros(3)
    for _ in range(2):
        x = torch.randn(2, 3, 5, 5)
        r = torch.randn(2, 4, 5, 5)
        (model(x) * r).sum().backward()
        s = conv.weight_quant.scale.double().numpy()
        clip = float(np.float32(0.8))
        w_hat = torch.tensor(quantize_weight_rows(w_flat, s, wbits, W_TABLES).reshape(w.shape), requires_grad=True)
        x_hat = torch.tensor(quantize_act_uniform(x.double().numpy(), clip, abits, 1), requires_grad=True)
        (F.conv2d(x_hat, w_hat, conv.bias.detach().double(), padding=1) * r.double()).sum().backward()
        g_w = w_hat.grad.numpy().reshape(4, -1)
        g_x = x_hat.grad.numpy()
        xd = x.double().numpy()
        exp_w += np.abs(((w_flat - w_hat.detach().numpy().reshape(4, -1)) * g_w).sum(axis=1)) / 27
        exp_a += np.abs(((xd - x_hat.detach().numpy()) * g_x).sum(axis=(0, 2, 3))) / 50
        w_low = quantize_weight_rows(w_flat, s, wbits, W_TABLES, lower=True)
        x_low = quantize_act_uniform(xd, clip, abits, 1, lower=True)
        exp_wl += np.abs(((w_flat - w_low) * g_w).sum(axis=1)) / 27
        exp_al += np.abs(((xd - x_low) * g_x).sum(axis=(0, 2, 3))) / 50
    got = collector.read()["0"]
    np.testing.assert_allclose(got.weight_sensitivity, exp_w, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.act_sensitivity, exp_a, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.weight_sensitivity_lower, exp_wl, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.act_sensitivity_lower, exp_al, rtol=1e-4, atol=1e-7)
    assert got.weight_sensitivity[3] == 0.0


def test_collection_changes_no_gradient_and_disable_reset_work() -> None:
    torch.manual_seed(12)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    layers = convert_model(model)
    apply_scheme(layers, scheme("0", [2, 3, 1], [2, 2]))
    x = torch.randn(4, 2, 4, 4)
    model.eval()
    model(x).square().sum().backward()
    # FP layers skip the quantizer when not collecting, so their clip has no gradient: count that as 0.
    plain = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    collector = SensitivityCollector(layers, lookahead=True)
    collector.enable()
    model(x).square().sum().backward()
    for p, g in zip(model.parameters(), plain):
        torch.testing.assert_close(torch.zeros_like(p) if p.grad is None else p.grad, g, rtol=0, atol=0)
    once = collector.read()["0"].weight_sensitivity
    assert np.all(once > 0)
    collector.disable()
    model(x).square().sum().backward()
    np.testing.assert_array_equal(collector.read()["0"].weight_sensitivity, once)
    collector.enable()
    model(x).square().sum().backward()
    np.testing.assert_allclose(collector.read()["0"].weight_sensitivity, 2 * once, rtol=1e-6)
    collector.reset()
    assert np.all(collector.read()["0"].weight_sensitivity == 0)


def test_histogram_counts_sum_to_the_element_count() -> None:
    torch.manual_seed(13)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
    layers = convert_model(model)
    apply_scheme(layers, scheme("0", [2, 2, 3, 32], [2, 2, 2]))
    collector = SensitivityCollector(layers, histogram_bins=20)
    collector.enable()
    model.train()
    steps = 3
    for _ in range(steps):
        model(torch.randn(6, 3, 4, 4) * 3).sum().backward()
    stats = collector.read()
    conv_stats, lin_stats = stats["0"], stats["3"]
    assert conv_stats.weight_hist is not None and conv_stats.act_hist is not None
    lo, hi, counts = conv_stats.weight_hist
    assert lo == -hi and hi > 0 and counts.shape == (20,)
    assert counts.sum() == steps * 4 * 3 * 9
    assert conv_stats.act_hist[2].sum() == steps * 6 * 3 * 4 * 4
    assert lin_stats.act_hist is not None and lin_stats.act_hist[2].sum() == steps * 6 * 16
    assert lin_stats.act_hist[:2] == (0.0, 1.5)


def test_lookahead_needs_the_table_one_bit_lower() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    layers = convert_model(model)
    s = scheme("0", [3, 3], None)
    s.weight_tables = {3: W_TABLES[3]}
    apply_scheme(layers, s)
    try:
        SensitivityCollector(layers, lookahead=True).enable()
    except WorkerError as e:
        assert e.field == "run.lookahead" and "'0'" in e.message
    else:
        raise AssertionError("look-ahead without the 2-bit table must fail")
    SensitivityCollector(layers, lookahead=False).enable()


def test_stats_to_proto_packs_little_endian_float32() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    layers = convert_model(model)
    apply_scheme(layers, scheme("0", [2, 1], [2, 2, 2]))
    c = SensitivityCollector(layers, lookahead=True, histogram_bins=4)
    c.enable()
    model.train()
    model(torch.randn(5, 3)).sum().backward()
    s = c.read()["0"]
    msg = pb.LayerStats.FromString(stats_to_proto("0", s).SerializeToString())
    assert msg.name == "0"
    np.testing.assert_array_equal(np.frombuffer(msg.weight_sensitivity_f32, "<f4"), s.weight_sensitivity)
    np.testing.assert_array_equal(np.frombuffer(msg.act_sensitivity_lower_f32, "<f4"), s.act_sensitivity_lower)
    np.testing.assert_array_equal(np.frombuffer(msg.weight_scale_f32, "<f4"), s.weight_scale)
    assert np.frombuffer(msg.act_clip_f32, "<f4").shape == (1,)
    assert s.weight_hist is not None
    assert msg.weight_hist.hi == np.float32(s.weight_hist[1])
    assert np.frombuffer(msg.act_hist.counts_f32, "<f4").sum() == 15
