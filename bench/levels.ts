/**
 * Level-optimizer benchmark and tables (npm run bench:levels [-- --tables] [-- --verify]).
 *   default   median solve time for M = 2, 4, 8 per law and for a 2,048-bin histogram (a table)
 *   --tables  Markdown tables for docs/RESULTS.md: Laplace and Gaussian, M = 1..8: α, MSE, Lloyd–Max, uniform
 *             (the table cache's search: beam width 24 and 3 rounds of basin hopping)
 *   --verify  global-optimum check: the default vs the best-known values (knownOptima.ts), the search without the
 *             known starts, the cache's wider search and the best of many random restarts; then the laws outside
 *             that table (truncated, truncated half-laws, histograms of samples; verificationLaws.ts), M = 6..8, vs
 *             the best found by `--search --laws` (test/levels/bestFound.ts) [--other-only: that table alone]
 *   --search  the offline search that establishes the best-known values: population basin hopping (random scaling,
 *             α_i ← r·α_j, reflection across the hyperplane where two adjacent levels swap), exact local solves,
 *             [--seconds S per case (default 60)] [--seed N] [--only law:s|u:M,...] [--fresh: not seeded by the
 *             known optima, an independent confirmation]; prints knownOptimaData.ts (the best of found and known);
 *             with --laws tag,...|all [--bits 6,7,8]: the laws of verificationLaws.ts, prints test/levels/bestFoundData.ts
 */
import { loadavg } from "node:os";
import {
  histogramDistribution,
  law,
  nonNegativeLaw,
  solveLevels,
  solveLevelsAllBits,
  LAW_NAMES,
  type Distribution,
} from "../ts/levels/index.js";
import { DmbqObjective } from "../ts/levels/dmbqObjective.js";
import { localMinimize } from "../ts/levels/localSolve.js";
import { CACHE_BEAM_WIDTH, CACHE_POLISH_ROUNDS } from "../ts/levels/tableCache.js";
import { KNOWN_OPTIMA, knownOptimum, knownOptimumStarts } from "../ts/levels/knownOptima.js";
import { seededRandom as mulberry32 } from "../ts/util/seededRandom.js";
import { VERIFICATION_LAWS, verificationLaw } from "../ts/levels/verificationLaws.js";
import { BEST_FOUND, bestFound, type BestFound } from "../test/levels/bestFound.js";

const args = process.argv.slice(2);


/** 2,048-bin histogram of 200k Laplace draws, the size the worker sends. */
function laplaceHistogram(): Distribution {
  const rand = mulberry32(2024);
  const bins = 2048;
  const lo = -14;
  const hi = 14;
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < 200_000; i++) {
    const u = rand();
    const x = u < 0.5 ? Math.log(2 * u + 1e-300) : -Math.log(2 - 2 * u + 1e-300);
    counts[Math.min(bins - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * bins)))]!++;
  }
  return histogramDistribution(Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins), counts);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timing(): void {
  const cases: [string, Distribution, boolean][] = [
    ...LAW_NAMES.filter((n) => n !== "half-gaussian" && n !== "exponential").map((n) => [n, law(n), true] as [string, Distribution, boolean]),
    ["half-gaussian (unsigned)", nonNegativeLaw("half-gaussian"), false],
    ["exponential (unsigned)", nonNegativeLaw("exponential"), false],
    ["histogram 2048 bins", laplaceHistogram(), true],
  ];
  const runsFor = (bits: number): number => (bits <= 4 ? 101 : 31);
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log("| law | M = 2 wall (ms) | M = 4 wall (ms) | M = 8 wall (ms) | M = 2 CPU (ms) | M = 4 CPU (ms) | M = 8 CPU (ms) |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const [name, dist, signed] of cases) {
    const wall: string[] = [];
    const cpu: string[] = [];
    for (const bits of [2, 4, 8]) {
      for (let i = 0; i < 5; i++) solveLevels(dist, bits, { signed }); // JIT warm-up
      const times: number[] = [];
      const cpuTimes: number[] = [];
      for (let i = 0; i < runsFor(bits); i++) {
        const c = cpuMs();
        const t = performance.now();
        solveLevels(dist, bits, { signed });
        times.push(performance.now() - t);
        cpuTimes.push(cpuMs() - c);
      }
      wall.push(median(times).toFixed(2));
      cpu.push(median(cpuTimes).toFixed(2));
    }
    console.log(`| ${name} | ${wall.join(" | ")} | ${cpu.join(" | ")} |`);
  }
  console.log(
    `load average after: ${loadavg().map((x) => x.toFixed(2)).join(" ")}; medians of ${runsFor(2)} (M ≤ 4) and ${runsFor(8)} (M = 8) cold solves (no cache) after 5 warm-ups; CPU = this process's user+system time per solve`,
  );
}

function tables(): void {
  for (const name of ["laplace", "gaussian"] as const) {
    console.log(`\n**${name}** (unit scale, signed bases ±1)\n`);
    console.log("| M | α (descending) | MSE | Lloyd–Max | gap | uniform | ‖∇‖ |");
    console.log("|---|---|---:|---:|---:|---:|---:|");
    for (const s of solveLevelsAllBits(law(name), 8, { beamWidth: CACHE_BEAM_WIDTH, polishRounds: CACHE_POLISH_ROUNDS })) {
      const alpha = s.alpha.map((a) => a.toFixed(4)).join(", ");
      console.log(
        `| ${s.bits} | ${alpha} | ${s.mse.toPrecision(5)} | ${s.lloydMaxMse.toPrecision(5)} | ${(100 * s.gapToLloydMax).toFixed(2)}% | ${s.uniformMse.toPrecision(5)} | ${s.gradientNorm.toExponential(1)} |`,
      );
    }
  }
}

/** The six standard unit-scale laws the known optima are kept for, with the name `law`/`nonNegativeLaw` takes. */
const STANDARD_CASES: { label: string; lawName: (typeof LAW_NAMES)[number]; signed: boolean }[] = [
  { label: "laplace", lawName: "laplace", signed: true },
  { label: "gaussian", lawName: "gaussian", signed: true },
  { label: "uniform", lawName: "uniform", signed: true },
  { label: "exponential (unsigned)", lawName: "exponential", signed: false },
  { label: "half-gaussian (unsigned)", lawName: "half-gaussian", signed: false },
  { label: "uniform [0,1] (unsigned)", lawName: "uniform", signed: false },
];

const distOf = (c: (typeof STANDARD_CASES)[number]): Distribution => (c.signed ? law(c.lawName) : nonNegativeLaw(c.lawName));

function verify(): void {
  const restarts = 400;
  console.log(
    `| law | M | best known | default | default without known starts | cache (beam 24, hop 3) | best of ${restarts} random restarts | default vs best known | without known starts vs best known |`,
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  const versus = (v: number, best: number): string => {
    const gap = (v - best) / best;
    return Math.abs(gap) <= 1e-9 ? "equal" : `${gap > 0 ? "+" : ""}${(100 * gap).toFixed(gap > 0 && gap < 1e-4 ? 5 : 2)}%`;
  };
  for (const c of STANDARD_CASES) {
    const dist = distOf(c);
    const signed = c.signed;
    const normal = solveLevelsAllBits(dist, 8, { signed });
    const plain = solveLevelsAllBits(dist, 8, { signed, knownStarts: false });
    const cache = solveLevelsAllBits(dist, 8, { signed, beamWidth: CACHE_BEAM_WIDTH, polishRounds: CACHE_POLISH_ROUNDS });
    for (let bits = 3; bits <= 8; bits++) {
      const objective = new DmbqObjective(dist, bits, signed);
      const known = knownOptimum(dist.name, bits, signed);
      // The stored value is recomputed here: the table must hold what its α gives.
      const best = known === undefined ? NaN : objective.evaluate(known.alpha, false);
      const rand = mulberry32(bits * 7919);
      let random = Infinity;
      for (let r = 0; r < restarts; r++) {
        const start = Array.from({ length: bits }, () => 0.01 + 3 * rand());
        random = Math.min(random, localMinimize(objective, start, 300).mse);
      }
      const row = [normal, plain, cache].map((t) => t[bits - 1]!.mse);
      console.log(
        `| ${c.label} | ${bits} | ${best.toPrecision(10)} | ${row.map((v) => v.toPrecision(10)).join(" | ")} | ${random.toPrecision(7)} | ${versus(row[0]!, best)} | ${versus(row[1]!, best)} |`,
      );
    }
  }
}

/**
 * `--verify`, second table: laws outside the best-known table (truncated laws, truncated half-laws, 2,048-bin
 * histograms of samples), M = 6..8: the default vs the best found by the offline search (test/levels/bestFound.ts).
 */
function verifyOtherLaws(): void {
  console.log("\n| law | M | best found (search) | default | default without known starts | default vs best found | without known starts vs best found | default solve (ms) |");
  console.log("|---|---|---:|---:|---:|---:|---:|---:|");
  const versus = (v: number, best: number): string => {
    const gap = (v - best) / best;
    return Math.abs(gap) <= 1e-9 ? "equal" : `${gap > 0 ? "+" : ""}${gap.toExponential(2)}`;
  };
  let worst = -Infinity;
  let within = 0;
  let cases = 0;
  for (const v of VERIFICATION_LAWS) {
    const dist = v.make();
    for (const bits of [6, 7, 8]) {
      const stored = bestFound(v.tag, bits);
      if (stored === undefined) continue;
      // Recomputed: the fixture must hold what its α gives.
      const best = new DmbqObjective(dist, bits, v.signed).evaluate(stored.alpha, false);
      const t = performance.now();
      const normal = solveLevels(dist, bits, { signed: v.signed });
      const ms = performance.now() - t;
      const plain = solveLevels(dist, bits, { signed: v.signed, knownStarts: false });
      const gap = (normal.mse - best) / best;
      worst = Math.max(worst, gap);
      cases++;
      if (gap <= 1e-6) within++;
      console.log(
        `| ${v.tag}${v.signed ? "" : " (unsigned)"} | ${bits} | ${best.toPrecision(10)} | ${normal.mse.toPrecision(10)} | ${plain.mse.toPrecision(10)} | ${versus(normal.mse, best)} | ${versus(plain.mse, best)} | ${ms.toFixed(1)} |`,
      );
    }
  }
  console.log(`\n${within} of ${cases} within 1e-6 relative of the best found; worst relative gap ${worst.toExponential(2)}`);
}

function argValue(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : fallback;
}

interface Found {
  alpha: number[];
  mse: number;
}

/**
 * Population basin hopping for one (law, M, signedness): a pool of the 40 best distinct local minima; each try
 * takes the best (half the time) or a random pool member, moves it, and runs the exact local solver. Moves: scale
 * every α by e^{σZ} (σ ∈ {0.03, 0.1, 0.25}); set α_i to α_j·e^{U(−0.6, 0.6)}; or reflect α across the hyperplane
 * where two adjacent levels swap (a neighbouring arrangement), overshooting by a random factor in [1, 3].
 */
function basinHop(
  dist: Distribution,
  bits: number,
  signed: boolean,
  seconds: number,
  seed: number,
  lowerBits?: Found,
  seeds: readonly (readonly number[])[] = [],
): Found & { tries: number } {
  const rand = mulberry32(seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(rand() + 1e-300)) * Math.cos(2 * Math.PI * rand());
  const objective = new DmbqObjective(dist, bits, signed);
  const pool: Found[] = [];
  const seen = new Set<string>();
  const add = (alpha: ArrayLike<number>, mse: number): void => {
    const a = Array.from(alpha, Math.abs).sort((x, y) => y - x);
    const key = a.map((v) => v.toPrecision(7)).join(",");
    if (seen.has(key)) return;
    seen.add(key);
    pool.push({ alpha: a, mse });
    pool.sort((x, y) => x.mse - y.mse);
    if (pool.length > 40) pool.length = 40;
  };
  const wide = solveLevelsAllBits(dist, bits, { signed, beamWidth: CACHE_BEAM_WIDTH, polishRounds: CACHE_POLISH_ROUNDS, knownStarts: false });
  add(wide[bits - 1]!.alpha, wide[bits - 1]!.mse);
  // --fresh: an independent confirmation, seeded by the plain search only (no known optima, no moves across M).
  const fresh = args.includes("--fresh");
  for (const s of fresh ? [] : [...knownOptimumStarts(dist, bits, signed), ...seeds]) {
    const r = localMinimize(objective, s, 300);
    add(r.alpha, r.mse);
  }
  const neighbours = [bits - 1, bits + 1].filter((m) => m >= 1 && m <= 8 && !fresh).flatMap((m) => {
    const k = knownOptimum(dist.name, m, signed);
    return k === undefined ? [] : [[...k.alpha]];
  });
  // A law outside the table: the best (M−1)-bit minimum found by this search serves as the across-M neighbour.
  if (neighbours.length === 0 && lowerBits !== undefined) neighbours.push([...lowerBits.alpha]);
  const sortedLevels = objective.sortedLevels;
  const t0 = Date.now();
  let tries = 0;
  while (Date.now() - t0 < seconds * 1000) {
    tries++;
    const parent = rand() < 0.5 ? pool[0]! : pool[Math.floor(rand() * pool.length)]!;
    let a = [...parent.alpha];
    const kind = rand();
    if (kind < 0.1 && neighbours.length > 0) {
      // Across M: a known (M±1)-bit minimum with one α inserted (log-uniform in its range) or one dropped.
      const other = neighbours[Math.floor(rand() * neighbours.length)]!;
      if (other.length < bits) {
        const lo = other[other.length - 1]! / 2;
        const hi = other[0]! * 1.5;
        a = [...other, lo * Math.pow(hi / lo, rand())];
      } else {
        const drop = Math.floor(rand() * other.length);
        a = other.filter((_, i) => i !== drop);
      }
    } else if (kind < 0.35) {
      const sigma = [0.03, 0.1, 0.25][Math.floor(rand() * 3)]!;
      a = a.map((v) => v * Math.exp(sigma * gauss()));
    } else if (kind < 0.6) {
      const i = Math.floor(rand() * bits);
      const j = Math.floor(rand() * bits);
      a[i] = a[j]! * Math.exp(1.2 * (rand() - 0.5));
    } else {
      // Levels j and j+1 have patterns p, q; they swap where d·α = 0 with d = s(p) − s(q).
      objective.evaluate(a, false);
      const j = Math.floor(rand() * ((1 << bits) - 1));
      const gap = sortedLevels[j + 1]! - sortedLevels[j]!;
      const d = patternDifference(objective, j, bits, signed);
      const dd = d.reduce((s, v) => s + v * v, 0);
      if (dd === 0) continue;
      const overshoot = 1 + 2 * rand();
      // d·α = level_j − level_{j+1} = −gap: step along d past the hyperplane.
      a = a.map((v, i) => v + (overshoot * gap * d[i]!) / dd);
    }
    if (!signed) a = a.map((v) => Math.max(0, v));
    const r = localMinimize(objective, a, 300);
    add(r.alpha, r.mse);
  }
  return { ...pool[0]!, tries };
}

/** s(p) − s(q) for the patterns p, q of sorted levels j and j+1 (s = ±1 signed, {0,1} unsigned). */
function patternDifference(objective: DmbqObjective, j: number, bits: number, signed: boolean): number[] {
  const p = objective.sortedPatterns[j]!;
  const q = objective.sortedPatterns[j + 1]!;
  return Array.from({ length: bits }, (_, i) => (signed ? 2 : 1) * (((p >> i) & 1) - ((q >> i) & 1)));
}

/**
 * `--search --laws tag,tag|all [--bits 6,7,8]`: the same search on laws outside the table (verificationLaws.ts),
 * its pool seeded (unless --fresh) by the stored best-found α too; the result is the best of the search, the stored
 * value and the default solve. Prints test/levels/bestFoundData.ts (progress on stderr). Fixtures only: the solver
 * never reads them.
 */
function searchVerificationLaws(): void {
  const seconds = Number(argValue("--seconds", "60"));
  const seed = Number(argValue("--seed", "1"));
  const which = argValue("--laws", "all");
  const bitsList = argValue("--bits", "6,7,8").split(",").map(Number);
  const laws = which === "all" ? VERIFICATION_LAWS : which.split(",").map(verificationLaw);
  const fresh = args.includes("--fresh");
  const found: BestFound[] = [];
  for (const v of laws) {
    const dist = v.make();
    let lower: Found | undefined;
    for (const bits of bitsList) {
      const stored = bestFound(v.tag, bits);
      const r = basinHop(dist, bits, v.signed, seconds, seed + bits, lower, stored === undefined || fresh ? [] : [stored.alpha]);
      const d = solveLevels(dist, bits, { signed: v.signed });
      const objective = new DmbqObjective(dist, bits, v.signed);
      const candidates: Found[] = [r, { alpha: d.alpha, mse: d.mse }];
      if (stored !== undefined && !fresh) candidates.push({ alpha: [...stored.alpha], mse: objective.evaluate(stored.alpha, false) });
      const best = candidates.reduce((a, b) => (b.mse < a.mse ? b : a));
      console.error(
        `${v.tag}:${bits}: ${r.tries} tries, search ${r.mse}, default ${d.mse} (${(d.mse / r.mse - 1).toExponential(2)} rel), stored ${stored?.mse ?? "none"}`,
      );
      found.push({ tag: v.tag, signed: v.signed, bits, alpha: best.alpha, mse: best.mse });
      lower = best;
    }
  }
  // Keep stored entries this run did not touch.
  for (const b of BEST_FOUND) if (!found.some((f) => f.tag === b.tag && f.bits === b.bits)) found.push({ ...b, alpha: [...b.alpha] });
  found.sort((a, b) => VERIFICATION_LAWS.findIndex((v) => v.tag === a.tag) - VERIFICATION_LAWS.findIndex((v) => v.tag === b.tag) || a.bits - b.bits);
  console.log("// Generated by `npm run bench:levels -- --search --laws all`: best-found DMBQ minima of the laws in");
  console.log("// ts/levels/verificationLaws.ts, test fixtures only (the solver never reads them). Do not edit by hand.");
  console.log('import type { BestFound } from "./bestFound.js";\n');
  console.log("export const BEST_FOUND_DATA: BestFound[] = [");
  for (const f of found) {
    console.log(
      `  { tag: ${JSON.stringify(f.tag)}, signed: ${f.signed}, bits: ${f.bits}, alpha: [${f.alpha.map((x) => x.toPrecision(17)).join(", ")}], mse: ${f.mse.toPrecision(17)} },`,
    );
  }
  console.log("];");
}

function search(): void {
  if (args.includes("--laws")) return searchVerificationLaws();
  const seconds = Number(argValue("--seconds", "60"));
  const seed = Number(argValue("--seed", "1"));
  const only = argValue("--only", "");
  const found: { c: (typeof STANDARD_CASES)[number]; bits: number; best: Found }[] = [];
  for (const c of STANDARD_CASES) {
    for (let bits = 3; bits <= 8; bits++) {
      const tag = `${c.lawName}:${c.signed ? "s" : "u"}:${bits}`;
      const dist = distOf(c);
      const known = knownOptimum(dist.name, bits, c.signed);
      let best: Found | undefined = known === undefined ? undefined : { alpha: [...known.alpha], mse: new DmbqObjective(dist, bits, c.signed).evaluate(known.alpha, false) };
      if (only === "" || only.split(",").includes(tag)) {
        const r = basinHop(dist, bits, c.signed, seconds, seed + bits);
        console.error(`${tag}: ${r.tries} tries, best ${r.mse} (known ${best?.mse ?? "none"})`);
        if (best === undefined || r.mse < best.mse) best = r;
      }
      if (best !== undefined) found.push({ c, bits, best });
    }
  }
  console.log("// Generated by `npm run bench:levels -- --search`; see knownOptima.ts. Do not edit by hand.");
  console.log('import type { KnownOptimum } from "./knownOptima.js";\n');
  console.log("export const KNOWN_OPTIMA_DATA: KnownOptimum[] = [");
  for (const { c, bits, best } of found) {
    const dist = distOf(c);
    console.log(
      `  { law: ${JSON.stringify(dist.name)}, signed: ${c.signed}, bits: ${bits}, alpha: [${best.alpha.map((v) => v.toPrecision(17)).join(", ")}], mse: ${best.mse.toPrecision(17)}, meanAbs: ${dist.meanAbs().toPrecision(17)} },`,
    );
  }
  console.log("];");
}

if (args.includes("--tables")) tables();
else if (args.includes("--verify")) {
  if (!args.includes("--other-only")) verify();
  verifyOtherLaws();
}
else if (args.includes("--search")) search();
else timing();
