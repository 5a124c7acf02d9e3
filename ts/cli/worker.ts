// `dmbq worker --listen tcp://0.0.0.0:5555`: runs a worker in the foreground (e.g. on a GPU host) for an
// orchestrator elsewhere to connect to with `worker: { endpoint: "tcp://host:5555" }`.
import { spawn } from "node:child_process";
import { workerEnv, workerPython, projectRoot } from "../worker/pythonEnv.js";

export async function workerCommand(argv: string[]): Promise<number> {
  const i = argv.findIndex((a) => a === "--listen");
  const endpoint = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith("--listen="))?.slice(9);
  if (!endpoint || !/^(tcp|ipc):\/\//.test(endpoint)) {
    console.error("usage: dmbq worker --listen tcp://HOST:PORT | ipc:///path/to.sock [--verbose]");
    return 2;
  }
  const child = spawn(workerPython(), ["-m", "dmbq_worker", "--listen", endpoint, ...(argv.includes("--verbose") ? ["--verbose"] : [])], {
    cwd: projectRoot(),
    env: workerEnv(),
    stdio: "inherit",
  });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}
