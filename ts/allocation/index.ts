// The LBA bit-allocation policy: pure, framework-free. See policy.ts for the algorithm.
export type {
  Allocator, BitKind, CostHistory, Criterion, EpochSensitivities, Granularity, KindLimits, LayerBits, LayerRole, LayerShape,
  PinnedBits, PolicyConfig, PolicyState, ResolvedPolicyConfig, ResolvedSchedule, ScheduleConfig, Score, StartBits,
} from "./types.js";
export {
  BUDGET_TOLERANCE_BITS, EDGE_LAYER_BITS, FULL_PRECISION_BITS, MAX_QUANT_BITS, SCORES, resolvePolicyConfig, validatePolicyConfig, windowLength,
} from "./config.js";
export { decrementWindow, windowPhase, type WindowPhase } from "./schedule.js";
export { averageBits, deserializeState, freeLayerNames, initialState, serializeState } from "./state.js";
export { allocateBits } from "./policy.js";
export { schemeBits, type LayerSchemeBits } from "./schemeBits.js";
