// levels "uniformMax" against the real worker (digits, CPU): the experiment sends the min-max tables and asks for
// scales of max|w|, and the run records both. Against a "uniform" run of the same seed (scales of mean|w|).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readDmbqFile, tensorBytes } from "../../ts/export/index.js";
import { Experiment, type ExperimentConfig, type LevelsMode } from "../../ts/experiment/index.js";
import type { HistogramsRecord, LevelsRecord, RunResult } from "../../ts/experiment/records.js";

const runsDir = mkdtempSync(join(tmpdir(), "dmbq-uniform-max-"));
const base: ExperimentConfig = {
  name: "base", runsDir, model: "digits_cnn", dataset: { name: "digits", trainLimit: 256, testLimit: 128 }, epochs: 2, seed: 3,
  optimizer: { lr: 0.05 }, quant: { weightBits: 2, actBits: 2, granularity: "GP", startBits: 2 }, progress: "none",
};
const readJson = <T>(dir: string, file: string): T => JSON.parse(readFileSync(join(dir, file), "utf8")) as T;

/** Each quantized layer's exported s_c (its 1..8-bit channels). */
function exportedScales(dir: string): Map<string, Float32Array> {
  const file = readDmbqFile(join(dir, "model.dmbq"));
  return new Map(file.header.layers.filter((l) => l.weight_quantized).map((l) => {
    const b = tensorBytes(file, `q/${l.name}/scale`)!;
    return [l.name, new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))];
  }));
}

describe("levels uniformMax (real worker, digits)", function () {
  this.timeout(120_000);
  after(() => rmSync(runsDir, { recursive: true, force: true }));

  it("trains with the min-max tables and scales of max|w|: levels.json, |w / s_c| about 1 at most, exported scales above mean|w|'s", async () => {
    const run = async (levels: LevelsMode) => {
      const r = await Experiment.start({ ...base, name: levels, quant: { ...base.quant!, levels } });
      return { dir: r.dir, result: await r.result };
    };
    const [max, mean] = await Promise.all([run("uniformMax"), run("uniform")]);
    const levels = readJson<LevelsRecord>(max.dir, "levels.json");
    assert.equal(levels.mode, "uniformMax");
    assert.deepEqual(levels.weight.find((t) => t.bits === 2)!.alpha, [2 / 3, 1 / 3]);
    assert.ok(levels.weight.every((t) => t.mse === undefined));
    assert.deepEqual(levels.act, readJson<LevelsRecord>(mean.dir, "levels.json").act);

    // max |w / s_c| over each layer (the last epoch's histograms): about 1 where s_c tracks max|w_c| (more where the
    // weights grew faster than the EMA follows: the classifier's, from its small start), several times that where
    // s_c tracks mean|w_c|
    const maxHist = readJson<HistogramsRecord>(max.dir, "histograms.json").weight;
    const meanHist = readJson<HistogramsRecord>(mean.dir, "histograms.json").weight;
    assert.deepEqual(Object.keys(maxHist), ["features.0", "features.3", "features.7", "classifier"]);
    for (const [layer, h] of Object.entries(maxHist)) {
      const meanHi = meanHist[layer]!.hi;
      if (layer !== "classifier") assert.ok(h.hi > 0.9 && h.hi < 1.3, `${layer}: max |w / s_c| ${h.hi} with max|w| scales`);
      assert.ok(h.hi * 1.5 < meanHi, `${layer}: max |w / s_c| ${h.hi} with max|w| scales, ${meanHi} with mean|w| ones`);
    }

    // the scales the model file stores, channel by channel: the max-abs run's above the mean-abs run's
    const maxScales = exportedScales(max.dir);
    const meanScales = exportedScales(mean.dir);
    assert.deepEqual([...maxScales.keys()], [...meanScales.keys()]);
    for (const [layer, s] of maxScales) {
      const m = meanScales.get(layer)!;
      assert.equal(s.length, m.length, layer);
      s.forEach((v, c) => assert.ok(v > m[c]!, `${layer}[${c}]: ${v} (max|w|) vs ${m[c]} (mean|w|)`));
    }
    assert.equal(max.result.exportError, undefined);
    assert.equal(readJson<RunResult>(max.dir, "result.json").modelFile, "model.dmbq");
    assert.ok(Number.isFinite(max.result.top1) && max.result.top1 > 20, `uniformMax top-1 ${max.result.top1} (chance: 10)`);
  });
});
