/**
 * Level-optimizer benchmark and tables (npm run bench:levels [-- --tables] [-- --verify]).
 *   default   median solve time for M = 2, 4, 8 per law and for a 2,048-bin histogram (a table)
 *   --tables  Markdown tables for docs/RESULTS.md: Laplace and Gaussian, M = 1..8: α, MSE, Lloyd–Max, uniform
 *             (the table cache's search: beam width 24 and 3 rounds of basin hopping)
 *   --verify  global-optimum check: the default vs wider beams, basin hopping and the best of many random restarts
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
import { seededRandom as mulberry32 } from "../ts/util/seededRandom.js";


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

function timing(): void {
  const cases: [string, Distribution, boolean][] = [
    ...LAW_NAMES.filter((n) => n !== "half-gaussian" && n !== "exponential").map((n) => [n, law(n), true] as [string, Distribution, boolean]),
    ["half-gaussian (unsigned)", nonNegativeLaw("half-gaussian"), false],
    ["exponential (unsigned)", nonNegativeLaw("exponential"), false],
    ["histogram 2048 bins", laplaceHistogram(), true],
  ];
  const runs = 25;
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  console.log("| law | M = 2 (ms) | M = 4 (ms) | M = 8 (ms) |");
  console.log("|---|---:|---:|---:|");
  for (const [name, dist, signed] of cases) {
    const cells: string[] = [];
    for (const bits of [2, 4, 8]) {
      for (let i = 0; i < 3; i++) solveLevels(dist, bits, { signed }); // JIT warm-up
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t = performance.now();
        solveLevels(dist, bits, { signed });
        times.push(performance.now() - t);
      }
      cells.push(median(times).toFixed(2));
    }
    console.log(`| ${name} | ${cells.join(" | ")} |`);
  }
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(" ")}; median of ${runs} cold solves (no cache) after 3 warm-ups`);
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

function verify(): void {
  const restarts = 400;
  const wideOpts = { beamWidth: 64, polishRounds: 5 };
  console.log(
    `| law | M | default (beam 6) | beam 24 | cache (beam 24, hop 3) | beam 64, hop 5 | best of ${restarts} random restarts | default vs best found |`,
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|");
  const cases: [string, Distribution, boolean][] = [
    ["laplace", law("laplace"), true],
    ["gaussian", law("gaussian"), true],
    ["uniform", law("uniform"), true],
    ["exponential (unsigned)", nonNegativeLaw("exponential"), false],
    ["half-gaussian (unsigned)", nonNegativeLaw("half-gaussian"), false],
    ["uniform [0,1] (unsigned)", nonNegativeLaw("uniform"), false],
  ];
  for (const [name, dist, signed] of cases) {
    const normal = solveLevelsAllBits(dist, 8, { signed });
    const beam24 = solveLevelsAllBits(dist, 8, { signed, beamWidth: 24 });
    const cache = solveLevelsAllBits(dist, 8, { signed, beamWidth: CACHE_BEAM_WIDTH, polishRounds: CACHE_POLISH_ROUNDS });
    const wide = solveLevelsAllBits(dist, 8, { signed, ...wideOpts });
    for (let bits = 3; bits <= 8; bits++) {
      const rand = mulberry32(bits * 7919);
      const objective = new DmbqObjective(dist, bits, signed);
      let random = Infinity;
      for (let r = 0; r < restarts; r++) {
        const start = Array.from({ length: bits }, () => 0.01 + 3 * rand());
        random = Math.min(random, localMinimize(objective, start, 300).mse);
      }
      const row = [normal, beam24, cache, wide].map((t) => t[bits - 1]!.mse);
      const best = Math.min(...row, random);
      const gap = (row[0]! - best) / best;
      console.log(
        `| ${name} | ${bits} | ${row.map((v) => v.toPrecision(7)).join(" | ")} | ${random.toPrecision(7)} | ${gap <= 1e-9 ? "equal" : `+${(100 * gap).toFixed(2)}%`} |`,
      );
    }
  }
}

const args = process.argv.slice(2);
if (args.includes("--tables")) tables();
else if (args.includes("--verify")) verify();
else timing();
