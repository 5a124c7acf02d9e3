// Shared arbitraries and a driver that runs the policy over a whole training schedule.
import fc from "fast-check";
import {
  allocateBits, initialState, type EpochSensitivities, type LayerShape, type PolicyConfig, type PolicyState,
} from "../../ts/allocation/index.js";
import { seededRandom as prng } from "../../ts/util/seededRandom.js";
export { prng };


export interface ShapeRanges {
  bodyLayers: [number, number];
  channels: [number, number];
  params: [number, number];
  actElems: [number, number];
}

export const ANY_SHAPES: ShapeRanges = { bodyLayers: [1, 6], channels: [1, 24], params: [1, 600], actElems: [1, 256] };
/** Many channels of similar size: every channel weighs < 5% of its kind, so CP can land within 0.05 bits. */
export const FINE_SHAPES: ShapeRanges = { bodyLayers: [3, 6], channels: [16, 32], params: [64, 128], actElems: [64, 128] };

/** A first layer, some body layers, a last layer. */
export function arbLayers(r: ShapeRanges = ANY_SHAPES): fc.Arbitrary<LayerShape[]> {
  const int = ([lo, hi]: [number, number]): fc.Arbitrary<number> => fc.integer({ min: lo, max: hi });
  const layer = fc.record({ outChannels: int(r.channels), inChannels: int(r.channels), paramsPerOutChannel: int(r.params), actElemsPerInChannel: int(r.actElems) });
  return fc.tuple(layer, fc.array(layer, { minLength: r.bodyLayers[0], maxLength: r.bodyLayers[1] }), layer).map(([first, body, last]) => [
    { name: "conv0", role: "first" as const, ...first },
    ...body.map((b, i) => ({ name: `body${i + 1}`, role: "body" as const, ...b })),
    { name: "fc", role: "last" as const, ...last },
  ]);
}

/** Random metric for every layer, with the look-ahead values above the current ones (as fewer bits usually cost more). */
export function randomSens(layers: readonly LayerShape[], rand: () => number): EpochSensitivities {
  const vec = (n: number): number[] => Array.from({ length: n }, () => rand() * 10 ** (rand() * 4 - 2));
  return {
    layers: layers.map((l) => {
      const weight = vec(l.outChannels);
      const act = vec(l.inChannels);
      return {
        name: l.name,
        weight,
        act,
        weightLower: weight.map((x) => x * (1 + 3 * rand())),
        actLower: act.map((x) => x * (1 + 3 * rand())),
      };
    }),
  };
}

export function config(over: Partial<PolicyConfig> & Pick<PolicyConfig, "weightBudget" | "actBudget">): PolicyConfig {
  return { granularity: "CP", startBits: 4, schedule: { totalEpochs: 10 }, ...over };
}

/** Runs every epoch of the schedule; returns the state after each (index e = after epoch e). */
export function runSchedule(layers: LayerShape[], cfg: PolicyConfig, seed: number): PolicyState[] {
  const rand = prng(seed);
  let state = initialState(layers, cfg);
  const states: PolicyState[] = [];
  for (let e = 0; e < cfg.schedule.totalEpochs; e++) {
    state = allocateBits(state, layers, cfg, randomSens(layers, rand), e).state;
    states.push(state);
  }
  return states;
}

/** Largest weight share of one allocation unit among the free channels of a kind (1 for GP). */
export function largestUnitShare(layers: readonly LayerShape[], granularity: string, kind: "weight" | "act", pinned: Set<string>): number {
  const body = layers.filter((l) => l.role === "body");
  const w = (l: LayerShape): number => (kind === "weight" ? l.paramsPerOutChannel : l.actElemsPerInChannel);
  const n = (l: LayerShape): number => (kind === "weight" ? l.outChannels : l.inChannels);
  const total = body.reduce((s, l) => s + w(l) * n(l), 0);
  const free = body.filter((l) => !pinned.has(l.name));
  if (free.length === 0) return 0;
  if (granularity === "GP") return free.reduce((s, l) => s + w(l) * n(l), 0) / total;
  if (granularity === "LP") return Math.max(...free.map((l) => w(l) * n(l))) / total;
  return Math.max(...free.map(w)) / total;
}
