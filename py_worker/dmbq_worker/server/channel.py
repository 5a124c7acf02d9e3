"""Transports of the worker, behind one small interface: frames in, frames out, addressed to a peer.

The request loop (loop.py) never sees sockets or pipes. A peer is an opaque token that a reply goes back to:
the ZeroMQ routing identity, or None for stdio (one peer).
"""

from __future__ import annotations

import os
import queue
import struct
import sys
import threading
from typing import BinaryIO, Protocol

import zmq

# A frame larger than this is refused: no real message comes near it, and over stdio a bogus length
# would otherwise make the reader wait for gigabytes that never come.
MAX_FRAME_BYTES = 512 * 1024 * 1024

Peer = object


class Channel(Protocol):
    def receive(self, timeout_s: float) -> tuple[Peer, bytes] | None:
        """The next frame, or None when none arrived within the timeout."""

    def send(self, peer: Peer, frame: bytes) -> None: ...

    def closed(self) -> bool:
        """True once the other side is gone for good (stdio EOF); the loop then exits."""

    def close(self) -> None: ...


class ZmqChannel:
    """A ROUTER socket: many orchestrator DEALERs may connect; replies go back by routing identity."""

    def __init__(self, endpoint: str, *, heartbeat_ms: int = 500) -> None:
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        # ZMTP heartbeats: a silent peer is dropped in a few intervals instead of never.
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, heartbeat_ms * 3)
        self._sock.setsockopt(zmq.HEARTBEAT_TTL, heartbeat_ms * 3)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self._sock.bind(endpoint)
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def receive(self, timeout_s: float) -> tuple[Peer, bytes] | None:
        if not self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        parts = self._sock.recv_multipart(copy=True)
        identity = parts[0]
        # A DEALER sends one frame; anything else is still answered (as malformed), never dropped silently.
        body = parts[1] if len(parts) == 2 else b"".join(parts[1:]) if len(parts) > 2 else b""
        return identity, body

    def send(self, peer: Peer, frame: bytes) -> None:
        assert isinstance(peer, bytes)
        self._sock.send_multipart([peer, frame], copy=False)

    def closed(self) -> bool:
        return False

    def close(self) -> None:
        self._sock.close(linger=0)


class StdioChannel:
    """Length-prefixed frames (little-endian uint32) on the process's stdin/stdout.

    stdout is taken over for frames: Python's sys.stdout is pointed at stderr so that a stray print()
    anywhere in the worker cannot corrupt the stream.
    """

    def __init__(self) -> None:
        out_fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._out: BinaryIO = os.fdopen(out_fd, "wb", buffering=0)
        self._in: BinaryIO = os.fdopen(os.dup(0), "rb", buffering=0)
        self._frames: queue.Queue[bytes | None] = queue.Queue()
        self._eof = threading.Event()
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, name="stdio-reader", daemon=True)
        self._reader.start()

    def _read_exact(self, n: int) -> bytes | None:
        chunks: list[bytes] = []
        while n > 0:
            chunk = self._in.read(n)
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_loop(self) -> None:
        try:
            while True:
                header = self._read_exact(4)
                if header is None:
                    break
                (length,) = struct.unpack("<I", header)
                if length > MAX_FRAME_BYTES:
                    # The stream cannot be resynchronised after a bogus length: report it and stop reading.
                    self._frames.put(_OVERSIZE_MARK + struct.pack("<I", length))
                    break
                body = self._read_exact(length)
                if body is None:
                    break
                self._frames.put(body)
        finally:
            self._eof.set()
            self._frames.put(None)

    def receive(self, timeout_s: float) -> tuple[Peer, bytes] | None:
        try:
            frame = self._frames.get(timeout=timeout_s) if timeout_s > 0 else self._frames.get_nowait()
        except queue.Empty:
            return None
        if frame is None:
            return None
        return None, frame

    def send(self, peer: Peer, frame: bytes) -> None:
        with self._write_lock:
            self._out.write(struct.pack("<I", len(frame)) + frame)

    def closed(self) -> bool:
        return self._eof.is_set() and self._frames.empty()

    def close(self) -> None:
        try:
            self._out.close()
        except OSError:
            pass


# Not a valid protobuf Request (field 0 is illegal), so the loop answers it as malformed, naming the length.
_OVERSIZE_MARK = b"\x00DMBQ-OVERSIZE"


def oversize_length(frame: bytes) -> int | None:
    """The refused length, if this frame is the stdio reader's oversize marker."""
    if frame.startswith(_OVERSIZE_MARK) and len(frame) == len(_OVERSIZE_MARK) + 4:
        return int(struct.unpack("<I", frame[-4:])[0])
    return None
