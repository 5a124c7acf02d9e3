"""Prints the bytes of an engine checkpoint and what fills them (docs/RESULTS.md, "Checkpoint size").

    cd /work/main && PYTHONPATH=py_worker py_worker/.venv/bin/python -m tests.engine.checkpoint_size

One training step first, so that the optimizer holds its momentum as in a real run's checkpoint.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from dmbq_worker.engine.checkpoint import load_checkpoint_file
from dmbq_worker.engine.service import QUANT_STATE_MARKERS, TrainingService
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import RecordingContext, configure_request, f32, u8

CASES = {"resnet20 W2/A2": ("resnet20", 2, 2), "vgg_small W1/A2": ("vgg_small", 1, 2)}


def body_scheme(layers: list[pb.LayerInfo], weight_bits: int, act_bits: int) -> pb.QuantScheme:
    """`weight_bits`/`act_bits` uniform tables in the body, 8 bits for the first and last layers (image stays FP)."""
    scheme = pb.QuantScheme()
    for info in layers:
        edge = info.role in (pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_LAST)
        wb, ab = (8, 8) if edge else (weight_bits, act_bits)
        scheme.layers.append(pb.LayerScheme(
            name=info.name, weight_bits_u8=u8(wb, info.out_channels),
            act_bits_u8=b"" if info.role == pb.LAYER_ROLE_FIRST else u8(ab, info.in_channels),
            act_mode=pb.ACT_MODE_UNIFORM,
        ))
    for bits in sorted({weight_bits, weight_bits - 1, 7, 8} - {0}):  # the widths and one lower (look-ahead)
        scheme.weight_tables.append(pb.LevelTable(bits=bits, alpha_f32=f32([2.0 ** -i for i in range(bits)])))
    return scheme


def tensor_bytes(value: object) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def measure(model: str, weight_bits: int, act_bits: int, folder: Path) -> dict[str, int]:
    ctx = RecordingContext()
    svc = TrainingService()
    cfg = svc.configure(configure_request("synthetic", model=model, train_limit=64, test_limit=16, batch_size=32), ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=body_scheme(list(cfg.layers), weight_bits, act_bits)), ctx)
    svc.run(pb.Run(steps=1), ctx)
    path = folder / f"{model}.pt"
    saved = svc.save_checkpoint(pb.SaveCheckpoint(path=str(path)), ctx)
    payload = load_checkpoint_file(str(path))
    state = payload["model"]
    quant = {k: v for k, v in state.items() if any(mark in f".{k}" for mark in QUANT_STATE_MARKERS)}
    return {
        "params": int(cfg.total_params), "file": int(saved.bytes), "model_state": tensor_bytes(state),
        "quantizer_state": tensor_bytes(quant), "optimizer": tensor_bytes(payload["optimizer"]),
    }


def main() -> None:
    torch.set_num_threads(2)
    print("| model | params | checkpoint file | model state | of which quantizers | optimizer state |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for label, (model, wb, ab) in CASES.items():
            m = measure(model, wb, ab, Path(tmp))
            mb = lambda n: f"{n / 1e6:.2f} MB"  # noqa: E731
            print(f"| {label} | {m['params'] / 1e6:.3f} M | {mb(m['file'])} ({m['file']:,} B) | {mb(m['model_state'])} "
                  f"| {mb(m['quantizer_state'])} | {mb(m['optimizer'])} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
