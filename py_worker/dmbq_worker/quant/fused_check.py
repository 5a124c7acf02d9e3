"""The fused quantizers (fused.py) against the torch-op Functions (functions.py), on one device.

    python -m dmbq_worker.quant.fused_check [--device cuda]

Per case: a channels_last activation batch (also as a ReLU's input, the ReLU folded into the fused kernels) and a
weight with mixed bits per channel (pruned, 1..4 bits, 8 bits and full-precision channels), in float32, bfloat16
and float32 emitted as bfloat16 (autocast's conv operand), forward and backward through both paths with the
sensitivity and look-ahead probes (the fused path hands them the signed sum of the step, the Functions its |.|:
compared as |.|); and the weights of all cases at once through the one-launch batch (FusedWeightBatchSTE: values,
gradients and sums). Weights are scaled by mean|w| with binary-weighted tables, and by max|w| with the min-max tables
(top level 1: each channel's largest weight lands on it, at the STE's clip). Then (--repeats) the activation
backward on REPEAT_SHAPES, the same input many times: how many different sums came out. Prints the largest
differences; exits 1 when values or input gradients differ (they must be equal bit for bit), when a sum
(sensitivities, clip gradient) is off by more than SUM_RTOL, or when repeats of the deterministic backward (the
default) differ in any bit. On CPU the kernels run in Triton's interpreter
(DMBQ_FUSED_QUANT=interpret, set before torch imports Triton), which rounds float32 -> bfloat16 by truncation where
CUDA rounds to nearest even: there bfloat16 values may differ by one unit in the last place (`value_ulps`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dmbq_worker.quant.functions import ActQuantSTE, WeightQuantSTE
from dmbq_worker.quant.fused import (
    FusedUniformActQuantSTE,
    FusedWeightQuantSTE,
    act_fusable,
    deterministic,
    weight_fusable,
)
from dmbq_worker.quant.levels import FP_BITS, MAX_BITS, MAX_LEVELS
from dmbq_worker.quant.scheme import rows_by_width, weight_buffers
from dmbq_worker.quant.weight_quantizer import ScaleStatistic, channel_statistic

SUM_RTOL = 1e-5  # sums in another order (the blocks' partial sums): float32 rounding only


@dataclass
class Difference:
    case: str
    value_ulps: float  # largest |a - b| in units of the last place of the output dtype
    grad_equal: bool
    clip_grad_rel: float
    sens_rel: float
    sens_lower_rel: float

    def ok(self, allowed_ulps: float) -> bool:
        sums = max(self.clip_grad_rel, self.sens_rel, self.sens_lower_rel)
        return self.value_ulps <= allowed_ulps and self.grad_equal and sums <= SUM_RTOL


def _rel(a: Tensor, b: Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def _ulps(a: Tensor, b: Tensor) -> float:
    eps = torch.finfo(a.dtype).eps
    scale = torch.maximum(a.detach().float().abs(), b.detach().float().abs()).clamp_min(torch.finfo(torch.float32).tiny)
    return float(((a.detach().float() - b.detach().float()).abs() / (scale * eps)).max())


def weight_tables(bits: list[int], device: torch.device, statistic: ScaleStatistic = "mean_abs") -> dict[str, Tensor]:
    """A weight quantizer's buffers for per-channel `bits`, built as apply_scheme builds them (scheme.weight_buffers)
    from alpha tables of 1..8 bits: binary-weighted ones spanning about +-3.2 mean|w|, or for max|w| scales the
    min-max tables (alpha_i = 2^(b-1-i) / (2^b - 1): uniform levels, the top one 1)."""
    if statistic == "max_abs":
        alphas = {b: np.array([2.0 ** (b - 1 - k) / (2.0**b - 1) for k in range(b)]) for b in range(1, MAX_BITS + 1)}
    else:
        alphas = {b: np.array([1.6 * 2.0 ** (-k) for k in range(b)]) for b in range(1, MAX_BITS + 1)}
    wbits = np.asarray(bits, dtype=np.uint8)
    lv, th, clip, llv, lth, _ = weight_buffers(wbits, rows_by_width(alphas, {}, True))
    arrays = dict(levels=lv, thresholds=th, clip_units=clip, fp_mask=wbits == FP_BITS, lower_levels=llv,
                  lower_thresholds=lth)
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}


def _probes(c: int, device: torch.device) -> tuple[Tensor, Tensor]:
    return (torch.zeros(c, device=device, requires_grad=True), torch.zeros(c, device=device, requires_grad=True))


def _cast(y: Tensor, out_dtype: torch.dtype | None) -> Tensor:
    """What autocast does to a conv operand: a copy in its dtype (and the gradient cast back)."""
    return y if out_dtype is None else y.to(out_dtype)


def _case(kind: str, shape: tuple[int, ...], dtype: torch.dtype, out_dtype: torch.dtype | None) -> str:
    name = f"{kind} {tuple(shape)} {str(dtype).removeprefix('torch.')}"
    return name if out_dtype is None else f"{name} -> {str(out_dtype).removeprefix('torch.')}"


def _scaled_by(name: str, statistic: ScaleStatistic) -> str:
    return name if statistic == "mean_abs" else f"{name}, max|w| scales"


def compare_weights(device: torch.device, dtype: torch.dtype, shape: tuple[int, ...], seed: int,
                    out_dtype: torch.dtype | None = None, statistic: ScaleStatistic = "mean_abs") -> Difference:
    """`out_dtype`: the fused kernel emits it (as under autocast); the Function's output is cast to it. `statistic`:
    the scales (and tables: weight_tables) of the channels."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen).to(dtype)
    if len(shape) == 4:
        w = w.to(memory_format=torch.channels_last)
    w = w.to(device)
    c = shape[0]
    bits = [[0, 1, 2, 3, 4, 8, FP_BITS][i % 7] for i in range(c)]
    t = weight_tables(bits, device, statistic)
    scale = channel_statistic(w.float(), c, statistic)
    args = (scale, t["levels"], t["thresholds"], t["clip_units"], t["fp_mask"], t["lower_levels"],
            t["lower_thresholds"])
    if not weight_fusable(w):
        raise RuntimeError(f"the fused path does not take this weight ({device}, {dtype}, {shape})")
    wa, wb = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    pa, pla = _probes(c, device)
    pb, plb = _probes(c, device)
    bits_u8 = torch.tensor(bits, dtype=torch.uint8, device=device)
    ya = _cast(WeightQuantSTE.apply(wa, *args, pa, pla), out_dtype)
    yb = FusedWeightQuantSTE.apply(wb, *args[:5], bits_u8, *args[5:], pb, plb, out_dtype)
    assert yb.dtype == ya.dtype
    g = torch.randn(shape, generator=gen).to(out_dtype or dtype).to(device)
    ya.backward(g)
    yb.backward(g)
    assert wa.grad is not None and wb.grad is not None and pa.grad is not None and pb.grad is not None
    assert pla.grad is not None and plb.grad is not None
    return Difference(_scaled_by(_case("weight", shape, dtype, out_dtype), statistic), _ulps(yb, ya),
                      torch.equal(wa.grad, wb.grad), 0.0, _rel(pb.grad.abs(), pa.grad), _rel(plb.grad.abs(), pla.grad))


def compare_acts(device: torch.device, dtype: torch.dtype, shape: tuple[int, ...], seed: int,
                 out_dtype: torch.dtype | None = None, relu_input: bool = False) -> Difference:
    """`relu_input`: x has negatives (and exact zeros) and the fused kernels fold the ReLU that the Function's path
    applies as F.relu first."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * 2.0
    x = x.masked_fill(x.abs() < 0.05, 0.0) if relu_input else x.relu()
    x[..., :2] = 2.5  # some elements exactly at the clip
    x = x.to(dtype)
    if len(shape) == 4:
        x = x.to(memory_format=torch.channels_last)
    x = x.to(device)
    c = shape[1]
    bits = [[1, 2, 3, 4, 8, FP_BITS][i % 6] for i in range(c)]
    n = torch.tensor([1.0 if b == FP_BITS else float(2**b - 1) for b in bits], device=device)
    lower_n = torch.tensor([1.0 if b == FP_BITS else float(2 ** (b - 1) - 1) for b in bits], device=device)
    fp_mask = torch.tensor([b == FP_BITS for b in bits], device=device)
    empty_levels = torch.zeros(c, MAX_LEVELS, device=device)
    empty_thresholds = torch.full((c, MAX_LEVELS - 1), float("inf"), device=device)
    if not act_fusable(x, 1):
        raise RuntimeError(f"the fused path does not take this activation ({device}, {dtype}, {shape})")
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    if len(shape) == 4:  # clone keeps the layout, but say so
        assert xb.is_contiguous(memory_format=torch.channels_last)
    ca = torch.tensor([2.5], device=device, requires_grad=True)
    cb = torch.tensor([2.5], device=device, requires_grad=True)
    pa, pla = _probes(c, device)
    pb, plb = _probes(c, device)
    xin = torch.nn.functional.relu(xa) if relu_input else xa
    ya = _cast(ActQuantSTE.apply(xin, ca, n, empty_levels, empty_thresholds, fp_mask, lower_n, empty_levels,
                                 empty_thresholds, pa, pla, "uniform", 1, True), out_dtype)
    yb = FusedUniformActQuantSTE.apply(xb, cb, n, fp_mask, lower_n, pb, plb, True, out_dtype, relu_input)
    assert yb.dtype == ya.dtype
    g = torch.randn(shape, generator=gen).to(out_dtype or dtype).to(device)
    ya.backward(g)
    yb.backward(g)
    assert xa.grad is not None and xb.grad is not None and ca.grad is not None and cb.grad is not None
    assert pa.grad is not None and pb.grad is not None and pla.grad is not None and plb.grad is not None
    return Difference(_case("relu + act" if relu_input else "act", shape, dtype, out_dtype), _ulps(yb, ya),
                      torch.equal(xa.grad, xb.grad), _rel(cb.grad, ca.grad), _rel(pb.grad.abs(), pa.grad),
                      _rel(plb.grad.abs(), pla.grad))


def repeat_acts(device: torch.device, shape: tuple[int, ...], repeats: int, seed: int = 0) -> int:
    """The fused activation quantizer's forward and backward `repeats` times on the same bfloat16 input (a ReLU's,
    folded) and gradient: how many different (clip gradient, sensitivities, look-ahead sums) came out, bit for bit.
    1 with DMBQ_FUSED_DETERMINISTIC=1 (the partial sums added in a fixed order); with =0 the blocks' float atomics
    may add in another order each time."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = (torch.randn(shape, generator=gen) * 2.0).to(torch.bfloat16)
    g = torch.randn(shape, generator=gen).to(torch.bfloat16)
    if len(shape) == 4:
        x, g = x.to(memory_format=torch.channels_last), g.to(memory_format=torch.channels_last)
    x, g = x.to(device), g.to(device)
    n = torch.full((c,), 3.0, device=device)
    lower_n = torch.ones(c, device=device)
    fp_mask = torch.zeros(c, dtype=torch.bool, device=device)
    seen: set[bytes] = set()
    for _ in range(repeats):
        clip = torch.tensor([1.5], device=device, requires_grad=True)
        probe, probe_lower = _probes(c, device)
        y = FusedUniformActQuantSTE.apply(x, clip, n, fp_mask, lower_n, probe, probe_lower, False, None, True)
        y.backward(g)
        assert clip.grad is not None and probe.grad is not None and probe_lower.grad is not None
        sums = torch.cat([clip.grad.reshape(1), probe.grad, probe_lower.grad]).cpu()
        seen.add(sums.numpy().tobytes())
    return len(seen)


def compare_weight_batch(device: torch.device, out_dtype: torch.dtype | None, seed: int,
                         statistic: ScaleStatistic = "mean_abs") -> Difference:
    """FusedWeightBatchSTE (every layer's weight quantizer in one launch per direction) against the Function, layer
    by layer: the weights of CASES at once, mixed bits per channel and `statistic` scales as in compare_weights,
    forward, backward and the sensitivity and look-ahead sums."""
    from types import SimpleNamespace

    from dmbq_worker.quant.fused import FusedWeightBatch, FusedWeightBatchSTE

    gen = torch.Generator().manual_seed(seed)
    quantizers, weights, expected, refs, grads = [], [], [], [], []
    for kind, shape in CASES:
        if kind != "weight":
            continue
        w = torch.randn(shape, generator=gen)
        if len(shape) == 4:
            w = w.to(memory_format=torch.channels_last)
        w = w.to(device)
        c = shape[0]
        bits = [[0, 1, 2, 3, 4, 8, FP_BITS][(i + seed) % 7] for i in range(c)]
        t = weight_tables(bits, device, statistic)
        scale = channel_statistic(w, c, statistic).contiguous()
        probe, probe_lower = _probes(c, device)
        q = SimpleNamespace(scale=scale, bits=torch.tensor(bits, dtype=torch.uint8, device=device), probe=probe,
                            probe_lower=probe_lower, signed_probes=True, precomputed=None, **t)
        quantizers.append(q)
        weights.append(w.clone().requires_grad_(True))
        ref_w = w.clone().requires_grad_(True)
        pa, pla = _probes(c, device)
        expected.append(_cast(WeightQuantSTE.apply(ref_w, scale, t["levels"], t["thresholds"], t["clip_units"],
                                                   t["fp_mask"], t["lower_levels"], t["lower_thresholds"], pa, pla),
                              out_dtype))
        refs.append((ref_w, pa, pla))
        grads.append(torch.randn(shape, generator=gen).to(out_dtype or torch.float32).to(device))
    if not FusedWeightBatch.supports(quantizers, weights):
        raise RuntimeError(f"the weight batch does not take these weights ({device})")
    outs = FusedWeightBatchSTE.apply(FusedWeightBatch(quantizers, weights), out_dtype or torch.float32, *weights)
    torch.autograd.backward(list(outs), [g.contiguous(memory_format=torch.channels_last) if g.dim() == 4 else g
                                         for g in grads])
    torch.autograd.backward(expected, grads)
    ulps = max(_ulps(o, e) for o, e in zip(outs, expected))
    same = all(o.stride() == w.stride() for o, w in zip(outs, weights))

    def grad(t: Tensor) -> Tensor:
        assert t.grad is not None
        return t.grad

    grad_equal = same and all(torch.equal(grad(w), grad(r[0])) for w, r in zip(weights, refs))
    sens = max(_rel(grad(q.probe).abs(), grad(r[1])) for q, r in zip(quantizers, refs))
    sens_lower = max(_rel(grad(q.probe_lower).abs(), grad(r[2])) for q, r in zip(quantizers, refs))
    name = f"weight batch of {len(weights)} layers float32" + (
        f" -> {str(out_dtype).removeprefix('torch.')}" if out_dtype else "")
    return Difference(_scaled_by(name, statistic), ulps, grad_equal, 0.0, sens, sens_lower)


CASES: list[tuple[str, tuple[int, ...]]] = [
    ("weight", (16, 16, 3, 3)),
    ("weight", (64, 32, 3, 3)),
    ("weight", (10, 64)),
    ("weight", (40, 3000)),  # rows longer than one block
    ("act", (8, 16, 8, 8)),
    ("act", (4, 70, 5, 5)),  # channels over one block, rows not a multiple of the block
    ("act", (32, 200)),
]


# ResNet-20's three activation shapes at batch 128 (hundreds of backward blocks adding into 16-64 channels) and one
# of VGG-small's (several column blocks)
REPEAT_SHAPES: list[tuple[int, ...]] = [(128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8), (128, 128, 32, 32)]


def run_all(device: torch.device, cases: list[tuple[str, tuple[int, ...]]] | None = None) -> list[Difference]:
    """Every case in float32 and bfloat16, and float32 emitted as bfloat16 (the conv operand under bf16 autocast);
    weights with mean|w| and with max|w| scales."""
    out = []
    for dtype, out_dtype in ((torch.float32, None), (torch.bfloat16, None), (torch.float32, torch.bfloat16)):
        for i, (kind, shape) in enumerate(cases or CASES):
            if kind == "weight":
                out.append(compare_weights(device, dtype, shape, seed=i, out_dtype=out_dtype))
                out.append(compare_weights(device, dtype, shape, seed=i, out_dtype=out_dtype, statistic="max_abs"))
            else:
                out.append(compare_acts(device, dtype, shape, seed=i, out_dtype=out_dtype))
                out.append(compare_acts(device, dtype, shape, seed=i, out_dtype=out_dtype, relu_input=True))
    if cases is None:
        out += [compare_weight_batch(device, None, seed=0), compare_weight_batch(device, torch.bfloat16, seed=1),
                compare_weight_batch(device, None, seed=2, statistic="max_abs")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=50,
                        help="backward passes per REPEAT_SHAPES shape whose sums must be equal bit for bit (0: skip)")
    args = parser.parse_args()
    device = torch.device(args.device)
    allowed = 0.0 if device.type == "cuda" else 1.0
    rows = run_all(device)
    print("| case | value diff (ulps) | input grad equal | clip grad rel | sens rel | look-ahead rel |")
    print("|---|---|---|---|---|---|")
    for d in rows:
        print(f"| {d.case} | {d.value_ulps:.2f} | {d.grad_equal} | {d.clip_grad_rel:.2e} | {d.sens_rel:.2e} | "
              f"{d.sens_lower_rel:.2e} |")
    bad = [d.case for d in rows if not d.ok(allowed)]
    if args.repeats > 0:
        mode = "fixed order" if deterministic() else "atomics (DMBQ_FUSED_DETERMINISTIC=0)"
        print(f"\n| activation backward, {mode} | repeats | different sums |\n|---|---|---|")
        for shape in REPEAT_SHAPES:
            distinct = repeat_acts(device, shape, args.repeats)
            print(f"| {tuple(shape)} bfloat16, ReLU folded | {args.repeats} | {distinct} |")
            if deterministic() and distinct != 1:
                bad.append(f"repeat {tuple(shape)}")
    print("all equal" if not bad else f"DIFFER: {', '.join(bad)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
