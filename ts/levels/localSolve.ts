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

const STEP_TOLERANCE = 1e-11;
const STAGNATION_TOLERANCE = 1e-16;

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

export function localMinimize(objective: DmbqObjective, start: ArrayLike<number>, maxIterations = 100): LocalResult {
  const m = objective.bits;
  const signed = objective.signed;
  if (start.length !== m) throw new RangeError(`localMinimize: start must have ${m} entries (one α per bit), got ${start.length}`);
  // Every buffer is allocated once per call: accepted steps copy into them (no allocation per iteration).
  const alpha = Float64Array.from(start);
  let f = objective.evaluate(alpha);
  const g = Float64Array.from(objective.gradient);
  const h = Float64Array.from(objective.hessian);
  const a = Float64Array.from(objective.lsMatrix);
  const r = Float64Array.from(objective.lsRhs);
  const candidate = new Float64Array(m);
  const step = new Float64Array(m);
  const negGrad = new Float64Array(m);
  const previous = new Float64Array(m);
  const ridged = new Float64Array(m * m);
  const scratch = new Float64Array(m * m + m);
  let iterations = 0;

  // Unsigned levels are not invariant to the sign of α_i, so keep α ≥ 0 there; signed ones are (flip b_i).
  const project = (v: Float64Array): void => {
    if (!signed) for (let i = 0; i < m; i++) if (v[i]! < 0) v[i] = 0;
  };
  const accept = (fNew: number, derived = false): void => {
    if (!derived) objective.derive();
    alpha.set(candidate);
    f = fNew;
    g.set(objective.gradient);
    h.set(objective.hessian);
    a.set(objective.lsMatrix);
    r.set(objective.lsRhs);
  };

  for (; iterations < maxIterations; iterations++) {
    const fBefore = f;
    previous.set(alpha);
    let moved = false;
    for (let i = 0; i < m; i++) negGrad[i] = -g[i]!;
    if (choleskySolve(h, negGrad, m, step, scratch)) {
      // Predicted decrease ½gᵀH⁻¹g. Once it is below the rounding noise of f (the cell sums cancel to ~1e−11
      // relative at M = 8), f cannot judge a step; there a full Newton step is taken if it shrinks the gradient.
      let predicted = 0;
      for (let i = 0; i < m; i++) predicted += 0.5 * negGrad[i]! * step[i]!;
      if (predicted <= 1e-9 * f) {
        for (let i = 0; i < m; i++) candidate[i] = alpha[i]! + step[i]!;
        project(candidate);
        const fc = objective.evaluate(candidate, true);
        if (norm(objective.gradient) < norm(g) && fc <= f * (1 + 1e-9)) {
          accept(fc, true);
          moved = true;
        }
      } else {
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
    }
    if (!moved) {
      // Alternating step; a tiny ridge keeps A invertible when some pattern's cell carries no mass.
      ridged.set(a);
      for (let i = 0; i < m; i++) ridged[i * m + i] = ridged[i * m + i]! * (1 + 1e-15) + 1e-300;
      if (choleskySolve(ridged, r, m, candidate, scratch)) {
        project(candidate);
        const fc = objective.evaluate(candidate, false);
        if (fc < f) {
          accept(fc);
          moved = true;
        }
      }
    }
    if (!moved) break;
    // Converged when the step is at rounding level (Newton halves the digits left each time), or the error is
    // stagnant (a slow alternating phase that cannot make progress worth its cost).
    let stepMax = 0;
    let alphaMax = 0;
    for (let i = 0; i < m; i++) {
      stepMax = Math.max(stepMax, Math.abs(alpha[i]! - previous[i]!));
      alphaMax = Math.max(alphaMax, Math.abs(alpha[i]!));
    }
    if (stepMax <= STEP_TOLERANCE * alphaMax || fBefore - f <= STAGNATION_TOLERANCE * fBefore) {
      iterations++;
      break;
    }
  }
  // At an active bound α_i = 0 (unsigned only) a gradient pushing α_i below 0 is not a failure: project it out.
  if (!signed) for (let i = 0; i < m; i++) if (alpha[i] === 0 && g[i]! > 0) g[i] = 0;
  return { alpha, mse: f, iterations, gradientNorm: norm(g) };
}
