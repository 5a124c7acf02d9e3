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

/** Fills per-cell moments for ascending `levels`; `scratch` needs 3 entries. Returns nothing, writes `cells`. */
export function fillCellMoments(dist: Distribution, levels: ArrayLike<number>, cells: CellMoments, scratch: Float64Array): void {
  const n = levels.length;
  // Scalars for the running lower bound: no typed-array copies in this hot loop.
  let lo0 = 0;
  let lo1 = 0;
  let lo2 = 0;
  for (let j = 0; j < n; j++) {
    dist.cumulativeMoments(j + 1 < n ? (levels[j]! + levels[j + 1]!) / 2 : Infinity, scratch);
    cells.m0[j] = scratch[0]! - lo0;
    cells.m1[j] = scratch[1]! - lo1;
    cells.m2[j] = scratch[2]! - lo2;
    lo0 = scratch[0]!;
    lo1 = scratch[1]!;
    lo2 = scratch[2]!;
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
