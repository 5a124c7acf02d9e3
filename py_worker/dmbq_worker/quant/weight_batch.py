"""Every layer's weight quantization of a training step in one launch, before the forward (the trainer's hook)."""

from __future__ import annotations

from typing import Sequence

import torch

from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.fused import FusedWeightBatch, FusedWeightBatchSTE, conv_operand_dtype, fused_on


class WeightBatcher:
    """`run()` at the start of a training step (inside its autocast) makes w_hat for every quantized layer in one
    kernel (fused.FusedWeightBatch) and lends each weight quantizer its view, which the forward then takes instead
    of launching its own kernel; `finish()` after the forward drops what a skipped layer left. With `backward`
    (the default) the views come from one autograd Function (FusedWeightBatchSTE), whose single backward kernel
    makes every weight's gradient and sensitivity sums; without it each layer's own backward kernel runs. Without the fused
    kernels (CPU, DMBQ_FUSED_QUANT=0), weights they cannot read, or while the step is being compiled, it does nothing
    and every layer quantizes in its own forward, as before. The scale EMA must be out of the forward
    (ScaleUpdater): a quantizer that updates its scale in the forward ignores the lent w_hat. The service uses it by
    default outside jobs (DMBQ_WEIGHT_BATCH=forward: the forward only; =0: off)."""

    def __init__(self, layers: Sequence[QuantLayerRef], *, backward: bool = True) -> None:
        self.layers = list(layers)
        self.backward = backward
        self._batch: FusedWeightBatch | None = None

    def run(self) -> None:
        quantizers, weights = [], []
        for ref in self.layers:
            wq = ref.module.weight_quant
            wq.precomputed = None
            if not wq.all_full_precision and not wq.update_scale_in_forward:
                quantizers.append(wq)
                weights.append(ref.module.weight)
        if not weights or not fused_on(weights[0].device) or torch.compiler.is_compiling():
            return
        if self._batch is not None and not self._batch.matches(quantizers, weights):
            self._batch = None  # a layer was quantized or set to FP, or a tensor moved: build the tables again
        capturing = weights[0].is_cuda and torch.cuda.is_current_stream_capturing()  # no table uploads there
        if self._batch is None and not capturing and FusedWeightBatch.supports(quantizers, weights):
            self._batch = FusedWeightBatch(quantizers, weights)
        if self._batch is None:
            return
        dtype = conv_operand_dtype(weights[0]) or weights[0].dtype
        if self.backward and torch.is_grad_enabled():
            w_hats = FusedWeightBatchSTE.apply(self._batch, dtype, *weights)
        else:  # each layer's own backward kernel follows
            w_hats = self._batch.forward(dtype)
        for q, w_hat in zip(quantizers, w_hats):
            q.precomputed = w_hat

    def finish(self) -> None:
        for ref in self.layers:
            ref.module.weight_quant.precomputed = None
