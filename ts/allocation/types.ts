// The public vocabulary of the LBA bit-allocation policy. Pure data: no framework, no I/O.

/** GP: one width for every budget channel; LP: one width per layer; CP: one width per channel. */
export type Granularity = "GP" | "LP" | "CP";

/** "first"/"last" layers are fixed at 8 bits and stay outside the averages and budgets. */
export type LayerRole = "first" | "body" | "last";

/** Which quantity a bit-width applies to: a layer's weights (per output channel) or its input activations (per input channel). */
export type BitKind = "weight" | "act";

/** One quantized layer as the worker built it (mirrors proto LayerInfo). */
export interface LayerShape {
  name: string;
  role: LayerRole;
  outChannels: number;
  inChannels: number;
  /** Weights of one output channel: the weight of an output channel in the weight average. */
  paramsPerOutChannel: number;
  /** Feature-map size (H*W) of one input channel: the weight of an input channel in the activation average. */
  actElemsPerInChannel: number;
}

/** A layer held at fixed widths by name; either kind may be left free. */
export interface PinnedBits {
  weightBits?: number;
  actBits?: number;
}

export interface ScheduleConfig {
  totalEpochs: number;
  /** First epoch of the decrement window (default 0). */
  startEpoch?: number;
  /** Window length as a fraction of totalEpochs (default 0.4). */
  rampFraction?: number;
  /** Fraction of eligible units decremented at the window's first epoch (default 0.01). */
  rStart?: number;
  /** ... and at its last-but-one epoch; the last window epoch takes whatever remains (default 0.4). */
  rEnd?: number;
}

export type Criterion = "sensitivity" | "lookahead";
export type Allocator = "decrement" | "giveback";
/**
 * How a unit's channel costs become its rank. The metric is already per element (Δℓ' divides by n, the channel's
 * elements), which is per bit-weight saved, so "metric" ranks by it as it is (the weight-averaged metric for LP/GP
 * units): the paper's ranking. "metricPerWeight" divides once more by the channel's weight (the ranking before
 * this option existed); it takes bits first from channels with big feature maps or many parameters.
 * "metricSqrtWeight" multiplies it by the square root of the channel's weight (beyond the paper): the metric is |Σ|
 * over the channel's n elements divided by n, and terms of random sign cancel in that sum, so it shrinks like 1/√n
 * on its own; ×√weight ranks channels as if their terms did not cancel, undoing that bias against big feature maps.
 */
export type Score = "metric" | "metricPerWeight" | "metricSqrtWeight";

export interface PolicyConfig {
  /** Average weight bits target, e.g. 2, 1, 0.7; 32 = full precision weights. */
  weightBudget: number;
  /** Average activation bits target, e.g. 2; 32 = full precision activations. */
  actBudget: number;
  /** Default "CP". */
  granularity?: Granularity;
  /** Width every free channel starts at (default 4; raised when the budget lies above it). */
  startBits?: number;
  /** Weight limits: default min 0 if weightBudget < 1 else 1; max 8. */
  minBits?: number;
  maxBits?: number;
  /** Activation limits: default 1..8. */
  actMinBits?: number;
  actMaxBits?: number;
  /** Layers pinned by name; pins are explicit and may lie outside min/max. */
  pinned?: Record<string, PinnedBits>;
  schedule: ScheduleConfig;
  /** Default "sensitivity". */
  criterion?: Criterion;
  /** Default "decrement". */
  allocator?: Allocator;
  /** Default "metric". */
  score?: Score;
  /** How activation channels rank; default: `score`. */
  actScore?: Score;
}

/** Per-channel LBA metric of one epoch, per layer (mirrors proto LayerStats). */
export interface EpochSensitivities {
  layers: Array<{
    name: string;
    /** Per output channel. */
    weight: Float32Array | number[];
    /** Per input channel. */
    act?: Float32Array | number[];
    /** Look-ahead: the same metric with the level set one bit lower. */
    weightLower?: Float32Array | number[];
    actLower?: Float32Array | number[];
  }>;
}

/** Widths a policy starts at instead of its start width: per kind, per free body layer (by name), one per channel. */
export type StartBits = Partial<Record<BitKind, Readonly<Record<string, readonly number[]>>>>;

/** Bit-widths of one layer: weightBits per output channel, actBits per input channel. */
export interface LayerBits {
  name: string;
  weightBits: number[];
  actBits: number[];
}

/** Per-channel cost of the last allocated epoch, per layer (only kept by the give-back allocator). */
export interface CostHistory {
  weight: number[][] | null;
  act: number[][] | null;
}

/** JSON-serializable policy state. Never mutated by the policy: allocateBits returns a new one. */
export interface PolicyState {
  version: 1;
  /** The last epoch allocateBits processed; -1 before the first. */
  epoch: number;
  layers: LayerBits[];
  /** A frozen kind has met its budget (or its window ended): only give-back swaps may still change it. */
  weightFrozen: boolean;
  actFrozen: boolean;
  history: CostHistory | null;
}

/** The config with every default filled in, as the policy uses it. */
export interface KindLimits {
  budget: number;
  /** True for a budget of 32: the kind is not quantized anywhere. */
  fullPrecision: boolean;
  minBits: number;
  maxBits: number;
}

export interface ResolvedSchedule {
  totalEpochs: number;
  startEpoch: number;
  rampFraction: number;
  rStart: number;
  rEnd: number;
}

export interface ResolvedPolicyConfig {
  weight: KindLimits;
  act: KindLimits;
  granularity: Granularity;
  startBits: number;
  pinned: Record<string, PinnedBits>;
  schedule: ResolvedSchedule;
  criterion: Criterion;
  allocator: Allocator;
  /** Weights' ranking. */
  score: Score;
  actScore: Score;
}
