// Public API of the run report.

export { allocationTimeline, type AllocationTimeline } from "./allocationTimeline.js";
export { bitColor, bitLabel, FULL_PRECISION_COLOR, PRUNED_COLOR } from "./bitColors.js";
export { buildReport, type BuildReportOptions } from "./buildReport.js";
export { comparisonBars, type ComparisonMetric } from "./comparisonBars.js";
export { bitHeatmap, runLengthRects, type BitHeatmapOptions, type HeatmapLayer, type HeatRect } from "./heatmap.js";
export { levelsOverHistogram, mergeHistograms, type LevelsOverHistogramOptions } from "./levelsOverHistogram.js";
export { levelsSection, type LevelsSectionInput } from "./levelsSection.js";
export { lineChart, type LineChartOptions, type LineSeries, type XBand } from "./lineChart.js";
export { fpRunReference, loadRun, resolveFpRunDir, type LoadedFpRun, type LoadedRun } from "./loadRun.js";
export { RunFileError } from "./recordSchema.js";
export { summarizeRun, type RunSummary } from "./runSummary.js";
export { writeReport } from "./writeReport.js";
