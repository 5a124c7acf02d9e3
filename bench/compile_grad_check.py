"""Do torch.compile'd training steps of quantized models give the eager gradients? One table per device.

    PYTHONPATH=py_worker python bench/compile_grad_check.py [--device cuda] [--backend inductor] [--steps 3]

Four small models (conv-relu-conv, conv-bn-relu-conv-bn-relu-{avg,max}pool, the digits CNN), each under FP, W2/A2,
W2/A2 with sensitivities + look-ahead, and W4/A4 (first/last layers at 8 bits). Each row trains `--steps` SGD
steps eager and compiled from identical states (dmbq_worker.quant.compile_check) and prints the worst relative
difference max|eager - compiled| / max|eager| of the outputs, the parameter gradients, the summed sensitivities
and the weight scales. Scale EMA "after step" is what the trainer does (ScaleUpdater); "in forward" (only with
--in-forward) is the quantizers' standalone mode, whose compiled rounding of the EMA differed from eager by an
ulp, enough to flip STE masks at the lattice's exact ties and change whole gradients by 4-20% on CPU.
Quantized rows of models with max-pool differ by design (see HAS_MAX_POOL), and a float near-tie (a ReLU input at
1e-7 that the two paths round to opposite signs) can make single steps differ; neither fails the exit status.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py_worker"))

from dmbq_worker.engine.models import build_model  # noqa: E402
from dmbq_worker.engine.service import layer_info  # noqa: E402
from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402
from dmbq_worker.quant import apply_scheme, convert_model, scheme_from_proto  # noqa: E402
from dmbq_worker.quant.compile_check import ScaleUpdateMode, compare_compiled_training  # noqa: E402

def conv_bn_pool(pool: nn.Module) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), pool,
        nn.Flatten(), nn.Linear(64 * 16, 10),
    )


MODELS: dict[str, Callable[[], nn.Module]] = {
    "conv-relu-conv": lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, bias=False),
        nn.Flatten(), nn.Linear(512, 10),
    ),
    "conv-bn-avgpool": lambda: conv_bn_pool(nn.AvgPool2d(2)),
    "conv-bn-maxpool": lambda: conv_bn_pool(nn.MaxPool2d(2)),
    "digits_cnn": lambda: build_model("digits_cnn", 10),
}
# Max-pool over quantized values meets ties that are exact in real arithmetic (a lattice): which one wins is
# decided by ulps of the BN before it, which inductor rounds differently; both are valid subgradients.
HAS_MAX_POOL = {"conv-bn-maxpool", "digits_cnn"}


def uniform_scheme(layers: list[pb.LayerInfo], body_bits: int) -> pb.QuantScheme:
    """body_bits weights and uniform activations in the body, 8 bits at the edges (the image stays FP);
    binary-weighted tables for every width, so that look-ahead finds the table one bit lower."""
    scheme = pb.QuantScheme()
    for info in layers:
        edge = info.role in (pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_LAST)
        bits = 8 if edge else body_bits
        scheme.layers.append(pb.LayerScheme(
            name=info.name, weight_bits_u8=bytes([bits]) * info.out_channels,
            act_bits_u8=b"" if info.role == pb.LAYER_ROLE_FIRST else bytes([bits]) * info.in_channels,
            act_mode=pb.ACT_MODE_UNIFORM,
        ))
    for bits in range(1, 9):
        alpha = np.asarray([1.6 * 2.0 ** (-i) for i in range(bits)], dtype="<f4")
        scheme.weight_tables.append(pb.LevelTable(bits=bits, alpha_f32=alpha.tobytes()))
    return scheme


SCHEMES: dict[str, tuple[int | None, bool]] = {  # name: (body bits or None for FP, sensitivities + look-ahead)
    "FP": (None, False),
    "W2/A2": (2, False),
    "W2/A2 + sens + look-ahead": (2, True),
    "W4/A4": (4, False),
}


def check(model_name: str, scheme_name: str, device: torch.device, backend: str, steps: int,
          scale_update: ScaleUpdateMode, tolerance: float) -> tuple[float, float, float, float, int, dict[str, float]]:
    torch.manual_seed(0)
    x = torch.randn(16, 1, 8, 8, device=device)
    y = torch.randint(0, 10, (16,), device=device)
    model = MODELS[model_name]().to(device)
    refs = convert_model(model, example_input=x)
    bits, sens = SCHEMES[scheme_name]
    if bits is not None:
        apply_scheme(refs, scheme_from_proto(uniform_scheme([layer_info(r, 1) for r in refs], bits)))
    torch._dynamo.reset()
    r = compare_compiled_training(model, refs, x, y, steps=steps, backend=backend, sensitivity=sens,
                                  lookahead=sens, scale_update=scale_update, tolerance=tolerance)
    return (r.output, max(r.grads.values()), max(r.sensitivities.values(), default=0.0), r.scales,
            r.steps_differing, r.grads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--in-forward", action="store_true", help="also the rows with the scale EMA in forward")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="per step, for outputs and gradients (sensitivities: 10x, a sum with cancellation)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        sys.exit(f"--models: expected names from {', '.join(MODELS)}, got {args.models!r}")
    device = torch.device(args.device)
    if device.type == "cuda":  # compare kernels, not TF32 rounding
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    modes: list[ScaleUpdateMode] = ["after_step", "in_forward"] if args.in_forward else ["after_step"]
    print(f"device {device}; torch {torch.__version__}; backend {args.backend}; {args.steps} steps, each from "
          f"identical states; worst relative difference max|eager - compiled| / max|eager|; steps differing: "
          f"steps whose output or gradients differ by more than {args.tolerance:g}")
    print("| model | scheme | scale EMA | output | gradients | sensitivities | scales | steps differing | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    failed = False
    breakdown: list[str] = []  # which gradients differ, for the rows that do
    start = time.perf_counter()
    for mode in modes:
        for model_name in models:
            for scheme_name in SCHEMES:
                out, grads, sens, scales, differing, per_grad = check(model_name, scheme_name, device, args.backend,
                                                            args.steps, mode, args.tolerance)
                systematic = differing == args.steps
                sens_ok = sens <= 10 * args.tolerance
                if differing == 0 and sens_ok:
                    verdict = "ok"
                elif not systematic and sens_ok:
                    verdict = "near-tie at some steps"
                elif model_name in HAS_MAX_POOL and scheme_name != "FP":
                    verdict = "max-pool ties"
                else:
                    verdict = "DIFFERS"
                failed |= mode == "after_step" and verdict == "DIFFERS"
                if verdict != "ok":
                    off = ", ".join(f"{n} {d:.1e}" for n, d in sorted(per_grad.items(), key=lambda kv: -kv[1])
                                    if d > args.tolerance)
                    breakdown.append(f"{model_name} {scheme_name} ({mode.replace('_', ' ')}): {off or 'no gradient'}")
                print(f"| {model_name} | {scheme_name} | {mode.replace('_', ' ')} | {out:.1e} | {grads:.1e} | "
                      f"{sens:.1e} | {scales:.1e} | {differing}/{args.steps} | {verdict} |", flush=True)
    for line in breakdown:
        print(f"gradients differing: {line}")
    print(f"({time.perf_counter() - start:.0f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
