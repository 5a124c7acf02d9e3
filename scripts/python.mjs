#!/usr/bin/env node
// Runs the worker's Python with the given arguments: $DMBQ_PYTHON, else py_worker/.venv, else python3.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const venv = join(root, "py_worker", ".venv", "bin", "python");
const python = process.env.DMBQ_PYTHON || (existsSync(venv) ? venv : "python3");
const env = { ...process.env, PYTHONPATH: [join(root, "py_worker"), process.env.PYTHONPATH].filter(Boolean).join(":") };
const r = spawnSync(python, process.argv.slice(2), { stdio: "inherit", env, cwd: root });
if (r.error) {
  console.error(`cannot run the worker's Python (${python}): ${r.error.message}`);
  process.exit(127);
}
process.exit(r.status ?? 1);
