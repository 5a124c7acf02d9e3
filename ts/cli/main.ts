#!/usr/bin/env node
// The `dmbq` command line.
import { exportCommand } from "./export.js";
import { inspectCommand } from "./inspect.js";
import { levelsCommand } from "./levels.js";
import { reportCommand } from "./report.js";
import { resumeCommand, trainCommand } from "./train.js";
import { workerCommand } from "./worker.js";

const USAGE = `usage: dmbq <command> [options]

  train CONFIG.json [--set k=v]   run an experiment (run folder under runs/<name>)
  resume RUN_DIR [--set k=v]      continue a run from its last checkpoint (overrides merged into its config)
  report RUN_DIR [--out F]        write RUN_DIR/report.html
  levels --dist LAW --bits M      solve DMBQ levels (--unsigned, --json, --plot out.svg, --hist file.json)
  export RUN_DIR --out F          write the quantized model (bit-planes, tables, scales) as one .dmbq file
  inspect FILE.dmbq               per-layer table of an exported model: channels, bits, bytes
  worker --listen ENDPOINT        serve a worker for a remote orchestrator (tcp://0.0.0.0:5555)
`;

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  train: trainCommand,
  resume: resumeCommand,
  report: reportCommand,
  levels: levelsCommand,
  worker: workerCommand,
  export: exportCommand,
  inspect: inspectCommand,
};

const [name, ...rest] = process.argv.slice(2);
if (!name || name === "--help" || name === "-h" || name === "help") {
  process.stdout.write(USAGE);
  process.exit(name ? 0 : 2);
}
const command = commands[name];
if (!command) {
  process.stderr.write(`dmbq: unknown command ${JSON.stringify(name)}\n${USAGE}`);
  process.exit(2);
}
command(rest).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`dmbq ${name}: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
