"""TrainingService: the worker's side of the contract (proto/dmbq.proto), one request at a time.

The transport (dmbq_worker.server) decodes a Request, calls the method of the same name, and sends back what it
returns (or the WorkerError it raises) as the final Response.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dmbq_worker.distributed import runtime as ranks
from dmbq_worker.distributed.parallel import prepare_model
from dmbq_worker.distributed.statistics import GlobalBatchStatistics
from dmbq_worker.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    bytes_to_tensor,
    load_checkpoint_file,
    save_atomic,
    tensor_to_bytes,
)
from dmbq_worker.engine.data import DATASET_NAMES, DataOptions, DataSource, load_data
from dmbq_worker.engine.distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, Distiller
from dmbq_worker.engine.models import MODEL_NAMES, build_model
from dmbq_worker.engine.optim import OptimizerOptions, TrainingOptimizer
from dmbq_worker.engine.schedule import LrSchedule
from dmbq_worker.engine.trainer import LoopOptions, ProgressPoint, Trainer
from dmbq_worker.errors import WorkerError, checkpoint_error, invalid, not_configured
from dmbq_worker.proto import dmbq_pb2 as pb
from dmbq_worker.quant import (
    QuantLayerRef,
    ScaleUpdater,
    SensitivityCollector,
    WeightBatcher,
    apply_scheme,
    convert_model,
    scheme_from_proto,
    stats_to_proto,
)
from dmbq_worker.quant.fused import fused_on
from dmbq_worker.quant.options import scale_statistic
from dmbq_worker.quant.scheme import quantizer_switches
from dmbq_worker.server.context import RequestContext

DEFAULT_MODEL_FOR_DATASET = {"digits": "digits_cnn", "cifar10": "resnet20", "synthetic": "resnet20",
                             "imagefolder": "resnet18"}
DEFAULT_ACT_CLIP = 6.0
QUANT_STATE_MARKERS = (".weight_quant.", ".act_quant.")


# ---------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise invalid("device", f"'{name}' asked for, but this worker has no CUDA device")
        dev = torch.device(name)
        index = dev.index if dev.index is not None else 0
        if index >= torch.cuda.device_count():
            raise invalid("device", f"'{name}': only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    raise invalid("device", f"unknown device '{name}'; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _f32_bytes(t: torch.Tensor) -> bytes:
    return t.detach().float().cpu().numpy().astype("<f4").tobytes()


def layer_input_sizes(model: nn.Module, refs: list[QuantLayerRef], sample: torch.Tensor) -> dict[str, int]:
    """H*W of each layer's input feature map for one sample (1 for a linear layer), from one dummy forward."""
    sizes: dict[str, int] = {}
    handles = []
    for ref in refs:
        def hook(module: nn.Module, inputs: tuple[Any, ...], name: str = ref.name) -> None:
            x = inputs[0]
            sizes.setdefault(name, int(np.prod(x.shape[2:])) if x.dim() == 4 else int(np.prod(x.shape[1:-1])) or 1)
        handles.append(ref.module.register_forward_pre_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(sample)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return sizes


def layer_info(ref: QuantLayerRef, act_elems: int) -> pb.LayerInfo:
    m = ref.module
    is_conv = isinstance(m, nn.Conv2d)
    role = {"first": pb.LAYER_ROLE_FIRST, "body": pb.LAYER_ROLE_BODY, "last": pb.LAYER_ROLE_LAST}[ref.role]
    return pb.LayerInfo(
        name=ref.name,
        kind="conv2d" if is_conv else "linear",
        out_channels=int(m.weight.shape[0]),
        in_channels=int(m.in_channels),
        params_per_out_channel=int(m.weight[0].numel()),
        act_elems_per_in_channel=act_elems,
        role=role,  # type: ignore[arg-type]
        kernel=list(m.weight.shape[2:]) if is_conv else [],
    )


def is_quantized(ref: QuantLayerRef) -> bool:
    m = ref.module
    return not (m.weight_quant.all_full_precision and m.act_quant.all_full_precision)


def load_model_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Parameters and plain buffers (BN statistics) from `state`; the quantizers' scheme state is left alone."""
    own = model.state_dict()
    wanted = {k: v for k, v in own.items() if not any(mark in f".{k}" for mark in QUANT_STATE_MARKERS)}
    missing = [k for k in wanted if k not in state]
    if missing:
        raise checkpoint_error(f"{source}: model weights missing for {', '.join(missing[:5])}"
                               f"{' ...' if len(missing) > 5 else ''} (a checkpoint of another model?)")
    bad = [k for k in wanted if state[k].shape != own[k].shape]
    if bad:
        raise checkpoint_error(f"{source}: shape mismatch for {bad[0]}: {tuple(state[bad[0]].shape)} in the file, "
                               f"{tuple(own[bad[0]].shape)} in the model")
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)


def _placed_model(req: pb.Configure, model_name: str, num_classes: int, device: torch.device) -> nn.Module:
    """Configure's model (the student, or its distillation teacher) on `device`, channels_last on CUDA."""
    model = build_model(model_name, num_classes, width=int(req.model.width), factory=req.model.factory).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


# ---------------------------------------------------------------- the configured session


@dataclass
class Session:
    request: pb.Configure
    device: torch.device
    model: nn.Module
    refs: list[QuantLayerRef]
    data: DataSource
    optimizer: TrainingOptimizer
    trainer: Trainer
    scheme_bytes: bytes = b""
    collector: SensitivityCollector | None = None
    collector_key: tuple[bool, bool, int, bool] | None = None
    layers: list[pb.LayerInfo] = field(default_factory=list)
    global_stats: GlobalBatchStatistics | None = None  # set when this worker is one rank of a job


# Opt-in to torch.compile of quantized layers on CUDA (bench/gpu_checks.sh sets it to measure the compiled path).
COMPILE_QUANT_CUDA_ENV = "DMBQ_COMPILE_QUANT_CUDA"


def compiled_quant_on_cuda_allowed() -> bool:
    return os.environ.get(COMPILE_QUANT_CUDA_ENV, "") == "1"


def _weight_batcher(refs: list[QuantLayerRef]) -> WeightBatcher | None:
    """Every layer's weight quantizer in one launch per direction (the default; DMBQ_WEIGHT_BATCH=forward: the forward
    only, =0: one launch per layer). Measured on an H100 (docs/RESULTS.md, eighth engine run): W2/A2 with
    sensitivities 1.11x -> 1.06x and 1.14x -> 1.04x FP; values and input gradients bit for bit those of the per-layer
    kernels, the per-channel sums in another order (fused_check). Not in a job: its single backward would hand DDP
    every weight gradient at the end of the backward."""
    mode = os.environ.get("DMBQ_WEIGHT_BATCH", "1")
    if mode not in ("1", "forward", "0"):
        raise ValueError(f"DMBQ_WEIGHT_BATCH: {mode!r} is not 1 (both directions), forward or 0 (off)")
    if mode == "0" or ranks.current() is not None:
        return None
    return WeightBatcher(refs, backward=mode == "1")


class TrainingService:
    """Serves Configure / UpdateScheme / Run / Evaluate / RecalibrateBatchNorm / SaveCheckpoint / LoadCheckpoint."""

    def __init__(self, *, cuda_graph: bool = True) -> None:
        """`cuda_graph=False` keeps CUDA runs eager (debugging, and the graph-vs-eager check of the bench)."""
        self._session: Session | None = None
        self._cuda_graph = cuda_graph

    # ------------------------------------------------------------ capabilities

    def capabilities(self) -> dict[str, Any]:
        cuda = torch.cuda.is_available()
        return {
            "device_kind": "cuda" if cuda else "cpu",
            "device_name": torch.cuda.get_device_name(0) if cuda else _cpu_name(),
            "gpu_count": torch.cuda.device_count() if cuda else 0,
            "models": list(MODEL_NAMES),
            "datasets": list(DATASET_NAMES),
            "world_size": ranks.world_size(),
        }

    def _need(self, what: str) -> Session:
        if self._session is None:
            raise not_configured(what)
        return self._session

    # ------------------------------------------------------------ configure

    def configure(self, req: pb.Configure, ctx: RequestContext) -> pb.Configured:
        device = ranks.rank_device(resolve_device(req.device))  # one GPU per rank in a job
        if device.type == "cuda":
            # The current device must be the training device: CUDA-graph capture and the step's streams use it.
            # Left at cuda:0, a run on cuda:1 could not capture its step and trained about 17x slower (4,400
            # against 74,000 images/s, H100, 2026-11-26). Set here, after rank_device, so a rank keeps its GPU.
            torch.cuda.set_device(device)
        precision = req.precision or "fp32"
        if precision not in ("fp32", "bf16"):
            raise invalid("precision", f"unknown precision '{req.precision}'; use 'fp32' or 'bf16'")
        ds = req.dataset
        if not ds.name:
            raise invalid("dataset.name", f"is required; known: {', '.join(DATASET_NAMES)}")
        if ds.name not in DATASET_NAMES:
            raise invalid("dataset.name", f"unknown dataset '{ds.name}'; known: {', '.join(DATASET_NAMES)}")
        digits = ds.name == "digits"
        batch_size = ds.batch_size or (64 if digits else 128)
        eval_batch_size = ds.eval_batch_size or 512
        if ds.image_size and ds.name != "imagefolder":
            raise invalid("dataset.image_size", "applies to imagefolder only")
        q = req.quant
        if not (0 <= q.scale_ema_decay < 1):
            raise invalid("quant.scale_ema_decay", f"must lie in [0, 1), got {q.scale_ema_decay}")
        weight_statistic = scale_statistic(q)  # names quant.weight_scale when it is no WeightScale
        if not (q.act_clip_init >= 0 and np.isfinite(q.act_clip_init)):
            raise invalid("quant.act_clip_init", f"must be >= 0 and finite, got {q.act_clip_init}")
        if not (q.act_clip_lr_scale >= 0 and np.isfinite(q.act_clip_lr_scale)):
            raise invalid("quant.act_clip_lr_scale", f"must be >= 0, got {q.act_clip_lr_scale}")
        opt = req.optimizer
        # proto3 scalars have no presence: 0 means "the default" (momentum 0.9, weight decay 1e-4)
        opt_opts = OptimizerOptions(
            name=opt.name or "sgd",
            lr=opt.lr or (0.05 if digits else 0.1),
            momentum=opt.momentum or 0.9,
            weight_decay=opt.weight_decay or 1e-4,
            nesterov=opt.nesterov,
            clip_lr_scale=q.act_clip_lr_scale or 1.0,
        )
        sch = req.schedule
        schedule = LrSchedule(
            kind=sch.kind or "cosine", epochs=int(sch.epochs), base_lr=opt_opts.lr,
            milestones=tuple(int(m) for m in sch.milestones), gamma=sch.gamma or 0.1,
            warmup_epochs=int(sch.warmup_epochs),
        )
        model_name = req.model.name or ("" if req.model.factory else DEFAULT_MODEL_FOR_DATASET[ds.name])
        if model_name and not req.model.factory and model_name not in MODEL_NAMES:
            raise invalid("model.name", f"unknown model '{model_name}'; known: {', '.join(MODEL_NAMES)}")

        self._session = None  # a failed Configure leaves the worker unconfigured, not half-configured
        seed = int(req.seed)
        torch.manual_seed(seed)
        channels_last = device.type == "cuda"
        data = load_data(DataOptions(
            name=ds.name, path=ds.path, augment=ds.augment, train_limit=int(ds.train_limit),
            test_limit=int(ds.test_limit), num_workers=int(ds.num_workers), image_size=int(ds.image_size),
            seed=seed, device=device, channels_last=channels_last,
        ))
        num_classes = int(req.model.num_classes) or data.num_classes
        model = _placed_model(req, model_name, num_classes, device)
        fp_param_bytes = 4 * (sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()))
        sample = next(iter(data.eval_batches("test", 2)))[0][:2]
        try:
            was_training = model.training
            with torch.no_grad():
                model.eval()(sample)
            model.train(was_training)
        except RuntimeError as exc:
            field = "model.factory" if req.model.factory else "model.name"
            raise invalid(field, f"model '{model_name or req.model.factory}' does not take {ds.name} inputs of "
                                 f"shape {tuple(sample.shape[1:])}: {exc}") from exc
        refs = convert_model(
            model, example_input=sample, scale_ema_decay=q.scale_ema_decay or 0.99, scale_statistic=weight_statistic,
            act_clip_init=q.act_clip_init or DEFAULT_ACT_CLIP,
        )
        if q.act_clip_init == 0:
            for ref in refs:
                ref.module.act_quant.init_clip_from_next_batch()
        if req.init_weights:
            payload = load_checkpoint_file(req.init_weights)
            load_model_weights(model, payload["model"], f"init_weights {req.init_weights}")
            for ref in refs:
                ref.module.weight_quant.reset_scale_(ref.module.weight)
        distiller = self._distiller(req, model_name, num_classes, device, sample)
        sizes = layer_input_sizes(model, refs, sample)
        ranks.per_rank_batch(batch_size)  # the global batch must split evenly over the ranks
        model = prepare_model(model, device)  # global-batch BatchNorm in a job; before the optimizer sees it
        optimizer = TrainingOptimizer(model, opt_opts, device)
        trainer = Trainer(
            model, data, optimizer, schedule,
            LoopOptions(batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, bf16=precision == "bf16",
                        cuda_graph=self._cuda_graph and (ranks.current() is None or ranks.ddp_cuda_graph_enabled()),
                        compile=req.compile),
            device,
            after_optimizer_step=ScaleUpdater(refs).step,  # the scale EMA, out of the (compiled) forward
            weight_batcher=_weight_batcher(refs),
        )
        trainer.distiller = distiller
        if ranks.current() is not None and ranks.ddp_cuda_graph_enabled():
            trainer.always_used = [ref.module.act_quant.clip for ref in refs]  # DDP runs without find_unused
        session = Session(
            request=req, device=device, model=model, refs=refs, data=data, optimizer=optimizer, trainer=trainer,
            layers=[layer_info(r, sizes.get(r.name, 1)) for r in refs],
            global_stats=GlobalBatchStatistics(refs) if ranks.current() is not None else None,
        )
        if req.HasField("scheme") and len(req.scheme.layers):
            self._apply(session, req.scheme)
        self._session = session
        return pb.Configured(
            layers=session.layers,
            total_params=sum(p.numel() for p in model.parameters()),
            train_size=data.train_size, test_size=data.test_size, steps_per_epoch=trainer.steps_per_epoch,
            num_classes=num_classes, device=str(device if device.type == "cpu" else f"cuda:{device.index or 0}"),
            fp_param_bytes=fp_param_bytes,
        )

    @staticmethod
    def _distiller(req: pb.Configure, model_name: str, num_classes: int, device: torch.device,
                   sample: torch.Tensor) -> Distiller | None:
        """The frozen teacher of Configure.distill: the same architecture in full precision, its weights from a
        checkpoint (the FP run's, typically)."""
        if not req.HasField("distill"):
            return None
        d = req.distill
        alpha = float(d.alpha) or DEFAULT_ALPHA
        temperature = float(d.temperature) or DEFAULT_TEMPERATURE
        if not (0.0 < alpha <= 1.0):
            raise invalid("distill.alpha", f"must be in (0, 1], got {d.alpha}")
        if not (temperature > 0.0 and np.isfinite(temperature)):
            raise invalid("distill.temperature", f"must be a positive number, got {d.temperature}")
        if not d.teacher_weights:
            raise invalid("distill.teacher_weights", "a checkpoint of the teacher is required")
        teacher = _placed_model(req, model_name, num_classes, device)
        # converted like the student (its checkpoint's keys are a converted model's), and left in full precision
        convert_model(teacher, example_input=sample)
        try:
            payload = load_checkpoint_file(d.teacher_weights)
            load_model_weights(teacher, payload["model"], f"checkpoint {d.teacher_weights}")
        except WorkerError as exc:  # a missing, unreadable or other model's file: name the field that chose it
            raise invalid("distill.teacher_weights", exc.message) from exc
        return Distiller(teacher, alpha=alpha, temperature=temperature)

    # ------------------------------------------------------------ schemes

    def _apply(self, session: Session, scheme: pb.QuantScheme) -> int:
        cfg = scheme_from_proto(scheme)
        if session.request.compile and session.device.type == "cuda" and not compiled_quant_on_cuda_allowed() and any(
            np.any(lc.weight_bits != 32) or (lc.act_bits is not None and np.any(lc.act_bits != 32)) for lc in cfg.layers.values()
        ):
            # On an H100 with torch 2.11 (bench/gpu_checks.sh, docs/RESULTS.md): since the compiled path builds the
            # quantizers from plain ops, W2/A2 gradients and sensitivities equal eager and compiled runs train, but
            # W4/A4 weight gradients of one small model still differ by 15% under inductor (not under aot_eager)
            # at every step, unexplained; so CUDA keeps needing the opt-in.
            raise invalid("compile", "torch.compile of quantized layers on CUDA is opt-in: its W4/A4 gradients still "
                                     f"differ from eager under inductor on torch 2.11; train quantized runs with compile "
                                     f"off (the CUDA-graph step is the fast path), or set {COMPILE_QUANT_CUDA_ENV}=1 "
                                     f"to run it anyway")
        known = {r.name for r in session.refs}
        for i, ls in enumerate(scheme.layers):
            if ls.name not in known:
                raise invalid(f"scheme.layers[{i}].name", f"no quantizable layer '{ls.name}' in this model")
        before = quantizer_switches(session.refs)
        count = apply_scheme(session.refs, cfg)
        session.scheme_bytes = scheme.SerializeToString()
        # The captured step bakes in which quantizer paths run, not the bits and tables (copied into the same
        # buffers): keep it when no switch moved, so LBA's per-epoch bit moves do not pay a re-capture each time.
        # Not with the look-ahead on the fused kernels: there the kept step trained apart from eager after a bit
        # move on an H100 (bench/engine_graph_check.py, docs/RESULTS.md; cause not found), so it is captured again.
        lookahead_fused = session.collector is not None and session.collector.lookahead and fused_on(session.device)
        if lookahead_fused or quantizer_switches(session.refs) != before:
            session.trainer.invalidate_graph()
        return count

    def update_scheme(self, req: pb.UpdateScheme, ctx: RequestContext) -> pb.SchemeApplied:
        session = self._need("UpdateScheme")
        count = self._apply(session, req.scheme)
        return pb.SchemeApplied(layers=len(req.scheme.layers), quantized_weights=count)

    # ------------------------------------------------------------ training

    def _collector_for(self, session: Session, req: pb.Run) -> SensitivityCollector | None:
        # a look-ahead without sensitivities still builds a collector: its constructor refuses it, naming run.lookahead
        wanted = req.sensitivity or req.lookahead or req.histogram_bins > 0
        if not wanted:
            if session.collector is not None:
                session.collector.disable()
                session.collector = None
                session.collector_key = None
                session.trainer.after_backward = None
                session.trainer.invalidate_graph()
            return None
        key = (bool(req.sensitivity), bool(req.lookahead), int(req.histogram_bins), bool(req.weight_histograms_only))
        if session.collector is None or session.collector_key != key:
            if session.collector is not None:
                session.collector.disable()
                session.collector = session.collector_key = None
            session.trainer.invalidate_graph()
            # compiled quantizers, the fused (Triton) ones and the ranks of a job hand the probes signed per-step
            # sums: the collector folds |.| after each backward, in a job after one all-reduce of every layer's sums
            # (distributed/statistics.py)
            in_job = ranks.current() is not None
            fold = bool(session.request.compile) or in_job or fused_on(session.device)
            collector = SensitivityCollector(
                session.refs, lookahead=bool(req.lookahead), histogram_bins=int(req.histogram_bins),
                sensitivity=bool(req.sensitivity), act_histograms=not req.weight_histograms_only, fold_each_step=fold,
                reduce_step=ranks.all_reduce_sum_ if in_job else None,
                world_size=ranks.world_size() if in_job else 1,
            )
            try:
                collector.enable()  # validates the look-ahead tables
            except Exception:
                collector.disable()
                raise
            session.trainer.after_backward = collector.fold_ if collector.fold_each_step else None
            session.collector, session.collector_key = collector, key
        session.collector.reset()
        return session.collector

    def run(self, req: pb.Run, ctx: RequestContext) -> pb.EpochResult | pb.Cancelled:
        session = self._need("Run")
        trainer = session.trainer
        progress_every = int(req.progress_every) or max(1, trainer.steps_per_epoch // 20)
        collector = self._collector_for(session, req)

        def on_progress(p: ProgressPoint) -> None:
            ctx.progress(pb.Progress(epoch=p.epoch, step=p.step, steps_total=p.steps_total, loss=p.loss,
                                     accuracy=p.accuracy, samples_per_s=p.samples_per_s))

        stats = trainer.run(int(req.steps), progress_every=progress_every, on_progress=on_progress,
                            cancelled=ctx.cancelled)
        if stats.cancelled:
            return pb.Cancelled(target=ctx.request_id, steps_done=stats.steps)
        result = pb.EpochResult(
            epoch=trainer.epoch, steps=stats.steps, global_step=trainer.global_step, train_loss=stats.loss,
            train_accuracy=stats.accuracy, lr=stats.lr, seconds=stats.seconds,
            samples_per_s=stats.steps * trainer.opts.batch_size / max(stats.seconds, 1e-9),
            step_mode=trainer.step_mode,
        )
        if req.evaluate:
            ev = trainer.evaluate("test")
            result.evaluated = True
            result.test_loss = ev.loss
            result.test_accuracy = ev.top1
        result.layers.extend(self._layer_stats(session, collector))
        return result

    def _layer_stats(self, session: Session, collector: SensitivityCollector | None) -> list[pb.LayerStats]:
        collected = collector.read() if collector is not None else {}
        if session.global_stats is not None and collector is not None:
            collected = session.global_stats.reduce(collected)  # every rank, in step: collectives
        out: list[pb.LayerStats] = []
        for ref in session.refs:
            if ref.name in collected:
                out.append(stats_to_proto(ref.name, collected[ref.name]))
            elif is_quantized(ref):
                out.append(pb.LayerStats(name=ref.name, act_clip_f32=_f32_bytes(ref.module.act_quant.clip),
                                         weight_scale_f32=_f32_bytes(ref.module.weight_quant.scale)))
        return out

    def evaluate(self, req: pb.Evaluate, ctx: RequestContext) -> pb.EvalResult:
        session = self._need("Evaluate")
        split = req.split or "test"
        if split not in ("test", "train"):
            raise invalid("split", f"unknown split '{req.split}'; use 'test' or 'train'")
        ev = session.trainer.evaluate(split, int(req.max_batches))
        return pb.EvalResult(loss=ev.loss, top1=ev.top1, top5=ev.top5, samples=ev.samples, seconds=ev.seconds)

    def recalibrate_batch_norm(self, req: pb.RecalibrateBatchNorm, ctx: RequestContext) -> pb.BatchNormRecalibrated:
        session = self._need("RecalibrateBatchNorm")
        stats = session.trainer.recalibrate_batchnorm(int(req.batches))
        return pb.BatchNormRecalibrated(modules=stats.modules, samples=stats.samples, seconds=stats.seconds)

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, req: pb.SaveCheckpoint, ctx: RequestContext) -> pb.CheckpointSaved:
        session = self._need("SaveCheckpoint")
        # The model state holds the quantizers' padded tables in compact form (quant.weight_quantizer.
        # CompactTablesState): the scheme below says what they are, and the file stays near weights + optimizer.
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model_name": session.request.model.name or session.request.model.factory,
            "dataset": session.request.dataset.name,
            "model": session.model.state_dict(),
            "optimizer": session.optimizer.state_dict(),
            "schedule": session.trainer.schedule.to_state(),
            "trainer": session.trainer.state_dict(),
            "clip_pending": [r.name for r in session.refs if r.module.act_quant.init_clip_pending],
            "scheme": bytes_to_tensor(session.scheme_bytes),
            "extra": bytes_to_tensor(req.extra),
            "saved_at": time.time(),
        }
        size = 0
        try:
            if ranks.is_leader():  # one writer; the other ranks hold identical state
                size = save_atomic(payload, req.path)
        finally:
            ranks.barrier()
        return pb.CheckpointSaved(path=os.path.abspath(os.path.expanduser(req.path)), bytes=size)

    def load_checkpoint(self, req: pb.LoadCheckpoint, ctx: RequestContext) -> pb.CheckpointLoaded:
        session = self._need("LoadCheckpoint")
        payload = load_checkpoint_file(req.path)
        extra = tensor_to_bytes(payload["extra"]) if "extra" in payload else b""
        if req.weights_only:
            load_model_weights(session.model, payload["model"], req.path)
            session.trainer.reset_training_state()
            return pb.CheckpointLoaded(epoch=0, global_step=0, extra=extra)
        try:
            scheme_bytes = tensor_to_bytes(payload["scheme"])
            scheme = pb.QuantScheme.FromString(scheme_bytes)  # our own proto: parsing it runs no code
            # The scheme of the moment the file was written (an LBA run changes it between epochs), even an empty
            # one (all FP): the quantizers' tables are derived from it; the state then brings scales, clips, bits.
            self._apply(session, scheme)
            session.model.load_state_dict(payload["model"], strict=True)
            session.optimizer.load_state_dict(payload["optimizer"])
            session.trainer.load_state_dict(payload["trainer"])
        except WorkerError:
            raise
        except (RuntimeError, KeyError, ValueError) as exc:
            raise checkpoint_error(f"checkpoint {req.path} does not fit this configuration: {exc}") from exc
        pending = set(payload.get("clip_pending", []))
        for ref in session.refs:
            ref.module.weight_quant.sync_mode_from_buffers()
            ref.module.act_quant.sync_mode_from_buffers()
            ref.module.act_quant.init_clip_pending = ref.name in pending
        session.scheme_bytes = scheme_bytes
        return pb.CheckpointLoaded(epoch=session.trainer.epoch, global_step=session.trainer.global_step, extra=extra)

