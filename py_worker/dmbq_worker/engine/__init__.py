"""The worker's training engine: model zoo, datasets, the (CUDA-graph) training loop, checkpoints, and
TrainingService, which serves the contract's Configure/Run/... requests."""

from __future__ import annotations

from dmbq_worker.engine.service import TrainingService

__all__ = ["TrainingService"]
