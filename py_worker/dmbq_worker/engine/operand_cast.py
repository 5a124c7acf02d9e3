"""Every full-precision conv / linear operand of a bf16 step cast in one launch per direction (the trainer's hook).

Under autocast every conv and linear casts its float32 weight (and bias) to bf16 in the forward, and autograd casts
that operand's gradient back in the backward: two small kernels per tensor, 46 a ResNet-20 FP step, ~0.1 ms of its
~2.1 ms on an H100 (docs/RESULTS.md, "FP step"). `OperandCast.run()`, at the start of the forward, casts them all in
one multi-tensor kernel and lends each module its bf16 copy; their gradients come back to float32 in one kernel too.
The values are autocast's own (round to nearest even each way), so training is bit for bit the same.

Which tensors: the bias of every nn.Conv2d / nn.Linear, and the weight of a plain one or of a quantized layer whose
weights are all full precision (a quantizing layer reads its float32 weight; so does one that updates its scale or
histogram in the forward). `DMBQ_OPERAND_CAST=0` turns it off; the trainer never uses it under torch.compile or in
a job (DDP reads the module's parameters in its forward).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dmbq_worker.switches import switch_on
from dmbq_worker.quant.fused import conv_operand_dtype
from dmbq_worker.quant.layers import QuantConv2d, QuantLinear

OPERAND_CAST_ENV = "DMBQ_OPERAND_CAST"


def operand_cast_enabled() -> bool:
    return switch_on(OPERAND_CAST_ENV)


class _CastAll(torch.autograd.Function):
    """dtype, *tensors -> the tensors in dtype (one kernel); backward: the gradients in the tensors' own dtype and
    layout (one kernel)."""

    @staticmethod
    def forward(ctx: Any, dtype: torch.dtype, *tensors: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        outs = [torch.empty_like(t, dtype=dtype) for t in tensors]
        torch._foreach_copy_(outs, list(tensors))
        ctx.layouts = [(t.size(), t.stride(), t.dtype, t.device) for t in tensors]
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        out: list[Tensor | None] = [None] * len(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        if present:
            dsts = [torch.empty_strided(*ctx.layouts[i][:2], dtype=ctx.layouts[i][2], device=ctx.layouts[i][3])
                    for i in present]
            torch._foreach_copy_(dsts, [grads[i] for i in present])  # type: ignore[misc]
            for i, d in zip(present, dsts):
                out[i] = d
        return (None, *out)


def _reads_weight_as_is(m: nn.Module) -> bool:
    """Whether the module's forward hands its `weight` parameter itself to the conv / linear."""
    if isinstance(m, (QuantConv2d, QuantLinear)):
        wq = m.weight_quant
        return bool(wq.all_full_precision and not wq.update_scale_in_forward and wq.hist is None)
    return type(m) in (nn.Conv2d, nn.Linear)


class OperandCast:
    """`run()` inside the step's autocast, before the forward; `finish()` after it (also when it raised)."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.launches = 0  # forwards that took the one-launch cast (tests read it)
        self._lent: list[tuple[nn.Module, str, nn.Parameter]] = []

    def run(self) -> None:
        targets: list[tuple[nn.Module, str, nn.Parameter]] = []
        for m in self.modules:
            for name in ("weight", "bias"):
                p = m._parameters.get(name)
                if p is None or p.dtype != torch.float32 or (name == "weight" and not _reads_weight_as_is(m)):
                    continue
                targets.append((m, name, p))
        if not targets or torch.compiler.is_compiling():
            return
        dtype = conv_operand_dtype(targets[0][2])
        if dtype is None:  # outside autocast
            return
        casts = _CastAll.apply(dtype, *(p for _, _, p in targets))
        for (module, name, _), t in zip(targets, casts):
            module._parameters[name] = t  # type: ignore[assignment]  # lent for this forward; finish() puts p back
        self._lent = targets
        self.launches += 1

    def finish(self) -> None:
        for module, name, p in self._lent:
            module._parameters[name] = p
        self._lent = []
