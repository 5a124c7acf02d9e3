// Validation of the run-folder records (ts/experiment/records.ts) read back from JSON, with messages that name
// the file, the line and the field. A tiny declarative schema keeps the rules next to the types they mirror.

/** A problem in one run file; `message` names the file (and line for .jsonl) and the field. */
export class RunFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly detail: string,
  ) {
    super(`${file}${line !== undefined ? ` line ${line}` : ""}: ${detail}`);
    this.name = "RunFileError";
  }
}

export type Spec =
  | "number" // JSON null is accepted and read as NaN: JSON.stringify writes NaN (a diverged loss) as null
  | "string"
  | "boolean"
  | { enum: readonly string[] }
  | { array: Spec }
  | { record: Spec }
  | { object: Readonly<Record<string, Spec>>; optional?: readonly string[] };

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

/** Checks `value` against `spec` in place (nulls in number slots become NaN); returns problems, [] if fine. */
export function checkSpec(value: unknown, spec: Spec, path: string): { value: unknown; problems: string[] } {
  const problems: string[] = [];
  const at = path || "the record";
  const visit = (v: unknown, s: Spec, p: string): unknown => {
    const where = p || at;
    if (s === "number") {
      if (v === null) return NaN;
      if (typeof v !== "number") problems.push(`field ${where} must be a number, got ${describe(v)}`);
      return v;
    }
    if (s === "string" || s === "boolean") {
      if (typeof v !== s) problems.push(`field ${where} must be a ${s}, got ${describe(v)}`);
      return v;
    }
    if ("enum" in s) {
      if (typeof v !== "string" || !s.enum.includes(v)) problems.push(`field ${where} must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}, got ${describe(v)}`);
      return v;
    }
    if ("array" in s) {
      if (!Array.isArray(v)) {
        problems.push(`field ${where} must be an array, got ${describe(v)}`);
        return v;
      }
      for (let i = 0; i < v.length && problems.length < 5; i++) v[i] = visit(v[i], s.array, `${p}[${i}]`);
      return v;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      problems.push(`${p ? `field ${p}` : at} must be an object, got ${describe(v)}`);
      return v;
    }
    const obj = v as Record<string, unknown>;
    if ("record" in s) {
      for (const key of Object.keys(obj)) obj[key] = visit(obj[key], s.record, `${p}[${JSON.stringify(key)}]`);
      return obj;
    }
    for (const [key, fieldSpec] of Object.entries(s.object)) {
      const fieldPath = p ? `${p}.${key}` : key;
      if (!(key in obj) || obj[key] === undefined) {
        if (!s.optional?.includes(key)) problems.push(`field ${fieldPath} is missing`);
        continue;
      }
      obj[key] = visit(obj[key], fieldSpec, fieldPath);
    }
    return obj;
  };
  const checked = visit(value, spec, path);
  return { value: checked, problems };
}

const numbers: Spec = { array: "number" };

export const EPOCH_RECORD: Spec = {
  object: {
    epoch: "number",
    phase: { enum: ["fp", "quant"] },
    trainLoss: "number",
    trainAccuracy: "number",
    testLoss: "number",
    testAccuracy: "number",
    lr: "number",
    seconds: "number",
    samplesPerS: "number",
    stepMode: "string",
    avgWBits: "number",
    avgABits: "number",
    time: "string",
  },
  optional: ["stepMode"],
};

export const ALLOCATION_RECORD: Spec = {
  object: {
    epoch: "number",
    avgWBits: "number",
    avgABits: "number",
    frozen: "boolean",
    layers: { array: { object: { name: "string", weightBits: numbers, actBits: numbers } } },
  },
};

const LEVEL_TABLE: Spec = {
  object: { bits: "number", alpha: numbers, levels: numbers, thresholds: numbers, mse: "number" },
  optional: ["mse"], // the min-max grid ("uniformMax") has none
};

export const LEVELS_RECORD: Spec = {
  object: { mode: "string", weight: { array: LEVEL_TABLE }, act: { array: LEVEL_TABLE }, perLayer: { record: { array: LEVEL_TABLE } } },
  optional: ["perLayer"],
};

const HISTOGRAM: Spec = { object: { lo: "number", hi: "number", counts: numbers } };

export const HISTOGRAMS_RECORD: Spec = {
  object: { epoch: "number", weight: { record: HISTOGRAM }, act: { record: HISTOGRAM } },
  optional: ["act"],
};

export const RUN_RESULT: Spec = {
  object: {
    name: "string",
    model: "string",
    dataset: "string",
    top1: "number",
    fpTop1: "number",
    avgWBits: "number",
    avgABits: "number",
    sizeMb: "number",
    fpSizeMb: "number",
    epochs: "number",
    epochTimeS: "number",
    device: "string",
    startedAt: "string",
    finishedAt: "string",
    fpRunDir: "string",
  },
  optional: ["fpTop1", "fpRunDir"],
};

/** Validates one parsed record or throws a RunFileError naming file, line and field. */
export function validateRecord<T>(value: unknown, spec: Spec, file: string, line?: number): T {
  const { value: checked, problems } = checkSpec(value, spec, "");
  if (problems.length > 0) throw new RunFileError(file, line, problems.slice(0, 5).join("; "));
  return checked as T;
}
