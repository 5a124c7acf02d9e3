// `dmbq export` and `dmbq inspect` on a real run: the worker trains the digits CNN briefly (tests/export/digits_run.py),
// `exportRun` writes the .dmbq file through the worker's Python, and the TypeScript reader inspects and verifies it.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { exportCommand } from "../../ts/cli/export.js";
import { inspectCommand } from "../../ts/cli/inspect.js";
import { DmbqFileError, decodeDmbq, exportRun, formatInspect, inspectDmbq, readDmbqFile, type ExportSummaryJson } from "../../ts/export/index.js";
import { workerEnv, workerPython } from "../../ts/worker/pythonEnv.js";

const run = promisify(execFile);

/** Runs `fn` with console.log / console.error captured. */
async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const log = console.log;
  const error = console.error;
  let out = "";
  let err = "";
  console.log = (...a: unknown[]) => void (out += a.join(" ") + "\n");
  console.error = (...a: unknown[]) => void (err += a.join(" ") + "\n");
  try {
    return { code: await fn(), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** The same file with our JSON header edited and the rest (the stored digest included) kept, as a tamperer would. */
function withHeader(bytes: Buffer, edit: (h: Record<string, unknown>) => void): Buffer {
  const n = Number(bytes.readBigUInt64LE(0));
  const index = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")) as { __metadata__: Record<string, string> };
  const header = JSON.parse(index.__metadata__["dmbq"]!) as Record<string, unknown>;
  edit(header);
  index.__metadata__["dmbq"] = JSON.stringify(header);
  const raw = Buffer.from(JSON.stringify(index), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(raw.length));
  return Buffer.concat([len, raw, bytes.subarray(8 + n)]);
}

describe("dmbq export / dmbq inspect", function () {
  this.timeout(240_000);
  let dir: string;
  let runDir: string;
  let file: string;
  let runTop1: number;
  let summary: ExportSummaryJson;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmbq-export-"));
    runDir = join(dir, "digits-run");
    const { stdout } = await run(workerPython(), ["-m", "tests.export.digits_run", runDir, "2"], { env: workerEnv(), timeout: 200_000 });
    runTop1 = (JSON.parse(stdout.trim().split("\n").pop()!) as { top1: number }).top1;
    file = join(dir, "digits.dmbq");
    summary = await exportRun(runDir, file, { evaluate: true });
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes one file whose size is the summary's, and whose reloaded accuracy is the run's", () => {
    assert.equal(summary.fileBytes, statSync(file).size);
    assert.equal(summary.sizeMb, summary.fileBytes / 1e6);
    assert.equal(summary.fileBytes, summary.headerBytes + summary.bitPlaneBytes + summary.tablesAndScalesBytes + summary.fullPrecisionBytes);
    assert.ok(summary.fileBytes * 8 < summary.fp32Bytes, `${summary.fileBytes} B against ${summary.fp32Bytes} B at FP32`);
    assert.equal(summary.maxWeightError, 0);
    assert.equal(summary.top1, runTop1);
    assert.ok(Math.abs(summary.reloadedTop1! - runTop1) <= 0.1, `reloaded ${summary.reloadedTop1} vs run ${runTop1}`);
  });

  it("inspect: one row per quantized layer with its channels, bit-width histogram and bytes", async () => {
    const s = inspectDmbq(readDmbqFile(file));
    assert.deepEqual(s.layers.map((l) => l.name), ["features.0", "features.3", "features.7", "classifier"]);
    assert.deepEqual(s.layers.map((l) => l.channels), [32, 64, 128, 10]);
    assert.deepEqual(s.layers[0]!.bitsHistogram, { 8: 32 });
    // the body layers of the test scheme: channels 0..3 at 3, 0, 32 and 1 bits, the rest at 2
    assert.deepEqual(s.layers[1]!.bitsHistogram, { 0: 1, 1: 1, 2: 60, 3: 1, 32: 1 });
    assert.deepEqual(s.layers[1]!.actBitsHistogram, { 2: 30, 3: 1, 32: 1 });
    for (const l of s.layers) {
      assert.equal(Object.values(l.bitsHistogram).reduce((a, b) => a + b, 0), l.channels);
      const planes = Object.entries(l.bitsHistogram).reduce((n, [b, c]) => n + (Number(b) >= 1 && Number(b) <= 8 ? Number(b) * c : 0), 0);
      assert.equal(l.planeBytes, Math.ceil((planes * l.weightsPerChannel) / 8), l.name);
    }
    assert.equal(s.fileBytes, s.headerBytes + s.bitPlaneBytes + s.tablesAndScalesBytes + s.fullPrecisionBytes);
    assert.equal(s.bitPlaneBytes, summary.bitPlaneBytes);
    const text = formatInspect(s);
    assert.match(text, /features\.3\s+conv2d\s+body\s+64\s+0b:1 1b:1 2b:60 3b:1 fp:1/);
    const { code, out } = await captured(() => inspectCommand([file]));
    assert.equal(code, 0);
    assert.equal(out.trim(), text);
  });

  it("export CLI: --json prints the worker's summary; usage errors exit 2; a bad run exits 1 naming the file", async () => {
    const again = join(dir, "again.dmbq");
    const ok = await captured(() => exportCommand([runDir, "--out", again, "--json"]));
    assert.equal(ok.code, 0, ok.err);
    const printed = JSON.parse(ok.out) as ExportSummaryJson;
    assert.equal(printed.fileBytes, summary.fileBytes);
    assert.deepEqual(readFileSync(again), readFileSync(file)); // deterministic
    assert.equal((await captured(() => exportCommand([runDir]))).code, 2);
    assert.equal((await captured(() => exportCommand(["--out", again]))).code, 2);
    assert.equal((await captured(() => exportCommand([runDir, "--bogus"]))).code, 2);
    const missing = await captured(() => exportCommand([join(dir, "no-such-run"), "--out", again]));
    assert.equal(missing.code, 1);
    assert.match(missing.err, /config\.json does not exist/);
  });

  it("refuses truncated, wrong-version and tampered files with a clear error", async () => {
    const bytes = readFileSync(file);
    assert.throws(() => decodeDmbq(bytes.subarray(0, 5)), /truncated: 5 bytes/);
    assert.throws(() => decodeDmbq(bytes.subarray(0, 200)), /truncated: the header needs/);
    assert.throws(() => decodeDmbq(bytes.subarray(0, bytes.length - 1)), /truncated: tensor/);
    assert.throws(() => decodeDmbq(withHeader(bytes, (h) => (h["version"] = 2))), /header\.version 2 is not supported \(this reader reads version 1\)/);
    assert.throws(() => decodeDmbq(withHeader(bytes, (h) => ((h["run"] as { top1: number }).top1 = 99.9))), /modified after export/);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3]! ^= 0x10;
    assert.throws(() => decodeDmbq(flipped), /modified after export/);
    const bad = join(dir, "bad.dmbq");
    writeFileSync(bad, bytes.subarray(0, 1000));
    const r = await captured(() => inspectCommand([bad]));
    assert.equal(r.code, 1);
    assert.match(r.err, /bad\.dmbq: truncated/);
  });

  it("property: every truncation and every flipped data byte is refused as a DmbqFileError", () => {
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), (cut) => {
        assert.throws(() => decodeDmbq(bytes.subarray(0, cut)), DmbqFileError);
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 8 + n, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, mask) => {
        const copy = Buffer.from(bytes);
        copy[at]! ^= mask;
        assert.throws(() => decodeDmbq(copy), DmbqFileError);
      }),
      { numRuns: 200 },
    );
  });
});
