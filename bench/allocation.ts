// Speed and schedule of the LBA policy on ResNet-18 (ImageNet) layer shapes, with synthetic per-channel metrics.
// Run: npx tsx bench/allocation.ts
import { performance } from "node:perf_hooks";
import {
  allocateBits, averageBits, decrementWindow, initialState, resolvePolicyConfig,
  type EpochSensitivities, type LayerShape, type PolicyConfig, type PolicyState,
} from "../ts/allocation/index.js";
import { seededRandom as prng } from "../ts/util/seededRandom.js";

function conv(name: string, role: LayerShape["role"], cin: number, cout: number, k: number, inSide: number): LayerShape {
  return { name, role, outChannels: cout, inChannels: cin, paramsPerOutChannel: cin * k * k, actElemsPerInChannel: inSide * inSide };
}

/** ResNet-18 at 224x224: every conv and the classifier, with the spatial size of each layer's input. */
function resnet18(): LayerShape[] {
  const layers: LayerShape[] = [conv("conv1", "first", 3, 64, 7, 224)];
  const stages: Array<[number, number, number]> = [[64, 64, 56], [64, 128, 56], [128, 256, 28], [256, 512, 14]];
  stages.forEach(([cin, cout, side], s) => {
    const stride = cin === cout ? 1 : 2;
    const outSide = side / stride;
    layers.push(conv(`layer${s + 1}.0.conv1`, "body", cin, cout, 3, side));
    layers.push(conv(`layer${s + 1}.0.conv2`, "body", cout, cout, 3, outSide));
    if (stride === 2) layers.push(conv(`layer${s + 1}.0.downsample`, "body", cin, cout, 1, side));
    layers.push(conv(`layer${s + 1}.1.conv1`, "body", cout, cout, 3, outSide));
    layers.push(conv(`layer${s + 1}.1.conv2`, "body", cout, cout, 3, outSide));
  });
  layers.push({ name: "fc", role: "last", outChannels: 1000, inChannels: 512, paramsPerOutChannel: 512, actElemsPerInChannel: 1 });
  return layers;
}


/** Log-normal metrics, larger per channel for wider kernels; look-ahead values a random factor above. */
function sensitivities(layers: readonly LayerShape[], rand: () => number): EpochSensitivities {
  const vec = (n: number, scale: number): Float32Array => Float32Array.from({ length: n }, () => scale * Math.exp(2 * (rand() - 0.5) * 2));
  return {
    layers: layers.map((l) => {
      const weight = vec(l.outChannels, l.paramsPerOutChannel);
      const act = vec(l.inChannels, l.actElemsPerInChannel);
      return { name: l.name, weight, act, weightLower: weight.map((x) => x * (1.5 + rand())), actLower: act.map((x) => x * (1.5 + rand())) };
    }),
  };
}

interface Row {
  granularity: string;
  criterion: string;
  allocator: string;
  budgets: string;
  msPerEpoch: number;
  windowEnd: string;
  final: string;
}

function run(cfg: PolicyConfig, layers: LayerShape[]): Row {
  const rand = prng(42);
  const sens = Array.from({ length: cfg.schedule.totalEpochs }, () => sensitivities(layers, rand));
  let state: PolicyState = initialState(layers, cfg);
  const { last } = decrementWindow(resolvePolicyConfig(cfg).schedule);
  let windowEnd = "";
  const t0 = performance.now();
  for (let e = 0; e < cfg.schedule.totalEpochs; e++) {
    state = allocateBits(state, layers, cfg, sens[e] as EpochSensitivities, e).state;
    if (e === last) {
      const a = averageBits(state, layers);
      windowEnd = `${a.weight.toFixed(3)}/${a.act.toFixed(3)}`;
    }
  }
  const ms = (performance.now() - t0) / cfg.schedule.totalEpochs;
  const a = averageBits(state, layers);
  return {
    granularity: cfg.granularity ?? "CP",
    criterion: cfg.criterion ?? "sensitivity",
    allocator: cfg.allocator ?? "decrement",
    budgets: `W${cfg.weightBudget}/A${cfg.actBudget}`,
    msPerEpoch: ms,
    windowEnd,
    final: `${a.weight.toFixed(3)}/${a.act.toFixed(3)}`,
  };
}

const layers = resnet18();
const body = layers.filter((l) => l.role === "body");
console.log(`ResNet-18 shapes: ${layers.length} layers, ${body.reduce((s, l) => s + l.outChannels, 0)} body output channels, ${body.reduce((s, l) => s + l.inChannels, 0)} body input channels`);
const rows: Row[] = [];
const totalEpochs = 60;
for (const [weightBudget, actBudget] of [[2, 2], [1, 2], [0.7, 2], [1.5, 32]] as const) {
  for (const granularity of ["CP", "LP", "GP"] as const) {
    if (granularity === "GP" && weightBudget < 1) continue;
    rows.push(run({ weightBudget, actBudget, granularity, schedule: { totalEpochs } }, layers));
  }
}
rows.push(run({ weightBudget: 2, actBudget: 2, criterion: "lookahead", schedule: { totalEpochs } }, layers));
rows.push(run({ weightBudget: 2, actBudget: 2, allocator: "giveback", schedule: { totalEpochs } }, layers));
rows.push(run({ weightBudget: 2, actBudget: 2, granularity: "LP", allocator: "giveback", schedule: { totalEpochs } }, layers));

console.log(`\n${totalEpochs} epochs, window = first 40% (24 epochs), r 0.01 -> 0.4; averages weight/act\n`);
console.log("| granularity | criterion | allocator | budget | ms / epoch | avg at window end | avg at end |");
console.log("|---|---|---|---|---:|---|---|");
for (const r of rows) {
  console.log(`| ${r.granularity} | ${r.criterion} | ${r.allocator} | ${r.budgets} | ${r.msPerEpoch.toFixed(2)} | ${r.windowEnd} | ${r.final} |`);
}

// The schedule itself: average weight bits after each window epoch, CP W2/A2.
const cfg: PolicyConfig = { weightBudget: 2, actBudget: 2, schedule: { totalEpochs } };
const rand = prng(7);
let state = initialState(layers, cfg);
const trace: string[] = [];
for (let e = 0; e < 26; e++) {
  state = allocateBits(state, layers, cfg, sensitivities(layers, rand), e).state;
  trace.push(averageBits(state, layers).weight.toFixed(2));
}
console.log(`\nCP W2/A2 average weight bits after epochs 0..25: ${trace.join(" ")}`);
