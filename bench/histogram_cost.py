"""What a histogram epoch costs: ResNet-20 W2/A2 (mixed 1-4 bits) steps through TrainingService with histograms and
sensitivities, histograms only, weight histograms only (what empirical-level epochs ask for), and neither.

    PYTHONPATH=py_worker python bench/histogram_cost.py [--device cpu|cuda] [--steps 4] [--repeats 4]

Synthetic CIFAR-sized data (no download); the median over repeats after the first. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from engine_gpu import configure_request, scheme_for  # noqa: E402

from dmbq_worker.engine.service import TrainingService  # noqa: E402
from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402
from dmbq_worker.server.context import NullContext  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--bins", type=int, default=64)
    args = p.parse_args()
    cfg_args = argparse.Namespace(dataset="synthetic", data="", train_limit=128 * args.steps * 2, device=args.device,
                                  precision="fp32" if args.device == "cpu" else "bf16")
    svc, ctx = TrainingService(), NullContext()
    cfg = svc.configure(configure_request(cfg_args, 10, False), ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=scheme_for(list(cfg.layers), "mixed", "mixed", seed=1)), ctx)
    rows = {
        "histograms + sensitivities": pb.Run(steps=args.steps, sensitivity=True, histogram_bins=args.bins),
        "histograms only": pb.Run(steps=args.steps, histogram_bins=args.bins),
        "weight histograms only": pb.Run(steps=args.steps, histogram_bins=args.bins, weight_histograms_only=True),
        "neither": pb.Run(steps=args.steps),
    }
    times: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.repeats):
        for name, run in rows.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            svc.run(run, ctx)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["neither"][1:])
    print(f"ResNet-20 W2/A2 mixed 1-4 bits, batch 128, {args.steps} steps, {args.bins} bins, device {args.device}; "
          f"median of {args.repeats - 1} repeats after the first")
    print("| request | s | vs neither |")
    print("| --- | --- | --- |")
    for name, v in times.items():
        m = statistics.median(v[1:])
        print(f"| {name} | {m:.3f} | {m / base:.2f}x |")


if __name__ == "__main__":
    main()
