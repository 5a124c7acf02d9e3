/** An SVG drawing of a law's density with the quantizer's levels (solid) and thresholds (dashed). Pure string output. */
import type { Distribution } from "./distribution.js";
import type { LevelSolution } from "./solveLevels.js";

const WIDTH = 720;
const HEIGHT = 360;
const MARGIN = 40;

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

export function plotLevelsSvg(dist: Distribution, solution: LevelSolution, title = `${dist.name}, M = ${solution.bits}`): string {
  const top = solution.clip;
  const bottom = solution.levels[0]!;
  const pad = 0.15 * Math.max(1e-9, top - bottom);
  const xMin = Math.max(dist.support[0], bottom - pad);
  const xMax = Math.min(dist.support[1], top + pad);
  const samples = 400;
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i <= samples; i++) {
    const x = xMin + ((xMax - xMin) * i) / samples;
    xs.push(x);
    ys.push(dist.pdf(x));
  }
  const yMax = Math.max(...ys.filter(Number.isFinite), 1e-12) * 1.1;
  const px = (x: number): number => MARGIN + ((x - xMin) / (xMax - xMin || 1)) * (WIDTH - 2 * MARGIN);
  const py = (y: number): number => HEIGHT - MARGIN - (y / yMax) * (HEIGHT - 2 * MARGIN);
  const path = xs.map((x, i) => `${i === 0 ? "M" : "L"}${px(x).toFixed(2)},${py(ys[i]!).toFixed(2)}`).join(" ");
  const lines: string[] = [];
  for (const t of solution.thresholds) {
    if (t < xMin || t > xMax) continue;
    lines.push(`<line x1="${px(t).toFixed(2)}" y1="${py(0)}" x2="${px(t).toFixed(2)}" y2="${MARGIN}" stroke="#999" stroke-dasharray="3,3" stroke-width="0.8"/>`);
  }
  for (const l of solution.levels) {
    lines.push(`<line x1="${px(l).toFixed(2)}" y1="${py(0)}" x2="${px(l).toFixed(2)}" y2="${MARGIN}" stroke="#c0392b" stroke-width="1.2"/>`);
  }
  const text = (x: number, y: number, s: string, anchor = "middle"): string =>
    `<text x="${x}" y="${y}" font-family="sans-serif" font-size="12" text-anchor="${anchor}">${s}</text>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    text(WIDTH / 2, 20, `${title}: MSE ${solution.mse.toPrecision(4)} (Lloyd–Max ${solution.lloydMaxMse.toPrecision(4)}, uniform ${solution.uniformMse.toPrecision(4)})`),
    `<line x1="${MARGIN}" y1="${py(0)}" x2="${WIDTH - MARGIN}" y2="${py(0)}" stroke="black"/>`,
    ...lines,
    `<path d="${path}" fill="none" stroke="#2c3e50" stroke-width="2"/>`,
    text(MARGIN, HEIGHT - 12, fmt(xMin), "start"),
    text(WIDTH - MARGIN, HEIGHT - 12, fmt(xMax), "end"),
    text(WIDTH / 2, HEIGHT - 12, "levels (red), thresholds (dashed)"),
    `</svg>`,
    "",
  ].join("\n");
}
