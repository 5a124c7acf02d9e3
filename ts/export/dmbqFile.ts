// Reads a .dmbq file (a safetensors file: 8-byte little-endian header length, JSON index, raw tensor bytes) in
// TypeScript, with the same checks as the worker's reader: truncation, format and version, and the SHA-256 in
// __metadata__.dmbq_sha256 over our JSON header and every tensor (name order: name, NUL, bytes).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";

export const FORMAT_NAME = "dmbq-model";
export const FORMAT_VERSION = 1;
const MAX_HEADER_BYTES = 64 << 20;
const ITEM_BYTES: Record<string, number> = { U8: 1, F32: 4, I64: 8 };

export class DmbqFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DmbqFileError";
  }
}

export interface TensorEntry {
  name: string;
  dtype: "U8" | "F32" | "I64";
  shape: number[];
  /** Byte range in the data section (after the header). */
  begin: number;
  end: number;
}

/** Our header (written by py_worker/dmbq_worker/export/writer.py); only the fields this side reads are typed. */
export interface DmbqHeader {
  format: string;
  version: number;
  model: { name: string; factory: string; num_classes: number; width: number; input_shape: number[] };
  dataset: { name: string; path: string; test_limit: number };
  run: { name: string; checkpoint: string; epoch: number; top1: number | null; fp_top1?: number };
  layers: DmbqLayerHeader[];
  sizes: { bit_planes: number; tables_and_scales: number; full_precision: number; fp32_model: number };
}

export interface DmbqLayerHeader {
  name: string;
  kind: "conv2d" | "linear";
  role: "first" | "body" | "last";
  weight_shape: number[];
  out_channels: number;
  in_channels: number;
  weights_per_channel: number;
  weight_quantized: boolean;
  act_quantized: boolean;
  act_mode?: "uniform" | "table";
}

export interface DmbqFile {
  path: string;
  header: DmbqHeader;
  tensors: Map<string, TensorEntry>;
  fileBytes: number;
  /** The 8-byte length and the safetensors JSON index (which holds our header). */
  headerBytes: number;
  data: Buffer;
}

export function tensorBytes(file: DmbqFile, name: string): Buffer | undefined {
  const t = file.tensors.get(name);
  return t ? file.data.subarray(t.begin, t.end) : undefined;
}

function parseTensor(name: string, spec: unknown, dataBytes: number, source: string): TensorEntry {
  if (typeof spec !== "object" || spec === null) throw new DmbqFileError(`${source}: tensor ${JSON.stringify(name)}: its entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = spec as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  const item = typeof dtype === "string" ? ITEM_BYTES[dtype] : undefined;
  if (item === undefined) throw new DmbqFileError(`${source}: tensor ${JSON.stringify(name)}: dtype ${JSON.stringify(dtype)} is not one a .dmbq file holds`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new DmbqFileError(`${source}: tensor ${JSON.stringify(name)}: shape ${JSON.stringify(shape)} is not a list of sizes`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o))) {
    throw new DmbqFileError(`${source}: tensor ${JSON.stringify(name)}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  const want = (shape as number[]).reduce((a, b) => a * b, 1) * item;
  if (begin < 0 || end - begin !== want) {
    throw new DmbqFileError(`${source}: tensor ${JSON.stringify(name)}: data_offsets [${begin}, ${end}] do not hold ${want} bytes of [${(shape as number[]).join(", ")}]`);
  }
  if (end > dataBytes) throw new DmbqFileError(`${source}: truncated: tensor ${JSON.stringify(name)} ends at byte ${end} of the data, which has ${dataBytes} bytes`);
  return { name, dtype: dtype as TensorEntry["dtype"], shape: shape as number[], begin, end };
}

/** Parses and verifies a .dmbq file's bytes; throws DmbqFileError naming `source` and what is wrong. */
export function decodeDmbq(bytes: Buffer, source = "<bytes>"): DmbqFile {
  const size = bytes.length;
  if (size < 8) throw new DmbqFileError(`${source}: truncated: ${size} bytes, a .dmbq file starts with an 8-byte header length`);
  const n = bytes.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new DmbqFileError(`${source}: not a .dmbq file (header length ${n} bytes is implausible)`);
  if (size > 8 && bytes[8] !== 0x7b) throw new DmbqFileError(`${source}: not a .dmbq file (no safetensors JSON header after the 8-byte length)`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw new DmbqFileError(`${source}: truncated: the header needs ${8 + headerLen} bytes, the file has ${size}`);
  let index: Record<string, unknown>;
  try {
    index = JSON.parse(bytes.subarray(8, 8 + headerLen).toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new DmbqFileError(`${source}: not a .dmbq file (the safetensors header is not JSON: ${(err as Error).message})`);
  }
  const meta = index["__metadata__"] as Record<string, unknown> | undefined;
  if (typeof meta !== "object" || meta === null || typeof meta["dmbq"] !== "string") {
    throw new DmbqFileError(`${source}: not a .dmbq file (no __metadata__.dmbq in its safetensors header)`);
  }
  const headerJson = meta["dmbq"] as string;
  let header: DmbqHeader;
  try {
    header = JSON.parse(headerJson) as DmbqHeader;
  } catch (err) {
    throw new DmbqFileError(`${source}: __metadata__.dmbq is not JSON (${(err as Error).message}): the header was damaged`);
  }
  if (header.format !== FORMAT_NAME) throw new DmbqFileError(`${source}: header.format is ${JSON.stringify(header.format)}, expected ${JSON.stringify(FORMAT_NAME)}`);
  if (header.version !== FORMAT_VERSION) {
    throw new DmbqFileError(`${source}: header.version ${JSON.stringify(header.version)} is not supported (this reader reads version ${FORMAT_VERSION})`);
  }
  const data = bytes.subarray(8 + headerLen);
  const tensors = new Map<string, TensorEntry>();
  for (const [name, spec] of Object.entries(index)) {
    if (name === "__metadata__") continue;
    tensors.set(name, parseTensor(name, spec, data.length, source));
  }
  const hash = createHash("sha256").update(Buffer.from(headerJson, "utf8"));
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    hash.update(Buffer.from(name + "\0", "utf8"));
    hash.update(data.subarray(t.begin, t.end));
  }
  const actual = hash.digest("hex");
  if (meta["dmbq_sha256"] !== actual) {
    throw new DmbqFileError(
      `${source}: __metadata__.dmbq_sha256 does not match the content: the header or tensors were modified after export ` +
        `(stored ${JSON.stringify(meta["dmbq_sha256"])}, computed ${JSON.stringify(actual)})`,
    );
  }
  return { path: source, header, tensors, fileBytes: size, headerBytes: 8 + headerLen, data };
}

export function readDmbqFile(path: string): DmbqFile {
  if (!existsSync(path)) throw new DmbqFileError(`${path}: no such file`);
  return decodeDmbq(readFileSync(path), path);
}
