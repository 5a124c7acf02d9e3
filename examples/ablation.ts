// npx tsx examples/ablation.ts — an ablation grid, notebook style: min-max uniform vs uniform vs DMBQ levels, and GP
// vs LP vs CP allocation, all from the same full-precision start. Digits on the CPU by default; set
// ABLATION_MODEL=resnet20 ABLATION_DATA=cifar10 ABLATION_PATH=<folder> for the real thing on a GPU.
import { Experiment, type ExperimentConfig, type QuantConfig, type RunResult } from "../ts/experiment/index.js";

const epochs = Number(process.env.ABLATION_EPOCHS ?? 10);
const common = {
  model: process.env.ABLATION_MODEL ?? "digits_cnn",
  dataset: { name: (process.env.ABLATION_DATA ?? "digits") as ExperimentConfig["dataset"]["name"], ...(process.env.ABLATION_PATH ? { path: process.env.ABLATION_PATH } : {}) },
  optimizer: { lr: Number(process.env.ABLATION_LR ?? 0.05) },
  seed: 0,
  progress: "lines" as const,
};

const fp = await Experiment.start({ ...common, name: "ablation-fp", epochs });
const fpResult = await fp.result;

const grid: Array<[string, QuantConfig]> = [
  ["min-max uniform W2/A2 GP", { weightBits: 2, actBits: 2, granularity: "GP", levels: "uniformMax" }],
  ["uniform W2/A2 GP", { weightBits: 2, actBits: 2, granularity: "GP", levels: "uniform" }],
  ["DMBQ W2/A2 GP", { weightBits: 2, actBits: 2, granularity: "GP", levels: "laplace" }],
  ["DMBQ W2/A32 GP", { weightBits: 2, actBits: 32, granularity: "GP" }],
  ["DMBQ W2/A32 LP", { weightBits: 2, actBits: 32, granularity: "LP" }],
  ["DMBQ W2/A32 CP", { weightBits: 2, actBits: 32, granularity: "CP" }],
];
const rows: Array<[string, RunResult]> = [];
for (const [label, quant] of grid) {
  const run = await Experiment.start({ ...common, name: `ablation-${label.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase()}`, epochs, quant, init: { fromRun: fp.dir } });
  rows.push([label, await run.result]);
}

console.log(`\n| run | top-1 | W bits | A bits | size (MB) |\n|---|---|---|---|---|`);
console.log(`| full precision | ${fpResult.top1.toFixed(2)} | 32 | 32 | ${fpResult.sizeMb.toFixed(4)} |`);
for (const [label, r] of rows) console.log(`| ${label} | ${r.top1.toFixed(2)} | ${r.avgWBits.toFixed(2)} | ${r.avgABits.toFixed(2)} | ${r.sizeMb.toFixed(4)} |`);
