// Where the worker's Python and package live: $DMBQ_PYTHON (any interpreter with dmbq_worker importable or
// on PYTHONPATH), else the project's py_worker/.venv made by `npm install`, else python3.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: the folder holding py_worker/, found upward from this file (works from ts/ and dist/). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "py_worker", "dmbq_worker"))) return dir;
    dir = resolve(dir, "..");
  }
  throw new Error("cannot find py_worker/ above " + fileURLToPath(import.meta.url));
}

export function workerPython(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.DMBQ_PYTHON) return process.env.DMBQ_PYTHON;
  const venv = join(projectRoot(), "py_worker", ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

/** The environment for the worker process: the worker package on PYTHONPATH, unbuffered output. */
export function workerEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const pyPath = [join(projectRoot(), "py_worker"), process.env.PYTHONPATH].filter(Boolean).join(":");
  return { ...process.env, PYTHONPATH: pyPath, PYTHONUNBUFFERED: "1", ...extra };
}
