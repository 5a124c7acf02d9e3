// The commit that results.json and timing.json record: a run from a tree with uncommitted changes says so.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commit } from "../../examples/reproduce-cifar.js";

describe("reproduce-cifar: the recorded commit", () => {
  let dir: string;
  const here = process.cwd();
  const git = (...args: string[]): string => execFileSync("git", args, { cwd: dir, encoding: "utf8" }).trim();
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "dmbq-commit-"));
    git("init", "-q");
    writeFileSync(join(dir, "a.txt"), "one\n");
    git("add", "a.txt");
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one");
    process.chdir(dir);
  });
  afterEach(() => {
    process.chdir(here);
    rmSync(dir, { recursive: true, force: true });
  });

  it("is the short commit of a clean tree, SHA-dirty once a tracked file changes, and ignores untracked files", () => {
    const sha = git("rev-parse", "--short", "HEAD");
    assert.equal(commit(), sha);
    writeFileSync(join(dir, "new.txt"), "untracked\n");
    assert.equal(commit(), sha);
    writeFileSync(join(dir, "a.txt"), "two\n");
    assert.equal(commit(), `${sha}-dirty`);
  });

  it("is null outside a git checkout", () => {
    const bare = mkdtempSync(join(tmpdir(), "dmbq-nogit-"));
    try {
      process.chdir(bare);
      assert.equal(commit(), null);
    } finally {
      process.chdir(dir);
      rmSync(bare, { recursive: true, force: true });
    }
  });
});
