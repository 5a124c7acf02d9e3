"""TrainingOptimizer's SGD (torch's fused kernel, or the foreach chain where it cannot) against torch.optim.SGD."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmbq_worker.engine.optim import OptimizerOptions, TrainingOptimizer, _fusable


def _model(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).to(dtype)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # float64: not fusable, the foreach chain
def test_sgd_steps_as_torch_sgd_with_lr_changes(nesterov: bool, dtype: torch.dtype) -> None:
    ours, ref = _model(dtype), _model(dtype)
    opt = TrainingOptimizer(ours, OptimizerOptions("sgd", 0.1, 0.9, 1e-3, nesterov, 1.0), torch.device("cpu"))
    torch_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        x = torch.randn(4, 6, generator=gen, dtype=dtype)
        for model in (ours, ref):
            model.zero_grad(set_to_none=True)
            model(x).square().sum().backward()
        if step == 3:
            opt.set_lr(0.03)
            for g in torch_opt.param_groups:
                g["lr"] = 0.03
        if step == 1:
            assert _fusable(list(ours.parameters())) == (dtype == torch.float32)
        opt.step()
        torch_opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(opt.torch_optimizer.state[p]["momentum_buffer"],
                                   torch_opt.state[q]["momentum_buffer"], rtol=1e-6, atol=1e-7)
