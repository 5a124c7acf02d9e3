"""A model that is not in the zoo, for examples/custom-model.ts: the worker imports
`examples.custom_model:build` (local code the user names; nothing received over the wire is executed)."""

from __future__ import annotations

from torch import nn


def build(num_classes: int) -> nn.Module:
    # digits are 1x8x8: two convs, a pooled feature vector, a classifier.
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(128, num_classes),
    )
