// --fp-from of examples/reproduce-cifar.ts: quantized rows (another seed's, say) start from FP runs finished elsewhere.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROWS, rowJobs } from "../../examples/reproduce-cifar.js";

const rows = (...ids: string[]) => ROWS.filter((r) => ids.includes(r.id));

describe("reproduce-cifar: --fp-from", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "dmbq-fp-from-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const finishedFp = (dir: string, id: string, epochs: number): void => {
    mkdirSync(join(dir, id), { recursive: true });
    writeFileSync(join(dir, id, "result.json"), JSON.stringify({ epochs, top1: 87.99 }));
  };

  it("runs no FP job when the FP runs are finished in the --fp-from folder", () => {
    const fpFrom = join(root, "seed0");
    finishedFp(fpFrom, "r20-fp", 120);
    const jobs = rowJobs({ rows: rows("r20-w2a32-cp", "r20-w4a4-gp"), runsDir: join(root, "seed1"), fpFrom, fpEpochs: 120, qEpochs: 60 });
    assert.deepEqual(jobs, [{ id: "r20-w4a4-gp" }, { id: "r20-w2a32-cp" }]); // in the table's order
  });

  it("fails naming --fp-from when a needed FP run is missing or has other epochs, or an FP row is selected too", () => {
    const fpFrom = join(root, "seed0");
    finishedFp(fpFrom, "r20-fp", 50);
    const o = { runsDir: join(root, "seed1"), fpFrom, fpEpochs: 120, qEpochs: 60 };
    assert.throws(() => rowJobs({ ...o, rows: rows("r20-w2a2-cp") }), /--fp-from: .*r20-fp holds no finished 120-epoch run/);
    assert.throws(() => rowJobs({ ...o, rows: rows("vgg-w1a2-cp") }), /--fp-from: .*vgg-fp holds no finished/);
    assert.throws(() => rowJobs({ ...o, rows: rows("r20-fp", "r20-w2a2-cp") }), /--fp-from: .*do not also select r20-fp/);
  });

  it("without --fp-from, a missing FP run is scheduled first in the runs folder", () => {
    const runsDir = join(root, "runs");
    const jobs = rowJobs({ rows: rows("r20-w2a2-cp"), runsDir, fpFrom: runsDir, fpEpochs: 120, qEpochs: 60 });
    assert.deepEqual(jobs, [{ id: "r20-fp" }, { id: "r20-w2a2-cp", after: "r20-fp" }]);
  });
});
