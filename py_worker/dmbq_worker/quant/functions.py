"""Quantize-and-STE autograd Functions for weights and activations, with the LBA sensitivity in backward.

Sensitivity (per step, per channel c):  |sum_{elements of c} (x - x_hat) * dL/dx_hat| / n_c
with n_c the number of elements of channel c in the step. The Functions return it as the *gradient* of a
"probe" input (a leaf tensor of shape [C] that requires grad): autograd then sums it over the steps into
probe.grad on the device (AccumulateGrad is an in-place add), with no host sync, no Python-side state and nothing
that torch.compile or CUDA graphs could not trace. When a probe is None the Function skips that work entirely,
so collection is a mode switched outside the step (see SensitivityCollector), not a per-step decision.

The look-ahead probe gets the same quantity with x_hat computed from the level set one bit lower; it is
recomputed in backward (from the saved input), so it costs nothing while it is off.

Under torch.compile the quantizers use `weight_quant_ops` / `act_quant_ops` instead: the same values and gradients
from plain differentiable ops (no autograd.Function), with the probes receiving the *signed* per-step sum; the |.|
of each step is then taken by the collector after backward (SensitivityCollector.fold_).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

# Guards divisions by a scale or clip that collapsed to 0 (an all-zero channel, a clip driven to 0).
EPS = 1e-8

ActModeName = Literal["uniform", "table"]


def level_index(u: Tensor, thresholds: Tensor) -> Tensor:
    """Per row, how many thresholds lie strictly below u (= searchsorted(thresholds, u), side left).

    Eager runs use torch.searchsorted (one kernel). Under torch.compile the same count comes from a branch-free
    binary search of gathers and compares: inductor's CUDA lowering of searchsorted returned wrong indices here
    (every quantized gradient differed from eager on an H100, bench/compile_grad_check.py; the lowering's known
    off-by-one is pytorch/pytorch#182343). Both give identical integers: only exact float compares are involved.
    The rows hold 2^k - 1 thresholds (+inf padded), so k halvings cover them.
    """
    if not torch.compiler.is_compiling():
        return torch.searchsorted(thresholds, u.contiguous())
    return binary_search_index(u, thresholds)


def binary_search_index(u: Tensor, thresholds: Tensor) -> Tensor:
    """level_index by halving: u [C, K], thresholds [C, 2^k - 1] ascending per row."""
    width = thresholds.shape[1]
    halvings = max(int(width).bit_length(), 1)
    if (1 << halvings) - 1 != width:
        raise ValueError(f"threshold rows must hold 2^k - 1 entries, got {width}")
    idx = torch.zeros(u.shape, dtype=torch.int64, device=u.device)
    for k in reversed(range(halvings)):
        step = 1 << k
        probe = torch.gather(thresholds, 1, idx + (step - 1))
        idx = idx + torch.where(probe < u, step, 0)
    return idx


def quantize_units(u: Tensor, levels: Tensor, thresholds: Tensor) -> Tensor:
    """Nearest level per row: u [C, K], levels [C, L] ascending, thresholds [C, L-1] midpoints (+inf padded)."""
    return torch.gather(levels, 1, level_index(u, thresholds))


def channel_view(t: Tensor, ndim: int, channel_dim: int) -> Tensor:
    """A per-channel vector [C] shaped to broadcast against a tensor of `ndim` dims along `channel_dim`."""
    shape = [1] * ndim
    shape[channel_dim] = t.shape[0]
    return t.reshape(shape)


def uniform_act(clipped: Tensor, clip: Tensor, n_steps: Tensor) -> Tensor:
    """round(clipped / clip * n) / n * clip with n = 2^b - 1 broadcast per channel (n = 0 gives 0)."""
    return torch.round(clipped * (n_steps / clip)) * (clip / n_steps.clamp_min(1.0))


def table_act(clipped: Tensor, clip: Tensor, levels: Tensor, thresholds: Tensor, channel_dim: int) -> Tensor:
    """Nearest level of the channel's unsigned table (levels in [0, 1]) times the clip."""
    moved = (clipped / clip).movedim(channel_dim, 0)
    flat = moved.reshape(moved.shape[0], -1)
    q = quantize_units(flat, levels, thresholds).reshape(moved.shape).movedim(0, channel_dim)
    return q * clip


def _act_levels(
    mode: ActModeName,
    xf: Tensor,
    clipped: Tensor,
    clip: Tensor,
    n_steps: Tensor,
    levels: Tensor,
    thresholds: Tensor,
    fp_mask: Tensor,
    channel_dim: int,
    any_fp: bool,
) -> Tensor:
    if mode == "uniform":
        q = uniform_act(clipped, clip, channel_view(n_steps, xf.dim(), channel_dim))
    else:
        q = table_act(clipped, clip, levels, thresholds, channel_dim)
    if any_fp:
        q = torch.where(channel_view(fp_mask, xf.dim(), channel_dim), xf, q)
    return q


def _sum_except(t: Tensor, channel_dim: int) -> Tensor:
    dims = [d for d in range(t.dim()) if d != channel_dim]
    return t.sum(dim=dims) if dims else t


def _weight_levels(w2: Tensor, u: Tensor, s: Tensor, fp_mask: Tensor, levels: Tensor, thresholds: Tensor) -> Tensor:
    """Each row's nearest level times its scale ([C, K] from u = w2 / s); full-precision rows keep w2."""
    return torch.where(fp_mask.unsqueeze(1), w2, quantize_units(u, levels, thresholds) * s)


def _ste_passes(u: Tensor, clip_units: Tensor) -> Tensor:
    """The clipped STE's mask: |w / s_c| <= the channel's clip (+inf for full precision, -1 for pruned channels)."""
    return u.abs() <= clip_units.unsqueeze(1)


def _ste(value: Tensor, surrogate: Tensor) -> Tensor:
    """`value` forward, the gradient of `surrogate` backward: surrogate - surrogate.detach() is an exact 0 for finite
    values, so the result is `value` bit for bit (value + (surrogate - value).detach() would round)."""
    return value.detach() + (surrogate - surrogate.detach())


def weight_quant_ops(
    weight: Tensor,
    scale: Tensor,
    levels: Tensor,
    thresholds: Tensor,
    clip_units: Tensor,
    fp_mask: Tensor,
    lower_levels: Tensor,
    lower_thresholds: Tensor,
    probe: Tensor | None,
    probe_lower: Tensor | None,
) -> Tensor:
    """WeightQuantSTE from plain ops, for torch.compile: same value, same clipped-STE gradient; the probes get the
    signed per-step sum_e (w - w_hat) * g / n (the collector folds |.| per step).

    Why not the Function under compile: traced by torch 2.11 on an H100, every gradient of the Function came back
    exactly zero, with backend aot_eager as well, with or without ctx.needs_input_grad
    (bench/compile_backward_probe.py; docs/RESULTS.md). Plain ops leave nothing to the tracing of custom Functions.
    """
    channels = weight.shape[0]
    w2 = weight.reshape(channels, -1).float()
    wd = w2.detach()
    s = scale.detach().float().clamp_min(EPS).unsqueeze(1)
    u = wd / s
    w_hat = _weight_levels(wd, u, s, fp_mask, levels, thresholds)
    if not torch.is_grad_enabled():
        return w_hat.reshape(weight.shape).to(weight.dtype)
    out = _ste(w_hat, w2 * _ste_passes(u, clip_units))
    n = float(w2.shape[1])
    if probe is not None:
        out = out + probe.unsqueeze(1) * ((wd - w_hat) / n)  # the probe is 0: adds an exact 0
    if probe_lower is not None:
        low = _weight_levels(wd, u, s, fp_mask, lower_levels, lower_thresholds)
        out = out + probe_lower.unsqueeze(1) * ((wd - low) / n)
    return out.reshape(weight.shape).to(weight.dtype)


def act_quant_ops(
    x: Tensor,
    clip: Tensor,
    n_steps: Tensor,
    levels: Tensor,
    thresholds: Tensor,
    fp_mask: Tensor,
    lower_n_steps: Tensor,
    lower_levels: Tensor,
    lower_thresholds: Tensor,
    probe: Tensor | None,
    probe_lower: Tensor | None,
    mode: ActModeName,
    channel_dim: int,
    any_fp: bool,
) -> Tensor:
    """ActQuantSTE from plain ops, for torch.compile (see weight_quant_ops): x gets the gradient where
    0 <= x <= clip, the clip the summed gradient where x > clip; the probes the signed per-step sums."""
    xf = x.float()
    c = clip.float().clamp_min(EPS)
    parts = _ActParts.of(xf.detach(), c.detach(), n_steps, levels, thresholds, fp_mask, lower_n_steps, lower_levels,
                         lower_thresholds, mode, channel_dim, any_fp, probe is not None, probe_lower is not None)
    if not torch.is_grad_enabled():
        return parts.x_hat.to(x.dtype)
    out = _ste(parts.x_hat, xf * parts.inside + c * parts.above)
    n = float(xf.numel() // xf.shape[channel_dim])
    if parts.err is not None and probe is not None:
        out = out + channel_view(probe, xf.dim(), channel_dim) * (parts.err / n)
    if parts.err_lower is not None and probe_lower is not None:
        out = out + channel_view(probe_lower, xf.dim(), channel_dim) * (parts.err_lower / n)
    return out.to(x.dtype)


class WeightQuantSTE(torch.autograd.Function):
    """w_hat = s_c * nearest_level_c(w / s_c) per output channel; full-precision channels pass w through.

    Backward: the clipped STE (gradient where |w / s_c| <= the channel's clip, i.e. its top level; +inf for full
    precision, -1 for pruned channels so that nothing passes), and the sensitivity probes.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        weight: Tensor,
        scale: Tensor,
        levels: Tensor,
        thresholds: Tensor,
        clip_units: Tensor,
        fp_mask: Tensor,
        lower_levels: Tensor,
        lower_thresholds: Tensor,
        probe: Tensor | None,
        probe_lower: Tensor | None,
    ) -> Tensor:
        channels = weight.shape[0]
        w2 = weight.reshape(channels, -1).float()
        s = scale.float().clamp_min(EPS).unsqueeze(1)
        u = w2 / s
        w_hat = _weight_levels(w2, u, s, fp_mask, levels, thresholds)
        ctx.save_for_backward(w2, s, u, w_hat, clip_units, fp_mask, lower_levels, lower_thresholds)
        ctx.has_probe = probe is not None
        ctx.has_probe_lower = probe_lower is not None
        ctx.weight_shape = weight.shape
        ctx.weight_dtype = weight.dtype
        return w_hat.reshape(weight.shape).to(weight.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        w2, s, u, w_hat, clip_units, fp_mask, lower_levels, lower_thresholds = ctx.saved_tensors
        g = grad.reshape(w2.shape).float()
        n = float(w2.shape[1])
        # Always computed, not gated by ctx.needs_input_grad (autograd discards a gradient nobody asked for). This
        # Function runs eager only: compiled by torch 2.11 on an H100 its gradients came back exactly 0, with and
        # without needs_input_grad, so compiled runs use weight_quant_ops.
        grad_w = (g * _ste_passes(u, clip_units)).reshape(ctx.weight_shape).to(ctx.weight_dtype)
        sens = None
        if ctx.has_probe:
            sens = ((w2 - w_hat) * g).sum(dim=1).abs() / n
        sens_lower = None
        if ctx.has_probe_lower:
            low = _weight_levels(w2, u, s, fp_mask, lower_levels, lower_thresholds)
            sens_lower = ((w2 - low) * g).sum(dim=1).abs() / n
        return grad_w, None, None, None, None, None, None, None, sens, sens_lower


class ActQuantSTE(torch.autograd.Function):
    """x_hat per input channel: uniform 2^b levels on [0, clip] or the channel's table times the clip.

    Backward (PACT-style clipped STE): x gets the gradient where 0 <= x <= clip; the clip gets the summed gradient
    of the saturated part (x > clip). Full-precision channels pass x and its gradient through untouched.
    `any_fp` (a Python bool fixed by the scheme) skips the full-precision select when no channel needs it.
    When collecting, the errors x - x_hat (and x - x_hat_lower) go to the probes' gradients; they are formed in
    forward, where x_hat already exists (compiled runs use act_quant_ops instead of this Function).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        clip: Tensor,
        n_steps: Tensor,
        levels: Tensor,
        thresholds: Tensor,
        fp_mask: Tensor,
        lower_n_steps: Tensor,
        lower_levels: Tensor,
        lower_thresholds: Tensor,
        probe: Tensor | None,
        probe_lower: Tensor | None,
        mode: ActModeName,
        channel_dim: int,
        any_fp: bool,
    ) -> Tensor:
        ctx.has_probe = probe is not None
        ctx.has_probe_lower = probe_lower is not None
        ctx.channel_dim = channel_dim
        ctx.x_dtype = x.dtype
        ctx.clip_shape = clip.shape
        tables = (clip, n_steps, levels, thresholds, fp_mask, lower_n_steps, lower_levels, lower_thresholds)
        parts = _ActParts.of(x, *tables, mode, channel_dim, any_fp, probe is not None, probe_lower is not None)
        # 1-byte masks and the errors: memory for fewer kernels in backward
        saved = [parts.inside, parts.above]
        if parts.err is not None:
            saved.append(parts.err)
        if parts.err_lower is not None:
            saved.append(parts.err_lower)
        ctx.save_for_backward(*saved)
        return parts.x_hat.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        saved = list(ctx.saved_tensors)
        inside, above = saved[0], saved[1]
        rest = saved[2:]
        err = rest.pop(0) if ctx.has_probe else None
        err_lower = rest.pop(0) if ctx.has_probe_lower else None
        g = grad.float()
        # always both (see WeightQuantSTE.backward)
        grad_x = (g * inside).to(ctx.x_dtype)
        grad_clip = torch.where(above, g, 0.0).sum().reshape(ctx.clip_shape)
        cdim = ctx.channel_dim
        n = float(inside.numel() // inside.shape[cdim])
        sens = _sum_except(err * g, cdim).abs() / n if err is not None else None
        sens_lower = _sum_except(err_lower * g, cdim).abs() / n if err_lower is not None else None
        return (grad_x, grad_clip, None, None, None, None, None, None, None, sens, sens_lower, None, None, None)


class _ActParts:
    """What the activation quantizer derives from x: x_hat, the STE masks and the errors the probes need."""

    def __init__(self, x_hat: Tensor, inside: Tensor, above: Tensor, err: Tensor | None, err_lower: Tensor | None):
        self.x_hat, self.inside, self.above, self.err, self.err_lower = x_hat, inside, above, err, err_lower

    @staticmethod
    def of(
        x: Tensor,
        clip: Tensor,
        n_steps: Tensor,
        levels: Tensor,
        thresholds: Tensor,
        fp_mask: Tensor,
        lower_n_steps: Tensor,
        lower_levels: Tensor,
        lower_thresholds: Tensor,
        mode: ActModeName,
        channel_dim: int,
        any_fp: bool,
        with_err: bool,
        with_err_lower: bool,
    ) -> "_ActParts":
        xf = x.float()
        c = clip.float().clamp_min(EPS)
        clipped = torch.clamp(xf, torch.zeros_like(c), c)  # one kernel: tensor bounds on both sides
        x_hat = _act_levels(mode, xf, clipped, c, n_steps, levels, thresholds, fp_mask, channel_dim, any_fp)
        # The equality is exact in eager (same stored values) and under inductor, which fuses it with the clamp
        # on the same loaded x (a recomputation in backward recomputes both sides alike).
        inside = xf == clipped  # 0 <= x <= clip
        above = xf > c
        if any_fp:
            fp = channel_view(fp_mask, xf.dim(), channel_dim)
            inside = inside | fp
            above = above & ~fp
        err = xf - x_hat if with_err else None
        err_lower = None
        if with_err_lower:
            low = _act_levels(
                mode, xf, clipped, c, lower_n_steps, lower_levels, lower_thresholds, fp_mask, channel_dim, any_fp
            )
            err_lower = xf - low
        return _ActParts(x_hat, inside, above, err, err_lower)
