// The bit-width of every channel of every layer over the epochs, as an SVG heat map.
//
// Size matters: 20 layers × 512 channels × tens of epochs is ~10^5 cells. Cells are merged into rectangles of equal
// bits (run-length along epochs, then stacked across neighbouring channels with the same run), and each layer draws
// one <path> per bit-width in cell units under a scale() transform, so a rectangle costs ~15 bytes ("M3 40h5v2h-5z").

import { bitColor, bitLabel, LEGEND_BITS } from "./bitColors.js";
import { coord, escapeXml, svgOpen } from "./svg.js";

/** A rectangle of equal bit-width, in cell units: rows are channels, columns are epochs. */
export interface HeatRect {
  row: number;
  rows: number;
  col: number;
  cols: number;
  bits: number;
}

/** One layer: for each column (epoch), the bits of each channel, or undefined where the layer has no record. */
export interface HeatmapLayer {
  name: string;
  columns: ReadonlyArray<ReadonlyArray<number> | undefined>;
}

export interface BitHeatmapOptions {
  title: string;
  /** The epoch shown in each column; same length as every layer's `columns`. */
  columnLabels: readonly number[];
  layers: readonly HeatmapLayer[];
  /** What a row is, for the tooltip: "output channels" or "input channels". */
  rowNoun?: string;
  width?: number;
}

/** Number of channel rows of a layer: the longest column (channel counts should not change, but do not crash). */
export function channelCount(layer: HeatmapLayer): number {
  return layer.columns.reduce((n, col) => Math.max(n, col?.length ?? 0), 0);
}

/**
 * Covers every defined cell exactly once with rectangles of equal bits. Runs along each row first, then a run
 * extends the rectangle directly above it when it spans the same columns with the same bits.
 */
export function runLengthRects(columns: ReadonlyArray<ReadonlyArray<number> | undefined>): HeatRect[] {
  const rows = columns.reduce((n, col) => Math.max(n, col?.length ?? 0), 0);
  const rects: HeatRect[] = [];
  let open = new Map<string, HeatRect>(); // rectangles that end on the previous row, by "col:cols:bits"
  for (let r = 0; r < rows; r++) {
    const next = new Map<string, HeatRect>();
    let c = 0;
    while (c < columns.length) {
      const bits = columns[c]?.[r];
      if (bits === undefined) {
        c++;
        continue;
      }
      let end = c + 1;
      while (end < columns.length && columns[end]?.[r] === bits) end++;
      const key = `${c}:${end - c}:${bits}`;
      const above = open.get(key);
      if (above) {
        above.rows++;
        next.set(key, above);
      } else {
        const rect: HeatRect = { row: r, rows: 1, col: c, cols: end - c, bits };
        rects.push(rect);
        next.set(key, rect);
      }
      c = end;
    }
    open = next;
  }
  return rects;
}

/** Height in pixels of a layer's band: ~3 px per channel, but small layers stay visible and big ones bounded. */
export function bandHeight(channels: number): number {
  return Math.max(14, Math.min(150, channels * 3));
}

const LABEL_W = 200;
const TOP = 58;
const GAP = 5;
const BOTTOM = 40;

function layerSummary(layer: HeatmapLayer, columnLabels: readonly number[], rowNoun: string): string {
  let last = layer.columns.length - 1;
  while (last >= 0 && layer.columns[last] === undefined) last--;
  const bits = last >= 0 ? layer.columns[last]! : [];
  const counts = new Map<number, number>();
  for (const b of bits) counts.set(b, (counts.get(b) ?? 0) + 1);
  const mean = bits.length ? bits.reduce((a, b) => a + b, 0) / bits.length : NaN;
  const histogram = [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([b, n]) => `${bitLabel(b)} bits: ${n}`).join(", ");
  const at = last >= 0 ? `epoch ${columnLabels[last] ?? last}` : "no record";
  return `${layer.name}: ${channelCount(layer)} ${rowNoun}; at ${at}: mean ${Number.isFinite(mean) ? mean.toFixed(2) : "—"} bits (${histogram})`;
}

export function bitHeatmap(options: BitHeatmapOptions): string {
  const width = options.width ?? 1000;
  const plotW = width - LABEL_W - 16;
  const nCols = Math.max(1, options.columnLabels.length);
  const colW = plotW / nCols;
  const rowNoun = options.rowNoun ?? "channels";
  const bandsH = options.layers.reduce((h, l) => h + bandHeight(Math.max(1, channelCount(l))) + GAP, 0);
  const height = TOP + Math.max(20, bandsH) + BOTTOM;

  const parts: string[] = [svgOpen("heatmap", width, height, options.title, 'shape-rendering="crispEdges"')];
  parts.push(`<text class="chart-title" x="8" y="18">${escapeXml(options.title)}</text>`);

  // Legend: every bit-width, including the two special ones, so colours mean the same in every report.
  const legend = LEGEND_BITS.map((b, i) => {
    const lx = LABEL_W + i * 80;
    return `<g class="legend-item" data-bits="${b}"><rect x="${lx}" y="28" width="14" height="14" fill="${bitColor(b)}" stroke="#999"/>` +
      `<text x="${lx + 18}" y="39">${escapeXml(bitLabel(b))}</text></g>`;
  });
  parts.push(`<g class="legend"><text x="8" y="39">bits:</text>${legend.join("")}</g>`);

  let y = TOP;
  for (const layer of options.layers) {
    const channels = Math.max(1, channelCount(layer));
    const bandH = bandHeight(channels);
    const rowH = bandH / channels;
    const byBits = new Map<number, string[]>();
    for (const rect of runLengthRects(layer.columns)) {
      const list = byBits.get(rect.bits) ?? [];
      list.push(`M${rect.col} ${rect.row}h${rect.cols}v${rect.rows}h-${rect.cols}z`);
      byBits.set(rect.bits, list);
    }
    const paths = [...byBits.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([bits, ds]) => `<path class="cells" data-bits="${bits}" data-rects="${ds.length}" fill="${bitColor(bits)}" d="${ds.join("")}"/>`)
      .join("");
    const label = layer.name.length > 26 ? layer.name.slice(0, 12) + "…" + layer.name.slice(-13) : layer.name;
    parts.push(
      `<g class="layer" data-layer="${escapeXml(layer.name)}" data-channels="${channels}">` +
        `<title>${escapeXml(layerSummary(layer, options.columnLabels, rowNoun))}</title>` +
        `<text class="layer-label" x="${LABEL_W - 8}" y="${coord(y + bandH / 2)}" text-anchor="end" dominant-baseline="middle">` +
        `${escapeXml(label)} <tspan class="muted">(${channels})</tspan></text>` +
        `<rect class="band-bg" x="${LABEL_W}" y="${coord(y)}" width="${coord(plotW)}" height="${coord(bandH)}"/>` +
        `<g transform="translate(${LABEL_W} ${coord(y)}) scale(${coord4(colW)} ${coord4(rowH)})">${paths}</g>` +
        `</g>`,
    );
    y += bandH + GAP;
  }

  // Epoch labels along the bottom, thinned so they never overlap.
  const stride = Math.max(1, Math.ceil(nCols / Math.max(1, Math.floor(plotW / 36))));
  const ticks: string[] = [];
  for (let c = 0; c < options.columnLabels.length; c += stride) {
    const tx = LABEL_W + (c + 0.5) * colW;
    ticks.push(`<text class="tick" x="${coord(tx)}" y="${coord(y + 12)}" text-anchor="middle">${options.columnLabels[c]}</text>`);
  }
  parts.push(`<g class="axes">${ticks.join("")}<text class="axis-label" x="${coord(LABEL_W + plotW / 2)}" y="${coord(y + 30)}" text-anchor="middle">epoch (scheme in force)</text></g>`);
  if (options.layers.length === 0) {
    parts.push(`<text class="empty" x="${LABEL_W + plotW / 2}" y="${TOP + 14}" text-anchor="middle">no allocation recorded yet</text>`);
  }
  parts.push("</svg>");
  return parts.join("");
}

/** Scale factors need more precision than pixel coordinates: an error multiplies by the cell count. */
function coord4(value: number): string {
  return String(Math.round(value * 10000) / 10000);
}
