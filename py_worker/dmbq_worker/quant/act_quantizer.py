"""Per-input-channel activation quantizer with {0,1} bases and one learned clip per layer (PACT-like)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from dmbq_worker.quant.functions import EPS, ActModeName, ActQuantSTE, act_quant_ops
from dmbq_worker.quant.fused import FusedUniformActQuantSTE, act_fusable, conv_operand_dtype
from dmbq_worker.quant.levels import FP_BITS, MAX_LEVELS
from dmbq_worker.quant.table_state import CompactTablesState

DEFAULT_ACT_CLIP = 6.0
# Activation histograms cover x / clip on [0, ACT_HIST_HI]: the quantized range and half as much above it.
ACT_HIST_HI = 1.5


def _sync_after_load(module: nn.Module, _incompatible_keys: object) -> None:
    # A module-level function (not a lambda) keeps the module picklable.
    module.sync_mode_from_buffers()  # type: ignore[operator]


class ActQuantizer(CompactTablesState):
    """Quantizes a layer's input per input channel.

    `clip` is an nn.Parameter of shape [1] (trained through the PACT gradient of the saturated part).
    Buffers: bits [C] uint8 (1..8, 32 = full precision), n_steps [C] (2^b - 1, uniform mode), levels/thresholds
    [C, 256]/[C, 255] (table mode, unsigned levels in [0, 1]), fp_mask [C], and the same one bit lower.
    `channel_dim` is where channels sit counted from the end (conv: -3 for [N, C, H, W] or [C, H, W]; linear: -1).
    The four padded tables go into the state dict in compact form (CompactTablesState).
    """

    compact_tables = ("levels", "thresholds", "lower_levels", "lower_thresholds")

    bits: Tensor
    n_steps: Tensor
    levels: Tensor
    thresholds: Tensor
    fp_mask: Tensor
    lower_n_steps: Tensor
    lower_levels: Tensor
    lower_thresholds: Tensor
    table_mode: Tensor
    lower_ok: Tensor

    def __init__(self, in_channels: int, *, channel_dim_from_end: int, clip_init: float = DEFAULT_ACT_CLIP) -> None:
        super().__init__()
        if in_channels <= 0:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        if channel_dim_from_end >= 0:
            raise ValueError(f"channel_dim_from_end must be negative, got {channel_dim_from_end}")
        self.in_channels = in_channels
        self.channel_dim_from_end = channel_dim_from_end
        c = in_channels
        self.clip = nn.Parameter(torch.tensor([float(clip_init)]))
        self.register_buffer("bits", torch.full((c,), FP_BITS, dtype=torch.uint8))
        self.register_buffer("n_steps", torch.ones(c))
        self.register_buffer("levels", torch.zeros(c, MAX_LEVELS), persistent=False)
        self.register_buffer("thresholds", torch.full((c, MAX_LEVELS - 1), float("inf")), persistent=False)
        self.register_buffer("fp_mask", torch.ones(c, dtype=torch.bool))
        self.register_buffer("lower_n_steps", torch.zeros(c))
        self.register_buffer("lower_levels", torch.zeros(c, MAX_LEVELS), persistent=False)
        self.register_buffer("lower_thresholds", torch.full((c, MAX_LEVELS - 1), float("inf")), persistent=False)
        # The Python-side mode below mirrored in buffers, so that checkpoints carry it.
        self.register_buffer("table_mode", torch.zeros((), dtype=torch.bool))
        self.register_buffer("lower_ok", torch.ones((), dtype=torch.bool))
        self.mode: ActModeName = "uniform"
        self.all_full_precision = True
        self.any_full_precision = True
        self.lower_available = True
        self.init_clip_pending = False
        self.probe: Tensor | None = None
        # set by a SensitivityCollector that folds per step: the plain-ops path, whose probes get signed sums
        self.signed_probes = False
        self.probe_lower: Tensor | None = None
        self.hist: Tensor | None = None
        self.register_load_state_dict_post_hook(_sync_after_load)

    def init_clip_from_next_batch(self) -> None:
        """The next training-mode forward sets the clip from its batch (QuantOptions.act_clip_init == 0)."""
        self.init_clip_pending = True

    @torch.no_grad()
    def set_clip_(self, value: float) -> None:
        if not (value > 0 and np.isfinite(value)):
            raise ValueError(f"activation clip must be positive and finite, got {value}")
        self.clip.fill_(value)

    @torch.no_grad()
    def load_rows_(
        self,
        bits: np.ndarray,
        mode: ActModeName,
        levels: np.ndarray,
        thresholds: np.ndarray,
        lower_levels: np.ndarray,
        lower_thresholds: np.ndarray,
        *,
        lower_available: bool,
    ) -> None:
        """Copy a validated scheme into the buffers (same shapes: no reallocation)."""
        dev = self.bits.device
        b = np.ascontiguousarray(bits, dtype=np.uint8)
        quantized = b != FP_BITS
        bits_i = b.astype(np.int64)
        n = np.where(quantized, (1 << np.minimum(bits_i, 8)) - 1, 1).astype(np.float32)
        lower_n = np.where(quantized, (1 << np.maximum(np.minimum(bits_i, 8) - 1, 0)) - 1, 1).astype(np.float32)
        self.bits.copy_(torch.from_numpy(b).to(dev))
        self.fp_mask.copy_(self.bits == FP_BITS)
        self.n_steps.copy_(torch.from_numpy(n).to(dev))
        self.lower_n_steps.copy_(torch.from_numpy(lower_n).to(dev))
        self.levels.copy_(torch.from_numpy(levels).to(dev))
        self.thresholds.copy_(torch.from_numpy(thresholds).to(dev))
        self.lower_levels.copy_(torch.from_numpy(lower_levels).to(dev))
        self.lower_thresholds.copy_(torch.from_numpy(lower_thresholds).to(dev))
        self.table_mode.fill_(mode == "table")
        self.lower_ok.fill_(lower_available)
        self.mode = mode
        self.all_full_precision = bool((~quantized).all())
        self.any_full_precision = bool((~quantized).any())
        self.lower_available = lower_available

    def sync_mode_from_buffers(self) -> None:
        """Recompute the Python-side mode from the buffers (run after load_state_dict; a host sync)."""
        self.all_full_precision = bool((self.bits == FP_BITS).all().item())
        self.any_full_precision = bool((self.bits == FP_BITS).any().item())
        self.mode = "table" if bool(self.table_mode.item()) else "uniform"
        self.lower_available = bool(self.lower_ok.item())

    def channel_dim(self, x: Tensor) -> int:
        return x.dim() + self.channel_dim_from_end

    def forward(self, x: Tensor, relu_input: bool = False) -> Tensor:
        """Quantize x, or with `relu_input` relu(x): the fused kernels then fold the ReLU in (its own forward and
        backward passes are not run); every other path applies it first. The clip's initialisation and the
        histograms already count x <= 0 as 0, so they take x as it is."""
        cdim = self.channel_dim(x)
        if self.training:
            if self.init_clip_pending:
                self._init_clip(x)
            if self.hist is not None:
                self._accumulate_hist(x)
        # No backward under no_grad (evaluation): nothing to collect there.
        probe, probe_lower = (self.probe, self.probe_lower) if torch.is_grad_enabled() else (None, None)
        if self.all_full_precision:
            # nothing quantized: x_hat = x, so every sensitivity and look-ahead is 0
            return nn.functional.relu(x) if relu_input else x
        compiling = torch.compiler.is_compiling()
        # the fused kernels hand the probes signed per-step sums: only a folding collector (signed_probes) may lend
        # them its probes
        collecting = probe is not None or probe_lower is not None
        if (not compiling and self.mode == "uniform" and (self.signed_probes or not collecting)
                and act_fusable(x, cdim)):
            return FusedUniformActQuantSTE.apply(  # type: ignore[no-any-return]
                x, self.clip, self.n_steps, self.fp_mask, self.lower_n_steps, probe, probe_lower,
                self.any_full_precision, conv_operand_dtype(x), relu_input)
        if relu_input:
            x = nn.functional.relu(x)
        args = (
            x,
            self.clip,
            self.n_steps,
            self.levels,
            self.thresholds,
            self.fp_mask,
            self.lower_n_steps,
            self.lower_levels,
            self.lower_thresholds,
            probe,
            probe_lower,
            self.mode,
            cdim,
            self.any_full_precision,
        )
        if self.signed_probes or compiling:
            return act_quant_ops(*args)
        return ActQuantSTE.apply(*args)

    @torch.compiler.disable  # once per run: mutating a Parameter inside a compiled graph is not worth the risk
    @torch.no_grad()
    def _init_clip(self, x: Tensor) -> None:
        # mean + 3 std of the non-negative part, capped by its max: robust to a few outliers, no host sync.
        xf = x.detach().float().clamp_min(0.0)
        value = torch.minimum(xf.mean() + 3.0 * xf.std(), xf.max()).clamp_min(1e-3)
        self.clip.copy_(value.reshape(1))
        self.init_clip_pending = False

    @torch.no_grad()
    def _accumulate_hist(self, x: Tensor) -> None:
        assert self.hist is not None
        t = x.detach().float() / self.clip.detach().clamp_min(EPS)
        # ReLU outputs are mostly exact zeros: counting them with a sum instead of histc's atomics on one bin made
        # the histogram ~1.6x faster on an H100. Values <= 0 become -1, which histc ignores, and go to bin 0.
        positive = torch.where(t > 0, t.clamp(max=ACT_HIST_HI), -1.0)
        self.hist.add_(torch.histc(positive, bins=self.hist.shape[0], min=0.0, max=ACT_HIST_HI))
        self.hist[:1].add_((t <= 0).sum())

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, mode={self.mode}"
