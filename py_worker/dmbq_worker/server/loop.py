"""The worker's request loop: frames in, typed replies out, one training request at a time.

Protocol rules it enforces (see proto/dmbq.proto):
- every frame gets an answer: a malformed one an Error(MALFORMED) with id 0, an unknown body an
  Error(UNKNOWN_REQUEST) with its id, a failing handler an Error with its code; the loop keeps serving;
- nothing received is ever unpickled: frames are parsed as protobuf only;
- while a long request runs, Hello and Echo are still answered (liveness), Cancel stops it at its next step
  boundary, other requests wait their turn in arrival order.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from collections import deque
from typing import Any, Callable

from google.protobuf.message import DecodeError

from dmbq_worker import __version__
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.server.channel import Channel, Peer, oversize_length

PROTOCOL_VERSION = int(os.environ.get("DMBQ_WORKER_PROTOCOL_VERSION", pb.PROTOCOL_VERSION_CURRENT))

# Requests a busy worker answers at once instead of queueing: cheap, and they prove it is alive.
def _is_inline(request: pb.Request) -> bool:
    kind = request.WhichOneof("body")
    return kind in ("hello", "cancel") or (kind == "echo" and request.echo.delay_ms == 0)


class _Context:
    """The RequestContext handed to a handler (see context.py)."""

    def __init__(self, loop: RequestLoop, peer: Peer, request_id: int) -> None:
        self._loop = loop
        self._peer = peer
        self._id = request_id
        self.cancel_requested = False

    @property
    def request_id(self) -> int:
        return self._id

    def progress(self, event: pb.Progress) -> None:
        self._loop.reply(self._peer, pb.Response(id=self._id, final=False, progress=event))

    def cancelled(self) -> bool:
        self._loop.drain(self)
        return self.cancel_requested


class RequestLoop:
    def __init__(
        self,
        channel: Channel,
        service_factory: Callable[[], Any],
        *,
        parent_pid: int | None = None,
        log: Callable[[str], None] | None = None,
        relay: Any = None,
    ) -> None:
        """`relay` (a distributed.relay.RequestRelay): this is rank 0 of a job; service requests and cancel
        decisions are broadcast to the other ranks, which execute them too."""
        self.channel = channel
        self._relay = relay
        self._service_factory = service_factory
        self._service: Any = None
        self._parent_pid = parent_pid
        self._pending: deque[tuple[Peer, pb.Request]] = deque()
        self._active: _Context | None = None
        self._stopping = False
        self._log = log or (lambda msg: None)

    # ------------------------------------------------------------------ plumbing

    def reply(self, peer: Peer, response: pb.Response) -> None:
        self.channel.send(peer, response.SerializeToString())

    def _error(self, peer: Peer, request_id: int, err: WorkerError) -> None:
        self.reply(peer, pb.Response(id=request_id, final=True, error=err.to_proto()))

    def _parent_gone(self) -> bool:
        # Re-parented to another process: the orchestrator died without telling us. Exit, leave no orphan.
        return self._parent_pid is not None and os.getppid() != self._parent_pid

    def service(self) -> Any:
        if self._service is None:
            self._service = self._service_factory()
        return self._service

    # ------------------------------------------------------------------ the loop

    def serve(self) -> None:
        while not self._stopping:
            if self._parent_gone():
                self._log("parent process is gone; exiting")
                return
            if self._pending:
                peer, request = self._pending.popleft()
                self._execute(peer, request)
                continue
            item = self.channel.receive(0.25)
            if item is None:
                if self.channel.closed():
                    return
                continue
            self._accept(*item, busy=False)

    def drain(self, ctx: _Context) -> None:
        """Take in whatever arrived while a request runs (called between its steps)."""
        if self._parent_gone():
            ctx.cancel_requested = True
            self._stopping = True
            return
        while True:
            item = self.channel.receive(0)
            if item is None:
                if self.channel.closed():
                    ctx.cancel_requested = True
                    self._stopping = True
                return
            self._accept(*item, busy=True)

    def _accept(self, peer: Peer, frame: bytes, *, busy: bool) -> None:
        request = self._parse(peer, frame)
        if request is None:
            return
        kind = request.WhichOneof("body")
        if kind is None:
            self._error(peer, request.id, WorkerError(
                pb.ERROR_CODE_UNKNOWN_REQUEST, "request has no body this worker knows (newer client? check protocol versions)"))
            return
        if busy and _is_inline(request):
            self._execute(peer, request)
        elif busy and kind == "shutdown":
            if self._active is not None:
                self._active.cancel_requested = True
            self._stopping = True
            self._pending.append((peer, request))
        elif busy:
            self._pending.append((peer, request))
        else:
            self._execute(peer, request)

    def _parse(self, peer: Peer, frame: bytes) -> pb.Request | None:
        refused = oversize_length(frame)
        if refused is not None:
            self._error(peer, 0, WorkerError(pb.ERROR_CODE_MALFORMED, f"frame of {refused} bytes refused (limit 512 MiB)"))
            return None
        request = pb.Request()
        try:
            request.ParseFromString(frame)
        except (DecodeError, ValueError, RuntimeError) as exc:
            self._error(peer, 0, WorkerError(pb.ERROR_CODE_MALFORMED, f"not a dmbq Request ({len(frame)} bytes): {exc}"))
            return None
        return request

    def _execute(self, peer: Peer, request: pb.Request) -> None:
        kind = request.WhichOneof("body")
        ctx = _Context(self, peer, request.id)
        started = time.monotonic()
        outer = self._active
        tracked = not _is_inline(request)
        if tracked:
            self._active = ctx
        try:
            response = self._dispatch(kind, request, ctx)
        except WorkerError as err:
            self._error(peer, request.id, err)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a typed reply; the worker keeps serving
            self._error(peer, request.id, WorkerError(
                pb.ERROR_CODE_INTERNAL, f"{kind} failed: {type(exc).__name__}: {exc}", details=traceback.format_exc()))
        else:
            if response is not None:
                self.reply(peer, response)
        finally:
            if tracked:
                self._active = outer
            self._log(f"{kind} #{request.id} took {time.monotonic() - started:.3f}s")

    def _dispatch(self, kind: str | None, request: pb.Request, ctx: _Context) -> pb.Response | None:
        rid = request.id
        if kind == "hello":
            return self._hello(request.hello, rid)
        if kind == "echo":
            return self._echo(request.echo, rid, ctx)
        if kind == "cancel":
            target = request.cancel.target
            if self._active is not None and self._active.request_id == target:
                self._active.cancel_requested = True
            else:
                self._pending = deque(item for item in self._pending if item[1].id != target)
            return pb.Response(id=rid, final=True, cancelled=pb.Cancelled(target=target))
        if kind == "shutdown":
            self._stopping = True
            if self._relay is not None:
                self._relay.close()
            return pb.Response(id=rid, final=True, shutdown=pb.ShutdownAck())
        service = self.service()
        if self._relay is not None:
            from dmbq_worker.distributed.relay import LeaderContext

            self._relay.send_request(request)  # the followers run the same call, in step with this one
            ctx = LeaderContext(ctx, self._relay)  # type: ignore[assignment]
        if kind == "configure":
            return pb.Response(id=rid, final=True, configured=service.configure(request.configure, ctx))
        if kind == "update_scheme":
            return pb.Response(id=rid, final=True, scheme_applied=service.update_scheme(request.update_scheme, ctx))
        if kind == "run":
            result = service.run(request.run, ctx)
            if isinstance(result, pb.Cancelled):
                return pb.Response(id=rid, final=True, cancelled=result)
            return pb.Response(id=rid, final=True, epoch_result=result)
        if kind == "evaluate":
            return pb.Response(id=rid, final=True, eval_result=service.evaluate(request.evaluate, ctx))
        if kind == "recalibrate_batch_norm":
            return pb.Response(id=rid, final=True, batch_norm_recalibrated=service.recalibrate_batch_norm(
                request.recalibrate_batch_norm, ctx))
        if kind == "save_checkpoint":
            return pb.Response(id=rid, final=True, checkpoint_saved=service.save_checkpoint(request.save_checkpoint, ctx))
        if kind == "load_checkpoint":
            return pb.Response(id=rid, final=True, checkpoint_loaded=service.load_checkpoint(request.load_checkpoint, ctx))
        raise WorkerError(pb.ERROR_CODE_UNKNOWN_REQUEST, f"request kind {kind!r} is not served by this worker")

    def _hello(self, hello: pb.Hello, rid: int) -> pb.Response:
        if hello.protocol_version != PROTOCOL_VERSION:
            raise WorkerError(
                pb.ERROR_CODE_PROTOCOL_MISMATCH,
                f"protocol mismatch: orchestrator speaks version {hello.protocol_version}, "
                f"this worker speaks version {PROTOCOL_VERSION}",
                field="hello.protocol_version",
            )
        return pb.Response(id=rid, final=True, hello=pb.HelloReply(
            protocol_version=PROTOCOL_VERSION, capabilities=self._capabilities()))

    def _capabilities(self) -> pb.Capabilities:
        import torch

        caps = pb.Capabilities(
            torch_version=str(torch.__version__),
            python_version=platform.python_version(),
            worker_version=__version__,
            world_size=1,
            pid=os.getpid(),
        )
        if torch.cuda.is_available():
            caps.device_kind = "cuda"
            caps.device_name = torch.cuda.get_device_name(0)
            caps.gpu_count = torch.cuda.device_count()
        else:
            caps.device_kind = "cpu"
            caps.device_name = platform.processor() or platform.machine()
        try:
            info = self.service().capabilities()
        except ImportError as exc:
            # Still answer the handshake; Configure will report the same import failure as a typed error.
            print(f"dmbq worker: training engine unavailable: {exc}", file=sys.stderr, flush=True)
            info = {}
        caps.models.extend(info.get("models", []))
        caps.datasets.extend(info.get("datasets", []))
        if "world_size" in info:
            caps.world_size = int(info["world_size"])
        return caps

    def _echo(self, echo: pb.Echo, rid: int, ctx: _Context) -> pb.Response:
        deadline = time.monotonic() + echo.delay_ms / 1000.0
        while time.monotonic() < deadline:
            if ctx.cancelled():
                return pb.Response(id=rid, final=True, cancelled=pb.Cancelled(target=rid))
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        return pb.Response(id=rid, final=True, echo=pb.EchoReply(payload=echo.payload))
