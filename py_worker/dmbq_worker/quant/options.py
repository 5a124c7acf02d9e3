"""QuantOptions (Configure.quant) applied to converted layers, and the clip parameters for the optimizer."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from dmbq_worker.errors import invalid
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.weight_quantizer import DEFAULT_SCALE_EMA_DECAY, ScaleStatistic

_SCALE_STATISTICS: dict[int, ScaleStatistic] = {
    pb.WEIGHT_SCALE_UNSPECIFIED: "mean_abs",  # what every client sent before the field existed
    pb.WEIGHT_SCALE_MEAN_ABS: "mean_abs",
    pb.WEIGHT_SCALE_MAX_ABS: "max_abs",
}


def scale_statistic(options: pb.QuantOptions) -> ScaleStatistic:
    """The per-channel statistic the weight scales follow (quant.weight_scale; unspecified: mean|w|)."""
    value = int(options.weight_scale)
    if value not in _SCALE_STATISTICS:
        known = ", ".join(f"{pb.WeightScale.Name(v)} ({v})" for v in _SCALE_STATISTICS)
        raise invalid("quant.weight_scale", f"unknown WeightScale {value}; known: {known}")
    return _SCALE_STATISTICS[value]


def apply_quant_options(layers: Sequence[QuantLayerRef], options: pb.QuantOptions) -> None:
    """scale_ema_decay (0: 0.99), weight_scale (0: mean|w|) and act_clip_init (0: from the first training batch).
    Call before training: a scale whose statistic changes starts again at the new statistic of the weights."""
    decay = float(options.scale_ema_decay) or DEFAULT_SCALE_EMA_DECAY
    if not 0.0 <= decay < 1.0:
        raise invalid("quant.scale_ema_decay", f"must be in [0, 1), got {decay}")
    statistic = scale_statistic(options)
    clip = float(options.act_clip_init)
    if clip < 0 or clip != clip:
        raise invalid("quant.act_clip_init", f"must be >= 0 (0: from the first batch), got {clip}")
    if float(options.act_clip_lr_scale) < 0:
        raise invalid("quant.act_clip_lr_scale", f"must be >= 0 (0: 1), got {options.act_clip_lr_scale}")
    for ref in layers:
        wq = ref.module.weight_quant
        wq.ema_decay = decay
        if wq.statistic != statistic:
            wq.statistic = statistic
            wq.reset_scale_(ref.module.weight)
        if clip > 0:
            ref.module.act_quant.set_clip_(clip)
        else:
            ref.module.act_quant.init_clip_from_next_batch()


def clip_parameters(layers: Sequence[QuantLayerRef]) -> list[nn.Parameter]:
    """The learned activation clips (one per layer): give them their own param group (act_clip_lr_scale)."""
    return [ref.module.act_quant.clip for ref in layers]
