"""Rank 0 relays each request it executes to the other ranks; they run the same TrainingService calls.

Wire format inside the job (gloo control group, CPU tensors): one int64 length, then the request's protobuf bytes
as uint8. Nothing is pickled. Cancellation is agreed at the trainer's check points: rank 0 broadcasts its
decision as one flag, and every rank stops at the same step.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import torch
import torch.distributed as dist

from dmbq_worker.distributed.runtime import RankGroup
from dmbq_worker.proto import dmbq_pb2 as pb

# Requests that reach the TrainingService (and so must run on every rank), plus shutdown.
RELAYED_KINDS = ("configure", "update_scheme", "run", "evaluate", "recalibrate_batch_norm", "save_checkpoint",
                 "load_checkpoint", "shutdown")


class RequestRelay:
    """The broadcasts of one job: requests and cancel flags from rank 0 to the rest."""

    def __init__(self, group: RankGroup) -> None:
        self.group = group
        self._closed = False

    def _broadcast_tensor(self, t: torch.Tensor) -> None:
        dist.broadcast(t, src=0, group=self.group.control)

    def send_request(self, request: pb.Request) -> None:
        data = request.SerializeToString()
        self._broadcast_tensor(torch.tensor([len(data)], dtype=torch.int64))
        if data:
            self._broadcast_tensor(torch.frombuffer(bytearray(data), dtype=torch.uint8))

    def receive_request(self) -> pb.Request:
        size = torch.zeros(1, dtype=torch.int64)
        self._broadcast_tensor(size)
        buf = torch.empty(int(size.item()), dtype=torch.uint8)
        if buf.numel():
            self._broadcast_tensor(buf)
        return pb.Request.FromString(buf.numpy().tobytes())

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag` on every rank (rank 0 passes its decision, the others anything)."""
        t = torch.tensor([1 if flag else 0], dtype=torch.uint8)
        self._broadcast_tensor(t)
        return bool(t.item())

    def close(self) -> None:
        """Rank 0 is done serving: tell the followers to leave their loop (idempotent)."""
        if not self._closed and self.group.is_leader:
            self._closed = True
            self.send_request(pb.Request(id=0, shutdown=pb.Shutdown()))


class LeaderContext:
    """Rank 0's RequestContext for a relayed request: its cancel decisions are broadcast to the followers."""

    def __init__(self, inner: Any, relay: RequestRelay) -> None:
        self._inner = inner
        self._relay = relay

    @property
    def request_id(self) -> int:
        return int(self._inner.request_id)

    def progress(self, event: pb.Progress) -> None:
        self._inner.progress(event)

    def cancelled(self) -> bool:
        return self._relay.agree(bool(self._inner.cancelled()))


class FollowerContext:
    """A follower's RequestContext: no progress to send; cancellation is whatever rank 0 decided."""

    def __init__(self, request_id: int, relay: RequestRelay) -> None:
        self._id = request_id
        self._relay = relay

    @property
    def request_id(self) -> int:
        return self._id

    def progress(self, event: pb.Progress) -> None:
        return None

    def cancelled(self) -> bool:
        return self._relay.agree(False)


def follow(relay: RequestRelay, service: Any, *, log: Any = None) -> None:
    """A follower rank's loop: execute what rank 0 executes until it says shutdown.

    A request that fails here fails on rank 0 too (same inputs, same checks, collectively agreed decisions), and
    rank 0 reports it; a follower only logs it.
    """
    while True:
        request = relay.receive_request()
        kind = request.WhichOneof("body")
        if kind == "shutdown" or kind is None:
            return
        ctx = FollowerContext(request.id, relay)
        try:
            getattr(service, kind)(getattr(request, kind), ctx)
        except Exception as exc:  # noqa: BLE001 - rank 0 answers the orchestrator; keep following
            if log is not None:
                log(f"rank {relay.group.rank}: {kind} #{request.id} failed: {type(exc).__name__}: {exc}")
            else:
                print(f"dmbq worker rank {relay.group.rank}: {kind} #{request.id} failed: {exc}\n"
                      f"{traceback.format_exc()}", file=sys.stderr, flush=True)
