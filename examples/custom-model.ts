// npx tsx examples/custom-model.ts — quantize a model of your own: any torch.nn.Module factory works; the
// worker replaces its Conv2d/Linear layers with DMBQ layers and the policy allocates their bits.
import { Experiment } from "../ts/experiment/index.js";

const model = { factory: "examples.custom_model:build", name: "my-digits-net" };
const common = { model, dataset: { name: "digits" as const }, optimizer: { lr: 0.05 }, seed: 1 };

const fp = await Experiment.start({ ...common, name: "custom-fp", epochs: 8 });
const fpr = await fp.result;
const q = await Experiment.start({
  ...common, name: "custom-w2a4", epochs: 8,
  quant: { weightBits: 2, actBits: 4, granularity: "LP" },
  init: { fromRun: fp.dir },
});
const r = await q.result;
console.log(`custom model: FP ${fpr.top1.toFixed(2)}%  →  W${r.avgWBits.toFixed(2)}/A${r.avgABits.toFixed(2)} ${r.top1.toFixed(2)}%  (${r.sizeMb.toFixed(4)} MB vs ${r.fpSizeMb.toFixed(4)} MB)`);
