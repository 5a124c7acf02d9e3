"""Conv2d / Linear whose weights and inputs pass through the scheme's quantizers (the layer knows no policy)."""

from __future__ import annotations

from torch import Tensor, nn

from dmbq_worker.quant.act_quantizer import DEFAULT_ACT_CLIP, ActQuantizer
from dmbq_worker.quant.weight_quantizer import (
    DEFAULT_SCALE_EMA_DECAY,
    DEFAULT_SCALE_STATISTIC,
    ScaleStatistic,
    WeightQuantizer,
)


class QuantConv2d(nn.Conv2d):
    """nn.Conv2d with `weight_quant` (per output channel) and `act_quant` (per input channel). Starts in FP."""

    def __init__(
        self,
        *args: object,
        scale_ema_decay: float = DEFAULT_SCALE_EMA_DECAY,
        scale_statistic: ScaleStatistic = DEFAULT_SCALE_STATISTIC,
        act_clip_init: float = DEFAULT_ACT_CLIP,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        dev = self.weight.device
        self.weight_quant = WeightQuantizer(
            self.out_channels, ema_decay=scale_ema_decay, statistic=scale_statistic).to(dev)
        self.act_quant = ActQuantizer(self.in_channels, channel_dim_from_end=-3, clip_init=act_clip_init).to(dev)
        self.weight_quant.reset_scale_(self.weight)

    # a model may hand it a ReLU's input with relu_input=True (engine/models.py: conv_after_relu)
    folds_input_relu = True

    def forward(self, x: Tensor, relu_input: bool = False) -> Tensor:
        """conv(quant(x)), or with `relu_input` conv(quant(relu(x))), the ReLU folded into the quantizer."""
        return self._conv_forward(self.act_quant(x, relu_input), self.weight_quant(self.weight), self.bias)


class QuantLinear(nn.Linear):
    """nn.Linear with `weight_quant` (per output feature) and `act_quant` (per input feature). Starts in FP."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: object = None,
        dtype: object = None,
        *,
        scale_ema_decay: float = DEFAULT_SCALE_EMA_DECAY,
        scale_statistic: ScaleStatistic = DEFAULT_SCALE_STATISTIC,
        act_clip_init: float = DEFAULT_ACT_CLIP,
    ) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)  # type: ignore[arg-type]
        dev = self.weight.device
        self.weight_quant = WeightQuantizer(out_features, ema_decay=scale_ema_decay, statistic=scale_statistic).to(dev)
        self.act_quant = ActQuantizer(in_features, channel_dim_from_end=-1, clip_init=act_clip_init).to(dev)
        self.weight_quant.reset_scale_(self.weight)

    @property
    def out_channels(self) -> int:
        return self.out_features

    @property
    def in_channels(self) -> int:
        return self.in_features

    folds_input_relu = True

    def forward(self, x: Tensor, relu_input: bool = False) -> Tensor:
        return nn.functional.linear(self.act_quant(x, relu_input), self.weight_quant(self.weight), self.bias)
