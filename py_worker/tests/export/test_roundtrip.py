"""Export -> load: the file gives back the quantizer's weights bit for bit, the trained model's outputs, its
accuracy; ONNX (onnxruntime) predicts the same classes; the table activation mode is reproduced too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dmbq_worker.engine.checkpoint import load_checkpoint_file, tensor_to_bytes
from dmbq_worker.export import export_run, load_dmbq, load_dmbq_file, read_dmbq
from dmbq_worker.export.act import InputQuantizer, QuantizedInput
from dmbq_worker.export.evaluate import model_predictions
from dmbq_worker.export.onnx_export import export_onnx, onnx_operators, onnx_predictions
from dmbq_worker.export.untrained import export_untrained
from dmbq_worker.export.writer import build_quantized
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant import ActQuantizer, apply_scheme, scheme_from_proto
from dmbq_worker.quant.levels import FP_BITS
from tests.export.digits_run import DigitsRun

ROOT = Path(__file__).resolve().parents[3]


def _trained_model(run: DigitsRun) -> nn.Module:
    payload = load_checkpoint_file(str(run.dir / run.checkpoint))
    model, refs, _ = build_quantized("digits_cnn", "", 10, 1, [1, 8, 8], payload["model"])
    apply_scheme(refs, scheme_from_proto(pb.QuantScheme.FromString(tensor_to_bytes(payload["scheme"]))))
    model.load_state_dict(payload["model"])
    return model.eval()


def _assert_weights_are_the_quantizers(run: DigitsRun, file: Path) -> None:
    trained = _trained_model(run)
    loaded = load_dmbq(file)
    loaded_modules = dict(loaded.named_modules())
    checked = 0
    for name, m in trained.named_modules():
        if not hasattr(m, "weight_quant"):
            continue
        with torch.no_grad():
            expected = m.weight_quant(m.weight)
        target = loaded_modules[name]
        layer = target.layer if isinstance(target, QuantizedInput) else target
        assert torch.equal(layer.weight, expected), name
        bits = m.weight_quant.bits
        assert torch.all(layer.weight.reshape(bits.shape[0], -1)[bits == 0] == 0)  # pruned channels
        checked += 1
    assert checked == 4


def _assert_outputs_and_accuracy_are_the_runs(run: DigitsRun, file: Path) -> None:
    loaded = load_dmbq_file(file)
    preds = model_predictions(loaded.model, loaded.header["dataset"], device=torch.device("cpu"))
    with torch.no_grad():
        logits = torch.cat([loaded.model(x) for x, _ in _test_batches(loaded.header)])
    assert torch.equal(logits, run.logits)
    assert abs(preds.top1 - run.top1) <= 0.1
    assert loaded.header["run"]["top1"] == run.top1
    assert preds.top1 > 50  # a trained model, not a constant one


def test_weights_are_the_quantizers_bit_for_bit(digits_run: DigitsRun, digits_file: Path) -> None:
    _assert_weights_are_the_quantizers(digits_run, digits_file)


def test_outputs_and_accuracy_equal_the_trained_models(digits_run: DigitsRun, digits_file: Path) -> None:
    _assert_outputs_and_accuracy_are_the_runs(digits_run, digits_file)


def test_a_run_with_max_abs_scales_exports_them_and_reloads_to_its_accuracy(digits_run_max_abs: DigitsRun,
                                                                             tmp_path: Path) -> None:
    """The min-max baseline (QuantOptions.weight_scale MAX_ABS, min-max tables): the file stores the trained scales
    (EMAs of max|w_c|) as they are, and gives back the quantizer's weights, the run's outputs and its accuracy."""
    out = tmp_path / "max-abs.dmbq"
    assert export_run(digits_run_max_abs.dir, out).max_weight_error == 0.0
    _assert_weights_are_the_quantizers(digits_run_max_abs, out)
    _assert_outputs_and_accuracy_are_the_runs(digits_run_max_abs, out)
    assert read_dmbq(out).header["run"]["levels"] == "uniformMax"
    state = load_checkpoint_file(str(digits_run_max_abs.dir / digits_run_max_abs.checkpoint))["model"]
    f = read_dmbq(out)
    for layer in f.header["layers"]:
        name = layer["name"]
        bits = f.tensors[f"q/{name}/weight_bits"]
        stored = (bits >= 1) & (bits <= 8)
        scale = state[f"{name}.weight_quant.scale"].numpy()[stored]
        np.testing.assert_array_equal(f.tensors[f"q/{name}/scale"], scale, err_msg=name)
        w = state[f"{name}.weight"].reshape(bits.size, -1).abs().numpy()[stored]
        # each channel's largest weight (a fast EMA of it, at the end of the schedule), well above its mean
        np.testing.assert_allclose(scale, w.max(axis=1), rtol=0.02, err_msg=name)
        assert np.all(scale > 1.2 * w.mean(axis=1)), name


def _test_batches(header: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from dmbq_worker.export.evaluate import test_batches

    return list(test_batches(header["dataset"], device=torch.device("cpu")))


def test_file_is_small_and_its_parts_add_up(digits_file: Path) -> None:
    f = read_dmbq(digits_file)
    sizes = f.header["sizes"]
    assert f.file_bytes == digits_file.stat().st_size
    assert f.file_bytes == f.header_bytes + sizes["bit_planes"] + sizes["tables_and_scales"] + sizes["full_precision"]
    assert f.file_bytes * 8 < sizes["fp32_model"]  # mostly 2 bits a weight against 32
    # every stored plane: one bit per weight per plane of each 1..8-bit channel, and no more
    for layer in f.header["layers"]:
        wbits = f.tensors[f"q/{layer['name']}/weight_bits"]
        planes = int(sum(int(b) for b in wbits if 1 <= b <= 8))
        assert f.tensors[f"q/{layer['name']}/planes"].size == (planes * layer["weights_per_channel"] + 7) // 8
        assert int((wbits == FP_BITS).sum()) == (f.tensors[f"q/{layer['name']}/weight_fp"].shape[0]
                                                  if f"q/{layer['name']}/weight_fp" in f.tensors else 0)


def test_onnx_predicts_what_the_reference_loader_predicts(digits_file: Path, tmp_path: Path) -> None:
    loaded = load_dmbq_file(digits_file)
    onnx_path = tmp_path / "digits.onnx"
    export_onnx(loaded.model, loaded.header["model"]["input_shape"], onnx_path)
    ops = set(onnx_operators(onnx_path))
    assert {"Conv", "Gemm", "Round"} <= ops
    assert all(op in _STANDARD_OPS for op in ops), ops
    ref = model_predictions(loaded.model, loaded.header["dataset"], device=torch.device("cpu"))
    got = onnx_predictions(onnx_path, loaded.header["dataset"])
    assert got.labels.size == 360
    assert float((ref.predicted == got.predicted).mean()) >= 0.99


_STANDARD_OPS = {"Cast", "Clip", "Constant", "Conv", "Div", "Flatten", "Gemm", "Max", "MaxPool", "Min", "Mul", "Relu",
                 "Round", "Where", "Add", "Reshape", "Pad", "GlobalAveragePool", "Slice", "Less", "ReduceSum",
                 "GatherElements", "Expand", "Unsqueeze", "Squeeze", "Transpose", "Shape", "Gather", "Concat"}


def test_table_mode_activations_match_the_training_quantizer() -> None:
    rng = np.random.default_rng(3)
    bits = np.array([1, 2, 3, 32, 2, 3], dtype=np.uint8)
    tables = {1: np.array([1.0], np.float32), 2: np.array([0.7, 0.3], np.float32),
              3: np.array([0.5, 0.3, 0.2], np.float32)}
    trained = ActQuantizer(6, channel_dim_from_end=-3)
    from dmbq_worker.quant.levels import padded_row, unsigned_levels, zero_row

    rows = [padded_row(unsigned_levels(tables[int(b)])) if b != FP_BITS else zero_row() for b in bits]
    lv = np.stack([r[0] for r in rows])
    th = np.stack([r[1] for r in rows])
    trained.load_rows_(bits, "table", lv, th, lv, th, lower_available=True)
    trained.set_clip_(2.5)
    trained.eval()
    ours = InputQuantizer(2.5, bits, channel_dim_from_end=-3, mode="table", tables=tables)
    x = torch.from_numpy(rng.normal(1.0, 1.5, (4, 6, 5, 5)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(ours(x), trained(x))


def test_untrained_resnet20_w2_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "r20.dmbq"
    summary = export_untrained("resnet20", out, weight_bits=2, act_bits=2, num_classes=10, input_shape=[3, 32, 32],
                               dataset="cifar10")
    assert summary.max_weight_error == 0.0
    assert summary.file_bytes == out.stat().st_size
    model = load_dmbq(out)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)


def test_cli_prints_the_summary(digits_run: DigitsRun, tmp_path: Path) -> None:
    out = tmp_path / "cli.dmbq"
    proc = subprocess.run(
        [sys.executable, "-m", "dmbq_worker.export", str(digits_run.dir), "--out", str(out), "--evaluate"],
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["fileBytes"] == out.stat().st_size
    assert abs(summary["reloadedTop1"] - digits_run.top1) <= 0.1
    assert summary["maxWeightError"] == 0.0


def test_cli_refuses_a_missing_run(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dmbq_worker.export", str(tmp_path / "nope"), "--out",
                           str(tmp_path / "x.dmbq")], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)
    assert proc.returncode == 1
    assert "config.json" in proc.stderr and "does not exist" in proc.stderr


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT / "py_worker")}


def test_export_run_twice_gives_the_same_bytes(digits_run: DigitsRun, digits_file: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.dmbq"
    export_run(digits_run.dir, again)
    assert again.read_bytes() == digits_file.read_bytes()


def test_table_mode_exports_to_onnx_with_the_same_outputs(tmp_path: Path) -> None:
    import onnxruntime as ort

    bits = np.array([2, 3, 32], dtype=np.uint8)
    tables = {2: np.array([0.7, 0.3], np.float32), 3: np.array([0.5, 0.3, 0.2], np.float32)}
    torch.manual_seed(0)
    model = nn.Sequential(QuantizedInput(InputQuantizer(1.7, bits, channel_dim_from_end=-3, mode="table",
                                                        tables=tables), nn.Conv2d(3, 4, 3)),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5)).eval()
    path = tmp_path / "table.onnx"
    export_onnx(model, [3, 6, 6], path)
    x = torch.randn(7, 3, 6, 6) + 0.5
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-5)
