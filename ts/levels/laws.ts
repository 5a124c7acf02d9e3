/**
 * The analytic laws, each at unit scale (the caller scales): Laplace (b = 1), Gaussian (σ = 1), uniform on
 * [−1, 1], half-Gaussian (σ = 1) and exponential (rate 1). Cumulative partial moments are closed form.
 */
import { partialMomentsFromCumulative, type Distribution, type PartialMoments } from "./distribution.js";
import { clipDistribution, type ClipMode } from "./clipped.js";
import { normalCdf, normalCdfPdf, normalPdf } from "./specialFunctions.js";

export type LawName = "laplace" | "gaussian" | "uniform" | "half-gaussian" | "exponential";

export const LAW_NAMES: readonly LawName[] = ["laplace", "gaussian", "uniform", "half-gaussian", "exponential"];

export interface LawOptions {
  /** Restrict the law to [−clip, clip] (or [0, clip] for non-negative laws). */
  clip?: number;
  /** "clamp" (default): mass beyond the clip sits at ±clip, as clipped activations do; "truncate": renormalize. */
  clipMode?: ClipMode;
}

export function isLawName(name: string): name is LawName {
  return (LAW_NAMES as readonly string[]).includes(name);
}

/** Base class: everything follows from cumulativeMoments. */
abstract class AnalyticLaw implements Distribution {
  abstract readonly name: string;
  abstract readonly support: readonly [number, number];
  abstract readonly symmetric: boolean;
  abstract cdf(x: number): number;
  abstract pdf(x: number): number;
  abstract cumulativeMoments(x: number, out: Float64Array): void;
  abstract meanAbs(): number;
  abstract secondMoment(): number;
  cumulativeMomentsWithDensity(x: number, out: Float64Array): void {
    this.cumulativeMoments(x, out);
    out[3] = this.pdf(x);
  }
  partialMoments(a: number, b: number): PartialMoments {
    return partialMomentsFromCumulative(this, a, b);
  }
}

/** A law whose cumulative moments and density come from one evaluation (they share an exp or a series). */
abstract class FusedDensityLaw extends AnalyticLaw {
  protected abstract moments(x: number, out: Float64Array, density: boolean): void;
  cumulativeMoments(x: number, out: Float64Array): void {
    this.moments(x, out, false);
  }
  override cumulativeMomentsWithDensity(x: number, out: Float64Array): void {
    this.moments(x, out, true);
  }
}

class Laplace extends FusedDensityLaw {
  readonly name = "laplace";
  readonly support = [-Infinity, Infinity] as const;
  readonly symmetric = true;
  cdf(x: number): number {
    return x <= 0 ? 0.5 * Math.exp(x) : 1 - 0.5 * Math.exp(-x);
  }
  pdf(x: number): number {
    return 0.5 * Math.exp(-Math.abs(x));
  }
  protected moments(x: number, out: Float64Array, density: boolean): void {
    if (x === -Infinity || x === Infinity) {
      out[0] = x > 0 ? 1 : 0;
      out[1] = 0;
      out[2] = x > 0 ? 2 : 0;
      if (density) out[3] = 0;
      return;
    }
    // h = ½e^{−|x|} is both the tail mass and the density.
    const h = 0.5 * Math.exp(-Math.abs(x));
    if (x <= 0) {
      out[0] = h;
      out[1] = h * (x - 1);
      out[2] = h * (x * x - 2 * x + 2);
    } else {
      // Upper tail in closed form, subtracted from the totals (E[X] = 0, E[X²] = 2).
      out[0] = 1 - h;
      out[1] = -h * (x + 1);
      out[2] = 2 - h * (x * x + 2 * x + 2);
    }
    if (density) out[3] = h;
  }
  meanAbs(): number {
    return 1;
  }
  secondMoment(): number {
    return 2;
  }
}

class Gaussian extends FusedDensityLaw {
  readonly name = "gaussian";
  readonly support = [-Infinity, Infinity] as const;
  readonly symmetric = true;
  cdf(x: number): number {
    return normalCdf(x);
  }
  pdf(x: number): number {
    return normalPdf(x);
  }
  protected moments(x: number, out: Float64Array, density: boolean): void {
    if (x === -Infinity || x === Infinity) {
      out[0] = x > 0 ? 1 : 0;
      out[1] = 0;
      out[2] = x > 0 ? 1 : 0;
      if (density) out[3] = 0;
      return;
    }
    normalCdfPdf(x, out);
    const cdf = out[0]!;
    const phi = out[1]!;
    out[1] = -phi;
    out[2] = cdf - x * phi;
    if (density) out[3] = phi;
  }
  meanAbs(): number {
    return Math.sqrt(2 / Math.PI);
  }
  secondMoment(): number {
    return 1;
  }
}

/** Uniform on [lo, hi]: [−1, 1] is the signed unit law, [0, 1] its fold (the non-negative unit law). */
class Uniform extends AnalyticLaw {
  readonly name: string;
  readonly support: readonly [number, number];
  readonly symmetric: boolean;
  constructor(private readonly lo: number, private readonly hi: number) {
    super();
    this.support = [lo, hi];
    this.symmetric = lo === -hi;
    this.name = lo === -1 && hi === 1 ? "uniform" : `uniform[${lo},${hi}]`;
  }
  cdf(x: number): number {
    return Math.min(1, Math.max(0, (x - this.lo) / (this.hi - this.lo)));
  }
  pdf(x: number): number {
    return x >= this.lo && x <= this.hi ? 1 / (this.hi - this.lo) : 0;
  }
  cumulativeMoments(x: number, out: Float64Array): void {
    const c = Math.min(this.hi, Math.max(this.lo, x));
    const d = 1 / (this.hi - this.lo);
    out[0] = (c - this.lo) * d;
    out[1] = ((c * c - this.lo * this.lo) / 2) * d;
    out[2] = ((c * c * c - this.lo * this.lo * this.lo) / 3) * d;
  }
  meanAbs(): number {
    const { lo, hi } = this;
    if (lo >= 0) return (lo + hi) / 2;
    if (hi <= 0) return -(lo + hi) / 2;
    return (lo * lo + hi * hi) / (2 * (hi - lo));
  }
  secondMoment(): number {
    return (this.hi ** 3 - this.lo ** 3) / (3 * (this.hi - this.lo));
  }
}

const PHI_AT_ZERO = normalPdf(0);

/** |Z| for Z standard normal: density 2φ(x) on [0, ∞). */
class HalfGaussian extends FusedDensityLaw {
  readonly name = "half-gaussian";
  readonly support = [0, Infinity] as const;
  readonly symmetric = false;
  cdf(x: number): number {
    return x <= 0 ? 0 : 1 - 2 * normalCdf(-x);
  }
  pdf(x: number): number {
    return x < 0 ? 0 : 2 * normalPdf(x);
  }
  protected moments(x: number, out: Float64Array, density: boolean): void {
    if (x <= 0 || x === Infinity) {
      out[0] = x > 0 ? 1 : 0;
      out[1] = x > 0 ? 2 * PHI_AT_ZERO : 0;
      out[2] = x > 0 ? 1 : 0;
      if (density) out[3] = x === 0 ? 2 * PHI_AT_ZERO : 0;
      return;
    }
    normalCdfPdf(-x, out);
    const upper = out[0]!;
    const phi = out[1]!;
    out[0] = 1 - 2 * upper;
    out[1] = 2 * (PHI_AT_ZERO - phi);
    out[2] = 1 - 2 * upper - 2 * x * phi;
    if (density) out[3] = 2 * phi;
  }
  meanAbs(): number {
    return Math.sqrt(2 / Math.PI);
  }
  secondMoment(): number {
    return 1;
  }
}

class Exponential extends FusedDensityLaw {
  readonly name = "exponential";
  readonly support = [0, Infinity] as const;
  readonly symmetric = false;
  cdf(x: number): number {
    return x <= 0 ? 0 : -Math.expm1(-x);
  }
  pdf(x: number): number {
    return x < 0 ? 0 : Math.exp(-x);
  }
  protected moments(x: number, out: Float64Array, density: boolean): void {
    if (x <= 0 || x === Infinity) {
      out[0] = x > 0 ? 1 : 0;
      out[1] = x > 0 ? 1 : 0;
      out[2] = x > 0 ? 2 : 0;
      if (density) out[3] = x === 0 ? 1 : 0;
      return;
    }
    const e = Math.exp(-x);
    out[0] = -Math.expm1(-x);
    out[1] = 1 - e * (x + 1);
    out[2] = 2 - e * (x * x + 2 * x + 2);
    if (density) out[3] = e;
  }
  meanAbs(): number {
    return 1;
  }
  secondMoment(): number {
    return 2;
  }
}

function unitLaw(name: LawName): Distribution {
  switch (name) {
    case "laplace":
      return new Laplace();
    case "gaussian":
      return new Gaussian();
    case "uniform":
      return new Uniform(-1, 1);
    case "half-gaussian":
      return new HalfGaussian();
    case "exponential":
      return new Exponential();
  }
}

/** The named law at unit scale, optionally clipped (clamped or truncated) at `opts.clip`. */
export function law(name: LawName, opts: LawOptions = {}): Distribution {
  if (!isLawName(name)) throw new RangeError(`law: unknown law name "${String(name)}" (expected one of ${LAW_NAMES.join(", ")})`);
  const base = unitLaw(name);
  return opts.clip === undefined ? base : clipDistribution(base, opts.clip, opts.clipMode ?? "clamp");
}

/**
 * The law of |X| for X of the named law: what unsigned (activation) tables are fitted to when the caller names a
 * symmetric law. Laplace folds to exponential, Gaussian to half-Gaussian, uniform[−1,1] to uniform[0,1].
 */
export function nonNegativeLaw(name: LawName, opts: LawOptions = {}): Distribution {
  if (!isLawName(name)) throw new RangeError(`nonNegativeLaw: unknown law name "${String(name)}"`);
  const folded: Distribution =
    name === "laplace" ? new Exponential() : name === "gaussian" ? new HalfGaussian() : name === "uniform" ? new Uniform(0, 1) : unitLaw(name);
  return opts.clip === undefined ? folded : clipDistribution(folded, opts.clip, opts.clipMode ?? "clamp");
}
