// The headline numbers of a run, taken from result.json when the run finished and otherwise derived from what
// the run has written so far (last epoch's accuracy, median epoch time, …).

import { basename } from "node:path";
import type { EpochRecord } from "../experiment/records.js";
import type { LoadedRun } from "./loadRun.js";

export interface RunSummary {
  name: string;
  model?: string;
  dataset?: string;
  finished: boolean;
  top1?: number; // percent
  /** The last epoch's score when top1 comes after the BatchNorm statistics were recalibrated (recalibrateBatchNorm). */
  top1AsTrained?: number; // percent
  fpTop1?: number; // percent
  deltaTop1?: number; // top1 - fpTop1, percentage points
  avgWBits?: number;
  avgABits?: number;
  sizeMb?: number;
  fpSizeMb?: number;
  compression?: number; // fpSizeMb / sizeMb
  sizeBreakdown?: { bitPlaneBytes: number; tablesAndScalesBytes: number; fullPrecisionBytes: number; headerBytes: number };
  epochs: number;
  epochTimeS?: number; // median
  device?: string;
  startedAt?: string;
  finishedAt?: string;
  lastUpdate?: string; // when the last recorded epoch ended
  fpRunDir?: string;
}

export function median(values: readonly number[]): number | undefined {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return undefined;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
}

/** A config value that names something: a string, or an object with a name-like field ({ name: "resnet20" }). */
function nameLike(config: Record<string, unknown>, key: string): string | undefined {
  const v = config[key];
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null) {
    for (const field of ["name", "arch", "id", "kind", "type"]) {
      const inner = (v as Record<string, unknown>)[field];
      if (typeof inner === "string") return inner;
    }
  }
  return undefined;
}

function finiteOrUndefined(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}

function lastAccuracyPercent(metrics: readonly EpochRecord[], phase?: "fp" | "quant"): number | undefined {
  const relevant = phase ? metrics.filter((m) => m.phase === phase) : metrics;
  const last = relevant[relevant.length - 1];
  return last ? finiteOrUndefined(last.testAccuracy * 100) : undefined;
}

export function summarizeRun(run: LoadedRun): RunSummary {
  const { result, metrics, config, fp } = run;
  const lastMetric = metrics[metrics.length - 1];
  const lastAllocation = run.allocation[run.allocation.length - 1];
  const stringConfig = (key: string) => (typeof config[key] === "string" ? (config[key] as string) : undefined);

  const top1 = finiteOrUndefined(result?.top1) ?? lastAccuracyPercent(metrics, "quant") ?? lastAccuracyPercent(metrics);
  const fpTop1 =
    finiteOrUndefined(result?.fpTop1) ??
    finiteOrUndefined(fp?.result?.top1) ??
    (fp ? lastAccuracyPercent(fp.metrics) : undefined) ??
    // A run that trained its own full-precision phase first compares against the end of that phase.
    (metrics.some((m) => m.phase === "quant") ? lastAccuracyPercent(metrics, "fp") : undefined);
  const sizeMb = finiteOrUndefined(result?.sizeMb);
  const fpSizeMb = finiteOrUndefined(result?.fpSizeMb) ?? finiteOrUndefined(fp?.result?.fpSizeMb);

  const summary: RunSummary = {
    name: result?.name ?? stringConfig("name") ?? basename(run.dir),
    finished: result !== undefined,
    epochs: result?.epochs ?? metrics.reduce((n, m) => Math.max(n, m.epoch), 0),
  };
  const set = <K extends keyof RunSummary>(key: K, value: RunSummary[K] | undefined) => {
    if (value !== undefined) summary[key] = value;
  };
  set("model", result?.model ?? nameLike(config, "model"));
  set("dataset", result?.dataset ?? nameLike(config, "dataset"));
  set("top1", top1);
  const recalibration = result?.batchNormRecalibration;
  if (recalibration && typeof recalibration.top1Before === "number") set("top1AsTrained", finiteOrUndefined(recalibration.top1Before));
  set("fpTop1", fpTop1);
  set("deltaTop1", top1 !== undefined && fpTop1 !== undefined ? top1 - fpTop1 : undefined);
  set("avgWBits", finiteOrUndefined(result?.avgWBits) ?? finiteOrUndefined(lastMetric?.avgWBits) ?? finiteOrUndefined(lastAllocation?.avgWBits));
  set("avgABits", finiteOrUndefined(result?.avgABits) ?? finiteOrUndefined(lastMetric?.avgABits) ?? finiteOrUndefined(lastAllocation?.avgABits));
  set("sizeMb", sizeMb);
  set("fpSizeMb", fpSizeMb);
  if (result?.sizeBreakdown) set("sizeBreakdown", result.sizeBreakdown);
  set("compression", sizeMb !== undefined && fpSizeMb !== undefined && sizeMb > 0 ? fpSizeMb / sizeMb : undefined);
  set("epochTimeS", finiteOrUndefined(result?.epochTimeS) ?? median(metrics.map((m) => m.seconds)));
  set("device", result?.device ?? stringConfig("device"));
  set("startedAt", result?.startedAt ?? stringConfig("startedAt"));
  set("finishedAt", result?.finishedAt);
  set("lastUpdate", lastMetric?.time);
  set("fpRunDir", fp?.dir);
  return summary;
}
