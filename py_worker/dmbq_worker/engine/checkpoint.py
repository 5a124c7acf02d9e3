"""Checkpoint files: written atomically (temp file in the same folder, fsync, rename), read with weights_only=True."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from dmbq_worker.errors import checkpoint_error

CHECKPOINT_FORMAT = "dmbq-engine/1"


def save_atomic(payload: dict[str, Any], path: str) -> int:
    """Write `payload` to `path` so that a reader sees the old file or the new one, never half of one."""
    if not path:
        raise checkpoint_error("path: a checkpoint path is required")
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise checkpoint_error(f"cannot write a checkpoint in {target.parent}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise checkpoint_error(f"cannot write checkpoint {target}: {exc}") from exc
        raise
    return target.stat().st_size


def load_checkpoint_file(path: str) -> dict[str, Any]:
    """Read a checkpoint with torch.load(weights_only=True): tensors and plain containers only, no code."""
    if not path:
        raise checkpoint_error("path: a checkpoint path is required")
    target = Path(path).expanduser()
    if not target.is_file():
        raise checkpoint_error(f"checkpoint {target} does not exist")
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unreadable file
        raise checkpoint_error(f"checkpoint {target} is not readable: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise checkpoint_error(f"checkpoint {target} is not a {CHECKPOINT_FORMAT} checkpoint")
    return payload


def bytes_to_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone() if data else torch.zeros(0, dtype=torch.uint8)


def tensor_to_bytes(t: torch.Tensor) -> bytes:
    return bytes(t.to(torch.uint8).cpu().numpy().tobytes())
