/**
 * A one-dimensional probability law, described by what the level optimizer needs: cumulative partial moments
 * (exact, closed form or per histogram bin), so that the expected squared error of any cell is exact.
 */

/** Moments of X restricted to an interval: m0 = P(X in I), m1 = E[X; X in I], m2 = E[X²; X in I]. */
export interface PartialMoments {
  m0: number;
  m1: number;
  m2: number;
}

export interface Distribution {
  /** Human-readable name, e.g. "laplace" or "laplace clip=3 (clamp)". */
  readonly name: string;
  /** Smallest interval holding all the mass (endpoints may be infinite). */
  readonly support: readonly [number, number];
  /** True when X and −X have the same law (lets the solver and the plot use the symmetry). */
  readonly symmetric: boolean;
  /** P(X ≤ x). */
  cdf(x: number): number;
  /** Density of the continuous part, for Newton curvature and plots (point masses are not included). */
  pdf(x: number): number;
  /**
   * Cumulative partial moments up to and including x: out[0] = P(X ≤ x), out[1] = E[X; X ≤ x],
   * out[2] = E[X²; X ≤ x]. Writes into `out` so the hot loop of the solver allocates nothing.
   */
  cumulativeMoments(x: number, out: Float64Array): void;
  /**
   * Optional: cumulativeMoments and the density pdf(x) in out[3] (`out` has 4 entries), for laws that get the
   * density almost free with the moments; the solver calls it at every cell boundary and needs both there.
   */
  cumulativeMomentsWithDensity?(x: number, out: Float64Array): void;
  /** Moments over the half-open cell (a, b]. */
  partialMoments(a: number, b: number): PartialMoments;
  /** E|X|: the unit the experiment layer divides signed α by. */
  meanAbs(): number;
  /** E[X²]. */
  secondMoment(): number;
}

/** Partial moments over (a, b] as a difference of cumulative moments (shared by every implementation). */
export function partialMomentsFromCumulative(dist: Distribution, a: number, b: number): PartialMoments {
  if (!(a <= b)) throw new RangeError(`partialMoments: need a <= b, got a=${a}, b=${b}`);
  const lo = new Float64Array(3);
  const hi = new Float64Array(3);
  dist.cumulativeMoments(a, lo);
  dist.cumulativeMoments(b, hi);
  return { m0: hi[0]! - lo[0]!, m1: hi[1]! - lo[1]!, m2: hi[2]! - lo[2]! };
}
