"""The reference loader: a .dmbq file back into a plain PyTorch model (nn.Conv2d / nn.Linear with dequantized
weights, and InputQuantizer in front of every layer whose input was quantized), on any device.

The model is rebuilt from the zoo by name. A custom model (`model.factory` in the header) imports and runs the
named Python function, so it is done only when the caller says `allow_factory=True`: a file alone never makes
the loader run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dmbq_worker.engine.models import MODEL_NAMES, build_model
from dmbq_worker.export.act import InputQuantizer, QuantizedInput
from dmbq_worker.export.container import DmbqFile, DmbqFileError, read_dmbq
from dmbq_worker.export.pack import FP_BITS, MAX_PLANE_BITS, packed_size
from dmbq_worker.export.weights import dequantize


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    header: dict[str, Any]
    file: DmbqFile


def _field(header: dict[str, Any], path: str, kind: type | tuple[type, ...], source: str) -> Any:
    node: Any = header
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise DmbqFileError(f"{source}: header.{path} is missing")
        node = node[part]
    if not isinstance(node, kind) or isinstance(node, bool) and kind is int:
        raise DmbqFileError(f"{source}: header.{path} is {node!r}, not a {getattr(kind, '__name__', kind)}")
    return node


def _tensor(f: DmbqFile, name: str, source: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    t = f.tensors.get(name)
    if t is None:
        raise DmbqFileError(f"{source}: tensor {name!r} is missing")
    if shape is not None and tuple(t.shape) != shape:
        raise DmbqFileError(f"{source}: tensor {name!r} has shape {tuple(t.shape)}, expected {shape}")
    return t


def _tables(f: DmbqFile, layer: str, bits: set[int], act: bool, source: str) -> dict[int, np.ndarray]:
    own, shared = ("act_alpha", "act") if act else ("alpha", "weight")
    out: dict[int, np.ndarray] = {}
    for b in sorted(bits):
        name = f"q/{layer}/{own}/{b}"
        if name not in f.tensors:
            name = f"table/{shared}/{b}"
        out[b] = _tensor(f, name, source, (b,))
    return out


def _build(header: dict[str, Any], source: str, allow_factory: bool) -> nn.Module:
    name = _field(header, "model.name", str, source)
    factory = _field(header, "model.factory", str, source)
    classes = _field(header, "model.num_classes", int, source)
    width = _field(header, "model.width", int, source)
    if factory and not allow_factory:
        raise DmbqFileError(
            f"{source}: header.model.factory is {factory!r}: loading it imports and runs that Python function; "
            "pass allow_factory=True (--allow-factory) if you trust it"
        )
    if not factory and name not in MODEL_NAMES:
        raise DmbqFileError(f"{source}: header.model.name {name!r} is not a zoo model ({', '.join(MODEL_NAMES)})")
    return build_model(name, classes, width=width, factory=factory)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def load_dmbq_file(path: str | Path, *, device: str | torch.device = "cpu", allow_factory: bool = False) -> LoadedModel:
    """The model of a .dmbq file in eval mode on `device`, with its header."""
    source = str(path)
    f = read_dmbq(path)
    header = f.header
    model = _build(header, source, allow_factory)
    modules = dict(model.named_modules())
    state = model.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    layers = _field(header, "layers", list, source)
    wrappers: list[tuple[str, InputQuantizer]] = []
    for i, entry in enumerate(layers):
        where = f"header.layers[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise DmbqFileError(f"{source}: {where}.name is missing")
        lname = entry["name"]
        module = modules.get(lname)
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            raise DmbqFileError(f"{source}: {where}.name {lname!r} is no Conv2d/Linear layer of the model")
        c_out, k = int(module.weight.shape[0]), int(module.weight[0].numel())
        if entry.get("weight_shape") != list(module.weight.shape):
            raise DmbqFileError(
                f"{source}: {where}.weight_shape {entry.get('weight_shape')} != the model's {list(module.weight.shape)}"
            )
        if entry.get("weight_quantized"):
            wbits = _tensor(f, f"q/{lname}/weight_bits", source, (c_out,)).astype(np.int64)
            bad = sorted({int(b) for b in wbits if not (0 <= b <= MAX_PLANE_BITS or b == FP_BITS)})
            if bad:
                raise DmbqFileError(f"{source}: q/{lname}/weight_bits holds widths {bad} (0..8 or 32 only)")
            quantized = (wbits >= 1) & (wbits <= MAX_PLANE_BITS)
            n_fp = int((wbits == FP_BITS).sum())
            planes = f.tensors.get(f"q/{lname}/planes", np.zeros(0, np.uint8))
            if planes.size != packed_size(wbits, k):
                raise DmbqFileError(
                    f"{source}: q/{lname}/planes holds {planes.size} bytes, its bit-widths need {packed_size(wbits, k)}"
                )
            scales = _tensor(f, f"q/{lname}/scale", source, (int(quantized.sum()),)) if quantized.any() else None
            fp_rows = _tensor(f, f"q/{lname}/weight_fp", source, (n_fp, k)) if n_fp else None
            tables = _tables(f, lname, {int(b) for b in wbits[quantized]}, False, source)
            w = dequantize(planes, wbits, scales if scales is not None else np.zeros(0, np.float32), fp_rows, tables, k)
            new_state[f"{lname}.weight"] = torch.from_numpy(w).reshape(module.weight.shape)
        if entry.get("act_quantized"):
            c_in = int(entry.get("in_channels", -1))
            abits = _tensor(f, f"q/{lname}/act_bits", source, (c_in,)).astype(np.int64)
            bad = sorted({int(b) for b in abits if not (1 <= b <= MAX_PLANE_BITS or b == FP_BITS)})
            if bad:
                raise DmbqFileError(f"{source}: q/{lname}/act_bits holds widths {bad} (1..8 or 32 only)")
            clip = float(_tensor(f, f"q/{lname}/act_clip", source, (1,))[0])
            if not (np.isfinite(clip) and clip > 0):
                raise DmbqFileError(f"{source}: q/{lname}/act_clip is {clip}, not a positive finite clip")
            mode = entry.get("act_mode", "uniform")
            if mode not in ("uniform", "table"):
                raise DmbqFileError(f"{source}: {where}.act_mode {mode!r} is not 'uniform' or 'table'")
            act_tables = _tables(f, lname, {int(b) for b in abits if b != FP_BITS}, True, source) if mode == "table" else None
            act = InputQuantizer(
                clip, abits, channel_dim_from_end=-3 if isinstance(module, nn.Conv2d) else -1, mode=mode,
                tables=act_tables,
            )
            wrappers.append((lname, act))
    for key in (name[len("fp/"):] for name in f.tensors if name.startswith("fp/")):
        if key not in state:
            raise DmbqFileError(f"{source}: tensor 'fp/{key}' names {key!r}, which the model does not have")
        new_state[key] = torch.from_numpy(_tensor(f, f"fp/{key}", source, tuple(state[key].shape))).to(state[key].dtype)
    missing = [k for k in state if k not in new_state and not k.endswith("num_batches_tracked")]
    if missing:
        raise DmbqFileError(f"{source}: no stored value for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    model.load_state_dict(new_state, strict=False)
    for lname, act in wrappers:
        _set_module(model, lname, QuantizedInput(act, model.get_submodule(lname)))
    model.to(torch.device(device)).eval()
    return LoadedModel(model=model, header=header, file=f)


def load_dmbq(path: str | Path, *, device: str | torch.device = "cpu", allow_factory: bool = False) -> nn.Module:
    """The model of a .dmbq file, in eval mode on `device`."""
    return load_dmbq_file(path, device=device, allow_factory=allow_factory).model
