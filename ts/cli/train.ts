// `dmbq train CONFIG.json [--set path=value ...]` and `dmbq resume RUN_DIR [--set path=value ...]`.
import { readFileSync } from "node:fs";
import { ConfigError, Experiment, RunFailedError, type ExperimentConfig, type ExperimentRun } from "../experiment/index.js";
import { writeReport } from "../report/index.js";

/** `--set optimizer.lr=0.01` → { optimizer: { lr: 0.01 } } (values parsed as JSON when they are JSON). */
export function parseSets(argv: string[]): { rest: string[]; overrides: Record<string, unknown> } {
  const overrides: Record<string, unknown> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const spec = a === "--set" ? argv[++i] : a.startsWith("--set=") ? a.slice(6) : undefined;
    if (spec === undefined) {
      rest.push(a);
      continue;
    }
    const eq = spec.indexOf("=");
    if (eq <= 0) throw new Error(`--set expects path=value, got ${JSON.stringify(spec)}`);
    const path = spec.slice(0, eq).split(".");
    const raw = spec.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    let node = overrides;
    path.slice(0, -1).forEach((k) => (node = (node[k] ??= {}) as Record<string, unknown>));
    node[path[path.length - 1]!] = value;
  }
  return { rest, overrides };
}

async function follow(run: ExperimentRun): Promise<number> {
  try {
    const r = await run.result;
    const report = await writeReport(run.dir);
    console.log(`top-1 ${r.top1.toFixed(2)}%  W${r.avgWBits.toFixed(2)}/A${r.avgABits.toFixed(2)}  ${r.sizeMb.toFixed(4)} MB (FP ${r.fpSizeMb.toFixed(4)} MB)  ${r.epochs} epochs  ${r.epochTimeS.toFixed(2)} s/epoch on ${r.device}`);
    console.log(`run folder: ${run.dir}\nreport: ${report}`);
    return 0;
  } catch (err) {
    console.error(`dmbq: ${(err as Error).message}`);
    return err instanceof RunFailedError ? 3 : 1;
  }
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { rest, overrides } = parseSets(argv);
  if (rest.length !== 1 || rest[0]!.startsWith("-")) {
    console.error("usage: dmbq train CONFIG.json [--set path=value ...]");
    return 2;
  }
  let config: ExperimentConfig;
  try {
    config = { ...JSON.parse(readFileSync(rest[0]!, "utf8")), ...overrides } as ExperimentConfig;
  } catch (err) {
    console.error(`dmbq train: cannot read ${rest[0]}: ${(err as Error).message}`);
    return 2;
  }
  try {
    return await follow(await Experiment.start(config));
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : `dmbq train: ${(err as Error).message}`);
    return 2;
  }
}

export async function resumeCommand(argv: string[]): Promise<number> {
  const { rest, overrides } = parseSets(argv);
  if (rest.length !== 1 || rest[0]!.startsWith("-")) {
    console.error("usage: dmbq resume RUN_DIR [--set path=value ...]");
    return 2;
  }
  try {
    return await follow(await Experiment.resume(rest[0]!, overrides as Partial<ExperimentConfig>));
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : `dmbq resume: ${(err as Error).message}`);
    return 2;
  }
}
