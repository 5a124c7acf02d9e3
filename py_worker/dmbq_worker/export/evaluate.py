"""Run a reloaded model over the test split of the dataset named in its header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from dmbq_worker.engine.data import DataOptions, load_data
from dmbq_worker.engine.precision import exact_fp32


@dataclass(frozen=True)
class Predictions:
    predicted: np.ndarray  # int64 [N], argmax of the logits
    labels: np.ndarray  # int64 [N]

    @property
    def top1(self) -> float:
        """Percent correct."""
        return 100.0 * float((self.predicted == self.labels).mean()) if self.labels.size else float("nan")


def test_batches(
    dataset: dict[str, Any], *, device: torch.device, batch_size: int = 512, data_path: str | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The test split as the worker evaluates it (same normalisation, same order)."""
    data = load_data(DataOptions(
        name=str(dataset.get("name", "")), path=data_path if data_path is not None else str(dataset.get("path", "")),
        augment=False, train_limit=0, test_limit=int(dataset.get("test_limit", 0) or 0), num_workers=0,
        # the training worker's layout on CUDA (channels_last), so that the same cuDNN kernels score it
        image_size=0, seed=0, device=device, channels_last=device.type == "cuda",
    ))
    return data.eval_batches("test", batch_size)


@torch.no_grad()
def predict(
    run: Callable[[torch.Tensor], torch.Tensor], batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
) -> Predictions:
    preds: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    with exact_fp32():  # as the training worker scores a run (engine/precision.py)
        for x, y in batches:
            preds.append(run(x).argmax(dim=1).cpu().numpy())
            labels.append(y.cpu().numpy())
    if not preds:
        return Predictions(np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Predictions(np.concatenate(preds).astype(np.int64), np.concatenate(labels).astype(np.int64))


def model_predictions(model: nn.Module, dataset: dict[str, Any], *, device: torch.device,
                      data_path: str | None = None) -> Predictions:
    model.eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return predict(lambda x: model(x).float(), test_batches(dataset, device=device, data_path=data_path))
