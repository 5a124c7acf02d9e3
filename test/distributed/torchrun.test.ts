// The worker as a 2-rank torch.distributed job (gloo on this CPU host), launched by the orchestrator itself.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Experiment, type ExperimentConfig } from "../../ts/experiment/index.js";
import { Response } from "../../ts/gen/dmbq.js";
import type { Transport } from "../../ts/transport/index.js";
import { failedRankFrom, spawnTorchrunWorker, WorkerExitedError } from "../../ts/worker/index.js";
import { CollectiveFailureGate, isCollectiveFailure } from "../../ts/worker/torchrunWorker.js";

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

describe("CollectiveFailureGate", () => {
  // A transport whose frames the test pushes by hand: the gate's ordering and hold are what is under test.
  class ManualTransport implements Transport {
    readonly kind = "manual";
    readonly address = "manual";
    listener: ((frame: Uint8Array) => void) | undefined;
    closed = false;
    send(): Promise<void> {
      return Promise.resolve();
    }
    onFrame(listener: (frame: Uint8Array) => void): void {
      this.listener = listener;
    }
    onClose(): void {}
    close(): Promise<void> {
      this.closed = true;
      return Promise.resolve();
    }
  }
  const errorFrame = (id: number, message: string) =>
    Response.encode(Response.fromPartial({ id, final: true, body: { $case: "error", value: { message } } })).finish();
  const echoFrame = (id: number) =>
    Response.encode(Response.fromPartial({ id, final: true, body: { $case: "echo", value: { payload: Buffer.from("x") } } })).finish();
  const ids = (frames: Uint8Array[]) => frames.map((f) => Response.decode(f).id);

  it("recognises gloo and NCCL failures, not ordinary worker errors", () => {
    assert.ok(isCollectiveFailure("run failed: RuntimeError: [../gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:1933: Connection reset by peer"));
    assert.ok(isCollectiveFailure("DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, remote process exited"));
    assert.ok(!isCollectiveFailure("dataset.batch_size: 100 does not split evenly over 3 ranks"));
  });

  it("passes ordinary replies, holds a collective failure and what follows it, then releases them in order", async () => {
    const inner = new ManualTransport();
    const gate = new CollectiveFailureGate(inner, 50);
    const seen: Uint8Array[] = [];
    gate.onFrame((f) => seen.push(f));
    inner.listener!(errorFrame(1, "dataset.name: unknown dataset"));
    inner.listener!(errorFrame(2, "RuntimeError: gloo ... Connection reset by peer"));
    inner.listener!(echoFrame(3));
    assert.deepEqual(ids(seen), [1]);
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(ids(seen), [1, 2, 3]);
  });

  it("drops what it holds when the job's exit closes it first", async () => {
    const inner = new ManualTransport();
    const gate = new CollectiveFailureGate(inner, 50);
    const seen: Uint8Array[] = [];
    gate.onFrame((f) => seen.push(f));
    inner.listener!(errorFrame(2, "RuntimeError: gloo ... Connection reset by peer"));
    await gate.close();
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(seen, []);
    assert.ok(inner.closed);
  });
});
