// Full precision vs quantized, side by side: one pair of horizontal bars per metric (top-1, size, …), each pair
// on its own scale because the metrics have different units.

import { FULL_PRECISION_COLOR } from "./bitColors.js";
import { coord, escapeXml, formatNumber, svgOpen } from "./svg.js";

export interface ComparisonMetric {
  label: string;
  unit: string;
  fp: number;
  quant: number;
}

const QUANT_COLOR = "#1f8fbf";
const LABEL_W = 130;
const PAIR_H = 66;

export function comparisonBars(title: string, metrics: readonly ComparisonMetric[], width = 520): string {
  const barMax = width - LABEL_W - 110;
  const height = 30 + metrics.length * PAIR_H + 6;
  const parts: string[] = [svgOpen("comparison", width, height, title)];
  parts.push(`<text class="chart-title" x="8" y="18">${escapeXml(title)}</text>`);
  metrics.forEach((m, i) => {
    const y0 = 30 + i * PAIR_H;
    const max = Math.max(Math.abs(m.fp), Math.abs(m.quant), Number.MIN_VALUE);
    const bar = (name: string, value: number, color: string, y: number) => {
      const w = Number.isFinite(value) ? Math.max(1, (Math.abs(value) / max) * barMax) : 0;
      return (
        `<g class="bar" data-name="${escapeXml(name)}"><text x="${LABEL_W - 6}" y="${y + 10}" text-anchor="end">${escapeXml(name)}</text>` +
        `<rect x="${LABEL_W}" y="${y}" width="${coord(w)}" height="16" fill="${color}"/>` +
        `<text x="${coord(LABEL_W + w + 6)}" y="${y + 12}">${escapeXml(formatNumber(value, 2))} ${escapeXml(m.unit)}</text></g>`
      );
    };
    parts.push(
      `<g class="metric" data-metric="${escapeXml(m.label)}"><text class="metric-label" x="8" y="${y0 + 12}">${escapeXml(m.label)}</text>` +
        bar("full precision", m.fp, FULL_PRECISION_COLOR, y0 + 20) +
        bar("quantized", m.quant, QUANT_COLOR, y0 + 40) +
        `</g>`,
    );
  });
  parts.push("</svg>");
  return parts.join("");
}
