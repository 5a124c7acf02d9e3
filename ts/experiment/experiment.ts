// The experiment: TypeScript decides every bit, the worker executes. One run = one worker session:
// configure → (run an epoch → record → LBA step → new scheme → checkpoint)* → result.
//
//   const run = await Experiment.start(config);
//   for await (const ev of run) { ... }            // or run.on("epoch", ...)
//   const result = await run.result;
import { EventEmitter } from "node:events";
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Configure, Configured, EpochResult, LayerScheme, LayerStats, Progress, QuantScheme } from "../gen/dmbq.js";
import { ActMode, ErrorCode, LayerRole, WeightScale } from "../gen/dmbq.js";
import {
  allocateBits, averageBits, deserializeState, freeLayerNames, initialState, serializeState,
  type EpochSensitivities, type LayerShape, type PolicyConfig, type PolicyState,
} from "../allocation/index.js";
import { exportRun } from "../export/index.js";
import { connectWorker, spawnTorchrunWorker, spawnWorker, WorkerExitedError, WorkerRequestError, type WorkerHandle } from "../worker/index.js";
import { assertValidConfig, modelName, weightScaleOf, type ExperimentConfig } from "./config.js";
import { deployedSize } from "./deployedSize.js";
import { buildTables, type HistogramInput, type TableSet } from "./levelTables.js";
import { ProgressBar } from "./progressBar.js";
import type { AllocationRecord, BatchNormRecalibration, EpochRecord, HistogramsRecord, RunResult } from "./records.js";
import { readJson, RunFolder, type CheckpointIndex } from "./runFolder.js";

export type RunEvent =
  | { type: "progress"; epoch: number; progress: Progress }
  | { type: "epoch"; record: EpochRecord }
  | { type: "allocation"; record: AllocationRecord }
  | { type: "done"; result: RunResult };

/** Training stopped on an error (e.g. a non-finite loss); the run folder keeps the last good checkpoint. */
export class RunFailedError extends Error {
  constructor(message: string, readonly runDir: string, readonly epoch: number | undefined, readonly step: number | undefined, readonly checkpoint: string | null) {
    super(message);
    this.name = "RunFailedError";
  }
}

const HISTOGRAM_BINS = 2048;
const f32 = (b: Uint8Array): Float32Array => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

function roleOf(r: LayerRole): LayerShape["role"] {
  return r === LayerRole.LAYER_ROLE_FIRST ? "first" : r === LayerRole.LAYER_ROLE_LAST ? "last" : "body";
}

function shapesOf(c: Configured): LayerShape[] {
  return c.layers.map((l) => ({
    name: l.name, role: roleOf(l.role), outChannels: l.outChannels, inChannels: l.inChannels,
    paramsPerOutChannel: l.paramsPerOutChannel, actElemsPerInChannel: l.actElemsPerInChannel,
  }));
}

function policyConfig(config: ExperimentConfig): PolicyConfig | undefined {
  const q = config.quant;
  if (!q) return undefined;
  return {
    weightBudget: q.weightBits, actBudget: q.actBits, granularity: q.granularity ?? "CP",
    ...(q.startBits !== undefined ? { startBits: q.startBits } : {}),
    ...(q.minBits !== undefined ? { minBits: q.minBits } : {}),
    ...(q.maxBits !== undefined ? { maxBits: q.maxBits } : {}),
    ...(q.pinned ? { pinned: q.pinned } : {}),
    schedule: { totalEpochs: config.epochs, ...(q.lba?.rampFraction !== undefined ? { rampFraction: q.lba.rampFraction } : {}),
      ...(q.lba?.rStart !== undefined ? { rStart: q.lba.rStart } : {}), ...(q.lba?.rEnd !== undefined ? { rEnd: q.lba.rEnd } : {}) },
    criterion: q.lba?.criterion ?? "sensitivity",
    allocator: q.lba?.allocator ?? "decrement",
    ...(q.lba?.score !== undefined ? { score: q.lba.score } : {}),
    ...(q.lba?.actScore !== undefined ? { actScore: q.lba.actScore } : {}),
  };
}

/** The Configure request of a run (exported for its unit test): unset fields are zeros, the worker's defaults. */
export function configureRequest(config: ExperimentConfig, scheme: QuantScheme | undefined, initWeights: string, teacherWeights = ""): Partial<Configure> {
  const m = config.model;
  const q = config.quant;
  // the weight tables' unit: the min-max grid spans each channel's max|w|, every other table its mean|w|
  const maxAbs = q !== undefined && weightScaleOf(q.levels) === "maxAbs";
  return {
    model: typeof m === "string" ? { name: m, numClasses: 0, factory: "", width: 0 } : { name: m.name ?? "custom", numClasses: 0, factory: m.factory, width: 0 },
    dataset: {
      name: config.dataset.name, path: config.dataset.path ? resolve(config.dataset.path) : "", batchSize: config.dataset.batchSize ?? 0,
      evalBatchSize: config.dataset.evalBatchSize ?? 0, augment: config.dataset.augment ?? true, numWorkers: 0,
      trainLimit: config.dataset.trainLimit ?? 0, testLimit: config.dataset.testLimit ?? 0, imageSize: config.dataset.imageSize ?? 0,
    },
    optimizer: { name: config.optimizer?.name ?? "sgd", lr: config.optimizer?.lr ?? 0, momentum: config.optimizer?.momentum ?? 0,
      weightDecay: config.optimizer?.weightDecay ?? 0, nesterov: config.optimizer?.nesterov ?? false },
    schedule: { kind: config.schedule?.kind ?? "cosine", epochs: config.epochs, milestones: config.schedule?.milestones ?? [],
      gamma: config.schedule?.gamma ?? 0, warmupEpochs: config.schedule?.warmupEpochs ?? 0 },
    ...(scheme ? { scheme } : {}),
    // zeros keep the worker's defaults (scale EMA 0.99, clips from the first batch, clip LR × 1, scales of mean|w|)
    ...(q?.actClipLrScale !== undefined || maxAbs
      ? { quant: { scaleEmaDecay: 0, actClipInit: 0, actClipLrScale: q?.actClipLrScale ?? 0, weightScale: maxAbs ? WeightScale.WEIGHT_SCALE_MAX_ABS : WeightScale.WEIGHT_SCALE_UNSPECIFIED } }
      : {}),
    seed: config.seed ?? 0,
    device: config.device ?? "auto",
    precision: config.precision ?? "fp32",
    compile: config.compile ?? false,
    initWeights,
    ...(config.distill ? { distill: { teacherWeights, alpha: config.distill.alpha ?? 0, temperature: config.distill.temperature ?? 0 } } : {}),
  };
}

/**
 * The full-precision run at the root of `runDir`'s init chain: the run itself when it trained in full precision,
 * else the one its own result names (a W2/A2 run started from a W2/A32 run that started from FP: that FP run).
 * Undefined for a quantized run that started from no run.
 */
export function fpRunOf(runDir: string): string | undefined {
  const c = join(runDir, "config.json");
  if (!existsSync(c) || !readJson<ExperimentConfig>(c, "init.fromRun").quant) return resolve(runDir); // a folder of checkpoints only: as before, its own FP run
  const p = join(runDir, "result.json");
  const from = existsSync(p) ? readJson<RunResult>(p, "init.fromRun").fpRunDir : undefined;
  return from ? resolve(from) : undefined;
}

/** The teacher's checkpoint of `distill`: its own, else the FP run of the run's `init` (also on resume, unlike the init). */
function teacherCheckpoint(cfg: ExperimentConfig): string {
  if (!cfg.distill) return "";
  if (cfg.distill.teacher?.checkpoint) return resolve(cfg.distill.teacher.checkpoint);
  if (cfg.distill.teacher?.fromRun) return checkpointOfRun(cfg.distill.teacher.fromRun, "distill.teacher.fromRun");
  if (cfg.init?.checkpoint) return resolve(cfg.init.checkpoint);
  if (cfg.init?.fromRun) {
    const fp = fpRunOf(cfg.init.fromRun);
    if (!fp) throw new Error(`distill.teacher: init.fromRun ${cfg.init.fromRun} is a quantized run with no full-precision run behind it: give distill.teacher`);
    return checkpointOfRun(fp, "init.fromRun");
  }
  throw new Error("distill.teacher: no teacher: give distill.teacher.fromRun or .checkpoint, or an init to distil from");
}

/** The final weights of a finished run (its newest checkpoint). */
function checkpointOfRun(runDir: string, field = "init.fromRun"): string {
  const idx = new RunFolder(runDir).latestCheckpoint();
  if (!idx) throw new Error(`${field}: ${runDir} has no checkpoint (checkpoints/latest.json)`);
  return resolve(runDir, idx.file);
}

export class ExperimentRun extends EventEmitter implements AsyncIterable<RunEvent> {
  readonly result: Promise<RunResult>;
  private readonly folder: RunFolder;
  private worker: WorkerHandle | undefined;
  private configured: Configured | undefined;
  private layers: LayerShape[] = [];
  private policy: PolicyState | undefined;
  private tables: TableSet | undefined;
  private histograms: Record<string, HistogramInput> = {};
  private abort: AbortController | undefined;
  private paused: { promise: Promise<void>; release: () => void } | undefined;
  private stopping = false;
  private resultWritten = false;
  private checkpointFiles: string[] = [];
  private readonly bar: ProgressBar;
  private readonly events: RunEvent[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private startedAt = new Date().toISOString();
  /** Held only at the run's end: set after the last epoch, or kept from the checkpoint of it on resume. */
  private recalibration: BatchNormRecalibration | undefined;

  private constructor(readonly config: ExperimentConfig, readonly dir: string, private readonly resumeFrom: CheckpointIndex | null) {
    super();
    this.folder = RunFolder.create(dir);
    this.bar = ProgressBar.auto(config.epochs, config.progress);
    this.result = this.main();
    this.result.catch(() => {}); // surfaced through `result` and the "error" event; never unhandled here
  }

  static async start(config: ExperimentConfig): Promise<ExperimentRun> {
    assertValidConfig(config);
    const dir = resolve(config.runsDir ?? "runs", config.name);
    const folder = RunFolder.create(dir);
    // A fresh start replaces whatever an earlier run of the same name left (use resume() to continue one).
    folder.truncateAfter(-1);
    for (const f of ["result.json", "error.json", "levels.json", "histograms.json", "report.html"]) rmSync(folder.path(f), { force: true });
    rmSync(folder.path("checkpoints"), { recursive: true, force: true });
    RunFolder.create(dir);
    folder.writeConfig(config);
    return new ExperimentRun(config, dir, null);
  }

  /** Continues a run from its last checkpoint; `overrides` (e.g. a lower LR after a divergence) are merged into its config. */
  static async resume(runDir: string, overrides: Partial<ExperimentConfig> = {}): Promise<ExperimentRun> {
    const dir = resolve(runDir);
    const saved = readJson<ExperimentConfig>(join(dir, "config.json"), "resume");
    const config = deepMerge(saved, overrides) as ExperimentConfig;
    assertValidConfig(config);
    const folder = new RunFolder(dir);
    const idx = folder.latestCheckpoint();
    if (!idx) throw new Error(`resume: ${dir} has no checkpoint yet (checkpoints/latest.json); start it again instead`);
    folder.truncateAfter(idx.epoch);
    folder.writeConfig(config);
    return new ExperimentRun(config, dir, idx);
  }

  /** Stops at the next step boundary; resume() continues the same epoch. */
  pause(): void {
    if (this.paused) return;
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.paused = { promise, release };
    this.abort?.abort();
  }

  resume(): void {
    const p = this.paused;
    this.paused = undefined;
    p?.release();
  }

  /** Whether the run wrote result.json: every epoch trained and the end's work (BatchNorm recalibration where set)
   *  done. False after a stop(), even one that came after the last epoch: `result.epochs` alone cannot tell that. */
  get finished(): boolean {
    return this.resultWritten;
  }

  /** Stops the run at the next step boundary; `result` then resolves with what was reached. */
  stop(): void {
    this.stopping = true;
    this.abort?.abort();
    this.resume();
  }

  [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    let i = 0;
    return {
      next: async (): Promise<IteratorResult<RunEvent>> => {
        for (;;) {
          if (i < this.events.length) return { value: this.events[i++]!, done: false };
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((r) => (this.wake = r));
        }
      },
    };
  }

  private publish(ev: RunEvent): void {
    this.events.push(ev);
    if (ev.type === "progress") this.emit("progress", ev);
    else this.emit(ev.type, ev.type === "epoch" ? ev.record : ev.type === "allocation" ? ev.record : ev.result);
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async main(): Promise<RunResult> {
    try {
      const result = await this.train();
      this.publish({ type: "done", result });
      return result;
    } catch (err) {
      if (this.listenerCount("error") > 0) this.emit("error", err);
      throw err;
    } finally {
      this.ended = true;
      this.wake?.();
      await this.worker?.close().catch(() => {});
    }
  }

  private async openWorker(): Promise<WorkerHandle> {
    const w = this.config.worker ?? {};
    if (w.endpoint) return connectWorker(w.endpoint);
    if (this.config.workers) return spawnTorchrunWorker({ nprocPerNode: this.config.workers.gpus, ...(w.python ? { python: w.python } : {}) });
    return spawnWorker({ transport: w.transport ?? "zmq", ...(w.python ? { python: w.python } : {}) });
  }

  private async train(): Promise<RunResult> {
    const cfg = this.config;
    this.worker = await this.openWorker();
    const client = this.worker.client;
    const pcfg = policyConfig(cfg);
    const initWeights = this.resumeFrom ? "" : cfg.init?.checkpoint ? resolve(cfg.init.checkpoint) : cfg.init?.fromRun ? checkpointOfRun(cfg.init.fromRun) : "";

    // The worker builds the model first (in full precision) and tells us its layers; the policy needs their shapes.
    this.configured = await client.configure(configureRequest(cfg, undefined, initWeights, teacherCheckpoint(cfg)));
    this.layers = shapesOf(this.configured);
    let startEpoch = 0;
    if (this.resumeFrom) {
      this.policy = this.resumeFrom.policy ? deserializeState(this.resumeFrom.policy) : undefined;
      startEpoch = this.resumeFrom.epoch;
      // kept only where the run ends there: a run resumed to train longer recalibrates (or not) at its new end
      this.recalibration = startEpoch === cfg.epochs ? this.resumeFrom.batchNormRecalibration : undefined;
    } else if (pcfg) {
      this.policy = this.initialPolicy(pcfg);
    }
    if (this.policy) await client.updateScheme({ scheme: this.scheme() });
    if (this.resumeFrom) {
      await client.loadCheckpoint({ path: this.folder.path(this.resumeFrom.file), weightsOnly: false });
      this.checkpointFiles = [this.resumeFrom.file];
    } else if (this.policy) {
      this.recordAllocation(0);
    }

    const fp = this.fpReference();
    for (let epoch = startEpoch; epoch < cfg.epochs && !this.stopping; ) {
      if (this.paused) await this.paused.promise;
      if (this.stopping) break;
      const res = await this.runEpoch(epoch + 1);
      if (!res) continue; // paused or stopped mid-epoch: the same epoch continues after resume()
      epoch += 1;
      const record = this.epochRecord(epoch, res);
      this.folder.appendEpoch(record);
      this.bar.epochDone(record);
      this.publish({ type: "epoch", record });
      if (this.policy && pcfg) await this.stepPolicy(pcfg, res, epoch);
      if (epoch % (cfg.checkpointEvery ?? 1) === 0 || epoch === cfg.epochs) await this.checkpoint(epoch, fp.top1);
    }
    // After the last epoch's checkpoint (a worker lost here loses no training: resume recalibrates), also for a
    // finished run resumed with recalibrateBatchNorm newly set; the checkpoint is then written again with the
    // recalibrated statistics.
    if (cfg.recalibrateBatchNorm && !this.recalibration && !this.stopping) {
      const last = this.folder.epochs().at(-1);
      if (last?.epoch === cfg.epochs) {
        await this.recalibrateBatchNorm(cfg.recalibrateBatchNorm.batches ?? 0, last);
        await this.checkpoint(cfg.epochs, fp.top1);
      }
    }
    return this.finish(fp);
  }

  /** One epoch (or what is left of it). Undefined when paused or stopped before its end. */
  private async runEpoch(epoch: number): Promise<EpochResult | undefined> {
    const client = this.worker!.client;
    const learning = this.policy !== undefined && (!this.policy.weightFrozen || !this.policy.actFrozen || this.config.quant?.lba?.allocator === "giveback");
    const empirical = this.config.quant?.levels === "empirical";
    this.abort = new AbortController();
    try {
      // Histograms cost GPU time: every epoch only for empirical levels, else once at the end (for the report).
      const last = epoch === this.config.epochs;
      const histograms = this.policy !== undefined && (empirical || last);
      // the levels need only the weights' histograms; the report (last epoch) shows the activations' too
      const weightHistogramsOnly = histograms && !last;
      const r = await client.run(
        { steps: 0, sensitivity: learning, lookahead: learning && this.config.quant?.lba?.criterion === "lookahead", histogramBins: histograms ? HISTOGRAM_BINS : 0, weightHistogramsOnly, progressEvery: 0, evaluate: true },
        {
          signal: this.abort.signal,
          onProgress: (p) => {
            this.bar.update(epoch, p);
            this.publish({ type: "progress", epoch, progress: p });
          },
        },
      );
      return "target" in r ? undefined : r;
    } catch (err) {
      if (err instanceof WorkerRequestError && err.code === ErrorCode.ERROR_CODE_NON_FINITE) {
        const last = this.folder.latestCheckpoint();
        const msg = `training diverged at epoch ${epoch}, step ${err.step}: ${err.message}. ` +
          `The last good checkpoint is ${last ? this.folder.path(last.file) + ` (after epoch ${last.epoch})` : "none (the run had not finished an epoch)"}; ` +
          `continue with \`dmbq resume ${this.dir}\` (e.g. with --set optimizer.lr=<lower>).`;
        this.folder.writeError({ message: msg, epoch, step: err.step, checkpoint: last?.file ?? null });
        throw new RunFailedError(msg, this.dir, epoch, err.step, last?.file ?? null);
      }
      if (err instanceof WorkerExitedError && !this.stopping) {
        // a worker (or one rank of a job) died mid-epoch: say where the run can continue from
        const last = this.folder.latestCheckpoint();
        const msg = `the worker died during epoch ${epoch}: ${err.message}\n` +
          `The last checkpoint is ${last ? this.folder.path(last.file) + ` (after epoch ${last.epoch})` : "none (the run had not finished an epoch)"}; ` +
          `continue with \`dmbq resume ${this.dir}\`.`;
        this.folder.writeError({ message: msg, epoch, checkpoint: last?.file ?? null });
        throw new RunFailedError(msg, this.dir, epoch, undefined, last?.file ?? null);
      }
      throw err;
    } finally {
      this.abort = undefined;
    }
  }

  private epochRecord(epoch: number, r: EpochResult): EpochRecord {
    const avg = this.policy ? averageBits(this.policy, this.layers) : { weight: 32, act: 32 };
    return {
      epoch, phase: this.policy ? "quant" : "fp", trainLoss: r.trainLoss, trainAccuracy: r.trainAccuracy,
      testLoss: r.testLoss, testAccuracy: r.testAccuracy, lr: r.lr, seconds: r.seconds, samplesPerS: r.samplesPerS,
      ...(r.stepMode ? { stepMode: r.stepMode } : {}), avgWBits: avg.weight, avgABits: avg.act, time: new Date().toISOString(),
    };
  }

  private async stepPolicy(pcfg: PolicyConfig, res: EpochResult, epoch: number): Promise<void> {
    this.keepHistograms(res.layers, epoch);
    const sens: EpochSensitivities = {
      layers: res.layers.map((l: LayerStats) => ({
        name: l.name, weight: f32(l.weightSensitivityF32),
        ...(l.actSensitivityF32.length ? { act: f32(l.actSensitivityF32) } : {}),
        ...(l.weightSensitivityLowerF32.length ? { weightLower: f32(l.weightSensitivityLowerF32) } : {}),
        ...(l.actSensitivityLowerF32.length ? { actLower: f32(l.actSensitivityLowerF32) } : {}),
      })).filter((l) => l.weight.length > 0),
    };
    let changed = false;
    if (sens.layers.length > 0) {
      const next = allocateBits(this.policy!, this.layers, pcfg, sens, epoch - 1);
      changed = next.changed;
      this.policy = next.state;
    }
    if (changed || this.config.quant?.levels === "empirical") {
      await this.worker!.client.updateScheme({ scheme: this.scheme() });
    }
    if (changed) this.recordAllocation(epoch);
  }

  private initialPolicy(pcfg: PolicyConfig): PolicyState {
    const from = this.config.init?.fromRun;
    if (!this.config.init?.keepWeightBits || from === undefined) return initialState(this.layers, pcfg);
    try {
      return initialState(this.layers, pcfg, { weight: this.inheritedWeightBits(from, pcfg) });
    } catch (err) {
      const msg = (err as Error).message;
      throw new Error(msg.startsWith("init.keepWeightBits") ? msg : `init.keepWeightBits: the widths ${from} ended with do not fit this run: ${msg}`);
    }
  }

  /** The weight widths of each free layer at the end of `runDir` (its last allocation record), for keepWeightBits. */
  private inheritedWeightBits(runDir: string, pcfg: PolicyConfig): Record<string, number[]> {
    const records = new RunFolder(runDir).allocations();
    const last = records[records.length - 1];
    if (!last) throw new Error(`init.keepWeightBits: ${runDir} recorded no bit allocation (allocation.jsonl): it is not a quantized run`);
    const ended = new Map(last.layers.map((l) => [l.name, l.weightBits]));
    const out: Record<string, number[]> = {};
    for (const name of freeLayerNames(this.layers, pcfg, "weight")) {
      const bits = ended.get(name);
      if (!bits) throw new Error(`init.keepWeightBits: ${runDir} has no layer ${name}: it is a run of another model`);
      out[name] = bits;
    }
    return out;
  }

  /** BatchNorm statistics for the final weights, then the test score again (ExperimentConfig.recalibrateBatchNorm). */
  private async recalibrateBatchNorm(batches: number, last: EpochRecord): Promise<void> {
    const client = this.worker!.client;
    const r = await client.recalibrateBatchNorm({ batches });
    const ev = await client.evaluate({ split: "test" });
    this.recalibration = { top1Before: last.testAccuracy * 100, top1: ev.top1 * 100, samples: r.samples, modules: r.modules };
    if (this.config.progress !== "none") {
      process.stderr.write(` BatchNorm recalibrated (${r.modules} layers, ${r.samples} training images): test acc ${(last.testAccuracy * 100).toFixed(2)}% -> ${(ev.top1 * 100).toFixed(2)}%\n`);
    }
  }

  private keepHistograms(stats: LayerStats[], epoch: number): void {
    const weight: HistogramsRecord["weight"] = {};
    for (const l of stats) {
      if (!l.weightHist || l.weightHist.countsF32.length === 0) continue;
      const counts = f32(l.weightHist.countsF32);
      this.histograms[l.name] = { lo: l.weightHist.lo, hi: l.weightHist.hi, counts };
      weight[l.name] = { lo: l.weightHist.lo, hi: l.weightHist.hi, counts: Array.from(counts) };
    }
    if (Object.keys(weight).length) this.folder.writeHistograms({ epoch, weight });
  }

  private recordAllocation(epoch: number): void {
    const avg = averageBits(this.policy!, this.layers);
    const record: AllocationRecord = {
      epoch, avgWBits: avg.weight, avgABits: avg.act, frozen: this.policy!.weightFrozen && this.policy!.actFrozen,
      layers: this.policy!.layers.map((l, i) => ({ name: l.name, weightBits: l.weightBits, actBits: this.sentActBits(i) })),
    };
    this.folder.appendAllocation(record);
    this.publish({ type: "allocation", record });
  }

  /** The scheme message for the current policy state, with the tables it needs. */
  private scheme(): QuantScheme {
    const q = this.config.quant!;
    const actMode = q.actMode ?? "uniform";
    const usedBits: Record<string, number[]> = {};
    for (const l of this.policy!.layers) usedBits[l.name] = l.weightBits;
    this.tables = buildTables(q.levels ?? "laplace", actMode, this.histograms, usedBits);
    this.folder.writeLevels(this.tables.record);
    const layers: LayerScheme[] = this.policy!.layers.map((l, i) => ({
      name: l.name,
      weightBitsU8: Buffer.from(Uint8Array.from(l.weightBits)),
      actBitsU8: this.sentActBits(i).every((b) => b === 32) ? Buffer.alloc(0) : Buffer.from(Uint8Array.from(this.sentActBits(i))),
      actMode: actMode === "table" ? ActMode.ACT_MODE_TABLE : ActMode.ACT_MODE_UNIFORM,
    }));
    return { layers, weightTables: this.tables.weight, actTables: this.tables.act };
  }

  /** The activation widths a layer really gets: the first layer sees the input image (signed, already 8-bit data), kept as it is. */
  private sentActBits(i: number): number[] {
    const bits = this.policy!.layers[i]!.actBits;
    return this.layers[i]!.role === "first" ? bits.map(() => 32) : bits;
  }

  private async checkpoint(epoch: number, fpTop1: number | undefined): Promise<void> {
    const file = this.folder.checkpointFile(epoch);
    const index: CheckpointIndex = {
      epoch, file, policy: this.policy ? serializeState(this.policy) : null, levels: this.tables?.record ?? null,
      ...(fpTop1 !== undefined ? { fpTop1 } : {}),
      ...(this.recalibration ? { batchNormRecalibration: this.recalibration } : {}),
      savedAt: new Date().toISOString(),
    };
    await this.worker!.client.saveCheckpoint({ path: this.folder.path(file), extra: Buffer.from(JSON.stringify(index)) });
    this.checkpointFiles = this.folder.commitCheckpoint(index, this.config.keepCheckpoints ?? 2, this.checkpointFiles);
  }

  /** The FP run this one is compared with (the root of its init chain, fpRunOf) and its top-1, read once a run. */
  private fpReference(): { dir: string | undefined; top1: number | undefined } {
    const from = this.config.init?.fromRun;
    const dir = from ? fpRunOf(from) : undefined;
    const p = dir && join(dir, "result.json");
    return { dir, top1: p && existsSync(p) ? readJson<RunResult>(p, "init.fromRun").top1 : undefined };
  }

  private async finish(fp: { dir: string | undefined; top1: number | undefined }): Promise<RunResult> {
    const epochs = this.folder.epochs();
    const last = epochs[epochs.length - 1];
    const times = epochs.map((e) => e.seconds).sort((a, b) => a - b);
    // Count only the tables a deployed model needs: one α per bit of each width in use (none in full precision).
    const used = new Set(this.policy?.layers.flatMap((l) => l.weightBits.filter((b) => b >= 1 && b <= 8)) ?? []);
    const usedAlphas = [...used].reduce((n, b) => n + b, 0);
    const size = deployedSize(this.configured!, this.policy, { alphas: usedAlphas });
    const avg = this.policy ? averageBits(this.policy, this.layers) : { weight: 32, act: 32 };
    const result: RunResult = {
      name: this.config.name, model: modelName(this.config), dataset: this.config.dataset.name,
      top1: this.recalibration ? this.recalibration.top1 : last ? last.testAccuracy * 100 : Number.NaN,
      ...(fp.top1 !== undefined ? { fpTop1: fp.top1 } : {}),
      avgWBits: avg.weight, avgABits: avg.act,
      sizeMb: size.totalBytes / 1e6, fpSizeMb: size.fpBytes / 1e6,
      epochs: last?.epoch ?? 0,
      epochTimeS: times.length ? times[Math.floor(times.length / 2)]! : 0,
      device: this.worker?.hello.capabilities?.deviceName ? `${this.worker.hello.capabilities.deviceKind}: ${this.worker.hello.capabilities.deviceName}` : "unknown",
      startedAt: this.startedAt, finishedAt: new Date().toISOString(),
      ...(fp.dir ? { fpRunDir: fp.dir } : {}),
      ...(this.recalibration ? { batchNormRecalibration: this.recalibration } : {}),
    };
    if (!this.stopping) {
      this.folder.writeResult(result);
      this.resultWritten = true;
      await this.exportModel(result);
    }
    this.folder.clearError();
    return result;
  }

  /** Writes model.dmbq; from then on the run's size is that file's byte size. A failed export keeps the run's result. */
  private async exportModel(result: RunResult): Promise<void> {
    try {
      const s = await exportRun(this.dir, this.folder.path("model.dmbq"), this.config.worker?.python ? { python: this.config.worker.python } : {});
      result.modelFile = "model.dmbq";
      result.sizeMb = s.sizeMb;
      result.sizeBreakdown = { bitPlaneBytes: s.bitPlaneBytes, tablesAndScalesBytes: s.tablesAndScalesBytes, fullPrecisionBytes: s.fullPrecisionBytes, headerBytes: s.headerBytes };
    } catch (err) {
      result.exportError = (err as Error).message;
    }
    this.folder.writeResult(result);
  }
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (typeof a !== "object" || a === null || Array.isArray(a) || typeof b !== "object" || b === null || Array.isArray(b)) return b === undefined ? a : b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out;
}

export const Experiment = {
  start: ExperimentRun.start,
  resume: ExperimentRun.resume,
};
