import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildTables } from "../../ts/experiment/levelTables.js";
import type { AllocationRecord, EpochRecord } from "../../ts/experiment/records.js";
import { buildReport, loadRun, type LoadedRun } from "../../ts/report/index.js";
import { bigAllocationHistory, writeFixtureRun } from "./fixture.js";
import { assertWellFormed, countMatches } from "./xmlCheck.js";

function sectionOf(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}">`);
  assert.ok(start >= 0, `section ${id} is missing`);
  return html.slice(start, html.indexOf("</section>", start));
}

describe("report/buildReport (on the rendering fixture)", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "dmbq-report-build-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("builds a self-contained, well-formed page with every chart of a finished run", async () => {
    const { runDir } = await writeFixtureRun(join(root, "finished"));
    const html = buildReport(await loadRun(runDir), { generatedAt: "2024-01-02T00:00:00Z" });
    assertWellFormed(html, "report.html");
    // Self-contained: nothing is fetched.
    assert.ok(!/\ssrc=|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(html), "no external resource");

    const summary = sectionOf(html, "summary");
    assert.match(summary, /Top-1<\/th><td>84\.90 %/);
    assert.match(summary, /92\.40 %.*\(-7\.50 pts vs FP\)/);
    assert.match(summary, /0\.090 MB vs 1\.100 MB at FP32 \(12\.2× smaller\)/);
    assert.match(summary, /Median epoch time<\/th><td>12\.4 s/);
    assert.ok(!html.includes('id="unfinished"'));

    assert.equal(countMatches(sectionOf(html, "curves"), /<svg [^>]*data-chart="line"/), 3);
    assert.ok(sectionOf(html, "curves").includes('data-series="full-precision run, test"'), "FP accuracy overlaid");
    assert.equal(countMatches(sectionOf(html, "comparison"), /<g class="metric"/), 3);
    const heatmaps = sectionOf(html, "heatmaps");
    assert.equal(countMatches(heatmaps, /<svg [^>]*data-chart="heatmap"/), 2);
    assert.equal(countMatches(heatmaps, /<g class="layer"/), 6, "3 layers in each of the two maps");
    assert.ok(heatmaps.includes("froze at epoch 8"));

    // Weights end at 2, 3 (layers 2-3, plus pruned) and 8 bits (layer 1): three tables for all layers merged.
    const levels = sectionOf(html, "levels-weights");
    const firstPanel = levels.slice(levels.indexOf('data-option="0"'), levels.indexOf('data-option="1"'));
    assert.deepEqual([...firstPanel.matchAll(/data-chart="levels" [^>]*data-bits="(\d+)"/g)].map((m) => m[1]), ["2", "3", "8"]);
    assert.equal(countMatches(levels, /<option /), 4, "all layers + 3 layers");
    assert.equal(countMatches(levels, /class="layer-option small-multiples" data-option="\d+" hidden/), 3, "only the first panel shows without JS");
    assert.ok(sectionOf(html, "levels-acts").includes('data-bits="4"'));
  });

  it("reads and draws the min-max tables of a uniformMax run: w / s_c in units of max |w|, no mse", async () => {
    const { runDir } = await writeFixtureRun(join(root, "uniform-max"));
    await writeFile(join(runDir, "levels.json"), JSON.stringify(buildTables("uniformMax", "uniform").record));
    const run = await loadRun(runDir);
    assert.equal(run.levels?.mode, "uniformMax");
    const weights = sectionOf(buildReport(run), "levels-weights");
    assert.match(weights, /uniformMax mode/);
    assert.match(weights, /units of the channel(&apos;|&#39;|')s max \|w\|/);
    assert.doesNotMatch(weights, /mean \|w\||mse/);
    const laplace = sectionOf(buildReport(await loadRun((await writeFixtureRun(join(root, "laplace-levels"))).runDir)), "levels-weights");
    assert.match(laplace, /units of the channel(&apos;|&#39;|')s mean \|w\|/);
    assert.match(laplace, /mse \d/);
  });

  it("says when its top-1 comes after recalibrating BatchNorm, with the score as trained", async () => {
    const { runDir } = await writeFixtureRun(join(root, "recalibrated"), { recalibratedTop1: 85.25 });
    const summary = sectionOf(buildReport(await loadRun(runDir)), "summary");
    assert.match(summary, /Top-1<\/th><td>85\.25 % <span class="muted">\(after recalibrating BatchNorm; 84\.90 % as trained, the curves' last epoch\)/);
    const plain = sectionOf(buildReport(await loadRun((await writeFixtureRun(join(root, "plain"))).runDir)), "summary");
    assert.doesNotMatch(plain, /recalibrating/);
  });

  it("says a run is unfinished and still renders what it has", async () => {
    const { runDir } = await writeFixtureRun(join(root, "unfinished"), { finished: false, epochs: 4, fpReference: "config" });
    const html = buildReport(await loadRun(runDir));
    assertWellFormed(html, "unfinished report.html");
    assert.match(html, /<div class="banner" id="unfinished"><strong>This run is unfinished<\/strong>.*the 4 epochs recorded so far/);
    assert.match(sectionOf(html, "summary"), /known when the run finishes/);
    assert.match(sectionOf(html, "summary"), /\(last recorded epoch\)/);
    assert.equal(countMatches(sectionOf(html, "comparison"), /<g class="metric"/), 2, "top-1 and bits; size is unknown yet");
  });

  it("shades a run's own full-precision phase and compares against its end", async () => {
    const { runDir } = await writeFixtureRun(join(root, "phases"), { withFp: false, finished: false });
    const run = await loadRun(runDir);
    run.metrics = run.metrics.map((m) => (m.epoch <= 3 ? { ...m, phase: "fp" as const, avgWBits: 32, avgABits: 32 } : m));
    const html = buildReport(run);
    assert.equal(countMatches(sectionOf(html, "curves"), /<rect class="band"/), 3, "one band in each of the three curves");
    const fpTop1 = (run.metrics[2]!.testAccuracy * 100).toFixed(2);
    assert.ok(sectionOf(html, "summary").includes(`Full-precision top-1</th><td>${fpTop1} %`));
  });

  it("escapes layer, model and config strings everywhere", () => {
    const evil = `<img src=x onerror="alert(1)">&`;
    const epoch: EpochRecord = {
      epoch: 1, phase: "quant", trainLoss: 1, trainAccuracy: 0.5, testLoss: 1, testAccuracy: 0.5, lr: 0.1, seconds: 1,
      samplesPerS: 1, avgWBits: 4, avgABits: 4, time: evil,
    };
    const allocation: AllocationRecord = { epoch: 0, avgWBits: 4, avgABits: 4, frozen: false, layers: [{ name: evil, weightBits: [4, 2], actBits: [4] }] };
    const run: LoadedRun = {
      dir: `/runs/${evil}`,
      config: { name: evil, model: evil, dataset: evil },
      metrics: [epoch],
      allocation: [allocation],
      levels: { mode: evil, weight: [{ bits: 2, alpha: [1], levels: [-1, 1], thresholds: [0], mse: 0 }], act: [] },
      histograms: { epoch: 1, weight: { [evil]: { lo: -2, hi: 2, counts: [1, 2, 1] } } },
      warnings: [evil],
    };
    const html = buildReport(run);
    assertWellFormed(html, "report with hostile names");
    assert.ok(!html.includes("<img"), "no injected element");
  });

  it("keeps a 20-layer × 512-channel × 30-epoch run under 5 MB", () => {
    const allocation = bigAllocationHistory(30);
    const run: LoadedRun = { dir: "/runs/big", config: { name: "big" }, metrics: [], allocation, warnings: [] };
    const html = buildReport(run);
    assert.ok(html.length < 5_000_000, `report.html is ${html.length} bytes`);
    assert.equal(countMatches(html, /<g class="layer"/), 40);
  });
});
