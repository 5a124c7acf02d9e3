"""Accuracy: the digits CNN trained at W2/A2 through the service on CPU beats 90% test accuracy.

2-bit Laplace weight table alpha = [1.594, 1.0], 2-bit uniform activations, first and last layers at 8 bits.
Bounded: 4 epochs of 22 steps (batch 64) on 1,437 images; a few seconds on an idle 2-core machine.
"""

from __future__ import annotations

from dmbq_worker.engine.service import TrainingService
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme


def test_digits_w2a2_beats_90_percent() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(configure_request("digits", epochs=4, augment=True, seed=0), ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    result = None
    for epoch in range(4):
        result = svc.run(pb.Run(evaluate=epoch == 3), ctx)
    assert isinstance(result, pb.EpochResult) and result.epoch == 4 and result.evaluated
    assert result.test_accuracy > 0.90, result.test_accuracy
