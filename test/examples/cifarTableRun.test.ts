// examples/cifar-table.ts end to end on the CPU: real reproduce-cifar processes and real workers on a tiny CIFAR
// folder written here (random images: the numbers mean nothing, the plumbing is what is tested).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const WRITE_TINY_CIFAR = `
import pickle, sys, numpy as np
from pathlib import Path
rng = np.random.default_rng(0)
folder = Path(sys.argv[1]) / "cifar-10-batches-py"
folder.mkdir(parents=True)
for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    entry = {b"labels": rng.integers(0, 10, 32).tolist(), b"data": rng.integers(0, 256, (32, 3072), dtype=np.uint8)}
    with (folder / name).open("wb") as fh:
        pickle.dump(entry, fh)
`;

describe("cifar-table: a table on the CPU (real workers)", function () {
  this.timeout(600_000);
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "dmbq-table-run-"));
    const made = spawnSync(process.execPath, ["scripts/python.mjs", "-c", WRITE_TINY_CIFAR, join(root, "data")], { encoding: "utf8" });
    assert.equal(made.status, 0, made.stderr);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const table = () => spawnSync(process.execPath, ["--import", "tsx", "examples/cifar-table.ts", "--data", join(root, "data"), "--runs", join(root, "runs"),
    "--rows", "r20-w2a32-cp,r20-w1a32-cp", "--seeds", "0", "--devices", "cpu", "--per-device", "2",
    "--fp-epochs", "1", "--q-epochs", "2", "--precision", "fp32", "--train-limit", "128", "--test-limit", "32"], { encoding: "utf8" });

  it("runs the FP run, the shared W2/A32 stage once and W1/A32 from it, then writes the verdicts; a rerun reads them back", () => {
    const first = table();
    assert.equal(first.status, 0, first.stdout + first.stderr);
    const runs = join(root, "runs");
    // one W2/A32 run serves both rows: W1/A32 started from it, in the same folder
    assert.deepEqual(readdirSync(join(runs, "r20-s0")).filter((f) => !f.startsWith(".") && !f.startsWith("summary")).sort(), ["r20-w1a32-cp", "r20-w2a32-cp"]);
    const w2 = JSON.parse(readFileSync(join(runs, "r20-s0", "r20-w2a32-cp", "result.json"), "utf8"));
    const w1 = JSON.parse(readFileSync(join(runs, "r20-s0", "r20-w1a32-cp", "result.json"), "utf8"));
    const fp = JSON.parse(readFileSync(join(runs, "fp", "r20-fp", "result.json"), "utf8"));
    assert.equal(JSON.parse(readFileSync(join(runs, "r20-s0", "r20-w1a32-cp", "config.json"), "utf8")).init.fromRun, join(runs, "r20-s0", "r20-w2a32-cp"));
    assert.equal(w1.fpTop1, fp.top1);
    assert.ok(Math.abs(w1.avgWBits - 1) < 0.01 && Math.abs(w2.avgWBits - 2) < 0.01, `W1 ${w1.avgWBits}, W2 ${w2.avgWBits}`);
    const out = JSON.parse(readFileSync(join(runs, "table.json"), "utf8"));
    const byId = new Map((out.rows as { id: string; mean: number; delta: number; met: boolean }[]).map((r) => [r.id, r]));
    assert.equal(byId.get("r20-w2a32-cp")!.mean, w2.top1);
    assert.equal(byId.get("r20-w1a32-cp")!.mean, w1.top1);
    assert.equal(byId.get("r20-w1a32-cp")!.met, Math.round((w1.top1 - fp.top1) * 100) / 100 >= -0.8);
    assert.match(readFileSync(join(runs, "table.md"), "utf8"), /\| ResNet-20 W1\/A32 CP \| [\d.]+ \(s0\) \|/);
    assert.ok(existsSync(join(runs, "logs", "r20-s0--r20-w1a32-cp.log")));
    assert.match(out.commands["r20-s0/r20-w1a32-cp"], /--start-from r20-w1a32-cp=r20-w2a32-cp .*--resume-existing$/);
    // the runs in docs/results.json's schema, W1/A32's command its whole chain
    const rec = (out.results as Record<string, unknown>[]).find((r) => r.table_row === "r20-w1a32-cp")!;
    assert.deepEqual(Object.keys(rec).slice(0, 11), ["model", "config", "table_row", "top1", "fp_top1", "avg_w_bits", "avg_a_bits", "size_mb", "epochs", "gpu", "epoch_time_ratio"]);
    assert.equal(rec.top1, w1.top1);
    assert.equal(rec.fp_top1, fp.top1);
    assert.equal(rec.paper_top1, 91.4);
    assert.equal(rec.epochs, 2);
    assert.equal(rec.seed, 0);
    assert.equal(rec.gpu, w1.device.replace(/^[a-z]+: /, ""));
    assert.match(rec.command as string, /--rows r20-w2a32-cp .* && node dist\/examples\/reproduce-cifar\.js .*--rows r20-w1a32-cp /);

    const again = table();
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.match(readFileSync(join(runs, "logs", "r20-s0--r20-w1a32-cp.log"), "utf8"), /finished earlier \(2 epochs\): read back/);
    assert.equal(JSON.parse(readFileSync(join(runs, "r20-s0", "r20-w1a32-cp", "result.json"), "utf8")).top1, w1.top1);
  });

  it("says why a stage did not finish: the driver's reason, from its log", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "examples/cifar-table.ts", "--data", join(root, "data"), "--runs", join(root, "runs-small"),
      "--rows", "r20-w4a4-gp", "--seeds", "0", "--devices", "cpu", "--fp-epochs", "1", "--q-epochs", "1", "--precision", "fp32", "--train-limit", "48"], { encoding: "utf8" });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /\[fp\/r20-fp\] did not finish: configure #\d+ failed \(ERROR_CODE_INVALID_ARGUMENT\): dataset\.batch_size: 128 exceeds the 48 training samples/);
  });

  it("never starts over a finished run of another length: the stage fails naming it, and the run is kept", () => {
    // a carried 120-epoch FP run under a toy-size table (--fp-epochs 1) was replaced this way before
    const fpDir = join(root, "runs-keep", "fp", "r20-fp");
    mkdirSync(fpDir, { recursive: true });
    const finished = JSON.stringify({ epochs: 120, top1: 87.05 });
    writeFileSync(join(fpDir, "result.json"), finished);
    const r = spawnSync(process.execPath, ["--import", "tsx", "examples/cifar-table.ts", "--data", join(root, "data"), "--runs", join(root, "runs-keep"),
      "--rows", "r20-w4a4-gp", "--seeds", "0", "--devices", "cpu", "--fp-epochs", "1", "--q-epochs", "1", "--precision", "fp32"], { encoding: "utf8" });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /\[fp\/r20-fp\] did not finish: .*r20-fp holds a finished 120-epoch run \(top-1 87\.05%\), not the 1 epochs these flags ask for/);
    assert.equal(readFileSync(join(fpDir, "result.json"), "utf8"), finished);
  });

  it("exits 1 and marks the seed missing when a stage does not finish", () => {
    // a deadline that has passed before the first stage: nothing starts, and the table says which seed is missing
    const r = spawnSync(process.execPath, ["--import", "tsx", "examples/cifar-table.ts", "--data", join(root, "data"), "--runs", join(root, "runs-bad"),
      "--rows", "vgg-w1a2-cp", "--seeds", "0", "--devices", "cpu", "--fp-epochs", "1", "--q-epochs", "1", "--vgg-epochs", "1,1", "--precision", "fp32",
      "--train-limit", "16", "--test-limit", "16", "--deadline-s", "0.001"], { encoding: "utf8" });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /\[vgg-fp\/vgg-fp\] not started/);
    assert.match(r.stderr, /\[vgg-s0\/vgg-w1a2-cp\] /);
    assert.ok(!existsSync(join(root, "runs-bad", "vgg-fp", "vgg-fp")), "no run may have started");
    assert.match(r.stdout, /\| VGG-small W1\/A2 CP \| — \(s0, not finished\) \|/);
  });
});
