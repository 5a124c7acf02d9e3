"""Microseconds per forward + backward of one fused quantizer, per tile configuration, on ResNet-20's shapes.

    python bench/fused_tiles.py [--batch 128] [--reps 50]

Each row: one quantizer's forward and backward (torch.autograd.grad: no AccumulateGrad), N times inside one CUDA graph,
replayed; the time per iteration from CUDA events, so launch gaps are those of a captured step. Activations are
ResNet-20's conv inputs (bf16, channels_last, uniform 2-bit levels, signed sensitivity sums on or off); weights its 3x3
convs (float32, 2-bit tables). The torch-op Functions (ActQuantSTE / WeightQuantSTE) are timed the same way for
reference. Prints a table; the defaults in quant/fused.py come from it (docs/RESULTS.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from dmbq_worker.quant import fused  # noqa: E402
from dmbq_worker.quant.functions import ActQuantSTE, WeightQuantSTE  # noqa: E402
from dmbq_worker.quant.fused_check import weight_tables  # noqa: E402
from dmbq_worker.quant.levels import MAX_LEVELS  # noqa: E402


def time_graph(step: Callable[[], None], reps: int) -> float:
    """Microseconds per call of `step`, captured `reps` times in one CUDA graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up: Triton compilation, allocator
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            step()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(5):
        start.record()
        for _ in range(10):
            graph.replay()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) * 1000.0 / (10 * reps))
    return best


def act_step(shape: tuple[int, int, int, int], sens: bool, fused_path: bool) -> Callable[[], None]:
    dev = torch.device("cuda")
    c = shape[1]
    x = torch.randn(shape, device=dev).relu().to(torch.bfloat16).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    g = torch.randn(shape, device=dev).to(torch.bfloat16).to(memory_format=torch.channels_last)
    clip = torch.tensor([2.0], device=dev, requires_grad=True)
    n = torch.full((c,), 3.0, device=dev)
    fp = torch.zeros(c, dtype=torch.bool, device=dev)
    probe = torch.zeros(c, device=dev, requires_grad=True) if sens else None
    lv = torch.zeros(c, MAX_LEVELS, device=dev)
    th = torch.full((c, MAX_LEVELS - 1), float("inf"), device=dev)
    inputs = [x, clip] + ([probe] if probe is not None and not fused_path else [])

    def step() -> None:
        if fused_path:
            y = fused.FusedUniformActQuantSTE.apply(x, clip, n, fp, n, probe, None, False)
        else:
            y = ActQuantSTE.apply(x, clip, n, lv, th, fp, n, lv, th, probe, None, "uniform", 1, False)
        torch.autograd.grad(y, inputs, g)

    return step


def weight_step(shape: tuple[int, ...], sens: bool, fused_path: bool) -> Callable[[], None]:
    dev = torch.device("cuda")
    c = shape[0]
    w = torch.randn(shape, device=dev).to(memory_format=torch.channels_last).requires_grad_(True)
    g = torch.randn(shape, device=dev).to(memory_format=torch.channels_last)
    t = weight_tables([2] * c, dev)
    bits = torch.full((c,), 2, dtype=torch.uint8, device=dev)
    scale = w.detach().abs().mean(dim=(1, 2, 3))
    probe = torch.zeros(c, device=dev, requires_grad=True) if sens else None
    inputs = [w] + ([probe] if probe is not None and not fused_path else [])

    def step() -> None:
        if fused_path:
            y = fused.FusedWeightQuantSTE.apply(w, scale, t["levels"], t["thresholds"], t["clip_units"], t["fp_mask"],
                                                bits, t["lower_levels"], t["lower_thresholds"], probe, None)
        else:
            y = WeightQuantSTE.apply(w, scale, t["levels"], t["thresholds"], t["clip_units"], t["fp_mask"],
                                     t["lower_levels"], t["lower_thresholds"], probe, None)
        torch.autograd.grad(y, inputs, g)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--tiles", default="2048,4096,8192,16384")
    parser.add_argument("--warps", default="4,8")
    parser.add_argument("--iters", default="0",
                        help="backward: row tiles per block (comma list, swept with it; 0: the default rule)")
    parser.add_argument("--sweep", default="both", choices=["both", "forward", "backward"],
                        help="both: the tile and warps of both directions; forward / backward: that direction's only "
                             "(the other keeps its default)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("fused_tiles.py needs a CUDA device")
    b = args.batch
    acts = [(b, 16, 32, 32), (b, 32, 16, 16), (b, 64, 8, 8)]
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; µs per forward + backward, "
          f"{args.reps} per CUDA graph, best of 5 x 10 replays; activation tiles swept: "
          f"{'both directions' if args.sweep == 'both' else 'the ' + args.sweep + ' only'} (defaults: forward "
          f"{fused.ACT_TILE} / {fused.ACT_WARPS} warps, backward {fused.ACT_BWD_TILE} / {fused.ACT_BWD_WARPS} warps / {fused.ACT_BWD_ITERS} row tiles a block)")
    print("| quantizer | shape | sensitivity | path | tile | warps | backward row tiles a block | µs |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in acts:
        for sens in (False, True):
            us = time_graph(act_step(shape, sens, fused_path=False), args.reps)
            print(f"| act | {shape} | {sens} | torch ops | — | — | — | {us:.2f} |", flush=True)
            configs = [(tile, warps, iters) for tile in (int(v) for v in args.tiles.split(","))
                       for warps in (int(v) for v in args.warps.split(","))
                       for iters in (int(v) for v in args.iters.split(","))]
            for tile, warps, iters in configs:
                if args.sweep in ("both", "backward"):
                    fused.ACT_BWD_TILE, fused.ACT_BWD_WARPS, fused.ACT_BWD_ITERS = tile, warps, iters
                if args.sweep in ("both", "forward"):
                    fused.ACT_TILE, fused.ACT_WARPS = tile, warps
                us = time_graph(act_step(shape, sens, fused_path=True), args.reps)
                print(f"| act | {shape} | {sens} | fused | {tile} | {warps} | {iters} | {us:.2f} |", flush=True)
    for wshape in [(16, 16, 3, 3), (32, 32, 3, 3), (64, 64, 3, 3)]:
        for sens in (False, True):
            for fused_path in (False, True):
                us = time_graph(weight_step(wshape, sens, fused_path), args.reps)
                print(f"| weight | {wshape} | {sens} | {'fused' if fused_path else 'torch ops'} | — | — | — | {us:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
