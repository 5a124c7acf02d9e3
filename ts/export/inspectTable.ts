// The per-layer table of `dmbq inspect`: channels, the histogram of weight bit-widths (read from the file's
// q/<layer>/weight_bits tensor, not from the header's summary), and the bytes each layer takes by kind.
import { type DmbqFile, tensorBytes } from "./dmbqFile.js";

export interface LayerRow {
  name: string;
  kind: string;
  role: string;
  channels: number;
  weightsPerChannel: number;
  /** Output channels per weight bit-width (0 pruned, 1..8, 32 full precision). */
  bitsHistogram: Record<number, number>;
  /** Activation bit-widths per input channel; empty when the input stays in full precision. */
  actBitsHistogram: Record<number, number>;
  planeBytes: number;
  tableAndScaleBytes: number;
  fullPrecisionBytes: number;
  bytes: number;
}

export interface InspectSummary {
  path: string;
  model: string;
  dataset: string;
  top1: number | null;
  layers: LayerRow[];
  fileBytes: number;
  headerBytes: number;
  bitPlaneBytes: number;
  tablesAndScalesBytes: number;
  fullPrecisionBytes: number;
  fp32Bytes: number;
}

function histogram(bytes: Buffer | undefined): Record<number, number> {
  const h: Record<number, number> = {};
  for (const b of bytes ?? []) h[b] = (h[b] ?? 0) + 1;
  return h;
}

function kindOf(tensorName: string): "planes" | "tables" | "fp" {
  if (tensorName.endsWith("/planes")) return "planes";
  if (tensorName.startsWith("fp/") || tensorName.endsWith("/weight_fp")) return "fp";
  return "tables";
}

export function inspectDmbq(file: DmbqFile): InspectSummary {
  const totals = { planes: 0, tables: 0, fp: 0 };
  const perLayer = new Map<string, { planes: number; tables: number; fp: number }>();
  for (const t of file.tensors.values()) {
    const bytes = t.end - t.begin;
    const kind = kindOf(t.name);
    totals[kind] += bytes;
    if (t.name.startsWith("q/")) {
      const layer = t.name.slice(2, t.name.indexOf("/", 2));
      const acc = perLayer.get(layer) ?? { planes: 0, tables: 0, fp: 0 };
      acc[kind] += bytes;
      perLayer.set(layer, acc);
    }
  }
  const layers: LayerRow[] = file.header.layers.map((l) => {
    const acc = perLayer.get(l.name) ?? { planes: 0, tables: 0, fp: 0 };
    const wbits = tensorBytes(file, `q/${l.name}/weight_bits`);
    return {
      name: l.name, kind: l.kind, role: l.role, channels: l.out_channels, weightsPerChannel: l.weights_per_channel,
      bitsHistogram: wbits ? histogram(wbits) : { 32: l.out_channels },
      actBitsHistogram: histogram(tensorBytes(file, `q/${l.name}/act_bits`)),
      planeBytes: acc.planes, tableAndScaleBytes: acc.tables, fullPrecisionBytes: acc.fp, bytes: acc.planes + acc.tables + acc.fp,
    };
  });
  return {
    path: file.path, model: file.header.model.factory || file.header.model.name, dataset: file.header.dataset.name,
    top1: file.header.run.top1, layers, fileBytes: file.fileBytes, headerBytes: file.headerBytes,
    bitPlaneBytes: totals.planes, tablesAndScalesBytes: totals.tables, fullPrecisionBytes: totals.fp,
    fp32Bytes: file.header.sizes.fp32_model,
  };
}

function formatHistogram(h: Record<number, number>): string {
  const keys = Object.keys(h).map(Number).sort((a, b) => a - b);
  return keys.length ? keys.map((k) => `${k === 32 ? "fp" : `${k}b`}:${h[k]}`).join(" ") : "-";
}

function pad(cells: string[][], rightAlign: boolean[]): string {
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  return cells.map((r) => r.map((v, c) => (rightAlign[c] ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join("  ").trimEnd()).join("\n");
}

const kb = (n: number): string => (n / 1024).toFixed(1);

/** The text `dmbq inspect` prints. */
export function formatInspect(s: InspectSummary): string {
  const head = ["layer", "kind", "role", "channels", "weight bits", "act bits", "planes B", "tables+scales B", "fp B", "bytes"];
  const rows = s.layers.map((l) => [
    l.name, l.kind, l.role, String(l.channels), formatHistogram(l.bitsHistogram), formatHistogram(l.actBitsHistogram),
    String(l.planeBytes), String(l.tableAndScaleBytes), String(l.fullPrecisionBytes), String(l.bytes),
  ]);
  const table = pad([head, ...rows], [false, false, false, true, false, false, true, true, true, true]);
  const ratio = s.fp32Bytes > 0 ? (s.fp32Bytes / s.fileBytes).toFixed(1) : "?";
  return [
    `${s.path}: ${s.model} (${s.dataset})${s.top1 !== null ? `, top-1 at export ${s.top1.toFixed(2)}%` : ""}`,
    table,
    "",
    `file ${s.fileBytes} B (${kb(s.fileBytes)} KiB) = bit-planes ${s.bitPlaneBytes} + tables and scales ${s.tablesAndScalesBytes}` +
      ` + full-precision tensors ${s.fullPrecisionBytes} + header ${s.headerBytes}`,
    `FP32 model ${s.fp32Bytes} B (${kb(s.fp32Bytes)} KiB): ${ratio}x smaller`,
  ].join("\n");
}
