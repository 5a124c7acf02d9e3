"""`python -m dmbq_worker`: serve the dmbq contract over ZeroMQ (--listen) or stdio (--stdio)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any


def _service() -> Any:
    from dmbq_worker.engine.service import TrainingService

    return TrainingService()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmbq-worker", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="ENDPOINT", help="bind a ZeroMQ ROUTER, e.g. tcp://0.0.0.0:5555 or ipc:///tmp/dmbq/w.sock")
    where.add_argument("--stdio", action="store_true", help="length-prefixed protobuf frames on stdin/stdout")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is no longer the parent")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    # The orchestrator owns shutdown: a Ctrl-C in its terminal must not kill a step half-way here.
    if args.parent_pid is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Exit with the conventional 128+15, so the orchestrator reports a termination, not a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    from dmbq_worker.distributed import init_from_env, shutdown
    from dmbq_worker.distributed.relay import RequestRelay, follow
    from dmbq_worker.server.channel import StdioChannel, ZmqChannel
    from dmbq_worker.server.loop import RequestLoop

    # Under torchrun (WORLD_SIZE > 1): rank 0 serves the orchestrator, every other rank follows its requests.
    group = init_from_env()
    relay = RequestRelay(group) if group is not None else None
    if group is not None and not group.is_leader:
        assert relay is not None
        try:
            follow(relay, _service())
        finally:
            shutdown()
        return 0

    channel: Any = StdioChannel() if args.stdio else ZmqChannel(args.listen)
    if not args.stdio:
        print(f"dmbq worker {os.getpid()} listening on {channel.endpoint}", file=sys.stderr, flush=True)

    def log(msg: str) -> None:
        if args.verbose:
            print(f"[worker] {msg}", file=sys.stderr, flush=True)

    loop = RequestLoop(channel, _service, parent_pid=args.parent_pid, log=log, relay=relay)
    try:
        loop.serve()
    finally:
        channel.close()
        if relay is not None:
            relay.close()  # the followers leave their loop too
            shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
