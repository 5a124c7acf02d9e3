"""Micro-benchmark of one quantized conv layer: forward + backward time per step, as a markdown table.

    python -m dmbq_worker.quant.bench [--device cuda] [--compile] [--small]
    python -m dmbq_worker.quant.bench --check      # the same small model on the GPU and the CPU agree

Variants: plain nn.Conv2d; QuantConv2d in full precision (the fast path); mixed 1..4-bit weights with 2..4-bit
uniform activations; the same with sensitivities + look-ahead + histograms collected; table-mode activations.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from dmbq_worker.quant.convert import QuantLayerRef, convert_model
from dmbq_worker.quant.scheme import LayerQuantConfig, SchemeConfig, apply_scheme
from dmbq_worker.quant.sensitivity import SensitivityCollector

WEIGHT_ALPHA = {b: np.array([1.3 * 0.5**i for i in range(b)], np.float32) for b in range(1, 9)}
ACT_ALPHA = {b: np.array([0.5**i for i in range(b)], np.float32) / sum(0.5**i for i in range(b)) for b in range(1, 9)}


def _scheme(ref: QuantLayerRef, mode: str, rng: np.random.Generator) -> SchemeConfig:
    c_out, c_in = ref.module.weight_quant.out_channels, ref.module.act_quant.in_channels
    return SchemeConfig(
        layers={
            ref.name: LayerQuantConfig(
                rng.integers(1, 5, c_out).astype(np.uint8), rng.integers(2, 5, c_in).astype(np.uint8), mode  # type: ignore[arg-type]
            )
        },
        weight_tables=dict(WEIGHT_ALPHA),
        act_tables=dict(ACT_ALPHA),
    )


def _time_steps(step: Callable[[], None], device: torch.device, iters: int, repeats: int = 3) -> float:
    """Best of `repeats` means over `iters` steps (after warm-up), in ms."""
    for _ in range(3):
        step()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, (time.perf_counter() - t0) / iters * 1e3)
    return best


def _kernel_ms(step: Callable[[], None], device: torch.device, iters: int) -> float:
    """GPU kernel time per step (the profiler's sum of device time), in ms: the cost once launches are hidden
    (a big model, CUDA graphs); NaN on the CPU."""
    if device.type != "cuda":
        return float("nan")
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            step()
        torch.cuda.synchronize(device)
    total_us = sum(e.self_device_time_total for e in prof.key_averages())
    return total_us / iters / 1e3


def bench_shape(
    n: int, c: int, hw: int, device: torch.device, compile_: bool, iters: int
) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.randn(n, c, hw, hw, device=device).relu_()
    rows: list[tuple[str, float, float]] = []

    def run(label: str, model: nn.Module) -> None:
        model.train()
        torch._dynamo.reset()  # each variant compiles afresh (no recompile limit shared across variants)
        fn = torch.compile(model) if compile_ else model

        def step() -> None:
            y = fn(x)
            y.backward(torch.ones_like(y))

        rows.append((label, _time_steps(step, device, iters), _kernel_ms(step, device, iters)))

    run("nn.Conv2d", nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False)).to(device))
    for label, mode, collect in (
        ("QuantConv2d FP", None, None),
        ("W1-4 A2-4 uniform", "uniform", None),
        ("W1-4 A2-4 uniform + sensitivity", "uniform", (False, 0)),
        ("W1-4 A2-4 uniform + sensitivity + look-ahead", "uniform", (True, 0)),
        ("W1-4 A2-4 uniform + sensitivity + look-ahead + 64-bin histograms", "uniform", (True, 64)),
        ("W1-4 A2-4 table", "table", None),
    ):
        model = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False)).to(device)
        layers = convert_model(model)
        if mode is not None:
            apply_scheme(layers, _scheme(layers[0], mode, rng))
        if collect is not None:
            SensitivityCollector(layers, lookahead=collect[0], histogram_bins=collect[1]).enable()
        run(label, model)
    return rows


def check_against_cpu(device: torch.device) -> float:
    """Same model, scheme and batches on `device` and on the CPU; returns the largest relative difference seen in
    outputs, gradients, sensitivities and histograms (a correctness check of the device kernels)."""
    torch.manual_seed(1)
    base = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(16 * 36, 10))
    xs = [torch.randn(4, 8, 6, 6) for _ in range(3)]
    results = []
    for dev in (torch.device("cpu"), device):
        model = copy.deepcopy(base).to(dev)
        layers = convert_model(model)
        scheme = SchemeConfig(weight_tables=dict(WEIGHT_ALPHA), act_tables=dict(ACT_ALPHA))
        r = np.random.default_rng(1)
        for ref, mode in zip(layers, ("uniform", "table", "uniform")):
            c_out, c_in = ref.module.weight_quant.out_channels, ref.module.act_quant.in_channels
            scheme.layers[ref.name] = LayerQuantConfig(
                r.integers(0, 9, c_out).astype(np.uint8), r.integers(1, 9, c_in).astype(np.uint8), mode  # type: ignore[arg-type]
            )
        apply_scheme(layers, scheme)
        for ref in layers:
            ref.module.act_quant.set_clip_(1.5)
        collector = SensitivityCollector(layers, lookahead=True, histogram_bins=16)
        collector.enable()
        model.train()
        outs = []
        for x in xs:
            y = model(x.to(dev))
            y.square().mean().backward()
            outs.append(y.detach().cpu().numpy())
        grads = [p.grad.detach().cpu().numpy() for p in model.parameters() if p.grad is not None]
        stats = collector.read()
        flat = [*outs, *grads]
        for s in stats.values():
            flat += [s.weight_sensitivity, s.act_sensitivity, s.weight_sensitivity_lower, s.act_sensitivity_lower]
            flat += [s.weight_hist[2], s.act_hist[2]]  # type: ignore[index]
        results.append(flat)
    worst = 0.0
    for a, b in zip(*results):
        scale = max(float(np.abs(a).max()), 1e-12)
        worst = max(worst, float(np.abs(np.asarray(a) - np.asarray(b)).max()) / scale)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (inductor)")
    parser.add_argument("--small", action="store_true", help="CPU-sized shapes")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--check", action="store_true", help="compare a small quantized model on --device vs CPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.check:
        print(f"{device} vs cpu: largest relative difference {check_against_cpu(device):.2e}")
        return
    shapes = [(16, 16, 16)] if args.small else [(256, 64, 32), (128, 256, 14)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}, compile={args.compile}, best of 3 x {args.iters} steps")
    print()
    print("| shape N×C×H×W, 3×3 conv C→C | variant | fwd+bwd wall ms/step | × nn.Conv2d | GPU kernel ms/step | × nn.Conv2d |")
    print("|---|---|---|---|---|---|")
    for n, c, hw in shapes:
        rows = bench_shape(n, c, hw, device, args.compile, args.iters)
        base, base_gpu = rows[0][1], rows[0][2]
        for label, ms, gpu in rows:
            print(f"| {n}×{c}×{hw}×{hw} | {label} | {ms:.3f} | {ms / base:.2f} | {gpu:.3f} | {gpu / base_gpu:.2f} |")


if __name__ == "__main__":
    main()
