// The quantizer of one bit-width drawn over the distribution it quantizes: the weight (or activation) histogram
// as filled bars, the reconstruction levels as solid vertical lines, the decision thresholds as dashed ones.
// Histogram and levels share units (w / s_c for weights, x / clip for activations), so they share the x axis.

import type { HistogramRecord, LevelTableRecord } from "../experiment/records.js";
import { coord, escapeXml, extent, formatNumber, linearScale, niceTicks, svgOpen } from "./svg.js";

export interface LevelsOverHistogramOptions {
  title: string;
  histogram: HistogramRecord;
  table: LevelTableRecord;
  xLabel?: string;
  width?: number;
  height?: number;
}

const MARGIN = { top: 40, right: 12, bottom: 34, left: 44 };
/** Above this many levels, lines are drawn as baseline ticks and thresholds are omitted. */
export const DENSE_LEVELS = 32;

/** Sums several histograms onto one common grid (each source bin's count goes to the bin holding its centre). */
export function mergeHistograms(histograms: readonly HistogramRecord[], bins?: number): HistogramRecord | undefined {
  const usable = histograms.filter((h) => h.counts.length > 0 && Number.isFinite(h.lo) && Number.isFinite(h.hi) && h.hi > h.lo);
  if (usable.length === 0) return undefined;
  const lo = Math.min(...usable.map((h) => h.lo));
  const hi = Math.max(...usable.map((h) => h.hi));
  const n = bins ?? Math.max(...usable.map((h) => h.counts.length));
  const counts = new Array<number>(n).fill(0);
  for (const h of usable) {
    const w = (h.hi - h.lo) / h.counts.length;
    h.counts.forEach((count, i) => {
      const centre = h.lo + (i + 0.5) * w;
      const j = Math.min(n - 1, Math.max(0, Math.floor(((centre - lo) / (hi - lo)) * n)));
      counts[j]! += count;
    });
  }
  return { lo, hi, counts };
}

export function levelsOverHistogram(options: LevelsOverHistogramOptions): string {
  const width = options.width ?? 470;
  const height = options.height ?? 210;
  const { histogram, table } = options;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;

  const finiteLevels = table.levels.filter(Number.isFinite);
  const finiteThresholds = table.thresholds.filter(Number.isFinite);
  const xRange = extent([histogram.lo, histogram.hi, ...finiteLevels, ...finiteThresholds]) ?? [-1, 1];
  const [xLo, xHi] = xRange;
  const pad = (xHi - xLo) * 0.03 || 1;
  const x = linearScale(xLo - pad, xHi + pad, MARGIN.left, MARGIN.left + plotW);
  const maxCount = Math.max(1, ...histogram.counts);
  const y = linearScale(0, maxCount, MARGIN.top + plotH, MARGIN.top);

  const parts: string[] = [svgOpen("levels", width, height, options.title, `data-bits="${table.bits}"`)];
  parts.push(`<text class="chart-title" x="${MARGIN.left}" y="16">${escapeXml(options.title)}</text>`);
  parts.push(
    `<text class="chart-subtitle" x="${MARGIN.left}" y="30">${table.levels.length} levels, ${table.thresholds.length} thresholds` +
      `${table.mse !== undefined ? `, mse ${escapeXml(formatNumber(table.mse, 4))}` : ""}${finiteLevels.length > DENSE_LEVELS ? " (levels as ticks)" : ""}</text>`,
  );

  // Histogram: one filled step outline.
  const n = histogram.counts.length;
  if (n > 0 && histogram.hi > histogram.lo) {
    const w = (histogram.hi - histogram.lo) / n;
    let d = `M${coord(x(histogram.lo))} ${coord(y(0))}`;
    histogram.counts.forEach((count, i) => {
      const top = coord(y(Math.max(0, count)));
      d += `V${top}H${coord(x(histogram.lo + (i + 1) * w))}`;
    });
    d += `V${coord(y(0))}Z`;
    parts.push(`<path class="histogram" d="${d}"/>`);
  }

  // Thresholds dashed, levels solid, drawn on top of the bars. Past DENSE_LEVELS (an 8-bit table has 256) full
  // height lines would paint the plot solid, so levels become short ticks on the baseline and thresholds are left out.
  const dense = finiteLevels.length > DENSE_LEVELS;
  if (!dense) {
    for (const t of finiteThresholds) {
      const tx = coord(x(t));
      parts.push(`<line class="threshold" x1="${tx}" x2="${tx}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke-dasharray="4 3"><title>threshold ${formatNumber(t, 4)}</title></line>`);
    }
  }
  const levelTop = dense ? MARGIN.top + plotH - 8 : MARGIN.top;
  for (const l of finiteLevels) {
    const lx = coord(x(l));
    parts.push(`<line class="level" x1="${lx}" x2="${lx}" y1="${levelTop}" y2="${MARGIN.top + plotH}"><title>level ${formatNumber(l, 4)}</title></line>`);
  }

  const ticks = niceTicks(xLo, xHi, 6).filter((t) => t >= xLo - pad && t <= xHi + pad);
  const axis = ticks
    .map((t) => `<text class="tick" x="${coord(x(t))}" y="${MARGIN.top + plotH + 13}" text-anchor="middle">${formatNumber(t)}</text>`)
    .join("");
  parts.push(
    `<g class="axes"><rect class="frame" x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}"/>${axis}` +
      `<text class="axis-label" x="${MARGIN.left + plotW / 2}" y="${height - 4}" text-anchor="middle">${escapeXml(options.xLabel ?? "w / s_c")}</text>` +
      `<text class="tick" x="${MARGIN.left - 4}" y="${MARGIN.top + 4}" text-anchor="end">${formatNumber(maxCount)}</text>` +
      `<text class="tick" x="${MARGIN.left - 4}" y="${MARGIN.top + plotH}" text-anchor="end">0</text></g>`,
  );
  parts.push("</svg>");
  return parts.join("");
}
