/**
 * Complementary error function and the standard normal law, written out here because JavaScript has no erf.
 * Two regimes, both accurate to a few ulps in absolute terms (checked against Python's math.erfc in the tests):
 * a positive-term series for small |x| (no cancellation) and a Lentz continued fraction for the tail.
 */

const SQRT_PI = Math.sqrt(Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const SERIES_LIMIT = 2.5;

/** erf(x) for 0 <= x < SERIES_LIMIT: (2/√π) e^{−x²} Σ (2x²)^n x / (1·3·…·(2n+1)); all terms positive. */
function erfSeries(x: number): number {
  const twoX2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= twoX2 / (2 * n + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return (2 / SQRT_PI) * Math.exp(-x * x) * sum;
}

/** erfc(x) for x >= SERIES_LIMIT: e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), modified Lentz. */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (SQRT_PI * f);
}

export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x === Infinity) return 0;
  return x < SERIES_LIMIT ? 1 - erfSeries(x) : erfcContinuedFraction(x);
}

export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return -erf(-x);
  return x < SERIES_LIMIT ? erfSeries(x) : 1 - erfcContinuedFraction(x);
}

/** Standard normal density φ(x). */
export function normalPdf(x: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** Φ(x) from erfc directly: the reference the fast path below is built from and checked against. */
export function normalCdfDirect(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

// Fast Φ for the solver's hot loop: an exact Taylor expansion about the nearest node x0 of a 1/32 grid,
//   Φ(x0 + h) = Φ(x0) + φ(x0) Σ_{k≥1} (−1)^{k−1} He_{k−1}(x0) h^k / k!   (He: probabilists' Hermite),
// with |h| ≤ 1/64 and |x0 h| ≤ 0.14, so 11 terms are below double rounding. Nodes come from the direct formula.
const GRID_STEP = 1 / 32;
const GRID_LIMIT = 8.5;
const GRID_COUNT = Math.round((2 * GRID_LIMIT) / GRID_STEP) + 1;
const TAYLOR_TERMS = 11;
const nodeCdf = new Float64Array(GRID_COUNT);
const nodePdf = new Float64Array(GRID_COUNT);
for (let i = 0; i < GRID_COUNT; i++) {
  const x0 = -GRID_LIMIT + i * GRID_STEP;
  nodeCdf[i] = normalCdfDirect(x0);
  nodePdf[i] = normalPdf(x0);
}

/** Standard normal CDF Φ(x), to double precision in absolute terms. */
export function normalCdf(x: number): number {
  if (!(Math.abs(x) < GRID_LIMIT)) return normalCdfDirect(x);
  const i = Math.round((x + GRID_LIMIT) / GRID_STEP);
  const x0 = -GRID_LIMIT + i * GRID_STEP;
  const h = x - x0;
  let heBefore = 0; // He_{k−2}
  let he = 1; // He_{k−1}
  let coefficient = 1;
  let sign = 1;
  let sum = 0;
  for (let k = 1; k <= TAYLOR_TERMS; k++) {
    coefficient *= h / k;
    sum += sign * he * coefficient;
    sign = -sign;
    const next = x0 * he - (k - 1) * heBefore;
    heBefore = he;
    he = next;
  }
  return nodeCdf[i]! + nodePdf[i]! * sum;
}

/**
 * Φ(x) and φ(x) together from the same Taylor expansion (no exp): out[0] = Φ(x), out[1] = φ(x). The density's
 * series φ(x0 + h) = φ(x0) Σ_{k≥0} (−1)^k He_k(x0) h^k / k! reuses the Hermite values of the CDF's series, so the
 * solver's hot loop gets both for the price of one (each cell boundary needs both).
 */
export function normalCdfPdf(x: number, out: Float64Array): void {
  if (!(Math.abs(x) < GRID_LIMIT)) {
    out[0] = normalCdfDirect(x);
    out[1] = normalPdf(x);
    return;
  }
  const i = Math.round((x + GRID_LIMIT) / GRID_STEP);
  const x0 = -GRID_LIMIT + i * GRID_STEP;
  const h = x - x0;
  let heBefore = 0; // He_{k−2}
  let he = 1; // He_{k−1}
  let coefficient = 1;
  let sign = 1;
  let cdfSum = 0;
  let pdfSum = 1;
  for (let k = 1; k <= TAYLOR_TERMS; k++) {
    coefficient *= h / k;
    cdfSum += sign * he * coefficient;
    const next = x0 * he - (k - 1) * heBefore; // He_k
    pdfSum -= sign * next * coefficient;
    sign = -sign;
    heBefore = he;
    he = next;
  }
  out[0] = nodeCdf[i]! + nodePdf[i]! * cdfSum;
  out[1] = nodePdf[i]! * pdfSum;
}
