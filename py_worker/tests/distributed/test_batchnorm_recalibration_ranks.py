"""RecalibrateBatchNorm in a 2-rank gloo job equals a 1-rank job (CPU), through the real worker entry point.

The ranks take the eval batches round-robin and global-batch BatchNorm reduces each forward over both, so one forward
of the 2-rank job at eval batch size B sees the images of one batch of size 2B: the reference is a 1-rank job at 2B.
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


def _configure(eval_batch_size: int) -> pb.Configure:
    req = configure_request("digits", batch_size=64, seed=3, augment=True, test_limit=200, lr=0.05)
    req.quant.act_clip_init = 2.0
    req.dataset.eval_batch_size = eval_batch_size
    return req


def _norm_stats(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["model"]
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_two_ranks_recalibrate_as_one_rank_with_their_batches_together(tmp_path: Path) -> None:
    jobs = {"two": TorchrunJob(2), "one": TorchrunJob(1)}
    eval_batch = {"two": 32, "one": 64}

    def each(bodies: dict[str, dict[str, object]], kind: str) -> dict[str, pb.Response]:
        """Both jobs work at once: each reply awaited after both got their request."""
        rids = {name: job.next_id() for name, job in jobs.items()}
        for name, job in jobs.items():
            job.send(rids[name], **bodies[name])
        replies = {name: job.final(rids[name]) for name, job in jobs.items()}
        for reply in replies.values():
            assert reply.WhichOneof("body") == kind, reply
        return replies

    def same(**body: object) -> dict[str, dict[str, object]]:
        return {name: body for name in jobs}

    try:
        configured = each({name: {"configure": _configure(eval_batch[name])} for name in jobs}, "configured")
        scheme = w2a2_scheme(list(configured["one"].configured.layers))
        each(same(update_scheme=pb.UpdateScheme(scheme=scheme)), "scheme_applied")
        # one batch cannot be shared by two ranks: refused on both, naming the field, and the job goes on in step
        refused = jobs["two"].call(recalibrate_batch_norm=pb.RecalibrateBatchNorm(batches=1))
        assert refused.WhichOneof("body") == "error", refused
        assert refused.error.code == pb.ERROR_CODE_INVALID_ARGUMENT
        assert refused.error.field == "recalibrate_batch_norm.batches"
        done = each(same(recalibrate_batch_norm=pb.RecalibrateBatchNorm()), "batch_norm_recalibrated")
        evals = each(same(evaluate=pb.Evaluate(split="test")), "eval_result")
        each({name: {"save_checkpoint": pb.SaveCheckpoint(path=str(tmp_path / f"{name}.pt"))} for name in jobs},
             "checkpoint_saved")
    finally:
        for job in jobs.values():
            job.close()
    full = DIGITS_TRAIN // 64 * 64  # 22 full batches of 64 (44 of 32, 22 on each rank); the short rest left out
    for name in jobs:
        assert (done[name].batch_norm_recalibrated.modules, done[name].batch_norm_recalibrated.samples) == (3, full)
    one, two = _norm_stats(tmp_path / "one.pt"), _norm_stats(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) == 9
    for key, value in one.items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(two[key]) == 22, key
        else:
            torch.testing.assert_close(two[key], value, rtol=TOL, atol=TOL, msg=key)
    assert abs(evals["two"].eval_result.loss - evals["one"].eval_result.loss) <= 1e-5
    assert evals["two"].eval_result.top1 == evals["one"].eval_result.top1
