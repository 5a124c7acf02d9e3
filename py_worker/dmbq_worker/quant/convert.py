"""Turn any nn.Module into a quantizable one: every nn.Conv2d / nn.Linear is replaced in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch
from torch import nn

from dmbq_worker.quant.act_quantizer import DEFAULT_ACT_CLIP
from dmbq_worker.quant.layers import QuantConv2d, QuantLinear
from dmbq_worker.quant.weight_quantizer import DEFAULT_SCALE_EMA_DECAY, DEFAULT_SCALE_STATISTIC, ScaleStatistic

LayerRoleName = Literal["first", "body", "last"]


@dataclass(frozen=True)
class QuantLayerRef:
    name: str
    module: QuantConv2d | QuantLinear
    role: LayerRoleName


def _quant_twin(
    old: nn.Module, *, scale_ema_decay: float, scale_statistic: ScaleStatistic, act_clip_init: float
) -> QuantConv2d | QuantLinear:
    """A Quant* layer sharing `old`'s Parameter objects (weights, bias kept as they are)."""
    w = old.weight
    new: QuantConv2d | QuantLinear
    if isinstance(old, nn.Conv2d):
        new = QuantConv2d(
            old.in_channels,
            old.out_channels,
            old.kernel_size,
            stride=old.stride,
            padding=old.padding,
            dilation=old.dilation,
            groups=old.groups,
            bias=old.bias is not None,
            padding_mode=old.padding_mode,
            device=w.device,
            dtype=w.dtype,
            scale_ema_decay=scale_ema_decay,
            scale_statistic=scale_statistic,
            act_clip_init=act_clip_init,
        )
    elif isinstance(old, nn.Linear):
        new = QuantLinear(
            old.in_features,
            old.out_features,
            bias=old.bias is not None,
            device=w.device,
            dtype=w.dtype,
            scale_ema_decay=scale_ema_decay,
            scale_statistic=scale_statistic,
            act_clip_init=act_clip_init,
        )
    else:  # pragma: no cover - guarded by the caller
        raise TypeError(type(old).__name__)
    new.weight = old.weight  # type: ignore[assignment]
    new.bias = old.bias  # type: ignore[assignment]
    new.weight_quant.reset_scale_(new.weight)
    new.train(old.training)
    return new


def _is_plain_layer(m: nn.Module) -> bool:
    # Exact types only: subclasses may override forward (or, like MultiheadAttention's out_proj, never call it),
    # so replacing them would silently change or not quantize anything.
    return type(m) in (nn.Conv2d, nn.Linear)


def _forward_order(model: nn.Module, layers: Sequence[QuantLayerRef], example_input: Any) -> list[QuantLayerRef]:
    """Layers in the order a forward pass first calls them; never-called layers keep registration order, last."""
    seen: dict[int, int] = {}
    handles = []
    for ref in layers:
        def hook(module: nn.Module, _inp: Any, key: int = id(ref.module)) -> None:
            seen.setdefault(key, len(seen))
        handles.append(ref.module.register_forward_pre_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(example_input, tuple):
                model(*example_input)
            else:
                model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    big = len(layers)
    keyed = [(seen.get(id(ref.module), big + i), ref) for i, ref in enumerate(layers)]
    return [ref for _, ref in sorted(keyed, key=lambda kv: kv[0])]


def _with_roles(layers: Sequence[QuantLayerRef]) -> list[QuantLayerRef]:
    if not layers:
        return []
    last_linear = max((i for i, r in enumerate(layers) if isinstance(r.module, QuantLinear)), default=-1)
    out = []
    for i, ref in enumerate(layers):
        role: LayerRoleName = "first" if i == 0 else ("last" if i == last_linear else "body")
        out.append(QuantLayerRef(ref.name, ref.module, role))
    return out


def convert_model(
    model: nn.Module,
    *,
    example_input: Any = None,
    scale_ema_decay: float = DEFAULT_SCALE_EMA_DECAY,
    scale_statistic: ScaleStatistic = DEFAULT_SCALE_STATISTIC,
    act_clip_init: float = DEFAULT_ACT_CLIP,
) -> list[QuantLayerRef]:
    """Replace every nn.Conv2d / nn.Linear of `model` in place by QuantConv2d / QuantLinear (full precision).

    Parameters are shared, not copied, so outputs are unchanged until a scheme is applied. Layers come back in
    forward order when `example_input` (a tensor or a tuple of arguments) is given, else in registration order;
    role "first" is the first layer, "last" the last nn.Linear. A module registered twice is converted once
    (its first name). Layers that are already Quant* are listed too, so converting twice is harmless.
    `scale_ema_decay` and `scale_statistic` (QuantOptions) configure the new layers' weight scales.
    """
    if _is_plain_layer(model):
        raise ValueError("convert_model: the model itself is a bare Conv2d/Linear; wrap it in a container first")
    twins: dict[int, QuantConv2d | QuantLinear] = {}
    refs: list[QuantLayerRef] = []
    for name, module in model.named_modules():  # named_modules dedups shared modules: first name wins
        if isinstance(module, (QuantConv2d, QuantLinear)):
            refs.append(QuantLayerRef(name, module, "body"))
        elif _is_plain_layer(module):
            twin = _quant_twin(module, scale_ema_decay=scale_ema_decay, scale_statistic=scale_statistic,
                               act_clip_init=act_clip_init)
            twins[id(module)] = twin
            refs.append(QuantLayerRef(name, twin, "body"))
    if twins:
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                replacement = twins.get(id(child))
                if replacement is not None:
                    setattr(parent, child_name, replacement)
    if example_input is not None:
        refs = _forward_order(model, refs, example_input)
    return _with_roles(refs)
