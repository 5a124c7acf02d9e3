// A line chart as an SVG string: several named series over a shared numeric x axis, optional shaded x bands
// (e.g. the full-precision warm-up epochs of a run). Non-finite y values break a line rather than drop to 0.

import { coord, escapeXml, extent, formatNumber, linearScale, niceTicks, seriesColor, svgOpen } from "./svg.js";

export interface LineSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  color?: string;
  dashed?: boolean;
}

export interface XBand {
  from: number;
  to: number;
  label: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  bands?: readonly XBand[];
  width?: number;
  height?: number;
  /** Forces the y axis to include these values (e.g. 0 and 100 for accuracy in percent). */
  yInclude?: readonly number[];
  /** Integer x ticks only (epochs). */
  integerX?: boolean;
}

const MARGIN = { top: 44, right: 16, bottom: 42, left: 58 };

/** Splits a series into runs of consecutive finite points (a gap where y is NaN or ±Infinity). */
export function finiteRuns(points: ReadonlyArray<readonly [number, number]>): Array<Array<readonly [number, number]>> {
  const runs: Array<Array<readonly [number, number]>> = [];
  let current: Array<readonly [number, number]> = [];
  for (const p of points) {
    if (Number.isFinite(p[0]) && Number.isFinite(p[1])) {
      current.push(p);
    } else if (current.length > 0) {
      runs.push(current);
      current = [];
    }
  }
  if (current.length > 0) runs.push(current);
  return runs;
}

export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 300;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;

  const xs = options.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = options.series.flatMap((s) => s.points.map((p) => p[1])).concat(options.yInclude ?? []);
  for (const band of options.bands ?? []) xs.push(band.from, band.to);
  const xExtent = extent(xs) ?? [0, 1];
  const yExtent = extent(ys) ?? [0, 1];

  let xTicks = niceTicks(xExtent[0], xExtent[1], 8);
  if (options.integerX) xTicks = xTicks.filter((t) => Number.isInteger(t));
  const yTicks = niceTicks(yExtent[0], yExtent[1], 5);
  // The x axis hugs the data (no nice padding) so epoch 1 sits at the left edge; y gets nice bounds.
  const x = linearScale(xExtent[0], xExtent[1], MARGIN.left, MARGIN.left + plotW);
  const y0 = yTicks[0] ?? yExtent[0];
  const y1 = yTicks[yTicks.length - 1] ?? yExtent[1];
  const y = linearScale(y0, y1, MARGIN.top + plotH, MARGIN.top);

  const parts: string[] = [svgOpen("line", width, height, options.title)];
  parts.push(`<text class="chart-title" x="${MARGIN.left}" y="18">${escapeXml(options.title)}</text>`);

  for (const band of options.bands ?? []) {
    const bx0 = x(Math.min(band.from, band.to));
    const bx1 = x(Math.max(band.from, band.to));
    parts.push(
      `<rect class="band" x="${coord(bx0)}" y="${MARGIN.top}" width="${coord(Math.max(1, bx1 - bx0))}" height="${plotH}">` +
        `<title>${escapeXml(band.label)}</title></rect>` +
        `<text class="band-label" x="${coord(bx0 + 3)}" y="${MARGIN.top + 12}">${escapeXml(band.label)}</text>`,
    );
  }

  // Grid and axes.
  const grid: string[] = [];
  for (const t of yTicks) {
    const ty = coord(y(t));
    grid.push(`<line class="grid" x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${ty}" y2="${ty}"/>`);
    grid.push(`<text class="tick" x="${MARGIN.left - 6}" y="${ty}" text-anchor="end" dominant-baseline="middle">${formatNumber(t)}</text>`);
  }
  for (const t of xTicks) {
    if (t < xExtent[0] || t > xExtent[1]) continue;
    const tx = coord(x(t));
    grid.push(`<line class="grid" x1="${tx}" x2="${tx}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}"/>`);
    grid.push(`<text class="tick" x="${tx}" y="${MARGIN.top + plotH + 14}" text-anchor="middle">${formatNumber(t)}</text>`);
  }
  parts.push(`<g class="axes">${grid.join("")}` +
    `<rect class="frame" x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}"/>` +
    `<text class="axis-label" x="${MARGIN.left + plotW / 2}" y="${height - 6}" text-anchor="middle">${escapeXml(options.xLabel)}</text>` +
    `<text class="axis-label" transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text></g>`);

  // Series: one <path> per series (gaps as separate subpaths); a lone point gets a dot so it is visible.
  options.series.forEach((s, i) => {
    const color = s.color ?? seriesColor(i);
    const runs = finiteRuns(s.points);
    const d = runs.map((run) => run.map((p, j) => `${j === 0 ? "M" : "L"}${coord(x(p[0]))} ${coord(y(p[1]))}`).join("")).join("");
    const dots = runs
      .filter((run) => run.length === 1)
      .map((run) => `<circle cx="${coord(x(run[0]![0]))}" cy="${coord(y(run[0]![1]))}" r="3" fill="${color}"/>`)
      .join("");
    parts.push(
      `<g class="series" data-series="${escapeXml(s.name)}"><title>${escapeXml(s.name)}</title>` +
        (d ? `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>` : "") +
        dots +
        `</g>`,
    );
  });

  // Legend in a row under the title, one entry per series, left to right.
  const legend: string[] = [];
  let lx = MARGIN.left;
  options.series.forEach((s, i) => {
    const color = s.color ?? seriesColor(i);
    legend.push(
      `<g class="legend-item" transform="translate(${coord(lx)} 32)">` +
        `<line x1="0" x2="18" y1="0" y2="0" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>` +
        `<text x="22" y="0" dominant-baseline="middle">${escapeXml(s.name)}</text></g>`,
    );
    lx += Math.min(220, 6.5 * s.name.length) + 36;
  });
  parts.push(`<g class="legend">${legend.join("")}</g>`);
  if (options.series.every((s) => finiteRuns(s.points).length === 0)) {
    parts.push(`<text class="empty" x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH / 2}" text-anchor="middle">no data yet</text>`);
  }
  parts.push("</svg>");
  return parts.join("");
}
