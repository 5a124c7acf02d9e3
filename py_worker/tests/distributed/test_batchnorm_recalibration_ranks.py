"""RecalibrateBatchNorm in a 2-rank gloo job equals a 1-rank job (CPU), through the real worker entry point.

Recalibration forwards the training batches as training draws them: each rank takes its half of every global batch
(the dataset's batch size) and global-batch BatchNorm reduces each forward over both halves, so the 2-rank job sees
the images of the 1-rank job's batches, batch for batch: the reference is a 1-rank job at the same global batch size
and seed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dmbq_worker.proto import dmbq_pb2 as pb
from tests.distributed.job import TorchrunJob
from tests.engine.helpers import configure_request, w2a2_scheme

# Measured bit-equal on CPU (the global-batch sums are float64); a tolerance, since a convolution over a batch of 32
# need not round as over 64 on every machine.
TOL = 1e-6
DIGITS_TRAIN = 1437
BATCH = 64  # the global batch: 32 on each rank of the 2-rank job


def _configure() -> pb.Configure:
    req = configure_request("digits", batch_size=BATCH, seed=3, augment=True, test_limit=200, lr=0.05)
    req.quant.act_clip_init = 2.0
    req.dataset.eval_batch_size = 50
    return req


def _norm_stats(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["model"]
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_two_ranks_recalibrate_as_one_rank_at_the_same_global_batch(tmp_path: Path) -> None:
    jobs = {"two": TorchrunJob(2), "one": TorchrunJob(1)}

    def each(kind: str, **body: object) -> dict[str, pb.Response]:
        """Both jobs work at once: each reply awaited after both got their request."""
        rids = {name: job.next_id() for name, job in jobs.items()}
        for name, job in jobs.items():
            job.send(rids[name], **body)
        replies = {name: job.final(rids[name]) for name, job in jobs.items()}
        for reply in replies.values():
            assert reply.WhichOneof("body") == kind, reply
        return replies

    try:
        configured = each("configured", configure=_configure())
        scheme = w2a2_scheme(list(configured["one"].configured.layers))
        each("scheme_applied", update_scheme=pb.UpdateScheme(scheme=scheme))
        # a few batches: every rank runs as many forwards (the all-reduces pair up), and the job goes on in step
        some = each("batch_norm_recalibrated", recalibrate_batch_norm=pb.RecalibrateBatchNorm(batches=3))
        done = each("batch_norm_recalibrated", recalibrate_batch_norm=pb.RecalibrateBatchNorm())
        evals = each("eval_result", evaluate=pb.Evaluate(split="test"))
        rids = {name: job.next_id() for name, job in jobs.items()}
        for name, job in jobs.items():
            job.send(rids[name], save_checkpoint=pb.SaveCheckpoint(path=str(tmp_path / f"{name}.pt")))
        for name, job in jobs.items():
            assert job.final(rids[name]).WhichOneof("body") == "checkpoint_saved"
    finally:
        for job in jobs.values():
            job.close()
    full = DIGITS_TRAIN // BATCH  # 22 global batches of 64 (32 on each rank); the short rest left out, as in training
    for name in jobs:
        assert (some[name].batch_norm_recalibrated.modules, some[name].batch_norm_recalibrated.samples) == (3, 3 * BATCH)
        assert (done[name].batch_norm_recalibrated.modules, done[name].batch_norm_recalibrated.samples) == (
            3, full * BATCH)
    one, two = _norm_stats(tmp_path / "one.pt"), _norm_stats(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) == 9
    for key, value in one.items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(two[key]) == full, key
        else:
            torch.testing.assert_close(two[key], value, rtol=TOL, atol=TOL, msg=key)
    assert abs(evals["two"].eval_result.loss - evals["one"].eval_result.loss) <= 1e-5
    assert evals["two"].eval_result.top1 == evals["one"].eval_result.top1
