// A long-lived orchestrator starts many workers: none may leave a file descriptor behind.
// (zeromq.js leaks three eventfds per socket whose event observer was created; spawned workers must not use one.
// Once any observer exists in a process — a remote worker's connection — later sockets leak one eventfd each, so
// this file is named to run before remote.test.ts.)
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { TRANSPORTS } from "../support/eachTransport.js";
import { spawnWorker } from "../../ts/worker/index.js";

// Counts eventfds only: that is what a leaked ZeroMQ socket leaves (three per socket); pipes of other tests'
// children closing in the background would make a count of all descriptors flaky.
function openEventFds(): number {
  return readdirSync("/proc/self/fd").filter((f) => {
    try {
      return readlinkSync(`/proc/self/fd/${f}`).includes("eventfd");
    } catch {
      return false;
    }
  }).length;
}

describe("resources", function () {
  this.timeout(120_000);
  for (const kind of TRANSPORTS) {
    it(`5 workers started and closed one after another leave no eventfds open [${kind}]`, async () => {
      const w0 = await spawnWorker({ transport: kind });
      await w0.close(); // the first one may open process-wide things (the zmq context, its poller)
      const before = openEventFds();
      for (let i = 0; i < 5; i++) {
        const w = await spawnWorker({ transport: kind });
        await w.client.echo(Buffer.from("x"));
        await w.close();
      }
      await new Promise((r) => setTimeout(r, 300));
      const grew = openEventFds() - before;
      // the leak this guards against left 3 per worker (15 here); allow one stray socket of another test
      assert.ok(grew <= 3, `${grew} more eventfds open after 5 workers`);
    });
  }
});
