// `dmbq export` on the TypeScript side: runs the worker's `python -m dmbq_worker.export` and returns the JSON
// summary it prints (the file's size and its breakdown; with `evaluate`, the reloaded model's accuracy).
import { spawn } from "node:child_process";
import { workerEnv, workerPython } from "../worker/pythonEnv.js";

export interface ExportOptions {
  /** Reload the file and score it on the run's test split. */
  evaluate?: boolean;
  /** Also write the dequantized model as ONNX here (compared with onnxruntime when `evaluate`). */
  onnx?: string;
  /** Where the reloaded model runs: "cpu" (default), "cuda", "cuda:N". */
  device?: string;
  /** The dataset folder, when not the one the run used. */
  dataPath?: string;
  /** The worker's Python (default: $DMBQ_PYTHON, else py_worker/.venv). */
  python?: string;
}

export interface LayerSizeJson {
  name: string;
  bit_planes: number;
  tables_and_scales: number;
  full_precision: number;
}

/** What `python -m dmbq_worker.export` prints (one JSON object). */
export interface ExportSummaryJson {
  out: string;
  fileBytes: number;
  sizeMb: number; // fileBytes / 1e6: what result.json's sizeMb should say
  fpSizeMb: number;
  fp32Bytes: number;
  headerBytes: number;
  bitPlaneBytes: number;
  tablesAndScalesBytes: number;
  fullPrecisionBytes: number;
  top1: number | null; // the run's accuracy at the end of training (percent)
  layers: number;
  maxWeightError: number; // 0: the file gives back the quantizer's weights exactly
  layerSizes: LayerSizeJson[];
  reloadedTop1?: number;
  top1Delta?: number;
  evaluatedSamples?: number;
  evaluatedOn?: string;
  onnx?: { path: string; bytes: number; operators: string[]; agreement?: number; top1?: number; samples?: number };
}

export class ExportError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "ExportError";
  }
}

/** Exports the latest checkpoint of `runDir` to `out` (a .dmbq file). Rejects with the worker's message. */
export function exportRun(runDir: string, out: string, opts: ExportOptions = {}): Promise<ExportSummaryJson> {
  const args = ["-m", "dmbq_worker.export", runDir, "--out", out];
  if (opts.evaluate) args.push("--evaluate");
  if (opts.onnx) args.push("--onnx", opts.onnx);
  if (opts.device) args.push("--device", opts.device);
  if (opts.dataPath) args.push("--data-path", opts.dataPath);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(workerPython(opts.python), args, { env: workerEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err) => reject(new ExportError(`cannot start the worker's Python: ${err.message}`, 1)));
    child.on("close", (code) => {
      if (code !== 0) {
        const message = stderr.trim().split("\n").filter(Boolean).pop() ?? `exit ${code}`;
        reject(new ExportError(message.replace(/^dmbq export: /, ""), code ?? 1));
        return;
      }
      try {
        resolvePromise(JSON.parse(stdout.trim().split("\n").pop() ?? "") as ExportSummaryJson);
      } catch {
        reject(new ExportError(`the worker printed no JSON summary: ${stdout.slice(0, 200)}`, 1));
      }
    });
  });
}
