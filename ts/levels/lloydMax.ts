/**
 * The Lloyd–Max quantizer: the best N = 2^M levels with no structure at all, a lower bound for DMBQ.
 * Newton on the levels (the Hessian is tridiagonal), safeguarded by the Lloyd centroid step, which never
 * increases the error. For log-concave laws (all analytic laws here) the optimum is unique (Fleischer), so this
 * is the global bound; for a multimodal histogram it is the best found from the uniform-grid start.
 */
import type { Distribution } from "./distribution.js";
import { allocateCells, fillCellMoments, mseFromCells } from "./cellError.js";
import { tridiagonalSpdSolve } from "./linearAlgebra.js";

export interface LloydMaxResult {
  levels: number[];
  mse: number;
  iterations: number;
}

export function lloydMax(dist: Distribution, nLevels: number, start: ArrayLike<number>, maxIterations = 500): LloydMaxResult {
  if (start.length !== nLevels) throw new RangeError(`lloydMax: start must have ${nLevels} levels, got ${start.length}`);
  const n = nLevels;
  const cells = allocateCells(n);
  const trialCells = allocateCells(n);
  const scratch = new Float64Array(6);
  let levels = Float64Array.from(start).sort();
  fillCellMoments(dist, levels, cells, scratch);
  let mse = mseFromCells(levels, cells);
  const diag = new Float64Array(n);
  const off = new Float64Array(Math.max(0, n - 1));
  const rhs = new Float64Array(n);
  const step = new Float64Array(n);
  const trial = new Float64Array(n);
  let iterations = 0;

  const tryLevels = (): number => {
    for (let j = 1; j < n; j++) if (!(trial[j]! > trial[j - 1]!)) return Infinity;
    fillCellMoments(dist, trial, trialCells, scratch);
    return mseFromCells(trial, trialCells);
  };
  const acceptTrial = (fNew: number): void => {
    levels = Float64Array.from(trial);
    mse = fNew;
    fillCellMoments(dist, levels, cells, scratch);
  };

  for (; iterations < maxIterations; iterations++) {
    const before = mse;
    for (let j = 0; j < n; j++) {
      rhs[j] = 2 * (cells.m1[j]! - levels[j]! * cells.m0[j]!); // −gradient
      diag[j] = 2 * cells.m0[j]!;
    }
    for (let j = 0; j + 1 < n; j++) {
      const gap = levels[j + 1]! - levels[j]!;
      const w = 0.5 * dist.pdf((levels[j]! + levels[j + 1]!) / 2) * gap;
      diag[j] -= w;
      diag[j + 1] -= w;
      off[j] = -w;
    }
    let moved = false;
    if (tridiagonalSpdSolve(diag, off, rhs, step)) {
      for (let t = 1; t >= 1 / 8 && !moved; t /= 2) {
        for (let j = 0; j < n; j++) trial[j] = levels[j]! + t * step[j]!;
        const fc = tryLevels();
        if (fc < mse) {
          acceptTrial(fc);
          moved = true;
        }
      }
    }
    if (!moved) {
      // Lloyd step: every level to the centroid of its cell (empty cells keep their level).
      for (let j = 0; j < n; j++) trial[j] = cells.m0[j]! > 0 ? cells.m1[j]! / cells.m0[j]! : levels[j]!;
      const fc = tryLevels();
      if (fc < mse) {
        acceptTrial(fc);
        moved = true;
      }
    }
    if (!moved || before - mse <= 1e-14 * before) {
      if (moved) iterations++;
      break;
    }
  }
  return { levels: Array.from(levels), mse, iterations };
}
