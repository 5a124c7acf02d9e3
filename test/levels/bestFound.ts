/**
 * Best-found DMBQ minima of the laws outside the best-known table (ts/levels/verificationLaws.ts), from the offline
 * search `npm run bench:levels -- --search --laws all`. Test and bench fixtures only: the solver never reads them.
 */
import { BEST_FOUND_DATA } from "./bestFoundData.js";

export interface BestFound {
  /** A `VERIFICATION_LAWS` tag. */
  tag: string;
  signed: boolean;
  bits: number;
  /** Descending. */
  alpha: readonly number[];
  /** Exact MSE of `alpha` (recomputed by the tests). */
  mse: number;
}

export const BEST_FOUND: readonly BestFound[] = BEST_FOUND_DATA;

export function bestFound(tag: string, bits: number): BestFound | undefined {
  return BEST_FOUND.find((b) => b.tag === tag && b.bits === bits);
}
