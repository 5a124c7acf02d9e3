import assert from "node:assert/strict";
import fc from "fast-check";
import { allocationTimeline } from "../../ts/report/allocationTimeline.js";
import { comparisonBars } from "../../ts/report/comparisonBars.js";
import { bitHeatmap, runLengthRects, type HeatRect } from "../../ts/report/heatmap.js";
import { DENSE_LEVELS, levelsOverHistogram, mergeHistograms } from "../../ts/report/levelsOverHistogram.js";
import { finiteRuns, lineChart } from "../../ts/report/lineChart.js";
import { bigAllocationHistory } from "./fixture.js";
import { assertWellFormed, countMatches } from "./xmlCheck.js";

describe("report/lineChart", () => {
  it("draws one series group per series with a legend entry each, as well-formed SVG", () => {
    const svg = lineChart({
      title: "Accuracy",
      xLabel: "epoch",
      yLabel: "%",
      series: [
        { name: "train", points: [[1, 10], [2, 20], [3, 30]] },
        { name: "test", points: [[1, 5], [2, 15], [3, 25]] },
        { name: "fp", points: [[1, 12], [2, 22]], dashed: true },
      ],
    });
    assertWellFormed(svg, "line chart");
    assert.equal(countMatches(svg, /<g class="series"/), 3);
    assert.equal(countMatches(svg, /<g class="legend-item"/), 3);
    assert.equal(countMatches(svg, /<path d="M/), 3);
    assert.equal(countMatches(svg, /stroke-dasharray="6 4"/), 2, "the dashed series and its legend swatch");
  });

  it("escapes series names and titles", () => {
    const svg = lineChart({ title: `a<b & "c"`, xLabel: "x", yLabel: "y", series: [{ name: "<script>alert(1)</script>", points: [[0, 1], [1, 2]] }] });
    assertWellFormed(svg, "line chart with odd names");
    assert.ok(!svg.includes("<script>"));
    assert.ok(svg.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert.ok(svg.includes("a&lt;b &amp; &quot;c&quot;"));
  });

  it("breaks the line at non-finite values and marks lone points with a dot", () => {
    assert.deepEqual(finiteRuns([[1, 1], [2, NaN], [3, 3], [4, 4], [5, Infinity]]), [[[1, 1]], [[3, 3], [4, 4]]]);
    const svg = lineChart({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [[1, 1], [2, NaN], [3, 3], [4, 4]] }] });
    const d = /<path d="([^"]+)"/.exec(svg)![1]!;
    assert.equal(countMatches(d, /M/), 2);
    assert.equal(countMatches(svg, /<circle /), 1);
  });

  it("says so when there is no data instead of drawing nothing", () => {
    const svg = lineChart({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [] }] });
    assertWellFormed(svg);
    assert.ok(svg.includes("no data yet"));
  });

  it("shades x bands with their label", () => {
    const svg = lineChart({ title: "t", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [[1, 1], [9, 2]] }], bands: [{ from: 0.5, to: 3.5, label: "full-precision phase" }] });
    assert.equal(countMatches(svg, /<rect class="band"/), 1);
    assert.ok(svg.includes("full-precision phase"));
  });
});

/** Expands rectangles back into a cell grid; fails if two rectangles overlap. */
function paint(rects: readonly HeatRect[], rows: number, cols: number): Array<Array<number | undefined>> {
  const grid: Array<Array<number | undefined>> = Array.from({ length: rows }, () => new Array<number | undefined>(cols).fill(undefined));
  for (const r of rects) {
    for (let y = r.row; y < r.row + r.rows; y++) {
      for (let x = r.col; x < r.col + r.cols; x++) {
        assert.equal(grid[y]![x], undefined, `cell (${y}, ${x}) covered twice`);
        grid[y]![x] = r.bits;
      }
    }
  }
  return grid;
}

describe("report/heatmap", () => {
  it("runLengthRects covers every defined cell exactly once with its own bits (property)", () => {
    const bitsArb = fc.constantFrom(0, 1, 2, 3, 4, 8, 32);
    const columnsArb = fc.integer({ min: 1, max: 12 }).chain((rows) =>
      fc.array(fc.option(fc.array(bitsArb, { minLength: rows, maxLength: rows }), { nil: undefined, freq: 6 }), { minLength: 1, maxLength: 10 }),
    );
    fc.assert(
      fc.property(columnsArb, (columns) => {
        const rows = Math.max(0, ...columns.map((c) => c?.length ?? 0));
        const grid = paint(runLengthRects(columns), rows, columns.length);
        for (let y = 0; y < rows; y++) for (let x = 0; x < columns.length; x++) assert.equal(grid[y]![x], columns[x]?.[y]);
      }),
    );
  });

  it("merges a uniform layer into one rectangle and a two-phase layer into two", () => {
    const uniform = Array.from({ length: 5 }, () => new Array<number>(64).fill(4));
    assert.deepEqual(runLengthRects(uniform), [{ row: 0, rows: 64, col: 0, cols: 5, bits: 4 }]);
    const twoPhase = [new Array<number>(8).fill(4), new Array<number>(8).fill(4), new Array<number>(8).fill(2)];
    assert.equal(runLengthRects(twoPhase).length, 2);
  });

  it("draws a path per bit-width per layer, a legend with pruned and FP, and layer labels escaped", () => {
    const svg = bitHeatmap({
      title: "Weight bits",
      columnLabels: [0, 1, 2],
      layers: [
        { name: "conv<1>", columns: [[4, 4, 0], [4, 2, 0], [2, 2, 0]] },
        { name: "fc", columns: [[32, 32], [32, 32], undefined] },
      ],
    });
    assertWellFormed(svg, "heat map");
    assert.equal(countMatches(svg, /<g class="layer"/), 2);
    assert.equal(countMatches(svg, /<path class="cells"/), 4, "conv<1>: 0, 2, 4 bits; fc: 32 bits");
    assert.ok(svg.includes('data-layer="conv&lt;1&gt;"'));
    assert.ok(svg.includes("0 (pruned)") && svg.includes("32 (FP)"));
    assert.equal(countMatches(svg, /<g class="legend-item"/), 10);
  });

  it("keeps 20 layers × 512 channels × 30 epochs of a realistic LBA history under 1 MB", () => {
    const epochs = 30;
    const layers = allocationTimeline(bigAllocationHistory(epochs), epochs, "weight").layers;
    const svg = bitHeatmap({ title: "big", columnLabels: Array.from({ length: epochs + 1 }, (_, e) => e), layers });
    assert.ok(svg.length < 1_000_000, `heat map is ${svg.length} bytes`);
    assertWellFormed(svg, "big heat map");
  });

  it("shows a placeholder when no allocation exists", () => {
    const svg = bitHeatmap({ title: "none", columnLabels: [], layers: [] });
    assertWellFormed(svg);
    assert.ok(svg.includes("no allocation recorded yet"));
  });
});

describe("report/levelsOverHistogram", () => {
  const table = { bits: 2, alpha: [1], levels: [-1.5, -0.5, 0.5, 1.5], thresholds: [-1, 0, 1], mse: 0.1 };
  const histogram = { lo: -3, hi: 3, counts: [1, 4, 9, 16, 9, 4, 1, 0] };

  it("draws a solid line per level, a dashed line per threshold and the histogram", () => {
    const svg = levelsOverHistogram({ title: "2-bit <w>", histogram, table });
    assertWellFormed(svg, "levels chart");
    assert.equal(countMatches(svg, /<line class="level"/), 4);
    assert.equal(countMatches(svg, /<line class="threshold"[^>]*stroke-dasharray/), 3);
    assert.equal(countMatches(svg, /<path class="histogram"/), 1);
    assert.equal(countMatches(/d="([^"]+)"/.exec(svg)![1]!, /V/), histogram.counts.length + 1);
    assert.ok(svg.includes("2-bit &lt;w&gt;"));
  });

  it("draws dense tables (8 bits) as short level ticks without thresholds", () => {
    const n = 256;
    const levels = Array.from({ length: n }, (_, i) => -2 + (4 * i) / (n - 1));
    const dense = { bits: 8, alpha: [2], levels, thresholds: levels.slice(1).map((l, i) => (l + levels[i]!) / 2), mse: 0.001 };
    assert.ok(n > DENSE_LEVELS);
    const svg = levelsOverHistogram({ title: "8-bit", histogram, table: dense });
    assert.equal(countMatches(svg, /<line class="level"/), n);
    assert.equal(countMatches(svg, /<line class="threshold"/), 0);
    assert.ok(svg.includes("levels as ticks"));
  });

  it("still draws a table when there is no histogram and no finite bounds", () => {
    const svg = levelsOverHistogram({ title: "no data", histogram: { lo: NaN, hi: NaN, counts: [] }, table: { ...table, levels: [], thresholds: [] } });
    assertWellFormed(svg);
    assert.ok(!svg.includes("NaN"), "no NaN coordinates");
    const svg2 = levelsOverHistogram({ title: "levels only", histogram: { lo: Infinity, hi: -Infinity, counts: [] }, table });
    assert.equal(countMatches(svg2, /<line class="level"/), 4);
    assert.ok(!svg2.includes("NaN"));
  });

  it("mergeHistograms keeps the total count and spans every input (property)", () => {
    const histArb = fc
      .tuple(fc.double({ min: -10, max: 0, noNaN: true }), fc.double({ min: 0.1, max: 10, noNaN: true }), fc.array(fc.nat(1000), { minLength: 1, maxLength: 50 }))
      .map(([lo, width, counts]) => ({ lo, hi: lo + width, counts }));
    fc.assert(
      fc.property(fc.array(histArb, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 100 }), (hs, bins) => {
        const merged = mergeHistograms(hs, bins)!;
        const total = (c: number[]) => c.reduce((a, b) => a + b, 0);
        assert.equal(total(merged.counts), hs.reduce((a, h) => a + total(h.counts), 0));
        assert.equal(merged.counts.length, bins);
        assert.equal(merged.lo, Math.min(...hs.map((h) => h.lo)));
        assert.equal(merged.hi, Math.max(...hs.map((h) => h.hi)));
      }),
    );
    assert.equal(mergeHistograms([]), undefined);
  });
});

describe("report/comparisonBars", () => {
  it("draws a full-precision and a quantized bar per metric, scaled to the larger", () => {
    const svg = comparisonBars("FP vs Q", [
      { label: "top-1", unit: "%", fp: 92, quant: 46 },
      { label: "size", unit: "MB", fp: 1, quant: 0.1 },
    ]);
    assertWellFormed(svg, "comparison");
    assert.equal(countMatches(svg, /<g class="bar"/), 4);
    const widths = [...svg.matchAll(/<rect [^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.equal(widths[0]! / widths[1]!, 2, "92 vs 46 is twice as long");
  });
});
