// Keeps track of every worker process this orchestrator started, so that none outlives it:
// SIGINT/SIGTERM stop them all before the orchestrator exits, and process exit kills any left.
import type { ChildProcess } from "node:child_process";

const live = new Set<ChildProcess>();
let installed = false;

function killAll(signal: NodeJS.Signals): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  killAll("SIGTERM");
  const waitFor = [...live].filter((c) => c.exitCode === null && c.signalCode === null);
  const deadline = setTimeout(() => {
    killAll("SIGKILL");
    process.exit(signal === "SIGINT" ? 130 : 143);
  }, 2000);
  let left = waitFor.length;
  if (left === 0) process.exit(signal === "SIGINT" ? 130 : 143);
  for (const c of waitFor) {
    c.once("exit", () => {
      if (--left === 0) {
        clearTimeout(deadline);
        process.exit(signal === "SIGINT" ? 130 : 143);
      }
    });
  }
}

/** Registers a child for clean-up. The handlers are installed once, on the first worker. */
export function supervise(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (installed) return;
  installed = true;
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("exit", () => killAll("SIGKILL"));
}

export function liveWorkerCount(): number {
  return live.size;
}
