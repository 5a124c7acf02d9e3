// The worker's Python for the project's scripts: $DMBQ_PYTHON, else py_worker/.venv, else python3
// (the same rule as ts/worker/pythonEnv.ts, for code that runs before or without the TypeScript build).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export function workerPython() {
  const venv = join(root, "py_worker", ".venv", "bin", "python");
  return process.env.DMBQ_PYTHON || (existsSync(venv) ? venv : "python3");
}
