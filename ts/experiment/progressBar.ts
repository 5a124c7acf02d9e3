// A per-epoch progress bar on stderr: redrawn in place on a terminal, a line per epoch otherwise.
import type { Progress } from "../gen/dmbq.js";
import type { EpochRecord } from "./records.js";

export class ProgressBar {
  private lastDraw = 0;
  private warnedEager = false;

  constructor(private readonly totalEpochs: number, private readonly mode: "bar" | "lines" | "none", private readonly out: NodeJS.WriteStream = process.stderr) {}

  static auto(totalEpochs: number, mode?: "bar" | "lines" | "none"): ProgressBar {
    return new ProgressBar(totalEpochs, mode ?? (process.stderr.isTTY ? "bar" : "lines"));
  }

  update(epoch: number, p: Progress): void {
    if (this.mode !== "bar") return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && p.step < p.stepsTotal) return;
    this.lastDraw = now;
    const width = 28;
    const frac = p.stepsTotal > 0 ? Math.min(1, p.step / p.stepsTotal) : 0;
    const filled = Math.round(frac * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    this.out.write(
      `\r epoch ${epoch}/${this.totalEpochs} ${bar} ${(frac * 100).toFixed(0).padStart(3)}%  loss ${p.loss.toFixed(4)}  acc ${(p.accuracy * 100).toFixed(1)}%  ${p.samplesPerS.toFixed(0)} img/s `,
    );
  }

  epochDone(r: EpochRecord): void {
    if (this.mode === "none") return;
    const bits = r.phase === "quant" ? `  W${r.avgWBits.toFixed(2)}/A${r.avgABits.toFixed(2)}` : "";
    const line = ` epoch ${r.epoch}/${this.totalEpochs}  train loss ${r.trainLoss.toFixed(4)} acc ${(r.trainAccuracy * 100).toFixed(1)}%  test acc ${(r.testAccuracy * 100).toFixed(2)}%${bits}  ${r.seconds.toFixed(1)} s`;
    this.out.write(this.mode === "bar" ? `\r${line}\x1b[K\n` : `${line}\n`);
    if (!this.warnedEager && r.stepMode?.startsWith("eager (capture failed")) {
      // once: a step that could not be captured trains all the same, several times slower
      this.warnedEager = true;
      this.out.write(` warning: the worker runs its steps ${r.stepMode}, several times slower than a captured step\n`);
    }
  }
}
