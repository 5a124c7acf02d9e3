/**
 * The clipped variant of a law: support cut to [−clip, clip] (or [0, clip] for a non-negative law).
 * "clamp" moves the cut-off tails onto the edges as point masses (what clipping an activation does);
 * "truncate" drops them and renormalizes (a law conditioned on |X| ≤ clip).
 */
import { partialMomentsFromCumulative, type Distribution, type PartialMoments } from "./distribution.js";

export type ClipMode = "clamp" | "truncate";

class ClippedDistribution implements Distribution {
  readonly name: string;
  readonly support: readonly [number, number];
  readonly symmetric: boolean;
  private readonly lowerMass: number; // base mass at or below lo (the clamp point mass at lo)
  private readonly upperMass: number; // base mass above hi
  private readonly keptMass: number;
  private readonly baseAtLo = new Float64Array(3);
  private readonly scratch = new Float64Array(3);
  private readonly meanAbsValue: number;
  private readonly secondMomentValue: number;

  constructor(private readonly base: Distribution, clip: number, private readonly mode: ClipMode) {
    const lo = base.support[0] >= 0 ? base.support[0] : -clip;
    this.support = [lo, clip];
    this.symmetric = base.symmetric && lo === -clip;
    this.name = `${base.name} clip=${clip} (${mode})`;
    base.cumulativeMoments(lo, this.baseAtLo);
    this.lowerMass = this.baseAtLo[0]!;
    this.upperMass = 1 - base.cdf(clip);
    this.keptMass = 1 - this.lowerMass - this.upperMass;
    if (!(this.keptMass > 0)) throw new RangeError(`clip: ${clip} leaves no mass of ${base.name} inside the clip`);
    const total = new Float64Array(3);
    this.cumulativeMoments(clip, total);
    this.secondMomentValue = total[2]!;
    this.meanAbsValue = total[1]! - 2 * this.negativePartFirstMoment();
  }

  private negativePartFirstMoment(): number {
    if (this.support[0] >= 0) return 0;
    const atZero = new Float64Array(3);
    this.cumulativeMoments(0, atZero);
    return atZero[1]!;
  }

  cumulativeMoments(x: number, out: Float64Array): void {
    const [lo, hi] = this.support;
    if (x < lo) return void out.fill(0);
    const c = Math.min(x, hi);
    this.base.cumulativeMoments(c, this.scratch);
    let m0 = this.scratch[0]! - this.baseAtLo[0]!;
    let m1 = this.scratch[1]! - this.baseAtLo[1]!;
    let m2 = this.scratch[2]! - this.baseAtLo[2]!;
    if (this.mode === "clamp") {
      m0 += this.lowerMass;
      m1 += this.lowerMass * lo;
      m2 += this.lowerMass * lo * lo;
      if (x >= hi) {
        m0 += this.upperMass;
        m1 += this.upperMass * hi;
        m2 += this.upperMass * hi * hi;
      }
    } else {
      m0 /= this.keptMass;
      m1 /= this.keptMass;
      m2 /= this.keptMass;
    }
    out[0] = m0;
    out[1] = m1;
    out[2] = m2;
  }

  cumulativeMomentsWithDensity(x: number, out: Float64Array): void {
    this.cumulativeMoments(x, out);
    out[3] = this.pdf(x);
  }

  cdf(x: number): number {
    this.cumulativeMoments(x, this.scratch);
    return this.scratch[0]!;
  }

  pdf(x: number): number {
    const [lo, hi] = this.support;
    if (x < lo || x > hi) return 0;
    return this.mode === "clamp" ? this.base.pdf(x) : this.base.pdf(x) / this.keptMass;
  }

  partialMoments(a: number, b: number): PartialMoments {
    return partialMomentsFromCumulative(this, a, b);
  }

  meanAbs(): number {
    return this.meanAbsValue;
  }

  secondMoment(): number {
    return this.secondMomentValue;
  }
}

export function clipDistribution(base: Distribution, clip: number, mode: ClipMode = "clamp"): Distribution {
  if (!Number.isFinite(clip) || clip <= 0) throw new RangeError(`clip: must be a finite number > 0, got ${clip}`);
  if (mode !== "clamp" && mode !== "truncate") throw new RangeError(`clipMode: expected "clamp" or "truncate", got "${String(mode)}"`);
  return new ClippedDistribution(base, clip, mode);
}
