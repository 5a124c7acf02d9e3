"""A 2-rank gloo job equals a 1-rank run with the same global batch (CPU), through the real worker entry point.

Cases (one 2-rank job serves all of them, one after the other, to keep the suite fast):
* W2 (activations FP) and A2 (weights FP), 4 steps, against the plain in-process worker.
* A2 with the clips set from the first batch (each rank sees a slice of it: the clip must come from the global
  batch), against a 1-rank job (its clip statistic is float64 sums; the plain worker's torch.std rounds otherwise).
* W2 AND A2 together, against a 1-rank torchrun job (the same global-batch BatchNorm arithmetic; the plain worker's
  float32 BatchNorm rounds differently, and on the W2xA2 lattice an ulp flips max-pool winners):
  - with average pools, 4 steps;
  - with the digits CNN's max-pools, 2 steps. From step 4 on (this seed) the ulp-level difference of the
    DDP-averaged weight gradients (2 x 32-sample sums vs one 64-sample sum) moves a weight scale by an ulp, and a
    max-pool window whose values are equal in real arithmetic picks another winner: a different, equally valid
    subgradient. See docs/RESULTS.md, "Distributed".
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from dmbq_worker.engine.service import TrainingService
from dmbq_worker.proto import dmbq_pb2 as pb
from tests.distributed.job import TorchrunJob
from tests.engine.helpers import RecordingContext, configure_request, w2a2_scheme

TOL = 1e-5
# Parameters after 4 SGD steps (momentum 0.9) carry the summation-order noise of every step: measured up to
# 1.2e-5 with 2-bit activations (in-place vs gloo-reduced sums); one bin count may move by a value on a bin edge.
PARAM_TOL = 5e-5
HIST_MOVED = 1e-4
AVGPOOL_FACTORY = "tests.distributed.models:digits_cnn_avgpool"


@dataclass(frozen=True)
class Case:
    mode: str  # "weights": W2, A FP; "acts": A2, W FP; "both": W2/A2
    steps: int
    reference: str  # "plain": the in-process worker; "job": a 1-rank torchrun job
    factory: str = ""
    clip_from_batch: bool = False  # act_clip_init = 0 (the orchestrator's): clips set from the first global batch


CASES = {
    "w2": Case("weights", 4, "plain"),
    "a2-clip-from-batch": Case("acts", 4, "job", clip_from_batch=True),
    "a2": Case("acts", 4, "plain"),
    "w2a2-avgpool": Case("both", 4, "job", AVGPOOL_FACTORY),
    "w2a2-maxpool": Case("both", 2, "job"),
}


def _configure(case: Case) -> pb.Configure:
    req = configure_request("digits", batch_size=64, seed=3, augment=True, test_limit=200, lr=0.05)
    req.quant.act_clip_init = 0.0 if case.clip_from_batch else 2.0
    req.model.factory = case.factory
    return req


def _scheme(layers: list[pb.LayerInfo], mode: str) -> pb.QuantScheme:
    scheme = w2a2_scheme(layers)
    for ls in scheme.layers:
        if mode == "weights":
            ls.ClearField("act_bits_u8")
        elif mode == "acts":
            ls.weight_bits_u8 = bytes([32]) * len(ls.weight_bits_u8)
    return scheme


def _run(case: Case) -> pb.Run:
    return pb.Run(steps=case.steps, sensitivity=True, lookahead=True, histogram_bins=16, evaluate=True,
                  progress_every=2)


def _f32(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


def _close(a: np.ndarray, b: np.ndarray, what: str, tol: float = TOL) -> None:
    assert a.shape == b.shape, what
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    assert np.abs(a - b).max(initial=0.0) <= tol * scale, f"{what}: max diff {np.abs(a - b).max()}"


@dataclass
class Outcome:
    """What one side (the reference or the 2-rank job) returned for one case."""

    result: pb.EpochResult
    train_eval: pb.EvalResult
    checkpoint: Path
    steps_per_epoch: int


def _plain_run(case: Case, folder: Path) -> tuple[Outcome, pb.QuantScheme]:
    service = TrainingService()
    configured = service.configure(_configure(case), RecordingContext())
    scheme = _scheme(list(configured.layers), case.mode)
    service.update_scheme(pb.UpdateScheme(scheme=scheme), RecordingContext())
    result = service.run(_run(case), RecordingContext())
    assert isinstance(result, pb.EpochResult)
    train_eval = service.evaluate(pb.Evaluate(split="train"), RecordingContext())
    path = folder / "plain.pt"
    service.save_checkpoint(pb.SaveCheckpoint(path=str(path)), RecordingContext())
    return Outcome(result, train_eval, path, configured.steps_per_epoch), scheme


def _body(resp: pb.Response, kind: str) -> object:
    assert resp.WhichOneof("body") == kind, resp
    return getattr(resp, kind)


def _job_runs(jobs: dict[str, TorchrunJob], case: Case, folder: Path) -> tuple[dict[str, Outcome], pb.QuantScheme]:
    """The same requests to every job; all jobs work at once (each reply awaited after every job got the request)."""

    def each(timeout_s: float = 120.0, **body: object) -> dict[str, pb.Response]:
        rids = {name: job.next_id() for name, job in jobs.items()}
        for name, job in jobs.items():
            job.send(rids[name], **body)
        return {name: job.final(rids[name], timeout_s) for name, job in jobs.items()}

    configured = each(configure=_configure(case))
    layers = list(_body(next(iter(configured.values())), "configured").layers)  # type: ignore[attr-defined]
    scheme = _scheme(layers, case.mode)
    each(update_scheme=pb.UpdateScheme(scheme=scheme))
    results = each(run=_run(case))
    evals = each(evaluate=pb.Evaluate(split="train"))
    paths = {name: folder / f"{name}.pt" for name in jobs}
    rids = {name: job.next_id() for name, job in jobs.items()}
    for name, job in jobs.items():
        job.send(rids[name], save_checkpoint=pb.SaveCheckpoint(path=str(paths[name])))
    for name, job in jobs.items():
        _body(job.final(rids[name]), "checkpoint_saved")
    return {
        name: Outcome(
            _body(results[name], "epoch_result"),  # type: ignore[arg-type]
            _body(evals[name], "eval_result"),  # type: ignore[arg-type]
            paths[name],
            _body(configured[name], "configured").steps_per_epoch,  # type: ignore[attr-defined]
        )
        for name in jobs
    }, scheme


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Per case: (reference, two ranks); plus the 2-rank job's hello, shutdown reply and exit code."""
    jobs = {"two": TorchrunJob(2), "one": TorchrunJob(1)}
    pairs: dict[str, tuple[Outcome, Outcome]] = {}
    try:
        hellos = {name: job.call(hello=pb.Hello(protocol_version=pb.PROTOCOL_VERSION_CURRENT))
                  for name, job in jobs.items()}
        for name, case in CASES.items():
            folder = tmp_path_factory.mktemp(name)
            if case.reference == "plain":
                reference, _ = _plain_run(case, folder)
                two = _job_runs({"two": jobs["two"]}, case, folder)[0]["two"]
            else:
                both = _job_runs(jobs, case, folder)[0]
                reference, two = both["one"], both["two"]
            pairs[name] = (reference, two)
        shut = jobs["two"].call(shutdown=pb.Shutdown())
        jobs["two"].process.wait(60)
        code = jobs["two"].process.returncode
    finally:
        for job in jobs.values():
            job.close()
    return {"pairs": pairs, "hello": hellos["two"], "hello_one": hellos["one"], "shut": shut, "code": code}


def _pair(outcomes: dict[str, object], name: str) -> tuple[Outcome, Outcome]:
    pairs = outcomes["pairs"]
    assert isinstance(pairs, dict)
    return pairs[name]


def test_the_job_reports_two_ranks_and_exits_cleanly_on_shutdown(outcomes: dict[str, object]) -> None:
    hello, hello_one = outcomes["hello"], outcomes["hello_one"]
    assert isinstance(hello, pb.Response) and hello.hello.capabilities.world_size == 2
    assert isinstance(hello_one, pb.Response) and hello_one.hello.capabilities.world_size == 1
    assert outcomes["shut"].WhichOneof("body") == "shutdown"  # type: ignore[union-attr]
    assert outcomes["code"] == 0


@pytest.mark.parametrize("name", list(CASES))
def test_losses_accuracy_and_evaluation_match(outcomes: dict[str, object], name: str) -> None:
    ref, two = _pair(outcomes, name)
    assert two.steps_per_epoch == ref.steps_per_epoch
    one_r, two_r = ref.result, two.result
    assert two_r.steps == one_r.steps == CASES[name].steps
    assert two_r.train_loss == pytest.approx(one_r.train_loss, abs=TOL)
    assert two_r.train_accuracy == pytest.approx(one_r.train_accuracy, abs=1e-9)
    assert two_r.test_loss == pytest.approx(one_r.test_loss, abs=TOL)
    assert two_r.test_accuracy == pytest.approx(one_r.test_accuracy, abs=1e-9)
    assert two.train_eval.samples == ref.train_eval.samples
    assert two.train_eval.loss == pytest.approx(ref.train_eval.loss, abs=TOL)
    assert two.train_eval.top1 == pytest.approx(ref.train_eval.top1, abs=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_sensitivities_and_histograms_match(outcomes: dict[str, object], name: str) -> None:
    ref, two = _pair(outcomes, name)
    one_r, two_r = ref.result, two.result
    assert [s.name for s in two_r.layers] == [s.name for s in one_r.layers]
    nonzero = 0
    for a, b in zip(two_r.layers, one_r.layers):
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
    assert nonzero > 3 * len(one_r.layers)  # the comparison is of real values, not of zeros


@pytest.mark.parametrize("name", list(CASES))
def test_parameters_after_training_match(outcomes: dict[str, object], name: str) -> None:
    ref, two = _pair(outcomes, name)
    one_state = torch.load(ref.checkpoint, weights_only=True)["model"]
    two_state = torch.load(two.checkpoint, weights_only=True)["model"]
    assert one_state.keys() == two_state.keys()
    for key, value in one_state.items():
        if value.is_floating_point():
            finite = torch.isfinite(value)  # threshold tables are padded with +inf
            assert torch.equal(finite, torch.isfinite(two_state[key])), key
            _close(two_state[key][finite].numpy(), value[finite].numpy(), key, PARAM_TOL)
        else:
            assert torch.equal(two_state[key], value), key


def test_the_eager_job_with_find_unused_parameters_matches_too(tmp_path: Path) -> None:
    """By default a job is graph-ready: DDP without find_unused_parameters (capture cannot afford its host read-back)
    and the unused clips of full-precision activations kept in the loss at 0 x (every other test here runs that
    way; without the term DDP fails the second step: a parameter got no gradient). DMBQ_DDP_CUDA_GRAPH=0 gives the
    eager job with find_unused_parameters instead: W2 with FP activations still equals the plain worker."""
    case = CASES["w2"]
    reference, _ = _plain_run(case, tmp_path)
    job = TorchrunJob(2, {"DMBQ_DDP_CUDA_GRAPH": "0"})
    try:
        two = _job_runs({"two": job}, case, tmp_path)[0]["two"]
    finally:
        job.close()
    assert two.train_eval.loss == pytest.approx(reference.train_eval.loss, abs=TOL)
    for a, b in zip(two.result.layers, reference.result.layers):
        for fname in ("weight_sensitivity_f32", "weight_sensitivity_lower_f32", "weight_scale_f32"):
            _close(_f32(getattr(a, fname)), _f32(getattr(b, fname)), f"{b.name}.{fname}")


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
