// The driver for the CIFAR-10 table (issue 6): every row is one experiment started from its model's
// full-precision run, all with the same recipe and seed policy. Rows are spread over `--devices`, at most
// `--per-device` at a time on each (each row its own worker process); a quantized row starts as soon as the FP
// run of its own model is done. The table is printed as markdown and written as JSON (summary.json/.md).
// `--timing` measures the epoch-time ratios of issue 6 item 4 on one device, one run at a time (timing.json).
//
//   node dist/examples/reproduce-cifar.js --data $CIFAR10_DIR --runs runs/cifar [--rows r20-fp,r20-w2a2-cp,...]
//        [--devices cuda:0,cuda:1] [--per-device 1] [--fp-epochs 160] [--q-epochs 80] [--vgg-epochs FP,Q] [--seed 0]
//        [--fp-from RUNS_DIR]   (quantized rows start from the FP runs finished there: e.g. a second seed's rows)
//        [--precision bf16] [--compile] [--lr-fp 0.1] [--lr-q LR] [--wd-q 1e-4] [--warm-epochs 0]
//        (--lr-q: every quantized row's fine-tuning LR; without it each row takes its own, Row.lrQ, else 0.02)
//        [--lba-ramp 0.4] [--lba-r-start 0.01] [--lba-r-end 0.4] [--resume-existing] [--deadline-s 0]
//        [--lba-score SCORE[,ACT_SCORE]]   (how LBA ranks channels, SCORE one of metric|metricPerWeight|metricSqrtWeight;
//                                       a second one for the activations; metricPerWeight: the ranking before
//                                       2026-11-27; metricSqrtWeight: × √(channel weight), see Score)
//        [--row-epochs ROW=N,...]   (a row's own epoch count, e.g. a longer last stage of a chain)
//        [--lba-allocator decrement|giveback]   (giveback: after LBA freezes, later epochs may still swap bits; not the paper's)
//        [--act-mode uniform|table]   (activation levels: uniform with a learned clip, or the DMBQ table under the clip)
//        [--levels MODE]   (weight levels of the quantized rows that have none of their own: laplace (their default),
//                           gaussian, empirical, uniform or uniformMax; the level-ablation rows keep theirs)
//        [--clip-lr-scale X]   (LR multiplier of the learned activation clips; default 1)
//        [--min-bits N]   (weight bits a quantized row's channels may fall to; 0 lets CP prune at budgets >= 1)
//        [--kd ALPHA[,T]]   (quantized rows distil from their FP run: (1 - ALPHA) CE + ALPHA T^2 KL; T default 4)
//        [--start-from ROW=FROM,...]   (ROW starts from quantized row FROM's final weights instead of its FP run,
//                                       e.g. r20-w2a2-cp=r20-w2a32-cp: weights first, then activations; it is still
//                                       compared with, and distils from, the FP run)
//        [--keep-weight-bits]   (a row started with --start-from keeps the weight widths its FROM row ended with;
//                                LBA then moves the activations only: init.keepWeightBits)
//        [--recalibrate-bn N]   (quantized rows recompute their BatchNorm statistics after the last epoch over N
//                                training batches as training draws them, 0: an epoch, and score again)
//        [--timing [--timing-epochs 4] [--timing-ramp 1]]
//   (or npx tsx examples/reproduce-cifar.ts ... on a machine with the dev dependencies)
//
// Long runs span several device calls: give `--deadline-s` a little under the call's limit (running rows stop
// at a step boundary, keep their last epoch checkpoint, and the summary is still written), carry the runs
// folder, and call again with `--resume-existing`: finished rows are read back, unfinished ones resumed.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { SCORES, type Score } from "../ts/allocation/index.js";
import { Experiment, LEVELS_MODES, type ExperimentConfig, type ExperimentRun, type LevelsMode, type QuantConfig, type RunResult } from "../ts/experiment/index.js";

// ---------------------------------------------------------------- rows

export interface Row {
  id: string;
  model: "resnet20" | "vgg_small";
  quant?: QuantConfig;
  /** The paper's top-1 for this row (CIFAR-10, original data), for the table. */
  paper?: number;
  /** The row's fine-tuning LR when `--lr-q` is not given (default DEFAULT_LR_Q): the best of an LR sweep on the
   *  H100 (docs/RESULTS.md, "LR sweep"); 2- and 1-bit rows gained from a higher LR than 4-bit. */
  lrQ?: number;
  /** A step for `--start-from` (W2/A4 between W2/A32 and W2/A2), not a row of the table: run only when named. */
  step?: true;
}

/** The fine-tuning LR of a quantized row without its own (`Row.lrQ`) or a `--lr-q`. */
export const DEFAULT_LR_Q = 0.02;

export const ROWS: Row[] = [
  { id: "r20-fp", model: "resnet20", paper: 92.4 },
  { id: "r20-w4a4-gp", model: "resnet20", quant: { weightBits: 4, actBits: 4, granularity: "GP" } },
  { id: "r20-w2a32-cp", model: "resnet20", quant: { weightBits: 2, actBits: 32, granularity: "CP" }, paper: 92.5, lrQ: 0.04 },
  { id: "r20-w1a32-cp", model: "resnet20", quant: { weightBits: 1, actBits: 32, granularity: "CP" }, paper: 91.4, lrQ: 0.04 },
  { id: "r20-w2a2-cp", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "CP" }, paper: 91.7, lrQ: 0.08 },
  { id: "r20-w1a2-cp", model: "resnet20", quant: { weightBits: 1, actBits: 2, granularity: "CP" }, paper: 90.4, lrQ: 0.08 },
  { id: "vgg-fp", model: "vgg_small", paper: 93.8 },
  { id: "vgg-w0.7a32-cp", model: "vgg_small", quant: { weightBits: 0.7, actBits: 32, granularity: "CP" }, paper: 93.7, lrQ: 0.04 },
  { id: "vgg-w1a2-cp", model: "vgg_small", quant: { weightBits: 1, actBits: 2, granularity: "CP" }, paper: 93.9, lrQ: 0.08 },
  // ablations: the weight levels (the naive min-max grid, the Laplace law's best uniform grid, its DMBQ table), then
  // the allocation's granularity
  { id: "r20-w2a2-gp-uniform-max", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "uniformMax" } },
  { id: "r20-w2a2-gp-uniform", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "uniform" } },
  { id: "r20-w2a2-gp-dmbq", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "laplace" } },
  // DMBQ with each layer's own table, refitted every epoch to its weights' histogram (the law the data has, not Laplace's)
  { id: "r20-w2a2-gp-empirical", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "empirical" } },
  // DMBQ's table for the Gaussian law: ResNet-20's weights are near-Gaussian (kurtosis 3.3, npm run bench:level-fit)
  { id: "r20-w2a2-gp-gaussian", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "gaussian" } },
  { id: "r20-w3a3-gp-uniform-max", model: "resnet20", quant: { weightBits: 3, actBits: 3, granularity: "GP", levels: "uniformMax" } },
  { id: "r20-w3a3-gp-uniform", model: "resnet20", quant: { weightBits: 3, actBits: 3, granularity: "GP", levels: "uniform" } },
  { id: "r20-w3a3-gp-dmbq", model: "resnet20", quant: { weightBits: 3, actBits: 3, granularity: "GP", levels: "laplace" } },
  { id: "r20-w3a3-gp-gaussian", model: "resnet20", quant: { weightBits: 3, actBits: 3, granularity: "GP", levels: "gaussian" } },
  { id: "r20-w2a32-gp", model: "resnet20", quant: { weightBits: 2, actBits: 32, granularity: "GP" } },
  { id: "r20-w2a32-lp", model: "resnet20", quant: { weightBits: 2, actBits: 32, granularity: "LP" } },
  { id: "r20-w2a2-cp-empirical", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "CP", levels: "empirical" } },
  // steps for --start-from
  { id: "r20-w2a4-cp", model: "resnet20", quant: { weightBits: 2, actBits: 4, granularity: "CP" }, lrQ: 0.08, step: true },
];

/** The FP row a quantized row starts from. */
export const fpRowOf = (row: Row): string => (row.model === "resnet20" ? "r20-fp" : "vgg-fp");

/** Issue 6 item 4: the rows whose epoch time is compared with FP, and the paper's ratios. */
export const TIMING_ROWS: { id: string; paperRatio: number }[] = [
  { id: "r20-fp", paperRatio: 1 },
  { id: "r20-w2a32-cp", paperRatio: 1.16 },
  { id: "r20-w4a4-gp", paperRatio: 1.14 },
  { id: "r20-w2a2-cp", paperRatio: 1.22 },
];

// ---------------------------------------------------------------- scheduling (pure; the tests drive it)

export interface Job {
  id: string;
  /** The id of a job that must finish first (it must come earlier in the list); one not in the list is taken as done. */
  after?: string;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error };

/**
 * Runs `jobs` on `devices`, at most `perDevice` at a time on each device (a device named twice is two queues).
 * Each free slot takes the first job in list order whose dependency has finished, so jobs listed first go
 * first and a job waits only for its own dependency. A job whose dependency failed fails without running;
 * once `canStart()` turns false, jobs not yet started fail as "not started".
 */
export async function runOnDevices<T>(
  jobs: readonly Job[],
  devices: readonly string[],
  perDevice: number,
  run: (job: Job, device: string) => Promise<T>,
  canStart: () => boolean = () => true,
): Promise<Map<string, Outcome<T>>> {
  if (devices.length === 0) throw new Error("devices: at least one device is needed");
  if (!Number.isInteger(perDevice) || perDevice < 1) throw new Error(`per-device: expected an integer >= 1, got ${perDevice}`);
  const seen = new Set<string>();
  const ids = new Set(jobs.map((j) => j.id));
  for (const j of jobs) {
    if (seen.has(j.id)) throw new Error(`jobs: ${j.id} is listed twice`);
    if (j.after !== undefined && ids.has(j.after) && !seen.has(j.after)) throw new Error(`jobs: ${j.id} runs after ${j.after}, which must come earlier in the list`);
    seen.add(j.id);
  }
  const outcomes = new Map<string, Outcome<T>>();
  const pending = [...jobs];
  let waiters: (() => void)[] = [];
  const changed = (): void => {
    const w = waiters;
    waiters = [];
    for (const wake of w) wake();
  };
  // The next job for a free slot, "wait" while every pending job waits on a running one, undefined when none is left.
  const take = (): Job | "wait" | undefined => {
    if (!canStart()) {
      for (const j of pending.splice(0)) outcomes.set(j.id, { ok: false, error: new Error("not started (stopped before its turn)") });
      changed();
      return undefined;
    }
    for (let i = 0; i < pending.length; i++) {
      const job = pending[i]!;
      const dep = job.after !== undefined && ids.has(job.after) ? outcomes.get(job.after) : { ok: true as const, value: undefined };
      if (!dep) continue;
      pending.splice(i--, 1);
      if (!dep.ok) {
        outcomes.set(job.id, { ok: false, error: new Error(`${job.after}, which it starts from, did not finish: ${dep.error.message}`) });
        changed();
        continue;
      }
      return job;
    }
    return pending.length ? "wait" : undefined;
  };
  const slot = async (device: string): Promise<void> => {
    for (;;) {
      const job = take();
      if (job === undefined) return;
      if (job === "wait") {
        await new Promise<void>((r) => waiters.push(r));
        continue;
      }
      try {
        outcomes.set(job.id, { ok: true, value: await run(job, device) });
      } catch (err) {
        outcomes.set(job.id, { ok: false, error: err instanceof Error ? err : new Error(String(err)) });
      }
      changed();
    }
  };
  // Slots interleaved by device, so the first jobs (the FP runs) spread over the devices before any doubles up.
  await Promise.all(Array.from({ length: perDevice }, () => devices.map((d) => slot(d))).flat());
  return outcomes;
}

/** The median of the epoch times after the first (the first pays for warm-up: allocation, cuDNN autotune, graph capture). */
export function steadyMedian(perEpoch: readonly number[]): number {
  const xs = perEpoch.slice(1).sort((a, b) => a - b);
  if (xs.length === 0) throw new Error(`steadyMedian: needs at least 2 epochs, got ${perEpoch.length}`);
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m]! : (xs[m - 1]! + xs[m]!) / 2;
}

// ---------------------------------------------------------------- the command line

export interface Options {
  data: string;
  runsDir: string;
  rows: Row[];
  rowsGiven: boolean;
  devices: string[];
  perDevice: number;
  fpEpochs: number;
  qEpochs: number;
  /** `--row-epochs ROW=N`: rows whose epochs differ from their model's FP / quantized count. */
  rowEpochs?: Map<string, number>;
  /** Where quantized rows take their FP runs from (`--fp-from`; default: the runs folder, FP rows run there first). */
  fpFrom: string;
  /** VGG-small's FP and quantized epochs when they differ from ResNet-20's (`--vgg-epochs FP,Q`). */
  vggEpochs?: { fp: number; q: number };
  seed: number;
  precision: "fp32" | "bf16";
  compile: boolean;
  lrFp: number;
  /** `--lr-q`: one fine-tuning LR for every quantized row; undefined: each row's own (lrQOf). */
  lrQ: number | undefined;
  /** Weight decay of the quantized rows (FP rows keep the paper's 1e-4). */
  wdQ: number;
  warmEpochs: number;
  lba: NonNullable<QuantConfig["lba"]>;
  /** `--min-bits`: the weight bits every quantized row's channels may fall to (the policy's minBits). */
  minBits?: number;
  /** `--act-mode`: the quantized rows' activation levels (QuantConfig.actMode; default uniform with a learned clip). */
  actMode?: "uniform" | "table";
  /** `--levels`: the weight levels of quantized rows that fix none (QuantConfig.levels; default laplace). */
  levels?: LevelsMode;
  /** `--clip-lr-scale`: the quantized rows' clip LR multiplier (QuantConfig.actClipLrScale; default 1). */
  clipLrScale?: number;
  trainLimit: number;
  testLimit: number;
  keepCheckpoints: number;
  resumeExisting: boolean;
  deadlineS: number;
  timing: boolean;
  timingEpochs: number;
  timingRamp: number;
  /** `--kd ALPHA[,T]`: quantized rows distil from their FP run (ExperimentConfig.distill). */
  kd?: { alpha: number; temperature: number };
  /** `--start-from ROW=FROM`: quantized rows that start from another quantized row's run (same runs folder). */
  startFrom: Map<string, string>;
  /** `--keep-weight-bits`: those rows start at their FROM row's final weight widths (init.keepWeightBits). */
  keepWeightBits: boolean;
  /** `--recalibrate-bn N`: quantized rows recalibrate their BatchNorm statistics at the end (recalibrateBatchNorm). */
  recalibrateBn?: number;
}

/** `--data`, resolved: a folder that must exist (the CIFAR-10 layouts are read from it). */
export function dataFolder(raw: string): string {
  const data = resolve(raw);
  if (!existsSync(data)) throw new Error(`--data: folder ${data} does not exist (materialize ../shared/data/cifar10 there, or set CIFAR10_DIR)`);
  return data;
}

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: "string", default: process.env.CIFAR10_DIR ?? "data/cifar10" },
      runs: { type: "string", default: "runs/cifar" },
      rows: { type: "string", default: "" },
      devices: { type: "string", default: "auto" },
      "per-device": { type: "string" },
      parallel: { type: "string" }, // the old name of --per-device
      "fp-epochs": { type: "string", default: "160" },
      "q-epochs": { type: "string", default: "80" },
      "vgg-epochs": { type: "string" },
      "fp-from": { type: "string" },
      seed: { type: "string", default: "0" },
      precision: { type: "string", default: "fp32" },
      compile: { type: "boolean", default: false },
      "lr-fp": { type: "string", default: "0.1" },
      "lr-q": { type: "string" },
      "wd-q": { type: "string", default: "1e-4" },
      "warm-epochs": { type: "string", default: "0" },
      "lba-ramp": { type: "string" },
      "lba-r-start": { type: "string" },
      "lba-r-end": { type: "string" },
      "lba-score": { type: "string" },
      "lba-allocator": { type: "string" },
      "min-bits": { type: "string" },
      "act-mode": { type: "string" },
      levels: { type: "string" },
      "clip-lr-scale": { type: "string" },
      "row-epochs": { type: "string" },
      "train-limit": { type: "string", default: "0" },
      "test-limit": { type: "string", default: "0" },
      "keep-checkpoints": { type: "string", default: "1" },
      "resume-existing": { type: "boolean", default: false },
      "deadline-s": { type: "string", default: "0" },
      timing: { type: "boolean", default: false },
      "timing-epochs": { type: "string", default: "4" },
      "timing-ramp": { type: "string", default: "1" },
      kd: { type: "string" },
      "start-from": { type: "string", default: "" },
      "keep-weight-bits": { type: "boolean", default: false },
      "recalibrate-bn": { type: "string" },
    },
  });
  const num = (flag: string, raw: string | undefined, check: (v: number) => boolean, what: string): number => {
    const v = Number(raw);
    if (raw === undefined || raw.trim() === "" || !Number.isFinite(v) || !check(v)) throw new Error(`--${flag}: ${JSON.stringify(raw)} is not ${what}`);
    return v;
  };
  const int = (flag: string, raw: string | undefined, min: number): number =>
    num(flag, raw, (v) => Number.isInteger(v) && v >= min, `an integer >= ${min}`);
  const fraction = (flag: string, raw: string | undefined): number => num(flag, raw, (v) => v > 0 && v <= 1, "a number in (0, 1]");
  const wanted = values.rows ? values.rows.split(",").map((s) => s.trim()).filter(Boolean) : ROWS.filter((r) => !r.step).map((r) => r.id);
  const unknown = wanted.filter((id) => !ROWS.some((r) => r.id === id));
  if (unknown.length) throw new Error(`--rows: unknown rows ${unknown.join(", ")}; known: ${ROWS.map((r) => r.id).join(", ")}`);
  const devices = values.devices!.split(",").map((s) => s.trim());
  if (devices.some((d) => !/^(auto|cpu|cuda(:\d+)?)$/.test(d))) throw new Error(`--devices: ${JSON.stringify(values.devices)} must list auto, cpu, cuda or cuda:N, separated by commas`);
  if (values.precision !== "fp32" && values.precision !== "bf16") throw new Error(`--precision: ${JSON.stringify(values.precision)} is not fp32 or bf16`);
  const lba: NonNullable<QuantConfig["lba"]> = {};
  if (values["lba-ramp"] !== undefined) lba.rampFraction = fraction("lba-ramp", values["lba-ramp"]);
  if (values["lba-r-start"] !== undefined) lba.rStart = fraction("lba-r-start", values["lba-r-start"]);
  if (values["lba-r-end"] !== undefined) lba.rEnd = fraction("lba-r-end", values["lba-r-end"]);
  if (values["lba-score"] !== undefined) {
    // SCORE (both kinds) or WEIGHTS,ACTIVATIONS
    const parts = values["lba-score"].split(",");
    if (parts.length > 2) throw new Error(`--lba-score: ${JSON.stringify(values["lba-score"])} is not SCORE or WEIGHT_SCORE,ACT_SCORE`);
    const [w, a] = parts.map((score): Score => {
      if (!(SCORES as readonly string[]).includes(score)) throw new Error(`--lba-score: ${JSON.stringify(score)} is not ${SCORES.slice(0, -1).join(", ")} or ${SCORES[SCORES.length - 1]}`);
      return score as Score;
    });
    lba.score = w;
    if (a !== undefined && a !== w) lba.actScore = a;
  }
  const allocator = values["lba-allocator"];
  if (allocator !== undefined) {
    if (allocator !== "decrement" && allocator !== "giveback") throw new Error(`--lba-allocator: ${JSON.stringify(allocator)} is not decrement or giveback`);
    lba.allocator = allocator;
  }
  let vggEpochs: Options["vggEpochs"];
  if (values["vgg-epochs"] !== undefined) {
    const parts = values["vgg-epochs"].split(",");
    if (parts.length !== 2) throw new Error(`--vgg-epochs: ${JSON.stringify(values["vgg-epochs"])} is not FP,Q (two epoch counts)`);
    vggEpochs = { fp: int("vgg-epochs", parts[0], 1), q: int("vgg-epochs", parts[1], 1) };
  }
  let kd: Options["kd"];
  if (values.kd !== undefined) {
    const [a, t] = values.kd.split(",");
    kd = { alpha: fraction("kd", a), temperature: t === undefined ? 4 : num("kd", t, (v) => v > 0, "ALPHA,T with T > 0") };
  }
  const startFrom = parseStartFrom(values["start-from"]!);
  if (values["keep-weight-bits"] && startFrom.size === 0) throw new Error("--keep-weight-bits: no row starts from another (--start-from ROW=FROM): there are no widths to keep");
  const rowEpochs = new Map(rowPairs("row-epochs", values["row-epochs"] ?? "", "N").map(([row, n]) => [row.id, int("row-epochs", n, 1)]));
  const actMode = values["act-mode"];
  if (actMode !== undefined && actMode !== "uniform" && actMode !== "table") throw new Error(`--act-mode: ${JSON.stringify(actMode)} is not uniform or table`);
  const levels = values.levels as LevelsMode | undefined;
  if (levels !== undefined) {
    if (!LEVELS_MODES.includes(levels)) throw new Error(`--levels: ${JSON.stringify(levels)} is not one of ${LEVELS_MODES.join(", ")}`);
    // an ablation row is its levels: overriding them would run another row under its name
    const own = ROWS.filter((r) => wanted.includes(r.id) && r.quant?.levels !== undefined && r.quant.levels !== levels);
    if (own.length) throw new Error(`--levels: ${own.map((r) => `${r.id} (${r.quant!.levels})`).join(", ")} fix their own weight levels; leave them out of --rows`);
  }
  commitFromEnv(); // a bad DMBQ_COMMIT is refused before anything runs
  const data = dataFolder(values.data!);
  return {
    data,
    runsDir: resolve(values.runs!),
    fpFrom: resolve(values["fp-from"] ?? values.runs!),
    rows: ROWS.filter((r) => wanted.includes(r.id)),
    rowsGiven: Boolean(values.rows),
    devices,
    perDevice: int("per-device", values["per-device"] ?? values.parallel ?? "1", 1),
    fpEpochs: int("fp-epochs", values["fp-epochs"], 1),
    qEpochs: int("q-epochs", values["q-epochs"], 1),
    ...(rowEpochs.size ? { rowEpochs } : {}),
    ...(vggEpochs ? { vggEpochs } : {}),
    seed: int("seed", values.seed, 0),
    precision: values.precision,
    compile: values.compile!,
    lrFp: num("lr-fp", values["lr-fp"], (v) => v > 0, "a positive number"),
    lrQ: values["lr-q"] === undefined ? undefined : num("lr-q", values["lr-q"], (v) => v > 0, "a positive number"),
    wdQ: num("wd-q", values["wd-q"], (v) => v >= 0, "a number >= 0"),
    warmEpochs: int("warm-epochs", values["warm-epochs"], 0),
    lba,
    ...(values["min-bits"] !== undefined ? { minBits: num("min-bits", values["min-bits"], (v) => Number.isInteger(v) && v >= 0 && v <= 8, "an integer in 0..8") } : {}),
    ...(actMode !== undefined ? { actMode } : {}),
    ...(levels !== undefined ? { levels } : {}),
    ...(values["clip-lr-scale"] !== undefined ? { clipLrScale: num("clip-lr-scale", values["clip-lr-scale"], (v) => v > 0, "a positive number") } : {}),
    trainLimit: int("train-limit", values["train-limit"], 0),
    testLimit: int("test-limit", values["test-limit"], 0),
    keepCheckpoints: int("keep-checkpoints", values["keep-checkpoints"], 1),
    resumeExisting: values["resume-existing"]!,
    deadlineS: num("deadline-s", values["deadline-s"], (v) => v >= 0, "a number of seconds >= 0"),
    timing: values.timing!,
    timingEpochs: int("timing-epochs", values["timing-epochs"], 2),
    timingRamp: fraction("timing-ramp", values["timing-ramp"]),
    ...(kd ? { kd } : {}),
    startFrom,
    keepWeightBits: values["keep-weight-bits"]!,
    ...(values["recalibrate-bn"] !== undefined ? { recalibrateBn: int("recalibrate-bn", values["recalibrate-bn"], 0) } : {}),
  };
}

/** The row named `id`, or an error naming `--flag` and the known rows. */
function knownRow(flag: string, id: string): Row {
  const row = ROWS.find((r) => r.id === id);
  if (!row) throw new Error(`--${flag}: unknown row ${id}; known: ${ROWS.map((r) => r.id).join(", ")}`);
  return row;
}

/** The `ROW=VALUE,...` pairs of `--flag`, each ROW a known row; `valueName` names VALUE in the error. */
function rowPairs(flag: string, raw: string, valueName: string): Array<[Row, string]> {
  return raw.split(",").map((p) => p.trim()).filter(Boolean).map((pair) => {
    const [id, value, extra] = pair.split("=").map((p) => p.trim());
    if (!id || !value || extra !== undefined) throw new Error(`--${flag}: ${JSON.stringify(pair)} is not ROW=${valueName}`);
    return [knownRow(flag, id), value];
  });
}

/** `--start-from ROW=FROM,...`: both quantized rows of one model, each ROW once, no cycle. */
export function parseStartFrom(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [to, fromId] of rowPairs("start-from", raw, "FROM")) {
    const from = knownRow("start-from", fromId);
    for (const row of [to, from]) {
      if (!row.quant) throw new Error(`--start-from: ${row.id} is a full-precision row; quantized rows start from it anyway`);
    }
    if (to.model !== from.model) throw new Error(`--start-from: ${to.id} and ${from.id} are rows of different models`);
    if (out.has(to.id)) throw new Error(`--start-from: ${to.id} is given twice`);
    out.set(to.id, from.id);
  }
  for (const start of out.keys()) startChain(out, start);
  return out;
}

/** The rows of `id`'s `--start-from` chain, the first run first and `id` last; names a cycle. */
export function startChain(startFrom: ReadonlyMap<string, string>, id: string): string[] {
  const back = [id];
  for (let at = startFrom.get(id); at !== undefined; at = startFrom.get(at)) {
    if (back.includes(at)) throw new Error(`--start-from: ${id} starts from itself through ${back.join(" <- ")}`);
    back.push(at);
  }
  return back.reverse();
}

export const rowById = (id: string): Row => ROWS.find((r) => r.id === id)!;

/** The fine-tuning LR of a quantized row: `--lr-q` if given, else the row's own, else DEFAULT_LR_Q. */
export const lrQOf = (o: Pick<Options, "lrQ">, row: Row): number => o.lrQ ?? row.lrQ ?? DEFAULT_LR_Q;

/** The epochs of a row: its model's FP or quantized count. */
export const epochsOf = (o: Pick<Options, "fpEpochs" | "qEpochs" | "vggEpochs" | "rowEpochs">, row: Row): number => {
  const given = o.rowEpochs?.get(row.id);
  if (given !== undefined) return given;
  const own = row.model === "vgg_small" && o.vggEpochs ? o.vggEpochs : { fp: o.fpEpochs, q: o.qEpochs };
  return row.quant ? own.q : own.fp;
};

export function rowConfig(o: Options, row: Row, device: string, runsDir = o.runsDir, name = row.id, epochs = epochsOf(o, row), lba = o.lba): ExperimentConfig {
  const fp = !row.quant;
  const from = o.startFrom.get(row.id);
  const fromRun = from ? join(o.runsDir, from) : join(o.fpFrom, fpRowOf(row));
  return {
    name,
    runsDir,
    model: row.model,
    dataset: {
      name: "cifar10", path: o.data, batchSize: 128, augment: true,
      ...(o.trainLimit ? { trainLimit: o.trainLimit } : {}), ...(o.testLimit ? { testLimit: o.testLimit } : {}),
    },
    epochs,
    // The paper's optimizer (SGD, momentum 0.9, weight decay 1e-4, batch 128) with a cosine schedule;
    // quantized rows fine-tune from their model's FP weights at a lower LR.
    optimizer: { name: "sgd", lr: fp ? o.lrFp : lrQOf(o, row), momentum: 0.9, weightDecay: fp ? 1e-4 : o.wdQ },
    schedule: { kind: "cosine", ...(o.warmEpochs ? { warmupEpochs: o.warmEpochs } : {}) },
    seed: o.seed,
    device,
    precision: o.precision,
    compile: o.compile,
    keepCheckpoints: o.keepCheckpoints,
    progress: "none",
    ...(row.quant ? { quant: { ...row.quant, ...(o.minBits !== undefined ? { minBits: o.minBits } : {}), ...(o.actMode !== undefined ? { actMode: o.actMode } : {}),
      ...(o.levels !== undefined ? { levels: o.levels } : {}),
      ...(o.clipLrScale !== undefined ? { actClipLrScale: o.clipLrScale } : {}), ...(Object.keys(lba).length ? { lba } : {}) },
      init: { fromRun, ...(from && o.keepWeightBits ? { keepWeightBits: true } : {}) } } : {}),
    ...(row.quant && o.kd ? { distill: { alpha: o.kd.alpha, temperature: o.kd.temperature } } : {}),
    ...(row.quant && o.recalibrateBn !== undefined ? { recalibrateBatchNorm: { batches: o.recalibrateBn } } : {}),
  };
}

/**
 * The command that reproduces one row (its FP run first, when that is missing). The rows of its `--start-from`
 * chain that this invocation did not select ran earlier (finished in the runs folder, which `rowJobs` checks): the
 * command names that folder and starts from it instead of listing them, since its flags acted on the selected rows
 * only; the earlier rows' own commands are in their summaries.
 */
export function rowCommand(o: Options, row: Row): string {
  const full = startChain(o.startFrom, row.id);
  const selected = new Set(o.rows.map((r) => r.id));
  let first = 0;
  while (first < full.length - 1 && !selected.has(full[first]!)) first++;
  const chain = full.slice(first);
  const parts = ["node dist/examples/reproduce-cifar.js", `--data ${process.env.CIFAR10_DIR === o.data ? "$CIFAR10_DIR" : o.data}`,
    ...(first > 0 ? [`--runs ${o.runsDir}`] : []), `--rows ${chain.join(",")}`,
    `--fp-epochs ${o.fpEpochs}`, `--q-epochs ${o.qEpochs}`, `--seed ${o.seed}`, `--precision ${o.precision}`, `--lr-fp ${o.lrFp}`];
  // a chain keeps each row's own LR (Row.lrQ): one --lr-q would give its LR to the rows it starts from too
  if (row.quant && (chain.length === 1 || o.lrQ !== undefined)) parts.push(`--lr-q ${lrQOf(o, row)}`);
  if (o.vggEpochs) parts.push(`--vgg-epochs ${o.vggEpochs.fp},${o.vggEpochs.q}`);
  if (o.fpFrom !== o.runsDir) parts.push(`--fp-from ${o.fpFrom}`);
  if (o.wdQ !== 1e-4) parts.push(`--wd-q ${o.wdQ}`);
  if (o.compile) parts.push("--compile");
  if (o.warmEpochs) parts.push(`--warm-epochs ${o.warmEpochs}`);
  if (o.lba.rampFraction !== undefined) parts.push(`--lba-ramp ${o.lba.rampFraction}`);
  if (o.lba.rStart !== undefined) parts.push(`--lba-r-start ${o.lba.rStart}`);
  if (o.lba.rEnd !== undefined) parts.push(`--lba-r-end ${o.lba.rEnd}`);
  if (o.lba.score !== undefined) parts.push(`--lba-score ${o.lba.score}${o.lba.actScore !== undefined ? `,${o.lba.actScore}` : ""}`);
  if (o.lba.allocator !== undefined) parts.push(`--lba-allocator ${o.lba.allocator}`);
  if (o.minBits !== undefined) parts.push(`--min-bits ${o.minBits}`);
  if (o.actMode !== undefined) parts.push(`--act-mode ${o.actMode}`);
  if (o.levels !== undefined) parts.push(`--levels ${o.levels}`);
  if (o.clipLrScale !== undefined) parts.push(`--clip-lr-scale ${o.clipLrScale}`);
  const ownEpochs = chain.filter((id) => o.rowEpochs?.has(id)).map((id) => `${id}=${o.rowEpochs!.get(id)}`);
  if (ownEpochs.length) parts.push(`--row-epochs ${ownEpochs.join(",")}`);
  if (o.trainLimit) parts.push(`--train-limit ${o.trainLimit}`);
  if (o.testLimit) parts.push(`--test-limit ${o.testLimit}`);
  if (o.kd && row.quant) parts.push(`--kd ${o.kd.alpha},${o.kd.temperature}`);
  const starts = full.slice(Math.max(first, 1)).map((id) => `${id}=${o.startFrom.get(id)!}`);
  if (starts.length) parts.push(`--start-from ${starts.join(",")}`);
  if (o.keepWeightBits && starts.length) parts.push("--keep-weight-bits");
  if (o.recalibrateBn !== undefined && row.quant) parts.push(`--recalibrate-bn ${o.recalibrateBn}`);
  return parts.join(" ");
}

/** result.json of a finished run (of any length), or undefined. */
function savedResult(dir: string): RunResult | undefined {
  const p = join(dir, "result.json");
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as RunResult) : undefined;
}

/** result.json of a run that finished `epochs` epochs, or undefined. */
export function finishedResult(dir: string, epochs: number): RunResult | undefined {
  const r = savedResult(dir);
  return r?.epochs === epochs ? r : undefined;
}

/** The epochs an unfinished run folder was started for, when it holds a checkpoint to resume from. */
function resumableEpochs(dir: string): number | undefined {
  if (!existsSync(join(dir, "checkpoints", "latest.json")) || !existsSync(join(dir, "config.json"))) return undefined;
  return (JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as ExperimentConfig).epochs;
}

const today = (): string => new Date().toISOString().slice(0, 10);
/**
 * `DMBQ_COMMIT`: the commit a copy of the tree without .git was made from (a device machine gets the working tree,
 * not the repository), so its records still name their code. Refused at startup when it is not a commit, so a typo
 * fails before a run, not when its result is written.
 */
export function commitFromEnv(): string | null {
  const v = process.env.DMBQ_COMMIT?.trim();
  if (!v) return null;
  if (!/^[0-9a-f]{7,40}(-dirty)?$/.test(v)) throw new Error(`DMBQ_COMMIT: ${JSON.stringify(v)} is not a commit (7 to 40 hex digits, optionally -dirty)`);
  return v;
}

/**
 * The short commit of the checkout, `SHA-dirty` when tracked files differ from it (the code that ran is in no
 * commit: git describe's mark); in a copy without .git, `DMBQ_COMMIT` when set, else null.
 */
export function commit(): string | null {
  let sha: string;
  try {
    sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return commitFromEnv(); // a copy of the tree without .git
  }
  if (!sha) return commitFromEnv();
  try {
    execFileSync("git", ["diff", "--quiet", "HEAD", "--"], { stdio: "ignore" }); // exit 1: changes
    return sha;
  } catch {
    return `${sha}-dirty`;
  }
}

/** Running experiments, so a deadline or a signal can stop them at a step boundary. */
class Runs {
  readonly active = new Set<ExperimentRun>();
  stopped = false;

  stopAll(why: string): void {
    if (this.stopped) return;
    this.stopped = true;
    console.error(`stopping ${this.active.size} running row(s): ${why}; each keeps its last epoch checkpoint (continue with --resume-existing)`);
    for (const r of this.active) r.stop();
  }

  async follow(run: ExperimentRun, tag: string, onEpoch?: (seconds: number, wallS: number) => void): Promise<RunResult> {
    this.active.add(run);
    let last = Date.now();
    run.on("epoch", (e) => {
      const now = Date.now();
      onEpoch?.(e.seconds, (now - last) / 1000);
      last = now;
      console.log(`[${tag}] epoch ${e.epoch}/${run.config.epochs}  test ${(e.testAccuracy * 100).toFixed(2)}%  W${e.avgWBits.toFixed(2)}/A${e.avgABits.toFixed(2)}  train ${e.seconds.toFixed(2)} s`);
    });
    try {
      const r = await run.result;
      if (r.epochs < run.config.epochs) throw new Error(`stopped after epoch ${r.epochs} of ${run.config.epochs}`);
      // stopped between the last epoch and result.json: its top-1 would be the unrecalibrated one, and no model.dmbq
      if (!run.finished) throw new Error(`stopped after its last epoch (${r.epochs}), before its result was written; --resume-existing finishes it`);
      return r;
    } finally {
      this.active.delete(run);
    }
  }
}

// ---------------------------------------------------------------- the table rows

async function runRow(o: Options, runs: Runs, row: Row, device: string): Promise<RunResult> {
  const dir = join(o.runsDir, row.id);
  const epochs = epochsOf(o, row);
  const t0 = Date.now();
  let run: ExperimentRun | undefined;
  if (o.resumeExisting) {
    const done = savedResult(dir);
    if (done?.epochs === epochs) {
      console.log(`[${row.id}] finished earlier (${epochs} epochs): read back, top-1 ${done.top1.toFixed(2)}%`);
      return done;
    }
    if (done) {
      // a finished run is the expensive thing here: never start over it (a carried 120-epoch FP run under
      // --fp-epochs 2 was replaced this way)
      throw new Error(`${dir} holds a finished ${done.epochs}-epoch run (top-1 ${done.top1.toFixed(2)}%), not the ${epochs} epochs these flags ask for; ` +
        "--resume-existing never starts over a finished run: move it away, or use another --runs");
    }
    const savedEpochs = resumableEpochs(dir);
    if (savedEpochs === epochs) {
      // Paths and the device may differ from the call that started it (a carried runs folder, another machine).
      const c = rowConfig(o, row, device);
      run = await Experiment.resume(dir, { device, compile: o.compile, dataset: c.dataset, runsDir: o.runsDir, ...(c.init ? { init: c.init } : {}) });
      console.log(`[${row.id}] resumed on ${device} from its checkpoint`);
    } else if (savedEpochs !== undefined) {
      console.log(`[${row.id}] its folder was started for ${savedEpochs} epochs, not ${epochs}: starting again`);
    }
  }
  if (!run) {
    run = await Experiment.start(rowConfig(o, row, device));
    console.log(`[${row.id}] started on ${device}`);
  }
  const r = await runs.follow(run, row.id);
  const bn = r.batchNormRecalibration ? ` (${r.batchNormRecalibration.top1Before.toFixed(2)}% before BatchNorm recalibration)` : "";
  console.log(`[${row.id}] top-1 ${r.top1.toFixed(2)}%${bn}  W${r.avgWBits.toFixed(2)}/A${r.avgABits.toFixed(2)}  ${((Date.now() - t0) / 1000).toFixed(0)} s on ${device}`);
  return r;
}

/**
 * The jobs for the selected rows: every FP run they need first (also one not selected but missing), then the rest.
 * With `--fp-from` (another seed's rows from the same FP runs, say) the FP runs must be finished there: none is run.
 */
export function rowJobs(o: Pick<Options, "rows" | "runsDir" | "fpFrom" | "fpEpochs" | "qEpochs" | "vggEpochs" | "rowEpochs"> & Partial<Pick<Options, "startFrom">>): Job[] {
  // A row started from another quantized row waits for it: selected, or finished earlier in the runs folder.
  const startFrom = o.startFrom ?? new Map<string, string>();
  const selected = new Set(o.rows.map((r) => r.id));
  for (const r of o.rows) {
    const from = startFrom.get(r.id);
    if (from !== undefined && !selected.has(from) && !finishedResult(join(o.runsDir, from), epochsOf(o, rowById(from)))) {
      throw new Error(`--start-from: ${r.id} starts from ${from}, which is neither in --rows nor finished in ${o.runsDir}`);
    }
  }
  const depth = (id: string): number => startChain(startFrom, id).length - 1;
  const quantJobs = (after: (r: Row) => string | undefined): Job[] =>
    o.rows.filter((r) => r.quant).map((r, i) => ({ r, i })).sort((a, b) => depth(a.r.id) - depth(b.r.id) || a.i - b.i)
      .map(({ r }) => {
        const dep = startFrom.get(r.id) ?? after(r);
        return dep === undefined ? { id: r.id } : { id: r.id, after: dep };
      });
  if (o.fpFrom !== o.runsDir) {
    const fpSelected = o.rows.filter((r) => !r.quant).map((r) => r.id);
    if (fpSelected.length) throw new Error(`--fp-from: FP runs are taken from ${o.fpFrom}; do not also select ${fpSelected.join(", ")} in --rows`);
    for (const fp of new Set(o.rows.map(fpRowOf))) {
      const epochs = epochsOf(o, rowById(fp));
      if (!finishedResult(join(o.fpFrom, fp), epochs)) throw new Error(`--fp-from: ${join(o.fpFrom, fp)} holds no finished ${epochs}-epoch run (result.json)`);
    }
    return quantJobs(() => undefined);
  }
  const fpIds = new Set(o.rows.filter((r) => !r.quant).map((r) => r.id));
  for (const r of o.rows) {
    const fp = fpRowOf(r);
    const fpEpochs = epochsOf(o, rowById(fp));
    if (r.quant && !fpIds.has(fp) && !finishedResult(join(o.runsDir, fp), fpEpochs)) {
      console.log(`${r.id} starts from ${fp}, which has no finished ${fpEpochs}-epoch run in ${o.runsDir}: running it first`);
      fpIds.add(fp);
    }
  }
  const fps = ROWS.filter((r) => fpIds.has(r.id)).map((r) => ({ id: r.id }));
  return [...fps, ...quantJobs(fpRowOf)];
}

/** One run as a row of docs/results.json: the fields issue 6 names (cifar-table's records and the docs add more). */
export interface ResultsRow {
  model: string;
  config: string;
  top1: number;
  fp_top1: number | null;
  avg_w_bits: number;
  avg_a_bits: number;
  size_mb: number;
  epochs: number;
  gpu: string;
  epoch_time_ratio: number | null;
  paper_top1: number | null;
  /** Present when the row recalibrated its BatchNorm statistics: top1 is the score after, this the one before. */
  top1_before_bn_recalibration?: number;
  command: string;
}

/** Ratios measured by an earlier (or this) `--timing` call, by row id, with the device they were measured on. */
function timingRatios(runsDir: string): { device: string; ratios: Map<string, number> } | undefined {
  const p = join(runsDir, "timing.json");
  if (!existsSync(p)) return undefined;
  const t = JSON.parse(readFileSync(p, "utf8")) as TimingReport;
  return { device: t.device, ratios: new Map(t.rows.map((r) => [r.config, r.ratio])) };
}

function writeSummary(o: Options, outcomes: Map<string, Outcome<RunResult>>): void {
  const timing = timingRatios(o.runsDir);
  const lines = [
    "| row | model | top-1 | FP top-1 | Δ vs FP | paper | avg W | avg A | size (MB) | epochs | s/epoch (train) | epoch-time ratio | device |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const json: ResultsRow[] = [];
  for (const row of o.rows) {
    const out = outcomes.get(row.id);
    if (!out?.ok) {
      lines.push(`| ${row.id} | ${row.model} | not finished: ${(out?.error.message ?? "not run").replaceAll("|", "/").replaceAll("\n", " ")} | | | ${row.paper ?? ""} | | | | | | | |`);
      continue;
    }
    const r = out.value;
    const fpTop1 = row.quant ? (r.fpTop1 ?? null) : null;
    // A ratio counts for a row only when it was measured on the kind of device the row ran on (an H100 is not an H200).
    const ratio = timing?.device === r.device ? (timing.ratios.get(row.id) ?? null) : null;
    const gpu = r.device.replace(/^[a-z]+: /, "");
    const before = r.batchNormRecalibration?.top1Before;
    lines.push(`| ${row.id} | ${row.model} | ${r.top1.toFixed(2)}${before !== undefined ? ` (${before.toFixed(2)} before BN recalibration)` : ""} | ${fpTop1?.toFixed(2) ?? "—"} | ${fpTop1 !== null ? (r.top1 - fpTop1).toFixed(2) : "—"} | ${row.paper ?? ""} | ${r.avgWBits.toFixed(2)} | ${r.avgABits.toFixed(2)} | ${r.sizeMb.toFixed(3)} | ${r.epochs} | ${r.epochTimeS.toFixed(2)} | ${ratio?.toFixed(2) ?? "—"} | ${gpu} |`);
    json.push({
      model: row.model, config: row.id, top1: r.top1, fp_top1: fpTop1, avg_w_bits: r.avgWBits, avg_a_bits: r.avgABits,
      size_mb: r.sizeMb, epochs: r.epochs, gpu, epoch_time_ratio: ratio, paper_top1: row.paper ?? null,
      ...(before !== undefined ? { top1_before_bn_recalibration: before } : {}), command: rowCommand(o, row),
    });
  }
  console.log(lines.join("\n"));
  writeFileSync(join(o.runsDir, "summary.json"), JSON.stringify(json, null, 2) + "\n");
  writeFileSync(join(o.runsDir, "summary.md"), lines.join("\n") + "\n");
}

// ---------------------------------------------------------------- timing (issue 6 item 4)

interface TimingReport {
  device: string;
  date: string;
  commit: string | null;
  epochs: number;
  caption: string;
  command: string;
  rows: { config: string; trainSeconds: number[]; wallSeconds: number[]; medianTrainS: number; ratio: number; medianWallS: number; wallRatio: number; paperRatio: number }[];
}

async function runTiming(o: Options, runs: Runs): Promise<void> {
  const device = o.devices[0]!;
  const dir = join(o.runsDir, "timing");
  mkdirSync(dir, { recursive: true });
  // The same start for all four: the FP run's weights when there are any, else the seed's initialisation.
  const fpRun = join(o.runsDir, "r20-fp");
  const fromFp = existsSync(join(fpRun, "checkpoints", "latest.json"));
  const measured: TimingReport["rows"] = [];
  let deviceName = device;
  for (const t of TIMING_ROWS) {
    if (runs.stopped) throw new Error("timing: stopped before it finished");
    const row = rowById(t.id);
    // Every timed epoch inside the LBA window (--timing-ramp 1): sensitivities are collected in each of them.
    const c = rowConfig(o, row, device, dir, `timing-${t.id}`, o.timingEpochs, { ...o.lba, rampFraction: o.timingRamp });
    c.optimizer = { ...c.optimizer, lr: o.lrQ ?? DEFAULT_LR_Q }; // one loop for all: only the scheme differs
    if (fromFp) c.init = { fromRun: fpRun };
    else delete c.init;
    const train: number[] = [];
    const wall: number[] = [];
    const run = await Experiment.start(c);
    const r = await runs.follow(run, `timing ${t.id}`, (s, w) => {
      train.push(s);
      wall.push(w);
    });
    deviceName = r.device;
    measured.push({ config: t.id, trainSeconds: train, wallSeconds: wall, medianTrainS: steadyMedian(train), ratio: 0, medianWallS: steadyMedian(wall), wallRatio: 0, paperRatio: t.paperRatio });
  }
  const fp = measured[0]!;
  for (const m of measured) {
    m.ratio = m.medianTrainS / fp.medianTrainS;
    m.wallRatio = m.medianWallS / fp.medianWallS;
  }
  const caption =
    `ResNet-20 on CIFAR-10, ${o.timingEpochs} epochs each, one run at a time on ${deviceName} (${o.precision}${o.compile ? ", compiled" : ""}), ` +
    `${fromFp ? "all from the FP run's weights" : "all from the same seed's initialisation"}, same loop (SGD, batch 128, LR ${o.lrQ ?? DEFAULT_LR_Q}, cosine). ` +
    `Median over epochs ${o.timingEpochs === 2 ? "2" : `2..${o.timingEpochs}`} (the first pays for warm-up). "train" is the worker's epoch time (EpochResult.seconds): ` +
    `the training steps only (data loading, forward, backward, optimizer, the in-step LBA sensitivity collection), ending with a device sync; ` +
    `not the test-set evaluation. "wall" is the time between consecutive epoch events in the driver: train + evaluation + the LBA policy step ` +
    `and scheme update + the checkpoint. LBA rows: the LBA window spans ${Math.round(o.timingRamp * 100)}% of the epochs, so ${o.timingRamp === 1 ? "every timed epoch collects sensitivities" : "later epochs run without sensitivities"}; ` +
    `the last epoch of a quantized run also collects weight histograms (for the report).`;
  const lines = [
    caption, "",
    "| row | train s/epoch | ratio to FP | wall s/epoch | wall ratio | paper ratio |",
    "|---|---|---|---|---|---|",
    ...measured.map((m) => `| ${m.config} | ${m.medianTrainS.toFixed(3)} | ${m.ratio.toFixed(2)}× | ${m.medianWallS.toFixed(3)} | ${m.wallRatio.toFixed(2)}× | ${m.paperRatio.toFixed(2)}× |`),
  ];
  console.log(lines.join("\n"));
  const command = ["node dist/examples/reproduce-cifar.js --timing", `--timing-epochs ${o.timingEpochs}`, `--timing-ramp ${o.timingRamp}`, `--devices ${device}`,
    `--precision ${o.precision}`, `--lr-q ${o.lrQ ?? DEFAULT_LR_Q}`, ...(o.compile ? ["--compile"] : []), ...(o.trainLimit ? [`--train-limit ${o.trainLimit}`] : []), ...(o.testLimit ? [`--test-limit ${o.testLimit}`] : [])].join(" ");
  const report: TimingReport = { device: deviceName, date: today(), commit: commit(), epochs: o.timingEpochs, caption, command, rows: measured };
  writeFileSync(join(o.runsDir, "timing.json"), JSON.stringify(report, null, 2) + "\n");
  writeFileSync(join(o.runsDir, "timing.md"), lines.join("\n") + "\n");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  mkdirSync(o.runsDir, { recursive: true });
  const runs = new Runs();
  // The first signal stops the rows at a step boundary (checkpoints kept, summary written); a second one exits.
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => (runs.stopped ? process.exit(sig === "SIGINT" ? 130 : 143) : runs.stopAll(sig)));
  if (o.deadlineS > 0) setTimeout(() => runs.stopAll(`--deadline-s ${o.deadlineS} reached`), o.deadlineS * 1000).unref();

  // Timing first and alone: rows running beside it would share the GPU and the host's data loading.
  if (o.timing) await runTiming(o, runs);
  if (o.timing && !o.rowsGiven) return;

  let jobs: Job[];
  try {
    jobs = rowJobs(o);
  } catch (err) {
    console.error((err as Error).message); // a missing --fp-from run: say which, no stack
    process.exit(2);
  }
  const outcomes = await runOnDevices<RunResult>(jobs, o.devices, o.perDevice, (job, device) => runRow(o, runs, rowById(job.id), device), () => !runs.stopped);
  for (const [id, out] of outcomes) if (!out.ok) console.error(`[${id}] not finished: ${out.error.message}`);
  writeSummary(o, outcomes);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
