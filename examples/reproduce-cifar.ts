// The driver for the CIFAR-10 table (issue 6): every row is one experiment started from its model's
// full-precision run, all with the same recipe and seed policy. Rows run `--parallel` at a time (each its own
// worker process; several fit on one GPU), and the table is printed as markdown and written as JSON.
//
//   node dist/examples/reproduce-cifar.js --data $CIFAR10_DIR --runs runs/cifar [--rows r20-fp,r20-w2a2-cp,...]
//        [--fp-epochs 160] [--q-epochs 80] [--parallel 4] [--seed 0] [--precision bf16]
//   (or npx tsx examples/reproduce-cifar.ts ... on a machine with the dev dependencies)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Experiment, type ExperimentConfig, type QuantConfig, type RunResult } from "../ts/experiment/index.js";

const { values } = parseArgs({
  options: {
    data: { type: "string", default: process.env.CIFAR10_DIR ?? "data/cifar10" },
    runs: { type: "string", default: "runs/cifar" },
    rows: { type: "string", default: "" },
    "fp-epochs": { type: "string", default: "160" },
    "q-epochs": { type: "string", default: "80" },
    parallel: { type: "string", default: "4" },
    seed: { type: "string", default: "0" },
    precision: { type: "string", default: "fp32" },
    "train-limit": { type: "string", default: "0" },
  },
});

interface Row {
  id: string;
  model: "resnet20" | "vgg_small";
  quant?: QuantConfig;
  /** The paper's top-1 for this row (CIFAR-10, original data), for the table. */
  paper?: number;
}

const ROWS: Row[] = [
  { id: "r20-fp", model: "resnet20", paper: 92.4 },
  { id: "r20-w4a4-gp", model: "resnet20", quant: { weightBits: 4, actBits: 4, granularity: "GP" } },
  { id: "r20-w2a32-cp", model: "resnet20", quant: { weightBits: 2, actBits: 32, granularity: "CP" }, paper: 92.5 },
  { id: "r20-w1a32-cp", model: "resnet20", quant: { weightBits: 1, actBits: 32, granularity: "CP" }, paper: 91.4 },
  { id: "r20-w2a2-cp", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "CP" }, paper: 91.7 },
  { id: "r20-w1a2-cp", model: "resnet20", quant: { weightBits: 1, actBits: 2, granularity: "CP" }, paper: 90.4 },
  { id: "vgg-fp", model: "vgg_small", paper: 93.8 },
  { id: "vgg-w0.7a32-cp", model: "vgg_small", quant: { weightBits: 0.7, actBits: 32, granularity: "CP" }, paper: 93.7 },
  { id: "vgg-w1a2-cp", model: "vgg_small", quant: { weightBits: 1, actBits: 2, granularity: "CP" }, paper: 93.9 },
  // ablations
  { id: "r20-w2a2-gp-uniform", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "uniform" } },
  { id: "r20-w2a2-gp-dmbq", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "GP", levels: "laplace" } },
  { id: "r20-w3a3-gp-uniform", model: "resnet20", quant: { weightBits: 3, actBits: 3, granularity: "GP", levels: "uniform" } },
  { id: "r20-w3a3-gp-dmbq", model: "resnet20", quant: { weightBits: 3, actBits: 3, granularity: "GP", levels: "laplace" } },
  { id: "r20-w2a32-gp", model: "resnet20", quant: { weightBits: 2, actBits: 32, granularity: "GP" } },
  { id: "r20-w2a32-lp", model: "resnet20", quant: { weightBits: 2, actBits: 32, granularity: "LP" } },
  { id: "r20-w2a2-cp-empirical", model: "resnet20", quant: { weightBits: 2, actBits: 2, granularity: "CP", levels: "empirical" } },
];

const wanted = values.rows ? values.rows.split(",").map((s) => s.trim()) : ROWS.map((r) => r.id);
const unknown = wanted.filter((id) => !ROWS.some((r) => r.id === id));
if (unknown.length) {
  console.error(`unknown rows: ${unknown.join(", ")}; known: ${ROWS.map((r) => r.id).join(", ")}`);
  process.exit(2);
}
const runsDir = resolve(values.runs!);
mkdirSync(runsDir, { recursive: true });
const fpEpochs = Number(values["fp-epochs"]);
const qEpochs = Number(values["q-epochs"]);
const seed = Number(values.seed);

function config(row: Row): ExperimentConfig {
  const fp = !row.quant;
  return {
    name: row.id,
    runsDir,
    model: row.model,
    dataset: { name: "cifar10", path: values.data!, batchSize: 128, augment: true, ...(Number(values["train-limit"]) ? { trainLimit: Number(values["train-limit"]) } : {}) },
    epochs: fp ? fpEpochs : qEpochs,
    // The paper's optimizer (SGD, momentum 0.9, weight decay 1e-4, batch 128) with a cosine schedule;
    // quantized rows fine-tune from their model's FP weights at a lower LR.
    optimizer: { name: "sgd", lr: fp ? 0.1 : 0.02, momentum: 0.9, weightDecay: 1e-4 },
    schedule: { kind: "cosine" },
    seed,
    precision: values.precision as "fp32" | "bf16",
    progress: "none",
    ...(row.quant ? { quant: row.quant, init: { fromRun: join(runsDir, row.model === "resnet20" ? "r20-fp" : "vgg-fp") } } : {}),
  };
}

const results = new Map<string, RunResult>();
async function runRow(row: Row): Promise<void> {
  const t0 = Date.now();
  try {
    const run = await Experiment.start(config(row));
    run.on("epoch", (e) => console.log(`[${row.id}] epoch ${e.epoch}  test ${(e.testAccuracy * 100).toFixed(2)}%  W${e.avgWBits.toFixed(2)}/A${e.avgABits.toFixed(2)}  ${e.seconds.toFixed(2)} s`));
    const r = await run.result;
    results.set(row.id, r);
    console.log(`[${row.id}] top-1 ${r.top1.toFixed(2)}%  W${r.avgWBits.toFixed(2)}/A${r.avgABits.toFixed(2)}  ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } catch (err) {
    console.error(`[${row.id}] failed: ${(err as Error).message}`);
  }
}

async function pool(rows: Row[], n: number): Promise<void> {
  const queue = [...rows];
  await Promise.all(Array.from({ length: Math.max(1, n) }, async () => {
    for (let row = queue.shift(); row; row = queue.shift()) await runRow(row);
  }));
}

const selected = ROWS.filter((r) => wanted.includes(r.id));
// FP runs first (the others start from them), unless they already exist from an earlier call.
const finishedWith = (id: string, epochs: number): boolean => {
  const p = join(runsDir, id, "result.json");
  return existsSync(p) && (JSON.parse(readFileSync(p, "utf8")) as RunResult).epochs === epochs;
};
const fps = selected.filter((r) => !r.quant && !finishedWith(r.id, fpEpochs));
await pool(fps, Number(values.parallel));
await pool(selected.filter((r) => r.quant), Number(values.parallel));

const lines = ["| row | model | top-1 | FP top-1 | Δ vs FP | paper | avg W | avg A | size (MB) | epochs | s/epoch |", "|---|---|---|---|---|---|---|---|---|---|---|"];
const json = [];
for (const row of selected) {
  const r = results.get(row.id);
  if (!r) {
    lines.push(`| ${row.id} | ${row.model} | failed | | | ${row.paper ?? ""} | | | | | |`);
    continue;
  }
  const fpTop1 = r.fpTop1;
  lines.push(`| ${row.id} | ${row.model} | ${r.top1.toFixed(2)} | ${fpTop1?.toFixed(2) ?? "—"} | ${fpTop1 !== undefined ? (r.top1 - fpTop1).toFixed(2) : "—"} | ${row.paper ?? ""} | ${r.avgWBits.toFixed(2)} | ${r.avgABits.toFixed(2)} | ${r.sizeMb.toFixed(3)} | ${r.epochs} | ${r.epochTimeS.toFixed(2)} |`);
  json.push({ model: row.model, config: row.id, top1: r.top1, fp_top1: fpTop1 ?? null, avg_w_bits: r.avgWBits, avg_a_bits: r.avgABits, size_mb: r.sizeMb, epochs: r.epochs, gpu: r.device, epoch_time_s: r.epochTimeS, paper_top1: row.paper ?? null });
}
console.log(lines.join("\n"));
writeFileSync(join(runsDir, "summary.json"), JSON.stringify(json, null, 2) + "\n");
writeFileSync(join(runsDir, "summary.md"), lines.join("\n") + "\n");
