"""Histograms of a checkpoint's weights per layer, each channel divided by its mean|w| (the unit of DMBQ's tables),
in the format of a run's histograms.json, for `npm run bench:level-fit`. Reads any worker checkpoint, FP or quantized
(a quantized run's own histograms.json divides by the scale EMA instead, which ends at about mean|w|).

    PYTHONPATH=py_worker python bench/weight_histograms.py RUN/checkpoints/epoch-0120.pt [--bins 2048] > hist.json

Layers: every conv/linear weight (2-D or more) except those named by --skip (default: the first conv and the
classifier, which stay at 8 bits outside the budget).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from dmbq_worker.engine.checkpoint import load_checkpoint_file  # noqa: E402
from dmbq_worker.quant.weight_quantizer import channel_statistic  # noqa: E402


def weight_histograms(state: dict[str, torch.Tensor], bins: int, skip: set[str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for key, w in state.items():
        if not key.endswith(".weight") or w.dim() < 2 or not w.is_floating_point():
            continue
        layer = key[: -len(".weight")]
        if layer in skip:
            continue
        rows = w.detach().float().reshape(w.shape[0], -1)
        u = rows / channel_statistic(rows, w.shape[0], "mean_abs").clamp_min(1e-12).unsqueeze(1)
        hi = float(u.abs().max())
        counts = torch.histc(u, bins=bins, min=-hi, max=hi)
        out[layer] = {"lo": -hi, "hi": hi, "counts": [int(c) for c in counts.tolist()]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--bins", type=int, default=2048)
    p.add_argument("--skip", default="conv1,fc", help="comma-separated layer names to leave out")
    a = p.parse_args()
    payload = load_checkpoint_file(a.checkpoint)
    hist = weight_histograms(payload["model"], a.bins, {s for s in a.skip.split(",") if s})
    if not hist:
        raise SystemExit(f"{a.checkpoint}: no conv/linear weights left after --skip {a.skip}")
    json.dump({"epoch": None, "weight": hist}, sys.stdout)


if __name__ == "__main__":
    main()
