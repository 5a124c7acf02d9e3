// The run folder on disk (layout in records.ts). Every whole-file write is atomic (temporary file + rename),
// so a crash never leaves a half-written config, result or checkpoint index behind.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BatchNormRecalibration, AllocationRecord, EpochRecord, HistogramsRecord, LevelsRecord, RunResult } from "./records.js";

export interface CheckpointIndex {
  epoch: number; // epochs completed when it was written
  file: string; // relative to the run folder
  policy: string | null; // serialized policy state
  levels: LevelsRecord | null;
  fpTop1?: number;
  /** Written with the last epoch's checkpoint when the run recalibrated its BatchNorm statistics (they are in it). */
  batchNormRecalibration?: BatchNormRecalibration;
  savedAt: string;
}

export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  renameSync(tmp, path);
}

export function readJson<T>(path: string, what: string): T {
  if (!existsSync(path)) throw new Error(`${what}: ${path} does not exist`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch (err) {
    throw new Error(`${what}: ${path} is not valid JSON (${(err as Error).message})`);
  }
}

function readJsonl<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as T);
}

export class RunFolder {
  constructor(readonly dir: string) {}

  static create(dir: string): RunFolder {
    mkdirSync(join(dir, "checkpoints"), { recursive: true });
    return new RunFolder(dir);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  writeConfig(config: unknown): void {
    writeJsonAtomic(this.path("config.json"), config);
  }

  appendEpoch(r: EpochRecord): void {
    appendFileSync(this.path("metrics.jsonl"), JSON.stringify(r) + "\n");
  }

  appendAllocation(r: AllocationRecord): void {
    appendFileSync(this.path("allocation.jsonl"), JSON.stringify(r) + "\n");
  }

  epochs(): EpochRecord[] {
    return readJsonl<EpochRecord>(this.path("metrics.jsonl"));
  }

  allocations(): AllocationRecord[] {
    return readJsonl<AllocationRecord>(this.path("allocation.jsonl"));
  }

  /** Drops what was recorded after the checkpoint a resume starts from, so no epoch is counted twice. */
  truncateAfter(epoch: number): void {
    const keepEpochs = this.epochs().filter((r) => r.epoch <= epoch);
    writeFileSync(this.path("metrics.jsonl"), keepEpochs.map((r) => JSON.stringify(r) + "\n").join(""));
    const keepAlloc = this.allocations().filter((r) => r.epoch <= epoch);
    writeFileSync(this.path("allocation.jsonl"), keepAlloc.map((r) => JSON.stringify(r) + "\n").join(""));
  }

  writeLevels(r: LevelsRecord): void {
    writeJsonAtomic(this.path("levels.json"), r);
  }

  writeHistograms(r: HistogramsRecord): void {
    writeJsonAtomic(this.path("histograms.json"), r);
  }

  writeResult(r: RunResult): void {
    writeJsonAtomic(this.path("result.json"), r);
  }

  writeError(e: { message: string; epoch?: number; step?: number; checkpoint?: string | null }): void {
    writeJsonAtomic(this.path("error.json"), { ...e, at: new Date().toISOString() });
  }

  clearError(): void {
    rmSync(this.path("error.json"), { force: true });
  }

  checkpointFile(epoch: number): string {
    return join("checkpoints", `epoch-${String(epoch).padStart(4, "0")}.pt`);
  }

  latestCheckpoint(): CheckpointIndex | null {
    const p = this.path("checkpoints", "latest.json");
    return existsSync(p) ? readJson<CheckpointIndex>(p, "checkpoint index") : null;
  }

  /** Records a checkpoint as the latest (after the worker wrote it), then prunes all but the newest `keep`. */
  commitCheckpoint(index: CheckpointIndex, keep: number, history: string[]): string[] {
    writeJsonAtomic(this.path("checkpoints", "latest.json"), index);
    const files = [...history.filter((f) => f !== index.file), index.file];
    while (files.length > keep) rmSync(this.path(files.shift()!), { force: true });
    return files;
  }
}
