// `dmbq export RUN_DIR --out model.dmbq [--evaluate] [--onnx model.onnx] [--device D] [--data-path P] [--json]`:
// writes the run's quantized model as one .dmbq file and prints its size breakdown (or, with --json, the
// worker's JSON summary as one line).
import { type ExportOptions, type ExportSummaryJson, exportRun } from "../export/runExport.js";

const USAGE = "usage: dmbq export RUN_DIR --out model.dmbq [--evaluate] [--onnx model.onnx] [--device cpu|cuda] [--data-path DIR] [--json]";

function describe(s: ExportSummaryJson): string {
  const pct = (n: number): string => `${((100 * n) / s.fileBytes).toFixed(1)}%`;
  const lines = [
    `${s.out}: ${s.fileBytes} B (${s.sizeMb.toFixed(4)} MB), FP32 model ${s.fp32Bytes} B: ${(s.fp32Bytes / s.fileBytes).toFixed(1)}x smaller`,
    `  bit-planes ${s.bitPlaneBytes} B (${pct(s.bitPlaneBytes)}), tables and scales ${s.tablesAndScalesBytes} B (${pct(s.tablesAndScalesBytes)}), ` +
      `full-precision tensors ${s.fullPrecisionBytes} B (${pct(s.fullPrecisionBytes)}), header ${s.headerBytes} B (${pct(s.headerBytes)})`,
  ];
  if (s.top1 !== null) lines.push(`  run top-1 ${s.top1.toFixed(2)}%`);
  if (s.reloadedTop1 !== undefined) lines.push(`  reloaded top-1 ${s.reloadedTop1.toFixed(2)}% on ${s.evaluatedOn} (${s.evaluatedSamples} samples)`);
  if (s.onnx) {
    const agree = s.onnx.agreement !== undefined ? `, agrees with the reference loader on ${(100 * s.onnx.agreement).toFixed(2)}% of ${s.onnx.samples}` : "";
    lines.push(`  ONNX ${s.onnx.path} (${s.onnx.bytes} B)${agree}`);
  }
  return lines.join("\n");
}

/** argv excludes the word "export". Returns the exit code: 0 written, 1 export failed, 2 bad usage. */
export async function exportCommand(argv: string[]): Promise<number> {
  let runDir: string | undefined;
  let out: string | undefined;
  let json = false;
  const opts: ExportOptions = {};
  const valueOf = (i: number, flag: string): string | undefined => {
    const v = argv[i];
    if (v === undefined || v === "" || v.startsWith("--")) {
      console.error(`dmbq export: ${flag} needs a value\n${USAGE}`);
      return undefined;
    }
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      console.log(`${USAGE}\nWrites the run's latest checkpoint as one file: per-channel bit-planes, alpha tables, scales, clips, FP tensors, JSON header.`);
      return 0;
    } else if (arg === "--evaluate") {
      opts.evaluate = true;
    } else if (arg === "--json") {
      json = true;
    } else if (arg === "--out" || arg === "-o" || arg === "--onnx" || arg === "--device" || arg === "--data-path") {
      const v = valueOf(++i, arg);
      if (v === undefined) return 2;
      if (arg === "--out" || arg === "-o") out = v;
      else if (arg === "--onnx") opts.onnx = v;
      else if (arg === "--device") opts.device = v;
      else opts.dataPath = v;
    } else if (arg.startsWith("-")) {
      console.error(`dmbq export: unknown option ${arg}\n${USAGE}`);
      return 2;
    } else if (runDir === undefined) {
      runDir = arg;
    } else {
      console.error(`dmbq export: one RUN_DIR expected, got a second one: ${arg}\n${USAGE}`);
      return 2;
    }
  }
  if (runDir === undefined) {
    console.error(`dmbq export: RUN_DIR is missing\n${USAGE}`);
    return 2;
  }
  if (out === undefined) {
    console.error(`dmbq export: --out is missing (the .dmbq file to write)\n${USAGE}`);
    return 2;
  }
  try {
    const summary = await exportRun(runDir, out, opts);
    console.log(json ? JSON.stringify(summary) : describe(summary));
    return 0;
  } catch (err) {
    console.error(`dmbq export: ${(err as Error).message}`);
    return 1;
  }
}
