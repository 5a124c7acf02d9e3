// `dmbq train` of a 2-rank run (gloo on this CPU host) whose rank 1 is SIGKILLed mid-run fails with an error that
// names the rank; `dmbq resume RUN_DIR` relaunches torchrun, continues from the last checkpoint and ends with every
// epoch recorded exactly once. Real CLI processes, real worker ranks: nothing is mocked.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../ts/worker/index.js";

const cpuOnly = { DMBQ_DIST_BACKEND: "gloo", OMP_NUM_THREADS: "1" };
const EPOCHS = 2;

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `dmbq ARGS` from the TypeScript sources (not a possibly stale dist/); `whileRunning` sees the CLI's pid. */
function dmbq(args: string[], whileRunning?: (pid: number) => Promise<void>): Promise<Exit> {
  const child = spawn(process.execPath, ["--import", "tsx", join(projectRoot(), "ts", "cli", "main.ts"), ...args], {
    cwd: projectRoot(),
    env: { ...process.env, ...cpuOnly },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<Exit>((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
  const watching = whileRunning ? whileRunning(child.pid!) : Promise.resolve();
  return Promise.all([exited, watching]).then(([exit]) => exit);
}

/** Every live descendant of `root` (parent links from /proc/PID/stat). */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) for (const c of children.get(todo.pop()!) ?? []) out.push(c), todo.push(c);
  return out;
}

/** The worker process of `rank` under `root` (torchrun gives each rank RANK=r in its environment). */
function rankPid(root: number, rank: number): number | undefined {
  return descendants(root).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`RANK=${rank}`) &&
        readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("dmbq_worker");
    } catch {
      return false;
    }
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function latestCheckpointEpoch(runDir: string): number {
  const p = join(runDir, "checkpoints", "latest.json");
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as { epoch: number }).epoch : 0;
}

function recordedEpochs(runDir: string): number[] {
  const p = join(runDir, "metrics.jsonl");
  if (!existsSync(p)) return [];
  return readFileSync(p, "utf8").split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { epoch: number }).epoch);
}

describe("dmbq resume of a 2-rank run whose rank died", function () {
  this.timeout(180_000);

  it("fails naming rank 1, then resumes from the last checkpoint and records every epoch once", async () => {
    const runsDir = mkdtempSync(join(tmpdir(), "dmbq-ddp-resume-"));
    const runDir = join(runsDir, "ddp-resume");
    const configPath = join(runsDir, "config.json");
    writeFileSync(configPath, JSON.stringify({
      name: "ddp-resume", runsDir, model: "digits_cnn", dataset: { name: "digits", trainLimit: 512, testLimit: 128 },
      epochs: EPOCHS, seed: 7, optimizer: { lr: 0.05 }, quant: { weightBits: 2, actBits: 2, granularity: "CP" },
      progress: "lines", workers: { gpus: 2 },
    }));

    let killed: number | undefined;
    const first = await dmbq(["train", configPath], async (cli) => {
      // kill rank 1 once epoch 1 is checkpointed (epoch 2 is then running, or its start is being prepared)
      for (let i = 0; i < 1200 && killed === undefined; i++) {
        await sleep(100);
        if (latestCheckpointEpoch(runDir) < 1) continue;
        const pid = rankPid(cli, 1);
        if (pid !== undefined) {
          process.kill(pid, "SIGKILL");
          killed = pid;
        }
      }
    });
    assert.ok(killed !== undefined, `rank 1 was never found to kill:\n${first.stderr}`);
    assert.notEqual(first.code, 0, `the run should fail when a rank dies:\n${first.stdout}\n${first.stderr}`);
    assert.match(first.stderr, /2-rank worker job .* failed: rank 1 died/);
    assert.match(first.stderr, /dmbq resume/);
    const checkpointed = latestCheckpointEpoch(runDir);
    assert.ok(checkpointed >= 1 && checkpointed < EPOCHS, `checkpoint after epoch ${checkpointed}`);
    assert.ok(!existsSync(join(runDir, "result.json")), "a failed run writes no result");
    const failure = JSON.parse(readFileSync(join(runDir, "error.json"), "utf8")) as { message: string; checkpoint: string | null };
    assert.match(failure.message, /rank 1 died/);
    assert.ok(failure.message.includes(`dmbq resume ${runDir}`), failure.message);
    assert.ok(failure.checkpoint !== null, "error.json names the checkpoint to resume from");
    const before = readFileSync(join(runDir, "metrics.jsonl"), "utf8").split("\n").slice(0, checkpointed);

    const second = await dmbq(["resume", runDir]);
    assert.equal(second.code, 0, `resume failed:\n${second.stdout}\n${second.stderr}`);
    assert.deepEqual(recordedEpochs(runDir), Array.from({ length: EPOCHS }, (_, i) => i + 1));
    // the epochs up to the checkpoint are the first run's records, untouched
    assert.deepEqual(readFileSync(join(runDir, "metrics.jsonl"), "utf8").split("\n").slice(0, checkpointed), before);
    const result = JSON.parse(readFileSync(join(runDir, "result.json"), "utf8")) as { epochs: number; top1: number };
    assert.equal(result.epochs, EPOCHS);
    assert.ok(result.top1 > 15, `top-1 ${result.top1} after ${EPOCHS} W2/A2 epochs on 2 ranks`);
  });
});
