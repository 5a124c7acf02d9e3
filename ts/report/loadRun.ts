// Reads a run folder (see ts/experiment/records.ts) into memory, validating every record. Only config.json is
// required: a run that has just started or crashed still gets a report of whatever it has written so far.

import { existsSync, readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { AllocationRecord, EpochRecord, HistogramsRecord, LevelsRecord, RunResult } from "../experiment/records.js";
import {
  ALLOCATION_RECORD,
  EPOCH_RECORD,
  HISTOGRAMS_RECORD,
  LEVELS_RECORD,
  RUN_RESULT,
  RunFileError,
  validateRecord,
  type Spec,
} from "./recordSchema.js";

/** The full-precision run this one started from: only what the comparison needs. */
export interface LoadedFpRun {
  dir: string;
  metrics: EpochRecord[];
  result?: RunResult;
}

export interface LoadedRun {
  dir: string;
  config: Record<string, unknown>;
  metrics: EpochRecord[];
  allocation: AllocationRecord[];
  levels?: LevelsRecord;
  histograms?: HistogramsRecord;
  /** Absent while the run is unfinished. */
  result?: RunResult;
  fp?: LoadedFpRun;
  /** Things the reader should know (a missing optional file, a truncated last line); shown in the report. */
  warnings: string[];
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new RunFileError(path, undefined, `cannot be read: ${(err as Error).message}`);
  }
}

function parseJson(text: string, file: string, line?: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RunFileError(file, line, `not valid JSON (${(err as Error).message})`);
  }
}

async function readJsonFile<T>(path: string, spec: Spec): Promise<T | undefined> {
  const text = await readOptional(path);
  if (text === undefined) return undefined;
  return validateRecord<T>(parseJson(text, path), spec, path);
}

/**
 * Reads a JSON-lines file. A last line that has no newline and does not parse is the writer caught mid-line
 * (an unfinished run); it is dropped with a warning instead of failing the whole report.
 */
async function readJsonLines<T>(path: string, spec: Spec, warnings: string[], tolerateTornTail: boolean): Promise<T[] | undefined> {
  const text = await readOptional(path);
  if (text === undefined) return undefined;
  const lines = text.split("\n");
  const records: T[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === "") continue;
    const isTornTail = i === lines.length - 1 && !text.endsWith("\n");
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      if (isTornTail && tolerateTornTail) {
        warnings.push(`${path} line ${i + 1} is incomplete (the run was writing it) and was ignored`);
        continue;
      }
      throw new RunFileError(path, i + 1, `not valid JSON (${(err as Error).message})`);
    }
    records.push(validateRecord<T>(parsed, spec, path, i + 1));
  }
  return records;
}

function pathField(obj: Record<string, unknown>, dotted: string): unknown {
  let v: unknown = obj;
  for (const key of dotted.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** Where the full-precision run's path points, in order of trust: result.fpRunDir, config fpRunDir, config init.fromRun. */
export function fpRunReference(config: Record<string, unknown>, result?: RunResult): string | undefined {
  for (const candidate of [result?.fpRunDir, pathField(config, "fpRunDir"), pathField(config, "init.fromRun")]) {
    if (typeof candidate === "string" && candidate.trim() !== "") return candidate;
  }
  return undefined;
}

/**
 * Where the FP run is. A relative reference may have been written relative to the working directory, the run, or the
 * runs folder. Run folders also travel together (copied back from a GPU machine): then the recorded absolute path is
 * gone, or names another machine's folder that happens to exist here, and the FP run is the sibling of the same name.
 * `expectedTop1` (the run's recorded fpTop1) picks, among the folders found, the one whose result says that top-1.
 */
export function resolveFpRunDir(reference: string, runDir: string, expectedTop1?: number): string | undefined {
  const sibling = resolve(dirname(runDir), basename(reference));
  const candidates = isAbsolute(reference)
    ? [reference, sibling]
    : [resolve(reference), resolve(runDir, reference), resolve(dirname(runDir), reference), sibling];
  const found = candidates.filter((c) => existsSync(join(c, "metrics.jsonl")) || existsSync(join(c, "result.json")));
  if (expectedTop1 !== undefined) {
    const matching = found.find((c) => recordedTop1(c) === expectedTop1);
    if (matching !== undefined) return matching;
  }
  return found[0];
}

function recordedTop1(dir: string): number | undefined {
  try {
    const top1: unknown = (JSON.parse(readFileSync(join(dir, "result.json"), "utf8")) as Record<string, unknown>).top1;
    return typeof top1 === "number" ? top1 : undefined;
  } catch {
    return undefined;
  }
}

async function loadFpRun(reference: string, runDir: string, warnings: string[], expectedTop1?: number): Promise<LoadedFpRun | undefined> {
  const dir = resolveFpRunDir(reference, runDir, expectedTop1);
  if (dir === undefined) {
    warnings.push(`the full-precision run "${reference}" was not found (no metrics.jsonl or result.json there); no comparison shown`);
    return undefined;
  }
  if (resolve(dir) === resolve(runDir)) {
    warnings.push(`the full-precision run "${reference}" is this run itself; no comparison shown`);
    return undefined;
  }
  try {
    const metrics = (await readJsonLines<EpochRecord>(join(dir, "metrics.jsonl"), EPOCH_RECORD, warnings, true)) ?? [];
    const result = await readJsonFile<RunResult>(join(dir, "result.json"), RUN_RESULT);
    return result ? { dir, metrics, result } : { dir, metrics };
  } catch (err) {
    // A broken reference run must not hide this run's report.
    warnings.push(`the full-precision run could not be read: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * Sorted by epoch, one record per epoch: a resumed run appends the epochs it redid, and the later record (the one
 * the run continued from) wins.
 */
function lastPerEpoch<T extends { epoch: number }>(records: readonly T[], path: string, warnings: string[]): T[] {
  const byEpoch = new Map<number, T>();
  for (const r of records) byEpoch.set(r.epoch, r);
  const repeated = records.length - byEpoch.size;
  if (repeated > 0) warnings.push(`${path} repeats ${repeated} epoch record${repeated === 1 ? "" : "s"} (a resumed run?); the last of each is shown`);
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

export async function loadRun(dir: string): Promise<LoadedRun> {
  const runDir = resolve(dir);
  const info = await stat(runDir).catch(() => undefined);
  if (!info) throw new RunFileError(dir, undefined, "no such run folder");
  if (!info.isDirectory()) throw new RunFileError(dir, undefined, "not a folder (expected a run folder holding config.json, metrics.jsonl, …)");

  const configPath = join(runDir, "config.json");
  const configText = await readOptional(configPath);
  if (configText === undefined) throw new RunFileError(configPath, undefined, "not found; is this a run folder? (config.json is written when a run starts)");
  const config = parseJson(configText, configPath);
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new RunFileError(configPath, undefined, "must hold a JSON object (the resolved experiment config)");
  }

  const warnings: string[] = [];
  const result = await readJsonFile<RunResult>(join(runDir, "result.json"), RUN_RESULT);
  const unfinished = result === undefined;
  const metricsPath = join(runDir, "metrics.jsonl");
  const metrics = await readJsonLines<EpochRecord>(metricsPath, EPOCH_RECORD, warnings, unfinished);
  if (metrics === undefined) warnings.push(`${metricsPath} is missing: no epoch has finished yet`);
  const allocationPath = join(runDir, "allocation.jsonl");
  const allocation = await readJsonLines<AllocationRecord>(allocationPath, ALLOCATION_RECORD, warnings, unfinished);
  if (allocation === undefined) warnings.push(`${allocationPath} is missing: no bit-width allocation to show`);
  const levels = await readJsonFile<LevelsRecord>(join(runDir, "levels.json"), LEVELS_RECORD);
  if (levels === undefined) warnings.push(`${join(runDir, "levels.json")} is missing: no level tables to show`);
  const histograms = await readJsonFile<HistogramsRecord>(join(runDir, "histograms.json"), HISTOGRAMS_RECORD);
  if (histograms === undefined) warnings.push(`${join(runDir, "histograms.json")} is missing: no weight histograms to show`);

  const run: LoadedRun = {
    dir: runDir,
    config: config as Record<string, unknown>,
    metrics: lastPerEpoch(metrics ?? [], metricsPath, warnings),
    allocation: lastPerEpoch(allocation ?? [], allocationPath, warnings),
    warnings,
  };
  if (levels) run.levels = levels;
  if (histograms) run.histograms = histograms;
  if (result) run.result = result;
  const reference = fpRunReference(run.config, result);
  if (reference !== undefined) {
    const fp = await loadFpRun(reference, runDir, warnings, result?.fpTop1);
    if (fp) run.fp = fp;
  }
  return run;
}
