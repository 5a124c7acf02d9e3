/**
 * An empirical law from a histogram (bin edges + counts, e.g. 2,048 bins of a layer's weights sent by the
 * worker). Mass is spread uniformly inside each bin, so cell moments are exact for that piecewise-constant density.
 */
import { partialMomentsFromCumulative, type Distribution, type PartialMoments } from "./distribution.js";

class HistogramDistribution implements Distribution {
  readonly name: string;
  readonly support: readonly [number, number];
  readonly symmetric = false;
  private readonly edges: Float64Array;
  private readonly density: Float64Array; // per bin: probability / width
  private readonly cumulative: Float64Array; // 3 × (bins + 1): moments up to each edge
  private readonly scratch = new Float64Array(3);
  private readonly meanAbsValue: number;
  private lastBin = 0;

  constructor(edges: ArrayLike<number>, counts: ArrayLike<number>) {
    const bins = counts.length;
    this.edges = Float64Array.from(edges);
    this.density = new Float64Array(bins);
    this.cumulative = new Float64Array(3 * (bins + 1));
    let total = 0;
    for (let i = 0; i < bins; i++) total += counts[i]!;
    let m0 = 0;
    let m1 = 0;
    let m2 = 0;
    let negativeFirstMoment = 0;
    for (let i = 0; i < bins; i++) {
      const a = this.edges[i]!;
      const b = this.edges[i + 1]!;
      const d = counts[i]! / total / (b - a);
      this.density[i] = d;
      m0 += d * (b - a);
      m1 += (d * (b * b - a * a)) / 2;
      m2 += (d * (b * b * b - a * a * a)) / 3;
      this.cumulative[3 * (i + 1)] = m0;
      this.cumulative[3 * (i + 1) + 1] = m1;
      this.cumulative[3 * (i + 1) + 2] = m2;
      const negB = Math.min(b, 0);
      if (a < 0) negativeFirstMoment += (d * (negB * negB - a * a)) / 2;
    }
    this.meanAbsValue = m1 - 2 * negativeFirstMoment;
    this.support = [this.edges[0]!, this.edges[bins]!];
    this.name = `histogram(${bins} bins)`;
  }

  /**
   * Index of the bin holding x (x inside the support). The solver asks for ascending thresholds, so the search
   * gallops forward from the last answer (O(log distance)) and falls back to bisection of the whole range.
   */
  private binOf(x: number): number {
    const last = this.density.length - 1;
    let lo = 0;
    let hi = last;
    const hint = this.lastBin;
    if (this.edges[hint]! <= x) {
      lo = hint;
      let stride = 1;
      while (lo + stride <= last && this.edges[lo + stride]! <= x) {
        lo += stride;
        stride *= 2;
      }
      hi = Math.min(last, lo + stride - 1);
    }
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.edges[mid]! <= x) lo = mid;
      else hi = mid - 1;
    }
    this.lastBin = lo;
    return lo;
  }

  cumulativeMoments(x: number, out: Float64Array): void {
    const bins = this.density.length;
    if (x <= this.support[0]) return void out.fill(0);
    if (x >= this.support[1]) {
      out[0] = this.cumulative[3 * bins]!;
      out[1] = this.cumulative[3 * bins + 1]!;
      out[2] = this.cumulative[3 * bins + 2]!;
      return;
    }
    this.momentsInBin(this.binOf(x), x, out);
  }

  cumulativeMomentsWithDensity(x: number, out: Float64Array): void {
    const bins = this.density.length;
    if (x <= this.support[0] || x >= this.support[1]) {
      this.cumulativeMoments(x, out);
      out[3] = x === this.support[0] ? this.density[0]! : x === this.support[1] ? this.density[bins - 1]! : 0;
      return;
    }
    // One bin search for both (the solver needs moments and density at every cell boundary).
    const k = this.binOf(x);
    this.momentsInBin(k, x, out);
    out[3] = this.density[k]!;
  }

  /** The moments up to x inside bin k: the cumulative sums at its left edge plus the uniform density's part. */
  private momentsInBin(k: number, x: number, out: Float64Array): void {
    const a = this.edges[k]!;
    const d = this.density[k]!;
    out[0] = this.cumulative[3 * k]! + d * (x - a);
    out[1] = this.cumulative[3 * k + 1]! + (d * (x * x - a * a)) / 2;
    out[2] = this.cumulative[3 * k + 2]! + (d * (x * x * x - a * a * a)) / 3;
  }

  cdf(x: number): number {
    this.cumulativeMoments(x, this.scratch);
    return this.scratch[0]!;
  }

  pdf(x: number): number {
    if (x < this.support[0] || x > this.support[1]) return 0;
    return this.density[this.binOf(x)]!;
  }

  partialMoments(a: number, b: number): PartialMoments {
    return partialMomentsFromCumulative(this, a, b);
  }

  meanAbs(): number {
    return this.meanAbsValue;
  }

  secondMoment(): number {
    return this.cumulative[3 * this.density.length + 2]!;
  }
}

/**
 * A law from histogram bin edges (length n + 1, strictly increasing, finite) and counts (length n, >= 0, not all 0).
 * Throws a RangeError naming the bad argument.
 */
export function histogramDistribution(edges: ArrayLike<number>, counts: ArrayLike<number>): Distribution {
  if (edges === null || edges === undefined || typeof edges.length !== "number") throw new TypeError("histogram: edges must be an array of numbers");
  if (counts === null || counts === undefined || typeof counts.length !== "number") throw new TypeError("histogram: counts must be an array of numbers");
  if (counts.length === 0) throw new RangeError("histogram: counts is empty");
  if (edges.length !== counts.length + 1) {
    throw new RangeError(`histogram: edges must have counts.length + 1 = ${counts.length + 1} entries, got ${edges.length}`);
  }
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (typeof c !== "number" || !Number.isFinite(c)) throw new RangeError(`histogram: counts[${i}] is not a finite number (${String(c)})`);
    if (c < 0) throw new RangeError(`histogram: counts[${i}] is negative (${c})`);
    total += c;
  }
  if (!(total > 0)) throw new RangeError("histogram: counts are all zero (empty histogram)");
  for (let i = 0; i < edges.length; i++) {
    const e = edges[i]!;
    if (typeof e !== "number" || !Number.isFinite(e)) throw new RangeError(`histogram: edges[${i}] is not a finite number (${String(e)})`);
    if (i > 0 && !(e > edges[i - 1]!)) throw new RangeError(`histogram: edges must be strictly increasing, but edges[${i}] = ${e} <= edges[${i - 1}] = ${edges[i - 1]}`);
  }
  return new HistogramDistribution(edges, counts);
}
