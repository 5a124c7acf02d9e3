import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { levelsCommand } from "../../ts/cli/levels.js";

/** Runs the command with process.stdout/stderr captured (the real command, only its output is redirected). */
async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((err += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const code = await levelsCommand(argv);
    return { code, out, err };
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
  }
}

const dir = mkdtempSync(join(tmpdir(), "dmbq-levels-"));

describe("levels/cli", () => {
  it("--json prints one object with the required fields", async () => {
    const { code, out } = await run(["--dist", "laplace", "--bits", "2", "--json"]);
    assert.equal(code, 0);
    const obj = JSON.parse(out) as Record<string, unknown>;
    for (const key of ["alpha", "levels", "thresholds", "mse", "lloyd_max_mse", "uniform_mse", "solve_ms", "clip", "iterations"]) {
      assert.ok(key in obj, `missing ${key}`);
    }
    assert.ok(Math.abs((obj.mse as number) - 0.3524) < 1e-4);
    assert.equal((obj.levels as number[]).length, 4);
  });

  it("prints a readable table, fits unsigned tables to |X|, and draws an SVG", async () => {
    const svg = join(dir, "plot.svg");
    const { code, out } = await run(["--dist", "gaussian", "--bits", "3", "--unsigned", "--plot", svg]);
    assert.equal(code, 0);
    assert.match(out, /half-gaussian \(unsigned/);
    assert.match(out, /lloyd-max/);
    const text = readFileSync(svg, "utf8");
    assert.match(text, /^<svg /);
    assert.equal((text.match(/stroke="#c0392b"/g) ?? []).length, 8); // one line per level
  });

  it("reads a histogram file", async () => {
    const file = join(dir, "hist.json");
    writeFileSync(file, JSON.stringify({ edges: [-2, -1, 0, 1, 2], counts: [1, 4, 4, 1] }));
    const { code, out } = await run(["--hist", file, "--bits", "2", "--json"]);
    assert.equal(code, 0);
    assert.equal((JSON.parse(out) as { alpha: number[] }).alpha.length, 2);
  });

  it("exits non-zero with a message naming the bad argument", async () => {
    const empty = join(dir, "empty.json");
    writeFileSync(empty, JSON.stringify({ edges: [0, 1], counts: [0] }));
    const negative = join(dir, "negative.json");
    writeFileSync(negative, JSON.stringify({ edges: [0, 1, 2], counts: [3, -1] }));
    const cases: [string[], RegExp][] = [
      [["--dist", "cauchy", "--bits", "2"], /--dist: unknown law "cauchy"/],
      [["--dist", "laplace", "--bits", "0"], /--bits: must be an integer in 1\.\.8, got "0"/],
      [["--dist", "laplace", "--bits", "9"], /--bits/],
      [["--dist", "laplace", "--bits", "two"], /--bits/],
      [["--dist", "laplace"], /--bits: missing/],
      [["--bits", "3"], /--dist: missing/],
      [["--hist", empty, "--bits", "2"], /--hist: .*counts are all zero/],
      [["--hist", negative, "--bits", "2"], /--hist: .*counts\[1\] is negative/],
      [["--hist", join(dir, "nope.json"), "--bits", "2"], /--hist: cannot read JSON/],
      [["--dist", "laplace", "--bits", "2", "--clip", "-1"], /--clip/],
      [["--dist", "laplace", "--bits", "2", "--frobnicate"], /unknown argument "--frobnicate"/],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      assert.notEqual(code, 0, `${argv.join(" ")} should fail`);
      assert.match(err, message, `${argv.join(" ")}: ${err}`);
    }
  });

  it("--help prints usage and succeeds", async () => {
    const { code, out } = await run(["--help"]);
    assert.equal(code, 0);
    assert.match(out, /usage: dmbq levels/);
  });
});
