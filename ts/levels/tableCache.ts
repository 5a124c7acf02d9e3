/**
 * Memoized level tables keyed by (law, M, signedness), so training never re-solves the same problem.
 * Unsigned tables of a symmetric law are fitted to |X| (see `nonNegativeLaw`).
 */
import { isLawName, law, nonNegativeLaw, LAW_NAMES, type LawName } from "./laws.js";
import { checkBits } from "./levelSet.js";
import { solveLevels, type LevelSolution } from "./solveLevels.js";

/**
 * Tables are solved once per process, so they can afford a wider search than an interactive solve (~0.3 s for
 * M = 8). For the standard laws the default's known-optimum starts already give the best-known minimum; the wider
 * beam and basin hopping are kept so that a table is never worse than the wider search (docs/RESULTS.md).
 */
export const CACHE_BEAM_WIDTH = 24;
export const CACHE_POLISH_ROUNDS = 3;

const cache = new Map<string, LevelSolution>();
let solves = 0;

function cacheKey(lawName: LawName, bits: number, signed: boolean): string {
  return `${lawName}|${bits}|${signed ? "signed" : "unsigned"}`;
}

/** The law a (law, signedness) table is fitted to: signed tables use the law itself, unsigned its fold |X|. */
export function lawForTable(lawName: LawName, signed: boolean): ReturnType<typeof law> {
  return signed ? law(lawName) : nonNegativeLaw(lawName);
}

/** The table for (law, bits, signed), solved once per process and then returned from memory (the same object). */
export function cachedLevels(lawName: LawName, bits: number, signed: boolean): LevelSolution {
  if (!isLawName(lawName)) throw new RangeError(`cachedLevels: unknown law "${String(lawName)}" (expected one of ${LAW_NAMES.join(", ")})`);
  checkBits(bits, "cachedLevels");
  if (typeof signed !== "boolean") throw new TypeError(`cachedLevels: signed must be a boolean, got ${String(signed)}`);
  const key = cacheKey(lawName, bits, signed);
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const solution = Object.freeze(solveLevels(lawForTable(lawName, signed), bits, { signed, beamWidth: CACHE_BEAM_WIDTH, polishRounds: CACHE_POLISH_ROUNDS })) as LevelSolution;
  solves++;
  cache.set(key, solution);
  return solution;
}

/** Number of tables solved (cache misses) since the last clear. */
export function levelCacheSolveCount(): number {
  return solves;
}

export function clearLevelCache(): void {
  cache.clear();
  solves = 0;
}
