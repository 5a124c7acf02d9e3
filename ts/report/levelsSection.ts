// The "levels over histogram" section: for each layer (and all layers merged), one small chart per bit-width in
// use. Every layer's charts are in the HTML (so they render without JS); a <select> only toggles which is shown.

import type { HistogramRecord, LevelTableRecord } from "../experiment/records.js";
import { levelsOverHistogram, mergeHistograms } from "./levelsOverHistogram.js";
import { escapeXml } from "./svg.js";

export interface LevelsSectionInput {
  /** "weight" or "act": used in ids and labels. */
  kind: "weight" | "act";
  histograms: Readonly<Record<string, HistogramRecord>>;
  /** Shared tables (all layers). */
  tables: readonly LevelTableRecord[];
  /** Per-layer tables (empirical mode); a layer without its own uses the shared ones. */
  perLayer?: Readonly<Record<string, readonly LevelTableRecord[]>>;
  /** Bit-widths each layer uses at the end of the run; absent = show every table. */
  bitsInUse?: ReadonlyMap<string, ReadonlySet<number>>;
  /** The unit of w / s_c (the weights' scale statistic, weightScaleOf of the levels mode); absent: mean |w|. */
  weightScale?: "meanAbs" | "maxAbs";
}

const AGGREGATE = "all layers";

function shortLabel(label: string): string {
  return label.length > 28 ? label.slice(0, 12) + "…" + label.slice(-15) : label;
}

function tablesFor(input: LevelsSectionInput, layer: string | undefined, used: ReadonlySet<number> | undefined): LevelTableRecord[] {
  const source = (layer !== undefined ? input.perLayer?.[layer] : undefined) ?? input.tables;
  // 0 (pruned) and 32 (float) have no quantizer to draw.
  return [...source]
    .filter((t) => t.bits > 0 && t.bits < 32 && (used === undefined || used.has(t.bits)))
    .sort((a, b) => a.bits - b.bits);
}

/** Returns the section's inner HTML, or undefined when there is nothing to draw. */
export function levelsSection(input: LevelsSectionInput): string | undefined {
  const layerNames = Object.keys(input.histograms);
  const allUsed = input.bitsInUse ? new Set([...input.bitsInUse.values()].flatMap((s) => [...s])) : undefined;
  const merged = mergeHistograms(Object.values(input.histograms));
  const xLabel = input.kind === "weight" ? `w / s_c (units of the channel's ${input.weightScale === "maxAbs" ? "max" : "mean"} |w|)` : "x / clip";

  // The first option is what shows without JS: all layers merged, or the only layer.
  const single = layerNames.length === 1 ? layerNames[0] : undefined;
  const options: Array<{ label: string; choice: string; histogram: HistogramRecord | undefined; tables: LevelTableRecord[] }> = [
    single !== undefined
      ? { label: single, choice: single, histogram: input.histograms[single], tables: tablesFor(input, single, input.bitsInUse?.get(single) ?? allUsed) }
      : { label: AGGREGATE, choice: `${AGGREGATE} (merged histogram)`, histogram: merged, tables: tablesFor(input, undefined, allUsed) },
  ];
  if (layerNames.length > 1) {
    for (const name of layerNames) {
      options.push({ label: name, choice: name, histogram: input.histograms[name], tables: tablesFor(input, name, input.bitsInUse?.get(name) ?? allUsed) });
    }
  }
  if (options.every((o) => o.tables.length === 0)) return undefined;

  const id = `levels-${input.kind}`;
  const select =
    options.length > 1
      ? `<label>Layer: <select class="layer-select" data-target="${id}">` +
        options.map((o, i) => `<option value="${i}">${escapeXml(o.choice)}</option>`).join("") +
        `</select></label>`
      : "";
  const panels = options.map((o, i) => {
    const charts = o.tables.map((table) => {
      const histogram = o.histogram ?? { lo: Math.min(...table.levels), hi: Math.max(...table.levels), counts: [] };
      return levelsOverHistogram({ title: `${table.bits}-bit ${input.kind === "weight" ? "weights" : "activations"} · ${shortLabel(o.label)}`, histogram, table, xLabel });
    });
    const body = charts.length > 0 ? charts.join("") : `<p class="muted">No quantized ${input.kind === "weight" ? "weight" : "activation"} bit-width in use for this layer.</p>`;
    return `<div class="layer-option small-multiples" data-option="${i}"${i === 0 ? "" : " hidden"}>${body}</div>`;
  });
  return `${select}<div id="${id}">${panels.join("")}</div>`;
}
