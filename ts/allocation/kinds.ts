// Weights and activations follow one algorithm; this maps a kind to its channels, their weights in the average, and pins.
import type { BitKind, KindLimits, LayerBits, LayerShape, ResolvedPolicyConfig } from "./types.js";

export const BIT_KINDS: readonly BitKind[] = ["weight", "act"];

/** Weights are quantized per output channel, activations per input channel. */
export function channelCount(layer: LayerShape, kind: BitKind): number {
  return kind === "weight" ? layer.outChannels : layer.inChannels;
}

/** What one channel weighs in the average: parameters (weights) or feature-map elements (activations). */
export function channelWeight(layer: LayerShape, kind: BitKind): number {
  return kind === "weight" ? layer.paramsPerOutChannel : layer.actElemsPerInChannel;
}

export function limitsOf(cfg: ResolvedPolicyConfig, kind: BitKind): KindLimits {
  return kind === "weight" ? cfg.weight : cfg.act;
}

export function pinOf(cfg: ResolvedPolicyConfig, layerName: string, kind: BitKind): number | undefined {
  const pin = Object.prototype.hasOwnProperty.call(cfg.pinned, layerName) ? cfg.pinned[layerName] : undefined;
  return kind === "weight" ? pin?.weightBits : pin?.actBits;
}

export function bitsOf(layer: LayerBits, kind: BitKind): number[] {
  return kind === "weight" ? layer.weightBits : layer.actBits;
}

/** Free: counted in the budget and not pinned, so the policy may change it. */
export function isFreeLayer(cfg: ResolvedPolicyConfig, layer: LayerShape, kind: BitKind): boolean {
  return layer.role === "body" && pinOf(cfg, layer.name, kind) === undefined;
}

/** Sum of bits * weight over the budget (body) layers, and the total weight. Exact in doubles for real networks. */
export function weightedBits(bits: readonly LayerBits[], layers: readonly LayerShape[], kind: BitKind): { sum: number; total: number } {
  let sum = 0;
  let total = 0;
  layers.forEach((layer, l) => {
    if (layer.role !== "body") return;
    const w = channelWeight(layer, kind);
    const layerBits = bitsOf(bits[l] as LayerBits, kind);
    for (const b of layerBits) sum += b * w;
    total += w * layerBits.length;
  });
  return { sum, total };
}
