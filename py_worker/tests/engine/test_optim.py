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


def test_fused_sgd_env_switches_to_the_foreach_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """DMBQ_FUSED_SGD=0 steps float32 parameters through the foreach chain (torch's fused kernel is never called) with
    the same update; any value but 0 or 1 is refused, naming the variable."""
    calls = {"n": 0}
    real = torch._fused_sgd_

    def counting(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(torch, "_fused_sgd_", counting)
    results = []
    for mode in ("1", "0"):
        monkeypatch.setenv("DMBQ_FUSED_SGD", mode)
        model = _model(torch.float32)
        opt = TrainingOptimizer(model, OptimizerOptions("sgd", 0.1, 0.9, 1e-3, False, 1.0), torch.device("cpu"))
        before = calls["n"]
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            model.zero_grad(set_to_none=True)
            model(torch.randn(4, 6, generator=gen)).square().sum().backward()
            opt.step()
        assert (calls["n"] > before) == (mode == "1")
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    monkeypatch.setenv("DMBQ_FUSED_SGD", "off")
    with pytest.raises(ValueError, match="DMBQ_FUSED_SGD"):
        TrainingOptimizer(_model(torch.float32), OptimizerOptions("sgd", 0.1, 0.9, 0.0, False, 1.0), torch.device("cpu"))
