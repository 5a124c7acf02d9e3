// The policy state: its start, its averages, its checks and its JSON form.
import { BUDGET_TOLERANCE_BITS, EDGE_LAYER_BITS, FULL_PRECISION_BITS, MAX_QUANT_BITS, resolvePolicyConfig } from "./config.js";
import { BIT_KINDS, channelCount, channelWeight, isFreeLayer, limitsOf, pinOf, weightedBits } from "./kinds.js";
import { buildUnits } from "./units.js";
import type { BitKind, CostHistory, LayerBits, LayerShape, PolicyConfig, PolicyState, ResolvedPolicyConfig, StartBits } from "./types.js";

const ROLES = new Set(["first", "body", "last"]);

function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 1;
}

/** Throws naming the first bad field of `layers`. */
export function checkLayerShapes(layers: readonly LayerShape[]): void {
  if (!Array.isArray(layers) || layers.length === 0) throw new Error("layers: expected a non-empty array of LayerShape");
  const seen = new Set<string>();
  layers.forEach((layer, i) => {
    const at = `layers[${i}]`;
    if (typeof layer.name !== "string" || layer.name === "") throw new Error(`${at}.name: expected a non-empty string`);
    if (seen.has(layer.name)) throw new Error(`${at}.name: duplicate layer name ${JSON.stringify(layer.name)}`);
    seen.add(layer.name);
    if (!ROLES.has(layer.role)) throw new Error(`${at}.role: expected "first", "body" or "last", got ${JSON.stringify(layer.role)}`);
    for (const key of ["outChannels", "inChannels", "paramsPerOutChannel", "actElemsPerInChannel"] as const) {
      if (!isPositiveInt(layer[key])) throw new Error(`${at}.${key}: expected a positive integer, got ${String(layer[key])}`);
    }
  });
  if (!layers.some((l) => l.role === "body")) throw new Error("layers: no layer has role \"body\", so there is nothing to allocate");
}

/** Throws unless `state` holds exactly these layers (names, order, channel counts). */
export function checkStateMatches(state: PolicyState, layers: readonly LayerShape[]): void {
  if (state.layers.length !== layers.length) {
    throw new Error(`state.layers: holds ${state.layers.length} layers but ${layers.length} were given`);
  }
  layers.forEach((layer, l) => {
    const bits = state.layers[l] as LayerBits;
    if (bits.name !== layer.name) throw new Error(`state.layers[${l}].name: ${JSON.stringify(bits.name)} but the layer is ${JSON.stringify(layer.name)}`);
    if (bits.weightBits.length !== layer.outChannels) {
      throw new Error(`state.layers[${l}].weightBits: ${bits.weightBits.length} entries for ${layer.outChannels} output channels`);
    }
    if (bits.actBits.length !== layer.inChannels) {
      throw new Error(`state.layers[${l}].actBits: ${bits.actBits.length} entries for ${layer.inChannels} input channels`);
    }
  });
}

/**
 * The width every free channel of `kind` starts at: startBits (clamped to the limits), raised while the average
 * would lie below the budget. Throws when the pins and limits make the budget unreachable.
 */
function startWidth(cfg: ResolvedPolicyConfig, layers: readonly LayerShape[], kind: BitKind): number {
  const limits = limitsOf(cfg, kind);
  let fixedSum = 0;
  let freeWeight = 0;
  let totalWeight = 0;
  for (const layer of layers) {
    if (layer.role !== "body") continue;
    const w = channelWeight(layer, kind) * channelCount(layer, kind);
    totalWeight += w;
    const pin = pinOf(cfg, layer.name, kind);
    if (pin === undefined) freeWeight += w;
    else fixedSum += pin * w;
  }
  const average = (width: number): number => (fixedSum + width * freeWeight) / totalWeight;
  const budgetKey = kind === "weight" ? "weightBudget" : "actBudget";
  const minKey = kind === "weight" ? "minBits" : "actMinBits";
  const maxKey = kind === "weight" ? "maxBits" : "actMaxBits";
  const lowest = average(limits.minBits);
  if (lowest > limits.budget + BUDGET_TOLERANCE_BITS) {
    throw new Error(`${budgetKey}: ${limits.budget} cannot be met: with every free channel at ${minKey} ${limits.minBits} and the pinned layers as pinned the average is ${lowest.toFixed(3)}`);
  }
  let width = Math.min(Math.max(cfg.startBits, limits.minBits), limits.maxBits);
  while (width < limits.maxBits && average(width) < limits.budget) width += 1;
  if (average(width) < limits.budget - BUDGET_TOLERANCE_BITS) {
    throw new Error(`${budgetKey}: ${limits.budget} cannot be met: with every free channel at ${maxKey} ${limits.maxBits} and the pinned layers as pinned the average is only ${average(width).toFixed(3)}`);
  }
  return width;
}

/** Throws naming the first entry of `given` that is not a free layer's widths within the kind's limits. */
function checkStartBits(cfg: ResolvedPolicyConfig, layers: readonly LayerShape[], kind: BitKind, given: Readonly<Record<string, readonly number[]>>): void {
  const at = `start.${kind}`;
  const limits = limitsOf(cfg, kind);
  if (limits.fullPrecision) throw new Error(`${at}: this config keeps ${kind === "weight" ? "weights" : "activations"} in full precision (budget 32)`);
  const byName = new Map(layers.map((l) => [l.name, l]));
  for (const name of Object.keys(given)) {
    const layer = byName.get(name);
    if (!layer) throw new Error(`${at}.${name}: no layer has this name`);
    if (!isFreeLayer(cfg, layer, kind)) throw new Error(`${at}.${name}: the layer is ${layer.role === "body" ? "pinned" : `the ${layer.role} layer (kept at ${EDGE_LAYER_BITS} bits)`}; give free body layers only`);
  }
  for (const layer of layers) {
    if (!isFreeLayer(cfg, layer, kind)) continue;
    const widths = Object.prototype.hasOwnProperty.call(given, layer.name) ? given[layer.name] : undefined;
    if (widths === undefined) throw new Error(`${at}.${layer.name}: missing (every free body layer needs its widths)`);
    if (!Array.isArray(widths) || widths.length !== channelCount(layer, kind)) {
      throw new Error(`${at}.${layer.name}: expected ${channelCount(layer, kind)} widths, one per ${kind === "weight" ? "output" : "input"} channel`);
    }
    widths.forEach((b, i) => {
      if (!Number.isInteger(b) || b < limits.minBits || b > limits.maxBits) {
        throw new Error(`${at}.${layer.name}[${i}]: ${String(b)} is outside this config's ${limits.minBits}..${limits.maxBits} bits`);
      }
    });
  }
  // LP and GP move whole layers, or every free channel, by one width: such a unit must start at one width too
  for (const unit of buildUnits(cfg, layers, kind)) {
    const seen = new Set(unit.runs.flatMap((r) => given[(layers[r.layer] as LayerShape).name]!.slice(r.from, r.to)));
    if (seen.size > 1) {
      const what = cfg.granularity === "LP" ? `layer ${(layers[unit.runs[0]!.layer] as LayerShape).name}` : "every free layer";
      throw new Error(`${at}: ${cfg.granularity} keeps one width for ${what}, but the given widths there are ${[...seen].sort((a, b) => a - b).join(", ")}`);
    }
  }
}

/** The layers whose `kind` widths the policy moves (body layers not pinned): the ones `initialState`'s `start` must give. */
export function freeLayerNames(layers: readonly LayerShape[], config: PolicyConfig, kind: BitKind): string[] {
  const cfg = resolvePolicyConfig(config);
  return layers.filter((layer) => isFreeLayer(cfg, layer, kind)).map((layer) => layer.name);
}

/**
 * Every free channel at the start width, first/last layers at 8 bits, pins as pinned; a kind with budget 32 at 32
 * everywhere. `start` gives a kind's free layers their own widths instead (e.g. the weight widths of the W2/A32 run a
 * W2/A2 run goes on from): the policy then moves that kind only while its average is above the budget.
 */
export function initialState(layers: LayerShape[], config: PolicyConfig, start: StartBits = {}): PolicyState {
  const cfg = resolvePolicyConfig(config);
  checkLayerShapes(layers);
  const names = new Set(layers.map((l) => l.name));
  for (const name of Object.keys(cfg.pinned)) {
    if (!names.has(name)) throw new Error(`pinned.${name}: no layer has this name`);
  }
  for (const kind of BIT_KINDS) {
    const given = start[kind];
    if (given !== undefined) checkStartBits(cfg, layers, kind, given);
  }
  const widths = new Map<BitKind, number>();
  for (const kind of BIT_KINDS) {
    if (start[kind] !== undefined) continue;
    widths.set(kind, limitsOf(cfg, kind).fullPrecision ? FULL_PRECISION_BITS : startWidth(cfg, layers, kind));
  }
  const widthsOf = (layer: LayerShape, kind: BitKind): number[] => {
    const n = channelCount(layer, kind);
    const pin = pinOf(cfg, layer.name, kind);
    if (pin !== undefined) return new Array<number>(n).fill(pin);
    if (limitsOf(cfg, kind).fullPrecision) return new Array<number>(n).fill(FULL_PRECISION_BITS);
    if (layer.role !== "body") return new Array<number>(n).fill(EDGE_LAYER_BITS);
    const given = start[kind]?.[layer.name];
    return given !== undefined ? [...given] : new Array<number>(n).fill(widths.get(kind) as number);
  };
  const bits: LayerBits[] = layers.map((layer) => ({
    name: layer.name,
    weightBits: widthsOf(layer, "weight"),
    actBits: widthsOf(layer, "act"),
  }));
  // A kind already at its budget (or not quantized, or with nothing free) has nothing to decrement.
  const frozen = (kind: BitKind): boolean => {
    const limits = limitsOf(cfg, kind);
    if (limits.fullPrecision || !layers.some((l) => isFreeLayer(cfg, l, kind))) return true;
    const { sum, total } = weightedBits(bits, layers, kind);
    return sum - limits.budget * total <= 0;
  };
  return {
    version: 1,
    epoch: -1,
    layers: bits,
    weightFrozen: frozen("weight"),
    actFrozen: frozen("act"),
    history: cfg.allocator === "giveback" ? { weight: null, act: null } : null,
  };
}

/** Average bits over the budget (body) layers: weights weighted by parameter count, activations by feature-map size. */
export function averageBits(state: PolicyState, layers: LayerShape[]): { weight: number; act: number } {
  checkStateMatches(state, layers);
  const avg = (kind: BitKind): number => {
    const { sum, total } = weightedBits(state.layers, layers, kind);
    return total === 0 ? Number.NaN : sum / total;
  };
  return { weight: avg("weight"), act: avg("act") };
}

export function serializeState(s: PolicyState): string {
  return JSON.stringify(s);
}

function checkBitsArray(v: unknown, at: string, lowest: number): number[] {
  if (!Array.isArray(v)) throw new Error(`${at}: expected an array of bit-widths`);
  v.forEach((b, i) => {
    const ok = typeof b === "number" && Number.isInteger(b) && ((b >= lowest && b <= MAX_QUANT_BITS) || b === FULL_PRECISION_BITS);
    if (!ok) throw new Error(`${at}[${i}]: expected an integer in ${lowest}..8 or 32, got ${String(b)}`);
  });
  return v as number[];
}

function checkHistory(v: unknown, at: string, lengths: number[]): number[][] | null {
  if (v === null) return null;
  if (!Array.isArray(v) || v.length !== lengths.length) throw new Error(`${at}: expected null or ${lengths.length} arrays of costs`);
  v.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== lengths[l] || !row.every((x) => typeof x === "number" && Number.isFinite(x))) {
      throw new Error(`${at}[${l}]: expected ${lengths[l]} finite costs`);
    }
  });
  return v as number[][];
}

/** Parses and checks a state written by serializeState; throws naming the bad field. */
export function deserializeState(json: string): PolicyState {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new Error(`state: not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null) throw new Error("state: expected an object");
  const o = raw as Record<string, unknown>;
  if (o["version"] !== 1) throw new Error(`state.version: expected 1, got ${String(o["version"])}`);
  const epoch = o["epoch"];
  if (typeof epoch !== "number" || !Number.isInteger(epoch) || epoch < -1) throw new Error(`state.epoch: expected an integer >= -1, got ${String(epoch)}`);
  if (!Array.isArray(o["layers"])) throw new Error("state.layers: expected an array");
  const layers: LayerBits[] = (o["layers"] as unknown[]).map((v, l) => {
    if (typeof v !== "object" || v === null) throw new Error(`state.layers[${l}]: expected an object`);
    const layer = v as Record<string, unknown>;
    if (typeof layer["name"] !== "string") throw new Error(`state.layers[${l}].name: expected a string`);
    return {
      name: layer["name"],
      weightBits: checkBitsArray(layer["weightBits"], `state.layers[${l}].weightBits`, 0),
      actBits: checkBitsArray(layer["actBits"], `state.layers[${l}].actBits`, 1),
    };
  });
  for (const key of ["weightFrozen", "actFrozen"]) {
    if (typeof o[key] !== "boolean") throw new Error(`state.${key}: expected a boolean`);
  }
  let history: CostHistory | null = null;
  if (o["history"] !== null) {
    const h = o["history"];
    if (typeof h !== "object" || h === undefined || h === null) throw new Error("state.history: expected null or { weight, act }");
    const hr = h as Record<string, unknown>;
    history = {
      weight: checkHistory(hr["weight"], "state.history.weight", layers.map((l) => l.weightBits.length)),
      act: checkHistory(hr["act"], "state.history.act", layers.map((l) => l.actBits.length)),
    };
  }
  return {
    version: 1,
    epoch,
    layers,
    weightFrozen: o["weightFrozen"] as boolean,
    actFrozen: o["actFrozen"] as boolean,
    history,
  };
}

/** A deep copy, so that the policy never mutates the state it was given. */
export function cloneState(s: PolicyState): PolicyState {
  return {
    version: 1,
    epoch: s.epoch,
    layers: s.layers.map((l) => ({ name: l.name, weightBits: [...l.weightBits], actBits: [...l.actBits] })),
    weightFrozen: s.weightFrozen,
    actFrozen: s.actFrozen,
    history: s.history === null ? null : {
      weight: s.history.weight === null ? null : s.history.weight.map((r) => [...r]),
      act: s.history.act === null ? null : s.history.act.map((r) => [...r]),
    },
  };
}
