"""Process-group set-up from torchrun's environment, and the few collectives the engine needs.

`current()` is None in a plain (one-process) worker: every helper here is then the identity, so engine code calls
them unconditionally. Two groups: the default one (NCCL on GPUs, gloo on CPU) carries tensors of the training
device; a gloo "control" group with a long timeout carries requests and cancel flags, since followers may wait
between requests for as long as the orchestrator thinks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from dmbq_worker.errors import invalid

# Collectives of a step wait at most this long for a slow or dead peer (torchrun also ends the job when a rank dies).
DEFAULT_TIMEOUT_MIN = 30
CONTROL_TIMEOUT = timedelta(days=30)


@dataclass(frozen=True)
class RankGroup:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    control: Any  # the gloo ProcessGroup for requests and flags

    @property
    def is_leader(self) -> bool:
        return self.rank == 0


_current: RankGroup | None = None


def current() -> RankGroup | None:
    return _current


def init_from_env() -> RankGroup | None:
    """Join the job torchrun started (RANK and WORLD_SIZE in the environment); None when there is no such job.

    A 1-process torchrun job is a job too (DDP and global-batch BatchNorm over one rank): it runs the same code
    as N ranks, which is what makes "N ranks equal 1 rank" checkable to floating-point noise."""
    global _current
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and os.environ.get("DMBQ_DIST_BACKEND", "") != "gloo"
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local_rank)
    minutes = float(os.environ.get("DMBQ_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MIN))
    if cuda and ddp_cuda_graph_enabled():
        # torch.cuda.graphs' rule for capturing DDP: no NCCL async error handling (its watchdog queries the stream)
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0")
    dist.init_process_group(backend, timeout=timedelta(minutes=minutes))
    control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    _current = RankGroup(rank=rank, world_size=world, local_rank=local_rank, backend=backend, control=control)
    return _current


# A job's training step is captured as a CUDA graph, as the plain worker's is (measured on 2 x H100: 3.25 s/epoch
# for a 1-rank job against 16.1 eager; docs/RESULTS.md); DMBQ_DDP_CUDA_GRAPH=0 keeps it eager (and DDP's
# find_unused_parameters on), for debugging.
DDP_CUDA_GRAPH_ENV = "DMBQ_DDP_CUDA_GRAPH"


def ddp_cuda_graph_enabled() -> bool:
    return os.environ.get(DDP_CUDA_GRAPH_ENV, "") != "0"


def shutdown() -> None:
    global _current
    if _current is not None and dist.is_initialized():
        dist.destroy_process_group()
    _current = None


def world_size() -> int:
    return _current.world_size if _current is not None else 1


def is_leader() -> bool:
    return _current is None or _current.is_leader


def rank_device(device: torch.device) -> torch.device:
    """Each rank drives its own GPU (LOCAL_RANK); a configured 'cuda:K' means 'the GPUs', not one of them."""
    if _current is not None and device.type == "cuda":
        return torch.device("cuda", _current.local_rank)
    return device


def per_rank_batch(batch_size: int) -> int:
    """The slice of the global batch one rank trains on; the global batch must split evenly."""
    world = world_size()
    if batch_size % world:
        raise invalid("dataset.batch_size", f"{batch_size} does not split evenly over {world} ranks "
                                            f"(the global batch is divided among them)")
    return batch_size // world


def rank_slice(batch_size: int) -> slice:
    """This rank's part of a global batch of `batch_size` samples."""
    part = per_rank_batch(batch_size)
    rank = _current.rank if _current is not None else 0
    return slice(rank * part, (rank + 1) * part)


def owns_eval_batch(index: int) -> bool:
    """Evaluation batches go round-robin over the ranks; their sums are all-reduced afterwards."""
    return _current is None or index % _current.world_size == _current.rank


def all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` over the ranks in place (the identity without a job)."""
    if _current is not None:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max_(t: torch.Tensor) -> torch.Tensor:
    if _current is not None:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def barrier() -> None:
    if _current is not None:
        dist.barrier(group=_current.control)
