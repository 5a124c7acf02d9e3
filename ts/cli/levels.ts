/**
 * `dmbq levels`: solve and print one DMBQ level table.
 *   dmbq levels --dist laplace --bits 4 [--unsigned] [--clip 3 [--clip-mode clamp|truncate]] [--json] [--plot out.svg]
 *   dmbq levels --hist weights.json --bits 4           (weights.json: {"edges": [...], "counts": [...]})
 * Returns the exit code: 0 on success, 2 on a bad argument (with a message naming it on stderr), 1 on a failure.
 */
import { readFileSync, writeFileSync } from "node:fs";
import {
  histogramDistribution,
  isLawName,
  law,
  LAW_NAMES,
  nonNegativeLaw,
  plotLevelsSvg,
  solveLevels,
  type ClipMode,
  type Distribution,
  type LevelSolution,
} from "../levels/index.js";

const USAGE = `usage: dmbq levels (--dist <law> | --hist <file.json>) --bits <1..8> [options]

  --dist <law>          ${LAW_NAMES.join(" | ")} (unit scale)
  --hist <file.json>    empirical histogram: {"edges": [n+1 numbers], "counts": [n numbers >= 0]}
  --bits <M>            number of bits, 1..8 (2^M levels)
  --unsigned            bases {0,1} (activations); a symmetric law is folded to |X|
  --clip <x>            clip the law at ±x (or at x for a non-negative law)
  --clip-mode <mode>    clamp (default: tails become point masses at the clip) | truncate (renormalize)
  --json                print one JSON object
  --plot <out.svg>      draw the density with the levels and thresholds
  --help                this text
`;

class UsageError extends Error {}

interface LevelsArgs {
  dist?: string;
  hist?: string;
  bits?: number;
  unsigned: boolean;
  clip?: number;
  clipMode: ClipMode;
  json: boolean;
  plot?: string;
  help: boolean;
}

function parseArgs(argv: string[]): LevelsArgs {
  const args: LevelsArgs = { unsigned: false, clipMode: "clamp", json: false, help: false };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith("--")) throw new UsageError(`${flag}: missing value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    switch (flag) {
      case "--dist":
        args.dist = value(i++, flag);
        break;
      case "--hist":
        args.hist = value(i++, flag);
        break;
      case "--bits": {
        const raw = value(i++, flag);
        const bits = Number(raw);
        if (!/^\d+$/.test(raw) || bits < 1 || bits > 8) throw new UsageError(`--bits: must be an integer in 1..8, got "${raw}"`);
        args.bits = bits;
        break;
      }
      case "--unsigned":
        args.unsigned = true;
        break;
      case "--clip": {
        const raw = value(i++, flag);
        const clip = Number(raw);
        if (!Number.isFinite(clip) || clip <= 0) throw new UsageError(`--clip: must be a number > 0, got "${raw}"`);
        args.clip = clip;
        break;
      }
      case "--clip-mode": {
        const raw = value(i++, flag);
        if (raw !== "clamp" && raw !== "truncate") throw new UsageError(`--clip-mode: expected clamp or truncate, got "${raw}"`);
        args.clipMode = raw;
        break;
      }
      case "--json":
        args.json = true;
        break;
      case "--plot":
        args.plot = value(i++, flag);
        break;
      case "--help":
      case "-h":
        args.help = true;
        break;
      default:
        throw new UsageError(`unknown argument "${flag}"`);
    }
  }
  return args;
}

function readHistogram(path: string): Distribution {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`--hist: cannot read JSON from "${path}": ${(e as Error).message}`);
  }
  const obj = parsed as { edges?: unknown; counts?: unknown };
  if (typeof obj !== "object" || obj === null || !Array.isArray(obj.edges) || !Array.isArray(obj.counts)) {
    throw new UsageError(`--hist: "${path}" must hold {"edges": [...], "counts": [...]}`);
  }
  try {
    return histogramDistribution(obj.edges as number[], obj.counts as number[]);
  } catch (e) {
    throw new UsageError(`--hist: ${(e as Error).message}`);
  }
}

function distributionFor(args: LevelsArgs): Distribution {
  if (args.dist !== undefined && args.hist !== undefined) throw new UsageError("--dist and --hist: give only one");
  if (args.hist !== undefined) {
    if (args.clip !== undefined) throw new UsageError("--clip: not supported with --hist (clip the histogram itself)");
    return readHistogram(args.hist);
  }
  if (args.dist === undefined) throw new UsageError("--dist: missing (or give --hist)");
  if (!isLawName(args.dist)) throw new UsageError(`--dist: unknown law "${args.dist}" (expected one of ${LAW_NAMES.join(", ")})`);
  const opts = args.clip === undefined ? {} : { clip: args.clip, clipMode: args.clipMode };
  return args.unsigned ? nonNegativeLaw(args.dist, opts) : law(args.dist, opts);
}

function toJson(dist: Distribution, s: LevelSolution): object {
  return {
    dist: dist.name,
    bits: s.bits,
    signed: s.signed,
    alpha: s.alpha,
    levels: s.levels,
    thresholds: s.thresholds,
    clip: s.clip,
    mse: s.mse,
    lloyd_max_mse: s.lloydMaxMse,
    uniform_mse: s.uniformMse,
    gap_to_lloyd_max: s.gapToLloydMax,
    gradient_norm: s.gradientNorm,
    iterations: s.iterations,
    solve_ms: s.solveMs,
    mean_abs: dist.meanAbs(),
  };
}

function toText(dist: Distribution, s: LevelSolution): string {
  const list = (v: number[]): string => v.map((x) => x.toPrecision(6)).join(", ");
  return [
    `law          ${dist.name} (${s.signed ? "signed, bases ±1" : "unsigned, bases {0,1}"}), M = ${s.bits}`,
    `alpha        [${list(s.alpha)}]`,
    `levels       [${list(s.levels)}]`,
    `thresholds   [${list(s.thresholds)}]`,
    `clip         ${s.clip.toPrecision(6)}`,
    `mse          ${s.mse.toPrecision(6)}`,
    `lloyd-max    ${s.lloydMaxMse.toPrecision(6)}   (gap ${(100 * s.gapToLloydMax).toFixed(2)}%)`,
    `uniform      ${s.uniformMse.toPrecision(6)}`,
    `|gradient|   ${s.gradientNorm.toExponential(2)}`,
    `iterations   ${s.iterations}`,
    `solve        ${s.solveMs.toFixed(2)} ms`,
    "",
  ].join("\n");
}

export async function levelsCommand(argv: string[]): Promise<number> {
  let args: LevelsArgs;
  let dist: Distribution;
  try {
    args = parseArgs(argv);
    if (args.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (args.bits === undefined) throw new UsageError("--bits: missing (an integer in 1..8)");
    dist = distributionFor(args);
    if (args.unsigned && dist.support[0] < 0) {
      throw new UsageError(`--unsigned: the histogram has negative values (edges[0] = ${dist.support[0]}); unsigned levels need data >= 0`);
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof RangeError || e instanceof TypeError) {
      process.stderr.write(`dmbq levels: ${e.message}\n${e instanceof UsageError ? "run `dmbq levels --help` for usage\n" : ""}`);
      return 2;
    }
    throw e;
  }
  try {
    const solution = solveLevels(dist, args.bits, { signed: !args.unsigned });
    process.stdout.write(args.json ? `${JSON.stringify(toJson(dist, solution))}\n` : toText(dist, solution));
    if (args.plot !== undefined) writeFileSync(args.plot, plotLevelsSvg(dist, solution));
    return 0;
  } catch (e) {
    process.stderr.write(`dmbq levels: ${(e as Error).message}\n`);
    return 1;
  }
}
