/**
 * The global DMBQ solver. The objective has many local minima from M = 4 up, each a different interleaving
 * (order type) of the 2^M sums, so one local descent is not enough. A beam search over M = 1, 2, …:
 *  - continuation: each of the best `beamWidth` local minima of M−1 bits, with the new α inserted at every rank
 *    (geometric mean of its neighbours, or a near-duplicate of one: optima hold close pairs of α; the last rank
 *    with a tiny value is the LBG split, every level becoming a close pair);
 *  - the best uniform grid (so the result is never worse than it) and a family of geometric ratios.
 * Every start gets two local steps; the 2·beamWidth most promising are converged, and the distinct minima
 * found become the beam for M+1. At the reported M, the verified best-known α of the standard laws
 * (`knownOptima.ts`, rescaled by E|X|) and any caller-given starts are converged too, outside the beam: from M ≥ 6
 * the continuation alone misses the best arrangement of the standard laws by 1–4% (docs/RESULTS.md).
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
   * Local minima kept per M and continued to M+1 (default 6); 2× as many screened starts are converged.
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
const DEFAULT_BEAM_WIDTH = 6;
const DEFAULT_POLISH_ROUNDS = 0;

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

function solveOneM(objective: DmbqObjective, starts: number[][], beamWidth: number): Optimum {
  const minima: LocalResult[] = [];
  const iterations = screenAndConverge(objective, starts, 2 * beamWidth, minima);
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
    const { minima, iterations: used } = solveOneM(objective, starts, beamWidth);
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
