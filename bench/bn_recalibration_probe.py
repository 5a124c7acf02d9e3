"""Which images BatchNorm recalibration may use: the test score after recomputing the running statistics from
augmented training batches (what RecalibrateBatchNorm does), from the plain training images, and from the test images
themselves (a diagnostic only: it reads the test split).

    PYTHONPATH=py_worker python bench/bn_recalibration_probe.py --data DIR --init RUN/checkpoints/epoch-0120.pt \
        [--test-limit 2000] [--batches 0] [--device cpu]

`--init` is a checkpoint of a ResNet-20 run: its model weights are loaded (full precision, as the FP run trained
them). Why it matters: the layers after each BatchNorm were trained under the statistics of augmented images; a
recalibration that gives them other statistics, however "true" for the test images, changes what they compute.
On this project's 2-core CPU machines the FP ResNet-20 run takes about 80 s over 2,000 test images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py_worker"))

from dmbq_worker.engine.data import Batch  # noqa: E402
from dmbq_worker.engine.service import TrainingService  # noqa: E402
from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402
from dmbq_worker.server.context import NullContext  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a cifar-10-batches-py folder (or its parent)")
    parser.add_argument("--init", required=True, help="checkpoint whose model weights are scored")
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=0, help="training batches (0: an epoch)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    svc, ctx = TrainingService(cuda_graph=False), NullContext()
    svc.configure(pb.Configure(
        model=pb.ModelSpec(name="resnet20"),
        dataset=pb.DatasetSpec(name="cifar10", path=args.data, batch_size=128, eval_batch_size=500, augment=True,
                               test_limit=args.test_limit),
        optimizer=pb.OptimizerSpec(name="sgd", lr=1e-4, momentum=0.9), schedule=pb.ScheduleSpec(epochs=1),
        seed=0, device=args.device, precision="fp32",
    ), ctx)
    svc.load_checkpoint(pb.LoadCheckpoint(path=args.init, weights_only=True), ctx)
    assert svc._session is not None
    data = svc._session.trainer.data
    augmented = data.train_batches
    state = {k: v.clone() for k, v in svc._session.model.state_dict().items()}

    def plain(split: str) -> object:
        def batches(order: torch.Tensor, start: int, size: int, epoch: int) -> Iterator[Batch]:
            return data.eval_batches(split, size)  # in file order, not augmented
        return batches

    print(f"ResNet-20 from {args.init}; test top-1 over {args.test_limit or 'all'} test images")
    print("| BatchNorm statistics | top-1 |")
    print("|---|---|")
    print(f"| as trained | {100 * svc.evaluate(pb.Evaluate(split='test'), ctx).top1:.2f} |")
    for name, source in (("recalibrated: augmented training batches (RecalibrateBatchNorm)", augmented),
                         ("recalibrated: plain training images", plain("train")),
                         ("recalibrated: the test images themselves (diagnostic)", plain("test"))):
        svc._session.model.load_state_dict(state)
        data.train_batches = source  # type: ignore[method-assign]
        try:
            svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=args.batches), ctx)
        finally:
            data.train_batches = augmented  # type: ignore[method-assign]
        print(f"| {name} | {100 * svc.evaluate(pb.Evaluate(split='test'), ctx).top1:.2f} |", flush=True)


if __name__ == "__main__":
    main()
