// Whole runs against a real worker: kill and resume, divergence and recovery. Digits, on the CPU.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportRun } from "../../ts/export/index.js";
import { Experiment, RunFailedError, type AllocationRecord, type ExperimentConfig, type EpochRecord, type RunResult } from "../../ts/experiment/index.js";
import { waitFor } from "../support/eachTransport.js";

const runsDir = mkdtempSync(join(tmpdir(), "dmbq-runs-"));
const base: ExperimentConfig = {
  name: "base", runsDir, model: "digits_cnn", dataset: { name: "digits" }, epochs: 5, seed: 7,
  optimizer: { lr: 0.05 }, quant: { weightBits: 2, actBits: 2, granularity: "CP" }, progress: "none",
};

const metrics = (dir: string): EpochRecord[] =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as EpochRecord);

const allocations = (dir: string): AllocationRecord[] =>
  readFileSync(join(dir, "allocation.jsonl"), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as AllocationRecord);

describe("experiment lifecycle (real worker, digits)", function () {
  this.timeout(300_000);

  it("a run killed with SIGKILL mid-epoch resumes with `dmbq resume` and matches an uninterrupted run", async () => {
    const straight = await Experiment.start({ ...base, name: "straight" });
    const ref = await straight.result;

    const cfgFile = join(runsDir, "killed.json");
    writeFileSync(cfgFile, JSON.stringify({ ...base, name: "killed" }));
    const dir = join(runsDir, "killed");
    const child = spawn(process.execPath, ["bin/dmbq.mjs", "train", cfgFile], { stdio: ["ignore", "pipe", "pipe"] });
    const progressed = await waitFor(() => existsSync(join(dir, "metrics.jsonl")) && metrics(dir).length >= 2, 120_000, 100);
    assert.ok(progressed, "the run never finished two epochs");
    await new Promise((r) => setTimeout(r, 700)); // into epoch 3
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    const resumed = spawnSync(process.execPath, ["bin/dmbq.mjs", "resume", dir], { encoding: "utf8" });
    assert.equal(resumed.status, 0, resumed.stderr);
    const rows = metrics(dir);
    assert.deepEqual(rows.map((r) => r.epoch), [1, 2, 3, 4, 5], "each epoch exactly once");
    const result = JSON.parse(readFileSync(join(dir, "result.json"), "utf8")) as RunResult;
    assert.ok(Math.abs(result.top1 - ref.top1) <= 2.5, `resumed ${result.top1} vs uninterrupted ${ref.top1}`);
    assert.ok(Math.abs(result.avgWBits - ref.avgWBits) <= 0.05 && Math.abs(result.avgABits - ref.avgABits) <= 0.05);
  });

  it("a quantized run distils from the FP run it starts from (the teacher defaults to init), and resumes with it", async () => {
    const dataset = { name: "digits" as const, trainLimit: 512 };
    const fp = await Experiment.start({ ...base, name: "kd-fp", dataset, epochs: 2, quant: undefined });
    await fp.result;
    const kd = await Experiment.start({ ...base, name: "kd", dataset, epochs: 2, init: { fromRun: fp.dir }, distill: { alpha: 0.5, temperature: 2 } });
    const res = await kd.result;
    assert.ok(res.top1 > 50, `distilled W2/A2 digits top-1 ${res.top1}`);
    const saved = JSON.parse(readFileSync(join(kd.dir, "config.json"), "utf8")) as ExperimentConfig;
    assert.deepEqual(saved.distill, { alpha: 0.5, temperature: 2 });
    // resuming reloads the teacher too (the init is not reloaded: the checkpoint carries the student)
    const more = await Experiment.resume(kd.dir, { epochs: 3 });
    await more.result;
    assert.deepEqual(metrics(kd.dir).map((r) => r.epoch), [1, 2, 3]);
    // a run that goes on from the quantized one is still compared with (and distils from) the FP run at the root
    const fpTop1 = (JSON.parse(readFileSync(join(fp.dir, "result.json"), "utf8")) as RunResult).top1;
    const chained = await Experiment.start({ ...base, name: "kd-chain", dataset, epochs: 1, quant: { weightBits: 1, actBits: 2, granularity: "CP" },
      init: { fromRun: kd.dir }, distill: { alpha: 0.5 } });
    const c = await chained.result;
    assert.equal(c.fpRunDir, fp.dir);
    assert.equal(c.fpTop1, fpTop1);
  });

  it("a non-finite loss stops the run naming epoch and step, keeps the last good checkpoint, and resume continues with a changed config", async () => {
    const name = "diverge";
    const ok = await Experiment.start({ ...base, name, epochs: 2, quant: undefined });
    await ok.result;
    const dir = ok.dir;
    // Continue to 4 epochs with an absurd learning rate: it must blow up in epoch 3.
    const bad = await Experiment.resume(dir, { epochs: 4, optimizer: { lr: 1e8 } });
    await assert.rejects(bad.result, (e: unknown) => {
      assert.ok(e instanceof RunFailedError, String(e));
      assert.match((e as Error).message, /diverged at epoch 3, step \d+/);
      assert.match((e as Error).message, /epoch-0002\.pt/);
      return true;
    });
    assert.ok(existsSync(join(dir, "error.json")));
    assert.ok(existsSync(join(dir, "checkpoints", "epoch-0002.pt")), "the last good checkpoint is kept");
    const again = await Experiment.resume(dir, { epochs: 4, optimizer: { lr: 0.01 } });
    const r = await again.result;
    assert.equal(r.epochs, 4);
    assert.ok(Number.isFinite(r.top1) && r.top1 > 50, `top1 ${r.top1}`);
    assert.deepEqual(metrics(dir).map((m) => m.epoch), [1, 2, 3, 4]);
    assert.ok(!existsSync(join(dir, "error.json")));
  });

  it("a W2/A2 run keeps the weight widths its W2/A32 run ended with, and one that recalibrates BatchNorm scores and exports with the new statistics", async () => {
    const dataset = { name: "digits" as const, trainLimit: 512 };
    const w2 = await Experiment.start({ ...base, name: "keep-w2a32", dataset, epochs: 3, quant: { weightBits: 2, actBits: 32, granularity: "CP", minBits: 0 } });
    await w2.result;
    const ended = allocations(w2.dir).at(-1)!;
    const run = await Experiment.start({
      ...base, name: "keep-w2a2", dataset, epochs: 2, quant: { weightBits: 2, actBits: 2, granularity: "CP", minBits: 0 },
      init: { fromRun: w2.dir, keepWeightBits: true }, recalibrateBatchNorm: { batches: 0 },
    });
    const res = await run.result;
    const first = allocations(run.dir)[0]!;
    assert.equal(first.epoch, 0);
    first.layers.forEach((l, i) => {
      if (l.name === "features.0" || l.name === "classifier") return; // the edge layers stay at 8 bits either way
      assert.deepEqual(l.weightBits, ended.layers[i]!.weightBits, l.name);
    });
    assert.ok(ended.layers.some((l) => l.weightBits.some((b) => b !== 2)), "the W2/A32 run moved some widths (else the test shows nothing)");
    assert.equal(first.avgWBits, ended.avgWBits);
    assert.ok(first.avgABits > 2, "the activations start at the policy's start width");

    const rec = res.batchNormRecalibration!;
    assert.ok(rec, "result.batchNormRecalibration");
    assert.equal(rec.samples, 512); // one epoch of training batches
    assert.equal(rec.modules, 3); // digits_cnn: a BatchNorm after each of its three convs
    assert.equal(res.top1, rec.top1);
    assert.equal(rec.top1Before, metrics(run.dir).at(-1)!.testAccuracy * 100);
    const latest = JSON.parse(readFileSync(join(run.dir, "checkpoints", "latest.json"), "utf8")) as { batchNormRecalibration?: unknown };
    assert.deepEqual(latest.batchNormRecalibration, rec);
    // the final checkpoint holds the recalibrated statistics: the exported model scores as the result says
    const summary = await exportRun(run.dir, join(run.dir, "again.dmbq"), { evaluate: true });
    assert.ok(Math.abs(summary.reloadedTop1! - res.top1) <= 0.1, `reloaded ${summary.reloadedTop1} vs result ${res.top1} (before recalibration ${rec.top1Before})`);

    // resumed to train one epoch more, it recalibrates at its new end: nothing of the old end is reported
    const longer = await (await Experiment.resume(run.dir, { epochs: 3 })).result;
    assert.equal(longer.epochs, 3);
    assert.equal(longer.batchNormRecalibration!.top1Before, metrics(run.dir).at(-1)!.testAccuracy * 100);
    assert.equal(longer.top1, longer.batchNormRecalibration!.top1);
    // a finished run resumed with the recalibration newly asked for recalibrates without training
    const w2Epochs = metrics(w2.dir).length;
    const later = await (await Experiment.resume(w2.dir, { recalibrateBatchNorm: { batches: 2 } })).result;
    assert.equal(metrics(w2.dir).length, w2Epochs, "no epoch trained");
    assert.equal(later.batchNormRecalibration!.samples, 128); // 2 batches of 64
    assert.equal(later.batchNormRecalibration!.top1Before, metrics(w2.dir).at(-1)!.testAccuracy * 100);
  });
});
