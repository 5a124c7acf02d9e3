"""Write a trained (or any scheme-applied) quantized model as one .dmbq file.

Tensor names (all uint8 or float32):
  q/<layer>/planes        packed bit-planes of the layer's 1..8-bit channels (pack.py)
  q/<layer>/weight_bits   [C_out] 0..8, 32
  q/<layer>/scale         [channels of 1..8 bits] max(s_c, 1e-8): the EMA of mean|w| or max|w| (weight_scale)
  q/<layer>/weight_fp     [channels of 32 bits, K] their float32 weights (only if any)
  q/<layer>/act_bits      [C_in] 1..8, 32 (only when the input is quantized), q/<layer>/act_clip [1]
  q/<layer>/alpha/<b>, q/<layer>/act_alpha/<b>   a layer's own tables (empirical levels), when it has them
  table/weight/<b>, table/act/<b>                the shared alpha tables of the widths in use
  fp/<state key>          every other float tensor of the state dict (BN, biases, full-precision layers)
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dmbq_worker.engine.checkpoint import load_checkpoint_file, tensor_to_bytes
from dmbq_worker.engine.models import build_model
from dmbq_worker.export.container import FORMAT_NAME, FORMAT_VERSION, write_dmbq
from dmbq_worker.export.pack import FP_BITS, MAX_PLANE_BITS, pack_planes
from dmbq_worker.export.weights import EPS, dequantize, level_codes
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant import QuantLayerRef, SchemeConfig, apply_scheme, convert_model, scheme_from_proto

QUANT_STATE_MARKERS = (".weight_quant.", ".act_quant.")
INPUT_SHAPES = {"digits": [1, 8, 8], "cifar10": [3, 32, 32], "synthetic": [3, 32, 32], "imagefolder": [3, 224, 224]}

Category = str  # "bit_planes" | "tables_and_scales" | "full_precision"


@dataclass
class LayerSize:
    name: str
    bit_planes: int
    tables_and_scales: int
    full_precision: int


@dataclass
class ExportSummary:
    """What an export wrote; `to_json()` is the line `python -m dmbq_worker.export` prints."""

    out: str
    file_bytes: int
    header_bytes: int  # safetensors index + our JSON header
    bit_plane_bytes: int
    tables_and_scales_bytes: int  # alpha tables, scales, clips, bit-widths
    full_precision_bytes: int  # BN, biases, full-precision layers and channels
    fp32_bytes: int  # every parameter and buffer of the model at float32 (the FP32 model)
    top1: float | None  # the run's accuracy at the end of training (percent)
    layers: int
    max_weight_error: float  # |dequantized from the file - the quantizer's output|, over all weights (0: exact)
    layer_sizes: list[LayerSize] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = {
            "out": self.out, "fileBytes": self.file_bytes, "sizeMb": self.file_bytes / 1e6,
            "fpSizeMb": self.fp32_bytes / 1e6, "fp32Bytes": self.fp32_bytes, "headerBytes": self.header_bytes,
            "bitPlaneBytes": self.bit_plane_bytes, "tablesAndScalesBytes": self.tables_and_scales_bytes,
            "fullPrecisionBytes": self.full_precision_bytes, "top1": self.top1, "layers": self.layers,
            "maxWeightError": self.max_weight_error,
        }
        return d


def _table(scheme: SchemeConfig, layer: str, bits: int, act: bool) -> tuple[np.ndarray, bool]:
    """(alpha float32, is it the layer's own table)."""
    own = (scheme.layer_act_tables if act else scheme.layer_weight_tables).get(layer, {})
    if bits in own:
        return np.asarray(own[bits], dtype=np.float32), True
    shared = scheme.act_tables if act else scheme.weight_tables
    if bits not in shared:
        kind = "act_tables" if act else "weight_tables"
        raise ValueError(f"scheme.{kind}[bits={bits}]: no {bits}-bit table for layer {layer!r}")
    return np.asarray(shared[bits], dtype=np.float32), False


def _fp32_bytes(model: nn.Module) -> int:
    """4 bytes per element of every parameter and buffer the plain (unconverted) model has."""
    n = 0
    for key, t in model.state_dict().items():
        if not any(mark in f".{key}" for mark in QUANT_STATE_MARKERS):
            n += t.numel()
    return 4 * n


def export_model(
    model: nn.Module,
    refs: list[QuantLayerRef],
    scheme: SchemeConfig,
    out_path: str | Path,
    *,
    model_spec: dict[str, Any],
    dataset: dict[str, Any],
    run: dict[str, Any],
) -> ExportSummary:
    """Write `model` (converted, scheme applied, weights loaded) to `out_path`."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tensors: dict[str, np.ndarray] = {}
    category: dict[str, Category] = {}
    owner: dict[str, str] = {}

    def put(name: str, value: np.ndarray, cat: Category, layer: str = "") -> None:
        tensors[name] = value
        category[name] = cat
        if layer:
            owner[name] = layer

    shared_weight_bits: set[int] = set()
    shared_act_bits: set[int] = set()
    layers: list[dict[str, Any]] = []
    stored_weights: set[str] = set()
    max_err = 0.0
    for ref in refs:
        m = ref.module
        wq, aq = m.weight_quant, m.act_quant
        wbits = wq.bits.detach().cpu().numpy().astype(np.uint8)
        abits = aq.bits.detach().cpu().numpy().astype(np.uint8)
        w_quant = bool((wbits != FP_BITS).any())
        a_quant = bool((abits != FP_BITS).any())
        if not (w_quant or a_quant):
            continue
        name = ref.name
        weight = m.weight.detach().cpu()
        c_out, k = weight.shape[0], int(weight[0].numel())
        entry: dict[str, Any] = {
            "name": name, "kind": "conv2d" if isinstance(m, nn.Conv2d) else "linear", "role": ref.role,
            "weight_shape": list(weight.shape), "out_channels": c_out, "in_channels": int(aq.in_channels),
            "weights_per_channel": k, "weight_quantized": w_quant, "act_quantized": a_quant,
            "weight_bits_histogram": dict(sorted(Counter(str(int(b)) for b in wbits).items())),
        }
        if w_quant:
            tables: dict[int, np.ndarray] = {}
            for b in sorted({int(b) for b in wbits if 1 <= int(b) <= MAX_PLANE_BITS}):
                alpha, own = _table(scheme, name, b, act=False)
                tables[b] = alpha
                if own:
                    put(f"q/{name}/alpha/{b}", alpha, "tables_and_scales", name)
                else:
                    shared_weight_bits.add(b)
            codes = level_codes(weight, wq.scale, wq.thresholds, wbits, tables)
            planes = pack_planes(codes, wbits)
            quantized = (wbits >= 1) & (wbits <= MAX_PLANE_BITS)
            scales = wq.scale.detach().float().cpu().clamp_min(EPS).numpy()[quantized].astype(np.float32)
            fp_rows = weight.reshape(c_out, -1).float().numpy()[wbits == FP_BITS].astype(np.float32)
            put(f"q/{name}/weight_bits", wbits, "tables_and_scales", name)
            if planes.size:
                put(f"q/{name}/planes", planes, "bit_planes", name)
            if scales.size:
                put(f"q/{name}/scale", scales, "tables_and_scales", name)
            if fp_rows.size:
                put(f"q/{name}/weight_fp", fp_rows, "full_precision", name)
            # The file must give back exactly what the quantizer gives: check it here, not at load time.
            deq = dequantize(planes, wbits, scales, fp_rows if fp_rows.size else None, tables, k)
            was_training = wq.training
            wq.eval()
            with torch.no_grad():
                expected = wq(m.weight).detach().reshape(c_out, -1).float().cpu().numpy()
            wq.train(was_training)
            max_err = max(max_err, float(np.abs(deq - expected).max(initial=0.0)))
            stored_weights.add(f"{name}.weight")
        if a_quant:
            mode = "table" if aq.mode == "table" else "uniform"
            entry["act_mode"] = mode
            entry["act_bits_histogram"] = dict(sorted(Counter(str(int(b)) for b in abits).items()))
            put(f"q/{name}/act_bits", abits, "tables_and_scales", name)
            put(f"q/{name}/act_clip", aq.clip.detach().float().cpu().numpy().reshape(1), "tables_and_scales", name)
            if mode == "table":
                for b in sorted({int(b) for b in abits if int(b) != FP_BITS}):
                    alpha, own = _table(scheme, name, b, act=True)
                    if own:
                        put(f"q/{name}/act_alpha/{b}", alpha, "tables_and_scales", name)
                    else:
                        shared_act_bits.add(b)
        layers.append(entry)
    for b in sorted(shared_weight_bits):
        put(f"table/weight/{b}", np.asarray(scheme.weight_tables[b], dtype=np.float32), "tables_and_scales")
    for b in sorted(shared_act_bits):
        put(f"table/act/{b}", np.asarray(scheme.act_tables[b], dtype=np.float32), "tables_and_scales")

    for key, t in state.items():
        if any(mark in f".{key}" for mark in QUANT_STATE_MARKERS) or key in stored_weights:
            continue
        if not t.is_floating_point():
            continue  # BN's num_batches_tracked: a training counter, not needed to run the model
        put(f"fp/{key}", t.float().numpy(), "full_precision", key.rsplit(".", 1)[0])

    sizes = Counter[str]()
    per_layer: dict[str, Counter[str]] = {}
    for tname, arr in tensors.items():
        sizes[category[tname]] += arr.nbytes
        if tname.startswith("q/"):
            per_layer.setdefault(owner[tname], Counter())[category[tname]] += arr.nbytes
    for entry in layers:
        entry["bytes"] = dict(per_layer.get(entry["name"], Counter()))
    fp32 = _fp32_bytes(model)
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": model_spec,
        "dataset": dataset,
        "run": run,
        "scheme": {"weight_bits_used": sorted({int(b) for e in layers for b in e["weight_bits_histogram"]})},
        "layers": layers,
        "sizes": {
            "bit_planes": sizes["bit_planes"], "tables_and_scales": sizes["tables_and_scales"],
            "full_precision": sizes["full_precision"], "fp32_model": fp32,
        },
        "planes_layout": "channel-major, plane i = b_i of alpha_i, packbits little-endian",
    }
    file_bytes = write_dmbq(out_path, header, tensors)
    data_bytes = sum(a.nbytes for a in tensors.values())
    return ExportSummary(
        out=str(Path(out_path).resolve()), file_bytes=file_bytes, header_bytes=file_bytes - data_bytes,
        bit_plane_bytes=sizes["bit_planes"], tables_and_scales_bytes=sizes["tables_and_scales"],
        full_precision_bytes=sizes["full_precision"], fp32_bytes=fp32, top1=run.get("top1"), layers=len(layers),
        max_weight_error=max_err,
        layer_sizes=[
            LayerSize(e["name"], e["bytes"].get("bit_planes", 0), e["bytes"].get("tables_and_scales", 0),
                      e["bytes"].get("full_precision", 0))
            for e in layers
        ],
    )


# ---------------------------------------------------------------- from a run folder


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: {path} is not valid JSON ({exc})") from exc


def _run_top1(run_dir: Path, epoch: int) -> float | None:
    """The test accuracy (percent) at the checkpoint's epoch: result.json when it is that epoch, else metrics."""
    result_path = run_dir / "result.json"
    if result_path.is_file():
        result = _read_json(result_path, "result.json")
        if int(result.get("epochs", -1)) == epoch and isinstance(result.get("top1"), (int, float)):
            return float(result["top1"])
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if int(rec.get("epoch", -1)) == epoch:
                    return float(rec["testAccuracy"]) * 100.0
    return None


def build_quantized(
    model_name: str, factory: str, num_classes: int, width: int, input_shape: list[int], state: dict[str, Any] | None
) -> tuple[nn.Module, list[QuantLayerRef], int]:
    """A converted model; when `state` is given, its classes are read from the last layer's weight in it."""
    def make(classes: int) -> tuple[nn.Module, list[QuantLayerRef]]:
        model = build_model(model_name, classes, width=width, factory=factory)
        refs = convert_model(model, example_input=torch.zeros(1, *input_shape))
        return model, refs

    model, refs = make(num_classes)
    if state is not None:
        last = next((r for r in refs if r.role == "last"), None)
        key = f"{last.name}.weight" if last else ""
        if last is not None and key in state and int(state[key].shape[0]) != num_classes:
            num_classes = int(state[key].shape[0])
            model, refs = make(num_classes)
    return model, refs, num_classes


def export_run(run_dir: str | Path, out_path: str | Path) -> ExportSummary:
    """Export the latest checkpoint of a run folder (config.json, checkpoints/latest.json) to `out_path`."""
    rd = Path(run_dir)
    config = _read_json(rd / "config.json", "run config")
    index = _read_json(rd / "checkpoints" / "latest.json", "checkpoint index")
    ckpt = rd / str(index["file"])
    payload = load_checkpoint_file(str(ckpt))
    model_cfg = config.get("model")
    if isinstance(model_cfg, str):
        model_name, factory = model_cfg, ""
    elif isinstance(model_cfg, dict) and isinstance(model_cfg.get("factory"), str):
        model_name, factory = str(model_cfg.get("name") or "custom"), model_cfg["factory"]
    else:
        raise ValueError(f"run config {rd / 'config.json'}: field model is neither a zoo name nor {{factory}}")
    ds = config.get("dataset") or {}
    ds_name = str(ds.get("name", ""))
    if ds_name not in INPUT_SHAPES:
        raise ValueError(f"run config: dataset.name {ds_name!r} is not one of {', '.join(INPUT_SHAPES)}")
    input_shape = INPUT_SHAPES[ds_name]
    state = payload["model"]
    model, refs, num_classes = build_quantized(
        model_name, factory, 1000 if ds_name == "imagefolder" else 10, 1, input_shape, state
    )
    scheme_msg = pb.QuantScheme.FromString(tensor_to_bytes(payload["scheme"]))  # our proto: parsing runs no code
    scheme = scheme_from_proto(scheme_msg)
    if scheme.layers:
        apply_scheme(refs, scheme)
    model.load_state_dict(state, strict=True)
    epoch = int(index.get("epoch", 0))
    run = {
        "name": config.get("name", rd.name), "checkpoint": str(index["file"]), "epoch": epoch,
        "top1": _run_top1(rd, epoch), "precision": config.get("precision", "fp32"),
        "levels": (config.get("quant") or {}).get("levels"),
    }
    if isinstance(index.get("fpTop1"), (int, float)):
        run["fp_top1"] = float(index["fpTop1"])
    dataset = {"name": ds_name, "path": str(ds.get("path", "")), "test_limit": int(ds.get("testLimit", 0) or 0)}
    spec = {"name": model_name, "factory": factory, "num_classes": num_classes, "width": 1, "input_shape": input_shape}
    return export_model(model, refs, scheme, out_path, model_spec=spec, dataset=dataset, run=run)


def summary_dict(summary: ExportSummary) -> dict[str, Any]:
    d = summary.to_json()
    d["layerSizes"] = [asdict(s) for s in summary.layer_sizes]
    return d
