"""The training loop: one step = forward, loss, backward, optimizer step, metric accumulation, all on the device.

No host sync per step: metrics add into device tensors, a non-finite loss is remembered on the device (the first
bad step), and the host reads them only at progress points. On CUDA with static shapes the whole step is
captured as one CUDA graph after a few eager warm-up steps (augmentation stays outside and writes into the
graph's static input). The eager path is the same step body, and is what CPU runs use.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import _dynamo as dynamo
from torch import nn
from torch.nn import functional as F

from dmbq_worker.distributed.parallel import data_parallel, reduce_sums, reduce_train_metrics
from dmbq_worker.engine.data import Batch, DataSource
from dmbq_worker.engine.distill import Distiller
from dmbq_worker.engine.operand_cast import OperandCast, operand_cast_enabled
from dmbq_worker.engine.optim import TrainingOptimizer
from dmbq_worker.engine.precision import exact_fp32
from dmbq_worker.engine.schedule import LrSchedule
from dmbq_worker.errors import invalid, non_finite
from dmbq_worker.quant.weight_batch import WeightBatcher

GRAPH_WARMUP_STEPS = 3  # eager steps before capture (lazy state, cuDNN autotuning, torch.compile)
DDP_GRAPH_WARMUP_STEPS = 11  # torch.cuda.graphs: DDP needs at least 11 eager iterations before its step is captured


@dataclass(frozen=True)
class LoopOptions:
    batch_size: int
    eval_batch_size: int
    seed: int
    bf16: bool
    cuda_graph: bool  # capture the step once shapes are known (CUDA and a capturable optimizer only)
    compile: bool


@dataclass
class ProgressPoint:
    epoch: int
    step: int  # within this request
    steps_total: int
    loss: float
    accuracy: float
    samples_per_s: float


@dataclass
class RunStats:
    steps: int
    cancelled: bool
    loss: float
    accuracy: float
    seconds: float
    lr: float


@dataclass
class EvalStats:
    loss: float
    top1: float
    top5: float
    samples: int
    seconds: float


@dataclass
class RecalibrationStats:
    modules: int  # BatchNorm layers recalibrated
    samples: int  # training images seen, over every rank
    seconds: float


def _running_batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats and m.running_mean is not None and m.running_var is not None]


class Trainer:
    """Owns the loop state (epoch, step in epoch, global step) and the device-side metric accumulators."""

    def __init__(
        self,
        model: nn.Module,
        data: DataSource,
        optimizer: TrainingOptimizer,
        schedule: LrSchedule,
        opts: LoopOptions,
        device: torch.device,
        *,
        after_optimizer_step: Callable[[], None] | None = None,
        weight_batcher: WeightBatcher | None = None,
    ) -> None:
        if data.train_size < opts.batch_size:
            raise invalid(
                "dataset.batch_size",
                f"{opts.batch_size} exceeds the {data.train_size} training samples (batches are drop-last)",
            )
        self.model = model
        self.data = data
        self.optimizer = optimizer
        self.schedule = schedule
        self.opts = opts
        self.device = device
        # in-place, no-grad work that belongs to the step (the quantizers' scale EMA): runs eagerly inside the step
        # (and so inside its CUDA graph), never inside the compiled forward
        self._after_optimizer_step = after_optimizer_step
        # every layer's weight quantization in one launch before the forward (not under torch.compile)
        self._weight_batcher = None if opts.compile else weight_batcher
        # per-step work on the gradients that is not the optimizer's (the compiled sensitivity fold); set by the
        # service between requests, with the graph invalidated, since a captured step bakes it in
        self.after_backward: Callable[[], None] | None = None
        # parameters that must get a gradient every step even when unused (DDP without find_unused_parameters):
        # 0 x their sum joins the loss; set by the service
        self.always_used: list[torch.Tensor] = []
        # knowledge distillation (Configure.distill): set by the service before the first step
        self.distiller: Distiller | None = None
        self.steps_per_epoch = data.train_size // opts.batch_size
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0
        self.global_step = 0
        self._batches: Iterator[Batch] | None = None
        # DDP when this worker is one rank of a torch.distributed job (the model itself otherwise)
        self._forward: Callable[[torch.Tensor], torch.Tensor] = data_parallel(model, device)
        self._forward_is_model = self._forward is model
        # every FP conv / linear operand cast to bf16 in one launch per direction (not compiled, not under DDP)
        self._operand_cast = (
            OperandCast(model) if opts.bf16 and not opts.compile and self._forward_is_model and operand_cast_enabled()
            else None
        )
        if opts.compile:
            # one session per worker: drop the previous session's compiled code; scheme and collection switches
            # each add a guarded variant, so allow more than the default 8 before dynamo falls back to eager
            dynamo.reset()
            dynamo.config.cache_size_limit = max(dynamo.config.cache_size_limit, 64)
            self._forward = torch.compile(self._forward)  # type: ignore[assignment]
        # device-side accumulators (reset per request, updated inside the step)
        self._loss_sum = torch.zeros((), device=device)
        self._correct = torch.zeros((), device=device)
        self._first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self._bad_loss = torch.zeros((), device=device)
        self._step_counter = torch.zeros((), dtype=torch.int64, device=device)
        self._use_graph = opts.cuda_graph and device.type == "cuda" and optimizer.capturable
        self._eager_reason = "eager"  # why steps run eagerly when not captured (a failed capture says why)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_warm = 0
        self.captures = 0  # graphs captured so far (a scheme change that keeps the step does not add one)
        self._static_x: torch.Tensor | None = None
        self._static_y: torch.Tensor | None = None
        self.optimizer.set_lr(self.current_lr)

    # ------------------------------------------------------------ state

    @property
    def current_lr(self) -> float:
        return self.schedule.lr_at(self.epoch)

    @property
    def step_mode(self) -> str:
        """How the steps run now: "cuda graph", "eager (graph warm-up)", "eager" or "eager (capture failed: ...)"."""
        if self._graph is not None:
            return "cuda graph"
        return "eager (graph warm-up)" if self._use_graph else self._eager_reason

    def invalidate_graph(self) -> None:
        """Drop the captured step (after a scheme change, a load, a switch of collection mode)."""
        self._graph = None
        self._graph_warm = 0
        self._static_x = self._static_y = None

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The sample order of `epoch`: a function of (seed, epoch) alone, so a resumed run sees the same order."""
        gen = torch.Generator().manual_seed(self.opts.seed * 1_000_003 + epoch)
        return torch.randperm(self.data.train_size, generator=gen)

    def state_dict(self) -> dict[str, object]:
        state: dict[str, object] = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "torch_rng": torch.get_rng_state(),
        }
        aug = self.data.aug_state()
        if aug is not None:
            state["aug_rng"] = aug.cpu()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.epoch = int(state["epoch"])  # type: ignore[call-overload]
        self.step_in_epoch = int(state["step_in_epoch"])  # type: ignore[call-overload]
        self.global_step = int(state["global_step"])  # type: ignore[call-overload]
        torch.set_rng_state(state["torch_rng"])  # type: ignore[arg-type]
        if "aug_rng" in state and self.data.aug_state() is not None:
            aug = state["aug_rng"]
            assert isinstance(aug, torch.Tensor)
            self.data.set_aug_state(aug)
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)  # type: ignore[arg-type]
        self._batches = None
        self._step_counter.fill_(self.global_step)
        self.optimizer.set_lr(self.current_lr)
        self.invalidate_graph()

    def reset_training_state(self) -> None:
        """A fresh run from the current weights (LoadCheckpoint with weights_only)."""
        self.epoch = self.step_in_epoch = self.global_step = 0
        self._batches = None
        self._step_counter.zero_()
        self.optimizer.torch_optimizer.state.clear()
        self.optimizer.set_lr(self.current_lr)
        self.invalidate_graph()

    # ------------------------------------------------------------ the step

    def _step_body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opts.bf16, cache_enabled=False):
            if self._operand_cast is not None:
                self._operand_cast.run()
            if self._weight_batcher is not None:
                self._weight_batcher.run()
            try:
                out = self._forward(x)
            finally:
                if self._operand_cast is not None:
                    self._operand_cast.finish()  # the modules get their parameters back, also after a failure
            if self._weight_batcher is not None:
                self._weight_batcher.finish()
        if self.distiller is not None:  # a frozen teacher's soft targets join the loss (engine/distill.py)
            loss = self.distiller.loss(x, out, y, self.opts.bf16)
        else:
            loss = F.cross_entropy(out.float(), y)
        if self.always_used:
            loss = loss + 0.0 * torch.stack([p.sum() for p in self.always_used]).sum()
        loss.backward()
        if self.after_backward is not None:
            self.after_backward()
        self.optimizer.step()
        if self._after_optimizer_step is not None:
            self._after_optimizer_step()
        with torch.no_grad():
            loss_d = loss.detach()
            self._loss_sum.add_(loss_d)
            self._correct.add_((out.detach().argmax(1) == y).sum())
            first = (~torch.isfinite(loss_d)) & (self._first_bad < 0)
            self._first_bad.copy_(torch.where(first, self._step_counter, self._first_bad))
            self._bad_loss.copy_(torch.where(first, loss_d, self._bad_loss))
            self._step_counter.add_(1)

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        self._step_body(x, y)

    def _graph_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        warmup = GRAPH_WARMUP_STEPS if self._forward_is_model else DDP_GRAPH_WARMUP_STEPS
        if self._graph is None and self._graph_warm < warmup:
            # warm-up on a side stream, as torch.cuda.graphs asks before capture
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._eager_step(x, y)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._graph_warm += 1
            return
        if self._graph is None:
            self._capture(x, y)
            if self._graph is None:  # capture failed: stay eager
                self._eager_step(x, y)
                return
        assert self._static_x is not None and self._static_y is not None and self._graph is not None
        self._static_x.copy_(x)
        self._static_y.copy_(y)
        self._graph.replay()

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.ensure_state()
        self._static_x = x.clone()
        self._static_y = y.clone()
        self.optimizer.zero_grad()  # grads allocated inside the graph are overwritten, not accumulated, per replay
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._step_body(self._static_x, self._static_y)
        except Exception as exc:  # noqa: BLE001 - a step that cannot be captured still trains, eagerly
            self._use_graph = False
            self._eager_reason = f"eager (capture failed: {type(exc).__name__}: {exc})"
            # once per worker session: every epoch result says it too (EpochResult.step_mode)
            print(f"[worker] the training step could not be captured as a CUDA graph and runs eagerly, several times "
                  f"slower: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self._static_x = self._static_y = None
            torch.cuda.synchronize(self.device)
            return
        self._graph = graph
        self.captures += 1

    # ------------------------------------------------------------ requests

    def _next_batch(self) -> Batch:
        if self._batches is None:
            self._batches = self.data.train_batches(
                self.epoch_order(self.epoch), self.step_in_epoch, self.opts.batch_size, self.epoch
            )
        return next(self._batches)

    def _read_metrics(self) -> tuple[float, float, int, float]:
        # over every rank's slice of the global batch (one rank: just the host read)
        return reduce_train_metrics(self._loss_sum, self._correct, self._first_bad, self._bad_loss)

    def _raise_if_non_finite(self, first_bad: int, bad_loss: float) -> None:
        if first_bad >= 0:
            raise non_finite(first_bad // self.steps_per_epoch, first_bad, bad_loss)

    def run(
        self,
        steps: int,
        *,
        progress_every: int,
        on_progress: Callable[[ProgressPoint], None],
        cancelled: Callable[[], bool],
        cancel_check_every: int = 4,
    ) -> RunStats:
        """Train `steps` steps (0: to the end of the current epoch), crossing epoch boundaries as needed."""
        if steps == 0:
            steps = self.steps_per_epoch - self.step_in_epoch
        self.model.train()
        self._loss_sum.zero_()
        self._correct.zero_()
        self._first_bad.fill_(-1)
        batch = self.opts.batch_size
        done = 0
        was_cancelled = False
        lr = self.current_lr
        start = time.perf_counter()
        while done < steps:
            if done % cancel_check_every == 0 and cancelled():
                was_cancelled = True
                break
            x, y = self._next_batch()
            lr = self.current_lr
            if self._use_graph:  # re-read each step: a failed capture turns it off
                self._graph_step(x, y)
            else:
                self._eager_step(x, y)
            done += 1
            self.global_step += 1
            self.step_in_epoch += 1
            if self.step_in_epoch == self.steps_per_epoch:
                self.epoch += 1
                self.step_in_epoch = 0
                self._batches = None
                self.optimizer.set_lr(self.current_lr)
            if done % progress_every == 0 and done < steps:
                loss_sum, correct, first_bad, bad_loss = self._read_metrics()
                self._raise_if_non_finite(first_bad, bad_loss)
                elapsed = time.perf_counter() - start
                on_progress(
                    ProgressPoint(
                        epoch=self.epoch, step=done, steps_total=steps, loss=loss_sum / done,
                        accuracy=correct / (done * batch), samples_per_s=done * batch / max(elapsed, 1e-9),
                    )
                )
        loss_sum, correct, first_bad, bad_loss = self._read_metrics()  # also the end-of-run sync
        seconds = time.perf_counter() - start
        self._raise_if_non_finite(first_bad, bad_loss)
        return RunStats(
            steps=done, cancelled=was_cancelled, loss=loss_sum / max(done, 1),
            accuracy=correct / max(done * batch, 1), seconds=seconds, lr=lr,
        )

    @torch.no_grad()
    def evaluate(self, split: str = "test", max_batches: int = 0) -> EvalStats:
        self.model.eval()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        top1 = torch.zeros((), device=self.device, dtype=torch.int64)
        top5 = torch.zeros((), device=self.device, dtype=torch.int64)
        samples = 0
        # Always fp32 without TF32, also for bf16 training: the score must be the exported model's score, and the
        # reference loader (and every deployment) runs the dequantized model in fp32.
        try:
            with exact_fp32():
                for i, (x, y) in enumerate(self.data.eval_batches(split, self.opts.eval_batch_size)):
                    if max_batches and i >= max_batches:
                        break
                    out = self.model(x).float()
                    loss_sum += F.cross_entropy(out, y, reduction="sum").double()
                    k = min(5, out.shape[1])
                    topk = out.topk(k, dim=1).indices
                    top1 += (topk[:, 0] == y).sum()
                    top5 += (topk == y.unsqueeze(1)).any(dim=1).sum()
                    samples += int(y.shape[0])
        finally:
            self.model.train()
        # each rank evaluated its share of the batches: add the partial sums
        vals = reduce_sums(torch.stack([loss_sum, top1.double(), top5.double(),
                                        torch.tensor(float(samples), dtype=torch.float64, device=self.device)])).tolist()
        samples = int(vals[3])
        n = max(samples, 1)
        return EvalStats(
            loss=vals[0] / n, top1=vals[1] / n, top5=vals[2] / n, samples=samples,
            seconds=time.perf_counter() - start,
        )

    def recalibrate_batchnorm(self, batches: int = 0) -> RecalibrationStats:
        """Every BatchNorm's running statistics recomputed for the weights as they are now (RecalibrateBatchNorm):
        the model as evaluate() runs it (eval mode, exact fp32) but BatchNorm in train mode with a cumulative average,
        over the first `batches` (0: the whole epoch, drop-last) training batches as training draws them: augmented,
        of the training batch size, in the order and with the augmentation draws of epoch `self.epoch` (the one after
        the last epoch trained: fixed by the seed, never trained on). Augmented, not the plain images: the layers
        after each BatchNorm were trained under the statistics of augmented images, and un-augmented statistics (even
        the test images' own) cost the FP ResNet-20 about 4 points (bench/bn_recalibration_probe.py). In a job each
        rank forwards its slice of every global batch and global-batch BatchNorm reduces over all of them, as in
        training, so every rank runs as many forwards. No training state moves: the order and the tensor sources'
        draws come from generators seeded from (seed, epoch), and the global RNGs a data source draws from (the image
        folder's loader and crops) are put back."""
        start = time.perf_counter()
        norms = _running_batchnorms(self.model)  # the student's only: a distillation teacher keeps its own
        if not norms:
            return RecalibrationStats(modules=0, samples=0, seconds=time.perf_counter() - start)
        size = self.opts.batch_size
        full = self.data.train_size // size  # drop-last, as training: a short batch would weigh as much as a full one
        if full == 0:  # the Trainer refuses such a split already; said here too, before anything changes
            raise invalid("dataset.batch_size",
                          f"the {self.data.train_size} training images hold no batch of {size} (training batches are "
                          f"drop-last), so there is no training batch to recalibrate BatchNorm over")
        count = full if batches <= 0 else min(full, batches)
        epoch = self.epoch
        order = self.epoch_order(epoch)
        momenta = [bn.momentum for bn in norms]
        # the old statistics come back if a forward fails (a half-computed average would be worse than either)
        saved = [(bn.running_mean.clone(), bn.running_var.clone(),  # type: ignore[union-attr]
                  None if bn.num_batches_tracked is None else bn.num_batches_tracked.clone()) for bn in norms]
        # the shared generators a data source may draw from (the image folder: its DataLoader's base seed from
        # torch's, its crops and flips from numpy's): the next epoch's training must draw as if this had not run
        torch_rng = torch.get_rng_state()
        numpy_rng = np.random.get_state()
        samples = 0
        # the quantizers and every other layer as at evaluation (no clip initialisation, no statistics collection)
        self.model.eval()
        try:
            for bn in norms:
                bn.reset_running_stats()  # in place: a captured training step holds these buffers' storage
                bn.momentum = None  # cumulative average: each batch weighs the same
                bn.train()
            # fp32 without TF32, as evaluated and exported: the statistics of the model that is scored
            with torch.no_grad(), exact_fp32():
                # this rank's slice of each global batch; the model itself, not DDP (no buffer broadcast per forward)
                for x, _ in itertools.islice(self.data.train_batches(order, 0, size, epoch), count):
                    self.model(x)
                    samples += int(x.shape[0])
        except BaseException:
            with torch.no_grad():
                for bn, (mean, var, tracked) in zip(norms, saved):
                    bn.running_mean.copy_(mean)  # type: ignore[union-attr]
                    bn.running_var.copy_(var)  # type: ignore[union-attr]
                    if tracked is not None and bn.num_batches_tracked is not None:
                        bn.num_batches_tracked.copy_(tracked)
            raise
        finally:
            for bn, momentum in zip(norms, momenta):
                bn.momentum = momentum
            self.model.train()  # as evaluate() leaves it
            torch.set_rng_state(torch_rng)
            np.random.set_state(numpy_rng)
        total = reduce_sums(torch.tensor(float(samples), dtype=torch.float64, device=self.device))
        return RecalibrationStats(modules=len(norms), samples=int(total.item()), seconds=time.perf_counter() - start)
