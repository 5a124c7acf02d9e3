import assert from "node:assert/strict";
import fc from "fast-check";
import {
  allocateBits, averageBits, decrementWindow, deserializeState, initialState, resolvePolicyConfig, SCORES, serializeState,
  type Granularity, type LayerShape, type PolicyConfig, type PolicyState,
} from "../../ts/allocation/index.js";
import { ANY_SHAPES, arbLayers, config, FINE_SHAPES, largestUnitShare, prng, randomSens, runSchedule } from "./fixtures.js";

const TOL = 0.05 + 1e-9;
const WEIGHT_BUDGETS = [0.7, 1, 1.5, 2, 3];
const ACT_BUDGETS = [1, 1.5, 2, 3, 32];
const GRANULARITIES: Granularity[] = ["GP", "LP", "CP"];
const RUNS = 60;

interface Scenario {
  layers: LayerShape[];
  cfg: PolicyConfig;
  seed: number;
}

/** Random layers, budgets, granularity, schedule, criterion, allocator and (optionally) one pinned body layer. */
function arbScenario(shapes = ANY_SHAPES, granularities = GRANULARITIES): fc.Arbitrary<Scenario> {
  return fc
    .record({
      layers: arbLayers(shapes),
      granularity: fc.constantFrom(...granularities),
      weightBudget: fc.constantFrom(...WEIGHT_BUDGETS),
      actBudget: fc.constantFrom(...ACT_BUDGETS),
      totalEpochs: fc.integer({ min: 1, max: 12 }),
      rampFraction: fc.constantFrom(0.2, 0.4, 1),
      criterion: fc.constantFrom("sensitivity" as const, "lookahead" as const),
      allocator: fc.constantFrom("decrement" as const, "giveback" as const),
      pinWeight: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      pinAct: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
    .filter((s) => !(s.granularity === "GP" && s.weightBudget < 1))
    .map((s) => {
      const body = s.layers.filter((l) => l.role === "body");
      // Pin the first body layer only when another one stays free, at a width that keeps the budget reachable.
      const pinName = body.length > 1 ? (body[0] as LayerShape).name : undefined;
      const pin: { weightBits?: number; actBits?: number } = {};
      if (pinName !== undefined && s.pinWeight !== undefined) pin.weightBits = s.pinWeight;
      if (pinName !== undefined && s.pinAct !== undefined && s.actBudget !== 32) pin.actBits = s.pinAct;
      const cfg = config({
        weightBudget: s.weightBudget,
        actBudget: s.actBudget,
        granularity: s.granularity,
        criterion: s.criterion,
        allocator: s.allocator,
        schedule: { totalEpochs: s.totalEpochs, rampFraction: s.rampFraction },
        ...(pinName !== undefined && Object.keys(pin).length > 0 ? { pinned: { [pinName]: pin } } : {}),
      });
      return { layers: s.layers, cfg, seed: s.seed };
    });
}

/** Whether initialState accepts the scenario (pins can make a budget unreachable, which it rejects by name). */
function feasible(s: Scenario): boolean {
  try {
    initialState(s.layers, s.cfg);
    return true;
  } catch (e) {
    assert.match((e as Error).message, /^(weightBudget|actBudget): .* cannot be met/);
    return false;
  }
}

function pinnedNames(cfg: PolicyConfig, kind: "weightBits" | "actBits"): Set<string> {
  return new Set(Object.entries(cfg.pinned ?? {}).filter(([, p]) => p[kind] !== undefined).map(([n]) => n));
}

describe("LBA policy properties", () => {
  it("meets both budgets by the end of the window: never above budget + 0.05, and within 0.05 when units are fine enough", () => {
    fc.assert(
      fc.property(arbScenario(), (s) => {
        fc.pre(feasible(s));
        const states = runSchedule(s.layers, s.cfg, s.seed);
        const { last } = decrementWindow(resolvePolicyConfig(s.cfg).schedule);
        const granularity = s.cfg.granularity as string;
        for (const state of states.slice(last)) {
          const avg = averageBits(state, s.layers);
          for (const [kind, budget, value, pins] of [
            ["weight", s.cfg.weightBudget, avg.weight, pinnedNames(s.cfg, "weightBits")],
            ["act", s.cfg.actBudget, avg.act, pinnedNames(s.cfg, "actBits")],
          ] as const) {
            if (budget === 32) {
              assert.equal(value, 32);
              continue;
            }
            const share = largestUnitShare(s.layers, granularity, kind, pins);
            assert.ok(value <= budget + TOL, `${kind} average ${value} above budget ${budget}`);
            // Coarse units may have to land below; never by more than one unit's share.
            assert.ok(value >= budget - Math.max(0.05, share) - 1e-9, `${kind} average ${value} far below budget ${budget} (unit share ${share})`);
            if (share <= 0.1) assert.ok(Math.abs(value - budget) <= TOL, `${kind} average ${value} not within 0.05 of ${budget}`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("CP with many small channels lands within 0.05 bits of every budget", () => {
    fc.assert(
      fc.property(arbScenario(FINE_SHAPES, ["CP"]), (s) => {
        fc.pre(feasible(s));
        const states = runSchedule(s.layers, s.cfg, s.seed);
        const { last } = decrementWindow(resolvePolicyConfig(s.cfg).schedule);
        const avg = averageBits(states[last] as PolicyState, s.layers);
        assert.ok(Math.abs(avg.weight - s.cfg.weightBudget) <= TOL, `weight ${avg.weight} vs ${s.cfg.weightBudget}`);
        assert.ok(Math.abs(avg.act - s.cfg.actBudget) <= TOL, `act ${avg.act} vs ${s.cfg.actBudget}`);
      }),
      { numRuns: 40 },
    );
  });

  it("keeps every channel within its limits, pinned layers as pinned, first/last at 8 bits", () => {
    fc.assert(
      fc.property(arbScenario(), (s) => {
        fc.pre(feasible(s));
        const cfg = resolvePolicyConfig(s.cfg);
        const states = [initialState(s.layers, s.cfg), ...runSchedule(s.layers, s.cfg, s.seed)];
        for (const state of states) {
          s.layers.forEach((layer, l) => {
            const bits = state.layers[l]!;
            const pin = cfg.pinned[layer.name];
            for (const [kind, values, limits, pinned] of [
              ["weight", bits.weightBits, cfg.weight, pin?.weightBits],
              ["act", bits.actBits, cfg.act, pin?.actBits],
            ] as const) {
              for (const b of values) {
                if (pinned !== undefined) assert.equal(b, pinned, `${layer.name} ${kind} pinned`);
                else if (limits.fullPrecision) assert.equal(b, 32);
                else if (layer.role !== "body") assert.equal(b, 8, `${layer.name} ${kind} edge layer`);
                else assert.ok(b >= limits.minBits && b <= limits.maxBits, `${layer.name} ${kind} ${b} outside ${limits.minBits}..${limits.maxBits}`);
              }
            }
          });
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("LP gives every channel of a layer one width; GP gives every free channel one width, the budget itself when integral", () => {
    fc.assert(
      fc.property(arbScenario(ANY_SHAPES, ["LP", "GP"]), (s) => {
        fc.pre(feasible(s));
        const states = runSchedule(s.layers, s.cfg, s.seed);
        const pinnedW = pinnedNames(s.cfg, "weightBits");
        for (const state of states) {
          const free = s.layers.map((layer, l) => ({ layer, bits: state.layers[l]! })).filter(({ layer }) => layer.role === "body");
          for (const { bits } of free) {
            assert.equal(new Set(bits.weightBits).size, 1);
            assert.equal(new Set(bits.actBits).size, 1);
          }
          if (s.cfg.granularity === "GP") {
            const freeWeights = free.filter(({ layer }) => !pinnedW.has(layer.name)).flatMap(({ bits }) => bits.weightBits);
            assert.ok(new Set(freeWeights).size <= 1, "GP: free channels differ");
          }
        }
        const { last } = decrementWindow(resolvePolicyConfig(s.cfg).schedule);
        const noPins = Object.keys(s.cfg.pinned ?? {}).length === 0;
        if (s.cfg.granularity === "GP" && noPins && Number.isInteger(s.cfg.weightBudget)) {
          const state = states[last]!;
          s.layers.forEach((layer, l) => {
            if (layer.role === "body") assert.ok(state.layers[l]!.weightBits.every((b) => b === s.cfg.weightBudget));
          });
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("is deterministic: equal inputs (number[] or Float32Array) give equal states, and the input state is not mutated", () => {
    fc.assert(
      fc.property(arbScenario(), (s) => {
        fc.pre(feasible(s));
        const rand = prng(s.seed);
        let a = initialState(s.layers, s.cfg);
        let b = initialState(s.layers, s.cfg);
        for (let e = 0; e < s.cfg.schedule.totalEpochs; e++) {
          // The same float32 values as Float32Array (b) and as number[] (a).
          const f32 = randomSens(s.layers, rand).layers.map((l) => ({
            name: l.name,
            weight: Float32Array.from(l.weight),
            act: Float32Array.from(l.act!),
            weightLower: Float32Array.from(l.weightLower!),
            actLower: Float32Array.from(l.actLower!),
          }));
          const asNumbers = f32.map((l) => ({ name: l.name, weight: [...l.weight], act: [...l.act], weightLower: [...l.weightLower], actLower: [...l.actLower] }));
          const before = serializeState(a);
          const nextA = allocateBits(a, s.layers, s.cfg, { layers: asNumbers }, e);
          assert.equal(serializeState(a), before, "input state mutated");
          const nextB = allocateBits(b, s.layers, s.cfg, { layers: f32 }, e);
          assert.deepEqual(nextA, nextB);
          a = nextA.state;
          b = nextB.state;
        }
      }),
      { numRuns: 40 },
    );
  });

  it("the decrement allocator only ever lowers widths, only inside the window, and at most ceil(r N) units per ramp epoch", () => {
    fc.assert(
      fc.property(arbScenario(ANY_SHAPES, ["CP"]).filter((s) => s.cfg.allocator === "decrement"), (s) => {
        fc.pre(feasible(s));
        const cfg = resolvePolicyConfig(s.cfg);
        const { first, last } = decrementWindow(cfg.schedule);
        const states = [initialState(s.layers, s.cfg), ...runSchedule(s.layers, s.cfg, s.seed)];
        for (let e = 0; e < states.length - 1; e++) {
          const prev = states[e]!;
          const next = states[e + 1]!; // after epoch e
          let lostW = 0;
          let eligibleW = 0;
          s.layers.forEach((layer, l) => {
            prev.layers[l]!.weightBits.forEach((b, c) => {
              const nb = next.layers[l]!.weightBits[c]!;
              assert.ok(nb <= b, "a width rose");
              if (e > last || e < first) assert.equal(nb, b, `width changed outside the window at epoch ${e}`);
              if (e < last) assert.ok(b - nb <= 1, "a ramp epoch took more than one bit from a channel");
              if (nb < b) lostW += 1;
              if (layer.role === "body" && !(cfg.pinned[layer.name]?.weightBits !== undefined) && b > cfg.weight.minBits) eligibleW += 1;
            });
          });
          if (e >= first && e < last) {
            const k = e - first;
            const rampEpochs = last - first;
            const r = rampEpochs === 1 ? cfg.schedule.rStart : cfg.schedule.rStart + ((cfg.schedule.rEnd - cfg.schedule.rStart) * k) / (rampEpochs - 1);
            assert.ok(lostW <= Math.ceil(r * eligibleW), `epoch ${e}: ${lostW} channels lost a bit, quota ${Math.ceil(r * eligibleW)}`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("give-back swaps keep the budget and the limits after the window", () => {
    fc.assert(
      fc.property(arbScenario(FINE_SHAPES, ["CP", "LP"]).map((s) => ({ ...s, cfg: { ...s.cfg, allocator: "giveback" as const, schedule: { totalEpochs: 12, rampFraction: 0.25 } } })), (s) => {
        fc.pre(feasible(s));
        const states = runSchedule(s.layers, s.cfg, s.seed);
        const cfg = resolvePolicyConfig(s.cfg);
        const { last } = decrementWindow(cfg.schedule);
        for (let e = last; e < states.length; e++) {
          const avg = averageBits(states[e]!, s.layers);
          if (!cfg.weight.fullPrecision) assert.ok(avg.weight <= s.cfg.weightBudget + TOL, `weight ${avg.weight}`);
          if (!cfg.act.fullPrecision) assert.ok(avg.act <= s.cfg.actBudget + TOL, `act ${avg.act}`);
          s.layers.forEach((layer, l) => {
            if (layer.role !== "body" || cfg.pinned[layer.name] !== undefined) return;
            for (const b of states[e]!.layers[l]!.weightBits) assert.ok(b >= cfg.weight.minBits && b <= cfg.weight.maxBits);
          });
        }
      }),
      { numRuns: 30 },
    );
  });

  it("a ramp epoch far from the budget takes exactly the ceil(r N) lowest channels by score, ties by layer then channel", () => {
    fc.assert(
      fc.property(
        arbLayers(),
        fc.constantFrom("sensitivity" as const, "lookahead" as const),
        fc.constantFrom(...SCORES),
        fc.constantFrom("weight" as const, "act" as const),
        fc.double({ min: 0.01, max: 0.4, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (layers, criterion, score, kind, rStart, seed) => {
          // Budget 1.5 from 4 bits: at least 2.5 bits of every channel to go, so nothing near the budget is skipped.
          const cfg = config({
            weightBudget: kind === "weight" ? 1.5 : 32,
            actBudget: kind === "act" ? 1.5 : 32,
            criterion,
            score,
            schedule: { totalEpochs: 10, rStart },
          });
          const sens = randomSens(layers, prng(seed));
          // Quantize the metric to a few values so that ties happen.
          for (const l of sens.layers) for (const key of ["weight", "act", "weightLower", "actLower"] as const) {
            l[key] = Array.from(l[key]!, (x) => Math.round(x * 4) / 4);
          }
          const next = allocateBits(initialState(layers, cfg), layers, cfg, sens, 0).state;
          const candidates: Array<{ l: number; c: number; score: number }> = [];
          layers.forEach((layer, l) => {
            if (layer.role !== "body") return;
            const e = sens.layers[l]!;
            const cur = kind === "weight" ? e.weight : e.act!;
            const lower = kind === "weight" ? e.weightLower! : e.actLower!;
            const w = kind === "weight" ? layer.paramsPerOutChannel : layer.actElemsPerInChannel;
            Array.from(cur).forEach((x, c) => {
              const cost = criterion === "sensitivity" ? x : Math.max(0, lower[c]! - x);
              // metricSqrtWeight: cost × √w, written as the policy weight-averages it (the same rounding, for ties)
              const rank = score === "metric" ? cost : score === "metricPerWeight" ? cost / w : (cost * (w * Math.sqrt(w))) / w;
              candidates.push({ l, c, score: rank });
            });
          });
          candidates.sort((a, b) => a.score - b.score || a.l - b.l || a.c - b.c);
          const quota = Math.ceil(rStart * candidates.length);
          const expected = new Set(candidates.slice(0, quota).map(({ l, c }) => `${l}:${c}`));
          layers.forEach((layer, l) => {
            const bits = kind === "weight" ? next.layers[l]!.weightBits : next.layers[l]!.actBits;
            bits.forEach((b, c) => {
              if (layer.role !== "body") return;
              assert.equal(b, expected.has(`${l}:${c}`) ? 3 : 4, `layer ${l} channel ${c}`);
            });
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("a state survives its JSON round trip, and a run resumed from it continues identically", () => {
    fc.assert(
      fc.property(arbScenario(), fc.nat(), (s, cut) => {
        fc.pre(feasible(s));
        const states = runSchedule(s.layers, s.cfg, s.seed);
        const at = cut % states.length;
        const restored = deserializeState(serializeState(states[at]!));
        assert.deepEqual(restored, states[at]);
        if (at + 1 < states.length) {
          // Replay the sensitivities of the original run up to the cut, then continue from the restored state.
          const rand = prng(s.seed);
          for (let e = 0; e <= at; e++) randomSens(s.layers, rand);
          const next = allocateBits(restored, s.layers, s.cfg, randomSens(s.layers, rand), at + 1).state;
          assert.deepEqual(next, states[at + 1]);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
