// Bad configs fail before any training, with a message naming each bad field.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, Experiment, validateConfig, type ExperimentConfig } from "../../ts/experiment/index.js";

const good: ExperimentConfig = { name: "ok", model: "digits_cnn", dataset: { name: "digits" }, epochs: 1 };

describe("experiment config validation", () => {
  it("accepts a minimal config", () => {
    assert.deepEqual(validateConfig(good), []);
  });

  it("accepts every levels mode, uniformMax (the min-max baseline) included, and lists them when one is unknown", () => {
    for (const levels of ["laplace", "gaussian", "empirical", "uniform", "uniformMax"]) {
      assert.deepEqual(validateConfig({ ...good, quant: { weightBits: 2, actBits: 2, levels } }), [], levels);
    }
    assert.deepEqual(validateConfig({ ...good, quant: { weightBits: 2, actBits: 2, levels: "uniform-max" } }),
      ['quant.levels: "uniform-max" is not one of laplace, gaussian, empirical, uniform, uniformMax']);
  });

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["unknown model", { model: "resnet9000" }, /^model: unknown model "resnet9000"/],
    ["budget of 9 bits", { quant: { weightBits: 9, actBits: 2 } }, /^quant\.weightBits: 9 is not a bit budget/],
    ["negative epochs", { epochs: -3 }, /^epochs: -3 must be a positive integer/],
    ["missing data folder", { dataset: { name: "cifar10", path: "/no/such/cifar" } }, /^dataset\.path: folder \/no\/such\/cifar does not exist/],
    ["unknown dataset", { dataset: { name: "mnist" } }, /^dataset\.name: unknown dataset "mnist"/],
    ["bad granularity", { quant: { weightBits: 2, actBits: 2, granularity: "XP" } }, /^quant\.granularity/],
    ["bad levels mode", { quant: { weightBits: 2, actBits: 2, levels: "cauchy" } }, /^quant\.levels/],
    ["clip LR scale 0", { quant: { weightBits: 2, actBits: 2, actClipLrScale: 0 } }, /^quant\.actClipLrScale: must be a positive number, got 0/],
    ["negative lr", { optimizer: { lr: -1 } }, /^optimizer\.lr/],
    ["bad endpoint", { worker: { endpoint: "http://x" } }, /^worker\.endpoint/],
    ["distillation without a teacher", { distill: {} }, /^distill\.teacher: no teacher/],
    ["distillation alpha over 1", { distill: { alpha: 1.5, teacher: { checkpoint: "package.json" } } }, /^distill\.alpha: must be in \(0, 1\]/],
    ["distillation temperature 0", { distill: { temperature: 0, teacher: { checkpoint: "package.json" } } }, /^distill\.temperature/],
    ["missing teacher run", { distill: { teacher: { fromRun: "/no/such/run" } } }, /^distill\.teacher\.fromRun: run folder/],
    ["kept weight widths without a run", { quant: { weightBits: 2, actBits: 2 }, init: { keepWeightBits: true } }, /^init\.keepWeightBits: needs init\.fromRun/],
    ["kept weight widths, FP weights", { quant: { weightBits: 32, actBits: 2 }, init: { fromRun: ".", keepWeightBits: true } }, /^init\.keepWeightBits: this run does not quantize its weights/],
    ["kept weight widths not a boolean", { quant: { weightBits: 2, actBits: 2 }, init: { fromRun: ".", keepWeightBits: "yes" } }, /^init\.keepWeightBits: expected true or false/],
    ["negative recalibration batches", { recalibrateBatchNorm: { batches: -1 } }, /^recalibrateBatchNorm\.batches: must be a non-negative integer/],
    ["recalibration not an object", { recalibrateBatchNorm: 5 }, /^recalibrateBatchNorm: expected an object/],
  ];
  for (const [what, patch, re] of cases) {
    it(`names the field: ${what}`, () => {
      const problems = validateConfig({ ...good, ...patch });
      assert.equal(problems.length, 1, problems.join("; "));
      assert.match(problems[0]!, re);
    });
  }

  it("reports every bad field at once, and Experiment.start throws before starting a worker", async () => {
    const bad = { ...good, model: "nope", epochs: 0, quant: { weightBits: 9, actBits: 0 } };
    const t0 = Date.now();
    await assert.rejects(Experiment.start(bad as ExperimentConfig), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.problems.length, 4, e.problems.join("; "));
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, "validation must not start a worker");
  });

  it("`dmbq train` with a bad config exits 2 and names the fields", () => {
    const dir = mkdtempSync(join(tmpdir(), "dmbq-cfg-"));
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ ...good, runsDir: dir, model: "resnet9000", quant: { weightBits: 9, actBits: 2 } }));
    const r = spawnSync(process.execPath, ["bin/dmbq.mjs", "train", file], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /model: unknown model "resnet9000"/);
    assert.match(r.stderr, /quant\.weightBits: 9/);
  });
});
