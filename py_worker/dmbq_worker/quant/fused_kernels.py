"""Triton kernels of the fused quantizers: one kernel per quantizer and direction (fused.py wraps them).

Why: on the CUDA-graph step the quantizers were made of small torch ops (about 16 passes per activation quantizer,
forward and backward; ~10 per weight quantizer), and ResNet-20 at batch 128 is so small that their launches, not
their arithmetic, cost the 1.4-2.3x over FP (docs/RESULTS.md). Here each direction is one pass over the tensor:

  act forward     x -> x_hat                                   (uniform levels on [0, clip], per-channel 2^b - 1)
  act backward    x, g -> dL/dx, and dL/dclip, sum_e (x - x_hat) g / n per channel (+ the look-ahead's): the
                  blocks' partial sums added in a fixed order by the last block (or, opted out, atomically)
  weight forward  w -> w_hat                                   (the channel's table; a binary search per element)
  weight backward w, g -> dL/dw, and sum_e (w - w_hat) g / n per row (one program owns a row: no atomics)

The per-channel sums are this step's *signed* sums, added into the sensitivity probes' gradients: the collector
folds |.| into its totals after every step (SensitivityCollector(fold_each_step=True), as for compiled runs), so no
per-layer |.|, division or AccumulateGrad kernels run.

Layouts: an activation is read as a row-major [M, C] matrix (channels_last 4-D or contiguous 2-D storage), a weight
as [C, K] (row c is storage [c*K, (c+1)*K) in contiguous and channels_last alike: the order inside a row does not
matter to a per-row quantizer). x_hat is recomputed in backward from the saved x, so forward saves nothing new.
The arithmetic is the eager Functions' (functions.py), op for op, so values agree bit for bit: IEEE divisions
(div_rn) where eager divides, no multiply-add contraction (launched with enable_fp_fusion=False), and
round-half-even by the 2^23 trick (exact for 0 <= v < 2^23; libdevice.rint has no interpreter fallback, and the CPU
tests run these kernels under TRITON_INTERPRET=1). One more kernel does every layer's scale EMA in one launch.
"""

from __future__ import annotations

import triton
import triton.language as tl

EPS = tl.constexpr(1e-8)  # functions.EPS, as a constexpr: the only kind of global a jit function may read
# 2^23: (v + 2^23) - 2^23 rounds 0 <= v < 2^23 to the nearest integer, ties to even
ROUND_MAGIC = tl.constexpr(8388608.0)


@triton.jit
def _round_nonneg(v):
    return (v + ROUND_MAGIC) - ROUND_MAGIC


@triton.jit
def _uniform_levels(clipped, clip, n):
    """round(clipped * (n / clip)) * (clip / max(n, 1)): functions.uniform_act, per channel n broadcast on axis 1."""
    mul = tl.div_rn(n, clip)
    back = tl.div_rn(clip, tl.maximum(n, 1.0))
    return _round_nonneg(clipped * mul[None, :]) * back[None, :]


@triton.jit
def _act_cols(C, BLOCK_C: tl.constexpr):
    """This block's channels of the [M, C] activation and their mask."""
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    return cols, cols < C


@triton.jit
def _act_rows(M, C, row_block, cols, cmask, BLOCK_M: tl.constexpr):
    """Row tile `row_block` of the [M, C] activation on the channels `cols`: its element mask and offsets."""
    rows = row_block * BLOCK_M + tl.arange(0, BLOCK_M)
    mask = (rows < M)[:, None] & cmask[None, :]
    return mask, rows.to(tl.int64)[:, None] * C + cols[None, :]


@triton.jit
def _act_tile(M, C, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    """This block's tile of the [M, C] activation: its channels, their mask, the element mask and offsets."""
    cols, cmask = _act_cols(C, BLOCK_C)
    mask, offs = _act_rows(M, C, tl.program_id(0), cols, cmask, BLOCK_M)
    return cols, cmask, mask, offs


@triton.jit
def act_forward_kernel(
    x_ptr, out_ptr, clip_ptr, n_ptr, fp_ptr, clip_grad_ptr, count_ptr, M, C,
    HAS_FP: tl.constexpr, RELU_INPUT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr,
    DETERMINISTIC: tl.constexpr,
):
    """RELU_INPUT: x is a ReLU's input and the quantizer's input is relu(x); the levels' clamp at 0 is the ReLU
    already, only full-precision channels need it. The first block zeroes clip_grad, which the backward adds into,
    and (DETERMINISTIC) the backward's count of finished blocks: no fill kernel of their own."""
    if (tl.program_id(0) == 0) & (tl.program_id(1) == 0):
        tl.store(clip_grad_ptr, 0.0)
        if DETERMINISTIC:
            tl.store(count_ptr, 0)
    cols, cmask, mask, offs = _act_tile(M, C, BLOCK_M, BLOCK_C)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if RELU_INPUT:
        x = tl.maximum(x, 0.0)
    clip = tl.maximum(tl.load(clip_ptr), EPS)
    n = tl.load(n_ptr + cols, mask=cmask, other=1.0)
    clipped = tl.minimum(tl.maximum(x, 0.0), clip)
    q = _uniform_levels(clipped, clip, n)
    if HAS_FP:
        fp = tl.load(fp_ptr + cols, mask=cmask, other=0) != 0
        q = tl.where(fp[None, :], x, q)
    tl.store(out_ptr + offs, q.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=mask)


@triton.jit
def _error_terms(x, g, clipped, clip, n, fp, HAS_FP: tl.constexpr):
    """(x - x_hat) g per element, x_hat from the per-channel step counts n (full-precision channels: 0)."""
    q = _uniform_levels(clipped, clip, n)
    if HAS_FP:
        q = tl.where(fp, x, q)
    return (x - q) * g


@triton.jit
def act_backward_kernel(
    x_ptr, g_ptr, gx_ptr, clip_ptr, n_ptr, lower_n_ptr, fp_ptr, clip_grad_ptr, sens_ptr, sens_lower_ptr,
    part_ptr, count_ptr, M, C,
    HAS_FP: tl.constexpr, HAS_SENS: tl.constexpr, HAS_LOWER: tl.constexpr, RELU_INPUT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, ITERS: tl.constexpr, DETERMINISTIC: tl.constexpr,
    RED_R: tl.constexpr,
):
    """Every block runs ITERS row tiles of its channels and keeps its partial sums in registers across them:
    dL/dclip, and this step's signed sum_e (x - x_hat) g / M per channel (the look-ahead's too). Then they go into
    clip_grad (zeroed by the forward), sens (the probe's gradient; the collector folds |.| after the step and zeroes
    it: SensitivityCollector(fold_each_step=True)) and sens_lower:
      DETERMINISTIC  each block stores its partials (part: [R*CB] clip, then [R, C] sens, then [R, C] look-ahead),
                     and the last block to finish (a ticket from count, zeroed by the forward) adds them up in a
                     fixed order: the same sums every run, so a seeded run repeats bit for bit;
      else           each block adds its partials atomically once: float additions in the order the blocks happen
                     to finish, which differ in the last bits from run to run (an LBA ranking near a tie can flip).
    (One tile per block meant hundreds of blocks adding into the same few channel lines: the sensitivities cost
    1.8x the backward's own time; larger tiles spill.) RELU_INPUT: x is the ReLU's input (see the forward): the
    gradient also passes the ReLU's (x > 0), the errors are relu(x)'s."""
    cols, cmask = _act_cols(C, BLOCK_C)
    clip = tl.maximum(tl.load(clip_ptr), EPS)
    if HAS_FP:
        fp = (tl.load(fp_ptr + cols, mask=cmask, other=0) != 0)[None, :]
    else:
        fp = tl.zeros((1, BLOCK_C), dtype=tl.int1)
    n = tl.load(n_ptr + cols, mask=cmask, other=1.0)
    if HAS_LOWER:
        n_lower = tl.load(lower_n_ptr + cols, mask=cmask, other=1.0)
    else:
        n_lower = n
    clip_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    sens_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    lower_acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for t in range(ITERS):
        mask, offs = _act_rows(M, C, tl.program_id(0) * ITERS + t, cols, cmask, BLOCK_M)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        clipped = tl.minimum(tl.maximum(x, 0.0), clip)
        inside = x == clipped
        above = x > clip
        if HAS_FP:
            inside = inside | fp
            above = above & (fp == 0)
        if RELU_INPUT:
            inside = inside & (x > 0.0)  # threshold_backward passes only where relu(x) > 0
            x = tl.maximum(x, 0.0)
        tl.store(gx_ptr + offs, tl.where(inside, g, 0.0).to(gx_ptr.dtype.element_ty), mask=mask)
        clip_acc += tl.where(above & mask, g, 0.0)
        if HAS_SENS:
            sens_acc += _error_terms(x, g, clipped, clip, n, fp, HAS_FP)  # masked elements: x = g = 0, a 0 term
        if HAS_LOWER:
            lower_acc += _error_terms(x, g, clipped, clip, n_lower, fp, HAS_FP)
    clip_part = tl.sum(tl.sum(clip_acc, axis=1), axis=0)
    sens_part = tl.div_rn(tl.sum(sens_acc, axis=0), M * 1.0)
    lower_part = tl.div_rn(tl.sum(lower_acc, axis=0), M * 1.0)
    if DETERMINISTIC:
        R = tl.num_programs(0)
        CB = tl.num_programs(1)
        tl.store(part_ptr + tl.program_id(0) * CB + tl.program_id(1), clip_part)
        sens_parts = part_ptr + R * CB
        lower_parts = sens_parts + R * C
        if HAS_SENS:
            tl.store(sens_parts + tl.program_id(0) * C + cols, sens_part, mask=cmask)
        if HAS_LOWER:
            tl.store(lower_parts + tl.program_id(0) * C + cols, lower_part, mask=cmask)
        tl.debug_barrier()  # every thread's partials stored before the ticket releases them
        ticket = tl.atomic_add(count_ptr, 1, sem="acq_rel")
        if ticket == R * CB - 1:  # the last block: every other block's partials are in memory
            _add_in_order(clip_grad_ptr, part_ptr, R * CB, 1, 1, 1, RED_R)
            if HAS_SENS:
                _add_in_order(sens_ptr, sens_parts, R, C, CB, BLOCK_C, RED_R)
            if HAS_LOWER:
                _add_in_order(sens_lower_ptr, lower_parts, R, C, CB, BLOCK_C, RED_R)
            tl.store(count_ptr, 0)  # a second backward through the same graph counts from 0 again
    else:
        tl.atomic_add(clip_grad_ptr, clip_part)
        if HAS_SENS:
            tl.atomic_add(sens_ptr + cols, sens_part, mask=cmask)
        if HAS_LOWER:
            tl.atomic_add(sens_lower_ptr + cols, lower_part, mask=cmask)


@triton.jit
def _add_in_order(dst_ptr, src_ptr, R, C, CB, BLOCK_C: tl.constexpr, RED_R: tl.constexpr):
    """dst[c] += sum_r src[r, c] for the C channels of the row-major [R, C] partials, RED_R rows a load, in the same
    order every time. Loads bypass L1 (.cg): the partials were written by other blocks, on other SMs."""
    for cb in range(0, CB):
        cols = cb * BLOCK_C + tl.arange(0, BLOCK_C)
        cmask = cols < C
        acc = tl.zeros((RED_R, BLOCK_C), dtype=tl.float32)
        for r0 in range(0, R, RED_R):
            rows = r0 + tl.arange(0, RED_R)
            mask = (rows < R)[:, None] & cmask[None, :]
            acc += tl.load(src_ptr + rows.to(tl.int64)[:, None] * C + cols[None, :], mask=mask, other=0.0,
                           cache_modifier=".cg")
        old = tl.load(dst_ptr + cols, mask=cmask, other=0.0, cache_modifier=".cg")
        tl.store(dst_ptr + cols, old + tl.sum(acc, axis=0), mask=cmask)


@triton.jit
def _row_table_levels(u, levels_row, thr_row, kmask, halvings):
    """The nearest level of a row's table (levels_row / thr_row: the row's first level and threshold): count the
    thresholds below u by halving (functions.binary_search_index), `halvings` = the row's bit-width b: its 2^b - 1
    finite thresholds come first (+inf after), so b halvings cover them (2 dependent loads for a 2-bit row instead
    of 8 for the padded 255), then gather the level."""
    idx = tl.zeros(u.shape, dtype=tl.int32)
    for k in range(0, halvings):
        step = 1 << (halvings - 1 - k)
        probe = tl.load(thr_row + idx + (step - 1), mask=kmask, other=0.0)
        idx += tl.where(probe < u, step, 0)
    return tl.load(levels_row + idx, mask=kmask, other=0.0)


@triton.jit
def _table_levels(u, row, levels_ptr, thr_ptr, kmask, halvings, LEVEL_STRIDE: tl.constexpr, THR_STRIDE: tl.constexpr):
    """_row_table_levels for row `row` of a layer's padded [C, 256] / [C, 255] tables."""
    return _row_table_levels(u, levels_ptr + row * LEVEL_STRIDE, thr_ptr + row * THR_STRIDE, kmask, halvings)


@triton.jit
def _halvings(b):
    """A bit-width's table search depth: b itself for 1..8 bits, 0 for pruned (level 0) and full-precision rows."""
    return tl.where((b >= 1) & (b <= 8), b, 0)


@triton.jit
def _row_halvings(bits_ptr, row, lower: tl.constexpr):
    """The bit-width of a row's table (its own, or one bit lower): 0 for pruned (level 0) and full-precision rows."""
    b = _halvings(tl.load(bits_ptr + row).to(tl.int32))
    if lower:
        b = tl.maximum(b - 1, 0)
    return b


@triton.jit
def _weight_row_forward(w_row, out_row, s, fp, halvings, levels_row, thr_row, K, BLOCK_K: tl.constexpr):
    """One row of w_hat: each element's nearest level of the row's table times the row's scale (w itself where the
    row is full precision), stored in out_row's dtype rounded to nearest even (as autocast's cast)."""
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < K
        w = tl.load(w_row + ks, mask=kmask, other=0.0).to(tl.float32)
        u = tl.div_rn(w, s)
        w_hat = _row_table_levels(u, levels_row, thr_row, kmask, halvings) * s
        w_hat = tl.where(fp, w, w_hat)
        tl.store(out_row + ks, w_hat.to(out_row.dtype.element_ty, fp_downcast_rounding="rtne"), mask=kmask)


@triton.jit
def weight_forward_kernel(
    w_ptr, out_ptr, scale_ptr, levels_ptr, thr_ptr, fp_ptr, bits_ptr, K,
    LEVEL_STRIDE: tl.constexpr, THR_STRIDE: tl.constexpr, BLOCK_K: tl.constexpr,
):
    row = tl.program_id(0)
    s = tl.maximum(tl.load(scale_ptr + row), EPS)
    fp = tl.load(fp_ptr + row) != 0
    base = row.to(tl.int64) * K
    _weight_row_forward(w_ptr + base, out_ptr + base, s, fp, _row_halvings(bits_ptr, row, False),
                        levels_ptr + row * LEVEL_STRIDE, thr_ptr + row * THR_STRIDE, K, BLOCK_K)


@triton.jit
def weight_forward_batch_kernel(
    row_w_ptr, row_out_ptr, row_k_ptr, row_scale_ptr, row_levels_ptr, row_thr_ptr, row_fp_ptr, row_bits_ptr, out_ptr,
    BLOCK_K: tl.constexpr,
):
    """weight_forward_kernel for every row of every layer in one launch (fused.FusedWeightBatch): the tables hold each
    row's weight address, its element offset in the flat output, its length, and the addresses of its scale, table
    rows, full-precision flag and bit-width. Same arithmetic as weight_forward_kernel, row for row."""
    r = tl.program_id(0)
    fp, halvings = _batch_row_flags(row_fp_ptr, row_bits_ptr, r)
    _weight_row_forward(_f32_at(row_w_ptr, r), out_ptr + tl.load(row_out_ptr + r),
                        tl.maximum(tl.load(_f32_at(row_scale_ptr, r)), EPS), fp, halvings, _f32_at(row_levels_ptr, r),
                        _f32_at(row_thr_ptr, r), tl.load(row_k_ptr + r), BLOCK_K)


@triton.jit
def _weight_row_backward(w_row, g_row, gw_row, s, fp, halvings, lower_halvings, clip_units, levels_row, thr_row,
                         lower_levels_row, lower_thr_row, K,
                         HAS_SENS: tl.constexpr, HAS_LOWER: tl.constexpr, BLOCK_K: tl.constexpr):
    """One row: dL/dw = g where |w / s| <= the row's clip (the clipped STE), stored at gw_row; returns this step's
    signed sums of (w - w_hat) g and (w - w_hat one bit lower) g over the row (0 where not collected)."""
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    acc_lower = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < K
        w = tl.load(w_row + ks, mask=kmask, other=0.0).to(tl.float32)
        g = tl.load(g_row + ks, mask=kmask, other=0.0).to(tl.float32)
        u = tl.div_rn(w, s)
        tl.store(gw_row + ks, tl.where(tl.abs(u) <= clip_units, g, 0.0).to(gw_row.dtype.element_ty), mask=kmask)
        if HAS_SENS:
            w_hat = tl.where(fp, w, _row_table_levels(u, levels_row, thr_row, kmask, halvings) * s)
            acc += tl.where(kmask, (w - w_hat) * g, 0.0)
        if HAS_LOWER:
            low = tl.where(fp, w, _row_table_levels(u, lower_levels_row, lower_thr_row, kmask, lower_halvings) * s)
            acc_lower += tl.where(kmask, (w - low) * g, 0.0)
    return tl.sum(acc, axis=0), tl.sum(acc_lower, axis=0)


@triton.jit
def weight_backward_kernel(
    w_ptr, g_ptr, gw_ptr, scale_ptr, levels_ptr, thr_ptr, clip_ptr, fp_ptr, bits_ptr, lower_levels_ptr,
    lower_thr_ptr, sens_ptr, sens_lower_ptr, K,
    HAS_SENS: tl.constexpr, HAS_LOWER: tl.constexpr,
    LEVEL_STRIDE: tl.constexpr, THR_STRIDE: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """dL/dw (the clipped STE) and sens[row] += this step's signed sum (w - w_hat) g / K (the probe's gradient,
    folded by the collector; the block owns its row: no atomics)."""
    row = tl.program_id(0)
    base = row.to(tl.int64) * K
    total, total_lower = _weight_row_backward(
        w_ptr + base, g_ptr + base, gw_ptr + base, tl.maximum(tl.load(scale_ptr + row), EPS),
        tl.load(fp_ptr + row) != 0, _row_halvings(bits_ptr, row, False), _row_halvings(bits_ptr, row, True),
        tl.load(clip_ptr + row), levels_ptr + row * LEVEL_STRIDE, thr_ptr + row * THR_STRIDE,
        lower_levels_ptr + row * LEVEL_STRIDE, lower_thr_ptr + row * THR_STRIDE, K, HAS_SENS, HAS_LOWER, BLOCK_K)
    if HAS_SENS:
        tl.store(sens_ptr + row, tl.load(sens_ptr + row) + tl.div_rn(total, K * 1.0))
    if HAS_LOWER:
        tl.store(sens_lower_ptr + row, tl.load(sens_lower_ptr + row) + tl.div_rn(total_lower, K * 1.0))


@triton.jit
def _f32_at(addr_ptr, r):
    """The float32 pointer whose address row r of the table at addr_ptr holds."""
    return tl.load(addr_ptr + r).to(tl.pointer_type(tl.float32))


@triton.jit
def _batch_row_flags(row_fp_ptr, row_bits_ptr, r):
    """Row r's full-precision flag and bit-width (halvings; 0 for pruned and full-precision rows), from the
    addresses of its fp_mask and bits entries."""
    fp = tl.load(tl.load(row_fp_ptr + r).to(tl.pointer_type(tl.int8))) != 0
    return fp, _halvings(tl.load(tl.load(row_bits_ptr + r).to(tl.pointer_type(tl.uint8))).to(tl.int32))


@triton.jit
def weight_backward_batch_kernel(
    row_w_ptr, row_layer_ptr, row_off_ptr, row_k_ptr, row_scale_ptr, row_levels_ptr, row_thr_ptr, row_clip_ptr,
    row_fp_ptr, row_bits_ptr, row_lower_levels_ptr, row_lower_thr_ptr, row_sens_ptr, row_sens_lower_ptr,
    grads, grad_ws,
    LAYERS: tl.constexpr, HAS_SENS: tl.constexpr, HAS_LOWER: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """weight_backward_kernel for every row of every layer in one launch (fused.FusedWeightBatch). The address
    tables are static; this step's gradients and the weights' new gradients come as tuples of tensors, one per layer,
    and each row picks its layer's (the tuple is indexed only by constants, so every layer is a branch)."""
    r = tl.program_id(0)
    layer = tl.load(row_layer_ptr + r)
    g_layer = grads[0]
    gw_layer = grad_ws[0]
    for j in tl.static_range(1, LAYERS):
        if layer == j:
            g_layer = grads[j]
            gw_layer = grad_ws[j]
    off = tl.load(row_off_ptr + r)
    k = tl.load(row_k_ptr + r)
    fp, halvings = _batch_row_flags(row_fp_ptr, row_bits_ptr, r)
    total, total_lower = _weight_row_backward(
        _f32_at(row_w_ptr, r), g_layer + off, gw_layer + off, tl.maximum(tl.load(_f32_at(row_scale_ptr, r)), EPS),
        fp, halvings, tl.maximum(halvings - 1, 0),
        tl.load(_f32_at(row_clip_ptr, r)), _f32_at(row_levels_ptr, r), _f32_at(row_thr_ptr, r),
        _f32_at(row_lower_levels_ptr, r), _f32_at(row_lower_thr_ptr, r), k, HAS_SENS, HAS_LOWER, BLOCK_K)
    if HAS_SENS:
        sens = _f32_at(row_sens_ptr, r)
        tl.store(sens, tl.load(sens) + tl.div_rn(total, k * 1.0))
    if HAS_LOWER:
        sens_lower = _f32_at(row_sens_lower_ptr, r)
        tl.store(sens_lower, tl.load(sens_lower) + tl.div_rn(total_lower, k * 1.0))


@triton.jit
def scale_ema_kernel(row_w_ptr, row_k_ptr, row_scale_ptr, row_decay_ptr, row_factor_ptr, row_max_ptr,
                     BLOCK_K: tl.constexpr):
    """s_c <- decay * s_c + (1 - decay) / K * sum |w_c| (mean|w|), or + (1 - decay) * max |w_c| where the row's max
    flag is set, for every row of every layer in one launch (scale_updates.py): the tables hold each row's weight
    address, length, scale address, decay, factor ((1 - decay) / K, or 1 - decay) and max flag. Both reductions run
    (one pass over the row either way); the flag picks one."""
    r = tl.program_id(0)
    w_ptr = tl.load(row_w_ptr + r).to(tl.pointer_type(tl.float32))
    s_ptr = tl.load(row_scale_ptr + r).to(tl.pointer_type(tl.float32))
    k = tl.load(row_k_ptr + r)
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    top = tl.zeros((BLOCK_K,), dtype=tl.float32)  # |w| >= 0: masked lanes' 0 never wins
    for k0 in range(0, k, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        magnitude = tl.abs(tl.load(w_ptr + ks, mask=ks < k, other=0.0))
        acc += magnitude
        top = tl.maximum(top, magnitude)
    statistic = tl.where(tl.load(row_max_ptr + r) != 0, tl.max(top, axis=0), tl.sum(acc, axis=0))
    tl.store(s_ptr, tl.load(s_ptr) * tl.load(row_decay_ptr + r) + statistic * tl.load(row_factor_ptr + r))
