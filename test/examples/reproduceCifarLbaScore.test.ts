// --lba-score and --min-bits of examples/reproduce-cifar.ts: they reach every quantized row's policy and its command.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROWS, parseOptions, rowCommand, rowConfig } from "../../examples/reproduce-cifar.js";

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

  it("names the flag for a bad value", () => {
    assert.throws(() => parseOptions(["--data", data, "--lba-score", "perChannel"]), /--lba-score: "perChannel" is not metric or metricPerWeight/);
    assert.throws(() => parseOptions(["--data", data, "--min-bits", "9"]), /--min-bits: "9" is not an integer in 0\.\.8/);
  });
});
