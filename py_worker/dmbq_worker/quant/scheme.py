"""A quantization scheme as the worker holds it, decoded from QuantScheme and copied into the layers' buffers.

The worker applies what it is sent and decides nothing: bits per channel, tables per bit-width (shared, or per
layer to override), the activation mode. Every error names the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from dmbq_worker.errors import invalid
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant.convert import QuantLayerRef
from dmbq_worker.quant.levels import FP_BITS, FP_CLIP, MAX_BITS, PRUNED_CLIP, padded_row, signed_levels
from dmbq_worker.quant.levels import unsigned_levels, zero_row

ActModeLiteral = Literal["uniform", "table"]
WEIGHT_BITS_ALLOWED = frozenset([*range(0, MAX_BITS + 1), FP_BITS])
ACT_BITS_ALLOWED = frozenset([*range(1, MAX_BITS + 1), FP_BITS])


@dataclass
class LayerQuantConfig:
    weight_bits: np.ndarray  # uint8 [out_channels]: 0 prunes, 1..8, 32 = FP
    act_bits: np.ndarray | None  # uint8 [in_channels]: 1..8, 32 = FP; None: activations stay FP
    act_mode: ActModeLiteral = "uniform"


@dataclass
class SchemeConfig:
    layers: dict[str, LayerQuantConfig] = field(default_factory=dict)
    weight_tables: dict[int, np.ndarray] = field(default_factory=dict)  # bits -> alpha (signed)
    act_tables: dict[int, np.ndarray] = field(default_factory=dict)  # bits -> alpha (unsigned)
    layer_weight_tables: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    layer_act_tables: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- decoding


def _f32(data: bytes, where: str) -> np.ndarray:
    if len(data) % 4:
        raise invalid(where, f"{len(data)} bytes is not a whole number of float32 values")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def _table_field(kind: str, bits: int, layer: str) -> str:
    return f"scheme.{kind}[bits={bits}]" if not layer else f"scheme.{kind}[layer={layer},bits={bits}]"


def _decode_tables(
    tables: Sequence[pb.LevelTable], kind: str
) -> tuple[dict[int, np.ndarray], dict[str, dict[int, np.ndarray]]]:
    shared: dict[int, np.ndarray] = {}
    per_layer: dict[str, dict[int, np.ndarray]] = {}
    for i, t in enumerate(tables):
        bits = int(t.bits)
        if not 1 <= bits <= MAX_BITS:
            raise invalid(f"scheme.{kind}[{i}].bits", f"must be 1..{MAX_BITS}, got {bits}")
        where = _table_field(kind, bits, t.layer)
        alpha = _f32(t.alpha_f32, f"{where}.alpha_f32")
        target = per_layer.setdefault(t.layer, {}) if t.layer else shared
        if bits in target:
            raise invalid(where, "given twice")
        target[bits] = alpha
    return shared, per_layer


def scheme_from_proto(msg: pb.QuantScheme) -> SchemeConfig:
    """Decode the packed arrays of a QuantScheme; raises invalid(field, ...) naming the bad field."""
    layers: dict[str, LayerQuantConfig] = {}
    for i, ls in enumerate(msg.layers):
        if not ls.name:
            raise invalid(f"scheme.layers[{i}].name", "is empty")
        if ls.name in layers:
            raise invalid(f"scheme.layers[{i}].name", f"layer {ls.name!r} is named twice")
        if ls.act_mode in (pb.ACT_MODE_UNSPECIFIED, pb.ACT_MODE_UNIFORM):
            mode: ActModeLiteral = "uniform"
        elif ls.act_mode == pb.ACT_MODE_TABLE:
            mode = "table"
        else:
            raise invalid(f"scheme.layers[{i}].act_mode", f"unknown ActMode {int(ls.act_mode)}")
        weight_bits = np.frombuffer(ls.weight_bits_u8, dtype=np.uint8).copy()
        act_bits = np.frombuffer(ls.act_bits_u8, dtype=np.uint8).copy() if ls.act_bits_u8 else None
        layers[ls.name] = LayerQuantConfig(weight_bits, act_bits, mode)
    wt, lwt = _decode_tables(msg.weight_tables, "weight_tables")
    at, lat = _decode_tables(msg.act_tables, "act_tables")
    scheme = SchemeConfig(layers, wt, at, lwt, lat)
    _validate_values(scheme)
    return scheme


def scheme_to_proto(scheme: SchemeConfig) -> pb.QuantScheme:
    """The inverse of scheme_from_proto (tests, tools, the engine's echo of what it applied)."""
    msg = pb.QuantScheme()
    for name, cfg in scheme.layers.items():
        msg.layers.append(
            pb.LayerScheme(
                name=name,
                weight_bits_u8=np.asarray(cfg.weight_bits, dtype=np.uint8).tobytes(),
                act_bits_u8=b"" if cfg.act_bits is None else np.asarray(cfg.act_bits, dtype=np.uint8).tobytes(),
                act_mode=pb.ACT_MODE_TABLE if cfg.act_mode == "table" else pb.ACT_MODE_UNIFORM,
            )
        )
    for target, shared, per_layer in (
        (msg.weight_tables, scheme.weight_tables, scheme.layer_weight_tables),
        (msg.act_tables, scheme.act_tables, scheme.layer_act_tables),
    ):
        for bits, alpha in sorted(shared.items()):
            target.append(pb.LevelTable(bits=bits, alpha_f32=np.asarray(alpha, dtype="<f4").tobytes()))
        for layer, tables in per_layer.items():
            for bits, alpha in sorted(tables.items()):
                target.append(
                    pb.LevelTable(bits=bits, alpha_f32=np.asarray(alpha, dtype="<f4").tobytes(), layer=layer)
                )
    return msg


# ------------------------------------------------------------------------------------------------ validation


def _validate_table(alpha: np.ndarray, bits: int, where: str, signed: bool) -> None:
    a = np.asarray(alpha)
    if a.ndim != 1 or a.size != bits:
        raise invalid(where, f"a {bits}-bit table needs {bits} alpha values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise invalid(where, "alpha holds a non-finite value")
    if signed:
        if float(np.abs(a).sum()) <= 0:
            raise invalid(where, "all alpha are 0")
    else:
        if np.any(a < 0) or float(a.sum()) <= 0:
            raise invalid(where, "unsigned alpha must be >= 0 with a positive sum")


def _validate_values(scheme: SchemeConfig) -> None:
    """Checks that need no model: bit values, modes, table sizes."""
    for i, (name, cfg) in enumerate(scheme.layers.items()):
        wb = np.asarray(cfg.weight_bits)
        bad = [int(v) for v in np.unique(wb) if int(v) not in WEIGHT_BITS_ALLOWED]
        if bad:
            raise invalid(f"scheme.layers[{i}].weight_bits_u8", f"layer {name!r}: bits {bad} not in 0..8 or 32")
        if cfg.act_bits is not None:
            bad = [int(v) for v in np.unique(np.asarray(cfg.act_bits)) if int(v) not in ACT_BITS_ALLOWED]
            if bad:
                raise invalid(f"scheme.layers[{i}].act_bits_u8", f"layer {name!r}: bits {bad} not in 1..8 or 32")
        if cfg.act_mode not in ("uniform", "table"):
            raise invalid(f"scheme.layers[{i}].act_mode", f"layer {name!r}: unknown mode {cfg.act_mode!r}")
    for kind, shared, per_layer, signed in (
        ("weight_tables", scheme.weight_tables, scheme.layer_weight_tables, True),
        ("act_tables", scheme.act_tables, scheme.layer_act_tables, False),
    ):
        for layer, tables in [("", shared), *per_layer.items()]:
            for bits, alpha in tables.items():
                where = _table_field(kind, bits, layer)
                if not 1 <= int(bits) <= MAX_BITS:
                    raise invalid(where, f"bits must be 1..{MAX_BITS}")
                _validate_table(alpha, int(bits), f"{where}.alpha_f32", signed)


# --------------------------------------------------------------------------------------------------- applying


Row = tuple[np.ndarray, np.ndarray]


def rows_by_width(
    shared: dict[int, np.ndarray], override: dict[int, np.ndarray], signed: bool
) -> dict[int, Row]:
    rows: dict[int, Row] = {}
    for bits in range(1, MAX_BITS + 1):
        alpha = override.get(bits, shared.get(bits))
        if alpha is not None:
            rows[bits] = padded_row(signed_levels(alpha) if signed else unsigned_levels(alpha))
    return rows


def _gather_rows(
    bits: np.ndarray, rows: dict[int, Row], lower: bool
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-channel (levels [C, 256], thresholds [C, 255]) for the width (or width - 1); FP/0 bits get the 0 row.

    The bool says whether every needed row existed (only the look-ahead rows may be missing)."""
    zero = zero_row()
    complete = True
    out_levels = np.empty((bits.size, zero[0].size), dtype=np.float32)
    out_thr = np.empty((bits.size, zero[1].size), dtype=np.float32)
    for b in np.unique(bits):
        width = int(b) - 1 if lower else int(b)
        if width <= 0 or int(b) == FP_BITS:
            row = zero
        elif width in rows:
            row = rows[width]
        else:
            complete = False
            row = zero
        mask = bits == b
        out_levels[mask] = row[0]
        out_thr[mask] = row[1]
    return out_levels, out_thr, complete


def weight_buffers(
    bits: np.ndarray, rows: dict[int, Row]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """What WeightQuantizer.load_rows_ takes for per-channel `bits`: levels, thresholds, clip units (the row's top
    level; +inf for FP, -1 for pruned channels), the rows one bit lower, and whether every lower row existed."""
    lv, th, _ = _gather_rows(bits, rows, lower=False)
    llv, lth, lower_ok = _gather_rows(bits, rows, lower=True)
    top = lv[:, -1].astype(np.float32)  # rows are padded with their top level
    clip = np.where(bits == FP_BITS, FP_CLIP, np.where(bits == 0, PRUNED_CLIP, top)).astype(np.float32)
    return lv, th, clip, llv, lth, lower_ok


def _missing_width(bits: np.ndarray, rows: dict[int, Row]) -> int | None:
    for b in np.unique(bits):
        if 1 <= int(b) <= MAX_BITS and int(b) not in rows:
            return int(b)
    return None


def quantizer_switches(layers: Sequence[QuantLayerRef]) -> tuple[object, ...]:
    """The quantizers' Python-side switches (mode, all-FP, look-ahead available, ...): what a captured step bakes in.

    apply_scheme copies tables and bits into the same buffers, so a captured CUDA graph stays valid across a scheme
    change that leaves these equal (LBA moving bits between channels, epoch after epoch). Read generically from the
    quantizers' plain attributes, so a switch added later is covered without listing it here.
    """
    def plain(module: object) -> tuple[tuple[str, object], ...]:
        return tuple(sorted((k, v) for k, v in vars(module).items()
                            if not k.startswith("_") and isinstance(v, (bool, int, float, str))))

    return tuple((ref.name, plain(ref.module.weight_quant), plain(ref.module.act_quant)) for ref in layers)


def apply_scheme(layers: Sequence[QuantLayerRef], scheme: SchemeConfig) -> int:
    """Validate `scheme` against the model, then copy it into the layers' buffers in place.

    Layers the scheme does not name go back to full precision. A layer that goes from all-FP to quantized gets
    s_c = its statistic now (mean|w_c| or max|w_c|). Returns the number of weights not kept in full precision
    (pruned ones included). Host syncs happen here, between steps, never in the step.
    """
    _validate_values(scheme)
    by_name = {ref.name: ref for ref in layers}
    index = {name: i for i, name in enumerate(scheme.layers)}
    for name, i in index.items():
        if name not in by_name:
            known = ", ".join(list(by_name)[:8])
            raise invalid(f"scheme.layers[{i}].name", f"unknown layer {name!r} (layers: {known}, ...)")
    for kind, per_layer in (("weight_tables", scheme.layer_weight_tables), ("act_tables", scheme.layer_act_tables)):
        for layer in per_layer:
            if layer not in by_name:
                raise invalid(f"scheme.{kind}[layer={layer}]", f"unknown layer {layer!r}")

    plans = []
    for ref in layers:
        cfg = scheme.layers.get(ref.name)
        i = index.get(ref.name, -1)
        m = ref.module
        c_out, c_in = m.weight_quant.out_channels, m.act_quant.in_channels
        if cfg is None:
            wbits = np.full(c_out, FP_BITS, dtype=np.uint8)
            abits = np.full(c_in, FP_BITS, dtype=np.uint8)
            mode: ActModeLiteral = "uniform"
        else:
            wbits = np.asarray(cfg.weight_bits, dtype=np.uint8).reshape(-1)
            if wbits.size != c_out:
                raise invalid(
                    f"scheme.layers[{i}].weight_bits_u8",
                    f"layer {ref.name!r} has {c_out} output channels, got {wbits.size} bit-widths",
                )
            if cfg.act_bits is None:
                abits = np.full(c_in, FP_BITS, dtype=np.uint8)
            else:
                abits = np.asarray(cfg.act_bits, dtype=np.uint8).reshape(-1)
                if abits.size != c_in:
                    raise invalid(
                        f"scheme.layers[{i}].act_bits_u8",
                        f"layer {ref.name!r} has {c_in} input channels, got {abits.size} bit-widths",
                    )
            mode = cfg.act_mode
        w_rows = rows_by_width(scheme.weight_tables, scheme.layer_weight_tables.get(ref.name, {}), True)
        missing = _missing_width(wbits, w_rows)
        if missing is not None:
            raise invalid(
                f"scheme.weight_tables[bits={missing}]",
                f"no {missing}-bit weight table, used by layer {ref.name!r}",
            )
        a_rows = rows_by_width(scheme.act_tables, scheme.layer_act_tables.get(ref.name, {}), False)
        if mode == "table":
            missing = _missing_width(abits, a_rows)
            if missing is not None:
                raise invalid(
                    f"scheme.act_tables[bits={missing}]",
                    f"no {missing}-bit activation table, used by layer {ref.name!r} (act_mode table)",
                )
        plans.append((ref, wbits, w_rows, abits, a_rows, mode))

    quantized = 0
    for ref, wbits, w_rows, abits, a_rows, mode in plans:
        m = ref.module
        wq, aq = m.weight_quant, m.act_quant
        lv, th, clip, llv, lth, lower_ok = weight_buffers(wbits, w_rows)
        was_fp = bool((wq.bits == FP_BITS).all().item())
        wq.load_rows_(wbits, lv, th, clip, llv, lth, lower_available=lower_ok)
        if was_fp and not wq.all_full_precision:
            wq.reset_scale_(m.weight)
        if mode == "table":
            alv, ath, _ = _gather_rows(abits, a_rows, lower=False)
            allv, alth, act_lower_ok = _gather_rows(abits, a_rows, lower=True)
        else:
            zl, zt = zero_row()
            alv = allv = np.broadcast_to(zl, (abits.size, zl.size)).copy()
            ath = alth = np.broadcast_to(zt, (abits.size, zt.size)).copy()
            act_lower_ok = True
        aq.load_rows_(abits, mode, alv, ath, allv, alth, lower_available=act_lower_ok)
        per_channel = m.weight[0].numel()
        quantized += int((wbits != FP_BITS).sum()) * per_channel
    return quantized
