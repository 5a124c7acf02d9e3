"""RecalibrateBatchNorm: every BatchNorm's running statistics recomputed for the current (quantized) weights over the
training batches as training draws them (augmented, the training batch size, the order and draws of the epoch after
the last one trained), each weighing the same; nothing else of the model or the training state moves."""

from __future__ import annotations

import copy
import pickle
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from dmbq_worker.engine.service import Session, TrainingService
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.server.loop import RequestLoop
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme, write_image_folder

BATCH = 32
EVAL_BATCH = 64  # not the training batch size: a recalibration over eval-size batches would show
STEPS_PER_EPOCH = 5
TRAIN = STEPS_PER_EPOCH * BATCH + 16  # five training batches and 16 images that no batch takes (drop-last)
TRAINED_STEPS = STEPS_PER_EPOCH + 2  # the trainer stands inside epoch 1, two steps in
GARBAGE_MEAN, GARBAGE_VAR = 7.0, 123.0


def _configure(**kw: Any) -> pb.Configure:
    # augmented training batches (a 1-pixel shift and crop): they differ from the plain images
    req = configure_request("digits", train_limit=TRAIN, test_limit=64, batch_size=BATCH, augment=True, seed=5, **kw)
    req.dataset.eval_batch_size = EVAL_BATCH
    return req


def _trained(quantized: bool, steps: int = TRAINED_STEPS,
             req: pb.Configure | None = None) -> tuple[TrainingService, Session]:
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


def _train_batches(session: Session, count: int = STEPS_PER_EPOCH, *, epoch: int | None = None,
                   start: int = 0, batch_size: int = BATCH) -> list[torch.Tensor]:
    """The first `count` training batches of `epoch` (the trainer's epoch: the one after the last trained) as
    training draws them, from batch `start` on."""
    e = session.trainer.epoch if epoch is None else epoch
    batches = session.data.train_batches(session.trainer.epoch_order(e), start, batch_size, e)
    xs = [x for x, _ in batches][:count]
    assert xs and all(x.shape[0] == batch_size for x in xs)
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
def test_the_statistics_are_those_of_the_current_weights_over_the_next_epochs_training_batches(
        quantized: bool) -> None:
    svc, session = _trained(quantized)
    assert (session.trainer.epoch, session.trainer.step_in_epoch) == (1, 2)
    _spoil(session.model)
    batches = _train_batches(session)  # epoch 1 from its start, not from the trainer's position in it
    expected = _reference(session.model, batches)
    first_mean, first_var = _first_norm_by_hand(session.model, batches)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=0), RecordingContext())
    assert (reply.modules, reply.samples) == (3, STEPS_PER_EPOCH * BATCH)  # the whole epoch, drop-last
    assert reply.seconds >= 0
    for name, bn in _norms(session.model):
        mean, var = expected[name]
        assert torch.equal(bn.running_mean, mean), name  # type: ignore[arg-type]
        assert torch.equal(bn.running_var, var), name  # type: ignore[arg-type]
        assert int(bn.num_batches_tracked) == STEPS_PER_EPOCH, name  # type: ignore[arg-type]
    first = _norms(session.model)[0][1]
    torch.testing.assert_close(first.running_mean, first_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.running_var, first_var, rtol=1e-5, atol=1e-6)
    # the reference is sensitive to what is checked: a momentum left at 0.1 (the last batches weigh most) differs
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


def test_other_batches_would_give_other_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equality above does check which batches recalibration reads: the plain images (in the split's order, or
    in the epoch's order), another epoch's order and draws, batches of the eval batch size, or the epoch from the
    trainer's position in it each give other statistics."""
    svc, session = _trained(False)
    trainer = session.trainer
    svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    got = {n: bn.running_var.clone() for n, bn in _norms(session.model)}  # type: ignore[union-attr]
    chosen = torch.cat(_train_batches(session))
    plain_split = [x for x, _ in session.data.eval_batches("train", BATCH)][:STEPS_PER_EPOCH]
    with monkeypatch.context() as m:
        m.setattr(session.data, "augment", False)
        plain_epoch = _train_batches(session)  # the same images in the same order, not augmented
    others = {
        "plain images, the split's order": plain_split,
        "plain images, the epoch's order": plain_epoch,
        "the epoch trained last": _train_batches(session, epoch=trainer.epoch - 1),
        "the epoch after": _train_batches(session, epoch=trainer.epoch + 1),
        "eval-size batches": _train_batches(session, TRAIN // EVAL_BATCH, batch_size=EVAL_BATCH),
        "from the trainer's position": _train_batches(session, start=trainer.step_in_epoch),
    }
    for what, batches in others.items():
        if batches[0].shape == chosen[:BATCH].shape and len(batches) == STEPS_PER_EPOCH:
            assert not torch.equal(torch.cat(batches), chosen), what
        other = _reference(session.model, batches)
        assert any(not torch.allclose(other[n][1], got[n], rtol=1e-4) for n in got), what


def _snapshot(session: Session) -> dict[str, Any]:
    model, trainer = session.model, session.trainer
    bn_keys = {f"{n}.{b}" for n, _ in _norms(model) for b in ("running_mean", "running_var", "num_batches_tracked")}
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items() if k not in bn_keys},
        "optimizer": copy.deepcopy(session.optimizer.torch_optimizer.state_dict()),
        "trainer": copy.deepcopy(trainer.state_dict()),  # epoch, step in epoch, global step, torch's RNG
        "batches": trainer._batches,  # the epoch's batch iterator training takes its next batch from: the same one
        "step_counter": trainer._step_counter.clone(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": pickle.dumps(np.random.get_state()),
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


def _trained_state(session: Session) -> dict[str, Any]:
    """What training produces, outside the running statistics (which a recalibration is meant to change)."""
    snap = _snapshot(session)
    return {k: snap[k] for k in ("state", "optimizer", "trainer", "step_counter")}


@pytest.mark.parametrize("quantized", [False, True], ids=["fp", "w2a2"])
def test_nothing_but_the_running_statistics_changes(quantized: bool) -> None:
    svc, session = _trained(quantized)
    twin_svc, twin = _trained(quantized)  # the same run, never recalibrated
    assert session.trainer._batches is not None  # mid-epoch: training has its batch iterator open
    for s in (session, twin):
        for _, bn in _norms(s.model):
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
    # and training goes on from there as if nothing had run: the same batches, across the epoch's end
    for s in (svc, twin_svc):
        assert isinstance(s.run(pb.Run(steps=STEPS_PER_EPOCH), RecordingContext()), pb.EpochResult)
    _assert_same(_trained_state(twin), _trained_state(session))


def test_a_failed_forward_puts_the_old_statistics_back() -> None:
    svc, session = _trained(True)
    _spoil(session.model)
    before_state = {k: v.clone() for k, v in session.model.state_dict().items()}
    before = _snapshot(session)
    last = _norms(session.model)[-1][1]
    calls = 0

    def fail_on_the_third(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("a forward fails")

    handle = last.register_forward_hook(fail_on_the_third)
    try:
        with pytest.raises(RuntimeError, match="a forward fails"):
            svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    finally:
        handle.remove()
    assert calls == 3  # two batches went into the statistics before the failure
    _assert_same(before_state, session.model.state_dict())  # the running statistics too
    _assert_same(before, _snapshot(session))


def _image_folder(root: Path) -> None:
    write_image_folder(root, {"train": 6, "val": 2}, lambda i: (20 + i, 24))


def test_a_source_that_draws_from_the_shared_generators_leaves_them_as_they_were(tmp_path: Path) -> None:
    """The image folder crops and flips with numpy's global generator and seeds its loader from torch's: reading an
    epoch moves both, and recalibration puts them back, so the next epoch trains on the draws it would have had."""
    _image_folder(tmp_path)
    req = configure_request("imagefolder", path=str(tmp_path), model="resnet20", batch_size=4, seed=2)
    req.dataset.image_size = 16
    svc, session = _trained(False, steps=2, req=req)
    trainer = session.trainer
    torch_rng, numpy_rng = torch.get_rng_state(), pickle.dumps(np.random.get_state())
    list(session.data.train_batches(trainer.epoch_order(trainer.epoch), 0, 4, trainer.epoch))
    assert not torch.equal(torch_rng, torch.get_rng_state())  # the test is sensitive: reading an epoch moves both
    assert numpy_rng != pickle.dumps(np.random.get_state())
    torch.set_rng_state(torch_rng)
    np.random.set_state(pickle.loads(numpy_rng))
    _spoil(session.model)
    before = _snapshot(session)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    assert reply.modules == len(_norms(session.model)) > 0 and reply.samples == 12  # three batches of 4
    _assert_same(before, _snapshot(session))
    assert all(float(bn.running_var.min()) < GARBAGE_VAR for _, bn in _norms(session.model))  # type: ignore[union-attr]


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


def test_batches_limits_the_count_and_more_than_the_epoch_holds_takes_the_epoch() -> None:
    svc, session = _trained(True)
    expected = _reference(session.model, _train_batches(session, 2))
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=2), RecordingContext())
    assert (reply.modules, reply.samples) == (3, 2 * BATCH)
    for name, bn in _norms(session.model):
        assert int(bn.num_batches_tracked) == 2, name  # type: ignore[arg-type]
        assert torch.equal(bn.running_mean, expected[name][0]), name  # type: ignore[arg-type]
        assert torch.equal(bn.running_var, expected[name][1]), name  # type: ignore[arg-type]
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(batches=50), RecordingContext())
    assert reply.samples == STEPS_PER_EPOCH * BATCH
    assert all(int(bn.num_batches_tracked) == STEPS_PER_EPOCH for _, bn in _norms(session.model))  # type: ignore[arg-type]


def test_a_model_without_batchnorm_changes_nothing() -> None:
    req = _configure()
    req.model.factory = "tests.engine.custom_model:tiny_mlp"
    svc, session = _trained(False, steps=2, req=req)
    before = _snapshot(session)
    reply = svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    assert (reply.modules, reply.samples) == (0, 0)
    _assert_same(before, _snapshot(session))


def _assert_refused(error: WorkerError | pb.Error) -> None:
    assert error.code == pb.ERROR_CODE_INVALID_ARGUMENT
    assert error.field == "dataset.batch_size"
    assert f"{BATCH - 1} training images hold no batch of {BATCH}" in error.message, error.message


def test_a_training_split_smaller_than_one_batch_is_refused_before_anything_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure refuses such a split already (the Trainer does); recalibration says so too rather than averaging
    over no batch."""
    svc, session = _trained(False, steps=1)
    _spoil(session.model)
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    snap = _snapshot(session)
    monkeypatch.setattr(session.data, "train_size", BATCH - 1)
    with pytest.raises(WorkerError) as err:
        svc.recalibrate_batch_norm(pb.RecalibrateBatchNorm(), RecordingContext())
    _assert_refused(err.value)
    _assert_same(before, session.model.state_dict())
    _assert_same(snap, _snapshot(session))


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
    assert (done.batch_norm_recalibrated.modules, done.batch_norm_recalibrated.samples) == (3, 3 * BATCH)
    # the same session with a training split smaller than one batch: an error reply that names the field
    assert svc._session is not None
    monkeypatch.setattr(svc._session.data, "train_size", BATCH - 1)
    channel = _ScriptedChannel([pb.Request(id=4, recalibrate_batch_norm=pb.RecalibrateBatchNorm())])
    RequestLoop(channel, lambda: svc).serve()
    [refused] = channel.replies
    assert refused.id == 4 and refused.final and refused.WhichOneof("body") == "error"
    _assert_refused(refused.error)
