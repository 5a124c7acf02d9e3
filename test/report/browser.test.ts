// Opens report.html of the rendering fixture in headless Chromium (Debian's `chromium` package) and checks every
// chart renders: the page's inline script stamps each <svg class="chart"> with its laid-out size (data-rendered)
// and the number of shapes with a non-empty box (data-shapes); --dump-dom prints the DOM after it ran.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { writeReport } from "../../ts/report/index.js";
import { writeFixtureRun } from "./fixture.js";

const run = promisify(execFile);
const CHROMIUM = process.env.DMBQ_CHROMIUM ?? "/usr/bin/chromium";
const skip = process.env.DMBQ_SKIP_BROWSER === "1";

async function dumpDom(htmlPath: string, profileDir: string): Promise<string> {
  const { stdout } = await run(
    CHROMIUM,
    [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", `--user-data-dir=${profileDir}`, "--dump-dom", pathToFileURL(htmlPath).href,
    ],
    { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

interface RenderedChart {
  kind: string;
  width: number;
  height: number;
  shapes: number;
}

function renderedCharts(dom: string): RenderedChart[] {
  return [...dom.matchAll(/<svg [^>]*class="chart"[^>]*>/g)].map((m) => {
    const tag = m[0];
    const size = /data-rendered="(\d+)x(\d+)"/.exec(tag);
    const shapes = /data-shapes="(\d+)"/.exec(tag);
    return {
      kind: /data-chart="([^"]+)"/.exec(tag)?.[1] ?? "?",
      width: size ? Number(size[1]) : 0,
      height: size ? Number(size[2]) : 0,
      shapes: shapes ? Number(shapes[1]) : 0,
    };
  });
}

describe("report in headless Chromium (rendering fixture)", function () {
  this.timeout(60_000);
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "dmbq-report-browser-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  (skip ? it.skip : it)("renders every chart with a non-empty box and shapes", async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `Chromium is not installed at ${CHROMIUM}: install Debian's package with ` +
        "`apt-get update && apt-get install -y chromium` (or set DMBQ_CHROMIUM=/path/to/chromium; " +
        "DMBQ_SKIP_BROWSER=1 skips this test)",
    );
    const { runDir } = await writeFixtureRun(join(root, "runs"));
    const htmlPath = await writeReport(runDir);
    const html = await readFile(htmlPath, "utf8");
    const dom = await dumpDom(htmlPath, await mkdtemp(join(root, "profile-")));

    const charts = renderedCharts(dom);
    const inSource = [...html.matchAll(/<svg [^>]*class="chart"/g)].length;
    assert.equal(charts.length, inSource, "the browser kept every chart");
    assert.ok(charts.length >= 15, `expected the full set of charts, got ${charts.length}`);
    for (const c of charts) {
      assert.ok(c.width > 0 && c.height > 0, `a ${c.kind} chart rendered as ${c.width}x${c.height}`);
      assert.ok(c.shapes > 0, `a ${c.kind} chart has no visible shapes`);
    }
    const kinds = new Set(charts.map((c) => c.kind));
    for (const k of ["line", "heatmap", "levels", "comparison"]) assert.ok(kinds.has(k), `no ${k} chart rendered`);
    // Each heat map: 10 legend swatches + the background band and cell paths of 3 layers.
    for (const h of charts.filter((c) => c.kind === "heatmap")) assert.ok(h.shapes >= 10 + 3 * 2, `heat map has ${h.shapes} shapes`);
  });
});
