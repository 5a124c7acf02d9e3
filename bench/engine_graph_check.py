"""The CUDA-graph step computes what the eager step computes (run on the GPU).

    PYTHONPATH=py_worker python bench/engine_graph_check.py [--data DIR] [--steps 40]

Two services from the same seed train ResNet-20 at W2/A2 (mixed 1..4 bits) with sensitivities and look-ahead
on for `steps` steps in two Run requests (the second re-uses the captured graph and its zeroed sensitivity sums),
one eager and one with the captured step (`--pair eager-eager` or `graph-graph`: one path twice, whether it
repeats by itself), fp32 (`--precision bf16`: under autocast; `--fp`: no scheme at all). Between the two requests the scheme moves bits between channels
(another draw of the same mixed scheme, as LBA does each epoch): the captured step is kept (the graph count says
so) and must train under the new bits, or the second request's losses and sums part from eager's. The fused
kernels add their per-channel sums with atomics, in no fixed order: compare with DMBQ_FUSED_QUANT=0 for equality. Prints the losses, the largest relative difference of the
parameters, and of the summed sensitivities. cuDNN picks algorithms per run, so expect rounding-level differences
that grow with the steps, not equality.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "py_worker"))
sys.path.insert(0, str(ROOT / "bench"))

from engine_gpu import scheme_for  # noqa: E402

from dmbq_worker.engine.service import TrainingService  # noqa: E402
from dmbq_worker.proto import dmbq_pb2 as pb  # noqa: E402
from dmbq_worker.server.context import NullContext  # noqa: E402


def train(graph: bool, args: argparse.Namespace) -> tuple[list[float], dict[str, torch.Tensor], dict[str, np.ndarray], str]:
    svc, ctx = TrainingService(cuda_graph=graph), NullContext()
    name = "cifar10" if args.data else "synthetic"
    cfg = svc.configure(pb.Configure(
        model=pb.ModelSpec(name="resnet20"),
        dataset=pb.DatasetSpec(name=name, path=args.data, batch_size=128, augment=True, train_limit=10240),
        schedule=pb.ScheduleSpec(epochs=2), seed=0, device=args.device, precision=args.precision,
    ), ctx)
    if not args.fp:
        svc.update_scheme(pb.UpdateScheme(scheme=scheme_for(list(cfg.layers), "mixed", "mixed", seed=1)), ctx)
    losses: list[float] = []
    sens: dict[str, np.ndarray] = {}
    for request in range(2):
        if request == 1 and not args.keep_scheme and not args.fp:  # LBA's move: same quantizer paths, other bits: copied into the buffers the graph reads
            svc.update_scheme(pb.UpdateScheme(scheme=scheme_for(list(cfg.layers), "mixed", "mixed", seed=2)), ctx)
        collect = "none" if args.fp else args.collect
        out = svc.run(pb.Run(steps=args.steps // 2, sensitivity=collect != "none", lookahead=collect == "all"), ctx)
        assert isinstance(out, pb.EpochResult)
        losses.append(out.train_loss)
        sens = {s.name: np.frombuffer(s.weight_sensitivity_f32 + s.act_sensitivity_f32, dtype="<f4")
                for s in out.layers}
    assert svc._session is not None
    params = {k: v.detach().float().cpu() for k, v in svc._session.model.named_parameters()}
    trainer = svc._session.trainer
    return losses, params, sens, f"{trainer.step_mode}, {trainer.captures} graph(s) captured"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--collect", choices=("all", "sensitivity", "none"), default="all",
                        help="what the runs collect: sensitivities and look-ahead (default), sensitivities, nothing")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: autocast, so the FP operands' one-launch cast (engine/operand_cast.py) is captured")
    parser.add_argument("--fp", action="store_true", help="no scheme: the model trains in full precision")
    parser.add_argument("--keep-scheme", action="store_true", help="no scheme change between the requests (a control)")
    parser.add_argument("--device", default="cuda", help="cpu runs both eagerly: a smoke test of the script only")
    parser.add_argument("--pair", choices=("eager-graph", "eager-eager", "graph-graph"), default="eager-graph",
                        help="the two runs compared: eager against the captured step (default), or one path twice "
                             "(is that path alone repeatable? the look-ahead anomaly's control)")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = False
    first, second = args.pair.split("-")
    eager = train(first == "graph", args)
    graph = train(second == "graph", args)
    print(f"{first} ({eager[3]}): losses of the two Run requests {eager[0]}")
    print(f"{second} ({graph[3]}): losses of the two Run requests {graph[0]}")
    rel_p = max(((eager[1][k] - graph[1][k]).norm() / eager[1][k].norm().clamp_min(1e-12)).item() for k in eager[1])
    rel_s = max((float(np.linalg.norm(eager[2][k] - graph[2][k]) / max(np.linalg.norm(eager[2][k]), 1e-30))
                 for k in eager[2] if eager[2][k].size), default=0.0)
    print(f"largest relative difference: parameters {rel_p:.2e}, summed sensitivities (2nd request) {rel_s:.2e}")


if __name__ == "__main__":
    main()
