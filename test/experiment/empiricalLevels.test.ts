// levels "empirical" against the real worker (digits, CPU): each body layer gets its own table, solved for the
// histogram of its weights (w / s_c), which fits that histogram better than the shared Laplace table does.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Experiment } from "../../ts/experiment/index.js";
import type { HistogramRecord, HistogramsRecord, LevelTableRecord, LevelsRecord } from "../../ts/experiment/records.js";

const runsDir = mkdtempSync(join(tmpdir(), "dmbq-empirical-"));
const readJson = <T>(dir: string, file: string): T => JSON.parse(readFileSync(join(dir, file), "utf8")) as T;

/** Squared error of quantizing the histogram's bin centres to the table's nearest level, per weight. */
function histogramMse(h: HistogramRecord, t: LevelTableRecord): number {
  const n = h.counts.length;
  let err = 0;
  let total = 0;
  h.counts.forEach((c, i) => {
    const x = h.lo + ((h.hi - h.lo) * (i + 0.5)) / n;
    const q = t.levels.reduce((best, l) => (Math.abs(l - x) < Math.abs(best - x) ? l : best));
    err += c * (x - q) ** 2;
    total += c;
  });
  return err / total;
}

describe("levels empirical (real worker, digits)", function () {
  this.timeout(120_000);
  after(() => rmSync(runsDir, { recursive: true, force: true }));

  it("gives each body layer its own 2-bit table, fitted to its weights better than the Laplace table", async () => {
    const r = await Experiment.start({
      name: "empirical", runsDir, model: "digits_cnn", dataset: { name: "digits", trainLimit: 512, testLimit: 256 }, epochs: 3,
      seed: 3, optimizer: { lr: 0.05 }, quant: { weightBits: 2, actBits: 2, granularity: "GP", startBits: 2, levels: "empirical" },
      progress: "none",
    });
    const result = await r.result;
    assert.ok(Number.isFinite(result.top1) && result.top1 > 20, `top-1 ${result.top1} (chance: 10)`);
    const levels = readJson<LevelsRecord>(r.dir, "levels.json");
    assert.equal(levels.mode, "empirical");
    const laplace = levels.weight.find((t) => t.bits === 2)!;
    const hist = readJson<HistogramsRecord>(r.dir, "histograms.json").weight;
    const body = ["features.3", "features.7"]; // the first and last layers stay at 8 bits
    for (const layer of body) {
      const own = levels.perLayer?.[layer]?.find((t) => t.bits === 2);
      assert.ok(own, `${layer}: no 2-bit table of its own`);
      assert.equal(own.levels.length, 4);
      own.levels.forEach((l, i) => assert.ok(Math.abs(l + own.levels[3 - i]!) < 1e-9, `${layer}: levels ${own.levels} not symmetric`));
      assert.ok(Math.abs(own.levels[3]! - laplace.levels[3]!) > 0.05, `${layer}: top level ${own.levels[3]} is the Laplace table's`);
      const h = hist[layer]!;
      assert.ok(histogramMse(h, own) < histogramMse(h, laplace),
        `${layer}: its own table's error ${histogramMse(h, own)} is not below the Laplace table's ${histogramMse(h, laplace)}`);
    }
  });
});
