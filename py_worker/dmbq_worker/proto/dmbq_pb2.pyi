from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_CURRENT: _ClassVar[ProtocolVersion]

class WeightScale(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHT_SCALE_UNSPECIFIED: _ClassVar[WeightScale]
    WEIGHT_SCALE_MEAN_ABS: _ClassVar[WeightScale]
    WEIGHT_SCALE_MAX_ABS: _ClassVar[WeightScale]

class ActMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACT_MODE_UNSPECIFIED: _ClassVar[ActMode]
    ACT_MODE_UNIFORM: _ClassVar[ActMode]
    ACT_MODE_TABLE: _ClassVar[ActMode]

class LayerRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_ROLE_UNSPECIFIED: _ClassVar[LayerRole]
    LAYER_ROLE_FIRST: _ClassVar[LayerRole]
    LAYER_ROLE_BODY: _ClassVar[LayerRole]
    LAYER_ROLE_LAST: _ClassVar[LayerRole]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_MALFORMED: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_REQUEST: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_CONFIGURED: _ClassVar[ErrorCode]
    ERROR_CODE_DATA: _ClassVar[ErrorCode]
    ERROR_CODE_NON_FINITE: _ClassVar[ErrorCode]
    ERROR_CODE_PROTOCOL_MISMATCH: _ClassVar[ErrorCode]
    ERROR_CODE_BUSY: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_CHECKPOINT: _ClassVar[ErrorCode]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_CURRENT: ProtocolVersion
WEIGHT_SCALE_UNSPECIFIED: WeightScale
WEIGHT_SCALE_MEAN_ABS: WeightScale
WEIGHT_SCALE_MAX_ABS: WeightScale
ACT_MODE_UNSPECIFIED: ActMode
ACT_MODE_UNIFORM: ActMode
ACT_MODE_TABLE: ActMode
LAYER_ROLE_UNSPECIFIED: LayerRole
LAYER_ROLE_FIRST: LayerRole
LAYER_ROLE_BODY: LayerRole
LAYER_ROLE_LAST: LayerRole
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_MALFORMED: ErrorCode
ERROR_CODE_UNKNOWN_REQUEST: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode
ERROR_CODE_NOT_CONFIGURED: ErrorCode
ERROR_CODE_DATA: ErrorCode
ERROR_CODE_NON_FINITE: ErrorCode
ERROR_CODE_PROTOCOL_MISMATCH: ErrorCode
ERROR_CODE_BUSY: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_CHECKPOINT: ErrorCode

class Request(_message.Message):
    __slots__ = ("id", "hello", "configure", "run", "update_scheme", "evaluate", "save_checkpoint", "load_checkpoint", "shutdown", "echo", "cancel", "recalibrate_batch_norm")
    ID_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CONFIGURE_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_SCHEME_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    SAVE_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LOAD_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    RECALIBRATE_BATCH_NORM_FIELD_NUMBER: _ClassVar[int]
    id: int
    hello: Hello
    configure: Configure
    run: Run
    update_scheme: UpdateScheme
    evaluate: Evaluate
    save_checkpoint: SaveCheckpoint
    load_checkpoint: LoadCheckpoint
    shutdown: Shutdown
    echo: Echo
    cancel: Cancel
    recalibrate_batch_norm: RecalibrateBatchNorm
    def __init__(self, id: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., configure: _Optional[_Union[Configure, _Mapping]] = ..., run: _Optional[_Union[Run, _Mapping]] = ..., update_scheme: _Optional[_Union[UpdateScheme, _Mapping]] = ..., evaluate: _Optional[_Union[Evaluate, _Mapping]] = ..., save_checkpoint: _Optional[_Union[SaveCheckpoint, _Mapping]] = ..., load_checkpoint: _Optional[_Union[LoadCheckpoint, _Mapping]] = ..., shutdown: _Optional[_Union[Shutdown, _Mapping]] = ..., echo: _Optional[_Union[Echo, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., recalibrate_batch_norm: _Optional[_Union[RecalibrateBatchNorm, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("id", "final", "hello", "configured", "progress", "epoch_result", "scheme_applied", "eval_result", "checkpoint_saved", "checkpoint_loaded", "shutdown", "echo", "cancelled", "error", "batch_norm_recalibrated")
    ID_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_RESULT_FIELD_NUMBER: _ClassVar[int]
    SCHEME_APPLIED_FIELD_NUMBER: _ClassVar[int]
    EVAL_RESULT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SAVED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_LOADED_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BATCH_NORM_RECALIBRATED_FIELD_NUMBER: _ClassVar[int]
    id: int
    final: bool
    hello: HelloReply
    configured: Configured
    progress: Progress
    epoch_result: EpochResult
    scheme_applied: SchemeApplied
    eval_result: EvalResult
    checkpoint_saved: CheckpointSaved
    checkpoint_loaded: CheckpointLoaded
    shutdown: ShutdownAck
    echo: EchoReply
    cancelled: Cancelled
    error: Error
    batch_norm_recalibrated: BatchNormRecalibrated
    def __init__(self, id: _Optional[int] = ..., final: _Optional[bool] = ..., hello: _Optional[_Union[HelloReply, _Mapping]] = ..., configured: _Optional[_Union[Configured, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., epoch_result: _Optional[_Union[EpochResult, _Mapping]] = ..., scheme_applied: _Optional[_Union[SchemeApplied, _Mapping]] = ..., eval_result: _Optional[_Union[EvalResult, _Mapping]] = ..., checkpoint_saved: _Optional[_Union[CheckpointSaved, _Mapping]] = ..., checkpoint_loaded: _Optional[_Union[CheckpointLoaded, _Mapping]] = ..., shutdown: _Optional[_Union[ShutdownAck, _Mapping]] = ..., echo: _Optional[_Union[EchoReply, _Mapping]] = ..., cancelled: _Optional[_Union[Cancelled, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., batch_norm_recalibrated: _Optional[_Union[BatchNormRecalibrated, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("protocol_version", "client")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    client: str
    def __init__(self, protocol_version: _Optional[int] = ..., client: _Optional[str] = ...) -> None: ...

class HelloReply(_message.Message):
    __slots__ = ("protocol_version", "capabilities")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    capabilities: Capabilities
    def __init__(self, protocol_version: _Optional[int] = ..., capabilities: _Optional[_Union[Capabilities, _Mapping]] = ...) -> None: ...

class Capabilities(_message.Message):
    __slots__ = ("device_kind", "device_name", "torch_version", "gpu_count", "python_version", "worker_version", "world_size", "models", "datasets", "pid")
    DEVICE_KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    TORCH_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    device_kind: str
    device_name: str
    torch_version: str
    gpu_count: int
    python_version: str
    worker_version: str
    world_size: int
    models: _containers.RepeatedScalarFieldContainer[str]
    datasets: _containers.RepeatedScalarFieldContainer[str]
    pid: int
    def __init__(self, device_kind: _Optional[str] = ..., device_name: _Optional[str] = ..., torch_version: _Optional[str] = ..., gpu_count: _Optional[int] = ..., python_version: _Optional[str] = ..., worker_version: _Optional[str] = ..., world_size: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ..., datasets: _Optional[_Iterable[str]] = ..., pid: _Optional[int] = ...) -> None: ...

class Configure(_message.Message):
    __slots__ = ("model", "dataset", "optimizer", "schedule", "scheme", "quant", "seed", "device", "precision", "compile", "init_weights", "distill")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    QUANT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    COMPILE_FIELD_NUMBER: _ClassVar[int]
    INIT_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DISTILL_FIELD_NUMBER: _ClassVar[int]
    model: ModelSpec
    dataset: DatasetSpec
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    scheme: QuantScheme
    quant: QuantOptions
    seed: int
    device: str
    precision: str
    compile: bool
    init_weights: str
    distill: Distillation
    def __init__(self, model: _Optional[_Union[ModelSpec, _Mapping]] = ..., dataset: _Optional[_Union[DatasetSpec, _Mapping]] = ..., optimizer: _Optional[_Union[OptimizerSpec, _Mapping]] = ..., schedule: _Optional[_Union[ScheduleSpec, _Mapping]] = ..., scheme: _Optional[_Union[QuantScheme, _Mapping]] = ..., quant: _Optional[_Union[QuantOptions, _Mapping]] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., precision: _Optional[str] = ..., compile: _Optional[bool] = ..., init_weights: _Optional[str] = ..., distill: _Optional[_Union[Distillation, _Mapping]] = ...) -> None: ...

class Distillation(_message.Message):
    __slots__ = ("teacher_weights", "alpha", "temperature")
    TEACHER_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    teacher_weights: str
    alpha: float
    temperature: float
    def __init__(self, teacher_weights: _Optional[str] = ..., alpha: _Optional[float] = ..., temperature: _Optional[float] = ...) -> None: ...

class ModelSpec(_message.Message):
    __slots__ = ("name", "num_classes", "factory", "width")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    FACTORY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_classes: int
    factory: str
    width: int
    def __init__(self, name: _Optional[str] = ..., num_classes: _Optional[int] = ..., factory: _Optional[str] = ..., width: _Optional[int] = ...) -> None: ...

class DatasetSpec(_message.Message):
    __slots__ = ("name", "path", "batch_size", "eval_batch_size", "augment", "num_workers", "train_limit", "test_limit", "image_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    EVAL_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TEST_LIMIT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    batch_size: int
    eval_batch_size: int
    augment: bool
    num_workers: int
    train_limit: int
    test_limit: int
    image_size: int
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., batch_size: _Optional[int] = ..., eval_batch_size: _Optional[int] = ..., augment: _Optional[bool] = ..., num_workers: _Optional[int] = ..., train_limit: _Optional[int] = ..., test_limit: _Optional[int] = ..., image_size: _Optional[int] = ...) -> None: ...

class OptimizerSpec(_message.Message):
    __slots__ = ("name", "lr", "momentum", "weight_decay", "nesterov")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    NESTEROV_FIELD_NUMBER: _ClassVar[int]
    name: str
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    def __init__(self, name: _Optional[str] = ..., lr: _Optional[float] = ..., momentum: _Optional[float] = ..., weight_decay: _Optional[float] = ..., nesterov: _Optional[bool] = ...) -> None: ...

class ScheduleSpec(_message.Message):
    __slots__ = ("kind", "epochs", "milestones", "gamma", "warmup_epochs")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MILESTONES_FIELD_NUMBER: _ClassVar[int]
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    WARMUP_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    epochs: int
    milestones: _containers.RepeatedScalarFieldContainer[int]
    gamma: float
    warmup_epochs: int
    def __init__(self, kind: _Optional[str] = ..., epochs: _Optional[int] = ..., milestones: _Optional[_Iterable[int]] = ..., gamma: _Optional[float] = ..., warmup_epochs: _Optional[int] = ...) -> None: ...

class QuantOptions(_message.Message):
    __slots__ = ("scale_ema_decay", "act_clip_init", "act_clip_lr_scale", "weight_scale")
    SCALE_EMA_DECAY_FIELD_NUMBER: _ClassVar[int]
    ACT_CLIP_INIT_FIELD_NUMBER: _ClassVar[int]
    ACT_CLIP_LR_SCALE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_SCALE_FIELD_NUMBER: _ClassVar[int]
    scale_ema_decay: float
    act_clip_init: float
    act_clip_lr_scale: float
    weight_scale: WeightScale
    def __init__(self, scale_ema_decay: _Optional[float] = ..., act_clip_init: _Optional[float] = ..., act_clip_lr_scale: _Optional[float] = ..., weight_scale: _Optional[_Union[WeightScale, str]] = ...) -> None: ...

class LevelTable(_message.Message):
    __slots__ = ("bits", "alpha_f32", "layer")
    BITS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_F32_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    bits: int
    alpha_f32: bytes
    layer: str
    def __init__(self, bits: _Optional[int] = ..., alpha_f32: _Optional[bytes] = ..., layer: _Optional[str] = ...) -> None: ...

class LayerScheme(_message.Message):
    __slots__ = ("name", "weight_bits_u8", "act_bits_u8", "act_mode")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BITS_U8_FIELD_NUMBER: _ClassVar[int]
    ACT_BITS_U8_FIELD_NUMBER: _ClassVar[int]
    ACT_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight_bits_u8: bytes
    act_bits_u8: bytes
    act_mode: ActMode
    def __init__(self, name: _Optional[str] = ..., weight_bits_u8: _Optional[bytes] = ..., act_bits_u8: _Optional[bytes] = ..., act_mode: _Optional[_Union[ActMode, str]] = ...) -> None: ...

class QuantScheme(_message.Message):
    __slots__ = ("layers", "weight_tables", "act_tables")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_TABLES_FIELD_NUMBER: _ClassVar[int]
    ACT_TABLES_FIELD_NUMBER: _ClassVar[int]
    layers: _containers.RepeatedCompositeFieldContainer[LayerScheme]
    weight_tables: _containers.RepeatedCompositeFieldContainer[LevelTable]
    act_tables: _containers.RepeatedCompositeFieldContainer[LevelTable]
    def __init__(self, layers: _Optional[_Iterable[_Union[LayerScheme, _Mapping]]] = ..., weight_tables: _Optional[_Iterable[_Union[LevelTable, _Mapping]]] = ..., act_tables: _Optional[_Iterable[_Union[LevelTable, _Mapping]]] = ...) -> None: ...

class UpdateScheme(_message.Message):
    __slots__ = ("scheme",)
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    scheme: QuantScheme
    def __init__(self, scheme: _Optional[_Union[QuantScheme, _Mapping]] = ...) -> None: ...

class SchemeApplied(_message.Message):
    __slots__ = ("layers", "quantized_weights")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    QUANTIZED_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    layers: int
    quantized_weights: int
    def __init__(self, layers: _Optional[int] = ..., quantized_weights: _Optional[int] = ...) -> None: ...

class LayerInfo(_message.Message):
    __slots__ = ("name", "kind", "out_channels", "in_channels", "params_per_out_channel", "act_elems_per_in_channel", "role", "kernel")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    IN_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_PER_OUT_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACT_ELEMS_PER_IN_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    out_channels: int
    in_channels: int
    params_per_out_channel: int
    act_elems_per_in_channel: int
    role: LayerRole
    kernel: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., out_channels: _Optional[int] = ..., in_channels: _Optional[int] = ..., params_per_out_channel: _Optional[int] = ..., act_elems_per_in_channel: _Optional[int] = ..., role: _Optional[_Union[LayerRole, str]] = ..., kernel: _Optional[_Iterable[int]] = ...) -> None: ...

class Configured(_message.Message):
    __slots__ = ("layers", "total_params", "train_size", "test_size", "steps_per_epoch", "num_classes", "device", "fp_param_bytes")
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PARAMS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    TEST_SIZE_FIELD_NUMBER: _ClassVar[int]
    STEPS_PER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FP_PARAM_BYTES_FIELD_NUMBER: _ClassVar[int]
    layers: _containers.RepeatedCompositeFieldContainer[LayerInfo]
    total_params: int
    train_size: int
    test_size: int
    steps_per_epoch: int
    num_classes: int
    device: str
    fp_param_bytes: int
    def __init__(self, layers: _Optional[_Iterable[_Union[LayerInfo, _Mapping]]] = ..., total_params: _Optional[int] = ..., train_size: _Optional[int] = ..., test_size: _Optional[int] = ..., steps_per_epoch: _Optional[int] = ..., num_classes: _Optional[int] = ..., device: _Optional[str] = ..., fp_param_bytes: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("steps", "sensitivity", "lookahead", "histogram_bins", "progress_every", "evaluate", "weight_histograms_only")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_BINS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_EVERY_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_HISTOGRAMS_ONLY_FIELD_NUMBER: _ClassVar[int]
    steps: int
    sensitivity: bool
    lookahead: bool
    histogram_bins: int
    progress_every: int
    evaluate: bool
    weight_histograms_only: bool
    def __init__(self, steps: _Optional[int] = ..., sensitivity: _Optional[bool] = ..., lookahead: _Optional[bool] = ..., histogram_bins: _Optional[int] = ..., progress_every: _Optional[int] = ..., evaluate: _Optional[bool] = ..., weight_histograms_only: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("epoch", "step", "steps_total", "loss", "accuracy", "samples_per_s")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_S_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    steps_total: int
    loss: float
    accuracy: float
    samples_per_s: float
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., steps_total: _Optional[int] = ..., loss: _Optional[float] = ..., accuracy: _Optional[float] = ..., samples_per_s: _Optional[float] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("lo", "hi", "counts_f32")
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    COUNTS_F32_FIELD_NUMBER: _ClassVar[int]
    lo: float
    hi: float
    counts_f32: bytes
    def __init__(self, lo: _Optional[float] = ..., hi: _Optional[float] = ..., counts_f32: _Optional[bytes] = ...) -> None: ...

class LayerStats(_message.Message):
    __slots__ = ("name", "weight_sensitivity_f32", "act_sensitivity_f32", "weight_sensitivity_lower_f32", "act_sensitivity_lower_f32", "weight_hist", "act_hist", "act_clip_f32", "weight_scale_f32")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_SENSITIVITY_F32_FIELD_NUMBER: _ClassVar[int]
    ACT_SENSITIVITY_F32_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_SENSITIVITY_LOWER_F32_FIELD_NUMBER: _ClassVar[int]
    ACT_SENSITIVITY_LOWER_F32_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_HIST_FIELD_NUMBER: _ClassVar[int]
    ACT_HIST_FIELD_NUMBER: _ClassVar[int]
    ACT_CLIP_F32_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_SCALE_F32_FIELD_NUMBER: _ClassVar[int]
    name: str
    weight_sensitivity_f32: bytes
    act_sensitivity_f32: bytes
    weight_sensitivity_lower_f32: bytes
    act_sensitivity_lower_f32: bytes
    weight_hist: Histogram
    act_hist: Histogram
    act_clip_f32: bytes
    weight_scale_f32: bytes
    def __init__(self, name: _Optional[str] = ..., weight_sensitivity_f32: _Optional[bytes] = ..., act_sensitivity_f32: _Optional[bytes] = ..., weight_sensitivity_lower_f32: _Optional[bytes] = ..., act_sensitivity_lower_f32: _Optional[bytes] = ..., weight_hist: _Optional[_Union[Histogram, _Mapping]] = ..., act_hist: _Optional[_Union[Histogram, _Mapping]] = ..., act_clip_f32: _Optional[bytes] = ..., weight_scale_f32: _Optional[bytes] = ...) -> None: ...

class EpochResult(_message.Message):
    __slots__ = ("epoch", "steps", "global_step", "train_loss", "train_accuracy", "lr", "seconds", "samples_per_s", "evaluated", "test_loss", "test_accuracy", "layers", "step_mode")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_S_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    TEST_LOSS_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    STEP_MODE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    steps: int
    global_step: int
    train_loss: float
    train_accuracy: float
    lr: float
    seconds: float
    samples_per_s: float
    evaluated: bool
    test_loss: float
    test_accuracy: float
    layers: _containers.RepeatedCompositeFieldContainer[LayerStats]
    step_mode: str
    def __init__(self, epoch: _Optional[int] = ..., steps: _Optional[int] = ..., global_step: _Optional[int] = ..., train_loss: _Optional[float] = ..., train_accuracy: _Optional[float] = ..., lr: _Optional[float] = ..., seconds: _Optional[float] = ..., samples_per_s: _Optional[float] = ..., evaluated: _Optional[bool] = ..., test_loss: _Optional[float] = ..., test_accuracy: _Optional[float] = ..., layers: _Optional[_Iterable[_Union[LayerStats, _Mapping]]] = ..., step_mode: _Optional[str] = ...) -> None: ...

class Evaluate(_message.Message):
    __slots__ = ("split", "max_batches")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCHES_FIELD_NUMBER: _ClassVar[int]
    split: str
    max_batches: int
    def __init__(self, split: _Optional[str] = ..., max_batches: _Optional[int] = ...) -> None: ...

class EvalResult(_message.Message):
    __slots__ = ("loss", "top1", "top5", "samples", "seconds")
    LOSS_FIELD_NUMBER: _ClassVar[int]
    TOP1_FIELD_NUMBER: _ClassVar[int]
    TOP5_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    loss: float
    top1: float
    top5: float
    samples: int
    seconds: float
    def __init__(self, loss: _Optional[float] = ..., top1: _Optional[float] = ..., top5: _Optional[float] = ..., samples: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class RecalibrateBatchNorm(_message.Message):
    __slots__ = ("batches",)
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    batches: int
    def __init__(self, batches: _Optional[int] = ...) -> None: ...

class BatchNormRecalibrated(_message.Message):
    __slots__ = ("modules", "samples", "seconds")
    MODULES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    modules: int
    samples: int
    seconds: float
    def __init__(self, modules: _Optional[int] = ..., samples: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class SaveCheckpoint(_message.Message):
    __slots__ = ("path", "extra")
    PATH_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    path: str
    extra: bytes
    def __init__(self, path: _Optional[str] = ..., extra: _Optional[bytes] = ...) -> None: ...

class CheckpointSaved(_message.Message):
    __slots__ = ("path", "bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    bytes: int
    def __init__(self, path: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class LoadCheckpoint(_message.Message):
    __slots__ = ("path", "weights_only")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    path: str
    weights_only: bool
    def __init__(self, path: _Optional[str] = ..., weights_only: _Optional[bool] = ...) -> None: ...

class CheckpointLoaded(_message.Message):
    __slots__ = ("epoch", "global_step", "extra")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_STEP_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    global_step: int
    extra: bytes
    def __init__(self, epoch: _Optional[int] = ..., global_step: _Optional[int] = ..., extra: _Optional[bytes] = ...) -> None: ...

class Shutdown(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Echo(_message.Message):
    __slots__ = ("payload", "delay_ms")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    delay_ms: int
    def __init__(self, payload: _Optional[bytes] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: int
    def __init__(self, target: _Optional[int] = ...) -> None: ...

class Cancelled(_message.Message):
    __slots__ = ("target", "steps_done")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STEPS_DONE_FIELD_NUMBER: _ClassVar[int]
    target: int
    steps_done: int
    def __init__(self, target: _Optional[int] = ..., steps_done: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "field", "details", "epoch", "step")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    field: str
    details: str
    epoch: int
    step: int
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ..., field: _Optional[str] = ..., details: _Optional[str] = ..., epoch: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...
