"""Where do an N-rank and a 1-rank run part? Per-module outputs, max-pool winners and parameter gradients of the
digits CNN under the W2/A2 scheme of the equivalence test, after STEPS steps (the last step's forward).

    cd py_worker && export PYTHONPATH=$PWD DMBQ_DIST_BACKEND=gloo OMP_NUM_THREADS=1
    python -m torch.distributed.run --standalone --nproc-per-node=1 tests/distributed/divergence_probe.py dump /tmp/r1
    python -m torch.distributed.run --standalone --nproc-per-node=2 tests/distributed/divergence_probe.py dump /tmp/r2
    python tests/distributed/divergence_probe.py compare /tmp/r1 /tmp/r2

Environment: STEPS (default 1), FACTORY (a model.factory, e.g. tests.distributed.models:digits_cnn_avgpool).
Each rank writes rankR.pt; compare concatenates the ranks' batch slices and prints, per tensor, the largest
difference and how many elements differ (max-pool winners: how many windows picked another element).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def dump(out_dir: Path) -> None:
    from dmbq_worker.distributed import runtime
    from dmbq_worker.engine.service import TrainingService
    from dmbq_worker.proto import dmbq_pb2 as pb
    from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme

    group = runtime.init_from_env()
    rank = group.rank if group is not None else 0
    service = TrainingService()
    req = configure_request("digits", batch_size=64, seed=3, augment=True, test_limit=200, lr=0.05)
    req.quant.act_clip_init = 2.0
    req.model.factory = os.environ.get("FACTORY", "")
    configured = service.configure(req, RecordingContext())
    service.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(configured.layers))), RecordingContext())
    model: nn.Module = service._session.model  # type: ignore[union-attr]  # a probe looks inside
    record: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: Any) -> None:
            if isinstance(module, nn.MaxPool2d):
                _, idx = F.max_pool2d(inputs[0].detach(), module.kernel_size, return_indices=True)
                record[name + ".winner"] = idx
            if isinstance(out, torch.Tensor) and not name.endswith("weight_quant"):
                record[name + ".out"] = out.detach().clone()
        return keep

    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(hook(name))
    result = service.run(pb.Run(steps=int(os.environ.get("STEPS", "1")), sensitivity=True, lookahead=True,
                                histogram_bins=16), RecordingContext())
    for name, p in model.named_parameters():
        if p.grad is not None:
            record["grad." + name] = p.grad.detach().clone()
        record["param." + name] = p.detach().clone()
    record["loss"] = torch.tensor(result.train_loss)  # type: ignore[union-attr]
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(record, out_dir / f"rank{rank}.pt")
    runtime.shutdown()


def compare(a_dir: Path, b_dir: Path) -> None:
    def load(d: Path) -> list[dict[str, torch.Tensor]]:
        return [torch.load(f, weights_only=True) for f in sorted(d.glob("rank*.pt"))]

    a_ranks, b_ranks = load(a_dir), load(b_dir)
    print(f"loss (mean over the steps): {a_ranks[0]['loss'].item():.9g} vs {b_ranks[0]['loss'].item():.9g}")
    for key in a_ranks[0]:
        if key == "loss":
            continue
        if key.startswith(("grad.", "param.")):  # the same on every rank
            a, b = a_ranks[0][key], b_ranks[0][key]
        else:  # each rank holds its slice of the batch
            a, b = torch.cat([r[key] for r in a_ranks]), torch.cat([r[key] for r in b_ranks])
        unequal = int((a != b).sum())
        if a.dtype == torch.int64:
            print(f"{key:38s} {unequal}/{a.numel()} windows picked another element")
            continue
        diff = float((a.double() - b.double()).abs().max())
        rel = diff / max(float(a.abs().max()), 1e-30)
        print(f"{key:38s} max diff {diff:.3e} (rel {rel:.2e}), {unequal}/{a.numel()} unequal")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
