"""Where the FP step's time goes: ResNet-20 FP s/epoch through the Trainer's CUDA-graph loop, with one part of the
step changed at a time, and the eager step's full kernel list.

    python bench/fp_step_parts.py --data $CIFAR10_DIR [--epochs 3] [--warmup 1] [--variants base,fused-sgd,...]

Variants (each a fresh model and trainer, same seed; the changes are made here, on the side of the bench, to
measure a part before building it into the engine):
- base: the Trainer as the service runs it (bf16 autocast, CUDA graph, augmentation per step outside the graph).
- fused-sgd: the optimizer step as torch's one fused SGD kernel per group instead of the foreach chain.
- no-metrics: the step without its on-device metric updates (loss sum, correct count, first non-finite step).
- epoch-aug: one gather augments the whole epoch at its start; a step copies its slice.
- bf16-weights: conv and linear weights held as bf16 parameters (no autocast casts; timing only), fused SGD.
- no-benchmark: cudnn.benchmark off (the service does not set it; this bench and engine_gpu.py turn it on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from dmbq_worker.engine.data import Batch, DataOptions, TensorDataSource, load_data  # noqa: E402
from dmbq_worker.engine.models import build_model  # noqa: E402
from dmbq_worker.engine.optim import OptimizerOptions, TrainingOptimizer  # noqa: E402
from dmbq_worker.engine.schedule import LrSchedule  # noqa: E402
from dmbq_worker.engine.trainer import LoopOptions, Trainer  # noqa: E402

VARIANTS = ("base", "fused-sgd", "no-metrics", "epoch-aug", "bf16-weights", "no-benchmark", "all")


class FusedSgd(TrainingOptimizer):
    """The same update as TrainingOptimizer.step (dampening 0), one `_fused_sgd_` launch per group and dtype."""

    @torch.no_grad()
    def step(self) -> None:
        self.ensure_state()
        for group, lr_t in zip(self.torch_optimizer.param_groups, self._lr):
            by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_dtype.setdefault(p.dtype, []).append(p)
            for params in by_dtype.values():
                torch._fused_sgd_(
                    params, [p.grad for p in params],  # type: ignore[misc]
                    [self.torch_optimizer.state[p]["momentum_buffer"] for p in params],
                    weight_decay=float(group["weight_decay"]), momentum=self.opts.momentum, lr=lr_t, dampening=0.0,
                    nesterov=self.opts.nesterov, maximize=False, is_first_step=False,
                )


class NoMetricsTrainer(Trainer):
    def _step_body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opts.bf16, cache_enabled=False):
            out = self._forward(x)
        F.cross_entropy(out.float(), y).backward()
        self.optimizer.step()


class EpochAugmented:
    """Wraps a TensorDataSource: one gather augments the epoch's samples, a batch is a slice of it."""

    def __init__(self, data: TensorDataSource) -> None:
        self.inner = data
        self.num_classes, self.train_size, self.test_size = data.num_classes, data.train_size, data.test_size

    def train_batches(self, order: torch.Tensor, start_step: int, batch_size: int) -> Iterator[Batch]:
        order = order.to(self.inner.device)
        steps = self.train_size // batch_size
        idx = order[: steps * batch_size]
        x = self.inner.augmented(idx)
        y = self.inner._train_y[idx]
        for s in range(start_step, steps):
            yield x[s * batch_size : (s + 1) * batch_size], y[s * batch_size : (s + 1) * batch_size]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        return self.inner.eval_batches(split, batch_size)

    def aug_state(self) -> torch.Tensor | None:
        return self.inner.aug_state()

    def set_aug_state(self, state: torch.Tensor) -> None:
        self.inner.set_aug_state(state)


def build(variant: str, args: argparse.Namespace, device: torch.device) -> Trainer:
    parts = set(VARIANTS[1:-1]) - {"no-benchmark"} if variant == "all" else {variant}
    torch.backends.cudnn.benchmark = "no-benchmark" not in parts
    torch.manual_seed(0)
    data = load_data(DataOptions(name="cifar10", path=args.data, augment=True, train_limit=0, test_limit=0,
                                 num_workers=0, image_size=0, seed=0, device=device, channels_last=True))
    assert isinstance(data, TensorDataSource)
    model: nn.Module = build_model("resnet20", 10).to(device).to(memory_format=torch.channels_last)
    if "bf16-weights" in parts:
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.data = m.weight.data.to(torch.bfloat16)
                if m.bias is not None:
                    m.bias.data = m.bias.data.to(torch.bfloat16)
    total = args.warmup + args.epochs
    opts = OptimizerOptions("sgd", 0.1, 0.9, 1e-4, False, 1.0)
    fused = parts & {"fused-sgd", "bf16-weights"}
    opt = (FusedSgd if fused else TrainingOptimizer)(model, opts, device)
    cls = NoMetricsTrainer if "no-metrics" in parts else Trainer
    source = EpochAugmented(data) if "epoch-aug" in parts else data
    return cls(model, source, opt, LrSchedule("cosine", total, 0.1),  # type: ignore[arg-type]
               LoopOptions(128, 512, 0, True, True, False), device)


def time_variant(variant: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float, str]:
    trainer = build(variant, args, device)
    seconds: list[float] = []
    acc = 0.0
    for epoch in range(args.warmup + args.epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        stats = trainer.run(0, progress_every=20, on_progress=lambda p: None, cancelled=lambda: False)
        dt = time.perf_counter() - t0
        if epoch >= args.warmup:
            seconds.append(dt)
        acc = stats.accuracy
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
    base = rows[0][1]
    print(f"\ndevice: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; ResNet-20 FP, bf16, batch 128; "
          f"median of {args.epochs} epochs after {args.warmup} warm-up")
    print(f"| variant | s/epoch | vs {rows[0][0]} | train acc (last epoch) | step |")
    print("| --- | --- | --- | --- | --- |")
    for v, median, acc, mode in rows:
        print(f"| {v} | {median:.3f} | {median - base:+.3f} | {acc:.3f} | {mode} |")
    if args.profile:
        profile_base(args, device, args.profile)


if __name__ == "__main__":
    main()
