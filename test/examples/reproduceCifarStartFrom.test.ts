// --start-from of examples/reproduce-cifar.ts: a quantized row goes on from another quantized row's run.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROWS, parseOptions, parseStartFrom, rowCommand, rowConfig, rowJobs } from "../../examples/reproduce-cifar.js";

const rows = (...ids: string[]) => ROWS.filter((r) => ids.includes(r.id));

describe("reproduce-cifar: --start-from", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "dmbq-start-from-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("names the bad pair: not ROW=FROM, unknown or FP rows, two models, a row twice, a cycle", () => {
    assert.throws(() => parseStartFrom("r20-w2a2-cp"), /^Error: --start-from: "r20-w2a2-cp" is not ROW=FROM/);
    assert.throws(() => parseStartFrom("r20-w2a2-cp=r20-w9"), /unknown row r20-w9/);
    assert.throws(() => parseStartFrom("r20-w2a2-cp=r20-fp"), /r20-fp is a full-precision row/);
    assert.throws(() => parseStartFrom("vgg-w1a2-cp=r20-w2a32-cp"), /rows of different models/);
    assert.throws(() => parseStartFrom("r20-w2a2-cp=r20-w2a32-cp,r20-w2a2-cp=r20-w1a32-cp"), /r20-w2a2-cp is given twice/);
    assert.throws(() => parseStartFrom("r20-w2a2-cp=r20-w1a2-cp,r20-w1a2-cp=r20-w2a2-cp"), /starts from itself/);
    assert.deepEqual([...parseStartFrom(" r20-w2a2-cp=r20-w2a32-cp , r20-w1a2-cp=r20-w2a2-cp ")],
      [["r20-w2a2-cp", "r20-w2a32-cp"], ["r20-w1a2-cp", "r20-w2a2-cp"]]);
  });

  it("orders a chain after its sources and waits on each, the FP run first", () => {
    const runsDir = join(root, "runs");
    const startFrom = parseStartFrom("r20-w1a2-cp=r20-w2a2-cp,r20-w2a2-cp=r20-w2a32-cp");
    const jobs = rowJobs({ rows: rows("r20-w1a2-cp", "r20-w2a2-cp", "r20-w2a32-cp", "r20-w4a4-gp"), runsDir, fpFrom: runsDir, fpEpochs: 120, qEpochs: 60, startFrom });
    assert.deepEqual(jobs, [
      { id: "r20-fp" },
      { id: "r20-w4a4-gp", after: "r20-fp" },
      { id: "r20-w2a32-cp", after: "r20-fp" },
      { id: "r20-w2a2-cp", after: "r20-w2a32-cp" },
      { id: "r20-w1a2-cp", after: "r20-w2a2-cp" },
    ]);
  });

  it("takes a source finished earlier in the runs folder, and refuses one that is neither selected nor finished", () => {
    const runsDir = join(root, "runs");
    mkdirSync(join(runsDir, "r20-fp"), { recursive: true });
    writeFileSync(join(runsDir, "r20-fp", "result.json"), JSON.stringify({ epochs: 120, top1: 87.99 }));
    const o = { rows: rows("r20-w2a2-cp"), runsDir, fpFrom: runsDir, fpEpochs: 120, qEpochs: 60, startFrom: parseStartFrom("r20-w2a2-cp=r20-w2a32-cp") };
    assert.throws(() => rowJobs(o), /--start-from: r20-w2a2-cp starts from r20-w2a32-cp, which is neither in --rows nor finished in/);
    mkdirSync(join(runsDir, "r20-w2a32-cp"));
    writeFileSync(join(runsDir, "r20-w2a32-cp", "result.json"), JSON.stringify({ epochs: 60, top1: 88.04 }));
    assert.deepEqual(rowJobs(o), [{ id: "r20-w2a2-cp", after: "r20-w2a32-cp" }]);
  });

  it("starts the row from its source's run in the runs folder; other rows keep their FP run", () => {
    mkdirSync(join(root, "data"));
    const o = parseOptions(["--data", join(root, "data"), "--runs", join(root, "runs"), "--rows", "r20-w2a32-cp,r20-w2a2-cp", "--start-from", "r20-w2a2-cp=r20-w2a32-cp", "--kd", "0.5"]);
    const [w2a32, w2a2] = o.rows.map((r) => rowConfig(o, r, "cpu"));
    assert.equal(w2a32!.init?.fromRun, join(root, "runs", "r20-fp"));
    assert.equal(w2a2!.init?.fromRun, join(root, "runs", "r20-w2a32-cp"));
    assert.deepEqual(w2a2!.distill, { alpha: 0.5, temperature: 4 }); // the teacher: the FP run behind the init (fpRunOf)
  });

  it("gives each row's command its whole chain, each row at its own LR", () => {
    mkdirSync(join(root, "data"));
    const args = ["--data", join(root, "data"), "--rows", "r20-w2a32-cp,r20-w2a2-cp,r20-w4a4-gp", "--start-from", "r20-w2a2-cp=r20-w2a32-cp"];
    const o = parseOptions(args);
    const cmd = (id: string): string => rowCommand(o, o.rows.find((r) => r.id === id)!);
    assert.match(cmd("r20-w2a2-cp"), /--rows r20-w2a32-cp,r20-w2a2-cp .*--start-from r20-w2a2-cp=r20-w2a32-cp$/);
    assert.doesNotMatch(cmd("r20-w2a2-cp"), /--lr-q/); // W2/A32 at 0.04, W2/A2 at 0.08: their own
    assert.match(cmd("r20-w4a4-gp"), /--rows r20-w4a4-gp .*--lr-q 0\.02/);
    assert.match(rowCommand(parseOptions([...args, "--lr-q", "0.03"]), o.rows[1]!), /--lr-q 0\.03/);
  });

  it("runs a step row (W2/A4) only when named", () => {
    mkdirSync(join(root, "data"));
    assert.ok(!parseOptions(["--data", join(root, "data")]).rows.some((r) => r.id === "r20-w2a4-cp"));
    assert.deepEqual(parseOptions(["--data", join(root, "data"), "--rows", "r20-w2a4-cp"]).rows.map((r) => r.id), ["r20-w2a4-cp"]);
  });
});
