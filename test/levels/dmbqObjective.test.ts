import assert from "node:assert/strict";
import fc from "fast-check";
import { law, levelsFromAlpha, nonNegativeLaw, quantizerMse, type Distribution } from "../../ts/levels/index.js";
import { DmbqObjective } from "../../ts/levels/dmbqObjective.js";

/** The same law with `symmetric` off, so the objective takes its general (unmirrored) path. */
function asymmetricView(dist: Distribution): Distribution {
  return {
    name: `${dist.name} (unmirrored)`,
    support: dist.support,
    symmetric: false,
    cdf: (x) => dist.cdf(x),
    pdf: (x) => dist.pdf(x),
    cumulativeMoments: (x, out) => dist.cumulativeMoments(x, out),
    partialMoments: (a, b) => dist.partialMoments(a, b),
    meanAbs: () => dist.meanAbs(),
    secondMoment: () => dist.secondMoment(),
  };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol * Math.max(scale, 1e-300), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

const alphaArb = (bits: number) => fc.array(fc.double({ min: 0.02, max: 3, noNaN: true }), { minLength: bits, maxLength: bits });

describe("levels/dmbqObjective", () => {
  it("merged levels are the sorted 2^M sums and the error is the exact quantizer error", () => {
    for (const [dist, signed] of [[law("gaussian"), true], [law("laplace"), true], [nonNegativeLaw("gaussian"), false]] as const) {
      for (const bits of [1, 3, 6]) {
        const objective = new DmbqObjective(dist, bits, signed);
        fc.assert(
          fc.property(alphaArb(bits), (alpha) => {
            const f = objective.evaluate(alpha, false);
            const levels = levelsFromAlpha(alpha, signed);
            assertClose(objective.sortedLevels, levels, 1e-14, "levels");
            assert.ok(Math.abs(f - quantizerMse(dist, levels)) <= 1e-12 * f, `mse ${f} vs ${quantizerMse(dist, levels)}`);
          }),
          { numRuns: 20 },
        );
      }
    }
  });

  it("the mirrored half (symmetric law, signed) gives the same error, gradient, Hessian and LS system as the full pass", () => {
    for (const name of ["gaussian", "laplace", "uniform"] as const) {
      for (const bits of [2, 5, 8]) {
        const mirrored = new DmbqObjective(law(name), bits, true);
        const full = new DmbqObjective(asymmetricView(law(name)), bits, true);
        assert.ok(mirrored.mirrored && !full.mirrored);
        fc.assert(
          fc.property(alphaArb(bits), (alpha) => {
            const fm = mirrored.evaluate(alpha);
            const ff = full.evaluate(alpha);
            // The cell sums cancel to ~1e−11 relative at M = 8 (different summation order in the two paths).
            assert.ok(Math.abs(fm - ff) <= 1e-10 * ff + 1e-300, `${name} M=${bits}: ${fm} vs ${ff}`);
            assertClose(mirrored.gradient, full.gradient, 1e-8, "gradient");
            assertClose(mirrored.hessian, full.hessian, 1e-8, "hessian");
            assertClose(mirrored.lsMatrix, full.lsMatrix, 1e-12, "A");
            assertClose(mirrored.lsRhs, full.lsRhs, 1e-12, "r");
          }),
          { numRuns: 15 },
        );
      }
    }
  });

  it("gradient and Hessian match central differences", () => {
    for (const [dist, signed] of [[law("gaussian"), true], [law("laplace"), true], [nonNegativeLaw("exponential"), false]] as const) {
      const bits = 4;
      const objective = new DmbqObjective(dist, bits, signed);
      fc.assert(
        fc.property(alphaArb(bits), (alpha) => {
          // f is C¹ but its curvature jumps where two levels swap order: keep the stencil away from such ties.
          const levels = levelsFromAlpha(alpha, signed);
          fc.pre(levels.every((l, j) => j === 0 || l - levels[j - 1]! > 1e-3));
          objective.evaluate(alpha);
          const g = Float64Array.from(objective.gradient);
          const h = Float64Array.from(objective.hessian);
          const step = 1e-6;
          const fdGrad = new Float64Array(bits);
          const fdHess = new Float64Array(bits * bits);
          for (let i = 0; i < bits; i++) {
            const plus = [...alpha];
            const minus = [...alpha];
            plus[i] = plus[i]! + step;
            minus[i] = minus[i]! - step;
            const fp = objective.evaluate(plus);
            const gp = Float64Array.from(objective.gradient);
            const fm = objective.evaluate(minus);
            const gm = objective.gradient;
            fdGrad[i] = (fp - fm) / (2 * step);
            for (let k = 0; k < bits; k++) fdHess[k * bits + i] = (gp[k]! - gm[k]!) / (2 * step);
          }
          assertClose(g, fdGrad, 1e-5, "gradient");
          assertClose(h, fdHess, 1e-3, "hessian");
        }),
        { numRuns: 15 },
      );
    }
  });
});
