"""Shared builders for the engine tests: requests, the W2/A2 digits scheme, a recording RequestContext."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from dmbq_worker.engine.service import TrainingService
from dmbq_worker.proto import dmbq_pb2 as pb

LAPLACE_2BIT_ALPHA = [1.594, 1.0]  # the 2-bit Laplace table of the brief (levels in units of mean|w|)


@dataclass
class RecordingContext:
    """A RequestContext that records progress and cancels after `cancel_after` cancelled() calls (None: never)."""

    request_id: int = 7
    cancel_after: int | None = None
    progress_events: list[pb.Progress] = field(default_factory=list)
    polls: int = 0

    def progress(self, event: pb.Progress) -> None:
        self.progress_events.append(event)

    def cancelled(self) -> bool:
        self.polls += 1
        return self.cancel_after is not None and self.polls > self.cancel_after


def f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def u8(value: int, n: int) -> bytes:
    return bytes([value]) * n


def w2a2_scheme(layers: list[pb.LayerInfo]) -> pb.QuantScheme:
    """2-bit Laplace weights / 2-bit uniform activations in the body, 8 bits for the first and last layers
    (the first layer's input, the image, stays FP)."""
    scheme = pb.QuantScheme()
    for info in layers:
        edge = info.role in (pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_LAST)
        bits = 8 if edge else 2
        scheme.layers.append(pb.LayerScheme(
            name=info.name,
            weight_bits_u8=u8(bits, info.out_channels),
            act_bits_u8=b"" if info.role == pb.LAYER_ROLE_FIRST else u8(bits, info.in_channels),
            act_mode=pb.ACT_MODE_UNIFORM,
        ))
    scheme.weight_tables.append(pb.LevelTable(bits=2, alpha_f32=f32(LAPLACE_2BIT_ALPHA)))
    # 8-bit signed table: binary-weighted alphas give 256 evenly spaced levels (uniform 8-bit)
    for bits in (1, 7, 8):  # 8 for the edges; 1 and 7: the tables one bit lower, for look-ahead
        alpha = [1.0] if bits == 1 else [2.0 ** (-i) * 1.6 for i in range(bits)]
        scheme.weight_tables.append(pb.LevelTable(bits=bits, alpha_f32=f32(alpha)))
    return scheme


def configure_request(
    dataset: str = "digits", *, model: str = "", epochs: int = 1, train_limit: int = 0, test_limit: int = 0,
    batch_size: int = 0, lr: float = 0.0, seed: int = 0, augment: bool = False, path: str = "",
) -> pb.Configure:
    return pb.Configure(
        model=pb.ModelSpec(name=model),
        dataset=pb.DatasetSpec(name=dataset, path=path, batch_size=batch_size, augment=augment,
                               train_limit=train_limit, test_limit=test_limit),
        optimizer=pb.OptimizerSpec(lr=lr),
        schedule=pb.ScheduleSpec(epochs=epochs),
        seed=seed,
        device="cpu",
    )


def fp_digits_checkpoint(path: str, steps: int) -> tuple[pb.Configured, dict[str, torch.Tensor]]:
    """Train the digits CNN in full precision for `steps` steps and save its checkpoint at `path`; returns what
    Configure answered and the model's weights outside the quantizers (what a quantized run starts from)."""
    ctx = RecordingContext()
    fp = TrainingService()
    cfg = fp.configure(configure_request("digits", train_limit=256, test_limit=64, batch_size=32), ctx)
    fp.run(pb.Run(steps=steps), ctx)
    fp.save_checkpoint(pb.SaveCheckpoint(path=path), ctx)
    assert fp._session is not None
    weights = {k: v.detach().clone() for k, v in fp._session.model.state_dict().items() if "_quant." not in k}
    return cfg, weights


def write_image_folder(root: Path, counts: dict[str, int], size: Callable[[int], tuple[int, int]]) -> None:
    """An ImageFolder tree under `root`: for each split, classes cat and dog with `counts[split]` random RGB images,
    the i-th of height x width `size(i)` (skips the test where Pillow is missing)."""
    image_mod = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for split, n in counts.items():
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = size(i)
                image_mod.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
