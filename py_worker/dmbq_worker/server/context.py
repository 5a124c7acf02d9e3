"""What a request handler may do while it runs: report progress and notice cancellation."""

from __future__ import annotations

from typing import Protocol

from dmbq_worker.proto import dmbq_pb2 as pb


class RequestContext(Protocol):
    """Handed to every handler; the transport stays behind it."""

    @property
    def request_id(self) -> int: ...

    def progress(self, event: pb.Progress) -> None:
        """Send a non-final Progress response for this request."""

    def cancelled(self) -> bool:
        """True once the orchestrator has cancelled this request. Cheap: call it between steps."""


class NullContext:
    """A RequestContext for calling the service directly (benchmarks, tests): no progress, never cancelled."""

    def __init__(self, request_id: int = 1) -> None:
        self._id = request_id

    @property
    def request_id(self) -> int:
        return self._id

    def progress(self, event: pb.Progress) -> None:
        pass

    def cancelled(self) -> bool:
        return False
