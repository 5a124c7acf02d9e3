"""LBA statistics of the global batch under data parallelism.

The per-step sensitivity |sum_e (x_e - x_hat_e) * dL/dx_hat_e| / n_c takes the absolute value of a sum over the
batch, so per-rank values cannot simply be added: the signed sums must be reduced before the |.|. In a job the
service makes its SensitivityCollector fold per step (quant/sensitivity.py): the quantizers hand the probes the signed
per-rank sums, and after each backward one all-reduce sums them over the ranks (every layer's in one flat tensor),
before the |.| is taken and added. Scaling, with W ranks each computing gradients of its local-mean loss:
* weights: every rank quantizes the same weights; the global-mean loss's gradient is the mean of the ranks' ones,
  so the global value is |sum over ranks| / W;
* activations: each rank holds different samples, n_c of a rank is 1/W of the global batch's, and its gradient is
  W x the global one on its samples: |sum over ranks| / W^2.
(Before, two tensor hooks per quantized layer did this, with two collectives per layer and step.)

What stays here: activation histograms are counts, summed over the ranks when read. Weight histograms, scales and
clips are identical on every rank (same weights, same updates) and are taken as they are.

One hook keeps the clips identical: with QuantOptions.act_clip_init == 0 (what the orchestrator sends) each
activation clip is set from "the first batch", and each rank would see only its slice of it: different clips on
every rank, and replicas that never agree again (DDP averages gradients, not parameters). A forward pre-hook sets
the clip from the statistics of the global batch instead, with the quantizer's own formula.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from dmbq_worker.distributed import runtime
from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.sensitivity import LayerStatsArrays


@torch.compiler.disable  # once per run, eager (as the quantizer's own initialisation)
@torch.no_grad()
def _init_clip_from_global_batch(module: Any, inputs: tuple[Tensor, ...]) -> None:
    """ActQuantizer._init_clip over the global batch: min(mean + 3 std, max) of the non-negative part, >= 1e-3."""
    if not (module.training and module.init_clip_pending and runtime.current() is not None):
        return
    xf = inputs[0].detach().double().clamp_min(0.0)
    sums = torch.stack([torch.tensor(float(xf.numel()), dtype=torch.float64, device=xf.device), xf.sum(),
                        (xf * xf).sum()])
    runtime.all_reduce_sum_(sums)
    top = xf.max().reshape(1)
    runtime.all_reduce_max_(top)
    n, s1, s2 = sums[0], sums[1], sums[2]
    mean = s1 / n
    std = ((s2 - n * mean * mean).clamp_min(0.0) / (n - 1).clamp_min(1.0)).sqrt()  # unbiased, as Tensor.std
    value = torch.minimum(mean + 3.0 * std, top[0]).clamp_min(1e-3)
    module.clip.copy_(value.to(module.clip.dtype).reshape(1))
    module.init_clip_pending = False


class GlobalBatchStatistics:
    """Keeps a job's clips and histograms those of the global batch (the sensitivities are folded by the collector)."""

    def __init__(self, refs: Sequence[QuantLayerRef]) -> None:
        self.refs = list(refs)
        self._handles: list[Any] = [
            ref.module.act_quant.register_forward_pre_hook(_init_clip_from_global_batch) for ref in self.refs
        ]

    def reduce(self, collected: dict[str, LayerStatsArrays]) -> dict[str, LayerStatsArrays]:
        """The statistics of the global batch (identity without a job). Every rank must call it, in step."""
        if runtime.current() is None:
            return collected
        out: dict[str, LayerStatsArrays] = {}
        for ref in self.refs:  # the same order on every rank: the all-reduces below pair up
            s = collected.get(ref.name)
            if s is None:
                continue
            act_hist = s.act_hist
            if act_hist is not None:
                counts = torch.from_numpy(act_hist[2].copy()).to(ref.module.weight.device)
                runtime.all_reduce_sum_(counts)
                act_hist = (act_hist[0], act_hist[1], counts.cpu().numpy().astype(np.float32))
            out[ref.name] = replace(s, act_hist=act_hist)
        return out
