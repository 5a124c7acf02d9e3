"""Per-layer mean of the LBA metric, per element and divided once more by the channel's weight.

    PYTHONPATH=py_worker python bench/sensitivity_profile.py --data DIR --init RUN/checkpoints/epoch-0120.pt [--bits 2]

ResNet-20 at W<bits>/A<bits> (every body channel at that width, first/last at 8 bits) from the given checkpoint (the
FP run), `--steps` SGD steps at a tiny LR on the first `--train-limit` CIFAR-10 images with sensitivities on. Prints,
per layer, the mean weight and activation metric Δℓ' = |Σ (x − x̂) g| / n (already per element) and the same divided
by the channel's weight in LBA's averages (parameters per output channel, H·W per input channel): the two rankings
of `lba.score` ("metric" and "metricPerWeight"), and the metric × √(channel weight) ("metricSqrtWeight").
`--batch` checks why stage 1's metric is small: if the per-step sums were of terms that do not cancel, the metric per
element would not depend on the batch; if they cancel like random signs it grows as 1/√batch (run 32 and 128).
Runs on the CPU in about a minute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py_worker"))
sys.path.insert(0, str(ROOT / "bench"))

from engine_gpu import scheme_for  # noqa: E402

from dmbq_worker.engine.service import TrainingService  # noqa: E402
from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402
from dmbq_worker.server.context import NullContext  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a cifar-10-batches-py folder (or its parent)")
    parser.add_argument("--init", required=True, help="checkpoint of the FP run whose weights start the model")
    parser.add_argument("--bits", default="2", choices=("1", "2", "3", "4"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--train-limit", type=int, default=2560)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    svc, ctx = TrainingService(cuda_graph=False), NullContext()
    cfg = svc.configure(pb.Configure(
        model=pb.ModelSpec(name="resnet20"),
        dataset=pb.DatasetSpec(name="cifar10", path=args.data, batch_size=args.batch, augment=True, train_limit=args.train_limit, test_limit=256),
        optimizer=pb.OptimizerSpec(name="sgd", lr=1e-4, momentum=0.9), schedule=pb.ScheduleSpec(epochs=1),
        seed=0, device=args.device, precision="fp32", init_weights=args.init,
    ), ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=scheme_for(list(cfg.layers), args.bits, args.bits, seed=1)), ctx)
    out = svc.run(pb.Run(steps=args.steps, sensitivity=True), ctx)
    assert isinstance(out, pb.EpochResult)
    info = {layer.name: layer for layer in cfg.layers}
    print(f"W{args.bits}/A{args.bits}, batch {args.batch}, {args.steps} steps: mean over a layer's channels")
    print("| layer | params/ch | H·W | weight Δℓ' | ÷ params | × √params | act Δℓ' | ÷ H·W | × √(H·W) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in out.layers:
        w = np.frombuffer(s.weight_sensitivity_f32, dtype="<f4")
        a = np.frombuffer(s.act_sensitivity_f32, dtype="<f4")
        shape = info[s.name]
        k, hw = shape.params_per_out_channel, max(shape.act_elems_per_in_channel, 1)
        act = f"{a.mean():.2e} | {a.mean() / hw:.2e} | {a.mean() * hw ** 0.5:.2e}" if a.size else "— | — | —"
        print(f"| {s.name} | {k} | {hw} | {w.mean():.2e} | {w.mean() / k:.2e} | {w.mean() * k ** 0.5:.2e} | {act} |")


if __name__ == "__main__":
    main()
