import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reportCommand } from "../../ts/cli/report.js";
import { writeFixtureRun } from "./fixture.js";

/** Runs the command with console.log/error captured (the command's only outputs). */
async function capture(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.join(" "));
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    const code = await reportCommand(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

describe("cli/report (dmbq report RUN_DIR)", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "dmbq-report-cli-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("writes RUN_DIR/report.html and prints its path", async () => {
    const { runDir } = await writeFixtureRun(root);
    const r = await capture([runDir]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, join(runDir, "report.html"));
    assert.match(await readFile(r.out, "utf8"), /^<!DOCTYPE html>/);
  });

  it("writes to --out FILE and --out=FILE", async () => {
    const { runDir } = await writeFixtureRun(root);
    const a = join(root, "a.html");
    const b = join(root, "b.html");
    assert.equal((await capture([runDir, "--out", a])).code, 0);
    assert.equal((await capture([`--out=${b}`, runDir])).code, 0);
    assert.ok(existsSync(a) && existsSync(b));
    assert.ok(!existsSync(join(runDir, "report.html")));
  });

  it("exits 1 naming the missing folder or file", async () => {
    const missing = await capture([join(root, "no-such-run")]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no-such-run: no such run folder/);
    const { runDir } = await writeFixtureRun(root);
    await unlink(join(runDir, "config.json"));
    const noConfig = await capture([runDir]);
    assert.equal(noConfig.code, 1);
    assert.match(noConfig.err, /config\.json: not found/);
  });

  it("exits 2 with the usage on bad arguments", async () => {
    for (const argv of [[], ["--out"], ["a", "b"], ["a", "--bogus"]]) {
      const r = await capture(argv);
      assert.equal(r.code, 2, `argv ${JSON.stringify(argv)}`);
      assert.match(r.err, /usage: dmbq report RUN_DIR \[--out file\.html\]/);
    }
  });
});
