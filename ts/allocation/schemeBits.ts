// The state's widths in the byte form of proto LayerScheme (weight_bits_u8, act_bits_u8).
import type { PolicyState } from "./types.js";

export interface LayerSchemeBits {
  name: string;
  /** One per output channel: 0 prunes, 1..8 bits, 32 full precision. */
  weightBitsU8: Uint8Array;
  /** One per input channel: 1..8 bits, 32 full precision. */
  actBitsU8: Uint8Array;
}

export function schemeBits(state: PolicyState): LayerSchemeBits[] {
  return state.layers.map((l) => ({
    name: l.name,
    weightBitsU8: Uint8Array.from(l.weightBits),
    actBitsU8: Uint8Array.from(l.actBits),
  }));
}
