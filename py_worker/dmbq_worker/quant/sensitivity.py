"""LBA sensitivities and level statistics, accumulated on the device over the steps of a run request.

Sensitivity of channel c in one step (weights: an output channel; activations: an input channel):

    S_c = | sum_{elements e of c} (x_e - x_hat_e) * dL/dx_hat_e | / n_c

n_c is the number of elements of c in that step (weights: in/groups * kh * kw; activations: batch * H * W).
S_c is summed over the steps while the collector is enabled. The look-ahead S_c^lower uses x_hat from the level
set one bit lower (b - 1 bits; 0 bits quantizes to 0). Full-precision channels have x_hat = x, so S_c = 0 (their
look-ahead is 0 too: the worker has no "one bit below FP").

How: each quantizer gets "probe" leaves of shape [C] that require grad; its autograd Function returns S_c as the
probe's gradient, so autograd's own in-place accumulation sums it over steps (functions.py). The probes are plain
attributes, not parameters: no optimizer, zero_grad or grad-clipping sees them. Notes for the training loop:
 * a GradScaler multiplies every gradient, these too: divide by its scale (bf16 autocast needs none);
 * backward(inputs=...) restricted to the parameters would skip the probes;
 * under DDP each rank holds its own sums: all-reduce the arrays of `read()` if one total is wanted.
A collector made with `fold_each_step=True` (compiled runs, ranks of a job) switches its quantizers to the plain-ops
path (functions.py, `weight_quant_ops`), which hands the probes the *signed* per-step sums; it keeps its own sums,
and `fold_()`, called once per step after backward (inside the step, so inside its CUDA graph), adds |probe.grad| to
them and zeroes the probes. Folding a per-step value that is already |.| changes nothing. In a job, `reduce_step`
(an all-reduce) first sums the signed values of all ranks in one collective, so the |.| is that of the global batch.

Histograms (histogram_bins > 0, training-mode forwards only): of w / s_c over the whole layer on
[-r, r] with r = max|w / s_c| when the collector is enabled (fixed for the run so steps add up; values outside
are counted in the end bins, so counts sum to elements x steps), and of x / clip on [0, 1.5].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from dmbq_worker.errors import invalid
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant.act_quantizer import ACT_HIST_HI
from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.functions import EPS

Histogram = tuple[float, float, np.ndarray]


@dataclass
class LayerStatsArrays:
    weight_sensitivity: np.ndarray | None  # float32 [out_channels]; None when not collected (histograms only)
    act_sensitivity: np.ndarray | None  # float32 [in_channels]
    weight_sensitivity_lower: np.ndarray | None
    act_sensitivity_lower: np.ndarray | None
    weight_hist: Histogram | None  # (lo, hi, counts float32 [bins]) of w / s_c
    act_hist: Histogram | None  # (0, 1.5, counts) of x / clip
    act_clip: np.ndarray | None  # float32 [1]
    weight_scale: np.ndarray  # float32 [out_channels]


def _probe(n: int, like: Tensor) -> Tensor:
    return torch.zeros(n, device=like.device, dtype=torch.float32, requires_grad=True)


def _accumulated(total: Tensor | None, n: int) -> np.ndarray:
    if total is None:
        return np.zeros(n, dtype=np.float32)
    return total.detach().float().cpu().numpy().astype(np.float32)


@dataclass
class _LayerSlots:
    """The device tensors one layer accumulates into; owned here, lent to the quantizers while enabled."""

    weight_probe: Tensor | None  # None: histograms only
    act_probe: Tensor | None
    weight_probe_lower: Tensor | None
    act_probe_lower: Tensor | None
    weight_hist: Tensor | None
    weight_hist_range: Tensor | None
    act_hist: Tensor | None
    # fold_each_step only: the per-probe sums, in the order of tensors()
    sums: list[Tensor] | None = None

    def probes(self) -> list[tuple[Tensor, bool]]:
        """The probes in use, each with whether it is an activation's."""
        maybe = [(self.weight_probe, False), (self.act_probe, True), (self.weight_probe_lower, False),
                 (self.act_probe_lower, True)]
        return [(t, is_act) for t, is_act in maybe if t is not None]

    def tensors(self) -> list[Tensor]:
        return [t for t, _ in self.probes()]

    def total(self, probe: Tensor | None) -> Tensor | None:
        """What a probe has summed: its own gradient, or (fold_each_step) the folded sum beside it."""
        if probe is None:
            return None
        if self.sums is None:
            return probe.grad
        return next(s for t, s in zip(self.tensors(), self.sums) if t is probe)


@torch.no_grad()
def _weight_range(ref: QuantLayerRef) -> Tensor:
    """[-r, r] with r = max|w / s_c| over the layer (1 if the layer is all zero)."""
    wq = ref.module.weight_quant
    u = ref.module.weight.detach().reshape(wq.out_channels, -1).float() / wq.scale.clamp_min(EPS).unsqueeze(1)
    r = u.abs().max()
    r = torch.where(r > 0, r, torch.ones_like(r))
    return torch.stack([-r, r])


class SensitivityCollector:
    """Switches collection on the layers' quantizers and reads the sums back (the only host sync)."""

    def __init__(
        self,
        layers: Sequence[QuantLayerRef],
        *,
        lookahead: bool = False,
        histogram_bins: int = 0,
        sensitivity: bool = True,
        act_histograms: bool = True,
        fold_each_step: bool = False,
        reduce_step: Callable[[Tensor], object] | None = None,
        world_size: int = 1,
    ) -> None:
        """`reduce_step` (fold_each_step only): sums a flat tensor over the ranks in place; `world_size` ranks each
        compute gradients of their local-mean loss, so the sums are rescaled to the global-mean loss's."""
        if histogram_bins < 0:
            raise invalid("run.histogram_bins", f"must be >= 0, got {histogram_bins}")
        if lookahead and not sensitivity:
            raise invalid("run.lookahead", "the look-ahead is a sensitivity: it needs run.sensitivity")
        self.layers = list(layers)
        self.lookahead = bool(lookahead)
        # False: histograms only, no probes (the quantizers then skip every sensitivity computation)
        self.sensitivity = bool(sensitivity)
        self.act_histograms = bool(act_histograms)  # False: weight histograms only
        self.fold_each_step = bool(fold_each_step)
        if reduce_step is not None and not self.fold_each_step:
            raise ValueError("reduce_step needs fold_each_step=True")
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        self.reduce_step = reduce_step
        self.world_size = int(world_size)
        self.histogram_bins = int(histogram_bins)
        self.enabled = False
        self._slots: list[_LayerSlots] | None = None

    def _allocate(self) -> list[_LayerSlots]:
        slots = []
        bins = self.histogram_bins
        for ref in self.layers:
            wq, aq, w = ref.module.weight_quant, ref.module.act_quant, ref.module.weight
            slots.append(
                _LayerSlots(
                    weight_probe=_probe(wq.out_channels, w) if self.sensitivity else None,
                    act_probe=_probe(aq.in_channels, w) if self.sensitivity else None,
                    weight_probe_lower=_probe(wq.out_channels, w) if self.lookahead else None,
                    act_probe_lower=_probe(aq.in_channels, w) if self.lookahead else None,
                    weight_hist=torch.zeros(bins, device=w.device) if bins > 0 else None,
                    weight_hist_range=_weight_range(ref) if bins > 0 else None,
                    act_hist=torch.zeros(bins, device=w.device) if bins > 0 and self.act_histograms else None,
                )
            )
            if self.fold_each_step:
                slots[-1].sums = [torch.zeros_like(t, requires_grad=False) for t in slots[-1].tensors()]
        return slots

    @torch.no_grad()
    def fold_(self) -> None:
        """Add |this step's probe gradients| to the sums and zero the probes (fold_each_step; once per step)."""
        if not self.enabled or self._slots is None or not self.fold_each_step:
            return
        grads: list[Tensor] = []
        sums: list[Tensor] = []
        scales: list[float] = []
        w = float(self.world_size)
        for slot in self._slots:
            assert slot.sums is not None
            for (t, is_act), total in zip(slot.probes(), slot.sums):
                if t.grad is not None:  # a layer left unquantized never gets one
                    grads.append(t.grad)
                    sums.append(total)
                    # weights: every rank's gradient is W x the global one's share -> 1/W; activations: also each
                    # rank's n is 1/W of the global batch's -> 1/W^2 (distributed/statistics.py says more)
                    scales.append(1.0 / (w * w) if is_act else 1.0 / w)
        if not grads:
            return
        if self.reduce_step is not None:
            flat = torch.cat([g.reshape(-1) for g in grads])
            self.reduce_step(flat)  # one collective per step for every layer's sums
            values = list(torch.split(flat, [g.numel() for g in grads]))
            torch._foreach_mul_(values, scales)
        else:
            values = grads
        torch._foreach_add_(sums, torch._foreach_abs(values))
        torch._foreach_zero_(grads)

    def enable(self) -> None:
        """Start (or resume) accumulating; checks that the look-ahead tables exist. Call between steps."""
        if self.lookahead:
            for ref in self.layers:
                wq, aq = ref.module.weight_quant, ref.module.act_quant
                if not wq.lower_available or not aq.lower_available:
                    raise invalid(
                        "run.lookahead",
                        f"layer {ref.name!r} uses a bit-width whose table one bit lower is not in the scheme",
                    )
        if self._slots is None:
            self._slots = self._allocate()
        for ref, slot in zip(self.layers, self._slots):
            wq, aq = ref.module.weight_quant, ref.module.act_quant
            wq.probe, wq.probe_lower = slot.weight_probe, slot.weight_probe_lower
            wq.hist, wq.hist_range = slot.weight_hist, slot.weight_hist_range
            aq.probe, aq.probe_lower, aq.hist = slot.act_probe, slot.act_probe_lower, slot.act_hist
            wq.signed_probes = aq.signed_probes = self.fold_each_step
        self.enabled = True

    def disable(self) -> None:
        """Stop accumulating (evaluation, steps not to count); the sums are kept for read()."""
        for ref in self.layers:
            wq, aq = ref.module.weight_quant, ref.module.act_quant
            wq.probe = wq.probe_lower = wq.hist = wq.hist_range = None
            aq.probe = aq.probe_lower = aq.hist = None
            wq.signed_probes = aq.signed_probes = False
        self.enabled = False

    def reset(self) -> None:
        """Zero the sums in place and re-fix the weight histogram ranges from the current weights."""
        if self._slots is None:
            return
        for ref, slot in zip(self.layers, self._slots):
            for t in slot.tensors():
                if t.grad is not None:
                    t.grad.zero_()
            for total in slot.sums or []:
                total.zero_()
            for h in (slot.weight_hist, slot.act_hist):
                if h is not None:
                    h.zero_()
            if slot.weight_hist_range is not None:
                slot.weight_hist_range.copy_(_weight_range(ref))

    @staticmethod
    def _sums(slot: _LayerSlots | None, probe: str, n: int, collected: bool) -> np.ndarray | None:
        """A probe's sums on the host (zeros if it never got a gradient); None when that kind was not collected."""
        if not collected:
            return None
        return _accumulated(slot.total(getattr(slot, probe)) if slot is not None else None, n)

    def read(self) -> dict[str, LayerStatsArrays]:
        """Copy the sums to the host as float32 numpy arrays (the one host sync)."""
        out: dict[str, LayerStatsArrays] = {}
        for i, ref in enumerate(self.layers):
            wq, aq = ref.module.weight_quant, ref.module.act_quant
            slot = self._slots[i] if self._slots is not None else None
            weight_hist = act_hist = None
            if slot is not None and slot.weight_hist is not None and slot.weight_hist_range is not None:
                lo, hi = (float(v) for v in slot.weight_hist_range.detach().cpu().tolist())
                weight_hist = (lo, hi, slot.weight_hist.detach().cpu().numpy().astype(np.float32))
            if slot is not None and slot.act_hist is not None:
                act_hist = (0.0, ACT_HIST_HI, slot.act_hist.detach().cpu().numpy().astype(np.float32))
            out[ref.name] = LayerStatsArrays(
                weight_sensitivity=self._sums(slot, "weight_probe", wq.out_channels, self.sensitivity),
                act_sensitivity=self._sums(slot, "act_probe", aq.in_channels, self.sensitivity),
                weight_sensitivity_lower=self._sums(slot, "weight_probe_lower", wq.out_channels, self.lookahead),
                act_sensitivity_lower=self._sums(slot, "act_probe_lower", aq.in_channels, self.lookahead),
                weight_hist=weight_hist,
                act_hist=act_hist,
                act_clip=aq.clip.detach().float().cpu().numpy().astype(np.float32).reshape(-1),
                weight_scale=wq.scale.detach().float().cpu().numpy().astype(np.float32),
            )
        return out


def _pack(a: np.ndarray | None) -> bytes:
    return b"" if a is None else np.ascontiguousarray(a, dtype="<f4").tobytes()


def stats_to_proto(name: str, s: LayerStatsArrays) -> pb.LayerStats:
    msg = pb.LayerStats(
        name=name,
        weight_sensitivity_f32=_pack(s.weight_sensitivity),
        act_sensitivity_f32=_pack(s.act_sensitivity),
        weight_sensitivity_lower_f32=_pack(s.weight_sensitivity_lower),
        act_sensitivity_lower_f32=_pack(s.act_sensitivity_lower),
        act_clip_f32=_pack(s.act_clip),
        weight_scale_f32=_pack(s.weight_scale),
    )
    if s.weight_hist is not None:
        lo, hi, counts = s.weight_hist
        msg.weight_hist.CopyFrom(pb.Histogram(lo=lo, hi=hi, counts_f32=_pack(counts)))
    if s.act_hist is not None:
        lo, hi, counts = s.act_hist
        msg.act_hist.CopyFrom(pb.Histogram(lo=lo, hi=hi, counts_f32=_pack(counts)))
    return msg
