"""What the training loop wraps or reduces when it runs as one rank of a job (identities otherwise)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dmbq_worker.distributed import runtime
from dmbq_worker.distributed.sync_batchnorm import convert_batchnorm


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm over the global batch (in place; `device`: any); call before the optimizer is built."""
    if runtime.current() is None:
        return model
    return convert_batchnorm(model)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """The module the training step calls: DDP over the job's ranks, or the model itself."""
    if runtime.current() is None:
        return model
    if device.type == "cuda":
        # torch.cuda.graphs' rule for capturing DDP's backward: construct DDP on a side stream (its set-up work
        # otherwise sits on the stream that capture later asks to be idle)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            wrapped = _ddp(model, device)
        torch.cuda.current_stream(device).wait_stream(side)
        return wrapped
    return _ddp(model, device)


def _ddp(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        # BN statistics are global already, scales and clips update identically on every rank
        broadcast_buffers=False,
        # Full-precision layers skip their quantizer (its clip gets no gradient) and a scheme can change that.
        # A job captured as a CUDA graph (the default) cannot afford find_unused_parameters (it reads the
        # used-parameter map back to the host): the trainer adds 0 x (every clip) to the loss instead
        # (Trainer.always_used), on CPU too, so that gloo runs test the same DDP set-up; DMBQ_DDP_CUDA_GRAPH=0 restores it.
        find_unused_parameters=not runtime.ddp_cuda_graph_enabled(),
    )


def reduce_train_metrics(loss_sum: torch.Tensor, correct: torch.Tensor, first_bad: torch.Tensor,
                         bad_loss: torch.Tensor) -> tuple[float, float, int, float]:
    """Host values of the step accumulators over the global batch: the loss is the mean of the ranks' means
    (equal slices), correct predictions add up, and the first non-finite step is the earliest on any rank."""
    if runtime.current() is None:
        vals = torch.stack([loss_sum.float(), correct.float(), first_bad.float(), bad_loss.float()]).tolist()
        return vals[0], vals[1], int(vals[2]), vals[3]
    world = runtime.world_size()
    sums = torch.stack([loss_sum.double(), correct.double()])
    runtime.all_reduce_sum_(sums)
    never = torch.tensor(float("inf"), dtype=torch.float64, device=first_bad.device)
    first = torch.where(first_bad >= 0, first_bad.double(), never).reshape(1)
    first_neg = -first
    runtime.all_reduce_max_(first_neg)  # max of -step: the earliest step
    earliest = -first_neg
    mine = (first == earliest) & torch.isfinite(earliest)
    bad = torch.stack([torch.where(mine, bad_loss.double().reshape(1), 0.0)[0], mine.double()[0]])
    runtime.all_reduce_sum_(bad)
    vals = torch.cat([sums, earliest, bad]).tolist()
    step = int(vals[2]) if vals[2] != float("inf") else -1
    return vals[0] / world, vals[1], step, vals[3] / max(vals[4], 1.0)


def reduce_sums(t: torch.Tensor) -> torch.Tensor:
    """Sum of per-rank partial sums (evaluation: loss, top-1, top-5, samples)."""
    return runtime.all_reduce_sum_(t)
