"""A real (small) run folder: the digits CNN trained a few epochs through the service, as the experiment writes it.

Used by the pytest fixtures and by the TypeScript export tests (`python -m tests.export.digits_run DIR`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dmbq_worker.engine.service import TrainingService
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.server.context import NullContext

LAPLACE = {1: [1.0], 2: [1.5936, 1.0], 3: [1.896, 1.4348, 0.8303]}
BINARY = {bits: [1.6 * 2.0 ** (-i) for i in range(bits)] for bits in (7, 8)}
# min-max ("uniformMax") tables, in units of max|w|: uniform levels, the top one 1
MIN_MAX = {bits: [2.0 ** (bits - 1 - i) / (2.0**bits - 1) for i in range(bits)] for bits in (1, 2, 3, 7, 8)}


def f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def mixed_scheme(layers: list[pb.LayerInfo], tables: dict[int, list[float]] | None = None) -> pb.QuantScheme:
    """8-bit first/last layers; body at 2 bits with a few 3-bit, 1-bit, pruned (0) and full-precision (32)
    channels, so that every storage path of the format is exercised; 2-bit uniform activations. `tables`: the weight
    tables of 1, 2, 3, 7 and 8 bits (default: Laplace ones, binary-weighted at 7 and 8)."""
    scheme = pb.QuantScheme()
    for info in layers:
        edge = info.role in (pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_LAST)
        wbits = np.full(info.out_channels, 8 if edge else 2, np.uint8)
        abits = np.full(info.in_channels, 8 if edge else 2, np.uint8)
        if not edge:
            wbits[:3] = [3, 0, 32]
            wbits[3] = 1
            abits[:2] = [3, 32]
        scheme.layers.append(pb.LayerScheme(
            name=info.name, weight_bits_u8=wbits.tobytes(),
            act_bits_u8=b"" if info.role == pb.LAYER_ROLE_FIRST else abits.tobytes(),
            act_mode=pb.ACT_MODE_UNIFORM,
        ))
    for bits, alpha in (tables or {**LAPLACE, **BINARY}).items():
        scheme.weight_tables.append(pb.LevelTable(bits=bits, alpha_f32=f32(alpha)))
    return scheme


@dataclass(frozen=True)
class DigitsRun:
    dir: Path
    top1: float  # percent, the service's evaluation at the end of training
    logits: torch.Tensor  # the trained model's test-set logits (eval mode)
    checkpoint: str  # relative to dir


def make_digits_run(run_dir: Path, epochs: int = 3, *, max_abs: bool = False) -> DigitsRun:
    """Train, evaluate and checkpoint; write config.json, checkpoints/latest.json and result.json. `max_abs`: the
    min-max baseline (levels "uniformMax"): scales that follow max|w| and the min-max tables; their EMA decays fast
    (0.5), so at the end of the schedule (LR near 0) each scale is its channel's max|w| to a few parts in 1e3."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    svc, ctx = TrainingService(), NullContext()
    req = pb.Configure(
        model=pb.ModelSpec(name="digits_cnn"), dataset=pb.DatasetSpec(name="digits", augment=True),
        optimizer=pb.OptimizerSpec(lr=0.05), schedule=pb.ScheduleSpec(epochs=epochs), seed=0, device="cpu",
        quant=pb.QuantOptions(weight_scale=pb.WEIGHT_SCALE_MAX_ABS, scale_ema_decay=0.5) if max_abs else None,
    )
    cfg = svc.configure(req, ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=mixed_scheme(list(cfg.layers), MIN_MAX if max_abs else None)), ctx)
    for _ in range(epochs):
        svc.run(pb.Run(), ctx)
    ev = svc.evaluate(pb.Evaluate(split="test"), ctx)
    ckpt = f"checkpoints/epoch-{epochs:04d}.pt"
    svc.save_checkpoint(pb.SaveCheckpoint(path=str(run_dir / ckpt)), ctx)
    session = svc._session  # noqa: SLF001 - the tests compare the trained model's outputs with the file's
    assert session is not None
    session.model.eval()
    with torch.no_grad():
        logits = torch.cat([session.model(x) for x, _ in session.data.eval_batches("test", 512)])
    config = {"name": run_dir.name, "model": "digits_cnn", "dataset": {"name": "digits"}, "epochs": epochs,
              "quant": {"weightBits": 2, "actBits": 2, "levels": "uniformMax" if max_abs else "laplace"}}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "checkpoints" / "latest.json").write_text(json.dumps(
        {"epoch": epochs, "file": ckpt, "policy": None, "levels": None, "savedAt": "2026-01-01T00:00:00Z"}))
    result = {"name": run_dir.name, "model": "digits_cnn", "dataset": "digits", "top1": ev.top1 * 100,
              "epochs": epochs}
    (run_dir / "result.json").write_text(json.dumps(result))
    return DigitsRun(dir=run_dir, top1=ev.top1 * 100, logits=logits, checkpoint=ckpt)


if __name__ == "__main__":
    torch.set_num_threads(2)
    made = make_digits_run(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    print(json.dumps({"dir": str(made.dir), "top1": made.top1}))
