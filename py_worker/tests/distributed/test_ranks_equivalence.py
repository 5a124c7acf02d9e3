"""A 2-rank gloo job equals a 1-rank run with the same global batch (CPU), through the real worker entry point.

Two schemes: 2-bit weights (activations full precision) and 2-bit activations (weights full precision). With both
quantized at once the runs drift apart by ~1e-3 after one step (see docs/RESULTS.md, "Distributed"): not covered
here until that is understood.
"""

from __future__ import annotations

import signal
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dmbq_worker.engine.service import TrainingService
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.distributed.job import TorchrunJob
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme

STEPS = 4
TOL = 1e-5
# Parameters after 4 SGD steps (momentum 0.9) carry the summation-order noise of every step: measured up to
# 1.2e-5 with 2-bit activations (in-place vs gloo-reduced sums); one bin count may move by a value on a bin edge.
PARAM_TOL = 5e-5
HIST_MOVED = 1e-4


def _configure() -> pb.Configure:
    req = configure_request("digits", batch_size=64, seed=3, augment=True, test_limit=200, lr=0.05)
    req.quant.act_clip_init = 2.0  # a fixed clip: initialising it from "the first batch" would see a slice
    return req


def _scheme(layers: list[pb.LayerInfo], mode: str) -> pb.QuantScheme:
    scheme = w2a2_scheme(layers)
    for ls in scheme.layers:
        if mode == "weights":
            ls.ClearField("act_bits_u8")
        else:
            ls.weight_bits_u8 = bytes([32]) * len(ls.weight_bits_u8)
    return scheme


RUN = pb.Run(steps=STEPS, sensitivity=True, lookahead=True, histogram_bins=16, evaluate=True, progress_every=2)


def _f32(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


def _close(a: np.ndarray, b: np.ndarray, what: str, tol: float = TOL) -> None:
    assert a.shape == b.shape, what
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    assert np.abs(a - b).max(initial=0.0) <= tol * scale, f"{what}: max diff {np.abs(a - b).max()}"


@pytest.fixture(scope="module", params=["weights", "acts"])
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("ddp")
    service = TrainingService()
    configured = service.configure(_configure(), RecordingContext())
    scheme = _scheme(list(configured.layers), request.param)
    service.update_scheme(pb.UpdateScheme(scheme=scheme), RecordingContext())
    one = service.run(RUN, RecordingContext())
    one_eval = service.evaluate(pb.Evaluate(split="train"), RecordingContext())
    service.save_checkpoint(pb.SaveCheckpoint(path=str(folder / "one.pt")), RecordingContext())

    job = TorchrunJob(2)
    try:
        hello = job.call(hello=pb.Hello(protocol_version=pb.PROTOCOL_VERSION_CURRENT))
        two_configured = job.call(configure=_configure())
        job.call(update_scheme=pb.UpdateScheme(scheme=scheme))
        two = job.call(run=RUN)
        two_eval = job.call(evaluate=pb.Evaluate(split="train"))
        saved = job.call(save_checkpoint=pb.SaveCheckpoint(path=str(folder / "two.pt")))
        shut = job.call(shutdown=pb.Shutdown())
        job.process.wait(60)
        code = job.process.returncode
    finally:
        job.close()
    return {"one": one, "one_eval": one_eval, "hello": hello, "two_configured": two_configured, "two": two,
            "two_eval": two_eval, "saved": saved, "shut": shut, "code": code, "folder": folder,
            "configured": configured}


def test_the_job_reports_two_ranks_and_exits_cleanly_on_shutdown(runs: dict[str, object]) -> None:
    hello = runs["hello"]
    assert isinstance(hello, pb.Response) and hello.hello.capabilities.world_size == 2
    assert runs["two_configured"].configured.steps_per_epoch == runs["configured"].steps_per_epoch  # type: ignore[union-attr]
    assert runs["shut"].WhichOneof("body") == "shutdown"  # type: ignore[union-attr]
    assert runs["code"] == 0


def test_losses_accuracy_and_evaluation_match(runs: dict[str, object]) -> None:
    one, reply = runs["one"], runs["two"]
    assert isinstance(one, pb.EpochResult) and isinstance(reply, pb.Response)
    assert reply.WhichOneof("body") == "epoch_result", reply
    two = reply.epoch_result
    assert two.steps == one.steps == STEPS
    assert two.train_loss == pytest.approx(one.train_loss, abs=TOL)
    assert two.train_accuracy == pytest.approx(one.train_accuracy, abs=1e-9)
    assert two.test_loss == pytest.approx(one.test_loss, abs=TOL)
    assert two.test_accuracy == pytest.approx(one.test_accuracy, abs=1e-9)
    ev1, ev2 = runs["one_eval"], runs["two_eval"].eval_result  # type: ignore[union-attr]
    assert isinstance(ev1, pb.EvalResult)
    assert ev2.samples == ev1.samples
    assert ev2.loss == pytest.approx(ev1.loss, abs=TOL) and ev2.top1 == pytest.approx(ev1.top1, abs=1e-9)


def test_sensitivities_and_histograms_match(runs: dict[str, object]) -> None:
    one, two = runs["one"], runs["two"].epoch_result  # type: ignore[union-attr]
    assert isinstance(one, pb.EpochResult)
    assert [s.name for s in two.layers] == [s.name for s in one.layers]
    nonzero = 0
    for a, b in zip(two.layers, one.layers):
        for fname in ("weight_sensitivity_f32", "act_sensitivity_f32", "weight_sensitivity_lower_f32",
                      "act_sensitivity_lower_f32", "act_clip_f32", "weight_scale_f32"):
            _close(_f32(getattr(a, fname)), _f32(getattr(b, fname)), f"{b.name}.{fname}")
            nonzero += int(np.abs(_f32(getattr(b, fname))).sum() > 0)
        for h in ("weight_hist", "act_hist"):
            ha, hb = getattr(a, h), getattr(b, h)
            assert (ha.lo, ha.hi) == pytest.approx((hb.lo, hb.hi), abs=TOL)
            ca, cb = _f32(ha.counts_f32), _f32(hb.counts_f32)
            assert ca.sum() == cb.sum(), f"{b.name}.{h}: {ca.sum()} vs {cb.sum()} values"
            assert np.abs(ca - cb).sum() <= HIST_MOVED * cb.sum(), f"{b.name}.{h}: {ca} vs {cb}"
    assert nonzero > 3 * len(one.layers)  # the comparison is of real values, not of zeros


def test_parameters_after_training_match(runs: dict[str, object]) -> None:
    folder = runs["folder"]
    assert isinstance(folder, Path)
    one = torch.load(folder / "one.pt", weights_only=True)["model"]
    two = torch.load(folder / "two.pt", weights_only=True)["model"]
    assert one.keys() == two.keys()
    for key, value in one.items():
        if value.is_floating_point():
            finite = torch.isfinite(value)  # threshold tables are padded with +inf
            assert torch.equal(finite, torch.isfinite(two[key])), key
            _close(two[key][finite].numpy(), value[finite].numpy(), key, PARAM_TOL)
        else:
            assert torch.equal(two[key], value), key


def test_a_rank_that_dies_fails_the_job_naming_the_rank() -> None:
    job = TorchrunJob(2)
    try:
        hello = job.call(hello=pb.Hello(protocol_version=pb.PROTOCOL_VERSION_CURRENT))
        leader = hello.hello.capabilities.pid
        followers = [p for p in job.rank_pids() if p != leader]
        assert len(followers) == 1
        os.kill(followers[0], signal.SIGKILL)
        job.process.wait(60)
        assert job.process.returncode != 0
        text = job.stderr()
        assert "rank      : 1" in text or "rank: 1" in text, text[-2000:]
    finally:
        job.close()
