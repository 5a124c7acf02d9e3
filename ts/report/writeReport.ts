// Loads a run folder and writes its report.html; the one function the CLI needs.

import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { buildReport, type BuildReportOptions } from "./buildReport.js";
import { loadRun } from "./loadRun.js";

/** Writes the report of `runDir` to `out` (default `<runDir>/report.html`) and returns the path written. */
export async function writeReport(runDir: string, out?: string, options: BuildReportOptions = {}): Promise<string> {
  const run = await loadRun(runDir);
  const html = buildReport(run, options);
  const path = resolve(out ?? join(runDir, "report.html"));
  try {
    await writeFile(path, html, "utf8");
  } catch (err) {
    throw new Error(`cannot write the report to ${path}: ${(err as Error).message}`);
  }
  return path;
}
