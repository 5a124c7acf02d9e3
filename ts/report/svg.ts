// Small, framework-free helpers shared by the chart builders: escaping, number formatting, scales, ticks.

/** Escapes text for use in XML/HTML text nodes and double-quoted attributes. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** A coordinate with at most 2 decimals and no trailing zeros: keeps the SVG small. */
export function coord(value: number): string {
  const rounded = Math.round(value * 100) / 100;
  return Object.is(rounded, -0) ? "0" : String(rounded);
}

/** A human label for an axis tick or table cell. */
export function formatNumber(value: number, maxDecimals = 3): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return value.toExponential(2);
  const factor = 10 ** maxDecimals;
  return String(Math.round(value * factor) / factor);
}

/** Linear map from [d0, d1] to [r0, r1]; a degenerate domain maps to the middle of the range. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const span = d1 - d0;
  if (span === 0 || !Number.isFinite(span)) return () => (r0 + r1) / 2;
  return (v: number) => r0 + ((v - d0) / span) * (r1 - r0);
}

/**
 * About `target` evenly spaced round numbers (1, 2, 2.5, 5 × 10^k) covering [lo, hi]: the first tick is <= lo
 * and the last >= hi, so an axis drawn from the first to the last tick contains all the data.
 */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`niceTicks: bounds must be finite, got ${lo}, ${hi}`);
  if (hi < lo) [lo, hi] = [hi, lo];
  // A span at the edge of float precision would ask for billions of ticks: widen it like an empty one.
  const magnitudeOfBounds = Math.max(Math.abs(lo), Math.abs(hi));
  if (hi - lo <= Math.max(magnitudeOfBounds * 1e-9, 1e-12)) {
    const pad = magnitudeOfBounds < 1e-12 ? 1 : magnitudeOfBounds * 0.1;
    lo -= pad;
    hi += pad;
  }
  const rough = (hi - lo) / Math.max(1, target);
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? 10 * magnitude;
  const first = Math.floor(lo / step);
  const last = Math.ceil(hi / step);
  const ticks: number[] = [];
  // Multiply integers by the step (not accumulate) so ticks do not drift: 0.30000000000000004 is not a label.
  const tick = (i: number) => Number((i * step).toPrecision(12));
  for (let i = first; i <= last; i++) ticks.push(tick(i));
  // Rounding to 12 digits can move an end tick just inside the data: add one more step there.
  if (ticks[0]! > lo) ticks.unshift(tick(first - 1));
  if (ticks[ticks.length - 1]! < hi) ticks.push(tick(last + 1));
  return ticks;
}

/** The extent of finite values, or undefined when there are none. */
export function extent(values: Iterable<number>): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : undefined;
}

/** Opening tag of a chart: fixed pixel size plus a viewBox so it also scales down in narrow windows. */
export function svgOpen(kind: string, width: number, height: number, title: string, extraAttrs = ""): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="${escapeXml(kind)}" ` +
    `width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" ` +
    `aria-label="${escapeXml(title)}"${extraAttrs ? " " + extraAttrs : ""}>` +
    `<title>${escapeXml(title)}</title>`
  );
}

/** A colour palette for line series, readable on white and distinguishable in greyscale by dash pattern. */
export const SERIES_COLORS: readonly string[] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export function seriesColor(index: number): string {
  return SERIES_COLORS[index % SERIES_COLORS.length] ?? "#333";
}
