/**
 * Laws outside the best-known table, on which the solver's global search is checked (bench `--verify`, `--search`,
 * and the test fixtures): truncated Laplace/Gaussian (signed), truncated half-laws (unsigned), and 2,048-bin
 * histograms of seeded samples of each law. Deterministic: the same laws on every machine.
 */
import type { Distribution } from "./distribution.js";
import { histogramDistribution } from "./histogram.js";
import { law, nonNegativeLaw, type LawName } from "./laws.js";
import { seededRandom } from "../util/seededRandom.js";

export interface VerificationLaw {
  /** Short tag for `--only`, e.g. "trunc-gaussian-2.5" or "hist-laplace". */
  tag: string;
  signed: boolean;
  make: () => Distribution;
}

/** Truncation points, in units of the law's scale. */
export const TRUNCATION_POINTS: readonly number[] = [1.5, 2.5, 4];
export const HISTOGRAM_BINS = 2048;
export const HISTOGRAM_SAMPLES = 200_000;

/** One draw of the named unit-scale law (signed) or its fold |X| (unsigned), by inversion / Box–Muller. */
function draw(name: LawName, signed: boolean, rand: () => number): number {
  const u = rand();
  let x: number;
  switch (name) {
    case "laplace":
      x = u < 0.5 ? Math.log(2 * u + 1e-300) : -Math.log(2 - 2 * u + 1e-300);
      break;
    case "gaussian":
      x = Math.sqrt(-2 * Math.log(u + 1e-300)) * Math.cos(2 * Math.PI * rand());
      break;
    case "uniform":
      x = 2 * u - 1;
      break;
    case "half-gaussian":
      x = Math.abs(Math.sqrt(-2 * Math.log(u + 1e-300)) * Math.cos(2 * Math.PI * rand()));
      break;
    case "exponential":
      x = -Math.log(1 - u);
      break;
  }
  return signed ? x : Math.abs(x);
}

/** `samples` seeded draws of the named unit-scale law (signed) or its fold (unsigned). */
export function sampleDraws(name: LawName, signed: boolean, seed: number, samples = HISTOGRAM_SAMPLES): Float64Array {
  const rand = seededRandom(seed);
  const xs = new Float64Array(samples);
  for (let i = 0; i < samples; i++) xs[i] = draw(name, signed, rand);
  return xs;
}

/** A `bins`-bin histogram of `samples` seeded draws, over [min, max] of the draws (as the worker bins a layer). */
export function sampleHistogram(name: LawName, signed: boolean, seed: number, samples = HISTOGRAM_SAMPLES, bins = HISTOGRAM_BINS): Distribution {
  const xs = sampleDraws(name, signed, seed, samples);
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of xs) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  if (!signed) lo = 0;
  const counts = new Array<number>(bins).fill(0);
  for (const x of xs) counts[Math.min(bins - 1, Math.floor(((x - lo) / (hi - lo)) * bins))]!++;
  return histogramDistribution(Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins), counts);
}

export const VERIFICATION_LAWS: readonly VerificationLaw[] = [
  ...(["laplace", "gaussian"] as const).flatMap((name) =>
    TRUNCATION_POINTS.map((c) => ({ tag: `trunc-${name}-${c}`, signed: true, make: () => law(name, { clip: c, clipMode: "truncate" }) })),
  ),
  ...(["half-gaussian", "exponential"] as const).flatMap((name) =>
    TRUNCATION_POINTS.map((c) => ({ tag: `trunc-${name}-${c}`, signed: false, make: () => nonNegativeLaw(name, { clip: c, clipMode: "truncate" }) })),
  ),
  ...(["laplace", "gaussian", "uniform"] as const).map((name, i) => ({ tag: `hist-${name}`, signed: true, make: () => sampleHistogram(name, true, 101 + i) })),
  ...(["half-gaussian", "exponential"] as const).map((name, i) => ({ tag: `hist-${name}`, signed: false, make: () => sampleHistogram(name, false, 201 + i) })),
  // Held out: added after the solver's constants were chosen on the laws above, to check they generalize.
  { tag: "clamp-laplace-2.5", signed: true, make: () => law("laplace", { clip: 2.5, clipMode: "clamp" }) },
  { tag: "clamp-gaussian-2.5", signed: true, make: () => law("gaussian", { clip: 2.5, clipMode: "clamp" }) },
  { tag: "clamp-exponential-4", signed: false, make: () => nonNegativeLaw("exponential", { clip: 4, clipMode: "clamp" }) },
  { tag: "trunc-gaussian-3", signed: true, make: () => law("gaussian", { clip: 3, clipMode: "truncate" }) },
  { tag: "trunc-laplace-6", signed: true, make: () => law("laplace", { clip: 6, clipMode: "truncate" }) },
  { tag: "hist50k-laplace", signed: true, make: () => sampleHistogram("laplace", true, 301, 50_000) },
  { tag: "hist50k-gaussian", signed: true, make: () => sampleHistogram("gaussian", true, 302, 50_000) },
];

export function verificationLaw(tag: string): VerificationLaw {
  const v = VERIFICATION_LAWS.find((x) => x.tag === tag);
  if (v === undefined) throw new RangeError(`verificationLaw: unknown tag "${tag}" (expected one of ${VERIFICATION_LAWS.map((x) => x.tag).join(", ")})`);
  return v;
}
