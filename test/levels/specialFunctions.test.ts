import assert from "node:assert/strict";
import fc from "fast-check";
import { erf, erfc, normalCdf } from "../../ts/levels/index.js";
import { normalCdfDirect, normalCdfPdf, normalPdf } from "../../ts/levels/specialFunctions.js";

// Reference values from CPython's math.erfc (libm).
const REFERENCE: [number, number][] = [
  [-3, 1.9999779095030015],
  [-1, 1.842700792949715],
  [-0.3, 1.3286267594591274],
  [0, 1.0],
  [0.2, 0.7772974107895215],
  [0.5, 0.4795001221869535],
  [1, 0.15729920705028513],
  [1.7, 0.016209541409225436],
  [2.4, 0.0006885138966450789],
  [2.5, 0.0004069520174449589],
  [2.6, 0.00023603441652934908],
  [3, 2.2090496998585438e-5],
  [4, 1.541725790028002e-8],
  [6, 2.1519736712498916e-17],
  [10, 2.088487583762545e-45],
];

describe("levels/specialFunctions", () => {
  it("erfc matches libm to 1e-15 absolute and 1e-11 relative", () => {
    for (const [x, want] of REFERENCE) {
      const got = erfc(x);
      assert.ok(Math.abs(got - want) <= 1e-15 + 1e-11 * want, `erfc(${x}) = ${got}, want ${want}`);
    }
  });

  it("erf is odd and erf + erfc = 1", () => {
    fc.assert(
      fc.property(fc.double({ min: -8, max: 8, noNaN: true }), (x) => {
        assert.ok(Math.abs(erf(x) + erf(-x)) < 1e-15);
        assert.ok(Math.abs(erf(x) + erfc(x) - 1) < 2e-15);
      }),
    );
  });

  it("the fast Taylor-table normal CDF agrees with the direct formula", () => {
    fc.assert(
      fc.property(fc.double({ min: -12, max: 12, noNaN: true }), (x) => {
        assert.ok(Math.abs(normalCdf(x) - normalCdfDirect(x)) < 2e-15, `x = ${x}`);
      }),
      { numRuns: 2000 },
    );
  });

  it("the fused Φ/φ series gives Φ as normalCdf does and φ to 1e-14 relative", () => {
    const out = new Float64Array(2);
    fc.assert(
      fc.property(fc.double({ min: -12, max: 12, noNaN: true }), (x) => {
        normalCdfPdf(x, out);
        assert.equal(out[0], normalCdf(x), `Φ(${x})`);
        assert.ok(Math.abs(out[1]! - normalPdf(x)) <= 1e-14 * normalPdf(x), `φ(${x}) = ${out[1]} vs ${normalPdf(x)}`);
      }),
      { numRuns: 2000 },
    );
  });
});
