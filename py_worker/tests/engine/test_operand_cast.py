"""The one-launch bf16 cast of the FP conv / linear operands (engine/operand_cast.py) trains bit for bit as autocast's
own per-layer casts, for a plain nn model and for the service's converted model (FP, then W2/A2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dmbq_worker.engine.data import DataOptions, load_data
from dmbq_worker.engine.operand_cast import OPERAND_CAST_ENV, OperandCast
from dmbq_worker.engine.optim import OptimizerOptions, TrainingOptimizer
from dmbq_worker.engine.schedule import LrSchedule
from dmbq_worker.engine.service import TrainingService
from dmbq_worker.engine.trainer import LoopOptions, Trainer
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme


def _plain_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )


def _train_plain(monkeypatch: pytest.MonkeyPatch, setting: str, steps: int) -> tuple[list[torch.Tensor], int]:
    monkeypatch.setenv(OPERAND_CAST_ENV, setting)
    torch.manual_seed(0)
    device = torch.device("cpu")
    data = load_data(DataOptions(name="digits", path="", augment=True, train_limit=128, test_limit=32, num_workers=0,
                                 image_size=0, seed=0, device=device, channels_last=False))
    model = _plain_cnn()
    opt = TrainingOptimizer(model, OptimizerOptions("sgd", 0.1, 0.9, 1e-4, False, 1.0), device)
    trainer = Trainer(model, data, opt, LrSchedule("cosine", 2, 0.1), LoopOptions(32, 64, 0, True, False, False), device)
    trainer.run(steps, progress_every=100, on_progress=lambda p: None, cancelled=lambda: False)
    launches = trainer._operand_cast.launches if trainer._operand_cast is not None else 0
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())  # every lent copy was given back
    return [p.detach().clone() for p in model.parameters()], launches


def test_a_plain_models_casts_in_one_launch_train_bit_for_bit_as_autocasts(monkeypatch: pytest.MonkeyPatch) -> None:
    on, launches = _train_plain(monkeypatch, "1", 6)
    off, none = _train_plain(monkeypatch, "0", 6)
    assert launches == 6 and none == 0
    for a, b in zip(on, off):
        assert torch.equal(a, b)


def _train_service(monkeypatch: pytest.MonkeyPatch, setting: str) -> tuple[list[torch.Tensor], list[int]]:
    monkeypatch.setenv(OPERAND_CAST_ENV, setting)
    svc, ctx = TrainingService(), RecordingContext()
    req = configure_request("digits", train_limit=256, test_limit=64, batch_size=32, epochs=2)
    req.precision = "bf16"
    cfg = svc.configure(req, ctx)
    assert svc._session is not None
    cast = svc._session.trainer._operand_cast
    counts = []
    svc.run(pb.Run(steps=3), ctx)  # FP: every weight and bias in the batch
    counts.append(cast.launches if cast is not None else 0)
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    svc.run(pb.Run(steps=3, sensitivity=True), ctx)  # W2/A2: quantized weights are not lent, biases are
    counts.append(cast.launches if cast is not None else 0)
    model = svc._session.model
    return [t.detach().clone() for t in model.state_dict().values() if t.is_floating_point()], counts


def test_the_services_fp_then_w2a2_run_trains_bit_for_bit_with_the_one_launch_cast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on, counts = _train_service(monkeypatch, "1")
    off, none = _train_service(monkeypatch, "0")
    assert counts[0] == 3 and none == [0, 0]
    for a, b in zip(on, off):
        assert torch.equal(a, b)


def test_which_tensors_are_lent() -> None:
    """FP weights and every bias; not a quantizing layer's weight, not outside autocast; all given back."""
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(configure_request("digits", train_limit=64, test_limit=32, batch_size=32), ctx)
    assert svc._session is not None
    model = svc._session.model
    cast = OperandCast(model)
    cast.run()  # outside autocast: nothing
    assert cast.launches == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast.run()
        fp_lent = [(type(m).__name__, name) for m, name, _ in cast._lent]
        cast.finish()
    assert cast.launches == 1 and any(n == "weight" for _, n in fp_lent)
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast.run()
        lent = [name for _, name, _ in cast._lent]
        assert all(t.dtype == torch.bfloat16 for m, name, _ in cast._lent for t in [m._parameters[name]])
        cast.finish()
    assert "weight" not in lent
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())


def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmbq_worker.engine.operand_cast import operand_cast_enabled

    monkeypatch.setenv(OPERAND_CAST_ENV, "yes")
    with pytest.raises(ValueError, match="DMBQ_OPERAND_CAST: 'yes'"):
        operand_cast_enabled()
