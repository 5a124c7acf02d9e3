// The transport contract, run against a real worker over ZeroMQ and over stdio alike.
import assert from "node:assert/strict";
import { ErrorCode, Request } from "../../ts/gen/dmbq.js";
import { DeadlineExceededError, ProtocolMismatchError, WorkerExitedError, WorkerRequestError } from "../../ts/worker/index.js";
import { ZOO_MODELS } from "../../ts/experiment/config.js";
import { eachTransport, processAlive, waitFor } from "../support/eachTransport.js";

eachTransport("worker contract", ({ kind, start }) => {
  it("shakes hands and reports its capabilities", async () => {
    const w = await start();
    const caps = w.hello.capabilities!;
    assert.equal(w.hello.protocolVersion, 1);
    assert.ok(["cpu", "cuda", "mps"].includes(caps.deviceKind), caps.deviceKind);
    assert.match(caps.torchVersion, /^\d+\.\d+/);
    assert.equal(caps.pid, w.pid);
    // The orchestrator validates model names up front: its list must be the worker's.
    assert.deepEqual([...caps.models].sort(), [...ZOO_MODELS].sort());
  });

  it("echoes small and 4 MiB payloads intact", async () => {
    const w = await start();
    const small = await w.client.echo(Buffer.from("ping"));
    assert.ok("payload" in small && small.payload.toString() === "ping");
    const big = Buffer.alloc(4 << 20);
    for (let i = 0; i < big.length; i += 4099) big[i] = i % 251;
    const back = await w.client.echo(big);
    assert.ok("payload" in back && Buffer.compare(back.payload, big) === 0);
  });

  it("correlates many concurrent requests by id", async () => {
    const w = await start();
    const sent = Array.from({ length: 64 }, (_, i) => Buffer.from(`req-${i}-${"x".repeat(i * 37)}`));
    const replies = await Promise.all(sent.map((p) => w.client.echo(p)));
    replies.forEach((r, i) => assert.ok("payload" in r && Buffer.compare(r.payload, sent[i]!) === 0, `reply ${i}`));
  });

  it("answers a request with no body as unknown and keeps serving", async () => {
    const w = await start();
    // A Request with an id and no body: what an older worker sees from a newer orchestrator.
    await w.transport.send(Request.encode({ id: 4242, body: undefined }).finish());
    assert.ok(await waitFor(() => w.client.unsolicited.some((r) => r.id === 4242), 5_000), "no reply to a body-less request");
    const reply = w.client.unsolicited.find((r) => r.id === 4242)!;
    assert.equal(reply.body?.$case, "error");
    assert.equal(reply.body?.$case === "error" && reply.body.value.code, ErrorCode.ERROR_CODE_UNKNOWN_REQUEST);
    assert.ok("payload" in (await w.client.echo(Buffer.from("still here"))));
  });

  it("types an error reply: a run before any configure", async () => {
    const w = await start();
    await assert.rejects(w.client.run({ steps: 1 }), (e: unknown) => e instanceof WorkerRequestError && e.code === ErrorCode.ERROR_CODE_NOT_CONFIGURED);
  });

  it("stops a long request on abort: it completes as Cancelled, and the worker stays usable", async () => {
    const w = await start();
    const ac = new AbortController();
    const long = w.client.echo(Buffer.from("slow"), { delayMs: 30_000, signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    const r = await long;
    assert.ok("target" in r, "expected a Cancelled reply");
    assert.ok(Date.now() - t0 < 5_000);
    assert.ok("payload" in (await w.client.echo(Buffer.from("after"))));
  });

  it("answers liveness (echo) while a long request runs", async () => {
    const w = await start();
    const ac = new AbortController();
    const long = w.client.echo(Buffer.from("slow"), { delayMs: 30_000, signal: ac.signal });
    const quick = await w.client.echo(Buffer.from("quick"));
    assert.ok("payload" in quick && quick.payload.toString() === "quick");
    ac.abort();
    await long;
  });

  it("rejects a request past its deadline and serves the next one", async () => {
    const w = await start();
    await assert.rejects(w.client.echo(Buffer.from("late"), { delayMs: 1_500, deadlineMs: 200 }), DeadlineExceededError);
    assert.ok("payload" in (await w.client.echo(Buffer.from("next"))));
  });

  it("refuses a worker of another protocol version, naming both versions", async () => {
    await assert.rejects(start({ env: { DMBQ_WORKER_PROTOCOL_VERSION: "99" } }), (e: unknown) => {
      assert.ok(e instanceof ProtocolMismatchError, String(e));
      assert.match((e as Error).message, /version 1\b/);
      assert.match((e as Error).message, /version 99\b/);
      return true;
    });
  });

  it("notices a SIGKILLed worker within 2 s: the pending call names its death, no zombie is left", async () => {
    const w = await start();
    const pid = w.pid!;
    const pending = w.client.echo(Buffer.from("never"), { delayMs: 60_000 });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    process.kill(pid, "SIGKILL");
    await assert.rejects(pending, (e: unknown) => {
      assert.ok(e instanceof WorkerExitedError, String(e));
      assert.match((e as Error).message, /SIGKILL/);
      return true;
    });
    assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
    assert.ok(await waitFor(() => !processAlive(pid), 2_000), "worker process still present (zombie?)");
    await assert.rejects(w.client.echo(Buffer.from("dead")), WorkerExitedError);
  });

  it(`shuts down cleanly on close (${kind})`, async () => {
    const w = await start();
    const pid = w.pid!;
    await w.close();
    assert.deepEqual(await w.exited, { code: 0, signal: null });
    assert.ok(!processAlive(pid));
  });
});
