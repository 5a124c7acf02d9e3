"""Per-output-channel DMBQ weight quantizer: w_hat_c = s_c * nearest level of the channel's table (w / s_c)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from dmbq_worker.quant.functions import EPS, WeightQuantSTE, weight_quant_ops
from dmbq_worker.quant.fused import FusedWeightQuantSTE, conv_operand_dtype, weight_fusable
from dmbq_worker.quant.levels import FP_BITS, FP_CLIP, MAX_LEVELS
from dmbq_worker.quant.table_state import CompactTablesState

DEFAULT_SCALE_EMA_DECAY = 0.99
# The per-channel statistic s_c follows (QuantOptions.weight_scale): the unit of the signed level tables. mean|w| for
# the DMBQ tables (a law's table divided by its E|X|); max|w| for min-max quantization, whose top level is max|w|.
ScaleStatistic = Literal["mean_abs", "max_abs"]
SCALE_STATISTICS: tuple[ScaleStatistic, ...] = ("mean_abs", "max_abs")
DEFAULT_SCALE_STATISTIC: ScaleStatistic = "mean_abs"


def channel_statistic(weight: Tensor, out_channels: int, statistic: ScaleStatistic) -> Tensor:
    """mean|w_c| or max|w_c| per output channel, float32, no gradient."""
    magnitudes = weight.detach().reshape(out_channels, -1).abs()
    if statistic == "max_abs":
        return magnitudes.amax(dim=1).float()
    return magnitudes.mean(dim=1).float()


def _sync_after_load(module: nn.Module, _incompatible_keys: object) -> None:
    # A module-level function (not a lambda) keeps the module picklable.
    module.sync_mode_from_buffers()  # type: ignore[operator]


class WeightQuantizer(CompactTablesState):
    """Holds the scheme of one layer's weights; the layer calls it on its weight every forward.

    Buffers (all of static shape, rewritten in place by `load_rows_`):
      bits [C] uint8            0 prunes, 1..8 bits, 32 full precision
      scale [C] float32         s_c, EMA of the channel's `statistic` (mean|w_c| or max|w_c|; decay `ema_decay`),
                                one step per training step: in the training-mode forward by default, or by
                                `ScaleUpdater` after the optimizer step once `update_scale_in_forward` is False (the
                                trainer's mode; see scale_updates.py)
    `ema_decay` and `statistic` are configuration (QuantOptions), not state: a checkpoint holds the scale only.
      levels [C, 256], thresholds [C, 255], clip_units [C], fp_mask [C]    the channel's level row (levels.py)
      lower_levels, lower_thresholds                                     the row one bit lower (look-ahead)
    The four padded tables go into the state dict in compact form (CompactTablesState).
    """

    compact_tables = ("levels", "thresholds", "lower_levels", "lower_thresholds")

    bits: Tensor
    scale: Tensor
    levels: Tensor
    thresholds: Tensor
    clip_units: Tensor
    fp_mask: Tensor
    lower_levels: Tensor
    lower_thresholds: Tensor
    lower_ok: Tensor

    def __init__(
        self,
        out_channels: int,
        *,
        ema_decay: float = DEFAULT_SCALE_EMA_DECAY,
        statistic: ScaleStatistic = DEFAULT_SCALE_STATISTIC,
    ) -> None:
        super().__init__()
        if out_channels <= 0:
            raise ValueError(f"out_channels must be positive, got {out_channels}")
        if statistic not in SCALE_STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(SCALE_STATISTICS)}, got {statistic!r}")
        self.out_channels = out_channels
        self.ema_decay = float(ema_decay)
        self.statistic: ScaleStatistic = statistic
        c = out_channels
        self.register_buffer("bits", torch.full((c,), FP_BITS, dtype=torch.uint8))
        self.register_buffer("scale", torch.ones(c))
        self.register_buffer("levels", torch.zeros(c, MAX_LEVELS), persistent=False)
        self.register_buffer("thresholds", torch.full((c, MAX_LEVELS - 1), float("inf")), persistent=False)
        self.register_buffer("clip_units", torch.full((c,), FP_CLIP))
        self.register_buffer("fp_mask", torch.ones(c, dtype=torch.bool))
        self.register_buffer("lower_levels", torch.zeros(c, MAX_LEVELS), persistent=False)
        self.register_buffer("lower_thresholds", torch.full((c, MAX_LEVELS - 1), float("inf")), persistent=False)
        self.register_buffer("lower_ok", torch.ones((), dtype=torch.bool))
        # Python-side mode, switched between steps only (a change recompiles once under torch.compile).
        self.update_scale_in_forward = True
        self.all_full_precision = True
        self.lower_available = True
        # Collection state, owned by SensitivityCollector.
        self.probe: Tensor | None = None
        # set by a SensitivityCollector that folds per step: the plain-ops path, whose probes get signed sums
        self.signed_probes = False
        self.probe_lower: Tensor | None = None
        self.hist: Tensor | None = None
        self.hist_range: Tensor | None = None  # [2]: lo, hi of w / s_c
        # this step's w_hat, made for every layer at once (fused.FusedWeightBatch); the next forward takes it
        self.precomputed: Tensor | None = None
        self.register_load_state_dict_post_hook(_sync_after_load)

    @torch.no_grad()
    def reset_scale_(self, weight: Tensor) -> None:
        """s_c = the statistic of w_c now (at conversion and when a layer is first quantized)."""
        self.scale.copy_(channel_statistic(weight, self.out_channels, self.statistic))

    @torch.no_grad()
    def update_scale_(self, weight: Tensor) -> None:
        """One EMA step, no gradient: s_c <- decay * s_c + (1 - decay) * statistic(w_c)."""
        current = channel_statistic(weight, self.out_channels, self.statistic)
        self.scale.mul_(self.ema_decay).add_(current, alpha=1.0 - self.ema_decay)

    @torch.no_grad()
    def load_rows_(
        self,
        bits: np.ndarray,
        levels: np.ndarray,
        thresholds: np.ndarray,
        clip_units: np.ndarray,
        lower_levels: np.ndarray,
        lower_thresholds: np.ndarray,
        *,
        lower_available: bool,
    ) -> None:
        """Copy a validated scheme into the buffers (same shapes: no reallocation)."""
        dev = self.bits.device
        self.bits.copy_(torch.from_numpy(np.ascontiguousarray(bits, dtype=np.uint8)).to(dev))
        self.fp_mask.copy_(self.bits == FP_BITS)
        self.levels.copy_(torch.from_numpy(levels).to(dev))
        self.thresholds.copy_(torch.from_numpy(thresholds).to(dev))
        self.clip_units.copy_(torch.from_numpy(clip_units).to(dev))
        self.lower_levels.copy_(torch.from_numpy(lower_levels).to(dev))
        self.lower_thresholds.copy_(torch.from_numpy(lower_thresholds).to(dev))
        self.lower_ok.fill_(lower_available)
        self.all_full_precision = bool((bits == FP_BITS).all())
        self.lower_available = lower_available

    def sync_mode_from_buffers(self) -> None:
        """Recompute the Python-side mode from the buffers (run after load_state_dict; a host sync)."""
        self.all_full_precision = bool((self.bits == FP_BITS).all().item())
        self.lower_available = bool(self.lower_ok.item())

    def forward(self, weight: Tensor) -> Tensor:
        precomputed, self.precomputed = self.precomputed, None  # lent for one forward only
        if self.training:
            if self.update_scale_in_forward:
                self.update_scale_(weight)
                precomputed = None  # made with the scale before this update
            if self.hist is not None and self.hist_range is not None:
                self._accumulate_hist(weight)
        # No backward under no_grad (evaluation): nothing to collect there.
        probe, probe_lower = (self.probe, self.probe_lower) if torch.is_grad_enabled() else (None, None)
        if self.all_full_precision:
            return weight  # nothing quantized: x_hat = x, so every sensitivity and look-ahead is 0
        args = (
            weight,
            self.scale,
            self.levels,
            self.thresholds,
            self.clip_units,
            self.fp_mask,
            self.lower_levels,
            self.lower_thresholds,
            probe,
            probe_lower,
        )
        compiling = torch.compiler.is_compiling()
        # signed per-step sums into the probes: a folding collector's (signed_probes) only, as in ActQuantizer
        collecting = probe is not None or probe_lower is not None
        if not compiling and (self.signed_probes or not collecting) and weight_fusable(weight):
            out_dtype = conv_operand_dtype(weight)
            if precomputed is not None and precomputed.dtype != (out_dtype or weight.dtype):
                precomputed = None  # made for another precision: quantize here
            if precomputed is not None and precomputed.requires_grad:
                return precomputed  # an output of FusedWeightBatchSTE: its backward is the batch's too
            return FusedWeightQuantSTE.apply(  # type: ignore[no-any-return]
                weight, self.scale, self.levels, self.thresholds, self.clip_units, self.fp_mask, self.bits,
                self.lower_levels, self.lower_thresholds, probe, probe_lower, out_dtype, precomputed)
        if self.signed_probes or compiling:
            return weight_quant_ops(*args)
        return WeightQuantSTE.apply(*args)

    @torch.no_grad()
    def _accumulate_hist(self, weight: Tensor) -> None:
        assert self.hist is not None and self.hist_range is not None
        u = weight.detach().reshape(self.out_channels, -1).float() / self.scale.clamp_min(EPS).unsqueeze(1)
        lo, hi = self.hist_range[0], self.hist_range[1]
        # Normalised to [0, 1] with tensor bounds so histc's range is a constant; outliers land in the end bins.
        t = ((u - lo) / (hi - lo)).clamp(0.0, 1.0)
        self.hist.add_(torch.histc(t, bins=self.hist.shape[0], min=0.0, max=1.0))

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, ema_decay={self.ema_decay}, statistic={self.statistic}"
