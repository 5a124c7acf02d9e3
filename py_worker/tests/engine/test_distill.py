"""Knowledge distillation (Configure.distill): the loss, the frozen teacher, and the fields' errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dmbq_worker.engine.distill import distillation_loss
from dmbq_worker.engine.service import TrainingService
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import RecordingContext, configure_request, fp_digits_checkpoint, w2a2_scheme


def test_the_loss_is_the_hard_and_soft_terms_mixed_by_alpha() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(6, 5), torch.randn(6, 5)
    y = torch.randint(0, 5, (6,))
    T = 3.0
    p_t = torch.softmax(t / T, dim=1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / T, dim=1))).sum(dim=1).mean()  # KL(p_t || p_s), by hand
    ce = F.cross_entropy(s, y)
    for alpha in (0.25, 1.0):
        expected = (1 - alpha) * ce + alpha * T * T * kl
        assert torch.allclose(distillation_loss(s, t, y, alpha, T), expected, atol=1e-6)
    # a student equal to its teacher pays only the hard term (the KL is 0)
    assert torch.allclose(distillation_loss(t, t, y, 0.5, T), 0.5 * F.cross_entropy(t, y), atol=1e-6)


def test_a_quantized_run_distils_from_its_fp_checkpoint(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "fp.pt")
    layers = list(fp_digits_checkpoint(ckpt, steps=6)[0].layers)
    ctx = RecordingContext()

    def run(alpha: float) -> tuple[TrainingService, float]:
        req = configure_request("digits", train_limit=256, test_limit=64, batch_size=32, seed=4)
        req.init_weights = ckpt
        req.scheme.CopyFrom(w2a2_scheme(layers))
        if alpha:
            req.distill.CopyFrom(pb.Distillation(teacher_weights=ckpt, alpha=alpha, temperature=2.0))
        svc = TrainingService()
        svc.configure(req, ctx)
        result = svc.run(pb.Run(steps=3), ctx)
        assert isinstance(result, pb.EpochResult) and math.isfinite(result.train_loss)
        return svc, result.train_loss

    svc, kd_loss = run(0.7)
    _, plain_loss = run(0.0)
    assert kd_loss != plain_loss  # the teacher's term is in the loss
    assert svc._session is not None
    distiller = svc._session.trainer.distiller
    assert distiller is not None and not distiller.teacher.training
    assert all(not p.requires_grad and p.grad is None for p in distiller.teacher.parameters())  # frozen
    fp_weights = torch.load(ckpt, weights_only=True)["model"]
    for name, value in distiller.teacher.state_dict().items():  # unchanged by the student's steps
        if name in fp_weights and "_quant." not in name:
            assert torch.equal(value, fp_weights[name]), name


@pytest.mark.parametrize(("field", "distill", "message"), [
    ("distill.teacher_weights", pb.Distillation(), "required"),
    ("distill.teacher_weights", pb.Distillation(teacher_weights="/nonexistent/fp.pt"), "does not exist"),
    ("distill.alpha", pb.Distillation(teacher_weights="x", alpha=1.5), "(0, 1]"),
    ("distill.temperature", pb.Distillation(teacher_weights="x", temperature=-1.0), "positive"),
])
def test_bad_distillation_fields_are_named(field: str, distill: pb.Distillation, message: str) -> None:
    req = configure_request("digits", train_limit=64, test_limit=32, batch_size=32)
    req.distill.CopyFrom(distill)
    with pytest.raises(WorkerError) as err:
        TrainingService().configure(req, RecordingContext())
    assert err.value.field == field and message in str(err.value)
