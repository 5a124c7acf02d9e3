// One colour per bit-width: a sequential light-to-dark ramp for 1..8 bits (more bits = darker), and colours far
// from that ramp for the two special values, 0 = pruned and 32 = full precision.

const RAMP_1_TO_8: readonly string[] = ["#ffffcc", "#e3f4b0", "#c2e6b5", "#86cdbb", "#47b5c4", "#1f8fbf", "#2261a8", "#0c2c84"];

export const PRUNED_COLOR = "#e31a1c";
export const FULL_PRECISION_COLOR = "#8e44ad";
export const OTHER_BITS_COLOR = "#7f7f7f";

export function bitColor(bits: number): string {
  if (bits === 0) return PRUNED_COLOR;
  if (bits === 32) return FULL_PRECISION_COLOR;
  if (Number.isInteger(bits) && bits >= 1 && bits <= 8) return RAMP_1_TO_8[bits - 1]!;
  return OTHER_BITS_COLOR;
}

export function bitLabel(bits: number): string {
  if (bits === 0) return "0 (pruned)";
  if (bits === 32) return "32 (FP)";
  return String(bits);
}

/** The values every heat-map legend shows, in order. */
export const LEGEND_BITS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 32];
