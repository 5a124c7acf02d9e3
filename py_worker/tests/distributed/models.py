"""A model factory for the distributed tests (`model.factory = "tests.distributed.models:digits_cnn_avgpool"`)."""

from __future__ import annotations

from torch import nn

from dmbq_worker.engine.models import DigitsCNN


def digits_cnn_avgpool(num_classes: int) -> nn.Module:
    """The digits CNN with its two max-pools replaced by average pools: no argmax for a 1-ulp difference to flip."""
    model = DigitsCNN(num_classes)
    for i, layer in enumerate(model.features):
        if isinstance(layer, nn.MaxPool2d):
            model.features[i] = nn.AvgPool2d(2)
    return model
