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
import { allocateCells, fillCellMoments, mseFromCells, type CellMoments } from "./cellError.js";
import { patternValues } from "./levelSet.js";

export class DmbqObjective {
  readonly n: number; // 2^M levels
  readonly gradient: Float64Array;
  readonly hessian: Float64Array; // M × M row-major
  readonly lsMatrix: Float64Array; // A
  readonly lsRhs: Float64Array; // r
  readonly sortedLevels: Float64Array;
  readonly cells: CellMoments;
  private readonly values: Float64Array;
  private readonly order: Int32Array;
  private readonly sortKeys: Float64Array;
  private readonly sortWords: Uint32Array; // little-endian view: word 2k is the low half of key k
  private readonly scratch = new Float64Array(6);
  private readonly nonzero = new Int32Array(8);
  private readonly u = new Float64Array(8);
  private readonly z0: Float64Array;
  private readonly z1: Float64Array;
  private readonly zr: Float64Array;
  evaluations = 0;

  constructor(readonly dist: Distribution, readonly bits: number, readonly signed: boolean) {
    this.n = 1 << bits;
    this.gradient = new Float64Array(bits);
    this.hessian = new Float64Array(bits * bits);
    this.lsMatrix = new Float64Array(bits * bits);
    this.lsRhs = new Float64Array(bits);
    this.sortedLevels = new Float64Array(this.n);
    this.values = new Float64Array(this.n);
    this.order = Int32Array.from({ length: this.n }, (_, k) => k);
    this.sortKeys = new Float64Array(this.n);
    this.sortWords = new Uint32Array(this.sortKeys.buffer);
    this.cells = allocateCells(this.n);
    this.z0 = new Float64Array(this.n);
    this.z1 = new Float64Array(this.n);
    this.zr = new Float64Array(this.n);
  }

  /** f(α); with `derivatives`, also fills gradient, Hessian and the LS system (else call `derive()` later). */
  evaluate(alpha: ArrayLike<number>, derivatives = true): number {
    this.evaluations++;
    const { n, values, order, sortedLevels, cells } = this;
    patternValues(alpha, this.signed, values);
    // Native numeric sort of keys that carry the pattern index in their lowest 8 mantissa bits (a 2^−44
    // relative nudge: it can only swap sums equal to ~13 digits, which changes no cell). No comparator calls.
    const keys = this.sortKeys;
    const words = this.sortWords;
    keys.set(values);
    for (let k = 0; k < n; k++) words[2 * k] = (words[2 * k]! & ~0xff) | k;
    keys.sort();
    for (let c = 0; c < n; c++) order[c] = words[2 * c]! & 0xff;
    for (let c = 0; c < n; c++) sortedLevels[c] = values[order[c]!]!;
    fillCellMoments(this.dist, sortedLevels, cells, this.scratch);
    const mse = mseFromCells(sortedLevels, cells);
    if (derivatives) this.derive();
    return mse;
  }

  /** Gradient, Hessian and LS system at the α of the last `evaluate`. */
  derive(): void {
    const { n, bits, order, sortedLevels, cells, signed } = this;
    const { z0, z1, zr } = this;
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
    for (let i = 0; i < bits; i++) {
      const bit = 1 << i;
      for (let p = 0; p < n; p++) {
        if (p & bit) continue;
        z0[p] = z0[p]! + z0[p | bit]!;
        z1[p] = z1[p]! + z1[p | bit]!;
        zr[p] = zr[p]! + zr[p | bit]!;
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
        const v = k === i ? (signed ? z0[0]! : z0[ei]!) : signed ? 4 * z0[ei | ek]! - 2 * z0[ei]! - 2 * z0[ek]! + z0[0]! : z0[ei | ek]!;
        a[i * bits + k] = v;
        a[k * bits + i] = v;
      }
    }
    for (let i = 0; i < bits * bits; i++) h[i] = 2 * a[i]!;
    // Curvature of the moving thresholds, lower triangle only, over the nonzero entries of u = s_j + s_{j+1}.
    const nonzero = this.nonzero;
    const u = this.u;
    for (let j = 0; j + 1 < n; j++) {
      const gap = sortedLevels[j + 1]! - sortedLevels[j]!;
      if (gap === 0) continue;
      const density = this.dist.pdf((sortedLevels[j]! + sortedLevels[j + 1]!) / 2);
      if (density === 0) continue;
      const w = 0.5 * density * gap;
      let count = 0;
      const pa = order[j]!;
      const pb = order[j + 1]!;
      for (let i = 0; i < bits; i++) {
        const ba = (pa >> i) & 1;
        const bb = (pb >> i) & 1;
        const ui = signed ? 2 * (ba + bb) - 2 : ba + bb;
        if (ui !== 0) {
          u[count] = ui;
          nonzero[count++] = i;
        }
      }
      for (let p = 0; p < count; p++) {
        const row = nonzero[p]! * bits;
        const wu = w * u[p]!;
        for (let q = 0; q <= p; q++) {
          const at = row + nonzero[q]!;
          h[at] = h[at]! - wu * u[q]!;
        }
      }
    }
    for (let i = 0; i < bits; i++) for (let k = 0; k < i; k++) h[k * bits + i] = h[i * bits + k]!;
  }
}
