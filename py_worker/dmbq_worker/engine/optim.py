"""Optimizers. SGD steps through torch's fused kernel (foreach kernels where it cannot) with the LR held in a device
tensor, so that the step can sit inside a CUDA graph and an LR change needs no re-capture; its state is
torch.optim.SGD's (momentum_buffer)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dmbq_worker.switches import switch_on
from dmbq_worker.errors import invalid

OPTIMIZER_NAMES = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class OptimizerOptions:
    name: str
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    clip_lr_scale: float  # LR multiplier of the learned activation clips

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZER_NAMES:
            raise invalid("optimizer.name", f"unknown optimizer '{self.name}'; known: {', '.join(OPTIMIZER_NAMES)}")
        if not (self.lr > 0):
            raise invalid("optimizer.lr", f"must be > 0, got {self.lr}")
        if not (0 <= self.momentum < 1):
            raise invalid("optimizer.momentum", f"must lie in [0, 1), got {self.momentum}")
        if not (self.weight_decay >= 0):
            raise invalid("optimizer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.nesterov and self.momentum == 0:
            raise invalid("optimizer.nesterov", "needs optimizer.momentum > 0")


FUSED_SGD_ENV = "DMBQ_FUSED_SGD"


def fused_sgd_enabled() -> bool:
    """torch's fused SGD kernel (the default) or the foreach chain (DMBQ_FUSED_SGD=0, to compare the two)."""
    return switch_on(FUSED_SGD_ENV)


def _is_clip(name: str) -> bool:
    return name.endswith("clip")


def _fusable(params: list[torch.Tensor]) -> bool:
    """torch._fused_sgd_ takes float32 tensors of one CUDA or CPU device, with their gradients alike."""
    first = params[0]
    return first.device.type in ("cuda", "cpu") and all(
        p.dtype == torch.float32 and p.device == first.device and p.grad is not None and p.grad.dtype == torch.float32
        for p in params
    )


class TrainingOptimizer:
    """Wraps a torch optimizer; `step()` is capturable for SGD (LR per group in a device tensor)."""

    def __init__(self, model: nn.Module, opts: OptimizerOptions, device: torch.device) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        clips = [p for n, p in named if _is_clip(n)]
        others = [p for n, p in named if not _is_clip(n)]
        # clips: their own LR multiplier and no weight decay (decay would pull every clip towards 0)
        groups: list[dict[str, object]] = [{"params": others, "lr_scale": 1.0, "weight_decay": opts.weight_decay}]
        if clips:
            groups.append({"params": clips, "lr_scale": opts.clip_lr_scale, "weight_decay": 0.0})
        self.opts = opts
        if opts.name == "sgd":
            self.torch_optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=opts.lr, momentum=opts.momentum, nesterov=opts.nesterov, weight_decay=opts.weight_decay
            )
        elif opts.name == "adam":
            self.torch_optimizer = torch.optim.Adam(groups, lr=opts.lr, weight_decay=opts.weight_decay)
        else:
            self.torch_optimizer = torch.optim.AdamW(groups, lr=opts.lr, weight_decay=opts.weight_decay)
        self._lr = [torch.tensor(opts.lr, device=device, dtype=torch.float32) for _ in groups]
        self._fused = fused_sgd_enabled()

    @property
    def capturable(self) -> bool:
        return self.opts.name == "sgd"

    def set_lr(self, lr: float) -> None:
        """Set the base LR (the clip group gets its multiple). A device copy: no sync, no re-capture."""
        for group, lr_t in zip(self.torch_optimizer.param_groups, self._lr):
            value = lr * float(group["lr_scale"])
            group["lr"] = value
            lr_t.fill_(value)

    def zero_grad(self) -> None:
        self.torch_optimizer.zero_grad(set_to_none=True)

    def ensure_state(self) -> None:
        """Create the momentum buffers ahead of the first step (zeros: the first step then equals torch's)."""
        if self.opts.name != "sgd" or self.opts.momentum == 0:
            return
        for group in self.torch_optimizer.param_groups:
            for p in group["params"]:
                state = self.torch_optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self) -> None:
        if self.opts.name != "sgd":
            self.torch_optimizer.step()
            return
        momentum, nesterov = self.opts.momentum, self.opts.nesterov
        if momentum and not self.torch_optimizer.state:
            self.ensure_state()
        for group, lr_t in zip(self.torch_optimizer.param_groups, self._lr):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads: list[torch.Tensor] | tuple[torch.Tensor, ...] = [p.grad for p in params if p.grad is not None]
            wd = float(group["weight_decay"])
            if momentum and self._fused and _fusable(params):
                # torch's fused kernel: the same update in one launch instead of five multi-tensor ones (its
                # rounding may differ from the chain below by an ulp)
                bufs = [self.torch_optimizer.state[p]["momentum_buffer"] for p in params]
                torch._fused_sgd_(
                    params, list(grads), bufs, weight_decay=wd, momentum=momentum, lr=lr_t, dampening=0.0,
                    nesterov=nesterov, maximize=False, is_first_step=False,
                )
                continue
            if wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            if momentum:
                bufs = [self.torch_optimizer.state[p]["momentum_buffer"] for p in params]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads)
                grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
            torch._foreach_sub_(params, torch._foreach_mul(grads, lr_t))

    def state_dict(self) -> dict[str, object]:
        return self.torch_optimizer.state_dict()

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.torch_optimizer.load_state_dict(state)
