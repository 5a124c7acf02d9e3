"""Which part of a quantized layer's compiled backward differs from eager on this device? One small table.

    PYTHONPATH=py_worker python bench/compile_backward_probe.py [--device cuda] [--code out.txt]

One QuantConv2d (16 -> 16, 3x3) at W2 only, A2 only, and W2/A2, training mode with the trainer's scale update
(ScaleUpdater, none inside forward). Loss = sum(y * r) for a fixed random r, so the upstream gradient is known.
For each backend (aot_eager: AOTAutograd without inductor; inductor) it prints, per gradient, the relative
difference to eager, the norms, the cosine and the share of exact zeros. `--code` writes inductor's generated
code of the W2-only case to a file (what to read when inductor is the culprit).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from dmbq_worker.quant import LayerQuantConfig, SchemeConfig, apply_scheme, convert_model  # noqa: E402
from dmbq_worker.quant.scale_updates import ScaleUpdater  # noqa: E402

CASES = {"W2": (2, 32), "A2": (32, 2), "W2/A2": (2, 2)}


def build(device: torch.device, w_bits: int, a_bits: int) -> tuple[nn.Module, list]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False))
    refs = convert_model(model)
    scheme = SchemeConfig(
        layers={"0": LayerQuantConfig(np.full(16, w_bits, np.uint8), np.full(16, a_bits, np.uint8), "uniform")},
        weight_tables={2: np.array([1.1, 0.45], np.float32)},
        act_tables={},
    )
    apply_scheme(refs, scheme)
    model.to(device).train()
    ScaleUpdater(refs)
    return model, refs


def grads(model: nn.Module, forward, x: torch.Tensor, r: torch.Tensor) -> dict[str, torch.Tensor]:
    for p in model.parameters():
        p.grad = None
    xin = x.clone().requires_grad_(True)
    (forward(xin) * r).sum().backward()
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    out["input"] = xin.grad.detach().clone()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--code", default="", help="write inductor's code of the W2 case here")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    print(f"device {device}; torch {torch.__version__}")
    print("| case | backend | gradient | rel. diff | norm eager | norm compiled | cosine | zeros eager | zeros compiled |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, (w_bits, a_bits) in CASES.items():
        gen = torch.Generator().manual_seed(1)
        x = torch.rand(8, 16, 8, 8, generator=gen).to(device) * 8.0  # non-negative, a quarter above the clip (6)
        r = torch.randn(8, 16, 8, 8, generator=gen).to(device)
        for backend in ("aot_eager", "inductor"):
            model, _ = build(device, w_bits, a_bits)
            twin, _ = build(device, w_bits, a_bits)
            twin.load_state_dict(model.state_dict())
            handler = None
            if args.code and backend == "inductor" and case == "W2":
                handler = logging.FileHandler(args.code, mode="w")
                logging.getLogger("torch._inductor").addHandler(handler)
                torch._logging.set_logs(output_code=True)
            torch._dynamo.reset()
            g_e = grads(model, model, x, r)
            g_c = grads(twin, torch.compile(twin, backend=backend), x, r)
            if handler is not None:
                torch._logging.set_logs(output_code=False)
                logging.getLogger("torch._inductor").removeHandler(handler)
                handler.close()
            for name, a in g_e.items():
                b = g_c[name]
                a64, b64 = a.double().flatten(), b.double().flatten()
                rel = ((a64 - b64).abs().max() / a64.abs().max().clamp_min(1e-30)).item()
                cos = torch.nn.functional.cosine_similarity(a64, b64, dim=0).item()
                print(f"| {case} | {backend} | {name} | {rel:.1e} | {a64.norm():.4g} | {b64.norm():.4g} | {cos:.4f} | "
                      f"{(a64 == 0).double().mean():.3f} | {(b64 == 0).double().mean():.3f} |", flush=True)


if __name__ == "__main__":
    main()
