"""The quantizers' fused path: autograd Functions over the Triton kernels of fused_kernels.py.

Same inputs, values, gradients and probe gradients as WeightQuantSTE / ActQuantSTE (functions.py), in one kernel
per direction. The quantizers take this path on CUDA when Triton imports, the tensor's layout is one the kernels
read (weights: contiguous or channels_last; activations: channels_last 4-D or contiguous 2-D) and, for activations,
the levels are uniform (table-mode activations keep the torch ops). Everything else, and every run with
DMBQ_FUSED_QUANT=0, keeps the torch ops. With DMBQ_FUSED_QUANT=interpret the kernels also run on CPU tensors, in
Triton's interpreter: that is how the CPU tests compare the two paths.

Values and input gradients equal the Functions' bit for bit (bench: python -m dmbq_worker.quant.fused_check). By
design: the clip gradient and the sensitivities are sums in another order (float atomics across blocks), equal to
rounding; and the probes receive each step's *signed* sums, as from weight_quant_ops / act_quant_ops, so only a
collector that folds |.| after every step (SensitivityCollector(fold_each_step=True), the service's choice wherever
this path runs) may lend them its probes: the quantizers check `signed_probes`.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

# MAX_LEVELS of levels.py: table rows are padded to 256 levels / 255 thresholds
_LEVEL_STRIDE, _THR_STRIDE = 256, 255
# No multiply-add contraction: round(x * (n / clip)) must round the product as eager does. With an FMA, products that
# land next to a .5 (common with bfloat16 inputs) rounded to the other level (H100, bench: fused_check).
_NO_FMA = {"enable_fp_fusion": False}

# Triton ships with CUDA builds of torch; CPU builds (CI) usually run without it.
TRITON_FOUND = importlib.util.find_spec("triton") is not None
_kernels_module: ModuleType | None = None


def _mode() -> str:
    """DMBQ_FUSED_QUANT: "1" (default: CUDA tensors), "0" (never), "interpret" (CPU tensors too, through Triton's
    interpreter, which also needs TRITON_INTERPRET=1: the CPU tests' mode)."""
    return os.environ.get("DMBQ_FUSED_QUANT", "1")


def _kernels() -> ModuleType:
    """fused_kernels, imported on first use: triton.jit reads TRITON_INTERPRET when the kernels are defined."""
    global _kernels_module
    if _kernels_module is None:
        if _mode() == "interpret" and os.environ.get("TRITON_INTERPRET") != "1":
            # triton.language's own jit functions are made at its import, which torch does early
            raise RuntimeError("DMBQ_FUSED_QUANT=interpret needs TRITON_INTERPRET=1 in the environment before the "
                               "process imports torch")
        from dmbq_worker.quant import fused_kernels

        _kernels_module = fused_kernels
    return _kernels_module


def fused_enabled() -> bool:
    """Triton installed and the fused path not switched off (DMBQ_FUSED_QUANT=0)."""
    return TRITON_FOUND and _mode() != "0"


def fused_on(device: torch.device) -> bool:
    """Whether quantizers on `device` may take the fused path (a folding collector is then wanted: see the kernels)."""
    return fused_enabled() and (device.type == "cuda" or (_mode() == "interpret" and device.type == "cpu"))


def weight_fusable(weight: Tensor) -> bool:
    """Each output channel's elements one block of storage (contiguous or channels_last)."""
    if not fused_on(weight.device) or weight.dim() < 2 or weight.numel() == 0:
        return False
    return weight.is_contiguous() or (weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last))


def act_fusable(x: Tensor, channel_dim: int) -> bool:
    """Channels innermost in storage: channels_last [N, C, H, W] or contiguous [N, C]."""
    if not fused_on(x.device) or x.numel() == 0:  # an empty batch: no blocks to launch
        return False
    if x.dim() == 4 and channel_dim == 1:
        return x.is_contiguous(memory_format=torch.channels_last)
    return x.dim() == 2 and channel_dim == 1 and x.is_contiguous()


def conv_operand_dtype(t: Tensor) -> torch.dtype | None:
    """The dtype autocast gives a conv / linear operand on t's device, or None outside autocast.

    The quantizers feed a conv or linear, which autocast would cast their output to: emitting that dtype from the
    kernel (same round-to-nearest-even) spares a cast kernel each way per layer (the weight's fp32 -> bf16 copy in
    forward and its gradient's bf16 -> fp32 copy in backward): two launches per layer, more than ResNet-20's
    FP step pays for them itself."""
    dev = t.device.type
    if torch.is_autocast_enabled(dev):
        dtype = torch.get_autocast_dtype(dev)
        return dtype if dtype != t.dtype else None
    return None


def _same_layout(g: Tensor, like: Tensor) -> Tensor:
    """g with like's strides (a copy only when autograd handed another layout)."""
    if g.stride() == like.stride():
        return g
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return g.contiguous(memory_format=torch.channels_last)
    return g.contiguous()


def _pow2(n: int, cap: int) -> int:
    """The smallest power of two >= n, at most cap (Triton block sizes are powers of two)."""
    return min(1 << max(int(n) - 1, 0).bit_length(), cap)


# Activation tiles: ACT_TILE elements per block (at most ACT_MAX_BLOCK_C channels wide), ACT_WARPS warps. Tunable
# through the environment for bench/fused_tiles.py, which measured the defaults (docs/RESULTS.md).
ACT_TILE = int(os.environ.get("DMBQ_FUSED_ACT_TILE", "4096"))
ACT_MAX_BLOCK_C = int(os.environ.get("DMBQ_FUSED_ACT_BLOCK_C", "64"))
ACT_WARPS = int(os.environ.get("DMBQ_FUSED_ACT_WARPS", "4"))


def _act_grid(m: int, c: int) -> tuple[tuple[int, int], int, int]:
    block_c = _pow2(c, ACT_MAX_BLOCK_C)
    block_m = max(16, ACT_TILE // block_c)
    return ((m + block_m - 1) // block_m, (c + block_c - 1) // block_c), block_m, block_c


def _running_sum(probe: Tensor | None) -> Tensor | None:
    """The probe's gradient, which the kernels add into in place (the collector folds and zeroes it every step).

    Made here, as zeros, on the first step that collects: an eager step (the trainer runs eager warm-up steps before
    every capture). Inside a capture, zeros made here would be replayed every step: refuse."""
    if probe is None:
        return None
    if probe.grad is None:
        if probe.is_cuda and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("fused quantizers: a sensitivity probe got its first gradient inside a CUDA graph "
                               "capture; run one eager step with collection on before capturing")
        probe.grad = torch.zeros_like(probe)
    return probe.grad


class FusedWeightQuantSTE(torch.autograd.Function):
    """WeightQuantSTE in two kernels (see functions.py for the semantics). The probes get this step's signed
    sensitivity sums added straight into their gradients (no AccumulateGrad; backward returns None for them), the
    convention of weight_quant_ops: only a collector that folds every step may hand this Function its probes.
    `out_dtype` (conv_operand_dtype): w_hat in that dtype, rounded as autocast's cast would; the gradient then
    arrives in it and leaves in the weight's dtype. `precomputed`: w_hat as FusedWeightBatch made it for this step
    (same values): the forward launches nothing."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        weight: Tensor,
        scale: Tensor,
        levels: Tensor,
        thresholds: Tensor,
        clip_units: Tensor,
        fp_mask: Tensor,
        bits: Tensor,
        lower_levels: Tensor,
        lower_thresholds: Tensor,
        probe: Tensor | None,
        probe_lower: Tensor | None,
        out_dtype: torch.dtype | None = None,
        precomputed: Tensor | None = None,
    ) -> Tensor:
        k_ = _kernels()
        channels = weight.shape[0]
        k = weight.numel() // channels
        scale32 = scale.float()
        if precomputed is not None:  # w_hat already made by FusedWeightBatch, for every layer in one launch
            out = precomputed
        else:
            out = torch.empty_like(weight, dtype=out_dtype or weight.dtype)
            k_.weight_forward_kernel[(channels,)](
                weight, out, scale32, levels, thresholds, fp_mask, bits, k,
                LEVEL_STRIDE=_LEVEL_STRIDE, THR_STRIDE=_THR_STRIDE, BLOCK_K=_pow2(k, 1024), **_NO_FMA,
            )
        ctx.save_for_backward(weight, scale32, levels, thresholds, clip_units, fp_mask, bits, lower_levels,
                              lower_thresholds)
        ctx.probe, ctx.probe_lower = probe, probe_lower
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        k_ = _kernels()
        weight, scale32, levels, thresholds, clip_units, fp_mask, bits, lower_levels, lower_thresholds = (
            ctx.saved_tensors)
        channels = weight.shape[0]
        k = weight.numel() // channels
        g = _same_layout(grad, weight)
        grad_w = torch.empty_like(weight)
        sens, sens_lower = _running_sum(ctx.probe), _running_sum(ctx.probe_lower)
        k_.weight_backward_kernel[(channels,)](
            weight, g, grad_w, scale32, levels, thresholds, clip_units, fp_mask, bits, lower_levels, lower_thresholds,
            sens if sens is not None else grad_w, sens_lower if sens_lower is not None else grad_w, k,
            HAS_SENS=sens is not None, HAS_LOWER=sens_lower is not None,
            LEVEL_STRIDE=_LEVEL_STRIDE, THR_STRIDE=_THR_STRIDE, BLOCK_K=_pow2(k, 1024), **_NO_FMA,
        )
        return grad_w, None, None, None, None, None, None, None, None, None, None, None, None


class FusedUniformActQuantSTE(torch.autograd.Function):
    """ActQuantSTE in uniform mode, in two kernels (see functions.py for the semantics). The probes get this step's
    signed sums / n added straight into their gradients, as in FusedWeightQuantSTE (a folding collector only).
    `out_dtype` as in FusedWeightQuantSTE. `relu_input`: x is a ReLU's input, and this quantizes relu(x) (the ReLU
    folded in: its two passes over the tensor, forward and backward, are not run)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        clip: Tensor,
        n_steps: Tensor,
        fp_mask: Tensor,
        lower_n_steps: Tensor,
        probe: Tensor | None,
        probe_lower: Tensor | None,
        any_fp: bool,
        out_dtype: torch.dtype | None = None,
        relu_input: bool = False,
    ) -> Tensor:
        k_ = _kernels()
        c = x.shape[1]
        m = x.numel() // c
        out = torch.empty_like(x, dtype=out_dtype or x.dtype)
        clip32 = clip.float()
        # dL/dclip's sum, zeroed by the forward kernel (the backward's blocks add into it): no fill launch
        grad_clip = torch.empty(1, device=x.device, dtype=torch.float32)
        grid, block_m, block_c = _act_grid(m, c)
        k_.act_forward_kernel[grid](x, out, clip32, n_steps, fp_mask, grad_clip, m, c,
                                    HAS_FP=any_fp, RELU_INPUT=relu_input, BLOCK_M=block_m, BLOCK_C=block_c,
                                    num_warps=ACT_WARPS, **_NO_FMA)
        ctx.save_for_backward(x, clip32, n_steps, fp_mask, lower_n_steps)
        ctx.probe, ctx.probe_lower = probe, probe_lower
        ctx.any_fp, ctx.relu_input = any_fp, relu_input
        ctx.grad_clip = grad_clip
        ctx.clip_shape, ctx.clip_dtype = clip.shape, clip.dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        k_ = _kernels()
        x, clip32, n_steps, fp_mask, lower_n_steps = ctx.saved_tensors
        c = x.shape[1]
        m = x.numel() // c
        g = _same_layout(grad, x)
        grad_x = torch.empty_like(x)
        # handed on as the clip's gradient: no reference kept here, so AccumulateGrad may take it without a copy
        grad_clip, ctx.grad_clip = ctx.grad_clip, None
        if grad_clip is None:  # a second backward through the same graph (retain_graph): zero a new sum
            grad_clip = torch.zeros(1, device=x.device, dtype=torch.float32)
        sens, sens_lower = _running_sum(ctx.probe), _running_sum(ctx.probe_lower)
        grid, block_m, block_c = _act_grid(m, c)
        k_.act_backward_kernel[grid](
            x, g, grad_x, clip32, n_steps, lower_n_steps, fp_mask, grad_clip,
            sens if sens is not None else grad_clip, sens_lower if sens_lower is not None else grad_clip, m, c,
            HAS_FP=ctx.any_fp, HAS_SENS=sens is not None, HAS_LOWER=sens_lower is not None, RELU_INPUT=ctx.relu_input,
            BLOCK_M=block_m, BLOCK_C=block_c, num_warps=ACT_WARPS, **_NO_FMA,
        )
        clip_grad = grad_clip.reshape(ctx.clip_shape).to(ctx.clip_dtype)
        return grad_x, clip_grad, None, None, None, None, None, None, None, None


class FusedScaleEma:
    """Every layer's scale EMA (ScaleUpdater.step) in one kernel launch instead of an L1 norm per layer.

    Works from tables of addresses (each output channel's weight row and scale entry), so it applies only while the
    weights and scales stay where they were: `matches` says whether they still do (the caller rebuilds otherwise).
    Float32 weights whose rows are blocks of storage (contiguous or channels_last) only: `supports` says so.
    """

    def __init__(self, weights: list[Tensor], scales: list[Tensor], decays: list[float]) -> None:
        device = weights[0].device
        self._key = self.key(weights, scales)
        row_w, row_k, row_s, row_d, row_f = [], [], [], [], []
        for w, s, d in zip(weights, scales, decays):
            c = w.shape[0]
            k = w.numel() // c
            row_w += [w.data_ptr() + i * k * w.element_size() for i in range(c)]
            row_s += [s.data_ptr() + i * s.element_size() for i in range(c)]
            row_k += [k] * c
            row_d += [d] * c
            row_f += [(1.0 - d) / k] * c
        self.rows = len(row_w)
        self._block_k = _pow2(max(row_k), 1024)
        self._tables = (torch.tensor(row_w, dtype=torch.int64, device=device),
                        torch.tensor(row_k, dtype=torch.int32, device=device),
                        torch.tensor(row_s, dtype=torch.int64, device=device),
                        torch.tensor(row_d, dtype=torch.float32, device=device),
                        torch.tensor(row_f, dtype=torch.float32, device=device))

    @staticmethod
    def supports(weights: list[Tensor], scales: list[Tensor]) -> bool:
        return bool(weights) and all(
            weight_fusable(w) and w.dtype == torch.float32 and s.dtype == torch.float32 and s.is_contiguous()
            and s.device == weights[0].device for w, s in zip(weights, scales))

    @staticmethod
    def key(weights: list[Tensor], scales: list[Tensor]) -> tuple[int, ...]:
        return tuple(t.data_ptr() for t in weights + scales) + tuple(w.numel() for w in weights)

    def matches(self, weights: list[Tensor], scales: list[Tensor]) -> bool:
        return self._key == self.key(weights, scales)

    @torch.no_grad()
    def step(self) -> None:
        _kernels().scale_ema_kernel[(self.rows,)](*self._tables, BLOCK_K=self._block_k, **_NO_FMA)


class FusedWeightBatch:
    """Every quantized layer's weight forward (w -> w_hat) in one kernel launch instead of one per layer.

    Why: ResNet-20's weights are tiny (2,304-36,864 elements), so each per-layer forward kernel is a few µs of
    launch and dependent table loads; one launch for all rows does them side by side. `run()` (the trainer's, at the
    start of each training step, inside autocast) writes every w_hat into one flat buffer and hands each quantizer
    its view as `precomputed`, which its next forward takes instead of launching (the backward stays per layer).
    Like FusedScaleEma it works from tables of addresses (each row's weight, scale, table rows, flag and bit-width):
    `matches` says whether every tensor is still where it was; float32 weights whose rows are blocks of storage only.
    """

    def __init__(self, quantizers: list[Any], weights: list[Tensor]) -> None:
        device = weights[0].device
        self._key = self.key(quantizers, weights)
        self.quantizers = quantizers
        rows: dict[str, list[int]] = {n: [] for n in ("w", "out", "k", "scale", "levels", "thr", "fp", "bits")}
        self._views: list[tuple[int, torch.Size, tuple[int, ...]]] = []
        offset = 0
        for q, w in zip(quantizers, weights):
            c = w.shape[0]
            k = w.numel() // c
            self._views.append((offset, w.shape, w.stride()))
            for i in range(c):
                rows["w"].append(w.data_ptr() + i * k * w.element_size())
                rows["out"].append(offset + i * k)
                rows["k"].append(k)
                rows["scale"].append(q.scale.data_ptr() + i * q.scale.element_size())
                rows["levels"].append(q.levels.data_ptr() + i * _LEVEL_STRIDE * q.levels.element_size())
                rows["thr"].append(q.thresholds.data_ptr() + i * _THR_STRIDE * q.thresholds.element_size())
                rows["fp"].append(q.fp_mask.data_ptr() + i * q.fp_mask.element_size())
                rows["bits"].append(q.bits.data_ptr() + i * q.bits.element_size())
            offset += w.numel()
        self.rows = len(rows["w"])
        self.elements = offset
        self._block_k = _pow2(max(rows["k"]), 1024)
        self._tables = tuple(torch.tensor(rows[n], dtype=torch.int32 if n == "k" else torch.int64, device=device)
                             for n in ("w", "out", "k", "scale", "levels", "thr", "fp", "bits"))
        self._device = device

    @staticmethod
    def supports(quantizers: list[Any], weights: list[Tensor]) -> bool:
        return bool(weights) and all(
            weight_fusable(w) and w.dtype == torch.float32 and w.device == weights[0].device
            and q.scale.dtype == torch.float32 and q.levels.dtype == torch.float32
            and q.thresholds.dtype == torch.float32 and q.fp_mask.dtype == torch.bool and q.bits.dtype == torch.uint8
            and all(t.is_contiguous() for t in (q.scale, q.levels, q.thresholds, q.fp_mask, q.bits))
            and q.levels.shape[-1] == _LEVEL_STRIDE and q.thresholds.shape[-1] == _THR_STRIDE
            for q, w in zip(quantizers, weights))

    @staticmethod
    def key(quantizers: list[Any], weights: list[Tensor]) -> tuple[int, ...]:
        ptrs = [t.data_ptr() for q, w in zip(quantizers, weights)
                for t in (w, q.scale, q.levels, q.thresholds, q.fp_mask, q.bits)]
        return tuple(ptrs) + tuple(w.numel() for w in weights) + tuple(id(q) for q in quantizers)

    def matches(self, quantizers: list[Any], weights: list[Tensor]) -> bool:
        return self._key == self.key(quantizers, weights)

    @torch.no_grad()
    def run(self, out_dtype: torch.dtype) -> None:
        """Make this step's w_hat of every layer and lend each quantizer its view (`precomputed`)."""
        flat = torch.empty(self.elements, device=self._device, dtype=out_dtype)
        _kernels().weight_forward_batch_kernel[(self.rows,)](*self._tables, flat, BLOCK_K=self._block_k, **_NO_FMA)
        for q, (offset, shape, stride) in zip(self.quantizers, self._views):
            q.precomputed = flat.as_strided(shape, stride, offset)
