"""The EMA of the weight scales as an explicit step after the optimizer step (the trainer's mode).

Why not in the forward: under torch.compile the in-forward update is recomputed by inductor with a different
rounding (fused multiply-add, another reduction order for the statistic), so s_c differs from the eager value by an ulp.
Quantized weights and activations sit on a lattice, so many conv outputs are exact cancellations (sums that are 0
in real arithmetic); an ulp in s_c turns them into +-1e-8, which flips the STE masks (x >= 0) there and changes
whole weight gradients by several percent (bench/compile_grad_check.py). Updating the scale outside the compiled
forward, with the same eager kernels in both paths, gives compiled and eager steps bit-identical scales.

Same schedule as the in-forward update: the update after step t uses w_{t+1}, exactly what the forward of step
t + 1 would have folded in before quantizing. The only difference is the first step of a run, which uses the scale
as it stands (the statistic when a layer is first quantized) instead of one more EMA step towards the same value.
The statistic is each quantizer's own (`WeightQuantizer.statistic`: mean|w| or max|w| over the channel).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.fused import FusedScaleEma


class ScaleUpdater:
    """Takes the layers' scale EMA out of their forward; `step()` after each optimizer step does it instead.

    All layers in a handful of kernels (foreach ops): one L1 (mean|w|) or L-inf (max|w|) norm per layer, then three
    multi-tensor kernels,
    so the step (eager, CUDA graph or compiled) pays about what the in-forward update cost. Where the fused
    quantizers run (CUDA with Triton), one kernel for every layer instead (fused.FusedScaleEma).
    """

    def __init__(self, layers: Sequence[QuantLayerRef]) -> None:
        self.layers = list(layers)
        for ref in self.layers:
            ref.module.weight_quant.update_scale_in_forward = False
        self._fused: FusedScaleEma | None = None

    def release(self) -> None:
        """Give the update back to the forward (standalone use of the model)."""
        for ref in self.layers:
            ref.module.weight_quant.update_scale_in_forward = True

    @torch.no_grad()
    def step(self) -> None:
        """s_c <- decay * s_c + (1 - decay) * statistic(w_c) for every layer, from the current weights."""
        if not self.layers:
            return
        weights = [ref.module.weight.detach() for ref in self.layers]
        wscales = [ref.module.weight_quant.scale for ref in self.layers]
        if self._fused is not None and not self._fused.matches(weights, wscales):
            self._fused = None  # moved or reallocated (not inside a captured step: that replays without Python)
        capturing = weights[0].is_cuda and torch.cuda.is_current_stream_capturing()  # no table uploads there
        if self._fused is None and not capturing and FusedScaleEma.supports(weights, wscales):
            quantizers = [ref.module.weight_quant for ref in self.layers]
            self._fused = FusedScaleEma(weights, wscales, [q.ema_decay for q in quantizers],
                                        [q.statistic == "max_abs" for q in quantizers])
        if self._fused is not None:
            self._fused.step()
            return
        scales: list[Tensor] = []
        statistics: list[Tensor] = []
        factors: list[float] = []
        decays: list[float] = []
        for ref in self.layers:
            wq, w = ref.module.weight_quant, ref.module.weight.detach()
            dims = tuple(range(1, w.dim()))
            # a norm over the channel: no reshape copy of a channels-last weight, no separate abs kernel. L1 / K is
            # mean|w|, L-inf is max|w|
            max_abs = wq.statistic == "max_abs"
            statistics.append(torch.linalg.vector_norm(w, ord=float("inf") if max_abs else 1, dim=dims,
                                                       dtype=torch.float32))
            factors.append((1.0 - wq.ema_decay) / (1.0 if max_abs else float(w[0].numel())))
            decays.append(wq.ema_decay)
            scales.append(wq.scale)
        torch._foreach_mul_(statistics, factors)
        torch._foreach_mul_(scales, decays)
        torch._foreach_add_(scales, statistics)
