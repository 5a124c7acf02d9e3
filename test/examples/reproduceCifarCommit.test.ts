// The commit that results.json and timing.json record: a run from a tree with uncommitted changes says so.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commit, parseOptions } from "../../examples/reproduce-cifar.js";

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
    const had = process.env.DMBQ_COMMIT;
    delete process.env.DMBQ_COMMIT;
    try {
      process.chdir(bare);
      assert.equal(commit(), null);
    } finally {
      if (had !== undefined) process.env.DMBQ_COMMIT = had;
      process.chdir(dir);
      rmSync(bare, { recursive: true, force: true });
    }
  });

  describe("DMBQ_COMMIT, for a copy of the tree without .git", () => {
    let bare: string;
    const had = process.env.DMBQ_COMMIT;
    beforeEach(() => {
      bare = mkdtempSync(join(tmpdir(), "dmbq-nogit-"));
      process.chdir(bare);
    });
    afterEach(() => {
      if (had === undefined) delete process.env.DMBQ_COMMIT;
      else process.env.DMBQ_COMMIT = had;
      process.chdir(dir);
      rmSync(bare, { recursive: true, force: true });
    });

    it("is the recorded commit there, and a checkout's own commit wins over it", () => {
      process.env.DMBQ_COMMIT = "e796216";
      assert.equal(commit(), "e796216");
      process.env.DMBQ_COMMIT = "e796216-dirty";
      assert.equal(commit(), "e796216-dirty");
      process.chdir(dir);
      assert.equal(commit(), git("rev-parse", "--short", "HEAD"));
    });

    it("is refused by the driver's parser, naming the variable, when it is not a commit", () => {
      process.env.DMBQ_COMMIT = "main";
      assert.throws(() => parseOptions(["--data", bare]), /DMBQ_COMMIT: "main" is not a commit/);
      process.env.DMBQ_COMMIT = "e796216";
      assert.equal(parseOptions(["--data", bare]).data, bare);
    });
  });
});
