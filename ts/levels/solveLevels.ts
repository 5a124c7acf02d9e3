/**
 * The global DMBQ solver. The objective has many local minima from M = 4 up, each a different interleaving
 * (order type) of the 2^M sums, so one local descent is not enough. A beam search over M = 1, 2, …:
 *  - continuation: each of the best `beamWidth` local minima of M−1 bits, with the new α inserted at every rank
 *    (geometric mean of its neighbours, or a near-duplicate of one: optima hold close pairs of α; the last rank
 *    with a tiny value is the LBG split, every level becoming a close pair);
 *  - the best uniform grid (so the result is never worse than it) and a family of geometric ratios.
 * Every start gets a few local steps; the 2·beamWidth most promising are converged, and the distinct minima
 * found become the beam for M+1. The result is checked: gradient norm, and Lloyd–Max ≤ DMBQ ≤ uniform.
 */
import type { Distribution } from "./distribution.js";
import { DmbqObjective } from "./dmbqObjective.js";
import { checkBits, levelsFromAlpha, thresholdsOf } from "./levelSet.js";
import { localMinimize, type LocalResult } from "./localSolve.js";
import { lloydMax } from "./lloydMax.js";
import { bestUniformGrid } from "./uniformGrid.js";

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
  /** Extra starting α vectors for the top M (each of length `bits`); used by tests to show start-independence. */
  extraStarts?: number[][];
  /**
   * Local minima kept per M and continued to M+1 (default 6); 2× as many screened starts are converged.
   * Larger is slower and searches wider; the bench compares default and wide beams against random restarts.
   */
  beamWidth?: number;
}

const GEOMETRIC_RATIOS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
const SCREEN_ITERATIONS = 3;
const DEFAULT_BEAM_WIDTH = 6;

function now(): number {
  return globalThis.performance !== undefined ? globalThis.performance.now() : Date.now();
}

function descendingAbs(alpha: ArrayLike<number>): number[] {
  return Array.from(alpha, Math.abs).sort((a, b) => b - a);
}

/** Insert `value` at `rank` of a descending α. */
function inserted(alpha: number[], rank: number, value: number): number[] {
  return [...alpha.slice(0, rank), value, ...alpha.slice(rank)];
}

/** Starting points for M bits given the best (M−1)-bit local minima (empty for M = 1). */
function startsFor(bits: number, signed: boolean, beam: number[][], uniformAlpha: number[]): number[][] {
  const starts: number[][] = [uniformAlpha];
  const clip = uniformAlpha.reduce((s, v) => s + v, 0);
  for (const ratio of GEOMETRIC_RATIOS) {
    const shape = Array.from({ length: bits }, (_, i) => ratio ** i);
    const total = shape.reduce((s, v) => s + v, 0);
    starts.push(shape.map((v) => (v * clip) / total)); // same clip Σα as the uniform grid
  }
  for (const p of beam) {
    for (let rank = 0; rank <= p.length; rank++) {
      const above = rank > 0 ? p[rank - 1]! : undefined;
      const below = rank < p.length ? p[rank]! : undefined;
      if (above !== undefined && below !== undefined) {
        starts.push(inserted(p, rank, Math.sqrt(above * below)));
        // Near-duplicates of a neighbour: optima often hold close pairs of α (two bits sharing one scale).
        starts.push(inserted(p, rank, 0.9 * above));
        starts.push(inserted(p, rank, 1.1 * below));
      } else if (below !== undefined) {
        starts.push(inserted(p, rank, 1.5 * below));
        starts.push(inserted(p, rank, 1.05 * below));
      } else {
        starts.push(inserted(p, rank, 0.5 * above!));
        starts.push(inserted(p, rank, 0.95 * above!));
        starts.push(inserted(p, rank, 1e-3 * above!)); // LBG split: every level becomes a close pair
      }
    }
  }
  return starts;
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

function solveOneM(objective: DmbqObjective, starts: number[][], beamWidth: number): Optimum {
  let iterations = 0;
  const screened = starts.map((s) => {
    const r = localMinimize(objective, s, SCREEN_ITERATIONS);
    iterations += r.iterations;
    return r;
  });
  screened.sort((a, b) => a.mse - b.mse);
  const minima: LocalResult[] = [];
  for (const candidate of screened.slice(0, 2 * beamWidth)) {
    const r = localMinimize(objective, candidate.alpha, 200);
    iterations += r.iterations;
    if (!minima.some((m) => sameMinimum(m, r))) minima.push(r);
  }
  minima.sort((a, b) => a.mse - b.mse);
  return { minima: minima.slice(0, beamWidth), iterations };
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
  const t0 = now();
  const out: LevelSolution[] = [];
  let beam: number[][] = [];
  let iterations = 0;
  for (let bits = 1; bits <= maxBits; bits++) {
    const objective = new DmbqObjective(dist, bits, signed);
    const uniform = bestUniformGrid(dist, bits, signed);
    const starts = startsFor(bits, signed, beam, uniform.alpha);
    if (bits === maxBits && opts.extraStarts !== undefined) {
      for (const [i, s] of opts.extraStarts.entries()) {
        if (s.length !== bits || !s.every(Number.isFinite)) throw new RangeError(`solveLevels: extraStarts[${i}] must be ${bits} finite numbers`);
        starts.push(s);
      }
    }
    const { minima, iterations: used } = solveOneM(objective, starts, beamWidth);
    iterations += used;
    const result = minima[0]!;
    const alpha = descendingAbs(result.alpha);
    beam = minima.map((m) => descendingAbs(m.alpha));
    if (!boundsForAll && bits < maxBits) continue; // only the seed is needed from lower M
    const levels = levelsFromAlpha(alpha, signed);
    const lm = lloydMax(dist, levels.length, uniform.levels);
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
