// docs/results.json is the issue-6 record of every CIFAR-10 run: each row has the fields the issue names, and each
// row's command still runs under today's driver, so a flag renamed or removed there breaks this test, not a rerun.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseOptions, type ResultsRow } from "../../examples/reproduce-cifar.js";

/** What every row of the file holds: the fields, and when and from which commit it ran. */
type RecordedRow = ResultsRow & { date: string; commit: string; seed?: number };

const rows = JSON.parse(readFileSync(new URL("../../docs/results.json", import.meta.url), "utf8")) as RecordedRow[];
const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);

/** One stage of a row's command (`A && B` runs A, then B) as the driver's argv, `$CIFAR10_DIR` standing for `data`. */
function stageArgv(stage: string, data: string): string[] {
  const m = /^((?:[A-Z_]+=\S+ )*)node dist\/examples\/reproduce-cifar\.js (.*)$/.exec(stage.trim());
  assert.ok(m, `not a reproduce-cifar command: ${stage.slice(0, 80)}`);
  return m[2]!.split(/\s+/).map((a) => a.replaceAll("$CIFAR10_DIR", data));
}

describe("docs/results.json", () => {
  let data: string;
  before(() => {
    data = mkdtempSync(join(tmpdir(), "dmbq-results-data-")); // the parser checks only that --data exists
  });
  after(() => rmSync(data, { recursive: true, force: true }));

  it("is a list of runs, each with the fields issue 6 asks for", () => {
    assert.ok(Array.isArray(rows) && rows.length > 0);
    for (const [i, r] of rows.entries()) {
      const at = `row ${i} (${r.config}, seed ${r.seed ?? "-"})`;
      assert.ok(["resnet20", "vgg_small"].includes(r.model), `${at}: model ${r.model}`);
      assert.ok(num(r.top1) && r.top1 > 0 && r.top1 <= 100, `${at}: top1 ${r.top1}`);
      assert.ok(r.fp_top1 === null || (num(r.fp_top1) && r.fp_top1 > 0 && r.fp_top1 <= 100), `${at}: fp_top1 ${r.fp_top1}`);
      for (const k of ["avg_w_bits", "avg_a_bits"] as const) assert.ok(num(r[k]) && r[k] >= 0 && r[k] <= 32, `${at}: ${k} ${r[k]}`);
      assert.ok(num(r.size_mb) && r.size_mb > 0, `${at}: size_mb ${r.size_mb}`);
      assert.ok(Number.isInteger(r.epochs) && r.epochs >= 1, `${at}: epochs ${r.epochs}`);
      assert.ok(typeof r.gpu === "string" && /^NVIDIA /.test(r.gpu), `${at}: gpu ${r.gpu}`);
      assert.ok(r.epoch_time_ratio === null || (num(r.epoch_time_ratio) && r.epoch_time_ratio > 0), `${at}: epoch_time_ratio ${r.epoch_time_ratio}`);
      assert.match(r.date, /^\d{4}-\d\d-\d\d$/, `${at}: date`);
      assert.match(r.commit, /^[0-9a-f]{7,40}(-dirty)?$/, `${at}: commit`);
    }
  });

  it("names, in each row, a command that today's driver accepts and that runs that row with that seed", () => {
    for (const [i, r] of rows.entries()) {
      const at = `row ${i} (${r.config}, seed ${r.seed ?? "-"})`;
      const stages = r.command.split(" && ");
      for (const stage of stages) {
        try {
          parseOptions(stageArgv(stage, data));
        } catch (err) {
          assert.fail(`${at}: ${(err as Error).message}`);
        }
      }
      const last = parseOptions(stageArgv(stages[stages.length - 1]!, data));
      assert.ok(last.rows.some((row) => row.id === r.config), `${at}: its last command runs ${last.rows.map((row) => row.id).join(",")}`);
      if (r.seed !== undefined) assert.equal(last.seed, r.seed, `${at}: its last command's seed`);
    }
  });
});
