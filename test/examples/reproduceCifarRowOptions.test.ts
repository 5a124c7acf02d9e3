// --lba-score, --min-bits, --act-mode, --levels, --clip-lr-scale and --row-epochs of examples/reproduce-cifar.ts: they reach the rows' configs and commands.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROWS, epochsOf, parseOptions, rowCommand, rowConfig } from "../../examples/reproduce-cifar.js";

const row = (id: string) => ROWS.find((r) => r.id === id)!;

describe("reproduce-cifar: --lba-score, --min-bits", () => {
  let data: string;
  before(() => { data = mkdtempSync(join(tmpdir(), "dmbq-score-")); });
  after(() => rmSync(data, { recursive: true, force: true }));

  it("puts the score into lba and the minimum into quant, for quantized rows only, and prints both", () => {
    const o = parseOptions(["--data", data, "--lba-score", "metricPerWeight", "--min-bits", "0"]);
    const q = rowConfig(o, row("r20-w1a2-cp"), "cpu");
    assert.equal(q.quant?.lba?.score, "metricPerWeight");
    assert.equal(q.quant?.minBits, 0);
    assert.equal(rowConfig(o, row("r20-fp"), "cpu").quant, undefined);
    assert.match(rowCommand(o, row("r20-w1a2-cp")), /--lba-score metricPerWeight --min-bits 0/);
    const plain = parseOptions(["--data", data]);
    assert.equal(rowConfig(plain, row("r20-w1a2-cp"), "cpu").quant?.lba, undefined);
    assert.equal(rowConfig(plain, row("r20-w1a2-cp"), "cpu").quant?.minBits, undefined);
    assert.doesNotMatch(rowCommand(plain, row("r20-w1a2-cp")), /--lba-score|--min-bits/);
  });

  it("--lba-score W,A ranks weights and activations apart, and prints both", () => {
    const o = parseOptions(["--data", data, "--lba-score", "metricSqrtWeight,metric"]);
    const lba = rowConfig(o, row("r20-w2a2-cp"), "cpu").quant?.lba;
    assert.equal(lba?.score, "metricSqrtWeight");
    assert.equal(lba?.actScore, "metric");
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--lba-score metricSqrtWeight,metric/);
    assert.equal(rowConfig(parseOptions(["--data", data, "--lba-score", "metric,metric"]), row("r20-w2a2-cp"), "cpu").quant?.lba?.actScore, undefined);
    assert.throws(() => parseOptions(["--data", data, "--lba-score", "metric,metric,metric"]), /--lba-score: "metric,metric,metric" is not SCORE or WEIGHT_SCORE,ACT_SCORE/);
    assert.throws(() => parseOptions(["--data", data, "--lba-score", "metric,sqrt"]), /--lba-score: "sqrt" is not metric/);
  });

  it("--act-mode puts the activation levels into quant, for quantized rows only, and prints them", () => {
    const o = parseOptions(["--data", data, "--act-mode", "table"]);
    assert.equal(rowConfig(o, row("r20-w2a2-cp"), "cpu").quant?.actMode, "table");
    assert.equal(rowConfig(o, row("r20-fp"), "cpu").quant, undefined);
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--act-mode table/);
    assert.equal(rowConfig(parseOptions(["--data", data]), row("r20-w2a2-cp"), "cpu").quant?.actMode, undefined);
    assert.throws(() => parseOptions(["--data", data, "--act-mode", "laplace"]), /--act-mode: "laplace" is not uniform or table/);
  });

  it("--levels sets the weight levels of quantized rows without their own, prints them, and refuses to rename an ablation row", () => {
    const o = parseOptions(["--data", data, "--rows", "r20-w2a32-cp,r20-w2a2-cp", "--levels", "uniform"]);
    assert.equal(rowConfig(o, row("r20-w2a2-cp"), "cpu").quant?.levels, "uniform");
    assert.equal(rowConfig(o, row("r20-fp"), "cpu").quant, undefined);
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--levels uniform/);
    assert.equal(rowConfig(parseOptions(["--data", data]), row("r20-w2a2-cp"), "cpu").quant?.levels, undefined);
    assert.doesNotMatch(rowCommand(parseOptions(["--data", data]), row("r20-w2a2-cp")), /--levels/);
    // an ablation row whose levels are the flag's own may stay
    const same = parseOptions(["--data", data, "--rows", "r20-w2a2-gp-uniform,r20-w2a2-cp", "--levels", "uniform"]);
    assert.equal(rowConfig(same, row("r20-w2a2-gp-uniform"), "cpu").quant?.levels, "uniform");
    assert.throws(() => parseOptions(["--data", data, "--levels", "lloyd"]), /--levels: "lloyd" is not one of laplace, gaussian, empirical, uniform, uniformMax/);
    assert.throws(() => parseOptions(["--data", data, "--rows", "r20-w2a2-gp-dmbq,r20-w2a2-cp", "--levels", "uniform"]),
      /--levels: r20-w2a2-gp-dmbq \(laplace\) fix their own weight levels/);
    // every row by default: the level-ablation rows refuse
    assert.throws(() => parseOptions(["--data", data, "--levels", "uniform"]), /r20-w2a2-gp-uniform-max \(uniformMax\), r20-w2a2-gp-dmbq \(laplace\)/);
  });

  it("--clip-lr-scale reaches quant.actClipLrScale of quantized rows and the command", () => {
    const o = parseOptions(["--data", data, "--clip-lr-scale", "0.1"]);
    assert.equal(rowConfig(o, row("r20-w2a2-cp"), "cpu").quant?.actClipLrScale, 0.1);
    assert.equal(rowConfig(o, row("r20-fp"), "cpu").quant, undefined);
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--clip-lr-scale 0\.1/);
    assert.equal(rowConfig(parseOptions(["--data", data]), row("r20-w2a2-cp"), "cpu").quant?.actClipLrScale, undefined);
    assert.throws(() => parseOptions(["--data", data, "--clip-lr-scale", "0"]), /--clip-lr-scale: "0" is not a positive number/);
  });

  it("--lba-allocator reaches lba and the command", () => {
    const o = parseOptions(["--data", data, "--lba-allocator", "giveback"]);
    assert.equal(rowConfig(o, row("r20-w2a2-cp"), "cpu").quant?.lba?.allocator, "giveback");
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--lba-allocator giveback/);
    assert.throws(() => parseOptions(["--data", data, "--lba-allocator", "greedy"]), /--lba-allocator: "greedy" is not decrement or giveback/);
  });

  it("a row started from a run finished earlier gets a command that starts from that run, not one that runs it again", () => {
    const runs = join(data, "runs");
    const o = parseOptions(["--data", data, "--runs", runs, "--rows", "r20-w2a2-cp", "--start-from", "r20-w2a2-cp=r20-w2a32-cp", "--lba-ramp", "0.2"]);
    const cmd = rowCommand(o, row("r20-w2a2-cp"));
    assert.match(cmd, new RegExp(`--runs ${runs} --rows r20-w2a2-cp --fp-epochs`));
    assert.match(cmd, /--lba-ramp 0\.2/);
    assert.match(cmd, /--start-from r20-w2a2-cp=r20-w2a32-cp$/);
    assert.doesNotMatch(cmd, /r20-w2a32-cp,/);
    // the whole chain selected: as before, no --runs, every row listed
    const chained = parseOptions(["--data", data, "--rows", "r20-w2a32-cp,r20-w2a2-cp,r20-w1a2-cp",
      "--start-from", "r20-w2a2-cp=r20-w2a32-cp,r20-w1a2-cp=r20-w2a2-cp"]);
    const c = rowCommand(chained, row("r20-w1a2-cp"));
    assert.match(c, /--rows r20-w2a32-cp,r20-w2a2-cp,r20-w1a2-cp /);
    assert.match(c, /--start-from r20-w2a2-cp=r20-w2a32-cp,r20-w1a2-cp=r20-w2a2-cp$/);
    assert.doesNotMatch(c, /--runs/);
    // two of three selected: the first ran before
    const tail = parseOptions(["--data", data, "--runs", runs, "--rows", "r20-w2a2-cp,r20-w1a2-cp",
      "--start-from", "r20-w2a2-cp=r20-w2a32-cp,r20-w1a2-cp=r20-w2a2-cp"]);
    const t = rowCommand(tail, row("r20-w1a2-cp"));
    assert.match(t, /--rows r20-w2a2-cp,r20-w1a2-cp /);
    assert.match(t, /--start-from r20-w2a2-cp=r20-w2a32-cp,r20-w1a2-cp=r20-w2a2-cp$/);
  });

  it("names the flag for a bad value", () => {
    assert.throws(() => parseOptions(["--data", data, "--lba-score", "perChannel"]), /--lba-score: "perChannel" is not metric, metricPerWeight or metricSqrtWeight/);
    assert.throws(() => parseOptions(["--data", data, "--min-bits", "9"]), /--min-bits: "9" is not an integer in 0\.\.8/);
  });

  it("--row-epochs gives the named rows their own epochs, in their config and in the command of every chain through them", () => {
    const o = parseOptions(["--data", data, "--q-epochs", "60", "--rows", "r20-w2a32-cp,r20-w2a2-cp,r20-w1a2-cp",
      "--start-from", "r20-w2a2-cp=r20-w2a32-cp,r20-w1a2-cp=r20-w2a2-cp", "--row-epochs", "r20-w2a2-cp=100"]);
    assert.equal(epochsOf(o, row("r20-w2a2-cp")), 100);
    assert.equal(epochsOf(o, row("r20-w2a32-cp")), 60);
    assert.equal(rowConfig(o, row("r20-w2a2-cp"), "cpu").epochs, 100);
    assert.equal(rowConfig(o, row("r20-w1a2-cp"), "cpu").epochs, 60);
    assert.doesNotMatch(rowCommand(o, row("r20-w2a32-cp")), /--row-epochs/);
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--row-epochs r20-w2a2-cp=100/);
    assert.match(rowCommand(o, row("r20-w1a2-cp")), /--row-epochs r20-w2a2-cp=100/);
    assert.throws(() => parseOptions(["--data", data, "--row-epochs", "r20-w2a2-cp"]), /--row-epochs: "r20-w2a2-cp" is not ROW=N/);
    assert.throws(() => parseOptions(["--data", data, "--row-epochs", "r20-x=5"]), /--row-epochs: unknown row r20-x/);
    assert.throws(() => parseOptions(["--data", data, "--row-epochs", "r20-w2a2-cp=0"]), /--row-epochs: "0" is not an integer >= 1/);
  });

  it("--keep-weight-bits marks the rows that start from another row, and prints itself; --recalibrate-bn reaches the quantized rows", () => {
    const o = parseOptions(["--data", data, "--rows", "r20-w2a2-cp", "--start-from", "r20-w2a2-cp=r20-w2a32-cp", "--keep-weight-bits", "--recalibrate-bn", "0"]);
    const c = rowConfig(o, row("r20-w2a2-cp"), "cpu");
    assert.equal(c.init?.keepWeightBits, true);
    assert.match(c.init?.fromRun ?? "", /r20-w2a32-cp$/);
    assert.deepEqual(c.recalibrateBatchNorm, { batches: 0 });
    assert.equal(rowConfig(o, row("r20-w2a32-cp"), "cpu").init?.keepWeightBits, undefined, "a row started from FP keeps nothing");
    assert.equal(rowConfig(o, row("r20-fp"), "cpu").recalibrateBatchNorm, undefined);
    assert.match(rowCommand(o, row("r20-w2a2-cp")), /--start-from r20-w2a2-cp=r20-w2a32-cp --keep-weight-bits --recalibrate-bn 0$/);
    const plain = parseOptions(["--data", data]);
    assert.equal(rowConfig(plain, row("r20-w2a2-cp"), "cpu").recalibrateBatchNorm, undefined);
    assert.doesNotMatch(rowCommand(plain, row("r20-w2a2-cp")), /--keep-weight-bits|--recalibrate-bn/);
    assert.throws(() => parseOptions(["--data", data, "--keep-weight-bits"]), /--keep-weight-bits: no row starts from another/);
    assert.throws(() => parseOptions(["--data", data, "--recalibrate-bn", "1.5"]), /--recalibrate-bn: "1.5" is not an integer >= 0/);
  });
});
