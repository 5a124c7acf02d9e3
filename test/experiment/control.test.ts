// Driving a run from a script: events, the async iterator, pause/resume mid-epoch, stop. Real worker, digits.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Experiment, type ExperimentConfig, type RunEvent } from "../../ts/experiment/index.js";

const runsDir = mkdtempSync(join(tmpdir(), "dmbq-ctl-"));
const base: ExperimentConfig = {
  name: "ctl", runsDir, model: "digits_cnn", dataset: { name: "digits", batchSize: 16 }, epochs: 3, seed: 3,
  optimizer: { lr: 0.05 }, quant: { weightBits: 2, actBits: 2 }, progress: "none",
};

describe("experiment control (real worker, digits)", function () {
  this.timeout(180_000);

  it("emits progress, epoch, allocation and done, in order, through events and the async iterator", async () => {
    const run = await Experiment.start({ ...base, name: "events" });
    const seen: string[] = [];
    run.on("epoch", () => seen.push("epoch"));
    const kinds: RunEvent["type"][] = [];
    for await (const ev of run) kinds.push(ev.type);
    const r = await run.result;
    assert.equal(kinds[kinds.length - 1], "done");
    assert.equal(kinds.filter((k) => k === "epoch").length, 3);
    assert.ok(kinds.includes("progress") && kinds.includes("allocation"));
    assert.equal(seen.length, 3);
    assert.equal(r.epochs, 3);
    assert.equal(run.finished, true);
    assert.ok(Math.abs(r.avgWBits - 2) <= 0.05 && Math.abs(r.avgABits - 2) <= 0.05, `W${r.avgWBits}/A${r.avgABits}`);
  });

  it("pause() stops mid-epoch, resume() continues the same epoch, and no epoch is recorded twice", async () => {
    const run = await Experiment.start({ ...base, name: "pause" });
    let state: "running" | "paused" | "resumed" = "running";
    let progressWhilePaused = 0;
    run.on("progress", () => {
      if (state === "paused") progressWhilePaused++;
      if (state !== "running") return;
      state = "paused";
      run.pause();
      setTimeout(() => {
        state = "resumed";
        run.resume();
      }, 1_500);
    });
    const r = await run.result;
    assert.equal(state, "resumed");
    // nothing moves while paused (one progress event already in flight may still land)
    assert.ok(progressWhilePaused <= 1, `${progressWhilePaused} progress events while paused`);
    assert.equal(r.epochs, 3);
    const epochs = readFileSync(join(run.dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).epoch);
    assert.deepEqual(epochs, [1, 2, 3]);
  });

  it("stop() ends the run early: the result says how far it got and no result.json claims a finished run", async () => {
    const run = await Experiment.start({ ...base, name: "stop", epochs: 20 });
    run.once("epoch", () => run.stop());
    const r = await run.result;
    assert.ok(r.epochs >= 1 && r.epochs < 20, `stopped after ${r.epochs} epochs`);
    assert.ok(!existsSync(join(run.dir, "result.json")));
    assert.ok(existsSync(join(run.dir, "checkpoints", "latest.json")), "a stopped run can be resumed");
    assert.equal(run.finished, false);
  });

  it("stop() after the last epoch: every epoch is in, yet the run is not finished; resume() does the end's work", async () => {
    const run = await Experiment.start({ ...base, name: "stop-last", recalibrateBatchNorm: { batches: 2 } });
    run.on("epoch", (e: { epoch: number }) => { if (e.epoch === 3) run.stop(); });
    const r = await run.result;
    assert.equal(r.epochs, 3, "the last epoch was trained and checkpointed");
    assert.equal(run.finished, false);
    assert.equal(r.batchNormRecalibration, undefined, "the stop came before the recalibration");
    assert.ok(!existsSync(join(run.dir, "result.json")));
    const again = await Experiment.resume(run.dir);
    const done = await again.result;
    assert.equal(again.finished, true);
    assert.equal(done.epochs, 3);
    assert.ok(done.batchNormRecalibration, "resume recalibrated");
    assert.equal(JSON.parse(readFileSync(join(run.dir, "result.json"), "utf8")).epochs, 3);
  });
});
