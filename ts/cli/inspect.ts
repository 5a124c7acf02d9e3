// `dmbq inspect model.dmbq [--json]`: the per-layer table of a .dmbq file (channels, weight bit-width histogram,
// bytes), read and verified in TypeScript (no Python needed).
import { DmbqFileError, readDmbqFile } from "../export/dmbqFile.js";
import { formatInspect, inspectDmbq } from "../export/inspectTable.js";

const USAGE = "usage: dmbq inspect model.dmbq [--json]";

/** argv excludes the word "inspect". Returns the exit code: 0 printed, 1 unreadable file, 2 bad usage. */
export async function inspectCommand(argv: string[]): Promise<number> {
  let file: string | undefined;
  let json = false;
  for (const arg of argv) {
    if (arg === "--help" || arg === "-h") {
      console.log(`${USAGE}\nPrints each quantized layer's channels, weight bit-widths and bytes, and the file's size breakdown.`);
      return 0;
    } else if (arg === "--json") {
      json = true;
    } else if (arg.startsWith("-")) {
      console.error(`dmbq inspect: unknown option ${arg}\n${USAGE}`);
      return 2;
    } else if (file === undefined) {
      file = arg;
    } else {
      console.error(`dmbq inspect: one file expected, got a second one: ${arg}\n${USAGE}`);
      return 2;
    }
  }
  if (file === undefined) {
    console.error(`dmbq inspect: the .dmbq file is missing\n${USAGE}`);
    return 2;
  }
  try {
    const summary = inspectDmbq(readDmbqFile(file));
    console.log(json ? JSON.stringify(summary) : formatInspect(summary));
    return 0;
  } catch (err) {
    if (err instanceof DmbqFileError) {
      console.error(`dmbq inspect: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
