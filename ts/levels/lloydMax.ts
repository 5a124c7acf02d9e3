/**
 * The Lloyd–Max quantizer: the best N = 2^M levels with no structure at all, a lower bound for DMBQ.
 * Damped Newton on the levels (the Hessian is tridiagonal), blending into the Lloyd centroid step far from the
 * optimum. For log-concave laws (all analytic laws here) the optimum is unique (Fleischer), so this
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

  // Levenberg–Marquardt damping towards the Lloyd step: (H + μ·diag(2 m0)) d = −g. μ → ∞ is a (short) Lloyd
  // step, μ = 0 pure Newton; far from the optimum H is indefinite for heavy-tailed laws, so μ adapts.
  let mu = 1e-3;
  for (; iterations < maxIterations; iterations++) {
    const before = mse;
    for (let j = 0; j + 1 < n; j++) off[j] = -0.5 * dist.pdf((levels[j]! + levels[j + 1]!) / 2) * (levels[j + 1]! - levels[j]!);
    for (let j = 0; j < n; j++) rhs[j] = 2 * (cells.m1[j]! - levels[j]! * cells.m0[j]!); // −gradient
    let moved = false;
    for (let attempt = 0; attempt < 40 && !moved; attempt++) {
      for (let j = 0; j < n; j++) {
        const curvature = 2 * cells.m0[j]!;
        diag[j] = curvature * (1 + mu) + (j > 0 ? off[j - 1]! : 0) + (j + 1 < n ? off[j]! : 0);
      }
      if (tridiagonalSpdSolve(diag, off, rhs, step)) {
        for (let j = 0; j < n; j++) trial[j] = levels[j]! + step[j]!;
        const fc = tryLevels();
        if (fc < mse) {
          acceptTrial(fc);
          moved = true;
          mu = Math.max(mu / 4, 1e-12);
          break;
        }
      }
      mu = Math.max(mu * 4, 1e-3);
    }
    if (!moved || before - mse <= 1e-15 * before) {
      if (moved) iterations++;
      break;
    }
  }
  return { levels: Array.from(levels), mse, iterations };
}
