// npm run demo — the main job: the digits CNN trained in full precision, then quantized to W2.0/A2.0
// channel-wise with DMBQ levels and LBA bit allocation, starting from the full-precision weights.
// Runs on the CPU in a few minutes; writes runs/demo-fp and runs/demo (with its report.html).
import { Experiment, type ExperimentConfig } from "../ts/experiment/index.js";
import { writeReport } from "../ts/report/index.js";

const base = {
  model: "digits_cnn",
  dataset: { name: "digits" },
  optimizer: { name: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 1e-4 },
  seed: 0,
} satisfies Partial<ExperimentConfig>;

// 1. Full precision.
const fp = await Experiment.start({ ...base, name: "demo-fp", epochs: Number(process.env.DEMO_FP_EPOCHS ?? 15) });
const fpResult = await fp.result;
console.log(`full precision: top-1 ${fpResult.top1.toFixed(2)}%  (${fpResult.fpSizeMb.toFixed(3)} MB)`);

// 2. W2/A2, channel-wise, from the FP weights: every channel starts at 4 bits; LBA takes bits from the
//    least sensitive channels over the first 40% of the epochs until the averages reach 2.0.
const q = await Experiment.start({
  ...base,
  name: "demo",
  epochs: Number(process.env.DEMO_Q_EPOCHS ?? 20),
  optimizer: { ...base.optimizer, lr: 0.02 },
  quant: { weightBits: 2, actBits: 2, granularity: "CP", levels: "laplace" },
  init: { fromRun: fp.dir },
});
q.on("allocation", (a) => console.log(`  allocation after epoch ${a.epoch}: W${a.avgWBits.toFixed(2)} / A${a.avgABits.toFixed(2)}`));
const r = await q.result;
const report = await writeReport(q.dir);

console.log("");
console.log("| run | top-1 | avg W bits | avg A bits | size (MB) |");
console.log("|---|---|---|---|---|");
console.log(`| full precision | ${fpResult.top1.toFixed(2)}% | 32 | 32 | ${fpResult.sizeMb.toFixed(4)} |`);
console.log(`| DMBQ + LBA W2/A2 (CP) | ${r.top1.toFixed(2)}% | ${r.avgWBits.toFixed(2)} | ${r.avgABits.toFixed(2)} | ${r.sizeMb.toFixed(4)} |`);
console.log(`\nrun folder: ${q.dir}\nreport: ${report}`);
