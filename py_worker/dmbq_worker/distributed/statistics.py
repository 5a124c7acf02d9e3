"""LBA statistics of the global batch under data parallelism.

The per-step sensitivity |sum_e (x_e - x_hat_e) * dL/dx_hat_e| / n_c takes the absolute value of a sum over the
batch, so per-rank values cannot simply be added: the signed sums must be reduced before the |.|. Without
touching the quantizers (their Functions fold the |.| into the probe gradient), two hooks make it exact:

* weights: every rank quantizes the same weights, so reducing the *gradient* dL/dw_hat (the mean over ranks of
  each rank's local-mean-loss gradient is the global one) before the quantizer's backward makes the probe, and the
  weight gradient itself, global on every rank. DDP's own averaging of that gradient then changes nothing.
* activations: each rank holds different samples; a forward hook keeps x - x_hat (and the look-ahead error), a
  gradient hook on x_hat all-reduces the signed per-channel sums of each step and accumulates |sum| / n here. These
  replace the quantizer's per-rank activation sums in the result.

Activation histograms are counts: summed over the ranks. Weight histograms, scales and clips are identical on
every rank (same weights, same updates) and are taken as they are. These hooks do nothing unless a collector is
enabled on that quantizer (its probe is set) inside a job of more than one rank.

One more hook keeps the clips identical: with QuantOptions.act_clip_init == 0 (what the orchestrator sends) each
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
from dmbq_worker.quant.functions import EPS, _act_levels
from dmbq_worker.quant.sensitivity import LayerStatsArrays


def _sum_except(t: Tensor, channel_dim: int) -> Tensor:
    dims = [d for d in range(t.dim()) if d != channel_dim]
    return t.sum(dim=dims) if dims else t


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
    """Hooks on a model's quantizers that make its collected statistics those of the global batch."""

    def __init__(self, refs: Sequence[QuantLayerRef]) -> None:
        self.refs = list(refs)
        self._act: dict[str, Tensor] = {}
        self._act_lower: dict[str, Tensor] = {}
        self._handles: list[Any] = []
        for ref in self.refs:
            self._handles.append(ref.module.weight_quant.register_forward_hook(self._weight_hook))
            self._handles.append(ref.module.act_quant.register_forward_hook(self._act_hook(ref.name)))
            self._handles.append(ref.module.act_quant.register_forward_pre_hook(_init_clip_from_global_batch))

    @staticmethod
    def _collecting(quantizer: Any) -> bool:
        return runtime.current() is not None and torch.is_grad_enabled() and (
            quantizer.probe is not None or quantizer.probe_lower is not None)

    def _weight_hook(self, module: Any, inputs: tuple[Tensor, ...], w_hat: Tensor) -> None:
        if not self._collecting(module) or not w_hat.requires_grad:
            return
        world = float(runtime.world_size())

        def mean_over_ranks(grad: Tensor) -> Tensor:
            g = grad.detach().clone()
            runtime.all_reduce_sum_(g)
            return g / world

        w_hat.register_hook(mean_over_ranks)

    def _act_hook(self, name: str) -> Any:
        def hook(module: Any, inputs: tuple[Tensor, ...], x_hat: Tensor) -> None:
            if not self._collecting(module) or not x_hat.requires_grad:
                return
            x = inputs[0]
            cdim = module.channel_dim(x)
            with torch.no_grad():
                xf = x.detach().float()
                errors: list[tuple[dict[str, Tensor], Tensor]] = []
                if module.probe is not None:
                    errors.append((self._act, xf - x_hat.detach().float()))
                if module.probe_lower is not None:
                    c = module.clip.detach().float().clamp_min(EPS)
                    clipped = torch.clamp(xf, torch.zeros_like(c), c)
                    low = _act_levels(module.mode, xf, clipped, c, module.lower_n_steps, module.lower_levels,
                                      module.lower_thresholds, module.fp_mask, cdim, module.any_full_precision)
                    errors.append((self._act_lower, xf - low))
            world = runtime.world_size()
            n_global = float(xf.numel() // xf.shape[cdim]) * world

            def on_grad(grad: Tensor) -> None:
                with torch.no_grad():
                    g = grad.detach().float()
                    sums = torch.stack([_sum_except(err * g, cdim) for _, err in errors])
                    runtime.all_reduce_sum_(sums)
                    # each rank's gradient is of its local-mean loss: world x the global-mean one
                    values = sums.abs() / (world * n_global)
                    for (store, _), v in zip(errors, values):
                        if name in store:
                            store[name].add_(v)
                        else:
                            store[name] = v.clone()

            x_hat.register_hook(on_grad)

        return hook

    def reset(self) -> None:
        # Zeroed in place, never dropped: a captured CUDA graph replays its adds into these very tensors.
        for store in (self._act, self._act_lower):
            for t in store.values():
                t.zero_()

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
            out[ref.name] = replace(
                s,
                act_sensitivity=self._global(self._act, ref.name, s.act_sensitivity),
                act_sensitivity_lower=self._global(self._act_lower, ref.name, s.act_sensitivity_lower),
                act_hist=act_hist,
            )
        return out

    @staticmethod
    def _global(store: dict[str, Tensor], name: str, local: np.ndarray | None) -> np.ndarray | None:
        if local is None:
            return None
        if name not in store:
            return np.zeros_like(local)
        return store[name].cpu().numpy().astype(np.float32)
