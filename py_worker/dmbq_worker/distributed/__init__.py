"""The worker as a torch.distributed job: rank 0 serves the orchestrator, the other ranks follow its requests.

Global batch = the configured batch size; each of the N ranks trains on batch / N samples of it, so an N-rank run
computes what a 1-rank run with the same batch computes (up to floating-point summation order).
"""

from __future__ import annotations

from dmbq_worker.distributed.runtime import RankGroup, current, init_from_env, shutdown

__all__ = ["RankGroup", "current", "init_from_env", "shutdown"]
