// The experiment config: what a user writes (in a script or a JSON file), validated up front with an error
// that names every bad field, and resolved with defaults before anything starts.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Score } from "../allocation/index.js";

/** Where the weight levels come from. "laplace" / "gaussian": the law's DMBQ table; "empirical": each layer's own,
 *  fitted to its histogram; "uniform": the MSE-best uniform grid for the Laplace law (all in units of the channel's
 *  mean|w|); "uniformMax": the naive min-max baseline, a symmetric uniform grid whose top level is the channel's
 *  max|w| (scales follow max|w|: weightScaleOf). */
export type LevelsMode = "laplace" | "gaussian" | "empirical" | "uniform" | "uniformMax";

export interface QuantConfig {
  /** Average weight bits (budget): e.g. 2, 1, 0.7; 32 keeps weights in full precision. */
  weightBits: number;
  /** Average activation bits: e.g. 2; 32 keeps activations in full precision. */
  actBits: number;
  granularity?: "GP" | "LP" | "CP";
  /** Where the weight levels come from: a law's DMBQ table, each layer's own histogram, or a uniform grid (the
   *  Laplace law's best, or the min-max one: see LevelsMode). */
  levels?: LevelsMode;
  /** Activation levels: uniform with a learned clip (the paper's) or the DMBQ table of the unsigned law. */
  actMode?: "uniform" | "table";
  /** LR multiplier of the learned activation clips (default 1: the run's LR). A clip's gradient sums over every
   *  element of its layer, so it may want a smaller step than the weights (LSQ scales it down). */
  actClipLrScale?: number;
  startBits?: number;
  minBits?: number;
  maxBits?: number;
  pinned?: Record<string, { weightBits?: number; actBits?: number }>;
  /** The LBA schedule: decrement window and ratio ramp (fractions of the epochs). */
  lba?: {
    rampFraction?: number; rStart?: number; rEnd?: number; criterion?: "sensitivity" | "lookahead"; allocator?: "decrement" | "giveback";
    /** How channels rank (default "metric", the paper's); see Score in ts/allocation/types.ts. */
    score?: Score;
    /** How activation channels rank (default: `score`). */
    actScore?: Score;
  };
}

export interface ExperimentConfig {
  name: string;
  runsDir?: string;
  /** A zoo model ("digits_cnn", "resnet20", "vgg_small", "resnet18", "resnet34") or a custom factory. */
  model: string | { factory: string; name?: string };
  dataset: {
    name: "digits" | "cifar10" | "imagefolder" | "synthetic";
    path?: string;
    batchSize?: number;
    evalBatchSize?: number;
    augment?: boolean;
    trainLimit?: number;
    testLimit?: number;
    /** imagefolder: the crop size (default 224). */
    imageSize?: number;
  };
  epochs: number;
  optimizer?: { name?: "sgd" | "adam" | "adamw"; lr?: number; momentum?: number; weightDecay?: number; nesterov?: boolean };
  schedule?: { kind?: "cosine" | "step" | "constant"; milestones?: number[]; gamma?: number; warmupEpochs?: number };
  /** Absent: full precision. */
  quant?: QuantConfig;
  /** Start from the final weights of another run: the full-precision one, or a quantized run to go on from (W2/A32
   *  before W2/A2, say; its learned clips and bits are not taken). The run is compared with, and by default distils
   *  from, the full-precision run at the root of that chain. */
  init?: {
    fromRun?: string; checkpoint?: string;
    /** Start the weight channels at the widths `fromRun` (a quantized run) ended with, instead of the policy's start
     *  width: a W2/A2 run going on from W2/A32 keeps the weights' allocation their values were trained for, and LBA
     *  moves only the activations (and the weights, where their average is above this run's budget). */
    keepWeightBits?: boolean;
  };
  /** Knowledge distillation from a frozen full-precision teacher of the same model: loss = (1 − alpha)·CE +
   *  alpha·T²·KL(teacher ‖ student) at temperature T. The teacher defaults to `init`'s full-precision run. */
  distill?: { alpha?: number; temperature?: number; teacher?: { fromRun?: string; checkpoint?: string } };
  device?: string;
  precision?: "fp32" | "bf16";
  compile?: boolean;
  seed?: number;
  /** The worker: spawned here (default, ZeroMQ over a private ipc socket) or a running one at an endpoint. */
  worker?: { transport?: "zmq" | "stdio"; python?: string; endpoint?: string };
  /** A torch.distributed job launched here by torchrun: N ranks (one per GPU; gloo processes on a CPU host).
   *  The global batch stays dataset.batchSize (each rank trains on batchSize / N). For a job a scheduler
   *  started, give its rank-0 endpoint as worker.endpoint instead. */
  workers?: { gpus: number };
  /** After the last epoch, recompute every BatchNorm's running statistics for the final weights over `batches`
   *  training batches as training draws them (augmented; 0 or absent: a whole epoch), then evaluate again: `top1` is
   *  that score and `batchNormRecalibration.top1Before` the last epoch's. Training's statistics average the last ~20
   *  steps, over which low-bit weights still flip between levels. Not part of the paper's method. */
  recalibrateBatchNorm?: { batches?: number };
  /** Checkpoint every N epochs (default 1) and keep the last K (default 2). */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  /** Terminal progress bar (default: when stderr is a terminal, else a line per epoch). */
  progress?: "bar" | "lines" | "none";
}

export const ZOO_MODELS = ["digits_cnn", "resnet20", "vgg_small", "vgg_small_lqnet", "resnet18", "resnet34"] as const;
const DATASETS = ["digits", "cifar10", "imagefolder", "synthetic"];
export const LEVELS_MODES: readonly LevelsMode[] = ["laplace", "gaussian", "empirical", "uniform", "uniformMax"];

/** The per-channel statistic the worker's weight scales follow in a levels mode (a config's, or the mode a run's
 *  levels.json records): the unit of its weight tables. */
export function weightScaleOf(levels: string | undefined): "meanAbs" | "maxAbs" {
  return levels === "uniformMax" ? "maxAbs" : "meanAbs";
}

function checkDistill(p: string[], d: unknown, init: Record<string, unknown> | undefined): void {
  if (d === undefined) return;
  if (typeof d !== "object" || d === null) { p.push("distill: expected an object"); return; }
  const { alpha, temperature, teacher } = d as Record<string, unknown>;
  if (alpha !== undefined && !(isNum(alpha) && alpha > 0 && alpha <= 1)) p.push(`distill.alpha: must be in (0, 1], got ${JSON.stringify(alpha)}`);
  if (temperature !== undefined && !(isNum(temperature) && temperature > 0)) p.push(`distill.temperature: must be a positive number, got ${JSON.stringify(temperature)}`);
  const t = teacher as Record<string, unknown> | undefined;
  if (t !== undefined && (typeof t !== "object" || t === null)) { p.push("distill.teacher: expected an object"); return; }
  if (t?.fromRun !== undefined && (typeof t.fromRun !== "string" || !existsSync(t.fromRun))) p.push(`distill.teacher.fromRun: run folder ${JSON.stringify(t.fromRun)} does not exist`);
  if (t?.checkpoint !== undefined && (typeof t.checkpoint !== "string" || !existsSync(t.checkpoint))) p.push(`distill.teacher.checkpoint: file ${JSON.stringify(t.checkpoint)} does not exist`);
  if (t?.fromRun === undefined && t?.checkpoint === undefined && init?.fromRun === undefined && init?.checkpoint === undefined) {
    p.push("distill.teacher: no teacher: give distill.teacher.fromRun or .checkpoint, or an init to distil from");
  }
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid experiment config:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function checkBudget(problems: string[], field: string, v: unknown): void {
  if (!isNum(v) || !((v > 0 && v <= 8) || v === 32)) {
    problems.push(`${field}: ${JSON.stringify(v)} is not a bit budget (0 < bits <= 8, or 32 for full precision)`);
  }
}

/** Every problem of a config, each naming its field; [] when it is fine. */
export function validateConfig(input: unknown): string[] {
  const p: string[] = [];
  if (typeof input !== "object" || input === null) return ["config: expected an object"];
  const c = input as Record<string, unknown>;
  if (typeof c.name !== "string" || !/^[A-Za-z0-9._-]+$/.test(c.name)) p.push(`name: ${JSON.stringify(c.name)} must be a non-empty name of letters, digits, '.', '_' or '-'`);
  const model = c.model;
  if (typeof model === "string") {
    if (!(ZOO_MODELS as readonly string[]).includes(model)) p.push(`model: unknown model ${JSON.stringify(model)}; known: ${ZOO_MODELS.join(", ")} (or { factory: "pkg.module:function" })`);
  } else if (typeof model !== "object" || model === null || typeof (model as { factory?: unknown }).factory !== "string" || !/^[\w.]+:\w+$/.test((model as { factory: string }).factory)) {
    p.push(`model: expected a zoo model name or { factory: "pkg.module:function" }`);
  }
  const ds = c.dataset as Record<string, unknown> | undefined;
  if (typeof ds !== "object" || ds === null) p.push("dataset: required, e.g. { name: \"digits\" }");
  else {
    if (!DATASETS.includes(ds.name as string)) p.push(`dataset.name: unknown dataset ${JSON.stringify(ds.name)}; known: ${DATASETS.join(", ")}`);
    if ((ds.name === "cifar10" || ds.name === "imagefolder") && typeof ds.path !== "string") p.push(`dataset.path: required for ${ds.name}`);
    const remote = typeof (c.worker as { endpoint?: unknown } | undefined)?.endpoint === "string";
    // The path is read by the worker; only a local worker shares our filesystem.
    if (typeof ds.path === "string" && !remote && !existsSync(ds.path)) p.push(`dataset.path: folder ${resolve(ds.path)} does not exist`);
    for (const k of ["batchSize", "evalBatchSize", "trainLimit", "testLimit"]) {
      if (ds[k] !== undefined && (!isNum(ds[k]) || (ds[k] as number) < 0 || !Number.isInteger(ds[k]))) p.push(`dataset.${k}: must be a non-negative integer`);
    }
  }
  if (!isNum(c.epochs) || !Number.isInteger(c.epochs) || c.epochs < 1) p.push(`epochs: ${JSON.stringify(c.epochs)} must be a positive integer`);
  const opt = c.optimizer as Record<string, unknown> | undefined;
  if (opt !== undefined) {
    if (opt.name !== undefined && !["sgd", "adam", "adamw"].includes(opt.name as string)) p.push(`optimizer.name: unknown optimizer ${JSON.stringify(opt.name)} (sgd, adam, adamw)`);
    if (opt.lr !== undefined && (!isNum(opt.lr) || opt.lr <= 0)) p.push(`optimizer.lr: must be a positive number`);
    if (opt.weightDecay !== undefined && (!isNum(opt.weightDecay) || opt.weightDecay < 0)) p.push(`optimizer.weightDecay: must be >= 0`);
  }
  const sch = c.schedule as Record<string, unknown> | undefined;
  if (sch?.kind !== undefined && !["cosine", "step", "constant"].includes(sch.kind as string)) p.push(`schedule.kind: unknown schedule ${JSON.stringify(sch.kind)} (cosine, step, constant)`);
  const q = c.quant as Record<string, unknown> | undefined;
  if (q !== undefined) {
    if (typeof q !== "object" || q === null) p.push("quant: expected an object");
    else {
      checkBudget(p, "quant.weightBits", q.weightBits);
      checkBudget(p, "quant.actBits", q.actBits);
      if (q.granularity !== undefined && !["GP", "LP", "CP"].includes(q.granularity as string)) p.push(`quant.granularity: ${JSON.stringify(q.granularity)} is not GP, LP or CP`);
      if (q.levels !== undefined && !LEVELS_MODES.includes(q.levels as LevelsMode)) p.push(`quant.levels: ${JSON.stringify(q.levels)} is not one of ${LEVELS_MODES.join(", ")}`);
      if (q.actMode !== undefined && !["uniform", "table"].includes(q.actMode as string)) p.push(`quant.actMode: ${JSON.stringify(q.actMode)} is not uniform or table`);
      if (q.actClipLrScale !== undefined && (!isNum(q.actClipLrScale) || q.actClipLrScale <= 0)) p.push(`quant.actClipLrScale: must be a positive number, got ${JSON.stringify(q.actClipLrScale)}`);
      if (isNum(q.actBits) && q.actBits > 0 && q.actBits < 1) p.push(`quant.actBits: activations need at least 1 bit`);
    }
  }
  const init = c.init as Record<string, unknown> | undefined;
  if (init?.fromRun !== undefined && (typeof init.fromRun !== "string" || !existsSync(init.fromRun as string))) p.push(`init.fromRun: run folder ${JSON.stringify(init.fromRun)} does not exist`);
  if (init?.checkpoint !== undefined && (typeof init.checkpoint !== "string" || !existsSync(init.checkpoint as string))) p.push(`init.checkpoint: file ${JSON.stringify(init.checkpoint)} does not exist`);
  if (init?.keepWeightBits !== undefined) {
    if (typeof init.keepWeightBits !== "boolean") p.push(`init.keepWeightBits: expected true or false, got ${JSON.stringify(init.keepWeightBits)}`);
    else if (init.keepWeightBits) {
      if (init.fromRun === undefined) p.push("init.keepWeightBits: needs init.fromRun, the quantized run whose weight widths this run starts at");
      if (q === undefined || q === null || q.weightBits === 32) p.push("init.keepWeightBits: this run does not quantize its weights (quant.weightBits)");
    }
  }
  checkDistill(p, c.distill, init);
  const bn = c.recalibrateBatchNorm as Record<string, unknown> | undefined;
  if (bn !== undefined) {
    if (typeof bn !== "object" || bn === null) p.push("recalibrateBatchNorm: expected an object, e.g. { batches: 0 }");
    else if (bn.batches !== undefined && (!isNum(bn.batches) || !Number.isInteger(bn.batches) || (bn.batches as number) < 0)) {
      p.push(`recalibrateBatchNorm.batches: must be a non-negative integer (0: one epoch of training batches), got ${JSON.stringify(bn.batches)}`);
    }
  }
  if (c.precision !== undefined && !["fp32", "bf16"].includes(c.precision as string)) p.push(`precision: ${JSON.stringify(c.precision)} is not fp32 or bf16`);
  const w = c.worker as Record<string, unknown> | undefined;
  if (w?.transport !== undefined && !["zmq", "stdio"].includes(w.transport as string)) p.push(`worker.transport: ${JSON.stringify(w.transport)} is not zmq or stdio`);
  if (w?.endpoint !== undefined && (typeof w.endpoint !== "string" || !/^(tcp|ipc):\/\//.test(w.endpoint))) p.push(`worker.endpoint: must start with tcp:// or ipc://`);
  const ws = c.workers as Record<string, unknown> | undefined;
  if (ws !== undefined && (!isNum(ws.gpus) || !Number.isInteger(ws.gpus) || (ws.gpus as number) < 1)) p.push(`workers.gpus: must be an integer >= 1, got ${JSON.stringify(ws.gpus)}`);
  if (ws !== undefined && w?.endpoint !== undefined) p.push(`workers: torchrun is launched here; it cannot be combined with worker.endpoint`);
  if (ws !== undefined && w?.transport === "stdio") p.push(`workers: a torchrun job speaks ZeroMQ; worker.transport must be zmq`);
  for (const k of ["checkpointEvery", "keepCheckpoints"]) {
    if (c[k] !== undefined && (!isNum(c[k]) || (c[k] as number) < 1 || !Number.isInteger(c[k]))) p.push(`${k}: must be a positive integer`);
  }
  return p;
}

export function assertValidConfig(input: unknown): asserts input is ExperimentConfig {
  const problems = validateConfig(input);
  if (problems.length) throw new ConfigError(problems);
}

export function modelName(config: ExperimentConfig): string {
  return typeof config.model === "string" ? config.model : (config.model.name ?? config.model.factory);
}
