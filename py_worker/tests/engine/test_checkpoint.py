"""Checkpoints: a save/load round trip resumes bit-for-bit on CPU; files are written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dmbq_worker.engine.checkpoint import load_checkpoint_file, save_atomic, tensor_to_bytes
from dmbq_worker.engine.service import TrainingService
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant.levels import MAX_LEVELS
from dmbq_worker.quant.table_state import ROW_OF_SUFFIX, ROWS_SUFFIX, unpack_table_rows
from tests.engine.helpers import RecordingContext, configure_request, fp_digits_checkpoint, w2a2_scheme


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


def every_tensor(svc: TrainingService) -> dict[str, torch.Tensor]:
    """Parameters and all buffers, the quantizers' padded tables (kept out of the state dict in full) included."""
    assert svc._session is not None
    model = svc._session.model
    return {k: v.detach().clone() for k, v in [*model.named_parameters(), *model.named_buffers()]}


def assert_same_tensors(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


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
    assert_same_tensors(every_tensor(first), every_tensor(second))


def lba_step(scheme: pb.QuantScheme) -> pb.QuantScheme:
    """What an LBA step does between epochs: half of each 2-bit body layer's channels go to 1 bit."""
    changed = pb.QuantScheme()
    changed.CopyFrom(scheme)
    for ls in changed.layers:
        for attr in ("weight_bits_u8", "act_bits_u8"):
            bits = getattr(ls, attr)
            if bits and set(bits) == {2}:
                setattr(ls, attr, bytes([1]) * (len(bits) // 2) + bits[len(bits) // 2:])
    assert changed != scheme
    return changed


def test_a_run_whose_scheme_changed_resumes_with_the_scheme_of_its_checkpoint(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "lba.pt")
    ctx = RecordingContext()
    first, _ = quantized_digits_service()
    first.run(pb.Run(steps=3), ctx)  # LBA changes it between epochs; mid-epoch is the same path, shorter
    assert first._session is not None
    changed = lba_step(pb.QuantScheme.FromString(first._session.scheme_bytes))
    first.update_scheme(pb.UpdateScheme(scheme=changed), ctx)
    first.run(pb.Run(steps=2), ctx)
    first.save_checkpoint(pb.SaveCheckpoint(path=ckpt), ctx)
    assert pb.QuantScheme.FromString(tensor_to_bytes(load_checkpoint_file(ckpt)["scheme"])) == changed
    cont = first.run(pb.Run(steps=3), ctx)

    second, _ = quantized_digits_service()  # configured with the scheme before the change
    second.load_checkpoint(pb.LoadCheckpoint(path=ckpt), ctx)
    assert second._session is not None and second._session.scheme_bytes == changed.SerializeToString()
    resumed = second.run(pb.Run(steps=3), ctx)
    assert isinstance(cont, pb.EpochResult) and isinstance(resumed, pb.EpochResult)
    assert (resumed.global_step, resumed.train_loss) == (cont.global_step, cont.train_loss)
    assert_same_tensors(every_tensor(first), every_tensor(second))


def old_form_checkpoint(path: str, out: str) -> None:
    """The checkpoint as the worker wrote it before the compact tables: every [C, 256] / [C, 255] table in full."""
    payload = load_checkpoint_file(path)
    state: dict[str, torch.Tensor] = {}
    for key, value in payload["model"].items():
        if key.endswith(ROWS_SUFFIX):
            base = key[: -len(ROWS_SUFFIX)]
            row_of = payload["model"][base + ROW_OF_SUFFIX]
            width = MAX_LEVELS - 1 if base.endswith("thresholds") else MAX_LEVELS
            state[base] = unpack_table_rows(value, row_of, row_of.shape[0], width)
        elif not key.endswith(ROW_OF_SUFFIX):
            state[key] = value
    payload["model"] = state
    save_atomic(payload, out)


def test_an_old_form_checkpoint_still_resumes_bit_for_bit(tmp_path: Path) -> None:
    ckpt, old = str(tmp_path / "new.pt"), str(tmp_path / "old.pt")
    ctx = RecordingContext()
    first, _ = quantized_digits_service()
    first.run(pb.Run(steps=5), ctx)  # then on into epoch 2
    first.save_checkpoint(pb.SaveCheckpoint(path=ckpt), ctx)
    old_form_checkpoint(ckpt, old)
    assert "features.3.weight_quant.levels" in load_checkpoint_file(old)["model"]
    assert Path(old).stat().st_size > 2 * Path(ckpt).stat().st_size
    cont = first.run(pb.Run(steps=4), ctx)

    second, _ = quantized_digits_service()
    loaded = second.load_checkpoint(pb.LoadCheckpoint(path=old), ctx)
    assert (loaded.epoch, loaded.global_step) == (0, 5)
    resumed = second.run(pb.Run(steps=4), ctx)
    assert isinstance(cont, pb.EpochResult) and isinstance(resumed, pb.EpochResult)
    assert resumed.train_loss == cont.train_loss
    assert_same_tensors(every_tensor(first), every_tensor(second))


def test_init_weights_starts_a_quantized_run_from_an_fp_checkpoint(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "fp.pt")
    ctx = RecordingContext()
    cfg, fp_weights = fp_digits_checkpoint(ckpt, steps=4)

    req = configure_request("digits", train_limit=256, test_limit=64, batch_size=32, seed=4)
    req.init_weights = ckpt
    req.scheme.CopyFrom(w2a2_scheme(list(cfg.layers)))
    quant = TrainingService()
    quant.configure(req, ctx)
    assert quant._session is not None
    for key, value in fp_weights.items():
        assert torch.equal(model_state(quant)[key], value), key
    for ref in quant._session.refs:  # scales from the loaded weights, not the random init
        expected = ref.module.weight.detach().reshape(ref.module.weight.shape[0], -1).abs().mean(dim=1)
        assert torch.equal(ref.module.weight_quant.scale, expected), ref.name
    result = quant.run(pb.Run(steps=2), ctx)
    assert isinstance(result, pb.EpochResult) and math.isfinite(result.train_loss)


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
