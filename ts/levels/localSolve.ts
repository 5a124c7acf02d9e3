/**
 * Local minimization of the DMBQ objective from one start: safeguarded Newton steps on α (quadratic convergence
 * near a minimum), falling back to the alternating least-squares step (fix the cell assignment, solve α on the
 * partial moments, reassign), which can never increase the error.
 */
import { choleskySolve } from "./linearAlgebra.js";
import type { DmbqObjective } from "./dmbqObjective.js";

export interface LocalResult {
  alpha: Float64Array;
  mse: number;
  iterations: number;
  gradientNorm: number;
}

const RELATIVE_TOLERANCE = 1e-13;

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

export function localMinimize(objective: DmbqObjective, start: ArrayLike<number>, maxIterations = 100): LocalResult {
  const m = objective.bits;
  const signed = objective.signed;
  let alpha = Float64Array.from(start);
  let f = objective.evaluate(alpha);
  let g = Float64Array.from(objective.gradient);
  let h = Float64Array.from(objective.hessian);
  let a = Float64Array.from(objective.lsMatrix);
  let r = Float64Array.from(objective.lsRhs);
  const candidate = new Float64Array(m);
  const step = new Float64Array(m);
  const negGrad = new Float64Array(m);
  let iterations = 0;

  // Unsigned levels are not invariant to the sign of α_i, so keep α ≥ 0 there; signed ones are (flip b_i).
  const project = (v: Float64Array): void => {
    if (!signed) for (let i = 0; i < m; i++) if (v[i]! < 0) v[i] = 0;
  };
  const accept = (fNew: number): void => {
    objective.derive();
    alpha = Float64Array.from(candidate);
    f = fNew;
    g = Float64Array.from(objective.gradient);
    h = Float64Array.from(objective.hessian);
    a = Float64Array.from(objective.lsMatrix);
    r = Float64Array.from(objective.lsRhs);
  };

  for (; iterations < maxIterations; iterations++) {
    const fBefore = f;
    let moved = false;
    for (let i = 0; i < m; i++) negGrad[i] = -g[i]!;
    if (choleskySolve(h, negGrad, m, step)) {
      for (let t = 1; t >= 1 / 8 && !moved; t /= 2) {
        for (let i = 0; i < m; i++) candidate[i] = alpha[i]! + t * step[i]!;
        project(candidate);
        const fc = objective.evaluate(candidate, false);
        if (fc < f) {
          accept(fc);
          moved = true;
        }
      }
    }
    if (!moved) {
      // Alternating step; a tiny ridge keeps A invertible when some pattern's cell carries no mass.
      const ridged = Float64Array.from(a);
      for (let i = 0; i < m; i++) ridged[i * m + i] = ridged[i * m + i]! * (1 + 1e-15) + 1e-300;
      if (choleskySolve(ridged, r, m, candidate)) {
        project(candidate);
        const fc = objective.evaluate(candidate, false);
        if (fc < f) {
          accept(fc);
          moved = true;
        }
      }
    }
    if (!moved || fBefore - f <= RELATIVE_TOLERANCE * fBefore) {
      if (moved) iterations++;
      break;
    }
  }
  // At an active bound α_i = 0 (unsigned only) a gradient pushing α_i below 0 is not a failure: project it out.
  if (!signed) for (let i = 0; i < m; i++) if (alpha[i] === 0 && g[i]! > 0) g[i] = 0;
  return { alpha, mse: f, iterations, gradientNorm: norm(g) };
}
