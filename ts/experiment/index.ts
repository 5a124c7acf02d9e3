export { Experiment, ExperimentRun, RunFailedError, type RunEvent } from "./experiment.js";
export { validateConfig, assertValidConfig, ConfigError, ZOO_MODELS, LEVELS_MODES, weightScaleOf, type ExperimentConfig, type QuantConfig, type LevelsMode } from "./config.js";
export type { EpochRecord, AllocationRecord, RunResult, LevelsRecord, HistogramsRecord } from "./records.js";
