"""On/off switches of the worker's fast paths, read from the environment (to compare a fast path with the plain one).
A module of its own, outside engine and quant, so both import it without importing each other."""

from __future__ import annotations

import os


def switch_on(name: str) -> bool:
    """`name` = 1 (the default) or 0; anything else is refused, naming the variable, rather than read as either."""
    mode = os.environ.get(name, "1")
    if mode not in ("0", "1"):
        raise ValueError(f"{name}: {mode!r} is not 1 (on, the default) or 0 (off)")
    return mode == "1"
