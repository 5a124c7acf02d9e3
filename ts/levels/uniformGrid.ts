/**
 * The best uniform grid with 2^M levels: symmetric (odd multiples of Δ/2) when signed, {0, Δ, …} when unsigned.
 * It is itself a DMBQ level set (α_i = Δ 2^{i−1} signed, Δ 2^i unsigned), so its error is an upper bound for DMBQ
 * and its α is one of the solver's starts.
 */
import type { Distribution } from "./distribution.js";
import { allocateCells, fillCellMoments, mseFromCells } from "./cellError.js";

export interface UniformGrid {
  step: number;
  levels: number[];
  /** The grid as a DMBQ α, descending. */
  alpha: number[];
  mse: number;
}

function gridLevels(step: number, n: number, signed: boolean, out: Float64Array): void {
  for (let k = 0; k < n; k++) out[k] = signed ? (k - (n - 1) / 2) * step : k * step;
}

/** Minimizes the grid error over the step Δ: log-spaced scan, then golden-section refinement. */
export function bestUniformGrid(dist: Distribution, bits: number, signed: boolean): UniformGrid {
  const n = 1 << bits;
  const levels = new Float64Array(n);
  const cells = allocateCells(n);
  const scratch = new Float64Array(6);
  const mseAt = (step: number): number => {
    gridLevels(step, n, signed, levels);
    fillCellMoments(dist, levels, cells, scratch);
    return mseFromCells(levels, cells);
  };
  const rms = Math.sqrt(dist.secondMoment());
  // Total span from 0.05 to 60 RMS covers every law here at every M (Laplace at M = 8 wants about 16 RMS).
  const scanPoints = 24;
  const minStep = (0.05 * rms) / Math.max(1, n - 1);
  const maxStep = (60 * rms) / Math.max(1, n - 1);
  const ratio = Math.pow(maxStep / minStep, 1 / (scanPoints - 1));
  let bestIndex = 0;
  let bestMse = Infinity;
  const steps: number[] = [];
  for (let i = 0; i < scanPoints; i++) {
    const s = minStep * Math.pow(ratio, i);
    steps.push(s);
    const e = mseAt(s);
    if (e < bestMse) {
      bestMse = e;
      bestIndex = i;
    }
  }
  let lo = steps[Math.max(0, bestIndex - 1)]!;
  let hi = steps[Math.min(scanPoints - 1, bestIndex + 1)]!;
  const invPhi = (Math.sqrt(5) - 1) / 2;
  let x1 = hi - invPhi * (hi - lo);
  let x2 = lo + invPhi * (hi - lo);
  let f1 = mseAt(x1);
  let f2 = mseAt(x2);
  // 1e-8 in Δ is far below what matters: the error is flat (quadratic) at its minimum.
  while (hi - lo > 1e-8 * hi) {
    if (f1 < f2) {
      hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = hi - invPhi * (hi - lo);
      f1 = mseAt(x1);
    } else {
      lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = lo + invPhi * (hi - lo);
      f2 = mseAt(x2);
    }
  }
  let step = (lo + hi) / 2;
  let mse = mseAt(step);
  if (bestMse < mse) {
    step = steps[bestIndex]!;
    mse = bestMse;
  }
  gridLevels(step, n, signed, levels);
  const alpha: number[] = [];
  for (let i = bits - 1; i >= 0; i--) alpha.push(signed ? (step / 2) * 2 ** i : step * 2 ** i);
  return { step, levels: Array.from(levels), alpha, mse };
}
