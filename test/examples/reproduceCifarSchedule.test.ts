// The row scheduler of examples/reproduce-cifar.ts: per-device limits, dependencies, failure propagation,
// stopping; and the steady-state median used for the epoch-time ratios.
import assert from "node:assert/strict";
import fc from "fast-check";
import { ROWS, fpRowOf, runOnDevices, steadyMedian, TIMING_ROWS, type Job } from "../../examples/reproduce-cifar.js";

/** A promise resolved from outside, so the tests decide the order in which jobs end (no timers). */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe("reproduce-cifar: runOnDevices", () => {
  it("a row starts as soon as its own FP run is done, not after another model's FP run", async () => {
    const gates = new Map(["r20-fp", "vgg-fp", "vgg-q", "r20-q"].map((id) => [id, gate()]));
    const started: string[] = [];
    const jobs: Job[] = [{ id: "r20-fp" }, { id: "vgg-fp" }, { id: "r20-q", after: "r20-fp" }, { id: "vgg-q", after: "vgg-fp" }];
    const done = runOnDevices(jobs, ["cuda:0", "cuda:1"], 1, async (job, device) => {
      started.push(`${job.id}@${device}`);
      await gates.get(job.id)!.promise;
      return device;
    });
    await flush();
    assert.deepEqual(started, ["r20-fp@cuda:0", "vgg-fp@cuda:1"]);
    gates.get("vgg-fp")!.open();
    await flush();
    assert.deepEqual(started, ["r20-fp@cuda:0", "vgg-fp@cuda:1", "vgg-q@cuda:1"], "vgg-q must not wait for r20-fp");
    for (const g of gates.values()) g.open();
    const out = await done;
    assert.equal(out.size, 4);
    assert.ok([...out.values()].every((o) => o.ok));
  });

  it("the first jobs spread over the devices before a device takes a second one", async () => {
    const placed: string[] = [];
    const g = gate();
    const done = runOnDevices([{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }], ["cuda:0", "cuda:1"], 2, async (job, device) => {
      placed.push(`${job.id}@${device}`);
      await g.promise;
      return 0;
    });
    await flush();
    assert.deepEqual(placed, ["a@cuda:0", "b@cuda:1", "c@cuda:0", "d@cuda:1"]);
    g.open();
    await done;
  });

  it("a failed FP run fails its dependents without running them; other rows still run", async () => {
    const ran: string[] = [];
    const out = await runOnDevices([{ id: "fp" }, { id: "other" }, { id: "q", after: "fp" }], ["cpu"], 1, async (job) => {
      ran.push(job.id);
      if (job.id === "fp") throw new Error("diverged");
      return job.id;
    });
    assert.deepEqual(ran, ["fp", "other"]);
    const q = out.get("q")!;
    assert.ok(!q.ok && /fp.*diverged/.test(q.error.message), "the dependent names its FP run and why it failed");
  });

  it("once canStart() is false, no further job starts and each says so", async () => {
    let allowed = true;
    const ran: string[] = [];
    const out = await runOnDevices([{ id: "a" }, { id: "b" }, { id: "c" }], ["cpu"], 1, async (job) => {
      ran.push(job.id);
      allowed = false;
      return 1;
    }, () => allowed);
    assert.deepEqual(ran, ["a"]);
    assert.ok(!out.get("b")!.ok && !out.get("c")!.ok);
  });

  it("rejects a dependency listed after its dependent, a repeated id and bad limits, naming the argument", async () => {
    const run = async (): Promise<number> => 1;
    await assert.rejects(runOnDevices([{ id: "q", after: "fp" }, { id: "fp" }], ["cpu"], 1, run), /q runs after fp/);
    await assert.rejects(runOnDevices([{ id: "a" }, { id: "a" }], ["cpu"], 1, run), /a is listed twice/);
    await assert.rejects(runOnDevices([{ id: "a" }], [], 1, run), /^Error: devices:/);
    await assert.rejects(runOnDevices([{ id: "a" }], ["cpu"], 0, run), /^Error: per-device:/);
  });

  it("property: per-device limit, dependencies respected, every job accounted for", async () => {
    const spec = fc.record({
      nFp: fc.integer({ min: 1, max: 3 }),
      deps: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 8 }), // dependent i runs after FP (dep mod nFp)
      devices: fc.integer({ min: 1, max: 3 }),
      perDevice: fc.integer({ min: 1, max: 3 }),
      durations: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 11, maxLength: 11 }),
      failing: fc.array(fc.boolean(), { minLength: 11, maxLength: 11 }),
    });
    await fc.assert(fc.asyncProperty(spec, async (s) => {
      const jobs: Job[] = Array.from({ length: s.nFp }, (_, i) => ({ id: `fp${i}` }));
      s.deps.forEach((d, i) => jobs.push({ id: `q${i}`, after: `fp${d % s.nFp}` }));
      const devices = Array.from({ length: s.devices }, (_, i) => `dev${i}`);
      const active = new Map(devices.map((d) => [d, 0]));
      const ended = new Map<string, boolean>(); // id → succeeded
      const startedAt: string[] = [];
      let maxSeen = 0;
      const out = await runOnDevices(jobs, devices, s.perDevice, async (job, device) => {
        const i = jobs.indexOf(job);
        if (job.after !== undefined) assert.equal(ended.get(job.after), true, `${job.id} started before ${job.after} succeeded`);
        startedAt.push(job.id);
        active.set(device, active.get(device)! + 1);
        maxSeen = Math.max(maxSeen, active.get(device)!);
        for (let k = 0; k < s.durations[i]!; k++) await Promise.resolve(); // finish order varies with the duration
        active.set(device, active.get(device)! - 1);
        ended.set(job.id, !s.failing[i]);
        if (s.failing[i]) throw new Error(`${job.id} failed`);
        return job.id;
      });
      assert.ok(maxSeen <= s.perDevice);
      assert.equal(out.size, jobs.length);
      for (const job of jobs) {
        const fpFailed = job.after !== undefined && ended.get(job.after) === false;
        assert.equal(startedAt.includes(job.id), !fpFailed, `${job.id}: runs exactly when its FP run did not fail`);
        assert.equal(out.get(job.id)!.ok, !fpFailed && !s.failing[jobs.indexOf(job)]);
      }
      // With at least as many slots as FP runs, they all start at once, before any dependent.
      if (s.devices * s.perDevice >= s.nFp) assert.deepEqual(startedAt.slice(0, s.nFp).sort(), jobs.slice(0, s.nFp).map((j) => j.id).sort());
    }), { numRuns: 200 });
  });
});

describe("reproduce-cifar: rows and timing", () => {
  it("steadyMedian drops the first epoch and takes the median of the rest", () => {
    assert.equal(steadyMedian([100, 3, 1, 2]), 2);
    assert.equal(steadyMedian([100, 4, 2]), 3);
    assert.throws(() => steadyMedian([5]), /at least 2 epochs/);
    fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 1e3, noNaN: true }), { minLength: 2, maxLength: 20 }), (xs) => {
      const m = steadyMedian(xs);
      const rest = xs.slice(1);
      return m >= Math.min(...rest) && m <= Math.max(...rest) && steadyMedian([1e9, ...rest]) === m;
    }));
  });

  it("every quantized row has an FP row of its model, and the timed rows are table rows", () => {
    const ids = new Set(ROWS.map((r) => r.id));
    for (const r of ROWS.filter((x) => x.quant)) assert.ok(ids.has(fpRowOf(r)), r.id);
    for (const t of TIMING_ROWS) assert.ok(ids.has(t.id), t.id);
    assert.equal(TIMING_ROWS[0]!.id, "r20-fp");
  });
});
