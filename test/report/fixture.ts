// RENDERING FIXTURE: a synthetic run folder with realistic shapes (3 layers of 16/32/64 channels, 10 epochs, a
// weight allocation moving from 4 to 2 bits, a full-precision run beside it) for testing the report. Every number
// in it is made up by a seeded generator: none is a training result.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type {
  AllocationRecord,
  EpochRecord,
  HistogramRecord,
  HistogramsRecord,
  LevelTableRecord,
  LevelsRecord,
  RunResult,
} from "../../ts/experiment/records.js";
import { seededRandom } from "../../ts/util/seededRandom.js";
export { seededRandom };

export const FIXTURE_LAYERS = [
  { name: "layer1.conv", channels: 16, inChannels: 16 },
  { name: "layer2.conv", channels: 32, inChannels: 16 },
  { name: "layer3.conv", channels: 64, inChannels: 32 },
] as const;
export const FIXTURE_EPOCHS = 10;


function laplaceHistogram(rand: () => number, samples: number, bins: number, lo: number, hi: number, unsigned: boolean): HistogramRecord {
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < samples; i++) {
    const u = rand() - 0.5;
    let v = -Math.sign(u) * Math.log(1 - 2 * Math.abs(u)); // Laplace(0, 1): mean |v| = 1
    if (unsigned) v = Math.abs(v) / 3;
    const j = Math.floor(((v - lo) / (hi - lo)) * bins);
    if (j >= 0 && j < bins) counts[j]!++;
  }
  return { lo, hi, counts };
}

/** Symmetric levels for signed weights, or [0, 1] spread for unsigned activations; thresholds at midpoints. */
function levelTable(bits: number, signed: boolean): LevelTableRecord {
  const n = 2 ** bits;
  const span = signed ? 1.2 * Math.log2(n) : 1;
  const levels = Array.from({ length: n }, (_, i) => (signed ? -span + (2 * span * i) / (n - 1) : i / (n - 1)));
  const thresholds = levels.slice(1).map((l, i) => (l + levels[i]!) / 2);
  return { bits, alpha: [span], levels, thresholds, mse: 0.4 / n };
}

/** Weight bits of a layer at an allocation epoch: all 4 at first, then channels step down to 3 and 2 bits. */
function weightBitsAt(epoch: number, channels: number, layerIndex: number): number[] {
  if (layerIndex === 0) return new Array<number>(channels).fill(8); // first layer kept at 8 bits
  return Array.from({ length: channels }, (_, c) => {
    const progress = epoch / 8 - c / channels / 2; // later channels move later
    if (progress >= 0.75) return c % 17 === 5 ? 0 : 2; // a few pruned channels at the end
    if (progress >= 0.35) return 3;
    return 4;
  });
}

export const ALLOCATION_EPOCHS = [0, 2, 4, 6, 8];

function allocation(epoch: number): AllocationRecord {
  const layers = FIXTURE_LAYERS.map((l, i) => ({
    name: l.name,
    weightBits: weightBitsAt(epoch, l.channels, i),
    actBits: Array.from({ length: l.inChannels }, (_, c) => (i === 0 ? 32 : epoch >= 6 && c % 4 === 0 ? 3 : 4)),
  }));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    epoch,
    avgWBits: mean(layers.slice(1).flatMap((l) => l.weightBits)),
    avgABits: mean(layers.slice(1).flatMap((l) => l.actBits)),
    frozen: epoch === 8,
    layers,
  };
}

function epochRecord(epoch: number, rand: () => number, phase: "fp" | "quant", ceiling: number): EpochRecord {
  const progress = 1 - Math.exp(-epoch / 3);
  const alloc = allocation(ALLOCATION_EPOCHS.filter((e) => e <= epoch).pop() ?? 0);
  return {
    epoch,
    phase,
    trainLoss: 2.2 * (1 - progress) + 0.25 + 0.02 * rand(),
    trainAccuracy: 0.3 + (ceiling - 0.28) * progress,
    testLoss: 2.2 * (1 - progress) + 0.35 + 0.03 * rand(),
    testAccuracy: 0.28 + (ceiling - 0.31) * progress + 0.005 * rand(),
    lr: 0.1 * Math.cos((Math.PI * epoch) / (2 * FIXTURE_EPOCHS)),
    seconds: 12 + rand(),
    samplesPerS: 4000 + 100 * rand(),
    avgWBits: phase === "fp" ? 32 : alloc.avgWBits,
    avgABits: phase === "fp" ? 32 : alloc.avgABits,
    time: new Date(Date.UTC(2024, 0, 1, 12, 0, epoch * 13)).toISOString(),
  };
}

const jsonl = (records: readonly unknown[]) => records.map((r) => JSON.stringify(r)).join("\n") + "\n";

export interface FixtureOptions {
  /** Write result.json (default true); false leaves an unfinished run. */
  finished?: boolean;
  /** Epochs written to metrics.jsonl (default 10). */
  epochs?: number;
  /** Write a full-precision run beside it and point at it (default true). */
  withFp?: boolean;
  /** How the FP run is referenced: result.fpRunDir (absolute), or config init.fromRun relative to the runs folder. */
  fpReference?: "result" | "config";
  /** result.json records a BatchNorm recalibration: top1 becomes this, the last epoch's score its top1Before. */
  recalibratedTop1?: number;
}

export interface FixtureRun {
  runDir: string;
  fpDir: string | undefined;
}

/** Writes the rendering fixture under `root` (runs/quant-fixture and runs/fp-fixture) and returns their paths. */
export async function writeFixtureRun(root: string, options: FixtureOptions = {}): Promise<FixtureRun> {
  const finished = options.finished ?? true;
  const epochs = options.epochs ?? FIXTURE_EPOCHS;
  const withFp = options.withFp ?? true;
  const fpReference = options.fpReference ?? "result";
  const rand = seededRandom(7);
  const runDir = join(root, "quant-fixture");
  const fpDir = join(root, "fp-fixture");
  await mkdir(runDir, { recursive: true });

  if (withFp) {
    await mkdir(fpDir, { recursive: true });
    const fpMetrics = Array.from({ length: FIXTURE_EPOCHS }, (_, i) => epochRecord(i + 1, rand, "fp", 0.93));
    await writeFile(join(fpDir, "config.json"), JSON.stringify({ name: "fp-fixture", model: "resnet-fixture", dataset: "fixture-images" }));
    await writeFile(join(fpDir, "metrics.jsonl"), jsonl(fpMetrics));
    const fpResult: RunResult = {
      name: "fp-fixture", model: "resnet-fixture", dataset: "fixture-images", top1: 92.4, avgWBits: 32, avgABits: 32,
      sizeMb: 1.1, fpSizeMb: 1.1, epochs: FIXTURE_EPOCHS, epochTimeS: 11.5, device: "fixture-device",
      startedAt: "2024-01-01T10:00:00.000Z", finishedAt: "2024-01-01T10:05:00.000Z",
    };
    await writeFile(join(fpDir, "result.json"), JSON.stringify(fpResult));
  }

  const config: Record<string, unknown> = {
    name: "quant-fixture",
    model: { name: "resnet-fixture", depth: 3 },
    dataset: "fixture-images",
    device: "fixture-device",
    budget: { avgWBits: 2, avgABits: 4 },
  };
  if (withFp && fpReference === "config") config.init = { fromRun: "fp-fixture" };
  await writeFile(join(runDir, "config.json"), JSON.stringify(config, null, 2));

  const metrics = Array.from({ length: epochs }, (_, i) => epochRecord(i + 1, rand, "quant", 0.9));
  await writeFile(join(runDir, "metrics.jsonl"), jsonl(metrics));
  await writeFile(join(runDir, "allocation.jsonl"), jsonl(ALLOCATION_EPOCHS.filter((e) => e <= epochs).map(allocation)));

  const levels: LevelsRecord = {
    mode: "laplace",
    weight: [2, 3, 4, 8].map((b) => levelTable(b, true)),
    act: [3, 4].map((b) => levelTable(b, false)),
  };
  await writeFile(join(runDir, "levels.json"), JSON.stringify(levels));
  const histograms: HistogramsRecord = {
    epoch: epochs,
    weight: Object.fromEntries(FIXTURE_LAYERS.map((l) => [l.name, laplaceHistogram(rand, 400 * l.channels, 80, -6, 6, false)])),
    act: Object.fromEntries(FIXTURE_LAYERS.map((l) => [l.name, laplaceHistogram(rand, 300 * l.inChannels, 40, 0, 1, true)])),
  };
  await writeFile(join(runDir, "histograms.json"), JSON.stringify(histograms));

  if (finished) {
    const last = metrics[metrics.length - 1]!;
    const result: RunResult = {
      name: "quant-fixture", model: "resnet-fixture", dataset: "fixture-images", top1: Number((last.testAccuracy * 100).toFixed(2)),
      avgWBits: last.avgWBits, avgABits: last.avgABits, sizeMb: 0.09, fpSizeMb: 1.1, epochs, epochTimeS: 12.4,
      device: "fixture-device", startedAt: "2024-01-01T12:00:00.000Z", finishedAt: last.time,
    };
    if (withFp) {
      result.fpTop1 = 92.4;
      if (fpReference === "result") result.fpRunDir = fpDir;
    }
    if (options.recalibratedTop1 !== undefined) {
      result.batchNormRecalibration = { top1Before: result.top1, top1: options.recalibratedTop1, samples: 49920, modules: 19 };
      result.top1 = options.recalibratedTop1;
    }
    await writeFile(join(runDir, "result.json"), JSON.stringify(result));
  }
  return { runDir, fpDir: withFp ? fpDir : undefined };
}

/**
 * RENDERING FIXTURE at the size the issue names: 20 layers × 512 channels over `epochs` epochs, each channel
 * stepping 4 → 3 → 2 bits at its own epoch (a few pruned), activations 4 → 3 on every fifth channel. The worst
 * realistic case for the heat map's run-length encoding: every row has its own runs.
 */
export function bigAllocationHistory(epochs = 30): AllocationRecord[] {
  const layer = (l: number, e: number) => ({
    name: `stage${l >> 2}.block${l & 3}.conv`,
    weightBits: Array.from({ length: 512 }, (_, c) => {
      const t = e - ((c * 7 + l * 3) % 20);
      return t < 0 ? 4 : t < 6 ? 3 : c % 31 === 0 ? 0 : 2;
    }),
    actBits: Array.from({ length: 512 }, (_, c) => (e > 10 && c % 5 === 0 ? 3 : 4)),
  });
  return Array.from({ length: epochs + 1 }, (_, e) => ({
    epoch: e, avgWBits: 3, avgABits: 4, frozen: false, layers: Array.from({ length: 20 }, (_, l) => layer(l, e)),
  }));
}
