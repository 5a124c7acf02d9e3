/**
 * The DMBQ objective f(α) = E[(X − q_α(X))²] with its gradient, Hessian and the least-squares system of the
 * alternating step, all from one pass over the 2^M cells.
 *
 * With the assignment of patterns to cells fixed, f is quadratic in α:  Σ_c ∫_c (x − s_cᵀα)² p,  so
 *   gradient  g = −2 Σ_c s_c (m1_c − l_c m0_c)                       (threshold moves cancel: envelope theorem)
 *   LS step   α* = A⁻¹ r,  A = Σ_c m0_c s_c s_cᵀ,  r = Σ_c m1_c s_c   (never increases f: Lloyd-type argument)
 *   Hessian   H = 2A − ½ Σ_j p(t_j) Δ_j (s_j + s_{j+1})(s_j + s_{j+1})ᵀ   (t_j, Δ_j: threshold and gap j)
 * where s_c is the basis vector (b_i) of the pattern at cell c.
 */
import type { Distribution } from "./distribution.js";
import { allocateCells, type CellMoments } from "./cellError.js";

export class DmbqObjective {
  readonly n: number; // 2^M levels
  readonly gradient: Float64Array;
  readonly hessian: Float64Array; // M × M row-major
  readonly lsMatrix: Float64Array; // A
  readonly lsRhs: Float64Array; // r
  readonly sortedLevels: Float64Array;
  readonly cells: CellMoments;
  /** Signed levels of a symmetric law: the upper half of the cells determines the lower half (mirror images). */
  readonly mirrored: boolean;
  /** Pattern (bit i = b_i) of each sorted level, from the last `evaluate`. */
  readonly sortedPatterns: Int32Array;
  private readonly mergeValues: Float64Array;
  private readonly mergePatterns: Int32Array;
  private readonly scratch = new Float64Array(4);
  /** Density at threshold j (between levels j and j+1), filled by `evaluate` when the law offers it. */
  private readonly thresholdDensity: Float64Array;
  private readonly withDensity: boolean;
  private readonly atZero = new Float64Array(3);
  private readonly z0: Float64Array;
  private readonly z1: Float64Array;
  private readonly zr: Float64Array;
  // Threshold-curvature weights by bit mask (see `derive`).
  private readonly c1: Float64Array;
  private readonly c2: Float64Array;
  private readonly c3: Float64Array;
  evaluations = 0;

  constructor(readonly dist: Distribution, readonly bits: number, readonly signed: boolean) {
    this.n = 1 << bits;
    this.gradient = new Float64Array(bits);
    this.hessian = new Float64Array(bits * bits);
    this.lsMatrix = new Float64Array(bits * bits);
    this.lsRhs = new Float64Array(bits);
    this.sortedLevels = new Float64Array(this.n);
    this.sortedPatterns = new Int32Array(this.n);
    this.mergeValues = new Float64Array(this.n);
    this.mergePatterns = new Int32Array(this.n);
    this.cells = allocateCells(this.n);
    this.z0 = new Float64Array(this.n);
    this.z1 = new Float64Array(this.n);
    this.zr = new Float64Array(this.n);
    this.c1 = new Float64Array(this.n);
    this.c2 = new Float64Array(this.n);
    this.c3 = new Float64Array(this.n);
    this.thresholdDensity = new Float64Array(this.n);
    this.withDensity = typeof dist.cumulativeMomentsWithDensity === "function";
    // A symmetric law has no atom at 0 here (atoms only come from clamping at ±clip), so the mass up to 0 is
    // exactly the lower half's.
    this.mirrored = signed && dist.symmetric;
    if (this.mirrored) dist.cumulativeMoments(0, this.atZero);
  }

  /**
   * Sorted levels with their patterns, by merging instead of sorting: the level set of α_1..α_i is the merge of
   * two shifted copies of the (already sorted) set of α_1..α_{i−1}, so 2^M·2 steps in all and no comparator sort.
   */
  private sortLevels(alpha: ArrayLike<number>): void {
    const { bits, signed } = this;
    // Ping-pong so that the last merge writes into sortedLevels/order.
    let values = bits % 2 === 0 ? this.sortedLevels : this.mergeValues;
    let patterns = bits % 2 === 0 ? this.sortedPatterns : this.mergePatterns;
    let nextValues = bits % 2 === 0 ? this.mergeValues : this.sortedLevels;
    let nextPatterns = bits % 2 === 0 ? this.mergePatterns : this.sortedPatterns;
    values[0] = 0;
    patterns[0] = 0;
    let size = 1;
    for (let i = 0; i < bits; i++) {
      const a = alpha[i]!;
      const down = signed ? -a : 0; // bit i = 0 (b = −1 signed, 0 unsigned)
      const up = a; // bit i = 1
      const bit = 1 << i;
      let p = 0;
      let q = 0;
      let k = 0;
      while (p < size && q < size) {
        const lo = values[p]! + down;
        const hi = values[q]! + up;
        if (lo <= hi) {
          nextValues[k] = lo;
          nextPatterns[k++] = patterns[p++]!;
        } else {
          nextValues[k] = hi;
          nextPatterns[k++] = patterns[q++]! | bit;
        }
      }
      while (p < size) {
        nextValues[k] = values[p]! + down;
        nextPatterns[k++] = patterns[p++]!;
      }
      while (q < size) {
        nextValues[k] = values[q]! + up;
        nextPatterns[k++] = patterns[q++]! | bit;
      }
      size *= 2;
      [values, nextValues] = [nextValues, values];
      [patterns, nextPatterns] = [nextPatterns, patterns];
    }
  }

  /** f(α); with `derivatives`, also fills gradient, Hessian and the LS system (else call `derive()` later). */
  evaluate(alpha: ArrayLike<number>, derivatives = true): number {
    this.evaluations++;
    const { n, sortedLevels, sortedPatterns: order, cells } = this;
    this.sortLevels(alpha);
    let mse: number;
    if (this.mirrored) {
      // Level n−1−j is −level j and its pattern the complement: compute the upper half, mirror the rest.
      const half = n >> 1;
      const mask = n - 1;
      for (let j = half; j < n; j++) {
        sortedLevels[n - 1 - j] = -sortedLevels[j]!;
        order[n - 1 - j] = order[j]! ^ mask;
      }
      mse = 2 * this.fillCells(half, this.atZero[0]!, this.atZero[1]!, this.atZero[2]!);
      for (let j = half; j < n; j++) {
        cells.m0[n - 1 - j] = cells.m0[j]!;
        cells.m1[n - 1 - j] = -cells.m1[j]!;
        cells.m2[n - 1 - j] = cells.m2[j]!;
      }
    } else {
      mse = this.fillCells(0, 0, 0, 0);
    }
    if (derivatives) this.derive();
    return Math.max(0, mse);
  }

  /**
   * Cell moments of cells first..n−1 from the cumulative moments (lo0, lo1, lo2) below cell `first`, and the
   * density at each upper threshold (for the curvature in `derive`); returns the sum of those cells' errors.
   */
  private fillCells(first: number, lo0: number, lo1: number, lo2: number): number {
    const { n, sortedLevels, cells, dist, thresholdDensity } = this;
    const hi = this.scratch;
    const withDensity = this.withDensity;
    let sum = 0;
    for (let j = first; j < n; j++) {
      const l = sortedLevels[j]!;
      const t = j + 1 < n ? (l + sortedLevels[j + 1]!) / 2 : Infinity;
      if (withDensity) {
        dist.cumulativeMomentsWithDensity!(t, hi);
        thresholdDensity[j] = hi[3]!;
      } else {
        dist.cumulativeMoments(t, hi);
      }
      const m0 = hi[0]! - lo0;
      const m1 = hi[1]! - lo1;
      const m2 = hi[2]! - lo2;
      lo0 = hi[0]!;
      lo1 = hi[1]!;
      lo2 = hi[2]!;
      cells.m0[j] = m0;
      cells.m1[j] = m1;
      cells.m2[j] = m2;
      sum += m2 - 2 * l * m1 + l * l * m0;
    }
    return sum;
  }

  /** Gradient, Hessian and LS system at the α of the last `evaluate`. */
  derive(): void {
    const { n, bits, sortedPatterns: order, sortedLevels, cells, signed } = this;
    const { z0, z1, zr, c1, c2, c3 } = this;
    // Pattern-indexed cell sums, then superset sums Z[q] = Σ_{p ⊇ q} z[p] (zeta transform, N·M adds): every
    // entry of A, r and g is a combination of Z at the empty set, single bits and bit pairs.
    for (let c = 0; c < n; c++) {
      const p = order[c]!;
      const m0 = cells.m0[c]!;
      const m1 = cells.m1[c]!;
      z0[p] = m0;
      z1[p] = m1;
      zr[p] = m1 - sortedLevels[c]! * m0; // per-cell residual: keeps the gradient free of cancellation
    }
    // Curvature of the moving thresholds: −½ Σ_j p(t_j) Δ_j u_j u_jᵀ with u = s_j + s_{j+1}. Per threshold, u is
    // fixed by three bit masks of its two patterns a, b, and u_i u_k by which masks hold both i and k:
    //   signed (u_i/2 = b_i + b'_i − 1 ∈ {−1, 0, 1}):  u_i u_k/4 = 2[ik ⊆ a&b] + 2[ik ⊆ ~a&~b] − [ik ⊆ ~(a^b)]
    //   unsigned (u_i = b_i + b'_i):                    u_i u_k   = 2[ik ⊆ a|b] + 2[ik ⊆ a&b]   − [ik ⊆ a^b]
    // so the weights go into three mask-indexed arrays, and the same zeta transform gives all M² entries at once
    // (N·M adds instead of N·M²/2 multiply-adds). Mirrored: threshold n−2−j has the complemented patterns (the
    // same uuᵀ), the same density and gap, so the upper half counts twice; the middle threshold has u = 0.
    c1.fill(0);
    c2.fill(0);
    c3.fill(0);
    const mask = n - 1;
    const first = this.mirrored ? n >> 1 : 0;
    const weight = (this.mirrored ? 1 : 0.5) * (signed ? 4 : 1);
    for (let j = first; j + 1 < n; j++) {
      const gap = sortedLevels[j + 1]! - sortedLevels[j]!;
      if (gap === 0) continue;
      const density = this.withDensity ? this.thresholdDensity[j]! : this.dist.pdf((sortedLevels[j]! + sortedLevels[j + 1]!) / 2);
      if (density === 0) continue;
      const w = weight * density * gap;
      const pa = order[j]!;
      const pb = order[j + 1]!;
      if (signed) {
        c1[pa & pb] = c1[pa & pb]! + w;
        c2[~pa & ~pb & mask] = c2[~pa & ~pb & mask]! + w;
        c3[~(pa ^ pb) & mask] = c3[~(pa ^ pb) & mask]! + w;
      } else {
        c1[pa | pb] = c1[pa | pb]! + w;
        c2[pa & pb] = c2[pa & pb]! + w;
        c3[pa ^ pb] = c3[pa ^ pb]! + w;
      }
    }
    for (let i = 0; i < bits; i++) {
      const bit = 1 << i;
      for (let p = 0; p < n; p++) {
        if (p & bit) continue;
        const q = p | bit;
        z0[p] = z0[p]! + z0[q]!;
        z1[p] = z1[p]! + z1[q]!;
        zr[p] = zr[p]! + zr[q]!;
        c1[p] = c1[p]! + c1[q]!;
        c2[p] = c2[p]! + c2[q]!;
        c3[p] = c3[p]! + c3[q]!;
      }
    }
    const { gradient: g, hessian: h, lsMatrix: a, lsRhs: r } = this;
    for (let i = 0; i < bits; i++) {
      const ei = 1 << i;
      // s_i = 2b_i − 1 (signed) or b_i (unsigned).
      r[i] = signed ? 2 * z1[ei]! - z1[0]! : z1[ei]!;
      g[i] = -2 * (signed ? 2 * zr[ei]! - zr[0]! : zr[ei]!);
      for (let k = 0; k <= i; k++) {
        const ek = 1 << k;
        const ik = ei | ek;
        const v = k === i ? (signed ? z0[0]! : z0[ei]!) : signed ? 4 * z0[ik]! - 2 * z0[ei]! - 2 * z0[ek]! + z0[0]! : z0[ik]!;
        a[i * bits + k] = v;
        a[k * bits + i] = v;
        const hv = 2 * v - (2 * c1[ik]! + 2 * c2[ik]! - c3[ik]!);
        h[i * bits + k] = hv;
        h[k * bits + i] = hv;
      }
    }
  }
}
