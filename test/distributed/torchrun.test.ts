// The worker as a 2-rank torch.distributed job (gloo on this CPU host), launched by the orchestrator itself.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Experiment, type ExperimentConfig } from "../../ts/experiment/index.js";
import { failedRankFrom, spawnTorchrunWorker, WorkerExitedError } from "../../ts/worker/index.js";

const cpuOnly = { DMBQ_DIST_BACKEND: "gloo", OMP_NUM_THREADS: "1" };

function rankPids(agentPid: number): number[] {
  const pids: number[] = [];
  for (const task of readdirSync(`/proc/${agentPid}/task`)) {
    pids.push(...readFileSync(`/proc/${agentPid}/task/${task}/children`, "utf8").split(/\s+/).filter(Boolean).map(Number));
  }
  return pids;
}

describe("torchrun worker (2 gloo ranks)", function () {
  this.timeout(180_000);

  it("parses the failed rank out of torchrun's summary", () => {
    assert.equal(failedRankFrom("  rank      : 1 (local_rank: 1)\n  exitcode  : -9"), 1);
    assert.equal(failedRankFrom("rank : 0 (local_rank: 0)\nRoot Cause (first observed failure):\n  rank : 1 (local_rank: 1)"), 1);
    assert.equal(failedRankFrom("nothing here"), undefined);
  });

  it("a rank that dies ends the job and pending requests reject naming the rank", async () => {
    const handle = await spawnTorchrunWorker({ nprocPerNode: 2, env: cpuOnly });
    assert.equal(handle.hello.capabilities?.worldSize, 2);
    const leader = handle.hello.capabilities!.pid;
    const followers = rankPids(handle.pid!).filter((p) => p !== leader);
    assert.equal(followers.length, 1);
    const pending = handle.client.echo(Buffer.from("x"), { delayMs: 60_000 });
    process.kill(followers[0]!, "SIGKILL");
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(err instanceof WorkerExitedError, String(err));
      assert.match(err.message, /2-rank worker job .* failed: rank 1 died/);
      assert.match(err.message, /dmbq resume/);
      return true;
    });
    await handle.close();
  });

  it("an experiment with workers: { gpus: 2 } trains digits W2/A2 for an epoch through the orchestrator", async () => {
    const runsDir = mkdtempSync(join(tmpdir(), "dmbq-ddp-runs-"));
    const config: ExperimentConfig = {
      name: "ddp", runsDir, model: "digits_cnn", dataset: { name: "digits" }, epochs: 1, seed: 7,
      optimizer: { lr: 0.05 }, quant: { weightBits: 2, actBits: 2, granularity: "CP" }, progress: "none",
      workers: { gpus: 2 },
    };
    const saved = { ...process.env };
    Object.assign(process.env, cpuOnly);
    try {
      const run = await Experiment.start(config);
      const result = await run.result;
      assert.equal(result.epochs, 1);
      assert.ok(result.top1 > 30, `top-1 ${result.top1} after one W2/A2 epoch on 2 ranks`);
    } finally {
      process.env = saved;
    }
  });
});
