// The fine-tuning LR of examples/reproduce-cifar.ts: each quantized row its own (the H100 sweep's best), unless
// --lr-q sets one for all.
import assert from "node:assert/strict";
import { DEFAULT_LR_Q, ROWS, lrQOf } from "../../examples/reproduce-cifar.js";

const row = (id: string) => ROWS.find((r) => r.id === id)!;

describe("reproduce-cifar: fine-tuning LR per row", () => {
  it("takes the row's own LR without --lr-q, and the default for rows without one", () => {
    assert.equal(lrQOf({ lrQ: undefined }, row("r20-w2a2-cp")), 0.08);
    assert.equal(lrQOf({ lrQ: undefined }, row("r20-w2a32-cp")), 0.04);
    assert.equal(lrQOf({ lrQ: undefined }, row("r20-w4a4-gp")), DEFAULT_LR_Q);
    assert.equal(lrQOf({ lrQ: undefined }, row("vgg-w0.7a32-cp")), 0.04);
    assert.equal(lrQOf({ lrQ: undefined }, row("vgg-w1a2-cp")), 0.08);
    // the ablations compare levels and granularities at one LR
    const ablations = ROWS.filter((r) => /-(uniform|uniform-max|dmbq|lp)$/.test(r.id) || (r.id.endsWith("-gp") && r.id.includes("w2a32")));
    assert.equal(ablations.length, 8);
    for (const r of ablations) {
      assert.equal(lrQOf({ lrQ: undefined }, r), DEFAULT_LR_Q, r.id);
    }
  });

  it("--lr-q overrides every row", () => {
    for (const r of ROWS.filter((r) => r.quant)) assert.equal(lrQOf({ lrQ: 0.03 }, r), 0.03, r.id);
  });
});
