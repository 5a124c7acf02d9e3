// LBA: loss-guided bit-width allocation (Zhao, Yue, Hu, CVPR 2021), as a pure function of the last epoch's metric.
//
// What it allocates. Weights get one width per output channel, activations one per input channel, each kind on
// its own with its own budget. The budget is the average width over the "body" layers, weights weighted by
// parameter count (paramsPerOutChannel per output channel), activations by feature-map size
// (actElemsPerInChannel per input channel). First/last layers sit at 8 bits outside the averages. Pinned layers
// keep their pinned width and count in the averages. A budget of 32 means that kind is not quantized: 32
// everywhere. Pins apply in every case, also to first/last layers and to full-precision kinds.
//
// Units. CP: every channel of a free (body, unpinned) layer is a unit. LP: every free layer is one unit (all
// its channels share one width). GP: all free channels form one unit, so they always share one integer width;
// GP therefore meets a fractional budget from below (1.5 gives 1 bit) and rejects budgets below 1, which would
// prune everything. Every decision below is made over units.
//
// Ranking. The cost of a channel is, with criterion "sensitivity" (the paper), its Δℓ' = |(x − x̂)ᵀ g(x̂)| / n of
// the epoch; with "lookahead", max(0, Δℓ'(one bit lower) − Δℓ'), the predicted cost of the decrement itself. Both
// are per element (n is the channel's element count), so a cost is already loss per bit-weight saved (the greedy
// ratio of a knapsack): channels of different sizes compare as they are, and an LP/GP unit ranks by its channels'
// weight-averaged cost (score "metric", the default). Score "metricPerWeight" divides by the weight once more,
// which counts a channel's size twice; it was this policy's ranking before the option existed and is kept to
// reproduce those runs. Ties are broken by layer order, then channel index, so equal inputs always give equal
// outputs.
//
// Schedule. Every free channel starts at startBits (4; raised when the budget lies above it). The decrement
// window is epochs startEpoch .. startEpoch + ceil(rampFraction · totalEpochs) − 1. At the k-th window epoch but
// the last, one bit is taken from each of the ceil(r_k · N) cheapest eligible units (N = units above their
// minimum), r_k ramping linearly from rStart to rEnd. A take that would drop the average more than 0.05 bits
// below the budget is skipped in favour of the next unit in rank that fits, and taking stops as soon as the
// average is at or below the budget: it never overshoots where a finer unit can land it. The window's last
// epoch (or any later one while the budget is unmet) takes whatever remains: repeated passes over all eligible
// units, where a unit that already lost k bits this epoch ranks by score · 2^k (quantization error roughly
// doubles per bit lost); if units are so coarse (LP, GP) that none fits, the lightest one is taken once more so
// the average ends at or below budget + 0.05. A kind freezes once its budget is met (average ≤ budget, or within
// 0.05 with no unit that fits) or its window ends.
//
// Give-back (allocator "giveback", beyond the paper). Once a kind is frozen, each later epoch may swap: units
// whose cost rose since the previous epoch, most first, each get one bit back (below their max), paid for by
// taking bits from the cheapest units whose score is below the receiver's, until the average is back at or below
// max(budget, what it was). A swap that cannot be paid for is undone. At most max(1, ceil(rStart · N)) swaps an
// epoch; a unit takes part in one swap an epoch. GP has a single unit and never swaps.
//
// Limits. Weights stay within [minBits, maxBits] (default min 0 if weightBudget < 1, else 1; max 8),
// activations within [actMinBits, actMaxBits] (default 1..8); pins are explicit and may lie outside them.
import { BUDGET_TOLERANCE_BITS, resolvePolicyConfig } from "./config.js";
import { BIT_KINDS, limitsOf, weightedBits } from "./kinds.js";
import { windowPhase } from "./schedule.js";
import { checkLayerShapes, checkStateMatches, cloneState } from "./state.js";
import { addUnitBits, buildUnits, channelCosts, unitBits, unitScore, type Unit } from "./units.js";
import type { BitKind, EpochSensitivities, KindLimits, LayerBits, LayerShape, PolicyConfig, PolicyState } from "./types.js";

/** Distance to the budget in bit·weight units: excess = Σ bits·weight − budget·Σ weight. */
interface BudgetLedger {
  excess: number;
  /** BUDGET_TOLERANCE_BITS · Σ weight. */
  tolerance: number;
}

function ledgerOf(bits: readonly LayerBits[], layers: readonly LayerShape[], kind: BitKind, limits: KindLimits): BudgetLedger {
  const { sum, total } = weightedBits(bits, layers, kind);
  return { excess: sum - limits.budget * total, tolerance: BUDGET_TOLERANCE_BITS * total };
}

/** Units sorted by ascending score, ties by layer order then channel index. */
function ranked(units: readonly Unit[], score: (u: Unit) => number): Unit[] {
  const keyed = units.map((u) => ({ u, s: score(u) }));
  keyed.sort((a, b) => a.s - b.s || a.u.order - b.u.order);
  return keyed.map((k) => k.u);
}

/** Mutable view of one kind's widths during one epoch. */
class KindAllocation {
  constructor(
    private readonly bits: LayerBits[],
    private readonly kind: BitKind,
    private readonly limits: KindLimits,
    readonly ledger: BudgetLedger,
  ) {}

  width(u: Unit): number {
    return unitBits(this.bits, u, this.kind);
  }

  canLose(u: Unit): boolean {
    return this.width(u) > this.limits.minBits;
  }

  canGain(u: Unit): boolean {
    return this.width(u) < this.limits.maxBits;
  }

  /** Taking a bit from `u` keeps the average no more than the tolerance below the budget. */
  fits(u: Unit): boolean {
    return this.ledger.excess - u.weight >= -this.ledger.tolerance;
  }

  change(u: Unit, delta: number): void {
    addUnitBits(this.bits, u, this.kind, delta);
    this.ledger.excess += delta * u.weight;
  }

  /** Met: at or below the budget, or within the tolerance with nothing left that fits. */
  met(units: readonly Unit[]): boolean {
    if (this.ledger.excess <= 0) return true;
    return this.ledger.excess <= this.ledger.tolerance && !units.some((u) => this.canLose(u) && this.fits(u));
  }
}

/** One ramp epoch: a bit from each of the ceil(fraction · N) cheapest eligible units that fit. */
function rampDecrement(a: KindAllocation, units: readonly Unit[], scores: readonly number[], fraction: number): boolean {
  const eligible = units.filter((u) => a.canLose(u));
  const quota = Math.ceil(fraction * eligible.length);
  let taken = 0;
  for (const u of ranked(eligible, (v) => scores[v.order] as number)) {
    if (taken >= quota || a.ledger.excess <= 0) break;
    if (!a.fits(u)) continue;
    a.change(u, -1);
    taken += 1;
  }
  return taken > 0;
}

/** The window's last epoch: take whatever remains so the average ends at or below budget + tolerance. */
function finalDecrement(a: KindAllocation, units: readonly Unit[], scores: readonly number[]): boolean {
  const lostThisEpoch = new Array<number>(units.length).fill(0);
  const adjusted = (u: Unit): number => (scores[u.order] as number) * 2 ** (lostThisEpoch[u.order] as number);
  let changed = false;
  while (a.ledger.excess > 0) {
    let tookAny = false;
    for (const u of ranked(units.filter((v) => a.canLose(v)), adjusted)) {
      if (a.ledger.excess <= 0) break;
      if (!a.fits(u)) continue;
      a.change(u, -1);
      lostThisEpoch[u.order] = (lostThisEpoch[u.order] as number) + 1;
      tookAny = true;
    }
    if (!tookAny) break;
    changed = true;
  }
  if (a.ledger.excess > a.ledger.tolerance) {
    // No unit fits: every one would land below budget − tolerance. The lightest lands closest.
    let lightest: Unit | undefined;
    for (const u of ranked(units.filter((v) => a.canLose(v)), adjusted)) {
      if (lightest === undefined || u.weight < lightest.weight) lightest = u;
    }
    if (lightest !== undefined) {
      a.change(lightest, -1);
      changed = true;
    }
  }
  return changed;
}

/** Swaps bits from cheap units to units whose cost rose, keeping the budget; see the header. */
function giveBack(
  a: KindAllocation,
  units: readonly Unit[],
  scores: readonly number[],
  previous: readonly number[],
  maxSwaps: number,
): boolean {
  const rise = (u: Unit): number => (scores[u.order] as number) - (previous[u.order] as number);
  const receivers = ranked(units.filter((u) => rise(u) > 0 && a.canGain(u)), (u) => -rise(u));
  const byCost = ranked(units, (u) => scores[u.order] as number);
  const target = Math.max(a.ledger.excess, 0);
  const touched = new Uint8Array(units.length);
  let swaps = 0;
  for (const g of receivers) {
    if (swaps >= maxSwaps) break;
    if (touched[g.order] === 1) continue;
    const excessBefore = a.ledger.excess;
    a.change(g, +1);
    const donors: Unit[] = [];
    for (const t of byCost) {
      if (a.ledger.excess <= target) break;
      if ((scores[t.order] as number) >= (scores[g.order] as number)) break;
      if (t === g || touched[t.order] === 1 || !a.canLose(t) || !a.fits(t)) continue;
      a.change(t, -1);
      donors.push(t);
    }
    if (a.ledger.excess > target) {
      a.change(g, -1);
      for (const t of donors) a.change(t, +1);
      a.ledger.excess = excessBefore; // exact restore, no float drift
      continue;
    }
    touched[g.order] = 1;
    for (const t of donors) touched[t.order] = 1;
    swaps += 1;
  }
  return swaps > 0;
}

/**
 * Allocates after epoch `epoch` (0-based, just finished) from its per-channel metric. Pure: returns a new state.
 * `changed` says whether any width changed. `sens` needs entries only for the free layers of kinds still being
 * decremented (and, with the give-back allocator, of every quantized kind from the window's start on).
 */
export function allocateBits(
  state: PolicyState,
  layers: LayerShape[],
  config: PolicyConfig,
  sens: EpochSensitivities,
  epoch: number,
): { state: PolicyState; changed: boolean } {
  const cfg = resolvePolicyConfig(config);
  checkLayerShapes(layers);
  checkStateMatches(state, layers);
  if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`epoch: expected an integer >= 0, got ${epoch}`);
  if (epoch <= state.epoch) {
    throw new Error(`epoch: ${epoch} is not after the last allocated epoch ${state.epoch}; allocate each finished epoch once`);
  }
  const next = cloneState(state);
  next.epoch = epoch;
  const phase = windowPhase(cfg.schedule, epoch);
  let changed = false;
  if (phase.kind === "before") return { state: next, changed };

  for (const kind of BIT_KINDS) {
    const limits = limitsOf(cfg, kind);
    if (limits.fullPrecision) continue;
    const frozenKey = kind === "weight" ? "weightFrozen" : "actFrozen";
    const giveback = cfg.allocator === "giveback";
    if (next[frozenKey] && !giveback) continue;
    const units = buildUnits(cfg, layers, kind);
    if (units.length === 0) {
      next[frozenKey] = true;
      continue;
    }
    const costs = channelCosts(cfg, layers, kind, sens);
    const score = kind === "act" ? cfg.actScore : cfg.score;
    const scores = units.map((u) => unitScore(u, costs, score));
    const a = new KindAllocation(next.layers, kind, limits, ledgerOf(next.layers, layers, kind, limits));

    if (!next[frozenKey]) {
      const took = phase.kind === "ramp" ? rampDecrement(a, units, scores, phase.fraction) : finalDecrement(a, units, scores);
      changed = took || changed;
      next[frozenKey] = phase.kind === "final" || a.met(units);
    } else {
      const previousCosts = next.history?.[kind] ?? null;
      if (previousCosts !== null && cfg.granularity !== "GP") {
        const previous = units.map((u) => unitScore(u, previousCosts, score));
        const maxSwaps = Math.max(1, Math.ceil(cfg.schedule.rStart * units.length));
        changed = giveBack(a, units, scores, previous, maxSwaps) || changed;
      }
    }
    if (giveback && next.history !== null) next.history[kind] = costs;
  }
  return { state: next, changed };
}

