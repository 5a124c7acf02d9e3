from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant import (
    LayerQuantConfig,
    SchemeConfig,
    apply_scheme,
    convert_model,
    scheme_from_proto,
    scheme_to_proto,
)

TABLES = {1: np.array([1.0], np.float32), 2: np.array([1.1, 0.45], np.float32)}


def small_model() -> tuple[nn.Module, list]:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
    return model, convert_model(model)


def f32(values: list[float]) -> bytes:
    return np.array(values, "<f4").tobytes()


def proto_scheme() -> pb.QuantScheme:
    return pb.QuantScheme(
        layers=[
            pb.LayerScheme(name="0", weight_bits_u8=bytes([2, 1, 0, 32]), act_bits_u8=bytes([2, 2, 2])),
            pb.LayerScheme(name="3", weight_bits_u8=bytes([2] * 5), act_mode=pb.ACT_MODE_TABLE,
                           act_bits_u8=bytes([1] * 16)),
        ],
        weight_tables=[pb.LevelTable(bits=1, alpha_f32=f32([1.0])), pb.LevelTable(bits=2, alpha_f32=f32([1.1, 0.45]))],
        act_tables=[pb.LevelTable(bits=1, alpha_f32=f32([1.0])),
                    pb.LevelTable(bits=2, alpha_f32=f32([0.7, 0.3]), layer="3")],
    )


def field_of(exc: pytest.ExceptionInfo[WorkerError]) -> str:
    assert exc.value.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert exc.value.message.startswith(exc.value.field)
    return exc.value.field


def test_scheme_from_proto_decodes_packed_arrays() -> None:
    s = scheme_from_proto(proto_scheme())
    np.testing.assert_array_equal(s.layers["0"].weight_bits, [2, 1, 0, 32])
    assert s.layers["0"].act_mode == "uniform" and s.layers["3"].act_mode == "table"
    assert s.layers["3"].act_bits is not None and s.layers["3"].act_bits.shape == (16,)
    np.testing.assert_array_equal(s.weight_tables[2], np.array([1.1, 0.45], np.float32))
    np.testing.assert_array_equal(s.layer_act_tables["3"][2], np.array([0.7, 0.3], np.float32))
    model, layers = small_model()
    assert apply_scheme(layers, s) == 3 * 27 + 5 * 16  # channels not in FP times their weights


@settings(max_examples=30, deadline=None)
@given(
    wbits=st.lists(st.sampled_from([0, 1, 2, 5, 8, 32]), min_size=1, max_size=9),
    abits=st.one_of(st.none(), st.lists(st.sampled_from([1, 3, 8, 32]), min_size=1, max_size=9)),
    table=st.lists(st.floats(0.125, 4.0, width=32), min_size=1, max_size=8),
    mode=st.sampled_from(["uniform", "table"]),
)
def test_scheme_proto_round_trip(wbits: list[int], abits: list[int] | None, table: list[float], mode: str) -> None:
    alpha = np.array(sorted(table, reverse=True), np.float32)
    scheme = SchemeConfig(
        layers={"a.b": LayerQuantConfig(np.array(wbits, np.uint8), None if abits is None else np.array(abits, np.uint8), mode)},  # type: ignore[arg-type]
        weight_tables={alpha.size: alpha},
        act_tables={alpha.size: alpha},
        layer_weight_tables={"a.b": {alpha.size: alpha[::-1].copy()}},
    )
    back = scheme_from_proto(pb.QuantScheme.FromString(scheme_to_proto(scheme).SerializeToString()))
    assert list(back.layers) == ["a.b"]
    np.testing.assert_array_equal(back.layers["a.b"].weight_bits, wbits)
    if abits is None:
        assert back.layers["a.b"].act_bits is None
    else:
        np.testing.assert_array_equal(back.layers["a.b"].act_bits, abits)
    assert back.layers["a.b"].act_mode == mode
    np.testing.assert_array_equal(back.weight_tables[alpha.size], alpha)
    np.testing.assert_array_equal(back.act_tables[alpha.size], alpha)
    np.testing.assert_array_equal(back.layer_weight_tables["a.b"][alpha.size], alpha[::-1])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.layers[1].__setattr__("weight_bits_u8", bytes([2, 9, 2, 2, 2])), "scheme.layers[1].weight_bits_u8"),
        (lambda m: m.layers[0].__setattr__("act_bits_u8", bytes([0, 2, 2])), "scheme.layers[0].act_bits_u8"),
        (lambda m: m.layers[0].__setattr__("name", ""), "scheme.layers[0].name"),
        (lambda m: m.layers[1].__setattr__("name", "0"), "scheme.layers[1].name"),
        (lambda m: m.layers[0].__setattr__("act_mode", 7), "scheme.layers[0].act_mode"),
        (lambda m: m.weight_tables[1].__setattr__("alpha_f32", f32([1.0, 0.5, 0.2])), "scheme.weight_tables[bits=2].alpha_f32"),
        (lambda m: m.weight_tables[1].__setattr__("alpha_f32", b"abc"), "scheme.weight_tables[bits=2].alpha_f32"),
        (lambda m: m.weight_tables[0].__setattr__("bits", 9), "scheme.weight_tables[0].bits"),
        (lambda m: m.weight_tables.append(pb.LevelTable(bits=1, alpha_f32=f32([2.0]))), "scheme.weight_tables[bits=1]"),
        (lambda m: m.act_tables[1].__setattr__("alpha_f32", f32([0.7, -0.3])), "scheme.act_tables[layer=3,bits=2].alpha_f32"),
        (lambda m: m.act_tables[0].__setattr__("alpha_f32", f32([float("nan")])), "scheme.act_tables[bits=1].alpha_f32"),
    ],
)
def test_scheme_from_proto_errors_name_the_field(mutate: object, field: str) -> None:
    msg = proto_scheme()
    mutate(msg)  # type: ignore[operator]
    with pytest.raises(WorkerError) as exc:
        scheme_from_proto(msg)
    assert field_of(exc) == field


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.layers[0].__setattr__("name", "nope"), "scheme.layers[0].name"),
        (lambda m: m.layers[0].__setattr__("weight_bits_u8", bytes([2, 2, 2])), "scheme.layers[0].weight_bits_u8"),
        (lambda m: m.layers[0].__setattr__("weight_bits_u8", b""), "scheme.layers[0].weight_bits_u8"),
        (lambda m: m.layers[1].__setattr__("act_bits_u8", bytes([1] * 15)), "scheme.layers[1].act_bits_u8"),
        (lambda m: m.layers[0].__setattr__("weight_bits_u8", bytes([3, 2, 2, 2])), "scheme.weight_tables[bits=3]"),
        (lambda m: m.layers[1].__setattr__("act_bits_u8", bytes([3] * 16)), "scheme.act_tables[bits=3]"),
        (lambda m: m.act_tables.append(pb.LevelTable(bits=1, alpha_f32=f32([1.0]), layer="x")), "scheme.act_tables[layer=x]"),
    ],
)
def test_apply_scheme_errors_name_the_field(mutate: object, field: str) -> None:
    model, layers = small_model()
    msg = proto_scheme()
    mutate(msg)  # type: ignore[operator]
    with pytest.raises(WorkerError) as exc:
        apply_scheme(layers, scheme_from_proto(msg))
    assert field_of(exc) == field
    # nothing was applied: the model is still in full precision
    assert all(bool((ref.module.weight_quant.bits == 32).all()) for ref in layers)


def test_apply_scheme_updates_buffers_in_place_and_unnamed_layers_go_to_fp() -> None:
    model, layers = small_model()
    buffers_before = {n: b.data_ptr() for n, b in model.named_buffers()}
    params_before = {n: p.data_ptr() for n, p in model.named_parameters()}
    apply_scheme(layers, scheme_from_proto(proto_scheme()))
    x = torch.randn(2, 3, 4, 4)
    y_quant = model(x)
    assert {n: b.data_ptr() for n, b in model.named_buffers()} == buffers_before
    only_first = SchemeConfig(layers={"0": LayerQuantConfig(np.full(4, 1, np.uint8), None)}, weight_tables=dict(TABLES))
    apply_scheme(layers, only_first)
    assert {n: b.data_ptr() for n, b in model.named_buffers()} == buffers_before
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == params_before
    assert bool((layers[1].module.weight_quant.bits == 32).all())
    assert layers[1].module.act_quant.all_full_precision
    assert layers[0].module.act_quant.all_full_precision
    assert not torch.equal(model(x), y_quant)
    assert apply_scheme(layers, SchemeConfig()) == 0
    ref = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 5))
    ref.load_state_dict({k: v for k, v in model.state_dict().items() if "quant" not in k})
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)


def test_per_layer_tables_override_the_shared_ones() -> None:
    model, layers = small_model()
    scheme = SchemeConfig(
        layers={"0": LayerQuantConfig(np.full(4, 1, np.uint8), None), "3": LayerQuantConfig(np.full(5, 1, np.uint8), None)},
        weight_tables={1: np.array([1.0], np.float32)},
        layer_weight_tables={"3": {1: np.array([2.0], np.float32)}},
    )
    apply_scheme(layers, scheme)
    conv, lin = layers[0].module, layers[1].module
    u_conv = conv.weight_quant(conv.weight) / conv.weight_quant.scale.reshape(-1, 1, 1, 1)
    u_lin = lin.weight_quant(lin.weight) / lin.weight_quant.scale.reshape(-1, 1)
    torch.testing.assert_close(u_conv.abs(), torch.ones_like(u_conv))
    torch.testing.assert_close(u_lin.abs(), 2 * torch.ones_like(u_lin))
