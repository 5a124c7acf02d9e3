// The weight-level ablation rows of examples/reproduce-cifar.ts: min-max uniform, the Laplace law's uniform grid and
// its DMBQ table, at W2/A2 and W3/A3 GP; run by default like the other ablations, and printed like every row.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_LR_Q, ROWS, parseOptions, rowCommand, rowConfig, rowJobs } from "../../examples/reproduce-cifar.js";

const row = (id: string) => ROWS.find((r) => r.id === id)!;

describe("reproduce-cifar: the uniformMax (min-max) ablation rows", () => {
  let data: string;
  before(() => { data = mkdtempSync(join(tmpdir(), "dmbq-levels-rows-")); });
  after(() => rmSync(data, { recursive: true, force: true }));

  it("sit next to their uniform and DMBQ rows, with the same shape and levels uniformMax", () => {
    const ids = ROWS.map((r) => r.id);
    for (const wa of ["w2a2", "w3a3"]) {
      const max = row(`r20-${wa}-gp-uniform-max`);
      const uniform = row(`r20-${wa}-gp-uniform`);
      assert.equal(ids.indexOf(max.id) + 1, ids.indexOf(uniform.id), `${max.id} right before ${uniform.id}`);
      assert.equal(ids.indexOf(uniform.id) + 1, ids.indexOf(`r20-${wa}-gp-dmbq`));
      assert.deepEqual(max.quant, { ...uniform.quant, levels: "uniformMax" });
      assert.equal(max.model, "resnet20");
      assert.equal(max.step, undefined, "a row of the table, not a --start-from step");
      assert.equal(max.paper, undefined);
      assert.equal(max.lrQ, undefined, "the ablations compare levels at one LR");
    }
  });

  it("the empirical DMBQ row at W2/A2 GP follows the Laplace table's, the same shape with each layer's own levels", () => {
    const ids = ROWS.map((r) => r.id);
    const empirical = row("r20-w2a2-gp-empirical");
    assert.equal(ids.indexOf("r20-w2a2-gp-dmbq") + 1, ids.indexOf(empirical.id));
    assert.deepEqual(empirical.quant, { ...row("r20-w2a2-gp-dmbq").quant, levels: "empirical" });
    assert.equal(empirical.lrQ, undefined, "the ablations compare levels at one LR");
    assert.throws(() => parseOptions(["--data", data, "--rows", "r20-w2a2-gp-empirical", "--levels", "uniform"]),
      /--levels: r20-w2a2-gp-empirical \(empirical\) fix their own weight levels/);
  });

  it("the Gaussian DMBQ rows follow the Laplace table's at W2/A2 (after empirical) and W3/A3, levels gaussian", () => {
    const ids = ROWS.map((r) => r.id);
    assert.equal(ids.indexOf("r20-w2a2-gp-empirical") + 1, ids.indexOf("r20-w2a2-gp-gaussian"));
    assert.equal(ids.indexOf("r20-w3a3-gp-dmbq") + 1, ids.indexOf("r20-w3a3-gp-gaussian"));
    for (const wa of ["w2a2", "w3a3"]) {
      assert.deepEqual(row(`r20-${wa}-gp-gaussian`).quant, { ...row(`r20-${wa}-gp-dmbq`).quant, levels: "gaussian" });
      assert.equal(row(`r20-${wa}-gp-gaussian`).lrQ, undefined);
    }
    const o = parseOptions(["--data", data, "--rows", "r20-w2a2-gp-gaussian"]);
    assert.equal(rowConfig(o, row("r20-w2a2-gp-gaussian"), "cpu").quant?.levels, "gaussian");
  });

  it("run by default, from the FP run, and their config and printed command carry them", () => {
    const o = parseOptions(["--data", data]);
    const selected = o.rows.map((r) => r.id);
    assert.ok(selected.includes("r20-w2a2-gp-uniform-max") && selected.includes("r20-w3a3-gp-uniform-max"));
    const jobs = rowJobs(o);
    assert.deepEqual(jobs.find((j) => j.id === "r20-w3a3-gp-uniform-max"), { id: "r20-w3a3-gp-uniform-max", after: "r20-fp" });
    const c = rowConfig(o, row("r20-w2a2-gp-uniform-max"), "cpu");
    assert.deepEqual(c.quant, { weightBits: 2, actBits: 2, granularity: "GP", levels: "uniformMax" });
    assert.equal(c.optimizer?.lr, DEFAULT_LR_Q);
    assert.equal(c.init?.fromRun, join(o.runsDir, "r20-fp"));
    const cmd = rowCommand(o, row("r20-w2a2-gp-uniform-max"));
    assert.match(cmd, /--rows r20-w2a2-gp-uniform-max --fp-epochs 160 --q-epochs 80 /);
    assert.match(cmd, new RegExp(`--lr-q ${DEFAULT_LR_Q}(\\s|$)`));
    const only = parseOptions(["--data", data, "--rows", "r20-w3a3-gp-uniform-max"]);
    assert.deepEqual(only.rows.map((r) => r.id), ["r20-w3a3-gp-uniform-max"]);
  });
});
