/**
 * Exact expected squared error of a nearest-level quantizer: thresholds at midpoints, and per cell
 * E[(X − l)²; X in cell] = m2 − 2 l m1 + l² m0 from the law's cumulative partial moments. No sampling.
 */
import type { Distribution } from "./distribution.js";

/** Per-cell moments of a sorted level set (cells (t_{j−1}, t_j], t_{−1} = −∞, t_{N−1} = +∞). */
export interface CellMoments {
  m0: Float64Array;
  m1: Float64Array;
  m2: Float64Array;
}

/** Fills per-cell moments for ascending `levels`; `scratch` needs 6 entries. Returns nothing, writes `cells`. */
export function fillCellMoments(dist: Distribution, levels: ArrayLike<number>, cells: CellMoments, scratch: Float64Array): void {
  const n = levels.length;
  const lo = scratch.subarray(0, 3);
  const hi = scratch.subarray(3, 6);
  lo.fill(0);
  for (let j = 0; j < n; j++) {
    if (j + 1 < n) dist.cumulativeMoments((levels[j]! + levels[j + 1]!) / 2, hi);
    else dist.cumulativeMoments(Infinity, hi);
    cells.m0[j] = hi[0]! - lo[0]!;
    cells.m1[j] = hi[1]! - lo[1]!;
    cells.m2[j] = hi[2]! - lo[2]!;
    lo.set(hi);
  }
}

/** Sum of the cell errors. */
export function mseFromCells(levels: ArrayLike<number>, cells: CellMoments): number {
  let mse = 0;
  for (let j = 0; j < levels.length; j++) {
    const l = levels[j]!;
    mse += cells.m2[j]! - 2 * l * cells.m1[j]! + l * l * cells.m0[j]!;
  }
  return Math.max(0, mse);
}

export function allocateCells(n: number): CellMoments {
  return { m0: new Float64Array(n), m1: new Float64Array(n), m2: new Float64Array(n) };
}

/** E[(X − q(X))²] for nearest-level quantization to ascending `levels`. */
export function quantizerMse(dist: Distribution, levels: ArrayLike<number>): number {
  for (let j = 1; j < levels.length; j++) {
    if (!(levels[j]! >= levels[j - 1]!)) throw new RangeError(`quantizerMse: levels must be ascending (levels[${j}] < levels[${j - 1}])`);
  }
  const cells = allocateCells(levels.length);
  fillCellMoments(dist, levels, cells, new Float64Array(6));
  return mseFromCells(levels, cells);
}
