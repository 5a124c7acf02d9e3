"""RecalibrateBatchNorm: every BatchNorm's running statistics recomputed for the current (quantized) weights over
un-augmented training batches, each weighing the same; nothing else of the model or the training state moves."""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import pytest
import torch
from torch import nn

from dmbq_worker.engine import trainer as trainer_module
from dmbq_worker.engine.service import Session, TrainingService
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.server.loop import RequestLoop
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme

EVAL_BATCH = 64
TRAIN = 4 * EVAL_BATCH + 32  # four full eval batches and a short one, which recalibration leaves out
GARBAGE_MEAN, GARBAGE_VAR = 7.0, 123.0


def _configure(**kw: Any) -> pb.Configure:
    # augmented training batches: a recalibration over augmented images would not match the reference
    req = configure_request("digits", train_limit=TRAIN, test_limit=64, batch_size=32, augment=True, seed=5, **kw)
    req.dataset.eval_batch_size = EVAL_BATCH
    return req


def _trained(quantized: bool, steps: int = 5, req: pb.Configure | None = None) -> tuple[TrainingService, Session]:
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(req or _configure(), ctx)
    if quantized:
        svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    if steps:
        assert isinstance(svc.run(pb.Run(steps=steps), ctx), pb.EpochResult)
    assert svc._session is not None
    return svc, svc._session


def _norms(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _spoil(model: nn.Module) -> None:
    """Running statistics far from any real ones: a recalibration that kept any of them shows."""
    with torch.no_grad():
        for _, bn in _norms(model):
            bn.running_mean.fill_(GARBAGE_MEAN)  # type: ignore[union-attr]
            bn.running_var.fill_(GARBAGE_VAR)  # type: ignore[union-attr]
            bn.num_batches_tracked.fill_(999)  # type: ignore[union-attr]


def _train_batches(session: Session, count: int) -> list[torch.Tensor]:
    """The first `count` un-augmented training batches of the eval batch size."""
    xs = [x for x, _ in session.data.eval_batches("train", EVAL_BATCH)][:count]
    assert all(x.shape[0] == EVAL_BATCH for x in xs)
    return xs


def _reference(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Recalibrated by hand, on a copy: eval mode, BatchNorm in train mode with a cumulative average."""
    ref = copy.deepcopy(model).eval()
    for _, bn in _norms(ref):
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for x in batches:
            ref(x)
    return {n: (bn.running_mean.clone(), bn.running_var.clone()) for n, bn in _norms(ref)}  # type: ignore[union-attr]


def _first_norm_by_hand(model: nn.Module, batches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The first BatchNorm's statistics from its inputs: the plain mean over batches of per-batch channel means and
    unbiased variances (what momentum=None averages), the inputs captured with the model as recalibration runs it."""
    ref = copy.deepcopy(model).eval()
    for _, bn in _norms(ref):
        bn.train()
    first = _norms(ref)[0][1]
    seen: list[torch.Tensor] = []
    handle = first.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].detach().clone()))
    with torch.no_grad():
        for x in batches:
            ref(x)
    handle.remove()
    means = torch.stack([s.mean(dim=(0, 2, 3)) for s in seen])
    variances = torch.stack([s.var(dim=(0, 2, 3), unbiased=True) for s in seen])
    return means.mean(0), variances.mean(0)


@pytest.mark.parametrize("quantized", [False, True], ids=["fp", "w2a2"])
def test_the_statistics_are_those_of_the_current_weights_over_unaugmented_batches(quantized: bool) -> None:
    svc, session = _trained(quantized)
    _spoil(session.model)
    batches = _train_batches(session, 4)
    expected = _reference(session.model, batches)
    first_mean, first_var = _first_norm_by_hand(session.model, batches)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=0), RecordingContext())
    assert (reply.modules, reply.samples) == (3, 4 * EVAL_BATCH)  # the short fifth batch is left out
    assert reply.seconds >= 0
    for name, bn in _norms(session.model):
        mean, var = expected[name]
        assert torch.equal(bn.running_mean, mean), name  # type: ignore[arg-type]
        assert torch.equal(bn.running_var, var), name  # type: ignore[arg-type]
        assert int(bn.num_batches_tracked) == 4, name  # type: ignore[arg-type]
    first = _norms(session.model)[0][1]
    torch.testing.assert_close(first.running_mean, first_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.running_var, first_var, rtol=1e-5, atol=1e-6)
    # the reference is sensitive to what is checked: a momentum left at 0.1, or the last batch alone, differ
    momentum = copy.deepcopy(session.model)
    _spoil(momentum)
    with torch.no_grad():
        for _, bn in _norms(momentum):
            bn.reset_running_stats()
        momentum.eval()
        for _, bn in _norms(momentum):
            bn.train()
        for x in batches:
            momentum(x)
    assert not torch.allclose(_norms(momentum)[0][1].running_var, first_var, rtol=1e-3)  # type: ignore[arg-type]


def test_the_augmented_batches_would_give_other_statistics() -> None:
    """The training batches are augmented (a 1-pixel shift): statistics over them differ from the recalibrated ones,
    so the equality above does check that recalibration reads the un-augmented split."""
    svc, session = _trained(False)
    svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    trainer = session.trainer
    order = torch.arange(session.data.train_size)
    augmented = [x for x, _ in session.data.train_batches(order, 0, EVAL_BATCH, trainer.epoch)][:4]
    plain = _train_batches(session, 4)
    assert not torch.equal(torch.cat(augmented), torch.cat(plain))
    other = _reference(session.model, augmented)
    name, first = _norms(session.model)[0]
    assert not torch.allclose(other[name][1], first.running_var, rtol=1e-4)  # type: ignore[arg-type]


def _snapshot(session: Session) -> dict[str, Any]:
    model, trainer = session.model, session.trainer
    bn_keys = {f"{n}.{b}" for n, _ in _norms(model) for b in ("running_mean", "running_var", "num_batches_tracked")}
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items() if k not in bn_keys},
        "optimizer": copy.deepcopy(session.optimizer.torch_optimizer.state_dict()),
        "trainer": copy.deepcopy(trainer.state_dict()),
        "step_counter": trainer._step_counter.clone(),
        "rng": torch.get_rng_state(),
        "momenta": [bn.momentum for _, bn in _norms(model)],
        "training": [m.training for m in model.modules()],
        "clip_pending": [r.module.act_quant.init_clip_pending for r in session.refs],
        "lr": [g["lr"] for g in session.optimizer.torch_optimizer.param_groups],
    }


def _assert_same(before: Any, after: Any, where: str = "") -> None:
    if isinstance(before, torch.Tensor):
        assert isinstance(after, torch.Tensor) and before.dtype == after.dtype, where
        assert torch.equal(before, after), where
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), where
        for k in before:
            _assert_same(before[k], after[k], f"{where}.{k}")
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after), where
        for i, (a, b) in enumerate(zip(before, after)):
            _assert_same(a, b, f"{where}[{i}]")
    else:
        assert before == after, where


@pytest.mark.parametrize("quantized", [False, True], ids=["fp", "w2a2"])
def test_nothing_but_the_running_statistics_changes(quantized: bool) -> None:
    svc, session = _trained(quantized)
    for _, bn in _norms(session.model):
        bn.momentum = 0.25  # not the default: restored, not reset
    _spoil(session.model)
    storage = [(bn.running_mean.data_ptr(), bn.running_var.data_ptr()) for _, bn in _norms(session.model)]  # type: ignore[union-attr]
    before = _snapshot(session)
    assert all(before["training"])
    svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    _assert_same(before, _snapshot(session))
    # in place: a captured training step reads these very buffers
    assert storage == [(bn.running_mean.data_ptr(), bn.running_var.data_ptr()) for _, bn in _norms(session.model)]  # type: ignore[union-attr]
    assert all(float(bn.running_var.min()) < GARBAGE_VAR for _, bn in _norms(session.model))  # type: ignore[union-attr]
    # and training goes on from there
    assert isinstance(svc.run(pb.Run(steps=2), RecordingContext()), pb.EpochResult)


def test_a_pending_clip_initialisation_stays_pending() -> None:
    """act_clip_init = 0: the clips come from the first training batch, not from a recalibration before it."""
    req = _configure()
    req.quant.act_clip_init = 0.0
    svc, session = _trained(True, steps=0, req=req)
    pending = [r.name for r in session.refs if r.module.act_quant.init_clip_pending]
    assert pending
    before = _snapshot(session)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    assert reply.modules == 3
    _assert_same(before, _snapshot(session))


def test_batches_limits_the_count_and_more_than_there_are_takes_all() -> None:
    svc, session = _trained(True)
    expected = _reference(session.model, _train_batches(session, 2))
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=2), RecordingContext())
    assert (reply.modules, reply.samples) == (3, 2 * EVAL_BATCH)
    for name, bn in _norms(session.model):
        assert int(bn.num_batches_tracked) == 2, name  # type: ignore[arg-type]
        assert torch.equal(bn.running_mean, expected[name][0]), name  # type: ignore[arg-type]
        assert torch.equal(bn.running_var, expected[name][1]), name  # type: ignore[arg-type]
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=50), RecordingContext())
    assert reply.samples == 4 * EVAL_BATCH


def test_a_split_shorter_than_one_batch_uses_its_only_batch() -> None:
    req = _configure()
    req.dataset.eval_batch_size = 512  # more than the 288 training images
    svc, _ = _trained(False, steps=1, req=req)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    assert (reply.modules, reply.samples) == (3, TRAIN)


def test_a_model_without_batchnorm_changes_nothing() -> None:
    req = _configure()
    req.model.factory = "tests.engine.custom_model:tiny_mlp"
    svc, session = _trained(False, steps=2, req=req)
    before = _snapshot(session)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    assert (reply.modules, reply.samples) == (0, 0)
    _assert_same(before, _snapshot(session))


def test_a_job_whose_batches_cannot_be_shared_evenly_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    svc, session = _trained(False, steps=1)
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    monkeypatch.setattr(trainer_module, "world_size", lambda: 2)  # as one rank of a 2-rank job
    with pytest.raises(WorkerError) as err:
        svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=1), RecordingContext())
    assert err.value.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert err.value.field == "recalibrate_batch_norm.batches" and "2 ranks" in err.value.message
    _assert_same(before, session.model.state_dict())
    assert session.model.training


class _ScriptedChannel:
    """The request loop's transport, in memory: the given frames in, the replies collected; closed once drained."""

    def __init__(self, requests: list[pb.Request]) -> None:
        self._frames = deque(r.SerializeToString() for r in requests)
        self.replies: list[pb.Response] = []

    def receive(self, timeout_s: float) -> tuple[object, bytes] | None:
        return (b"peer", self._frames.popleft()) if self._frames else None

    def send(self, peer: object, frame: bytes) -> None:
        self.replies.append(pb.Response.FromString(frame))

    def closed(self) -> bool:
        return not self._frames

    def close(self) -> None:
        return None


def test_the_request_loop_serves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    recal = pb.RecalibrateBatchNorm(batches=3)
    svc = TrainingService()
    channel = _ScriptedChannel([
        pb.Request(id=1, recalibrate_batch_norm=recal),  # before Configure
        pb.Request(id=2, configure=_configure()),
        pb.Request(id=3, recalibrate_batch_norm=recal),
    ])
    RequestLoop(channel, lambda: svc).serve()
    by_id = {r.id: r for r in channel.replies if r.final}
    assert by_id[1].WhichOneof("body") == "error" and by_id[1].error.code == pb.ERROR_CODE_NOT_CONFIGURED
    assert "RecalibrateBatchNorm" in by_id[1].error.message
    assert by_id[2].WhichOneof("body") == "configured"
    done = by_id[3]
    assert done.WhichOneof("body") == "batch_norm_recalibrated"
    assert (done.batch_norm_recalibrated.modules, done.batch_norm_recalibrated.samples) == (3, 3 * EVAL_BATCH)
    # the same session as one rank of a 2-rank job: one batch cannot be shared, and the error names the field
    monkeypatch.setattr(trainer_module, "world_size", lambda: 2)
    channel = _ScriptedChannel([pb.Request(id=4, recalibrate_batch_norm=pb.RecalibrateBatchNorm(batches=1))])
    RequestLoop(channel, lambda: svc).serve()
    [refused] = channel.replies
    assert refused.id == 4 and refused.final and refused.WhichOneof("body") == "error"
    assert refused.error.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert refused.error.field == "recalibrate_batch_norm.batches"
