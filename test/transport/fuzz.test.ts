// Fuzzing a live worker: random bytes, truncated requests and well-formed requests with wrong fields.
// Every frame must be answered (an error reply, or a real reply where the bytes happen to form a harmless
// request), the worker must stay up, and a valid request afterwards must succeed. Seeded, so reproducible.
import assert from "node:assert/strict";
import { Configure, ErrorCode, Request } from "../../ts/gen/dmbq.js";
import { eachTransport, processAlive, waitFor } from "../support/eachTransport.js";
import { seededRandom as mulberry32 } from "../../ts/util/seededRandom.js";


// Bytes that happen to decode into a request that would really act (shut down, train, sleep) are not garbage.
function harmless(frame: Uint8Array): boolean {
  try {
    const r = Request.decode(frame);
    const c = r.body?.$case;
    if (c === "shutdown" || c === "run" || c === "configure" || c === "updateScheme" || c === "saveCheckpoint") return false;
    if (c === "echo" && r.body?.$case === "echo" && r.body.value.delayMs > 0) return false;
    return true;
  } catch {
    return true;
  }
}

function fuzzFrames(seed: number, count: number): Uint8Array[] {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const valid = [
    Request.encode({ id: 11, body: { $case: "hello", value: { protocolVersion: 1, client: "fuzz" } } }).finish(),
    Request.encode({ id: 12, body: { $case: "configure", value: Configure.fromPartial({ model: { name: "resnet20" }, dataset: { name: "digits" } }) } }).finish(),
    Request.encode({ id: 13, body: { $case: "evaluate", value: { split: "test", maxBatches: 1 } } }).finish(),
  ];
  const frames: Uint8Array[] = [];
  while (frames.length < count) {
    const k = int(4);
    let f: Uint8Array;
    if (k === 0) {
      f = Uint8Array.from({ length: int(300) }, () => int(256)); // random bytes, empty included
    } else if (k === 1) {
      const src = valid[int(valid.length)]!;
      f = src.subarray(0, int(src.length)); // truncated
    } else if (k === 2) {
      const src = Uint8Array.from(valid[int(valid.length)]!);
      for (let i = 0; i < 1 + int(4); i++) src[int(src.length)] = int(256); // bit rot
      f = src;
    } else {
      f = Uint8Array.from({ length: 1 + int(40) }, () => (rnd() < 0.5 ? 0xff : int(256))); // invalid varints
    }
    if (harmless(f)) frames.push(f);
  }
  return frames;
}

// Well-formed requests with wrong fields: each must come back as a typed error naming the problem.
const wrongFields: Array<{ frame: Uint8Array; id: number; code: ErrorCode }> = [
  { id: 901, code: ErrorCode.ERROR_CODE_PROTOCOL_MISMATCH, frame: Request.encode({ id: 901, body: { $case: "hello", value: { protocolVersion: 99, client: "fuzz" } } }).finish() },
  { id: 902, code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, frame: Request.encode({ id: 902, body: { $case: "configure", value: Configure.fromPartial({ model: { name: "no-such-model" }, dataset: { name: "digits" }, schedule: { epochs: 1 } }) } }).finish() },
  { id: 903, code: ErrorCode.ERROR_CODE_INVALID_ARGUMENT, frame: Request.encode({ id: 903, body: { $case: "configure", value: Configure.fromPartial({ model: { name: "digits_cnn" }, dataset: { name: "no-such-data" }, schedule: { epochs: 1 } }) } }).finish() },
  { id: 904, code: ErrorCode.ERROR_CODE_NOT_CONFIGURED, frame: Request.encode({ id: 904, body: { $case: "evaluate", value: { split: "test", maxBatches: 0 } } }).finish() },
  { id: 905, code: ErrorCode.ERROR_CODE_NOT_CONFIGURED, frame: Request.encode({ id: 905, body: { $case: "loadCheckpoint", value: { path: "/nonexistent/dmbq.ckpt", weightsOnly: false } } }).finish() },
];

eachTransport("fuzzing a live worker", ({ kind, start }) => {
  it("answers >= 1,000 garbage, truncated and corrupted frames, stays up, then serves a valid request", async function () {
    this.timeout(120_000);
    const w = await start();
    const frames = fuzzFrames(kind === "zmq" ? 1 : 2, 1_200);
    for (const f of frames) await w.transport.send(f);
    for (const x of wrongFields) await w.transport.send(x.frame);
    const expected = frames.length + wrongFields.length;
    const all = await waitFor(() => w.client.unsolicited.length >= expected, 60_000, 50);
    assert.ok(all, `only ${w.client.unsolicited.length} of ${expected} frames were answered`);
    assert.equal(w.client.unsolicited.length, expected);
    for (const x of wrongFields) {
      const r = w.client.unsolicited.find((u) => u.id === x.id);
      assert.ok(r && r.body?.$case === "error", `request ${x.id}: expected an error reply`);
      assert.equal(r.body.$case === "error" && r.body.value.code, x.code, `request ${x.id}: ${JSON.stringify(r.body)}`);
    }
    const errors = w.client.unsolicited.filter((u) => u.body?.$case === "error").length;
    assert.ok(errors >= frames.length * 0.9, `expected mostly error replies, got ${errors}`);
    assert.ok(processAlive(w.pid!));
    const ok = await w.client.echo(Buffer.from("after the storm"));
    assert.ok("payload" in ok && ok.payload.toString() === "after the storm");
  });
});
