// SIGINT/SIGTERM to an orchestrator stop its workers cleanly; a SIGKILLed orchestrator's worker exits by itself.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { processAlive, waitFor } from "../support/eachTransport.js";

// A tiny orchestrator: spawns one worker, prints its pid, then waits forever.
const SCRIPT = `
import { spawnWorker } from "./ts/worker/index.js";
const w = await spawnWorker({ transport: process.env.T });
console.log("WORKER " + w.pid);
setInterval(() => {}, 1000);
`;

function startOrchestrator(transport: string): Promise<{ child: ReturnType<typeof spawn>; workerPid: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", SCRIPT], {
    env: { ...process.env, T: transport },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /WORKER (\d+)/.exec(out);
      if (m) resolve({ child, workerPid: Number(m[1]) });
    });
    child.once("exit", (code) => reject(new Error(`orchestrator exited early with ${code}`)));
  });
}

describe("signals and orphans", function () {
  this.timeout(60_000);
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it(`${signal} to the orchestrator stops its worker and exits ${code}`, async () => {
      const { child, workerPid } = await startOrchestrator("zmq");
      assert.ok(processAlive(workerPid));
      const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
      child.kill(signal);
      assert.equal(await exited, code);
      assert.ok(await waitFor(() => !processAlive(workerPid), 3_000), "the worker outlived its orchestrator");
    });
  }

  it("a worker whose orchestrator was SIGKILLed exits on its own (no orphan)", async () => {
    const { child, workerPid } = await startOrchestrator("zmq");
    child.kill("SIGKILL");
    assert.ok(await waitFor(() => !processAlive(workerPid), 5_000), "the orphaned worker is still running");
  });
});
