// examples/cifar-table.ts: the table's recipes as reproduce-cifar commands, the plan over seeds, the verdicts.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TABLE, granularityOrder, parseTableOptions, planTable, resultsRecord, rowVerdict, stageCommand, stageResult, tableMarkdown, type SeedResult } from "../../examples/cifar-table.js";
import type { RunResult } from "../../ts/experiment/records.js";
import { ROWS, parseOptions, rowConfig } from "../../examples/reproduce-cifar.js";

const seed = (s: number, top1: number, fpTop1 = 87.05): SeedResult => ({ seed: s, top1, fpTop1, avgWBits: 2, avgABits: 2, sizeMb: 0.107 });

describe("cifar-table: the plan", () => {
  let data: string;
  before(() => { data = mkdtempSync(join(tmpdir(), "dmbq-table-")); });
  after(() => rmSync(data, { recursive: true, force: true }));
  const opts = (...argv: string[]) => parseTableOptions(["--data", data, "--runs", join(data, "runs"), ...argv]);

  it("runs each FP run once (seed 0), and a stage that rows share once per seed, after what it starts from", () => {
    const plan = planTable(opts("--seeds", "0,3"));
    const ids = plan.map((s) => s.id);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(ids.slice(0, 2), ["fp/r20-fp", "vgg-fp/vgg-fp"]);
    for (const fp of plan.slice(0, 2)) assert.deepEqual(fp.argv.slice(fp.argv.indexOf("--seed"), fp.argv.indexOf("--seed") + 2), ["--seed", "0"]);
    // W2/A32 is the W2/A32 row and the first stage of W1/A32 and W2/A2: one run per seed
    assert.equal(ids.filter((id) => id === "r20-s3/r20-w2a32-cp").length, 1);
    const byId = new Map(plan.map((s) => [s.id, s]));
    assert.equal(byId.get("r20-s3/r20-w2a2-cp")!.after, "r20-s3/r20-w2a32-cp");
    assert.equal(byId.get("r20-s3/r20-w2a32-cp")!.after, "fp/r20-fp");
    assert.equal(byId.get("r20-w1a2-s0/r20-w1a2-cp")!.after, "r20-w1a2-s0/r20-w2a2-cp");
    assert.equal(byId.get("vgg-s0/vgg-w1a2-cp")!.after, "vgg-fp/vgg-fp");
    // every dependency comes earlier in the list (the scheduler's rule)
    plan.forEach((s, i) => s.after && assert.ok(ids.indexOf(s.after) < i, `${s.id} after ${s.after}`));
    // the VGG epochs go to VGG stages only, as the table's commands have them
    assert.ok(byId.get("vgg-s3/vgg-w0.7a32-cp")!.argv.includes("--vgg-epochs"));
    assert.ok(!byId.get("r20-s3/r20-w4a4-gp")!.argv.includes("--vgg-epochs"));
  });

  it("plans only the FP runs the selected rows need", () => {
    assert.deepEqual(planTable(opts("--rows", "r20-w4a4-gp", "--seeds", "1")).map((s) => s.id), ["fp/r20-fp", "r20-s1/r20-w4a4-gp"]);
    assert.deepEqual(planTable(opts("--rows", "vgg-w1a2-cp", "--seeds", "0")).map((s) => s.id), ["vgg-fp/vgg-fp", "vgg-s0/vgg-w1a2-cp"]);
  });

  it("every stage is a valid reproduce-cifar command whose run is configured as the table's one-command chains configure it", () => {
    const o = opts("--seeds", "0");
    const plan = planTable(o);
    const row = (id: string) => ROWS.find((r) => r.id === id)!;
    for (const st of plan) {
      const d = parseOptions(st.argv);
      assert.deepEqual(d.rows.map((r) => r.id), [st.row]);
      assert.equal(d.resumeExisting, true);
    }
    // W1/A2 runs here as three commands; docs/RESULTS.md lists it as one. The runs must be configured the same.
    const stages = plan.filter((s) => s.id.startsWith("r20-w1a2-s0/"));
    const runs = stages[0]!.runsDir;
    const one = parseOptions(["--data", data, "--runs", runs, "--rows", "r20-w2a32-cp,r20-w2a2-cp,r20-w1a2-cp", "--fp-epochs", "120", "--q-epochs", "60",
      "--seed", "0", "--precision", "bf16", "--lr-fp", "0.1", "--fp-from", join(data, "runs", "fp"), "--lba-score", "metricSqrtWeight", "--min-bits", "0",
      "--kd", "0.5,4", "--start-from", "r20-w2a2-cp=r20-w2a32-cp,r20-w1a2-cp=r20-w2a2-cp"]);
    for (const st of stages) assert.deepEqual(rowConfig(parseOptions(st.argv), row(st.row), "cuda:0"), rowConfig(one, row(st.row), "cuda:0"), st.id);
  });

  it("prints the data folder as $CIFAR10_DIR when that is where it points", () => {
    const o = opts("--rows", "r20-w4a4-gp", "--seeds", "0");
    const st = planTable(o)[1]!;
    const before = process.env.CIFAR10_DIR;
    try {
      process.env.CIFAR10_DIR = data;
      assert.match(stageCommand(o, st, "cuda:1"), /^node dist\/examples\/reproduce-cifar\.js --data \$CIFAR10_DIR .*--kd 0\.9,4 .*--devices cuda:1$/);
    } finally {
      if (before === undefined) delete process.env.CIFAR10_DIR;
      else process.env.CIFAR10_DIR = before;
    }
  });

  it("takes a stage's result only when its run finished the stage's epochs, as the driver counts them", () => {
    const plan = planTable(opts("--rows", "vgg-w1a2-cp", "--seeds", "0", "--vgg-epochs", "30,20"));
    assert.deepEqual(plan.map((s) => s.epochs), [30, 20]);
    const st = plan[1]!;
    mkdirSync(join(st.runsDir, st.row), { recursive: true });
    writeFileSync(join(st.runsDir, st.row, "result.json"), JSON.stringify({ epochs: 2, top1: 10 })); // a toy run left in the folder
    assert.equal(stageResult(st), undefined);
    writeFileSync(join(st.runsDir, st.row, "result.json"), JSON.stringify({ epochs: 20, top1: 89.6 }));
    assert.equal(stageResult(st)?.top1, 89.6);
  });

  it("records a W2/A2 seed as a docs/results.json row: its whole chain's commands, and its score as trained beside the recalibrated one", () => {
    const o = opts("--rows", "r20-w2a2-cp,r20-w4a4-gp", "--seeds", "3");
    const plan = planTable(o);
    const chain = ["r20-s3/r20-w2a32-cp", "r20-s3/r20-w2a2-cp"].map((id) => plan.find((s) => s.id === id)!);
    const run: RunResult = {
      name: "r20-w2a2-cp", model: "resnet20", dataset: "cifar10", top1: 86.81, fpTop1: 87.05, avgWBits: 2, avgABits: 2, sizeMb: 0.107,
      fpSizeMb: 1.084, epochs: 60, epochTimeS: 1.2, device: "cuda: NVIDIA H100 80GB HBM3", startedAt: "2026-11-27T23:45:00.000Z",
      finishedAt: "2026-11-27T23:47:00.000Z", batchNormRecalibration: { top1Before: 86.86, top1: 86.81, samples: 50000, modules: 19 },
    };
    const rec = resultsRecord(o, TABLE.find((r) => r.id === "r20-w2a2-cp")!, 3, chain, run, "e796216");
    assert.equal(rec.top1, 86.81);
    assert.equal(rec.top1_before_bn_recalibration, 86.86);
    assert.equal(rec.gpu, "NVIDIA H100 80GB HBM3");
    assert.equal(rec.paper_top1, 91.7);
    assert.equal(rec.date, "2026-11-27");
    assert.deepEqual(rec.command.split(" && ").map((c) => /--rows (\S+)/.exec(c)![1]), ["r20-w2a32-cp", "r20-w2a2-cp"]);
    const { batchNormRecalibration: _, ...asTrained } = run;
    const w4 = resultsRecord(o, TABLE.find((r) => r.id === "r20-w4a4-gp")!, 3, [plan.find((s) => s.id === "r20-s3/r20-w4a4-gp")!], asTrained, null);
    assert.equal("top1_before_bn_recalibration" in w4, false);
  });

  it("names the bad flag", () => {
    assert.throws(() => opts("--rows", "r20-w3a3"), /^Error: --rows: unknown r20-w3a3; the table's rows are r20-w4a4-gp,/);
    assert.throws(() => opts("--seeds", "0,0"), /--seeds: "0,0" names a seed twice/);
    assert.throws(() => opts("--seeds", "a"), /--seeds: "a" is not an integer >= 0/);
    assert.throws(() => opts("--per-device", "0"), /--per-device: "0" is not an integer >= 1/);
    assert.throws(() => opts("--vgg-epochs", "60"), /--vgg-epochs: "60" is not FP,Q/);
    assert.throws(() => opts("--deadline-s", "-1"), /--deadline-s/);
    assert.throws(() => parseTableOptions(["--data", join(data, "nope")]), /--data: folder .*nope does not exist/);
    // the stages' own flags go through the driver's parser when the table is planned, before anything runs
    assert.throws(() => planTable(opts("--precision", "fp16")), /--precision: "fp16" is not fp32 or bf16/);
  });

  it("has a target for every row of the table and none for the ablation", () => {
    assert.deepEqual(TABLE.filter((r) => r.minDelta !== undefined).map((r) => [r.id, r.minDelta]), [
      ["r20-w4a4-gp", -0.1], ["r20-w2a32-cp", 0], ["r20-w1a32-cp", -0.8], ["r20-w2a2-cp", -0.5], ["r20-w1a2-cp", -1.8], ["vgg-w0.7a32-cp", -0.1], ["vgg-w1a2-cp", 0]]);
  });
});

describe("cifar-table: the verdicts", () => {
  const w2a2 = { id: "r20-w2a2-cp", label: "ResNet-20 W2/A2 CP", minDelta: -0.5 };

  it("judges the mean against the FP run, and counts the seeds that meet the target", () => {
    const v = rowVerdict(w2a2, [seed(0, 87.03), seed(1, 86.5), seed(2, 87.63)]);
    assert.ok(Math.abs(v.mean! - 87.0533) < 1e-3);
    assert.ok(Math.abs(v.delta! - 0.0033) < 1e-3);
    assert.equal(v.seedsMeeting, 2);
    assert.equal(v.met, true);
    assert.equal(rowVerdict(w2a2, [seed(0, 86.4), seed(1, 86.6)]).met, false); // mean 86.50: FP − 0.55
  });

  it("counts a score exactly at the line as meeting it (in hundredths, as printed)", () => {
    const v = rowVerdict(w2a2, [seed(0, 86.55)]);
    assert.equal(v.met, true);
    assert.equal(rowVerdict({ ...w2a2, minDelta: 0 }, [seed(0, 87.05)]).met, true);
  });

  it("has no mean without seeds, no verdict without a target, and refuses seeds from different FP runs", () => {
    const none = rowVerdict(w2a2, [], [0, 1]);
    assert.equal(none.mean, undefined);
    assert.deepEqual(none.missing, [0, 1]);
    const ablation = rowVerdict({ id: "granularity-gp", label: "GP" }, [seed(0, 87.2)]);
    assert.equal(ablation.met, undefined);
    assert.throws(() => rowVerdict(w2a2, [seed(0, 87), seed(1, 87, 87.99)]), /started from different FP runs/);
  });

  it("checks CP ≥ LP ≥ GP once all three have means, and prints it under the table", () => {
    const g = (k: string, top1: number) => rowVerdict({ id: `granularity-${k}`, label: k }, [seed(0, top1)]);
    assert.equal(granularityOrder([g("gp", 87.2), g("lp", 87.4)]), undefined);
    assert.equal(granularityOrder([g("gp", 87.2), g("lp", 87.4), g("cp", 87.7)])!.holds, true);
    assert.equal(granularityOrder([g("gp", 87.5), g("lp", 87.4), g("cp", 87.7)])!.holds, false);
    const md = tableMarkdown([rowVerdict(w2a2, [seed(0, 87.03)], [1]), g("gp", 87.2), g("lp", 87.4), g("cp", 87.7)]);
    assert.match(md, /\| ResNet-20 W2\/A2 CP \| 87\.03 \(s0\), — \(s1, not finished\) \| 87\.03 \| 87\.05 \| -0\.02 \| ≥ FP − 0\.5 \| yes \(1 of 1 seeds\) \|/);
    assert.match(md, /CP ≥ LP ≥ GP at W2\/A32: yes \(GP 87\.20, LP 87\.40, CP 87\.70\)/);
  });
});
