// Validation of a PolicyConfig and the defaults the policy fills in.
import type { PolicyConfig, ResolvedPolicyConfig, Score } from "./types.js";

/** Width that means "not quantized". */
export const FULL_PRECISION_BITS = 32;
/** Width of the first and last layers (outside the budgets). */
export const EDGE_LAYER_BITS = 8;
/** A budget counts as met when the average lies within this many bits of it. */
export const BUDGET_TOLERANCE_BITS = 0.05;
export const MAX_QUANT_BITS = 8;
/** Every LBA ranking (Score), for validation messages and option parsers. */
export const SCORES: readonly Score[] = ["metric", "metricPerWeight", "metricSqrtWeight"];
/** `"metric", "metricPerWeight" or "metricSqrtWeight"`, for the validation messages of score and actScore. */
const SCORE_ALTERNATIVES = `${SCORES.slice(0, -1).map((n) => JSON.stringify(n)).join(", ")} or ${JSON.stringify(SCORES[SCORES.length - 1])}`;

const DEFAULTS = {
  granularity: "CP",
  startBits: 4,
  actMinBits: 1,
  maxBits: MAX_QUANT_BITS,
  startEpoch: 0,
  rampFraction: 0.4,
  rStart: 0.01,
  rEnd: 0.4,
  criterion: "sensitivity",
  allocator: "decrement",
  score: "metric",
} as const;

const CONFIG_FIELDS = new Set([
  "weightBudget", "actBudget", "granularity", "startBits", "minBits", "maxBits", "actMinBits", "actMaxBits",
  "pinned", "schedule", "criterion", "allocator", "score", "actScore",
]);
const SCHEDULE_FIELDS = new Set(["totalEpochs", "startEpoch", "rampFraction", "rStart", "rEnd"]);
const PIN_FIELDS = new Set(["weightBits", "actBits"]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isIntIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
}

function describe(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** Number of epochs in the decrement window: ceil(rampFraction * totalEpochs), at least 1. */
export function windowLength(totalEpochs: number, rampFraction: number): number {
  // The epsilon keeps 0.7 * 10 = 7.000000000000001 at 7.
  return Math.max(1, Math.ceil(rampFraction * totalEpochs - 1e-9));
}

/**
 * Human messages naming each bad field of a policy config; [] when it is usable.
 * Layer-dependent checks (pinned names exist, the budget is reachable with the pins) happen in initialState.
 */
export function validatePolicyConfig(config: unknown): string[] {
  const errors: string[] = [];
  if (!isRecord(config)) return ["config: expected an object"];
  for (const key of Object.keys(config)) {
    if (!CONFIG_FIELDS.has(key)) errors.push(`${key}: unknown field`);
  }

  const wb = config["weightBudget"];
  const weightBudgetOk = typeof wb === "number" && Number.isFinite(wb) && ((wb > 0 && wb <= MAX_QUANT_BITS) || wb === FULL_PRECISION_BITS);
  if (!weightBudgetOk) errors.push(`weightBudget: expected a number in (0, 8] or 32, got ${describe(wb)}`);
  const ab = config["actBudget"];
  const actBudgetOk = typeof ab === "number" && Number.isFinite(ab) && ((ab >= 1 && ab <= MAX_QUANT_BITS) || ab === FULL_PRECISION_BITS);
  if (!actBudgetOk) errors.push(`actBudget: expected a number in [1, 8] or 32, got ${describe(ab)}`);

  const g = config["granularity"];
  if (g !== undefined && g !== "GP" && g !== "LP" && g !== "CP") errors.push(`granularity: expected "GP", "LP" or "CP", got ${describe(g)}`);
  if (g === "GP" && weightBudgetOk && (wb as number) < 1) {
    errors.push(`granularity: GP gives every channel one integer width, so weightBudget ${wb} < 1 would prune the whole network; use LP or CP`);
  }

  const sb = config["startBits"];
  if (sb !== undefined && !isIntIn(sb, 1, MAX_QUANT_BITS)) errors.push(`startBits: expected an integer in 1..8, got ${describe(sb)}`);

  const checkLimits = (minKey: string, maxKey: string, lowest: number, budget: unknown, budgetKey: string, budgetOk: boolean): void => {
    const lo = config[minKey];
    const hi = config[maxKey];
    const loOk = lo === undefined || isIntIn(lo, lowest, MAX_QUANT_BITS);
    const hiOk = hi === undefined || isIntIn(hi, Math.max(1, lowest), MAX_QUANT_BITS);
    if (!loOk) errors.push(`${minKey}: expected an integer in ${lowest}..8, got ${describe(lo)}`);
    if (!hiOk) errors.push(`${maxKey}: expected an integer in ${Math.max(1, lowest)}..8, got ${describe(hi)}`);
    if (loOk && hiOk && typeof lo === "number" && typeof hi === "number" && lo > hi) {
      errors.push(`${minKey}: ${lo} is above ${maxKey} ${hi}`);
    }
    if (budgetOk && budget !== FULL_PRECISION_BITS) {
      const b = budget as number;
      if (loOk && typeof lo === "number" && b < lo - 1e-12) errors.push(`${budgetKey}: ${b} is below ${minKey} ${lo}`);
      if (hiOk && typeof hi === "number" && b > hi + 1e-12) errors.push(`${budgetKey}: ${b} is above ${maxKey} ${hi}`);
    }
  };
  checkLimits("minBits", "maxBits", 0, wb, "weightBudget", weightBudgetOk);
  checkLimits("actMinBits", "actMaxBits", 1, ab, "actBudget", actBudgetOk);

  const pinned = config["pinned"];
  if (pinned !== undefined) {
    if (!isRecord(pinned)) {
      errors.push("pinned: expected an object mapping layer names to { weightBits?, actBits? }");
    } else {
      for (const [name, pin] of Object.entries(pinned)) {
        if (!isRecord(pin)) {
          errors.push(`pinned.${name}: expected { weightBits?, actBits? }`);
          continue;
        }
        for (const key of Object.keys(pin)) if (!PIN_FIELDS.has(key)) errors.push(`pinned.${name}.${key}: unknown field`);
        const w = pin["weightBits"];
        const a = pin["actBits"];
        if (w === undefined && a === undefined) errors.push(`pinned.${name}: give weightBits and/or actBits`);
        if (w !== undefined && !(isIntIn(w, 0, MAX_QUANT_BITS) || w === FULL_PRECISION_BITS)) {
          errors.push(`pinned.${name}.weightBits: expected an integer in 0..8 or 32, got ${describe(w)}`);
        }
        if (a !== undefined && !(isIntIn(a, 1, MAX_QUANT_BITS) || a === FULL_PRECISION_BITS)) {
          errors.push(`pinned.${name}.actBits: expected an integer in 1..8 or 32, got ${describe(a)}`);
        }
      }
    }
  }

  const s = config["schedule"];
  if (!isRecord(s)) {
    errors.push("schedule: expected an object with totalEpochs");
  } else {
    for (const key of Object.keys(s)) if (!SCHEDULE_FIELDS.has(key)) errors.push(`schedule.${key}: unknown field`);
    const total = s["totalEpochs"];
    const totalOk = isIntIn(total, 1, Number.MAX_SAFE_INTEGER);
    if (!totalOk) errors.push(`schedule.totalEpochs: expected an integer >= 1, got ${describe(total)}`);
    const start = s["startEpoch"];
    const startOk = start === undefined || isIntIn(start, 0, Number.MAX_SAFE_INTEGER);
    if (!startOk) errors.push(`schedule.startEpoch: expected an integer >= 0, got ${describe(start)}`);
    const fractionOk = (key: string): boolean => {
      const v = s[key];
      const ok = v === undefined || (typeof v === "number" && Number.isFinite(v) && v > 0 && v <= 1);
      if (!ok) errors.push(`schedule.${key}: expected a number in (0, 1], got ${describe(v)}`);
      return ok;
    };
    const rampOk = fractionOk("rampFraction");
    fractionOk("rStart");
    fractionOk("rEnd");
    if (totalOk && startOk && rampOk) {
      const first = (start as number | undefined) ?? DEFAULTS.startEpoch;
      const len = windowLength(total as number, (s["rampFraction"] as number | undefined) ?? DEFAULTS.rampFraction);
      if (first + len > (total as number)) {
        errors.push(`schedule.startEpoch: the window ${first}..${first + len - 1} (ceil(rampFraction * totalEpochs) = ${len} epochs) runs past totalEpochs ${total}`);
      }
    }
  }

  const c = config["criterion"];
  if (c !== undefined && c !== "sensitivity" && c !== "lookahead") errors.push(`criterion: expected "sensitivity" or "lookahead", got ${describe(c)}`);
  const a = config["allocator"];
  if (a !== undefined && a !== "decrement" && a !== "giveback") errors.push(`allocator: expected "decrement" or "giveback", got ${describe(a)}`);
  for (const field of ["score", "actScore"] as const) {
    const sc = config[field];
    if (sc !== undefined && !(SCORES as readonly unknown[]).includes(sc)) errors.push(`${field}: expected ${SCORE_ALTERNATIVES}, got ${describe(sc)}`);
  }
  return errors;
}

/** Validates and fills every default; throws an Error listing each bad field. */
export function resolvePolicyConfig(config: PolicyConfig): ResolvedPolicyConfig {
  const errors = validatePolicyConfig(config);
  if (errors.length > 0) throw new Error(`invalid policy config: ${errors.join("; ")}`);
  const s = config.schedule;
  return {
    weight: {
      budget: config.weightBudget,
      fullPrecision: config.weightBudget === FULL_PRECISION_BITS,
      minBits: config.minBits ?? (config.weightBudget < 1 ? 0 : 1),
      maxBits: config.maxBits ?? DEFAULTS.maxBits,
    },
    act: {
      budget: config.actBudget,
      fullPrecision: config.actBudget === FULL_PRECISION_BITS,
      minBits: config.actMinBits ?? DEFAULTS.actMinBits,
      maxBits: config.actMaxBits ?? DEFAULTS.maxBits,
    },
    granularity: config.granularity ?? DEFAULTS.granularity,
    startBits: config.startBits ?? DEFAULTS.startBits,
    pinned: config.pinned ?? {},
    schedule: {
      totalEpochs: s.totalEpochs,
      startEpoch: s.startEpoch ?? DEFAULTS.startEpoch,
      rampFraction: s.rampFraction ?? DEFAULTS.rampFraction,
      rStart: s.rStart ?? DEFAULTS.rStart,
      rEnd: s.rEnd ?? DEFAULTS.rEnd,
    },
    criterion: config.criterion ?? DEFAULTS.criterion,
    allocator: config.allocator ?? DEFAULTS.allocator,
    score: config.score ?? DEFAULTS.score,
    actScore: config.actScore ?? config.score ?? DEFAULTS.score,
  };
}
