import assert from "node:assert/strict";
import fc from "fast-check";
import { histogramDistribution, law, nonNegativeLaw, LAW_NAMES, type Distribution } from "../../ts/levels/index.js";

/** Composite Simpson rule of x^k p(x) on [a, b]: an independent check of the closed forms. */
function simpson(dist: Distribution, a: number, b: number, k: number, panels = 2000): number {
  const h = (b - a) / panels;
  let s = 0;
  for (let i = 0; i <= panels; i++) {
    // Endpoints nudged inward: the density is taken as its one-sided limit at a kink or a support edge.
    const x = i === 0 ? a + 1e-12 : i === panels ? b - 1e-12 : a + i * h;
    const w = i === 0 || i === panels ? 1 : i % 2 === 1 ? 4 : 2;
    s += w * x ** k * dist.pdf(x);
  }
  return (s * h) / 3;
}

const continuousLaws: Distribution[] = [
  ...LAW_NAMES.map((n) => law(n)),
  law("laplace", { clip: 3, clipMode: "truncate" }),
  law("gaussian", { clip: 2, clipMode: "truncate" }),
  law("exponential", { clip: 4, clipMode: "truncate" }),
  nonNegativeLaw("uniform"),
];

describe("levels/laws", () => {
  it("cumulativeMomentsWithDensity gives the same moments as cumulativeMoments and the density pdf(x)", () => {
    const edges = Array.from({ length: 65 }, (_, i) => -4 + i / 8);
    const counts = Array.from({ length: 64 }, (_, i) => 1 + ((i * 37) % 11));
    const laws: Distribution[] = [
      ...continuousLaws,
      law("laplace", { clip: 3 }),
      nonNegativeLaw("gaussian", { clip: 2 }),
      histogramDistribution(edges, counts),
    ];
    for (const d of laws) {
      assert.equal(typeof d.cumulativeMomentsWithDensity, "function", d.name);
      const plain = new Float64Array(3);
      const both = new Float64Array(4);
      fc.assert(
        fc.property(fc.oneof(fc.double({ min: -12, max: 12, noNaN: true }), fc.constantFrom(-Infinity, Infinity, 0, d.support[0], d.support[1])), (x) => {
          d.cumulativeMoments(x, plain);
          d.cumulativeMomentsWithDensity!(x, both);
          for (let k = 0; k < 3; k++) assert.equal(both[k], plain[k], `${d.name} moment ${k} at ${x}`);
          const want = Number.isFinite(x) ? d.pdf(x) : 0;
          assert.ok(Math.abs(both[3]! - want) <= 1e-14 * Math.max(want, 1e-300) + 1e-300, `${d.name} density at ${x}: ${both[3]} vs ${want}`);
        }),
        { numRuns: 200 },
      );
    }
  });

  it("every law has total mass 1 and the stated E|X| and E[X²]", () => {
    for (const d of continuousLaws) {
      const lo = Math.max(d.support[0], -60);
      const hi = Math.min(d.support[1], 60);
      // Split at 0 so the Laplace kink and the uniform edges fall on panel boundaries.
      const parts = lo < 0 && hi > 0 ? [[lo, 0], [0, hi]] : [[lo, hi]];
      let m0 = 0;
      let abs = 0;
      let m2 = 0;
      for (const [a, b] of parts) {
        m0 += simpson(d, a!, b!, 0, 20000);
        abs += Math.abs(simpson(d, a!, b!, 1, 20000));
        m2 += simpson(d, a!, b!, 2, 20000);
      }
      const total = d.partialMoments(-Infinity, Infinity);
      assert.ok(Math.abs(total.m0 - 1) < 1e-14, `${d.name}: mass ${total.m0}`);
      assert.ok(Math.abs(m0 - 1) < 1e-8, `${d.name}: quadrature mass ${m0}`);
      assert.ok(Math.abs(d.meanAbs() - abs) < 1e-8, `${d.name}: meanAbs ${d.meanAbs()} vs ${abs}`);
      assert.ok(Math.abs(d.secondMoment() - m2) < 1e-7, `${d.name}: E[X²] ${d.secondMoment()} vs ${m2}`);
      assert.ok(Math.abs(total.m2 - m2) < 1e-7, `${d.name}: partial m2 over the line`);
    }
  });

  it("partial moments on any [a, b] match quadrature of the density", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: continuousLaws.length - 1 }),
        fc.double({ min: -6, max: 6, noNaN: true }),
        fc.double({ min: 0, max: 6, noNaN: true }),
        (which, a, width) => {
          const d = continuousLaws[which]!;
          const b = a + width;
          // Keep kinks (0, the support edges) on panel boundaries by splitting there.
          const cuts = [a, ...[d.support[0], 0, d.support[1]].filter((c) => c > a && c < b), b];
          const got = d.partialMoments(a, b);
          for (const [k, key] of [[0, "m0"], [1, "m1"], [2, "m2"]] as const) {
            let want = 0;
            for (let i = 0; i + 1 < cuts.length; i++) want += simpson(d, cuts[i]!, cuts[i + 1]!, k, 2000);
            assert.ok(Math.abs(got[key] - want) < 1e-9, `${d.name} ${key} on [${a}, ${b}]: ${got[key]} vs ${want}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the clamp variant puts the cut-off tails as point masses at the clip", () => {
    const base = law("laplace");
    const clamped = law("laplace", { clip: 2 });
    const tail = 1 - base.cdf(2);
    const justInside = clamped.partialMoments(-2, 2 - 1e-12);
    assert.ok(Math.abs(justInside.m0 - (1 - 2 * tail)) < 1e-10);
    const all = clamped.partialMoments(-Infinity, Infinity);
    assert.ok(Math.abs(all.m0 - 1) < 1e-15);
    assert.ok(Math.abs(all.m1) < 1e-15);
    // E[clamp(X)²] = E[X²; |X| ≤ 2] + 4 P(|X| > 2)
    const inner = base.partialMoments(-2, 2).m2;
    assert.ok(Math.abs(all.m2 - (inner + 8 * tail)) < 1e-14);
    assert.equal(clamped.cdf(2), 1);
    assert.ok(Math.abs(clamped.cdf(-2) - tail) < 1e-15);
  });

  it("folding gives the non-negative laws", () => {
    assert.equal(nonNegativeLaw("laplace").name, "exponential");
    assert.equal(nonNegativeLaw("gaussian").name, "half-gaussian");
    assert.deepEqual(nonNegativeLaw("uniform").support, [0, 1]);
  });

  it("bad arguments name themselves", () => {
    assert.throws(() => law("cauchy" as never), /unknown law name "cauchy"/);
    assert.throws(() => law("laplace", { clip: -1 }), /clip: must be a finite number > 0/);
    assert.throws(() => law("laplace", { clip: 1, clipMode: "wrap" as never }), /clipMode/);
    assert.throws(() => law("laplace").partialMoments(1, 0), /need a <= b/);
  });
});
