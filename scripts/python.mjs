#!/usr/bin/env node
// Runs the worker's Python with the given arguments: $DMBQ_PYTHON, else py_worker/.venv, else python3.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { root, workerPython } from "./workerPython.mjs";

const python = workerPython();
const env = { ...process.env, PYTHONPATH: [join(root, "py_worker"), process.env.PYTHONPATH].filter(Boolean).join(":") };
const r = spawnSync(python, process.argv.slice(2), { stdio: "inherit", env, cwd: root });
if (r.error) {
  console.error(`cannot run the worker's Python (${python}): ${r.error.message}`);
  process.exit(127);
}
process.exit(r.status ?? 1);
