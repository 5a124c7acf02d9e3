/**
 * How well each weight-level table fits real weights (npm run bench:level-fit -- INPUT... [--bits 2,3] [--layers]).
 * INPUT: a run folder (its histograms.json: w / s_c at the last epoch) or such a file, e.g. one written from any
 * checkpoint by bench/weight_histograms.py. `--skip a,b` leaves layers out (default conv1,fc: the 8-bit ends). Per input, over its layers weighted by their weight count: the kurtosis
 * E[x⁴]/E[x²]² of x = w / mean|w| (Laplace 6, Gaussian 3, uniform 1.8), and for each width the expected squared error
 * of the tables the modes send (Laplace and Gaussian DMBQ tables, the Laplace law's best uniform grid) against the
 * histogram's own optimum (what "empirical" would fit), in mean|w|² units. Prints Markdown.
 * `--check` adds two inputs of known law, 400k seeded draws each scaled to mean|x| = 1: a Laplace and a Gaussian
 * sample, whose own optimum must be that law's table and whose kurtosis must be about 6 and 3.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { quantizerMse, sampleDraws } from "../ts/levels/index.js";
import { empiricalWeightTable, histogramInputDistribution, weightTable } from "../ts/experiment/levelTables.js";
import type { HistogramRecord } from "../ts/experiment/records.js";

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const bitsList = (flag("--bits") ?? "2,3").split(",").map(Number);
if (bitsList.some((b) => !Number.isInteger(b) || b < 1 || b > 8)) throw new Error(`--bits: ${flag("--bits")} is not a list of widths 1..8`);
const perLayer = args.includes("--layers");
const skip = new Set((flag("--skip") ?? "conv1,fc").split(",").filter((x) => x));
const check = args.includes("--check");
const inputs = args.filter((a, i) => !a.startsWith("--") && args[i - 1] !== "--bits" && args[i - 1] !== "--skip");
if (inputs.length === 0 && !check) {
  console.error("usage: npm run bench:level-fit -- RUN_DIR|histograms.json... [--bits 2,3] [--skip conv1,fc] [--layers] [--check]");
  process.exit(2);
}

const MODES = ["laplace", "gaussian", "uniform"] as const;

interface Fit {
  weights: number;
  kurtosis: number;
  mse: Record<string, number>; // per mode and "own", for each width: `${mode}@${bits}`
  ownTop: Record<number, number>;
}

function fitLayer(h: HistogramRecord): Fit {
  const n = h.counts.length;
  const dist = histogramInputDistribution(h);
  let m0 = 0;
  let m2 = 0;
  let m4 = 0;
  h.counts.forEach((c, i) => {
    const x = h.lo + ((h.hi - h.lo) * (i + 0.5)) / n;
    m0 += c;
    m2 += c * x * x;
    m4 += c * x ** 4;
  });
  const fit: Fit = { weights: m0, kurtosis: m4 / m0 / (m2 / m0) ** 2, mse: {}, ownTop: {} };
  for (const bits of bitsList) {
    for (const mode of MODES) fit.mse[`${mode}@${bits}`] = quantizerMse(dist, weightTable(mode, bits).levels);
    const own = empiricalWeightTable(h, bits); // what the "empirical" mode would send for this layer
    fit.mse[`own@${bits}`] = own.mse!;
    fit.ownTop[bits] = own.levels[own.levels.length - 1]!;
  }
  return fit;
}

/** A 2,048-bin histogram of 400k seeded draws of a unit law, scaled to mean|x| = 1 (the tables' unit). */
function sampledLaw(name: "laplace" | "gaussian", seed: number): HistogramRecord {
  const xs = sampleDraws(name, true, seed, 400_000);
  const meanAbs = xs.reduce((s, x) => s + Math.abs(x), 0) / xs.length;
  const hi = xs.reduce((m, x) => Math.max(m, Math.abs(x)), 0) / meanAbs;
  const counts = new Array<number>(2048).fill(0);
  for (const x of xs) counts[Math.min(2047, Math.floor(((x / meanAbs + hi) / (2 * hi)) * 2048))]!++;
  return { lo: -hi, hi, counts };
}

function readHistograms(input: string): Record<string, HistogramRecord> {
  if (input === "check:laplace" || input === "check:gaussian") return { law: sampledLaw(input === "check:laplace" ? "laplace" : "gaussian", 7) };
  const file = existsSync(input) && statSync(input).isDirectory() ? join(input, "histograms.json") : input;
  if (!existsSync(file)) throw new Error(`${input}: no histograms.json (a run writes it at its last epoch)`);
  const weight = (JSON.parse(readFileSync(file, "utf8")) as { weight?: Record<string, HistogramRecord> }).weight;
  if (!weight || Object.keys(weight).length === 0) throw new Error(`${file}: no "weight" histograms`);
  return weight;
}

const cols = bitsList.flatMap((b) => [...MODES.map((m) => `${m} ${b}b`), `own ${b}b`, `own top ${b}b`]);
console.log(`| input | layers | kurtosis | ${cols.join(" | ")} |`);
console.log(`|---|---|---|${cols.map(() => "---").join("|")}|`);
const cells = (f: Fit): string[] => bitsList.flatMap((b) => [...[...MODES, "own"].map((m) => f.mse[`${m}@${b}`]!.toFixed(4)), f.ownTop[b]!.toFixed(2)]);
for (const input of [...(check ? ["check:laplace", "check:gaussian"] : []), ...inputs]) {
  const layers = Object.entries(readHistograms(input)).filter(([name]) => !skip.has(name)).map(([name, h]) => [name, fitLayer(h)] as const);
  if (layers.length === 0) throw new Error(`${input}: every layer is in --skip ${[...skip].join(",")}`);
  if (perLayer) for (const [name, f] of layers) console.log(`| ${name} | 1 | ${f.kurtosis.toFixed(2)} | ${cells(f).join(" | ")} |`);
  // weighted by weight count: the average over the network's weights
  const total = layers.reduce((s, [, f]) => s + f.weights, 0);
  const avg = (get: (f: Fit) => number) => layers.reduce((s, [, f]) => s + get(f) * f.weights, 0) / total;
  const mean: Fit = { weights: total, kurtosis: avg((f) => f.kurtosis), mse: {}, ownTop: {} };
  for (const key of Object.keys(layers[0]![1].mse)) mean.mse[key] = avg((f) => f.mse[key]!);
  for (const b of bitsList) mean.ownTop[b] = avg((f) => f.ownTop[b]!);
  console.log(`| ${input} | ${layers.length} | ${mean.kurtosis.toFixed(2)} | ${cells(mean).join(" | ")} |`);
}
