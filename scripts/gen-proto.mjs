#!/usr/bin/env node
// Generates the TypeScript (ts-proto) and Python (protoc --python_out/--pyi_out) code of proto/dmbq.proto.
// protoc comes from grpcio-tools (PyPI) in the worker's Python environment; ts-proto from node_modules.
//   node scripts/gen-proto.mjs           write ts/gen and py_worker/dmbq_worker/proto
//   node scripts/gen-proto.mjs --check   regenerate into a temporary folder and fail on any difference
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, copyFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root, workerPython } from "./workerPython.mjs";

const python = workerPython();
const plugin = join(root, "node_modules", ".bin", "protoc-gen-ts_proto");
const TS_OPTS = "esModuleInterop=true,importSuffix=.js,oneof=unions-value,outputServices=false,env=node,outputJsonMethods=false,useOptionals=none";
const targets = [
  { dir: join(root, "ts", "gen"), files: ["dmbq.ts"] },
  { dir: join(root, "py_worker", "dmbq_worker", "proto"), files: ["dmbq_pb2.py", "dmbq_pb2.pyi"] },
];

const out = mkdtempSync(join(tmpdir(), "dmbq-proto-"));
try {
  const ts = join(out, "ts");
  const py = join(out, "py");
  mkdirSync(ts);
  mkdirSync(py);
  const r = spawnSync(
    python,
    ["-m", "grpc_tools.protoc", `-I${join(root, "proto")}`, `--plugin=protoc-gen-ts_proto=${plugin}`,
      `--ts_proto_out=${ts}`, `--ts_proto_opt=${TS_OPTS}`, `--python_out=${py}`, `--pyi_out=${py}`,
      join(root, "proto", "dmbq.proto")],
    { encoding: "utf8" },
  );
  if (r.error || r.status !== 0) {
    console.error(`protoc failed (python: ${python}): ${r.error?.message ?? r.stderr}`);
    console.error("Is grpcio-tools installed in the worker environment? Run `npm install` to set it up.");
    process.exit(2);
  }
  const generated = [ts, py];
  let stale = [];
  targets.forEach((t, i) => {
    for (const f of t.files) {
      const fresh = join(generated[i], f);
      const committed = join(t.dir, f);
      if (process.argv.includes("--check")) {
        if (!existsSync(committed) || readFileSync(committed, "utf8") !== readFileSync(fresh, "utf8")) stale.push(committed);
      } else {
        mkdirSync(t.dir, { recursive: true });
        copyFileSync(fresh, committed);
      }
    }
    const extra = readdirSync(generated[i]).filter((f) => !t.files.includes(f));
    if (extra.length) stale.push(...extra.map((f) => `unexpected generated file ${f}`));
  });
  if (stale.length) {
    console.error(`generated protocol code is out of date with proto/dmbq.proto:\n  ${stale.join("\n  ")}\nRun \`npm run gen:proto\` and commit the result.`);
    process.exit(1);
  }
  console.log(process.argv.includes("--check") ? "proto: generated code is up to date" : "proto: generated ts/gen and py_worker/dmbq_worker/proto");
} finally {
  rmSync(out, { recursive: true, force: true });
}
