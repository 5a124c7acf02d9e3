"""What the global-batch BatchNorm of a torch.distributed job costs against torch's per-rank BatchNorm2d: forward and
backward of ResNet-20's 19 BatchNorm shapes (16@32x32 x7, 32@16x16 x6, 64@8x8 x6) in a 1-process group, so the
numbers are the arithmetic and the collective's launch, not waiting for other ranks.

    PYTHONPATH=py_worker python bench/global_bn_cost.py [--device cpu|cuda] [--batch 256] [--repeats 20]

Rows:
* torch BatchNorm2d: what the plain worker runs (cuDNN on CUDA; no cross-rank statistics);
* GlobalBatchNorm: what a job runs (distributed/sync_batchnorm.py: float64 copy of x, sums, normalisation in float64);
* f32-normalise (candidate, here only): the same float64 sums read straight from x (sum with dtype=float64, squares in
  float32), the normalisation as one float32 x * scale + shift per channel. Measured here before it is adopted:
  on CPU it halves GlobalBatchNorm's cost, but tried in the worker (with a float64 backward for scale and shift) one
  2-ranks-vs-1 gloo case (A2, clips from the batch) then drifted by 1.1e-5 after 4 steps against 1.4e-6 (the first two
  steps stay identical; DDP's float32 gradient averaging starts the drift, quantizer boundaries amplify it), over
  the tests' 1e-5: so not adopted until a GPU shows the time is worth that.
The input is bfloat16 on CUDA (a conv output under autocast) and float32 on CPU. Prints a markdown table: ms per step
(all 19 layers, forward + backward; median of the repeats after 3 warm-ups) and the ratio to torch's BatchNorm2d.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from dmbq_worker.distributed.sync_batchnorm import GlobalBatchNorm, convert_batchnorm  # noqa: E402

SHAPES = [(16, 32)] * 7 + [(32, 16)] * 6 + [(64, 8)] * 6  # ResNet-20's BatchNorms: (channels, side)


def f32_normalise(bn: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    """The candidate: GlobalBatchNorm's statistics without a float64 copy of x, then one float32 affine map."""
    dims = [d for d in range(x.dim()) if d != 1]
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    xf = x.float()
    c = x.shape[1]
    local_n = torch.full((1,), float(x.numel() // c), dtype=torch.float64, device=x.device)
    sums = dist_fn.all_reduce(torch.cat([xf.sum(dim=dims, dtype=torch.float64),
                                         (xf * xf).sum(dim=dims, dtype=torch.float64), local_n]))
    count = sums[-1:]
    mean = sums[:c] / count
    var = (sums[c:2 * c] / count - mean * mean).clamp_min(0.0)
    scale = torch.rsqrt(var + bn.eps) * bn.weight.double()
    shift = bn.bias.double() - mean * scale
    return (xf * scale.float().view(shape) + shift.float().view(shape)).to(x.dtype)


def time_step(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=0, help="per rank (default: 256 on CUDA, 32 on CPU)")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (256 if device.type == "cuda" else 32)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        gen = torch.Generator().manual_seed(0)
        inputs = [(torch.randn(batch, c, s, s, generator=gen) * 2 + 0.5).to(device, dtype).requires_grad_()
                  for c, s in SHAPES]
        grads = [torch.randn(x.shape, generator=gen).to(device, dtype) for x in inputs]

        def layers(global_bn: bool) -> list[nn.Module]:
            mods = [nn.BatchNorm2d(c).to(device) for c, _ in SHAPES]
            return [convert_batchnorm(m) for m in mods] if global_bn else mods

        torch_bn, global_bn, candidate = layers(False), layers(True), layers(True)
        assert all(isinstance(m, GlobalBatchNorm) for m in global_bn)

        def step(forward: Callable[[nn.Module, Tensor], Tensor], mods: list[nn.Module]) -> Callable[[], None]:
            def run() -> None:
                outs = [forward(m, x) for m, x in zip(mods, inputs)]
                torch.autograd.backward(outs, grads)
            return run

        def torch_forward(m: nn.Module, x: Tensor) -> Tensor:  # autocast's rule for batch_norm: float32 in
            return m(x.float()).to(x.dtype)

        rows = [
            ("torch BatchNorm2d (per rank)", step(torch_forward, torch_bn)),
            ("GlobalBatchNorm (float64)", step(lambda m, x: m(x), global_bn)),
            ("f32-normalise (candidate)", step(lambda m, x: f32_normalise(m, x), candidate)),  # type: ignore[arg-type]
        ]
        # the candidate must compute what GlobalBatchNorm computes
        for m_ref, m_new, x in zip(global_bn, candidate, inputs):
            ref, new = m_ref(x).float(), f32_normalise(m_new, x).float()  # type: ignore[arg-type]
            tol = 2e-2 if dtype == torch.bfloat16 else 1e-5
            if not torch.allclose(ref, new, atol=tol, rtol=tol):
                sys.exit(f"candidate differs from GlobalBatchNorm by {(ref - new).abs().max().item():.2e}")
        results = [(name, time_step(fn, device, args.repeats)) for name, fn in rows]
    finally:
        dist.destroy_process_group()
    base = results[0][1]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}); torch "
          f"{torch.__version__}; ResNet-20's 19 BatchNorms, batch {batch} per rank, input {str(dtype).split('.')[-1]}; "
          f"forward + backward; 1-process group; median of {args.repeats}")
    print("| BatchNorm | ms per step | vs torch BatchNorm2d |")
    print("| --- | --- | --- |")
    for name, ms in results:
        print(f"| {name} | {ms:.2f} | {ms / base:.2f}x |")


if __name__ == "__main__":
    main()
