// The CIFAR-10 table of docs/RESULTS.md ("The table now") in one command: each row's recipe is data here, every
// stage runs as the reproduce-cifar.js command that the table lists (so a cell and its command cannot drift apart),
// for every seed, spread over the devices; then each row's mean, its distance from its FP run and whether it meets
// issue 6's target are computed from the runs' result.json (table.md, table.json in the runs folder; table.json's
// `results` are the finished runs in docs/results.json's schema).
//
//   node dist/examples/cifar-table.js --data $CIFAR10_DIR --runs runs/table [--seeds 0,1] [--rows r20-w2a2-cp,...]
//        [--devices cuda:0,cuda:1] [--per-device 2] [--deadline-s 0] [--dry-run]
//        [--fp-epochs 120] [--q-epochs 60] [--vgg-epochs 60,60] [--precision bf16] [--train-limit N] [--test-limit N]
//   (or npx tsx examples/cifar-table.ts ...)
//
// Both FP runs are seed 0 (the table's policy: one FP run per model, the quantized rows' seeds vary). Rerunning the
// same command reads finished stages back and resumes unfinished ones (each stage runs with --resume-existing), so
// a table longer than one device call continues in the next: carry the runs folder. Each stage's log is in
// RUNS/logs/.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { RunResult } from "../ts/experiment/index.js";
import { commit, dataFolder, epochsOf, finishedResult, parseOptions, rowById, runOnDevices, type Job, type ResultsRow } from "./reproduce-cifar.js";

// ---------------------------------------------------------------- the recipes

/** One reproduce-cifar.js invocation: row `row` in runs folder `folder` (per seed), after stage `after`. */
export interface Stage {
  folder: string;
  row: string;
  /** The flags beyond the ones every stage gets (data, runs, epochs, seed, precision, FP LR, FP runs, device). */
  args: string[];
  /** The stage it starts from (`folder/row`); a quantized row's first stage waits for its model's FP run. */
  after?: string;
}

export interface TableRow {
  id: string;
  label: string;
  model: "resnet20" | "vgg_small";
  /** Issue 6's target: the row's mean at least its FP run's top-1 plus this (negative: a tolerated loss). */
  minDelta?: number;
  /** The stages, in order; the row's result is the last one's. */
  stages: Stage[];
}

const R20 = "resnet20" as const;
const VGG = "vgg_small" as const;
const KD = ["--kd", "0.5,4"];
// The W2/A32 stage that the W2/A32 row is, and that W1/A32 and W2/A2 start from: one run per seed, shared.
const W2A32: Stage = { folder: "r20", row: "r20-w2a32-cp", args: ["--lr-q", "0.04", "--min-bits", "0", ...KD] };
const SQRT = ["--lba-score", "metricSqrtWeight", "--min-bits", "0", ...KD];

export const TABLE: TableRow[] = [
  { id: "r20-w4a4-gp", label: "ResNet-20 W4/A4 GP", model: R20, minDelta: -0.1,
    stages: [{ folder: "r20", row: "r20-w4a4-gp", args: ["--lr-q", "0.02", "--kd", "0.9,4"] }] },
  { id: "r20-w2a32-cp", label: "ResNet-20 W2/A32 CP", model: R20, minDelta: 0, stages: [W2A32] },
  { id: "r20-w1a32-cp", label: "ResNet-20 W1/A32 CP", model: R20, minDelta: -0.8, stages: [W2A32,
    { folder: "r20", row: "r20-w1a32-cp", after: "r20/r20-w2a32-cp", args: [...SQRT, "--start-from", "r20-w1a32-cp=r20-w2a32-cp"] }] },
  { id: "r20-w2a2-cp", label: "ResNet-20 W2/A2 CP", model: R20, minDelta: -0.5, stages: [W2A32,
    { folder: "r20", row: "r20-w2a2-cp", after: "r20/r20-w2a32-cp",
      args: ["--lr-q", "0.08", "--min-bits", "0", "--clip-lr-scale", "0.01", ...KD, "--start-from", "r20-w2a2-cp=r20-w2a32-cp", "--recalibrate-bn", "0"] }] },
  // W1/A2's chain ranks by × √weight in every stage, so its W2/A32 and W2/A2 stages are its own runs.
  { id: "r20-w1a2-cp", label: "ResNet-20 W1/A2 CP", model: R20, minDelta: -1.8, stages: [
    { folder: "r20-w1a2", row: "r20-w2a32-cp", args: SQRT },
    { folder: "r20-w1a2", row: "r20-w2a2-cp", after: "r20-w1a2/r20-w2a32-cp", args: [...SQRT, "--start-from", "r20-w2a2-cp=r20-w2a32-cp"] },
    { folder: "r20-w1a2", row: "r20-w1a2-cp", after: "r20-w1a2/r20-w2a2-cp", args: [...SQRT, "--start-from", "r20-w1a2-cp=r20-w2a2-cp"] }] },
  { id: "vgg-w0.7a32-cp", label: "VGG-small W0.7/A32 CP", model: VGG, minDelta: -0.1,
    stages: [{ folder: "vgg", row: "vgg-w0.7a32-cp", args: ["--lr-q", "0.04", ...KD] }] },
  { id: "vgg-w1a2-cp", label: "VGG-small W1/A2 CP", model: VGG, minDelta: 0,
    stages: [{ folder: "vgg", row: "vgg-w1a2-cp", args: ["--lr-q", "0.08", ...KD] }] },
  // The granularity ablation at W2/A32: the same flags for all three (CP here keeps at least 1 bit, unlike the row).
  ...(["gp", "lp", "cp"] as const).map((g): TableRow => ({ id: `granularity-${g}`, label: `W2/A32 ${g.toUpperCase()} (granularity)`, model: R20,
    stages: [{ folder: "granularity", row: `r20-w2a32-${g}`, args: ["--lr-q", "0.04", ...KD] }] })),
];

/** The FP run every quantized row of a model starts from: its folder and row (seed 0, whatever --seeds says). */
export const FP_STAGES: Record<TableRow["model"], Pick<Stage, "folder" | "row">> = {
  resnet20: { folder: "fp", row: "r20-fp" },
  vgg_small: { folder: "vgg-fp", row: "vgg-fp" },
};

// ---------------------------------------------------------------- options

export interface TableOptions {
  data: string;
  runsDir: string;
  rows: TableRow[];
  seeds: number[];
  devices: string[];
  perDevice: number;
  deadlineS: number;
  dryRun: boolean;
  /** Flags every stage gets (epochs, precision, limits); VGG stages also get `vggArgs`. */
  commonArgs: string[];
  vggArgs: string[];
}

export function parseTableOptions(argv: string[]): TableOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: "string", default: process.env.CIFAR10_DIR ?? "data/cifar10" },
      runs: { type: "string", default: "runs/table" },
      rows: { type: "string", default: "" },
      seeds: { type: "string", default: "0,1" },
      devices: { type: "string", default: "cuda:0" },
      "per-device": { type: "string", default: "2" },
      "deadline-s": { type: "string", default: "0" },
      "dry-run": { type: "boolean", default: false },
      "fp-epochs": { type: "string", default: "120" },
      "q-epochs": { type: "string", default: "60" },
      "vgg-epochs": { type: "string", default: "60,60" },
      precision: { type: "string", default: "bf16" },
      "train-limit": { type: "string" },
      "test-limit": { type: "string" },
    },
    strict: true,
  });
  const int = (flag: string, raw: string, min: number): number => {
    const v = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || v < min) throw new Error(`--${flag}: ${JSON.stringify(raw)} is not an integer >= ${min}`);
    return v;
  };
  const wanted = values.rows!.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((id) => !TABLE.some((r) => r.id === id));
  if (unknown.length) throw new Error(`--rows: unknown ${unknown.join(", ")}; the table's rows are ${TABLE.map((r) => r.id).join(", ")}`);
  const seeds = values.seeds!.split(",").map((s) => int("seeds", s, 0));
  if (new Set(seeds).size !== seeds.length) throw new Error(`--seeds: ${JSON.stringify(values.seeds)} names a seed twice`);
  const devices = values.devices!.split(",").map((s) => s.trim()).filter(Boolean);
  if (!devices.length) throw new Error("--devices: at least one device is needed (cuda:0,cuda:1 or cpu)");
  const vgg = values["vgg-epochs"]!.split(",");
  if (vgg.length !== 2) throw new Error(`--vgg-epochs: ${JSON.stringify(values["vgg-epochs"])} is not FP,Q (two epoch counts)`);
  const deadlineS = Number(values["deadline-s"]);
  if (!Number.isFinite(deadlineS) || deadlineS < 0) throw new Error(`--deadline-s: ${JSON.stringify(values["deadline-s"])} is not a number of seconds >= 0`);
  const data = dataFolder(values.data!);
  const limits = (["train-limit", "test-limit"] as const).flatMap((f) => (values[f] !== undefined ? [`--${f}`, String(int(f, values[f]!, 1))] : []));
  return {
    data,
    runsDir: resolve(values.runs!),
    rows: wanted.length ? TABLE.filter((r) => wanted.includes(r.id)) : TABLE,
    seeds,
    devices,
    perDevice: int("per-device", values["per-device"]!, 1),
    deadlineS,
    dryRun: values["dry-run"]!,
    commonArgs: ["--fp-epochs", String(int("fp-epochs", values["fp-epochs"]!, 1)), "--q-epochs", String(int("q-epochs", values["q-epochs"]!, 1)),
      "--precision", values.precision!, "--lr-fp", "0.1", ...limits],
    vggArgs: ["--vgg-epochs", `${int("vgg-epochs", vgg[0]!, 1)},${int("vgg-epochs", vgg[1]!, 1)}`],
  };
}

// ---------------------------------------------------------------- the plan

/** One stage of one seed, as the scheduler runs it. */
export interface PlannedStage extends Job {
  /** The runs folder (absolute) and the row the stage runs there. */
  runsDir: string;
  row: string;
  model: TableRow["model"];
  /** reproduce-cifar.js's arguments, without --devices (the scheduler adds the device). */
  argv: string[];
  /** The epochs its run is finished at, as the driver counts them for these arguments. */
  epochs: number;
}

/** A stage's id in the plan: `FOLDER-sSEED/ROW` for a seed's stage, `FOLDER/ROW` for an FP run (one for all seeds). */
export const stageId = (folder: string, row: string, seed?: number): string => `${folder}${seed === undefined ? "" : `-s${seed}`}/${row}`;

/**
 * The stages to run for the selected rows and seeds, each once (a stage shared by rows runs once), FP runs first.
 * Each stage's arguments go through the driver's own parser, so a bad epoch count or precision is refused here,
 * naming the flag, before anything runs.
 */
export function planTable(o: TableOptions): PlannedStage[] {
  const plan = new Map<string, PlannedStage>();
  const add = (id: string, runsDir: string, row: string, model: TableRow["model"], argv: string[], after?: string): void => {
    const had = plan.get(id);
    if (had && had.argv.join(" ") !== argv.join(" ")) throw new Error(`table: stage ${id} is defined twice with different flags`);
    if (!had) plan.set(id, { id, ...(after ? { after } : {}), runsDir, row, model, argv, epochs: epochsOf(parseOptions(argv), rowById(row)) });
  };
  const fpDir = (model: TableRow["model"]): string => join(o.runsDir, FP_STAGES[model].folder);
  const modelArgs = (model: TableRow["model"]): string[] => [...o.commonArgs, ...(model === VGG ? o.vggArgs : [])];
  for (const model of [R20, VGG]) {
    if (!o.rows.some((r) => r.model === model)) continue;
    const fp = FP_STAGES[model];
    add(stageId(fp.folder, fp.row), fpDir(model), fp.row, model,
      ["--data", o.data, "--runs", fpDir(model), "--rows", fp.row, ...modelArgs(model), "--seed", "0", "--resume-existing"]);
  }
  for (const seed of o.seeds) {
    for (const row of o.rows) {
      const fp = FP_STAGES[row.model];
      for (const st of row.stages) {
        const runsDir = join(o.runsDir, `${st.folder}-s${seed}`);
        const [afterFolder, afterRow] = st.after?.split("/") ?? [];
        add(stageId(st.folder, st.row, seed), runsDir, st.row, row.model,
          ["--data", o.data, "--runs", runsDir, "--rows", st.row, ...modelArgs(row.model), "--seed", String(seed),
            ...st.args, "--fp-from", fpDir(row.model), "--resume-existing"],
          afterFolder && afterRow ? stageId(afterFolder, afterRow, seed) : stageId(fp.folder, fp.row));
      }
    }
  }
  return [...plan.values()];
}

/** The shell form of a stage's command, as docs/RESULTS.md lists it ($CIFAR10_DIR for the data folder when set so). */
export function stageCommand(o: TableOptions, st: PlannedStage, device?: string): string {
  const argv = st.argv.map((a) => (a === o.data && process.env.CIFAR10_DIR && resolve(process.env.CIFAR10_DIR) === o.data ? "$CIFAR10_DIR" : a));
  return ["node dist/examples/reproduce-cifar.js", ...argv, ...(device ? ["--devices", device] : [])].join(" ");
}

// ---------------------------------------------------------------- the verdicts

export interface SeedResult {
  seed: number;
  top1: number;
  fpTop1: number;
  avgWBits: number;
  avgABits: number;
  sizeMb: number;
}

export interface RowVerdict {
  id: string;
  label: string;
  seeds: SeedResult[];
  /** Seeds whose run did not finish (no result.json). */
  missing: number[];
  mean?: number;
  fpTop1?: number;
  delta?: number;
  minDelta?: number;
  /** How many finished seeds meet the target, and whether the mean does; undefined for rows without a target. */
  seedsMeeting?: number;
  met?: boolean;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** A row's verdict from its seeds' results: the mean against the FP run they started from. */
export function rowVerdict(row: Pick<TableRow, "id" | "label" | "minDelta">, seeds: SeedResult[], missing: number[] = []): RowVerdict {
  const v: RowVerdict = { id: row.id, label: row.label, seeds, missing, ...(row.minDelta !== undefined ? { minDelta: row.minDelta } : {}) };
  if (!seeds.length) return v;
  const fps = new Set(seeds.map((s) => s.fpTop1));
  if (fps.size > 1) throw new Error(`${row.id}: its seeds started from different FP runs (${[...fps].join(", ")}); the table compares a row with one`);
  v.fpTop1 = seeds[0]!.fpTop1;
  v.mean = seeds.reduce((a, s) => a + s.top1, 0) / seeds.length;
  v.delta = v.mean - v.fpTop1;
  if (row.minDelta !== undefined) {
    // compared in hundredths, as the table prints them: 87.05 + (−0.5) is 86.55, not 86.550000001
    const meets = (top1: number): boolean => round2(top1 - v.fpTop1!) >= row.minDelta!;
    v.seedsMeeting = seeds.filter((s) => meets(s.top1)).length;
    v.met = meets(v.mean);
  }
  return v;
}

/** The ablation's check: CP ≥ LP ≥ GP on the means, when all three finished. */
export function granularityOrder(verdicts: RowVerdict[]): { holds: boolean; means: Record<string, number> } | undefined {
  const means: Record<string, number> = {};
  for (const g of ["gp", "lp", "cp"]) {
    const m = verdicts.find((v) => v.id === `granularity-${g}`)?.mean;
    if (m === undefined) return undefined;
    means[g] = m;
  }
  return { holds: means.cp! >= means.lp! && means.lp! >= means.gp!, means };
}

/** A row's stages for one seed, from the plan, its last one (the row's result) last. */
const chainOf = (byId: ReadonlyMap<string, PlannedStage>, row: TableRow, seed: number): PlannedStage[] =>
  row.stages.map((st) => byId.get(stageId(st.folder, st.row, seed))!);

/** The result of a stage's run when it finished the stage's epochs (not one left from a run of another length). */
export const stageResult = (st: PlannedStage): RunResult | undefined => finishedResult(join(st.runsDir, st.row), st.epochs);

function seedResult(st: PlannedStage, seed: number, r: RunResult): SeedResult {
  if (r.fpTop1 === undefined) throw new Error(`${join(st.runsDir, st.row, "result.json")}: no fpTop1 (a quantized run's result names the FP run it is compared with)`);
  return { seed, top1: r.top1, fpTop1: r.fpTop1, avgWBits: r.avgWBits, avgABits: r.avgABits, sizeMb: r.sizeMb };
}

/** One finished seed of a row in docs/results.json's schema (issue 6), so a table's runs can be appended there as they are. */
export interface ResultsRecord extends ResultsRow {
  table_row: string;
  epoch_time_ratio: null;
  seed: number;
  date: string;
  commit: string | null;
}

/**
 * A finished seed of a row as a record: the row's last stage, with the commands of its whole chain (joined by &&).
 * A run that recalibrated its BatchNorm statistics also keeps its score as trained, as reproduce-cifar's rows do.
 */
export function resultsRecord(o: TableOptions, row: TableRow, seed: number, chain: PlannedStage[], r: RunResult, sha: string | null): ResultsRecord {
  const last = chain[chain.length - 1]!;
  const before = r.batchNormRecalibration?.top1Before;
  return {
    model: row.model, config: last.row, table_row: row.id, top1: r.top1, fp_top1: r.fpTop1 ?? null,
    avg_w_bits: r.avgWBits, avg_a_bits: r.avgABits, size_mb: r.sizeMb, epochs: r.epochs,
    gpu: r.device.replace(/^[a-z]+: /, ""), epoch_time_ratio: null, paper_top1: rowById(last.row).paper ?? null,
    ...(before !== undefined ? { top1_before_bn_recalibration: before } : {}),
    seed, command: chain.map((st) => stageCommand(o, st)).join(" && "), date: r.finishedAt.slice(0, 10), commit: sha,
  };
}

export function tableMarkdown(verdicts: RowVerdict[]): string {
  const f = (x: number | undefined, sign = false): string => (x === undefined ? "—" : `${sign && x >= 0 ? "+" : ""}${x.toFixed(2)}`);
  const lines = ["| row | top-1 by seed | mean | FP | Δ | target | met? | avg W / A bits | size (MB) |", "|---|---|---|---|---|---|---|---|---|"];
  for (const v of verdicts) {
    const bySeed = v.seeds.map((s) => `${s.top1.toFixed(2)} (s${s.seed})`).concat(v.missing.map((s) => `— (s${s}, not finished)`)).join(", ");
    const target = v.minDelta === undefined ? "—" : v.minDelta === 0 ? "≥ FP" : `≥ FP − ${Math.abs(v.minDelta)}`;
    const met = v.met === undefined ? "—" : `${v.met ? "yes" : "no"} (${v.seedsMeeting} of ${v.seeds.length} seeds)`;
    const s0 = v.seeds[0];
    lines.push(`| ${v.label} | ${bySeed} | ${f(v.mean)} | ${f(v.fpTop1)} | ${f(v.delta, true)} | ${target} | ${met} | ${s0 ? `${s0.avgWBits.toFixed(2)} / ${s0.avgABits.toFixed(2)}` : "—"} | ${s0 ? s0.sizeMb.toFixed(3) : "—"} |`);
  }
  const order = granularityOrder(verdicts);
  if (order) lines.push("", `CP ≥ LP ≥ GP at W2/A32: ${order.holds ? "yes" : "no"} (GP ${order.means.gp!.toFixed(2)}, LP ${order.means.lp!.toFixed(2)}, CP ${order.means.cp!.toFixed(2)})`);
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------- running

const here = fileURLToPath(import.meta.url);
/** reproduce-cifar beside this file: the built .js, or the .ts through the same loader (tsx) as this process. */
const driver = (): string[] => (here.endsWith(".ts") ? [...process.execArgv, here.replace(/cifar-table\.ts$/, "reproduce-cifar.ts")] : [here.replace(/cifar-table\.js$/, "reproduce-cifar.js")]);

function runStage(o: TableOptions, st: PlannedStage, device: string, deadlineAt: number): Promise<void> {
  const logs = join(o.runsDir, "logs");
  mkdirSync(logs, { recursive: true });
  const logFile = join(logs, `${st.id.replace("/", "--")}.log`);
  const left = deadlineAt ? Math.floor((deadlineAt - Date.now()) / 1000) : 0;
  if (deadlineAt && left < 1) return Promise.reject(new Error("not started: --deadline-s reached"));
  const argv = [...st.argv, "--devices", device, ...(deadlineAt ? ["--deadline-s", String(left)] : [])];
  console.log(`[${st.id}] on ${device}: ${stageCommand(o, st, device)}`);
  return new Promise((done, fail) => {
    const log = createWriteStream(logFile);
    const child = spawn(process.execPath, [...driver(), ...argv], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on("error", (err) => fail(new Error(`could not start reproduce-cifar: ${err.message}`)));
    child.on("close", (code) => {
      log.end();
      const r = code === 0 ? stageResult(st) : undefined;
      if (r) {
        console.log(`[${st.id}] top-1 ${r.top1.toFixed(2)}%`);
        done();
      } else {
        // the driver's own reason (a configure error, a deadline), so the table's output says why without the log
        const why = /not finished: (.*)$/m.exec(existsSync(logFile) ? readFileSync(logFile, "utf8") : "")?.[1];
        fail(new Error(`did not finish${why ? `: ${why}` : ` (exit ${code})`}; its log: ${logFile}`));
      }
    });
  });
}

export async function runTable(o: TableOptions, plan: PlannedStage[] = planTable(o)): Promise<RowVerdict[]> {
  if (o.dryRun) {
    for (const st of plan) console.log(`${st.id}${st.after ? ` (after ${st.after})` : ""}: ${stageCommand(o, st)}`);
    return [];
  }
  mkdirSync(o.runsDir, { recursive: true });
  const deadlineAt = o.deadlineS > 0 ? Date.now() + o.deadlineS * 1000 : 0;
  const byId = new Map(plan.map((s) => [s.id, s]));
  const outcomes = await runOnDevices(plan, o.devices, o.perDevice, (job, device) => runStage(o, byId.get(job.id)!, device, deadlineAt),
    () => !deadlineAt || Date.now() < deadlineAt);
  for (const [id, out] of outcomes) if (!out.ok) console.error(`[${id}] ${out.error.message}`);
  // each row's seeds read once: for its verdict and for its records
  const sha = commit();
  const results: ResultsRecord[] = [];
  const verdicts = o.rows.map((row) => {
    const seeds: SeedResult[] = [];
    const missing: number[] = [];
    for (const seed of o.seeds) {
      const chain = chainOf(byId, row, seed);
      const last = chain[chain.length - 1]!;
      const r = stageResult(last);
      if (!r) {
        missing.push(seed);
        continue;
      }
      seeds.push(seedResult(last, seed, r));
      results.push(resultsRecord(o, row, seed, chain, r, sha));
    }
    return rowVerdict(row, seeds, missing);
  });
  const md = tableMarkdown(verdicts);
  writeFileSync(join(o.runsDir, "table.md"), md);
  const commands = Object.fromEntries(plan.map((s) => [s.id, stageCommand(o, s)]));
  writeFileSync(join(o.runsDir, "table.json"), JSON.stringify({ seeds: o.seeds, rows: verdicts, granularity: granularityOrder(verdicts) ?? null, commands,
    results }, null, 2) + "\n");
  console.log(`\n${md}`);
  return verdicts;
}

async function main(): Promise<void> {
  let o: TableOptions;
  let plan: PlannedStage[];
  try {
    o = parseTableOptions(process.argv.slice(2));
    plan = planTable(o); // the driver's parser sees every stage's flags before any stage runs
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const verdicts = await runTable(o, plan);
  // a stage that did not finish leaves its row's seed missing: say so in the exit status too
  if (verdicts.some((v) => v.missing.length)) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
