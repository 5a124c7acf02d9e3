import assert from "node:assert/strict";
import fc from "fast-check";
import { bestUniformGrid, law, levelsFromAlpha, refinementStarts, solveLevels, solveLevelsAllBits } from "../../ts/levels/index.js";
import { DmbqObjective } from "../../ts/levels/dmbqObjective.js";
import { localMinimize } from "../../ts/levels/localSolve.js";
import { knownOptimum } from "../../ts/levels/knownOptima.js";
import { VERIFICATION_LAWS, verificationLaw } from "../../ts/levels/verificationLaws.js";
import { BEST_FOUND, bestFound } from "./bestFound.js";

const rel = (got: number, want: number): number => (got - want) / want;

describe("levels/refinement continuation", () => {
  it("refining a binary grid gives the binary grid of one more bit (offsets 0 stay 0)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), fc.double({ min: 1e-3, max: 1e3, noNaN: true }), (bits, scale) => {
        const grid = Array.from({ length: bits }, (_, i) => scale * 2 ** -i);
        const starts = refinementStarts(grid);
        const want = Array.from({ length: bits + 1 }, (_, i) => scale * 2 ** -i);
        // j = 0 of the unambiguous rounding is the first start: the new finest α is half the old one.
        starts[0]!.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1e-12 * scale, `α${i}: ${v} vs ${want[i]}`));
        // Its levels are the uniform grid of 2^(M+1) levels.
        const levels = levelsFromAlpha(starts[0]!, true);
        const gap = levels[1]! - levels[0]!;
        levels.forEach((l, k) => k > 0 && assert.ok(Math.abs(l - levels[k - 1]! - gap) <= 1e-9 * scale));
      }),
      { numRuns: 50 },
    );
  });

  it("each start adds one α at an odd multiple of half the finest step and halves every offset from the lattice", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.01, max: 5, noNaN: true }), { minLength: 1, maxLength: 7 }), (raw) => {
        const p = [...raw].sort((a, b) => b - a);
        const step = p[p.length - 1]!;
        const starts = refinementStarts(p);
        assert.ok(starts.length >= 1);
        for (const s of starts) {
          assert.equal(s.length, p.length + 1);
          for (let i = 1; i < s.length; i++) assert.ok(s[i]! <= s[i - 1]!, "descending");
          // Removing the inserted α (some (j + ½)·step) leaves the refined old α: each within half its old offset.
          const inserted = s.findIndex((v) => {
            const j = v / step - 0.5;
            return Math.abs(j - Math.round(j)) < 1e-9 && j > -1e-9;
          });
          assert.ok(inserted >= 0, `no α at (j + ½)·step in ${s}`);
          const old = s.filter((_, i) => i !== inserted);
          // Each refined α is (m + (r − m)/2)·step for r = α/step and m the nearest multiple (or, for an ambiguous
          // r near m + ½, the other one): its offset from the lattice is halved. Matched as a multiset.
          const unused = p.map((v) => v / step);
          for (const v of old) {
            const k = unused.findIndex((r) => [Math.floor(r), Math.ceil(r)].some((m) => Math.abs(v - (m + (r - m) / 2) * step) <= 1e-9 * Math.max(1, v)));
            assert.ok(k >= 0, `${v} is no refined α of ${p}`);
            unused.splice(k, 1);
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it("without the known starts, the continuation reaches the best-known minima of Gaussian M ≤ 8 and Laplace M ≤ 5", () => {
    for (const [name, maxBits] of [["gaussian", 8], ["laplace", 5]] as const) {
      for (const s of solveLevelsAllBits(law(name), maxBits, { knownStarts: false }).slice(2)) {
        const known = knownOptimum(name, s.bits, true)!;
        assert.ok(Math.abs(rel(s.mse, known.mse)) <= 1e-9, `${name} M=${s.bits}: ${s.mse} vs best known ${known.mse}`);
      }
    }
  });

  it("laws outside the table reach the offline search's best-found minimum within 1e-6 (truncated, half-law, histogram)", () => {
    const cases: [string, number][] = [
      ["trunc-gaussian-2.5", 7],
      ["trunc-laplace-4", 8],
      ["trunc-laplace-2.5", 6],
      ["trunc-exponential-2.5", 7],
      ["hist-laplace", 7],
    ];
    for (const [tag, bits] of cases) {
      const v = verificationLaw(tag);
      const stored = bestFound(tag, bits)!;
      const s = solveLevels(v.make(), bits, { signed: v.signed });
      assert.ok(rel(s.mse, stored.mse) <= 1e-6, `${tag} M=${bits}: default ${s.mse} vs best found ${stored.mse} (${rel(s.mse, stored.mse)})`);
      assert.ok(s.lloydMaxMse <= s.mse * (1 + 1e-9) && s.mse <= s.uniformMse * (1 + 1e-9), `${tag} M=${bits}: bounds`);
    }
  });

  it("the best-found fixtures hold what they claim: the stored error, a local minimum, below the best uniform grid", () => {
    assert.ok(BEST_FOUND.length >= VERIFICATION_LAWS.length * 3, "an entry per law and M = 6, 7, 8");
    for (const b of BEST_FOUND) {
      const v = verificationLaw(b.tag);
      assert.equal(v.signed, b.signed, b.tag);
      assert.equal(b.alpha.length, b.bits);
      const dist = v.make();
      const objective = new DmbqObjective(dist, b.bits, b.signed);
      const tag = `${b.tag} M=${b.bits}`;
      assert.ok(Math.abs(rel(objective.evaluate(b.alpha), b.mse)) <= 1e-10, `${tag}: stored mse`);
      const again = localMinimize(objective, b.alpha, 50);
      assert.ok(again.mse >= b.mse * (1 - 1e-10), `${tag}: a local step lowers it (${again.mse} < ${b.mse})`);
      assert.ok(b.mse <= bestUniformGrid(dist, b.bits, b.signed).mse, `${tag}: above the best uniform grid`);
    }
  });

  it("refined starts are only extra starts: the result is unchanged by random extra starts (truncated Gaussian, M = 7)", () => {
    const dist = law("gaussian", { clip: 2.5, clipMode: "truncate" });
    const base = solveLevels(dist, 7);
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ min: 0.01, max: 2, noNaN: true }), { minLength: 7, maxLength: 7 }), { minLength: 1, maxLength: 2 }), (starts) => {
        const s = solveLevels(dist, 7, { extraStarts: starts });
        assert.ok(Math.abs(rel(s.mse, base.mse)) <= 1e-9, `${s.mse} vs ${base.mse}`);
      }),
      { numRuns: 3 },
    );
  });
});
