// A worker that is a torch.distributed job: `python -m torch.distributed.run --nproc-per-node N -m dmbq_worker`.
// Rank 0 listens on a private ipc socket and serves the contract; the other ranks follow its requests. Any rank
// dying makes torchrun end the job; every pending request then rejects with an error naming the failed rank.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

  const transport = ZmqTransport.connect(endpoint, { watchConnection: false });
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
