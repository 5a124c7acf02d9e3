// What a run folder (runs/<name>/) holds, file by file. The experiment layer writes these; the report,
// `dmbq resume` and external tools read them. Plain JSON, so any language can read a run.
//
//   config.json        the resolved ExperimentConfig
//   metrics.jsonl      one EpochRecord per line
//   allocation.jsonl   one AllocationRecord per line (after each epoch whose scheme changed, and the first)
//   levels.json        LevelsRecord: the level tables in use at the end
//   histograms.json    HistogramsRecord: per-layer weight histograms (w / s_c) of the last epoch
//   checkpoints/       the worker's checkpoint files (policy state stored inside as `extra`)
//   result.json        RunResult, written when the run completes
//   model.dmbq         the exported model (`dmbq export`), written when the run completes
//   report.html        written by `dmbq report RUN_DIR`

export interface EpochRecord {
  epoch: number; // 1-based, epochs completed
  phase: "fp" | "quant";
  trainLoss: number;
  trainAccuracy: number; // 0..1
  testLoss: number;
  testAccuracy: number; // 0..1
  lr: number;
  seconds: number; // wall time of the epoch's training steps
  samplesPerS: number;
  /** How the worker ran the steps ("cuda graph", "eager", "eager (capture failed: ...)"); absent in older runs. */
  stepMode?: string;
  avgWBits: number; // parameter-weighted, budget layers only (32 for full precision)
  avgABits: number; // feature-map-weighted, budget layers only
  time: string; // ISO 8601 when the epoch ended
}

export interface LayerAllocation {
  name: string;
  weightBits: number[]; // per output channel: 0..8, 32 = full precision
  actBits: number[]; // per input channel: 1..8, 32 = full precision
}

export interface AllocationRecord {
  epoch: number; // the scheme in force from this epoch on (0: before training)
  avgWBits: number;
  avgABits: number;
  frozen: boolean; // the policy has met its budget and stopped moving bits
  layers: LayerAllocation[];
}

export interface LevelTableRecord {
  bits: number;
  alpha: number[];
  levels: number[]; // ascending
  thresholds: number[];
  /** E[(X − q(X))²] under the law the table was made for, in the table's units; absent where no law fixes it (the
   *  min-max grid of "uniformMax": its unit, max|w|, depends on the channel's size, not on a law). */
  mse?: number;
}

export interface LevelsRecord {
  mode: string; // "laplace" | "gaussian" | "empirical" | "uniform" | "uniformMax"
  weight: LevelTableRecord[]; // signed tables, in units of the channel's mean|w| (max|w| in "uniformMax" mode)
  act: LevelTableRecord[]; // unsigned tables, in units of the clip
  perLayer?: Record<string, LevelTableRecord[]>; // empirical mode: each layer's own weight tables
}

export interface HistogramRecord {
  lo: number;
  hi: number;
  counts: number[];
}

export interface HistogramsRecord {
  epoch: number;
  weight: Record<string, HistogramRecord>; // of w / s_c over the layer
  act?: Record<string, HistogramRecord>; // of x / clip
}

export interface RunResult {
  name: string;
  model: string;
  dataset: string;
  top1: number; // percent, on the test split, at the end
  fpTop1?: number; // percent, of the full-precision run this one started from
  avgWBits: number;
  avgABits: number;
  sizeMb: number; // deployed size: every stored tensor at its stored bit-width, tables and scales included
  fpSizeMb: number; // the same model at float32
  epochs: number;
  epochTimeS: number; // median seconds per training epoch
  device: string;
  startedAt: string;
  finishedAt: string;
  fpRunDir?: string; // the full-precision run this one is compared with: the root of its init chain
  modelFile?: string; // the exported model (model.dmbq in the run folder); sizeMb is its byte size
  sizeBreakdown?: { bitPlaneBytes: number; tablesAndScalesBytes: number; fullPrecisionBytes: number; headerBytes: number };
  exportError?: string; // why the export failed, when it did (sizeMb is then the counted estimate)
  /** Present when the config asked for it: top1 is then the score after the recalibration. */
  batchNormRecalibration?: BatchNormRecalibration;
}

/** What recalibrating the BatchNorm statistics after the last epoch did (ExperimentConfig.recalibrateBatchNorm). */
export interface BatchNormRecalibration {
  top1Before: number; // percent: the last epoch's test score, with training's running statistics
  top1: number; // percent: the test score after
  samples: number; // training images the statistics were computed over
  modules: number; // BatchNorm layers recalibrated
}
