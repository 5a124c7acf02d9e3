// A worker that is a torch.distributed job: `python -m torch.distributed.run --nproc-per-node N -m dmbq_worker`.
// Rank 0 listens on a private ipc socket and serves the contract; the other ranks follow its requests. Any rank
// dying makes torchrun end the job; every pending request then rejects with an error naming the failed rank.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Response } from "../gen/dmbq.js";
import type { Transport } from "../transport/transport.js";
import { ZmqTransport } from "../transport/zmqTransport.js";
import { WorkerExitedError } from "./errors.js";
import { projectRoot, workerEnv, workerPython } from "./pythonEnv.js";
import { StderrTail } from "./stderrTail.js";
import { supervise } from "./supervisor.js";
import { WorkerClient } from "./workerClient.js";
import { handshakeAndHandle, type WorkerHandle } from "./workerHandle.js";

// Kept set on the GPU hosts: NVLink multicast (NVLS) is off there.
export const NCCL_HOST_ENV: Readonly<Record<string, string>> = {
  NCCL_NVLS_ENABLE: "0",
  TORCH_SYMM_MEM_DISABLE_MULTICAST: "1",
  NVSHMEM_DISABLE_NVLS: "1",
};

export interface TorchrunOptions {
  /** Processes on this host (one per GPU; on a CPU-only host, gloo processes). */
  nprocPerNode: number;
  python?: string;
  env?: NodeJS.ProcessEnv;
  onStderr?: (line: string) => void;
  startTimeoutMs?: number;
  /** How long a reply reporting a failed collective waits for the job to end (default 30 s); see CollectiveFailureGate. */
  collectiveFailureGraceMs?: number;
}

const COLLECTIVE_FAILURE_GRACE_MS = 30_000;

/** Whether a worker error comes from a collective whose peer is gone (gloo's "Connection reset by peer", NCCL errors). */
export function isCollectiveFailure(text: string): boolean {
  return /gloo|nccl|DistBackendError|ProcessGroup|c10d|Connection (reset|closed) by peer|Broken pipe/i.test(text);
}

function reportsCollectiveFailure(frame: Uint8Array): boolean {
  try {
    const r = Response.decode(frame);
    return r.final && r.body?.$case === "error" && isCollectiveFailure(`${r.body.value.message}\n${r.body.value.details}`);
  } catch {
    return false; // the client reports undecodable frames itself
  }
}

/**
 * Holds back a reply that reports a failed collective (later frames queue behind it) for up to `graceMs`.
 * Why: when a rank dies mid-step, rank 0's next all-reduce fails at once and rank 0 answers "RuntimeError: gloo ...
 * Connection reset by peer" before torchrun, polling every monitor interval, has noticed the death and ended the
 * job. Held back, the request is instead rejected by the job's exit, with the error that names the dead rank and
 * says how to resume. If the job does not end (no rank died), the reply goes through as it was.
 */
export class CollectiveFailureGate implements Transport {
  private held: Uint8Array[] = [];
  private timer: NodeJS.Timeout | undefined;
  private listener: ((frame: Uint8Array) => void) | undefined;

  constructor(private readonly inner: Transport, private readonly graceMs: number) {
    inner.onFrame((frame) => this.receive(frame));
  }

  get kind(): string {
    return this.inner.kind;
  }

  get address(): string {
    return this.inner.address;
  }

  send(frame: Uint8Array): Promise<void> {
    return this.inner.send(frame);
  }

  onFrame(listener: (frame: Uint8Array) => void): void {
    this.listener = listener;
  }

  onClose(listener: (reason: Error) => void): void {
    this.inner.onClose(listener);
  }

  /** Drops what is held: by now the job's exit has rejected those requests. */
  close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.held = [];
    return this.inner.close();
  }

  private receive(frame: Uint8Array): void {
    if (this.timer !== undefined) {
      this.held.push(frame);
    } else if (reportsCollectiveFailure(frame)) {
      this.held.push(frame);
      this.timer = setTimeout(() => this.release(), this.graceMs);
    } else {
      this.listener?.(frame);
    }
  }

  private release(): void {
    this.timer = undefined;
    const frames = this.held;
    this.held = [];
    for (const frame of frames) this.listener?.(frame);
  }
}

/** "rank 1" from torchrun's failure summary (`rank      : 1 (local_rank: 1)`), if it printed one. */
export function failedRankFrom(stderr: string): number | undefined {
  // the first rank to fail is under "Root Cause"; the others failed because it left their collectives
  const root = stderr.lastIndexOf("Root Cause");
  const text = root >= 0 ? stderr.slice(root) : stderr;
  const m = /rank\s*:\s*(\d+)\s*\(local_rank/.exec(text);
  return m ? Number(m[1]) : undefined;
}

export async function spawnTorchrunWorker(options: TorchrunOptions): Promise<WorkerHandle> {
  const n = options.nprocPerNode;
  if (!Number.isInteger(n) || n < 1) throw new Error(`workers.gpus: must be an integer >= 1, got ${JSON.stringify(n)}`);
  const python = workerPython(options.python);
  const socketDir = mkdtempSync(join(tmpdir(), "dmbq-")); // 0700: only this user reaches the socket
  const endpoint = `ipc://${join(socketDir, "worker.sock")}`;
  // No --parent-pid: the ranks' parent is torchrun's agent, not us; the supervisor kills the whole process group.
  const args = ["-m", "torch.distributed.run", "--standalone", `--nproc-per-node=${n}`, "--monitor-interval=0.5",
    "-m", "dmbq_worker", "--listen", endpoint];
  const child: ChildProcess = spawn(python, args, {
    cwd: projectRoot(),
    env: workerEnv({ ...NCCL_HOST_ENV, ...options.env }),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  supervise(child);
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const tail = new StderrTail(80);
  const echo = process.env.DMBQ_WORKER_LOG === "1";
  child.stderr!.on("data", (chunk: Buffer) => {
    for (const line of tail.push(chunk)) {
      options.onStderr?.(line);
      if (echo) process.stderr.write(`[torchrun ${child.pid}] ${line}\n`);
    }
  });
  child.stdout!.resume();

  const transport = new CollectiveFailureGate(ZmqTransport.connect(endpoint, { watchConnection: false }),
    options.collectiveFailureGraceMs ?? COLLECTIVE_FAILURE_GRACE_MS);
  const client = new WorkerClient(transport);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    const finish = (code: number | null, signal: string | null, spawnError?: Error) => {
      const text = tail.toString();
      const rank = failedRankFrom(text);
      const how = spawnError
        ? `could not start torchrun with ${python}: ${spawnError.message}`
        : code === 0
          ? `the ${n}-rank worker job (torchrun pid ${child.pid}) ended`
          : `the ${n}-rank worker job (torchrun pid ${child.pid}) failed${rank !== undefined ? `: rank ${rank} died` : ""} ` +
            `(${signal ? `signal ${signal}` : `exit code ${code}`}); \`dmbq resume\` restarts it from the last checkpoint`;
      killGroup("SIGKILL"); // no rank outlives the agent
      client.fail(new WorkerExitedError(how, code, signal, text));
      void transport.close();
      rmSync(socketDir, { recursive: true, force: true });
      resolve({ code, signal });
    };
    child.once("exit", (code, signal) => finish(code, signal));
    child.once("error", (err) => finish(null, null, err));
  });

  return handshakeAndHandle({
    client, transport, exited, pid: child.pid,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill: killGroup,
    startTimeoutMs: options.startTimeoutMs ?? 180_000, shutdownMs: 10_000, killAfterMs: 10_000,
  });
}
