"""Does torch.compile give the eager gradients for quantized layers? (why Configure.compile is FP-only for now)

    PYTHONPATH=py_worker python bench/compile_grad_check.py [--device cuda]

Builds small models, converts them, applies a W2/A2 scheme (8-bit first/last layers), and compares one forward +
backward eager against torch.compile (inductor) from identical copies: the largest output difference and, per
weight, max|g_eager - g_compiled| / max|g_eager|. Seen on CPU (torch 2.13, 2026-11-26): outputs equal; the weight
gradients of the quantized convs differ by 4-20% of their largest value in all three models (the last linear's is
equal). With the EMA of s_c frozen (weight_quant.ema_decay = 1.0) the gradients agree to 3e-7, so the difference
follows the scale update inside the forward; computing that update out of place (scale = decay*s + (1-decay)*m;
s.copy_(scale); the Function gets the new tensor) did not remove it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py_worker"))

from dmbq_worker.engine.models import build_model  # noqa: E402
from dmbq_worker.engine.service import layer_info  # noqa: E402
from dmbq_worker.quant import apply_scheme, convert_model, scheme_from_proto  # noqa: E402
from tests.engine.helpers import w2a2_scheme  # noqa: E402


def conv_relu_conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1,
                         bias=False), nn.Flatten(), nn.Linear(512, 10))


def conv_bn_pool() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 16, 10),
    )


def compare(name: str, make: Callable[[], nn.Module], device: torch.device) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 1, 8, 8, device=device)
    model = make().to(device)
    refs = convert_model(model, example_input=x)
    apply_scheme(refs, scheme_from_proto(w2a2_scheme([layer_info(r, 1) for r in refs])))
    twin = copy.deepcopy(model)
    compiled = torch.compile(twin)
    results = []
    for module, fn in ((model, model), (twin, compiled)):
        out = fn(x)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad.detach().clone() for n, p in module.named_parameters()
                                       if p.grad is not None}))
    (out_e, grads_e), (out_c, grads_c) = results
    rel = {n: (grads_e[n] - grads_c[n]).abs().max().item() / max(grads_e[n].abs().max().item(), 1e-30)
           for n in grads_e if n.endswith("weight")}
    print(f"{name}: max |out diff| {(out_e - out_c).abs().max().item():.3g}; weight grads, relative max diff:")
    for n, r in rel.items():
        print(f"  {n:24s} {r:.2e}{'   <-- differs' if r > 1e-3 else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    compare("conv-relu-conv", conv_relu_conv, device)
    compare("conv-bn-relu-conv-bn-relu-maxpool", conv_bn_pool, device)
    compare("digits_cnn", lambda: build_model("digits_cnn", 10), device)


if __name__ == "__main__":
    main()
