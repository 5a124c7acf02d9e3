// The epoch lines of ProgressBar, and its one warning when the worker's step could not be captured.
import assert from "node:assert/strict";
import { ProgressBar } from "../../ts/experiment/progressBar.js";
import type { EpochRecord } from "../../ts/experiment/records.js";

function sink(): { out: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const out = { write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream;
  return { out, text: () => chunks.join("") };
}

const record = (epoch: number, stepMode?: string): EpochRecord => ({
  epoch, phase: "quant", trainLoss: 0.5, trainAccuracy: 0.8, testLoss: 0.6, testAccuracy: 0.75, lr: 0.1, seconds: 2,
  samplesPerS: 1000, avgWBits: 2, avgABits: 2, time: "2026-11-27T00:00:00Z", ...(stepMode ? { stepMode } : {}),
});

describe("ProgressBar", () => {
  it("warns once when the steps run eagerly because capture failed", () => {
    const s = sink();
    const bar = new ProgressBar(3, "lines", s.out);
    bar.epochDone(record(1, "eager (capture failed: RuntimeError: operation not permitted when stream is capturing)"));
    bar.epochDone(record(2, "eager (capture failed: RuntimeError: operation not permitted when stream is capturing)"));
    const lines = s.text().split("\n").filter(Boolean);
    assert.equal(lines.filter((l) => l.includes("warning")).length, 1);
    assert.match(lines[1]!, /warning: the worker runs its steps eager \(capture failed: RuntimeError: operation not permitted/);
    assert.match(lines[0]!, /epoch 1\/3 .* test acc 75\.00%  W2\.00\/A2\.00/);
  });

  it("says nothing more for a captured, an eager (CPU) or an older record without stepMode", () => {
    const s = sink();
    const bar = new ProgressBar(3, "lines", s.out);
    bar.epochDone(record(1, "cuda graph"));
    bar.epochDone(record(2, "eager"));
    bar.epochDone(record(3));
    assert.equal(s.text().split("\n").filter(Boolean).length, 3);
    assert.doesNotMatch(s.text(), /warning/);
  });
});
