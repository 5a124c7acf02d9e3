// Turns the sparse allocation history (a record only when the scheme changed) into one column per epoch, each
// holding the scheme in force at that epoch, ready for the heat map.

import type { AllocationRecord } from "../experiment/records.js";
import type { HeatmapLayer } from "./heatmap.js";

export interface AllocationTimeline {
  columnLabels: number[];
  layers: HeatmapLayer[];
}

/**
 * Columns run from the first record's epoch to `lastEpoch` (the last epoch trained; the last record's epoch if
 * larger). Layers appear in the order first seen; a layer missing from a record is blank in that record's columns.
 */
export function allocationTimeline(records: readonly AllocationRecord[], lastEpoch: number, kind: "weight" | "act"): AllocationTimeline {
  if (records.length === 0) return { columnLabels: [], layers: [] };
  const sorted = [...records].sort((a, b) => a.epoch - b.epoch);
  const first = sorted[0]!.epoch;
  const last = Math.max(lastEpoch, sorted[sorted.length - 1]!.epoch);
  const columnLabels: number[] = [];
  for (let e = first; e <= last; e++) columnLabels.push(e);

  const order: string[] = [];
  for (const rec of sorted) for (const l of rec.layers) if (!order.includes(l.name)) order.push(l.name);

  // For each column, the latest record whose epoch is <= the column's epoch.
  const recordAt: AllocationRecord[] = [];
  let i = 0;
  for (const e of columnLabels) {
    while (i + 1 < sorted.length && sorted[i + 1]!.epoch <= e) i++;
    recordAt.push(sorted[i]!);
  }
  const layers: HeatmapLayer[] = order.map((name) => ({
    name,
    columns: recordAt.map((rec) => {
      const layer = rec.layers.find((l) => l.name === name);
      return layer ? (kind === "weight" ? layer.weightBits : layer.actBits) : undefined;
    }),
  }));
  return { columnLabels, layers };
}
