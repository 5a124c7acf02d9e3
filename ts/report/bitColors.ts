// One colour per bit-width: viridis from yellow (1 bit) to dark purple (8 bits), so more bits = darker and
// neighbouring bit-widths stay distinguishable; the two special values get colours off that ramp: 0 = pruned (red)
// and 32 = full precision (orange).

const RAMP_1_TO_8: readonly string[] = ["#fde725", "#a0da39", "#4ac16d", "#1fa187", "#277f8e", "#365c8d", "#46327e", "#440154"];

export const PRUNED_COLOR = "#d62728";
export const FULL_PRECISION_COLOR = "#ff7f0e";
export const OTHER_BITS_COLOR = "#e377c2";

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
