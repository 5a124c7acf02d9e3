export { DmbqFileError, FORMAT_NAME, FORMAT_VERSION, decodeDmbq, readDmbqFile, tensorBytes } from "./dmbqFile.js";
export type { DmbqFile, DmbqHeader, DmbqLayerHeader, TensorEntry } from "./dmbqFile.js";
export { formatInspect, inspectDmbq } from "./inspectTable.js";
export type { InspectSummary, LayerRow } from "./inspectTable.js";
export { ExportError, exportRun } from "./runExport.js";
export type { ExportOptions, ExportSummaryJson, LayerSizeJson } from "./runExport.js";
