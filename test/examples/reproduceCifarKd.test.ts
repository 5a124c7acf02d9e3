// --kd of examples/reproduce-cifar.ts: quantized rows distil from their FP run; FP rows never do.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROWS, parseOptions, rowConfig } from "../../examples/reproduce-cifar.js";

const row = (id: string) => ROWS.find((r) => r.id === id)!;

describe("reproduce-cifar: --kd", () => {
  let data: string;
  before(() => { data = mkdtempSync(join(tmpdir(), "dmbq-kd-")); });
  after(() => rmSync(data, { recursive: true, force: true }));

  it("gives quantized rows a teacher (their FP run, through init) and leaves FP rows alone", () => {
    const o = parseOptions(["--data", data, "--runs", join(data, "runs"), "--kd", "0.7,2"]);
    assert.deepEqual(o.kd, { alpha: 0.7, temperature: 2 });
    const q = rowConfig(o, row("r20-w2a2-cp"), "cpu");
    assert.deepEqual(q.distill, { alpha: 0.7, temperature: 2 });
    assert.equal(q.init?.fromRun, join(data, "runs", "r20-fp"));
    assert.equal(rowConfig(o, row("r20-fp"), "cpu").distill, undefined);
    assert.deepEqual(parseOptions(["--data", data, "--kd", "0.5"]).kd, { alpha: 0.5, temperature: 4 }); // T defaults to 4
    assert.equal(parseOptions(["--data", data]).kd, undefined);
  });

  it("names the flag for a bad value", () => {
    assert.throws(() => parseOptions(["--data", data, "--kd", "1.5"]), /--kd: "1.5" is not a number in \(0, 1\]/);
    assert.throws(() => parseOptions(["--data", data, "--kd", "0.5,-1"]), /--kd: "-1" is not ALPHA,T with T > 0/);
  });
});
