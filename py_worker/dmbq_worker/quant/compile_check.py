"""Compiled vs eager training steps of a quantized model, from identical states (bench and tests share this).

Two copies of one converted model train side by side with plain SGD: one through torch.compile, one eager. Before
every step the compiled copy is reset to the eager copy's state (parameters and buffers copied in place, which
recompiles nothing), so each step compares the two paths from bit-identical weights, scales and clips. Without
that, ulp-level differences of a compiled step would move weights by an ulp, and a quantized net amplifies an ulp
at its lattice ties (sums that are exactly 0 in real arithmetic, equal values in a max-pool window) into visible
gradient differences after a few steps: noise, not a compile bug.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.scale_updates import ScaleUpdater
from dmbq_worker.quant.sensitivity import SensitivityCollector

ScaleUpdateMode = Literal["after_step", "in_forward"]


@dataclass
class CompileComparison:
    """Worst relative difference max|eager - compiled| / max|eager| over the steps, per compared quantity."""

    output: float = 0.0
    grads: dict[str, float] = field(default_factory=dict)
    sensitivities: dict[str, float] = field(default_factory=dict)
    scales: float = 0.0
    steps: int = 0
    # Steps whose output or gradients differ by more than the tolerance. A systematic difference (a compile bug,
    # the in-forward EMA) shows at every step; a float near-tie (a ReLU input at 1e-7, two equal values in a
    # max-pool window) at some steps only.
    steps_differing: int = 0

    def worst(self) -> float:
        return max([self.output, self.scales, *self.grads.values(), *self.sensitivities.values()])


def relative_difference(eager: Tensor | np.ndarray, compiled: Tensor | np.ndarray) -> float:
    a = torch.as_tensor(eager).double()
    b = torch.as_tensor(compiled).double()
    scale = a.abs().max().item() if a.numel() else 0.0
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    return 0.0 if diff == 0.0 else diff / max(scale, 1e-30)


def twin_of(model: nn.Module, layers: Sequence[QuantLayerRef]) -> tuple[nn.Module, list[QuantLayerRef]]:
    """A deep copy of `model` and the references to its own quantized layers."""
    twin = copy.deepcopy(model)
    modules = dict(twin.named_modules())
    return twin, [QuantLayerRef(ref.name, modules[ref.name], ref.role) for ref in layers]  # type: ignore[arg-type]


class _TrainingCopy:
    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[QuantLayerRef],
        forward: Callable[[Tensor], Tensor],
        *,
        scale_update: ScaleUpdateMode,
        sensitivity: bool,
        lookahead: bool,
    ) -> None:
        self.model, self.layers, self.forward = model, list(layers), forward
        self.updater = ScaleUpdater(layers) if scale_update == "after_step" else None
        # Compiled probes get signed per-step sums, folded after each backward as the trainer does when compiling;
        # the eager side keeps the Function path (|.| in its backward), the reference the compiled one must match.
        compiled = forward is not model
        self.collector = (
            SensitivityCollector(layers, lookahead=lookahead, fold_each_step=compiled) if sensitivity else None
        )
        if self.collector is not None:
            self.collector.enable()

    def step(self, x: Tensor, y: Tensor, lr: float) -> tuple[Tensor, dict[str, Tensor]]:
        params = dict(self.model.named_parameters())
        for p in params.values():
            p.grad = None
        out = self.forward(x)
        F.cross_entropy(out.float(), y).backward()
        if self.collector is not None:
            self.collector.fold_()  # a no-op on the eager side
        grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        with torch.no_grad():
            for p in params.values():
                if p.grad is not None:
                    p.sub_(lr * p.grad)
        if self.updater is not None:
            self.updater.step()
        return out.detach(), grads

    def sensitivities(self) -> dict[str, np.ndarray]:
        if self.collector is None:
            return {}
        out: dict[str, np.ndarray] = {}
        for name, s in self.collector.read().items():
            for key in ("weight_sensitivity", "act_sensitivity", "weight_sensitivity_lower", "act_sensitivity_lower"):
                value = getattr(s, key)
                if value is not None:
                    out[f"{name}.{key}"] = value
        return out

    def scales(self) -> Tensor:
        return torch.cat([ref.module.weight_quant.scale.detach().flatten() for ref in self.layers])


def compare_compiled_training(
    model: nn.Module,
    layers: Sequence[QuantLayerRef],
    x: Tensor,
    y: Tensor,
    *,
    steps: int = 3,
    lr: float = 0.05,
    backend: str = "inductor",
    sensitivity: bool = False,
    lookahead: bool = False,
    scale_update: ScaleUpdateMode = "after_step",
    tolerance: float = 1e-5,
) -> CompileComparison:
    """Train `model` (converted, scheme applied) `steps` SGD steps eager and compiled; report the worst differences.

    `scale_update="in_forward"` keeps the scale EMA inside the forward (how the quantizers behave standalone),
    which is what made the compiled gradients differ; "after_step" is the trainer's mode.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    model.train()
    twin, twin_layers = twin_of(model, layers)
    eager = _TrainingCopy(model, layers, model, scale_update=scale_update, sensitivity=sensitivity,
                          lookahead=lookahead)
    compiled = _TrainingCopy(twin, twin_layers, torch.compile(twin, backend=backend), scale_update=scale_update,
                             sensitivity=sensitivity, lookahead=lookahead)
    result = CompileComparison()
    try:
        for _ in range(steps):
            twin.load_state_dict(model.state_dict())  # in place: same tensors, nothing to recompile
            out_e, grads_e = eager.step(x, y, lr)
            out_c, grads_c = compiled.step(x, y, lr)
            output = relative_difference(out_e, out_c)
            result.output = max(result.output, output)
            missing = sorted(set(grads_e) ^ set(grads_c))
            if missing:
                raise AssertionError(f"gradients present on one side only: {missing}")
            step_worst = output
            for name, g in grads_e.items():
                diff = relative_difference(g, grads_c[name])
                result.grads[name] = max(result.grads.get(name, 0.0), diff)
                step_worst = max(step_worst, diff)
            result.steps += 1
            result.steps_differing += int(step_worst > tolerance)
            result.scales = max(result.scales, relative_difference(eager.scales(), compiled.scales()))
        sens_e, sens_c = eager.sensitivities(), compiled.sensitivities()
        for name, s in sens_e.items():
            result.sensitivities[name] = relative_difference(s, sens_c[name])
    finally:
        for side in (eager, compiled):
            if side.collector is not None:
                side.collector.disable()
            if side.updater is not None:
                side.updater.release()
    return result
