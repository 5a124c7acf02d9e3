"""Checkpoints: a save/load round trip resumes bit-for-bit on CPU; files are written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dmbq_worker.engine.checkpoint import load_checkpoint_file, save_atomic
from dmbq_worker.engine.service import TrainingService
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme


def quantized_digits_service(seed: int = 3) -> tuple[TrainingService, list[pb.LayerInfo]]:
    # 8 steps an epoch; augmentation on (its RNG is part of the state); clips set from the first batch
    req = configure_request("digits", train_limit=256, test_limit=64, batch_size=32, epochs=3, seed=seed,
                            augment=True)
    req.quant.act_clip_init = 0
    svc = TrainingService()
    cfg = svc.configure(req, RecordingContext())
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), RecordingContext())
    return svc, list(cfg.layers)


def model_state(svc: TrainingService) -> dict[str, torch.Tensor]:
    assert svc._session is not None
    return {k: v.detach().clone() for k, v in svc._session.model.state_dict().items()}


def test_round_trip_resumes_bit_for_bit(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "run" / "ckpt.pt")
    ctx = RecordingContext()
    first, _ = quantized_digits_service()
    first.run(pb.Run(steps=5), ctx)  # stop mid-epoch: the epoch must continue after the load
    saved = first.save_checkpoint(pb.SaveCheckpoint(path=ckpt, extra=b'{"policy": 1}'), ctx)
    assert saved.bytes > 0 and Path(saved.path).is_file()
    cont = first.run(pb.Run(steps=7), ctx)  # crosses into epoch 2
    expected = model_state(first)

    second, _ = quantized_digits_service()
    loaded = second.load_checkpoint(pb.LoadCheckpoint(path=ckpt), ctx)
    assert (loaded.epoch, loaded.global_step, loaded.extra) == (0, 5, b'{"policy": 1}')
    resumed = second.run(pb.Run(steps=7), ctx)
    got = model_state(second)
    assert isinstance(cont, pb.EpochResult) and isinstance(resumed, pb.EpochResult)
    assert (resumed.epoch, resumed.global_step, resumed.lr) == (cont.epoch, cont.global_step, cont.lr)
    assert resumed.train_loss == cont.train_loss
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_weights_only_load_starts_a_fresh_run(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "fp.pt")
    ctx = RecordingContext()
    svc, _ = quantized_digits_service()
    svc.run(pb.Run(steps=3), ctx)
    svc.save_checkpoint(pb.SaveCheckpoint(path=ckpt), ctx)
    weights = model_state(svc)["features.3.weight"]
    other, _ = quantized_digits_service(seed=9)
    loaded = other.load_checkpoint(pb.LoadCheckpoint(path=ckpt, weights_only=True), ctx)
    assert (loaded.epoch, loaded.global_step) == (0, 0)
    assert torch.equal(model_state(other)["features.3.weight"], weights)
    # Configure.init_weights does the same before the scheme is applied
    req = configure_request("digits", train_limit=256, test_limit=64, batch_size=32, epochs=1)
    req.init_weights = ckpt
    third = TrainingService()
    third.configure(req, ctx)
    assert torch.equal(model_state(third)["features.3.weight"], weights)


def test_atomic_save_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_atomic({"format": "dmbq-engine/1", "v": torch.ones(3)}, str(path))
    save_atomic({"format": "dmbq-engine/1", "v": torch.zeros(3)}, str(path))
    assert torch.equal(load_checkpoint_file(str(path))["v"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]

    class Unpicklable:
        def __reduce__(self) -> tuple[object, ...]:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_atomic({"format": "dmbq-engine/1", "v": Unpicklable()}, str(path))
    assert torch.equal(load_checkpoint_file(str(path))["v"], torch.zeros(3))  # the old file survives
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_bad_checkpoints_are_checkpoint_errors(tmp_path: Path) -> None:
    svc, _ = quantized_digits_service()
    ctx = RecordingContext()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    torch.save({"format": "something else"}, tmp_path / "alien.pt")
    for name in ("missing.pt", "junk.pt", "alien.pt"):
        with pytest.raises(WorkerError) as err:
            svc.load_checkpoint(pb.LoadCheckpoint(path=str(tmp_path / name)), ctx)
        assert err.value.code == pb.ERROR_CODE_CHECKPOINT and name in err.value.message
    # a checkpoint of another model does not fit
    resnet = TrainingService()
    resnet.configure(configure_request("synthetic", model="resnet20", train_limit=64, test_limit=16,
                                       batch_size=32), ctx)
    resnet.save_checkpoint(pb.SaveCheckpoint(path=str(tmp_path / "r.pt")), ctx)
    with pytest.raises(WorkerError) as err:
        svc.load_checkpoint(pb.LoadCheckpoint(path=str(tmp_path / "r.pt")), ctx)
    assert err.value.code == pb.ERROR_CODE_CHECKPOINT
