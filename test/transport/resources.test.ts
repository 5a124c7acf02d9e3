// A long-lived orchestrator starts many workers: none may leave a file descriptor behind.
// (zeromq.js leaks three eventfds per socket whose event observer was created; spawned workers must not use one.)
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { TRANSPORTS } from "../support/eachTransport.js";
import { spawnWorker } from "../../ts/worker/index.js";

function openFds(): number {
  return readdirSync("/proc/self/fd").filter((f) => {
    try {
      return readlinkSync(`/proc/self/fd/${f}`) !== "";
    } catch {
      return false;
    }
  }).length;
}

describe("resources", function () {
  this.timeout(120_000);
  for (const kind of TRANSPORTS) {
    it(`5 workers started and closed one after another leave no file descriptors open [${kind}]`, async () => {
      const w0 = await spawnWorker({ transport: kind });
      await w0.close(); // the first one may open process-wide things (the zmq context, its poller)
      const before = openFds();
      for (let i = 0; i < 5; i++) {
        const w = await spawnWorker({ transport: kind });
        await w.client.echo(Buffer.from("x"));
        await w.close();
      }
      await new Promise((r) => setTimeout(r, 300));
      const grew = openFds() - before;
      assert.ok(grew <= 2, `${grew} more file descriptors open after 5 workers`);
    });
  }
});
