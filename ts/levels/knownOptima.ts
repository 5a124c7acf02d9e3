/**
 * Verified best-known DMBQ α of the six standard unit-scale laws, M = 3…8, used as extra starts of the solver.
 *
 * Why: from M ≥ 6 the objective has very many narrow basins (one per arrangement of the 2^M sums), and the optimal
 * arrangement changes shape from one M to the next (e.g. Gaussian M = 7 and 8 put three nearly equal α on top), so
 * neither continuation over M nor a cheap basin hopping reaches it reliably. These values come from an offline
 * basin-hopping search (`npm run bench:levels -- --search`, minutes per case; see docs/RESULTS.md); the solver
 * refines each start like any other and checks the result, so a start can only lower the error, never be trusted.
 * For another law (histogram, clipped law, other scale) they are rescaled by E|X| and serve as structured starts.
 */
import type { Distribution } from "./distribution.js";
import { KNOWN_OPTIMA_DATA } from "./knownOptimaData.js";

export interface KnownOptimum {
  /** `law(name)` name for signed tables, `nonNegativeLaw(name)` name for unsigned ones. */
  law: string;
  signed: boolean;
  bits: number;
  /** Descending. */
  alpha: readonly number[];
  /** Exact MSE of `alpha` for the unit-scale law (the best-known value). */
  mse: number;
  /** E|X| of the unit-scale law, the unit the starts are rescaled by. */
  meanAbs: number;
}

export const KNOWN_OPTIMA: readonly KnownOptimum[] = KNOWN_OPTIMA_DATA;

/** The best-known optimum of a standard law, or undefined. */
export function knownOptimum(lawName: string, bits: number, signed: boolean): KnownOptimum | undefined {
  return KNOWN_OPTIMA.find((k) => k.law === lawName && k.bits === bits && k.signed === signed);
}

/** Every known α of this M and signedness, rescaled to `dist` by E|X| (the law's own α unscaled). */
export function knownOptimumStarts(dist: Distribution, bits: number, signed: boolean): number[][] {
  const meanAbs = dist.meanAbs();
  if (!(meanAbs > 0) || !Number.isFinite(meanAbs)) return [];
  const starts: number[][] = [];
  for (const k of KNOWN_OPTIMA) {
    if (k.bits !== bits || k.signed !== signed) continue;
    const scale = k.law === dist.name ? 1 : meanAbs / k.meanAbs;
    starts.push(k.alpha.map((a) => a * scale));
  }
  return starts;
}
