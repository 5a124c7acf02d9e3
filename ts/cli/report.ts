// `dmbq report RUN_DIR [--out file.html]`: writes the run's self-contained HTML report and prints its path.

import { writeReport } from "../report/writeReport.js";

const USAGE = "usage: dmbq report RUN_DIR [--out file.html]";

/** argv excludes the word "report". Returns the process exit code: 0 written, 1 bad run folder, 2 bad usage. */
export async function reportCommand(argv: string[]): Promise<number> {
  let runDir: string | undefined;
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      console.log(`${USAGE}\nWrites RUN_DIR/report.html (or --out): curves, per-channel bit-width heat maps, levels over histograms.`);
      return 0;
    } else if (arg === "--out" || arg === "-o") {
      const value = argv[++i];
      if (value === undefined || value === "") {
        console.error(`dmbq report: --out needs a file name\n${USAGE}`);
        return 2;
      }
      out = value;
    } else if (arg.startsWith("--out=")) {
      out = arg.slice("--out=".length);
      if (out === "") {
        console.error(`dmbq report: --out needs a file name\n${USAGE}`);
        return 2;
      }
    } else if (arg.startsWith("-")) {
      console.error(`dmbq report: unknown option ${arg}\n${USAGE}`);
      return 2;
    } else if (runDir === undefined) {
      runDir = arg;
    } else {
      console.error(`dmbq report: one RUN_DIR expected, got a second one: ${arg}\n${USAGE}`);
      return 2;
    }
  }
  if (runDir === undefined) {
    console.error(`dmbq report: RUN_DIR is missing\n${USAGE}`);
    return 2;
  }
  try {
    const path = await writeReport(runDir, out);
    console.log(path);
    return 0;
  } catch (err) {
    console.error(`dmbq report: ${(err as Error).message}`);
    return 1;
  }
}
