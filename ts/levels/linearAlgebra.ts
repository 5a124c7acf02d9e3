/** Small dense and tridiagonal solvers for the Newton and least-squares steps (M ≤ 8, so no library needed). */

/**
 * Solves A x = b for symmetric positive definite A (n × n, row-major) by Cholesky, in place of x.
 * Returns false when A is not (numerically) positive definite.
 */
export function choleskySolve(a: Float64Array, b: Float64Array, n: number, x: Float64Array, scratch?: Float64Array): boolean {
  // `scratch` (n² + n entries) lets a hot loop reuse one buffer for the factor and the forward solve.
  const work = scratch !== undefined && scratch.length >= n * n + n ? scratch : new Float64Array(n * n + n);
  const l = work;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        if (!(s > 1e-14 * Math.max(1, Math.abs(a[i * n + i]!)))) return false;
        l[i * n + i] = Math.sqrt(s);
      } else {
        l[i * n + j] = s / l[j * n + j]!;
      }
    }
  }
  const y = n * n; // forward-solve result at work[y + i]
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= l[i * n + k]! * work[y + k]!;
    work[y + i] = s / l[i * n + i]!;
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = work[y + i]!;
    for (let k = i + 1; k < n; k++) s -= l[k * n + i]! * x[k]!;
    x[i] = s / l[i * n + i]!;
  }
  return true;
}

/**
 * Solves a symmetric tridiagonal system (diagonal d, off-diagonal e with e[j] coupling j and j+1) by an LDLᵀ sweep.
 * Returns false when a pivot is not positive (the matrix is not positive definite).
 */
export function tridiagonalSpdSolve(d: Float64Array, e: Float64Array, b: Float64Array, x: Float64Array): boolean {
  const n = d.length;
  const pivot = new Float64Array(n);
  const y = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const coupling = j > 0 ? e[j - 1]! : 0;
    const p = d[j]! - (j > 0 ? (coupling * coupling) / pivot[j - 1]! : 0);
    if (!(p > 0)) return false;
    pivot[j] = p;
    y[j] = b[j]! - (j > 0 ? (coupling / pivot[j - 1]!) * y[j - 1]! : 0);
  }
  for (let j = n - 1; j >= 0; j--) {
    x[j] = (y[j]! - (j + 1 < n ? e[j]! * x[j + 1]! : 0)) / pivot[j]!;
  }
  return true;
}
