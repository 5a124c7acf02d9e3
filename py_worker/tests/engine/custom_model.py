"""A user factory for the model.factory test."""

from __future__ import annotations

from torch import nn


def tiny_mlp(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes))
