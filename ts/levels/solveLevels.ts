/**
 * The global DMBQ solver. The objective has many local minima from M = 4 up, each a different interleaving
 * (order type) of the 2^M sums, so one local descent is not enough. A beam search over M = 1, 2, …:
 *  - refinement continuation: each of the best `beamWidth` local minima of M−1 bits with a new finest bit that
 *    halves the lattice step and every α's offset from it (`refinementStarts`), converged: the optimal arrangement
 *    at M is the refined optimum of M−1 for the truncated laws, half-laws and histograms checked (docs/RESULTS.md);
 *  - plain insertion: the new α at every rank (geometric mean of its neighbours, or a near-duplicate of one; the
 *    last rank with a tiny value is the LBG split, every level becoming a close pair);
 *  - the best uniform grid (so the result is never worse than it) and a family of geometric ratios.
 * Screened starts get two local steps and the 2·beamWidth most promising are converged; the distinct minima found
 * become the beam for M+1. At the reported M, the verified best-known α of the standard laws (`knownOptima.ts`,
 * rescaled by E|X|) and any caller-given starts are converged too, outside the beam, then a ripple hop nudges each
 * α of the best (`rippleHop`: a histogram's noisy density leaves clusters of close minima).
 * The result is checked: gradient norm, and Lloyd–Max ≤ DMBQ ≤ uniform.
 */
import type { Distribution } from "./distribution.js";
import { DmbqObjective } from "./dmbqObjective.js";
import { checkBits, levelsFromAlpha, thresholdsOf } from "./levelSet.js";
import { localMinimize, type LocalResult } from "./localSolve.js";
import { lloydMax } from "./lloydMax.js";
import { bestUniformGrid } from "./uniformGrid.js";
import { knownOptimumStarts } from "./knownOptima.js";

export interface LevelSolution {
  bits: number;
  signed: boolean;
  /** Descending, ≥ 0. */
  alpha: number[];
  /** The 2^M levels, ascending. */
  levels: number[];
  /** 2^M − 1 midpoints between adjacent levels. */
  thresholds: number[];
  /** The top level, Σ α. */
  clip: number;
  mse: number;
  /** Unconstrained optimal quantizer with 2^M levels (lower bound). */
  lloydMaxMse: number;
  /** Best uniform grid with 2^M levels (upper bound). */
  uniformMse: number;
  /** (mse − lloydMaxMse) / lloydMaxMse. */
  gapToLloydMax: number;
  /** Local-solver iterations summed over all starts and all M of the continuation. */
  iterations: number;
  solveMs: number;
  /** ‖∇_α MSE‖₂ at the solution (projected onto α ≥ 0 for unsigned). */
  gradientNorm: number;
}

export interface SolveOptions {
  /** Bases ±1 (weights, default) or {0,1} (activations; needs a law on [0, ∞)). */
  signed?: boolean;
  /**
   * Extra starting α vectors for the top M (each of length `bits`), each converged on its own; the result is the
   * best of them and the search. Used by tests to show start-independence.
   */
  extraStarts?: number[][];
  /**
   * Local minima kept per M and continued to M+1 (default 4; 6 before the refinement continuation, which made a
   * wider beam unnecessary: docs/RESULTS.md); 2× as many screened starts are converged, plus 2 refinements each.
   * Larger is slower and searches wider; the bench compares default and wide beams against random restarts.
   */
  beamWidth?: number;
  /**
   * Rounds of basin hopping at each reported M (default 0): from the best minimum, every move α_i ← r·α_j
   * (r ∈ {½, ≈1, 2}) is screened and the best few converged; rounds repeat while they find a lower minimum.
   * It does not feed the beam, so `solveLevels(d, M)` equals `solveLevelsAllBits(d, ·)[M − 1]` for the same options.
   */
  polishRounds?: number;
  /**
   * Also start from the verified best-known α of the standard unit-scale laws of the same signedness (default
   * true), rescaled by E|X| to the law at hand (see `knownOptima.ts`). They are refined and checked like any
   * start; for those laws they are what makes the default reach the best-known minimum at M ≥ 6.
   */
  knownStarts?: boolean;
}

const GEOMETRIC_RATIOS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/** Moves of the basin hopping: a new α_i at half, nearly equal to, or double another α_j. */
const HOP_RATIOS = [0.5, 1.02, 2];
const HOPS_CONVERGED = 2;
const SCREEN_ITERATIONS = 2; // the default beam finds the same minima as with 3 (every law, M ≤ 8), ~20% faster
const CONVERGE_ITERATIONS = 200;
const DEFAULT_BEAM_WIDTH = 4;
const DEFAULT_POLISH_ROUNDS = 0;
/** An α whose ratio to the finest step is within this of m + ½ has two nearest multiples (`refinementStarts`). */
const AMBIGUITY = 0.2;
/** At most this many ambiguous α are read both ways (2^this rounding variants per parent). */
const AMBIGUOUS_ROUNDINGS = 2;
/** The new α of a refinement is (j + ½)·step for j < this (j = 0: the plain halving). */
const REFINEMENT_OFFSETS = 4;
/** Refinement starts converged per parent: the canonical one and the best other by its scale-fitted error. */
const REFINEMENTS_CONVERGED = 2;
/** Ripple hop (`rippleHop`): nudges, from which M, and the iteration cap (slow alternating phases on histograms). */
const RIPPLE_FACTORS = [0.98, 1.01];
const RIPPLE_MIN_BITS = 5;
const RIPPLE_ITERATIONS = 400;

function now(): number {
  return globalThis.performance !== undefined ? globalThis.performance.now() : Date.now();
}

function descendingAbs(alpha: ArrayLike<number>): number[] {
  return Array.from(alpha, Math.abs).sort((a, b) => b - a);
}

/** `alpha` with `value` added, descending. */
function withValue(alpha: number[], value: number): number[] {
  return [...alpha, value].sort((a, b) => b - a);
}

/** The uniform grid and geometric α shapes, all with the clip Σα of the best uniform grid. */
function shapeStarts(bits: number, uniformAlpha: number[]): number[][] {
  const starts: number[][] = [uniformAlpha];
  const clip = uniformAlpha.reduce((s, v) => s + v, 0);
  const scaled = (shape: number[]): number[] => {
    const total = shape.reduce((s, v) => s + v, 0);
    return shape.map((v) => (v * clip) / total);
  };
  for (const ratio of GEOMETRIC_RATIOS) starts.push(scaled(Array.from({ length: bits }, (_, i) => ratio ** i)));
  return starts;
}

/**
 * Continuation starts for M bits from one (M−1)-bit local minimum `p` (descending): the new α between each pair of
 * neighbours (geometric mean, or close to one of them), above the top, below the bottom (down to the LBG split,
 * every level becoming a close pair).
 */
function insertionStarts(p: number[]): number[][] {
  const values: number[] = [1.5 * p[0]!, 1.05 * p[0]!, 0.5 * p[p.length - 1]!, 0.95 * p[p.length - 1]!, 1e-3 * p[p.length - 1]!];
  for (let rank = 1; rank < p.length; rank++) {
    const above = p[rank - 1]!;
    const below = p[rank]!;
    values.push(Math.sqrt(above * below), 0.9 * above, 1.1 * below);
  }
  return values.map((v) => withValue(p, v));
}

/** Keeps the first of starts equal to 12 digits (insertions from different ranks often coincide). */
function distinctStarts(starts: number[][]): number[][] {
  const seen = new Set<string>();
  return starts.filter((s) => {
    const key = s.map((v) => v.toPrecision(12)).join(",");
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Starting points for M bits given the best (M−1)-bit local minima (empty for M = 1). */
function startsFor(bits: number, beam: number[][], uniformAlpha: number[]): number[][] {
  const starts = shapeStarts(bits, uniformAlpha);
  for (const p of beam) starts.push(...insertionStarts(p));
  return distinctStarts(starts);
}

interface Optimum {
  /** Distinct local minima, best first (at most the beam width). */
  minima: LocalResult[];
  iterations: number;
}

function sameMinimum(a: LocalResult, b: LocalResult): boolean {
  const x = descendingAbs(a.alpha);
  const y = descendingAbs(b.alpha);
  return x.every((v, i) => Math.abs(v - y[i]!) <= 1e-6 * Math.max(1e-12, Math.abs(v)));
}

/** Adds `r` to `minima` unless it is one of them; true when it is new. */
function addMinimum(minima: LocalResult[], r: LocalResult): boolean {
  if (minima.some((m) => sameMinimum(m, r))) return false;
  minima.push(r);
  return true;
}

/** Screens every start with a few local steps and converges the `keep` most promising. */
function screenAndConverge(objective: DmbqObjective, starts: number[][], keep: number, minima: LocalResult[]): number {
  let iterations = 0;
  const screened = starts.map((s) => {
    const r = localMinimize(objective, s, SCREEN_ITERATIONS);
    iterations += r.iterations;
    return r;
  });
  screened.sort((a, b) => a.mse - b.mse);
  for (const candidate of screened.slice(0, keep)) {
    const r = localMinimize(objective, candidate.alpha, CONVERGE_ITERATIONS);
    iterations += r.iterations;
    addMinimum(minima, r);
  }
  minima.sort((a, b) => a.mse - b.mse);
  return iterations;
}

/** Basin-hopping moves from a local minimum: α_i ← r·α_j for every i ≠ j and r in HOP_RATIOS. */
function hopStarts(alpha: number[]): number[][] {
  const starts: number[][] = [];
  for (let i = 0; i < alpha.length; i++) {
    for (let j = 0; j < alpha.length; j++) {
      if (i === j) continue;
      for (const r of HOP_RATIOS) {
        const moved = [...alpha];
        moved[i] = r * alpha[j]!;
        starts.push(moved.sort((a, b) => b - a));
      }
    }
  }
  return distinctStarts(starts);
}

/**
 * Refinement insertion, the continuation step that keeps an optimum's structure from M−1 to M bits. Optimal level
 * sets are near a lattice whose step is the finest α, with the other α off the lattice by fractions of that step
 * (the near-coincident sums that shape the level density). The new bit halves the step (α_M = α_min/2), so each old
 * α keeps its multiple of the old step and halves its offset from it: the same coincidence pattern one level finer.
 * A plain insertion keeps the old offsets, which are then twice too large, and lands in a worse arrangement
 * (truncated Laplace/Gaussian at ±2.5, ±4: 5–47% above the refined start's minimum; docs/RESULTS.md).
 */
export function refinementStarts(p: readonly number[]): number[][] {
  if (p.length === 0) throw new RangeError("refinementStarts: alpha must have at least one entry");
  p.forEach((v, i) => {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`refinementStarts: alpha[${i}] must be a finite number >= 0, got ${v}`);
  });
  // The finest step is the smallest positive α (an unsigned minimum can hold α = 0 at its bound).
  const step = p.reduce((m, v) => (v > 0 && v < m ? v : m), Infinity);
  if (!Number.isFinite(step)) return [withValue([...p], 0)];
  // An α about halfway between two multiples has no clear nearest one: both readings are tried for the (at most
  // AMBIGUOUS_ROUNDINGS) most ambiguous, giving up to 2^AMBIGUOUS_ROUNDINGS starts.
  const ratio = p.map((v) => v / step);
  const ambiguous = ratio
    .map((r, i) => ({ i, d: Math.abs(r - Math.floor(r) - 0.5) }))
    .filter((x) => x.d < AMBIGUITY)
    .sort((a, b) => a.d - b.d)
    .slice(0, AMBIGUOUS_ROUNDINGS)
    .map((x) => x.i);
  const starts: number[][] = [];
  for (let flips = 0; flips < 1 << ambiguous.length; flips++) {
    const refined = ratio.map((r, i) => {
      const k = ambiguous.indexOf(i);
      const multiple = k >= 0 && flips & (1 << k) ? (Math.round(r) === Math.floor(r) ? Math.ceil(r) : Math.floor(r)) : Math.round(r);
      return (multiple + (r - multiple) / 2) * step;
    });
    for (let j = 0; j < REFINEMENT_OFFSETS; j++) starts.push(withValue(refined, (j + 0.5) * step));
  }
  return starts;
}

/**
 * `alpha` rescaled by the best common factor for its own cells (c = Σ l·m1 / Σ l²·m0, the least-squares scale of
 * the levels at a fixed assignment), and the error there: ranks continuation starts whose scale is off (a copied
 * α raises the top level) by the error of their shape.
 */
function fitScale(objective: DmbqObjective, alpha: number[]): { s: number[]; f: number } {
  const f0 = objective.evaluate(alpha, false);
  const { sortedLevels, cells } = objective;
  let num = 0;
  let den = 0;
  for (let c = 0; c < objective.n; c++) {
    const l = sortedLevels[c]!;
    num += l * cells.m1[c]!;
    den += l * l * cells.m0[c]!;
  }
  const scale = num / den;
  if (!(scale > 0) || !Number.isFinite(scale)) return { s: alpha, f: f0 };
  const scaled = alpha.map((v) => v * scale);
  const f1 = objective.evaluate(scaled, false);
  return f1 < f0 ? { s: scaled, f: f1 } : { s: alpha, f: f0 };
}

function solveOneM(objective: DmbqObjective, starts: number[][], refined: number[][][], beamWidth: number): Optimum {
  const minima: LocalResult[] = [];
  let iterations = screenAndConverge(objective, starts, 2 * beamWidth, minima);
  // Refined continuations are converged, not screened: their basins are narrow and a 2-step screen ranks them
  // poorly. Per parent: the canonical refinement (nearest multiples, α_min/2) and the best of the others by their
  // scale-fitted error.
  const ranked = refined.flatMap(([canonical, ...others]) => [
    { s: canonical! },
    ...others
      .map((s) => fitScale(objective, s))
      .sort((a, b) => a.f - b.f)
      .slice(0, REFINEMENTS_CONVERGED - 1),
  ]);
  for (const { s } of ranked) {
    const r = localMinimize(objective, s, CONVERGE_ITERATIONS);
    iterations += r.iterations;
    addMinimum(minima, r);
  }
  minima.sort((a, b) => a.mse - b.mse);
  return { minima: minima.slice(0, beamWidth), iterations };
}

/**
 * Basin hopping from the best minimum: continuation alone misses minima whose (M−1)-bit parent is not in the beam;
 * moving one α onto another's scale (equal, half, double) reaches neighbouring order types. Returns the best found.
 */
function polish(objective: DmbqObjective, found: LocalResult[], rounds: number): Optimum {
  const minima = [...found];
  let iterations = 0;
  for (let round = 0; round < rounds && objective.bits >= 3; round++) {
    const best = minima[0]!.mse;
    iterations += screenAndConverge(objective, hopStarts(descendingAbs(minima[0]!.alpha)), HOPS_CONVERGED, minima);
    if (!(minima[0]!.mse < best * (1 - 1e-12))) break;
  }
  return { minima, iterations };
}

/**
 * Ripple hop at the reported M: each α nudged by −2% and +1% in turn, every nudge converged. A histogram's density
 * is piecewise constant and noisy, so around the best arrangement lie clusters of nearby minima a few tenths of a
 * percent apart (2,048-bin histograms of 200k draws, M = 6..8: up to 0.16%); a 2-step screen cannot rank such close
 * starts, so all 2M are converged (bounded iterations each). On analytic laws it finds nothing and costs ~2M local solves.
 */
function rippleHop(objective: DmbqObjective, minima: LocalResult[]): number {
  let iterations = 0;
  const alpha = descendingAbs(minima[0]!.alpha);
  for (let i = 0; i < alpha.length; i++) {
    for (const factor of RIPPLE_FACTORS) {
      const start = [...alpha];
      start[i] = start[i]! * factor;
      const r = localMinimize(objective, start, RIPPLE_ITERATIONS);
      iterations += r.iterations;
      addMinimum(minima, r);
    }
  }
  minima.sort((a, b) => a.mse - b.mse);
  return iterations;
}

function checkSignedness(dist: Distribution, signed: boolean): void {
  if (typeof signed !== "boolean") throw new TypeError(`solveLevels: signed must be a boolean, got ${String(signed)}`);
  if (!signed && dist.support[0] < 0) {
    throw new RangeError(
      `solveLevels: unsigned levels ({0,1} bases) need a law on [0, ∞), but ${dist.name} has support starting at ${dist.support[0]}`,
    );
  }
}

/** DMBQ tables for every M = 1..maxBits (the continuation computes them all anyway). */
export function solveLevelsAllBits(dist: Distribution, maxBits: number, opts: SolveOptions = {}): LevelSolution[] {
  return solveChain(dist, maxBits, opts, true);
}

function solveChain(dist: Distribution, maxBits: number, opts: SolveOptions, boundsForAll: boolean): LevelSolution[] {
  checkBits(maxBits, "solveLevels");
  const signed = opts.signed ?? true;
  checkSignedness(dist, signed);
  const beamWidth = opts.beamWidth ?? DEFAULT_BEAM_WIDTH;
  if (!Number.isInteger(beamWidth) || beamWidth < 1) throw new RangeError(`solveLevels: beamWidth must be an integer >= 1, got ${beamWidth}`);
  const polishRounds = opts.polishRounds ?? DEFAULT_POLISH_ROUNDS;
  if (!Number.isInteger(polishRounds) || polishRounds < 0) throw new RangeError(`solveLevels: polishRounds must be an integer >= 0, got ${polishRounds}`);
  const useKnown = opts.knownStarts ?? true;
  if (typeof useKnown !== "boolean") throw new TypeError(`solveLevels: knownStarts must be a boolean, got ${String(useKnown)}`);
  const extraStarts = opts.extraStarts ?? [];
  for (const [i, s] of extraStarts.entries()) {
    if (s.length !== maxBits || !s.every(Number.isFinite)) throw new RangeError(`solveLevels: extraStarts[${i}] must be ${maxBits} finite numbers`);
  }
  const t0 = now();
  const out: LevelSolution[] = [];
  let beam: number[][] = [];
  let iterations = 0;
  for (let bits = 1; bits <= maxBits; bits++) {
    const objective = new DmbqObjective(dist, bits, signed);
    const uniform = bestUniformGrid(dist, bits, signed);
    const starts = startsFor(bits, beam, uniform.alpha);
    const { minima, iterations: used } = solveOneM(objective, starts, beam.map(refinementStarts), beamWidth);
    iterations += used;
    beam = minima.map((m) => descendingAbs(m.alpha));
    if (!boundsForAll && bits < maxBits) continue; // only the seed is needed from lower M
    // Known optima and caller-given starts are converged on their own, after the beam is fixed: they can only
    // lower the result, never crowd a start out of the beam.
    const ownStarts = [...(useKnown ? knownOptimumStarts(dist, bits, signed) : []), ...(bits === maxBits ? extraStarts : [])];
    for (const s of ownStarts) {
      const r = localMinimize(objective, s, CONVERGE_ITERATIONS);
      iterations += r.iterations;
      addMinimum(minima, r);
    }
    minima.sort((a, b) => a.mse - b.mse);
    if (bits >= RIPPLE_MIN_BITS) iterations += rippleHop(objective, minima);
    const polished = polish(objective, minima, polishRounds);
    iterations += polished.iterations;
    const result = polished.minima[0]!;
    const alpha = descendingAbs(result.alpha);
    const levels = levelsFromAlpha(alpha, signed);
    let lm = lloydMax(dist, levels.length, uniform.levels);
    // Unique for log-concave laws; a histogram (empty bins, several modes) can trap the descent from the uniform
    // grid above the DMBQ error. Descending from the DMBQ levels then gives a lower (still local) Lloyd–Max.
    if (lm.mse > result.mse) lm = lloydMax(dist, levels.length, levels);
    out.push({
      bits,
      signed,
      alpha,
      levels,
      thresholds: thresholdsOf(levels),
      clip: levels[levels.length - 1]!,
      mse: result.mse,
      lloydMaxMse: lm.mse,
      uniformMse: uniform.mse,
      gapToLloydMax: lm.mse > 0 ? (result.mse - lm.mse) / lm.mse : 0,
      iterations,
      solveMs: now() - t0,
      gradientNorm: result.gradientNorm,
    });
  }
  return out;
}

/** The DMBQ table of one bit-width: α ≥ 0 minimizing E[(X − q(X))²] over the 2^M multi-bit levels. */
export function solveLevels(dist: Distribution, bits: number, opts: SolveOptions = {}): LevelSolution {
  const all = solveChain(dist, checkBits(bits, "solveLevels"), opts, false);
  return all[all.length - 1]!;
}
