"""The fused (Triton) quantizers against the torch-op path and a float64 reference.

On a machine without a GPU the kernels run in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before
torch imports Triton; each test opts in with DMBQ_FUSED_QUANT=interpret). Without Triton the module is skipped: the
worker then never takes the fused path.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
import pytest
import torch
from quant_reference import quantize_act_uniform, quantize_weight_rows
from torch import nn

from dmbq_worker.quant import (
    LayerQuantConfig,
    SchemeConfig,
    SensitivityCollector,
    WeightQuantizer,
    apply_scheme,
    convert_model,
)
from dmbq_worker.quant import fused
from dmbq_worker.quant.fused_check import compare_acts, compare_weight_batch, compare_weights
from dmbq_worker.quant.weight_quantizer import ScaleStatistic

pytestmark = pytest.mark.skipif(
    not fused.TRITON_FOUND or (not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"),
    reason="needs Triton (a GPU, or its interpreter with TRITON_INTERPRET=1 set before torch imports it)",
)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# Triton's interpreter rounds float32 -> bfloat16 by truncation (CUDA: to nearest even): one ulp apart at most there
BF16_ULPS = 0.0 if DEVICE.type == "cuda" else 1.0
W_TABLES = {1: np.array([1.0]), 2: np.array([1.1, 0.45]), 3: np.array([1.2, 0.6, 0.3])}


class FusedCalls:
    """Counts the fused Functions' forwards, so a test knows the fused path really ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.weight = 0
        self.act = 0
        self.weight_batch = 0  # FusedWeightBatchSTE: every layer's weights in one launch (WeightBatcher)
        for cls, attr in ((fused.FusedWeightQuantSTE, "weight"), (fused.FusedUniformActQuantSTE, "act"),
                          (fused.FusedWeightBatchSTE, "weight_batch")):
            original = cls.forward

            def counted(*args: object, _original: object = original, _attr: str = attr) -> object:
                setattr(self, _attr, getattr(self, _attr) + 1)
                return _original(*args)  # type: ignore[operator]

            monkeypatch.setattr(cls, "forward", staticmethod(counted))


@pytest.fixture
def fused_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[FusedCalls]:
    if DEVICE.type == "cpu":
        monkeypatch.setenv("DMBQ_FUSED_QUANT", "interpret")
    yield FusedCalls(monkeypatch)


@pytest.mark.parametrize("statistic", ["mean_abs", "max_abs"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(12, 8, 3, 3), (7, 40), (5, 1500)])
def test_fused_weight_quantizer_equals_the_torch_ops(fused_path: FusedCalls, dtype: torch.dtype,
                                                     shape: tuple[int, ...], statistic: ScaleStatistic) -> None:
    """max_abs: max|w| scales with the min-max tables, every channel's largest weight on its top level (the clip)."""
    d = compare_weights(DEVICE, dtype, shape, seed=1, statistic=statistic)
    assert d.ok(BF16_ULPS if dtype == torch.bfloat16 else 0.0), d


@pytest.mark.parametrize("statistic", ["mean_abs", "max_abs"])
def test_the_one_launch_weight_batch_equals_the_torch_ops(fused_path: FusedCalls, statistic: ScaleStatistic) -> None:
    """FusedWeightBatchSTE over several layers at once: w_hat, weight gradients and sums as the Function's."""
    d = compare_weight_batch(DEVICE, None, seed=2, statistic=statistic)
    assert d.ok(0.0), d
    assert fused_path.weight_batch == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 12, 6, 6), (3, 70, 5, 5), (16, 90)])
def test_fused_act_quantizer_equals_the_torch_ops(fused_path: FusedCalls, dtype: torch.dtype,
                                                  shape: tuple[int, ...]) -> None:
    d = compare_acts(DEVICE, dtype, shape, seed=2)
    assert d.ok(BF16_ULPS if dtype == torch.bfloat16 else 0.0), d


@pytest.mark.parametrize("kind,shape", [("weight", (12, 8, 3, 3)), ("weight", (7, 40)), ("act", (4, 12, 6, 6)),
                                        ("act", (16, 90))])
def test_fused_quantizers_emit_the_autocast_dtype_as_the_cast_would(fused_path: FusedCalls, kind: str,
                                                                    shape: tuple[int, ...]) -> None:
    """float32 in, bfloat16 out (what autocast hands the conv), gradient back in float32: equal to the Function's
    output cast to bfloat16, and to its gradient through that cast."""
    fn = compare_weights if kind == "weight" else compare_acts
    d = fn(DEVICE, torch.float32, shape, seed=3, out_dtype=torch.bfloat16)
    assert d.ok(BF16_ULPS), d


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 12, 6, 6), (3, 70, 5, 5), (16, 90)])
def test_the_folded_relu_equals_relu_then_the_torch_ops(fused_path: FusedCalls, dtype: torch.dtype,
                                                         shape: tuple[int, ...]) -> None:
    """relu_input: values, input gradients (through the ReLU's threshold, zeros included), clip gradient and
    sensitivities as F.relu followed by the torch-op Function."""
    d = compare_acts(DEVICE, dtype, shape, seed=4, relu_input=True)
    assert d.ok(BF16_ULPS if dtype == torch.bfloat16 else 0.0), d


@pytest.mark.parametrize("relu_input", [False, True])
@pytest.mark.parametrize("shape", [(5, 12, 7, 7), (3, 70, 5, 5)])
def test_backward_blocks_that_run_several_row_tiles_equal_the_torch_ops(
    fused_path: FusedCalls, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], relu_input: bool,
) -> None:
    """ACT_BWD_ITERS row tiles a block, the last one partly past the rows (small tiles: several blocks, a ragged
    end): gradients, clip gradient and sensitivities as the torch ops."""
    from dmbq_worker.quant import fused

    monkeypatch.setattr(fused, "ACT_BWD_TILE", 64)
    monkeypatch.setattr(fused, "ACT_BWD_ITERS", 3)
    d = compare_acts(DEVICE, torch.float32, shape, seed=6, relu_input=relu_input)
    assert d.ok(0.0), d


@pytest.mark.parametrize("deterministic", ["1", "0"])
@pytest.mark.parametrize("relu_input", [False, True])
def test_both_ways_of_adding_the_blocks_sums_equal_the_torch_ops(
    fused_path: FusedCalls, monkeypatch: pytest.MonkeyPatch, relu_input: bool, deterministic: str,
) -> None:
    """DMBQ_FUSED_DETERMINISTIC=1 (the last block adds every block's partials in a fixed order) and =0 (float
    atomics), over a grid of many row blocks and several column blocks (70 channels, 16 a block), with fewer
    partial rows a load than there are rows of blocks (the last block's loop runs more than once, its last load
    ragged): clip gradient and sensitivities as the torch ops."""
    monkeypatch.setenv("DMBQ_FUSED_DETERMINISTIC", deterministic)
    monkeypatch.setattr(fused, "ACT_BWD_TILE", 64)
    monkeypatch.setattr(fused, "ACT_MAX_BLOCK_C", 16)
    monkeypatch.setattr(fused, "ACT_BWD_RED_R", 4)
    (rows, cols), _, _ = fused._act_grid(3 * 5 * 5, 70, 64, fused.ACT_BWD_ITERS or fused._act_bwd_iters(75, 70))
    assert cols == 5 and rows > 4 and rows % 4 != 0
    d = compare_acts(DEVICE, torch.float32, (3, 70, 5, 5), seed=7, relu_input=relu_input)
    assert d.ok(0.0), d


def test_the_deterministic_backward_leaves_its_count_at_zero_and_repeats_its_sums(
    fused_path: FusedCalls, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The forward zeroes the count of finished blocks and the last block sets it back to 0 (so a second backward,
    which gets no forward, counts from 0); repeated passes give the same sums bit for bit (on a GPU the blocks
    finish in another order each time: python -m dmbq_worker.quant.fused_check runs this on REPEAT_SHAPES)."""
    from dmbq_worker.quant.fused_check import repeat_acts

    monkeypatch.setattr(fused, "ACT_BWD_TILE", 64)
    x = torch.rand(4, 6, 5, 5).to(DEVICE).to(memory_format=torch.channels_last)
    clip = torch.tensor([0.5], device=DEVICE, requires_grad=True)
    y = fused.FusedUniformActQuantSTE.apply(x, clip, torch.full((6,), 3.0, device=DEVICE),
                                            torch.zeros(6, dtype=torch.bool, device=DEVICE), torch.ones(6, device=DEVICE),
                                            None, None, False)
    assert y.grad_fn is not None
    y.sum().backward(retain_graph=True)
    assert int(y.grad_fn.count) == 0
    assert repeat_acts(DEVICE, (2, 6, 5, 5), repeats=3) == 1


def test_a_bad_deterministic_setting_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMBQ_FUSED_DETERMINISTIC", "yes")
    with pytest.raises(ValueError, match=r"DMBQ_FUSED_DETERMINISTIC: 'yes' is not 1 \(on, the default\) or 0 \(off\)"):
        fused.deterministic()
    monkeypatch.delenv("DMBQ_FUSED_DETERMINISTIC")
    assert fused.deterministic()


def test_a_bad_tile_setting_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmbq_worker.quant.fused import _env_int

    monkeypatch.setenv("DMBQ_FUSED_ACT_BWD_ITERS", "-1")
    with pytest.raises(ValueError, match="DMBQ_FUSED_ACT_BWD_ITERS: must be >= 0, got -1"):
        _env_int("DMBQ_FUSED_ACT_BWD_ITERS", 0, 0)
    monkeypatch.setenv("DMBQ_FUSED_ACT_TILE", "big")
    with pytest.raises(ValueError, match="DMBQ_FUSED_ACT_TILE: 'big' is not an integer"):
        _env_int("DMBQ_FUSED_ACT_TILE", 4096, 1)
    monkeypatch.setenv("DMBQ_FUSED_ACT_BWD_ITERS", "2")
    assert _env_int("DMBQ_FUSED_ACT_BWD_ITERS", 0, 0) == 2
    monkeypatch.delenv("DMBQ_FUSED_ACT_TILE")
    assert _env_int("DMBQ_FUSED_ACT_TILE", 4096, 1) == 4096


def test_a_second_backward_through_the_same_graph_gets_the_same_clip_gradient(fused_path: FusedCalls) -> None:
    """The forward kernel zeroes the clip gradient's sum and the first backward hands it on; a second backward
    (retain_graph) must start from zero again, not add into the first one's."""
    x = (torch.randn(4, 6, 5, 5) * 2).to(DEVICE).to(memory_format=torch.channels_last)
    clip = torch.tensor([1.0], device=DEVICE, requires_grad=True)
    n = torch.full((6,), 3.0, device=DEVICE)
    fp = torch.zeros(6, dtype=torch.bool, device=DEVICE)
    y = fused.FusedUniformActQuantSTE.apply(x, clip, n, fp, torch.ones(6, device=DEVICE), None, None, False)
    y.sum().backward(retain_graph=True)
    assert clip.grad is not None
    first = clip.grad.clone()
    assert float(first) == float((x > 1.0).sum())  # d(sum)/dclip: 1 for every saturated element
    clip.grad = None
    y.sum().backward()
    assert torch.equal(clip.grad, first)


def _autocast_step(monkeypatch: pytest.MonkeyPatch, mode: str) -> tuple[torch.Tensor, torch.Tensor, list[torch.dtype]]:
    """One forward and backward of a converted 2-bit conv under bf16 autocast with DMBQ_FUSED_QUANT=mode: the
    output, the weight's gradient and the dtypes the conv itself received (input, weight)."""
    monkeypatch.setenv("DMBQ_FUSED_QUANT", mode)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(6, 8, 3, padding=1, bias=False)).to(DEVICE)
    layers = convert_model(model)
    apply_scheme(layers, _scheme([2] * 8, [2] * 6))
    conv = layers[0].module
    conv.act_quant.set_clip_(1.5)
    seen: list[torch.dtype] = []
    conv_forward = conv._conv_forward

    def recording(inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        seen.extend([inp.dtype, w.dtype])
        return conv_forward(inp, w, b)

    monkeypatch.setattr(conv, "_conv_forward", recording)
    x = (torch.rand(2, 6, 5, 5) * 2).to(DEVICE).to(memory_format=torch.channels_last)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        y = model(x)
    y.float().square().sum().backward()
    assert conv.weight.grad is not None
    return y.detach().float(), conv.weight.grad.clone(), seen


def test_under_autocast_the_quantizers_hand_the_conv_its_dtype(fused_path: FusedCalls,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Float32 input and weight under bf16 autocast: the fused quantizers' outputs reach the conv as bf16 already,
    the weight's gradient comes back in float32, and both equal the torch-op path's (which autocast casts; on CUDA bit
    for bit, in the CPU interpreter to its rounding)."""
    y_f, g_f, seen_f = _autocast_step(monkeypatch, "interpret" if DEVICE.type == "cpu" else "1")
    assert fused_path.weight == 1 and fused_path.act == 1
    assert seen_f == [torch.bfloat16, torch.bfloat16]
    y_t, g_t, _ = _autocast_step(monkeypatch, "0")
    assert g_f.dtype == torch.float32
    if DEVICE.type == "cuda":
        assert torch.equal(y_f, y_t) and torch.equal(g_f, g_t)
    else:  # the interpreter truncates float32 -> bfloat16 (see BF16_ULPS): one ulp of the operands apart
        torch.testing.assert_close(y_f, y_t, rtol=3e-2, atol=3e-2)
        torch.testing.assert_close(g_f, g_t, rtol=3e-2, atol=3e-1)


def _scheme(wbits: list[int], abits: list[int]) -> SchemeConfig:
    cfg = LayerQuantConfig(np.array(wbits, np.uint8), np.array(abits, np.uint8), "uniform")
    return SchemeConfig(layers={"0": cfg}, weight_tables=dict(W_TABLES))


def test_fused_conv_sensitivities_equal_a_float64_reference(fused_path: FusedCalls) -> None:
    """Channels-last input (the layout the fused activation kernel reads), pruned / FP / mixed channels."""
    torch.manual_seed(11)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).to(DEVICE)
    layers = convert_model(model)
    conv = layers[0].module
    wbits, abits = np.array([2, 0, 3, 32]), np.array([2, 1, 32])
    apply_scheme(layers, _scheme(wbits.tolist(), abits.tolist()))
    conv.act_quant.set_clip_(0.8)
    # the fused kernels hand the probes signed per-step sums: the collector folds |.| after each backward
    collector = SensitivityCollector(layers, lookahead=True, fold_each_step=True)
    collector.enable()
    model.train()
    w = conv.weight.detach().double().cpu().numpy()
    w_flat = w.reshape(4, -1)
    exp = {k: np.zeros(n) for k, n in (("w", 4), ("a", 3), ("wl", 4), ("al", 3))}
    for _ in range(2):
        x = torch.randn(2, 3, 5, 5).to(DEVICE).to(memory_format=torch.channels_last)
        r = torch.randn(2, 4, 5, 5).to(DEVICE)
        (model(x) * r).sum().backward()
        collector.fold_()
        s = conv.weight_quant.scale.double().cpu().numpy()
        clip = float(np.float32(0.8))
        w_hat = torch.tensor(quantize_weight_rows(w_flat, s, wbits, W_TABLES).reshape(w.shape), requires_grad=True)
        xd = x.double().cpu().numpy()
        x_hat = torch.tensor(quantize_act_uniform(xd, clip, abits, 1), requires_grad=True)
        bias = conv.bias.detach().double().cpu()
        (nn.functional.conv2d(x_hat, w_hat, bias, padding=1) * r.double().cpu()).sum().backward()
        assert w_hat.grad is not None and x_hat.grad is not None
        g_w, g_x = w_hat.grad.numpy().reshape(4, -1), x_hat.grad.numpy()
        exp["w"] += np.abs(((w_flat - w_hat.detach().numpy().reshape(4, -1)) * g_w).sum(axis=1)) / 27
        exp["a"] += np.abs(((xd - x_hat.detach().numpy()) * g_x).sum(axis=(0, 2, 3))) / 50
        w_low = quantize_weight_rows(w_flat, s, wbits, W_TABLES, lower=True)
        x_low = quantize_act_uniform(xd, clip, abits, 1, lower=True)
        exp["wl"] += np.abs(((w_flat - w_low) * g_w).sum(axis=1)) / 27
        exp["al"] += np.abs(((xd - x_low) * g_x).sum(axis=(0, 2, 3))) / 50
    assert fused_path.weight == 2 and fused_path.act == 2
    got = collector.read()["0"]
    np.testing.assert_allclose(got.weight_sensitivity, exp["w"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.act_sensitivity, exp["a"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.weight_sensitivity_lower, exp["wl"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got.act_sensitivity_lower, exp["al"], rtol=1e-4, atol=1e-7)
    assert got.weight_sensitivity[3] == 0.0 and got.act_sensitivity[2] == 0.0  # FP channels cost nothing


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    )


def _small_resnet() -> nn.Module:
    """ResNet-(6+2) for 5 classes: each block's second conv folds the ReLU before it (models.conv_after_relu)."""
    from dmbq_worker.engine.models import ResNetCifar

    return ResNetCifar(blocks_per_stage=1, num_classes=5)


def _train(steps: int, build: Callable[[], nn.Module] = _small_cnn,
           ) -> tuple[list[float], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    torch.manual_seed(3)
    model = build().to(DEVICE).to(memory_format=torch.channels_last)
    layers = convert_model(model)
    rng = np.random.default_rng(0)
    cfg = {
        ref.name: LayerQuantConfig(rng.integers(1, 4, ref.module.out_channels).astype(np.uint8),
                                   rng.integers(1, 5, ref.module.in_channels).astype(np.uint8), "uniform")
        for ref in layers
    }
    apply_scheme(layers, SchemeConfig(layers=cfg, weight_tables=dict(W_TABLES)))
    for ref in layers:
        ref.module.act_quant.set_clip_(1.5)
    collector = SensitivityCollector(layers, lookahead=True, fold_each_step=True)
    collector.enable()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    gen = torch.Generator().manual_seed(5)
    for _ in range(steps):
        x = torch.randn(6, 3, 6, 6, generator=gen).to(DEVICE).to(memory_format=torch.channels_last)
        y = torch.randint(0, 5, (6,), generator=gen).to(DEVICE)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        collector.fold_()
        opt.step()
        losses.append(float(loss.detach()))
    read = collector.read()
    sens = {f"{n}.{k}": getattr(s, k) for n, s in read.items()
            for k in ("weight_sensitivity", "act_sensitivity", "weight_sensitivity_lower", "act_sensitivity_lower")}
    return losses, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, sens


@pytest.mark.parametrize("build", [_small_cnn, _small_resnet], ids=["cnn", "resnet-folded-relu"])
def test_training_through_the_fused_path_follows_the_torch_ops(fused_path: FusedCalls,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               build: Callable[[], nn.Module]) -> None:
    """The fused path against the plain-ops path of a folding collector (the compiled runs' and jobs' path); in the
    ResNet the fused kernels fold the blocks' inner ReLU, which the plain-ops path runs as F.relu."""
    losses_f, state_f, sens_f = _train(3, build)
    assert fused_path.weight > 0 and fused_path.act > 0
    monkeypatch.setenv("DMBQ_FUSED_QUANT", "0")
    calls = fused_path.weight + fused_path.act
    losses_t, state_t, sens_t = _train(3, build)
    assert fused_path.weight + fused_path.act == calls  # DMBQ_FUSED_QUANT=0 switched the fused path off
    # the clip gradients are sums in another order, so the runs drift apart by float rounding only
    np.testing.assert_allclose(losses_f, losses_t, rtol=1e-5)
    for k in state_t:
        if state_t[k].is_floating_point():
            torch.testing.assert_close(state_f[k], state_t[k], rtol=1e-4, atol=1e-5, msg=k)
    for k in sens_t:
        np.testing.assert_allclose(sens_f[k], sens_t[k], rtol=1e-3, atol=1e-7, err_msg=k)


def test_a_collector_that_does_not_fold_keeps_its_probes_off_the_fused_path(fused_path: FusedCalls) -> None:
    """The fused kernels add signed per-step sums: summed over steps without folding they would cancel, so a
    non-folding collector's quantizers take the Functions (|.| per step) and still give the float64 totals."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).to(DEVICE)
    layers = convert_model(model)
    apply_scheme(layers, _scheme([2, 1, 3, 2], [2, 2, 1]))
    collector = SensitivityCollector(layers)
    collector.enable()
    x = torch.randn(2, 3, 5, 5).to(DEVICE).to(memory_format=torch.channels_last)
    model(x).sum().backward()
    assert fused_path.weight == 0 and fused_path.act == 0
    collector.disable()
    with torch.no_grad():
        model(x)  # no probes: the fused path again
    assert fused_path.weight == 1 and fused_path.act == 1


def _train_batched(steps: int, mode: str, dtype: torch.dtype | None, collect: bool = False,
                   ) -> tuple[list[float], list[torch.Tensor], dict[str, np.ndarray], int]:
    """_train's ResNet with the trainer's hooks: the scale EMA after the step (ScaleUpdater) and, by `mode`, every
    weight quantized in one launch before the forward ("forward": WeightBatcher(backward=False); "both": one launch
    per direction) or each layer on its own ("none"); `dtype`: bf16 autocast or none; `collect`: sensitivities and
    look-ahead through a folding collector. Returns the losses, the parameters, the summed sensitivities and how
    many layer forwards took a lent w_hat."""
    from dmbq_worker.quant import ScaleUpdater, WeightBatcher

    torch.manual_seed(3)
    model = _small_resnet().to(DEVICE).to(memory_format=torch.channels_last)
    layers = convert_model(model)
    rng = np.random.default_rng(0)
    cfg = {
        ref.name: LayerQuantConfig(np.array([[0, 1, 2, 3, 32][i % 5] for i in range(ref.module.out_channels)],
                                            np.uint8), rng.integers(1, 4, ref.module.in_channels).astype(np.uint8),
                                   "uniform")
        for ref in layers
    }
    cfg[layers[0].name] = LayerQuantConfig(np.full(layers[0].module.out_channels, 32, np.uint8),
                                           np.full(layers[0].module.in_channels, 32, np.uint8), "uniform")  # all FP
    apply_scheme(layers, SchemeConfig(layers=cfg, weight_tables=dict(W_TABLES)))
    for ref in layers:
        ref.module.act_quant.set_clip_(1.5)
    collector = SensitivityCollector(layers, lookahead=True, fold_each_step=True) if collect else None
    if collector is not None:
        collector.enable()
    updater, batcher = ScaleUpdater(layers), WeightBatcher(layers, backward=mode == "both")
    taken = 0
    original = WeightQuantizer.forward

    def counting(self: WeightQuantizer, weight: torch.Tensor) -> torch.Tensor:
        nonlocal taken
        taken += self.precomputed is not None
        return original(self, weight)

    WeightQuantizer.forward = counting  # type: ignore[method-assign]
    try:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        gen = torch.Generator().manual_seed(5)
        losses = []
        for _ in range(steps):
            x = torch.randn(6, 3, 8, 8, generator=gen).to(DEVICE).to(memory_format=torch.channels_last)
            y = torch.randint(0, 5, (6,), generator=gen).to(DEVICE)
            opt.zero_grad()
            with torch.autocast(DEVICE.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                if mode != "none":
                    batcher.run()
                out = model(x)
                batcher.finish()
            loss = nn.functional.cross_entropy(out.float(), y)
            loss.backward()
            if collector is not None:
                collector.fold_()
            opt.step()
            updater.step()
            losses.append(float(loss.detach()))
    finally:
        WeightQuantizer.forward = original  # type: ignore[method-assign]
    sens: dict[str, np.ndarray] = {}
    if collector is not None:
        sens = {f"{n}.{k}": getattr(v, k) for n, v in collector.read().items()
                for k in ("weight_sensitivity", "weight_sensitivity_lower", "act_sensitivity")}
    return losses, [p.detach().cpu().clone() for p in model.parameters()], sens, taken


@pytest.mark.parametrize("mode", ["forward", "both"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16-autocast"])
def test_one_launch_for_every_layers_weights_trains_as_the_per_layer_kernels(fused_path: FusedCalls, mode: str,
                                                                              dtype: torch.dtype | None) -> None:
    """WeightBatcher: every quantized layer's forward takes the lent w_hat (the all-FP first layer is left out), and
    training is bit for bit the per-layer kernels' (same arithmetic, row for row), also across the scale EMA; with
    one backward for all layers too, the sensitivities and look-ahead sums are the per-layer kernels' as well."""
    losses_b, params_b, sens_b, taken = _train_batched(3, mode, dtype, collect=True)
    quantized_layers = 7  # ResNet-(6+2): 2 convs in each of 3 blocks and the classifier; the first conv stays FP
    assert taken == 3 * quantized_layers
    # the per-layer Function still runs (without its forward kernel) when only the forward is batched, never with both
    assert fused_path.weight == (3 * quantized_layers if mode == "forward" else 0)
    losses_p, params_p, sens_p, taken_p = _train_batched(3, "none", dtype, collect=True)
    assert taken_p == 0
    assert losses_b == losses_p
    for a, b in zip(params_b, params_p):
        assert torch.equal(a, b)
    for k in sens_p:
        np.testing.assert_array_equal(sens_b[k], sens_p[k], err_msg=k)
    assert any(float(np.abs(v).sum()) > 0 for k, v in sens_p.items() if "weight_sensitivity" in k)


def test_the_weight_batch_builds_its_tables_again_when_a_layer_changes(fused_path: FusedCalls) -> None:
    from dmbq_worker.quant import WeightBatcher

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 5, 1)).to(DEVICE)
    layers = convert_model(model)
    for ref in layers:
        ref.module.weight_quant.update_scale_in_forward = False
    cfg = {ref.name: LayerQuantConfig(np.full(ref.module.out_channels, 2, np.uint8),
                                      np.full(ref.module.in_channels, 32, np.uint8), "uniform") for ref in layers}
    apply_scheme(layers, SchemeConfig(layers=cfg, weight_tables=dict(W_TABLES)))
    batcher = WeightBatcher(layers)
    batcher.run()
    first = batcher._batch
    assert first is not None and first.rows == 9
    assert all(ref.module.weight_quant.precomputed is not None for ref in layers)
    batcher.finish()
    assert all(ref.module.weight_quant.precomputed is None for ref in layers)
    cfg["0"] = LayerQuantConfig(np.full(4, 32, np.uint8), np.full(3, 32, np.uint8), "uniform")  # layer 0 back to FP
    apply_scheme(layers, SchemeConfig(layers=cfg, weight_tables=dict(W_TABLES)))
    batcher.run()
    assert batcher._batch is not first and batcher._batch is not None and batcher._batch.rows == 5
    assert layers[0].module.weight_quant.precomputed is None
    w = layers[1].module.weight
    expected = fused.FusedWeightQuantSTE.apply(w, *(getattr(layers[1].module.weight_quant, n) for n in (
        "scale", "levels", "thresholds", "clip_units", "fp_mask", "bits", "lower_levels", "lower_thresholds")),
        None, None)
    assert torch.equal(layers[1].module.weight_quant.precomputed, expected.detach())


@pytest.mark.parametrize("statistic", ["mean_abs", "max_abs"])
def test_the_one_kernel_scale_ema_equals_the_per_layer_updates(monkeypatch: pytest.MonkeyPatch,
                                                               statistic: ScaleStatistic) -> None:
    """ScaleUpdater's one kernel (FusedScaleEma), its foreach ops and each quantizer's own update (update_scale_,
    the in-forward path) give the same scales, for either statistic; a mixed model takes each layer's own."""
    from dmbq_worker.quant import ScaleUpdater

    def scales_after(path: str) -> list[torch.Tensor]:
        monkeypatch.setenv("DMBQ_FUSED_QUANT", "interpret" if path == "fused" and DEVICE.type == "cpu" else
                           "1" if path == "fused" else "0")
        torch.manual_seed(6)
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 5, 1), nn.Flatten(), nn.LazyLinear(4))
        model(torch.randn(1, 3, 6, 6))
        model = model.to(DEVICE).to(memory_format=torch.channels_last)
        layers = convert_model(model, scale_statistic=statistic)
        layers[1].module.weight_quant.statistic = "max_abs" if statistic == "mean_abs" else "mean_abs"
        layers[1].module.weight_quant.reset_scale_(layers[1].module.weight)
        updater = ScaleUpdater(layers)
        for step in range(3):
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1.1 if step % 2 else 0.8)
            if path == "plain":
                for ref in layers:
                    ref.module.weight_quant.update_scale_(ref.module.weight)
            else:
                updater.step()
        assert (updater._fused is not None) == (path == "fused")
        return [ref.module.weight_quant.scale.detach().cpu().clone() for ref in layers]

    fused_scales, torch_scales, plain_scales = scales_after("fused"), scales_after("torch"), scales_after("plain")
    for a, b, c in zip(fused_scales, torch_scales, plain_scales):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0.0)
        torch.testing.assert_close(b, c, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("weight_batch", ["1", "0"])
def test_the_service_folds_the_fused_sums_into_the_same_sensitivities(monkeypatch: pytest.MonkeyPatch,
                                                                      weight_batch: str) -> None:
    """Through TrainingService (digits CNN, W2/A2, sensitivities on, one step): the fused path (its weights, here) and
    the torch ops give the same loss and per-channel sensitivities: the service picks the folding collector itself,
    with every layer's weights in one launch (its default) and with a launch per layer (DMBQ_WEIGHT_BATCH=0).
    (One step: afterwards the scale EMA's sums in another order move s_c by ulps, which flip lattice ties.)"""
    from dmbq_worker.engine.service import TrainingService
    from dmbq_worker.proto import dmbq_pb2 as pb
    from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme

    monkeypatch.setenv("DMBQ_WEIGHT_BATCH", weight_batch)

    def run(mode: str) -> tuple[float, list[np.ndarray], tuple[int, int]]:
        monkeypatch.setenv("DMBQ_FUSED_QUANT", mode)
        ctx = RecordingContext()
        svc = TrainingService()
        req = configure_request("digits", train_limit=96, test_limit=32, batch_size=32, seed=2)
        req.device = DEVICE.type
        cfg = svc.configure(req, ctx)
        svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
        calls = FusedCalls(monkeypatch)
        result = svc.run(pb.Run(steps=1, sensitivity=True), ctx)
        assert isinstance(result, pb.EpochResult)
        sens = [np.frombuffer(s.weight_sensitivity_f32, dtype="<f4") for s in result.layers]
        return result.train_loss, sens, (calls.weight, calls.weight_batch)

    loss_f, sens_f, (per_layer, batched) = run("interpret" if DEVICE.type == "cpu" else "1")
    loss_t, sens_t, torch_calls = run("0")
    assert (batched > 0 and per_layer == 0) if weight_batch == "1" else (per_layer > 0 and batched == 0)
    assert torch_calls == (0, 0)
    assert loss_f == pytest.approx(loss_t, rel=1e-5)
    for a, b in zip(sens_f, sens_t):
        assert a.size and np.all(b > 0)
        np.testing.assert_allclose(a, b, rtol=1e-4)


def test_gradients_in_another_layout_than_the_input_are_read_right(fused_path: FusedCalls) -> None:
    """Autograd may hand backward a contiguous gradient for a channels_last input (and the reverse for weights):
    the kernels read storage as [M, C] / [C, K], so backward first brings the gradient to the input's layout."""
    from dmbq_worker.quant.functions import ActQuantSTE, WeightQuantSTE
    from dmbq_worker.quant.fused_check import weight_tables
    from dmbq_worker.quant.levels import MAX_LEVELS

    torch.manual_seed(8)
    x = torch.randn(2, 6, 4, 4).relu().to(DEVICE).to(memory_format=torch.channels_last)
    g = torch.randn(2, 6, 4, 4).to(DEVICE)  # contiguous (NCHW)
    n = torch.full((6,), 3.0, device=DEVICE)
    fp = torch.zeros(6, dtype=torch.bool, device=DEVICE)
    lv = torch.zeros(6, MAX_LEVELS, device=DEVICE)
    th = torch.full((6, MAX_LEVELS - 1), float("inf"), device=DEVICE)
    clip = torch.tensor([1.0], device=DEVICE)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ActQuantSTE.apply(xa, clip, n, lv, th, fp, n, lv, th, None, None, "uniform", 1, False).backward(g)
    fused.FusedUniformActQuantSTE.apply(xb, clip, n, fp, n, None, None, False).backward(g)
    assert xa.grad is not None and xb.grad is not None and torch.equal(xa.grad, xb.grad)

    w = torch.randn(4, 3, 3, 3, device=DEVICE)  # contiguous weight, channels_last gradient
    gw = torch.randn(4, 3, 3, 3).to(DEVICE).to(memory_format=torch.channels_last)
    t = weight_tables([2, 2, 1, 3], DEVICE)
    bits = torch.tensor([2, 2, 1, 3], dtype=torch.uint8, device=DEVICE)
    scale = w.abs().mean(dim=(1, 2, 3))
    args = (scale, t["levels"], t["thresholds"], t["clip_units"], t["fp_mask"])
    lower = (t["lower_levels"], t["lower_thresholds"])
    wa, wb = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    WeightQuantSTE.apply(wa, *args, *lower, None, None).backward(gw)
    fused.FusedWeightQuantSTE.apply(wb, *args, bits, *lower, None, None).backward(gw)
    assert wa.grad is not None and wb.grad is not None and torch.equal(wa.grad, wb.grad)
    assert fused_path.act == 1 and fused_path.weight == 1
