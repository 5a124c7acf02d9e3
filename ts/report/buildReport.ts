// The self-contained report.html of a run: inline CSS, inline SVG charts, and a few lines of inline JS only for
// the layer selector and for stamping each chart's rendered size (data-rendered) so a headless browser test can
// check that the charts really render. Everything is visible without JS.

import { weightScaleOf } from "../experiment/config.js";
import type { EpochRecord } from "../experiment/records.js";
import { allocationTimeline } from "./allocationTimeline.js";
import { FULL_PRECISION_COLOR } from "./bitColors.js";
import { comparisonBars, type ComparisonMetric } from "./comparisonBars.js";
import { bitHeatmap } from "./heatmap.js";
import { levelsSection } from "./levelsSection.js";
import { lineChart, type LineSeries, type XBand } from "./lineChart.js";
import type { LoadedRun } from "./loadRun.js";
import { summarizeRun, type RunSummary } from "./runSummary.js";
import { escapeXml, formatNumber } from "./svg.js";

export interface BuildReportOptions {
  /** ISO time printed in the footer; defaults to now. Fixed in tests for reproducible output. */
  generatedAt?: string;
}

const CSS = `
[hidden]{display:none!important}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1060px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:0 0 8px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:14px 16px;margin:14px 0}
.muted{color:#6a737d}.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;vertical-align:middle}
.pill.done{background:#dcffe4;color:#116329}.pill.open{background:#fff5b1;color:#735c0f}
.banner{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:10px 14px;margin:12px 0}
.warnings{color:#735c0f;font-size:13px;margin:6px 0 0;padding-left:18px}
table.summary{border-collapse:collapse;width:100%}
table.summary th{text-align:left;font-weight:600;color:#444;padding:4px 12px 4px 0;width:210px;vertical-align:top}
table.summary td{padding:4px 0}table.summary tr+tr{border-top:1px solid #f0f0f0}
.better{color:#116329}.worse{color:#b31d28}
.charts{display:flex;flex-wrap:wrap;gap:12px}.small-multiples{display:flex;flex-wrap:wrap;gap:8px}
svg.chart{max-width:100%;height:auto;background:#fff}
svg .chart-title{font-size:13px;font-weight:600;fill:#222}svg .chart-subtitle{font-size:11px;fill:#6a737d}
svg text{font-size:11px;fill:#333}svg .tick{fill:#6a737d;font-size:10px}svg .axis-label{fill:#444;font-size:11px}
svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#bbb}svg .band{fill:#fff0e0}svg .band-label{fill:#b35900;font-size:10px}
svg .empty{fill:#999;font-size:13px}svg .band-bg{fill:#f3f3f3}svg .muted{fill:#999}
svg .histogram{fill:#c9d6e3;stroke:#8aa2ba;stroke-width:.5}svg .level{stroke:#0c2c84;stroke-width:1.4}
svg .threshold{stroke:#e31a1c;stroke-width:1}
select{font:inherit;margin:0 0 8px}details pre{font-size:12px;overflow:auto;max-height:400px;background:#f6f8fa;padding:8px}
footer{color:#6a737d;font-size:12px;margin-top:20px}
`;

// Layer selector, and the rendered-size stamp: hidden panels are briefly shown so their charts get measured too.
const SCRIPT = `
(function(){
  document.querySelectorAll('select.layer-select').forEach(function(sel){
    sel.addEventListener('change',function(){
      var box=document.getElementById(sel.getAttribute('data-target'));
      box.querySelectorAll('.layer-option').forEach(function(p){p.hidden=p.getAttribute('data-option')!==sel.value;});
    });
  });
  document.querySelectorAll('svg.chart').forEach(function(svg){
    var panel=svg.closest('[hidden]');if(panel)panel.hidden=false;
    var box=svg.getBBox();var shapes=0;
    svg.querySelectorAll('path,rect,line,circle').forEach(function(el){var b=el.getBBox();if(b.width>0||b.height>0)shapes++;});
    svg.setAttribute('data-rendered',Math.round(box.width)+'x'+Math.round(box.height));
    svg.setAttribute('data-shapes',String(shapes));
    if(panel)panel.hidden=true;
  });
})();
`;

function fmt(value: number | undefined, digits = 2, unit = ""): string {
  if (value === undefined || !Number.isFinite(value)) return `<span class="muted">—</span>`;
  return `${escapeXml(value.toFixed(digits))}${unit}`;
}

function signed(value: number | undefined, unit: string): string {
  if (value === undefined || !Number.isFinite(value)) return "";
  const cls = value >= 0 ? "better" : "worse";
  return ` <span class="${cls}">(${value >= 0 ? "+" : ""}${value.toFixed(2)}${unit})</span>`;
}

const fmtBytes = (b: number): string => (b >= 1e6 ? `${(b / 1e6).toFixed(3)} MB` : `${(b / 1e3).toFixed(1)} kB`);

function summaryTable(s: RunSummary): string {
  const rows: Array<[string, string]> = [
    ["Model", s.model ? escapeXml(s.model) : fmt(undefined)],
    ["Dataset", s.dataset ? escapeXml(s.dataset) : fmt(undefined)],
    ["Top-1", `${fmt(s.top1, 2, " %")}${s.finished ? "" : ' <span class="muted">(last recorded epoch)</span>'}${
      s.top1AsTrained !== undefined ? ` <span class="muted">(after recalibrating BatchNorm; ${fmt(s.top1AsTrained, 2, " %")} as trained, the curves' last epoch)</span>` : ""}`],
    ["Full-precision top-1", s.fpTop1 !== undefined ? `${fmt(s.fpTop1, 2, " %")}${signed(s.deltaTop1, " pts vs FP")}` : `<span class="muted">no full-precision run</span>`],
    ["Average bits (W / A)", `${fmt(s.avgWBits)} / ${fmt(s.avgABits)}`],
    [
      "Size",
      s.sizeMb !== undefined
        ? `${fmt(s.sizeMb, 3, " MB")} vs ${fmt(s.fpSizeMb, 3, " MB")} at FP32${s.compression !== undefined ? ` (${s.compression.toFixed(1)}× smaller)` : ""}`
        : `<span class="muted">known when the run finishes</span>`,
    ],
    ...(s.sizeBreakdown
      ? [["Size breakdown (model.dmbq)", `bit-planes ${fmtBytes(s.sizeBreakdown.bitPlaneBytes)}, tables and scales ${fmtBytes(s.sizeBreakdown.tablesAndScalesBytes)}, full-precision tensors ${fmtBytes(s.sizeBreakdown.fullPrecisionBytes)}, header ${fmtBytes(s.sizeBreakdown.headerBytes)}`] as [string, string]]
      : []),
    ["Epochs", String(s.epochs)],
    ["Median epoch time", fmt(s.epochTimeS, 1, " s")],
    ["Device", s.device ? escapeXml(s.device) : fmt(undefined)],
    ["Started", s.startedAt ? escapeXml(s.startedAt) : fmt(undefined)],
    ["Finished", s.finishedAt ? escapeXml(s.finishedAt) : `<span class="muted">not yet${s.lastUpdate ? ` (last epoch ended ${escapeXml(s.lastUpdate)})` : ""}</span>`],
  ];
  if (s.fpRunDir) rows.push(["Full-precision run", `<code>${escapeXml(s.fpRunDir)}</code>`]);
  return `<table class="summary">${rows.map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${v}</td></tr>`).join("")}</table>`;
}

/** Shaded epoch ranges of the full-precision phase, if the run trained one before quantizing. */
function fpPhaseBands(metrics: readonly EpochRecord[]): XBand[] {
  const fpEpochs = metrics.filter((m) => m.phase === "fp").map((m) => m.epoch);
  if (fpEpochs.length === 0 || fpEpochs.length === metrics.length) return [];
  return [{ from: Math.min(...fpEpochs) - 0.5, to: Math.max(...fpEpochs) + 0.5, label: "full-precision phase" }];
}

function curve(metrics: readonly EpochRecord[], pick: (m: EpochRecord) => number): Array<[number, number]> {
  return metrics.map((m) => [m.epoch, pick(m)]);
}

function section(title: string, body: string, id: string): string {
  return `<section id="${id}"><h2>${escapeXml(title)}</h2>${body}</section>`;
}

/** The last allocation's bit-widths per layer (quantized ones only), to pick which level tables to draw. */
function bitsInUse(run: LoadedRun, kind: "weight" | "act"): Map<string, Set<number>> | undefined {
  const last = run.allocation[run.allocation.length - 1];
  if (!last) return undefined;
  return new Map(last.layers.map((l) => [l.name, new Set(kind === "weight" ? l.weightBits : l.actBits)]));
}

export function buildReport(run: LoadedRun, options: BuildReportOptions = {}): string {
  const s = summarizeRun(run);
  const m = run.metrics;
  const fpMetrics = run.fp?.metrics ?? [];
  const bands = fpPhaseBands(m);
  const body: string[] = [];

  body.push(
    `<h1>${escapeXml(s.name)} <span class="pill ${s.finished ? "done" : "open"}">${s.finished ? "finished" : "unfinished"}</span></h1>` +
      `<div class="muted">${[s.model, s.dataset].some(Boolean) ? `${escapeXml([s.model, s.dataset].filter(Boolean).join(" on "))} · ` : ""}<code>${escapeXml(run.dir)}</code></div>`,
  );
  if (!s.finished) {
    body.push(
      `<div class="banner" id="unfinished"><strong>This run is unfinished</strong>: result.json has not been written. ` +
        `The report shows the ${m.length} epoch${m.length === 1 ? "" : "s"} recorded so far${s.lastUpdate ? ` (the last ended ${escapeXml(s.lastUpdate)})` : ""}.</div>`,
    );
  }
  if (run.warnings.length > 0) body.push(`<ul class="warnings">${run.warnings.map((w) => `<li>${escapeXml(w)}</li>`).join("")}</ul>`);
  body.push(section("Summary", summaryTable(s), "summary"));

  // Full precision vs quantized.
  const comparison: ComparisonMetric[] = [];
  if (s.top1 !== undefined && s.fpTop1 !== undefined) comparison.push({ label: "top-1 accuracy", unit: "%", fp: s.fpTop1, quant: s.top1 });
  if (s.sizeMb !== undefined && s.fpSizeMb !== undefined) comparison.push({ label: "model size", unit: "MB", fp: s.fpSizeMb, quant: s.sizeMb });
  if (s.avgWBits !== undefined && comparison.length > 0) comparison.push({ label: "average weight bits", unit: "bits", fp: 32, quant: s.avgWBits });
  if (comparison.length > 0) body.push(section("Full precision vs quantized", comparisonBars("Full precision vs quantized", comparison), "comparison"));

  // Curves.
  const accuracy: LineSeries[] = [
    { name: "train accuracy", points: curve(m, (r) => r.trainAccuracy * 100) },
    { name: "test accuracy", points: curve(m, (r) => r.testAccuracy * 100) },
  ];
  if (fpMetrics.length > 0) accuracy.push({ name: "full-precision run, test", points: curve(fpMetrics, (r) => r.testAccuracy * 100), dashed: true, color: FULL_PRECISION_COLOR });
  const loss: LineSeries[] = [
    { name: "train loss", points: curve(m, (r) => r.trainLoss) },
    { name: "test loss", points: curve(m, (r) => r.testLoss) },
  ];
  if (fpMetrics.length > 0) loss.push({ name: "full-precision run, test", points: curve(fpMetrics, (r) => r.testLoss), dashed: true, color: FULL_PRECISION_COLOR });
  const bitsSeries: LineSeries[] =
    m.length > 0
      ? [
          { name: "average weight bits", points: curve(m, (r) => r.avgWBits) },
          { name: "average activation bits", points: curve(m, (r) => r.avgABits) },
        ]
      : [
          { name: "average weight bits (allocation)", points: run.allocation.map((a) => [a.epoch, a.avgWBits] as [number, number]) },
          { name: "average activation bits (allocation)", points: run.allocation.map((a) => [a.epoch, a.avgABits] as [number, number]) },
        ];
  body.push(
    section(
      "Training curves",
      `<div class="charts">` +
        lineChart({ title: "Accuracy", xLabel: "epoch", yLabel: "accuracy (%)", series: accuracy, bands, integerX: true, width: 480 }) +
        lineChart({ title: "Loss", xLabel: "epoch", yLabel: "loss", series: loss, bands, integerX: true, width: 480 }) +
        lineChart({ title: "Average bits over time", xLabel: "epoch", yLabel: "bits", series: bitsSeries, bands, integerX: true, yInclude: [0], width: 980, height: 240 }) +
        `</div>`,
      "curves",
    ),
  );

  // Bit-width heat maps.
  const lastEpoch = m.reduce((n, r) => Math.max(n, r.epoch), 0);
  const frozenAt = run.allocation.find((a) => a.frozen)?.epoch;
  const note =
    `<p class="muted">Rows are channels, grouped by layer (channel count in brackets; hover a layer for its bit counts); columns are epochs, ` +
    `each showing the scheme in force from that epoch on.${frozenAt !== undefined ? ` The policy met its budget and froze at epoch ${frozenAt}.` : ""}</p>`;
  const weightTimeline = allocationTimeline(run.allocation, lastEpoch, "weight");
  const actTimeline = allocationTimeline(run.allocation, lastEpoch, "act");
  body.push(
    section(
      "Bit-width of every channel",
      note +
        bitHeatmap({ title: "Weight bits per output channel", columnLabels: weightTimeline.columnLabels, layers: weightTimeline.layers, rowNoun: "output channels", width: 980 }) +
        bitHeatmap({ title: "Activation bits per input channel", columnLabels: actTimeline.columnLabels, layers: actTimeline.layers, rowNoun: "input channels", width: 980 }),
      "heatmaps",
    ),
  );

  // Levels over histograms.
  if (run.levels) {
    const weightLevels = levelsSection({
      kind: "weight",
      histograms: run.histograms?.weight ?? {},
      tables: run.levels.weight,
      weightScale: weightScaleOf(run.levels.mode),
      ...(run.levels.perLayer ? { perLayer: run.levels.perLayer } : {}),
      ...(run.allocation.length ? { bitsInUse: bitsInUse(run, "weight")! } : {}),
    });
    const actLevels = run.histograms?.act
      ? levelsSection({ kind: "act", histograms: run.histograms.act, tables: run.levels.act, ...(run.allocation.length ? { bitsInUse: bitsInUse(run, "act")! } : {}) })
      : undefined;
    const intro =
      `<p class="muted">Level tables (${escapeXml(run.levels.mode)} mode) over the histogram of the last epoch${run.histograms ? ` (${run.histograms.epoch})` : ""}: ` +
      `solid lines are reconstruction levels, dashed lines decision thresholds.${run.histograms ? "" : " No histograms were recorded, so only the levels are drawn."}</p>`;
    if (weightLevels) body.push(section("Levels over the weight histogram", intro + weightLevels, "levels-weights"));
    if (actLevels) body.push(section("Levels over the activation histogram", actLevels, "levels-acts"));
  }

  body.push(`<details><summary>Configuration (config.json)</summary><pre>${escapeXml(JSON.stringify(run.config, null, 2))}</pre></details>`);
  body.push(`<footer>Written by <code>dmbq report</code> at ${escapeXml(options.generatedAt ?? new Date().toISOString())}. Numbers: ${formatNumber(m.length)} epoch records, ${formatNumber(run.allocation.length)} allocation records.</footer>`);

  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeXml(`dmbq report: ${s.name}`)}</title><style>${CSS}</style></head>` +
    `<body><main>${body.join("\n")}</main><script>${SCRIPT}</script></body></html>\n`
  );
}
