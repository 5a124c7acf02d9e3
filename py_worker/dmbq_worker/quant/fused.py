"""The quantizers' fused path: autograd Functions over the Triton kernels of fused_kernels.py.

Same inputs, values, gradients and probe gradients as WeightQuantSTE / ActQuantSTE (functions.py), in one kernel
per direction. The quantizers take this path on CUDA when Triton imports, the tensor's layout is one the kernels
read (weights: contiguous or channels_last; activations: channels_last 4-D or contiguous 2-D) and, for activations,
the levels are uniform (table-mode activations keep the torch ops). Everything else, and every run with
DMBQ_FUSED_QUANT=0, keeps the torch ops. With DMBQ_FUSED_QUANT=interpret the kernels also run on CPU tensors, in
Triton's interpreter: that is how the CPU tests compare the two paths.

Values and input gradients equal the Functions' bit for bit (bench: python -m dmbq_worker.quant.fused_check). By
design: the clip gradient and the sensitivities are sums in another order, equal to rounding. That order is fixed
(DMBQ_FUSED_DETERMINISTIC=1, the default: the activation backward's last block adds every block's partial sums), so
a seeded CUDA run repeats bit for bit; DMBQ_FUSED_DETERMINISTIC=0 adds them with float atomics in whatever order
the blocks finish, which made two runs of one command end 0.8 points apart at W2/A2 (docs/RESULTS.md). And the
probes receive each step's *signed* sums, as from weight_quant_ops / act_quant_ops, so only a collector that folds
|.| after every step (SensitivityCollector(fold_each_step=True), the service's choice wherever this path runs) may
lend them its probes: the quantizers check `signed_probes`.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from dmbq_worker.switches import switch_on

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


DETERMINISTIC_ENV = "DMBQ_FUSED_DETERMINISTIC"


def deterministic() -> bool:
    """DMBQ_FUSED_DETERMINISTIC: "1" (default): the activation backward's sums in a fixed order; "0": float atomics.
    Read at every call, as DMBQ_FUSED_QUANT is (the bench switches it between timings)."""
    return switch_on(DETERMINISTIC_ENV)


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


def _env_int(name: str, default: int, minimum: int) -> int:
    """A tunable from the environment; a value that is not an integer >= minimum is refused, naming the variable (a
    negative row-tile count would otherwise run no tiles and leave the gradients unwritten)."""
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


# Activation tiles: ACT_TILE elements per block (at most ACT_MAX_BLOCK_C channels wide), ACT_WARPS warps. Tunable
# through the environment for bench/fused_tiles.py, which measured the defaults (docs/RESULTS.md).
ACT_TILE = _env_int("DMBQ_FUSED_ACT_TILE", 4096, 1)
ACT_MAX_BLOCK_C = _env_int("DMBQ_FUSED_ACT_BLOCK_C", 64, 1)
ACT_WARPS = _env_int("DMBQ_FUSED_ACT_WARPS", 4, 1)
# the backward's own (its blocks each add their partial sums atomically: fewer, larger blocks contend less)
ACT_BWD_TILE = _env_int("DMBQ_FUSED_ACT_BWD_TILE", ACT_TILE, 1)
ACT_BWD_WARPS = _env_int("DMBQ_FUSED_ACT_BWD_WARPS", ACT_WARPS, 1)
# Row tiles each backward block runs before it hands its sums on (bench/fused_tiles.py --iters); 0: 2 where
# one each would make a grid of more than ACT_BWD_MAX_BLOCKS blocks, else 1. Measured on an H100 (docs/RESULTS.md,
# ninth engine run): with sensitivities, 2 tiles a block for ResNet-20's 16-channel 32x32 inputs (512 blocks of one
# tile) took 9.1 us instead of 11.6 (forward + backward); for its 256- and 128-block inputs one tile stays best, and
# 4 or 8 cost more everywhere (the loop serializes the tiles' loads).
ACT_BWD_ITERS = _env_int("DMBQ_FUSED_ACT_BWD_ITERS", 0, 0)
ACT_BWD_MAX_BLOCKS = 256
# Partial-sum rows the deterministic backward's last block adds per load ([RED_R, BLOCK_C] at a time)
ACT_BWD_RED_R = 64


def _act_grid(m: int, c: int, tile: int, iters: int = 1) -> tuple[tuple[int, int], int, int]:
    block_c = _pow2(c, ACT_MAX_BLOCK_C)
    block_m = max(16, tile // block_c)
    rows = block_m * iters
    return ((m + rows - 1) // rows, (c + block_c - 1) // block_c), block_m, block_c


def _act_bwd_iters(m: int, c: int) -> int:
    """Row tiles a backward block runs: 2 where one each would make more than ACT_BWD_MAX_BLOCKS blocks (more than 2
    cost more than they save in every measured shape)."""
    (rows, cols), _, _ = _act_grid(m, c, ACT_BWD_TILE)
    return 2 if rows * cols > ACT_BWD_MAX_BLOCKS else 1


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
        # dL/dclip's sum and the deterministic backward's count of finished blocks, zeroed by the forward kernel
        # (the backward adds into them): no fill launch
        grad_clip = torch.empty(1, device=x.device, dtype=torch.float32)
        det = deterministic()
        count = torch.empty(1, device=x.device, dtype=torch.int32) if det else None
        grid, block_m, block_c = _act_grid(m, c, ACT_TILE)
        k_.act_forward_kernel[grid](x, out, clip32, n_steps, fp_mask, grad_clip, count if det else grad_clip, m, c,
                                    HAS_FP=any_fp, RELU_INPUT=relu_input, BLOCK_M=block_m, BLOCK_C=block_c,
                                    DETERMINISTIC=det, num_warps=ACT_WARPS, **_NO_FMA)
        ctx.save_for_backward(x, clip32, n_steps, fp_mask, lower_n_steps)
        ctx.probe, ctx.probe_lower = probe, probe_lower
        ctx.any_fp, ctx.relu_input = any_fp, relu_input
        ctx.grad_clip, ctx.count = grad_clip, count
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
        iters = ACT_BWD_ITERS or _act_bwd_iters(m, c)
        grid, block_m, block_c = _act_grid(m, c, ACT_BWD_TILE, iters)
        count = ctx.count  # zeroed by the forward; the last block leaves it at 0 for a second backward
        if count is not None:
            rows, cols = grid
            # the blocks' partials: dL/dclip per block, then [rows, c] sensitivities and [rows, c] look-ahead's
            parts = torch.empty(rows * cols + 2 * rows * c, device=x.device, dtype=torch.float32)
        k_.act_backward_kernel[grid](
            x, g, grad_x, clip32, n_steps, lower_n_steps, fp_mask, grad_clip,
            sens if sens is not None else grad_clip, sens_lower if sens_lower is not None else grad_clip,
            parts if count is not None else grad_clip, count if count is not None else grad_clip, m, c,
            HAS_FP=ctx.any_fp, HAS_SENS=sens is not None, HAS_LOWER=sens_lower is not None, RELU_INPUT=ctx.relu_input,
            BLOCK_M=block_m, BLOCK_C=block_c, ITERS=iters, DETERMINISTIC=count is not None, RED_R=ACT_BWD_RED_R,
            num_warps=ACT_BWD_WARPS, **_NO_FMA,
        )
        clip_grad = grad_clip.reshape(ctx.clip_shape).to(ctx.clip_dtype)
        return grad_x, clip_grad, None, None, None, None, None, None, None, None


def _row_addresses(t: Tensor | None, rows: int) -> list[int]:
    """The address of each row of t (rows blocks of equal length in storage), or 0 for every row without t."""
    if t is None:
        return [0] * rows
    step = (t.numel() // rows) * t.element_size()
    return [t.data_ptr() + i * step for i in range(rows)]


class FusedScaleEma:
    """Every layer's scale EMA (ScaleUpdater.step) in one kernel launch instead of a norm per layer.

    Works from tables of addresses (each output channel's weight row and scale entry), so it applies only while the
    weights and scales stay where they were: `matches` says whether they still do (the caller rebuilds otherwise).
    Float32 weights whose rows are blocks of storage (contiguous or channels_last) only: `supports` says so.
    `max_abs[i]`: layer i's scale follows max|w| over the channel, else mean|w| (WeightQuantizer.statistic).
    """

    def __init__(self, weights: list[Tensor], scales: list[Tensor], decays: list[float], max_abs: list[bool]) -> None:
        device = weights[0].device
        self._key = self.key(weights, scales)
        row_w, row_k, row_s, row_d, row_f, row_m = [], [], [], [], [], []
        for w, s, d, m in zip(weights, scales, decays, max_abs):
            c = w.shape[0]
            k = w.numel() // c
            row_w += _row_addresses(w, c)
            row_s += _row_addresses(s, c)
            row_k += [k] * c
            row_d += [d] * c
            row_f += [(1.0 - d) / (1 if m else k)] * c
            row_m += [int(m)] * c
        self.rows = len(row_w)
        self._block_k = _pow2(max(row_k), 1024)
        self._tables = (torch.tensor(row_w, dtype=torch.int64, device=device),
                        torch.tensor(row_k, dtype=torch.int32, device=device),
                        torch.tensor(row_s, dtype=torch.int64, device=device),
                        torch.tensor(row_d, dtype=torch.float32, device=device),
                        torch.tensor(row_f, dtype=torch.float32, device=device),
                        torch.tensor(row_m, dtype=torch.int8, device=device))

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
    """Every quantized layer's weight quantizer in one kernel launch per direction instead of one per layer.

    Why: ResNet-20's weights are tiny (2,304-36,864 elements), so each per-layer kernel is a few µs of launch and
    dependent table loads (about 3.5 µs apiece on an H100, 20 layers, both directions: ~140 µs a step); one launch
    for all rows does them side by side. Like FusedScaleEma it works from tables of addresses (each row's weight,
    scale, table rows, clip, flag, bit-width and sensitivity sums): `matches` says whether every tensor is still
    where it was. `forward(dtype)` writes every w_hat into one flat buffer and returns each layer's view (same
    strides as its weight); `backward(grads)` takes each layer's gradient of w_hat (a tuple of tensors, passed to
    the kernel as such: their addresses change from step to step, except inside a CUDA graph) and returns each
    weight's gradient, adding the sensitivity sums as the per-layer kernel does. float32 weights whose rows are
    blocks of storage, and quantizers that all collect the same sums (or none), only: `supports` says so.
    """

    _ROW_TABLES = ("w", "layer", "off", "k", "scale", "levels", "thr", "clip", "fp", "bits", "lower_levels",
                   "lower_thr", "sens", "sens_lower")

    def __init__(self, quantizers: list[Any], weights: list[Tensor]) -> None:
        device = weights[0].device
        self.quantizers = quantizers
        self.weights = weights
        self.has_sens = _running_sum(quantizers[0].probe) is not None
        self.has_lower = _running_sum(quantizers[0].probe_lower) is not None
        rows: dict[str, list[int]] = {n: [] for n in self._ROW_TABLES}
        self._views: list[tuple[int, torch.Size, tuple[int, ...]]] = []
        out: list[int] = []  # each row's element offset in the forward's flat output: its layer's, plus its own
        offset = 0
        for layer, (q, w) in enumerate(zip(quantizers, weights)):
            c = w.shape[0]
            k = w.numel() // c
            self._views.append((offset, w.shape, w.stride()))
            rows["w"] += _row_addresses(w, c)
            rows["layer"] += [layer] * c
            rows["off"] += [i * k for i in range(c)]
            out += [offset + i * k for i in range(c)]
            rows["k"] += [k] * c
            for name, t in (("scale", q.scale), ("levels", q.levels), ("thr", q.thresholds), ("clip", q.clip_units),
                            ("fp", q.fp_mask), ("bits", q.bits), ("lower_levels", q.lower_levels),
                            ("lower_thr", q.lower_thresholds), ("sens", _running_sum(q.probe)),
                            ("sens_lower", _running_sum(q.probe_lower))):
                rows[name] += _row_addresses(t, c)
            offset += w.numel()
        self.rows = len(rows["w"])
        self.elements = offset
        self._block_k = _pow2(max(rows["k"]), 1024)
        small = ("layer", "k")
        self._tables = {n: torch.tensor(rows[n], dtype=torch.int32 if n in small else torch.int64, device=device)
                        for n in self._ROW_TABLES}
        self._out = torch.tensor(out, dtype=torch.int64, device=device)
        self._device = device
        self._key = self.key(quantizers, weights)  # after _running_sum made the probes' gradients

    @staticmethod
    def supports(quantizers: list[Any], weights: list[Tensor]) -> bool:
        if not weights:
            return False
        q0 = quantizers[0]
        return all(
            weight_fusable(w) and w.dtype == torch.float32 and w.device == weights[0].device
            and all(t.dtype == torch.float32 and t.is_contiguous()
                    for t in (q.scale, q.levels, q.thresholds, q.clip_units, q.lower_levels, q.lower_thresholds))
            and q.fp_mask.dtype == torch.bool and q.bits.dtype == torch.uint8
            and q.fp_mask.is_contiguous() and q.bits.is_contiguous()
            and q.levels.shape[-1] == _LEVEL_STRIDE and q.thresholds.shape[-1] == _THR_STRIDE
            and q.lower_levels.shape[-1] == _LEVEL_STRIDE and q.lower_thresholds.shape[-1] == _THR_STRIDE
            # the same sums collected everywhere, signed per step (a folding collector's), as the per-layer path asks
            and (q.probe is None) == (q0.probe is None) and (q.probe_lower is None) == (q0.probe_lower is None)
            and (q.signed_probes or (q.probe is None and q.probe_lower is None))
            for q, w in zip(quantizers, weights))

    @staticmethod
    def key(quantizers: list[Any], weights: list[Tensor]) -> tuple[int, ...]:
        def ptr(t: Tensor | None) -> int:
            return 0 if t is None else t.data_ptr()

        ptrs = [ptr(t) for q, w in zip(quantizers, weights)
                for t in (w, q.scale, q.levels, q.thresholds, q.clip_units, q.fp_mask, q.bits, q.lower_levels,
                          q.lower_thresholds, None if q.probe is None else q.probe.grad,
                          None if q.probe_lower is None else q.probe_lower.grad)]
        probes = [id(p) for q in quantizers for p in (q.probe, q.probe_lower)]
        return tuple(ptrs) + tuple(probes) + tuple(w.numel() for w in weights) + tuple(id(q) for q in quantizers)

    def matches(self, quantizers: list[Any], weights: list[Tensor]) -> bool:
        return self._key == self.key(quantizers, weights)

    @torch.no_grad()
    def forward(self, out_dtype: torch.dtype) -> list[Tensor]:
        """This step's w_hat of every layer, as views of one flat buffer with each weight's strides."""
        t = self._tables
        flat = torch.empty(self.elements, device=self._device, dtype=out_dtype)
        _kernels().weight_forward_batch_kernel[(self.rows,)](
            t["w"], self._out, t["k"], t["scale"], t["levels"], t["thr"], t["fp"], t["bits"], flat,
            BLOCK_K=self._block_k, **_NO_FMA)
        return [flat.as_strided(shape, stride, offset) for offset, shape, stride in self._views]

    @torch.no_grad()
    def backward(self, grads: tuple[Tensor | None, ...]) -> list[Tensor | None]:
        """Each weight's gradient from each layer's gradient of w_hat (None where a layer did not use its w_hat)."""
        dtype = next((g.dtype for g in grads if g is not None), torch.float32)
        used = [g is not None for g in grads]
        gs = tuple(_same_layout(g.to(dtype), w) if g is not None else torch.zeros_like(w, dtype=dtype)
                   for g, w in zip(grads, self.weights))
        gws = tuple(torch.empty_like(w) for w in self.weights)
        t = self._tables
        _kernels().weight_backward_batch_kernel[(self.rows,)](
            *(t[n] for n in self._ROW_TABLES), gs, gws,
            LAYERS=len(gs), HAS_SENS=self.has_sens, HAS_LOWER=self.has_lower, BLOCK_K=self._block_k, **_NO_FMA)
        return [gw if u else None for gw, u in zip(gws, used)]


class FusedWeightBatchSTE(torch.autograd.Function):
    """Every layer's WeightQuantSTE in one Function: the batch's forward, and one backward for all layers, which
    autograd runs once every layer's gradient of w_hat is in (so all weight gradients arrive at the end of the
    backward, not layer by layer). The sensitivity sums go straight into the probes' gradients, as in
    FusedWeightQuantSTE (a folding collector only)."""

    @staticmethod
    def forward(ctx: Any, batch: FusedWeightBatch, out_dtype: torch.dtype, *weights: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.batch = batch
        return tuple(batch.forward(out_dtype))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return (None, None, *ctx.batch.backward(grads))
