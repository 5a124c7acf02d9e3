"""Seconds per epoch of ResNet-20 on CIFAR-10 (batch 128) for FP, W4/A4, W2/A32 and W2/A2, in one process,
through the eager step captured as a CUDA graph and through the torch.compile'd step captured the same way.

    python bench/engine_gpu.py --data $CIFAR10_DIR [--precision bf16] [--epochs 3] [--warmup 1]
                               [--paths graph,compiled]

Every mode trains through TrainingService exactly as the orchestrator drives it (one Run per epoch, augmentation
on the GPU, the step captured as a CUDA graph); the time of an epoch is the wall time of its Run request (the
per-epoch stats read-back included). Warm-up epochs (allocation, cuDNN autotuning, graph capture) are excluded;
the median of the timed epochs is printed. "FP (plain nn)" is the unconverted model through the same loop: the
baseline of the ratio column. W2/A2 mixes 1..4 bits per channel (mean 2.5) in weights and activations, with the
LBA sensitivities collected every step (the issue's target row), and once more with the optional look-ahead metric.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py_worker"))

from dmbq_worker.engine.data import DataOptions, load_data  # noqa: E402
from dmbq_worker.engine.models import build_model  # noqa: E402
from dmbq_worker.engine.optim import OptimizerOptions, TrainingOptimizer  # noqa: E402
from dmbq_worker.engine.schedule import LrSchedule  # noqa: E402
from dmbq_worker.engine.service import TrainingService  # noqa: E402
from dmbq_worker.engine.trainer import LoopOptions, Trainer  # noqa: E402
from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402
from dmbq_worker.quant.fused import fused_on  # noqa: E402
from dmbq_worker.server.context import NullContext  # noqa: E402


def f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def table(bits: int) -> list[float]:
    # binary-weighted alphas: 2^bits evenly spaced levels spanning about +-1.6 mean|w| x (2 - 2^(1-bits))
    return [1.6 * 2.0 ** (-i) for i in range(bits)]


def scheme_for(layers: list[pb.LayerInfo], w_bits: str, a_bits: str, seed: int) -> pb.QuantScheme:
    """w_bits / a_bits: "4", "2", "32" or "mixed" (uniformly random 1..4 per channel); first/last at 8 bits."""
    rng = np.random.default_rng(seed)

    def per_channel(spec: str, n: int) -> bytes:
        if spec == "mixed":
            return bytes(rng.integers(1, 5, n).astype(np.uint8).tolist())
        return bytes([int(spec)]) * n

    scheme = pb.QuantScheme()
    for info in layers:
        edge = info.role in (pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_LAST)
        acts = b""
        if info.role != pb.LAYER_ROLE_FIRST and a_bits != "32":
            acts = bytes([8]) * info.in_channels if edge else per_channel(a_bits, info.in_channels)
        scheme.layers.append(pb.LayerScheme(
            name=info.name,
            weight_bits_u8=bytes([8]) * info.out_channels if edge else per_channel(w_bits, info.out_channels),
            act_bits_u8=acts, act_mode=pb.ACT_MODE_UNIFORM,
        ))
    for bits in range(1, 9):
        scheme.weight_tables.append(pb.LevelTable(bits=bits, alpha_f32=f32(table(bits))))
    return scheme


@dataclass
class Row:
    mode: str
    seconds: list[float]
    steps: int
    note: str
    train_acc: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def configure_request(args: argparse.Namespace, epochs: int, compile_: bool) -> pb.Configure:
    return pb.Configure(
        model=pb.ModelSpec(name="resnet20"),
        dataset=pb.DatasetSpec(name=args.dataset, path=args.data, batch_size=128, augment=True,
                               train_limit=args.train_limit),
        schedule=pb.ScheduleSpec(epochs=epochs), seed=0, device=args.device, precision=args.precision,
        compile=compile_,
    )


def run_service_mode(args: argparse.Namespace, mode: str, w: str, a: str, sens: bool | str, compile_: bool) -> Row:
    svc, ctx = TrainingService(cuda_graph=not args.eager), NullContext()
    total = args.warmup + args.epochs
    cfg = svc.configure(configure_request(args, total, compile_), ctx)
    if w != "fp":
        svc.update_scheme(pb.UpdateScheme(scheme=scheme_for(list(cfg.layers), w, a, seed=1)), ctx)
    # sens: False, True (the LBA sensitivities) or "lookahead" (also the optional one-bit-lower metric)
    run = pb.Run(sensitivity=bool(sens), lookahead=sens == "lookahead")
    seconds: list[float] = []
    acc = 0.0
    for epoch in range(total):
        sync(args)
        t0 = time.perf_counter()
        result = svc.run(run, ctx)
        dt = time.perf_counter() - t0
        assert isinstance(result, pb.EpochResult)
        if sens:
            assert any(len(s.weight_sensitivity_f32) for s in result.layers), "no sensitivities came back"
        if epoch >= args.warmup:
            seconds.append(dt)
        else:
            print(f"  {mode}: warm-up epoch {dt:.1f} s", flush=True)
        acc = result.train_accuracy
    assert svc._session is not None
    note = svc._session.trainer.step_mode + (" + compile" if compile_ else "")
    return Row(mode, seconds, result.steps, note, acc)


def run_plain_fp(args: argparse.Namespace, compile_: bool) -> Row:
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = load_data(DataOptions(name=args.dataset, path=args.data, augment=True, train_limit=args.train_limit,
                                 test_limit=0,
                                 num_workers=0, image_size=0, seed=0, device=device,
                                 channels_last=device.type == "cuda"))
    model = build_model("resnet20", 10).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    total = args.warmup + args.epochs
    opt = TrainingOptimizer(model, OptimizerOptions("sgd", 0.1, 0.9, 1e-4, False, 1.0), device)
    trainer = Trainer(model, data, opt, LrSchedule("cosine", total, 0.1),
                      LoopOptions(128, 512, 0, args.precision == "bf16", not args.eager, compile_), device)
    seconds, acc, steps = time_epochs(trainer, args.warmup, args.epochs, args.device == "cuda")
    return Row("FP (plain nn)", seconds, steps, trainer.step_mode + (" + compile" if compile_ else ""), acc)


def time_epochs(trainer: Trainer, warmup: int, epochs: int, cuda: bool) -> tuple[list[float], float, int]:
    """Wall seconds of each timed epoch of `trainer` (after `warmup` untimed ones), the last train accuracy, steps."""
    seconds: list[float] = []
    acc, steps = 0.0, 0
    for epoch in range(warmup + epochs):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        stats = trainer.run(0, progress_every=20, on_progress=lambda p: None, cancelled=lambda: False)
        dt = time.perf_counter() - t0
        if epoch >= warmup:
            seconds.append(dt)
        acc, steps = stats.accuracy, stats.steps
    return seconds, acc, steps


def profile_modes(args: argparse.Namespace, compile_: bool) -> None:
    """Top GPU kernels of `--profile` steps: FP (quant layers, no scheme), W2/A2 without and with sensitivities."""
    from torch.profiler import ProfilerActivity, profile

    for mode, w, a, sens in (("FP (quant layers, no scheme)", "fp", "32", False),
                             ("W2/A2 mixed 1-4, no sensitivities", "mixed", "mixed", False),
                             ("W2/A2 mixed 1-4, sensitivities on", "mixed", "mixed", True)):  # no look-ahead
        svc, ctx = TrainingService(cuda_graph=False), NullContext()  # eager launches: kernels visible one by one
        cfg = svc.configure(configure_request(args, 2, compile_), ctx)
        if w != "fp":
            svc.update_scheme(pb.UpdateScheme(scheme=scheme_for(list(cfg.layers), w, a, seed=1)), ctx)
        run = pb.Run(sensitivity=sens, steps=args.profile)
        svc.run(run, ctx)  # warm-up (compilation)
        sync(args)
        with profile(activities=[ProfilerActivity.CUDA if args.device == "cuda" else ProfilerActivity.CPU]) as prof:
            svc.run(run, ctx)
            sync(args)
        total = sum(e.self_device_time_total for e in prof.key_averages()) / 1000.0 / args.profile
        print(f"\n### profile: {mode} ({'compiled' if compile_ else 'eager'}), GPU kernel time {total:.3f} ms/step")
        print(prof.key_averages().table(sort_by="self_device_time_total", row_limit=args.profile_rows,
                                        max_name_column_width=70))


def sync(args: argparse.Namespace) -> None:
    if args.device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR)")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs per mode")
    parser.add_argument("--eager", action="store_true", help="no CUDA graph (the plain eager loop)")
    parser.add_argument("--paths", default="graph,compiled",
                        help="comma list: graph (eager step), compiled (torch.compile'd step); both by default")
    parser.add_argument("--skip-extra", action="store_true",
                        help="only the four required modes (no 'FP quant layers', no 'W2/A2 without sensitivities')")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-test the script")
    parser.add_argument("--dataset", default="cifar10", help="cifar10; synthetic to smoke-test without the data")
    parser.add_argument("--train-limit", type=int, default=0, help="0: the whole training split")
    parser.add_argument("--json", default="", help="also write the rows here")
    parser.add_argument("--combo", action="store_true",
                        help="inductor's combo kernels (horizontal fusion of small independent kernels)")
    parser.add_argument("--profile", type=int, default=0,
                        help="after the table, profile this many steps of FP and of W2/A2 + sensitivities on the "
                             "last path and print their top kernels")
    parser.add_argument("--profile-rows", type=int, default=25, help="kernels listed per profiled mode (-1: all)")
    args = parser.parse_args()
    if args.combo:
        import torch._inductor.config as inductor_config

        inductor_config.combo_kernels = True
    if "compiled" in args.paths:
        # the worker refuses compiled quantized layers on CUDA unless opted in: measuring them is this path's purpose
        from dmbq_worker.engine.service import COMPILE_QUANT_CUDA_ENV

        os.environ[COMPILE_QUANT_CUDA_ENV] = "1"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("engine_gpu.py needs a CUDA device (--device cpu with --dataset synthetic: a smoke test only)")
    torch.backends.cudnn.benchmark = True
    modes = [
        ("FP (quant layers, no scheme)", "fp", "32", False),
        ("W4/A4", "4", "4", False),
        ("W2/A32", "2", "32", False),
        ("W2/A2 mixed 1-4, no sensitivities", "mixed", "mixed", False),
        ("W2/A2 mixed 1-4, sensitivities on", "mixed", "mixed", True),
        ("W2/A2 mixed 1-4, sensitivities on + look-ahead", "mixed", "mixed", "lookahead"),
    ]
    if args.skip_extra:
        modes = [m for m in modes if m[0] in ("W4/A4", "W2/A32", "W2/A2 mixed 1-4, sensitivities on",
                                               "W2/A2 mixed 1-4, sensitivities on + look-ahead")]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in paths if p not in ("graph", "compiled")]
    if unknown or not paths:
        sys.exit(f"--paths: unknown path(s) {unknown or paths}; use graph and/or compiled")
    rows: list[tuple[str, Row]] = []
    for path in paths:
        compile_ = path == "compiled"
        rows.append((path, run_plain_fp(args, compile_)))
        print(f"[{path}] {rows[-1][1].mode}: {rows[-1][1].median:.3f} s/epoch ({rows[-1][1].note})", flush=True)
        for mode, w, a, sens in modes:
            rows.append((path, run_service_mode(args, mode, w, a, sens, compile_)))
            print(f"[{path}] {mode}: {rows[-1][1].median:.3f} s/epoch ({rows[-1][1].note})", flush=True)
    base = rows[0][1].median  # FP (plain nn) of the first path
    base_of = {path: r.median for path, r in rows if r.mode == "FP (plain nn)"}
    print()
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (smoke test, not a measurement)"
    fused = fused_on(torch.device(args.device))  # what the quantizers on this device really run
    print(f"device: {name}; torch {torch.__version__}; ResNet-20, CIFAR-10, batch 128, "
          f"precision {args.precision}, {'eager loop' if args.eager else 'CUDA graph'}; median of {args.epochs} "
          f"epochs after {args.warmup} warm-up; ratios to FP (plain nn) of the '{paths[0]}' path and of the row's "
          f"own path; quantizers of the graph path: "
          f"{'fused Triton kernels' if fused else 'torch ops (DMBQ_FUSED_QUANT=0, no Triton, or the CPU)'}; "
          f"weights of all layers in one launch: "
          f"{ {'1': 'both directions', 'forward': 'forward only'}.get(os.environ.get('DMBQ_WEIGHT_BATCH', '1'), 'no') if fused else 'no'}"
          f" (DMBQ_WEIGHT_BATCH); FP operands cast in one launch: "
          f"{'no' if os.environ.get('DMBQ_OPERAND_CAST', '1') == '0' else 'yes'} (DMBQ_OPERAND_CAST)")
    print("| path | mode | s/epoch | ratio to FP | ratio to FP, same path | images/s | train acc (last epoch) | step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for path, r in rows:
        print(f"| {path} | {r.mode} | {r.median:.3f} | {r.median / base:.2f}x | {r.median / base_of[path]:.2f}x | "
              f"{r.steps * 128 / r.median:,.0f} | {r.train_acc:.3f} | {r.note} |")
    if args.profile:
        profile_modes(args, paths[-1] == "compiled")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ | {"path": p, "median": r.median} for p, r in rows],
                                              indent=1))


if __name__ == "__main__":
    main()
