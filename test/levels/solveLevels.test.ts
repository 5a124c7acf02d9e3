import assert from "node:assert/strict";
import fc from "fast-check";
import {
  histogramDistribution,
  law,
  levelsFromAlpha,
  nonNegativeLaw,
  quantizerMse,
  solveLevels,
  solveLevelsAllBits,
  LAW_NAMES,
  type LevelSolution,
} from "../../ts/levels/index.js";
import { DmbqObjective } from "../../ts/levels/dmbqObjective.js";
import { localMinimize } from "../../ts/levels/localSolve.js";
import { KNOWN_OPTIMA, knownOptimum } from "../../ts/levels/knownOptima.js";

function close(got: number, want: number, rel: number, what: string): void {
  assert.ok(Math.abs(got - want) <= rel * Math.abs(want), `${what}: got ${got}, want ${want} (±${rel * 100}%)`);
}

// All tables of every law, both signednesses where they apply; solved once for the whole file.
const tables = new Map<string, LevelSolution[]>();
function tablesOf(name: (typeof LAW_NAMES)[number], signed: boolean): LevelSolution[] {
  const key = `${name}|${signed}`;
  if (!tables.has(key)) tables.set(key, solveLevelsAllBits(signed ? law(name) : nonNegativeLaw(name), 8, { signed }));
  return tables.get(key)!;
}
const CASES = [
  ...LAW_NAMES.filter((n) => n !== "half-gaussian" && n !== "exponential").map((n) => [n, true] as const),
  ...LAW_NAMES.map((n) => [n, false] as const),
];

describe("levels/solveLevels", () => {
  it("reproduces the known points (Laplace b = 1, Gaussian σ = 1)", () => {
    const l2 = solveLevels(law("laplace"), 2);
    close(l2.alpha[0]!, 1.594, 5e-4, "laplace M=2 α1");
    close(l2.alpha[1]!, 1.0, 5e-4, "laplace M=2 α2");
    close(l2.mse, 0.3524, 2e-4, "laplace M=2 mse");
    close(solveLevels(law("laplace"), 3).mse, 0.112, 5e-4, "laplace M=3 mse");
    const g2 = solveLevels(law("gaussian"), 2);
    close(g2.alpha[0]!, 0.9816, 2e-4, "gaussian M=2 α1");
    close(g2.alpha[1]!, 0.5288, 2e-4, "gaussian M=2 α2");
    close(g2.mse, 0.1175, 2e-4, "gaussian M=2 mse");
    // Any symmetric 4-level set is a DMBQ set, so M = 2 meets Lloyd–Max exactly.
    close(g2.mse, g2.lloydMaxMse, 1e-9, "gaussian M=2 = Lloyd–Max");
    close(l2.mse, l2.lloydMaxMse, 1e-9, "laplace M=2 = Lloyd–Max");
    // M = 1: α = E|X|.
    close(solveLevels(law("gaussian"), 1).alpha[0]!, Math.sqrt(2 / Math.PI), 1e-9, "gaussian M=1");
  });

  it("Lloyd–Max ≤ DMBQ ≤ uniform, the gradient vanishes, and the MSE falls as M grows", () => {
    for (const [name, signed] of CASES) {
      const all = tablesOf(name, signed);
      for (const s of all) {
        const tag = `${name} ${signed ? "signed" : "unsigned"} M=${s.bits}`;
        assert.ok(s.lloydMaxMse <= s.mse * (1 + 1e-9), `${tag}: Lloyd–Max ${s.lloydMaxMse} > DMBQ ${s.mse}`);
        assert.ok(s.mse <= s.uniformMse * (1 + 1e-9), `${tag}: DMBQ ${s.mse} > uniform ${s.uniformMse}`);
        assert.ok(s.gradientNorm <= 1e-6 * Math.max(s.mse, 1e-3), `${tag}: gradient norm ${s.gradientNorm}`);
        assert.ok(s.gapToLloydMax >= -1e-9);
        // The reported error is the exact error of the reported levels.
        close(quantizerMse(signed ? law(name) : nonNegativeLaw(name), s.levels), s.mse, 1e-9, `${tag} mse recomputed`);
      }
      for (let m = 1; m < all.length; m++) {
        assert.ok(all[m]!.mse < all[m - 1]!.mse, `${name}: MSE did not fall from M=${m} to M=${m + 1}`);
      }
    }
  });

  it("returns α ≥ 0 descending, levels from α, thresholds at midpoints, clip = top level", () => {
    for (const [name, signed] of CASES) {
      for (const s of tablesOf(name, signed)) {
        assert.equal(s.alpha.length, s.bits);
        for (let i = 0; i < s.bits; i++) assert.ok(s.alpha[i]! >= 0 && (i === 0 || s.alpha[i]! <= s.alpha[i - 1]!));
        assert.deepEqual(s.levels, levelsFromAlpha(s.alpha, signed));
        assert.equal(s.thresholds.length, s.levels.length - 1);
        s.thresholds.forEach((t, j) => assert.ok(Math.abs(t - (s.levels[j]! + s.levels[j + 1]!) / 2) < 1e-12));
        assert.equal(s.clip, s.levels[s.levels.length - 1]);
        if (!signed) assert.equal(s.levels[0], 0);
      }
    }
  });

  it("no local descent from a random start beats the global solution (M = 4, 5)", () => {
    for (const [name, signed] of [["laplace", true], ["gaussian", true], ["exponential", false]] as const) {
      for (const bits of [4, 5]) {
        const best = tablesOf(name, signed)[bits - 1]!;
        const objective = new DmbqObjective(signed ? law(name) : nonNegativeLaw(name), bits, signed);
        fc.assert(
          fc.property(fc.array(fc.double({ min: 0.01, max: 4, noNaN: true }), { minLength: bits, maxLength: bits }), (start) => {
            const local = localMinimize(objective, start, 200);
            assert.ok(local.mse >= best.mse * (1 - 1e-9), `${name} M=${bits}: start ${start} reached ${local.mse} < ${best.mse}`);
          }),
          { numRuns: 25 },
        );
      }
    }
  });

  it("a plain local search from a geometric start can land in a worse local minimum (why multi-start exists)", () => {
    const objective = new DmbqObjective(law("gaussian"), 5, true);
    const best = tablesOf("gaussian", true)[4]!;
    let worse = 0;
    for (const ratio of [0.5, 0.6, 0.7, 0.8, 0.9]) {
      const local = localMinimize(objective, Array.from({ length: 5 }, (_, i) => ratio ** i), 200);
      if (local.mse > best.mse * (1 + 1e-6)) worse++;
    }
    assert.ok(worse > 0, "every geometric start reached the global optimum; the multi-start test above would be vacuous");
  });

  it("the result does not depend on the start: extra random starts give the same α", () => {
    const base = tablesOf("laplace", true)[3]!;
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ min: 0.01, max: 5, noNaN: true }), { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 4 }), (starts) => {
        const s = solveLevels(law("laplace"), 4, { extraStarts: starts });
        s.alpha.forEach((a, i) => close(a, base.alpha[i]!, 1e-6, `α${i + 1}`));
      }),
      { numRuns: 10 },
    );
  });

  it("the default solve reaches the verified best-known minimum of every standard law, M = 3..8, within 1e-9", () => {
    const checked = new Set<string>();
    for (const [name, signed] of CASES) {
      for (const s of tablesOf(name, signed)) {
        const dist = signed ? law(name) : nonNegativeLaw(name);
        const known = knownOptimum(dist.name, s.bits, signed);
        if (known === undefined) continue;
        checked.add(`${known.law}|${signed}|${s.bits}`);
        const tag = `${dist.name} ${signed ? "signed" : "unsigned"} M=${s.bits}`;
        // Lower than the best known would mean knownOptimaData.ts is stale (rerun bench:levels --search).
        assert.ok(Math.abs(s.mse - known.mse) <= 1e-9 * known.mse, `${tag}: default ${s.mse} vs best known ${known.mse}`);
      }
    }
    assert.equal(checked.size, 6 * 6, "a best-known entry for each of the six laws and M = 3..8");
  });

  it("the best-known table holds what it claims: local minima with the stored error, between the bounds", () => {
    for (const k of KNOWN_OPTIMA) {
      const [name, signed] = CASES.find(([n, sg]) => sg === k.signed && (sg ? law(n) : nonNegativeLaw(n)).name === k.law)!;
      const dist = signed ? law(name) : nonNegativeLaw(name);
      const tag = `${k.law} M=${k.bits}`;
      assert.equal(k.alpha.length, k.bits, tag);
      close(k.meanAbs, dist.meanAbs(), 1e-15, `${tag} E|X|`);
      const objective = new DmbqObjective(dist, k.bits, signed);
      // The cell sums cancel to ~1e−11 relative at M = 8, so equality is to that rounding.
      close(objective.evaluate(k.alpha), k.mse, 1e-11, `${tag} stored mse`);
      const again = localMinimize(objective, k.alpha, 50);
      assert.ok(again.mse >= k.mse * (1 - 1e-10), `${tag}: a local step from the stored α lowers it (${again.mse} < ${k.mse})`);
      assert.ok(again.gradientNorm <= 1e-6 * Math.max(k.mse, 1e-3), `${tag}: gradient ${again.gradientNorm}`);
      const t = tablesOf(name, signed)[k.bits - 1]!;
      assert.ok(t.lloydMaxMse <= k.mse * (1 + 1e-9) && k.mse <= t.uniformMse * (1 + 1e-9), `${tag}: outside [Lloyd–Max, uniform]`);
    }
  });

  it("the result does not depend on the start at M = 7 and 8: random extra starts never change α", () => {
    for (const [name, bits, signed] of [["gaussian", 7, true], ["laplace", 8, true], ["gaussian", 8, true], ["exponential", 8, false]] as const) {
      const base = tablesOf(name, signed)[bits - 1]!;
      const dist = signed ? law(name) : nonNegativeLaw(name);
      fc.assert(
        fc.property(fc.array(fc.array(fc.double({ min: 0.01, max: 3, noNaN: true }), { minLength: bits, maxLength: bits }), { minLength: 1, maxLength: 3 }), (starts) => {
          const s = solveLevels(dist, bits, { signed, extraStarts: starts });
          s.alpha.forEach((a, i) => close(a, base.alpha[i]!, 1e-6, `${name} M=${bits} α${i + 1}`));
        }),
        { numRuns: 4 },
      );
    }
  });

  it("known and extra starts can only lower the result: with them ≤ without them, for clipped laws and histograms too", () => {
    const edges = Array.from({ length: 257 }, (_, i) => -6 + (12 * i) / 256);
    const counts = Array.from({ length: 256 }, (_, i) => Math.round(1000 * Math.exp(-Math.abs(edges[i]! + 0.023) * 1.3)));
    const dists: [string, ReturnType<typeof law>, boolean][] = [
      ["gaussian clip 2.5 truncate", law("gaussian", { clip: 2.5, clipMode: "truncate" }), true],
      ["laplace clip 4 clamp", law("laplace", { clip: 4 }), true],
      ["histogram", histogramDistribution(edges, counts), true],
      ["half-gaussian clip 3 clamp", nonNegativeLaw("gaussian", { clip: 3 }), false],
    ];
    for (const [tag, dist, signed] of dists) {
      for (const bits of [6, 8]) {
        const plain = solveLevels(dist, bits, { signed, knownStarts: false });
        const withKnown = solveLevels(dist, bits, { signed });
        assert.ok(withKnown.mse <= plain.mse * (1 + 1e-12), `${tag} M=${bits}: ${withKnown.mse} > ${plain.mse}`);
        assert.ok(withKnown.lloydMaxMse <= withKnown.mse * (1 + 1e-9) && withKnown.mse <= withKnown.uniformMse * (1 + 1e-9), `${tag} M=${bits}: bounds`);
        assert.ok(withKnown.gradientNorm <= 1e-6 * Math.max(withKnown.mse, 1e-3), `${tag} M=${bits}: gradient ${withKnown.gradientNorm}`);
      }
    }
  });

  it("the default solve equals a much wider search (beam 24 + 3 rounds of basin hopping) for M ≤ 5, every law", () => {
    for (const [name, signed] of CASES) {
      const dist = signed ? law(name) : nonNegativeLaw(name);
      const wide = solveLevelsAllBits(dist, 5, { signed, beamWidth: 24, polishRounds: 3 });
      for (const w of wide) {
        const d = tablesOf(name, signed)[w.bits - 1]!;
        assert.ok(d.mse <= w.mse * (1 + 1e-9), `${name} ${signed ? "signed" : "unsigned"} M=${w.bits}: default ${d.mse} > wide ${w.mse}`);
      }
    }
  });

  it("basin hopping never returns a worse minimum, and solveLevels(M) is row M of solveLevelsAllBits", () => {
    // Without the known starts, and on a law outside the table, so the hops start from the continuation's own result.
    // (Since the refinement continuation, the hops find nothing lower on these: they are a guard, not a source.)
    for (const [dist, signed] of [[law("gaussian"), true], [law("laplace", { clip: 4, clipMode: "truncate" }), true], [nonNegativeLaw("exponential", { clip: 2.5, clipMode: "truncate" }), false]] as const) {
      const opts = { signed, polishRounds: 1, knownStarts: false };
      const polished = solveLevelsAllBits(dist, 7, opts);
      const plain = solveLevelsAllBits(dist, 7, { signed, knownStarts: false });
      for (const p of polished) {
        assert.ok(p.mse <= plain[p.bits - 1]!.mse * (1 + 1e-12), `${dist.name} M=${p.bits}: polished ${p.mse} > plain ${plain[p.bits - 1]!.mse}`);
        assert.ok(p.gradientNorm <= 1e-6 * Math.max(p.mse, 1e-3));
      }
      assert.deepEqual(solveLevels(dist, 7, opts).alpha, polished[6]!.alpha);
    }
  });

  it("rejects bad arguments, naming them", () => {
    assert.throws(() => solveLevels(law("laplace"), 0), /bits must be an integer in 1\.\.8, got 0/);
    assert.throws(() => solveLevels(law("laplace"), 9), /bits must be an integer in 1\.\.8, got 9/);
    assert.throws(() => solveLevels(law("laplace"), 2.5), /bits/);
    assert.throws(() => solveLevels(law("gaussian"), 3, { signed: false }), /unsigned levels .* need a law on \[0, ∞\)/);
    assert.throws(() => solveLevels(law("gaussian"), 3, { extraStarts: [[1, 2]] }), /extraStarts\[0\]/);
    assert.throws(() => solveLevels(law("gaussian"), 3, { polishRounds: -1 }), /polishRounds must be an integer >= 0, got -1/);
    assert.throws(() => solveLevels(law("gaussian"), 3, { beamWidth: 0 }), /beamWidth must be an integer >= 1, got 0/);
    assert.throws(() => solveLevels(law("gaussian"), 3, { knownStarts: "yes" as never }), /knownStarts must be a boolean/);
    assert.throws(() => levelsFromAlpha([], true), /alpha must have 1\.\.8 entries/);
  });
});
