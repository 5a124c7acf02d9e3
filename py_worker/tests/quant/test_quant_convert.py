from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmbq_worker.quant import LayerQuantConfig, QuantConv2d, QuantLinear, SchemeConfig, apply_scheme, convert_model


class Branchy(nn.Module):
    """Not from the zoo: registration order differs from call order, a shared block, grouped conv, attention."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 4)  # registered first, called last
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Conv2d(8, 8, 1)])
        self.shared = nn.Conv2d(8, 8, 1)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.stem(x)))
        for block in self.blocks:
            x = torch.relu(block(x)) + x
        x = self.shared(self.shared(x))
        seq = x.flatten(2).transpose(1, 2)
        seq, _ = self.attn(seq, seq, seq)
        return self.head(seq.mean(dim=1))


def test_convert_replaces_conv_and_linear_and_keeps_fp_outputs_identical() -> None:
    torch.manual_seed(20)
    model = Branchy()
    model.eval()
    x = torch.randn(2, 3, 6, 6)
    before = model(x)
    head_weight = model.head.weight
    layers = convert_model(model, example_input=x)
    after = model(x)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert model.head.weight is head_weight  # parameters are shared, not copied
    assert isinstance(model.stem, QuantConv2d) and isinstance(model.head, QuantLinear)
    assert isinstance(model.blocks[0], QuantConv2d) and model.blocks[0].groups == 2
    assert not isinstance(model.attn.out_proj, QuantLinear)  # MHA never calls out_proj.forward
    assert [r.name for r in layers] == ["stem", "blocks.0", "blocks.1", "shared", "head"]
    assert [r.role for r in layers] == ["first", "body", "body", "body", "last"]
    assert not [m for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    assert len(convert_model(model)) == 5  # converting twice finds the same layers, replaces nothing


def test_registration_order_without_example_input() -> None:
    model = Branchy()
    layers = convert_model(model)
    assert [r.name for r in layers] == ["head", "stem", "blocks.0", "blocks.1", "shared"]
    assert layers[0].role == "first" and layers[0].name == "head"  # no forward pass: the first registered
    assert [r.role for r in layers][1:] == ["body"] * 4


def test_converted_model_trains_quantized_and_keeps_training_mode() -> None:
    torch.manual_seed(21)
    model = Branchy()
    model.train()
    x = torch.randn(4, 3, 6, 6)
    layers = convert_model(model, example_input=x)
    assert model.training and all(r.module.training for r in layers)
    tables = {2: np.array([1.1, 0.45], np.float32), 8: np.linspace(1.3, 0.01, 8).astype(np.float32)}
    scheme = SchemeConfig(
        layers={
            r.name: LayerQuantConfig(
                np.full(r.module.weight_quant.out_channels, 8 if r.role != "body" else 2, np.uint8),
                np.full(r.module.act_quant.in_channels, 8 if r.role != "body" else 2, np.uint8)
                if r.role != "first" else None,
            )
            for r in layers
        },
        weight_tables=tables,
    )
    assert apply_scheme(layers, scheme) == sum(r.module.weight.numel() for r in layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    target = torch.randint(0, 4, (4,))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_bare_layer_cannot_be_converted_in_place() -> None:
    with pytest.raises(ValueError, match="wrap it"):
        convert_model(nn.Linear(2, 2))


def test_state_dict_round_trip_restores_the_scheme_and_modes() -> None:
    torch.manual_seed(22)
    make = lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))  # noqa: E731
    src = make()
    src_layers = convert_model(src)
    scheme = SchemeConfig(
        layers={"3": LayerQuantConfig(np.full(5, 2, np.uint8), np.full(16, 2, np.uint8), "table")},
        weight_tables={2: np.array([1.1, 0.45], np.float32)},
        act_tables={2: np.array([0.6, 0.4], np.float32)},
    )
    apply_scheme(src_layers, scheme)
    dst = make()
    dst_layers = convert_model(dst)
    dst.load_state_dict(src.state_dict())
    aq = dst_layers[1].module.act_quant
    assert aq.mode == "table" and not aq.all_full_precision and not aq.lower_available
    assert not dst_layers[1].module.weight_quant.all_full_precision
    x = torch.randn(3, 3, 4, 4)
    src.eval()
    dst.eval()
    torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


def test_quant_options_set_decay_and_clip() -> None:
    from dmbq_worker.errors import WorkerError
    from dmbq_worker.proto import dmbq_pb2 as pb
    from dmbq_worker.quant import apply_quant_options, clip_parameters

    model = nn.Sequential(nn.Linear(3, 2))
    layers = convert_model(model)
    apply_quant_options(layers, pb.QuantOptions(scale_ema_decay=0.9, act_clip_init=2.5))
    assert layers[0].module.weight_quant.ema_decay == pytest.approx(0.9)
    assert float(clip_parameters(layers)[0].detach()) == 2.5
    apply_quant_options(layers, pb.QuantOptions())
    assert layers[0].module.weight_quant.ema_decay == 0.99 and layers[0].module.act_quant.init_clip_pending
    with pytest.raises(WorkerError) as exc:
        apply_quant_options(layers, pb.QuantOptions(scale_ema_decay=1.5))
    assert exc.value.field == "quant.scale_ema_decay"


def test_quant_options_choose_the_weight_scale_statistic() -> None:
    from dmbq_worker.errors import WorkerError
    from dmbq_worker.proto import dmbq_pb2 as pb
    from dmbq_worker.quant import apply_quant_options

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(4, 2))
    layers = convert_model(model)
    mean_abs = [ref.module.weight_quant.scale.clone() for ref in layers]
    for weight_scale in (pb.WEIGHT_SCALE_UNSPECIFIED, pb.WEIGHT_SCALE_MEAN_ABS):
        apply_quant_options(layers, pb.QuantOptions(weight_scale=weight_scale))
        for ref, s in zip(layers, mean_abs):
            assert ref.module.weight_quant.statistic == "mean_abs"
            torch.testing.assert_close(ref.module.weight_quant.scale, s, rtol=0, atol=0)
    apply_quant_options(layers, pb.QuantOptions(weight_scale=pb.WEIGHT_SCALE_MAX_ABS))
    for ref in layers:
        w = ref.module.weight.detach()
        assert ref.module.weight_quant.statistic == "max_abs"
        # a changed statistic starts the scale again at it
        torch.testing.assert_close(ref.module.weight_quant.scale, w.abs().reshape(w.shape[0], -1).amax(dim=1),
                                   rtol=0, atol=0)
    with pytest.raises(WorkerError) as exc:
        apply_quant_options(layers, pb.QuantOptions(weight_scale=7))  # type: ignore[arg-type]
    assert exc.value.field == "quant.weight_scale"
    assert "unknown WeightScale 7" in exc.value.message and "WEIGHT_SCALE_MAX_ABS (2)" in exc.value.message
