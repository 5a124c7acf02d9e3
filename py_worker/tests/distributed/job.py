"""A worker job under torchrun (gloo on CPU) and a minimal ZeroMQ client for it, for the distributed tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from dmbq_worker.proto import dmbq_pb2 as pb

PY_WORKER = Path(__file__).resolve().parents[2]


class TorchrunJob:
    """`python -m torch.distributed.run --nproc-per-node N -m dmbq_worker --listen ipc://...`, and a DEALER to it."""

    def __init__(self, ranks: int, extra_env: dict[str, str] | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="dmbq-ddp-")
        self.endpoint = f"ipc://{self._dir.name}/worker.sock"
        self.stderr_path = Path(self._dir.name) / "stderr.txt"
        env = {**os.environ, "PYTHONPATH": str(PY_WORKER), "OMP_NUM_THREADS": "1", "DMBQ_DIST_BACKEND": "gloo",
               **(extra_env or {})}
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
             "--monitor-interval=0.2", "-m", "dmbq_worker", "--listen", self.endpoint],
            env=env, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True,
        )
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(self.endpoint)
        self._next_id = 1

    def next_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def call(self, timeout_s: float = 120.0, **body: object) -> pb.Response:
        """Send one request; return its final response (progress events are skipped)."""
        rid = self.next_id()
        self.send(rid, **body)
        return self.final(rid, timeout_s)

    def send(self, rid: int, **body: object) -> None:
        self._sock.send(pb.Request(id=rid, **body).SerializeToString())  # type: ignore[arg-type]

    def final(self, rid: int, timeout_s: float = 120.0) -> pb.Response:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._sock.poll(200):
                resp = pb.Response.FromString(self._sock.recv())
                if resp.id == rid and resp.final:
                    return resp
            elif self.process.poll() is not None:
                raise RuntimeError(f"torchrun exited with {self.process.returncode}:\n{self.stderr()}")
        raise TimeoutError(f"no final reply to request {rid} in {timeout_s}s:\n{self.stderr()}")

    def rank_pids(self) -> list[int]:
        """The agent's children: one process per rank."""
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            children += [int(p) for p in (task / "children").read_text().split()]
        return children

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._stderr.close()
        self._dir.cleanup()
