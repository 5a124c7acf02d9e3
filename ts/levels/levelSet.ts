/**
 * The multi-bit level set: all 2^M sums Σ α_i b_i with b_i ∈ {−1,+1} (signed) or {0,1} (unsigned).
 * Pattern k (0 ≤ k < 2^M) sets b_i from bit i of k.
 */

export const MIN_BITS = 1;
export const MAX_BITS = 8;

export function checkBits(bits: unknown, where: string): number {
  if (typeof bits !== "number" || !Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new RangeError(`${where}: bits must be an integer in ${MIN_BITS}..${MAX_BITS}, got ${String(bits)}`);
  }
  return bits;
}

/** Value of every pattern, unsorted: out[k] = Σ α_i b_i(k). Built by doubling, 2^M additions. */
export function patternValues(alpha: ArrayLike<number>, signed: boolean, out: Float64Array): void {
  let offset = 0;
  if (signed) for (let i = 0; i < alpha.length; i++) offset -= alpha[i]!;
  out[0] = offset;
  let size = 1;
  for (let i = 0; i < alpha.length; i++) {
    const step = signed ? 2 * alpha[i]! : alpha[i]!;
    for (let k = 0; k < size; k++) out[k + size] = out[k]! + step;
    size *= 2;
  }
}

/** The 2^M levels, ascending. */
export function levelsFromAlpha(alpha: ArrayLike<number>, signed = true): number[] {
  if (alpha.length < MIN_BITS || alpha.length > MAX_BITS) {
    throw new RangeError(`levelsFromAlpha: alpha must have ${MIN_BITS}..${MAX_BITS} entries, got ${alpha.length}`);
  }
  for (let i = 0; i < alpha.length; i++) {
    if (!Number.isFinite(alpha[i]!)) throw new RangeError(`levelsFromAlpha: alpha[${i}] is not finite (${alpha[i]})`);
  }
  const values = new Float64Array(1 << alpha.length);
  patternValues(alpha, signed, values);
  values.sort();
  // Signed level sets are exactly symmetric; remove the rounding that summation order leaves.
  if (signed) {
    const n = values.length;
    for (let k = 0; k < n / 2; k++) {
      const v = (values[n - 1 - k]! - values[k]!) / 2;
      values[k] = -v;
      values[n - 1 - k] = v;
    }
  }
  return Array.from(values);
}

/** Midpoints of adjacent sorted levels: the nearest-level decision thresholds. */
export function thresholdsOf(sortedLevels: ArrayLike<number>): number[] {
  const t: number[] = [];
  for (let j = 0; j + 1 < sortedLevels.length; j++) t.push((sortedLevels[j]! + sortedLevels[j + 1]!) / 2);
  return t;
}
