// Runs one behaviour suite over every transport, against a real worker process (no mocks).
import { readFileSync } from "node:fs";
import { spawnWorker, type SpawnOptions, type TransportKind, type WorkerHandle } from "../../ts/worker/index.js";

export const TRANSPORTS: TransportKind[] = ["zmq", "stdio"];

export function eachTransport(title: string, body: (ctx: { kind: TransportKind; start: (o?: SpawnOptions) => Promise<WorkerHandle> }) => void): void {
  for (const kind of TRANSPORTS) {
    describe(`${title} [${kind}]`, function () {
      this.timeout(60_000);
      const started: WorkerHandle[] = [];
      const start = async (o: SpawnOptions = {}) => {
        const w = await spawnWorker({ transport: kind, ...o });
        started.push(w);
        return w;
      };
      after(async () => {
        await Promise.all(started.map((w) => w.close().catch(() => {})));
      });
      body({ kind, start });
    });
  }
}

/** True while a process with this pid exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie still answers kill(0); its state letter in /proc says Z.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean, ms: number, stepMs = 25): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}
