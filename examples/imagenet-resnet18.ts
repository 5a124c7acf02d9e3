// ImageNet recipe (issue 7): ResNet-18/34 on an ImageFolder tree (<data>/train, <data>/val), the paper's 90-epoch
// schedule (SGD, lr 0.1 x global batch / 256, momentum 0.9, weight decay 1e-4, x0.1 at epochs 30/60/80), run as
// a torch.distributed job over --gpus ranks (the global batch is split among them). First the FP run, then the
// quantized run from its weights. No ImageNet numbers are claimed here without the data.
//
//   npx tsx examples/imagenet-resnet18.ts --data /data/imagenet --gpus 8 [--model resnet34] [--wbits 2 --abits 2]
//        [--epochs 90] [--batch 256] [--image-size 224] [--train-limit N] [--runs runs/imagenet]
import { parseArgs } from "node:util";
import { Experiment, type ExperimentConfig } from "../ts/experiment/index.js";


/** The experiment configs of the recipe (FP first, then the quantized run started from it). */
export function imagenetRecipe(opts: {
  data: string; runsDir: string; model: "resnet18" | "resnet34"; gpus: number; epochs: number; batch: number;
  imageSize: number; wbits: number; abits: number; trainLimit: number; testLimit: number; loaderWorkers: number;
}): { fp: ExperimentConfig; quantized: (fpRunDir: string) => ExperimentConfig } {
  const e = opts.epochs;
  const base: ExperimentConfig = {
    name: `${opts.model}-fp`, runsDir: opts.runsDir, model: opts.model, epochs: e, seed: 0, progress: "lines",
    dataset: { name: "imagefolder", path: opts.data, batchSize: opts.batch, augment: true, imageSize: opts.imageSize,
      trainLimit: opts.trainLimit, testLimit: opts.testLimit },
    optimizer: { name: "sgd", lr: (0.1 * opts.batch) / 256, momentum: 0.9, weightDecay: 1e-4 },
    schedule: { kind: "step", milestones: [Math.round(e / 3), Math.round((2 * e) / 3), Math.round((8 * e) / 9)], gamma: 0.1 },
    workers: { gpus: opts.gpus },
  };
  return {
    fp: base,
    quantized: (fpRunDir) => ({
      ...base, name: `${opts.model}-w${opts.wbits}a${opts.abits}`, init: { fromRun: fpRunDir },
      quant: { weightBits: opts.wbits, actBits: opts.abits, granularity: "CP" },
    }),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: "string", default: process.env.IMAGENET_DIR ?? "data/imagenet" },
      runs: { type: "string", default: "runs/imagenet" },
      model: { type: "string", default: "resnet18" },
      gpus: { type: "string", default: "1" },
      epochs: { type: "string", default: "90" },
      batch: { type: "string", default: "256" },
      "image-size": { type: "string", default: "224" },
      wbits: { type: "string", default: "2" },
      abits: { type: "string", default: "2" },
      "train-limit": { type: "string", default: "0" },
      "test-limit": { type: "string", default: "0" },
      workers: { type: "string", default: "8" },
    },
  });
  const model = values.model === "resnet34" ? "resnet34" : "resnet18";
  const recipe = imagenetRecipe({
    data: values.data!, runsDir: values.runs!, model, gpus: Number(values.gpus), epochs: Number(values.epochs),
    batch: Number(values.batch), imageSize: Number(values["image-size"]), wbits: Number(values.wbits),
    abits: Number(values.abits), trainLimit: Number(values["train-limit"]), testLimit: Number(values["test-limit"]),
    loaderWorkers: Number(values.workers),
  });
  const fp = await Experiment.start(recipe.fp);
  const fpResult = await fp.result;
  console.log(`FP ${model}: top-1 ${fpResult.top1.toFixed(2)}%`);
  const q = await Experiment.start(recipe.quantized(fp.dir));
  const qResult = await q.result;
  console.log(`${recipe.quantized(fp.dir).name}: top-1 ${qResult.top1.toFixed(2)}%`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  await main();
}
