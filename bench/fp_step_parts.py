"""Where the FP step's time goes: ResNet-20 FP s/epoch through the Trainer's CUDA-graph loop, with one part of the
step changed at a time, and the eager step's full kernel list.

    python bench/fp_step_parts.py --data $CIFAR10_DIR [--epochs 3] [--warmup 1] [--variants base,no-operand-cast,...]

Variants (each a fresh model and trainer, same seed; the changes are made here, on the side of the bench, to
measure a part before building it into the engine):
- base: the Trainer as the service runs it (bf16 autocast, CUDA graph, the epoch augmented by one gather at its
  start, the FP operands cast in one launch per direction, torch's fused SGD).
- no-operand-cast: DMBQ_OPERAND_CAST=0 (autocast casts each weight and its gradient).
- no-metrics: the step without its on-device metric updates (loss sum, correct count, first non-finite step).
- no-benchmark: cudnn.benchmark off (the service does not set it; this bench and engine_gpu.py turn it on).

The first version of this script (commit 10bd448, before the epoch-wide augmentation and the fused SGD were built
into the engine) also had the variants fused-sgd, epoch-aug and bf16-weights (conv and linear weights held as bf16
parameters: no casts at all; timing only), done here on the side of the bench.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_gpu import time_epochs  # noqa: E402

from dmbq_worker.engine.data import DataOptions, load_data  # noqa: E402
from dmbq_worker.engine.models import build_model  # noqa: E402
from dmbq_worker.engine.optim import OptimizerOptions, TrainingOptimizer  # noqa: E402
from dmbq_worker.engine.schedule import LrSchedule  # noqa: E402
from dmbq_worker.engine.trainer import LoopOptions, Trainer  # noqa: E402

VARIANTS = ("base", "no-operand-cast", "no-metrics", "no-benchmark")


class NoMetricsTrainer(Trainer):
    def _step_body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opts.bf16, cache_enabled=False):
            if self._operand_cast is not None:
                self._operand_cast.run()
            out = self._forward(x)
            if self._operand_cast is not None:
                self._operand_cast.finish()
        F.cross_entropy(out.float(), y).backward()
        self.optimizer.step()


def build(variant: str, args: argparse.Namespace, device: torch.device) -> Trainer:
    torch.backends.cudnn.benchmark = variant != "no-benchmark"
    os.environ["DMBQ_OPERAND_CAST"] = "0" if variant == "no-operand-cast" else "1"
    torch.manual_seed(0)
    data = load_data(DataOptions(name="cifar10", path=args.data, augment=True, train_limit=0, test_limit=0,
                                 num_workers=0, image_size=0, seed=0, device=device, channels_last=True))
    model: nn.Module = build_model("resnet20", 10).to(device).to(memory_format=torch.channels_last)
    total = args.warmup + args.epochs
    opt = TrainingOptimizer(model, OptimizerOptions("sgd", 0.1, 0.9, 1e-4, False, 1.0), device)
    cls = NoMetricsTrainer if variant == "no-metrics" else Trainer
    return cls(model, data, opt, LrSchedule("cosine", total, 0.1), LoopOptions(128, 512, 0, True, True, False), device)


def time_variant(variant: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float, str]:
    trainer = build(variant, args, device)
    seconds, acc, _ = time_epochs(trainer, args.warmup, args.epochs, cuda=True)
    return statistics.median(seconds), acc, trainer.step_mode


def profile_base(args: argparse.Namespace, device: torch.device, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    trainer = build("base", args, device)
    trainer._use_graph = False
    trainer.run(steps, progress_every=10**9, on_progress=lambda p: None, cancelled=lambda: False)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        trainer.run(steps, progress_every=10**9, on_progress=lambda p: None, cancelled=lambda: False)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    events.sort(key=lambda e: -e.self_device_time_total)
    total = sum(e.self_device_time_total for e in events) / steps
    launches = sum(e.count for e in events) / steps
    print(f"\n### eager FP step: {total / 1000:.3f} ms GPU kernel time, {launches:.0f} kernels a step")
    print("| kernel | per step | µs a step | µs each |")
    print("| --- | --- | --- | --- |")
    for e in events:
        print(f"| {e.key[:110]} | {e.count / steps:.1f} | {e.self_device_time_total / steps:.1f} | "
              f"{e.self_device_time_total / max(e.count, 1):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--profile", type=int, default=20, help="steps of the eager FP profile (0: none)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("fp_step_parts.py needs a CUDA device")
    device = torch.device("cuda")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        sys.exit(f"--variants: unknown {bad}; known: {', '.join(VARIANTS)}")
    rows = []
    for v in variants:
        median, acc, mode = time_variant(v, args, device)
        rows.append((v, median, acc, mode))
        print(f"{v}: {median:.3f} s/epoch (train acc {acc:.3f}, {mode})", flush=True)
    if args.profile:
        profile_base(args, device, args.profile)
    # the variants' table last: gpu_checks.sh keeps the table lines of a step's last 30 lines
    base = rows[0][1]
    print(f"\ndevice: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; ResNet-20 FP, bf16, batch 128; "
          f"median of {args.epochs} epochs after {args.warmup} warm-up")
    print(f"| variant | s/epoch | vs {rows[0][0]} | train acc (last epoch) | step |")
    print("| --- | --- | --- | --- | --- |")
    for v, median, acc, mode in rows:
        print(f"| {v} | {median:.3f} | {median - base:+.3f} | {acc:.3f} | {mode} |")


if __name__ == "__main__":
    main()
