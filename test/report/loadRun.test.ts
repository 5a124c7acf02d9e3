import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { loadRun, RunFileError, summarizeRun } from "../../ts/report/index.js";
import { FIXTURE_EPOCHS, FIXTURE_LAYERS, writeFixtureRun } from "./fixture.js";

describe("report/loadRun (on the rendering fixture)", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "dmbq-report-load-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("reads every file of a finished run and its full-precision run", async () => {
    const { runDir, fpDir } = await writeFixtureRun(root);
    const run = await loadRun(runDir);
    assert.equal(run.metrics.length, FIXTURE_EPOCHS);
    assert.equal(run.allocation[0]!.layers.length, FIXTURE_LAYERS.length);
    assert.equal(run.allocation[0]!.layers[2]!.weightBits.length, 64);
    assert.ok(run.levels && run.histograms && run.result);
    assert.equal(run.fp?.dir, fpDir);
    assert.equal(run.fp?.result?.top1, 92.4);
    assert.deepEqual(run.warnings, []);
  });

  it("finds the full-precision run from config init.fromRun relative to the runs folder", async () => {
    const { runDir, fpDir } = await writeFixtureRun(root, { finished: false, fpReference: "config" });
    const run = await loadRun(runDir);
    assert.equal(run.result, undefined);
    assert.equal(run.fp?.dir, fpDir);
    const s = summarizeRun(run);
    assert.equal(s.finished, false);
    assert.equal(s.fpTop1, 92.4, "from the FP run's result.json");
    assert.equal(s.epochs, FIXTURE_EPOCHS);
  });

  it("finds a moved run's FP run beside it, even when the recorded absolute path names another run here", async () => {
    const { runDir, fpDir } = await writeFixtureRun(root);
    // the runs came back from another machine: result.fpRunDir names that machine's folder, and a folder of the
    // same path exists here holding an unrelated FP run (another top-1)
    const elsewhere = join(root, "elsewhere", "r-fp");
    await mkdir(elsewhere, { recursive: true });
    await writeFile(join(elsewhere, "result.json"), (await readFile(join(fpDir!, "result.json"), "utf8")).replace("92.4", "86.85"));
    const resultPath = join(runDir, "result.json");
    const result = JSON.parse(await readFile(resultPath, "utf8")) as Record<string, unknown>;
    await writeFile(resultPath, JSON.stringify({ ...result, fpRunDir: join(root, "elsewhere", basename(fpDir!)) }));
    await rename(elsewhere, join(root, "elsewhere", basename(fpDir!)));
    const run = await loadRun(runDir);
    assert.equal(run.fp?.dir, fpDir, "the sibling whose top-1 is the recorded fpTop1");
    assert.equal(run.fp?.result?.top1, 92.4);
  });

  it("warns (not fails) when the full-precision run is gone", async () => {
    const { runDir, fpDir } = await writeFixtureRun(root);
    await rm(fpDir!, { recursive: true });
    const run = await loadRun(runDir);
    assert.equal(run.fp, undefined);
    assert.match(run.warnings.join("\n"), /full-precision run .* was not found/);
  });

  it("fails naming the folder when it does not exist, and config.json when it is missing", async () => {
    await assert.rejects(loadRun(join(root, "nope")), (err: Error) => err instanceof RunFileError && /nope: no such run folder/.test(err.message));
    const { runDir } = await writeFixtureRun(root);
    await unlink(join(runDir, "config.json"));
    await assert.rejects(loadRun(runDir), /config\.json: not found; is this a run folder\?/);
  });

  it("names the file, line and field of a bad record", async () => {
    const { runDir } = await writeFixtureRun(root);
    const path = join(runDir, "metrics.jsonl");
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n");
    const third = JSON.parse(lines[2]!);
    third.testAccuracy = "high";
    lines[2] = JSON.stringify(third);
    await writeFile(path, lines.join("\n") + "\n");
    await assert.rejects(loadRun(runDir), (err: Error) => {
      assert.match(err.message, /metrics\.jsonl line 3: field testAccuracy must be a number, got "high"/);
      return true;
    });
  });

  it("names nested fields of allocation records and the enum of phase", async () => {
    const { runDir } = await writeFixtureRun(root);
    await appendFile(join(runDir, "allocation.jsonl"), JSON.stringify({ epoch: 9, avgWBits: 2, avgABits: 4, frozen: true, layers: [{ name: "a", weightBits: [2, "x"], actBits: [] }] }) + "\n");
    await assert.rejects(loadRun(runDir), /allocation\.jsonl line 6: field layers\[0\]\.weightBits\[1\] must be a number/);
    const { runDir: other } = await writeFixtureRun(join(root, "b"));
    await appendFile(join(other, "metrics.jsonl"), JSON.stringify({ epoch: 11, phase: "warmup" }) + "\n");
    await assert.rejects(loadRun(other), /metrics\.jsonl line 11: field phase must be one of "fp", "quant", got "warmup"; field trainLoss is missing/);
  });

  it("names result.json and levels.json when they are not JSON", async () => {
    const { runDir } = await writeFixtureRun(root);
    await writeFile(join(runDir, "levels.json"), "{ not json");
    await assert.rejects(loadRun(runDir), /levels\.json: not valid JSON/);
    await writeFile(join(runDir, "result.json"), JSON.stringify({ name: "x" }));
    await assert.rejects(loadRun(runDir), /result\.json: field model is missing/);
  });

  it("reads a diverged loss written as null (JSON's NaN) as NaN", async () => {
    const { runDir } = await writeFixtureRun(root);
    const path = join(runDir, "metrics.jsonl");
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n");
    const rec = JSON.parse(lines[0]!);
    rec.trainLoss = null;
    lines[0] = JSON.stringify(rec);
    await writeFile(path, lines.join("\n") + "\n");
    const run = await loadRun(runDir);
    assert.ok(Number.isNaN(run.metrics[0]!.trainLoss));
  });

  it("drops a half-written last line of an unfinished run with a warning, but rejects it in a finished run", async () => {
    const { runDir } = await writeFixtureRun(root, { finished: false, epochs: 4 });
    await appendFile(join(runDir, "metrics.jsonl"), '{"epoch":5,"phase":"qu');
    const run = await loadRun(runDir);
    assert.equal(run.metrics.length, 4);
    assert.match(run.warnings.join("\n"), /metrics\.jsonl line 5 is incomplete/);

    const { runDir: done } = await writeFixtureRun(join(root, "done"));
    await appendFile(join(done, "metrics.jsonl"), '{"epoch":11,"phase":"qu');
    await assert.rejects(loadRun(done), /metrics\.jsonl line 11: not valid JSON/);
  });

  it("renders what exists of a run that has only its config", async () => {
    const { runDir } = await writeFixtureRun(root, { withFp: false, finished: false });
    for (const f of ["metrics.jsonl", "allocation.jsonl", "levels.json", "histograms.json"]) await unlink(join(runDir, f));
    const run = await loadRun(runDir);
    assert.equal(run.metrics.length, 0);
    assert.equal(run.warnings.length, 4);
    assert.match(run.warnings[0]!, /metrics\.jsonl is missing: no epoch has finished yet/);
  });

  it("keeps the last record of an epoch a resumed run wrote twice, with a warning", async () => {
    const { runDir } = await writeFixtureRun(root, { finished: false, epochs: 6 });
    const path = join(runDir, "metrics.jsonl");
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n");
    const redo = JSON.parse(lines[4]!);
    redo.testAccuracy = 0.123;
    await appendFile(path, JSON.stringify(redo) + "\n");
    const run = await loadRun(runDir);
    assert.deepEqual(run.metrics.map((m) => m.epoch), [1, 2, 3, 4, 5, 6]);
    assert.equal(run.metrics[4]!.testAccuracy, 0.123);
    assert.match(run.warnings.join("\n"), /metrics\.jsonl repeats 1 epoch record \(a resumed run\?\)/);
  });
});
