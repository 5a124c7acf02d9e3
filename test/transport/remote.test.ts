// A worker started on its own (`python -m dmbq_worker --listen tcp://...`, as on a GPU host), reached over TCP.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { connectWorker, projectRoot, workerPython } from "../../ts/worker/index.js";
import { workerEnv } from "../../ts/worker/pythonEnv.js";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

describe("remote worker over tcp", function () {
  this.timeout(60_000);

  it("connects, serves requests, and a dead remote worker fails pending calls after the heartbeat grace", async () => {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const worker = spawn(workerPython(), ["-m", "dmbq_worker", "--listen", endpoint], { cwd: projectRoot(), env: workerEnv(), stdio: "ignore" });
    try {
      const w = await connectWorker(endpoint, { startTimeoutMs: 30_000 });
      assert.equal(w.hello.protocolVersion, 1);
      assert.equal(w.pid, undefined, "a remote worker is not ours to kill");
      const r = await w.client.echo(Buffer.from("over tcp"));
      assert.ok("payload" in r && r.payload.toString() === "over tcp");
      const pending = w.client.echo(Buffer.from("never"), { delayMs: 60_000 });
      const t0 = Date.now();
      worker.kill("SIGKILL");
      await assert.rejects(pending, /lost the connection to the worker at tcp:\/\/127\.0\.0\.1/);
      assert.ok(Date.now() - t0 < 6_000, `took ${Date.now() - t0} ms`);
      await w.close();
    } finally {
      worker.kill("SIGKILL");
    }
  });

  it("refuses an endpoint that is not tcp:// or ipc://", async () => {
    await assert.rejects(connectWorker("http://localhost:1"), /must start with tcp:\/\/ or ipc:\/\//);
  });
});
