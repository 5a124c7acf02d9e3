// What the experiment sends in Configure: the quantizer options reach the worker only when the config sets them.
import assert from "node:assert/strict";
import { WeightScale } from "../../ts/gen/dmbq.js";
import { configureRequest } from "../../ts/experiment/experiment.js";
import type { ExperimentConfig } from "../../ts/experiment/index.js";

const base: ExperimentConfig = { name: "c", model: "digits_cnn", dataset: { name: "digits" }, epochs: 1, quant: { weightBits: 2, actBits: 2 } };

describe("configureRequest", () => {
  it("sends quant.actClipLrScale as QuantOptions.actClipLrScale, the other options at the worker's defaults", () => {
    const req = configureRequest({ ...base, quant: { ...base.quant!, actClipLrScale: 0.1 } }, undefined, "");
    assert.deepEqual(req.quant, { scaleEmaDecay: 0, actClipInit: 0, actClipLrScale: 0.1, weightScale: WeightScale.WEIGHT_SCALE_UNSPECIFIED });
  });

  it("sends no QuantOptions without it (the worker's defaults)", () => {
    assert.equal(configureRequest(base, undefined, "").quant, undefined);
    for (const levels of ["laplace", "gaussian", "empirical", "uniform"] as const) {
      assert.equal(configureRequest({ ...base, quant: { ...base.quant!, levels } }, undefined, "").quant, undefined, levels);
    }
  });

  it("levels uniformMax: scales of max|w| (QuantOptions.weightScale MAX_ABS), the table's unit", () => {
    const q = { ...base.quant!, levels: "uniformMax" as const };
    assert.deepEqual(configureRequest({ ...base, quant: q }, undefined, "").quant,
      { scaleEmaDecay: 0, actClipInit: 0, actClipLrScale: 0, weightScale: WeightScale.WEIGHT_SCALE_MAX_ABS });
    assert.deepEqual(configureRequest({ ...base, quant: { ...q, actClipLrScale: 0.1 } }, undefined, "").quant,
      { scaleEmaDecay: 0, actClipInit: 0, actClipLrScale: 0.1, weightScale: WeightScale.WEIGHT_SCALE_MAX_ABS });
  });
});
