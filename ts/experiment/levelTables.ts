// Level tables in the units the contract fixes: signed (weight) α in units of the channel's scale statistic (mean|w|,
// or max|w| in the "uniformMax" mode: weightScaleOf), unsigned (activation) α normalized so the top level is 1 (the
// learned clip scales it).
import type { LevelTable } from "../gen/dmbq.js";
import {
  bestUniformGrid, cachedLevels, histogramDistribution, lawForTable, levelsFromAlpha, solveLevels, thresholdsOf, type Distribution,
  type LevelSolution,
} from "../levels/index.js";
import type { LevelTableRecord, LevelsRecord } from "./records.js";
import type { LevelsMode } from "./config.js";

export const TABLE_BITS = [1, 2, 3, 4, 5, 6, 7, 8];

export interface HistogramInput {
  lo: number;
  hi: number;
  counts: ArrayLike<number>;
}

const f32 = (xs: number[]): Buffer => Buffer.from(Float32Array.from(xs).buffer);

function record(s: { bits: number; alpha: number[]; levels: number[]; thresholds: number[]; mse: number }, scale: number): LevelTableRecord {
  return {
    bits: s.bits,
    alpha: s.alpha.map((a) => a / scale),
    levels: s.levels.map((l) => l / scale),
    thresholds: s.thresholds.map((t) => t / scale),
    mse: s.mse / (scale * scale),
  };
}

/** The signed table of one width, in mean|w| units (max|w| for "uniformMax"). The uniform mode takes the best uniform
 *  grid of the Laplace law; "uniformMax" the min-max grid. */
export function weightTable(mode: Exclude<LevelsMode, "empirical">, bits: number): LevelTableRecord {
  if (mode === "uniformMax") return minMaxTable(bits);
  if (mode === "uniform") {
    const dist = lawForTable("laplace", true);
    const g = bestUniformGrid(dist, bits, true);
    const thresholds = g.levels.slice(1).map((l, i) => (l + g.levels[i]!) / 2);
    return record({ bits, alpha: g.alpha, levels: g.levels, thresholds, mse: g.mse }, dist.meanAbs());
  }
  const s = cachedLevels(mode, bits, true);
  return record(s, lawForTable(mode, true).meanAbs());
}

/** The min-max grid of one width in units of max|w|: 2^bits evenly spaced levels from −1 to 1, so
 *  α_i = 2^(bits−1−i) / (2^bits − 1) (descending, sum 1). No mse: max|w| is no property of a law but of a channel
 *  (of the Laplace law's samples, it grows with their number). */
export function minMaxTable(bits: number): LevelTableRecord {
  const steps = 2 ** bits - 1;
  const alpha = Array.from({ length: bits }, (_, i) => 2 ** (bits - 1 - i) / steps);
  const levels = levelsFromAlpha(alpha);
  return { bits, alpha, levels, thresholds: thresholdsOf(levels) };
}

/** The unsigned (activation) table of one width, top level 1. Post-ReLU data: the folded law of the weights' law,
 *  the Laplace one in every mode but "gaussian" (both uniform modes included: the weights' scale statistic does not
 *  reach the activations, which their learned clip scales). */
export function actTable(mode: LevelsMode, bits: number): LevelTableRecord {
  const lawName = mode === "gaussian" ? "gaussian" : "laplace";
  const s = cachedLevels(lawName, bits, false);
  return record(s, s.clip);
}

/** The law of a worker histogram: `counts` over equal bins from `lo` to `hi`. */
export function histogramInputDistribution(h: HistogramInput): Distribution {
  const n = h.counts.length;
  return histogramDistribution(Array.from({ length: n + 1 }, (_, i) => h.lo + ((h.hi - h.lo) * i) / n), h.counts);
}

/** A layer's own signed table, fitted to its histogram of w / s_c (already in mean|w| units). */
export function empiricalWeightTable(h: HistogramInput, bits: number): LevelTableRecord {
  const s: LevelSolution = solveLevels(histogramInputDistribution(h), bits, { signed: true });
  return record(s, 1);
}

export function toProtoTable(t: LevelTableRecord, layer = ""): LevelTable {
  return { bits: t.bits, alphaF32: f32(t.alpha), layer };
}

export interface TableSet {
  record: LevelsRecord;
  weight: LevelTable[];
  act: LevelTable[];
}

/** Every table a scheme may need: shared ones for all widths, plus per-layer ones in the empirical mode. */
export function buildTables(mode: LevelsMode, actMode: "uniform" | "table", histograms?: Record<string, HistogramInput>, usedBits?: Record<string, number[]>): TableSet {
  const shared = mode === "empirical" ? "laplace" : mode;
  const weightRecords = TABLE_BITS.map((b) => weightTable(shared, b));
  const actRecords = actMode === "table" ? TABLE_BITS.map((b) => actTable(mode, b)) : [];
  const weight = weightRecords.map((t) => toProtoTable(t));
  const perLayer: Record<string, LevelTableRecord[]> = {};
  if (mode === "empirical" && histograms) {
    for (const [layer, h] of Object.entries(histograms)) {
      const total = Array.from(h.counts).reduce((a, b) => a + b, 0);
      if (!(total > 0) || !(h.hi > h.lo)) continue;
      const bitsHere = (usedBits?.[layer] ?? []).filter((b) => b >= 1 && b <= 8);
      perLayer[layer] = [...new Set(bitsHere)].sort((a, b) => a - b).map((b) => empiricalWeightTable(h, b));
      weight.push(...perLayer[layer]!.map((t) => toProtoTable(t, layer)));
    }
  }
  return {
    record: { mode, weight: weightRecords, act: actRecords, ...(mode === "empirical" ? { perLayer } : {}) },
    weight,
    act: actRecords.map((t) => toProtoTable(t)),
  };
}
