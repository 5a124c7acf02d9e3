import assert from "node:assert/strict";
import fc from "fast-check";
import { histogramDistribution, law, nonNegativeLaw, solveLevels, type Distribution } from "../../ts/levels/index.js";
import { seededRandom as mulberry32 } from "../../ts/util/seededRandom.js";


function histogramOfSample(sample: (u: number, v: number) => number, n: number, lo: number, hi: number, bins: number): Distribution {
  const rand = mulberry32(12345);
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < n; i++) {
    const x = sample(rand(), rand());
    const k = Math.min(bins - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * bins)));
    counts[k]!++;
  }
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins);
  return histogramDistribution(edges, counts);
}

const laplaceSample = (u: number): number => (u < 0.5 ? Math.log(2 * u + 1e-300) : -Math.log(2 - 2 * u + 1e-300));
const gaussianSample = (u: number, v: number): number => Math.sqrt(-2 * Math.log(u + 1e-300)) * Math.cos(2 * Math.PI * v);

describe("levels/histogram", () => {
  it("bin lookup gallops from the last answer yet gives what a fresh lookup gives, in any query order", () => {
    const bins = 300;
    const edges = Array.from({ length: bins + 1 }, (_, i) => -3 + 6 * (i / bins) ** 1.3);
    const counts = Array.from({ length: bins }, (_, i) => 1 + ((i * 7919) % 13));
    const shared = histogramDistribution(edges, counts);
    const got = new Float64Array(4);
    const want = new Float64Array(4);
    fc.assert(
      fc.property(fc.array(fc.double({ min: -3.5, max: 3.5, noNaN: true }), { minLength: 1, maxLength: 40 }), fc.boolean(), (xs, sorted) => {
        const queries = sorted ? [...xs].sort((a, b) => a - b) : xs;
        for (const x of queries) {
          shared.cumulativeMomentsWithDensity!(x, got);
          histogramDistribution(edges, counts).cumulativeMomentsWithDensity!(x, want);
          assert.deepEqual(Array.from(got), Array.from(want), `x = ${x}`);
          assert.equal(shared.pdf(x), want[3], `pdf(${x})`);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("moments are exact for a piecewise-constant density", () => {
    const h = histogramDistribution([-1, 0, 2], [1, 3]); // densities 0.25 on [-1,0], 0.375 on [0,2]
    const all = h.partialMoments(-Infinity, Infinity);
    assert.ok(Math.abs(all.m0 - 1) < 1e-15);
    assert.ok(Math.abs(all.m1 - (0.25 * -0.5 + 0.375 * 2)) < 1e-15);
    assert.ok(Math.abs(all.m2 - (0.25 / 3 + (0.375 * 8) / 3)) < 1e-15);
    assert.ok(Math.abs(h.meanAbs() - (0.25 * 0.5 + 0.375 * 2)) < 1e-15);
    const part = h.partialMoments(-0.5, 1);
    assert.ok(Math.abs(part.m0 - (0.25 * 0.5 + 0.375)) < 1e-15);
    assert.equal(h.pdf(1.5), 0.375);
    assert.equal(h.cdf(5), 1);
  });

  it("cumulative moments are monotone in mass and continuous at bin edges", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 100 }), { minLength: 1, maxLength: 30 }).filter((c) => c.some((x) => x > 0)), (counts) => {
        const edges = counts.map((_, i) => i * 0.5 - 3).concat([counts.length * 0.5 - 3]);
        const h = histogramDistribution(edges, counts);
        let last = -1;
        for (let x = -4; x <= counts.length * 0.5 - 2; x += 0.125) {
          const c = h.cdf(x);
          assert.ok(c >= last - 1e-15);
          last = c;
        }
        assert.ok(Math.abs(last - 1) < 1e-12);
      }),
    );
  });

  it("the histogram of a large sample of a law gives the law's α within sampling error", () => {
    const n = 400_000;
    const cases: [string, Distribution, Distribution, boolean][] = [
      ["laplace", histogramOfSample(laplaceSample, n, -16, 16, 2048), law("laplace"), true],
      ["gaussian", histogramOfSample(gaussianSample, n, -6, 6, 2048), law("gaussian"), true],
      ["exponential", histogramOfSample((u) => -Math.log(1 - u), n, 0, 16, 2048), nonNegativeLaw("laplace"), false],
    ];
    for (const [name, hist, exact, signed] of cases) {
      for (const bits of [2, 3, 4]) {
        const got = solveLevels(hist, bits, { signed });
        const want = solveLevels(exact, bits, { signed });
        // n = 4e5 gives ~0.2% standard error on scale-type statistics; 2% is a safe, still meaningful band.
        want.alpha.forEach((a, i) => {
          assert.ok(Math.abs(got.alpha[i]! - a) <= 0.02 * a, `${name} M=${bits} α${i + 1}: histogram ${got.alpha[i]} vs law ${a}`);
        });
        assert.ok(Math.abs(got.mse - want.mse) <= 0.03 * want.mse, `${name} M=${bits} mse ${got.mse} vs ${want.mse}`);
        assert.ok(got.lloydMaxMse <= got.mse * (1 + 1e-9) && got.mse <= got.uniformMse * (1 + 1e-9));
      }
    }
  });

  it("rejects empty, negative and malformed histograms, naming the argument", () => {
    assert.throws(() => histogramDistribution([0], []), /counts is empty/);
    assert.throws(() => histogramDistribution([0, 1, 2], [0, 0]), /counts are all zero/);
    assert.throws(() => histogramDistribution([0, 1, 2], [1, -2]), /counts\[1\] is negative/);
    assert.throws(() => histogramDistribution([0, 1], [1, 2]), /edges must have counts.length \+ 1 = 3 entries, got 2/);
    assert.throws(() => histogramDistribution([0, 2, 1], [1, 2]), /edges must be strictly increasing/);
    assert.throws(() => histogramDistribution([0, NaN, 1], [1, 2]), /edges\[1\] is not a finite number/);
    assert.throws(() => histogramDistribution([0, 1, 2], [1, Infinity]), /counts\[1\] is not a finite number/);
    assert.throws(() => solveLevels(histogramDistribution([-1, 0, 1], [1, 1]), 2, { signed: false }), /unsigned levels/);
  });
});
