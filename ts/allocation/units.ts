// Units of allocation (a channel for CP, a layer for LP, every free channel for GP) and their per-channel costs.
import { bitsOf, channelCount, channelWeight, isFreeLayer } from "./kinds.js";
import type { BitKind, EpochSensitivities, LayerBits, LayerShape, ResolvedPolicyConfig, Score } from "./types.js";

/** A run of channels [from, to) of one layer. */
export interface ChannelRun {
  layer: number;
  from: number;
  to: number;
  /** What each of its channels weighs in the average. */
  channelWeight: number;
}

/** Channels that always share one width and gain or lose a bit together. */
export interface Unit {
  /** Position in layer order, then channel order: the deterministic tie-break. */
  order: number;
  runs: ChannelRun[];
  /** Summed weight of its channels in the average. */
  weight: number;
}

/** The free units of `kind` in layer order, then channel order. */
export function buildUnits(cfg: ResolvedPolicyConfig, layers: readonly LayerShape[], kind: BitKind): Unit[] {
  const free = layers
    .map((layer, l) => ({ layer, l }))
    .filter(({ layer }) => isFreeLayer(cfg, layer, kind));
  const run = (l: number, layer: LayerShape): ChannelRun => ({ layer: l, from: 0, to: channelCount(layer, kind), channelWeight: channelWeight(layer, kind) });
  const layerWeight = (layer: LayerShape): number => channelWeight(layer, kind) * channelCount(layer, kind);
  switch (cfg.granularity) {
    case "GP":
      if (free.length === 0) return [];
      return [{ order: 0, runs: free.map(({ layer, l }) => run(l, layer)), weight: free.reduce((s, { layer }) => s + layerWeight(layer), 0) }];
    case "LP":
      return free.map(({ layer, l }, i) => ({ order: i, runs: [run(l, layer)], weight: layerWeight(layer) }));
    case "CP": {
      const units: Unit[] = [];
      for (const { layer, l } of free) {
        const w = channelWeight(layer, kind);
        for (let c = 0; c < channelCount(layer, kind); c++) units.push({ order: units.length, runs: [{ layer: l, from: c, to: c + 1, channelWeight: w }], weight: w });
      }
      return units;
    }
  }
}

/** The unit's width (all its channels share it). */
export function unitBits(bits: readonly LayerBits[], unit: Unit, kind: BitKind): number {
  const first = unit.runs[0] as ChannelRun;
  return bitsOf(bits[first.layer] as LayerBits, kind)[first.from] as number;
}

export function addUnitBits(bits: LayerBits[], unit: Unit, kind: BitKind, delta: number): void {
  for (const r of unit.runs) {
    const arr = bitsOf(bits[r.layer] as LayerBits, kind);
    for (let c = r.from; c < r.to; c++) arr[c] = (arr[c] as number) + delta;
  }
}

/**
 * The unit's rank (lower loses a bit first). A channel's cost is per element, i.e. per bit-weight, so "metric"
 * weight-averages it over the unit's channels (a CP unit: its channel's cost as it is); "metricPerWeight" divides
 * the summed cost by the summed weight, which counts the channel's size twice; "metricSqrtWeight" weight-averages
 * cost × √(channel weight) (see Score).
 */
export function unitScore(unit: Unit, costs: readonly number[][], score: Score): number {
  let sum = 0;
  for (const r of unit.runs) {
    const row = costs[r.layer] as number[];
    const w = score === "metric" ? r.channelWeight : score === "metricSqrtWeight" ? r.channelWeight * Math.sqrt(r.channelWeight) : 1;
    for (let c = r.from; c < r.to; c++) sum += (row[c] as number) * w;
  }
  return sum / unit.weight;
}

function toArray(
  v: Float32Array | number[] | undefined,
  at: string,
  expected: number,
): number[] | undefined {
  if (v === undefined) return undefined;
  if (!(Array.isArray(v) || v instanceof Float32Array)) throw new Error(`${at}: expected a Float32Array or number[]`);
  if (v.length !== expected) throw new Error(`${at}: ${v.length} values for ${expected} channels`);
  const out = Array.from(v, Number);
  out.forEach((x, i) => {
    // The LBA metric is an absolute value, so a negative or non-finite entry is a worker bug.
    if (!Number.isFinite(x) || x < 0) throw new Error(`${at}[${i}]: expected a finite value >= 0, got ${x}`);
  });
  return out;
}

/**
 * The cost of taking one bit from each channel of `kind`, per layer (0 for layers that are not free).
 * "sensitivity": the channel's Δℓ' this epoch (a channel that loses little at its width loses little with one bit less).
 * "lookahead": max(0, Δℓ'(one bit lower) - Δℓ'), the predicted cost of the decrement itself.
 * Throws naming the missing or malformed entry of `sens`.
 */
export function channelCosts(
  cfg: ResolvedPolicyConfig,
  layers: readonly LayerShape[],
  kind: BitKind,
  sens: EpochSensitivities,
): number[][] {
  if (typeof sens !== "object" || sens === null || !Array.isArray(sens.layers)) throw new Error("sens.layers: expected an array");
  const byName = new Map<string, number>();
  const known = new Set(layers.map((l) => l.name));
  sens.layers.forEach((entry, i) => {
    if (!known.has(entry.name)) throw new Error(`sens.layers[${i}].name: ${JSON.stringify(entry.name)} is not one of the policy's layers`);
    if (byName.has(entry.name)) throw new Error(`sens.layers[${i}].name: ${JSON.stringify(entry.name)} appears twice`);
    byName.set(entry.name, i);
  });
  const metricKey = kind === "weight" ? "weight" : "act";
  const lowerKey = kind === "weight" ? "weightLower" : "actLower";
  return layers.map((layer) => {
    const n = channelCount(layer, kind);
    if (!isFreeLayer(cfg, layer, kind)) return new Array<number>(n).fill(0);
    const i = byName.get(layer.name);
    if (i === undefined) throw new Error(`sens.layers: no entry for layer ${JSON.stringify(layer.name)}, whose ${kind} bits are being allocated`);
    const entry = sens.layers[i] as EpochSensitivities["layers"][number];
    const at = `sens.layers[${i}]`;
    const metric = toArray(entry[metricKey], `${at}.${metricKey}`, n);
    if (metric === undefined) throw new Error(`${at}.${metricKey}: missing; the ${kind} bits of layer ${JSON.stringify(layer.name)} are being allocated`);
    if (cfg.criterion === "sensitivity") return metric;
    const lower = toArray(entry[lowerKey], `${at}.${lowerKey}`, n);
    if (lower === undefined) throw new Error(`${at}.${lowerKey}: missing; criterion "lookahead" needs the one-bit-lower metric (Run.lookahead)`);
    return lower.map((x, c) => Math.max(0, x - (metric[c] as number)));
  });
}
