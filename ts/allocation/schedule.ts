// The paper's decrement schedule: a window of epochs in which the fraction r of channels losing a bit ramps linearly.
import { windowLength } from "./config.js";
import type { ResolvedSchedule } from "./types.js";

/** What the schedule asks of the epoch just finished. */
export type WindowPhase =
  | { kind: "before" }
  /** Inside the window: take one bit from the cheapest `fraction` of eligible units. */
  | { kind: "ramp"; fraction: number }
  /** The window's last epoch (or any later one while the budget is unmet): take whatever remains. */
  | { kind: "final" };

/** Epochs [first, last] (inclusive) of the decrement window. */
export function decrementWindow(s: ResolvedSchedule): { first: number; last: number } {
  const first = s.startEpoch;
  return { first, last: first + windowLength(s.totalEpochs, s.rampFraction) - 1 };
}

/**
 * r at the k-th window epoch ramps linearly from rStart (k = 0) to rEnd (k = L - 2, the last ramp epoch);
 * the window's last epoch (k = L - 1) is "final". A one-epoch window is only "final".
 */
export function windowPhase(s: ResolvedSchedule, epoch: number): WindowPhase {
  const { first, last } = decrementWindow(s);
  if (epoch < first) return { kind: "before" };
  if (epoch >= last) return { kind: "final" };
  const rampEpochs = last - first; // epochs first .. last-1
  const k = epoch - first;
  const fraction = rampEpochs === 1 ? s.rStart : s.rStart + ((s.rEnd - s.rStart) * k) / (rampEpochs - 1);
  return { kind: "ramp", fraction };
}
