/** The DMBQ level optimizer: public API. */
export type { Distribution, PartialMoments } from "./distribution.js";
export { law, nonNegativeLaw, isLawName, LAW_NAMES, type LawName, type LawOptions } from "./laws.js";
export { clipDistribution, type ClipMode } from "./clipped.js";
export { histogramDistribution } from "./histogram.js";
export { levelsFromAlpha, thresholdsOf, MIN_BITS, MAX_BITS } from "./levelSet.js";
export { quantizerMse } from "./cellError.js";
export { solveLevels, solveLevelsAllBits, refinementStarts, type LevelSolution, type SolveOptions } from "./solveLevels.js";
export { VERIFICATION_LAWS, verificationLaw, sampleDraws, sampleHistogram, type VerificationLaw } from "./verificationLaws.js";
export { lloydMax, type LloydMaxResult } from "./lloydMax.js";
export { bestUniformGrid, type UniformGrid } from "./uniformGrid.js";
export { KNOWN_OPTIMA, knownOptimum, knownOptimumStarts, type KnownOptimum } from "./knownOptima.js";
export { cachedLevels, clearLevelCache, levelCacheSolveCount, lawForTable } from "./tableCache.js";
export { plotLevelsSvg } from "./plotSvg.js";
export { erf, erfc, normalCdf, normalPdf } from "./specialFunctions.js";
