import assert from "node:assert/strict";
import {
  allocateBits, averageBits, freeLayerNames, initialState, resolvePolicyConfig, schemeBits, windowPhase,
  type EpochSensitivities, type LayerShape, type PolicyConfig, type PolicyState, type Score,
} from "../../ts/allocation/index.js";

function body(name: string, outChannels: number, paramsPerOutChannel: number, inChannels = 1, actElemsPerInChannel = 1): LayerShape {
  return { name, role: "body", outChannels, inChannels, paramsPerOutChannel, actElemsPerInChannel };
}
const FIRST: LayerShape = { name: "conv0", role: "first", outChannels: 2, inChannels: 3, paramsPerOutChannel: 27, actElemsPerInChannel: 64 };
const LAST: LayerShape = { name: "fc", role: "last", outChannels: 10, inChannels: 4, paramsPerOutChannel: 4, actElemsPerInChannel: 1 };

/** Weight metric only (activations at full precision), for every layer. */
function weightSens(layers: LayerShape[], byLayer: Record<string, number[]>, lower: Record<string, number[]> = {}): EpochSensitivities {
  return {
    layers: layers.map((l) => ({
      name: l.name,
      weight: byLayer[l.name] ?? new Array<number>(l.outChannels).fill(1),
      ...(lower[l.name] !== undefined ? { weightLower: lower[l.name] } : {}),
    })),
  };
}

function cfgOf(over: Partial<PolicyConfig>): PolicyConfig {
  return { weightBudget: 2, actBudget: 32, granularity: "CP", startBits: 4, schedule: { totalEpochs: 10 }, ...over };
}

function weightBitsOf(state: PolicyState, name: string): number[] {
  return state.layers.find((l) => l.name === name)!.weightBits;
}

describe("LBA schedule", () => {
  it("ramps r linearly over the window's epochs but the last, which is final", () => {
    const s = resolvePolicyConfig(cfgOf({ schedule: { totalEpochs: 10, rampFraction: 0.4, rStart: 0.01, rEnd: 0.4 } })).schedule;
    assert.deepEqual(windowPhase(s, 0), { kind: "ramp", fraction: 0.01 });
    const mid = windowPhase(s, 1);
    assert.equal(mid.kind, "ramp");
    assert.ok(mid.kind === "ramp" && Math.abs(mid.fraction - 0.205) < 1e-12);
    assert.deepEqual(windowPhase(s, 2), { kind: "ramp", fraction: 0.4 });
    assert.deepEqual(windowPhase(s, 3), { kind: "final" });
    assert.deepEqual(windowPhase(s, 9), { kind: "final" });
  });

  it("leaves epochs before startEpoch alone", () => {
    const layers = [FIRST, body("a", 8, 9), LAST];
    const cfg = cfgOf({ schedule: { totalEpochs: 10, startEpoch: 2 } });
    const s0 = initialState(layers, cfg);
    const r = allocateBits(s0, layers, cfg, { layers: [] }, 0);
    assert.equal(r.changed, false);
    assert.deepEqual(r.state.layers, s0.layers);
    assert.equal(r.state.epoch, 0);
  });
});

describe("LBA ranking and decrements", () => {
  it("takes the bit from the channel with the least metric (already per element, so sizes compare as they are), ties by layer then channel", () => {
    // Layer a: 9 params per channel, layer b: 90. The metric is per parameter already: a's channel 0 (2) is cheapest.
    const layers = [FIRST, body("a", 2, 9), body("b", 2, 90), LAST];
    const cfg = cfgOf({ schedule: { totalEpochs: 10, rStart: 0.01 } }); // quota ceil(0.01 * 4) = 1
    const s0 = initialState(layers, cfg);
    const r = allocateBits(s0, layers, cfg, weightSens(layers, { a: [2, 3], b: [50, 9] }), 0);
    assert.deepEqual(weightBitsOf(r.state, "a"), [3, 4]);
    assert.deepEqual(weightBitsOf(r.state, "b"), [4, 4]);
    // All equal: the first channel of the first layer goes first.
    const tie = allocateBits(s0, layers, cfg, weightSens(layers, { a: [9, 9], b: [9, 9] }), 0);
    assert.deepEqual(weightBitsOf(tie.state, "a"), [3, 4]);
    assert.deepEqual(weightBitsOf(tie.state, "b"), [4, 4]);
  });

  it("score metricPerWeight divides the metric by the channel's weight once more (the ranking before the option)", () => {
    const layers = [FIRST, body("a", 2, 9), body("b", 2, 90), LAST];
    const cfg = cfgOf({ score: "metricPerWeight", schedule: { totalEpochs: 10, rStart: 0.01 } });
    const s0 = initialState(layers, cfg);
    // Per parameter twice over, b's channel 1 (9 / 90 = 0.1) is cheapest.
    const r = allocateBits(s0, layers, cfg, weightSens(layers, { a: [2, 3], b: [50, 9] }), 0);
    assert.deepEqual(weightBitsOf(r.state, "a"), [4, 4]);
    assert.deepEqual(weightBitsOf(r.state, "b"), [4, 3]);
    const tie = allocateBits(s0, layers, cfg, weightSens(layers, { a: [9, 9], b: [90, 90] }), 0);
    assert.deepEqual(weightBitsOf(tie.state, "a"), [3, 4]);
    assert.deepEqual(weightBitsOf(tie.state, "b"), [4, 4]);
  });

  it("score metricSqrtWeight multiplies the metric by the square root of the channel's weight", () => {
    const layers = [FIRST, body("a", 2, 9), body("b", 2, 100), LAST];
    const cfg = cfgOf({ score: "metricSqrtWeight", schedule: { totalEpochs: 10, rStart: 0.01 } });
    const s0 = initialState(layers, cfg);
    // × √w: a's channel 0 scores 2 × 3 = 6, b's channel 1 scores 1 × 10 = 10; as it is, b's (1) would go first.
    const r = allocateBits(s0, layers, cfg, weightSens(layers, { a: [2, 3], b: [5, 1] }), 0);
    assert.deepEqual(weightBitsOf(r.state, "a"), [3, 4]);
    assert.deepEqual(weightBitsOf(r.state, "b"), [4, 4]);
    const byMetric = allocateBits(s0, layers, cfgOf({ schedule: { totalEpochs: 10, rStart: 0.01 } }), weightSens(layers, { a: [2, 3], b: [5, 1] }), 0);
    assert.deepEqual(weightBitsOf(byMetric.state, "b"), [4, 3]);
  });

  it("skips a take that would overshoot the budget for a finer unit that lands on it", () => {
    // LP, start 2: layer weights 50%, 25%, 25%; budget 1.75. The cheapest layer (big) would land on 1.5.
    const layers = [FIRST, body("big", 4, 50), body("s1", 2, 50), body("s2", 2, 50), LAST];
    const cfg = cfgOf({ granularity: "LP", startBits: 2, weightBudget: 1.75, schedule: { totalEpochs: 1 } });
    const r = allocateBits(initialState(layers, cfg), layers, cfg, weightSens(layers, { big: [0, 0, 0, 0], s1: [5, 5], s2: [1, 1] }), 0);
    assert.deepEqual(weightBitsOf(r.state, "big"), [2, 2, 2, 2]);
    assert.deepEqual(weightBitsOf(r.state, "s1"), [2, 2]);
    assert.deepEqual(weightBitsOf(r.state, "s2"), [1, 1]);
    assert.equal(averageBits(r.state, layers).weight, 1.75);
    assert.equal(r.state.weightFrozen, true);
  });

  it("the last window epoch takes whatever remains, lands at or below the budget, then freezes", () => {
    const layers = [FIRST, body("a", 16, 9), body("b", 16, 18), LAST];
    const cfg = cfgOf({ weightBudget: 1.5, schedule: { totalEpochs: 5, rampFraction: 0.4 } }); // window: epochs 0, 1
    let s = initialState(layers, cfg);
    const sens = weightSens(layers, { a: Array.from({ length: 16 }, (_, i) => i + 1), b: Array.from({ length: 16 }, (_, i) => 2 * i + 1) });
    s = allocateBits(s, layers, cfg, sens, 0).state;
    assert.ok(averageBits(s, layers).weight > 3.5);
    s = allocateBits(s, layers, cfg, sens, 1).state;
    const avg = averageBits(s, layers).weight;
    assert.ok(avg <= 1.5 && avg >= 1.45, `average ${avg}`);
    assert.equal(s.weightFrozen, true);
    const after = allocateBits(s, layers, cfg, { layers: [] }, 2);
    assert.equal(after.changed, false);
    assert.deepEqual(after.state.layers, s.layers);
  });

  it("prunes channels to 0 bits for a budget below 1", () => {
    const layers = [FIRST, body("a", 32, 9), body("b", 32, 9), LAST];
    const cfg = cfgOf({ weightBudget: 0.7, schedule: { totalEpochs: 2 } });
    let s = initialState(layers, cfg);
    for (let e = 0; e < 2; e++) {
      s = allocateBits(s, layers, cfg, weightSens(layers, { a: Array.from({ length: 32 }, (_, i) => i), b: Array.from({ length: 32 }, (_, i) => 100 + i) }), e).state;
    }
    const bits = [...weightBitsOf(s, "a"), ...weightBitsOf(s, "b")];
    assert.ok(bits.includes(0), "no channel pruned");
    assert.ok(Math.abs(averageBits(s, layers).weight - 0.7) <= 0.05);
  });

  it("W2/A32: activations stay at 32 bits everywhere, weights reach 2", () => {
    const layers = [FIRST, body("a", 16, 9, 8, 16), body("b", 16, 9, 16, 16), LAST];
    const cfg = cfgOf({ weightBudget: 2, actBudget: 32, schedule: { totalEpochs: 1 } });
    const s = allocateBits(initialState(layers, cfg), layers, cfg, weightSens(layers, {}), 0).state;
    for (const l of s.layers) assert.ok(l.actBits.every((b) => b === 32));
    assert.equal(averageBits(s, layers).weight, 2);
    assert.deepEqual(weightBitsOf(s, "conv0"), [8, 8]);
  });

  it("starts above startBits when the budget lies above it", () => {
    const layers = [FIRST, body("a", 4, 9), LAST];
    const s = initialState(layers, cfgOf({ weightBudget: 6 }));
    assert.deepEqual(weightBitsOf(s, "a"), [6, 6, 6, 6]);
    assert.equal(s.weightFrozen, true);
  });

  it("allocates activations per input channel, weighted by feature-map size in the average, ranked by the metric as it is", () => {
    const layers = [FIRST, body("a", 2, 9, 4, 100), body("b", 2, 9, 4, 10), LAST];
    const sens: EpochSensitivities = { layers: [{ name: "a", weight: [1, 1], act: [1, 1, 1, 1] }, { name: "b", weight: [1, 1], act: [5, 5, 0.5, 5] }] };
    const run = (score: Score, s: EpochSensitivities = sens): PolicyState => {
      const cfg = cfgOf({ weightBudget: 32, actBudget: 3, score, schedule: { totalEpochs: 10, rStart: 0.01 } });
      return allocateBits(initialState(layers, cfg), layers, cfg, s, 0).state;
    };
    // Per element, b's channel 2 (0.5) is the cheapest; a's big maps do not make its channels cheaper.
    const byMetric = run("metric");
    assert.deepEqual(byMetric.layers[2]!.actBits, [4, 4, 3, 4]);
    assert.deepEqual(byMetric.layers[1]!.actBits, [4, 4, 4, 4]);
    assert.deepEqual(byMetric.layers[0]!.actBits, [8, 8, 8]);
    // Divided by the map size again, a's channels (1 / 100) undercut b's (0.5 / 10): its first channel goes.
    const perWeight = run("metricPerWeight");
    assert.deepEqual(perWeight.layers[1]!.actBits, [3, 4, 4, 4]);
    assert.deepEqual(perWeight.layers[2]!.actBits, [4, 4, 4, 4]);
    // a's channel 0 at 0.2: the cheapest as it is, but × √(map size) it scores 0.2 × 10 = 2 against b's 0.5 × √10 ≈ 1.6.
    const bigMapCheap: EpochSensitivities = { layers: [{ name: "a", weight: [1, 1], act: [0.2, 1, 1, 1] }, sens.layers[1]!] };
    assert.deepEqual(run("metric", bigMapCheap).layers[1]!.actBits, [3, 4, 4, 4]);
    const sqrtWeight = run("metricSqrtWeight", bigMapCheap);
    assert.deepEqual(sqrtWeight.layers[1]!.actBits, [4, 4, 4, 4]);
    assert.deepEqual(sqrtWeight.layers[2]!.actBits, [4, 4, 3, 4]);
    // actScore ranks the activations alone: the weights' score does not reach them.
    const split = (score: Score, actScore: Score): PolicyState => {
      const cfg = cfgOf({ weightBudget: 32, actBudget: 3, score, actScore, schedule: { totalEpochs: 10, rStart: 0.01 } });
      return allocateBits(initialState(layers, cfg), layers, cfg, bigMapCheap, 0).state;
    };
    assert.deepEqual(split("metricSqrtWeight", "metric").layers[1]!.actBits, [3, 4, 4, 4]);
    assert.deepEqual(split("metric", "metricSqrtWeight").layers[2]!.actBits, [4, 4, 3, 4]);
  });
});

describe("LBA start widths (a run going on from another's allocation)", () => {
  const layers = [FIRST, body("a", 4, 9, 2, 16), body("b", 2, 9, 4, 16), LAST];
  const W2A2 = cfgOf({ weightBudget: 2, actBudget: 2, minBits: 0 });

  it("starts the given kind's free layers at their widths, the other kind at its start width, edges at 8", () => {
    const s = initialState(layers, W2A2, { weight: { a: [0, 4, 2, 2], b: [3, 1] } });
    assert.deepEqual(weightBitsOf(s, "a"), [0, 4, 2, 2]);
    assert.deepEqual(weightBitsOf(s, "b"), [3, 1]);
    assert.deepEqual(weightBitsOf(s, "conv0"), [8, 8]);
    assert.equal(s.weightFrozen, true, "weights at their budget: nothing left to take");
    assert.deepEqual(s.layers[1]!.actBits, [4, 4]);
    assert.equal(s.actFrozen, false);
    // LBA then moves the activations only
    const sens: EpochSensitivities = { layers: layers.map((l) => ({ name: l.name, weight: new Array<number>(l.outChannels).fill(1), act: new Array<number>(l.inChannels).fill(1) })) };
    let state = s;
    for (let e = 0; e < 10; e++) state = allocateBits(state, layers, W2A2, sens, e).state;
    assert.deepEqual(weightBitsOf(state, "a"), [0, 4, 2, 2]);
    assert.ok(Math.abs(averageBits(state, layers).act - 2) <= 0.05 && averageBits(state, layers).act <= 2);
  });

  it("keeps moving a kind whose given widths average above the budget", () => {
    const s = initialState(layers, W2A2, { weight: { a: [4, 4, 4, 4], b: [2, 2] } });
    assert.equal(s.weightFrozen, false);
    const sens = weightSens(layers, {});
    let state = s;
    for (let e = 0; e < 10; e++) state = allocateBits(state, layers, W2A2, { layers: sens.layers.map((l, i) => ({ ...l, act: new Array<number>(layers[i]!.inChannels).fill(1) })) }, e).state;
    assert.ok(averageBits(state, layers).weight <= 2 + 1e-9);
  });

  it("names the bad entry: missing layer, wrong length, width outside the limits, an edge or unknown layer, an FP kind", () => {
    const bad = (start: Parameters<typeof initialState>[2], cfg: PolicyConfig, re: RegExp): void => {
      assert.throws(() => initialState(layers, cfg, start), re);
    };
    bad({ weight: { a: [2, 2, 2, 2] } }, W2A2, /start\.weight\.b: missing/);
    bad({ weight: { a: [2, 2, 2], b: [2, 2] } }, W2A2, /start\.weight\.a: expected 4 widths/);
    bad({ weight: { a: [2, 2, 2, 0], b: [2, 2] } }, cfgOf({ weightBudget: 2, actBudget: 2 }), /start\.weight\.a\[3\]: 0 is outside this config's 1\.\.8 bits/);
    bad({ weight: { a: [2, 2, 2, 2], b: [2, 2], fc: [8] } }, W2A2, /start\.weight\.fc: the layer is the last layer/);
    bad({ weight: { a: [2, 2, 2, 2], b: [2, 2], zz: [2] } }, W2A2, /start\.weight\.zz: no layer has this name/);
    bad({ act: { a: [2, 2], b: [2, 2, 2, 2] } }, cfgOf({ weightBudget: 2, actBudget: 32 }), /start\.act: this config keeps activations in full precision/);
    bad({ weight: { a: [2, 2, 2, 2], b: [2, 2] } }, { ...W2A2, pinned: { b: { weightBits: 3 } } }, /start\.weight\.b: the layer is pinned/);
    bad({ weight: { a: [0, 4, 2, 2], b: [2, 2] } }, { ...W2A2, granularity: "LP" }, /start\.weight: LP keeps one width for layer a, but the given widths there are 0, 2, 4/);
    bad({ weight: { a: [2, 2, 2, 2], b: [3, 3] } }, { ...W2A2, granularity: "GP" }, /start\.weight: GP keeps one width for every free layer, but the given widths there are 2, 3/);
    assert.deepEqual(weightBitsOf(initialState(layers, { ...W2A2, granularity: "LP" }, { weight: { a: [2, 2, 2, 2], b: [1, 1] } }), "b"), [1, 1]);
  });

  it("freeLayerNames lists exactly the layers a start must give: body layers, less the kind's pinned ones", () => {
    const pinned: PolicyConfig = { ...W2A2, pinned: { b: { weightBits: 3 } } };
    assert.deepEqual(freeLayerNames(layers, W2A2, "weight"), ["a", "b"]);
    assert.deepEqual(freeLayerNames(layers, pinned, "weight"), ["a"]);
    assert.deepEqual(freeLayerNames(layers, pinned, "act"), ["a", "b"]);
    // what it lists is what initialState takes
    assert.deepEqual(weightBitsOf(initialState(layers, pinned, { weight: { a: [2, 2, 2, 2] } }), "b"), [3, 3]);
  });
});

describe("LBA look-ahead criterion", () => {
  const layers = [FIRST, body("a", 2, 9), LAST];
  const sens = weightSens(layers, { a: [1, 2] }, { a: [10, 3] }); // decrement costs: 9 and 1

  it("ranks by the cost of the decrement itself, not by the current metric", () => {
    const bySens = allocateBits(initialState(layers, cfgOf({})), layers, cfgOf({}), sens, 0).state;
    assert.deepEqual(weightBitsOf(bySens, "a"), [3, 4]);
    const cfg = cfgOf({ criterion: "lookahead" });
    const byCost = allocateBits(initialState(layers, cfg), layers, cfg, sens, 0).state;
    assert.deepEqual(weightBitsOf(byCost, "a"), [4, 3]);
  });

  it("names the missing one-bit-lower metric", () => {
    const cfg = cfgOf({ criterion: "lookahead" });
    assert.throws(() => allocateBits(initialState(layers, cfg), layers, cfg, weightSens(layers, { a: [1, 2] }), 0), /sens\.layers\[1\]\.weightLower: missing/);
  });
});

describe("LBA give-back allocator", () => {
  // Budget met at once (one-epoch window), then costs change.
  const layers = [FIRST, body("a", 4, 10), LAST];
  const frozenAfterWindow = (allocator: "giveback" | "decrement"): { cfg: PolicyConfig; state: PolicyState } => {
    const cfg = cfgOf({ weightBudget: 3, allocator, schedule: { totalEpochs: 10, rampFraction: 0.1, rStart: 0.25 } });
    const state = allocateBits(initialState(layers, cfg), layers, cfg, weightSens(layers, { a: [1, 2, 3, 4] }), 0).state;
    return { cfg, state };
  };

  it("gives a bit to the channel whose cost rose most, taking one from the cheapest, keeping the budget", () => {
    const { cfg, state } = frozenAfterWindow("giveback");
    assert.deepEqual(weightBitsOf(state, "a"), [3, 3, 3, 3]); // the final epoch took whatever remained
    assert.equal(state.weightFrozen, true);
    // Channel 0's cost rose most (1 -> 40); channel 3 is now the cheapest (0.5).
    const r = allocateBits(state, layers, cfg, weightSens(layers, { a: [40, 2, 3, 0.5] }), 1);
    assert.equal(r.changed, true);
    assert.deepEqual(weightBitsOf(r.state, "a"), [4, 3, 3, 2]);
    assert.equal(averageBits(r.state, layers).weight, 3);
  });

  it("undoes a swap when no cheaper channel can pay for it", () => {
    const { cfg, state } = frozenAfterWindow("giveback");
    // Only channel 0's cost rose, and it is still the cheapest: no cheaper channel to take from.
    const r = allocateBits(state, layers, cfg, weightSens(layers, { a: [1.5, 2, 3, 4] }), 1);
    assert.equal(r.changed, false);
    assert.deepEqual(r.state.layers, state.layers);
  });

  it("the decrement allocator stays frozen in the same situation", () => {
    const { cfg, state } = frozenAfterWindow("decrement");
    const r = allocateBits(state, layers, cfg, weightSens(layers, { a: [40, 2, 3, 0.5] }), 1);
    assert.equal(r.changed, false);
    assert.deepEqual(r.state.layers, state.layers);
  });
});

describe("LBA errors and conversions", () => {
  const layers = [FIRST, body("a", 2, 9), LAST];
  const cfg = cfgOf({});

  it("refuses an epoch already allocated", () => {
    const s = allocateBits(initialState(layers, cfg), layers, cfg, weightSens(layers, {}), 0).state;
    assert.throws(() => allocateBits(s, layers, cfg, weightSens(layers, {}), 0), /^Error: epoch: 0 is not after the last allocated epoch 0/);
  });

  it("names a missing layer, a wrong length, a bad value and an unknown layer in the metric", () => {
    const s = initialState(layers, cfg);
    assert.throws(() => allocateBits(s, layers, cfg, { layers: [] }, 0), /sens\.layers: no entry for layer "a"/);
    assert.throws(() => allocateBits(s, layers, cfg, { layers: [{ name: "a", weight: [1] }] }, 0), /sens\.layers\[0\]\.weight: 1 values for 2 channels/);
    assert.throws(() => allocateBits(s, layers, cfg, { layers: [{ name: "a", weight: [1, Number.NaN] }] }, 0), /sens\.layers\[0\]\.weight\[1\]: expected a finite value >= 0/);
    assert.throws(() => allocateBits(s, layers, cfg, { layers: [{ name: "zz", weight: [1] }] }, 0), /sens\.layers\[0\]\.name: "zz" is not one of the policy's layers/);
  });

  it("names a state that does not match the layers", () => {
    const s = initialState(layers, cfg);
    const other = [FIRST, body("a", 3, 9), LAST];
    assert.throws(() => averageBits(s, other), /state\.layers\[1\]\.weightBits: 2 entries for 3 output channels/);
  });

  it("gives the widths as proto LayerScheme bytes", () => {
    const bits = schemeBits(initialState(layers, cfg));
    assert.deepEqual(bits.map((b) => [b.name, [...b.weightBitsU8], [...b.actBitsU8]]), [
      ["conv0", [8, 8], [32, 32, 32]],
      ["a", [4, 4], [32]],
      ["fc", Array(10).fill(8), [32, 32, 32, 32]],
    ]);
  });
});
