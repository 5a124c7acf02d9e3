// A worker the orchestrator can use: spawned here (stdio or ZeroMQ over a private ipc socket) or reached at an
// endpoint (`dmbq worker --listen tcp://...` on a GPU host). Either way: a WorkerClient after a good handshake.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HelloReply } from "../gen/dmbq.js";
import { StdioTransport } from "../transport/stdioTransport.js";
import type { Transport } from "../transport/transport.js";
import { ZmqTransport } from "../transport/zmqTransport.js";
import { WorkerExitedError } from "./errors.js";
import { workerEnv, workerPython, projectRoot } from "./pythonEnv.js";
import { StderrTail } from "./stderrTail.js";
import { supervise } from "./supervisor.js";
import { WorkerClient } from "./workerClient.js";

export type TransportKind = "zmq" | "stdio";

export interface SpawnOptions {
  transport?: TransportKind; // default "zmq"
  python?: string; // default: $DMBQ_PYTHON, py_worker/.venv, python3
  env?: NodeJS.ProcessEnv;
  /** Forward the worker's stderr lines here (default: keep them only for error messages; DMBQ_WORKER_LOG=1 prints them). */
  onStderr?: (line: string) => void;
  /** How long the worker may take to start and answer the handshake (importing torch takes seconds). */
  startTimeoutMs?: number;
  extraArgs?: string[];
}

export interface WorkerHandle {
  readonly client: WorkerClient;
  readonly hello: HelloReply;
  /** The worker's pid when this process started it; undefined for a remote worker. */
  readonly pid: number | undefined;
  readonly transport: Transport;
  /** Resolves when the worker process ends (spawned workers) or the connection closes (remote). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Asks the worker to shut down, then makes sure it has (spawned workers); closes the connection. */
  close(): Promise<void>;
}

export async function spawnWorker(options: SpawnOptions = {}): Promise<WorkerHandle> {
  const kind = options.transport ?? "zmq";
  const python = workerPython(options.python);
  const args = ["-m", "dmbq_worker", "--parent-pid", String(process.pid), ...(options.extraArgs ?? [])];
  let socketDir: string | undefined;
  if (kind === "zmq") {
    // mkdtemp makes the folder 0700: only this user can reach the socket.
    socketDir = mkdtempSync(join(tmpdir(), "dmbq-"));
    args.push("--listen", `ipc://${join(socketDir, "worker.sock")}`);
  } else {
    args.push("--stdio");
  }
  const child: ChildProcess = spawn(python, args, {
    cwd: projectRoot(),
    env: workerEnv(options.env),
    stdio: ["pipe", "pipe", "pipe"],
    // Own process group: a Ctrl-C in the terminal reaches the orchestrator, which then stops the worker cleanly.
    detached: true,
  });
  supervise(child);
  const tail = new StderrTail();
  const echoStderr = process.env.DMBQ_WORKER_LOG === "1";
  child.stderr!.on("data", (chunk: Buffer) => {
    for (const line of tail.push(chunk)) {
      options.onStderr?.(line);
      if (echoStderr) process.stderr.write(`[worker ${child.pid}] ${line}\n`);
    }
  });

  const transport: Transport =
    kind === "zmq"
      ? ZmqTransport.connect(`ipc://${join(socketDir!, "worker.sock")}`, { watchConnection: false })
      : new StdioTransport(`stdio:${child.pid}`, child.stdout!, child.stdin!);
  if (kind === "zmq") child.stdout!.resume(); // nothing is expected there; never let the pipe fill
  const client = new WorkerClient(transport);
  // A dying worker closes its pipes/socket just before its exit is reported: wait briefly for the exit,
  // so callers learn the exit code or signal rather than a bare "connection closed".
  let closeTimer: NodeJS.Timeout | undefined;
  transport.onClose((reason) => {
    closeTimer = setTimeout(() => client.fail(reason), 1_000);
    closeTimer.unref();
  });

  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    const finish = (code: number | null, signal: string | null, spawnError?: Error) => {
      clearTimeout(closeTimer);
      const how = spawnError
        ? `could not start the worker with ${python}: ${spawnError.message} (set DMBQ_PYTHON or run npm install)`
        : signal
          ? `the worker (pid ${child.pid}) was killed by signal ${signal}`
          : `the worker (pid ${child.pid}) exited with code ${code}`;
      client.fail(new WorkerExitedError(how, code, signal, tail.toString()));
      void transport.close();
      if (socketDir) rmSync(socketDir, { recursive: true, force: true });
      resolve({ code, signal });
    };
    child.once("exit", (code, signal) => finish(code, signal));
    child.once("error", (err) => finish(null, null, err));
  });
  // The stdin pipe errors with EPIPE if the worker dies mid-write; the exit handler reports that death.
  child.stdin!.on("error", () => {});

  return handshakeAndHandle({
    client, transport, exited, pid: child.pid,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill: (signal) => child.kill(signal),
    startTimeoutMs: options.startTimeoutMs ?? 120_000, shutdownMs: 5_000, killAfterMs: 3_000,
  });
}

/** How a started worker process is finished into a WorkerHandle (shared by the plain and the torchrun worker). */
export interface StartedWorker {
  client: WorkerClient;
  transport: Transport;
  exited: Promise<{ code: number | null; signal: string | null }>;
  pid: number | undefined;
  alive: () => boolean;
  kill: (signal: NodeJS.Signals) => void;
  startTimeoutMs: number;
  /** close(): how long the Shutdown request may take, then how long before SIGKILL. */
  shutdownMs: number;
  killAfterMs: number;
}

/** The handshake, then the handle; a failed handshake kills the process and rethrows. */
export async function handshakeAndHandle(w: StartedWorker): Promise<WorkerHandle> {
  let hello: HelloReply;
  try {
    hello = await w.client.hello(w.startTimeoutMs);
  } catch (err) {
    if (w.alive()) w.kill("SIGKILL");
    await w.exited;
    throw err;
  }
  return {
    client: w.client,
    hello,
    pid: w.pid,
    transport: w.transport,
    exited: w.exited,
    async close() {
      if (w.alive()) {
        try {
          await w.client.shutdown(w.shutdownMs);
        } catch {
          // dead or stuck: the kill below settles it
        }
        const killer = setTimeout(() => w.kill("SIGKILL"), w.killAfterMs);
        await w.exited;
        clearTimeout(killer);
      }
      await w.transport.close();
    },
  };
}

/** Connects to a worker already listening (e.g. `dmbq worker --listen tcp://0.0.0.0:5555` on a GPU host). */
export async function connectWorker(endpoint: string, options: { startTimeoutMs?: number } = {}): Promise<WorkerHandle> {
  if (!/^(tcp|ipc):\/\//.test(endpoint)) throw new Error(`worker endpoint must start with tcp:// or ipc://, got ${JSON.stringify(endpoint)}`);
  const transport = ZmqTransport.connect(endpoint);
  const client = new WorkerClient(transport);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    transport.onClose((reason) => {
      client.fail(reason);
      resolve({ code: null, signal: null });
    });
  });
  let hello: HelloReply;
  try {
    hello = await client.hello(options.startTimeoutMs ?? 30_000);
  } catch (err) {
    await transport.close();
    throw err;
  }
  return {
    client,
    hello,
    pid: undefined,
    transport,
    exited,
    async close() {
      await transport.close();
    },
  };
}
