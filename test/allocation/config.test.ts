import assert from "node:assert/strict";
import {
  deserializeState, initialState, resolvePolicyConfig, serializeState, validatePolicyConfig,
  type LayerShape, type PolicyConfig,
} from "../../ts/allocation/index.js";

const GOOD: PolicyConfig = { weightBudget: 2, actBudget: 2, schedule: { totalEpochs: 10 } };
const LAYERS: LayerShape[] = [
  { name: "conv0", role: "first", outChannels: 4, inChannels: 3, paramsPerOutChannel: 27, actElemsPerInChannel: 64 },
  { name: "conv1", role: "body", outChannels: 4, inChannels: 4, paramsPerOutChannel: 36, actElemsPerInChannel: 64 },
  { name: "conv2", role: "body", outChannels: 4, inChannels: 4, paramsPerOutChannel: 36, actElemsPerInChannel: 16 },
  { name: "fc", role: "last", outChannels: 10, inChannels: 4, paramsPerOutChannel: 4, actElemsPerInChannel: 1 },
];

/** The messages for `over` applied to a good config; each must name `field`. */
function errorsFor(over: Record<string, unknown>): string[] {
  return validatePolicyConfig({ ...GOOD, ...over });
}

describe("validatePolicyConfig", () => {
  it("accepts a minimal config and fills the paper's defaults", () => {
    assert.deepEqual(validatePolicyConfig(GOOD), []);
    const r = resolvePolicyConfig(GOOD);
    assert.equal(r.granularity, "CP");
    assert.equal(r.startBits, 4);
    assert.deepEqual(r.schedule, { totalEpochs: 10, startEpoch: 0, rampFraction: 0.4, rStart: 0.01, rEnd: 0.4 });
    assert.deepEqual(r.weight, { budget: 2, fullPrecision: false, minBits: 1, maxBits: 8 });
    assert.deepEqual(r.act, { budget: 2, fullPrecision: false, minBits: 1, maxBits: 8 });
    assert.equal(r.criterion, "sensitivity");
    assert.equal(r.allocator, "decrement");
    assert.equal(r.score, "metric");
    assert.equal(resolvePolicyConfig({ ...GOOD, weightBudget: 0.7 }).weight.minBits, 0, "a budget below 1 allows pruning");
    assert.equal(resolvePolicyConfig({ ...GOOD, actBudget: 32 }).act.fullPrecision, true);
  });

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["weightBudget", { weightBudget: 0 }, /^weightBudget: expected a number in \(0, 8\] or 32, got 0$/],
    ["weightBudget", { weightBudget: 16 }, /^weightBudget:/],
    ["weightBudget", { weightBudget: "2" }, /^weightBudget:/],
    ["actBudget", { actBudget: 0.7 }, /^actBudget: expected a number in \[1, 8\] or 32, got 0.7$/],
    ["granularity", { granularity: "XP" }, /^granularity: expected "GP", "LP" or "CP", got "XP"$/],
    ["granularity", { granularity: "GP", weightBudget: 0.7 }, /^granularity: GP gives every channel one integer width/],
    ["startBits", { startBits: 2.5 }, /^startBits: expected an integer in 1\.\.8/],
    ["minBits", { minBits: 9 }, /^minBits: expected an integer in 0\.\.8/],
    ["maxBits", { maxBits: 0 }, /^maxBits: expected an integer in 1\.\.8/],
    ["minBits", { minBits: 3, maxBits: 2, weightBudget: 2 }, /^minBits: 3 is above maxBits 2$/],
    ["weightBudget", { minBits: 1, weightBudget: 0.7 }, /^weightBudget: 0.7 is below minBits 1$/],
    ["weightBudget", { maxBits: 2, weightBudget: 3 }, /^weightBudget: 3 is above maxBits 2$/],
    ["actMinBits", { actMinBits: 0 }, /^actMinBits: expected an integer in 1\.\.8/],
    ["pinned", { pinned: [] }, /^pinned: expected an object/],
    ["pinned", { pinned: { conv1: {} } }, /^pinned\.conv1: give weightBits and\/or actBits$/],
    ["pinned", { pinned: { conv1: { weightBits: 9 } } }, /^pinned\.conv1\.weightBits: expected an integer in 0\.\.8 or 32, got 9$/],
    ["pinned", { pinned: { conv1: { actBits: 0 } } }, /^pinned\.conv1\.actBits: expected an integer in 1\.\.8 or 32, got 0$/],
    ["pinned", { pinned: { conv1: { bits: 2 } } }, /^pinned\.conv1\.bits: unknown field$/],
    ["schedule", { schedule: undefined }, /^schedule: expected an object/],
    ["schedule.totalEpochs", { schedule: { totalEpochs: 0 } }, /^schedule\.totalEpochs: expected an integer >= 1, got 0$/],
    ["schedule.rampFraction", { schedule: { totalEpochs: 10, rampFraction: 1.5 } }, /^schedule\.rampFraction: expected a number in \(0, 1\]/],
    ["schedule.rStart", { schedule: { totalEpochs: 10, rStart: 0 } }, /^schedule\.rStart:/],
    ["schedule.startEpoch", { schedule: { totalEpochs: 10, startEpoch: 8 } }, /^schedule\.startEpoch: the window 8\.\.11 .* runs past totalEpochs 10$/],
    ["schedule.epochs", { schedule: { totalEpochs: 10, epochs: 3 } }, /^schedule\.epochs: unknown field$/],
    ["criterion", { criterion: "loss" }, /^criterion: expected "sensitivity" or "lookahead", got "loss"$/],
    ["allocator", { allocator: "greedy" }, /^allocator: expected "decrement" or "giveback", got "greedy"$/],
    ["score", { score: "perChannel" }, /^score: expected "metric", "metricPerWeight" or "metricSqrtWeight", got "perChannel"$/],
    ["actScore", { actScore: "sqrt" }, /^actScore: expected "metric", "metricPerWeight" or "metricSqrtWeight", got "sqrt"$/],
    ["weightBudgte", { weightBudgte: 2 }, /^weightBudgte: unknown field$/],
  ];
  for (const [field, over, message] of cases) {
    it(`names ${field} in ${JSON.stringify(over)}`, () => {
      const errors = errorsFor(over);
      assert.ok(errors.some((e) => message.test(e)), `got ${JSON.stringify(errors)}`);
    });
  }

  it("rejects a non-object and lists every bad field at once", () => {
    assert.deepEqual(validatePolicyConfig(null), ["config: expected an object"]);
    const errors = validatePolicyConfig({ weightBudget: -1, actBudget: 100, schedule: { totalEpochs: -2 } });
    assert.equal(errors.length, 3, JSON.stringify(errors));
  });

  it("makes initialState and allocateBits throw with the same messages", () => {
    assert.throws(() => initialState(LAYERS, { ...GOOD, criterion: "loss" as never }), /^Error: invalid policy config: criterion:/);
  });
});

describe("initialState", () => {
  it("starts free channels at startBits, first/last at 8, pins as pinned", () => {
    const s = initialState(LAYERS, { ...GOOD, pinned: { conv2: { weightBits: 2 }, conv0: { actBits: 32 } } });
    assert.deepEqual(s.layers.map((l) => [l.name, l.weightBits[0], l.actBits[0]]), [
      ["conv0", 8, 32],
      ["conv1", 4, 4],
      ["conv2", 2, 4],
      ["fc", 8, 8],
    ]);
    assert.equal(s.epoch, -1);
    assert.equal(s.history, null);
    assert.deepEqual(initialState(LAYERS, { ...GOOD, allocator: "giveback" }).history, { weight: null, act: null });
  });

  it("names an unknown pinned layer, an unreachable budget and bad layers", () => {
    assert.throws(() => initialState(LAYERS, { ...GOOD, pinned: { conv9: { weightBits: 2 } } }), /pinned\.conv9: no layer has this name/);
    // conv1 pinned at 8 bits: with conv2 at its minimum of 1 the average is 4.5, far above a budget of 2.
    assert.throws(() => initialState(LAYERS, { ...GOOD, pinned: { conv1: { weightBits: 8 } } }), /weightBudget: 2 cannot be met: with every free channel at minBits 1/);
    assert.throws(() => initialState(LAYERS, { ...GOOD, weightBudget: 6, maxBits: 8, pinned: { conv1: { weightBits: 1 } } }), /weightBudget: 6 cannot be met: with every free channel at maxBits 8/);
    assert.throws(() => initialState([LAYERS[0]!, LAYERS[0]!], GOOD), /layers\[1\]\.name: duplicate layer name "conv0"/);
    assert.throws(() => initialState([LAYERS[0]!, LAYERS[3]!], GOOD), /layers: no layer has role "body"/);
    assert.throws(() => initialState([{ ...LAYERS[1]!, outChannels: 0 }], GOOD), /layers\[0\]\.outChannels: expected a positive integer, got 0/);
    assert.throws(() => initialState([{ ...LAYERS[1]!, role: "middle" as never }], GOOD), /layers\[0\]\.role:/);
  });
});

describe("deserializeState", () => {
  it("round-trips and names malformed fields", () => {
    const s = initialState(LAYERS, GOOD);
    assert.deepEqual(deserializeState(serializeState(s)), s);
    const raw = JSON.parse(serializeState(s)) as Record<string, unknown>;
    const broken = (patch: Record<string, unknown>): string => JSON.stringify({ ...raw, ...patch });
    assert.throws(() => deserializeState("{"), /^Error: state: not JSON/);
    assert.throws(() => deserializeState(broken({ version: 2 })), /state\.version: expected 1, got 2/);
    assert.throws(() => deserializeState(broken({ epoch: 1.5 })), /state\.epoch: expected an integer >= -1/);
    assert.throws(() => deserializeState(broken({ weightFrozen: "no" })), /state\.weightFrozen: expected a boolean/);
    assert.throws(() => deserializeState(broken({ history: undefined })), /state\.history: expected null or \{ weight, act \}/);
    const layers = (raw["layers"] as Array<Record<string, unknown>>).map((l) => ({ ...l }));
    layers[1]!["weightBits"] = [4, 4, 9, 4];
    assert.throws(() => deserializeState(broken({ layers })), /state\.layers\[1\]\.weightBits\[2\]: expected an integer in 0\.\.8 or 32, got 9/);
    assert.throws(() => deserializeState(broken({ history: { weight: [[1]], act: null } })), /state\.history\.weight: expected null or 4 arrays of costs/);
  });
});
