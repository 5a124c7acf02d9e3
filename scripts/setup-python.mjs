#!/usr/bin/env node
// `npm install` runs this: it prepares the worker's Python environment.
//  - DMBQ_PYTHON set: that interpreter is used as it is; this only checks that it has what the worker needs.
//  - otherwise: py_worker/.venv (with the system's site-packages visible, so an installed torch is kept);
//    torch==2.13.0 is installed only when no torch imports (on the dev/CI machines that is a local CPU build).
// Skipped when DMBQ_SKIP_PYTHON=1 (e.g. installing only the TypeScript side on a machine without Python).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const venv = join(root, "py_worker", ".venv");
const venvPython = join(venv, "bin", "python");
const reqs = ["requirements.txt", "requirements-dev.txt"].map((f) => join(root, "py_worker", f));
const TORCH = process.env.DMBQ_TORCH_SPEC || "torch==2.13.0";

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { stdio: "inherit", cwd: root });
  if (r.error || r.status !== 0) {
    console.error(`dmbq setup: ${what} failed (${cmd} ${args.join(" ")}): ${r.error?.message ?? `exit ${r.status}`}`);
    process.exit(1);
  }
}

function imports(python, module) {
  return spawnSync(python, ["-c", `import ${module}`], { stdio: "ignore" }).status === 0;
}

if (process.env.DMBQ_SKIP_PYTHON === "1") {
  console.log("dmbq setup: DMBQ_SKIP_PYTHON=1, leaving Python alone");
  process.exit(0);
}

if (process.env.DMBQ_PYTHON) {
  const py = process.env.DMBQ_PYTHON;
  const missing = ["torch", "numpy", "zmq", "google.protobuf", "sklearn"].filter((m) => !imports(py, m));
  if (missing.length) {
    console.error(`dmbq setup: DMBQ_PYTHON=${py} lacks: ${missing.join(", ")}. Install them there (pip install -r py_worker/requirements.txt) or unset DMBQ_PYTHON.`);
    process.exit(1);
  }
  console.log(`dmbq setup: using DMBQ_PYTHON=${py}`);
  process.exit(0);
}

if (!existsSync(venvPython)) {
  const base = process.env.PYTHON || "python3";
  console.log(`dmbq setup: creating py_worker/.venv with ${base}`);
  run(base, ["-m", "venv", "--system-site-packages", venv], "creating the virtual environment");
}

const stamp = join(venv, ".dmbq-requirements");
const digest = createHash("sha256").update(reqs.map((f) => readFileSync(f, "utf8")).join("\n") + TORCH).digest("hex");
if (existsSync(stamp) && readFileSync(stamp, "utf8") === digest && imports(venvPython, "torch")) {
  console.log("dmbq setup: py_worker/.venv is up to date");
  process.exit(0);
}

const pip = [ "-m", "pip", "install", "--disable-pip-version-check", "-q"];
if (!imports(venvPython, "torch")) {
  console.log(`dmbq setup: installing ${TORCH} into py_worker/.venv`);
  run(venvPython, [...pip, TORCH], "installing torch");
} else {
  console.log("dmbq setup: keeping the torch that is already installed");
}
console.log("dmbq setup: installing the worker's requirements");
run(venvPython, [...pip, ...reqs.flatMap((f) => ["-r", f])], "installing the worker's requirements");
writeFileSync(stamp, digest);
console.log("dmbq setup: py_worker/.venv ready");
