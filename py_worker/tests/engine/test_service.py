"""TrainingService over the contract on CPU: validation names fields, cancel/continue, NaN, progress, stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmbq_worker.engine.service import TrainingService
from dmbq_worker.errors import WorkerError
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.engine.helpers import RecordingContext, configure_request, fp_digits_checkpoint, w2a2_scheme


def small_digits(**kw: object) -> pb.Configure:
    # 256 training samples in batches of 32: 8 steps an epoch
    base: dict[str, object] = dict(train_limit=256, test_limit=64, batch_size=32, epochs=2)
    base.update(kw)
    return configure_request("digits", **base)  # type: ignore[arg-type]


def field_of(fn: object, *args: object) -> str:
    with pytest.raises(WorkerError) as err:
        fn(*args)  # type: ignore[operator]
    assert err.value.code == pb.ERROR_CODE_INVALID_ARGUMENT, err.value.message
    assert err.value.message.startswith(err.value.field)
    return err.value.field


def test_configure_validation_names_the_field() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    cases: list[tuple[pb.Configure, str]] = []
    req = small_digits(); req.model.name = "alexnet"; cases.append((req, "model.name"))
    req = small_digits(); req.dataset.name = "mnist"; cases.append((req, "dataset.name"))
    req = small_digits(); req.dataset.name = ""; cases.append((req, "dataset.name"))
    req = small_digits(epochs=0); cases.append((req, "schedule.epochs"))
    req = small_digits(); req.schedule.kind = "linear"; cases.append((req, "schedule.kind"))
    req = small_digits(); req.optimizer.name = "lion"; cases.append((req, "optimizer.name"))
    req = small_digits(); req.optimizer.lr = -1; cases.append((req, "optimizer.lr"))
    req = small_digits(); req.precision = "fp8"; cases.append((req, "precision"))
    req = small_digits(); req.device = "tpu"; cases.append((req, "device"))
    req = small_digits(); req.quant.scale_ema_decay = 1.5; cases.append((req, "quant.scale_ema_decay"))
    req = small_digits(); req.quant.weight_scale = 7; cases.append((req, "quant.weight_scale"))  # type: ignore[assignment]
    req = small_digits(batch_size=1000); cases.append((req, "dataset.batch_size"))
    req = small_digits(); req.model.factory = "nocolon"; cases.append((req, "model.factory"))
    req = small_digits(); req.model.name = "resnet20"; cases.append((req, "model.name"))  # 3x32x32 model, 1x8x8 data
    for req, field in cases:
        assert field_of(svc.configure, req, ctx) == field


def test_requests_before_configure_are_not_configured() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    with pytest.raises(WorkerError) as err:
        svc.run(pb.Run(), ctx)
    assert err.value.code == pb.ERROR_CODE_NOT_CONFIGURED


def test_capabilities_are_cheap_and_list_models_and_datasets() -> None:
    caps = TrainingService().capabilities()
    assert caps["device_kind"] in ("cpu", "cuda")
    assert "resnet20" in caps["models"] and "digits" in caps["datasets"]


def test_configured_describes_the_converted_layers() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(small_digits(), ctx)
    assert [l.name for l in cfg.layers] == ["features.0", "features.3", "features.7", "classifier"]
    assert [l.role for l in cfg.layers] == [pb.LAYER_ROLE_FIRST, pb.LAYER_ROLE_BODY, pb.LAYER_ROLE_BODY,
                                            pb.LAYER_ROLE_LAST]
    assert [l.act_elems_per_in_channel for l in cfg.layers] == [64, 64, 16, 1]  # 8x8, 8x8, 4x4, linear
    assert cfg.layers[1].params_per_out_channel == 32 * 9 and list(cfg.layers[1].kernel) == [3, 3]
    assert (cfg.train_size, cfg.test_size, cfg.steps_per_epoch, cfg.num_classes) == (256, 64, 8, 10)
    assert cfg.fp_param_bytes >= 4 * cfg.total_params and cfg.device == "cpu"


def test_unknown_scheme_layer_names_the_field() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(small_digits(), ctx)
    scheme = w2a2_scheme(list(cfg.layers))
    scheme.layers[1].name = "nope"
    assert field_of(svc.update_scheme, pb.UpdateScheme(scheme=scheme), ctx) == "scheme.layers[1].name"


def test_cancel_mid_epoch_then_continue_finishes_the_epoch() -> None:
    svc = TrainingService()
    svc.configure(small_digits(), RecordingContext())
    cancelling = RecordingContext(request_id=3, cancel_after=1)  # cancelled() is polled every 4 steps
    out = svc.run(pb.Run(), cancelling)
    assert isinstance(out, pb.Cancelled) and out.target == 3 and out.steps_done == 4
    rest = svc.run(pb.Run(), RecordingContext())
    assert isinstance(rest, pb.EpochResult)
    assert (rest.steps, rest.epoch, rest.global_step) == (4, 1, 8)
    full = svc.run(pb.Run(), RecordingContext())
    assert isinstance(full, pb.EpochResult) and (full.steps, full.epoch, full.global_step) == (8, 2, 16)


def test_progress_events_come_every_n_steps() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    svc.configure(small_digits(), RecordingContext())
    out = svc.run(pb.Run(steps=10, progress_every=3), ctx)
    assert isinstance(out, pb.EpochResult) and out.steps == 10 and out.epoch == 1
    assert [p.step for p in ctx.progress_events] == [3, 6, 9]
    assert all(p.steps_total == 10 and np.isfinite(p.loss) and p.samples_per_s > 0 for p in ctx.progress_events)


def test_absurd_lr_raises_non_finite_with_epoch_and_step() -> None:
    svc = TrainingService()
    svc.configure(small_digits(lr=1e6), RecordingContext())
    with pytest.raises(WorkerError) as err:
        for _ in range(3):
            svc.run(pb.Run(), RecordingContext())
    e = err.value
    assert e.code == pb.ERROR_CODE_NON_FINITE
    assert 0 <= e.step < 24 and e.epoch == e.step // 8
    assert f"step {e.step}" in e.message


def test_sensitivities_and_scales_come_back_per_quantized_layer() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(small_digits(), ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    out = svc.run(pb.Run(steps=4, sensitivity=True, lookahead=True, histogram_bins=16, evaluate=True), ctx)
    assert isinstance(out, pb.EpochResult) and out.evaluated and 0 <= out.test_accuracy <= 1
    by_name = {s.name: s for s in out.layers}
    body = cfg.layers[1]
    stats = by_name[body.name]
    sens = np.frombuffer(stats.weight_sensitivity_f32, dtype="<f4")
    assert sens.shape == (body.out_channels,) and (sens > 0).any()
    assert np.frombuffer(stats.act_sensitivity_lower_f32, dtype="<f4").shape == (body.in_channels,)
    assert np.frombuffer(stats.weight_hist.counts_f32, dtype="<f4").shape == (16,)
    # without collection: still the clips and scales of the quantized layers
    plain = svc.run(pb.Run(steps=2), ctx)
    assert isinstance(plain, pb.EpochResult)
    assert {s.name for s in plain.layers} == {l.name for l in cfg.layers}
    assert all(len(s.weight_scale_f32) == 4 * l.out_channels and len(s.act_clip_f32) == 4
               for s, l in zip(plain.layers, cfg.layers))


def test_clip_lr_scale_scales_the_clips_step() -> None:
    """QuantOptions.act_clip_lr_scale: from the same fixed clip and data, one SGD step moves each clip by the scale
    times what it moves at scale 1 (the clips' group has no weight decay)."""
    moved = {}
    for scale in (1.0, 0.25):
        svc, ctx = TrainingService(), RecordingContext()
        req = small_digits(lr=0.05)
        req.quant.CopyFrom(pb.QuantOptions(act_clip_init=1.0, act_clip_lr_scale=scale))
        cfg = svc.configure(req, ctx)
        svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
        out = svc.run(pb.Run(steps=1), ctx)
        assert isinstance(out, pb.EpochResult)
        moved[scale] = np.concatenate([np.frombuffer(s.act_clip_f32, dtype="<f4") for s in out.layers
                                       if s.name != cfg.layers[0].name]).astype(np.float64) - 1.0
    assert (np.abs(moved[1.0]) > 1e-5).all(), moved[1.0]
    np.testing.assert_allclose(moved[0.25], 0.25 * moved[1.0], rtol=2e-3)


def test_the_weight_batch_is_on_by_default_off_in_a_job_and_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """DMBQ_WEIGHT_BATCH: unset or 1 batches both directions, forward the forward only, 0 nothing; a job never
    batches (its one backward would hand DDP every weight gradient at the end); any other value names the variable."""
    from dmbq_worker.distributed import runtime as ranks
    from dmbq_worker.engine.service import _weight_batcher

    monkeypatch.delenv("DMBQ_WEIGHT_BATCH", raising=False)
    default = _weight_batcher([])
    assert default is not None and default.backward
    for value, backward in (("1", True), ("forward", False)):
        monkeypatch.setenv("DMBQ_WEIGHT_BATCH", value)
        batcher = _weight_batcher([])
        assert batcher is not None and batcher.backward == backward
    monkeypatch.setenv("DMBQ_WEIGHT_BATCH", "0")
    assert _weight_batcher([]) is None
    monkeypatch.setenv("DMBQ_WEIGHT_BATCH", "1")
    monkeypatch.setattr(ranks, "current", lambda: object())  # inside a torchrun job
    assert _weight_batcher([]) is None
    monkeypatch.setenv("DMBQ_WEIGHT_BATCH", "yes")
    with pytest.raises(ValueError, match="DMBQ_WEIGHT_BATCH: 'yes'"):
        _weight_batcher([])


def test_histograms_without_sensitivities_attach_no_probes() -> None:
    """The report's last epoch and empirical levels ask for histograms only: no sensitivity work, none returned."""
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(small_digits(), ctx)
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    out = svc.run(pb.Run(steps=2, histogram_bins=16), ctx)
    assert isinstance(out, pb.EpochResult)
    body = {s.name: s for s in out.layers}[cfg.layers[1].name]
    assert body.weight_sensitivity_f32 == b"" and body.act_sensitivity_f32 == b""
    assert np.frombuffer(body.weight_hist.counts_f32, dtype="<f4").sum() > 0
    assert np.frombuffer(body.act_hist.counts_f32, dtype="<f4").sum() > 0
    session = svc._session
    assert session is not None
    assert all(r.module.weight_quant.probe is None and r.module.act_quant.probe is None for r in session.refs)
    only_w = svc.run(pb.Run(steps=2, histogram_bins=16, weight_histograms_only=True), ctx)
    assert isinstance(only_w, pb.EpochResult)
    body = {s.name: s for s in only_w.layers}[cfg.layers[1].name]
    assert np.frombuffer(body.weight_hist.counts_f32, dtype="<f4").sum() > 0
    assert not body.HasField("act_hist")
    assert all(r.module.act_quant.hist is None for r in session.refs)
    with pytest.raises(WorkerError) as err:
        svc.run(pb.Run(steps=1, lookahead=True), ctx)
    assert err.value.code == pb.ERROR_CODE_INVALID_ARGUMENT and "run.lookahead" in err.value.message


def test_evaluate_split_is_validated() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    svc.configure(small_digits(), ctx)
    res = svc.evaluate(pb.Evaluate(split="test", max_batches=1), ctx)
    assert res.samples == 64 and 0 <= res.top1 <= res.top5 <= 1
    assert field_of(svc.evaluate, pb.Evaluate(split="val"), ctx) == "split"




def test_epoch_results_say_how_the_steps_ran() -> None:
    svc = TrainingService()
    svc.configure(small_digits(), RecordingContext())
    out = svc.run(pb.Run(steps=2), RecordingContext())
    assert isinstance(out, pb.EpochResult) and out.step_mode == "eager"  # CPU: never a CUDA graph
    trainer = svc._session.trainer  # type: ignore[union-attr]
    trainer._use_graph = True  # what a CUDA run is before capture, and after a failed one
    assert trainer.step_mode == "eager (graph warm-up)"
    trainer._use_graph = False
    trainer._eager_reason = "eager (capture failed: RuntimeError: x)"
    assert svc.run(pb.Run(steps=1), RecordingContext()).step_mode == "eager (capture failed: RuntimeError: x)"


def test_a_scheme_change_keeps_the_captured_step_unless_a_quantizer_switch_moves() -> None:
    svc, ctx = TrainingService(), RecordingContext()
    cfg = svc.configure(small_digits(), ctx)
    assert svc._session is not None
    trainer = svc._session.trainer
    dropped: list[int] = []
    real_invalidate = trainer.invalidate_graph
    trainer.invalidate_graph = lambda: (dropped.append(1), real_invalidate())[1]  # type: ignore[method-assign]
    scheme = w2a2_scheme(list(cfg.layers))
    svc.update_scheme(pb.UpdateScheme(scheme=scheme), ctx)  # FP -> quantized: a switch moved
    assert len(dropped) == 1
    # LBA's move: some channels of a body layer from 2 to 1 bit (and back is the same): same buffers, same paths
    body = cfg.layers[1]
    moved = pb.QuantScheme()
    moved.CopyFrom(scheme)
    moved.layers[1].weight_bits_u8 = bytes([1, 2] * body.out_channels)[: body.out_channels]
    svc.update_scheme(pb.UpdateScheme(scheme=moved), ctx)
    assert len(dropped) == 1
    w = svc._session.model.get_submodule(body.name).weight_quant
    assert w.bits[:2].tolist() == [1, 2]  # ...and the buffers the captured step reads did take the new bits
    # a whole layer back to full precision changes which path its quantizer runs: the step is captured again
    del moved.layers[1]
    svc.update_scheme(pb.UpdateScheme(scheme=moved), ctx)
    assert len(dropped) == 2


def _scales(svc: TrainingService) -> dict[str, tuple[torch.Tensor, torch.Tensor, str]]:
    """Each layer's (scale, weight, statistic) as the session holds them."""
    assert svc._session is not None
    return {ref.name: (ref.module.weight_quant.scale.detach().clone(), ref.module.weight.detach().clone(),
                       ref.module.weight_quant.statistic) for ref in svc._session.refs}


def _per_channel(w: torch.Tensor, how: str) -> torch.Tensor:
    a = w.abs().reshape(w.shape[0], -1)
    return a.amax(dim=1) if how == "max" else a.mean(dim=1)


def test_weight_scale_max_abs_scales_by_the_channel_max_and_survives_a_checkpoint(tmp_path: Path) -> None:
    """QuantOptions.weight_scale: unspecified keeps mean|w|; MAX_ABS starts every scale at max|w_c| (also from
    init_weights), the EMA follows max|w_c| in training, and a checkpoint restores the scales (the statistic comes
    from the Configure of the resumed run)."""
    ctx = RecordingContext()
    fp_path = str(tmp_path / "fp.pt")
    fp_digits_checkpoint(fp_path, steps=2)
    default = TrainingService()
    default.configure(small_digits(), ctx)
    for name, (s, w, statistic) in _scales(default).items():
        assert statistic == "mean_abs", name
        torch.testing.assert_close(s, _per_channel(w, "mean"), rtol=0, atol=0)

    req = small_digits()
    req.quant.weight_scale = pb.WEIGHT_SCALE_MAX_ABS
    req.init_weights = fp_path
    svc = TrainingService()
    cfg = svc.configure(req, ctx)
    for name, (s, w, statistic) in _scales(svc).items():
        assert statistic == "max_abs", name
        torch.testing.assert_close(s, _per_channel(w, "max"), rtol=0, atol=0)
    svc.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    for _ in range(3):
        before = _scales(svc)
        out = svc.run(pb.Run(steps=1), ctx)
        assert isinstance(out, pb.EpochResult)
        now = _scales(svc)
        for stats in out.layers:
            s = np.frombuffer(stats.weight_scale_f32, dtype="<f4")
            _, w, _ = now[stats.name]
            # the step's EMA update, from the weights after the optimizer step: towards max|w_c|, above the mean
            expected = 0.99 * before[stats.name][0] + 0.01 * _per_channel(w, "max")
            np.testing.assert_allclose(s, expected.numpy(), rtol=1e-6, err_msg=stats.name)
            assert np.all(s > _per_channel(w, "mean").numpy()), stats.name
    ckpt = str(tmp_path / "q.pt")
    svc.save_checkpoint(pb.SaveCheckpoint(path=ckpt), ctx)
    saved = _scales(svc)

    resumed = TrainingService()
    req.init_weights = ""
    resumed.configure(req, ctx)
    resumed.update_scheme(pb.UpdateScheme(scheme=w2a2_scheme(list(cfg.layers))), ctx)
    resumed.load_checkpoint(pb.LoadCheckpoint(path=ckpt), ctx)
    for name, (s, w, statistic) in _scales(resumed).items():
        assert statistic == "max_abs"
        torch.testing.assert_close(s, saved[name][0], rtol=0, atol=0)
        torch.testing.assert_close(w, saved[name][1], rtol=0, atol=0)
